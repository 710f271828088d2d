//! Turns a [`Topology`] into a concrete layout: networks with fixed subnets, hosts with fixed
//! addresses, routes, and the nftables rule sets of each router. Pure: the layout is data that
//! [`crate::docker`] brings up, and that tests snapshot.
//!
//! Addressing (RFC 5737 / RFC 6598 / RFC 1918 / RFC 3849, `.1` is always Docker's bridge):
//!
//! ```text
//! wan   198.51.100.0/24   STUN+TURN .3 (and .7, its RFC 5780 alternate address), listener-side
//!                         router .2, dialer-side router .4, CGNAT .5, public listener .10,
//!                         public dialer .20; 11.0.0.0/24 instead when a router offers port
//!                         mapping (below); IPv6 2001:db8:2::/64 (same host numbers) with an
//!                         IPv6 firewall
//! lan-l 10.2.0.0/24       listener .10, its router .254     (firewalled: 203.0.113.0/24)
//! lan-d 10.1.0.0/24       dialer .20, its router .254       (firewalled: 192.0.2.0/24)
//! lan-x 10.3.0.0/24       the listener's second LAN (first-candidate scenarios)
//! cgn   100.64.0.0/24     home router .10, CGNAT .254
//! link  10.4.0.0/24       impairment hop .253 → dialer-side router .254
//! v6    2001:db8:1::/64   (same-LAN IPv6 and dual-stack); 2001:db8:3::/64 behind an IPv6
//!                         firewall
//! ```
//!
//! **Routers that offer port mapping** (`portmap = [...]` on the listener's edge) run Debian's
//! miniupnpd 2.3.1 (nftables backend). It refuses every mapping when its WAN address is in a
//! prefix it counts as reserved, and it counts the RFC 5737 WAN (198.51.100.0/24) and the
//! benchmarking range the cells of `--jobs` move it to (198.18.0.0/15) as reserved. Such
//! layouts therefore use 11.0.0.0/24 as their WAN (same host numbers; slot `k` of
//! [`Layout::relocated`] uses 11.0.k.0/24): a prefix miniupnpd accepts, only ever routed inside
//! the test network (every node deletes its default route). The mapping's external address is
//! then the router's real WAN address, which the dialer on the WAN reaches, and nothing depends
//! on a STUN round trip at router start (the other fix, `ext_perform_stun`, would need coturn
//! up before the routers' setup and trusts miniupnpd's own NAT test). The home router of a
//! double NAT keeps its carrier-grade WAN address (100.64.0.10), which miniupnpd refuses to map
//! from, as a real one would behind a CGNAT.
//!
//! miniupnpd's rules live in `table inet filter` (its chains `miniupnpd`, `prerouting_miniupnpd`,
//! `postrouting_miniupnpd`, jumped to from base chains that run before the suite's own NAT and
//! filter chains); a packet its forward chain accepts leaves with mark `0x4f57`, which the
//! suite's forward filter (policy drop) accepts. PCP and NAT-PMP share UDP 5351 in miniupnpd
//! (`enable_natpmp`): "PCP only" rejects requests whose first byte (the version) is 0, "NAT-PMP
//! only" those whose version is 2, with an ICMP port unreachable, as a router without that
//! protocol would; UPnP only sets `enable_natpmp=no` (nothing listens on 5351).

use std::borrow::Cow;

use serde::Serialize;

use crate::model::{
    Edge, Family, Filtering, FirstCandidate, Impairment, Mapping, Nat, Portmap, Topology,
};

/// Address of the STUN/TURN server on the WAN.
pub const STUN_IP: &str = "198.51.100.3";
/// STUN/TURN port.
pub const STUN_PORT: u16 = 3478;
/// The STUN server's second address (RFC 5780: coturn answers OTHER-ADDRESS and CHANGE-REQUEST
/// when it listens on two addresses; its alternate port is [`STUN_PORT`] + 1).
pub const STUN_ALT_IP: &str = "198.51.100.7";
/// The WAN prefix of layouts whose routers offer port mapping (see the module docs).
pub const PORTMAP_WAN_PREFIX: &str = "11.0.0.";
/// The mark a packet accepted by miniupnpd's forward chain carries.
pub const MINIUPNPD_MARK: &str = "0x4f57";

/// One Docker network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetSpec {
    /// Key used by nodes (`wan`, `lan-l`, …).
    pub key: &'static str,
    /// IPv4 subnet.
    pub v4: Cow<'static, str>,
    /// IPv6 subnet, when the network is IPv6-enabled.
    pub v6: Option<Cow<'static, str>>,
}

/// What a node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// Runs the listener.
    Listener,
    /// Runs the dialer.
    Dialer,
    /// Forwards (and maybe NATs) between networks.
    Router,
    /// Runs coturn (STUN and TURN).
    Stun,
    /// Delays and drops packets on the dialer's access link.
    Impair,
}

/// One interface of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Iface {
    /// Network key.
    pub net: &'static str,
    /// IPv4 address.
    pub v4: String,
    /// IPv6 address, on IPv6-enabled networks.
    pub v6: Option<String>,
}

/// One container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSpec {
    /// Name within the cell (`listener`, `dialer`, `router-l`, …).
    pub key: &'static str,
    /// Purpose.
    pub role: NodeRole,
    /// Interfaces, in attachment order.
    pub ifaces: Vec<Iface>,
    /// Enables IP forwarding.
    pub forwards: bool,
    /// Shell lines run (with `sh -c`) before any peer starts. `{if:<net>}` is replaced by the
    /// node's interface name on that network.
    pub setup: Vec<String>,
    /// Human description (report).
    pub note: String,
    /// Files the node's daemons log to (miniupnpd), appended to the cell's `setup.log` when
    /// the run ends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// A concrete topology.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Layout {
    /// Networks.
    pub networks: Vec<NetSpec>,
    /// Containers.
    pub nodes: Vec<NodeSpec>,
    /// STUN server (`ip:port`) when there is a WAN.
    pub stun: Option<String>,
    /// TURN server (`ip:port`) when there is a WAN.
    pub turn: Option<String>,
    /// The STUN server's second address (`ip:port`, RFC 5780 filtering discovery) when there
    /// is a WAN.
    pub stun_alt: Option<String>,
    /// The router offers port mapping (miniupnpd runs on it; the WAN is 11.0.0.0/24).
    #[serde(skip_serializing_if = "is_false")]
    pub portmap: bool,
    /// What to do to the first candidate.
    pub first_candidate: Option<FirstCandidate>,
    /// Why the listener cannot be reached unsolicited, when it cannot (a cause-code suffix
    /// such as `filtering=address-and-port-dependent`).
    pub listener_block: Option<String>,
    /// Why the reply path cannot open a way either, when both sites are behind NATs (a
    /// cause-code suffix such as `symmetric NAT on both sides`; see [`reply_block`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_block: Option<String>,
    /// Impairment of the dialer's access link.
    pub impairment: Option<Impairment>,
    /// IPv4 addresses are removed from the peers (IPv6-only LAN).
    pub ipv6_only: bool,
}

