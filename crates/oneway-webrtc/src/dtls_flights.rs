//! RFC 6347 §4.2.4 for `rtc`'s DTLS handshake: when the peer retransmits a flight, this side
//! retransmits its last one (see [`DtlsFlights`]).

use std::collections::VecDeque;

use oneway_endpoint::Transmit;

/// Most datagrams of one DTLS handshake flight kept for [`DtlsFlights`].
const FLIGHT_DATAGRAMS: usize = 16;
/// Most peer handshake datagrams remembered for [`DtlsFlights`].
const SEEN_DATAGRAMS: usize = 64;

/// RFC 6347 §4.2.4 for `rtc`'s DTLS handshake: when the peer retransmits a flight, this side
/// retransmits its last one. `rtc-dtls` 0.21 clears its retransmit timer whenever handshake
/// datagrams arrive, even a retransmission that completes nothing; a flight of ours lost in
/// part was then never sent again, and the handshake stalled until the dialer's `dtls-timeout`
/// (a str0m dialer, which retransmits its ClientHello, met it in 1 to 2 dials out of 10 at
/// 5-10 % loss). Only kept until DTLS connects; bounded.
#[derive(Debug, Default)]
pub(crate) struct DtlsFlights {
    /// This side's last flight: its handshake datagrams since the peer's last new one.
    last: Vec<Transmit>,
    /// A new peer datagram arrived since this side last sent: the next send starts a flight.
    peer_spoke: bool,
    /// Digests of the peer's handshake datagrams, record sequence numbers left out (a
    /// retransmission carries new ones).
    seen: VecDeque<u64>,
}

impl DtlsFlights {
    /// This side sends a DTLS datagram.
    pub(crate) fn sent(&mut self, out: &Transmit) {
        if self.peer_spoke {
            self.last.clear();
            self.peer_spoke = false;
        }
        if self.last.len() < FLIGHT_DATAGRAMS {
            self.last.push(out.clone());
        }
    }

    /// The peer sent a DTLS datagram: this side's last flight again if the datagram repeats
    /// handshake records the peer already sent.
    pub(crate) fn received(&mut self, contents: &[u8]) -> &[Transmit] {
        if contents.first() != Some(&22) {
            return &[];
        }
        let digest = handshake_digest(contents);
        if self.seen.contains(&digest) {
            return &self.last;
        }
        if self.seen.len() >= SEEN_DATAGRAMS {
            self.seen.pop_front();
        }
        self.seen.push_back(digest);
        self.peer_spoke = true;
        &[]
    }
}

/// A digest of a DTLS datagram without its records' sequence numbers.
fn handshake_digest(datagram: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut stripped = datagram.to_vec();
    let mut at = 0;
    // Record header: type, version (2), epoch (2), sequence number (6), length (2).
    while let Some(header) = stripped.get_mut(at..at + 13) {
        header[5..11].fill(0);
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        at += 13 + len;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    stripped.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// A DTLS handshake record (content type 22) with sequence number `seq` and `body`.
    fn record(seq: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, seq];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn a_retransmitted_peer_flight_brings_back_our_last_flight() {
        let out = |b: u8| Transmit {
            source: SocketAddr::from(([127, 0, 0, 1], 1)),
            destination: SocketAddr::from(([127, 0, 0, 1], 2)),
            contents: vec![22, b],
        };
        let mut flights = DtlsFlights::default();
        // The peer's ClientHello, our HelloVerifyRequest.
        assert!(flights.received(&record(0, b"hello")).is_empty());
        flights.sent(&out(1));
        // The peer's second ClientHello (new), our four-datagram flight.
        let mut two = record(1, b"hello+cookie");
        two.extend(record(2, b"more"));
        assert!(flights.received(&two).is_empty());
        for b in 2..6 {
            flights.sent(&out(b));
        }
        // The peer retransmits it, with new record sequence numbers: our flight again.
        let mut again = record(7, b"hello+cookie");
        again.extend(record(8, b"more"));
        let replay: Vec<u8> = flights
            .received(&again)
            .iter()
            .map(|o| o.contents[1])
            .collect();
        assert_eq!(replay, vec![2, 3, 4, 5]);
        // Other content, or anything but handshake records, replays nothing.
        assert!(flights.received(&record(9, b"other")).is_empty());
        assert!(flights.received(&[23, 0xfe, 0xfd]).is_empty());
        // A truncated record is digested without panicking.
        assert!(flights.received(&[22, 0xfe, 0xfd, 0, 0]).is_empty());
    }
}
