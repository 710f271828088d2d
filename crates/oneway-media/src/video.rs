//! Test video, sans-IO: a [`PatternSource`] that draws a moving pattern and encodes it with
//! VP8 (Debian's libvpx through the `vpx-encode` crate), and a [`VideoReceiver`] that reads
//! what arrives (RTP payloads with their VP8 payload descriptor, RFC 7741 §4.2, or whole frames
//! from a stack that depacketizes), counting packets, frames and key frames and reading each
//! key frame's dimensions from its VP8 header (RFC 6386 §9.1).
//!
//! A stack sends each [`PatternSource::next_frame`] every [`VIDEO_FRAME_DURATION`], advancing
//! the RTP timestamp by [`VIDEO_FRAME_TICKS`] (90 kHz clock). str0m packetizes whole frames
//! itself; `rtc` takes RTP packets, made with its VP8 payloader.
//!
//! ```
//! use oneway_media::{PatternSource, VideoReceiver};
//!
//! let mut source = PatternSource::new()?;
//! let mut receiver = VideoReceiver::default();
//! for _ in 0..10 {
//!     for frame in source.next_frame()? {
//!         receiver.push_frame(&frame.data);
//!     }
//! }
//! let stats = receiver.stats();
//! assert_eq!(stats.frames, 10);
//! assert_eq!(stats.resolution, Some((320, 240)));
//! # Ok::<(), oneway_media::MediaError>(())
//! ```

use std::time::Duration;

use crate::MediaError;

/// The RTP clock rate of video (RFC 7741 §6.1).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// Frames per second of the test pattern.
pub const VIDEO_FPS: u32 = 20;
/// The duration of one frame: the pacing of frames.
pub const VIDEO_FRAME_DURATION: Duration = Duration::from_millis(1000 / VIDEO_FPS as u64);
/// RTP timestamp step between frames.
pub const VIDEO_FRAME_TICKS: u32 = VIDEO_CLOCK_RATE / VIDEO_FPS;
/// The pattern's default width in pixels.
pub const VIDEO_WIDTH: u32 = 320;
/// The pattern's default height in pixels.
pub const VIDEO_HEIGHT: u32 = 240;
/// The encoder's target bitrate in kbit/s.
const BITRATE_KBPS: u32 = 250;

/// One encoded VP8 frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The VP8 frame (RFC 6386), to be packetized per RFC 7741.
    pub data: Vec<u8>,
    /// Whether it is a key frame (decodable on its own).
    pub keyframe: bool,
}

/// A moving test pattern (a gradient with a bar sweeping across it), VP8-encoded frame by
/// frame.
pub struct PatternSource {
    encoder: vpx_encode::Encoder,
    width: u32,
    height: u32,
    /// Frames drawn so far (the pattern's phase and the encoder's timestamp).
    frame: u64,
    /// The I420 picture, redrawn each frame.
    picture: Vec<u8>,
}

// SAFETY: the encoder owns its libvpx context (`vpx_codec_ctx_t`, raw pointers into libvpx's
// heap) and nothing else refers to it. libvpx keeps no thread affinity for a context: it may be
// used from any thread as long as calls do not overlap, which `&mut self` guarantees.
#[allow(unsafe_code)]
unsafe impl Send for PatternSource {}

impl std::fmt::Debug for PatternSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatternSource")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frame", &self.frame)
            .finish()
    }
}

impl PatternSource {
    /// A [`VIDEO_WIDTH`]×[`VIDEO_HEIGHT`] pattern at [`VIDEO_FPS`].
    pub fn new() -> Result<Self, MediaError> {
        Self::with_size(VIDEO_WIDTH, VIDEO_HEIGHT)
    }

    /// A pattern of `width`×`height` pixels (even, 16..=1920 × 16..=1080).
    pub fn with_size(width: u32, height: u32) -> Result<Self, MediaError> {
        let even = |v: u32, max: u32| v.is_multiple_of(2) && (16..=max).contains(&v);
        if !even(width, 1920) || !even(height, 1080) {
            return Err(MediaError::VideoSize { width, height });
        }
        let encoder = vpx_encode::Encoder::new(vpx_encode::Config {
            width,
            height,
            timebase: [1, VIDEO_FPS as i32],
            bitrate: BITRATE_KBPS,
            codec: vpx_encode::VideoCodecId::VP8,
        })
        .map_err(|e| MediaError::Vpx(e.to_string()))?;
        let pixels = (width * height) as usize;
        Ok(PatternSource {
            encoder,
            width,
            height,
            frame: 0,
            picture: vec![0; pixels + pixels / 2],
        })
    }

    /// The pattern's width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Draws and encodes the next frame. libvpx in real-time mode returns one frame per
    /// picture (the first is a key frame); it may return none when it drops one to keep its
    /// bitrate.
    pub fn next_frame(&mut self) -> Result<Vec<EncodedFrame>, MediaError> {
        self.draw();
        let pts = i64::try_from(self.frame).unwrap_or(i64::MAX);
        self.frame += 1;
        let packets = self
            .encoder
            .encode(pts, &self.picture)
            .map_err(|e| MediaError::Vpx(e.to_string()))?;
        Ok(packets
            .map(|f| EncodedFrame {
                data: f.data.to_vec(),
                keyframe: f.key,
            })
            .collect())
    }