impl Layout {
    /// The node with this key.
    pub fn node(&self, key: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.key == key)
    }

    /// `{if:NET}` placeholders in a node's setup that name a network the node has no
    /// interface on (they would never be substituted), as `node: {if:NET}`.
    pub fn unresolved_placeholders(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for line in &n.setup {
                let mut rest = line.as_str();
                while let Some(at) = rest.find("{if:") {
                    let tail = &rest[at + 4..];
                    let Some(end) = tail.find('}') else { break };
                    let net = &tail[..end];
                    if !n.ifaces.iter().any(|i| i.net == net) {
                        let p = format!("{}: {{if:{net}}}", n.key);
                        if !out.contains(&p) {
                            out.push(p);
                        }
                    }
                    rest = &tail[end..];
                }
            }
        }
        out
    }

    /// The same layout in address slot `slot` (`0..SLOTS`), so that cells running at the same
    /// time get disjoint subnets (Docker refuses overlapping ones): slot 0 is the layout as
    /// built (the addresses in the module documentation); slot `k` moves every /24 of it to
    /// one of its own, keeping each address's place in it and its kind (private stays
    /// private, the shared space stays shared, the public-looking ranges move to the RFC 2544
    /// benchmarking range `198.18.0.0/15`):
    ///
    /// ```text
    /// 10.N.0.x → 10.N.k.x     100.64.0.x → 100.64.k.x     2001:db8:N::x → 2001:db8:N:k::x
    /// 198.51.100.x → 198.18.k.x     203.0.113.x → 198.19.k.x     192.0.2.x → 198.19.(128+k).x
    /// 11.0.0.x → 11.0.k.x (the WAN of port-mapping layouts)
    /// ```
    pub fn relocated(mut self, slot: u8) -> Layout {
        if slot == 0 {
            return self;
        }
        let r = |t: &str| relocate_text(t, slot);
        for n in &mut self.networks {
            n.v4 = Cow::Owned(r(&n.v4));
            n.v6 = n.v6.take().map(|v| Cow::Owned(r(&v)));
        }
        for n in &mut self.nodes {
            for i in &mut n.ifaces {
                i.v4 = r(&i.v4);
                i.v6 = i.v6.take().map(|v| r(&v));
            }
            for line in &mut n.setup {
                *line = r(line);
            }
            n.note = r(&n.note);
        }
        for n in &mut self.nodes {
            for l in &mut n.logs {
                *l = r(l);
            }
        }
        self.stun = self.stun.take().map(|v| r(&v));
        self.turn = self.turn.take().map(|v| r(&v));
        self.stun_alt = self.stun_alt.take().map(|v| r(&v));
        self
    }

    /// Moves the WAN to [`PORTMAP_WAN_PREFIX`] (11.0.0.0/24, same host numbers): every
    /// address, rule and note that names it.
    fn with_portmap_wan(mut self) -> Layout {
        let r = |t: &str| t.replace("198.51.100.", PORTMAP_WAN_PREFIX);
        for n in &mut self.networks {
            n.v4 = Cow::Owned(r(&n.v4));
        }
        for n in &mut self.nodes {
            for i in &mut n.ifaces {
                i.v4 = r(&i.v4);
            }
            for line in &mut n.setup {
                *line = r(line);
            }
            n.note = r(&n.note);
        }
        self.stun = self.stun.take().map(|v| r(&v));
        self.turn = self.turn.take().map(|v| r(&v));
        self.stun_alt = self.stun_alt.take().map(|v| r(&v));
        self.portmap = true;
        self
    }

    /// Which node owns an IP address (IPv4 or IPv6 text), if any.
    pub fn owner_of(&self, ip: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| {
            n.ifaces
                .iter()
                .any(|i| i.v4 == ip || i.v6.as_deref() == Some(ip))
        })
    }
}

/// How many address slots [`Layout::relocated`] has (cells that can run at the same time).
pub const SLOTS: u8 = 64;

