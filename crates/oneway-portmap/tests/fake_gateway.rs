//! The mapper against a fake PCP / NAT-PMP gateway on a loopback address (127.0.0.x:5351, one
//! address per test): good answers, renewal, deletion, and every kind of bad answer, each of
//! which must give its named cause quickly. Nothing leaves loopback (UPnP discovery goes
//! unicast to the fake gateway's address, where nothing answers).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oneway_portmap::{
    MappingEvent, PortMapper, PortmapConfig, PortmapError, Protocol, ProtocolChoice,
};
use tokio::net::UdpSocket;

/// How the fake gateway answers the n-th PCP MAP request (n from 0).
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Success with external 11.0.0.1 (11.0.0.2 from the `change_at`-th request on), the
    /// requested port, and this lifetime.
    Grant {
        lifetime: u32,
        change_at: usize,
        silent_from: usize,
    },
    /// A PCP error result code.
    ResultCode(u8),
    /// 16 bytes of garbage.
    Garbage,
    /// The first 20 bytes of a good answer.
    Truncated,
    /// A good answer with the PEER opcode instead of MAP.
    WrongOpcode,
    /// A good answer with version 3.
    WrongVersion,
    /// A good answer with another nonce.
    WrongNonce,
    /// Nothing.
    Silence,
    /// A NAT-PMP-only gateway: PCP gets UNSUPP_VERSION, NAT-PMP gets external 11.0.0.3.
    NatPmpOnly,
    /// NAT-PMP only, and mapping requests get this result code.
    NatPmpResult(u8),
    /// NAT-PMP only, and the external-address answer is cut to 8 bytes.
    NatPmpTruncated,
}

impl Behaviour {
    fn natpmp_only(self) -> bool {
        matches!(
            self,
            Behaviour::NatPmpOnly | Behaviour::NatPmpResult(_) | Behaviour::NatPmpTruncated
        )
    }
}

