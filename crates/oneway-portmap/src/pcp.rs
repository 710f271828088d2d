//! PCP (RFC 6887) MAP requests: a sans-IO codec ([`encode_map`], [`decode_map`]) and a tokio
//! exchange on a socket bound to the client address.
//!
//! Why not `crab_nat` here: its request socket is bound to the unspecified address, so the
//! gateway sees whatever source the kernel picks, and a PCP server (RFC 6887 §8.1) refuses a
//! request whose client address differs from the source with ADDRESS_MISMATCH. The kernel's
//! pick is wrong in two ordinary cases: IPv6 behind a router that announces its link-local
//! address (the request leaves from the host's link-local address, while the pinhole must be
//! for its global one), and a listener bound to a second address of its interface. Binding the
//! socket to the listener's address fixes both. NAT-PMP (which maps the source address, IPv4
//! only) still uses `crab_nat`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::{PortmapError, Protocol};

/// PCP's version number.
pub const VERSION: u8 = 2;
/// The MAP opcode.
pub const OPCODE_MAP: u8 = 1;
/// IANA protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// A MAP request or response is 60 bytes (24 header + 36 opcode data).
pub const MAP_SIZE: usize = 60;
/// The largest PCP message (RFC 6887 §7).
pub const MAX_SIZE: usize = 1100;

/// A MAP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    /// The mapping nonce (the same for a renewal and the deletion).
    pub nonce: [u8; 12],
    /// The client's address (the listener's address; the request must come from it).
    pub client: IpAddr,
    /// The internal port.
    pub internal_port: u16,
    /// The external address and port to suggest (a renewal suggests the current one).
    pub suggested: Option<SocketAddr>,
    /// The requested lifetime in seconds; 0 deletes the mapping.
    pub lifetime: u32,
}

/// A successful MAP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapResponse {
    /// The granted lifetime in seconds.
    pub lifetime: u32,
    /// The server's epoch time.
    pub epoch: u32,
    /// The assigned external address and port (an IPv4-mapped address is unmapped).
    pub external: SocketAddr,
}

