//! In-band media between two str0m engines after a one-way start (`spec/handshake.md` §6.2,
//! §10.5), sans-IO: a dialer engine and a listener engine wired back to back on a virtual
//! clock (the setup is `common`). str0m's SDP API takes over from the Direct API; either side
//! adds, changes or removes an audio or video track by an `offer` on channel 0, and the other
//! receives its RTP: the Opus tone decoded, the VP8 test pattern's frames and key frames
//! checked. Assertions are on counts of simulated time, never on wall-clock times.

mod common;

use std::time::{Duration, Instant};

use common::Setup;
use oneway_connection::{TrackDirection, TrackKind, TrackStats};
use oneway_core::signal::Message;
use oneway_endpoint::{Command, ConnectionEvent, Engine, Notice, Stack};
use oneway_str0m::Str0m;
use oneway_str0m::engine::Str0mEngine;
use oneway_str0m::media::TrackRequest;
use str0m::media::{Direction, MediaKind};
use tokio::sync::{mpsc, oneshot};

/// Two authenticated engines and their events.
struct Pair {
    now: Instant,
    dialer: Str0mEngine,
    listener: Str0mEngine,
    dialer_rx: mpsc::UnboundedReceiver<ConnectionEvent>,
    listener_rx: mpsc::UnboundedReceiver<ConnectionEvent>,
    dialer_events: Vec<ConnectionEvent>,
    listener_events: Vec<ConnectionEvent>,
    /// The dialer's certificate fingerprint and ICE credentials, for offers written by hand.
    dialer_fp: [u8; 32],
    dialer_ice: (String, String),
}