struct FakeGateway {
    ip: Ipv4Addr,
    requests: Arc<AtomicUsize>,
    deletes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pcp_answer(req: &[u8], result: u8, lifetime: u32, ext: Ipv4Addr) -> Vec<u8> {
    let mut r = vec![0u8; 60];
    r[0] = 2;
    r[1] = 0x80 | (req[1] & 0x7f);
    r[3] = result;
    r[4..8].copy_from_slice(&lifetime.to_be_bytes());
    r[8..12].copy_from_slice(&1234u32.to_be_bytes());
    if req.len() >= 60 {
        r[24..36].copy_from_slice(&req[24..36]);
        r[36] = req[36];
        r[40..42].copy_from_slice(&req[40..42]);
        let port = if req[42..44] == [0, 0] {
            &req[40..42]
        } else {
            &req[42..44]
        };
        r[42..44].copy_from_slice(port);
    }
    r[44..60].copy_from_slice(&ext.to_ipv6_mapped().octets());
    r
}

async fn fake_gateway(n: u8, behaviour: Behaviour) -> FakeGateway {
    let ip = Ipv4Addr::new(127, 0, 3, n);
    let socket = UdpSocket::bind((ip, 5351))
        .await
        .expect("bind fake gateway");
    let requests = Arc::new(AtomicUsize::new(0));
    let deletes = Arc::new(AtomicUsize::new(0));
    let (req_count, del_count) = (requests.clone(), deletes.clone());
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1100];
        let mut maps = 0usize;
        loop {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let req = &buf[..len];
            req_count.fetch_add(1, Ordering::SeqCst);
            let answer: Option<Vec<u8>> = match (req.first(), behaviour) {
                // NAT-PMP requests (version 0).
                (Some(0), b) if b.natpmp_only() && len >= 2 && req[1] == 0 => {
                    let mut r = vec![0, 128, 0, 0];
                    r.extend_from_slice(&1234u32.to_be_bytes());
                    r.extend_from_slice(&[11, 0, 0, 3]);
                    if matches!(b, Behaviour::NatPmpTruncated) {
                        r.truncate(8);
                    }
                    Some(r)
                }
                (Some(0), Behaviour::NatPmpResult(code)) if len >= 12 => {
                    let mut r = vec![0, 128 | req[1], 0, code];
                    r.extend_from_slice(&1234u32.to_be_bytes());
                    r.extend_from_slice(&req[4..6]);
                    r.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                    Some(r)
                }
                (Some(0), Behaviour::NatPmpOnly) if len >= 12 => {
                    let lifetime = u32::from_be_bytes([req[8], req[9], req[10], req[11]]);
                    if lifetime == 0 {
                        del_count.fetch_add(1, Ordering::SeqCst);
                    }
                    let mut r = vec![0, 128 | req[1], 0, 0];
                    r.extend_from_slice(&1234u32.to_be_bytes());
                    r.extend_from_slice(&req[4..6]);
                    r.extend_from_slice(if lifetime == 0 { &[0, 0] } else { &req[4..6] });
                    r.extend_from_slice(&lifetime.min(3600).to_be_bytes());
                    Some(r)
                }
                (Some(2), b) if b.natpmp_only() => {
                    // RFC 6886 §3.5 / RFC 6887 §9: UNSUPP_VERSION from a version-0 server.
                    let mut r = vec![0, 128 | (req[1] & 0x7f), 0, 1];
                    r.extend_from_slice(&1234u32.to_be_bytes());
                    Some(r)
                }
                (Some(2), b) if len >= 60 => {
                    let lifetime = u32::from_be_bytes([req[4], req[5], req[6], req[7]]);
                    if lifetime == 0 {
                        del_count.fetch_add(1, Ordering::SeqCst);
                        Some(pcp_answer(req, 0, 0, Ipv4Addr::UNSPECIFIED))
                    } else {
                        let i = maps;
                        maps += 1;
                        let good = pcp_answer(req, 0, 2, Ipv4Addr::new(11, 0, 0, 1));
                        match b {
                            Behaviour::Grant {
                                lifetime,
                                change_at,
                                silent_from,
                            } => {
                                if i >= silent_from {
                                    None
                                } else {
                                    let ext = if i >= change_at {
                                        Ipv4Addr::new(11, 0, 0, 2)
                                    } else {
                                        Ipv4Addr::new(11, 0, 0, 1)
                                    };
                                    Some(pcp_answer(req, 0, lifetime, ext))
                                }
                            }
                            Behaviour::ResultCode(code) => {
                                Some(pcp_answer(req, code, 30, Ipv4Addr::UNSPECIFIED))
                            }
                            Behaviour::Garbage => Some(b"this is no PCP!!".to_vec()),
                            Behaviour::Truncated => Some(good[..20].to_vec()),
                            Behaviour::WrongOpcode => {
                                let mut r = good;
                                r[1] = 0x80 | 2;
                                Some(r)
                            }
                            Behaviour::WrongVersion => {
                                let mut r = good;
                                r[0] = 3;
                                Some(r)
                            }
                            Behaviour::WrongNonce => {
                                let mut r = good;
                                r[24] ^= 0xff;
                                Some(r)
                            }
                            _ => None,
                        }
                    }
                }
                _ => None,
            };
            if let Some(answer) = answer {
                let _ = socket.send_to(&answer, from).await;
            }
        }
    });
    FakeGateway {
        ip,
        requests,
        deletes,
        task,
    }
}

fn mapper(gw: &FakeGateway, choice: ProtocolChoice, lifetime: Duration) -> PortMapper {
    PortMapper::new(PortmapConfig {
        choice,
        lifetime,
        gateway: Some(IpAddr::V4(gw.ip)),
        ..PortmapConfig::default()
    })
}

/// A bound UDP socket standing for the listener's socket.
fn listener() -> (std::net::UdpSocket, SocketAddr) {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let a = s.local_addr().expect("addr");
    (s, a)
}

