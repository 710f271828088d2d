//! Which STUN datagrams the listener's nomination replay looks at: a Binding request with or
//! without USE-CANDIDATE, and a Binding success response (RFC 8489 §5, RFC 8445 §7.1.2).

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
