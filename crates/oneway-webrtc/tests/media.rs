//! In-band media between two webrtc-rs peers on loopback (`spec/handshake.md` §6.2, §10.5):
//! the dialer adds an audio track and sends an Opus tone, the listener decodes it; the listener
//! adds a track the other way; VP8 video both ways and added to an audio call; a track removed
//! and its direction changed; refused offers and answers get named errors and the connection
//! carries on. Every wait is bounded.

use std::time::Duration;

use oneway_connection::{
    ConnectionEvent, StackError, TrackDirection, TrackKind, TrackRequest, TrackStats,
};
use oneway_core::renegotiation::OFFER_LIMIT;
use oneway_core::signal::Message;
use oneway_endpoint::{DialerEngineParams, ListenerEngineParams, Stack};
use oneway_testkit::media::MediaPeer;
use oneway_webrtc::engine::{OWN_FINGERPRINT, OWN_PWD, OWN_UFRAG, RtcEngine};
use oneway_webrtc::{ListenerConfig, WebrtcRs};
use tokio::time::{Instant, timeout};

/// The waits these tests make on the shared driver ([`MediaPeer`]: echoes, records track
/// statistics, carries out track changes); each panics when its bound passes.
trait Waits {
    /// Sends `data` on an application channel and waits for its echo; bounded.
    async fn echo(&mut self, data: &[u8]);
    /// The first event `pick` accepts within `limit`.
    async fn next<T>(
        &mut self,
        limit: Duration,
        pick: impl FnMut(&ConnectionEvent) -> Option<T>,
    ) -> T;
    /// Statistics of a remote track with at least `packets` packets and a measured frequency
    /// within 5 Hz of `hz`; bounded.
    async fn tone(&mut self, hz: u32, packets: u64) -> TrackStats;
    /// Statistics of a remote video track with at least `frames` frames; bounded.
    async fn video(&mut self, frames: u64) -> TrackStats;
    /// The packets of remote track `track` so far, once its count has stopped growing: every
    /// statistics report (one a second while packets arrive) in `settle` is read, then none
    /// may come with more packets in the `quiet` that follows. A track whose media still
    /// flows reports every second, so this fails rather than passes.
    async fn stopped(
        &mut self,
        track: &str,
        packets: u64,
        settle: Duration,
        quiet: Duration,
    ) -> u64;
}

impl Waits for MediaPeer {
    async fn echo(&mut self, data: &[u8]) {
        self.ping(data).await.expect("echoed");
    }

    async fn next<T>(
        &mut self,
        limit: Duration,
        pick: impl FnMut(&ConnectionEvent) -> Option<T>,
    ) -> T {
        self.next_matching(limit, pick)
            .await
            .expect("connection open")
            .expect("event within the limit")
    }

