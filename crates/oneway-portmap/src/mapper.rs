//! The port mapper: finds the gateway, tries PCP, then NAT-PMP, then UPnP-IGD, and keeps the
//! mapping alive (renewal at half its lifetime, deletion on shutdown).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crab_nat::{InternetProtocol, PortMappingOptions, TimeoutConfig};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::gateway::{Gateway, default_gateways, source_address_towards};
use crate::pcp;
use crate::{PortmapError, Protocol};

/// The port PCP and NAT-PMP servers listen on (RFC 6887 §19.1).
pub const PCP_PORT: u16 = 5351;
/// The SSDP port UPnP discovery goes to.
pub const SSDP_PORT: u16 = 1900;

/// Which protocols [`PortMapper::map`] may use (`--portmap pcp|natpmp|upnp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolChoice {
    /// PCP, then NAT-PMP, then UPnP-IGD (UPnP discovery runs concurrently from the start).
    #[default]
    Auto,
    /// PCP only.
    Pcp,
    /// NAT-PMP only (IPv4).
    NatPmp,
    /// UPnP-IGD only (IPv4).
    Upnp,
}

impl FromStr for ProtocolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(ProtocolChoice::Auto),
            "pcp" => Ok(ProtocolChoice::Pcp),
            "natpmp" | "nat-pmp" => Ok(ProtocolChoice::NatPmp),
            "upnp" | "upnp-igd" => Ok(ProtocolChoice::Upnp),
            other => Err(format!(
                "unknown port-mapping protocol {other:?} (expected pcp, natpmp or upnp)"
            )),
        }
    }
}

/// How the mapper behaves. [`PortmapConfig::default`] suits a listener.
#[derive(Clone, Debug)]
pub struct PortmapConfig {
    /// Which protocols to try.
    pub choice: ProtocolChoice,
    /// The lifetime to ask for; the gateway may grant less (or more). Default 2 hours.
    pub lifetime: Duration,
    /// Use this gateway instead of the default route's next hop (tests, or a known router).
    /// UPnP discovery then asks this address directly (unicast SSDP) instead of multicast.
    pub gateway: Option<IpAddr>,
    /// PCP and NAT-PMP: the wait for the first answer; one retry waits twice as long, so a
    /// silent gateway costs 3× this. Default 250 ms (answers come in 1–36 ms on a LAN).
    pub request_timeout: Duration,
    /// UPnP: how long discovery waits for a device (SSDP and the description fetch).
    /// Default 1.5 s (miniupnpd answers in 95–290 ms).
    pub upnp_timeout: Duration,
    /// The mapping's description (UPnP shows it in the router's table).
    pub description: String,
}

impl Default for PortmapConfig {
    fn default() -> Self {
        PortmapConfig {
            choice: ProtocolChoice::Auto,
            lifetime: Duration::from_secs(7200),
            gateway: None,
            request_timeout: Duration::from_millis(250),
            upnp_timeout: Duration::from_millis(1500),
            description: "oneway".to_owned(),
        }
    }
}

/// A port mapping the gateway granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// The protocol that made it.
    pub protocol: Protocol,
    /// The external address and port peers on the other side of the gateway send to.
    pub external: SocketAddr,
    /// The local address and port it leads to (the listener's socket as the gateway sees it).
    pub internal: SocketAddr,
    /// The lifetime the gateway granted (0 for a permanent UPnP mapping).
    #[serde(serialize_with = "serialize_secs")]
    pub lifetime: Duration,
    /// The gateway's address (port 5351 for PCP/NAT-PMP, its HTTP control port for UPnP).
    pub gateway: SocketAddr,
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// What the keeper of a mapping reports. Serializes as a JSON event:
/// `{"event":"renewed","protocol":"pcp","external":"…","internal":"…","lifetime":7200,…}` or
/// `{"event":"failed","code":"portmap-lost","message":"…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum MappingEvent {
    /// The mapping was renewed; the current mapping.
    Renewed(Mapping),
    /// Something went wrong: [`PortmapError::AddressChanged`] (followed by `Renewed` with the
    /// new address) or [`PortmapError::Lost`] (the last event: the mapping is gone).
    Failed(PortmapError),
}

