//! RFC 5780 filtering discovery against coturn's `turnserver` with two addresses (127.0.0.1
//! and 127.0.0.2; the alternate port is the listening port + 1), on loopback: without a NAT
//! the verdict is endpoint-independent. In a private network namespace, nftables input rules
//! on the client's side stand in for a filtering NAT: dropping what comes from 127.0.0.2 gives
//! address-dependent filtering, dropping also what comes from the alternate port gives
//! address-and-port-dependent filtering.
//!
//! Needs coturn (and, for the namespace tests, root, `ip` and `nft`): without them a test prints
//! why and passes, except when `CI=true`, where it fails.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oneway_portmap::NatFiltering;
use oneway_portmap::nat_behavior::discover_filtering;

fn skip_or_fail(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and this test is required: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A port P with P and P+1 free for UDP and TCP on 127.0.0.1 and 127.0.0.2.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(p) = s.local_addr().map(|a| a.port()) else {
            continue;
        };
        drop(s);
        if p >= 65000 {
            continue;
        }
        let free = [p, p + 1].iter().all(|&port| {
            ["127.0.0.1", "127.0.0.2"].iter().all(|ip| {
                std::net::UdpSocket::bind((*ip, port)).is_ok()
                    && std::net::TcpListener::bind((*ip, port)).is_ok()
            })
        });
        if free {
            return p;
        }
    }
    panic!("no free port pair on loopback");
}

/// `turnserver` with two listening addresses, killed on drop.
struct Coturn {
    child: Child,
    port: u16,
}

