//! TURN over a byte stream (RFC 8656 §11.5 / RFC 5766 §11.7): STUN messages and ChannelData
//! messages follow each other on the TCP connection with no other delimiter, so the receiver
//! cuts frames by their length fields. ChannelData is padded to a multiple of four bytes over
//! a stream (the padding is not counted in its length field); STUN messages always are.

use thiserror::Error;

/// Size of a STUN header (type, length, magic cookie, transaction id).
pub const STUN_HEADER: usize = 20;
/// Size of a ChannelData header (channel number, length).
pub const CHANNEL_DATA_HEADER: usize = 4;
/// Most bytes the decoder buffers before it gives up on the stream: one largest frame
/// (a 16-bit length plus header and padding) and a little more.
pub const MAX_BUFFERED: usize = 2 * (u16::MAX as usize + STUN_HEADER + 4);

/// Why the stream cannot be cut into frames; the connection to the server is unusable after it.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FramingError {
    /// The first two bits of a frame are neither STUN (`00`) nor ChannelData (`01`).
    #[error("neither STUN nor ChannelData at the start of a frame (first byte {0:#04x})")]
    UnknownFrame(u8),
    /// More than [`MAX_BUFFERED`] bytes are waiting for the end of a frame.
    #[error("more than {MAX_BUFFERED} bytes buffered without a complete frame")]
    Overflow,
}

/// The kind of a frame cut from the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A STUN message (request, response or indication).
    Stun,
    /// A ChannelData message (channel numbers 0x4000..=0x7FFF), with its padding.
    ChannelData,
}

/// Cuts a TURN-over-TCP byte stream into frames.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buffer: Vec<u8>,
}

/// Rounds `n` up to a multiple of four.
pub fn padded(n: usize) -> usize {
    n.div_ceil(4) * 4
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        if self.buffer.len() + bytes.len() > MAX_BUFFERED {
            return Err(FramingError::Overflow);
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Bytes buffered that do not form a complete frame yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, if the buffer holds one. A ChannelData frame keeps its padding
    /// (a ChannelData decoder ignores bytes after the length).
    pub fn next_frame(&mut self) -> Result<Option<(FrameKind, Vec<u8>)>, FramingError> {
        let Some(&first) = self.buffer.first() else {
            return Ok(None);
        };
        let (kind, header) = match first >> 6 {
            0b00 => (FrameKind::Stun, STUN_HEADER),
            0b01 => (FrameKind::ChannelData, CHANNEL_DATA_HEADER),
            _ => return Err(FramingError::UnknownFrame(first)),
        };
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let length = usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]]));
        let total = match kind {
            FrameKind::Stun => header + length,
            FrameKind::ChannelData => header + padded(length),
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        let rest = self.buffer.split_off(total);
        let frame = std::mem::replace(&mut self.buffer, rest);
        Ok(Some((kind, frame)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(len: u16) -> Vec<u8> {
        let mut m = vec![0x01, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(9, usize::from(len)));
        m
    }

    fn channel_data(payload: &[u8]) -> Vec<u8> {
        let mut m = vec![0x40, 0x00];
        m.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        m.extend_from_slice(payload);
        m.resize(padded(m.len()), 0);
        m
    }

    #[test]
    fn cuts_mixed_frames_fed_byte_by_byte() {
        let a = stun(8);
        let b = channel_data(b"hello");
        let c = stun(0);
        let stream: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
        let mut d = StreamDecoder::new();
        let mut frames = Vec::new();
        for byte in stream {
            d.push(&[byte]).expect("push");
            while let Some(f) = d.next_frame().expect("frame") {
                frames.push(f);
            }
        }
        assert_eq!(
            frames,
            vec![
                (FrameKind::Stun, a),
                (FrameKind::ChannelData, b),
                (FrameKind::Stun, c)
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn channel_data_padding_is_consumed() {
        let b = channel_data(b"x");
        assert_eq!(b.len(), 8);
        let mut d = StreamDecoder::new();
        d.push(&b).expect("push");
        d.push(&stun(4)).expect("push");
        assert_eq!(
            d.next_frame().expect("ok").map(|f| f.1.len()),
            Some(8),
            "header 4 + 1 byte + 3 padding"
        );
        assert_eq!(
            d.next_frame().expect("ok").map(|f| f.0),
            Some(FrameKind::Stun)
        );
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        let mut d = StreamDecoder::new();
        d.push(&[0xc0, 0, 0, 0]).expect("push");
        assert_eq!(d.next_frame(), Err(FramingError::UnknownFrame(0xc0)));
        let mut d = StreamDecoder::new();
        assert_eq!(
            d.push(&vec![0; MAX_BUFFERED + 1]),
            Err(FramingError::Overflow)
        );
    }
}