/// Finds the gateway and asks it for a UDP mapping.
#[derive(Clone, Debug, Default)]
pub struct PortMapper {
    config: PortmapConfig,
}

type UpnpGateway = igd_next::aio::Gateway<igd_next::aio::tokio::Tokio>;

/// The protocol-specific state needed to renew and delete a mapping.
enum Active {
    Pcp {
        req: pcp::MapRequest,
        gateway: SocketAddr,
        timeout: Duration,
    },
    NatPmp {
        mapping: crab_nat::PortMapping,
        gateway: crab_nat::GatewayAddress,
        timeouts: TimeoutConfig,
    },
    Upnp {
        gateway: UpnpGateway,
        description: String,
    },
}

impl PortMapper {
    /// A mapper with this configuration.
    pub fn new(config: PortmapConfig) -> PortMapper {
        PortMapper { config }
    }

    /// The configuration.
    pub fn config(&self) -> &PortmapConfig {
        &self.config
    }

    /// Asks the gateway for a UDP mapping to `local` (the listener's socket; an unspecified IP
    /// means "the address the kernel uses towards the gateway") and starts keeping it alive.
    /// Bounded in time: with the default configuration a network without an answering gateway
    /// gives up in about 1.5 s. Must be called inside a tokio runtime.
    pub async fn map(&self, local: SocketAddr) -> Result<MappingHandle, PortmapError> {
        let started = Instant::now();
        let (mapping, active) = self.map_once(local).await?;
        tracing::info!(
            protocol = %mapping.protocol,
            external = %mapping.external,
            lifetime_s = mapping.lifetime.as_secs(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "port mapping granted"
        );
        Ok(MappingHandle::spawn(mapping, active, self.config.lifetime))
    }

    fn gateway_for(&self, local: SocketAddr) -> Result<Gateway, PortmapError> {
        let family = if local.is_ipv6() { "IPv6" } else { "IPv4" };
        if let Some(ip) = self.config.gateway {
            return Ok(Gateway {
                ip,
                interface: String::new(),
                scope_id: 0,
                metric: 0,
            });
        }
        default_gateways(local.is_ipv6())
            .into_iter()
            .next()
            .ok_or(PortmapError::NoGateway { family })
    }

    fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig {
            initial_timeout: self.config.request_timeout,
            max_retries: 1,
            max_retry_timeout: Some(self.config.request_timeout * 2),
        }
    }

    fn silent_millis(&self) -> u64 {
        (self.config.request_timeout * 3).as_millis() as u64
    }

