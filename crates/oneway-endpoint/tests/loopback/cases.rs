// The loopback cases, included once per stack by `tests/loopback.rs` in a module that names
// the stack `Stack`.

use std::time::Duration;

use oneway_endpoint::{Connection, DialError, ListenerConfig, dial};
use oneway_testkit::churn::echo;

type Listener = oneway_endpoint::Listener<Stack>;
type DialConfig = oneway_endpoint::DialConfig<Stack>;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Waits for the next data message, skipping other events; bounded in time.
async fn next_data(conn: &mut Connection) -> Vec<u8> {
    oneway_testkit::churn::next_data(conn, Duration::from_secs(10)).await
}

async fn accept(listener: &mut Listener) -> Connection {
    oneway_testkit::stack::accept_within(listener).await
}

/// Dials `listener` with the default config; returns the dialer's and the listener's ends.
async fn connect(listener: &mut Listener) -> (Connection, Connection) {
    let token = listener.token().clone();
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
    let accepted = accept(listener).await;
    (dialer.await.expect("task").expect("dial"), accepted)
}

/// The code of the listener's next `Refused` event; bounded in time.
async fn next_refusal(listener: &mut Listener) -> &'static str {
    oneway_testkit::stack::next_refusal(listener).await
}

async fn loopback_listener(config: ListenerConfig) -> Listener {
    init_tracing();
    Listener::bind(config).await.expect("bind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_connect_and_echo() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    let (mut conn, accepted) = connect(&mut listener).await;
    let _echo = echo(accepted);
    let info = conn.info().clone();
    assert!(info.timings.authenticated.is_some());
    assert!(info.selected.is_some(), "selected pair known");
    let channel = conn.open_channel("data").await.expect("open");
    conn.send(channel, b"hello, one way").await.expect("send");
    assert_eq!(next_data(&mut conn).await, b"hello, one way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_dialers_share_one_listener_socket() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    assert_eq!(listener.local_addrs().len(), 1, "one socket");
    let token = listener.token().clone();
    let dialers: Vec<_> = (0..5)
        .map(|i| {
            let token = token.clone();
            tokio::spawn(async move {
                let mut conn = dial(&token, &DialConfig::default()).await.expect("dial");
                let channel = conn.open_channel("data").await.expect("open");
                let message = format!("dialer {i} says hi");
                conn.send(channel, message.as_bytes()).await.expect("send");
                assert_eq!(next_data(&mut conn).await, message.as_bytes());
                conn
            })
        })
        .collect();
    let mut echoes = Vec::new();
    for _ in 0..5 {
        echoes.push(echo(accept(&mut listener).await));
    }
    for d in dialers {
        d.await.expect("dialer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_gets_no_response_and_a_clear_timeout() {
    let listener = loopback_listener(ListenerConfig::loopback()).await;
    let mut forged = listener.token().clone();
    forged.secret.0[0] ^= 0xff;
    let config = DialConfig {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let err = dial(&forged, &config).await.expect_err("must not connect");
    assert_eq!(err.code(), "ice-timeout", "{err}");
    match err {
        DialError::Timeout { tried, .. } => assert_eq!(
            tried,
            listener.local_addrs().to_vec(),
            "the candidate was tried"
        ),
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_proof_is_dropped_and_the_listener_keeps_serving() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    let mut bad = DialConfig::default();
    bad.dangerous.auth_key = Some([7; 32]);
    let err = dial(listener.token(), &bad)
        .await
        .expect_err("bad proof must fail");
    assert_eq!(err.code(), "auth-failed", "{err}");
    assert_eq!(next_refusal(&mut listener).await, "auth-failed");
    // A legitimate dialer still gets in.
    connect(&mut listener).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refused_by_both_sides() {
    let mut listener = loopback_listener(ListenerConfig {
        ttl: Some(Duration::from_secs(1)),
        ..ListenerConfig::loopback()
    })
    .await;
    let token = listener.token().clone();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = dial(&token, &DialConfig::default())
        .await
        .expect_err("dialer refuses");
    assert_eq!(err.code(), "expired", "{err}");
    let mut ignoring = DialConfig {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    ignoring.dangerous.skip_expiry_check = true;
    let err = dial(&token, &ignoring).await.expect_err("listener refuses");
    assert_eq!(err.code(), "ice-timeout", "{err}");
    assert_eq!(next_refusal(&mut listener).await, "token-expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_token_refuses_a_replay() {
    let mut listener = loopback_listener(ListenerConfig {
        single_use: true,
        ..ListenerConfig::loopback()
    })
    .await;
    let token = listener.token().clone();
    assert!(token.single_use, "the token says so");
    let _first = connect(&mut listener).await;
    let replay = DialConfig {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let err = dial(&token, &replay).await.expect_err("replay refused");
    assert_eq!(err.code(), "ice-timeout", "{err}");
    assert_eq!(next_refusal(&mut listener).await, "token-used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renegotiation_over_the_connection_keeps_data_flowing() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    let (mut conn, accepted) = connect(&mut listener).await;
    let _echo = echo(accepted);
    let first = conn.open_channel("first").await.expect("open first");
    conn.send(first, b"before").await.expect("send");
    assert_eq!(next_data(&mut conn).await, b"before");

    // A second channel, opened in band after the connection is up.
    let second = conn.open_channel("second").await.expect("open second");
    conn.send(second, b"on the second channel")
        .await
        .expect("send");
    assert_eq!(next_data(&mut conn).await, b"on the second channel");

    // ICE restart over channel 0, with data in flight before, during and after.
    conn.send(first, b"during-1").await.expect("send");
    tokio::time::timeout(Duration::from_secs(10), conn.ice_restart())
        .await
        .expect("restart within 10 s")
        .expect("restart");
    conn.send(first, b"during-2").await.expect("send");
    let mut got = vec![next_data(&mut conn).await, next_data(&mut conn).await];
    got.sort();
    assert_eq!(got, vec![b"during-1".to_vec(), b"during-2".to_vec()]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..20u8 {
        conn.send(first, &[i; 100])
            .await
            .expect("send after restart");
        assert_eq!(
            next_data(&mut conn).await,
            vec![i; 100],
            "message {i} after the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_token_admits_exactly_one_of_two_concurrent_dialers() {
    let mut listener = loopback_listener(ListenerConfig {
        single_use: true,
        ..ListenerConfig::loopback()
    })
    .await;
    let token = listener.token().clone();
    let config = DialConfig {
        timeout: Duration::from_secs(3),
        ..Default::default()
    };
    let (a, b) = tokio::join!(dial(&token, &config), dial(&token, &config));
    let _accepted = accept(&mut listener).await;
    let (winner, loser) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (Ok(_), Ok(_)) => panic!("both dialers of a single-use token connected"),
        (Err(a), Err(b)) => panic!("neither connected: {a}; {b}"),
    };
    // A dialer still pending when the token was used is told so; one arriving later gets no
    // answer at all (admission refuses silently).
    assert!(
        matches!(loser.code(), "token-used" | "ice-timeout"),
        "{loser}"
    );
    assert!(winner.info().timings.authenticated.is_some());
    assert_eq!(next_refusal(&mut listener).await, "token-used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_accept_queue_refuses_before_claiming_success() {
    let mut listener = loopback_listener(ListenerConfig {
        accept_queue: 1,
        ..ListenerConfig::loopback()
    })
    .await;
    let token = listener.token().clone();
    // Nobody calls accept(): the first connection fills the queue.
    let _first = dial(&token, &DialConfig::default())
        .await
        .expect("first dialer is queued");
    let err = dial(&token, &DialConfig::default())
        .await
        .expect_err("queue full");
    assert_eq!(err.code(), "accept-queue-full", "{err}");
    assert_eq!(next_refusal(&mut listener).await, "accept-queue-full");
    // The queued connection was not lost.
    assert!(
        accept(&mut listener)
            .await
            .info()
            .timings
            .authenticated
            .is_some()
    );
}
