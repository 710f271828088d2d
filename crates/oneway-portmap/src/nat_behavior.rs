//! RFC 5780 NAT filtering discovery (§4.4): a sans-IO codec (STUN Binding requests with
//! CHANGE-REQUEST, answers with XOR-MAPPED-ADDRESS, OTHER-ADDRESS and RESPONSE-ORIGIN, built and
//! parsed with `rtc-stun`), a pure classifier, and a small tokio driver.
//!
//! The server needs two addresses (coturn with two `--listening-ip`s): test I is a plain
//! Binding request and reports OTHER-ADDRESS; test II asks the server to answer from the other
//! IP and port, test III from the other port only. An answer to II means the NAT does not
//! filter; an answer to III only means it filters by address; neither means by address and
//! port. A missing answer counts as "filtered".

use std::net::SocketAddr;
use std::time::Duration;

use rtc_stun::addr::MappedAddress;
use rtc_stun::attributes::{ATTR_CHANGE_REQUEST, ATTR_OTHER_ADDRESS, ATTR_RESPONSE_ORIGIN};
use rtc_stun::error_code::ErrorCodeAttribute;
use rtc_stun::message::{
    BINDING_ERROR, BINDING_REQUEST, BINDING_SUCCESS, Getter as _, Message, TransactionId,
};
use rtc_stun::xoraddr::XorMappedAddress;
use serde::Serialize;

use crate::NatFiltering;

/// CHANGE-REQUEST flags (RFC 5780 §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// No change: test I.
    None,
    /// Change IP and port: test II.
    IpAndPort,
    /// Change port only: test III.
    Port,
}

impl Change {
    fn flags(self) -> u8 {
        match self {
            Change::None => 0,
            Change::IpAndPort => 0x04 | 0x02,
            Change::Port => 0x02,
        }
    }
}

/// Why an answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunProbeError {
    /// Not a STUN message, or one that does not parse.
    #[error("malformed STUN answer: {0}")]
    Malformed(String),
    /// A STUN message for another transaction (or not a Binding response).
    #[error("unexpected STUN message")]
    Unexpected,
    /// A Binding error response (e.g. 420: the server does not know CHANGE-REQUEST).
    #[error("STUN error {code}")]
    ErrorResponse {
        /// The ERROR-CODE.
        code: u16,
    },
}

impl StunProbeError {
    /// The stable cause code: `stun-malformed`, `stun-unexpected`, `stun-error-response`.
    pub fn code(&self) -> &'static str {
        match self {
            StunProbeError::Malformed(_) => "stun-malformed",
            StunProbeError::Unexpected => "stun-unexpected",
            StunProbeError::ErrorResponse { .. } => "stun-error-response",
        }
    }
}

/// A Binding request of test I, II or III: its transaction id (to match the answer) and bytes.
pub fn binding_request(change: Change) -> (TransactionId, Vec<u8>) {
    let mut m = Message::new();
    m.typ = BINDING_REQUEST;
    m.transaction_id = TransactionId::new();
    m.write_header();
    if change != Change::None {
        m.add(ATTR_CHANGE_REQUEST, &[0, 0, 0, change.flags()]);
    }
    (m.transaction_id, m.raw)
}

/// What a Binding success response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BindingAnswer {
    /// The server-reflexive address (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from old servers).
    pub mapped: SocketAddr,
    /// The server's other address (OTHER-ADDRESS), present when it can run RFC 5780 tests.
    pub other_address: Option<SocketAddr>,
    /// Where the answer was sent from, as the server says (RESPONSE-ORIGIN).
    pub response_origin: Option<SocketAddr>,
}

/// Parses `bytes` as the answer to transaction `id`.
pub fn parse_binding_answer(
    bytes: &[u8],
    id: TransactionId,
) -> Result<BindingAnswer, StunProbeError> {
    let mut m = Message::new();
    m.unmarshal_binary(bytes)
        .map_err(|e| StunProbeError::Malformed(e.to_string()))?;
    if m.transaction_id != id {
        return Err(StunProbeError::Unexpected);
    }
    if m.typ == BINDING_ERROR {
        let mut err = ErrorCodeAttribute::default();
        let code = err.get_from(&m).map(|()| err.code.0).unwrap_or(0);
        return Err(StunProbeError::ErrorResponse { code });
    }
    if m.typ != BINDING_SUCCESS {
        return Err(StunProbeError::Unexpected);
    }
    let mut xor = XorMappedAddress::default();
    let mapped = if xor.get_from(&m).is_ok() {
        SocketAddr::new(xor.ip, xor.port)
    } else {
        let mut plain = MappedAddress::default();
        plain
            .get_from(&m)
            .map_err(|_| StunProbeError::Malformed("no (XOR-)MAPPED-ADDRESS".to_owned()))?;
        SocketAddr::new(plain.ip, plain.port)
    };
    let addr_attr = |t| {
        let mut a = MappedAddress::default();
        a.get_from_as(&m, t)
            .ok()
            .map(|()| SocketAddr::new(a.ip, a.port))
    };
    Ok(BindingAnswer {
        mapped,
        other_address: addr_attr(ATTR_OTHER_ADDRESS),
        response_origin: addr_attr(ATTR_RESPONSE_ORIGIN),
    })
}