    async fn map_once(&self, local: SocketAddr) -> Result<(Mapping, Active), PortmapError> {
        let gateway = self.gateway_for(local)?;
        let pcp_addr = gateway.socket_addr(PCP_PORT);
        let mut client = source_address_towards(pcp_addr).map_err(|e| PortmapError::Io {
            protocol: Protocol::Pcp,
            detail: format!("no route to the gateway {pcp_addr}: {e}"),
        })?;
        // Towards a link-local router (what IPv6 router advertisements announce) the kernel
        // picks the link-local source; a pinhole must be for the global address the host uses
        // towards the internet.
        if let IpAddr::V6(v6) = client
            && (v6.segments()[0] & 0xffc0) == 0xfe80
            && let Ok(global) = source_address_towards(SocketAddr::from((
                std::net::Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 1),
                PCP_PORT,
            )))
            && crate::is_public(global)
        {
            client = global;
        }
        // The listener's own address when it is bound to one, else the kernel's choice. PCP
        // and UPnP name the internal address in the request; NAT-PMP maps the source address
        // of crab_nat's unbound socket, see `natpmp`.
        let internal = if local.ip().is_unspecified() {
            SocketAddr::new(client, local.port())
        } else {
            local
        };
        let ipv6 = local.is_ipv6();
        match self.config.choice {
            ProtocolChoice::Pcp => self.pcp(&gateway, internal).await,
            ProtocolChoice::NatPmp if ipv6 => Err(PortmapError::Unavailable {
                protocol: Protocol::NatPmp,
                detail: "NAT-PMP is IPv4 only".to_owned(),
            }),
            ProtocolChoice::NatPmp => self.natpmp(&gateway, internal, client).await,
            ProtocolChoice::Upnp if ipv6 => Err(PortmapError::Unavailable {
                protocol: Protocol::Upnp,
                detail: "this mapper asks UPnP-IGD for IPv4 mappings only".to_owned(),
            }),
            ProtocolChoice::Upnp => {
                let found = self.upnp_discover(&gateway, internal).await?;
                self.upnp_map(found, internal).await
            }
            ProtocolChoice::Auto if ipv6 => self.pcp(&gateway, internal).await,
            ProtocolChoice::Auto => {
                // UPnP discovery takes the longest: start it now, use it only if the
                // gateway speaks neither PCP nor NAT-PMP.
                let discover = self.upnp_discover(&gateway, internal);
                tokio::pin!(discover);
                let pcp_then_natpmp = async {
                    match self.pcp(&gateway, internal).await {
                        Ok(done) => Ok(done),
                        // RFC 6887 §9: a NAT-PMP-only server answers a PCP request with
                        // UNSUPP_VERSION; silence on 5351 means neither is there (asking
                        // NAT-PMP would only wait as long again). A router that rejects PCP
                        // with ICMP may still serve NAT-PMP: asking costs one round trip.
                        Err(e @ PortmapError::Timeout { .. }) => Err(e),
                        Err(pcp_err) => match self.natpmp(&gateway, internal, client).await {
                            Ok(done) => Ok(done),
                            Err(e) if e.weight() >= pcp_err.weight() && !is_unsupported(&e) => {
                                Err(e)
                            }
                            Err(_) => Err(pcp_err),
                        },
                    }
                };
                tokio::pin!(pcp_then_natpmp);
                let mut discovered = None;
                let first = loop {
                    tokio::select! {
                        r = &mut pcp_then_natpmp => break r,
                        r = &mut discover, if discovered.is_none() => discovered = Some(r),
                    }
                };
                let e1 = match first {
                    Ok(done) => return Ok(done),
                    Err(e1) => e1,
                };
                let found = match discovered {
                    Some(r) => r,
                    None => discover.await,
                };
                let e2 = match found {
                    Ok(found) => match self.upnp_map(found, internal).await {
                        Ok(done) => return Ok(done),
                        Err(e2) => e2,
                    },
                    Err(e2) => e2,
                };
                tracing::debug!(pcp_natpmp = %e1, upnp = %e2, "no protocol mapped");
                Err(if e2.weight() > e1.weight() { e2 } else { e1 })
            }
        }
    }

    async fn pcp(
        &self,
        gateway: &Gateway,
        internal: SocketAddr,
    ) -> Result<(Mapping, Active), PortmapError> {
        nonzero_port(internal, Protocol::Pcp)?;
        let gw = gateway.socket_addr(PCP_PORT);
        let unspecified = match internal.ip() {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        let req = pcp::MapRequest {
            nonce: rand::random(),
            client: internal.ip(),
            internal_port: internal.port(),
            // Ask for the same port outside; the gateway may give another.
            suggested: Some(SocketAddr::new(unspecified, internal.port())),
            lifetime: lifetime_secs(self.config.lifetime),
        };
        let timeout = self.config.request_timeout;
        let resp = pcp::exchange(gw, &req, timeout).await?;
        let mapping = Mapping {
            protocol: Protocol::Pcp,
            external: resp.external,
            internal,
            lifetime: Duration::from_secs(u64::from(resp.lifetime)),
            gateway: gw,
        };
        let req = pcp::MapRequest {
            suggested: Some(resp.external),
            ..req
        };
        Ok((
            mapping,
            Active::Pcp {
                req,
                gateway: gw,
                timeout,
            },
        ))
    }

    async fn natpmp(
        &self,
        gateway: &Gateway,
        internal: SocketAddr,
        source: IpAddr,
    ) -> Result<(Mapping, Active), PortmapError> {
        if internal.ip() != source {
            return Err(PortmapError::Unavailable {
                protocol: Protocol::NatPmp,
                detail: format!(
                    "NAT-PMP maps the address requests leave from ({source}), not the \
                     listener's {}",
                    internal.ip()
                ),
            });
        }
        let port = nonzero_port(internal, Protocol::NatPmp)?;
        let gw = crab_gateway(gateway);
        let addr = gateway.socket_addr(PCP_PORT);
        let timeouts = self.timeouts();
        let millis = self.silent_millis();
        let external_ip = crab_nat::natpmp::external_address(gw, Some(timeouts))
            .await
            .map_err(|e| natpmp_error(e, addr, millis))?;
        let options = PortMappingOptions {
            external_port: Some(port),
            lifetime_seconds: Some(lifetime_secs(self.config.lifetime)),
            timeout_config: Some(timeouts),
        };
        let m = crab_nat::natpmp::port_mapping(gw, InternetProtocol::Udp, port, options)
            .await
            .map_err(|e| natpmp_error(e, addr, millis))?;
        let mapping = Mapping {
            protocol: Protocol::NatPmp,
            external: SocketAddr::new(IpAddr::V4(external_ip), m.external_port().get()),
            internal,
            lifetime: Duration::from_secs(u64::from(m.lifetime())),
            gateway: addr,
        };
        Ok((
            mapping,
            Active::NatPmp {
                mapping: m,
                gateway: gw,
                timeouts,
            },
        ))
    }

    async fn upnp_discover(
        &self,
        gateway: &Gateway,
        internal: SocketAddr,
    ) -> Result<UpnpGateway, PortmapError> {
        let mut options = igd_next::SearchOptions::default();
        options.timeout = Some(self.config.upnp_timeout);
        options.single_search_timeout = Some(self.config.upnp_timeout);
        options.bind_addr = SocketAddr::new(internal.ip(), 0);
        if self.config.gateway.is_some() {
            options.broadcast_address = gateway.socket_addr(SSDP_PORT);
        }
        let millis = self.config.upnp_timeout.as_millis() as u64;
        let search_target = options.broadcast_address;
        let found = tokio::time::timeout(
            self.config.upnp_timeout + Duration::from_millis(100),
            igd_next::aio::tokio::search_gateway(options),
        )
        .await
        .map_err(|_| PortmapError::Timeout {
            protocol: Protocol::Upnp,
            gateway: search_target,
            millis,
        })?
        .map_err(|e| upnp_search_error(e, search_target, millis))?;
        tracing::debug!(gateway = %found.addr, "UPnP gateway found");
        Ok(found)
    }

    async fn upnp_map(
        &self,
        found: UpnpGateway,
        internal: SocketAddr,
    ) -> Result<(Mapping, Active), PortmapError> {
        let description = self.config.description.clone();
        let mapping = upnp_add(&found, internal, self.config.lifetime, &description, None).await?;
        Ok((
            mapping,
            Active::Upnp {
                gateway: found,
                description,
            },
        ))
    }
}

