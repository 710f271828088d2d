//! The reply fallback across processes (`spec/handshake.md` §11): `oneway dial` of a token
//! whose candidate is black-holed prints its reply code (`reply-code`); written to the standard
//! input of `oneway listen`, it makes the listener check towards the dialer (`reply-accepted`),
//! and both ends report `connected` with the route `reply`. Every native pair; and a line that
//! is not a valid code is refused with its cause while the listener keeps serving.

use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use oneway_core::PeerEvent;

mod support;

use support::{Killed, black_holed, oneway};

/// The events a child prints, read on a thread.
fn events(child: &mut Child) -> Receiver<PeerEvent> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(event) = PeerEvent::parse_line(&line)
                && tx.send(event).is_err()
            {
                return;
            }
        }
    });
    rx
}

/// The first event `pick` accepts within 20 s.
fn wait_for<T>(
    events: &Receiver<PeerEvent>,
    what: &str,
    pick: impl Fn(PeerEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(event) => {
                if let Some(found) = pick(event) {
                    return found;
                }
            }
            Err(e) => panic!("no {what} within 20 s: {e}"),
        }
    }
}

/// An echoing loopback listener of `stack` taking reply codes on its standard input.
fn listener(stack: &str) -> (Killed, ChildStdin, Receiver<PeerEvent>, String) {
    let mut child = oneway()
        .args([
            "listen",
            "--bind",
            "127.0.0.1:0",
            "--echo",
            "--json",
            "--stack",
            stack,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let stdin = child.stdin.take().expect("stdin");
    let events = events(&mut child);
    let token = wait_for(&events, "token", |e| match e {
        PeerEvent::Token { token, .. } => Some(token),
        _ => None,
    });
    (Killed(child), stdin, events, token)
}

fn reply_pair(listen: &str, dial: &str) {
    let (_listener, mut listener_in, listener_events, token) = listener(listen);
    let (token, _hole) = black_holed(&token);
    let mut dialer = oneway()
        .args([
            "dial",
            "--json",
            "--probe",
            "--timeout",
            "15s",
            "--stack",
            dial,
            &token,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dialer");
    let dialer_events = events(&mut dialer);
    let dialer = Killed(dialer);
    let code = wait_for(&dialer_events, "reply-code", |e| match e {
        PeerEvent::ReplyCode { reply, .. } => Some(reply),
        _ => None,
    });
    assert!(code.len() <= 80, "{code}");
    writeln!(listener_in, "{code}").expect("write the code");
    listener_in.flush().expect("flush");
    wait_for(&listener_events, "reply-accepted", |e| match e {
        PeerEvent::ReplyAccepted { .. } => Some(()),
        PeerEvent::ReplyRefused { code, reason, .. } => panic!("refused: {code}: {reason}"),
        _ => None,
    });
    let listener_route = wait_for(&listener_events, "connected", |e| match e {
        PeerEvent::Connected { route, .. } => Some(route),
        _ => None,
    });
    let dialer_route = wait_for(&dialer_events, "connected", |e| match e {
        PeerEvent::Connected { route, .. } => Some(route),
        _ => None,
    });
    wait_for(&dialer_events, "first-echo", |e| match e {
        PeerEvent::FirstEcho { .. } => Some(()),
        _ => None,
    });
    assert_eq!(
        listener_route.as_deref(),
        Some("reply"),
        "{listen} × {dial}"
    );
    assert_eq!(dialer_route.as_deref(), Some("reply"), "{listen} × {dial}");
    // A line that is not a valid code is refused by name; the listener keeps serving.
    writeln!(listener_in, "owr2.not!a!code").expect("write");
    listener_in.flush().expect("flush");
    let refused = wait_for(&listener_events, "reply-refused", |e| match e {
        PeerEvent::ReplyRefused { code, .. } => Some(code),
        _ => None,
    });
    assert_eq!(refused, "invalid-character");
    drop(dialer);
}

#[test]
fn str0m_listener_takes_a_str0m_dialers_code_on_stdin() {
    reply_pair("str0m", "str0m");
}

#[test]
fn str0m_listener_takes_a_webrtc_rs_dialers_code_on_stdin() {
    reply_pair("str0m", "webrtc-rs");
}

#[test]
fn webrtc_rs_listener_takes_a_str0m_dialers_code_on_stdin() {
    reply_pair("webrtc-rs", "str0m");
}

#[test]
fn webrtc_rs_listener_takes_a_webrtc_rs_dialers_code_on_stdin() {
    reply_pair("webrtc-rs", "webrtc-rs");
}
