//! What the webrtc-rs peer sends on its media tracks: the Opus test tone of `oneway-media` in
//! 20 ms RTP packets, and the VP8 test pattern every 50 ms, each frame split by `rtc`'s VP8
//! payloader into RTP packets of at most [`MAX_RTP_PACKET`] bytes (the marker on its last),
//! both written through `rtc`'s sender with the negotiated payload type. A sender paces itself
//! from the instant its negotiation completed, and only while its transceiver's negotiated
//! direction includes sending.

use std::time::{Duration, Instant};

use bytes::Bytes;
use oneway_connection::TrackKind;
use oneway_media::{
    FRAME_DURATION, FRAME_SAMPLES, PatternSource, ToneSource, VIDEO_CLOCK_RATE,
    VIDEO_FRAME_DURATION, VIDEO_FRAME_TICKS,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};

/// The largest RTP packet (header included) the video sender writes.
pub const MAX_RTP_PACKET: usize = 1200;
/// The RTP header the sender writes: 12 bytes, no CSRC, no extension of its own.
const RTP_HEADER: usize = 12;
/// Most frames one sender catches up in one go after a late timer; older ones are skipped.
const MAX_CATCH_UP: u32 = 5;

/// Where a sender's media comes from.
pub(crate) enum Source {
    /// The Opus test tone (one 20 ms frame a packet).
    Tone(ToneSource),
    /// The VP8 test pattern and the payloader that splits its frames.
    Pattern(Box<PatternSource>, Vp8Payloader),
}

impl Source {
    /// A tone of `hz` Hz, or the test pattern.
    pub(crate) fn new(kind: TrackKind, hz: f64) -> Result<Self, String> {
        match kind {
            TrackKind::Audio => Ok(Source::Tone(
                ToneSource::new(hz).map_err(|e| e.to_string())?,
            )),
            TrackKind::Video => Ok(Source::Pattern(
                Box::new(PatternSource::new().map_err(|e| e.to_string())?),
                Vp8Payloader::default(),
            )),
        }
    }

    fn kind(&self) -> TrackKind {
        match self {
            Source::Tone(_) => TrackKind::Audio,
            Source::Pattern(..) => TrackKind::Video,
        }
    }

    fn period(&self) -> Duration {
        match self {
            Source::Tone(_) => FRAME_DURATION,
            Source::Pattern(..) => VIDEO_FRAME_DURATION,
        }
    }

    fn ticks(&self) -> u32 {
        match self {
            Source::Tone(_) => FRAME_SAMPLES as u32,
            Source::Pattern(..) => VIDEO_FRAME_TICKS,
        }
    }

    /// The payloads of the next frame, each with its marker bit.
    fn next_payloads(&mut self) -> Result<Vec<(Bytes, bool)>, String> {
        match self {
            Source::Tone(tone) => {
                let frame = tone.next_frame().map_err(|e| e.to_string())?;
                Ok(vec![(Bytes::from(frame), false)])
            }
            Source::Pattern(pattern, payloader) => {
                let mut out = Vec::new();
                for frame in pattern.next_frame().map_err(|e| e.to_string())? {
                    let payloads = payloader
                        .payload(MAX_RTP_PACKET - RTP_HEADER, &Bytes::from(frame.data))
                        .map_err(|e| e.to_string())?;
                    let last = payloads.len().saturating_sub(1);
                    out.extend(
                        payloads
                            .into_iter()
                            .enumerate()
                            .map(|(i, p)| (p, i == last)),
                    );
                }
                Ok(out)
            }
        }
    }
}