/// The name of a PCP result code (RFC 6887 §7.4).
pub fn result_name(code: u8) -> String {
    match code {
        0 => "SUCCESS".into(),
        1 => "UNSUPP_VERSION".into(),
        2 => "NOT_AUTHORIZED".into(),
        3 => "MALFORMED_REQUEST".into(),
        4 => "UNSUPP_OPCODE".into(),
        5 => "UNSUPP_OPTION".into(),
        6 => "MALFORMED_OPTION".into(),
        7 => "NETWORK_FAILURE".into(),
        8 => "NO_RESOURCES".into(),
        9 => "UNSUPP_PROTOCOL".into(),
        10 => "USER_EX_QUOTA".into(),
        11 => "CANNOT_PROVIDE_EXTERNAL".into(),
        12 => "ADDRESS_MISMATCH".into(),
        13 => "EXCESSIVE_REMOTE_PEERS".into(),
        other => format!("result code {other}"),
    }
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Encodes a MAP request for UDP.
pub fn encode_map(req: &MapRequest) -> [u8; MAP_SIZE] {
    let mut b = [0u8; MAP_SIZE];
    b[0] = VERSION;
    b[1] = OPCODE_MAP;
    b[4..8].copy_from_slice(&req.lifetime.to_be_bytes());
    b[8..24].copy_from_slice(&to_v6(req.client).octets());
    b[24..36].copy_from_slice(&req.nonce);
    b[36] = PROTOCOL_UDP;
    b[40..42].copy_from_slice(&req.internal_port.to_be_bytes());
    let (port, ip) = match req.suggested {
        Some(s) => (s.port(), to_v6(s.ip())),
        // "Unknown": :: for IPv6, ::ffff:0.0.0.0 for IPv4 (RFC 6887 §11.1).
        None => match req.client {
            IpAddr::V4(_) => (0, Ipv4Addr::UNSPECIFIED.to_ipv6_mapped()),
            IpAddr::V6(_) => (0, Ipv6Addr::UNSPECIFIED),
        },
    };
    b[42..44].copy_from_slice(&port.to_be_bytes());
    b[44..60].copy_from_slice(&ip.octets());
    b
}

fn malformed(detail: impl Into<String>) -> PortmapError {
    PortmapError::Malformed {
        protocol: Protocol::Pcp,
        detail: detail.into(),
    }
}

fn refused(code: u8, extra: &str) -> PortmapError {
    PortmapError::Refused {
        protocol: Protocol::Pcp,
        result: format!("{}{extra}", result_name(code)),
    }
}

/// Decodes the answer to `req`: the response, a refusal (error result code, named) or a
/// malformed answer (too short, not a multiple of 4, wrong version, no R bit, wrong opcode,
/// nonce, protocol or internal port).
pub fn decode_map(bytes: &[u8], req: &MapRequest) -> Result<MapResponse, PortmapError> {
    // A NAT-PMP-only server answers a PCP request with its own UNSUPP_VERSION (RFC 6887 §9).
    if bytes.len() >= 4 && bytes[0] == 0 && bytes[1] & 0x80 != 0 {
        let code = u16::from_be_bytes([bytes[2], bytes[3]]);
        return Err(PortmapError::Refused {
            protocol: Protocol::Pcp,
            result: if code == 1 {
                "UNSUPP_VERSION (the gateway speaks NAT-PMP)".to_owned()
            } else {
                format!("a NAT-PMP answer with result code {code}")
            },
        });
    }
    if bytes.len() < 24 {
        return Err(malformed(format!(
            "{} bytes, fewer than a PCP header",
            bytes.len()
        )));
    }
    if !bytes.len().is_multiple_of(4) || bytes.len() > MAX_SIZE {
        return Err(malformed(format!("a length of {} bytes", bytes.len())));
    }
    if bytes[0] != VERSION {
        return Err(malformed(format!("version {}", bytes[0])));
    }
    if bytes[1] & 0x80 == 0 {
        return Err(malformed("a request, not a response (R bit clear)"));
    }
    if bytes[1] & 0x7f != OPCODE_MAP {
        return Err(malformed(format!(
            "opcode {} instead of MAP",
            bytes[1] & 0x7f
        )));
    }
    let result = bytes[3];
    let lifetime = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let epoch = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if result != 0 {
        if bytes.len() >= MAP_SIZE && bytes[24..36] != req.nonce {
            return Err(malformed("an error answer for another nonce"));
        }
        return Err(refused(result, ""));
    }
    if bytes.len() < MAP_SIZE {
        return Err(malformed(format!(
            "{} bytes, fewer than a MAP response",
            bytes.len()
        )));
    }
    if bytes[24..36] != req.nonce {
        return Err(malformed(
            "the answer carries another nonce than the request",
        ));
    }
    if bytes[36] != PROTOCOL_UDP {
        return Err(malformed(format!("protocol {} instead of UDP", bytes[36])));
    }
    let internal = u16::from_be_bytes([bytes[40], bytes[41]]);
    if internal != req.internal_port {
        return Err(malformed(format!(
            "internal port {internal} instead of {}",
            req.internal_port
        )));
    }
    let port = u16::from_be_bytes([bytes[42], bytes[43]]);
    let mut ip = [0u8; 16];
    ip.copy_from_slice(&bytes[44..60]);
    let ip = Ipv6Addr::from(ip);
    let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
    if req.lifetime > 0 && (port == 0 || ip.is_unspecified()) {
        return Err(malformed(format!(
            "the assigned external address {ip} port {port}"
        )));
    }
    Ok(MapResponse {
        lifetime,
        epoch,
        external: SocketAddr::new(ip, port),
    })
}

/// Sends `req` to `gateway` from a socket bound to the client address, retransmits once, and
/// returns the decoded answer: `portmap-timeout` after `timeout` + 2 × `timeout` of silence,
/// the answer's named cause at once when it is bad.
pub async fn exchange(
    gateway: SocketAddr,
    req: &MapRequest,
    timeout: Duration,
) -> Result<MapResponse, PortmapError> {
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            PortmapError::Unavailable {
                protocol: Protocol::Pcp,
                detail: format!("nothing answers on {gateway} (ICMP port unreachable)"),
            }
        } else {
            PortmapError::Io {
                protocol: Protocol::Pcp,
                detail: e.to_string(),
            }
        }
    };
    // A link-local client address needs the interface: the gateway's scope.
    let bind = match (req.client, gateway) {
        (IpAddr::V6(v6), SocketAddr::V6(gw)) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
            SocketAddr::V6(std::net::SocketAddrV6::new(v6, 0, 0, gw.scope_id()))
        }
        (ip, _) => SocketAddr::new(ip, 0),
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
    socket.connect(gateway).await.map_err(io)?;
    let bytes = encode_map(req);
    let mut buf = [0u8; MAX_SIZE + 4];
    let mut wait = timeout;
    for _ in 0..2 {
        socket.send(&bytes).await.map_err(io)?;
        match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            Err(_) => wait *= 2,
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(n)) => return decode_map(&buf[..n], req),
        }
    }
    Err(PortmapError::Timeout {
        protocol: Protocol::Pcp,
        gateway,
        millis: (timeout * 3).as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> MapRequest {
        MapRequest {
            nonce: *b"0123456789ab",
            client: "192.168.1.10".parse().expect("ip"),
            internal_port: 41000,
            suggested: None,
            lifetime: 7200,
        }
    }

    fn answer(req: &MapRequest, result: u8, external: SocketAddr) -> Vec<u8> {
        let mut b = encode_map(&MapRequest {
            suggested: Some(external),
            ..*req
        })
        .to_vec();
        b[1] |= 0x80;
        b[3] = result;
        b[8..12].copy_from_slice(&99u32.to_be_bytes());
        b[12..24].fill(0);
        b
    }

    #[test]
    fn request_layout() {
        let b = encode_map(&req());
        assert_eq!(&b[..4], &[2, 1, 0, 0]);
        assert_eq!(u32::from_be_bytes([b[4], b[5], b[6], b[7]]), 7200);
        assert_eq!(
            &b[8..24],
            &"::ffff:192.168.1.10"
                .parse::<Ipv6Addr>()
                .expect("ip")
                .octets()
        );
        assert_eq!(&b[24..36], b"0123456789ab");
        assert_eq!(b[36], 17);
        assert_eq!(&b[40..42], &41000u16.to_be_bytes());
        assert_eq!(&b[44..60], &Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
        let v6 = encode_map(&MapRequest {
            client: "2001:db8::2".parse().expect("ip"),
            ..req()
        });
        assert_eq!(&v6[44..60], &[0u8; 16]);
    }

    #[test]
    fn decodes_success_and_refusals() {
        let r = req();
        let ext: SocketAddr = "203.0.113.7:41000".parse().expect("addr");
        let ok = decode_map(&answer(&r, 0, ext), &r).expect("success");
        assert_eq!(ok.external, ext);
        assert_eq!((ok.lifetime, ok.epoch), (7200, 99));
        for (code, name) in [
            (2, "NOT_AUTHORIZED"),
            (8, "NO_RESOURCES"),
            (12, "ADDRESS_MISMATCH"),
        ] {
            let e = decode_map(&answer(&r, code, ext), &r).expect_err("refused");
            assert_eq!(e, refused(code, ""), "{name}");
            assert!(e.to_string().contains(name));
        }
        // An error answer may be just the header.
        let e = decode_map(&answer(&r, 4, ext)[..24], &r).expect_err("refused");
        assert!(e.to_string().contains("UNSUPP_OPCODE"), "{e}");
        // A NAT-PMP server's UNSUPP_VERSION.
        let e = decode_map(&[0, 0x81, 0, 1, 0, 0, 0, 9], &r).expect_err("refused");
        assert!(e.to_string().contains("UNSUPP_VERSION"), "{e}");
    }

    #[test]
    fn malformed_answers_are_named() {
        let r = req();
        let good = answer(&r, 0, "203.0.113.7:41000".parse().expect("addr"));
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (b"garbage!".to_vec(), "fewer than a PCP header"),
            (good[..20].to_vec(), "fewer than a PCP header"),
            (good[..58].to_vec(), "length"),
            (good[..40].to_vec(), "fewer than a MAP response"),
        ];
        let mut tweak = |i: usize, v: u8, why: &'static str| {
            let mut b = good.clone();
            b[i] = v;
            cases.push((b, why));
        };
        tweak(0, 3, "version 3");
        tweak(1, 0x01, "R bit");
        tweak(1, 0x82, "opcode 2");
        tweak(24, b'X', "nonce");
        tweak(36, 6, "protocol 6");
        tweak(41, 0, "internal port");
        let mut zero_port = good.clone();
        zero_port[42..44].fill(0);
        cases.push((zero_port, "external"));
        for (bytes, why) in cases {
            let e = decode_map(&bytes, &r).expect_err(why);
            assert_eq!(e.code(), "portmap-malformed", "{why}: {e}");
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
    }
}
