//! The fast path (`spec/handshake.md` §5.4, §5.5) on the str0m stack, the one stack that has
//! it: a str0m listener announces DTLS 1.3 and a fast start in its token, and serves fast-start
//! dialers, standard str0m dialers and webrtc-rs dialers side by side; early data flows before
//! the listener's proof yet reaches the listener's application only after admission; and a
//! dialer that announces a fast start wrongly gets no state and no answer.

mod support;

use std::time::Duration;

use oneway_endpoint::{Connection, ConnectionEvent, ListenerConfig};
use oneway_testkit::churn::echo;
use oneway_testkit::stack::Str0m;
use support::{Prober, barrier, fast_start_check, init_tracing, trans_id};

type Listener = oneway_endpoint::Listener<Str0m>;
type DialConfig = oneway_endpoint::DialConfig<Str0m>;

async fn listener(config: ListenerConfig) -> Listener {
    init_tracing();
    Listener::bind(config).await.expect("bind")
}

async fn accept(listener: &mut Listener) -> Connection {
    oneway_testkit::stack::accept_within(listener).await
}

async fn next_data(conn: &mut Connection) -> Vec<u8> {
    oneway_testkit::churn::next_data(conn, Duration::from_secs(10)).await
}

/// The code a connection closed with, skipping other events; bounded in time.
async fn closed_code(conn: &mut Connection) -> &'static str {
    let wait = async {
        loop {
            match conn.next_event().await {
                Some(ConnectionEvent::Closed { code, .. }) => return code,
                Some(_) => continue,
                None => panic!("events ended without a close"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("closed within 20 s")
}

/// The code of the listener's next `Refused` event; bounded in time.
async fn next_refusal(listener: &mut Listener) -> &'static str {
    oneway_testkit::stack::next_refusal(listener).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_announces_the_fast_path_and_can_opt_out() {
    let fast = listener(ListenerConfig::loopback()).await;
    let announced = fast
        .token()
        .fast
        .clone()
        .expect("str0m announces a fast path");
    assert!(announced.dtls13);
    let init = announced.fast_start_init.expect("a fast start");
    assert_eq!(oneway_token::FastPath::init_chunk_problem(&init), None);
    let standard = listener(ListenerConfig {
        fast_path: false,
        ..ListenerConfig::loopback()
    })
    .await;
    assert_eq!(standard.token().fast, None);
}

/// One str0m listener serves a fast-start str0m dialer, a standard str0m dialer and a webrtc-rs
/// dialer (which ignores the optional extension) at the same time, each echoing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_and_standard_dialers_share_one_listener() {
    let mut listener = listener(ListenerConfig::loopback()).await;
    let token = listener.token().clone();
    let fast = {
        let token = token.clone();
        tokio::spawn(async move { oneway_str0m::dial(&token, &DialConfig::default()).await })
    };
    let standard = {
        let token = token.clone();
        let config = DialConfig {
            fast_path: false,
            ..Default::default()
        };
        tokio::spawn(async move { oneway_str0m::dial(&token, &config).await })
    };
    let webrtc = {
        let token = token.clone();
        tokio::spawn(async move {
            oneway_webrtc::dial(&token, &oneway_webrtc::DialConfig::default()).await
        })
    };
    let mut accepted = Vec::new();
    let mut echoes = Vec::new();
    for _ in 0..3 {
        let conn = accept(&mut listener).await;
        accepted.push(conn.info().fast_start);
        echoes.push(echo(conn));
    }
    accepted.sort();
    assert_eq!(
        accepted,
        vec![false, false, true],
        "one fast start among three"
    );
    for (name, dialer, fast_start) in [
        ("str0m fast", fast, true),
        ("str0m standard", standard, false),
        ("webrtc-rs", webrtc, false),
    ] {
        let mut conn = dialer.await.expect("task").expect(name);
        assert_eq!(conn.info().fast_start, fast_start, "{name}");
        let channel = conn.open_channel("data").await.expect("open");
        conn.send(channel, name.as_bytes()).await.expect("send");
        assert_eq!(next_data(&mut conn).await, name.as_bytes(), "{name}");
    }
}

/// With `early_data`, `dial` returns before the listener's proof (no `authenticated` time yet)
/// and the first message leaves with the dialer's proof; the echo still comes back, and several
/// channels open in order without DCEP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_data_leaves_before_the_listener_proof() {
    let mut listener = listener(ListenerConfig::loopback()).await;
    let token = listener.token().clone();
    let config = DialConfig {
        early_data: true,
        ..Default::default()
    };
    let dialer = tokio::spawn(async move { oneway_str0m::dial(&token, &config).await });
    let accepted = accept(&mut listener).await;
    let _echo = echo(accepted);
    let mut conn = dialer.await.expect("task").expect("dial");
    assert!(conn.info().fast_start);
    assert_eq!(
        conn.info().timings.authenticated,
        None,
        "handed over before the listener's proof"
    );
    let mut channels = Vec::new();
    for i in 0..6 {
        channels.push(conn.open_channel(&format!("c{i}")).await.expect("open"));
    }
    for (i, channel) in channels.iter().enumerate() {
        conn.send(*channel, format!("message {i}").as_bytes())
            .await
            .expect("send");
    }
    let mut echoed = Vec::new();
    for _ in 0..channels.len() {
        echoed.push(String::from_utf8(next_data(&mut conn).await).expect("utf-8"));
    }
    echoed.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("message {i}")).collect();
    assert_eq!(echoed, expected);
}

