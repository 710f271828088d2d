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
use str0m::media::{Direction, MediaKind};

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

/// Where a sending audio track takes its encoded frames: the seam for a real encoder (an
/// Opus-encoded test tone). One call per [`AUDIO_FRAME`].
pub trait AudioSource: Send {
    /// The next encoded 20 ms frame.
    fn next_audio_frame(&mut self) -> Vec<u8>;
}

/// An [`AudioSource`] of the Opus test tone (`oneway-media`); a frame that does not encode is
/// sent as [`OpusSilence`].
pub struct ToneAudio(pub oneway_media::ToneSource);

impl AudioSource for ToneAudio {
    fn next_audio_frame(&mut self) -> Vec<u8> {
        self.0
            .next_frame()
            .unwrap_or_else(|_| OpusSilence.next_audio_frame())
    }
}

/// The str0m request and audio source for an application's [`oneway_connection::TrackRequest`]:
/// a sending audio track sends the Opus test tone at its frequency (silence if the encoder
/// cannot be made).
pub fn track_request(
    request: &oneway_connection::TrackRequest,
) -> (TrackRequest, Option<Box<dyn AudioSource>>) {
    use oneway_connection::TrackKind;
    let kind = match request.kind {
        TrackKind::Audio => MediaKind::Audio,
        TrackKind::Video => MediaKind::Video,
    };
    let direction = str0m_direction(request.direction);
    let source: Option<Box<dyn AudioSource>> =
        if kind == MediaKind::Audio && request.direction.sends() {
            match oneway_media::ToneSource::new(request.tone_hz) {
                Ok(tone) => Some(Box::new(ToneAudio(tone))),
                Err(e) => {
                    tracing::warn!(error = %e, "no Opus encoder: the track sends silence");
                    None
                }
            }
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

/// Opus silence: the 3-byte frame (TOC 0xF8: CELT fullband 20 ms, one frame) decoders play as
/// 20 ms of silence. The default until a tone encoder is plugged in.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpusSilence;

impl AudioSource for OpusSilence {
    fn next_audio_frame(&mut self) -> Vec<u8> {
        vec![0xF8, 0xFF, 0xFE]
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

/// A sending audio track's clock.
pub struct AudioSender {
    /// The track's mid.
    pub mid: str0m::media::Mid,
    /// Its frames.
    pub source: Box<dyn AudioSource>,
    /// When the next frame is due.
    pub next_at: Instant,
    /// RTP time of the next frame (48 kHz).
    pub rtp_time: u64,
    /// Frames written so far.
    pub sent: u64,
    /// The track's direction stopped sending for now; its RTP clock keeps running.
    pub paused: bool,
}

impl AudioSender {
    /// A track whose first frame is due at `now`.
    pub fn new(mid: str0m::media::Mid, source: Box<dyn AudioSource>, now: Instant) -> Self {
        AudioSender {
            mid,
            source,
            next_at: now,
            rtp_time: 0,
            sent: 0,
            paused: false,
        }
    }

    /// Stops sending until [`AudioSender::resume`].
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
            gap.as_micros() * u128::from(AUDIO_FRAME_TICKS) / AUDIO_FRAME.as_micros().max(1);
        self.rtp_time += u64::try_from(ticks).unwrap_or(u64::MAX / 2);
        self.next_at = now;
        self.paused = false;
    }

    /// The frames due at `now` (at most a few; a late clock skips ahead), advancing the clock.
    pub fn due(&mut self, now: Instant) -> Vec<(u64, Vec<u8>)> {
        if self.paused {
            return Vec::new();
        }
        let mut frames = Vec::new();
        let mut n = 0;
        while self.next_at <= now {
            if n == CATCH_UP_FRAMES {
                self.next_at = now + AUDIO_FRAME;
                break;
            }
            frames.push((self.rtp_time, self.source.next_audio_frame()));
            self.rtp_time += AUDIO_FRAME_TICKS;
            self.next_at += AUDIO_FRAME;
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
            AudioSender::new(str0m::media::Mid::from("1"), Box::new(OpusSilence), start);
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
}
