//! Test media for oneway peers, sans-IO: a [`ToneSource`] that encodes a sine tone with Opus
//! (48 kHz, mono, 20 ms frames) into RTP-ready payloads, and a [`ToneReceiver`] that decodes
//! Opus payloads back to PCM, counts packets and errors, and measures the dominant frequency;
//! for video, a VP8-encoded moving [`PatternSource`] and a [`VideoReceiver`] (module [`video`]).
//!
//! The codec is Debian's libopus through the `opus` crate; nothing here encodes by hand. A
//! stack sends each [`ToneSource::next_frame`] as one RTP packet every [`FRAME_DURATION`],
//! advancing the RTP timestamp by [`FRAME_SAMPLES`], and feeds each received payload to
//! [`ToneReceiver::push`].
//!
//! ```
//! use oneway_media::{ToneReceiver, ToneSource};
//!
//! let mut source = ToneSource::new(440.0)?;
//! let mut receiver = ToneReceiver::new()?;
//! for _ in 0..50 {
//!     receiver.push(&source.next_frame()?);
//! }
//! let hz = receiver.frequency().expect("one second decoded");
//! assert!((hz - 440.0).abs() < 5.0);
//! # Ok::<(), oneway_media::MediaError>(())
//! ```

#![warn(missing_docs)]

mod frequency;
pub mod video;

use std::collections::VecDeque;
use std::f64::consts::TAU;
use std::time::Duration;

pub use frequency::zero_crossing_frequency;
pub use video::{
    EncodedFrame, PatternSource, VIDEO_CLOCK_RATE, VIDEO_FRAME_DURATION, VIDEO_FRAME_TICKS,
    VideoReceiver, VideoStats, Vp8Error,
};

/// The sample rate of the tone and of Opus's RTP clock (RFC 7587).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame: the RTP timestamp step between packets.
pub const FRAME_SAMPLES: usize = 960;
/// The duration of one frame: the pacing of packets.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// The shortest decoded audio [`ToneReceiver::frequency`] measures over (0.5 s).
pub const MIN_MEASURE_SAMPLES: usize = SAMPLE_RATE as usize / 2;
/// The decoded audio a [`ToneReceiver`] keeps for measuring (the last second).
const WINDOW_SAMPLES: usize = SAMPLE_RATE as usize;
/// The largest Opus frame (120 ms), the decoder's output buffer.
const MAX_DECODED: usize = SAMPLE_RATE as usize * 120 / 1000;
/// The largest encoded frame this source emits (RFC 7587 allows up to 1275 bytes per frame).
const MAX_PAYLOAD: usize = 1275;
/// The tone's amplitude: half of full scale.
const AMPLITUDE: f64 = 16_384.0;

/// Errors of the test media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The tone frequency is not between 20 Hz and 20 kHz (or not a number).
    #[error("tone frequency {0} Hz is outside 20..=20000 Hz")]
    Frequency(f64),
    /// libopus refused to create a coder or to encode.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A video size the test pattern does not draw (even, 16..=1920 × 16..=1080).
    #[error("video size {width}x{height} is not even or outside 16x16..=1920x1080")]
    VideoSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// libvpx refused to create the VP8 encoder or to encode.
    #[error("vp8: {0}")]
    Vpx(String),
    /// A payload libopus could not decode, or an empty one.
    #[error("undecodable payload of {len} bytes: {reason}")]
    Payload {
        /// The payload's length.
        len: usize,
        /// Why it was refused.
        reason: String,
    },
}

/// A sine tone at a fixed frequency, encoded frame by frame with Opus.
pub struct ToneSource {
    encoder: opus::Encoder,
    frequency: f64,
    /// Samples emitted so far (the phase of the next one).
    sample: u64,
}

impl std::fmt::Debug for ToneSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneSource")
            .field("frequency", &self.frequency)
            .field("sample", &self.sample)
            .finish()
    }
}

impl ToneSource {
    /// A source of a `frequency` Hz sine at 48 kHz, mono.
    pub fn new(frequency: f64) -> Result<Self, MediaError> {
        if !(20.0..=20_000.0).contains(&frequency) {
            return Err(MediaError::Frequency(frequency));
        }
        let encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)?;
        Ok(ToneSource {
            encoder,
            frequency,
            sample: 0,
        })
    }

    /// The tone's frequency in Hz.
    pub fn frequency(&self) -> f64 {
        self.frequency
    }

    /// Encodes the next 20 ms ([`FRAME_SAMPLES`] samples) into one Opus payload.
    pub fn next_frame(&mut self) -> Result<Vec<u8>, MediaError> {
        let pcm: Vec<i16> = (0..FRAME_SAMPLES as u64)
            .map(|i| {
                let t = (self.sample + i) as f64 / f64::from(SAMPLE_RATE);
                // In range: |sin| <= 1 and AMPLITUDE < i16::MAX.
                (AMPLITUDE * (TAU * self.frequency * t).sin()) as i16
            })
            .collect();
        self.sample += FRAME_SAMPLES as u64;
        Ok(self.encoder.encode_vec(&pcm, MAX_PAYLOAD)?)
    }
}

/// What a [`ToneReceiver`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReceiverStats {
    /// Payloads pushed.
    pub packets: u64,
    /// Payloads that did not decode (counted in `packets` too).
    pub errors: u64,
    /// Samples decoded in all.
    pub samples: u64,
    /// The dominant frequency of the last second decoded, once at least 0.5 s is.
    pub frequency: Option<f64>,
}

/// Decodes Opus payloads (48 kHz, mono) and measures the tone they carry.
pub struct ToneReceiver {
    decoder: opus::Decoder,
    window: VecDeque<i16>,
    packets: u64,
    errors: u64,
    samples: u64,
}