#[tokio::test]
async fn pcp_maps_renews_and_deletes() {
    let gw = fake_gateway(
        1,
        Behaviour::Grant {
            lifetime: 2,
            change_at: usize::MAX,
            silent_from: usize::MAX,
        },
    )
    .await;
    let (_s, local) = listener();
    let started = Instant::now();
    let mut handle = mapper(&gw, ProtocolChoice::Pcp, Duration::from_secs(2))
        .map(local)
        .await
        .expect("mapped");
    let took = started.elapsed();
    let m = handle.mapping();
    eprintln!("PCP mapping (fake gateway) in {took:?}: {m:?}");
    assert_eq!(m.protocol, Protocol::Pcp);
    assert_eq!(
        m.external,
        SocketAddr::new([11, 0, 0, 1].into(), local.port())
    );
    assert_eq!(m.lifetime, Duration::from_secs(2));
    assert_eq!(m.gateway, SocketAddr::new(gw.ip.into(), 5351));
    // Renewed at half the lifetime, same address.
    let event = tokio::time::timeout(Duration::from_secs(3), handle.next_event())
        .await
        .expect("renewal within 3 s");
    assert_eq!(event, Some(MappingEvent::Renewed(m)));
    let json = serde_json::to_value(&event).expect("json");
    assert_eq!(json["event"], "renewed");
    assert_eq!(json["protocol"], "pcp");
    assert_eq!(json["lifetime"], 2);
    handle.shutdown().await.expect("deleted");
    assert_eq!(gw.deletes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn address_change_on_renewal_is_reported() {
    let gw = fake_gateway(
        2,
        Behaviour::Grant {
            lifetime: 2,
            change_at: 1,
            silent_from: usize::MAX,
        },
    )
    .await;
    let (_s, local) = listener();
    let mut handle = mapper(&gw, ProtocolChoice::Pcp, Duration::from_secs(2))
        .map(local)
        .await
        .expect("mapped");
    let old = handle.mapping().external;
    let event = tokio::time::timeout(Duration::from_secs(3), handle.next_event())
        .await
        .expect("event within 3 s");
    let Some(MappingEvent::Failed(e)) = event else {
        panic!("expected an address change, got {event:?}");
    };
    assert_eq!(e.code(), "portmap-address-changed");
    let new = SocketAddr::new([11, 0, 0, 2].into(), local.port());
    assert_eq!(
        e,
        PortmapError::AddressChanged {
            protocol: Protocol::Pcp,
            old,
            new
        }
    );
    let event = handle.next_event().await;
    assert!(
        matches!(event, Some(MappingEvent::Renewed(m)) if m.external == new),
        "{event:?}"
    );
    assert_eq!(handle.mapping().external, new);
}

#[tokio::test]
async fn silent_gateway_on_renewal_loses_the_mapping() {
    let gw = fake_gateway(
        3,
        Behaviour::Grant {
            lifetime: 2,
            change_at: usize::MAX,
            silent_from: 1,
        },
    )
    .await;
    let (_s, local) = listener();
    let mut handle = mapper(&gw, ProtocolChoice::Pcp, Duration::from_secs(2))
        .map(local)
        .await
        .expect("mapped");
    let started = Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(5), handle.next_event())
        .await
        .expect("event within 5 s");
    let Some(MappingEvent::Failed(e)) = event else {
        panic!("expected a lost mapping, got {event:?}");
    };
    eprintln!("lost after {:?}: {e}", started.elapsed());
    assert_eq!(e.code(), "portmap-lost");
    let json = serde_json::to_value(MappingEvent::Failed(e.clone())).expect("json");
    assert_eq!(json["event"], "failed");
    assert_eq!(json["code"], "portmap-lost");
    assert!(e.to_string().contains("portmap-timeout"), "{e}");
    assert_eq!(
        handle.next_event().await,
        None,
        "the keeper stops after a loss"
    );
}

async fn expect_error(
    n: u8,
    behaviour: Behaviour,
    choice: ProtocolChoice,
) -> (PortmapError, Duration) {
    let gw = fake_gateway(n, behaviour).await;
    let (_s, local) = listener();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        mapper(&gw, choice, Duration::from_secs(60)).map(local),
    )
    .await
    .expect("the mapper gives up within 3 s");
    let took = started.elapsed();
    match result {
        Ok(h) => panic!("{behaviour:?} was mapped: {:?}", h.mapping()),
        Err(e) => {
            eprintln!("{behaviour:?} / {choice:?}: {} in {took:?}: {e}", e.code());
            (e, took)
        }
    }
}

