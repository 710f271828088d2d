//! In-band media between two str0m engines after a one-way start (`spec/handshake.md` §6.2,
//! §10.5), sans-IO: a dialer engine and a listener engine wired back to back on a virtual
//! clock. str0m's SDP API takes over from the Direct API; either side adds an audio track by
//! an `offer` on channel 0 and the other receives its RTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_core::demux::{Routed, classify};
use oneway_core::signal::Message;
use oneway_endpoint::{
    ConnectionEvent, DialerEngineParams, Engine, ListenerEngineParams, Notice, Stack,
};
use oneway_str0m::Str0m;
use oneway_str0m::engine::Str0mEngine;
use oneway_token::{Candidate, Fingerprint, Profile, Secret, Token};
use str0m::media::{Direction, MediaKind};
use tokio::sync::{mpsc, oneshot};

const DIALER: &str = "10.0.0.2:40000";
const LISTENER: &str = "10.0.0.1:50000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Two authenticated engines and their events.
struct Pair {
    now: Instant,
    dialer: Str0mEngine,
    listener: Str0mEngine,
    dialer_rx: mpsc::UnboundedReceiver<ConnectionEvent>,
    listener_rx: mpsc::UnboundedReceiver<ConnectionEvent>,
    dialer_events: Vec<ConnectionEvent>,
    listener_events: Vec<ConnectionEvent>,
}

impl Pair {
    /// Connects a dialer and a listener (a fast start when `fast`) until both authenticated.
    fn connect(fast: bool) -> Pair {
        let start = Instant::now();
        let (listener_cert, listener_fp) = Str0m::generate_certificate().expect("certificate");
        let (announced, fast_state) = Str0m::listener_fast_path()
            .expect("fast path")
            .expect("str0m has one");
        let mut token = Token::new(
            Profile::Native,
            Fingerprint(listener_fp),
            Secret([7; 16]),
            vec![Candidate::udp_host(
                addr(LISTENER).ip(),
                addr(LISTENER).port(),
            )],
        );
        if fast {
            token.fast = Some(announced);
        }
        let keys = token.derive();
        let (dialer_events, dialer_rx) = mpsc::unbounded_channel();
        let mut dialer = Str0m::dialer_engine(DialerEngineParams {
            now: start,
            token: &token,
            remotes: &[(0, addr(LISTENER))],
            keys: &keys,
            auth_key: keys.auth_key,
            certificate: None,
            locals: &[addr(DIALER)],
            relayed: None,
            loopback: false,
            ice_check_interval: None,
            relayed_proof: None,
            fast_path: fast,
            events: dialer_events,
        })
        .expect("dialer engine");
        let (listener_events, listener_rx) = mpsc::unbounded_channel();
        let mut listener_events = Some(listener_events);
        let mut listener: Option<Str0mEngine> = None;
        let mut now = start;
        for _ in 0..5_000 {
            let (flight, dialer_next) = dialer.poll(now);
            dialer.take_notices();
            for t in flight {
                if listener.is_none() {
                    let Ok(Routed::NewDialer(new)) =
                        classify(&t.contents, (&keys).into(), |_| false)
                    else {
                        continue;
                    };
                    let events = listener_events.take().expect("one listener engine");
                    listener = Some(
                        Str0m::listener_engine(ListenerEngineParams {
                            now,
                            remote: t.source,
                            hosts: &[addr(LISTENER)],
                            certificate: &listener_cert,
                            fingerprint: listener_fp,
                            keys: &keys,
                            sctp: token.sctp_params(),
                            dialer: &new,
                            fast_path: fast.then_some(&fast_state),
                            consent_timeout: Duration::from_secs(30),
                            events,
                        })
                        .expect("listener engine"),
                    );
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
                    if matches!(notice, Notice::DialerProven) {
                        l.admit(now);
                    }
                }
                let (back_again, _) = l.poll(now);
                for t in back.into_iter().chain(back_again) {
                    dialer.handle_datagram(now, t.source, t.destination, &t.contents);
                }
            }
            if listener.as_ref().is_some_and(|l| l.is_authenticated()) && dialer.is_authenticated()
            {
                let listener = listener.take().expect("listener");
                let mut pair = Pair {
                    now,
                    dialer,
                    listener,
                    dialer_rx,
                    listener_rx,
                    dialer_events: Vec::new(),
                    listener_events: Vec::new(),
                };
                pair.run(Duration::from_millis(200));
                return pair;
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
        panic!("the pair did not authenticate");
    }

    /// Runs both engines for `duration` of virtual time, datagrams delivered at once.
    fn run(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..200_000 {
            let (to_listener, dialer_next) = self.dialer.poll(self.now);
            for t in to_listener {
                self.listener
                    .handle_datagram(self.now, t.source, t.destination, &t.contents);
            }
            let (to_dialer, listener_next) = self.listener.poll(self.now);
            let quiet = to_dialer.is_empty();
            for t in to_dialer {
                self.dialer
                    .handle_datagram(self.now, t.source, t.destination, &t.contents);
            }
            while let Ok(e) = self.dialer_rx.try_recv() {
                self.dialer_events.push(e);
            }
            while let Ok(e) = self.listener_rx.try_recv() {
                self.listener_events.push(e);
            }
            if !quiet {
                continue;
            }
            if self.now >= end {
                return;
            }
            let next = [dialer_next, listener_next]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end)
                .min(end);
            self.now = next.max(self.now + Duration::from_micros(100));
            self.dialer.handle_timeout(self.now);
            self.listener.handle_timeout(self.now);
        }
        panic!("the run did not settle");
    }

    fn side(&mut self, listener: bool) -> &mut Str0mEngine {
        if listener {
            &mut self.listener
        } else {
            &mut self.dialer
        }
    }

    /// The side (`listener` or the dialer) adds a track; returns its reply.
    fn add_track(
        &mut self,
        listener: bool,
        kind: MediaKind,
        direction: Direction,
    ) -> oneshot::Receiver<Result<String, String>> {
        let (reply, answer) = oneshot::channel();
        let now = self.now;
        self.side(listener).add_track(now, kind, direction, reply);
        answer
    }

    /// The side sends a channel-0 message as it is.
    fn send_raw(&mut self, from_listener: bool, message: &Message) {
        self.side(from_listener).send_raw_control(message);
    }
}

fn rtp_count(events: &[ConnectionEvent], track: &str) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ConnectionEvent::Rtp { track: t, .. } if t == track))
        .count()
}