/// A new local track of `kind` for `rtc`, with a random SSRC: `(track, ssrc)`.
pub(crate) fn local_track(kind: TrackKind) -> (MediaStreamTrack, u32) {
    let ssrc = rand::random::<u32>();
    let (codec_kind, codec) = match kind {
        TrackKind::Audio => (
            RtpCodecKind::Audio,
            RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
        ),
        TrackKind::Video => (
            RtpCodecKind::Video,
            RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: VIDEO_CLOCK_RATE,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
        ),
    };
    let id = format!("oneway-{}-{:08x}", kind.as_str(), rand::random::<u32>());
    let track = MediaStreamTrack::new(
        format!("oneway-{:08x}", rand::random::<u32>()),
        id.clone(),
        id,
        codec_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    (track, ssrc)
}

/// One sending track.
pub(crate) struct Sender {
    /// `rtc`'s sender.
    pub id: RTCRtpSenderId,
    /// The SSRC the track was made with.
    pub ssrc: u32,
    source: Source,
    sequence: u16,
    timestamp: u32,
    /// The next frame is due at this instant; `None` while not sending (before the negotiation
    /// completed, or while the negotiated direction excludes sending).
    next: Option<Instant>,
    /// Packets written so far.
    pub sent: u64,
}

impl Sender {
    /// A sender that waits for its negotiation.
    pub(crate) fn new(id: RTCRtpSenderId, ssrc: u32, source: Source) -> Self {
        Sender {
            id,
            ssrc,
            source,
            sequence: rand::random(),
            timestamp: rand::random(),
            next: None,
            sent: 0,
        }
    }

    /// Audio or video.
    pub(crate) fn kind(&self) -> TrackKind {
        self.source.kind()
    }

    /// When the next frame is due (`None`: not sending).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.next
    }

    /// Sends from `now` on (if it was not already), or stops; a sender that starts again keeps
    /// its RTP clock, advanced by the pause, so receivers see a gap in time, not a jump back.
    pub(crate) fn set_sending(&mut self, now: Instant, sending: bool, since: Option<Instant>) {
        match (sending, self.next) {
            (true, None) => {
                if let Some(stopped) = since {
                    let gap = now.saturating_duration_since(stopped);
                    let period = self.source.period().as_micros().max(1);
                    let ticks = gap.as_micros() / period * u128::from(self.source.ticks());
                    let ticks = u32::try_from(ticks % (1u128 << 32)).unwrap_or(0);
                    self.timestamp = self.timestamp.wrapping_add(ticks);
                }
                self.next = Some(now);
            }
            (false, Some(_)) => self.next = None,
            _ => {}
        }
    }

    /// Writes the frames due at `now` through `pc`'s sender (at most a few; a late timer skips
    /// ahead rather than bursting).
    pub(crate) fn send_due(&mut self, pc: &mut RTCPeerConnection, now: Instant) {
        for _ in 0..MAX_CATCH_UP {
            let Some(next) = self.next.filter(|n| *n <= now) else {
                return;
            };
            self.next = Some(next + self.source.period());
            let payloads = match self.source.next_payloads() {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "media frame not encoded");
                    continue;
                }
            };
            let timestamp = self.timestamp;
            self.timestamp = self.timestamp.wrapping_add(self.source.ticks());
            let Some(mut rtp_sender) = pc.rtp_sender(self.id) else {
                return;
            };
            let Some(pt) = rtp_sender
                .get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
            else {
                return;
            };
            for (payload, marker) in payloads {
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        marker,
                        payload_type: pt,
                        sequence_number: self.sequence,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                };
                self.sequence = self.sequence.wrapping_add(1);
                match rtp_sender.write_rtp(now, packet) {
                    Ok(()) => self.sent += 1,
                    Err(e) => tracing::debug!(error = %e, "RTP not written"),
                }
            }
        }
        if self.next.is_some_and(|n| n <= now) {
            self.next = Some(now + self.source.period());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_frame_becomes_packets_of_at_most_1200_bytes_marked_at_the_end() {
        let mut source = Source::new(TrackKind::Video, 0.0).expect("VP8 encoder");
        let mut frames = 0;
        let mut packets = 0;
        for _ in 0..20 {
            let payloads = source.next_payloads().expect("encoded");
            for (i, (payload, marker)) in payloads.iter().enumerate() {
                assert!(payload.len() + RTP_HEADER <= MAX_RTP_PACKET);
                assert_eq!(*marker, i + 1 == payloads.len());
                // The S bit starts each frame.
                assert_eq!(payload[0] & 0x10 != 0, i == 0);
            }
            frames += usize::from(!payloads.is_empty());
            packets += payloads.len();
        }
        assert!(frames >= 19, "{frames} frames");
        assert!(packets >= frames);
    }
}