/// Moves the addresses in `text` to slot `slot` (see [`Layout::relocated`]); other text and
/// addresses outside the layout's ranges (loopback, multicast, …) are left as they are.
pub fn relocate_text(text: &str, slot: u8) -> String {
    let mut text = text.to_owned();
    for n in 1..=3 {
        text = text.replace(
            &format!("2001:db8:{n}::"),
            &format!("2001:db8:{n}:{slot:x}::"),
        );
    }
    let b = text.as_bytes();
    // Bytes: only ASCII runs are replaced, so the result stays valid UTF-8.
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let starts =
            b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.'));
        if starts && let Some((octets, len)) = dotted_prefix(&b[i..]) {
            let moved = match octets {
                [10, n @ 1..=4, 0] => Some([10, n, slot]),
                [100, 64, 0] => Some([100, 64, slot]),
                [198, 51, 100] => Some([198, 18, slot]),
                [203, 0, 113] => Some([198, 19, slot]),
                [192, 0, 2] => Some([198, 19, 128 + slot]),
                [11, 0, 0] => Some([11, 0, slot]),
                _ => None,
            };
            if let Some([a, c, d]) = moved {
                out.extend_from_slice(format!("{a}.{c}.{d}.").as_bytes());
                i += len;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a.b.c.` followed by a digit at the start of `b`: the three octets and the length of
/// `a.b.c.`.
fn dotted_prefix(b: &[u8]) -> Option<([u8; 3], usize)> {
    let mut octets = [0u8; 3];
    let mut at = 0;
    for o in &mut octets {
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 3 || b.get(at + digits) != Some(&b'.') {
            return None;
        }
        *o = std::str::from_utf8(&b[at..at + digits])
            .ok()?
            .parse()
            .ok()?;
        at += digits + 1;
    }
    b.get(at)
        .is_some_and(u8::is_ascii_digit)
        .then_some((octets, at))
}

const WAN: NetSpec = NetSpec {
    key: "wan",
    v4: Cow::Borrowed("198.51.100.0/24"),
    v6: None,
};

fn iface(net: &'static str, v4: &str) -> Iface {
    Iface {
        net,
        v4: v4.to_owned(),
        v6: None,
    }
}

/// The cause suffix of a reply path that opened nothing, for a sites topology whose two edges
/// are NATs: `<name> NAT on both sides` when they behave alike, else `<dialer's> NAT (dialer),
/// <listener's> NAT (listener)` (names of [`crate::model::Nat::common_name`]; a double NAT is
/// `double`). `None` when either side has no NAT (a reply code then describes an address the
/// other side's checks reach). Descriptive only: the runner uses it when the listener accepted
/// the code and still nothing reached it.
pub fn reply_block(listener: Edge, dialer: Edge) -> Option<String> {
    let name = |e: Edge| match e {
        Edge::Nat { nat } => Some(nat.common_name()),
        Edge::DoubleNat { .. } => Some("double"),
        _ => None,
    };
    let (l, d) = (name(listener)?, name(dialer)?);
    Some(if l == d {
        format!("{l} NAT on both sides")
    } else {
        format!("{d} NAT (dialer), {l} NAT (listener)")
    })
}

/// Builds the layout of a topology.
pub fn layout(topology: &Topology, impairment: Option<Impairment>) -> Layout {
    let mut b = Builder::default();
    match topology {
        Topology::SameLan {
            family,
            offline,
            first_candidate,
        } => same_lan(&mut b, *family, *offline, *first_candidate),
        Topology::Sites { listener, dialer } => {
            b.wan();
            site(&mut b, Side::Listener, *listener);
            site(&mut b, Side::Dialer, *dialer);
            b.layout.reply_block = reply_block(*listener, *dialer);
        }
        Topology::Hairpin { hairpin } => hairpin_router(&mut b, *hairpin),
    }
    for (route, except) in std::mem::take(&mut b.wan_routes) {
        for n in &mut b.layout.nodes {
            if n.key != except && n.ifaces.iter().any(|i| i.net == "wan") {
                n.setup.push(route.clone());
            }
        }
    }
    if b.wan_v6 {
        // Every WAN node gets its IPv6 address with the same host number (Docker would
        // otherwise pick one for the nodes that have none, possibly one a later node asks for).
        for n in &mut b.layout.nodes {
            for i in &mut n.ifaces {
                if i.net == "wan" && i.v6.is_none() {
                    let host = i.v4.rsplit('.').next().unwrap_or("1");
                    i.v6 = Some(format!("{WAN_V6_PREFIX}{host}"));
                }
            }
        }
        if let Some(w) = b.layout.networks.iter_mut().find(|n| n.key == "wan") {
            w.v6 = Some(format!("{WAN_V6_PREFIX}/64").into());
        }
    }
    if let Some(imp) = impairment {
        b.impair(imp);
    }
    b.layout.impairment = impairment;
    if b.portmap {
        b.layout.with_portmap_wan()
    } else {
        b.layout
    }
}

/// The WAN's IPv6 prefix (with an IPv6 firewall).
const WAN_V6_PREFIX: &str = "2001:db8:2::";
/// The IPv6 LAN behind an IPv6 firewall.
const FW_V6_PREFIX: &str = "2001:db8:3::";

#[derive(Default)]
struct Builder {
    layout: Layout,
    /// Routes every WAN host except the named router needs.
    wan_routes: Vec<(String, &'static str)>,
    /// A router runs miniupnpd: the WAN moves to [`PORTMAP_WAN_PREFIX`].
    portmap: bool,
    /// The WAN carries IPv6 too.
    wan_v6: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Listener,
    Dialer,
}

impl Builder {
    fn net(&mut self, net: NetSpec) {
        if !self.layout.networks.iter().any(|n| n.key == net.key) {
            self.layout.networks.push(net);
        }
    }

    fn node(&mut self, node: NodeSpec) {
        self.layout.nodes.push(node);
    }

    fn wan(&mut self) {
        self.net(WAN);
        self.node(NodeSpec {
            key: "stun",
            role: NodeRole::Stun,
            ifaces: vec![iface("wan", STUN_IP)],
            forwards: false,
            setup: vec![
                "ip route del default 2>/dev/null || true".into(),
                format!("ip addr add {STUN_ALT_IP}/24 dev {{if:wan}}"),
            ],
            note: format!(
                "coturn: STUN and TURN (user oneway/oneway); RFC 5780 with its second address {STUN_ALT_IP}"
            ),
            logs: Vec::new(),
        });
        self.layout.stun = Some(format!("{STUN_IP}:{STUN_PORT}"));
        self.layout.turn = Some(format!("{STUN_IP}:{STUN_PORT}"));
        self.layout.stun_alt = Some(format!("{STUN_ALT_IP}:{STUN_PORT}"));
    }

    fn node_mut(&mut self, key: &str) -> Option<&mut NodeSpec> {
        self.layout.nodes.iter_mut().find(|n| n.key == key)
    }

    /// Puts an impairment hop between the dialer and its router (or, on a WAN-attached
    /// dialer, between the dialer and the WAN).
    fn impair(&mut self, imp: Impairment) {
        let half = imp.rtt_ms / 2;
        let netem = format!(
            "delay {half}ms{} loss {}%",
            if imp.jitter_ms > 0 {
                format!(" {}ms", imp.jitter_ms)
            } else {
                String::new()
            },
            imp.loss_percent
        );
        self.net(NetSpec {
            key: "link",
            v4: "10.4.0.0/24".into(),
            v6: None,
        });
        // Move the dialer's router (if any) from lan-d onto the link network.
        let dialer_router = self.layout.nodes.iter().position(|n| n.key == "router-d");
        let Some(router_index) = dialer_router else {
            return;
        };
        let router = &mut self.layout.nodes[router_index];
        for i in &mut router.ifaces {
            if i.net == "lan-d" {
                i.net = "link";
                i.v4 = "10.4.0.254".into();
            }
        }
        // The router's rules named its inside interface `{if:lan-d}`; that interface is now
        // on the link network (left as it was, the placeholder never resolves and the forward
        // filter drops everything from the dialer).
        for line in &mut router.setup {
            *line = line.replace("{if:lan-d}", "{if:link}");
        }
        router
            .setup
            .insert(0, "ip route add 10.1.0.0/24 via 10.4.0.253".into());
        let impair_tool = format!(
            "oneway suite impair --delay-ms {half} --jitter-ms {} --loss-percent {} {{if:lan-d}} {{if:link}} 10.1.0.0/24",
            imp.jitter_ms, imp.loss_percent
        );
        // The delayer runs in the background; wait (bounded) for its ready file.
        let userspace = format!(
            "{impair_tool} >/tmp/impair.log 2>&1 & for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do [ -e /tmp/impair.ready ] && break; sleep 0.1; done; [ -e /tmp/impair.ready ] || {{ while IFS= read -r l; do echo \"$l\"; done < /tmp/impair.log; exit 1; }}"
        );
        self.node(NodeSpec {
            key: "impair",
            role: NodeRole::Impair,
            ifaces: vec![iface("lan-d", "10.1.0.253"), iface("link", "10.4.0.253")],
            forwards: true,
            setup: vec![
                "ip route del default 2>/dev/null || true; ip route add default via 10.4.0.254".into(),
                // netem where the kernel has it; otherwise the userspace delayer (TUN).
                format!(
                    "if tc qdisc add dev {{if:lan-d}} root netem {netem} 2>/dev/null && tc qdisc add dev {{if:link}} root netem {netem}; then echo impairment=netem; else tc qdisc del dev {{if:lan-d}} root 2>/dev/null || true; {userspace}; echo impairment=userspace; fi"
                ),
            ],
            note: format!(
                "impairment hop: {} ms RTT, ±{} ms jitter and {}% loss per direction (tc netem, or the userspace delayer)",
                imp.rtt_ms, imp.jitter_ms, imp.loss_percent
            ),
            logs: Vec::new(),
        });
        if let Some(d) = self.node_mut("dialer") {
            d.setup = vec![
                "ip route del default 2>/dev/null || true; ip route add default via 10.1.0.253"
                    .into(),
            ];
        }
    }
}

fn same_lan(b: &mut Builder, family: Family, offline: bool, first: Option<FirstCandidate>) {
    let v6 = matches!(family, Family::Ipv6 | Family::DualStack);
    b.net(NetSpec {
        key: "lan-d",
        v4: "10.1.0.0/24".into(),
        v6: v6.then_some("2001:db8:1::/64".into()),
    });
    let addr = |v4: &str, v6a: &str| Iface {
        net: "lan-d",
        v4: v4.to_owned(),
        v6: v6.then(|| v6a.to_owned()),
    };
    let mut listener_ifaces = Vec::new();
    let mut dialer_ifaces = vec![addr("10.1.0.20", "2001:db8:1::20")];
    if first.is_some() {
        b.net(NetSpec {
            key: "lan-x",
            v4: "10.3.0.0/24".into(),
            v6: None,
        });
        listener_ifaces.push(iface("lan-x", "10.3.0.10"));
        // The dialer is on both LANs: the listener may list either address first, so the
        // first-candidate rule (applied once the token is known) decides which one is
        // impaired; for `wrong-lan` it takes the dialer off that candidate's LAN.
        dialer_ifaces.push(iface("lan-x", "10.3.0.20"));
    }
    listener_ifaces.push(addr("10.1.0.10", "2001:db8:1::10"));
    let strip = if family == Family::Ipv6 {
        "ip route del default 2>/dev/null || true; ip -6 route del default 2>/dev/null || true; ip -4 addr flush dev {if:lan-d}"
    } else {
        "ip route del default 2>/dev/null || true; ip -6 route del default 2>/dev/null || true"
    };
    b.node(NodeSpec {
        key: "listener",
        role: NodeRole::Listener,
        ifaces: listener_ifaces,
        forwards: false,
        setup: vec![strip.into()],
        note: if offline {
            "listener; no router, no default route; mDNS names".into()
        } else {
            "listener".into()
        },
        logs: Vec::new(),
    });
    b.node(NodeSpec {
        key: "dialer",
        role: NodeRole::Dialer,
        ifaces: dialer_ifaces,
        forwards: false,
        setup: vec![strip.into()],
        note: "dialer".into(),
        logs: Vec::new(),
    });
    b.layout.first_candidate = first;
    b.layout.ipv6_only = family == Family::Ipv6;
}

/// Addresses of one side.
struct SideAddrs {
    lan: &'static str,
    lan_net: &'static str,
    lan_fw_net: &'static str,
    host: &'static str,
    host_fw: &'static str,
    router_lan: &'static str,
    router_lan_fw: &'static str,
    router_wan: &'static str,
    public_host: &'static str,
    node: &'static str,
    router: &'static str,
    role: NodeRole,
}

fn addrs(side: Side) -> SideAddrs {
    match side {
        Side::Listener => SideAddrs {
            lan: "lan-l",
            lan_net: "10.2.0.0/24",
            lan_fw_net: "203.0.113.0/24",
            host: "10.2.0.10",
            host_fw: "203.0.113.10",
            router_lan: "10.2.0.254",
            router_lan_fw: "203.0.113.254",
            router_wan: "198.51.100.2",
            public_host: "198.51.100.10",
            node: "listener",
            router: "router-l",
            role: NodeRole::Listener,
        },
        Side::Dialer => SideAddrs {
            lan: "lan-d",
            lan_net: "10.1.0.0/24",
            lan_fw_net: "192.0.2.0/24",
            host: "10.1.0.20",
            host_fw: "192.0.2.20",
            router_lan: "10.1.0.254",
            router_lan_fw: "192.0.2.254",
            router_wan: "198.51.100.4",
            public_host: "198.51.100.20",
            node: "dialer",
            router: "router-d",
            role: NodeRole::Dialer,
        },
    }
}

const NO_DEFAULT: &str =
    "ip route del default 2>/dev/null || true; ip -6 route del default 2>/dev/null || true";

fn site(b: &mut Builder, side: Side, edge: Edge) {
    let a = addrs(side);
    match edge {
        Edge::Public => {
            b.node(NodeSpec {
                key: a.node,
                role: a.role,
                ifaces: vec![iface("wan", a.public_host)],
                forwards: false,
                setup: vec![NO_DEFAULT.into()],
                note: format!("{}: public address on the WAN", a.node),
                logs: Vec::new(),
            });
        }
        Edge::Firewall { ipv6, portmap } => {
            let v6 = |host: &str| ipv6.then(|| format!("{FW_V6_PREFIX}{host}"));
            b.net(NetSpec {
                key: a.lan,
                v4: a.lan_fw_net.into(),
                v6: ipv6.then(|| format!("{FW_V6_PREFIX}/64").into()),
            });
            let host_suffix = a.host_fw.rsplit('.').next().unwrap_or("10");
            let router_suffix = a.router_lan_fw.rsplit('.').next().unwrap_or("254");
            let host_setup = if ipv6 {
                // IPv6 only: the IPv4 address goes (Docker needs one per network).
                format!(
                    "{NO_DEFAULT}; ip -6 route add default via {FW_V6_PREFIX}{router_suffix}; ip -4 addr flush dev {{if:{}}}",
                    a.lan
                )
            } else {
                format!("{NO_DEFAULT}; ip route add default via {}", a.router_lan_fw)
            };
            b.node(NodeSpec {
                key: a.node,
                role: a.role,
                ifaces: vec![Iface {
                    net: a.lan,
                    v4: a.host_fw.to_owned(),
                    v6: v6(host_suffix),
                }],
                forwards: false,
                setup: vec![host_setup],
                note: format!(
                    "{}: routed public {} address behind a stateful firewall",
                    a.node,
                    if ipv6 { "IPv6 (IPv6 only)" } else { "IPv4" }
                ),
                logs: Vec::new(),
            });
            let mut setup = vec![
                NO_DEFAULT.into(),
                nft(&firewall_rules(a.lan, !portmap.is_empty())),
            ];
            let mut logs = Vec::new();
            if !portmap.is_empty() {
                setup.extend(miniupnpd_setup(&Miniupnpd {
                    portmap,
                    refuse: false,
                    wan: "wan",
                    lan: a.lan,
                    lan_net: a.lan_fw_net,
                    ipv6,
                }));
                logs.push(MINIUPNPD_LOG.to_owned());
                b.portmap = true;
            }
            b.node(NodeSpec {
                key: a.router,
                role: NodeRole::Router,
                ifaces: vec![
                    iface("wan", a.router_wan),
                    Iface {
                        net: a.lan,
                        v4: a.router_lan_fw.to_owned(),
                        v6: v6(router_suffix),
                    },
                ],
                forwards: true,
                setup,
                note: format!(
                    "stateful {}firewall: no unsolicited inbound{}",
                    if ipv6 { "IPv6 " } else { "" },
                    if portmap.is_empty() {
                        String::new()
                    } else {
                        format!("; miniupnpd offers {}", portmap.describe())
                    }
                ),
                logs,
            });
            // Every other WAN host needs the route to the firewalled (routed) subnet.
            b.wan_routes.push((
                format!("ip route add {} via {}", a.lan_fw_net, a.router_wan),
                a.router,
            ));
            if ipv6 {
                b.wan_v6 = true;
                let router_wan_suffix = a.router_wan.rsplit('.').next().unwrap_or("2");
                b.wan_routes.push((
                    format!(
                        "ip -6 route add {FW_V6_PREFIX}/64 via {WAN_V6_PREFIX}{router_wan_suffix}"
                    ),
                    a.router,
                ));
            }
            if side == Side::Listener {
                b.layout.listener_block = Some("firewall=no-inbound".into());
            }
        }
        Edge::Nat { nat } => {
            lan_host(b, &a);
            let mut setup = vec![
                NO_DEFAULT.into(),
                nft(&nat_rules(nat, &[a.lan], a.router_wan)),
            ];
            let mut logs = Vec::new();
            if !nat.portmap.is_empty() {
                setup.extend(miniupnpd_setup(&Miniupnpd {
                    portmap: nat.portmap,
                    refuse: nat.portmap_refuse,
                    wan: "wan",
                    lan: a.lan,
                    lan_net: a.lan_net,
                    ipv6: false,
                }));
                logs.push(MINIUPNPD_LOG.to_owned());
                b.portmap = true;
            }
            b.node(NodeSpec {
                key: a.router,
                role: NodeRole::Router,
                ifaces: vec![iface("wan", a.router_wan), iface(a.lan, a.router_lan)],
                forwards: true,
                setup,
                note: format!(
                    "NAT {}: mapping={:?}, filtering={}, hairpin={}{}",
                    nat.common_name(),
                    nat.mapping,
                    nat.filtering.name(),
                    if nat.hairpin { "on" } else { "off" },
                    portmap_note(nat.portmap, nat.portmap_refuse)
                ),
                logs,
            });
            if side == Side::Listener && nat.filtering != Filtering::EndpointIndependent {
                b.layout.listener_block = Some(format!("filtering={}", nat.filtering.name()));
            }
        }
        Edge::UdpBlocked => {
            lan_host(b, &a);
            b.node(NodeSpec {
                key: a.router,
                role: NodeRole::Router,
                ifaces: vec![iface("wan", a.router_wan), iface(a.lan, a.router_lan)],
                forwards: true,
                setup: vec![NO_DEFAULT.into(), nft(&udp_blocked_rules(a.lan))],
                note: "NAT that drops all UDP (TCP passes, e.g. TURN over TCP)".into(),
                logs: Vec::new(),
            });
            if side == Side::Listener {
                b.layout.listener_block = Some("udp-blocked".into());
            }
        }
        Edge::DoubleNat { portmap } => {
            b.net(NetSpec {
                key: "cgn",
                v4: "100.64.0.0/24".into(),
                v6: None,
            });
            lan_host(b, &a);
            let pr = Nat {
                mapping: Mapping::EndpointIndependent,
                filtering: Filtering::AddressAndPortDependent,
                hairpin: false,
                portmap: Default::default(),
                portmap_refuse: false,
            };
            let mut setup = vec![
                format!("{NO_DEFAULT}; ip route add default via 100.64.0.254"),
                nft(&nat_rules(Nat { portmap, ..pr }, &[a.lan], "100.64.0.10")),
            ];
            let mut logs = Vec::new();
            if !portmap.is_empty() {
                setup.extend(miniupnpd_setup(&Miniupnpd {
                    portmap,
                    refuse: false,
                    wan: "cgn",
                    lan: a.lan,
                    lan_net: a.lan_net,
                    ipv6: false,
                }));
                logs.push(MINIUPNPD_LOG.to_owned());
                b.portmap = true;
            }
            b.node(NodeSpec {
                key: a.router,
                role: NodeRole::Router,
                ifaces: vec![iface("cgn", "100.64.0.10"), iface(a.lan, a.router_lan)],
                forwards: true,
                setup,
                note: format!(
                    "home NAT (port-restricted cone) behind the CGNAT{}",
                    portmap_note(portmap, false)
                ),
                logs,
            });
            b.node(NodeSpec {
                key: "cgnat",
                role: NodeRole::Router,
                ifaces: vec![iface("wan", "198.51.100.5"), iface("cgn", "100.64.0.254")],
                forwards: true,
                setup: vec![
                    NO_DEFAULT.into(),
                    nft(&nat_rules(pr, &["cgn"], "198.51.100.5")),
                ],
                note: "carrier-grade NAT (port-restricted cone), 100.64.0.0/24 inside".into(),
                logs: Vec::new(),
            });
            if side == Side::Listener {
                b.layout.listener_block = Some("filtering=address-and-port-dependent".into());
            }
        }
    }
}

fn lan_host(b: &mut Builder, a: &SideAddrs) {
    b.net(NetSpec {
        key: a.lan,
        v4: a.lan_net.into(),
        v6: None,
    });
    b.node(NodeSpec {
        key: a.node,
        role: a.role,
        ifaces: vec![iface(a.lan, a.host)],
        forwards: false,
        setup: vec![format!(
            "{NO_DEFAULT}; ip route add default via {}",
            a.router_lan
        )],
        note: format!("{} on a private LAN", a.node),
        logs: Vec::new(),
    });
}

fn hairpin_router(b: &mut Builder, hairpin: bool) {
    b.wan();
    let l = addrs(Side::Listener);
    let d = addrs(Side::Dialer);
    lan_host(b, &l);
    lan_host(b, &d);
    let nat = Nat {
        mapping: Mapping::EndpointIndependent,
        filtering: Filtering::EndpointIndependent,
        hairpin,
        portmap: Default::default(),
        portmap_refuse: false,
    };
    b.node(NodeSpec {
        key: "router",
        role: NodeRole::Router,
        ifaces: vec![
            iface("wan", "198.51.100.2"),
            iface("lan-l", "10.2.0.254"),
            iface("lan-d", "10.1.0.254"),
        ],
        forwards: true,
        setup: vec![
            NO_DEFAULT.into(),
            nft(&nat_rules(nat, &["lan-l", "lan-d"], "198.51.100.2")),
        ],
        note: format!(
            "full-cone NAT with two isolated inside LANs, hairpin {}",
            if hairpin { "on" } else { "off" }
        ),
        logs: Vec::new(),
    });
    if !hairpin {
        b.layout.listener_block = Some("hairpin=off".into());
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn nft(rules: &str) -> String {
    format!("nft -f - <<'EOF'\n{rules}\nEOF")
}

/// nftables rules of a NAT router with inside networks `inside` and the outside network
/// `wan` (or `cgn` for the home router of a double NAT), per RFC 4787 behaviour.
fn nat_rules(nat: Nat, inside: &[&str], public_ip: &str) -> String {
    let out = if public_ip.starts_with("100.64.") {
        "{if:cgn}"
    } else {
        "{if:wan}"
    };
    let ins: Vec<String> = inside.iter().map(|n| format!("\"{{if:{n}}}\"")).collect();
    let ins = format!("{{ {} }}", ins.join(", "));
    let masquerade = match nat.mapping {
        Mapping::EndpointIndependent | Mapping::AddressDependent => "masquerade",
        Mapping::AddressAndPortDependent => "masquerade random,fully-random",
    };
    let learned = nat.filtering != Filtering::AddressAndPortDependent;
    let scope = if nat.hairpin {
        format!("ip daddr {public_ip}")
    } else {
        format!("iifname \"{out}\" ip daddr {public_ip}")
    };
    let mut r = String::from("table ip oneway {\n");
    if nat.mapping == Mapping::AddressDependent {
        // ADM: the external port is a hash of the inside socket and the remote address, so
        // every port of one remote address shares a mapping and another address gets another.
        // With address-dependent filtering, a learned map (filled after SNAT, keyed by remote
        // address and external port) lets any port of a contacted address in.
        if learned {
            r.push_str(
                "  map adm {\n    type ipv4_addr . inet_service : ipv4_addr . inet_service\n    flags dynamic,timeout\n    timeout 5m\n  }\n",
            );
            r.push_str(&format!(
                "  chain learn {{\n    type filter hook postrouting priority 200;\n    oifname \"{out}\" ip protocol udp ct status snat update @adm {{ ip daddr . udp sport : ct original ip saddr . ct original proto-src }}\n  }}\n"
            ));
            r.push_str(&format!(
                "  chain pre {{\n    type nat hook prerouting priority -100;\n    {scope} ip protocol udp dnat ip to ip saddr . udp dport map @adm\n  }}\n"
            ));
        }
        // (nft loads the hash in host byte order and NAT reads the port in network order, so
        // the port is the byte-swapped value; still a function of socket and remote address.)
        r.push_str(&format!(
            "  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"{out}\" ip protocol udp snat ip to {public_ip} : jhash ip saddr . udp sport . ip daddr mod 20000 seed 0x4f57 offset 40000\n    oifname \"{out}\" {masquerade}\n  }}\n"
        ));
        r.push_str("  chain forward_filter {\n    type filter hook forward priority 0; policy drop;\n    ct state established,related accept\n");
        if !nat.portmap.is_empty() {
            r.push_str(&format!("    meta mark {MINIUPNPD_MARK} accept\n"));
        }
        if learned {
            // The map is keyed by the remote address: only contacted addresses get in.
            r.push_str("    ct status dnat accept\n");
        }
        r.push_str(&format!(
            "    iifname {ins} oifname \"{out}\" accept\n  }}\n}}"
        ));
        return r;
    }
    if learned {
        // EIF and ADF need a learned mapping: plain conntrack filters by address and port.
        r.push_str(
            "  map fc {\n    type inet_service : ipv4_addr\n    flags dynamic,timeout\n    timeout 5m\n  }\n",
        );
        r.push_str(
            "  set contacted {\n    type ipv4_addr . inet_service . ipv4_addr\n    flags dynamic,timeout\n    timeout 5m\n  }\n",
        );
        r.push_str(&format!(
            "  chain learn {{\n    type filter hook prerouting priority -150;\n    iifname {ins} ip daddr != {public_ip} ip protocol udp update @fc {{ udp sport : ip saddr }}\n    iifname {ins} ip daddr != {public_ip} ip protocol udp update @contacted {{ ip saddr . udp sport . ip daddr }}\n  }}\n"
        ));
        r.push_str(&format!(
            "  chain pre {{\n    type nat hook prerouting priority -100;\n    {scope} ip protocol udp dnat ip to udp dport map @fc\n  }}\n"
        ));
    }
    r.push_str(&format!(
        "  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"{out}\" {masquerade}\n  }}\n"
    ));
    r.push_str("  chain forward_filter {\n    type filter hook forward priority 0; policy drop;\n    ct state established,related accept\n");
    if !nat.portmap.is_empty() {
        r.push_str(&format!("    meta mark {MINIUPNPD_MARK} accept\n"));
    }
    match nat.filtering {
        Filtering::EndpointIndependent => r.push_str("    ct status dnat accept\n"),
        Filtering::AddressDependent => {
            r.push_str("    ct status dnat ip daddr . udp dport . ip saddr @contacted accept\n")
        }
        Filtering::AddressAndPortDependent => {}
    }
    r.push_str(&format!(
        "    iifname {ins} oifname \"{out}\" accept\n  }}\n}}"
    ));
    r
}

fn firewall_rules(lan: &str, portmap: bool) -> String {
    let pinholes = if portmap {
        format!("    meta mark {MINIUPNPD_MARK} accept\n")
    } else {
        String::new()
    };
    format!(
        "table inet oneway {{\n  chain forward_filter {{\n    type filter hook forward priority 0; policy drop;\n    ct state established,related accept\n{pinholes}    iifname \"{{if:{lan}}}\" accept\n  }}\n}}"
    )
}

/// Where a router's miniupnpd logs.
const MINIUPNPD_LOG: &str = "/tmp/miniupnpd.log";

/// A router's miniupnpd.
struct Miniupnpd<'a> {
    portmap: Portmap,
    refuse: bool,
    /// Network key of its external interface.
    wan: &'a str,
    /// Network key of its LAN interface.
    lan: &'a str,
    /// The LAN's IPv4 subnet (its permission rule allows it).
    lan_net: &'a str,
    /// IPv6 pinholes too.
    ipv6: bool,
}

fn portmap_note(portmap: Portmap, refuse: bool) -> String {
    if portmap.is_empty() {
        return String::new();
    }
    format!(
        "; miniupnpd offers {}{}",
        portmap.describe(),
        if refuse {
            " and refuses every mapping (deny-all permission rule)"
        } else {
            ""
        }
    )
}

/// The setup lines that start miniupnpd on a router: its `table inet filter` (the chains it
/// manages, jumped to before the suite's own chains; see the module docs), the rule that keeps
/// PCP or NAT-PMP out when only the other is offered, its configuration, and the daemon in the
/// foreground (`-d`) in the background of the setup shell, waited for (bounded) until it
/// listens.
fn miniupnpd_setup(m: &Miniupnpd<'_>) -> Vec<String> {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let natpmp_port = m.portmap.pcp || m.portmap.natpmp;
    // The first payload byte of a request to 5351 is its version: 0 NAT-PMP, 2 PCP.
    let keep_out = match (m.portmap.pcp, m.portmap.natpmp) {
        (true, false) => "    udp dport 5351 @th,64,8 0 reject\n",
        (false, true) => "    udp dport 5351 @th,64,8 2 reject\n",
        _ => "",
    };
    let rules = format!(
        "table inet filter {{\n  chain miniupnpd {{\n  }}\n  chain prerouting_miniupnpd {{\n  }}\n  chain postrouting_miniupnpd {{\n  }}\n  chain forward {{\n    type filter hook forward priority -10; policy accept;\n    meta mark set {MINIUPNPD_MARK} jump miniupnpd\n    meta mark set 0\n  }}\n  chain prerouting {{\n    type nat hook prerouting priority -110; policy accept;\n    jump prerouting_miniupnpd\n  }}\n  chain postrouting {{\n    type nat hook postrouting priority 90; policy accept;\n    jump postrouting_miniupnpd\n  }}\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{keep_out}  }}\n}}"
    );
    let permissions = if m.refuse {
        "'deny 0-65535 0.0.0.0/0 0-65535'".to_owned()
    } else {
        format!(
            "'allow 1024-65535 {} 1024-65535' 'deny 0-65535 0.0.0.0/0 0-65535'",
            m.lan_net
        )
    };
    let conf = format!(
        "printf '%s\\n' 'ext_ifname={{if:{}}}' 'listening_ip={{if:{}}}' 'http_port=0' 'enable_natpmp={}' 'enable_upnp={}' 'secure_mode=yes' 'system_uptime=no' 'min_lifetime=120' 'max_lifetime=86400' 'uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b' 'ipv6_disable={}' {permissions} > /tmp/miniupnpd.conf",
        m.wan,
        m.lan,
        yes(natpmp_port),
        yes(m.portmap.upnp),
        yes(!m.ipv6),
    );
    // Ready when it listens: 5351 (NAT-PMP/PCP, hex 14E7) or 1900 (SSDP, hex 076C) in
    // /proc/net/udp{,6} (shell built-ins only; the image has no `ss` or `grep`).
    let port = if natpmp_port { "14E7" } else { "076C" };
    let start = format!(
        "miniupnpd -d -f /tmp/miniupnpd.conf -P /tmp/miniupnpd.pid > {MINIUPNPD_LOG} 2>&1 &\nready=; i=0; while [ -z \"$ready\" ] && [ $i -lt 50 ]; do for f in /proc/net/udp /proc/net/udp6; do [ -e $f ] || continue; while read -r _ local _; do case $local in *:{port}) ready=1;; esac; done < $f; done; [ -n \"$ready\" ] || sleep 0.1; i=$((i+1)); done; [ -n \"$ready\" ] || {{ echo 'miniupnpd did not listen within 5 s:'; while IFS= read -r l; do echo \"$l\"; done < {MINIUPNPD_LOG}; exit 1; }}; echo miniupnpd listening"
    );
    vec![
        "command -v miniupnpd >/dev/null || { echo 'miniupnpd is not in the image (install miniupnpd-nftables: ci/install.sh)'; exit 1; }".to_owned(),
        nft(&rules),
        conf,
        start,
    ]
}

fn udp_blocked_rules(lan: &str) -> String {
    format!(
        "table ip oneway {{\n  chain post {{\n    type nat hook postrouting priority 100;\n    oifname \"{{if:wan}}\" masquerade\n  }}\n  chain forward_filter {{\n    type filter hook forward priority 0; policy drop;\n    meta l4proto udp drop\n    ct state established,related accept\n    iifname \"{{if:{lan}}}\" accept\n  }}\n}}"
    )
}

/// The dialer-side command that impairs the token's first candidate (`ip` is its address).
pub fn first_candidate_rule(kind: FirstCandidate, ip: &str) -> String {
    let v6 = ip.contains(':');
    let (family, addr) = if v6 { ("ip6", "ip6") } else { ("ip", "ip") };
    match kind {
        FirstCandidate::BlackHoled => format!(
            "nft add table {family} oneway_fc && nft add chain {family} oneway_fc out '{{ type filter hook output priority 0; }}' && nft add rule {family} oneway_fc out {addr} daddr {ip} drop"
        ),
        FirstCandidate::Rejected => format!(
            "nft add table {family} oneway_fc && nft add chain {family} oneway_fc in '{{ type filter hook prerouting priority 0; }}' && nft add chain {family} oneway_fc out '{{ type filter hook output priority 0; }}' && nft add rule {family} oneway_fc out {addr} daddr {ip} meta l4proto udp reject"
        ),
        // Take the dialer off the candidate's LAN: flush its address on the interface that
        // reaches it (the connected route goes with it, and there is no default route). Only
        // shell built-ins and `ip` are in the image, hence the positional-argument parsing.
        FirstCandidate::WrongLan => format!(
            "set -- $(ip -o route get {ip}); dev=; while [ $# -gt 1 ]; do [ \"$1\" = dev ] && dev=$2; shift; done; [ -n \"$dev\" ] && ip -{} addr flush dev \"$dev\" && echo \"flushed $dev\"",
            if v6 { 6 } else { 4 }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relocation_moves_every_subnet_and_nothing_else() {
        assert_eq!(
            relocate_text(
                "ip route add 10.1.0.0/24 via 10.4.0.253; ±198.51.100.3:3478 203.0.113.10 192.0.2.254 100.64.0.10 127.0.0.1 110.1.0.1 2001:db8:1::10",
                3
            ),
            "ip route add 10.1.3.0/24 via 10.4.3.253; ±198.18.3.3:3478 198.19.3.10 198.19.131.254 100.64.3.10 127.0.0.1 110.1.0.1 2001:db8:1:3::10"
        );
        assert_eq!(relocate_text("10.1.0.20", 0), "10.1.0.20");
        let v4 = |l: &Layout| {
            l.networks
                .iter()
                .map(|n| n.v4.to_string())
                .collect::<Vec<_>>()
        };
        for topology in [
            Topology::Hairpin { hairpin: true },
            Topology::SameLan {
                family: Family::DualStack,
                offline: false,
                first_candidate: None,
            },
        ] {
            let l = layout(&topology, None);
            let moved = l.clone().relocated(5);
            assert_eq!(l.clone().relocated(0), l);
            for (a, b) in v4(&l).iter().zip(v4(&moved)) {
                assert_ne!(*a, b);
            }
            for n in &moved.nodes {
                for i in &n.ifaces {
                    assert!(moved.networks.iter().any(|net| net.key == i.net));
                }
            }
        }
    }

    #[test]
    fn symmetric_nat_masquerades_fully_random_and_learns_nothing() {
        let rules = nat_rules(
            Nat {
                mapping: Mapping::AddressAndPortDependent,
                filtering: Filtering::AddressAndPortDependent,
                hairpin: false,
                portmap: Default::default(),
                portmap_refuse: false,
            },
            &["lan-l"],
            "198.51.100.2",
        );
        assert!(rules.contains("masquerade random,fully-random"));
        assert!(!rules.contains("map fc"));
    }

    #[test]
    fn full_cone_dnats_from_the_learned_map() {
        let rules = nat_rules(
            Nat {
                mapping: Mapping::EndpointIndependent,
                filtering: Filtering::EndpointIndependent,
                hairpin: false,
                portmap: Default::default(),
                portmap_refuse: false,
            },
            &["lan-l"],
            "198.51.100.2",
        );
        assert!(rules.contains("dnat ip to udp dport map @fc"));
        assert!(rules.contains("ct status dnat accept"));
        assert!(rules.contains("iifname \"{if:wan}\" ip daddr 198.51.100.2"));
    }

    #[test]
    fn listener_behind_restricted_nat_is_blocked_by_its_filtering() {
        let l = layout(
            &Topology::Sites {
                listener: Edge::Nat {
                    nat: Nat {
                        mapping: Mapping::EndpointIndependent,
                        filtering: Filtering::AddressDependent,
                        hairpin: false,
                        portmap: Default::default(),
                        portmap_refuse: false,
                    },
                },
                dialer: Edge::Public,
            },
            None,
        );
        assert_eq!(
            l.listener_block.as_deref(),
            Some("filtering=address-dependent")
        );
        assert_eq!(l.owner_of("198.51.100.20").map(|n| n.key), Some("dialer"));
    }

    #[test]
    fn impairment_inserts_a_hop_between_dialer_and_router() {
        let l = layout(
            &Topology::Sites {
                listener: Edge::Public,
                dialer: Edge::Nat {
                    nat: Nat {
                        mapping: Mapping::EndpointIndependent,
                        filtering: Filtering::AddressAndPortDependent,
                        hairpin: false,
                        portmap: Default::default(),
                        portmap_refuse: false,
                    },
                },
            },
            Some(Impairment {
                rtt_ms: 50,
                loss_percent: 2.0,
                jitter_ms: 0,
            }),
        );
        let router = l.node("router-d").unwrap();
        assert!(router.ifaces.iter().any(|i| i.net == "link"));
        assert!(l.node("impair").is_some());
        assert!(l.node("dialer").unwrap().setup[0].contains("10.1.0.253"));
        // The router's forward filter names its inside interface, now on the link network.
        assert!(router.setup.iter().any(|s| s.contains("{if:link}")));
        assert_eq!(l.unresolved_placeholders(), Vec::<String>::new());
    }
}
