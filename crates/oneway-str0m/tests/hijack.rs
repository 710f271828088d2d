//! Hijack attempts against a str0m listener (`spec/security.md` §2, §7): a forged secret, a
//! token for another listener, a replayed single-use token, and a proof relayed from another
//! DTLS session. Each is tried [`N`] times at the protocol level (crafted STUN checks from a plain
//! loopback socket, or full dials where the attack needs a DTLS session), plus a few complete
//! dials; every attempt must be refused with a logged reason, and none may succeed.

mod support;

use std::time::Duration;

use oneway_core::admission::SourceRateLimit;
use oneway_str0m::{DialConfig, Listener, ListenerConfig, dial};
use oneway_token::Secret;
use rand::RngCore;
use support::{
    Prober, barrier, dialer_check, init_tracing, join_all, log_mark, logged_any, logged_since,
    pointed_at,
};

/// Attempts per attack at the protocol level.
const N: usize = 200;
/// Complete dials per attack, on top of the `N` protocol-level attempts.
const FULL_DIALS: usize = 3;
/// Relayed-proof attempts: each needs a DTLS session, so each is a complete dial.
const RELAYS: usize = 100;

async fn loopback_listener(config: ListenerConfig) -> Listener {
    init_tracing();
    Listener::bind(config).await.expect("bind")
}

fn short_dial() -> DialConfig {
    DialConfig {
        timeout: Duration::from_millis(1500),
        ..Default::default()
    }
}