fn is_unsupported(e: &PortmapError) -> bool {
    matches!(e, PortmapError::Refused { result, .. } if result.starts_with("UNSUPP"))
}

fn nonzero_port(internal: SocketAddr, protocol: Protocol) -> Result<NonZeroU16, PortmapError> {
    NonZeroU16::new(internal.port()).ok_or_else(|| PortmapError::Io {
        protocol,
        detail: "the local port is 0 (bind the socket first)".to_owned(),
    })
}

fn lifetime_secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX).max(1)
}

fn crab_gateway(g: &Gateway) -> crab_nat::GatewayAddress {
    match g.ip {
        IpAddr::V4(v4) => crab_nat::GatewayAddress::IpV4(v4),
        IpAddr::V6(v6) => crab_nat::GatewayAddress::IpV6(
            v6,
            if g.scope_id == 0 {
                None
            } else {
                Some(g.scope_id)
            },
        ),
    }
}

/// ICMP port unreachable: nothing listens on the gateway's port.
fn io_error(protocol: Protocol, e: &std::io::Error, gateway: SocketAddr) -> PortmapError {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        PortmapError::Unavailable {
            protocol,
            detail: format!("nothing answers on {gateway} (ICMP port unreachable)"),
        }
    } else {
        PortmapError::Io {
            protocol,
            detail: e.to_string(),
        }
    }
}