    /// A luma gradient with a bright bar moving 4 pixels a frame; chroma shifts slowly.
    fn draw(&mut self) {
        let (w, h) = (self.width as usize, self.height as usize);
        let bar = (self.frame as usize * 4) % w;
        let (luma, chroma) = self.picture.split_at_mut(w * h);
        for (y, row) in luma.chunks_exact_mut(w).enumerate() {
            for (x, px) in row.iter_mut().enumerate() {
                *px = if x.abs_diff(bar) < 8 {
                    235
                } else {
                    (16 + (x + y) * 200 / (w + h)) as u8
                };
            }
        }
        let shift = (self.frame % 256) as u8;
        let (u, v) = chroma.split_at_mut(w * h / 4);
        u.fill(128u8.wrapping_add(shift / 4));
        v.fill(128u8.wrapping_sub(shift / 4));
    }
}

/// What a [`VideoReceiver`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VideoStats {
    /// RTP packets (or, from a depacketizing stack, the packets a frame came in).
    pub packets: u64,
    /// Frames completed (RTP marker bit, or whole frames pushed).
    pub frames: u64,
    /// Key frames among them with a valid VP8 key frame header.
    pub keyframes: u64,
    /// Packets or frames that did not parse as VP8 (counted in `packets` too).
    pub errors: u64,
    /// The width and height of the last key frame.
    pub resolution: Option<(u16, u16)>,
}

/// Reads VP8 as it arrives: counts and checks, without decoding pictures.
#[derive(Clone, Debug, Default)]
pub struct VideoReceiver {
    stats: VideoStats,
}

/// Why a VP8 payload or frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Vp8Error {
    /// The payload ends inside its payload descriptor, or carries no frame data.
    #[error("truncated VP8 payload descriptor")]
    TruncatedDescriptor,
    /// A key frame shorter than its 10-byte header.
    #[error("truncated VP8 key frame header")]
    TruncatedKeyFrame,
    /// A key frame without the start code 9d 01 2a.
    #[error("VP8 key frame without its start code")]
    BadStartCode,
    /// A key frame of zero width or height.
    #[error("VP8 key frame of zero size")]
    ZeroSize,
}

impl VideoReceiver {
    /// Reads one RTP payload (VP8 payload descriptor + data); `marker` is the RTP marker bit,
    /// set on a frame's last packet.
    pub fn push_rtp(&mut self, payload: &[u8], marker: bool) -> Result<(), Vp8Error> {
        self.stats.packets += 1;
        let read = parse_descriptor(payload).and_then(|(start, data)| {
            if start {
                self.read_frame_header(data)
            } else {
                Ok(())
            }
        });
        if read.is_err() {
            self.stats.errors += 1;
        }
        if marker {
            self.stats.frames += 1;
        }
        read
    }

    /// Reads one whole VP8 frame (depacketized by the stack) that arrived in `packets` RTP
    /// packets.
    pub fn push_frame_packets(&mut self, frame: &[u8], packets: u64) -> Result<(), Vp8Error> {
        self.stats.packets += packets.max(1);
        self.stats.frames += 1;
        let read = if frame.is_empty() {
            Err(Vp8Error::TruncatedDescriptor)
        } else {
            self.read_frame_header(frame)
        };
        if read.is_err() {
            self.stats.errors += 1;
        }
        read
    }

    /// [`VideoReceiver::push_frame_packets`] for a frame that came in one packet.
    pub fn push_frame(&mut self, frame: &[u8]) -> Result<(), Vp8Error> {
        self.push_frame_packets(frame, 1)
    }

    /// Counts a key frame and reads its size (RFC 6386 §9.1: a 3-byte frame tag whose low bit
    /// is 0 for key frames, the start code, 14-bit width and height).
    fn read_frame_header(&mut self, frame: &[u8]) -> Result<(), Vp8Error> {
        let Some(&tag) = frame.first() else {
            return Err(Vp8Error::TruncatedDescriptor);
        };
        if tag & 0x01 != 0 {
            return Ok(()); // an inter frame
        }
        let header = frame.get(..10).ok_or(Vp8Error::TruncatedKeyFrame)?;
        if header[3..6] != [0x9d, 0x01, 0x2a] {
            return Err(Vp8Error::BadStartCode);
        }
        let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
        let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
        if width == 0 || height == 0 {
            return Err(Vp8Error::ZeroSize);
        }
        self.stats.keyframes += 1;
        self.stats.resolution = Some((width, height));
        Ok(())
    }

    /// Packets, frames, key frames, errors and the last key frame's size so far.
    pub fn stats(&self) -> VideoStats {
        self.stats
    }
}