/// The outcome of the three tests, the input of [`classify`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilteringTests {
    /// Test I's answer, if any.
    pub test1: Option<BindingAnswer>,
    /// Whether test II (change IP and port) was answered from another IP and port.
    pub test2_answered: bool,
    /// Whether test III (change port) was answered from the same IP and another port.
    pub test3_answered: bool,
}

/// RFC 5780 §4.4: the filtering behaviour from the tests. `Unknown` when test I failed or
/// the server has no OTHER-ADDRESS (it cannot change address).
pub fn classify(tests: &FilteringTests) -> NatFiltering {
    match tests.test1 {
        Some(BindingAnswer {
            other_address: Some(_),
            ..
        }) => {
            if tests.test2_answered {
                NatFiltering::EndpointIndependent
            } else if tests.test3_answered {
                NatFiltering::AddressDependent
            } else {
                NatFiltering::AddressAndPortDependent
            }
        }
        _ => NatFiltering::Unknown,
    }
}

/// What the driver measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FilteringReport {
    /// The verdict.
    pub filtering: NatFiltering,
    /// The server-reflexive address from test I.
    pub mapped: Option<SocketAddr>,
    /// The server's other address.
    pub other_address: Option<SocketAddr>,
    /// Why the verdict is `unknown`, if it is (e.g. `stun-timeout`, `no-other-address`,
    /// `stun-error-response`).
    pub unknown_because: Option<String>,
}

/// Runs tests I, II and III from `socket` against `server` (tests II and III at the same
/// time). Each test retransmits at 0, `wait`/3 and 2·`wait`/3 and waits `wait` in all; the
/// whole run takes about 2 × `wait` when the NAT filters (500 ms is plenty on a LAN or for a
/// nearby server; a far server needs more). Never fails: problems give `unknown`.
pub async fn discover_filtering(
    socket: &tokio::net::UdpSocket,
    server: SocketAddr,
    wait: Duration,
) -> FilteringReport {
    let mut report = FilteringReport {
        filtering: NatFiltering::Unknown,
        mapped: None,
        other_address: None,
        unknown_because: None,
    };
    let test1 = match exchange(socket, server, &[Change::None], wait).await {
        Ok(answers) => answers[0],
        Err(e) => {
            report.unknown_because = Some(e);
            return report;
        }
    };
    let Some((answer, _)) = test1 else {
        report.unknown_because = Some("stun-timeout".to_owned());
        return report;
    };
    report.mapped = Some(answer.mapped);
    report.other_address = answer.other_address;
    let Some(other) = answer.other_address else {
        report.unknown_because = Some("no-other-address".to_owned());
        return report;
    };
    let answers = match exchange(socket, server, &[Change::IpAndPort, Change::Port], wait).await {
        Ok(a) => a,
        Err(e) => {
            report.unknown_because = Some(e);
            return report;
        }
    };
    // An answer counts only if it came from where the change asked for.
    let test2_answered = answers[0]
        .is_some_and(|(_, from)| from.ip() != server.ip() && from.port() != server.port());
    let test3_answered = answers[1]
        .is_some_and(|(_, from)| from.ip() == server.ip() && from.port() != server.port());
    tracing::debug!(%server, %other, test2_answered, test3_answered, "RFC 5780 filtering tests");
    report.filtering = classify(&FilteringTests {
        test1: Some(answer),
        test2_answered,
        test3_answered,
    });
    report
}

