//! What a listener learns, before it issues its token, about where it can be reached from: the
//! address a STUN server sees (server-reflexive), a port mapping from its router (PCP, NAT-PMP,
//! UPnP-IGD, `oneway-portmap`), and the NAT's filtering (RFC 5780, when the STUN server has a
//! second address). All three run at the same time, each bounded (STUN 3 × 500 ms, mapping
//! about 1.5 s without an answering gateway, filtering about 1 s), and end in one
//! [`Reachability`] verdict. The ways in become token candidates (`spec/token.md` §3.4, §5.6).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use oneway_connection::StackError;
use oneway_portmap::nat_behavior::{FilteringReport, discover_filtering};
use oneway_portmap::{
    Mapping, MappingHandle, PortMapper, PortmapConfig, PortmapError, ProtocolChoice,
    ReachabilityInputs, assess, is_public,
};
pub use oneway_portmap::{NatFiltering, Reachability, Reason, Scope, Via};

use crate::gather::server_reflexive;
use crate::net::Socket;

/// How long each RFC 5780 filtering test waits for its answer.
pub const FILTERING_WAIT: Duration = Duration::from_millis(500);

/// When a listener asks its router for a port mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PortMapping {
    /// Never (the library default: tests and loopback listeners do not probe gateways).
    #[default]
    Off,
    /// When none of the listener's host addresses is public (what `oneway listen` does),
    /// trying the protocols `choice` allows.
    WhenNotPublic(ProtocolChoice),
    /// Always, trying the protocols `choice` allows.
    Always(ProtocolChoice),
}

/// What [`learn`] found.
#[derive(Debug)]
pub struct Learned {
    /// The address the STUN server saw the listener's socket of its family come from.
    pub server_reflexive: Option<SocketAddr>,
    /// One outcome per socket asked for a mapping (IPv4 first); empty when mapping was off or
    /// not needed.
    pub mappings: Vec<Result<MappingHandle, PortmapError>>,
    /// The NAT's filtering, when the STUN server could tell (two addresses).
    pub filtering: Option<FilteringReport>,
    /// The verdict, from all of the above and the host addresses.
    pub reachability: Reachability,
}

impl Learned {
    /// The granted mappings.
    pub fn granted(&self) -> impl Iterator<Item = Mapping> + '_ {
        self.mappings
            .iter()
            .filter_map(|m| m.as_ref().ok().map(MappingHandle::mapping))
    }
}

/// Learns where the listener bound to `sockets` (host candidates `hosts`) can be reached from:
/// STUN (`stun`, an error if it does not answer: the user asked for it), port mapping (per
/// `policy`, asking `gateway` or the default route's next hop) and filtering discovery,
/// concurrently.
pub async fn learn(
    sockets: &[Socket],
    hosts: &[SocketAddr],
    stun: Option<SocketAddr>,
    policy: PortMapping,
    gateway: Option<IpAddr>,
) -> Result<Learned, StackError> {
    let choice = match policy {
        PortMapping::Off => None,
        PortMapping::WhenNotPublic(choice) | PortMapping::Always(choice) => Some(choice),
    };
    // Which sockets to map. `WhenNotPublic`: an IPv4 socket when no IPv4 host address is public
    // (it is behind a NAT); an IPv6 socket when a host address is global: a firewall in front
    // of it may drop unsolicited checks, and a PCP pinhole opens it (`spec/handshake.md`
    // §4.1.1). Loopback-only listeners never ask.
    let wanted = |local: SocketAddr| match policy {
        PortMapping::Off => false,
        PortMapping::Always(_) => true,
        PortMapping::WhenNotPublic(_) => {
            let family: Vec<&SocketAddr> = hosts
                .iter()
                .filter(|h| h.is_ipv4() == local.is_ipv4() && !h.ip().is_loopback())
                .collect();
            let public = family.iter().any(|h| is_public(h.ip()));
            !family.is_empty() && (public == local.is_ipv6())
        }
    };
    let srflx = async {
        let Some(server) = stun else {
            return Ok(None);
        };
        let socket = sockets
            .iter()
            .find(|s| s.local_addr().is_ipv4() == server.is_ipv4())
            .ok_or_else(|| {
                StackError::Config(format!(
                    "no socket of the STUN server's address family ({server})"
                ))
            })?;
        server_reflexive(socket, server).await.map(Some)
    };
    let mappings = async {
        let Some(choice) = choice else {
            return Vec::new();
        };
        let mapper = PortMapper::new(PortmapConfig {
            choice,
            gateway,
            ..PortmapConfig::default()
        });
        let asks = sockets.iter().filter(|s| wanted(s.local_addr())).map(|s| {
            let local = s.local_addr();
            let mapper = &mapper;
            async move {
                let outcome = mapper.map(local).await;
                match &outcome {
                    Ok(h) => {
                        let m = h.mapping();
                        tracing::info!(protocol = m.protocol.name(), external = %m.external, "port mapped");
                    }
                    Err(e) => tracing::info!(%local, code = e.code(), "no port mapping: {e}"),
                }
                outcome
            }
        });
        futures_util::future::join_all(asks).await
    };
    let filtering = async {
        let server = stun?;
        let local = sockets
            .iter()
            .map(Socket::local_addr)
            .find(|a| a.is_ipv4() == server.is_ipv4())?;
        let unspecified: IpAddr = if server.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let bind = SocketAddr::new(
            if local.ip().is_unspecified() {
                unspecified
            } else {
                local.ip()
            },
            0,
        );
        let probe = tokio::net::UdpSocket::bind(bind).await.ok()?;
        Some(discover_filtering(&probe, server, FILTERING_WAIT).await)
    };
    let (srflx, mappings, filtering) = tokio::join!(srflx, mappings, filtering);
    let server_reflexive = srflx?;
    let outcome: Option<Result<Mapping, PortmapError>> = mappings
        .iter()
        .find_map(|m| m.as_ref().ok().map(MappingHandle::mapping).map(Ok))
        .or_else(|| {
            mappings
                .first()
                .map(|m| m.as_ref().map(MappingHandle::mapping).map_err(Clone::clone))
        });
    let reachability = assess(&ReachabilityInputs {
        host: hosts,
        server_reflexive,
        mapping: outcome.as_ref(),
        filtering: filtering.as_ref().map(|f| f.filtering),
    });
    tracing::info!(sentence = %reachability.sentence, "reachability");
    Ok(Learned {
        server_reflexive,
        mappings,
        filtering,
        reachability,
    })
}
