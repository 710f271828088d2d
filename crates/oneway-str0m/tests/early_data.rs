//! The fast start's early data, sans-IO (`spec/handshake.md` §5.5): a str0m dialer engine and a
//! str0m listener engine wired back to back on a virtual clock, with no sockets. The dialer's
//! proof, its `open` and its first message leave in one flight; the listener must deliver that
//! message to its connection only once the proof verified, and never with a wrong proof.

mod common;

use std::time::{Duration, Instant};

use common::Setup;
use oneway_endpoint::{Command, ConnectionEvent, Engine, Notice};
use oneway_str0m::engine::Str0mEngine;
use tokio::sync::{mpsc, oneshot};

/// What the listener side saw.
struct Outcome {
    /// Its connection's events, in order.
    events: Vec<String>,
    /// Notices, in order.
    notices: Vec<String>,
    /// Whether the dialer's early message was sent in the same flight as its proof.
    same_flight: bool,
}

fn describe(event: &ConnectionEvent) -> String {
    match event {
        ConnectionEvent::Data { data, .. } => format!("data {}", String::from_utf8_lossy(data)),
        ConnectionEvent::ChannelOpen { label, .. } => format!("open {label}"),
        ConnectionEvent::Closed { code, .. } => format!("closed {code}"),
        other => format!("{other:?}"),
    }
}

/// Runs a fast start between two engines; the dialer proves with `dialer_key` and sends one
/// early message; the listener admits the dialer if `admit` once it verified the proof.
fn run(dialer_key: Option<[u8; 32]>, admit: bool) -> Outcome {
    let start = Instant::now();
    let setup = Setup::new(true);
    let (dialer_events, _dialer_rx) = mpsc::unbounded_channel();
    let mut dialer = setup.dialer(start, dialer_key, None, dialer_events);
    let (listener_events, mut listener_rx) = mpsc::unbounded_channel();
    let mut listener: Option<Str0mEngine> = None;
    let mut notices = Vec::new();
    let mut replies: Vec<oneshot::Receiver<Result<oneway_endpoint::ChannelRef, String>>> =
        Vec::new();
    let mut same_flight = false;
    let mut now = start;
    for _ in 0..5_000 {
        let (to_listener, dialer_next) = dialer.poll(now);
        let mut flight = to_listener;
        for notice in dialer.take_notices() {
            if matches!(notice, Notice::EarlyDataReady) {
                // The application's first open and send, before anything reaches the listener.
                let (reply, answer) = oneshot::channel();
                dialer.handle_command(
                    now,
                    Command::Open {
                        label: "early".to_owned(),
                        reply,
                    },
                );
                replies.push(answer);
                let (more, _) = dialer.poll(now);
                same_flight = !more.is_empty() || !flight.is_empty();
                flight.extend(more);
            }
        }
        for answer in &mut replies {
            if let Ok(Ok(channel)) = answer.try_recv() {
                let (reply, _) = oneshot::channel();
                dialer.handle_command(
                    now,
                    Command::Send {
                        channel,
                        binary: false,
                        data: b"hello early".to_vec(),
                        reply,
                    },
                );
                let (more, _) = dialer.poll(now);
                flight.extend(more);
            }
        }
        for t in flight {
            if listener.is_none() {
                listener = setup.listener_for(now, &t, listener_events.clone());
            }
            if let Some(l) = listener.as_mut() {
                l.handle_datagram(now, t.source, t.destination, &t.contents);
            }
        }
        let mut listener_next = None;
        if let Some(l) = listener.as_mut() {
            let (back, next) = l.poll(now);
            listener_next = next;
            for notice in l.take_notices() {
                notices.push(format!("{notice:?}"));
                if matches!(notice, Notice::DialerProven) {
                    if admit {
                        l.admit(now);
                    } else {
                        l.reject(now, "token-used", "refused by the test".to_owned());
                    }
                }
            }
            let (back_again, _) = l.poll(now);
            for t in back.into_iter().chain(back_again) {
                dialer.handle_datagram(now, t.source, t.destination, &t.contents);
            }
            if l.is_closed() {
                break;
            }
        }
        if listener.as_ref().is_some_and(|l| l.is_authenticated()) && dialer.is_authenticated() {
            // Let the last datagrams settle.
            if notices.iter().any(|n| n == "Authenticated") {
                let (out, _) = dialer.poll(now);
                if let Some(l) = listener.as_mut() {
                    for t in out {
                        l.handle_datagram(now, t.source, t.destination, &t.contents);
                    }
                }
                break;
            }
        }
        let next = [dialer_next, listener_next]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(10));
        now = next.max(now + Duration::from_micros(100));
        dialer.handle_timeout(now);
        if let Some(l) = listener.as_mut() {
            l.handle_timeout(now);
        }
    }
    let mut events = Vec::new();
    while let Ok(event) = listener_rx.try_recv() {
        events.push(describe(&event));
    }
    Outcome {
        events,
        notices,
        same_flight,
    }
}

#[test]
fn early_data_waits_for_the_proof_and_is_delivered_after_it() {
    let outcome = run(None, true);
    assert!(outcome.same_flight, "the open left with the proof's flight");
    assert!(
        outcome.notices.iter().any(|n| n == "DialerProven"),
        "{:?}",
        outcome.notices
    );
    assert_eq!(
        outcome.events,
        vec!["open early".to_owned(), "data hello early".to_owned()],
        "the early message reached the listener's connection"
    );
}

#[test]
fn early_data_with_a_wrong_proof_never_reaches_the_listener_connection() {
    let outcome = run(Some([9; 32]), true);
    assert!(
        !outcome.notices.iter().any(|n| n == "DialerProven"),
        "{:?}",
        outcome.notices
    );
    assert_eq!(outcome.events, vec!["closed auth-failed".to_owned()]);
}

#[test]
fn a_refused_early_dialer_leaves_nothing_but_the_refusal() {
    let outcome = run(None, false);
    let last = outcome.events.last().cloned().unwrap_or_default();
    assert_eq!(last, "closed token-used", "{:?}", outcome.events);
}
