//! Media between the native peers (str0m, webrtc-rs) and browsers (issue 20,
//! `spec/handshake.md` §6.2, §10.5): one case per native stack, per arrangement (the browser
//! dials a native listener, or a native peer dials a browser listener's `dialer-identity`
//! token) and per step:
//!
//! - `audio_from_browser`: the browser adds its fake microphone in band; the native peer
//!   answers, counts the RTP packets and decodes the Opus tone (`TrackStats.frequency_hz`);
//! - `audio_to_browser`: the native peer adds a send-only 440 Hz Opus tone; the browser
//!   answers and receives it (inbound-rtp packets, samples received, audio level);
//! - `video_from_browser`: the browser adds its fake camera; the native peer counts VP8 packets,
//!   frames and key frames, and reads the resolution;
//! - `video_to_browser`: the native peer adds its send-only VP8 test pattern (320x240); the
//!   browser decodes it (inbound-rtp `framesDecoded`, `frameWidth` x `frameHeight`): real VP8
//!   decoding, the best proof the native stream is valid;
//! - `remove_by_browser`: the browser stops its audio transceiver; the native peer answers and
//!   receives no more of it; data still echoes;
//! - `direction_by_browser`: the browser turns its audio `recvonly` (the native peer's packets
//!   stop) and back to `sendrecv` (they resume); data still echoes;
//! - `remove_by_native`: the native peer removes the tone it sends; the browser answers and
//!   receives no more of it; data still echoes;
//! - `direction_by_native`: the native peer turns its tone `recvonly` (the browser's packets
//!   stop) and back to `sendonly` (they resume); data still echoes.
//!
//! Each result names the figures of the table (packets, frames, resolution, tone).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oneway_browser::{Engine, Page};
use oneway_connection::{TrackDirection, TrackKind, TrackRequest, TrackStats};
use oneway_endpoint::Stack;
use oneway_str0m::Str0m;
use oneway_testkit::media::{MediaPeer, describe};
use oneway_token::Token;
use oneway_webrtc::WebrtcRs;
use serde_json::{Value, json};

use super::{Case, CaseResult, Ctx, LIMIT, ROLES, Variant, err};

/// The tone a native peer sends to the browser.
const NATIVE_HZ: f64 = 440.0;
/// The tone of Firefox's fake microphone.
const FIREFOX_FAKE_HZ: u32 = 1000;
/// How far a tone the native side decodes may be from the sent one (testkit's tolerance).
const TONE_TOLERANCE_HZ: u32 = 5;
/// How far the tone the page hears may be from the sent one (one FFT bin of its analyser).
const BROWSER_TONE_TOLERANCE_HZ: f64 = 6.0;
/// Audio packets a step waits for (1 s of Opus at 20 ms).
const AUDIO_PACKETS: u64 = 50;
/// Video frames a step waits for (1 s at 20 fps or more).
const VIDEO_FRAMES: u64 = 20;
/// The size of the native VP8 test pattern (`oneway-media::video`).
const PATTERN_SIZE: (u64, u64) = (320, 240);
/// How long a stopped track is watched to show that nothing more arrives.
const QUIET: Duration = Duration::from_millis(1500);

/// Who dials.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrangement {
    /// The browser dials a native listener's token.
    BrowserDials,
    /// A native peer dials a browser listener's `dialer-identity` token.
    NativeDials,
}

/// A browser tab connected to a native peer.
struct Session {
    page: Page,
    /// The page's connection: the operation id of its `dial` or `listen`.
    conn: String,
    /// The native end, driven by the test kit (statistics of every remote track).
    native: MediaPeer,
    /// "str0m" or "webrtc-rs".
    stack: &'static str,
    /// The native listener, kept open while the connection runs.
    _listener: Option<Box<dyn Any + Send>>,
}

