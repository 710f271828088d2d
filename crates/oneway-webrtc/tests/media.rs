//! In-band media between two webrtc-rs peers on loopback (`spec/handshake.md` §6.2, §10.5):
//! the dialer adds an audio track and sends an Opus tone, the listener decodes it; the listener
//! adds a track the other way; refused offers and answers get named errors and the connection
//! carries on. Every wait is bounded.

use std::time::Duration;

use oneway_connection::{
    Connection, ConnectionError, ConnectionEvent, StackError, TrackDirection, TrackKind,
    TrackRequest, TrackStats,
};
use oneway_core::signal::Message;
use oneway_endpoint::{DialerEngineParams, ListenerEngineParams, Stack};
use oneway_webrtc::engine::RtcEngine;
use oneway_webrtc::{ListenerConfig, WebrtcRs};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

/// What a test asks a peer's driver task to do.
enum Ask {
    AddTrack(
        TrackRequest,
        oneshot::Sender<Result<String, ConnectionError>>,
    ),
    Send(Vec<u8>, oneshot::Sender<Result<(), ConnectionError>>),
    IceRestart(oneshot::Sender<Result<(), ConnectionError>>),
}

/// A peer's connection driven by a task: events are forwarded to the test; with `echo`, data
/// is echoed back.
struct Peer {
    asks: mpsc::UnboundedSender<Ask>,
    events: mpsc::UnboundedReceiver<ConnectionEvent>,
}

fn drive(mut conn: Connection, echo: bool) -> Peer {
    let (asks, mut ask_rx) = mpsc::unbounded_channel();
    let (event_tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut channel = None;
        loop {
            tokio::select! {
                event = conn.next_event() => {
                    let Some(event) = event else { return };
                    if let ConnectionEvent::Data { channel, data, .. } = &event && echo {
                        let _ = conn.send(*channel, data).await;
                    }
                    let _ = event_tx.send(event);
                }
                ask = ask_rx.recv() => match ask {
                    Some(Ask::AddTrack(request, reply)) => {
                        let _ = reply.send(conn.add_track(request).await);
                    }
                    Some(Ask::IceRestart(reply)) => {
                        let _ = reply.send(conn.ice_restart().await);
                    }
                    Some(Ask::Send(data, reply)) => {
                        let result = match channel {
                            Some(c) => conn.send(c, &data).await,
                            None => match conn.open_channel("data").await {
                                Ok(c) => {
                                    channel = Some(c);
                                    conn.send(c, &data).await
                                }
                                Err(e) => Err(e),
                            },
                        };
                        let _ = reply.send(result);
                    }
                    None => return,
                },
            }
        }
    });
    Peer { asks, events }
}

impl Peer {
    async fn add_track(&self, request: TrackRequest) -> Result<String, ConnectionError> {
        let (reply, result) = oneshot::channel();
        self.asks
            .send(Ask::AddTrack(request, reply))
            .expect("driver running");
        timeout(Duration::from_secs(10), result)
            .await
            .expect("renegotiation within 10 s")
            .expect("driver answered")
    }

    async fn ice_restart(&self) -> Result<(), ConnectionError> {
        let (reply, result) = oneshot::channel();
        self.asks
            .send(Ask::IceRestart(reply))
            .expect("driver running");
        timeout(Duration::from_secs(10), result)
            .await
            .expect("restart within 10 s")
            .expect("driver answered")
    }

    /// Sends `data` on an application channel and waits for its echo; bounded.
    async fn echo(&mut self, data: &[u8]) {
        let (reply, result) = oneshot::channel();
        self.asks
            .send(Ask::Send(data.to_vec(), reply))
            .expect("driver running");
        timeout(Duration::from_secs(10), result)
            .await
            .expect("send within 10 s")
            .expect("driver answered")
            .expect("sent");
        let echoed = self
            .next(Duration::from_secs(10), |e| match e {
                ConnectionEvent::Data { data, .. } => Some(data.clone()),
                _ => None,
            })
            .await;
        assert_eq!(echoed, data);
    }

    /// The first event `pick` accepts within `limit`.
    async fn next<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&ConnectionEvent) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let event = timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.events.recv(),
            )
            .await
            .expect("event within the limit")
            .expect("connection open");
            assert!(
                !matches!(event, ConnectionEvent::Closed { .. }),
                "connection closed: {event:?}"
            );
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    }

    /// Statistics of a remote track with at least `packets` packets and a measured frequency
    /// within 5 Hz of `hz`; bounded.
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
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Connects a `D` dialer to a webrtc-rs listener; returns (dialer, listener) driven, the
/// listener echoing.
async fn connect<D: Stack>() -> (Peer, Peer) {
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
    (drive(dialed, false), drive(accepted, true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_both_ways_between_webrtc_rs_peers() {
    let (mut dialer, mut listener) = connect::<WebrtcRs>().await;
    dialer.echo(b"before media").await;

    // The dialer offers a send-and-receive audio track with a 440 Hz tone; the listener answers
    // sendrecv and sends its own answer tone (440 Hz) back.
    let track = dialer
        .add_track(TrackRequest::tone(440.0))
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
        .add_track(TrackRequest {
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
        .add_track(TrackRequest::tone(440.0))
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
}

/// The webrtc-rs stack whose dialer sends crafted channel-0 messages once authenticated.
#[derive(Clone, Copy, Debug, Default)]
struct Crafted;

/// An offer whose only audio codec nobody supports.
const UNKNOWN_CODEC_OFFER: &str = "v=0\r\no=- 4 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    a=group:BUNDLE 0 1\r\n\
    m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
    a=sctp-port:5000\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
    a=rtpmap:98 x-oneway-unknown/48000/2\r\n";

/// Media sections with a known codec, but no origin, session name or timing: malformed.
const MALFORMED_OFFER: &str =
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=rtpmap:111 opus/48000/2\r\n";

impl Stack for Crafted {
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
        engine.dangerous_mut().after_auth = vec![
            Message::Offer {
                sdp: UNKNOWN_CODEC_OFFER.to_owned(),
            }
            .encode(),
            Message::Offer {
                sdp: "this is not SDP".to_owned(),
            }
            .encode(),
            Message::Offer {
                sdp: MALFORMED_OFFER.to_owned(),
            }
            .encode(),
            Message::Answer {
                sdp: UNKNOWN_CODEC_OFFER.to_owned(),
            }
            .encode(),
        ];
        Ok(engine)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_offers_and_answers_get_named_errors_and_the_connection_carries_on() {
    let (mut dialer, _listener) = connect::<Crafted>().await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let (code, reason) = dialer
            .next(Duration::from_secs(10), |e| match e {
                ConnectionEvent::PeerError { code, reason } => Some((code.clone(), reason.clone())),
                ConnectionEvent::Renegotiated => panic!("a refused offer was answered"),
                _ => None,
            })
            .await;
        eprintln!("{code}: {reason}");
        codes.push(code);
    }
    assert_eq!(
        codes,
        [
            "renegotiation-failed",
            "renegotiation-failed",
            "renegotiation-failed",
            "unexpected-answer"
        ]
    );
    dialer.echo(b"still echoing").await;
    // And media still negotiates afterwards.
    dialer
        .add_track(TrackRequest::tone(440.0))
        .await
        .expect("track added after the refusals");
    dialer.tone(440, 50).await;
    dialer.echo(b"still echoing with media").await;
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
            dialer.add_track(TrackRequest {
                kind: TrackKind::Audio,
                direction: TrackDirection::SendOnly,
                tone_hz: 440.0,
            }),
            listener.add_track(TrackRequest {
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
