//! In-band media negotiation for the str0m peer (`spec/handshake.md` §6.2, §10.5), sans-IO.
//!
//! The connection starts through str0m's Direct API, with no SDP. str0m's SDP API can take over
//! afterwards, with one step: str0m only writes (and matches) the `m=application` line of a
//! session that learnt it from SDP, and the Direct API never sets it. So before its first SDP
//! operation an engine accepts an *implied offer* ([`ImpliedOffer`]): the running session as
//! the peer would describe it (the peer's ICE credentials and certificate, the DTLS role it
//! plays, one `m=application` line, mid `0`), and drops str0m's answer. From then on str0m's
//! `accept_offer`, `add_media` + `apply` and `accept_answer` work on the running connection: same
//! ICE credentials (no restart), DTLS and SCTP untouched (str0m initialises them only once).
//!
//! str0m checks neither the ICE credentials nor the fingerprint of a later offer against the
//! running session (credentials that differ start an ICE restart with new random local
//! credentials, which a listener must never take; a different fingerprint is ignored once DTLS
//! is up), so [`check_offer`] does, before str0m sees the offer.

use std::time::{Duration, Instant};

pub use oneway_core::renegotiation::{
    NegotiationError, OFFER_LIMIT, OFFER_WINDOW, OfferRate, Running, SdpSummary, Section, summarize,
};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind};

/// The mid the implied offer gives the application line when this side offers first: the one
/// browsers give their first m-line (and `oneway-token`'s `LISTENER_MID`). When the peer offers
/// first, its own application mid is taken.
pub const APPLICATION_MID: &str = "0";

/// How long one audio frame lasts (Opus, 20 ms).
pub const AUDIO_FRAME: Duration = Duration::from_millis(20);
/// RTP clock ticks per audio frame (Opus runs at 48 kHz).
pub const AUDIO_FRAME_TICKS: u64 = 960;
/// Most frames a late timer sends at once before skipping ahead.
const CATCH_UP_FRAMES: u32 = 5;

/// Checks an offer against the running session before str0m sees it: str0m's own parse
/// first, then the checks every native peer makes ([`oneway_core::renegotiation::check_offer`]).
pub fn check_offer(sdp: &str, running: &Running<'_>) -> Result<(), NegotiationError> {
    str0m::change::SdpOffer::from_sdp_string(sdp)
        .map_err(|e| NegotiationError::Malformed(e.to_string()))?;
    oneway_core::renegotiation::check_offer(sdp, running).map(drop)
}

/// The peer's side of the running session, as an SDP offer for str0m's SDP API to take over
/// from the Direct API (see the module docs). str0m reads neither the SCTP port nor the
/// message size of an offer once SCTP runs; they are written as the token's defaults.
#[derive(Debug, Clone, Copy)]
pub struct ImpliedOffer<'a> {
    /// The application line's mid.
    pub mid: &'a str,
    /// The peer's ICE ufrag in force.
    pub ufrag: &'a str,
    /// The peer's ICE pwd in force.
    pub pwd: &'a str,
    /// SHA-256 of the peer's DTLS certificate.
    pub fingerprint: &'a [u8],
    /// The peer is the DTLS client (`a=setup:active`), else the server.
    pub peer_active: bool,
    /// Under a fast start, the peer's SCTP INIT, base64 (str0m wants `a=sctp-init` repeated in
    /// every description once SNAP established the association).
    pub snap_init: Option<&'a str>,
}

impl ImpliedOffer<'_> {
    /// The SDP text.
    pub fn sdp(&self) -> String {
        let hex: Vec<String> = self
            .fingerprint
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let setup = if self.peer_active {
            "active"
        } else {
            "passive"
        };
        let (mid, ufrag, pwd) = (self.mid, self.ufrag, self.pwd);
        let mut sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {mid}\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
             a=mid:{mid}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n\
             a=fingerprint:sha-256 {}\r\na=setup:{setup}\r\na=sctp-port:5000\r\n\
             a=max-message-size:262144\r\n",
            hex.join(":")
        );
        if let Some(init) = self.snap_init {
            sdp.push_str(&format!("a=sctp-init:{init}\r\n"));
        }
        sdp
    }
}

/// How a track of one kind is paced and stamped: one call of [`FrameSource::next_frames`] per
/// `interval`, the RTP time advancing by `ticks` of `clock`, written with `codec`'s negotiated
/// payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Time between two calls of the source.
    pub interval: Duration,
    /// RTP clock ticks per interval.
    pub ticks: u64,
    /// The RTP clock.
    pub clock: Frequency,
    /// The codec the frames are encoded with.
    pub codec: Codec,
}

