//! The reply fallback (`spec/handshake.md` §11) on loopback, for the four native pairs: a
//! dialer whose token candidate is black-holed (as a filtering NAT drops an unsolicited check)
//! shows its reply code; the listener takes it, checks towards the dialer, and the dialer's
//! answer gets in: both ends report the `reply` route. And the listener's bounds
//! (`spec/security.md` §4.1): foreign, replayed, expired, malformed and version-1 codes are
//! refused with their codes and make it send nothing; a taken code makes it send a bounded
//! series; many codes never exceed its rate.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_connection::{Progress, Route};
use oneway_endpoint::reply::dialer_reply;
use oneway_endpoint::{DialConfig, Listener, ListenerConfig, Stack};
use oneway_testkit::stack::{Str0m, WebrtcRs};
use oneway_token::{Candidate, Token};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Longest any step may take (they take milliseconds to a few seconds; this stops a hang).
const STEP: Duration = Duration::from_secs(20);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The listener's token with its candidates moved to a port where a socket reads and drops
/// every datagram: the dialer cannot reach the listener one-way. The socket is returned so it
/// stays bound.
async fn black_holed(token: &Token) -> (Token, UdpSocket) {
    let hole = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = hole.local_addr().expect("addr").port();
    let mut token = token.clone();
    for c in &mut token.candidates {
        c.port = port;
    }
    (token, hole)
}