impl Pair {
    /// Connects a dialer and a listener (a fast start when `fast`) until both authenticated.
    fn connect(fast: bool) -> Pair {
        let start = Instant::now();
        let setup = Setup::new(fast);
        let (dialer_cert, dialer_fp) = Str0m::generate_certificate().expect("certificate");
        let (dialer_events, dialer_rx) = mpsc::unbounded_channel();
        let mut dialer = setup.dialer(start, None, Some(dialer_cert), dialer_events);
        let (listener_events, listener_rx) = mpsc::unbounded_channel();
        let mut listener: Option<Str0mEngine> = None;
        let mut now = start;
        for _ in 0..5_000 {
            let (flight, dialer_next) = dialer.poll(now);
            dialer.take_notices();
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
                let dialer_ice = dialer.handshake().local_ice.clone().expect("dialer ICE");
                let mut pair = Pair {
                    now,
                    dialer,
                    listener,
                    dialer_rx,
                    listener_rx,
                    dialer_events: Vec::new(),
                    listener_events: Vec::new(),
                    dialer_fp,
                    dialer_ice,
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
        let request = TrackRequest { kind, direction };
        self.side(listener).add_track(now, request, None, reply);
        answer
    }

    /// The side sends a channel-0 message as it is.
    fn send_raw(&mut self, from_listener: bool, message: &Message) {
        self.side(from_listener).send_raw_control(message);
    }

    /// The side's application adds a track (`Command::AddTrack`: the Opus tone or the VP8
    /// test pattern); returns its reply.
    fn add_app_track(
        &mut self,
        listener: bool,
        request: oneway_connection::TrackRequest,
    ) -> oneshot::Receiver<Result<String, String>> {
        let (reply, answer) = oneshot::channel();
        let now = self.now;
        self.side(listener)
            .handle_command(now, Command::AddTrack { request, reply });
        answer
    }

    /// The side's application changes the direction of its track `mid`.
    fn app_direction(&mut self, listener: bool, mid: &str, direction: TrackDirection) {
        let (reply, mut answer) = oneshot::channel();
        let now = self.now;
        let command = Command::SetTrackDirection {
            track: mid.to_owned(),
            direction,
            reply,
        };
        self.side(listener).handle_command(now, command);
        self.run(Duration::from_millis(300));
        answer.try_recv().expect("answered").expect("accepted");
    }

    /// What the side received so far on the peer's track `mid` (zero if nothing yet).
    fn received(&self, listener: bool, mid: &str) -> TrackStats {
        let engine = if listener {
            &self.listener
        } else {
            &self.dialer
        };
        engine
            .received_stats()
            .into_iter()
            .find(|s| s.track == mid)
            .unwrap_or(TrackStats {
                track: mid.to_owned(),
                kind: TrackKind::Audio,
                packets: 0,
                decode_errors: 0,
                frequency_hz: None,
                frames: 0,
                keyframes: 0,
                resolution: None,
            })
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

/// An offer from the dialer as a browser would write it: the running ICE credentials and
/// certificate, `actpass`, the application line first with mid 0, then one audio line.
fn browser_offer(pair: &Pair, ufrag: &str, fingerprint: &[u8; 32], codec: &str) -> String {
    let hex: Vec<String> = fingerprint.iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE data 1\r\na=msid-semantic: WMS\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:data\r\na=sctp-port:5000\r\n\
         a=max-message-size:262144\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:1\r\n\
         a=msid:- 3a2b7c1e-0000-4000-8000-000000000001\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 {codec}/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:0 {pcmu}/8000\r\na=ssrc:1001 cname:browser\r\n",
        pwd = pair.dialer_ice.1,
        fp = hex.join(":"),
        pcmu = if codec == "opus" { "PCMU" } else { "speex" },
    )
}

/// The dialer sends `sdp` as an offer by hand; returns the listener's events since.
fn offer_by_hand(pair: &mut Pair, sdp: String) -> Vec<ConnectionEvent> {
    let before = pair.listener_events.len();
    pair.send_raw(false, &Message::Offer { sdp });
    pair.run(Duration::from_millis(300));
    pair.listener_events[before..].to_vec()
}

#[test]
fn a_browser_style_offer_is_answered_by_the_listener() {
    let mut pair = Pair::connect(false);
    let (ufrag, fp) = (pair.dialer_ice.0.clone(), pair.dialer_fp);
    let sdp = browser_offer(&pair, &ufrag, &fp, "opus");
    let events = offer_by_hand(&mut pair, sdp);
    assert!(
        events.contains(&ConnectionEvent::Renegotiated),
        "{events:?}"
    );
    assert!(
        events.contains(&ConnectionEvent::TrackOpen {
            track: "1".to_owned()
        }),
        "{events:?}"
    );
    // The dialer never asked: it refuses the answer it got, and nothing closes.
    assert_eq!(peer_error_codes(&pair.listener), ["unexpected-answer"]);
    assert!(!pair.listener.is_closed() && !pair.dialer.is_closed());
}

/// An offer the listener must refuse with `renegotiation-failed`, after which a regular
/// track still works.
fn refused_then_carries_on(sdp: impl FnOnce(&Pair) -> String) {
    let mut pair = Pair::connect(false);
    let sdp = sdp(&pair);
    let events = offer_by_hand(&mut pair, sdp);
    assert!(
        !events.contains(&ConnectionEvent::Renegotiated),
        "{events:?}"
    );
    assert_eq!(peer_error_codes(&pair.dialer), ["renegotiation-failed"]);
    let mut reply = pair.add_track(false, MediaKind::Audio, Direction::SendOnly);
    pair.run(Duration::from_secs(2));
    let mid = reply.try_recv().expect("answered").expect("accepted");
    assert!(rtp_count(&pair.listener_events, &mid) >= 50);
}

#[test]
fn an_offer_with_other_ice_credentials_is_refused() {
    refused_then_carries_on(|pair| browser_offer(pair, "someoneelse", &pair.dialer_fp, "opus"));
}

#[test]
fn an_offer_with_another_fingerprint_is_refused() {
    refused_then_carries_on(|pair| browser_offer(pair, &pair.dialer_ice.0, &[0xAA; 32], "opus"));
}

#[test]
fn an_offer_with_only_unknown_codecs_is_refused() {
    refused_then_carries_on(|pair| {
        browser_offer(pair, &pair.dialer_ice.0, &pair.dialer_fp, "lyra")
    });
}

#[test]
fn malformed_sdp_is_refused() {
    refused_then_carries_on(|_| "v=0\r\nm=audio nonsense\r\n".to_owned());
}

#[test]
fn an_offer_flood_is_cut_off() {
    let mut pair = Pair::connect(false);
    for _ in 0..12 {
        pair.send_raw(
            false,
            &Message::Offer {
                sdp: "v=0\r\n".to_owned(),
            },
        );
    }
    pair.run(Duration::from_millis(300));
    let codes = peer_error_codes(&pair.dialer);
    assert_eq!(
        codes.iter().filter(|c| *c == "too-many-offers").count(),
        12 - oneway_str0m::media::OFFER_LIMIT,
        "{codes:?}"
    );
    assert!(!pair.listener.is_closed() && !pair.dialer.is_closed());
}

#[test]
fn glare_the_dialer_yields_and_both_tracks_arrive() {
    let mut pair = Pair::connect(false);
    let mut from_dialer = pair.add_track(false, MediaKind::Audio, Direction::SendOnly);
    let mut from_listener = pair.add_track(true, MediaKind::Audio, Direction::SendOnly);
    pair.run(Duration::from_secs(2));
    let d = from_dialer.try_recv().expect("answered").expect("accepted");
    let l = from_listener
        .try_recv()
        .expect("answered")
        .expect("accepted");
    assert!(rtp_count(&pair.listener_events, &d) >= 50, "dialer's track");
    assert!(rtp_count(&pair.dialer_events, &l) >= 50, "listener's track");
    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
}

/// Runs `change` on the dialer's engine with a fresh reply, then 300 ms; the reply must be Ok.
fn dialer_change(pair: &mut Pair, change: impl FnOnce(&mut Str0mEngine, Instant, TrackReplyTx)) {
    let (reply, mut answer) = oneshot::channel();
    let now = pair.now;
    change(&mut pair.dialer, now, reply);
    pair.run(Duration::from_millis(300));
    answer.try_recv().expect("answered").expect("accepted");
}

type TrackReplyTx = oneshot::Sender<Result<String, String>>;

#[test]
fn a_track_pauses_and_resumes_with_its_direction_and_ends_when_removed() {
    let mut pair = Pair::connect(false);
    let mut reply = pair.add_track(false, MediaKind::Audio, Direction::SendOnly);
    pair.run(Duration::from_secs(1));
    let mid = reply.try_recv().expect("answered").expect("accepted");
    assert!(rtp_count(&pair.listener_events, &mid) >= 40);

    dialer_change(&mut pair, |d, now, r| {
        d.set_track_direction(now, &mid, Direction::Inactive, r)
    });
    let paused = rtp_count(&pair.listener_events, &mid);
    pair.run(Duration::from_secs(1));
    assert_eq!(rtp_count(&pair.listener_events, &mid), paused, "inactive");

    dialer_change(&mut pair, |d, now, r| {
        d.set_track_direction(now, &mid, Direction::SendOnly, r)
    });
    pair.run(Duration::from_secs(1));
    let resumed = rtp_count(&pair.listener_events, &mid);
    assert!(resumed >= paused + 40, "resumed: {paused} then {resumed}");

    dialer_change(&mut pair, |d, now, r| d.remove_track(now, &mid, r));
    let removed = rtp_count(&pair.listener_events, &mid);
    pair.run(Duration::from_secs(1));
    assert_eq!(rtp_count(&pair.listener_events, &mid), removed, "removed");

    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
    assert!(!pair.listener.is_closed() && !pair.dialer.is_closed());
}

#[test]
fn media_negotiates_after_an_ice_restart() {
    // Offers must carry the credentials in force: the restart's, not the first ones.
    let mut pair = Pair::connect(false);
    let (reply, mut restarted) = oneshot::channel();
    let now = pair.now;
    pair.dialer
        .handle_command(now, oneway_endpoint::Command::IceRestart { reply });
    pair.run(Duration::from_secs(1));
    restarted.try_recv().expect("answered").expect("restarted");
    for from_listener in [true, false] {
        let mut reply = pair.add_track(from_listener, MediaKind::Audio, Direction::SendOnly);
        pair.run(Duration::from_secs(2));
        let mid = reply.try_recv().expect("answered").expect("accepted");
        let receiver = if from_listener {
            &pair.dialer_events
        } else {
            &pair.listener_events
        };
        assert!(
            rtp_count(receiver, &mid) >= 50,
            "from listener: {from_listener}"
        );
    }
    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
}

#[test]
fn an_offer_giving_two_tracks_one_ssrc_is_refused() {
    refused_then_carries_on(|pair| {
        let offer = browser_offer(pair, &pair.dialer_ice.0, &pair.dialer_fp, "opus");
        let second = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n\
                      a=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
                      a=ssrc:1001 cname:browser\r\n";
        offer.replace("a=group:BUNDLE data 1", "a=group:BUNDLE data 1 2") + second
    });
}

/// One line of a track's figures, for the test log.
fn figures(side: &str, s: &TrackStats) -> String {
    format!(
        "{side} received track {}: {:?} {} packets, {} frames, {} key frames, {:?}, {} errors, {:?} Hz",
        s.track,
        s.kind,
        s.packets,
        s.frames,
        s.keyframes,
        s.resolution,
        s.decode_errors,
        s.frequency_hz
    )
}

/// The VP8 test pattern arrived whole on a track: at least `frames` frames in more packets,
/// a key frame, 320x240, nothing malformed.
fn assert_video(s: &TrackStats, frames: u64) {
    assert_eq!(s.kind, TrackKind::Video, "{s:?}");
    assert!(s.frames >= frames, "{s:?}");
    assert!(s.packets >= s.frames, "{s:?}");
    assert!(s.keyframes >= 1, "{s:?}");
    assert_eq!(s.resolution, Some((320, 240)), "{s:?}");
    assert_eq!(s.decode_errors, 0, "{s:?}");
}

/// One side adds a send-and-receive video track; both sides send the VP8 test pattern on it
/// (the answerer because the offer wants to receive) and both receive and check it.
fn video_both_ways(from_listener: bool) {
    let mut pair = Pair::connect(false);
    let mut reply = pair.add_app_track(from_listener, oneway_connection::TrackRequest::video());
    pair.run(Duration::from_secs(2));
    let mid = reply.try_recv().expect("answered").expect("accepted");
    let at_peer = pair.received(!from_listener, &mid);
    let at_adder = pair.received(from_listener, &mid);
    eprintln!("{}", figures("the peer", &at_peer));
    eprintln!("{}", figures("the adder", &at_adder));
    assert_video(&at_peer, 30);
    assert_video(&at_adder, 30);
    let (adder_events, peer_events) = if from_listener {
        (&pair.listener_events, &pair.dialer_events)
    } else {
        (&pair.dialer_events, &pair.listener_events)
    };
    for events in [adder_events, peer_events] {
        assert!(
            events.contains(&ConnectionEvent::TrackAdded {
                track: mid.clone(),
                kind: TrackKind::Video
            }),
            "{events:?}"
        );
        let reported = events.iter().rev().find_map(|e| match e {
            ConnectionEvent::MediaStats(s) if s.track == mid => Some(s.clone()),
            _ => None,
        });
        let reported = reported.expect("a MediaStats event for the video track");
        assert_video(&reported, 20);
    }
    assert!(peer_events.contains(&ConnectionEvent::TrackOpen { track: mid.clone() }));
    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
    assert!(!pair.dialer.is_closed() && !pair.listener.is_closed());
}

#[test]
fn the_dialer_adds_video_and_both_send_and_receive_it() {
    video_both_ways(false);
}

#[test]
fn the_listener_adds_video_and_both_send_and_receive_it() {
    video_both_ways(true);
}

/// The dialer's audio call (send only), then its send-and-receive video.
fn audio_then_video() -> (Pair, String, String) {
    let mut pair = Pair::connect(false);
    let tone =
        oneway_connection::TrackRequest::tone(440.0).with_direction(TrackDirection::SendOnly);
    let mut audio = pair.add_app_track(false, tone);
    pair.run(Duration::from_millis(500));
    let audio = audio.try_recv().expect("answered").expect("accepted");
    let mut video = pair.add_app_track(false, oneway_connection::TrackRequest::video());
    pair.run(Duration::from_secs(2));
    let video = video.try_recv().expect("answered").expect("accepted");
    (pair, audio, video)
}

#[test]
fn a_second_renegotiation_adds_video_to_a_running_audio_call() {
    let (mut pair, audio, video) = audio_then_video();
    let tone = pair.received(true, &audio);
    eprintln!("{}", figures("the listener", &tone));
    assert!(tone.packets >= 100, "{tone:?}");
    assert_eq!(
        tone.frequency_hz.map(|f| f.abs_diff(440) <= 5),
        Some(true),
        "{tone:?}"
    );
    let (at_listener, at_dialer) = (pair.received(true, &video), pair.received(false, &video));
    eprintln!("{}", figures("the listener", &at_listener));
    eprintln!("{}", figures("the dialer", &at_dialer));
    assert_video(&at_listener, 30);
    assert_video(&at_dialer, 30);
    // Both go on.
    pair.run(Duration::from_secs(1));
    assert!(pair.received(true, &audio).packets >= tone.packets + 45);
    assert!(pair.received(true, &video).frames >= at_listener.frames + 18);
    assert!(pair.received(false, &video).frames >= at_dialer.frames + 18);
}

#[test]
fn removing_the_video_track_stops_its_media_and_audio_goes_on() {
    let (mut pair, audio, video) = audio_then_video();
    let (reply, mut removed) = oneshot::channel();
    let now = pair.now;
    pair.dialer.handle_command(
        now,
        Command::RemoveTrack {
            track: video.clone(),
            reply,
        },
    );
    pair.run(Duration::from_millis(300));
    removed.try_recv().expect("answered").expect("removed");
    let (at_listener, at_dialer) = (pair.received(true, &video), pair.received(false, &video));
    let tone = pair.received(true, &audio);
    pair.run(Duration::from_secs(1));
    let (after_listener, after_dialer) =
        (pair.received(true, &video), pair.received(false, &video));
    eprintln!(
        "video at the listener: {} packets when removed, {} a second later; at the dialer: {} then {}",
        at_listener.packets, after_listener.packets, at_dialer.packets, after_dialer.packets
    );
    assert!(at_listener.frames >= 30 && at_dialer.frames >= 30);
    assert_eq!(
        after_listener.packets, at_listener.packets,
        "the dialer's video stopped"
    );
    assert_eq!(
        after_dialer.packets, at_dialer.packets,
        "the listener's video stopped"
    );
    let tone_after = pair.received(true, &audio);
    eprintln!(
        "audio at the listener: {} then {} packets",
        tone.packets, tone_after.packets
    );
    assert!(tone_after.packets >= tone.packets + 45, "audio goes on");
    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
}

#[test]
fn a_video_track_stops_sending_when_receive_only_and_resumes() {
    let mut pair = Pair::connect(false);
    let mut reply = pair.add_app_track(false, oneway_connection::TrackRequest::video());
    pair.run(Duration::from_secs(1));
    let mid = reply.try_recv().expect("answered").expect("accepted");
    assert_video(&pair.received(true, &mid), 15);

    pair.app_direction(false, &mid, TrackDirection::RecvOnly);
    let (stopped, incoming) = (pair.received(true, &mid), pair.received(false, &mid));
    pair.run(Duration::from_secs(1));
    let (still, incoming_after) = (pair.received(true, &mid), pair.received(false, &mid));
    eprintln!(
        "receive-only: the listener got {} then {} frames; the dialer {} then {}",
        stopped.frames, still.frames, incoming.frames, incoming_after.frames
    );
    assert_eq!(still.frames, stopped.frames, "the dialer's sender stopped");
    assert!(
        incoming_after.frames >= incoming.frames + 18,
        "the listener's video goes on"
    );

    pair.app_direction(false, &mid, TrackDirection::SendRecv);
    pair.run(Duration::from_secs(1));
    let resumed = pair.received(true, &mid);
    eprintln!(
        "send-receive again: the listener got {} frames",
        resumed.frames
    );
    assert!(
        resumed.frames >= still.frames + 18,
        "resumed: {still:?} then {resumed:?}"
    );
    assert_eq!(resumed.decode_errors, 0);
    assert!(peer_error_codes(&pair.dialer).is_empty());
    assert!(peer_error_codes(&pair.listener).is_empty());
}

#[test]
fn a_video_frame_in_several_rtp_packets_is_counted_by_its_packets() {
    // A 640x480 key frame does not fit in one packet: str0m splits it, the receiver counts
    // the packets from the frame's sequence numbers.
    let mut pair = Pair::connect(false);
    let source = oneway_str0m::media::PatternVideo::with_size(640, 480).expect("VP8 encoder");
    let (reply, mut answer) = oneshot::channel();
    let now = pair.now;
    let request = TrackRequest {
        kind: MediaKind::Video,
        direction: Direction::SendOnly,
    };
    pair.dialer
        .add_track(now, request, Some(Box::new(source)), reply);
    pair.run(Duration::from_secs(1));
    let mid = answer.try_recv().expect("answered").expect("accepted");
    let stats = pair.received(true, &mid);
    eprintln!("{}", figures("the listener", &stats));
    assert!(stats.frames >= 15, "{stats:?}");
    assert!(stats.packets > stats.frames, "{stats:?}");
    assert_eq!(stats.resolution, Some((640, 480)));
    assert_eq!(stats.decode_errors, 0);
    assert!(
        pair.received(false, &mid).packets == 0,
        "the listener only receives"
    );
}