impl Pace {
    /// Opus at 48 kHz, 20 ms frames.
    pub const AUDIO: Pace = Pace {
        interval: AUDIO_FRAME,
        ticks: AUDIO_FRAME_TICKS,
        clock: Frequency::FORTY_EIGHT_KHZ,
        codec: Codec::Opus,
    };

    /// VP8 at 90 kHz, [`oneway_media::VIDEO_FRAME_DURATION`] per frame.
    pub const VIDEO: Pace = Pace {
        interval: oneway_media::VIDEO_FRAME_DURATION,
        ticks: oneway_media::VIDEO_FRAME_TICKS as u64,
        clock: Frequency::NINETY_KHZ,
        codec: Codec::Vp8,
    };

    /// The pace of `kind`.
    pub fn of(kind: MediaKind) -> Pace {
        match kind {
            MediaKind::Audio => Pace::AUDIO,
            MediaKind::Video => Pace::VIDEO,
        }
    }
}

/// Where a sending track takes its encoded frames: the seam for a real encoder (an Opus test
/// tone, a VP8 test pattern). One call per interval of its kind's [`Pace`].
pub trait FrameSource: Send {
    /// Audio or video.
    fn kind(&self) -> MediaKind;

    /// The frames of the next interval: one Opus frame for audio; for video one VP8 frame, or
    /// none when the encoder dropped one (or failed).
    fn next_frames(&mut self) -> Vec<Vec<u8>>;

    /// The receiver asked for a key frame (RTCP PLI or FIR). Sources without key frames
    /// ignore it.
    fn request_keyframe(&mut self) {}
}

/// The tone an audio section gets when this side sends on it without the application having
/// given a tone (a section the peer's offer wants to receive): 440 Hz, as the webrtc-rs peer.
pub const DEFAULT_TONE_HZ: f64 = 440.0;

/// A [`FrameSource`] of the Opus test tone (`oneway-media`); a frame that does not encode is
/// sent as [`OpusSilence`].
pub struct ToneAudio(pub oneway_media::ToneSource);

impl FrameSource for ToneAudio {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }

    fn next_frames(&mut self) -> Vec<Vec<u8>> {
        vec![
            self.0
                .next_frame()
                .unwrap_or_else(|_| OpusSilence.opus_frame()),
        ]
    }
}

/// Opus silence: the 3-byte frame (TOC 0xF8: CELT fullband 20 ms, one frame) decoders play as
/// 20 ms of silence. What an audio track sends when no Opus encoder could be made.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpusSilence;

impl OpusSilence {
    fn opus_frame(self) -> Vec<u8> {
        vec![0xF8, 0xFF, 0xFE]
    }
}

impl FrameSource for OpusSilence {
    fn kind(&self) -> MediaKind {
        MediaKind::Audio
    }

    fn next_frames(&mut self) -> Vec<Vec<u8>> {
        vec![self.opus_frame()]
    }
}

/// A [`FrameSource`] of the VP8 test pattern (`oneway-media`). A frame that does not encode is
/// left out (nothing is sent in its place). A key frame request makes a fresh encoder, whose
/// first frame is a key frame, at most once per [`KEYFRAME_EVERY_FRAMES`] frames.
pub struct PatternVideo {
    source: oneway_media::PatternSource,
    /// Frames since the last key frame.
    since_key: u64,
    /// A key frame was asked for and not sent yet.
    key_wanted: bool,
    /// Encoding failures so far (the first is logged as a warning).
    failures: u64,
}

/// The fewest frames between two key frames made on request (one second of video).
pub const KEYFRAME_EVERY_FRAMES: u64 = oneway_media::video::VIDEO_FPS as u64;

impl PatternVideo {
    /// A pattern source of the default size (320x240), or the encoder's error.
    pub fn new() -> Result<Self, oneway_media::MediaError> {
        Self::with_size(
            oneway_media::video::VIDEO_WIDTH,
            oneway_media::video::VIDEO_HEIGHT,
        )
    }

    /// A pattern source of `width`x`height` pixels, or the encoder's error.
    pub fn with_size(width: u32, height: u32) -> Result<Self, oneway_media::MediaError> {
        Ok(PatternVideo {
            source: oneway_media::PatternSource::with_size(width, height)?,
            since_key: 0,
            key_wanted: false,
            failures: 0,
        })
    }
}

impl FrameSource for PatternVideo {
    fn kind(&self) -> MediaKind {
        MediaKind::Video
    }

