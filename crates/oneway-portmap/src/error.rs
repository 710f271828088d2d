//! Named causes of a failed, refused or lost port mapping.

use std::net::SocketAddr;

use serde::Serialize;

/// A port-mapping protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Port Control Protocol (RFC 6887), UDP port 5351 of the gateway; also opens IPv6 pinholes.
    Pcp,
    /// NAT Port Mapping Protocol (RFC 6886), UDP port 5351 of the gateway, IPv4 only.
    NatPmp,
    /// UPnP Internet Gateway Device (SSDP discovery on UDP 1900, then SOAP over HTTP).
    Upnp,
}

impl Protocol {
    /// The name used in sentences and on the command line: `PCP`, `NAT-PMP`, `UPnP-IGD`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pcp => "PCP",
            Protocol::NatPmp => "NAT-PMP",
            Protocol::Upnp => "UPnP-IGD",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a mapping could not be made, renewed or kept. Every variant has a stable
/// [`code`](PortmapError::code); none of them is ever a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortmapError {
    /// No default gateway of the local address's family (nothing in `/proc/net/route` or
    /// `/proc/net/ipv6_route`).
    #[error("no default gateway for {family}")]
    NoGateway {
        /// `IPv4` or `IPv6`.
        family: &'static str,
    },
    /// The gateway did not answer in time (or, for UPnP, no device answered the search).
    #[error("{protocol}: no answer from {gateway} within {millis} ms")]
    Timeout {
        /// The protocol that was tried.
        protocol: Protocol,
        /// Where the request went (`0.0.0.0:0` when unknown, e.g. an SSDP search).
        gateway: SocketAddr,
        /// How long the protocol waited.
        millis: u64,
    },
    /// The gateway answered with an error result code.
    #[error("{protocol}: the gateway refused the mapping ({result})")]
    Refused {
        /// The protocol that was tried.
        protocol: Protocol,
        /// The result code in the protocol's own words, e.g. `NOT_AUTHORIZED`, `NO_RESOURCES`,
        /// `UNSUPP_OPCODE`, `ADDRESS_MISMATCH`, or a UPnP error such as `718 ConflictInMappingEntry`.
        result: String,
    },
    /// The gateway answered with something that is not a valid answer: garbage, a truncated
    /// packet, a wrong version, opcode or nonce.
    #[error("{protocol}: malformed answer from the gateway: {detail}")]
    Malformed {
        /// The protocol that was tried.
        protocol: Protocol,
        /// What was wrong.
        detail: String,
    },
    /// A renewal succeeded but the gateway gave a different external address.
    #[error("{protocol}: the external address changed from {old} to {new} on renewal")]
    AddressChanged {
        /// The protocol of the mapping.
        protocol: Protocol,
        /// The external address before.
        old: SocketAddr,
        /// The external address now.
        new: SocketAddr,
    },
    /// A mapping could not be renewed before it expired; it is gone.
    #[error("{protocol}: the mapping {external} was lost: {cause}")]
    Lost {
        /// The protocol of the mapping.
        protocol: Protocol,
        /// The external address that no longer leads here.
        external: SocketAddr,
        /// The last renewal error's code and message.
        cause: String,
    },
    /// The protocol cannot be used here: the gateway has no server for it (ICMP port
    /// unreachable), or it cannot map the listener's address (NAT-PMP maps only the address
    /// datagrams leave from).
    #[error("{protocol}: unavailable: {detail}")]
    Unavailable {
        /// The protocol that was tried.
        protocol: Protocol,
        /// Why.
        detail: String,
    },
    /// A local socket error (bind, send, receive), e.g. the gateway's network is unreachable.
    #[error("{protocol}: socket error: {detail}")]
    Io {
        /// The protocol that was tried.
        protocol: Protocol,
        /// The operating system's message.
        detail: String,
    },
}

impl PortmapError {
    /// The stable cause code: `no-gateway`, `portmap-timeout`, `portmap-refused`,
    /// `portmap-malformed`, `portmap-address-changed`, `portmap-lost`, `portmap-unavailable` or
    /// `portmap-io`.
    pub fn code(&self) -> &'static str {
        match self {
            PortmapError::NoGateway { .. } => "no-gateway",
            PortmapError::Timeout { .. } => "portmap-timeout",
            PortmapError::Refused { .. } => "portmap-refused",
            PortmapError::Malformed { .. } => "portmap-malformed",
            PortmapError::AddressChanged { .. } => "portmap-address-changed",
            PortmapError::Lost { .. } => "portmap-lost",
            PortmapError::Unavailable { .. } => "portmap-unavailable",
            PortmapError::Io { .. } => "portmap-io",
        }
    }

    /// How telling the error is when several protocols failed: a refusal says more than
    /// garbage, garbage more than silence, silence more than having no gateway.
    pub(crate) fn weight(&self) -> u8 {
        match self {
            PortmapError::Refused { .. } => 6,
            PortmapError::AddressChanged { .. } | PortmapError::Lost { .. } => 5,
            PortmapError::Malformed { .. } => 4,
            PortmapError::Io { .. } => 3,
            PortmapError::Timeout { .. } | PortmapError::Unavailable { .. } => 2,
            PortmapError::NoGateway { .. } => 1,
        }
    }
}

impl Serialize for PortmapError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut s = serializer.serialize_struct("PortmapError", 2)?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}
