//! Which STUN datagrams the listener's nomination replay looks at: a Binding request with or
//! without USE-CANDIDATE, and a Binding success response (RFC 8489 §5, RFC 8445 §7.1.2); and
//! DTLS before nomination ([`EarlySelection`]).
//!
//! **DTLS before nomination.** `rtc`'s controlled agent selects a pair, and so sends anything
//! but STUN, only on a USE-CANDIDATE check. A dialer that starts DTLS on a pair it has checked
//! but not nominated yet (Chromium: it nominates on its next check, about 50 ms later) waits
//! that long for the listener's first DTLS flight. libwebrtc's controlled side answers at once
//! on any valid pair. [`EarlySelection`] does the same with `rtc`: once the dialer's DTLS has
//! arrived on a pair, that pair's check from the dialer carried the listener's credentials
//! (its MESSAGE-INTEGRITY verifies with the listener's password) and the listener's own check
//! on it succeeded, the engine hands `rtc` that check again with USE-CANDIDATE added, signed
//! anew with the listener's password, so `rtc` selects the pair the dialer's DTLS came on.
//! Nothing is trusted that `rtc` does not check again itself: the copy is only made from a
//! check whose integrity verified, and `rtc` selects the pair only if its own check on it
//! succeeded (a response it matched to its transaction).

use std::net::SocketAddr;

#[cfg(test)]
use oneway_core::demux::{NominationCopyError, nominating_copy};

/// Most pairs [`EarlySelection`] remembers, and most nominating copies it hands out.
const EARLY_PAIRS: usize = 8;

type Pair = (SocketAddr, SocketAddr);

/// Listener, until ICE connects: what each pair has seen, to select the pair the dialer's DTLS
/// arrived on before the dialer nominates it (see the module documentation). Bounded.
#[derive(Debug, Default)]
pub(crate) struct EarlySelection {
    /// The dialer's latest check without USE-CANDIDATE, per pair (source, destination).
    checks: Vec<(Pair, Vec<u8>)>,
    /// Pairs on which a Binding success response arrived (the listener's own check).
    answered: Vec<Pair>,
    /// Pairs on which the dialer's DTLS arrived.
    dtls: Vec<Pair>,
    /// Nominating copies handed out so far.
    copies: usize,
}

impl EarlySelection {
    /// A check without USE-CANDIDATE from `pair.0` to `pair.1`.
    pub(crate) fn check(&mut self, pair: Pair, contents: &[u8]) {
        if let Some(entry) = self.checks.iter_mut().find(|(p, _)| *p == pair) {
            entry.1 = contents.to_vec();
        } else if self.checks.len() < EARLY_PAIRS {
            self.checks.push((pair, contents.to_vec()));
        }
    }

    /// A Binding success response from `pair.0` to `pair.1`.
    pub(crate) fn answered(&mut self, pair: Pair) {
        if !self.answered.contains(&pair) && self.answered.len() < EARLY_PAIRS {
            self.answered.push(pair);
        }
    }

    /// DTLS from `pair.0` to `pair.1`.
    pub(crate) fn dtls(&mut self, pair: Pair) {
        if !self.dtls.contains(&pair) && self.dtls.len() < EARLY_PAIRS {
            self.dtls.push(pair);
        }
    }

    /// The pair and the check to nominate it with, once a pair has seen the dialer's DTLS, a
    /// check of the dialer's, and a success response to the listener's own check; the check
    /// is returned unchanged (see `oneway_core::demux::nominating_copy`). At most [`EARLY_PAIRS`] times.
    pub(crate) fn ready(&mut self) -> Option<(Pair, Vec<u8>)> {
        if self.copies >= EARLY_PAIRS {
            return None;
        }
        let (pair, check) = self
            .checks
            .iter()
            .find(|(p, _)| self.dtls.contains(p) && self.answered.contains(p))?;
        self.copies += 1;
        Some((*pair, check.clone()))
    }
}

/// What a STUN datagram is, as far as the nomination replay needs to know.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StunKind {
    /// A Binding request, with or without USE-CANDIDATE.
    Request {
        /// Carries USE-CANDIDATE (RFC 8445 §7.1.2).
        use_candidate: bool,
    },
    /// A Binding success response.
    SuccessResponse,
}