impl std::fmt::Debug for ToneReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToneReceiver")
            .field("packets", &self.packets)
            .field("errors", &self.errors)
            .field("samples", &self.samples)
            .finish()
    }
}

impl ToneReceiver {
    /// A receiver with nothing decoded yet.
    pub fn new() -> Result<Self, MediaError> {
        Ok(ToneReceiver {
            decoder: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?,
            window: VecDeque::with_capacity(WINDOW_SAMPLES),
            packets: 0,
            errors: 0,
            samples: 0,
        })
    }

    /// Decodes one RTP payload. A payload that does not decode is counted as an error and
    /// returned as one; it never panics and leaves the receiver usable.
    pub fn push(&mut self, payload: &[u8]) -> Result<usize, MediaError> {
        self.packets += 1;
        match self.decode(payload) {
            Ok(n) => Ok(n),
            Err(e) => {
                self.errors += 1;
                tracing::debug!(error = %e, "opus payload refused");
                Err(e)
            }
        }
    }

    fn decode(&mut self, payload: &[u8]) -> Result<usize, MediaError> {
        if payload.is_empty() {
            // libopus reads an empty packet as a lost one and conceals it.
            return Err(MediaError::Payload {
                len: 0,
                reason: "empty".to_owned(),
            });
        }
        let mut pcm = [0i16; MAX_DECODED];
        let n = self
            .decoder
            .decode(payload, &mut pcm, false)
            .map_err(|e| MediaError::Payload {
                len: payload.len(),
                reason: e.to_string(),
            })?;
        let decoded = pcm.get(..n).unwrap_or(&pcm);
        for &s in decoded {
            if self.window.len() == WINDOW_SAMPLES {
                self.window.pop_front();
            }
            self.window.push_back(s);
        }
        self.samples += decoded.len() as u64;
        Ok(decoded.len())
    }

    /// The dominant frequency in Hz of the last second decoded (zero crossings), or `None`
    /// before 0.5 s is decoded or when the audio has no tone.
    pub fn frequency(&self) -> Option<f64> {
        if self.window.len() < MIN_MEASURE_SAMPLES {
            return None;
        }
        let (a, b) = self.window.as_slices();
        let samples: Vec<i16> = a.iter().chain(b).copied().collect();
        zero_crossing_frequency(&samples, SAMPLE_RATE)
    }

    /// Packets, errors, samples and the measured frequency so far.
    pub fn stats(&self) -> ReceiverStats {
        ReceiverStats {
            packets: self.packets,
            errors: self.errors,
            samples: self.samples,
            frequency: self.frequency(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(hz: f64, frames: usize) -> (f64, ReceiverStats) {
        let mut source = ToneSource::new(hz).expect("encoder");
        let mut receiver = ToneReceiver::new().expect("decoder");
        for _ in 0..frames {
            let frame = source.next_frame().expect("encode");
            assert!(!frame.is_empty() && frame.len() <= MAX_PAYLOAD);
            assert_eq!(receiver.push(&frame).expect("decode"), FRAME_SAMPLES);
        }
        let stats = receiver.stats();
        (stats.frequency.expect("a tone"), stats)
    }

    #[test]
    fn a_440_hz_tone_decodes_to_440_hz() {
        let (hz, stats) = measure(440.0, 50);
        assert!((hz - 440.0).abs() <= 5.0, "measured {hz} Hz");
        assert_eq!(stats.packets, 50);
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.samples, 50 * FRAME_SAMPLES as u64);
    }

    #[test]
    fn a_1000_hz_tone_decodes_to_1000_hz() {
        let (hz, _) = measure(1000.0, 40);
        assert!((hz - 1000.0).abs() <= 5.0, "measured {hz} Hz");
    }

    #[test]
    fn no_frequency_before_half_a_second() {
        let mut source = ToneSource::new(440.0).expect("encoder");
        let mut receiver = ToneReceiver::new().expect("decoder");
        for _ in 0..24 {
            receiver
                .push(&source.next_frame().expect("encode"))
                .expect("decode");
        }
        assert_eq!(receiver.frequency(), None, "0.48 s is too short");
        receiver
            .push(&source.next_frame().expect("encode"))
            .expect("decode");
        assert!(receiver.frequency().is_some(), "0.5 s is enough");
    }

    #[test]
    fn malformed_payloads_are_counted_errors() {
        let mut source = ToneSource::new(440.0).expect("encoder");
        let mut receiver = ToneReceiver::new().expect("decoder");
        // Empty; code 3 without its frame count byte; code 3 announcing 0 frames; code 2 whose
        // first frame length runs past the end.
        for bad in [&[][..], &[0x03], &[0x03, 0x00], &[0x02, 0xfc, 0xff]] {
            assert!(receiver.push(bad).is_err(), "{bad:?} decoded");
        }
        assert_eq!(receiver.stats().errors, 4);
        assert_eq!(receiver.stats().packets, 4);
        // Arbitrary bytes never panic, and the receiver still decodes afterwards.
        let mut x: u32 = 0x1234_5678;
        for len in 1..200 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = receiver.push(&junk);
        }
        for _ in 0..50 {
            receiver
                .push(&source.next_frame().expect("encode"))
                .expect("decode");
        }
        let hz = receiver.frequency().expect("a tone");
        assert!((hz - 440.0).abs() <= 5.0, "measured {hz} Hz");
    }

    #[test]
    fn out_of_range_tones_are_refused() {
        for hz in [0.0, 10.0, 30_000.0, f64::NAN] {
            assert!(matches!(ToneSource::new(hz), Err(MediaError::Frequency(_))));
        }
    }
}