/// Connects a tab of the variant's browser and a native peer of stack `S`, and checks one echo
/// on a `data` channel the native side opens (the page echoes).
async fn connect<S: Stack>(ctx: &Ctx, arrangement: Arrangement) -> Result<Session, String> {
    let page = ctx.browser.open_page().await.map_err(err("page"))?;
    let (conn, native, listener) = match arrangement {
        Arrangement::BrowserDials => {
            let mut listener =
                oneway_endpoint::Listener::<S>::bind(oneway_endpoint::ListenerConfig::loopback())
                    .await
                    .map_err(err("native listener"))?;
            let token = listener.token().to_text().map_err(err("token"))?;
            let op = page
                .start("dial", json!({"token": token}))
                .await
                .map_err(err("dial"))?;
            let conn = tokio::time::timeout(LIMIT, listener.accept())
                .await
                .map_err(|_| "the native listener accepted nobody".to_owned())?
                .ok_or("the native listener stopped")?;
            page.wait(&op, LIMIT, |_| {})
                .await
                .map_err(err("browser dial"))?;
            let listener: Box<dyn Any + Send> = Box::new(listener);
            (op, conn, Some(listener))
        }
        Arrangement::NativeDials => {
            let op = page
                .start("listen", json!({"profile": "dialer-identity"}))
                .await
                .map_err(err("listen"))?;
            let token = page
                .wait_event(&op, "token", LIMIT, |_| {})
                .await
                .map_err(err("token"))?;
            let text = token["token"].as_str().ok_or("no token text")?;
            let token = Token::from_text(text).map_err(err("browser token"))?;
            let conn = oneway_endpoint::dial(&token, &oneway_endpoint::DialConfig::<S>::default())
                .await
                .map_err(err("native dial"))?;
            page.wait(&op, LIMIT, |_| {})
                .await
                .map_err(err("browser listener"))?;
            (op, conn, None)
        }
    };
    let mut native = MediaPeer::drive(native, false);
    native
        .ping(b"before media")
        .await
        .map_err(err("data before media"))?;
    Ok(Session {
        page,
        conn,
        native,
        stack: S::NAME,
        _listener: listener,
    })
}

impl Session {
    /// Runs a page operation on this connection and waits for its result.
    async fn op(&self, kind: &str, mut args: Value) -> Result<Value, String> {
        args["conn"] = json!(self.conn);
        let op = self.page.start(kind, args).await.map_err(err(kind))?;
        let out = self
            .page
            .wait(&op, LIMIT, |_| {})
            .await
            .map_err(err(kind))?;
        Ok(out.value)
    }

    /// The browser adds its fake device of `kind`; returns the track id.
    async fn browser_adds(&self, kind: &str) -> Result<String, String> {
        let added = self.op(&format!("add-{kind}"), json!({})).await?;
        added["track"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("add-{kind} named no track: {added}"))
    }

    /// Waits until the native side receives a track of `kind` meeting `good`.
    async fn native_gets(
        &mut self,
        what: &str,
        good: impl Fn(&TrackStats) -> bool,
    ) -> Result<TrackStats, String> {
        self.native.wait_track(what, good).await
    }

    /// The browser's inbound-rtp statistics of `kind` once they reach the counts.
    /// With `tone`, also the audio's dominant frequency as the page's WebAudio analyser hears
    /// it (`tone_hz`).
    async fn browser_gets(
        &self,
        kind: &str,
        packets: u64,
        frames: u64,
        tone: bool,
    ) -> Result<Value, String> {
        self.op(
            "wait-track",
            json!({"kind": kind, "packets": packets, "frames": frames, "tone": tone, "timeoutMs": 10000}),
        )
        .await
    }

    /// Data still echoes after the media steps.
    async fn data_still_flows(&mut self) -> Result<(), String> {
        self.native
            .ping(b"after media")
            .await
            .map_err(err("data after media"))
    }

    /// After a change that stops `remote` at the native side: lets packets in flight land,
    /// then checks that none arrive for [`QUIET`]; returns the count it stopped at.
    async fn native_stopped(&mut self, remote: &str) -> Result<u64, String> {
        self.native.watch(remote).await?;
        let (before, after) = self.native.watch(remote).await?;
        if after != before {
            return Err(format!(
                "the {} peer still receives the track: {before} → {after} packets in {QUIET:?}",
                self.stack
            ));
        }
        Ok(after)
    }

    /// After a change that restarts `remote`: at least [`AUDIO_PACKETS`] more packets arrive.
    async fn native_resumed(&mut self, remote: &str, from: u64) -> Result<u64, String> {
        let want = from + AUDIO_PACKETS;
        self.native
            .wait_track("the resumed track", |s| {
                s.track == remote && s.packets >= want
            })
            .await
            .map(|s| s.packets)
    }