fn natpmp_error(e: crab_nat::natpmp::Failure, gateway: SocketAddr, millis: u64) -> PortmapError {
    use crab_nat::natpmp::Failure as F;
    let protocol = Protocol::NatPmp;
    let refused = |result: &str| PortmapError::Refused {
        protocol,
        result: result.to_owned(),
    };
    match e {
        F::Socket(e) => io_error(protocol, &e, gateway),
        F::Timeout => PortmapError::Timeout {
            protocol,
            gateway,
            millis,
        },
        F::InvalidResponse(kind) => PortmapError::Malformed {
            protocol,
            detail: kind.to_string(),
        },
        F::UnsupportedVersion(_) => refused("UNSUPP_VERSION"),
        F::NotAuthorized => refused("NOT_AUTHORIZED"),
        F::NetworkFailure => refused("NETWORK_FAILURE"),
        F::OutOfResources => refused("OUT_OF_RESOURCES"),
        F::UnsupportedOpcode => refused("UNSUPP_OPCODE"),
    }
}

fn upnp_search_error(e: igd_next::SearchError, target: SocketAddr, millis: u64) -> PortmapError {
    use igd_next::SearchError as E;
    let protocol = Protocol::Upnp;
    match e {
        E::NoResponseWithinTimeout => PortmapError::Timeout {
            protocol,
            gateway: target,
            millis,
        },
        E::IoError(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            PortmapError::Timeout {
                protocol,
                gateway: target,
                millis,
            }
        }
        E::IoError(e) => PortmapError::Io {
            protocol,
            detail: e.to_string(),
        },
        other => PortmapError::Malformed {
            protocol,
            detail: other.to_string(),
        },
    }
}

fn upnp_request_error(e: &igd_next::RequestError) -> PortmapError {
    let protocol = Protocol::Upnp;
    match e {
        igd_next::RequestError::ErrorCode(code, text) => PortmapError::Refused {
            protocol,
            result: format!("{code} {text}"),
        },
        igd_next::RequestError::IoError(io) => PortmapError::Io {
            protocol,
            detail: io.to_string(),
        },
        other => PortmapError::Malformed {
            protocol,
            detail: other.to_string(),
        },
    }
}

/// Adds (or, with `external_port`, re-adds) a UPnP mapping and reads the external address.
async fn upnp_add(
    gateway: &UpnpGateway,
    internal: SocketAddr,
    lifetime: Duration,
    description: &str,
    external_port: Option<u16>,
) -> Result<Mapping, PortmapError> {
    use igd_next::{AddAnyPortError, AddPortError, PortMappingProtocol::UDP};
    let protocol = Protocol::Upnp;
    let refused = |result: &str| PortmapError::Refused {
        protocol,
        result: result.to_owned(),
    };
    let mut lease = lifetime_secs(lifetime);
    let wanted = external_port.unwrap_or(internal.port());
    let mut result = gateway
        .add_port(UDP, wanted, internal, lease, description)
        .await;
    if matches!(result, Err(AddPortError::OnlyPermanentLeasesSupported)) {
        lease = 0;
        result = gateway
            .add_port(UDP, wanted, internal, lease, description)
            .await;
    }
    let external_port = match result {
        Ok(()) => wanted,
        Err(AddPortError::PortInUse) if external_port.is_none() => {
            match gateway
                .add_any_port(UDP, internal, lease, description)
                .await
            {
                Ok(p) => p,
                Err(AddAnyPortError::ActionNotAuthorized) => {
                    return Err(refused("606 ActionNotAuthorized"));
                }
                Err(AddAnyPortError::NoPortsAvailable) => {
                    return Err(refused("728 NoPortMapsAvailable"));
                }
                Err(AddAnyPortError::ExternalPortInUse) => {
                    return Err(refused("718 ConflictInMappingEntry"));
                }
                Err(AddAnyPortError::RequestError(e)) => return Err(upnp_request_error(&e)),
                Err(other) => return Err(refused(&other.to_string())),
            }
        }
        Err(AddPortError::PortInUse) => return Err(refused("718 ConflictInMappingEntry")),
        Err(AddPortError::ActionNotAuthorized) => return Err(refused("606 ActionNotAuthorized")),
        Err(AddPortError::RequestError(e)) => return Err(upnp_request_error(&e)),
        Err(other) => return Err(refused(&other.to_string())),
    };
    let external_ip = gateway.get_external_ip().await.map_err(|e| match e {
        igd_next::GetExternalIpError::ActionNotAuthorized => refused("606 ActionNotAuthorized"),
        igd_next::GetExternalIpError::RequestError(e) => upnp_request_error(&e),
    })?;
    Ok(Mapping {
        protocol,
        external: SocketAddr::new(external_ip, external_port),
        internal,
        lifetime: Duration::from_secs(u64::from(lease)),
        gateway: gateway.addr,
    })
}