impl Coturn {
    /// Starts it (inside namespace `ns` if given) and waits until it listens (at most 5 s).
    /// `None` when coturn is not installed.
    fn start(ns: Option<&str>, port: u16) -> Option<Coturn> {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "turnserver"]);
                c
            }
            None => Command::new("turnserver"),
        };
        let pidfile = std::env::temp_dir().join(format!(
            "oneway-portmap-coturn-{}-{port}.pid",
            ns.unwrap_or("host")
        ));
        let child = cmd
            .args([
                "-n",
                "--listening-ip",
                "127.0.0.1",
                "--listening-ip",
                "127.0.0.2",
                "--listening-port",
                &port.to_string(),
                "--alt-listening-port",
                &(port + 1).to_string(),
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--no-software-attribute",
                "--log-file",
                "stdout",
                "--simple-log",
                "--pidfile",
            ])
            .arg(&pidfile)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let server = Coturn { child, port };
        let deadline = Instant::now() + Duration::from_secs(5);
        let needle = format!("127.0.0.2:{} ", port + 1);
        while Instant::now() < deadline {
            let listening = match ns {
                Some(ns) => Command::new("ip")
                    .args(["netns", "exec", ns, "ss", "-ulnH"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&needle)),
                None => std::net::UdpSocket::bind(("127.0.0.2", port + 1)).is_err(),
            };
            if listening {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("turnserver did not listen on port {port} within 5 s");
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn measure(server: SocketAddr) -> oneway_portmap::nat_behavior::FilteringReport {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = socket.local_addr().expect("addr");
    let started = Instant::now();
    let report = discover_filtering(&socket, server, Duration::from_millis(500)).await;
    println!(
        "TIMING filtering discovery in {} ms: {}",
        started.elapsed().as_millis(),
        serde_json::to_string(&report).expect("json")
    );
    assert_eq!(report.mapped, Some(local), "{report:?}");
    assert_eq!(
        report.other_address,
        Some(SocketAddr::from(([127, 0, 0, 2], server.port() + 1))),
        "{report:?}"
    );
    report
}

#[tokio::test]
async fn loopback_without_nat_is_endpoint_independent() {
    if !have("turnserver", "--version") {
        return skip_or_fail("turnserver is not installed (apt-get install coturn)");
    }
    if std::net::UdpSocket::bind("127.0.0.2:0").is_err() {
        return skip_or_fail("127.0.0.2 is not a usable loopback address here");
    }
    let coturn = Coturn::start(None, free_port_pair()).expect("turnserver started");
    let report = measure(coturn.addr()).await;
    assert_eq!(report.filtering, NatFiltering::EndpointIndependent);
}

#[tokio::test]
async fn silent_server_is_unknown_quickly() {
    // A loopback port where nothing listens: ICMP port unreachable, or silence.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let started = Instant::now();
    let report = discover_filtering(
        &socket,
        SocketAddr::from(([127, 0, 0, 1], free_port_pair())),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(report.filtering, NatFiltering::Unknown);
    assert!(report.unknown_because.is_some(), "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Starts coturn in a fresh namespace whose input hook drops per `rules`, then runs
/// `inner_filtering` there; it asserts the verdict named in `expect`.
fn filtering_in_namespace(rules: &str, expect: &str) {
    let uid = Command::new("id").arg("-u").output();
    if !uid.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0") {
        return skip_or_fail("not root (network namespaces need root)");
    }
    for (tool, arg) in [
        ("ip", "-V"),
        ("nft", "--version"),
        ("turnserver", "--version"),
    ] {
        if !have(tool, arg) {
            return skip_or_fail(&format!("{tool} is not installed"));
        }
    }
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let ns = format!(
        "owst{}{}",
        std::process::id() % 100_000,
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    let status = Command::new("ip").args(["netns", "add", &ns]).status();
    assert!(status.is_ok_and(|s| s.success()), "ip netns add {ns}");
    let guard = Ns(ns.clone());
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .output()
            .expect("ip netns exec");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ip", "link", "set", "lo", "up"]);
    // Ports are free in a fresh namespace.
    let port = 3478u16;
    let ruleset = format!(
        "table inet nat_sim {{\n chain input {{\n type filter hook input priority 0; policy accept;\n {}\n }}\n}}\n",
        rules.replace("ALT", &(port + 1).to_string())
    );
    let file = std::env::temp_dir().join(format!("{ns}.nft"));
    std::fs::write(&file, ruleset).expect("ruleset");
    run(&["nft", "-f", &file.to_string_lossy()]);
    let _ = std::fs::remove_file(&file);
    let coturn = Coturn::start(Some(&ns), port).expect("turnserver started");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(std::env::current_exe().expect("exe"))
        .args(["--exact", "inner_filtering", "--ignored", "--nocapture"])
        .env("ONEWAY_PORTMAP_STUN_PORT", port.to_string())
        .env("ONEWAY_PORTMAP_EXPECT", expect)
        .output()
        .expect("inner test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- inner_filtering ({expect}):\n{text}");
    drop(coturn);
    drop(guard);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "inner test failed"
    );
}

#[test]
fn nat_filtering_by_address() {
    // What 127.0.0.2 sends to the client is dropped: test II is lost, test III arrives.
    filtering_in_namespace(
        "ip saddr 127.0.0.2 ip daddr 127.0.0.1 udp sport { 3478, ALT } drop",
        "address-dependent",
    );
}

#[test]
fn nat_filtering_by_address_and_port() {
    filtering_in_namespace(
        "ip saddr 127.0.0.2 ip daddr 127.0.0.1 udp sport { 3478, ALT } drop\n udp sport ALT drop",
        "address-and-port-dependent",
    );
}

#[tokio::test]
#[ignore = "runs inside a namespace, started by nat_filtering_by_address*"]
async fn inner_filtering() {
    let (Ok(port), Ok(expect)) = (
        std::env::var("ONEWAY_PORTMAP_STUN_PORT"),
        std::env::var("ONEWAY_PORTMAP_EXPECT"),
    ) else {
        return;
    };
    let port: u16 = port.parse().expect("port");
    let report = measure(SocketAddr::from(([127, 0, 0, 1], port))).await;
    assert_eq!(
        serde_json::to_value(report.filtering).expect("json"),
        serde_json::Value::String(expect)
    );
}