    /// Closes the page's connection.
    async fn close(&self) {
        let _ = self.page.start("close", json!({"conn": self.conn})).await;
    }
}

fn audio_received(s: &TrackStats) -> bool {
    s.kind == TrackKind::Audio && s.packets >= AUDIO_PACKETS && s.frequency_hz.is_some()
}

fn video_received(s: &TrackStats) -> bool {
    s.kind == TrackKind::Video
        && s.frames >= VIDEO_FRAMES
        && s.keyframes >= 1
        && s.resolution.is_some()
}

/// Browser audio (fake microphone) to the native peer.
async fn audio_from_browser(s: &mut Session, engine: Engine) -> CaseResult {
    s.browser_adds("audio").await?;
    let got = s.native_gets("the browser's audio", audio_received).await?;
    // Firefox's fake microphone is a steady 1 kHz sine; Chromium's beeps (its dominant
    // frequency depends on where the half second falls), so only Firefox's is checked.
    let hz = got.frequency_hz.unwrap_or(0);
    if engine == Engine::Firefox && hz.abs_diff(FIREFOX_FAKE_HZ) > TONE_TOLERANCE_HZ {
        return Err(format!(
            "{} decoded {hz} Hz from Firefox's {FIREFOX_FAKE_HZ} Hz fake microphone",
            s.stack
        ));
    }
    Ok(format!(
        "browser → {}: {} RTP pkts, decoded tone {} Hz, {} decode errors",
        s.stack,
        got.packets,
        got.frequency_hz.unwrap_or(0),
        got.decode_errors
    ))
}

/// The native peer's Opus tone to the browser.
async fn audio_to_browser(s: &mut Session, ctx_engine: Engine) -> CaseResult {
    s.native
        .add(TrackRequest::tone(NATIVE_HZ).with_direction(TrackDirection::SendOnly))
        .await
        .map_err(err("native add_track(tone)"))?;
    let got = s.browser_gets("audio", AUDIO_PACKETS, 0, true).await?;
    let samples = got["total_samples_received"].as_u64();
    let level = got["audio_level"].as_f64();
    if samples == Some(0) {
        return Err(format!("the browser decoded no samples: {got}"));
    }
    if level.is_some_and(|l| l <= 0.0) {
        return Err(format!("the browser hears silence: {got}"));
    }
    // The page's WebAudio analyser (8192-point FFT at 48 kHz: 5.9 Hz bins), or where it gets
    // no signal (headless Firefox starts no AudioContext without an audio device) a
    // MediaRecorder recording decoded offline (zero crossings over half a second).
    match got["tone_hz"].as_f64() {
        Some(hz) if (hz - NATIVE_HZ).abs() > BROWSER_TONE_TOLERANCE_HZ => {
            return Err(format!(
                "the browser hears {hz} Hz, not {NATIVE_HZ} Hz: {got}"
            ));
        }
        Some(_) => {}
        None => {
            return Err(format!(
                "{} measured no tone: {got}",
                ctx_engine.display_name()
            ));
        }
    }
    Ok(format!(
        "{} {NATIVE_HZ} Hz tone → browser: {} RTP pkts ({}), browser hears {}, {} samples received, audio level {}",
        s.stack,
        got["packets"],
        got["codec"].as_str().unwrap_or("codec n/a"),
        match (got["tone_hz"].as_f64(), got["tone_hz"].as_str()) {
            (Some(hz), _) => format!("{hz} Hz"),
            (None, Some(why)) => why.to_owned(),
            _ => "n/a".to_owned(),
        },
        samples.map_or_else(|| "n/a".to_owned(), |n| n.to_string()),
        level.map_or_else(|| "n/a".to_owned(), |l| format!("{l:.3}")),
    ))
}

/// Browser video (fake camera) to the native peer.
async fn video_from_browser(s: &mut Session) -> CaseResult {
    s.browser_adds("video").await?;
    let got = s.native_gets("the browser's video", video_received).await;
    let sent = s.op("outbound", json!({"kind": "video"})).await?;
    let sent = format!(
        "browser sent {} RTP pkts ({}), {} frames encoded ({} key), {}x{}",
        sent["packets"],
        sent["codec"].as_str().unwrap_or("codec n/a"),
        sent["frames_encoded"],
        sent["key_frames_encoded"],
        sent["frame_width"],
        sent["frame_height"]
    );
    match got {
        Ok(got) => Ok(format!(
            "{sent}; {} received {}",
            s.stack,
            video_figures(&got)
        )),
        Err(e) => Err(format!("{e}; {sent}")),
    }
}

