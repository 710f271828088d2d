//! Default gateways per address family, from Linux's `/proc/net/route` and
//! `/proc/net/ipv6_route` (the parsers are pure; [`default_gateways`] reads the files).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;

/// A default route's next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The next hop's address.
    pub ip: IpAddr,
    /// The interface the route goes out of.
    pub interface: String,
    /// The interface index (the IPv6 scope id of a link-local gateway); 0 when unknown.
    pub scope_id: u32,
    /// The route metric (lower is preferred).
    pub metric: u32,
}

impl Gateway {
    /// The gateway's socket address at `port`, with the scope id for an IPv6 gateway.
    pub fn socket_addr(&self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V4(v4) => SocketAddr::from((v4, port)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, self.scope_id)),
        }
    }
}

/// Parses `/proc/net/route`: the default routes (destination and mask 0, flags UP|GATEWAY),
/// lowest metric first. Lines that do not parse are skipped.
pub fn parse_ipv4_routes(text: &str) -> Vec<Gateway> {
    let mut out: Vec<Gateway> = text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let dest = u32::from_str_radix(f[1], 16).ok()?;
            let gw = u32::from_str_radix(f[2], 16).ok()?;
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            let metric = f[6].parse().ok()?;
            let mask = u32::from_str_radix(f[7], 16).ok()?;
            if dest != 0 || mask != 0 || flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY {
                return None;
            }
            // The kernel prints the network-order address as a native-endian integer.
            let ip = Ipv4Addr::from(gw.to_ne_bytes());
            Some(Gateway {
                ip: IpAddr::V4(ip),
                interface: f[0].to_owned(),
                scope_id: 0,
                metric,
            })
        })
        .collect();
    out.sort_by_key(|g| g.metric);
    out
}

/// Parses `/proc/net/ipv6_route`: the default routes (::/0 with a non-zero next hop, flags
/// UP|GATEWAY), lowest metric first. The scope id is left 0 (see [`default_gateways`]).
pub fn parse_ipv6_routes(text: &str) -> Vec<Gateway> {
    let mut out: Vec<Gateway> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let dest = u128::from_str_radix(f[0], 16).ok()?;
            let plen = u8::from_str_radix(f[1], 16).ok()?;
            let hop = u128::from_str_radix(f[4], 16).ok()?;
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            if dest != 0
                || plen != 0
                || hop == 0
                || flags & (RTF_UP | RTF_GATEWAY) != RTF_UP | RTF_GATEWAY
            {
                return None;
            }
            Some(Gateway {
                ip: IpAddr::V6(Ipv6Addr::from(hop)),
                interface: f[9].to_owned(),
                scope_id: 0,
                metric,
            })
        })
        .collect();
    out.sort_by_key(|g| g.metric);
    out
}

/// The default gateways of this host for the family of `ip` (IPv4 or IPv6), best first, with
/// the interface index filled in. Empty when there is none or the files cannot be read.
pub fn default_gateways(ipv6: bool) -> Vec<Gateway> {
    let (path, parse): (&str, fn(&str) -> Vec<Gateway>) = if ipv6 {
        ("/proc/net/ipv6_route", parse_ipv6_routes)
    } else {
        ("/proc/net/route", parse_ipv4_routes)
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut gateways = parse(&text);
    for g in &mut gateways {
        g.scope_id = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", g.interface))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
    }
    gateways
}

/// The source address the kernel picks for datagrams to `gateway` (a connected UDP socket
/// sends nothing): the client address a PCP request must carry.
pub fn source_address_towards(gateway: SocketAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = match gateway {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.connect(gateway)?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_default_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
            wlan0\t00000000\t0100000B\t0003\t0\t0\t50\t00000000\t0\t0\t0\n\
            garbage line\n";
        let gws = parse_ipv4_routes(text);
        assert_eq!(gws.len(), 2);
        assert_eq!(gws[0].ip, "11.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!(gws[0].interface, "wlan0");
        assert_eq!(gws[1].ip, "192.168.1.1".parse::<IpAddr>().expect("ip"));
        assert!(parse_ipv4_routes("").is_empty());
    }

    #[test]
    fn ipv6_default_route() {
        let text = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n\
            20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        let gws = parse_ipv6_routes(text);
        assert_eq!(gws.len(), 1);
        assert_eq!(gws[0].ip, "fe80::1".parse::<IpAddr>().expect("ip"));
        assert_eq!(gws[0].metric, 0x400);
        let sa = Gateway {
            scope_id: 7,
            ..gws[0].clone()
        }
        .socket_addr(5351);
        assert_eq!(sa.to_string(), "[fe80::1%7]:5351");
    }
}
