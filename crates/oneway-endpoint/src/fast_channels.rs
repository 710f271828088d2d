//! Application channels of a fast start (`spec/handshake.md` §5.5), sans-IO: each side opens
//! its channels on negotiated SCTP streams of its own parity (dialer even from 2, listener odd
//! from 1), in order, and announces each with a channel-0 `open` message before its first data,
//! so no DCEP round trip is spent. The receiving side keeps the next [`WINDOW`] peer streams
//! created in advance, so data that overtakes its `open` (loss, reordering) is held, not lost.

use std::collections::BTreeMap;

use oneway_core::ProofRole;

/// Peer streams a side keeps created ahead of their `open`.
pub const WINDOW: u16 = 4;
/// Most bytes held on one announced-but-not-yet-open peer stream; beyond it the peer is refused
/// (`early-data-limit`): a peer sends `open` before data, so only reordering fills this.
pub const MAX_HELD_BYTES: usize = 256 * 1024;

/// Why a fast channel operation was refused. The cause code is [`FastChannelError::code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FastChannelError {
    /// The peer announced a stream of this side's parity, stream 0, or one outside the window.
    #[error("stream {stream} is not the peer's next fast channel (expected {expected}..)")]
    UnexpectedStream {
        /// The stream announced.
        stream: u16,
        /// The next stream the peer may announce.
        expected: u16,
    },
    /// More than [`MAX_HELD_BYTES`] arrived on a stream before its `open`.
    #[error("more than {MAX_HELD_BYTES} bytes on stream {stream} before its open")]
    HeldTooMuch {
        /// The stream.
        stream: u16,
    },
    /// Every stream id of this side's parity is used.
    #[error("no SCTP stream id left for a new channel")]
    Exhausted,
}

impl FastChannelError {
    /// The cause code sent on channel 0 (`spec/handshake.md` §8).
    pub fn code(&self) -> &'static str {
        match self {
            FastChannelError::UnexpectedStream { .. } => "bad-channel-open",
            FastChannelError::HeldTooMuch { .. } => "early-data-limit",
            FastChannelError::Exhausted => "channel-limit",
        }
    }
}

/// Messages held on a stream before its `open`: `(binary, data)`, in arrival order.
pub type HeldMessages = Vec<(bool, Vec<u8>)>;

/// A peer stream created ahead of its `open`, with the data that overtook it.
#[derive(Debug)]
struct Reserved<Id> {
    id: Id,
    held: HeldMessages,
    held_bytes: usize,
}

/// What to do with data that arrived on a channel.
#[derive(Debug, PartialEq, Eq)]
pub enum DataVerdict {
    /// Not a reserved stream: deliver it as usual.
    Deliver,
    /// Held until the stream's `open` arrives.
    Held,
}

/// The fast channels of one connection, generic over the stack's channel id.
#[derive(Debug)]
pub struct FastChannels<Id> {
    next_local: Option<u16>,
    /// The lowest peer stream not announced yet.
    next_peer: u16,
    /// Peer streams created ahead, not announced yet, by stream id.
    reserved: BTreeMap<u16, Reserved<Id>>,
    /// The highest peer stream created so far (0: none).
    reserved_up_to: u16,
}

impl<Id: Copy + PartialEq> FastChannels<Id> {
    /// The fast channels of a connection in `role` (the dialer is the DTLS client: even ids).
    pub fn new(role: ProofRole) -> Self {
        let (local, peer) = match role {
            ProofRole::Dialer => (2, 1),
            ProofRole::Listener => (1, 2),
        };
        FastChannels {
            next_local: Some(local),
            next_peer: peer,
            reserved: BTreeMap::new(),
            reserved_up_to: 0,
        }
    }

    /// The stream for this side's next channel.
    pub fn open_local(&mut self) -> Result<u16, FastChannelError> {
        let stream = self.next_local.ok_or(FastChannelError::Exhausted)?;
        self.next_local = stream.checked_add(2).filter(|s| *s < u16::MAX);
        Ok(stream)
    }

    /// Peer streams to create now (negotiated, ordered, reliable), so that [`WINDOW`] of them
    /// are always ready; report each with [`FastChannels::reserved`].
    pub fn to_reserve(&self) -> Vec<u16> {
        let mut out = Vec::new();
        let mut stream = if self.reserved_up_to == 0 {
            self.next_peer
        } else {
            self.reserved_up_to.saturating_add(2)
        };
        let limit = self.next_peer.saturating_add(2 * (WINDOW - 1));
        while stream <= limit && stream < u16::MAX {
            out.push(stream);
            stream = stream.saturating_add(2);
        }
        out
    }