/// The native VP8 test pattern to the browser, decoded there.
async fn video_to_browser(s: &mut Session) -> CaseResult {
    s.native
        .add(TrackRequest::video().with_direction(TrackDirection::SendOnly))
        .await
        .map_err(err("native add_track(video)"))?;
    let got = s
        .browser_gets("video", VIDEO_FRAMES, VIDEO_FRAMES, false)
        .await?;
    let size = (
        got["frame_width"].as_u64().unwrap_or(0),
        got["frame_height"].as_u64().unwrap_or(0),
    );
    if size != PATTERN_SIZE {
        return Err(format!(
            "the browser decoded {}x{} frames, the pattern is {}x{}: {got}",
            size.0, size.1, PATTERN_SIZE.0, PATTERN_SIZE.1
        ));
    }
    Ok(format!(
        "{} VP8 pattern → browser: {} RTP pkts ({}), {} frames decoded ({} key), {}x{}",
        s.stack,
        got["packets"],
        got["codec"].as_str().unwrap_or("codec n/a"),
        got["frames_decoded"],
        got["key_frames_decoded"],
        size.0,
        size.1
    ))
}

/// The browser removes its audio track: the native peer answers and its packets stop.
async fn remove_by_browser(s: &mut Session) -> CaseResult {
    let track = s.browser_adds("audio").await?;
    let got = s.native_gets("the browser's audio", audio_received).await?;
    s.op("remove-track", json!({"track": track})).await?;
    let stopped = s.native_stopped(&got.track).await?;
    s.data_still_flows().await?;
    Ok(format!(
        "browser audio at {}: {} pkts, {} Hz; browser stopped its transceiver, {} answered; packets stopped at {stopped}; data still echoes",
        s.stack,
        got.packets,
        got.frequency_hz.unwrap_or(0),
        s.stack
    ))
}

/// The browser turns its audio `recvonly` (the native peer's packets stop) and back.
async fn direction_by_browser(s: &mut Session) -> CaseResult {
    let track = s.browser_adds("audio").await?;
    let got = s.native_gets("the browser's audio", audio_received).await?;
    s.op(
        "set-direction",
        json!({"track": track, "direction": "recvonly"}),
    )
    .await?;
    let stopped = s.native_stopped(&got.track).await?;
    s.op(
        "set-direction",
        json!({"track": track, "direction": "sendrecv"}),
    )
    .await?;
    let resumed = s.native_resumed(&got.track, stopped).await?;
    s.data_still_flows().await?;
    Ok(format!(
        "browser audio at {}: {} pkts, {} Hz; recvonly answered, stopped at {stopped} pkts; sendrecv answered, resumed to {resumed} pkts; data still echoes",
        s.stack,
        got.packets,
        got.frequency_hz.unwrap_or(0)
    ))
}

/// The browser's packets of the inbound stream `ssrc` (`None`: its statistics are gone, as
/// Chromium drops them once the receiver stopped), and its transceivers.
async fn browser_packets(s: &Session, ssrc: &Value) -> Result<(Option<u64>, Value), String> {
    let now = s
        .op("inbound", json!({"kind": "audio", "ssrc": ssrc}))
        .await?;
    Ok((
        now["stats"]["packets"].as_u64(),
        now["transceivers"].clone(),
    ))
}

