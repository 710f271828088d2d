//! Hijack attempts against the listener of every stack (`spec/security.md` §2, §7), one body
//! each, run over the str0m and webrtc-rs engines: a forged secret, a token for another
//! listener, a replayed single-use token, and a proof relayed from another DTLS session. Each is tried [`N`] times at the protocol level (crafted STUN checks from a plain
//! loopback socket, `oneway-testkit`) or, where the attack needs a DTLS session, in complete
//! dials; plus complete dials by both stacks' dialers. Every attempt must be refused with a
//! logged and counted reason, and none may succeed.

mod support;

use std::time::Duration;

use oneway_core::admission::SourceRateLimit;
use oneway_endpoint::{Listener, ListenerConfig, Stack};
use oneway_testkit::stack::{Str0m, WebrtcRs};
use oneway_token::{Secret, Token};
use rand::RngCore;
use support::{
    Prober, barrier, dialer_check, init_tracing, join_all, log_mark, logged_any, logged_since,
    pointed_at, send_counted, take_events, wait_refusals,
};

/// Attempts per attack at the protocol level.
const N: usize = 200;
/// Complete dials per attack and per dialer stack, on top of the `N` protocol-level attempts.
const FULL_DIALS: usize = 2;
/// Relayed-proof attempts: each needs a DTLS session, so each is a complete dial.
const RELAYS: usize = 100;

async fn loopback_listener<L: Stack>(config: ListenerConfig) -> Listener<L> {
    init_tracing();
    Listener::bind(config).await.expect("bind")
}

/// `FULL_DIALS` complete dials of `token` by each stack's dialer, concurrently, each giving up
/// after 1.5 s; returns their error codes (panics if one connects).
async fn full_dials(token: &Token) -> Vec<&'static str> {
    let timeout = Duration::from_millis(1500);
    let webrtc = oneway_webrtc::DialConfig {
        timeout,
        ..Default::default()
    };
    let str0m = oneway_str0m::DialConfig {
        timeout,
        ..Default::default()
    };
    let dials = (0..2 * FULL_DIALS).map(|i| {
        let (token, webrtc, str0m) = (token.clone(), webrtc.clone(), str0m.clone());
        async move {
            if i % 2 == 0 {
                oneway_webrtc::dial(&token, &webrtc).await.map(drop)
            } else {
                oneway_str0m::dial(&token, &str0m).await.map(drop)
            }
        }
    });
    join_all(dials)
        .await
        .into_iter()
        .map(|r| match r {
            Ok(()) => panic!("a hijack attempt connected"),
            Err(e) => e.code(),
        })
        .collect()
}

