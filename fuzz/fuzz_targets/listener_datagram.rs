//! The listener's datagram demux (`oneway_core::demux::classify`, `spec/handshake.md` §4.3):
//! never panics whatever the bytes, and a datagram it routes to a new dialer carries a §4.2
//! USERNAME naming this token.
#![no_main]
use oneway_core::demux::{ListenerCreds, Routed, classify};
use oneway_core::username::parse_dialer_username;

/// The credentials of the first valid vector (spec/vectors/valid.json); ci/fuzz.sh seeds
/// checks keyed with them, so the fuzzer starts from datagrams that reach every step.
const CREDS: ListenerCreds<'static> = ListenerCreds {
    token_ufrag: "hsdE6ktp",
    listener_pwd: "ASoXCQvZxeol0cZPcLuVVxGW",
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // As a listener with no engine yet, then as one whose engines own ufrags starting "known".
    for known in [false, true] {
        match classify(data, CREDS, |u| known && u.starts_with("known")) {
            Ok(Routed::NewDialer(d)) => {
                let username = format!("{}:{}", d.listener_ufrag, d.dialer_ufrag);
                let parsed = parse_dialer_username(&username).expect("a routed USERNAME parses");
                assert_eq!(parsed.token_ufrag, CREDS.token_ufrag);
                assert_eq!(parsed.dialer_pwd, d.dialer_pwd);
            }
            Ok(Routed::Known { listener_ufrag }) => {
                assert!(known && listener_ufrag.starts_with("known"));
            }
            Ok(_) => {}
            Err(dropped) => assert!(!dropped.code().is_empty()),
        }
    }
});