impl Active {
    async fn renew(
        &mut self,
        current: &Mapping,
        lifetime: Duration,
    ) -> Result<Mapping, PortmapError> {
        match self {
            Active::Pcp {
                req,
                gateway,
                timeout,
            } => {
                let resp = pcp::exchange(*gateway, req, *timeout).await?;
                req.suggested = Some(resp.external);
                Ok(Mapping {
                    external: resp.external,
                    lifetime: Duration::from_secs(u64::from(resp.lifetime)),
                    ..*current
                })
            }
            Active::NatPmp {
                mapping,
                gateway,
                timeouts,
            } => {
                let millis = (timeouts.initial_timeout * 3).as_millis() as u64;
                let external_ip = crab_nat::natpmp::external_address(*gateway, Some(*timeouts))
                    .await
                    .map_err(|e| natpmp_error(e, current.gateway, millis))?;
                mapping.renew().await.map_err(|e| match e {
                    crab_nat::MappingFailure::NatPmp(e) => natpmp_error(e, current.gateway, millis),
                    crab_nat::MappingFailure::Pcp(e) => PortmapError::Malformed {
                        protocol: Protocol::NatPmp,
                        detail: format!("unexpected PCP failure: {e}"),
                    },
                })?;
                Ok(Mapping {
                    external: SocketAddr::new(
                        IpAddr::V4(external_ip),
                        mapping.external_port().get(),
                    ),
                    lifetime: Duration::from_secs(u64::from(mapping.lifetime())),
                    ..*current
                })
            }
            Active::Upnp {
                gateway,
                description,
            } => {
                upnp_add(
                    gateway,
                    current.internal,
                    lifetime,
                    description,
                    Some(current.external.port()),
                )
                .await
            }
        }
    }

    async fn delete(self, current: &Mapping) -> Result<(), PortmapError> {
        match self {
            Active::Pcp {
                req,
                gateway,
                timeout,
            } => {
                let delete = pcp::MapRequest {
                    lifetime: 0,
                    suggested: None,
                    ..req
                };
                pcp::exchange(gateway, &delete, timeout).await.map(|_| ())
            }
            Active::NatPmp { mapping: m, .. } => {
                let millis = (m.timeout_config.initial_timeout * 3).as_millis() as u64;
                m.try_drop().await.map_err(|(e, _)| match e {
                    crab_nat::MappingFailure::NatPmp(e) => natpmp_error(e, current.gateway, millis),
                    crab_nat::MappingFailure::Pcp(e) => PortmapError::Malformed {
                        protocol: Protocol::NatPmp,
                        detail: format!("unexpected PCP failure: {e}"),
                    },
                })
            }
            Active::Upnp { gateway, .. } => gateway
                .remove_port(igd_next::PortMappingProtocol::UDP, current.external.port())
                .await
                .map_err(|e| match e {
                    igd_next::RemovePortError::RequestError(e) => upnp_request_error(&e),
                    other => PortmapError::Refused {
                        protocol: Protocol::Upnp,
                        result: other.to_string(),
                    },
                }),
        }
    }
}

enum Command {
    Shutdown(Option<oneshot::Sender<Result<(), PortmapError>>>),
}

