//! `ListenerConfig::stun` (webrtc-rs): the listener asks a STUN server for its mapped address and advertises
//! it as a srflx candidate after its host candidates. The server here answers like a STUN server
//! behind which the listener appears as 203.0.113.5 (RFC 5737), so the srflx candidate differs
//! from the host one; dialing still succeeds over the host candidate, which comes first.

use std::time::Duration;

use oneway_testkit::stun_server;
use oneway_token::{CandidateAddress, CandidateType};
use oneway_webrtc::{DialConfig, Listener, ListenerConfig, StackError, dial};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srflx_candidate_comes_after_host_and_dialing_still_works() {
    let server = stun_server().await;
    let config = ListenerConfig {
        stun: Some(server),
        ..ListenerConfig::loopback()
    };
    let mut listener = Listener::bind(config).await.expect("bind with STUN");
    let token = listener.token().clone();
    let port = listener.local_addrs()[0].port();
    assert_eq!(token.candidates.len(), 2, "{:?}", token.candidates);
    assert_eq!(token.candidates[0].kind, CandidateType::Host);
    assert_eq!(token.candidates[1].kind, CandidateType::ServerReflexive);
    assert_eq!(
        token.candidates[1].address,
        CandidateAddress::Ip([203, 0, 113, 5].into())
    );
    assert_eq!(token.candidates[1].port, port);
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accept")
        .expect("running");
    dialer.await.expect("task").expect("dial");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stun_server_is_a_clear_error() {
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let config = ListenerConfig {
        stun: Some(silent.local_addr().expect("addr")),
        ..ListenerConfig::loopback()
    };
    match Listener::bind(config).await {
        Err(StackError::Io(message)) => {
            assert!(message.contains("no answer from STUN server"), "{message}")
        }
        other => panic!("expected a STUN error, got {other:?}"),
    }
}