/// After a change that stops the native peer's stream `ssrc` (on the m-line `mid`): lets packets in flight land,
/// then checks that none arrive at the browser for [`QUIET`]; describes where it stopped.
async fn browser_stopped(s: &Session, ssrc: &Value, mid: &Value) -> Result<String, String> {
    tokio::time::sleep(QUIET).await;
    let (before, _) = browser_packets(s, ssrc).await?;
    tokio::time::sleep(QUIET).await;
    let (after, transceivers) = browser_packets(s, ssrc).await?;
    match (before, after) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "the browser still receives the {} tone: {a} → {b} packets in {QUIET:?}; transceivers {transceivers}",
            s.stack
        )),
        (Some(a), Some(_)) => Ok(format!("stopped at {a} pkts")),
        (_, None) => {
            // Gone statistics count only with the stream's transceiver stopped or gone (a
            // stopped transceiver leaves getTransceivers() once negotiated).
            let live = transceivers.as_array().is_some_and(|ts| {
                ts.iter()
                    .any(|t| &t["mid"] == mid && t["current"] != json!("stopped"))
            });
            if live {
                return Err(format!(
                    "the browser's statistics of the stream are gone, yet its transceiver (mid {mid}) runs: {transceivers}"
                ));
            }
            Ok(format!(
                "its transceiver (mid {mid}) stopped and left, inbound-rtp statistics gone"
            ))
        }
        (None, Some(b)) => Err(format!(
            "the browser's statistics of the stream came back ({b} packets); transceivers {transceivers}"
        )),
    }
}

/// The native peer adds its tone, the browser receives it; returns the native track id, the
/// browser's inbound statistics and the stream's SSRC.
async fn native_tone_at_browser(s: &mut Session) -> Result<(String, Value), String> {
    let id = s
        .native
        .add(TrackRequest::tone(NATIVE_HZ).with_direction(TrackDirection::SendOnly))
        .await
        .map_err(err("native add_track(tone)"))?;
    let got = s.browser_gets("audio", AUDIO_PACKETS, 0, false).await?;
    Ok((id, got))
}

/// The native peer removes the tone it sends: the browser answers and receives no more of it.
async fn remove_by_native(s: &mut Session) -> CaseResult {
    let (id, got) = native_tone_at_browser(s).await?;
    s.native
        .remove(&id)
        .await
        .map_err(err("native remove_track"))?;
    let stopped = browser_stopped(s, &got["ssrc"], &got["mid"]).await?;
    s.data_still_flows().await?;
    Ok(format!(
        "{} tone at the browser: {} pkts; {} removed it, the browser answered; {stopped}; data still echoes",
        s.stack, got["packets"], s.stack
    ))
}

/// The native peer turns its tone `recvonly` (the browser's packets stop) and back to
/// `sendonly` (they resume).
async fn direction_by_native(s: &mut Session) -> CaseResult {
    let (id, got) = native_tone_at_browser(s).await?;
    s.native
        .direction(&id, TrackDirection::RecvOnly)
        .await
        .map_err(err("native set_track_direction(recvonly)"))?;
    let stopped = browser_stopped(s, &got["ssrc"], &got["mid"]).await?;
    let (at, _) = browser_packets(s, &got["ssrc"]).await?;
    s.native
        .direction(&id, TrackDirection::SendOnly)
        .await
        .map_err(err("native set_track_direction(sendonly)"))?;
    let want = at.unwrap_or(0) + AUDIO_PACKETS;
    let resumed = s.browser_gets("audio", want, 0, false).await?;
    s.data_still_flows().await?;
    Ok(format!(
        "{} tone at the browser: {} pkts; recvonly answered, {stopped}; sendonly answered, resumed to {} pkts; data still echoes",
        s.stack, got["packets"], resumed["packets"]
    ))
}

fn video_figures(s: &TrackStats) -> String {
    let (w, h) = s.resolution.unwrap_or((0, 0));
    format!(
        "{} RTP pkts, {} frames, {} key, {w}x{h}",
        s.packets, s.frames, s.keyframes
    )
}

const AUDIO_FROM_BROWSER: u8 = 0;
const AUDIO_TO_BROWSER: u8 = 1;
const VIDEO_FROM_BROWSER: u8 = 2;
const VIDEO_TO_BROWSER: u8 = 3;
const REMOVE_BY_BROWSER: u8 = 4;
const DIRECTION_BY_BROWSER: u8 = 5;
const REMOVE_BY_NATIVE: u8 = 6;
const DIRECTION_BY_NATIVE: u8 = 7;