/// Sends one request per `changes` entry (retransmitting) and collects the answers (with their
/// source address) until all are in or `wait` is over. `Err` with a cause code for an error
/// response.
async fn exchange(
    socket: &tokio::net::UdpSocket,
    server: SocketAddr,
    changes: &[Change],
    wait: Duration,
) -> Result<Vec<Option<(BindingAnswer, SocketAddr)>>, String> {
    let requests: Vec<(TransactionId, Vec<u8>)> =
        changes.iter().map(|c| binding_request(*c)).collect();
    let mut answers: Vec<Option<(BindingAnswer, SocketAddr)>> = vec![None; changes.len()];
    let started = tokio::time::Instant::now();
    let deadline = started + wait;
    let mut next_send = started;
    let mut sends = 0;
    let mut buf = [0u8; 1500];
    while answers.iter().any(Option::is_none) {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send && sends < 3 {
            for (i, (_, bytes)) in requests.iter().enumerate() {
                if answers[i].is_none() {
                    socket
                        .send_to(bytes, server)
                        .await
                        .map_err(|e| format!("stun-io: {e}"))?;
                }
            }
            sends += 1;
            next_send = now + wait / 3;
        }
        let until = if sends < 3 {
            next_send.min(deadline)
        } else {
            deadline
        };
        match tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err("stun-unreachable".to_owned());
            }
            Ok(Err(e)) => return Err(format!("stun-io: {e}")),
            Ok(Ok((n, from))) => {
                for (i, (id, _)) in requests.iter().enumerate() {
                    match parse_binding_answer(&buf[..n], *id) {
                        Ok(a) => answers[i] = Some((a, from)),
                        Err(StunProbeError::Unexpected) => {}
                        Err(e @ StunProbeError::ErrorResponse { .. }) => {
                            return Err(format!("{}: {e}", e.code()));
                        }
                        Err(e) => tracing::debug!(%from, "ignored: {e}"),
                    }
                }
            }
        }
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(other: bool) -> BindingAnswer {
        BindingAnswer {
            mapped: "203.0.113.7:5000".parse().expect("addr"),
            other_address: other.then(|| "198.51.100.4:3479".parse().expect("addr")),
            response_origin: None,
        }
    }

    #[test]
    fn classification() {
        let t = |a, b| FilteringTests {
            test1: Some(answer(true)),
            test2_answered: a,
            test3_answered: b,
        };
        assert_eq!(classify(&t(true, true)), NatFiltering::EndpointIndependent);
        assert_eq!(classify(&t(true, false)), NatFiltering::EndpointIndependent);
        assert_eq!(classify(&t(false, true)), NatFiltering::AddressDependent);
        assert_eq!(
            classify(&t(false, false)),
            NatFiltering::AddressAndPortDependent
        );
        assert_eq!(classify(&FilteringTests::default()), NatFiltering::Unknown);
        let no_other = FilteringTests {
            test1: Some(answer(false)),
            test2_answered: true,
            test3_answered: true,
        };
        assert_eq!(classify(&no_other), NatFiltering::Unknown);
    }

    #[test]
    fn request_carries_change_request() {
        let (id, bytes) = binding_request(Change::IpAndPort);
        let mut m = Message::new();
        m.unmarshal_binary(&bytes).expect("parses");
        assert_eq!(m.typ, BINDING_REQUEST);
        assert_eq!(m.transaction_id, id);
        assert_eq!(m.get(ATTR_CHANGE_REQUEST).expect("attr"), vec![0, 0, 0, 6]);
        let (_, plain) = binding_request(Change::None);
        assert_eq!(plain.len(), 20);
        let (_, port) = binding_request(Change::Port);
        assert_eq!(&port[20..], &[0, 3, 0, 4, 0, 0, 0, 2]);
    }

    #[test]
    fn answers_parse_and_mismatches_are_named() {
        let (id, _) = binding_request(Change::None);
        let mut m = Message::new();
        m.typ = BINDING_SUCCESS;
        m.transaction_id = id;
        m.write_header();
        XorMappedAddress {
            ip: "203.0.113.7".parse().expect("ip"),
            port: 5000,
        }
        .add_to_as(&mut m, rtc_stun::attributes::ATTR_XORMAPPED_ADDRESS)
        .expect("xor");
        MappedAddress {
            ip: "198.51.100.4".parse().expect("ip"),
            port: 3479,
        }
        .add_to_as(&mut m, ATTR_OTHER_ADDRESS)
        .expect("other");
        let a = parse_binding_answer(&m.raw, id).expect("answer");
        assert_eq!(a, answer(true));
        let (other_id, _) = binding_request(Change::None);
        assert_eq!(
            parse_binding_answer(&m.raw, other_id),
            Err(StunProbeError::Unexpected)
        );
        let e = parse_binding_answer(b"garbage!", id).expect_err("garbage");
        assert_eq!(e.code(), "stun-malformed");
        let e = parse_binding_answer(&m.raw[..m.raw.len() - 3], id).expect_err("truncated");
        assert_eq!(e.code(), "stun-malformed");
        // A 420 error response.
        let mut m = Message::new();
        m.typ = BINDING_ERROR;
        m.transaction_id = id;
        m.write_header();
        m.add(
            rtc_stun::attributes::ATTR_ERROR_CODE,
            &[0, 0, 4, 20, b'x', 0, 0, 0],
        );
        assert_eq!(
            parse_binding_answer(&m.raw, id),
            Err(StunProbeError::ErrorResponse { code: 420 })
        );
    }
}