    /// Peer stream `stream` was created as channel `id`.
    pub fn reserved(&mut self, stream: u16, id: Id) {
        self.reserved_up_to = self.reserved_up_to.max(stream);
        self.reserved.insert(
            stream,
            Reserved {
                id,
                held: Vec::new(),
                held_bytes: 0,
            },
        );
    }

    /// Whether `id` is a peer stream created ahead and not announced yet (its stack-level
    /// "open" is not the application's).
    pub fn is_reserved(&self, id: Id) -> bool {
        self.reserved.values().any(|r| r.id == id)
    }

    /// Data arrived on channel `id`.
    pub fn on_data(
        &mut self,
        id: Id,
        binary: bool,
        data: Vec<u8>,
    ) -> Result<DataVerdict, FastChannelError> {
        let Some((stream, reserved)) = self.reserved.iter_mut().find(|(_, r)| r.id == id) else {
            return Ok(DataVerdict::Deliver);
        };
        reserved.held_bytes += data.len();
        if reserved.held_bytes > MAX_HELD_BYTES {
            return Err(FastChannelError::HeldTooMuch { stream: *stream });
        }
        reserved.held.push((binary, data));
        Ok(DataVerdict::Held)
    }

    /// The peer announced `stream` (channel-0 `open`): its channel id and the data that
    /// arrived before, in order. The peer announces its streams in order, without gaps.
    pub fn announce(&mut self, stream: u16) -> Result<(Id, HeldMessages), FastChannelError> {
        let unexpected = FastChannelError::UnexpectedStream {
            stream,
            expected: self.next_peer,
        };
        if stream != self.next_peer {
            return Err(unexpected);
        }
        let reserved = self.reserved.remove(&stream).ok_or(unexpected)?;
        self.next_peer = stream.saturating_add(2);
        Ok((reserved.id, reserved.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_uses_its_parity_in_order() {
        let mut dialer = FastChannels::<u32>::new(ProofRole::Dialer);
        assert_eq!(dialer.open_local(), Ok(2));
        assert_eq!(dialer.open_local(), Ok(4));
        let mut listener = FastChannels::<u32>::new(ProofRole::Listener);
        assert_eq!(listener.open_local(), Ok(1));
        assert_eq!(listener.to_reserve(), vec![2, 4, 6, 8]);
        assert_eq!(dialer.to_reserve(), vec![1, 3, 5, 7]);
    }

    #[test]
    fn data_before_its_open_is_held_and_delivered_in_order() {
        let mut listener = FastChannels::<u32>::new(ProofRole::Listener);
        for (n, stream) in listener.to_reserve().into_iter().enumerate() {
            listener.reserved(stream, 100 + n as u32);
        }
        assert!(listener.is_reserved(100));
        assert_eq!(listener.on_data(7, true, vec![9]), Ok(DataVerdict::Deliver));
        assert_eq!(listener.on_data(100, true, vec![1]), Ok(DataVerdict::Held));
        assert_eq!(listener.on_data(100, false, vec![2]), Ok(DataVerdict::Held));
        let (id, held) = listener.announce(2).expect("next");
        assert_eq!(id, 100);
        assert_eq!(held, vec![(true, vec![1]), (false, vec![2])]);
        assert!(!listener.is_reserved(100));
        assert_eq!(
            listener.on_data(100, true, vec![3]),
            Ok(DataVerdict::Deliver)
        );
        // The window moves on by one.
        assert_eq!(listener.to_reserve(), vec![10]);
    }

    #[test]
    fn out_of_order_wrong_parity_and_floods_are_refused() {
        let mut listener = FastChannels::<u32>::new(ProofRole::Listener);
        for stream in listener.to_reserve() {
            listener.reserved(stream, u32::from(stream));
        }
        for bad in [0, 1, 3, 4, 200] {
            assert_eq!(
                listener.announce(bad).expect_err("refused").code(),
                "bad-channel-open",
                "stream {bad}"
            );
        }
        assert_eq!(
            listener.on_data(2, true, vec![0; MAX_HELD_BYTES]),
            Ok(DataVerdict::Held)
        );
        assert_eq!(
            listener
                .on_data(2, true, vec![0])
                .expect_err("refused")
                .code(),
            "early-data-limit"
        );
    }

    #[test]
    fn stream_ids_run_out_with_a_named_error() {
        let mut dialer = FastChannels::<u32>::new(ProofRole::Dialer);
        dialer.next_local = Some(65_532);
        assert_eq!(dialer.open_local(), Ok(65_532));
        assert_eq!(dialer.open_local(), Ok(65_534));
        assert_eq!(
            dialer.open_local().expect_err("exhausted").code(),
            "channel-limit"
        );
    }
}