/// Splits an RTP payload into (start of a frame, VP8 data) after its payload descriptor
/// (RFC 7741 §4.2): `X R N S R PID`, then with X: `I L T K`, a 7- or 15-bit PictureID with I,
/// TL0PICIDX with L, one `TID Y KEYIDX` byte with T or K.
pub fn parse_descriptor(payload: &[u8]) -> Result<(bool, &[u8]), Vp8Error> {
    let first = *payload.first().ok_or(Vp8Error::TruncatedDescriptor)?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at).ok_or(Vp8Error::TruncatedDescriptor)?;
        at += 1;
        if ext & 0x80 != 0 {
            let pid = *payload.get(at).ok_or(Vp8Error::TruncatedDescriptor)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    match payload.get(at..) {
        Some(data) if !data.is_empty() => Ok((start, data)),
        _ => Err(Vp8Error::TruncatedDescriptor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packetizes like a sender would (RFC 7741, no extension): S on the first packet.
    fn packetize(frame: &[u8], mtu: usize) -> Vec<(Vec<u8>, bool)> {
        let chunks: Vec<&[u8]> = frame.chunks(mtu).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                (p, i + 1 == n)
            })
            .collect()
    }

    #[test]
    fn the_pattern_encodes_to_vp8_key_and_inter_frames() {
        let mut source = PatternSource::new().expect("encoder");
        let mut receiver = VideoReceiver::default();
        let mut frames = Vec::new();
        for _ in 0..40 {
            frames.extend(source.next_frame().expect("encode"));
        }
        assert!(frames.len() >= 35, "{} of 40 frames encoded", frames.len());
        assert!(frames[0].keyframe, "the first frame is a key frame");
        assert!(frames.iter().skip(1).any(|f| !f.keyframe));
        for f in &frames {
            receiver.push_frame(&f.data).expect("VP8");
        }
        let stats = receiver.stats();
        assert_eq!(stats.frames, frames.len() as u64);
        assert_eq!(
            stats.keyframes,
            frames.iter().filter(|f| f.keyframe).count() as u64
        );
        assert_eq!(stats.resolution, Some((320, 240)));
        assert_eq!(stats.errors, 0);
    }

    #[test]
    fn rtp_packets_are_counted_and_frames_end_at_the_marker() {
        let mut source = PatternSource::with_size(640, 480).expect("encoder");
        let mut receiver = VideoReceiver::default();
        let mut packets = 0;
        let mut frames = 0;
        for _ in 0..5 {
            for f in source.next_frame().expect("encode") {
                frames += 1;
                for (p, marker) in packetize(&f.data, 300) {
                    packets += 1;
                    receiver.push_rtp(&p, marker).expect("VP8");
                }
            }
        }
        let stats = receiver.stats();
        assert_eq!((stats.packets, stats.frames), (packets, frames));
        assert!(
            packets > frames,
            "a 640x480 key frame takes several packets"
        );
        assert_eq!(stats.keyframes, 1);
        assert_eq!(stats.resolution, Some((640, 480)));
    }

    #[test]
    fn descriptor_extensions_are_skipped() {
        // X, then I (15-bit PictureID), L, T: 1 + 1 + 2 + 1 + 1 bytes before the data.
        let payload = [0x90, 0xe0, 0x80, 0x01, 0x05, 0x20, 0xAA];
        assert_eq!(parse_descriptor(&payload), Ok((true, &[0xAA][..])));
        // Not a start: S without PID 0.
        assert_eq!(parse_descriptor(&[0x11, 0xBB]), Ok((false, &[0xBB][..])));
    }

    #[test]
    fn malformed_vp8_is_counted_and_never_panics() {
        let mut receiver = VideoReceiver::default();
        assert_eq!(
            receiver.push_rtp(&[], true),
            Err(Vp8Error::TruncatedDescriptor)
        );
        assert_eq!(
            receiver.push_rtp(&[0x90, 0x80], false),
            Err(Vp8Error::TruncatedDescriptor)
        );
        assert_eq!(
            receiver.push_rtp(&[0x10, 0x00, 0x00], true),
            Err(Vp8Error::TruncatedKeyFrame)
        );
        let bad_start = [0x00, 0, 0, 0x9d, 0x01, 0x2b, 1, 0, 1, 0];
        assert_eq!(receiver.push_frame(&bad_start), Err(Vp8Error::BadStartCode));
        let zero = [0x00, 0, 0, 0x9d, 0x01, 0x2a, 0, 0, 1, 0];
        assert_eq!(receiver.push_frame(&zero), Err(Vp8Error::ZeroSize));
        let stats = receiver.stats();
        assert_eq!((stats.errors, stats.keyframes), (5, 0));
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..300 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = receiver.push_rtp(&junk, len % 3 == 0);
            let _ = receiver.push_frame(&junk);
        }
    }

    #[test]
    fn odd_or_huge_sizes_are_refused() {
        for (w, h) in [(321, 240), (320, 0), (4096, 240), (8, 8)] {
            assert!(matches!(
                PatternSource::with_size(w, h),
                Err(MediaError::VideoSize { .. })
            ));
        }
    }
}
