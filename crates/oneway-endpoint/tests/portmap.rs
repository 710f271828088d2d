//! The listener shell's port mapping, for every stack, against a fake PCP gateway on a
//! loopback address (127.0.4.x:5351; the mapper's own tests cover each protocol against a real
//! miniupnpd): a granted mapping becomes a token candidate named by `mapped` and makes the
//! listener report itself reachable from the internet; a silent or refusing gateway is a
//! named cause and the listener keeps serving its host candidate.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use oneway_endpoint::reach::{Scope, Via};
use oneway_endpoint::{
    DialConfig, Listener, ListenerConfig, PortMapping, ProtocolChoice, Stack, dial,
};
use oneway_testkit::stack::{Str0m, WebrtcRs};
use oneway_token::{CandidateAddress, CandidateType, MappedCandidate, MappingProtocol};
use tokio::net::UdpSocket;

/// The external address the fake gateway grants.
const EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

/// How the fake gateway answers PCP MAP requests.
#[derive(Clone, Copy)]
enum Gateway {
    /// Grants the mapping on [`EXTERNAL`], same port.
    Grant,
    /// Answers NOT_AUTHORIZED (result code 2).
    Refuse,
    /// Never answers.
    Silent,
}

/// A PCP MAP response to `req` (RFC 6887 §7.2, §11.1) with `result`, granting `lifetime` s on
/// `EXTERNAL` at the requested internal port.
fn answer(req: &[u8], result: u8) -> Option<Vec<u8>> {
    let req = req.get(..60)?;
    let mut r = vec![0u8; 60];
    r[0] = 2;
    r[1] = 0x80 | (req[1] & 0x7f);
    r[3] = result;
    r[4..8].copy_from_slice(&120u32.to_be_bytes());
    r[8..12].copy_from_slice(&1u32.to_be_bytes());
    // Nonce, protocol, internal port, then the assigned external port and address.
    r[24..36].copy_from_slice(&req[24..36]);
    r[36] = req[36];
    r[40..42].copy_from_slice(&req[40..42]);
    r[42..44].copy_from_slice(&req[40..42]);
    r[44..60].copy_from_slice(&EXTERNAL.to_ipv6_mapped().octets());
    Some(r)
}

/// Starts the fake gateway on 127.0.4.`n`:5351; aborted when the returned guard drops.
async fn fake_gateway(n: u8, behaviour: Gateway) -> (IpAddr, tokio::task::JoinHandle<()>) {
    let ip = Ipv4Addr::new(127, 0, 4, n);
    let socket = UdpSocket::bind((ip, 5351))
        .await
        .expect("bind the fake gateway");
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1100];
        // Bounded by the test: the task is aborted at its end.
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let reply = match behaviour {
                Gateway::Grant => answer(&buf[..len], 0),
                Gateway::Refuse => answer(&buf[..len], 2),
                Gateway::Silent => None,
            };
            if let Some(reply) = reply {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    (IpAddr::V4(ip), task)
}

async fn listener<S: Stack>(gateway: IpAddr) -> Listener<S> {
    Listener::<S>::bind(ListenerConfig {
        port_mapping: PortMapping::Always(ProtocolChoice::Pcp),
        portmap_gateway: Some(gateway),
        ..ListenerConfig::loopback()
    })
    .await
    .expect("a listener binds whatever the gateway does")
}

/// Dials `listener` over its host candidate and checks the connection comes up.
async fn dial_still_works<S: Stack>(listener: &mut Listener<S>) {
    let token = listener.token().clone();
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::<S>::default()).await });
    tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted within 10 s")
        .expect("listener running");
    dialer
        .await
        .expect("task")
        .expect("dial over the host candidate");
}

async fn granted_mapping_is_a_candidate_and_the_verdict<S: Stack>(n: u8) {
    let (gateway, task) = fake_gateway(n, Gateway::Grant).await;
    let mut listener = listener::<S>(gateway).await;
    let token = listener.token().clone();
    let host = token.candidates[0];
    assert_eq!(host.kind, CandidateType::Host);
    let mapped = token.candidates[1];
    assert_eq!(mapped.kind, CandidateType::ServerReflexive, "{token:?}");
    assert_eq!(mapped.address, CandidateAddress::Ip(EXTERNAL.into()));
    assert_eq!(mapped.port, host.port, "the fake gateway keeps the port");
    assert_eq!(
        token.mapped,
        vec![MappedCandidate {
            index: 1,
            protocol: MappingProtocol::Pcp
        }]
    );
    // The token round-trips with its `mapped` extension.
    let again =
        oneway_token::Token::from_text(&token.to_text().expect("encodes")).expect("decodes");
    assert_eq!(again.mapped, token.mapped);
    let r = listener.reachability();
    assert_eq!(r.scope, Scope::Internet, "{r:?}");
    assert!(matches!(r.via, Via::Mapping { .. }), "{r:?}");
    assert!(
        r.sentence.contains("PCP mapping 203.0.113.7:"),
        "{}",
        r.sentence
    );
    let handles = listener.take_port_mappings();
    assert_eq!(handles.len(), 1);
    dial_still_works(&mut listener).await;
    for h in handles {
        h.shutdown().await.expect("the mapping is deleted");
    }
    task.abort();
}

async fn failed_mapping_is_named_and_the_listener_serves<S: Stack>(n: u8, behaviour: Gateway) {
    let (gateway, task) = fake_gateway(n, behaviour).await;
    let started = std::time::Instant::now();
    let mut listener = listener::<S>(gateway).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "gave up after {took:?}");
    let token = listener.token().clone();
    assert_eq!(
        token.candidates.len(),
        1,
        "only the host candidate: {token:?}"
    );
    assert!(token.mapped.is_empty());
    let codes: Vec<&str> = listener
        .port_mappings()
        .iter()
        .filter_map(|m| m.as_ref().err().map(|e| e.code()))
        .collect();
    let expected = match behaviour {
        Gateway::Refuse => "portmap-refused",
        _ => "portmap-timeout",
    };
    assert_eq!(codes, vec![expected]);
    let r = listener.reachability();
    assert_eq!(r.scope, Scope::SameLanOnly, "{r:?}");
    dial_still_works(&mut listener).await;
    task.abort();
}

macro_rules! portmap {
    ($module:ident, $stack:ty, $base:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn granted_mapping_is_a_candidate_and_the_verdict() {
                super::granted_mapping_is_a_candidate_and_the_verdict::<$stack>($base).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn refused_mapping_is_named_and_the_listener_serves() {
                super::failed_mapping_is_named_and_the_listener_serves::<$stack>(
                    $base + 1,
                    Gateway::Refuse,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn silent_gateway_is_named_and_the_listener_serves() {
                super::failed_mapping_is_named_and_the_listener_serves::<$stack>(
                    $base + 2,
                    Gateway::Silent,
                )
                .await;
            }
        }
    };
}

portmap!(str0m, Str0m, 10);
portmap!(webrtc_rs, WebrtcRs, 20);