/// A granted mapping kept alive by a background task: renewed at half its lifetime, reported
/// through [`next_event`](MappingHandle::next_event), deleted by
/// [`shutdown`](MappingHandle::shutdown) (and, best effort, when the handle is dropped inside
/// a runtime).
#[derive(Debug)]
pub struct MappingHandle {
    current: watch::Receiver<Mapping>,
    events: mpsc::UnboundedReceiver<MappingEvent>,
    commands: mpsc::UnboundedSender<Command>,
}

impl MappingHandle {
    fn spawn(mapping: Mapping, active: Active, lifetime: Duration) -> MappingHandle {
        let (current_tx, current) = watch::channel(mapping);
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        tokio::spawn(keep(active, lifetime, current_tx, events_tx, commands_rx));
        MappingHandle {
            current,
            events,
            commands,
        }
    }

    /// The mapping as of the last grant or renewal.
    pub fn mapping(&self) -> Mapping {
        *self.current.borrow()
    }

    /// The next event (renewed, address changed, lost); `None` once the keeper has stopped.
    pub async fn next_event(&mut self) -> Option<MappingEvent> {
        self.events.recv().await
    }

    /// Stops renewing and deletes the mapping on the gateway; the gateway's answer, bounded by
    /// the protocol's timeouts.
    pub async fn shutdown(self) -> Result<(), PortmapError> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(Some(tx))).is_err() {
            // The keeper already stopped: the mapping was lost.
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

impl Drop for MappingHandle {
    fn drop(&mut self) {
        // Best effort: the keeper deletes the mapping if the runtime still runs.
        let _ = self.commands.send(Command::Shutdown(None));
    }
}

/// How long to wait before renewing a mapping granted for `lifetime`: half of it, at least 1 s.
fn renew_after(lifetime: Duration) -> Duration {
    (lifetime / 2).max(Duration::from_secs(1))
}

async fn keep(
    mut active: Active,
    requested: Duration,
    current_tx: watch::Sender<Mapping>,
    events: mpsc::UnboundedSender<MappingEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut current = *current_tx.borrow();
    let mut expires = Instant::now() + current.lifetime;
    let mut next = if current.lifetime.is_zero() {
        None
    } else {
        Some(tokio::time::Instant::now() + renew_after(current.lifetime))
    };
    loop {
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => {
                let reply = match command {
                    Some(Command::Shutdown(reply)) => reply,
                    None => None,
                };
                let result = active.delete(&current).await;
                match &result {
                    Ok(()) => tracing::info!(external = %current.external, "port mapping deleted"),
                    Err(e) => tracing::warn!(code = e.code(), "port mapping not deleted: {e}"),
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                return;
            }
            () = sleep => {
                match active.renew(&current, requested).await {
                    Ok(renewed) => {
                        if renewed.external != current.external {
                            let _ = events.send(MappingEvent::Failed(PortmapError::AddressChanged {
                                protocol: current.protocol,
                                old: current.external,
                                new: renewed.external,
                            }));
                        }
                        current = renewed;
                        expires = Instant::now() + current.lifetime;
                        let _ = current_tx.send(current);
                        let _ = events.send(MappingEvent::Renewed(current));
                        next = (!current.lifetime.is_zero())
                            .then(|| tokio::time::Instant::now() + renew_after(current.lifetime));
                    }
                    Err(e) => {
                        let left = expires.saturating_duration_since(Instant::now());
                        // No time for another attempt: the mapping expires unrenewed.
                        if left < Duration::from_millis(250) {
                            tracing::warn!(code = e.code(), "port mapping lost: {e}");
                            let _ = events.send(MappingEvent::Failed(PortmapError::Lost {
                                protocol: current.protocol,
                                external: current.external,
                                cause: format!("{}: {e}", e.code()),
                            }));
                            return;
                        }
                        tracing::debug!(code = e.code(), "renewal failed, retrying: {e}");
                        // Retry at a quarter of what is left (at least 250 ms), until expiry.
                        let retry = (left / 4).max(Duration::from_millis(250)).min(left);
                        next = Some(tokio::time::Instant::now() + retry);
                    }
                }
            }
        }
    }
}