#[tokio::test]
async fn error_result_codes_are_refusals() {
    for (i, (code, name)) in [
        (2u8, "NOT_AUTHORIZED"),
        (8, "NO_RESOURCES"),
        (4, "UNSUPP_OPCODE"),
        (12, "ADDRESS_MISMATCH"),
        (11, "CANNOT_PROVIDE_EXTERNAL"),
    ]
    .into_iter()
    .enumerate()
    {
        let (e, took) = expect_error(
            10 + i as u8,
            Behaviour::ResultCode(code),
            ProtocolChoice::Pcp,
        )
        .await;
        assert_eq!(e.code(), "portmap-refused", "{e}");
        assert!(
            matches!(&e, PortmapError::Refused { result, .. } if result == name),
            "{e}"
        );
        assert!(took < Duration::from_millis(200), "{took:?}");
    }
}

#[tokio::test]
async fn malformed_answers_are_named() {
    for (i, b) in [
        Behaviour::Garbage,
        Behaviour::Truncated,
        Behaviour::WrongOpcode,
        Behaviour::WrongNonce,
    ]
    .into_iter()
    .enumerate()
    {
        let (e, took) = expect_error(20 + i as u8, b, ProtocolChoice::Pcp).await;
        assert_eq!(e.code(), "portmap-malformed", "{b:?}: {e}");
        assert!(took < Duration::from_millis(200), "{took:?}");
    }
}

#[tokio::test]
async fn wrong_version_is_named() {
    let (e, took) = expect_error(30, Behaviour::WrongVersion, ProtocolChoice::Pcp).await;
    assert_eq!(e.code(), "portmap-malformed", "{e}");
    assert!(took < Duration::from_millis(200), "{took:?}");
}

#[tokio::test]
async fn silence_times_out_quickly() {
    let (e, took) = expect_error(40, Behaviour::Silence, ProtocolChoice::Pcp).await;
    assert_eq!(e.code(), "portmap-timeout");
    assert!(took < Duration::from_millis(1000), "{took:?}");
    let (e, took) = expect_error(41, Behaviour::Silence, ProtocolChoice::NatPmp).await;
    assert_eq!(e.code(), "portmap-timeout");
    assert!(took < Duration::from_millis(1000), "{took:?}");
}