/// Classifies a STUN Binding request or success response (RFC 8489 §5); `None` for anything
/// else, including malformed attributes.
pub(crate) fn stun_kind(contents: &[u8]) -> Option<StunKind> {
    const HEADER: usize = 20;
    const USE_CANDIDATE: u16 = 0x0025;
    let header = contents.get(..HEADER)?;
    if header[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    match u16::from_be_bytes([header[0], header[1]]) {
        0x0101 => return Some(StunKind::SuccessResponse),
        0x0001 => {}
        _ => return None,
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = contents.get(HEADER..HEADER + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        if kind == USE_CANDIDATE {
            return Some(StunKind::Request {
                use_candidate: true,
            });
        }
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    Some(StunKind::Request {
        use_candidate: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::integrity::MessageIntegrity;
    use rtc::stun::message::{BINDING_REQUEST, Message, Setter};

    /// A Binding request header with `attributes` (already padded).
    fn request(attributes: &[u8]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&u16::try_from(attributes.len()).unwrap_or(0).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(attributes);
        m
    }

    #[test]
    fn classifies_nominating_checks() {
        // PRIORITY (4 bytes), then USE-CANDIDATE (empty).
        let nominating = request(&[0x00, 0x24, 0, 4, 1, 2, 3, 4, 0x00, 0x25, 0, 0]);
        assert_eq!(
            stun_kind(&nominating),
            Some(StunKind::Request {
                use_candidate: true
            })
        );
        // USERNAME of 5 bytes (padded to 8), no USE-CANDIDATE.
        let plain = request(&[0x00, 0x06, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        assert_eq!(
            stun_kind(&plain),
            Some(StunKind::Request {
                use_candidate: false
            })
        );
        let mut success = request(&[]);
        success[1] = 0x01;
        success[0] = 0x01;
        assert_eq!(stun_kind(&success), Some(StunKind::SuccessResponse));
    }

    /// A dialer's check as `rtc` and browsers send it: USERNAME, PRIORITY, ICE-CONTROLLING,
    /// MESSAGE-INTEGRITY with `pwd`, FINGERPRINT.
    fn signed_check(pwd: &str) -> Vec<u8> {
        use rtc::stun::attributes::{ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME};
        let provider = rtc::crypto::default_provider().expect("provider");
        let mut m = Message::new();
        m.typ = BINDING_REQUEST;
        m.transaction_id.0 = [9; 12];
        m.write_header();
        m.add(ATTR_USERNAME, b"listener-ufrag:dialer");
        m.add(ATTR_PRIORITY, &[0x6e, 0, 0x1e, 0xff]);
        m.add(ATTR_ICE_CONTROLLING, &[1, 2, 3, 4, 5, 6, 7, 8]);
        MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), provider.crypto())
            .add_to(&mut m)
            .expect("integrity");
        FINGERPRINT.add_to(&mut m).expect("fingerprint");
        m.raw
    }

    #[test]
    fn the_nominating_copy_keeps_the_check_and_verifies_with_the_same_password() {
        let provider = rtc::crypto::default_provider().expect("provider");
        let pwd = "the-listener-password-of-22+";
        let check = signed_check(pwd);
        assert_eq!(
            stun_kind(&check),
            Some(StunKind::Request {
                use_candidate: false
            })
        );
        let copy = nominating_copy(&check, pwd).expect("copy");
        assert_eq!(
            stun_kind(&copy),
            Some(StunKind::Request {
                use_candidate: true
            })
        );
        let mut parsed = Message::new();
        parsed.unmarshal_binary(&copy).expect("parse");
        assert_eq!(parsed.transaction_id.0, [9; 12]);
        MessageIntegrity::check(&mut parsed, pwd.as_bytes(), provider.crypto())
            .expect("integrity with the listener's password");
        rtc::stun::fingerprint::FINGERPRINT
            .check(&parsed)
            .expect("fingerprint");
        assert_eq!(
            parsed
                .get(rtc::stun::attributes::ATTR_USERNAME)
                .expect("username"),
            b"listener-ufrag:dialer"
        );
        // Copying a copy adds no second USE-CANDIDATE.
        let again = nominating_copy(&copy, pwd).expect("copy of a copy");
        assert_eq!(again, copy);
    }

    #[test]
    fn no_copy_of_a_check_that_does_not_verify() {
        let check = signed_check("someone-elses-password");
        assert_eq!(
            nominating_copy(&check, "the-listener-password"),
            Err(NominationCopyError::Integrity)
        );
        let mut response = check.clone();
        response[0] = 0x01;
        response[1] = 0x01;
        assert_eq!(
            nominating_copy(&response, "someone-elses-password"),
            Err(NominationCopyError::NotARequest)
        );
        assert!(matches!(
            nominating_copy(&check[..30], "someone-elses-password"),
            Err(NominationCopyError::Malformed(_))
        ));
        assert!(matches!(
            nominating_copy(&[22, 254, 253, 0, 0], "x"),
            Err(NominationCopyError::Malformed(_))
        ));
    }

    #[test]
    fn early_selection_waits_for_dtls_a_check_and_an_answer_on_one_pair() {
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let (a, b, listener) = (addr(1000), addr(2000), addr(3000));
        let mut early = EarlySelection::default();
        early.check((a, listener), b"check from a");
        early.answered((a, listener));
        early.dtls((b, listener));
        assert_eq!(early.ready(), None, "DTLS came on another pair");
        early.check((b, listener), b"check from b");
        assert_eq!(early.ready(), None, "no success response on b's pair yet");
        early.answered((b, listener));
        assert_eq!(
            early.ready(),
            Some(((b, listener), b"check from b".to_vec()))
        );
        // The latest check of a pair is the one kept; and the copies are bounded.
        early.check((b, listener), b"newer check from b");
        assert_eq!(
            early.ready(),
            Some(((b, listener), b"newer check from b".to_vec()))
        );
        for _ in 0..EARLY_PAIRS {
            early.ready();
        }
        assert_eq!(early.ready(), None);
    }

    #[test]
    fn rejects_truncated_and_foreign_datagrams() {
        let nominating = request(&[0x00, 0x25, 0, 0]);
        assert_eq!(
            stun_kind(&nominating[..22]),
            None,
            "length beyond the datagram"
        );
        assert_eq!(stun_kind(&[22, 254, 253, 0]), None, "DTLS");
        // An attribute length running past the end.
        assert_eq!(stun_kind(&request(&[0x00, 0x06, 0, 200, 0, 0, 0, 0])), None);
        let mut no_cookie = request(&[]);
        no_cookie[4] = 0;
        assert_eq!(stun_kind(&no_cookie), None);
    }
}