/// One case: stack `S`, the browser dialing or not, one step.
fn case<S: Stack, const BROWSER_DIALS: bool, const STEP: u8>(
    ctx: &Ctx,
) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let arrangement = if BROWSER_DIALS {
            Arrangement::BrowserDials
        } else {
            Arrangement::NativeDials
        };
        let mut s = connect::<S>(ctx, arrangement).await?;
        let result = match STEP {
            AUDIO_FROM_BROWSER => audio_from_browser(&mut s, ctx.browser.engine()).await,
            AUDIO_TO_BROWSER => audio_to_browser(&mut s, ctx.browser.engine()).await,
            VIDEO_FROM_BROWSER => video_from_browser(&mut s).await,
            VIDEO_TO_BROWSER => video_to_browser(&mut s).await,
            REMOVE_BY_BROWSER => remove_by_browser(&mut s).await,
            DIRECTION_BY_BROWSER => direction_by_browser(&mut s).await,
            REMOVE_BY_NATIVE => remove_by_native(&mut s).await,
            DIRECTION_BY_NATIVE => direction_by_native(&mut s).await,
            _ => Err(format!("no media step {STEP}")),
        };
        let result = result.map_err(|e| {
            let seen: Vec<String> = s.native.tracks.values().map(describe).collect();
            let errors: Vec<String> = s
                .native
                .peer_errors
                .iter()
                .map(|(c, r)| format!("{c}: {r}"))
                .collect();
            format!(
                "{e}; {} tracks: [{}]; {} got channel-0 errors: [{}]",
                s.stack,
                seen.join("; "),
                s.stack,
                errors.join("; ")
            )
        });
        s.close().await;
        result
    })
}

/// The media cases and the variants they run in (every role: Chromium, Chromium with the
/// no-munging trial, Firefox).
pub(super) static CASES: &[(&str, Case, &[&Variant])] = &[
    (
        "media_browser_dials_str0m_audio_from_browser",
        case::<Str0m, true, AUDIO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_audio_to_browser",
        case::<Str0m, true, AUDIO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_video_from_browser",
        case::<Str0m, true, VIDEO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_video_to_browser",
        case::<Str0m, true, VIDEO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_remove_by_browser",
        case::<Str0m, true, REMOVE_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_direction_by_browser",
        case::<Str0m, true, DIRECTION_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_remove_by_native",
        case::<Str0m, true, REMOVE_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_browser_dials_str0m_direction_by_native",
        case::<Str0m, true, DIRECTION_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_audio_from_browser",
        case::<Str0m, false, AUDIO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_audio_to_browser",
        case::<Str0m, false, AUDIO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_video_from_browser",
        case::<Str0m, false, VIDEO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_video_to_browser",
        case::<Str0m, false, VIDEO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_remove_by_browser",
        case::<Str0m, false, REMOVE_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_direction_by_browser",
        case::<Str0m, false, DIRECTION_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_remove_by_native",
        case::<Str0m, false, REMOVE_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_str0m_dials_browser_direction_by_native",
        case::<Str0m, false, DIRECTION_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_audio_from_browser",
        case::<WebrtcRs, true, AUDIO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_audio_to_browser",
        case::<WebrtcRs, true, AUDIO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_video_from_browser",
        case::<WebrtcRs, true, VIDEO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_video_to_browser",
        case::<WebrtcRs, true, VIDEO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_remove_by_browser",
        case::<WebrtcRs, true, REMOVE_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_direction_by_browser",
        case::<WebrtcRs, true, DIRECTION_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_remove_by_native",
        case::<WebrtcRs, true, REMOVE_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_browser_dials_webrtc_direction_by_native",
        case::<WebrtcRs, true, DIRECTION_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_audio_from_browser",
        case::<WebrtcRs, false, AUDIO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_audio_to_browser",
        case::<WebrtcRs, false, AUDIO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_video_from_browser",
        case::<WebrtcRs, false, VIDEO_FROM_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_video_to_browser",
        case::<WebrtcRs, false, VIDEO_TO_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_remove_by_browser",
        case::<WebrtcRs, false, REMOVE_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_direction_by_browser",
        case::<WebrtcRs, false, DIRECTION_BY_BROWSER>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_remove_by_native",
        case::<WebrtcRs, false, REMOVE_BY_NATIVE>,
        ROLES,
    ),
    (
        "media_webrtc_dials_browser_direction_by_native",
        case::<WebrtcRs, false, DIRECTION_BY_NATIVE>,
        ROLES,
    ),
];
