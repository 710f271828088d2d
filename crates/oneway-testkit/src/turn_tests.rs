//! A dialer's TURN relay against coturn on loopback ([`crate::coturn`]; each body returns at
//! once when `turnserver` is not installed), the same for every stack: with `relay_only` the
//! dialer offers nothing but the relayed address, so connecting proves the whole relay path
//! (TCP to the server, Allocate, CreatePermission, Send/ChannelData both ways). Wrong
//! credentials and an unreachable server fail with their own cause codes.

use std::net::SocketAddr;
use std::time::Duration;

use oneway_connection::{Connection, ConnectionEvent, DialError};
use oneway_turn::{Credentials, TurnServer};

use crate::coturn::{CREDENTIALS, Coturn, RELAY_PORTS};
use crate::stack::{ListenOptions, Stack, TestListener};

fn server(addr: SocketAddr, password: &str) -> TurnServer {
    TurnServer {
        addr,
        credentials: Credentials {
            username: CREDENTIALS.0.to_owned(),
            password: password.to_owned(),
        },
    }
}

async fn loopback_listener<S: Stack>() -> S::Listener {
    S::bind(ListenOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bind a {} listener: {e}", S::NAME))
}

/// Dials a fresh loopback listener with a relay on `coturn` (only the relay with
/// `relay_only`); returns the listener, its accepted connection and the dialed one.
async fn dial_with_relay<S: Stack>(
    coturn: &Coturn,
    relay_only: bool,
) -> (S::Listener, Connection, Connection) {
    let mut listener = loopback_listener::<S>().await;
    let token = listener.token().clone();
    let config = S::with_relay(
        S::dialer(Duration::from_secs(10), false),
        server(coturn.addr, CREDENTIALS.1),
        relay_only,
    );
    let dialer = tokio::spawn(async move { S::dial(&config, &token).await });
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accept in time")
        .expect("listener running");
    let dialed = dialer.await.expect("task").expect("dial with a relay");
    (listener, accepted, dialed)
}

/// Relay only: the selected pair's local side is a relayed address on coturn, and data arrives.
pub async fn relay_only_dial_connects_through_coturn_and_carries_data<S: Stack>() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let (listener, mut accepted, dialed) = dial_with_relay::<S>(&coturn, true).await;
    let (local, remote) = dialed.info().selected.expect("a selected pair");
    assert!(
        local.ip().is_loopback() && RELAY_PORTS.contains(&local.port()),
        "the dialer's side of the pair is its relayed address: {local} -> {remote}"
    );
    assert_eq!(remote, listener.addr());

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

/// A wrong TURN password ends the dial with `turn-auth-failed`.
pub async fn wrong_password_fails_with_turn_auth_failed<S: Stack>() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let listener = loopback_listener::<S>().await;
    let config = S::with_relay(
        S::dialer(Duration::from_secs(5), false),
        server(coturn.addr, "not-the-password"),
        true,
    );
    let error = S::dial(&config, listener.token())
        .await
        .expect_err("refused");
    assert_eq!(error.code(), "turn-auth-failed", "{error}");
}

/// A TURN server nobody listens on ends a relay-only dial with `turn-unreachable`.
pub async fn unreachable_turn_server_fails_with_turn_unreachable<S: Stack>() {
    // A port nothing listens on (bound, then closed).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let listener = loopback_listener::<S>().await;
    let config = S::with_relay(
        S::dialer(Duration::from_secs(5), false),
        server(closed, "x"),
        true,
    );
    match S::dial(&config, listener.token()).await {
        Err(e @ DialError::Closed { .. }) => assert_eq!(e.code(), "turn-unreachable", "{e}"),
        other => panic!("expected turn-unreachable, got {:?}", other.map(|_| ())),
    }
}

/// With a relay configured but not required, the host pair still wins on loopback.
pub async fn host_path_still_wins_with_a_relay_configured<S: Stack>() {
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let (_listener, _accepted, dialed) = dial_with_relay::<S>(&coturn, false).await;
    let (local, _) = dialed.info().selected.expect("a selected pair");
    assert!(
        !RELAY_PORTS.contains(&local.port()),
        "the host pair comes first: {local}"
    );
}
