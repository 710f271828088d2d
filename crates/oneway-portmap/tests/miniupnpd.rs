//! The mapper against a real miniupnpd (Debian's `miniupnpd-nftables` 2.3.1) in network
//! namespaces this test creates: a LAN namespace with the client (192.168.77.2/24) and a router
//! namespace running miniupnpd between the LAN (192.168.77.1) and a WAN (11.0.0.1/24, with a
//! WAN host 11.0.0.2 in a third namespace: a prefix miniupnpd does not count as reserved, never
//! routed outside these namespaces). The mapping client runs inside the LAN namespace: each outer test re-executes
//! this test binary under `ip netns exec` for its `inner_*` twin (ignored when run directly).
//!
//! Needs root, `ip`, `nft` and `miniupnpd` (`ci/install.sh` installs `miniupnpd-nftables`):
//! without them a test prints why and passes, except when `CI=true`, where it fails.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oneway_portmap::{MappingEvent, PortMapper, PortmapConfig, Protocol, ProtocolChoice};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
const WAN: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 1);

/// Why these tests cannot run here, if they cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (network namespaces need root)".to_owned());
    }
    for (tool, arg) in [
        ("ip", "-V"),
        ("nft", "--version"),
        ("miniupnpd", "--version"),
    ] {
        if Command::new(tool).arg(arg).output().is_err() {
            return Some(format!(
                "{tool} is not installed (ci/install.sh installs iproute2, nftables, miniupnpd-nftables)"
            ));
        }
    }
    None
}

/// `true` when the test may run; otherwise prints why (or fails under `CI=true`).
fn can_run() -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and the miniupnpd tests are required: {why}"
            );
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Output {
    run(Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args))
}

/// What miniupnpd offers.
#[derive(Clone, Copy, Debug)]
struct RouterConfig {
    natpmp: bool,
    upnp: bool,
    /// Permission rules deny every mapping.
    deny: bool,
    /// Do not start miniupnpd at all (a router that speaks no mapping protocol).
    start: bool,
    /// Also IPv6, with this default router for the LAN (`2001:db8:1::1` or the router's
    /// link-local `fe80::1`, as routers announce themselves): LAN 2001:db8:1::/64, WAN
    /// 2001:db8:2::/64, routed (no NAT), the router's forward chain dropping what miniupnpd
    /// has not opened.
    ipv6: Option<&'static str>,
}

const FULL: RouterConfig = RouterConfig {
    natpmp: true,
    upnp: true,
    deny: false,
    start: true,
    ipv6: None,
};

/// Two namespaces, a veth pair, the router's nftables ruleset and miniupnpd; all removed on
/// drop (also when a test fails).
struct Topology {
    lan: String,
    router: String,
    /// A host on the WAN (11.0.0.2), to send through a mapping.
    wan: String,
    daemon: Option<Child>,
    dir: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

const RULESET: &str = "flush ruleset
table inet filter {
    chain miniupnpd { }
    chain prerouting_miniupnpd { }
    chain postrouting_miniupnpd { }
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname \"lan0\" oifname \"wan0\" accept
        jump miniupnpd
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        oifname \"wan0\" masquerade
    }
}
";