    fn next_frames(&mut self) -> Vec<Vec<u8>> {
        if self.key_wanted && self.since_key >= KEYFRAME_EVERY_FRAMES {
            let (width, height) = self.source.size();
            match oneway_media::PatternSource::with_size(width, height) {
                Ok(fresh) => self.source = fresh,
                Err(e) => tracing::debug!(error = %e, "no fresh VP8 encoder for a key frame"),
            }
            self.key_wanted = false;
        }
        match self.source.next_frame() {
            Ok(frames) => frames
                .into_iter()
                .map(|f| {
                    self.since_key = if f.keyframe { 0 } else { self.since_key + 1 };
                    f.data
                })
                .collect(),
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 {
                    tracing::warn!(error = %e, "a VP8 frame did not encode; left out");
                }
                Vec::new()
            }
        }
    }

    fn request_keyframe(&mut self) {
        self.key_wanted = true;
    }
}

/// The source a sending track of `kind` gets when the application gave none: the Opus tone of
/// `tone_hz` (Opus silence if no encoder can be made, or the frequency is out of range), or the
/// VP8 test pattern (`None`, logged, if no VP8 encoder can be made: the track then sends
/// nothing).
pub fn source_for(kind: MediaKind, tone_hz: f64) -> Option<Box<dyn FrameSource>> {
    match kind {
        MediaKind::Audio => match oneway_media::ToneSource::new(tone_hz) {
            Ok(tone) => Some(Box::new(ToneAudio(tone))),
            Err(e) => {
                tracing::warn!(error = %e, "no Opus tone: the track sends silence");
                Some(Box::new(OpusSilence))
            }
        },
        MediaKind::Video => match PatternVideo::new() {
            Ok(video) => Some(Box::new(video)),
            Err(e) => {
                tracing::warn!(error = %e, "no VP8 encoder: the track sends nothing");
                None
            }
        },
    }
}

/// The str0m request and frame source for an application's
/// [`oneway_connection::TrackRequest`]: a sending audio track sends the Opus test tone at its
/// frequency, a sending video track the VP8 test pattern ([`source_for`]).
pub fn track_request(
    request: &oneway_connection::TrackRequest,
) -> (TrackRequest, Option<Box<dyn FrameSource>>) {
    use oneway_connection::TrackKind;
    let kind = match request.kind {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    };
    let direction = str0m_direction(request.direction);
    let source = if request.direction.sends() {
        source_for(kind, request.tone_hz)
    } else {
        None
    };
    (TrackRequest { kind, direction }, source)
}

/// str0m's direction for an application's [`oneway_connection::TrackDirection`].
pub fn str0m_direction(direction: oneway_connection::TrackDirection) -> Direction {
    use oneway_connection::TrackDirection;
    match direction {
        TrackDirection::SendRecv => Direction::SendRecv,
        TrackDirection::SendOnly => Direction::SendOnly,
        TrackDirection::RecvOnly => Direction::RecvOnly,
    }
}

/// A track this side asked for, waiting for its offer or its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackRequest {
    /// Audio or video.
    pub kind: MediaKind,
    /// This side's direction.
    pub direction: Direction,
}

/// A sending track's clock, audio or video: frames from its [`FrameSource`] at its [`Pace`].
pub struct MediaSender {
    /// The track's mid.
    pub mid: str0m::media::Mid,
    /// Its frames.
    pub source: Box<dyn FrameSource>,
    /// Its kind's pace.
    pub pace: Pace,
    /// When the next frame is due.
    pub next_at: Instant,
    /// RTP time of the next frame (in `pace.clock` ticks).
    pub rtp_time: u64,
    /// Frames written so far.
    pub sent: u64,
    /// The track's direction stopped sending for now; its RTP clock keeps running.
    pub paused: bool,
}

impl MediaSender {
    /// A track whose first frame is due at `now`, paced for its source's kind.
    pub fn new(mid: str0m::media::Mid, source: Box<dyn FrameSource>, now: Instant) -> Self {
        MediaSender {
            mid,
            pace: Pace::of(source.kind()),
            source,
            next_at: now,
            rtp_time: 0,
            sent: 0,
            paused: false,
        }
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.source.kind()
    }