async fn forged_secret_gets_no_response_and_no_state<L: Stack>() {
    // Every forged check is verified here (the per-source limit would stop verifying after its
    // burst; tests/flood.rs checks that limit).
    let mut listener = loopback_listener::<L>(ListenerConfig {
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

    let forged = || {
        let mut forged = listener.token().clone();
        rand::rng().fill_bytes(&mut forged.secret.0);
        forged.derive()
    };
    // A forged secret derives another token ufrag, listener pwd and auth key. (Paced: each
    // check is sent once the previous one has been counted, so none is lost on the way.)
    send_counted(
        &attacker,
        to,
        N,
        || {
            let keys = forged();
            dialer_check(&keys, &keys.listener_pwd).0
        },
        || listener.stats().dropped_unknown_token,
    );
    // An on-path observer knows the real token ufrag but still has to guess the pwd.
    send_counted(
        &attacker,
        to,
        N,
        || dialer_check(&real, &forged().listener_pwd).0,
        || listener.stats().dropped_bad_integrity,
    );
    let answers = barrier(&attacker, &listener);
    assert_eq!(answers.len(), 0, "no forged check got any response");
    let stats = listener.stats();
    assert_eq!(
        stats.engines, 1,
        "state only for the genuine barrier check: {stats:?}"
    );
    let events = take_events(&mut listener);
    assert_eq!(events.admitted, 1, "{events:?}");
    assert_eq!(
        (stats.dropped_unknown_token, stats.dropped_bad_integrity),
        (N as u64, N as u64),
        "{stats:?}"
    );
    assert_eq!(
        logged_any(mark, &[&["code=unknown-token ", &source]]),
        N,
        "each unknown ufrag logged"
    );
    assert_eq!(
        logged_any(mark, &[&["code=bad-integrity ", &source]]),
        N,
        "each bad integrity logged"
    );

    // Complete dials with a forged secret, by both stacks, time out in ICE: no answer.
    let mut forged = listener.token().clone();
    forged.secret = Secret([0x55; 16]);
    let codes = full_dials(&forged).await;
    assert_eq!(codes, vec!["ice-timeout"; 2 * FULL_DIALS]);
    let events = take_events(&mut listener);
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    let after = listener.stats();
    assert_eq!(after.engines, 1, "{after:?}");
    eprintln!(
        "{} listener, forged secret: {} protocol-level attempts + {} dials (webrtc-rs and str0m dialers), 0 answered, 0 admitted; counted: {after:?}",
        L::NAME,
        2 * N,
        2 * FULL_DIALS
    );
}

async fn token_for_another_listener_is_refused<L: Stack>() {
    let mut listener = loopback_listener::<L>(ListenerConfig::loopback()).await;
    // The other listener is a str0m one: tokens are stack-independent.
    let mut other = oneway_str0m::Listener::bind(oneway_str0m::ListenerConfig::loopback())
        .await
        .expect("bind");
    let to = listener.local_addrs()[0];
    let theirs = other.token().derive();
    let attacker = Prober::bind([127, 0, 0, 1]);
    let source = format!("source={} ", attacker.addr());
    let mark = log_mark();

    send_counted(
        &attacker,
        to,
        N,
        || dialer_check(&theirs, &theirs.listener_pwd).0,
        || listener.stats().dropped_unknown_token,
    );
    assert_eq!(barrier(&attacker, &listener).len(), 0, "no response");
    let stats = listener.stats();
    assert_eq!(stats.engines, 1, "only the barrier's engine: {stats:?}");
    assert_eq!(stats.dropped_unknown_token, N as u64, "{stats:?}");
    assert_eq!(take_events(&mut listener).admitted, 1);
    assert_eq!(logged_since(mark, &["code=unknown-token ", &source]), N);

    // The other listener's token, aimed at this listener's address, in complete dials.
    let misdirected = pointed_at(other.token(), to);
    let codes = full_dials(&misdirected).await;
    assert_eq!(codes, vec!["ice-timeout"; 2 * FULL_DIALS]);
    let events = take_events(&mut listener);
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    // The same token works where it belongs (the attempts above could have succeeded).
    let token = other.token().clone();
    let ok = tokio::spawn(async move {
        oneway_endpoint::dial(&token, &oneway_endpoint::DialConfig::<L>::default()).await
    });
    tokio::time::timeout(Duration::from_secs(10), other.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    ok.await.expect("task").expect("the right listener accepts");
    eprintln!(
        "{} listener, another listener's token: {N} checks + {} dials, 0 answered, 0 admitted",
        L::NAME,
        2 * FULL_DIALS
    );
}

async fn replayed_single_use_token_is_refused<L: Stack>() {
    let mut listener = loopback_listener::<L>(ListenerConfig {
        single_use: true,
        ..ListenerConfig::loopback()
    })
    .await;
    let to = listener.local_addrs()[0];
    let keys = listener.token().derive();
    let token = listener.token().clone();
    // The first dialer uses the token.
    let first = tokio::spawn(async move {
        oneway_endpoint::dial(&token, &oneway_endpoint::DialConfig::<L>::default()).await
    });
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    let _first = first.await.expect("task").expect("first dialer connects");
    let mut events = take_events(&mut listener);

    // Genuine checks (right ufrag, right integrity) from fresh dialers, after the token was used.
    let attacker = Prober::bind([127, 0, 0, 1]);
    let source = format!("peer={} ", attacker.addr());
    let mark = log_mark();
    // Paced: each check is sent once the previous one's refusal has arrived (re-sent if it was
    // lost on the way), so exactly N reach the listener.
    for i in 1..=N {
        let mut tries = 0;
        while events.refused_with("token-used") < i {
            tries += 1;
            assert!(tries <= 5, "check {i} never refused");
            attacker.send(to, &dialer_check(&keys, &keys.listener_pwd).0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while events.refused_with("token-used") < i {
                match tokio::time::timeout_at(deadline, listener.next_event()).await {
                    Ok(Some(e)) => events.add(e),
                    Ok(None) => panic!("listener stopped"),
                    Err(_) => break,
                }
            }
        }
    }
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

    // Complete dials replaying the used token, by both stacks.
    let codes = full_dials(listener.token()).await;
    assert_eq!(codes, vec!["ice-timeout"; 2 * FULL_DIALS]);
    let mut events = take_events(&mut listener);
    wait_refusals(
        &mut listener,
        &mut events,
        "token-used",
        2 * FULL_DIALS,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        (events.admitted, events.authenticated),
        (0, 0),
        "{events:?}"
    );
    eprintln!(
        "{} listener, replayed single-use token: {N} checks + {} dials, 0 answered, 0 admitted",
        L::NAME,
        2 * FULL_DIALS
    );
}

/// The relay is a str0m dialer: cross-stack, as a relay would be.
async fn proof_relayed_from_another_dtls_session_is_refused<L: Stack>() {
    use oneway_str0m::DialConfig;
    let mut listener = loopback_listener::<L>(ListenerConfig::loopback()).await;
    let token = listener.token().clone();
    let keys = token.derive();
    let provider = str0m::crypto::from_feature_flags();
    let genuine_cert = provider.dtls_provider.generate_certificate().expect("cert");
    let relay_cert = provider.dtls_provider.generate_certificate().expect("cert");

    // The genuine dialer's proof names its own certificate, and it works in its own session.
    let sha256 = |der: &[u8]| -> [u8; 32] {
        <oneway_str0m::Str0m as Stack>::fingerprint(&str0m::config::DtlsCert {
            certificate: der.to_vec(),
            private_key: Vec::new(),
        })
        .expect("fingerprint")
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
        tokio::spawn(async move { oneway_str0m::dial(&token, &genuine).await })
    };
    let _accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("accepted in time")
        .expect("listener running");
    let _genuine = dialer
        .await
        .expect("task")
        .expect("genuine dialer connects");
    let mut events = take_events(&mut listener);
    let mark = log_mark();

    // A relay terminates DTLS itself (with its own certificate) and replays that proof.
    let mut relay = DialConfig {
        certificate: Some(relay_cert),
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    relay.dangerous.relayed_proof = Some(genuine_mac);
    let mut codes = Vec::new();
    for _ in 0..RELAYS / 10 {
        let batch = (0..10).map(|_| {
            let (token, relay) = (token.clone(), relay.clone());
            async move { oneway_str0m::dial(&token, &relay).await }
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
    wait_refusals(
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
                "code=auth-failed ",
                "role=Listener ",
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
    eprintln!(
        "{} listener, relayed proof: {RELAYS} complete dials, 0 authenticated",
        L::NAME
    );
}

/// Every body against each stack's listener.
macro_rules! against {
    ($module:ident, $stack:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forged_secret_gets_no_response_and_no_state() {
                super::forged_secret_gets_no_response_and_no_state::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn token_for_another_listener_is_refused() {
                super::token_for_another_listener_is_refused::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn replayed_single_use_token_is_refused() {
                super::replayed_single_use_token_is_refused::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn proof_relayed_from_another_dtls_session_is_refused() {
                super::proof_relayed_from_another_dtls_session_is_refused::<$stack>().await;
            }
        }
    };
}

against!(str0m_listener, Str0m);
against!(webrtc_listener, WebrtcRs);