    async fn tone(&mut self, hz: u32, packets: u64) -> TrackStats {
        self.next(Duration::from_secs(15), |e| match e {
            ConnectionEvent::MediaStats(s)
                if s.packets >= packets && s.frequency_hz.is_some_and(|f| f.abs_diff(hz) <= 5) =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .await
    }

    async fn video(&mut self, frames: u64) -> TrackStats {
        self.next(Duration::from_secs(20), |e| match e {
            ConnectionEvent::MediaStats(s) if s.kind == TrackKind::Video && s.frames >= frames => {
                Some(s.clone())
            }
            _ => None,
        })
        .await
    }

    async fn stopped(
        &mut self,
        track: &str,
        mut packets: u64,
        settle: Duration,
        quiet: Duration,
    ) -> u64 {
        for (window, must_be_quiet) in [(settle, false), (quiet, true)] {
            let until = Instant::now() + window;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                let report = self
                    .next_matching(left, |e| match e {
                        ConnectionEvent::MediaStats(s) if s.track == track => Some(s.packets),
                        _ => None,
                    })
                    .await
                    .expect("connection open");
                let Some(reported) = report else { break };
                assert!(
                    !must_be_quiet || reported <= packets,
                    "track {track} still receives: {reported} packets after {packets}"
                );
                packets = packets.max(reported);
            }
        }
        packets
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Connects a `D` dialer to a webrtc-rs listener; returns (dialer, listener) driven, the
/// listener echoing.
async fn connect<D: Stack>() -> (MediaPeer, MediaPeer) {
    init_tracing();
    let mut listener = oneway_webrtc::Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let token = listener.token().clone();
    let dialer = tokio::spawn(async move {
        oneway_endpoint::dial::<D>(&token, &oneway_endpoint::DialConfig::default()).await
    });
    let accepted = timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted within 10 s")
        .expect("listener running");
    let dialed = dialer.await.expect("task").expect("dial");
    // The listener's connections end with it: keep it alive for the test.
    std::mem::forget(listener);
    (
        MediaPeer::drive(dialed, false),
        MediaPeer::drive(accepted, true),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_both_ways_between_webrtc_rs_peers() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    dialer.echo(b"before media").await;

    // The dialer offers a send-and-receive audio track with a 440 Hz tone; the listener answers
    // sendrecv and sends its own answer tone (440 Hz) back.
    let track = dialer
        .add(TrackRequest::tone(440.0))
        .await
        .expect("track added");
    assert!(!track.is_empty());
    let added = listener
        .next(Duration::from_secs(10), |e| match e {
            ConnectionEvent::TrackAdded { track, kind } => Some((track.clone(), *kind)),
            _ => None,
        })
        .await;
    assert_eq!(added.1, TrackKind::Audio);
    let heard = listener.tone(440, 50).await;
    eprintln!("listener received {heard:?}");
    assert_eq!(heard.decode_errors, 0);
    let back = dialer.tone(440, 50).await;
    eprintln!("dialer received the answer tone {back:?}");

    // The other way: the listener offers a send-only 1000 Hz track.
    listener
        .add(TrackRequest {
            kind: TrackKind::Audio,
            direction: TrackDirection::SendOnly,
            tone_hz: 1000.0,
        })
        .await
        .expect("listener's track added");
    let heard = dialer.tone(1000, 50).await;
    eprintln!("dialer received {heard:?}");
    assert_ne!(heard.track, back.track, "a second remote track");

    dialer.echo(b"after media").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_after_media_keeps_media_and_data() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    dialer
        .add(TrackRequest::tone(440.0))
        .await
        .expect("track added");
    listener.tone(440, 50).await;
    dialer.ice_restart().await.expect("restart by the dialer");
    dialer.echo(b"after the dialer's restart").await;
    listener
        .ice_restart()
        .await
        .expect("restart by the listener");
    dialer.echo(b"after the listener's restart").await;
    let heard = listener.tone(440, 150).await;
    eprintln!("listener received {heard:?} across two restarts");
    // Offers after the restarts carry the new credentials in force, and are answered.
    listener
        .add(TrackRequest::tone(1000.0).with_direction(TrackDirection::SendOnly))
        .await
        .expect("the listener's track after the restarts");
    dialer
        .add(TrackRequest::video().with_direction(TrackDirection::SendOnly))
        .await
        .expect("the dialer's video after the restarts");
    let heard = dialer.tone(1000, 50).await;
    eprintln!("dialer received {heard:?} after two restarts");
    listener.video(20).await;
}

/// The webrtc-rs stack whose dialer sends crafted channel-0 messages once authenticated: the
/// refusals of `spec/handshake.md` §6.2 one each, or (`FLOOD`) one offer more than the limit.
#[derive(Clone, Copy, Debug, Default)]
struct Crafted<const FLOOD: bool>;

/// A crafted offer: the session part with the given credentials and fingerprint (the dialer's
/// own ones are put in by the engine, `DangerousEngine::after_auth`), then `media`.
fn crafted_offer(ufrag: &str, fingerprint: &str, media: &str) -> String {
    format!(
        "v=0\r\no=- 4 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:{OWN_PWD}\r\na=fingerprint:sha-256 {fingerprint}\r\n\
         a=setup:actpass\r\na=sctp-port:5000\r\n{media}"
    )
}

/// An audio section with `codec` and, if any, an `a=ssrc` line.
fn audio_section(mid: u8, codec: &str, ssrc: Option<u32>) -> String {
    let mut section = format!(
        "m=audio 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=sendrecv\r\n\
         a=rtcp-mux\r\na=rtpmap:98 {codec}/48000/2\r\n"
    );
    if let Some(ssrc) = ssrc {
        section.push_str(&format!("a=ssrc:{ssrc} cname:oneway\r\n"));
    }
    section
}

/// Media sections with a known codec, but no origin, session name or timing: malformed.
const MALFORMED_OFFER: &str =
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n";

/// What the crafted dialer sends, with the code and a word of the reason each gets.
fn crafted_messages() -> Vec<(String, &'static str, &'static str)> {
    let offer = |sdp: String| Message::Offer { sdp }.encode();
    let opus = audio_section(1, "opus", None);
    let unknown = audio_section(1, "x-oneway-unknown", None);
    let colliding = audio_section(1, "opus", Some(4242)) + &audio_section(2, "opus", Some(4242));
    vec![
        (
            offer(crafted_offer(OWN_UFRAG, OWN_FINGERPRINT, &unknown)),
            "renegotiation-failed",
            "codec",
        ),
        (
            offer("this is not SDP".to_owned()),
            "renegotiation-failed",
            "malformed",
        ),
        (
            offer(MALFORMED_OFFER.to_owned()),
            "renegotiation-failed",
            "malformed",
        ),
        (
            Message::Answer {
                sdp: crafted_offer(OWN_UFRAG, OWN_FINGERPRINT, &opus),
            }
            .encode(),
            "unexpected-answer",
            "answer",
        ),
        (
            offer(crafted_offer("changedufrag", OWN_FINGERPRINT, &opus)),
            "renegotiation-failed",
            "ICE credentials",
        ),
        (
            offer(crafted_offer(OWN_UFRAG, &["AB"; 32].join(":"), &opus)),
            "renegotiation-failed",
            "fingerprint",
        ),
        (
            offer(crafted_offer(OWN_UFRAG, OWN_FINGERPRINT, &colliding)),
            "renegotiation-failed",
            "SSRC 4242",
        ),
    ]
}

impl<const FLOOD: bool> Stack for Crafted<FLOOD> {
    const NAME: &'static str = "webrtc-rs (crafted channel-0 messages)";
    const RELAY_BEFORE_START: bool = <WebrtcRs as Stack>::RELAY_BEFORE_START;
    type Certificate = <WebrtcRs as Stack>::Certificate;
    type Engine = RtcEngine;
    type FastPath = <WebrtcRs as Stack>::FastPath;

    fn generate_certificate() -> Result<(Self::Certificate, [u8; 32]), StackError> {
        WebrtcRs::generate_certificate()
    }

    fn certificate_from_der(der: &[u8], pkcs8: &[u8]) -> Result<Self::Certificate, StackError> {
        WebrtcRs::certificate_from_der(der, pkcs8)
    }

    fn fingerprint(certificate: &Self::Certificate) -> Result<[u8; 32], StackError> {
        WebrtcRs::fingerprint(certificate)
    }

    fn listener_engine(
        params: ListenerEngineParams<'_, Self::Certificate, Self::FastPath>,
    ) -> Result<RtcEngine, StackError> {
        WebrtcRs::listener_engine(params)
    }

    fn dialer_engine(
        params: DialerEngineParams<'_, Self::Certificate>,
    ) -> Result<RtcEngine, StackError> {
        let mut engine = WebrtcRs::dialer_engine(params)?;
        engine.dangerous_mut().after_auth = if FLOOD {
            (0..=OFFER_LIMIT)
                .map(|_| {
                    Message::Offer {
                        sdp: "this is not SDP".to_owned(),
                    }
                    .encode()
                })
                .collect()
        } else {
            crafted_messages().into_iter().map(|(m, _, _)| m).collect()
        };
        Ok(engine)
    }
}

/// The next `n` channel-0 errors the peer sent the dialer; an answered offer fails the test.
async fn peer_errors(dialer: &mut MediaPeer, n: usize) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for _ in 0..n {
        errors.push(
            dialer
                .next(Duration::from_secs(10), |e| match e {
                    ConnectionEvent::PeerError { code, reason } => {
                        Some((code.clone(), reason.clone()))
                    }
                    ConnectionEvent::Renegotiated => panic!("a refused offer was answered"),
                    _ => None,
                })
                .await,
        );
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_offers_and_answers_get_named_errors_and_the_connection_carries_on() {
    let (mut dialer, _listener) = connect::<Crafted<false>>().await;
    let expected = crafted_messages();
    let errors = peer_errors(&mut dialer, expected.len()).await;
    for ((code, reason), (_, want_code, want_word)) in errors.iter().zip(&expected) {
        eprintln!("{code}: {reason}");
        assert_eq!(code, want_code, "{reason}");
        assert!(
            reason.to_lowercase().contains(&want_word.to_lowercase()),
            "{reason} should name {want_word}"
        );
    }
    dialer.echo(b"still echoing").await;
    // And media still negotiates afterwards.
    dialer
        .add(TrackRequest::tone(440.0))
        .await
        .expect("track added after the refusals");
    dialer.tone(440, 50).await;
    dialer.echo(b"still echoing with media").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_flood_gets_too_many_offers_and_the_connection_carries_on() {
    let (mut dialer, _listener) = connect::<Crafted<true>>().await;
    let codes: Vec<String> = peer_errors(&mut dialer, OFFER_LIMIT + 1)
        .await
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    eprintln!("{codes:?}");
    assert!(
        codes[..OFFER_LIMIT]
            .iter()
            .all(|c| c == "renegotiation-failed")
    );
    assert_eq!(codes[OFFER_LIMIT], "too-many-offers");
    dialer.echo(b"still echoing after the flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_both_ways_between_webrtc_rs_peers() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    // The dialer offers a send-and-receive video track; the listener answers with the pattern.
    dialer
        .add(TrackRequest::video())
        .await
        .expect("video track added");
    for (side, peer) in [("listener", &mut listener), ("dialer", &mut dialer)] {
        let seen = peer.video(20).await;
        eprintln!("{side} received {seen:?}");
        assert!(seen.packets >= seen.frames, "{seen:?}");
        assert!(seen.keyframes >= 1, "{seen:?}");
        assert_eq!(seen.resolution, Some((320, 240)));
        assert_eq!(seen.decode_errors, 0);
    }
    // The listener asks to receive a second video track: the dialer answers with the pattern.
    let first = listener.video(20).await.track;
    listener
        .add(TrackRequest::video().with_direction(TrackDirection::RecvOnly))
        .await
        .expect("receive-only video added");
    let second = listener
        .next(Duration::from_secs(20), |e| match e {
            ConnectionEvent::MediaStats(s) if s.track != first && s.frames >= 20 => Some(s.clone()),
            _ => None,
        })
        .await;
    eprintln!("listener received a second track {second:?}");
    assert_eq!(second.resolution, Some((320, 240)));
    dialer.echo(b"after video").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_is_added_to_an_audio_call() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    dialer
        .add(TrackRequest::tone(440.0).with_direction(TrackDirection::SendOnly))
        .await
        .expect("audio added");
    let audio = listener.tone(440, 50).await;
    // A second renegotiation, from the other side: send-only video.
    listener
        .add(TrackRequest::video().with_direction(TrackDirection::SendOnly))
        .await
        .expect("video added to the call");
    let video = dialer.video(20).await;
    eprintln!("dialer received {video:?}");
    assert_eq!(video.resolution, Some((320, 240)));
    assert!(video.keyframes >= 1);
    // The audio carries on.
    let later = listener.tone(440, audio.packets + 50).await;
    eprintln!("listener received {later:?}");
    assert_eq!(later.track, audio.track);
    dialer.echo(b"after audio and video").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_changes_direction_and_is_removed() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    let track = dialer
        .add(TrackRequest::tone(440.0).with_direction(TrackDirection::SendOnly))
        .await
        .expect("audio added");
    let heard = listener.tone(440, 50).await;
    let (settle, quiet) = (Duration::from_millis(1500), Duration::from_millis(2500));

    // Receive only: the dialer stops sending.
    dialer
        .direction(&track, TrackDirection::RecvOnly)
        .await
        .expect("direction changed");
    let paused = listener
        .stopped(&heard.track, heard.packets, settle, quiet)
        .await;
    eprintln!("paused at {paused} packets");

    // Send only again: it resumes on the same remote track.
    dialer
        .direction(&track, TrackDirection::SendOnly)
        .await
        .expect("direction changed back");
    let resumed = listener.tone(440, paused + 50).await;
    assert_eq!(resumed.track, heard.track);
    eprintln!("resumed: {resumed:?}");

    // Removed: it stops for good.
    dialer.remove(&track).await.expect("track removed");
    let last = listener
        .stopped(&heard.track, resumed.packets, settle, quiet)
        .await;
    eprintln!("removed at {last} packets");
    assert!(dialer.remove(&track).await.is_err(), "removed once");
    dialer.echo(b"after remove").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glare_the_dialer_yields_and_both_tracks_are_added() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    dialer.echo(b"before glare").await;
    // Both sides offer at once: the listener (impolite) ignores the dialer's offer; the dialer
    // (polite) rolls its own back, answers the listener's, then offers again. On loopback the
    // two offers cross in most rounds (not all: the test passes either way, and three rounds
    // make a run without any collision unlikely).
    for round in 0..3 {
        let (from_dialer, from_listener) = tokio::join!(
            dialer.add(TrackRequest {
                kind: TrackKind::Audio,
                direction: TrackDirection::SendOnly,
                tone_hz: 440.0,
            }),
            listener.add(TrackRequest {
                kind: TrackKind::Audio,
                direction: TrackDirection::SendOnly,
                tone_hz: 1000.0,
            }),
        );
        from_dialer.unwrap_or_else(|e| panic!("round {round}: the dialer's track: {e}"));
        from_listener.unwrap_or_else(|e| panic!("round {round}: the listener's track: {e}"));
    }
    let heard = listener.tone(440, 50).await;
    eprintln!("listener received {heard:?}");
    let heard = dialer.tone(1000, 50).await;
    eprintln!("dialer received {heard:?}");
    dialer.echo(b"after glare").await;
}