    /// Stops sending until [`MediaSender::resume`].
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Sends again from `now`, the RTP clock advanced by the pause (receivers see a gap in
    /// time, not a jump back).
    pub fn resume(&mut self, now: Instant) {
        if !self.paused {
            return;
        }
        let gap = now.saturating_duration_since(self.next_at);
        let ticks =
            gap.as_micros() * u128::from(self.pace.ticks) / self.pace.interval.as_micros().max(1);
        self.rtp_time += u64::try_from(ticks).unwrap_or(u64::MAX / 2);
        self.next_at = now;
        self.paused = false;
    }

    /// The frames due at `now` with their RTP times (at most a few intervals; a late clock
    /// skips ahead), advancing the clock.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, Vec<u8>)> {
        if self.paused {
            return Vec::new();
        }
        let mut frames = Vec::new();
        let mut n = 0;
        while self.next_at <= now {
            if n == CATCH_UP_FRAMES {
                self.next_at = now + self.pace.interval;
                break;
            }
            let time = self.rtp_time;
            frames.extend(self.source.next_frames().into_iter().map(|f| (time, f)));
            self.rtp_time += self.pace.ticks;
            self.next_at += self.pace.interval;
            n += 1;
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str0m_parses_the_offer_before_the_shared_checks() {
        let running = Running {
            remote_ufrag: "ufra",
            remote_pwd: "pwdpwdpwdpwdpwdpwdpwdpwd",
            remote_fingerprint: &[0xAB],
            codecs: &[],
            known_mids: &[],
            local_ssrcs: &[],
        };
        let e = check_offer("v=0\r\nnonsense", &running).unwrap_err();
        assert!(matches!(e, NegotiationError::Malformed(_)), "{e}");
        assert_eq!(e.code(), "renegotiation-failed");
    }

    #[test]
    fn a_late_audio_clock_catches_up_a_little_and_skips_the_rest() {
        let start = Instant::now();
        let mut sender =
            MediaSender::new(str0m::media::Mid::from("1"), Box::new(OpusSilence), start);
        assert_eq!(sender.pace, Pace::AUDIO);
        assert_eq!(sender.due(start).len(), 1);
        let late = sender.due(start + Duration::from_secs(1));
        assert_eq!(late.len(), CATCH_UP_FRAMES as usize);
        assert_eq!(late[1].0, 2 * AUDIO_FRAME_TICKS);
        assert!(sender.next_at > start + Duration::from_secs(1));
        let rtp = sender.rtp_time;
        let at = sender.next_at;
        sender.pause();
        assert!(sender.due(at + Duration::from_secs(1)).is_empty());
        sender.resume(at + Duration::from_secs(1));
        assert_eq!(
            sender.rtp_time,
            rtp + 48_000,
            "a second of clock passed while paused"
        );
    }

    #[test]
    fn a_video_clock_sends_vp8_frames_at_90_khz() {
        let start = Instant::now();
        let video = PatternVideo::new().expect("VP8 encoder");
        let mut sender = MediaSender::new(str0m::media::Mid::from("2"), Box::new(video), start);
        assert_eq!(sender.pace, Pace::VIDEO);
        let mut frames = Vec::new();
        for i in 0..20u32 {
            frames.extend(sender.due(start + Pace::VIDEO.interval * i));
        }
        assert!(frames.len() >= 18, "{} of 20 frames encoded", frames.len());
        let mut receiver = oneway_media::VideoReceiver::default();
        for (_, frame) in &frames {
            receiver.push_frame(frame).expect("VP8");
        }
        assert_eq!(receiver.stats().resolution, Some((320, 240)));
        let sizes: Vec<usize> = frames.iter().map(|(_, f)| f.len()).collect();
        eprintln!("VP8 frame sizes: {sizes:?}");
        assert_eq!(
            frames[1].0 - frames[0].0,
            4_500,
            "one 20 fps frame at 90 kHz"
        );
        assert_eq!(sender.rtp_time, 20 * 4_500);
        let rtp = sender.rtp_time;
        sender.pause();
        let later = start + Duration::from_secs(3);
        assert!(sender.due(later).is_empty());
        sender.resume(later + Duration::from_secs(1));
        assert!(sender.rtp_time > rtp + 90_000, "the paused time counts");
        assert!(sender.due(later + Duration::from_secs(1)).len() == 1);
    }

    #[test]
    fn a_key_frame_request_brings_a_key_frame_within_a_second() {
        let mut video = PatternVideo::new().expect("VP8 encoder");
        let mut receiver = oneway_media::VideoReceiver::default();
        for _ in 0..30 {
            for f in video.next_frames() {
                receiver.push_frame(&f).expect("VP8");
            }
        }
        let before = receiver.stats().keyframes;
        video.request_keyframe();
        for _ in 0..KEYFRAME_EVERY_FRAMES {
            for f in video.next_frames() {
                receiver.push_frame(&f).expect("VP8");
            }
        }
        assert!(
            receiver.stats().keyframes > before,
            "{:?}",
            receiver.stats()
        );
    }
}