#[tokio::test]
async fn auto_gives_up_within_two_seconds_without_a_gateway() {
    let (e, took) = expect_error(42, Behaviour::Silence, ProtocolChoice::Auto).await;
    assert_eq!(e.code(), "portmap-timeout");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn auto_refusal_is_reported_not_hidden_by_upnp_silence() {
    let (e, took) = expect_error(43, Behaviour::ResultCode(2), ProtocolChoice::Auto).await;
    assert_eq!(e.code(), "portmap-refused", "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn auto_falls_back_to_natpmp() {
    let gw = fake_gateway(50, Behaviour::NatPmpOnly).await;
    let (_s, local) = listener();
    let started = Instant::now();
    let handle = mapper(&gw, ProtocolChoice::Auto, Duration::from_secs(60))
        .map(local)
        .await
        .expect("mapped");
    let m = handle.mapping();
    eprintln!(
        "NAT-PMP fallback (fake gateway) in {:?}: {m:?}",
        started.elapsed()
    );
    assert_eq!(m.protocol, Protocol::NatPmp);
    assert_eq!(
        m.external,
        SocketAddr::new([11, 0, 0, 3].into(), local.port())
    );
    handle.shutdown().await.expect("deleted");
    assert_eq!(gw.deletes.load(Ordering::SeqCst), 1);
    assert!(gw.requests.load(Ordering::SeqCst) >= 4);
}

#[tokio::test]
async fn dropping_the_handle_deletes_the_mapping() {
    let gw = fake_gateway(
        51,
        Behaviour::Grant {
            lifetime: 60,
            change_at: usize::MAX,
            silent_from: usize::MAX,
        },
    )
    .await;
    let (_s, local) = listener();
    let handle = mapper(&gw, ProtocolChoice::Pcp, Duration::from_secs(60))
        .map(local)
        .await
        .expect("mapped");
    drop(handle);
    let deadline = Instant::now() + Duration::from_secs(2);
    while gw.deletes.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.deletes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn natpmp_over_ipv6_is_unavailable() {
    let e = PortMapper::new(PortmapConfig {
        choice: ProtocolChoice::NatPmp,
        gateway: Some("::1".parse().expect("ip")),
        ..PortmapConfig::default()
    })
    .map("[::1]:4000".parse().expect("addr"))
    .await
    .expect_err("NAT-PMP has no IPv6");
    assert_eq!(e.code(), "portmap-unavailable", "{e}");
}

#[tokio::test]
async fn natpmp_refusals_and_truncation_are_named() {
    for (n, b, code, needle) in [
        (
            60,
            Behaviour::NatPmpResult(2),
            "portmap-refused",
            "NOT_AUTHORIZED",
        ),
        (
            61,
            Behaviour::NatPmpResult(4),
            "portmap-refused",
            "OUT_OF_RESOURCES",
        ),
        (
            62,
            Behaviour::NatPmpResult(3),
            "portmap-refused",
            "NETWORK_FAILURE",
        ),
        (63, Behaviour::NatPmpTruncated, "portmap-malformed", "bytes"),
    ] {
        let (e, took) = expect_error(n, b, ProtocolChoice::NatPmp).await;
        assert_eq!(e.code(), code, "{b:?}: {e}");
        assert!(e.to_string().contains(needle), "{b:?}: {e}");
        assert!(took < Duration::from_millis(200), "{took:?}");
    }
    // Auto: PCP gets UNSUPP_VERSION, NAT-PMP refuses; the refusal is what is reported.
    let (e, _) = expect_error(64, Behaviour::NatPmpResult(2), ProtocolChoice::Auto).await;
    assert_eq!(e.code(), "portmap-refused", "{e}");
    assert!(e.to_string().contains("NAT-PMP"), "{e}");
}

/// A UPnP "gateway" on 127.0.3.x whose SSDP answer points at an HTTP server that serves
/// garbage instead of a device description. igd-next skips a device it cannot use and keeps
/// searching (another device of the LAN may answer), so this ends as a timeout, in time.
#[tokio::test]
async fn upnp_garbage_description_is_a_timeout() {
    let ip = Ipv4Addr::new(127, 0, 3, 70);
    let http = tokio::net::TcpListener::bind((ip, 0)).await.expect("http");
    let http_port = http.local_addr().expect("addr").port();
    let web = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = http.accept().await {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf).await;
            let body = "<root><this is not XML";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let ssdp = UdpSocket::bind((ip, 1900)).await.expect("ssdp");
    let responder = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = ssdp.recv_from(&mut buf).await {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nUSN: uuid:fake::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://{ip}:{http_port}/rootDesc.xml\r\n\r\n"
            );
            let _ = ssdp.send_to(answer.as_bytes(), from).await;
        }
    });
    let (_s, local) = listener();
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(3),
        PortMapper::new(PortmapConfig {
            choice: ProtocolChoice::Upnp,
            gateway: Some(IpAddr::V4(ip)),
            ..PortmapConfig::default()
        })
        .map(local),
    )
    .await
    .expect("gives up within 3 s");
    let took = started.elapsed();
    web.abort();
    responder.abort();
    let e = result.expect_err("no mapping from garbage");
    eprintln!("UPnP garbage description: {} in {took:?}: {e}", e.code());
    assert_eq!(e.code(), "portmap-timeout", "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// An SSDP answer that is not HTTP at all is ignored: the search ends as a timeout, in time.
#[tokio::test]
async fn upnp_garbage_ssdp_is_a_timeout() {
    let ip = Ipv4Addr::new(127, 0, 3, 71);
    let ssdp = UdpSocket::bind((ip, 1900)).await.expect("ssdp");
    let responder = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = ssdp.recv_from(&mut buf).await {
            let _ = ssdp.send_to(b"\x00\x01garbage\xff", from).await;
        }
    });
    let (_s, local) = listener();
    let started = Instant::now();
    let result = PortMapper::new(PortmapConfig {
        choice: ProtocolChoice::Upnp,
        gateway: Some(IpAddr::V4(ip)),
        ..PortmapConfig::default()
    })
    .map(local)
    .await;
    let took = started.elapsed();
    responder.abort();
    let e = result.expect_err("no mapping from garbage");
    eprintln!("UPnP garbage SSDP: {} in {took:?}: {e}", e.code());
    assert_eq!(e.code(), "portmap-timeout", "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
