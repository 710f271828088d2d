//! `oneway listen|dial --stack webrtc-rs` as separate processes over loopback, against each
//! other and across stacks with str0m, speaking the peer contract (`spec/peer-contract.md`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oneway_core::PeerEvent;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn oneway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oneway"))
}

/// Starts an echoing loopback listener of `stack` and returns it with its token.
fn start_listener(stack: &str) -> (Killed, String) {
    let mut child = oneway()
        .args(["listen", "--bind", "127.0.0.1:0", "--echo", "--json"])
        .args(["--stack", stack])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("token line");
    let token = match PeerEvent::parse_line(&line) {
        Some(PeerEvent::Token {
            token,
            stack: printed,
            candidates,
            ..
        }) => {
            assert_eq!(printed, stack);
            assert_eq!(candidates.len(), 1, "{candidates:?}");
            assert!(
                candidates[0].starts_with("host udp 127.0.0.1:"),
                "{candidates:?}"
            );
            token
        }
        other => panic!("first line is not a token event: {line:?} ({other:?})"),
    };
    (Killed(child), token)
}

fn dial(stack: &str, token: &str, extra: &[&str]) -> (Option<i32>, Vec<PeerEvent>, String) {
    let started = Instant::now();
    let out = oneway()
        .args(["dial", "--json", "--probe", "--stack", stack])
        .args(extra)
        .arg(token)
        .output()
        .expect("run dial");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "dial is bounded in time"
    );
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(PeerEvent::parse_line)
        .collect();
    (
        out.status.code(),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(events: &[PeerEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).expect("json")["event"]
                .as_str()
                .expect("tag")
                .to_owned()
        })
        .collect()
}

/// A dialer of `dialer` probes an echoing listener of `listener`: the full event sequence,
/// the stack named in `dialing`, and a loopback path with ordered stage times.
fn probe_pair(listener: &str, dialer: &str) {
    let (_listener, token) = start_listener(listener);
    let (code, events, stderr) = dial(dialer, &token, &[]);
    assert_eq!(code, Some(0), "{listener} × {dialer}: {stderr}");
    assert_eq!(
        names(&events),
        [
            "dialing",
            "candidate-tried",
            "ice-connected",
            "dtls-connected",
            "channel-open",
            "connected",
            "first-echo"
        ],
        "{listener} × {dialer}: {events:?}"
    );
    match &events[0] {
        PeerEvent::Dialing { stack, .. } => assert_eq!(stack, dialer),
        other => panic!("{other:?}"),
    }
    match &events[5] {
        PeerEvent::Connected {
            selected: Some(pair),
            stages,
            ..
        } => {
            assert!(pair.remote.starts_with("127.0.0.1:"), "{pair:?}");
            assert!(
                stages.auth.is_some() && stages.ice <= stages.dtls && stages.dtls <= stages.auth,
                "{stages:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn webrtc_rs_listener_and_webrtc_rs_dialer() {
    probe_pair("webrtc-rs", "webrtc-rs");
}

#[test]
fn webrtc_rs_listener_and_str0m_dialer() {
    probe_pair("webrtc-rs", "str0m");
}

#[test]
fn str0m_listener_and_webrtc_rs_dialer() {
    probe_pair("str0m", "webrtc-rs");
}

#[test]
fn webrtc_rs_dialer_with_a_forged_secret_fails_with_ice_timeout() {
    let (_listener, token) = start_listener("webrtc-rs");
    let mut forged = oneway_token::Token::from_text(&token).expect("valid");
    forged.secret.0[3] ^= 1;
    let (code, events, stderr) = dial(
        "webrtc-rs",
        &forged.to_text().expect("encodes"),
        &["--timeout", "2s"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    match events.last() {
        Some(PeerEvent::Refused { code, .. }) => assert_eq!(code, "ice-timeout"),
        other => panic!("{other:?}"),
    }
    assert!(stderr.contains("dial: ice-timeout"), "{stderr}");
}

#[test]
fn webrtc_rs_refuses_flags_it_does_not_implement() {
    for args in [
        &["listen", "--stack", "webrtc-rs", "--mdns"][..],
        &["listen", "--stack", "webrtc-rs", "--bind", "0.0.0.0:0"][..],
    ] {
        let out = oneway().args(args).output().expect("run listen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("usage: --stack webrtc-rs "), "{stderr}");
        assert!(out.stdout.is_empty(), "no token is issued");
    }
}

#[test]
fn webrtc_rs_dialer_refuses_a_malformed_token_with_exit_2() {
    let (code, _, stderr) = dial("webrtc-rs", "ow1.AQAB", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.starts_with("token: "), "{stderr}");
}