impl Topology {
    fn new(config: RouterConfig) -> Topology {
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let lan = format!("owpm{id}l");
        let router = format!("owpm{id}r");
        let wan = format!("owpm{id}w");
        let dir = std::env::temp_dir().join(format!("oneway-portmap-{id}"));
        let _ = std::fs::create_dir_all(&dir);
        let mut t = Topology {
            lan,
            router,
            wan,
            daemon: None,
            dir,
        };
        ip(&["netns", "add", &t.lan]);
        ip(&["netns", "add", &t.router]);
        ip(&["netns", "add", &t.wan]);
        let (a, b) = (format!("pm{id}a"), format!("pm{id}b"));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &t.lan]);
        ip(&["link", "set", &b, "netns", &t.router]);
        let (lan, router) = (t.lan.clone(), t.router.clone());
        in_ns(&lan, "ip", &["link", "set", &a, "name", "eth0"]);
        in_ns(
            &lan,
            "ip",
            &["addr", "add", "192.168.77.2/24", "dev", "eth0"],
        );
        in_ns(&lan, "ip", &["link", "set", "eth0", "up"]);
        in_ns(&lan, "ip", &["link", "set", "lo", "up"]);
        in_ns(
            &lan,
            "ip",
            &["route", "add", "default", "via", "192.168.77.1"],
        );
        in_ns(&router, "ip", &["link", "set", &b, "name", "lan0"]);
        in_ns(
            &router,
            "ip",
            &["addr", "add", "192.168.77.1/24", "dev", "lan0"],
        );
        in_ns(&router, "ip", &["link", "set", "lan0", "up"]);
        in_ns(&router, "ip", &["link", "set", "lo", "up"]);
        let (c, d) = (format!("pm{id}c"), format!("pm{id}d"));
        ip(&["link", "add", &c, "type", "veth", "peer", "name", &d]);
        ip(&["link", "set", &c, "netns", &t.router]);
        ip(&["link", "set", &d, "netns", &t.wan]);
        in_ns(&router, "ip", &["link", "set", &c, "name", "wan0"]);
        in_ns(
            &router,
            "ip",
            &["addr", "add", "11.0.0.1/24", "dev", "wan0"],
        );
        in_ns(&router, "ip", &["link", "set", "wan0", "up"]);
        let wan = t.wan.clone();
        in_ns(&wan, "ip", &["link", "set", &d, "name", "eth0"]);
        in_ns(&wan, "ip", &["addr", "add", "11.0.0.2/24", "dev", "eth0"]);
        in_ns(&wan, "ip", &["link", "set", "eth0", "up"]);
        in_ns(&wan, "ip", &["link", "set", "lo", "up"]);
        in_ns(
            &router,
            "sh",
            &["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
        );
        if let Some(gateway) = config.ipv6 {
            let v6 = |ns: &str, addr: &str, dev: &str| {
                in_ns(ns, "ip", &["addr", "add", addr, "dev", dev, "nodad"]);
            };
            v6(&lan, "2001:db8:1::2/64", "eth0");
            v6(&lan, "fe80::2/64", "eth0");
            v6(&router, "2001:db8:1::1/64", "lan0");
            v6(&router, "fe80::1/64", "lan0");
            v6(&router, "2001:db8:2::1/64", "wan0");
            v6(&t.wan, "2001:db8:2::2/64", "eth0");
            in_ns(
                &lan,
                "ip",
                &[
                    "-6", "route", "add", "default", "via", gateway, "dev", "eth0",
                ],
            );
            in_ns(
                &t.wan,
                "ip",
                &["-6", "route", "add", "default", "via", "2001:db8:2::1"],
            );
            in_ns(
                &router,
                "sh",
                &["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"],
            );
        }
        let rules = t.dir.join("ruleset.nft");
        std::fs::write(&rules, RULESET).expect("write ruleset");
        in_ns(&router, "nft", &["-f", &rules.to_string_lossy()]);
        if config.start {
            t.start_miniupnpd(config);
        }
        t
    }

    fn start_miniupnpd(&mut self, config: RouterConfig) {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let permission = if config.deny {
            "deny 0-65535 0.0.0.0/0 0-65535\n".to_owned()
        } else {
            "allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n"
                .to_owned()
        };
        let conf = format!(
            "ext_ifname=wan0\nlistening_ip=lan0\nhttp_port=0\nenable_natpmp={}\nenable_upnp={}\n\
             secure_mode=yes\nsystem_uptime=yes\nmin_lifetime=2\nmax_lifetime=86400\n\
             uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\nipv6_disable={}\n{permission}",
            yes(config.natpmp),
            yes(config.upnp),
            yes(config.ipv6.is_none())
        );
        let path = self.dir.join("miniupnpd.conf");
        std::fs::write(&path, conf).expect("write miniupnpd.conf");
        let log = std::fs::File::create(self.dir.join("miniupnpd.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.router, "miniupnpd", "-d", "-f"])
            .arg(&path)
            .arg("-P")
            .arg(self.dir.join("miniupnpd.pid"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start miniupnpd");
        self.daemon = Some(child);
        // Wait until it listens (5351 for NAT-PMP/PCP, 1900 for SSDP), at most 5 s.
        let port = if config.natpmp { ":5351 " } else { ":1900 " };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let out = in_ns(&self.router, "ss", &["-ulnH"]);
            if String::from_utf8_lossy(&out.stdout).contains(port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("miniupnpd did not listen within 5 s: {}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("miniupnpd.log")).unwrap_or_default()
    }

    /// Runs the inner test `name` inside the LAN namespace; its output, and whether it passed.
    fn run_inner(&self, name: &str) -> (bool, String) {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.lan])
            .arg(exe)
            .args([
                "--exact",
                name,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ONEWAY_PORTMAP_ROUTER_NS", &self.router)
            .env("ONEWAY_PORTMAP_WAN_NS", &self.wan)
            .output()
            .expect("run the inner test");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let passed = out.status.success() && text.contains("1 passed");
        (passed, text)
    }

    fn check(&self, name: &str) {
        let (passed, text) = self.run_inner(name);
        eprintln!("--- {name} (in {}):\n{text}", self.lan);
        assert!(passed, "{name} failed; miniupnpd log:\n{}", self.log());
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespaces removes the veth pair, the dummy and the ruleset.
        for ns in [&self.lan, &self.router, &self.wan] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- outer tests (run in the host namespace, build the topology) ----

#[test]
fn pcp_map_renew_delete() {
    if can_run() {
        Topology::new(RouterConfig {
            upnp: false,
            ..FULL
        })
        .check("inner_pcp");
    }
}

#[test]
fn natpmp_map_renew_delete() {
    if can_run() {
        Topology::new(RouterConfig {
            upnp: false,
            ..FULL
        })
        .check("inner_natpmp");
    }
}

#[test]
fn upnp_map_renew_delete() {
    if can_run() {
        Topology::new(RouterConfig {
            natpmp: false,
            ..FULL
        })
        .check("inner_upnp");
    }
}

#[test]
fn auto_prefers_pcp() {
    if can_run() {
        Topology::new(FULL).check("inner_auto_pcp");
    }
}

#[test]
fn auto_falls_back_to_upnp() {
    if can_run() {
        Topology::new(RouterConfig {
            natpmp: false,
            ..FULL
        })
        .check("inner_auto_upnp");
    }
}

/// A listener bound to a second address of its LAN interface: PCP names that address and
/// sends from it, so the mapping leads to the listener (with `crab_nat`, whose socket is not
/// bound, miniupnpd answered ADDRESS_MISMATCH here); NAT-PMP, which maps the source address,
/// says it cannot. (There is no quick PCP or NAT-PMP refusal to test against miniupnpd 2.3.1:
/// with a deny-everything permission rule it walks all 65535 external ports, logging each
/// refusal, and does not answer within 30 s. The fake gateway tests cover the refusals.)
#[test]
fn pcp_maps_a_second_lan_address() {
    if can_run() {
        Topology::new(RouterConfig {
            upnp: false,
            ..FULL
        })
        .check("inner_pcp_second_address");
    }
}

/// UPnP with a deny-everything permission rule: 606 Action not authorized.
#[test]
fn upnp_refusal_is_named() {
    if can_run() {
        Topology::new(RouterConfig {
            natpmp: false,
            deny: true,
            ..FULL
        })
        .check("inner_upnp_refused");
    }
}

/// PCP over IPv6: a pinhole in the router's forward chain for a global address.
#[test]
fn pcp_ipv6_pinhole() {
    if can_run() {
        Topology::new(RouterConfig {
            upnp: false,
            ipv6: Some("2001:db8:1::1"),
            ..FULL
        })
        .check("inner_pcp_ipv6");
    }
}

/// The same with the router's link-local address as the default router (what router
/// advertisements announce): requests to it would leave from the host's link-local address,
/// so the client binds its global one.
#[test]
fn pcp_ipv6_pinhole_via_link_local_router() {
    if can_run() {
        Topology::new(RouterConfig {
            upnp: false,
            ipv6: Some("fe80::1"),
            ..FULL
        })
        .check("inner_pcp_ipv6");
    }
}

#[test]
fn no_default_route_is_no_gateway() {
    if can_run() {
        Topology::new(RouterConfig {
            start: false,
            ..FULL
        })
        .check("inner_no_gateway");
    }
}

#[test]
fn router_without_mapping_gives_up_quickly() {
    if can_run() {
        Topology::new(RouterConfig {
            start: false,
            ..FULL
        })
        .check("inner_no_answer");
    }
}

// ---- inner tests (run inside the LAN namespace by the outer ones) ----

/// The router namespace, when running as an inner test; `None` when run directly.
fn router_ns() -> Option<String> {
    std::env::var("ONEWAY_PORTMAP_ROUTER_NS").ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn listener() -> (std::net::UdpSocket, SocketAddr) {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    let a = s.local_addr().expect("addr");
    (s, a)
}

/// The router's DNAT rules, as `nft` lists them.
fn dnat_rules(router: &str) -> String {
    let out = in_ns(
        router,
        "nft",
        &["list", "chain", "inet", "filter", "prerouting_miniupnpd"],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Map with `choice`, check the mapping and the router's rule, wait for a renewal (same
/// address), delete, check the rule is gone.
fn map_renew_delete(choice: ProtocolChoice, expected: Protocol) {
    let Some(router) = router_ns() else {
        return;
    };
    runtime().block_on(async {
        let (socket, local) = listener();
        let mapper = PortMapper::new(PortmapConfig {
            choice,
            lifetime: Duration::from_secs(4),
            ..PortmapConfig::default()
        });
        let started = Instant::now();
        let mut handle = mapper.map(local).await.expect("mapped");
        let took = started.elapsed();
        let m = handle.mapping();
        println!(
            "TIMING {expected} mapping in {} ms: {}",
            took.as_millis(),
            serde_json::to_string(&m).expect("json")
        );
        assert_eq!(m.protocol, expected);
        assert_eq!(m.external.ip(), IpAddr::V4(WAN));
        assert_eq!(m.internal, SocketAddr::new(CLIENT.into(), local.port()));
        assert!(m.lifetime <= Duration::from_secs(4), "{m:?}");
        let port = format!("dport {}", m.external.port());
        let rules = dnat_rules(&router);
        assert!(rules.contains(&port), "no rule for {port}:\n{rules}");
        // A datagram from the WAN host to the external address reaches the listener.
        if let Ok(wan) = std::env::var("ONEWAY_PORTMAP_WAN_NS") {
            let script = format!(
                "echo through > /dev/udp/{}/{}",
                m.external.ip(),
                m.external.port()
            );
            in_ns(&wan, "bash", &["-c", &script]);
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            let (n, from) = socket
                .recv_from(&mut buf)
                .expect("a datagram through the mapping");
            assert_eq!(&buf[..n], b"through\n");
            println!("inbound datagram through the mapping from {from}");
        }
        let event = tokio::time::timeout(Duration::from_secs(6), handle.next_event())
            .await
            .expect("a renewal within 6 s");
        match event {
            Some(MappingEvent::Renewed(r)) => {
                assert_eq!(r.external, m.external, "stable external address");
                println!("renewed after {} ms: {r:?}", started.elapsed().as_millis());
            }
            other => panic!("expected a renewal, got {other:?}"),
        }
        let started = Instant::now();
        handle.shutdown().await.expect("deleted");
        println!(
            "TIMING {expected} deletion in {} ms",
            started.elapsed().as_millis()
        );
        let rules = dnat_rules(&router);
        assert!(
            !rules.contains(&port),
            "rule for {port} still there:\n{rules}"
        );
    });
}

#[test]
#[ignore = "runs inside the LAN namespace, started by pcp_map_renew_delete"]
fn inner_pcp() {
    map_renew_delete(ProtocolChoice::Pcp, Protocol::Pcp);
}

#[test]
#[ignore = "runs inside the LAN namespace, started by natpmp_map_renew_delete"]
fn inner_natpmp() {
    map_renew_delete(ProtocolChoice::NatPmp, Protocol::NatPmp);
}

#[test]
#[ignore = "runs inside the LAN namespace, started by upnp_map_renew_delete"]
fn inner_upnp() {
    map_renew_delete(ProtocolChoice::Upnp, Protocol::Upnp);
}

#[test]
#[ignore = "runs inside the LAN namespace, started by auto_prefers_pcp"]
fn inner_auto_pcp() {
    map_renew_delete(ProtocolChoice::Auto, Protocol::Pcp);
}

#[test]
#[ignore = "runs inside the LAN namespace, started by auto_falls_back_to_upnp"]
fn inner_auto_upnp() {
    map_renew_delete(ProtocolChoice::Auto, Protocol::Upnp);
}

/// Maps `local` with each choice and checks the cause codes.
fn expect_codes(local: SocketAddr, cases: &[(ProtocolChoice, &str, &str)]) {
    runtime().block_on(async {
        for &(choice, code, needle) in cases {
            let started = Instant::now();
            let e = PortMapper::new(PortmapConfig {
                choice,
                ..PortmapConfig::default()
            })
            .map(local)
            .await
            .expect_err("no mapping");
            println!(
                "TIMING {choice:?} error in {} ms: {}: {e}",
                started.elapsed().as_millis(),
                e.code()
            );
            assert_eq!(e.code(), code, "{choice:?}: {e}");
            assert!(e.to_string().contains(needle), "{choice:?}: {e}");
            assert!(started.elapsed() < Duration::from_secs(2));
        }
    });
}

#[test]
#[ignore = "runs inside the LAN namespace, started by pcp_maps_a_second_lan_address"]
fn inner_pcp_second_address() {
    let Some(router) = router_ns() else {
        return;
    };
    run(Command::new("ip").args(["addr", "add", "192.168.77.3/24", "dev", "eth0"]));
    let socket = std::net::UdpSocket::bind("192.168.77.3:0").expect("bind");
    let local = socket.local_addr().expect("addr");
    expect_codes(
        local,
        &[(
            ProtocolChoice::NatPmp,
            "portmap-unavailable",
            "192.168.77.2",
        )],
    );
    runtime().block_on(async {
        let handle = PortMapper::new(PortmapConfig {
            choice: ProtocolChoice::Auto,
            ..PortmapConfig::default()
        })
        .map(local)
        .await
        .expect("mapped");
        let m = handle.mapping();
        println!("second address: {m:?}");
        assert_eq!((m.protocol, m.internal), (Protocol::Pcp, local));
        assert!(dnat_rules(&router).contains("192.168.77.3"));
        let wan = std::env::var("ONEWAY_PORTMAP_WAN_NS").expect("WAN namespace");
        let script = format!(
            "echo second > /dev/udp/{}/{}",
            m.external.ip(),
            m.external.port()
        );
        in_ns(&wan, "bash", &["-c", &script]);
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let (n, _) = socket
            .recv_from(&mut buf)
            .expect("a datagram through the mapping");
        assert_eq!(&buf[..n], b"second\n");
        handle.shutdown().await.expect("deleted");
    });
}

#[test]
#[ignore = "runs inside the LAN namespace, started by upnp_refusal_is_named"]
fn inner_upnp_refused() {
    if router_ns().is_none() {
        return;
    }
    let (_socket, local) = listener();
    expect_codes(
        local,
        &[
            (ProtocolChoice::Upnp, "portmap-refused", "606"),
            (ProtocolChoice::Auto, "portmap-refused", "606"),
            (ProtocolChoice::Pcp, "portmap-unavailable", "ICMP"),
        ],
    );
}

#[test]
#[ignore = "runs inside the LAN namespace, started by pcp_ipv6_pinhole"]
fn inner_pcp_ipv6() {
    let Some(router) = router_ns() else {
        return;
    };
    runtime().block_on(async {
        let socket = std::net::UdpSocket::bind("[::]:0").expect("bind");
        let local = socket.local_addr().expect("addr");
        let global: IpAddr = "2001:db8:1::2".parse().expect("ip");
        let routers = oneway_portmap::gateway::default_gateways(true);
        println!("IPv6 default routers: {routers:?}");
        // Why this crate has its own PCP client: crab_nat 0.8.1 sends from an unbound socket,
        // which leaves from the link-local address towards a link-local router, so the
        // gateway refuses the request that names the global address.
        if let Some(IpAddr::V6(router_ip)) = routers.first().map(|g| g.ip)
            && (router_ip.segments()[0] & 0xffc0) == 0xfe80
        {
            let port = std::num::NonZeroU16::new(local.port()).expect("port");
            let crab = crab_nat::pcp::port_mapping(
                crab_nat::pcp::BaseMapRequest::new(
                    crab_nat::GatewayAddress::IpV6(router_ip, Some(routers[0].scope_id)),
                    global,
                    crab_nat::InternetProtocol::Udp,
                    port,
                ),
                None,
                None,
                crab_nat::PortMappingOptions::default(),
            )
            .await;
            println!("crab_nat towards {router_ip}: {:?}", crab.as_ref().err());
            assert!(
                matches!(crab, Err(crab_nat::pcp::Failure::AddressMismatch)),
                "{:?}",
                crab.err()
            );
        }
        let wan = std::env::var("ONEWAY_PORTMAP_WAN_NS").expect("WAN namespace");
        let send_from_wan = |text: &str| {
            let script = format!("echo {text} > /dev/udp/2001:db8:1::2/{}", local.port());
            in_ns(&wan, "bash", &["-c", &script]);
        };
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        // Without a pinhole the router's forward chain drops it.
        send_from_wan("early");
        assert!(
            socket.recv_from(&mut buf).is_err(),
            "the firewall let it in"
        );
        let started = Instant::now();
        let handle = PortMapper::new(PortmapConfig {
            choice: ProtocolChoice::Auto,
            lifetime: Duration::from_secs(60),
            ..PortmapConfig::default()
        })
        .map(local)
        .await
        .expect("pinhole");
        let m = handle.mapping();
        println!(
            "TIMING PCP IPv6 pinhole in {} ms: {}",
            started.elapsed().as_millis(),
            serde_json::to_string(&m).expect("json")
        );
        assert_eq!(m.protocol, Protocol::Pcp);
        assert_eq!(m.internal, SocketAddr::new(global, local.port()));
        assert_eq!(m.external, m.internal, "a pinhole keeps the address");
        let out = in_ns(
            &router,
            "nft",
            &["list", "chain", "inet", "filter", "miniupnpd"],
        );
        let rules = String::from_utf8_lossy(&out.stdout);
        let port = format!("dport {}", local.port());
        assert!(rules.contains(&port), "no pinhole for {port}:\n{rules}");
        if let Ok(wan) = std::env::var("ONEWAY_PORTMAP_WAN_NS") {
            let script = format!("echo pinhole > /dev/udp/2001:db8:1::2/{}", local.port());
            in_ns(&wan, "bash", &["-c", &script]);
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 64];
            let (n, from) = socket
                .recv_from(&mut buf)
                .expect("a datagram through the pinhole");
            assert_eq!(&buf[..n], b"pinhole\n");
            println!("inbound datagram through the pinhole from {from}");
        }
        // miniupnpd 2.3.1 answers NOT_AUTHORIZED to the deletion of a PCP pinhole (the pinhole
        // then lasts until its lifetime ends): accepted here, and reported by shutdown().
        match handle.shutdown().await {
            Ok(()) => {
                let out = in_ns(
                    &router,
                    "nft",
                    &["list", "chain", "inet", "filter", "miniupnpd"],
                );
                let rules = String::from_utf8_lossy(&out.stdout);
                assert!(!rules.contains(&port), "pinhole still there:\n{rules}");
                println!("pinhole deleted");
            }
            Err(e) => {
                println!("pinhole deletion: {}: {e}", e.code());
                assert_eq!(e.code(), "portmap-refused", "{e}");
            }
        }
    });
}

#[test]
#[ignore = "runs inside the LAN namespace, started by no_default_route_is_no_gateway"]
fn inner_no_gateway() {
    if router_ns().is_none() {
        return;
    }
    run(Command::new("ip").args(["route", "del", "default"]));
    runtime().block_on(async {
        let (_socket, local) = listener();
        let started = Instant::now();
        let e = PortMapper::new(PortmapConfig::default())
            .map(local)
            .await
            .expect_err("no default route");
        println!(
            "TIMING no-gateway in {} ms: {}: {e}",
            started.elapsed().as_millis(),
            e.code()
        );
        assert_eq!(e.code(), "no-gateway", "{e}");
        assert!(started.elapsed() < Duration::from_millis(100));
    });
}

#[test]
#[ignore = "runs inside the LAN namespace, started by router_without_mapping_gives_up_quickly"]
fn inner_no_answer() {
    if router_ns().is_none() {
        return;
    }
    runtime().block_on(async {
        let (_socket, local) = listener();
        let started = Instant::now();
        let e = PortMapper::new(PortmapConfig::default())
            .map(local)
            .await
            .expect_err("no mapping protocol on the router");
        let took = started.elapsed();
        println!(
            "TIMING auto give-up in {} ms: {}: {e}",
            took.as_millis(),
            e.code()
        );
        // The router answers 5351 with ICMP port unreachable; UPnP discovery hears nothing.
        assert_eq!(e.code(), "portmap-unavailable", "{e}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let _ = std::io::stdout().flush();
    });
}