/// `FULL_DIALS` complete dials of `token`, concurrently; returns their error codes.
async fn full_dials(token: &oneway_token::Token, config: &DialConfig) -> Vec<&'static str> {
    let dials = (0..FULL_DIALS).map(|_| {
        let (token, config) = (token.clone(), config.clone());
        async move { dial(&token, &config).await }
    });
    let mut codes = Vec::new();
    for result in join_all(dials).await {
        match result {
            Ok(_) => panic!("a hijack attempt connected"),
            Err(e) => codes.push(e.code()),
        }
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_secret_gets_no_response_and_no_state() {
    // Every forged check is verified here (the per-source limit would stop verifying after its
    // burst; tests/flood.rs checks that limit).
    let mut listener = loopback_listener(ListenerConfig {
        source_rate_limit: SourceRateLimit {
            burst: 10 * N as u32,
            ..Default::default()
        },
        ..ListenerConfig::loopback()
    })
    .await;
    let to = listener.local_addrs()[0];
    let real = listener.token().derive();
    let attacker = Prober::bind([127, 0, 0, 1]);
    let source = format!("source={} ", attacker.addr());
    let mark = log_mark();

    // A forged secret derives another token ufrag, listener pwd and auth key.
    for _ in 0..N {
        let mut forged = listener.token().clone();
        rand::rng().fill_bytes(&mut forged.secret.0);
        let keys = forged.derive();
        attacker.send(to, &dialer_check(&keys, &keys.listener_pwd).0);
    }
    // An on-path observer knows the real token ufrag but still has to guess the pwd.
    for _ in 0..N {
        let mut forged = listener.token().clone();
        rand::rng().fill_bytes(&mut forged.secret.0);
        attacker.send(to, &dialer_check(&real, &forged.derive().listener_pwd).0);
    }
    let answers = barrier(&attacker, &listener);
    assert_eq!(answers.len(), 0, "no forged check got any response");
    let stats = listener.stats();
    assert_eq!(
        stats.engines, 1,
        "state only for the genuine barrier check: {stats:?}"
    );
    let events = support::take_events(&mut listener);
    assert_eq!(events.admitted, 1, "{events:?}");
    assert_eq!(
        (stats.dropped_unknown_token, stats.dropped_bad_integrity),
        (N as u64, N as u64),
        "{stats:?}"
    );
    assert_eq!(
        logged_any(
            mark,
            &[
                &["unknown token", &source],
                &["code=unknown-token ", &source]
            ]
        ),
        N,
        "each unknown ufrag logged"
    );
    assert_eq!(
        logged_any(
            mark,
            &[
                &["MESSAGE-INTEGRITY", &source],
                &["code=bad-integrity ", &source]
            ]
        ),
        N,
        "each bad integrity logged"
    );

    // Complete dials with a forged secret time out in ICE, having had no answer.
    let mut forged = listener.token().clone();
    forged.secret = Secret([0x55; 16]);
    let codes = full_dials(&forged, &short_dial()).await;
    assert_eq!(codes, vec!["ice-timeout"; FULL_DIALS]);
    let events = support::take_events(&mut listener);
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    eprintln!(
        "forged secret: {} protocol-level attempts + {FULL_DIALS} dials, 0 answered, 0 admitted",
        2 * N
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_listener_is_refused() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    let mut other = loopback_listener(ListenerConfig::loopback()).await;
    let to = listener.local_addrs()[0];
    let theirs = other.token().derive();
    let attacker = Prober::bind([127, 0, 0, 1]);
    let source = format!("source={} ", attacker.addr());
    let mark = log_mark();

    for _ in 0..N {
        attacker.send(to, &dialer_check(&theirs, &theirs.listener_pwd).0);
    }
    assert_eq!(barrier(&attacker, &listener).len(), 0, "no response");
    assert_eq!(listener.stats().engines, 1, "only the barrier's engine");
    assert_eq!(support::take_events(&mut listener).admitted, 1);
    assert_eq!(
        logged_any(
            mark,
            &[
                &["unknown token", &source],
                &["code=unknown-token ", &source]
            ]
        ),
        N
    );

    // The other listener's token, aimed at this listener's address, in complete dials.
    let misdirected = pointed_at(other.token(), to);
    let codes = full_dials(&misdirected, &short_dial()).await;
    assert_eq!(codes, vec!["ice-timeout"; FULL_DIALS]);
    let events = support::take_events(&mut listener);
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    // The same token works where it belongs (the attempts above could have succeeded).
    let token = other.token().clone();
    let ok = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
    tokio::time::timeout(Duration::from_secs(10), other.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    ok.await.expect("task").expect("the right listener accepts");
    eprintln!("another listener's token: {N} checks + {FULL_DIALS} dials, 0 answered, 0 admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_single_use_token_is_refused() {
    let mut listener = loopback_listener(ListenerConfig {
        single_use: true,
        ..ListenerConfig::loopback()
    })
    .await;
    let to = listener.local_addrs()[0];
    let keys = listener.token().derive();
    let token = listener.token().clone();
    // The first dialer uses the token.
    let first = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    let _first = first.await.expect("task").expect("first dialer connects");
    let mut events = support::take_events(&mut listener);

    // Genuine checks (right ufrag, right integrity) from fresh dialers, after the token was used.
    let attacker = Prober::bind([127, 0, 0, 1]);
    let source = format!("peer={} ", attacker.addr());
    let mark = log_mark();
    for _ in 0..N {
        attacker.send(to, &dialer_check(&keys, &keys.listener_pwd).0);
    }
    support::wait_refusals(
        &mut listener,
        &mut events,
        "token-used",
        N,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        attacker.drain().len(),
        0,
        "no replayed check got a response"
    );
    assert_eq!(events.authenticated, 1, "only the first dialer: {events:?}");
    let stats = listener.stats();
    assert_eq!((stats.engines, stats.pending), (1, 0), "{stats:?}");
    assert_eq!(
        logged_since(mark, &["dialer refused", "token-used", &source]),
        N
    );

    // Complete dials replaying the used token.
    let codes = full_dials(listener.token(), &short_dial()).await;
    assert_eq!(codes, vec!["ice-timeout"; FULL_DIALS]);
    let mut events = support::take_events(&mut listener);
    support::wait_refusals(
        &mut listener,
        &mut events,
        "token-used",
        FULL_DIALS,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    eprintln!("replayed single-use token: {N} checks + {FULL_DIALS} dials, 0 answered, 0 admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_relayed_from_another_dtls_session_is_refused() {
    let mut listener = loopback_listener(ListenerConfig::loopback()).await;
    let token = listener.token().clone();
    let keys = token.derive();
    let provider = str0m::crypto::from_feature_flags();
    let genuine_cert = provider.dtls_provider.generate_certificate().expect("cert");
    let relay_cert = provider.dtls_provider.generate_certificate().expect("cert");

    // The genuine dialer's proof names its own certificate, and it works in its own session.
    let sha256 = |der: &[u8]| -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(der).into()
    };
    let genuine_mac = oneway_core::proof::compute(
        &keys.auth_key,
        oneway_core::ProofRole::Dialer,
        &token.fingerprint.0,
        &sha256(&genuine_cert.certificate),
    );
    let genuine = DialConfig {
        certificate: Some(genuine_cert),
        ..Default::default()
    };
    let dialer = {
        let token = token.clone();
        tokio::spawn(async move { dial(&token, &genuine).await })
    };
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    let _genuine = dialer
        .await
        .expect("task")
        .expect("genuine dialer connects");
    let mut events = support::take_events(&mut listener);
    let mark = log_mark();

    // A relay terminates DTLS itself (with its own certificate) and replays that proof. It gets
    // through ICE (it sees the genuine dialer's checks), so each attempt is a complete dial.
    let mut relay = DialConfig {
        certificate: Some(relay_cert),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    relay.dangerous.relayed_proof = Some(genuine_mac);
    let mut codes = Vec::new();
    for _ in 0..RELAYS / 10 {
        let batch = (0..10).map(|_| {
            let token = token.clone();
            let relay = relay.clone();
            async move { dial(&token, &relay).await }
        });
        for result in join_all(batch).await {
            match result {
                Ok(_) => panic!("a relayed proof connected"),
                Err(e) => codes.push(e.code()),
            }
        }
    }
    assert_eq!(
        codes,
        vec!["auth-failed"; RELAYS],
        "every relay refused by the listener"
    );
    support::wait_refusals(
        &mut listener,
        &mut events,
        "auth-failed",
        RELAYS,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        events.authenticated, 1,
        "only the genuine dialer: {events:?}"
    );
    assert!(
        logged_since(
            mark,
            &[
                "peer refused",
                "auth-failed",
                "Listener",
                "another DTLS session"
            ]
        ) >= RELAYS,
        "each refusal logged with its reason"
    );
    // Refused engines are gone; only the genuine connection remains. (A check a relay sent just
    // before its refusal reached it may have made a new pending engine: pending state, which the
    // proof timeout reaps.)
    let stats = listener.stats();
    assert_eq!(stats.connections, 1, "{stats:?}");
    assert_eq!(stats.engines, 1 + stats.pending, "{stats:?}");
    eprintln!("relayed proof: {RELAYS} complete dials, 0 authenticated");
}

/// A token holder repeating one dialer's check from many (possibly spoofed) source addresses
/// must not grow the routing table without bound (`MAX_ADDRESSES_PER_DIALER` per dialer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dialer_cannot_grow_the_routes_without_bound() {
    const SOURCES: usize = 200;
    let listener = loopback_listener(ListenerConfig::loopback()).await;
    let to = listener.local_addrs()[0];
    support::one_username_from_many_sources(to, listener.token(), SOURCES);
    assert!(barrier(&Prober::bind([127, 0, 0, 1]), &listener).is_empty());
    let stats = listener.stats();
    // Two engines (the dialer's and the barrier's), each with a ufrag route and its addresses.
    let bound = 2 + 2 * oneway_core::admission::MAX_ADDRESSES_PER_DIALER;
    assert!(stats.routes <= bound, "{stats:?} (at most {bound} routes)");
    assert_eq!(stats.engines, 2, "{stats:?}");
    eprintln!(
        "routes: one dialer's USERNAME from {SOURCES} addresses: {} routes in all",
        stats.routes
    );
}