/// A dialer with a wrong proof key that sends early data: the listener refuses it with
/// `auth-failed`, its application never sees the connection or the data, and the dialer's
/// connection closes with the listener's cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_data_with_a_wrong_proof_is_never_delivered() {
    let mut listener = listener(ListenerConfig::loopback()).await;
    let token = listener.token().clone();
    let mut config = DialConfig {
        early_data: true,
        ..Default::default()
    };
    config.dangerous.auth_key = Some([7; 32]);
    let mut conn = oneway_str0m::dial(&token, &config)
        .await
        .expect("handed over early, before the listener judged the proof");
    // The refusal may overtake these on loopback; either way nothing may be delivered
    // (`early_data_waits_for_the_proof` in oneway-str0m checks the same flight exactly).
    if let Ok(channel) = conn.open_channel("sneak").await {
        let _ = conn.send(channel, b"must not arrive").await;
    }
    assert_eq!(next_refusal(&mut listener).await, "auth-failed");
    assert_eq!(closed_code(&mut conn).await, "auth-failed");
    let nothing = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(nothing.is_err(), "no connection reached the application");
    assert_eq!(listener.stats().connections, 0);
}

/// A dialer refused by admission after it sent early data (here: the application's accept
/// queue of 1 is full) gets the listener's cause, and its data never reaches the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_dialer_refused_by_admission_gets_the_cause() {
    let mut listener = listener(ListenerConfig {
        accept_queue: 1,
        ..ListenerConfig::loopback()
    })
    .await;
    let token = listener.token().clone();
    let config = DialConfig {
        early_data: true,
        ..Default::default()
    };
    // Not accepted yet: it fills the queue.
    let first = oneway_str0m::dial(&token, &config).await.expect("first");
    let mut second = oneway_str0m::dial(&token, &config)
        .await
        .expect("handed over early");
    // The refusal may overtake these on loopback; either way nothing may be delivered.
    if let Ok(channel) = second.open_channel("late").await {
        let _ = second.send(channel, b"too late").await;
    }
    assert_eq!(closed_code(&mut second).await, "accept-queue-full");
    let mut accepted = accept(&mut listener).await;
    let nothing = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
    assert!(
        nothing.is_err(),
        "the second dialer never reached the application"
    );
    let stray = tokio::time::timeout(Duration::from_millis(200), accepted.next_event()).await;
    assert!(
        !matches!(stray, Ok(Some(ConnectionEvent::Data { .. }))),
        "no data on the first connection"
    );
    drop(first);
}

/// Checks announcing a fast start with an INIT chunk that is not base64, or not an INIT chunk,
/// or to a listener that offers none: no answer, no engine, and good dialers still connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_fast_start_announcement_gets_no_state() {
    let fast = listener(ListenerConfig::loopback()).await;
    let standard = listener(ListenerConfig {
        fast_path: false,
        ..ListenerConfig::loopback()
    })
    .await;
    // 26 bytes of 0x41 in base64: a well-formed ufrag that is no INIT chunk (type 0x41).
    let not_init = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE";
    for (listener, ufrag, barriers) in [
        (&fast, "not*base64", 1),
        (&fast, not_init, 2),
        // The example INIT chunk cut to 6 bytes (a ufrag, at most 256 characters, cannot carry
        // an oversized one: 192 bytes at most, under the 254 of `spec/token.md` §5.8).
        (&fast, "AQAAGBor", 3),
        (&standard, "AQAAGBorPE0AEAAABAAEAAECAwTAAAAE", 1),
    ] {
        // A fresh address each time: a barrier's engine owns its prober's 5-tuple (§4.3 step 1).
        let prober = Prober::bind([127, 0, 0, 1]);
        let to = listener.local_addrs()[0];
        let keys = listener.token().derive();
        let (check, id) = fast_start_check(&keys, &keys.listener_pwd, ufrag);
        prober.send(to, &check);
        let others = barrier(&prober, listener);
        assert!(
            others.iter().all(|d| trans_id(d) != Some(id)),
            "{ufrag}: no answer"
        );
        assert_eq!(
            listener.stats().pending,
            barriers,
            "{ufrag}: only the barriers' engines"
        );
    }
    // A dialer that takes a fast start the listener does not offer (the extension copied
    // from another token) gets no answer at all.
    let mut forged = standard.token().clone();
    forged.fast = fast.token().fast.clone();
    let config = DialConfig {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let err = oneway_str0m::dial(&forged, &config)
        .await
        .expect_err("no answer");
    assert_eq!(err.code(), "ice-timeout", "{err}");
}
