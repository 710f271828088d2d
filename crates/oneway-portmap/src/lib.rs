//! Port mapping and reachability for oneway listeners: ask the home router for a UDP port
//! mapping (PCP, NAT-PMP, UPnP-IGD), measure the NAT's filtering (RFC 5780), and tell the user
//! in plain words from where the listener can be reached.
//!
//! # Port mapping ([`PortMapper`])
//! The gateway is the next hop of the default route of the listener's address family
//! (`/proc/net/route`, `/proc/net/ipv6_route`; [`PortmapConfig::gateway`] overrides it).
//! [`ProtocolChoice::Auto`] tries, in order:
//! 1. **PCP** (RFC 6887, UDP 5351, this crate's [`pcp`] codec): a MAP request naming the
//!    listener's address, sent from a socket bound to it; over IPv6 the same request opens a
//!    firewall pinhole (for the global address, also behind a link-local router).
//! 2. **NAT-PMP** (RFC 6886, UDP 5351, via `crab_nat`, IPv4 only), only if the gateway answered
//!    PCP with an error (a NAT-PMP-only server answers UNSUPP_VERSION) or rejected it with ICMP
//!    (one more round trip); silence on 5351 skips it.
//! 3. **UPnP-IGD** (via `igd-next`, IPv4 only): SSDP discovery starts at the same time as PCP,
//!    and is used only if PCP and NAT-PMP gave nothing.
//!
//! Timeouts: PCP and NAT-PMP wait 250 ms, retry once and wait 500 ms more
//! ([`PortmapConfig::request_timeout`]); UPnP discovery waits 1.5 s
//! ([`PortmapConfig::upnp_timeout`]). A network where no gateway answers gives up in about
//! 1.5 s; real gateways answer in milliseconds (measured against miniupnpd over veth: PCP
//! 2–21 ms, NAT-PMP 10–15 ms, UPnP-IGD 65–160 ms including discovery).
//!
//! A granted mapping is kept by a [`MappingHandle`]: renewed at half its lifetime, with
//! [`MappingEvent`]s for a renewal, a changed external address and a lost mapping; deleted by
//! [`MappingHandle::shutdown`] (and, best effort, when the handle is dropped).
//!
//! Every failure is a [`PortmapError`] with a stable [`code`](PortmapError::code):
//! `no-gateway` (no default route of that family), `portmap-timeout` (no answer),
//! `portmap-unavailable` (ICMP port unreachable, or NAT-PMP asked to map an address requests do
//! not leave from), `portmap-refused` (an error result code, named: `NOT_AUTHORIZED`,
//! `NO_RESOURCES`, `UNSUPP_OPCODE`, `ADDRESS_MISMATCH`, UPnP `606 ActionNotAuthorized`, ...),
//! `portmap-malformed` (garbage, truncated, wrong version, opcode or nonce),
//! `portmap-address-changed` and `portmap-lost` (from the keeper), `portmap-io` (local socket
//! errors). Nothing panics and nothing waits longer than the timeouts above.
//!
//! Why PCP is not `crab_nat`'s: its request socket is bound to the unspecified address, so the
//! gateway sees the source the kernel picks, and refuses a request naming another client
//! address with `ADDRESS_MISMATCH` (RFC 6887 §8.1). That happens in ordinary setups: IPv6
//! behind a router that announces its link-local address (the request leaves from the host's
//! link-local address; measured against miniupnpd), and a listener bound to a second address
//! of its interface. `crab_nat` 0.8.1 has no way to bind its socket. NAT-PMP maps the source
//! address by design (IPv4 only), so it stays on `crab_nat`, and reports
//! `portmap-unavailable` for a listener bound to an address requests do not leave from.
//!
//! # Filtering ([`nat_behavior`]) and the verdict ([`assess`])
//! [`nat_behavior::discover_filtering`] runs RFC 5780 tests I–III against a STUN server with
//! two addresses (coturn with two `--listening-ip`s) and classifies the filtering.
//! [`assess`] combines host addresses, the server-reflexive address, the mapping outcome and
//! the filtering into a [`Reachability`]: a scope (`same-lan-only` / `internet`), the way in,
//! a [`Reason`] code and a sentence such as "internet, via a PCP mapping 203.0.113.7:41000" or
//! "not reachable from outside this LAN: the NAT filters by address and port and no port
//! mapping answered (portmap-timeout)". A mapping whose external address is private or
//! carrier-grade (100.64.0.0/10) does not count: it is a mapping at a router behind another NAT.
//!
//! # Use in a listener
//! ```no_run
//! # async fn listener(socket: tokio::net::UdpSocket, stun: std::net::SocketAddr,
//! #     host: Vec<std::net::SocketAddr>) {
//! use std::time::Duration;
//! use oneway_portmap::{PortMapper, PortmapConfig, ReachabilityInputs, assess, nat_behavior};
//!
//! let local = socket.local_addr().unwrap();
//! let mapper = PortMapper::new(PortmapConfig::default());
//! // Concurrently with STUN gathering: both are bounded (~1.5 s and ~1 s).
//! let (mapping, filtering) = tokio::join!(
//!     mapper.map(local),
//!     nat_behavior::discover_filtering(&socket, stun, Duration::from_millis(500)),
//! );
//! let outcome = mapping.as_ref().map(|h| h.mapping()).map_err(Clone::clone);
//! let verdict = assess(&ReachabilityInputs {
//!     host: &host,
//!     server_reflexive: filtering.mapped,
//!     mapping: Some(&outcome),
//!     filtering: Some(filtering.filtering),
//! });
//! println!("{}", verdict.sentence);
//! if let Ok(handle) = mapping {
//!     // ... serve; on SIGINT/SIGTERM:
//!     let _ = handle.shutdown().await;
//! }
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod gateway;
mod mapper;
pub mod nat_behavior;
pub mod pcp;
pub mod reachability;

pub use error::{PortmapError, Protocol};
pub use mapper::{
    Mapping, MappingEvent, MappingHandle, PCP_PORT, PortMapper, PortmapConfig, ProtocolChoice,
    SSDP_PORT,
};
pub use reachability::{
    NatFiltering, Reachability, ReachabilityInputs, Reason, Scope, Via, assess, is_public,
};
