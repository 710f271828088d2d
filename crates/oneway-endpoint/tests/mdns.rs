//! A listener advertising mDNS `.local` names is reached by name, for every pair of stacks
//! (the shell publishes and resolves the names, whatever the engine).
//!
//! Multicast must not leave the machine, so the test re-runs itself inside a network namespace
//! it creates (loopback plus an in-namespace veth pair carrying 192.0.2.10, RFC 5737). Where
//! namespaces cannot be created (not root, no `ip`), it says so and skips.

use std::process::Command;
use std::time::Duration;

use oneway_endpoint::{
    AddressScope, ConnectionEvent, DialConfig, Listener, ListenerConfig, Stack, dial,
};
use oneway_str0m::Str0m;
use oneway_token::CandidateAddress;
use oneway_webrtc::WebrtcRs;

const INNER: &str = "ONEWAY_MDNS_TEST_INNER";
const TEST: &str = "mdns_candidate_is_reached_by_name";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` not available: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn setup(ns: &str) -> Result<(), String> {
    ip(&["netns", "add", ns])?;
    let steps: [&[&str]; 6] = [
        &["-n", ns, "link", "set", "lo", "up"],
        &[
            "-n", ns, "link", "add", "ow0", "type", "veth", "peer", "name", "ow1",
        ],
        &["-n", ns, "addr", "add", "192.0.2.10/24", "dev", "ow0"],
        &["-n", ns, "link", "set", "ow0", "up"],
        &["-n", ns, "link", "set", "ow1", "up"],
        &["-n", ns, "route", "add", "224.0.0.0/4", "dev", "ow0"],
    ];
    for step in steps {
        ip(step)?;
    }
    Ok(())
}

#[test]
fn mdns_candidate_is_reached_by_name() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    let ns = format!("oneway-mdns-{}", std::process::id());
    if let Err(reason) = setup(&ns) {
        let _ = ip(&["netns", "del", &ns]);
        println!("SKIPPED {TEST}: multicast test needs a private network namespace: {reason}");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture"])
        .env(INNER, "1")
        .output();
    let _ = ip(&["netns", "del", &ns]);
    let out = out.expect("run the test inside the namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "inside the namespace: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("by name").count(),
        4,
        "every pair reached the listener by name: {stdout}"
    );
}

/// Inside the namespace: every pair of stacks, listener × dialer.
fn inner() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        reach_by_name::<Str0m, Str0m>().await;
        reach_by_name::<Str0m, WebrtcRs>().await;
        reach_by_name::<WebrtcRs, Str0m>().await;
        reach_by_name::<WebrtcRs, WebrtcRs>().await;
    });
}

/// A listener on stack `L` publishing only mDNS names, reached by a dialer on stack `D`.
async fn reach_by_name<L: Stack, D: Stack>() {
    let config = ListenerConfig {
        mdns: true,
        bind_v6: None,
        scope: AddressScope::Interfaces,
        ..Default::default()
    };
    let mut listener = Listener::<L>::bind(config).await.expect("bind");
    let token = listener.token().clone();
    assert!(
        token
            .candidates
            .iter()
            .all(|c| matches!(c.address, CandidateAddress::Mdns(_))),
        "only mDNS names are advertised: {:?}",
        token.candidates
    );
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::<D>::default()).await });
    let mut accepted = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("accepted within 15 s")
        .expect("listener running");
    let conn = dialer.await.expect("task").expect("dial by mDNS name");
    let (_, remote) = conn.info().selected.expect("selected pair");
    assert_eq!(remote.ip().to_string(), "192.0.2.10");
    let ch = conn.open_channel("data").await.expect("open");
    conn.send(ch, b"by name").await.expect("send");
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(ConnectionEvent::Data { data, .. }) = accepted.next_event().await {
                return data;
            }
        }
    })
    .await
    .expect("data");
    assert_eq!(got, b"by name");
    println!(
        "mDNS: {} dialer reached {} listener {remote} by name",
        D::NAME,
        L::NAME
    );
}