fn errors(events: &[ConnectionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectionEvent::Closed { code, .. } => Some(code.to_string()),
            _ => None,
        })
        .collect()
}

fn sends_audio(from_listener: bool, fast: bool) {
    let mut pair = Pair::connect(fast);
    let mut reply = pair.add_track(from_listener, MediaKind::Audio, Direction::SendOnly);
    pair.run(Duration::from_secs(2));
    let mid = reply
        .try_recv()
        .expect("answered")
        .expect("the peer accepted the track");
    let (receiver_events, sender) = if from_listener {
        (&pair.dialer_events, &pair.listener)
    } else {
        (&pair.listener_events, &pair.dialer)
    };
    assert!(
        receiver_events
            .iter()
            .any(|e| matches!(e, ConnectionEvent::TrackOpen { track } if *track == mid)),
        "{receiver_events:?}"
    );
    let received = rtp_count(receiver_events, &mid);
    let sent = sender.sent_frames();
    eprintln!("track {mid}: received {received} RTP packets, sent {sent:?}");
    assert!(received >= 50, "received {received}, sent {sent:?}");
    assert!(errors(receiver_events).is_empty(), "{receiver_events:?}");
    assert!(!pair.dialer.is_closed() && !pair.listener.is_closed());
}

#[test]
fn the_listener_adds_audio_and_the_dialer_receives_it() {
    sends_audio(true, false);
}

#[test]
fn the_dialer_adds_audio_and_the_listener_receives_it() {
    sends_audio(false, false);
}

#[test]
fn audio_after_a_fast_start() {
    sends_audio(false, true);
}

fn peer_error_codes(engine: &Str0mEngine) -> Vec<String> {
    engine.peer_errors().map(|(c, _)| c.to_owned()).collect()
}

#[test]
fn an_unexpected_answer_is_refused_and_the_connection_carries_on() {
    let mut pair = Pair::connect(false);
    pair.send_raw(
        false,
        &Message::Answer {
            sdp: "v=0\r\n".to_owned(),
        },
    );
    pair.run(Duration::from_millis(200));
    assert_eq!(peer_error_codes(&pair.dialer), ["unexpected-answer"]);
    assert!(!pair.listener.is_closed() && !pair.dialer.is_closed());
}
