//! The webrtc-rs dialer's TURN relay against coturn on loopback (`oneway_testkit::coturn`;
//! skipped when `turnserver` is not installed): with `relay_only` it offers nothing but the
//! relayed address, so connecting proves the relay path; a wrong password fails with
//! `turn-auth-failed`.

use std::time::Duration;

use oneway_connection::ConnectionEvent;
use oneway_testkit::coturn::{CREDENTIALS, Coturn, RELAY_PORTS};
use oneway_webrtc::{DialConfig, Listener, ListenerConfig, TurnCredentials, TurnServer, dial};

fn server(addr: std::net::SocketAddr, password: &str) -> TurnServer {
    TurnServer {
        addr,
        credentials: TurnCredentials {
            username: CREDENTIALS.0.to_owned(),
            password: password.to_owned(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_dial_connects_through_coturn_and_carries_data() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let mut listener = Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let token = listener.token().clone();
    let config = DialConfig {
        turn: Some(server(coturn.addr, CREDENTIALS.1)),
        relay_only: true,
        ..DialConfig::default()
    };
    let dialer = tokio::spawn(async move { dial(&token, &config).await });
    let mut accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accept in time")
        .expect("listener running");
    let dialed = dialer.await.expect("task").expect("dial through the relay");
    let (local, remote) = dialed.info().selected.expect("a selected pair");
    assert!(
        local.ip().is_loopback() && RELAY_PORTS.contains(&local.port()),
        "the dialer's side of the pair is its relayed address: {local} -> {remote}"
    );

    let channel = dialed.open_channel("data").await.expect("open");
    dialed
        .send(channel, b"through the relay")
        .await
        .expect("send");
    let received = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = accepted.next_event().await {
            if let ConnectionEvent::Data { data, .. } = event {
                return Some(data);
            }
        }
        None
    })
    .await
    .expect("data in time");
    assert_eq!(received.as_deref(), Some(&b"through the relay"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_with_turn_auth_failed() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let listener = Listener::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let config = DialConfig {
        turn: Some(server(coturn.addr, "not-the-password")),
        relay_only: true,
        timeout: Duration::from_secs(5),
        ..DialConfig::default()
    };
    let error = dial(listener.token(), &config).await.expect_err("refused");
    assert_eq!(error.code(), "turn-auth-failed", "{error}");
}
