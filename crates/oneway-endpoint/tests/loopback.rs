//! One-way connections over loopback with real sockets and real engines: the same cases for
//! every stack (`loopback/cases.rs`), each against its own listener.

mod str0m {
    type Stack = oneway_str0m::Str0m;
    include!("loopback/cases.rs");
}

mod webrtc_rs {
    type Stack = oneway_webrtc::WebrtcRs;
    include!("loopback/cases.rs");
}
