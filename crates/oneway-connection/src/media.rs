//! What an application asks for when it adds a media track in band (`spec/handshake.md` §6.2),
//! and what it is told about the tracks it receives.

/// The kind of a media track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// Audio (the test source is an Opus tone).
    Audio,
    /// Video.
    Video,
}

impl TrackKind {
    /// `audio` or `video`, as in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Video => "video",
        }
    }
}

/// Which way a track's media flows, seen from the side that adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackDirection {
    /// Send and receive.
    SendRecv,
    /// Send only.
    SendOnly,
    /// Receive only (ask the peer to send).
    RecvOnly,
}

impl TrackDirection {
    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, TrackDirection::SendRecv | TrackDirection::SendOnly)
    }
}

/// A track to add by renegotiation, and what this side sends on it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackRequest {
    /// Audio or video.
    pub kind: TrackKind,
    /// Send, receive or both.
    pub direction: TrackDirection,
    /// The frequency in Hz of the Opus test tone sent (audio that sends only; video sends the
    /// VP8 test pattern).
    pub tone_hz: f64,
}

impl TrackRequest {
    /// An audio track sending (and receiving) a test tone of `hz` Hz.
    pub fn tone(hz: f64) -> Self {
        TrackRequest {
            kind: TrackKind::Audio,
            direction: TrackDirection::SendRecv,
            tone_hz: hz,
        }
    }

    /// A video track sending (and receiving) the VP8 test pattern.
    pub fn video() -> Self {
        TrackRequest {
            kind: TrackKind::Video,
            direction: TrackDirection::SendRecv,
            tone_hz: 0.0,
        }
    }

    /// The same track with another direction.
    pub fn with_direction(self, direction: TrackDirection) -> Self {
        TrackRequest { direction, ..self }
    }
}

/// What the receiving side measured on one remote track so far (see
/// [`crate::ConnectionEvent::MediaStats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackStats {
    /// The remote track's id.
    pub track: String,
    /// Audio (an Opus payload type) or video.
    pub kind: TrackKind,
    /// RTP packets received on it.
    pub packets: u64,
    /// Payloads that did not decode.
    pub decode_errors: u64,
    /// The decoded audio's dominant frequency, rounded to the nearest Hz, once at least 0.5 s
    /// has been decoded (audio only; `None` before, and for video).
    pub frequency_hz: Option<u32>,
    /// Video frames received whole (0 for audio).
    pub frames: u64,
    /// Video key frames among them whose VP8 header checked out (0 for audio).
    pub keyframes: u64,
    /// The width and height of the last video key frame (`None` for audio, or before one).
    pub resolution: Option<(u16, u16)>,
}
