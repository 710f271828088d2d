//! `ListenerConfig::stun`, the same for every stack: the listener asks a STUN server for its
//! mapped address and advertises it as a srflx candidate after its host candidates. The server
//! ([`crate::stun_server`]) answers like a STUN server behind which the listener appears as
//! 203.0.113.5 (RFC 5737), so the srflx candidate differs from the host one; dialing still
//! succeeds over the host candidate, which comes first.

use std::time::Duration;

use oneway_connection::StackError;
use oneway_token::{CandidateAddress, CandidateType};

use crate::stack::{ListenOptions, Stack, TestListener};
use crate::stun_server;

/// The token carries the host candidate, then the srflx one the STUN server reported, and names
/// the server in its `stun` extension; a dialer of the same stack still connects.
pub async fn srflx_candidate_comes_after_host_and_dialing_still_works<S: Stack>() {
    let server = stun_server().await;
    let mut listener = S::bind(ListenOptions {
        stun: Some(server),
        ..ListenOptions::default()
    })
    .await
    .expect("bind with STUN");
    let token = listener.token().clone();
    let port = listener.addr().port();
    assert_eq!(token.candidates.len(), 2, "{:?}", token.candidates);
    assert_eq!(token.candidates[0].kind, CandidateType::Host);
    assert_eq!(token.candidates[1].kind, CandidateType::ServerReflexive);
    assert_eq!(
        token.candidates[1].address,
        CandidateAddress::Ip([203, 0, 113, 5].into())
    );
    assert_eq!(token.candidates[1].port, port);
    // The `stun` extension names the server (spec/token.md §5.9).
    assert_eq!(token.stun, vec![server]);
    let dialer = S::dialer(Duration::from_secs(10), false);
    let dialing = tokio::spawn(async move { S::dial(&dialer, &token).await });
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accept")
        .expect("running");
    dialing.await.expect("task").expect("dial");
}

/// A STUN server that never answers makes `bind` fail with an I/O error that says so.
pub async fn a_silent_stun_server_is_a_clear_error<S: Stack>() {
    // A bound socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let options = ListenOptions {
        stun: Some(silent.local_addr().expect("addr")),
        ..ListenOptions::default()
    };
    match S::bind(options).await {
        Err(StackError::Io(message)) => {
            assert!(message.contains("no answer from STUN server"), "{message}")
        }
        Err(other) => panic!("expected a STUN error, got {other:?}"),
        Ok(_) => panic!("expected a STUN error, the listener bound"),
    }
}
