//! Helpers of the tests that run `oneway` processes (`listen_dial.rs`, `reply.rs`).

#![allow(dead_code)]

use std::process::{Child, Command};

/// A child process killed (and reaped) when dropped, so a failed test leaves none behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `oneway` binary under test.
pub fn oneway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oneway"))
}

/// `token` (text) with its candidates moved to a loopback port where a bound socket drops
/// everything: the dialer cannot reach the listener one-way (as behind a filtering NAT). The
/// socket is returned so that it stays bound.
pub fn black_holed(token: &str) -> (String, std::net::UdpSocket) {
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = hole.local_addr().expect("addr").port();
    let mut token = oneway_token::Token::from_text(token).expect("valid");
    for c in &mut token.candidates {
        c.port = port;
    }
    (token.to_text().expect("encodes"), hole)
}