/// One pair: listener on `L`, dialer on `D`; the code reaches the listener `delay` after the
/// dialer showed it (as a person carries it).
async fn punched_pair<L: Stack, D: Stack>(delay: Duration) {
    let mut listener = Listener::<L>::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let (token, _hole) = black_holed(listener.token()).await;
    let (progress_tx, mut progress) = mpsc::unbounded_channel();
    let dialer = tokio::spawn(async move {
        let config = DialConfig::<D> {
            timeout: delay + Duration::from_secs(15),
            progress: Some(progress_tx),
            ..Default::default()
        };
        oneway_endpoint::dial(&token, &config).await
    });
    let code = tokio::time::timeout(STEP, async {
        loop {
            match progress.recv().await {
                Some(Progress::ReplyCode { code, candidates }) => {
                    assert!(!candidates.is_empty());
                    return code;
                }
                Some(_) => continue,
                None => panic!("the dialer ended without a reply code"),
            }
        }
    })
    .await
    .expect("a reply code within 20 s");
    assert!(code.starts_with("owr2.") && code.len() <= 80, "{code}");
    tokio::time::sleep(delay).await;
    let taken = listener.take_reply(&code).await.expect("taken");
    assert!(!taken.candidates.is_empty());
    let accepted = tokio::time::timeout(STEP, listener.accept())
        .await
        .expect("accepted within 20 s")
        .expect("a connection");
    assert_eq!(accepted.info().route, Route::Reply, "listener's route");
    let dialed = tokio::time::timeout(STEP, dialer)
        .await
        .expect("dialed within 20 s")
        .expect("task")
        .expect("connected");
    assert_eq!(dialed.info().route, Route::Reply, "dialer's route");
    // The taken code cannot be taken again.
    let again = listener.take_reply(&code).await.expect_err("replayed");
    assert!(
        ["reply-replayed", "reply-unneeded"].contains(&again.code()),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_listener_takes_a_str0m_dialers_reply_code() {
    punched_pair::<Str0m, Str0m>(Duration::ZERO).await;
    // A person carries the code: the dialer still answers long after its own checks failed.
    punched_pair::<Str0m, Str0m>(Duration::from_secs(12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_listener_takes_a_webrtc_rs_dialers_reply_code() {
    punched_pair::<Str0m, WebrtcRs>(Duration::ZERO).await;
    // A person carries the code: the dialer still answers half a minute later (after `rtc`'s
    // default 25 s ICE failed timeout, which the webrtc-rs dialer stretches to its dial timeout).
    punched_pair::<Str0m, WebrtcRs>(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_rs_listener_takes_a_str0m_dialers_reply_code() {
    punched_pair::<WebrtcRs, Str0m>(Duration::ZERO).await;
    // A person carries the code: the dialer still answers long after its own checks failed.
    punched_pair::<WebrtcRs, Str0m>(Duration::from_secs(12)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_rs_listener_takes_a_webrtc_rs_dialers_reply_code() {
    punched_pair::<WebrtcRs, WebrtcRs>(Duration::ZERO).await;
    // A person carries the code: the dialer still answers half a minute later (after `rtc`'s
    // default 25 s ICE failed timeout, which the webrtc-rs dialer stretches to its dial timeout).
    punched_pair::<WebrtcRs, WebrtcRs>(Duration::from_secs(30)).await;
}

/// `reply: relayed` (`spec/handshake.md` §11.1): a dialer that offers only its TURN relay
/// (coturn on loopback; skipped without `turnserver`) puts the relayed address in its code; the
/// listener's check reaches it through the relay (the dialer's permission covers the token's
/// address), and the connection runs over the relay with the `reply` route at both ends.
async fn relayed_pair<D: Stack>() {
    use oneway_testkit::coturn::{CREDENTIALS, Coturn, RELAY_PORTS};
    oneway_testkit::init_tracing();
    let Some(coturn) = Coturn::start() else {
        return;
    };
    let mut listener = Listener::<Str0m>::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let (token, _hole) = black_holed(listener.token()).await;
    let (progress_tx, mut progress) = mpsc::unbounded_channel();
    let dialer = tokio::spawn(async move {
        let config = DialConfig::<D> {
            timeout: Duration::from_secs(15),
            progress: Some(progress_tx),
            turn: Some(oneway_endpoint::TurnServer {
                addr: coturn.addr,
                credentials: oneway_endpoint::TurnCredentials {
                    username: CREDENTIALS.0.to_owned(),
                    password: CREDENTIALS.1.to_owned(),
                },
            }),
            relay_only: true,
            ..Default::default()
        };
        let dialed = oneway_endpoint::dial(&token, &config).await;
        drop(coturn);
        dialed
    });
    let (code, candidates) = tokio::time::timeout(STEP, async {
        loop {
            match progress.recv().await {
                Some(Progress::ReplyCode { code, candidates }) => return (code, candidates),
                Some(_) => continue,
                None => panic!("the dialer ended without a reply code"),
            }
        }
    })
    .await
    .expect("a reply code within 20 s");
    assert!(
        candidates.len() == 1 && candidates[0].starts_with("relay udp 127.0.0.1:"),
        "{candidates:?}"
    );
    listener.take_reply(&code).await.expect("taken");
    let accepted = tokio::time::timeout(STEP, listener.accept())
        .await
        .expect("accepted within 20 s")
        .expect("a connection");
    assert_eq!(accepted.info().route, Route::Reply, "listener's route");
    let dialed = tokio::time::timeout(STEP, dialer)
        .await
        .expect("dialed within 20 s")
        .expect("task")
        .expect("connected");
    assert_eq!(dialed.info().route, Route::Reply, "dialer's route");
    let (local, _) = dialed.info().selected.expect("a selected pair");
    assert!(
        RELAY_PORTS.contains(&local.port()),
        "the dialer's side is its relayed address: {local}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_str0m_dialers_relay_takes_the_reply_route() {
    relayed_pair::<Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_rs_dialers_relay_takes_the_reply_route() {
    relayed_pair::<WebrtcRs>().await;
}

/// A reply code for `token` naming `targets` (their addresses as host candidates), made
/// `age` seconds ago by a dialer with ufrag `ufrag`.
fn code_for(token: &Token, ufrag: &str, targets: &[SocketAddr], age: u64) -> String {
    let keys = token.derive();
    let pwd = oneway_token::derive::reply_pwd(&keys.reply_key, ufrag);
    let candidates = targets
        .iter()
        .map(|a| Candidate::udp_host(a.ip(), a.port()))
        .collect();
    dialer_reply(
        &keys,
        &(ufrag.to_owned(), pwd),
        false,
        candidates,
        unix_now() - age,
    )
    .to_text(&keys.reply_key)
    .expect("encodes")
}

/// Counts the datagrams `socket` receives within `wait`.
async fn count_received(socket: &UdpSocket, wait: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let until = Instant::now() + wait;
    while let Ok(Ok(_)) = tokio::time::timeout_at(until.into(), socket.recv_from(&mut buf)).await {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_codes_change_nothing_and_a_taken_one_sends_a_bounded_series() {
    let limits = oneway_core::punch::PunchLimits {
        checks_per_candidate: 4,
        max_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let listener = Listener::<Str0m>::bind(ListenerConfig {
        punch_limits: limits.clone(),
        ..ListenerConfig::loopback()
    })
    .await
    .expect("bind");
    let other = Listener::<Str0m>::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let target = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let at = [target.local_addr().expect("addr")];
    let token = listener.token().clone();

    let valid = code_for(&token, "abcd1234", &at, 0);
    let mut damaged = valid.clone().into_bytes();
    let last = damaged.len() - 3;
    damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
    let refusals = [
        (code_for(other.token(), "abcd1234", &at, 0), "reply-foreign"),
        (code_for(&token, "abcd1234", &at, 3600), "reply-expired"),
        (
            String::from_utf8(damaged).expect("ascii"),
            "checksum-mismatch",
        ),
        (valid[..20].to_owned(), "checksum-mismatch"),
        ("owr2.!!".to_owned(), "invalid-character"),
        ("hello".to_owned(), "missing-prefix"),
        ("owr9.AAAA".to_owned(), "unknown-version"),
        (
            "owr1.BBgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                .to_owned(),
            "unknown-version",
        ),
    ];
    for (code, expected) in &refusals {
        let refused = listener.take_reply(code).await.expect_err(code);
        // A truncated code may fail its length or its checksum first; both are named.
        if *expected == "checksum-mismatch" {
            assert!(
                ["checksum-mismatch", "invalid-text-length", "truncated"].contains(&refused.code()),
                "{code}: {refused}"
            );
        } else {
            assert_eq!(refused.code(), *expected, "{code}: {refused}");
        }
    }
    assert_eq!(
        count_received(&target, Duration::from_millis(500)).await,
        0,
        "a refused code makes the listener send nothing"
    );

    let taken = listener.take_reply(&valid).await.expect("taken");
    assert_eq!(taken.dialer_ufrag, "abcd1234");
    let sent = count_received(&target, limits.duration() + Duration::from_secs(1)).await;
    assert_eq!(sent, 4, "one candidate, four checks, then silence");
    assert_eq!(
        listener.take_reply(&valid).await.map_err(|e| e.code()),
        Err("reply-replayed")
    );
    assert_eq!(listener.stats().engines, 0, "no engine without the dialer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_valid_codes_stays_within_the_rate_and_the_active_bound() {
    let limits = oneway_core::punch::PunchLimits {
        rate_per_sec: 20,
        burst: 5,
        ..Default::default()
    };
    let listener = Listener::<Str0m>::bind(ListenerConfig {
        punch_limits: limits.clone(),
        ..ListenerConfig::loopback()
    })
    .await
    .expect("bind");
    let target = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let at = [target.local_addr().expect("addr"); 4];
    let token = listener.token().clone();
    let start = Instant::now();
    let mut busy = 0;
    for n in 0..40 {
        let code = code_for(&token, &format!("flood{n:03}"), &at, 0);
        match listener.take_reply(&code).await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), "reply-busy", "{e}");
                busy += 1;
            }
        }
    }
    assert_eq!(busy, 40 - limits.max_active);
    let window = Duration::from_secs(2);
    let received = count_received(&target, window.saturating_sub(start.elapsed())).await;
    let bound = limits.burst as usize + (limits.rate_per_sec as usize) * 2;
    assert!(
        received <= bound,
        "{received} checks in 2 s > burst {} + 2 s × {}/s",
        limits.burst,
        limits.rate_per_sec
    );
    assert!(
        received >= limits.rate_per_sec as usize,
        "{received}: the rate is used"
    );
}
