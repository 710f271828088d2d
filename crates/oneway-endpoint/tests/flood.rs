//! A bounded flood against the listener of each stack while legitimate dialers connect
//! (`spec/security.md` §4), one body run over the str0m and webrtc-rs engines, with the
//! generators of `oneway_testkit::flood`: random STUN with unknown USERNAMEs, USERNAMEs with the real token
//! ufrag but bad MESSAGE-INTEGRITY, and DTLS garbage, at about [`RATE`] datagrams/s from three
//! other loopback addresses, for [`SECS`] s (`ONEWAY_FLOOD_SECS` overrides). The dialers must
//! still connect, the listener must create no state for the flood, the per-source limit must
//! verify exactly its burst for the bad-integrity source (no refill here), and memory must stay
//! bounded. Prints the flood rate, the connect times with and without the flood, the limiter's
//! counts and the process's RSS.
//!
//! The flood, the dialers and the listener share this process, so the RSS figures bound the
//! listener's from above. The floods of the two stacks run one after the other, in one test,
//! so neither counts the other's memory. The full run (`ONEWAY_FLOOD_SECS=10`) is `ci/flood.sh`.

mod support;

use std::time::{Duration, Instant};

use oneway_core::admission::SourceRateLimit;
use oneway_endpoint::{
    Connection, DialConfig, Listener, ListenerConfig, ListenerEvent, Stack, dial,
};
use oneway_testkit::stack::{Str0m, WebrtcRs};
use support::flood::{Flood, median, proc_kb};
use support::{Prober, barrier, dialer_check, init_plain_tracing, send_counted};

/// Datagrams per second the flood aims at (all three kinds together).
const RATE: u64 = 10_000;
/// Default flood length: short, for CI on two cores.
const SECS: u64 = 3;

/// A loopback listener with per-source rate limit `limit`.
async fn limited_listener<L: Stack>(limit: &SourceRateLimit) -> Listener<L> {
    Listener::bind(ListenerConfig {
        source_rate_limit: limit.clone(),
        ..ListenerConfig::loopback()
    })
    .await
    .expect("bind")
}

/// One dial to `listener`; returns the time it took and both ends.
async fn timed_connect<L: Stack>(listener: &mut Listener<L>) -> (Duration, Connection, Connection) {
    let token = listener.token().clone();
    let start = Instant::now();
    let dialer = tokio::spawn(async move { dial(&token, &DialConfig::<L>::default()).await });
    let accepted = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("accepted within 15 s")
        .expect("listener running");
    let conn = dialer
        .await
        .expect("task")
        .expect("the legitimate dialer connects");
    (start.elapsed(), conn, accepted)
}

/// Both stacks' listeners, one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_does_not_stop_a_legitimate_dialer() {
    init_plain_tracing();
    flood::<Str0m>().await;
    flood::<WebrtcRs>().await;
}

async fn flood<L: Stack>() {
    let name = L::NAME;
    let duration = Duration::from_secs(
        std::env::var("ONEWAY_FLOOD_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(SECS),
    );
    // No refill: the bad-integrity source gets exactly its burst verified, whatever the timing.
    let limit = SourceRateLimit {
        per_second: 0,
        ..SourceRateLimit::default()
    };
    let mut listener = limited_listener::<L>(&limit).await;
    let to = listener.local_addrs()[0];
    let mut kept = Vec::new();

    // Connect time without the flood (the first dial also warms up the process).
    let mut quiet = Vec::new();
    for _ in 0..3 {
        let (t, a, b) = timed_connect(&mut listener).await;
        quiet.push(t);
        kept.push((a, b));
    }
    quiet.remove(0);
    let before = listener.stats();
    let rss_before = proc_kb("VmRSS");

    let flood = Flood::start(to, listener.token(), RATE);
    // Legitimate dials under the flood, one after another until it ends (at least one).
    tokio::time::sleep(duration / 5).await;
    let mut flooded = Vec::new();
    while flooded.is_empty() || flood.elapsed() + Duration::from_millis(500) < duration {
        let (t, a, b) = timed_connect(&mut listener).await;
        flooded.push(t);
        kept.push((a, b));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(duration.saturating_sub(flood.elapsed())).await;
    let report = flood.stop();

    // Everything sent has been handled once a genuine check from a new source is answered.
    let prober = Prober::bind([127, 0, 0, 1]);
    let answers = barrier(&prober, &listener);
    assert!(answers.is_empty(), "the flood got no response: {answers:?}");
    let after = listener.stats();
    let legit = kept.len();
    assert_eq!(
        after.engines,
        legit + 1,
        "only the legitimate dialers and the barrier hold engines: {after:?}"
    );
    assert_eq!(after.connections, legit, "{after:?}");
    assert_eq!(after.pending, 1, "the barrier only: {after:?}");
    // Only the bad-integrity source is ever charged; it had exactly its burst verified.
    let integrity_failures = after.dropped_bad_integrity - before.dropped_bad_integrity;
    let rate_limited = after.dropped_rate_limited - before.dropped_rate_limited;
    let unknown = after.dropped_unknown_token - before.dropped_unknown_token;
    let garbage = after.dropped_not_a_check - before.dropped_not_a_check;
    assert_eq!(integrity_failures, u64::from(limit.burst), "{after:?}");
    assert_eq!(after.limited_sources, 1, "{after:?}");
    assert!(rate_limited > 0, "the per-source limit dropped checks");
    assert!(
        integrity_failures + rate_limited <= report.sent[1],
        "no more bad-integrity checks counted than sent: {after:?} {report:?}"
    );
    assert!(unknown <= report.sent[0] && garbage <= report.sent[2]);
    let growth_kb = report.rss_peak_kb.saturating_sub(rss_before);
    assert!(
        growth_kb < 64 * 1024,
        "RSS grew by {growth_kb} kB during the flood: unbounded state?"
    );
    eprintln!(
        "{name} flood: {} datagrams in {:.2} s = {:.0}/s (unknown {}, bad integrity {}, DTLS garbage {})",
        report.total(),
        report.elapsed.as_secs_f64(),
        report.rate(),
        report.sent[0],
        report.sent[1],
        report.sent[2],
    );
    eprintln!(
        "{name} flood: listener counted {unknown} unknown-token, {garbage} not-a-check, {integrity_failures} bad-integrity verified (burst {}), {rate_limited} rate-limited unverified",
        limit.burst
    );
    eprintln!(
        "{name} flood: legitimate connect median {:?} without the flood ({} dials), {:?} under it ({} dials, max {:?}), ratio {:.2}",
        median(quiet.clone()),
        quiet.len(),
        median(flooded.clone()),
        flooded.len(),
        flooded.iter().max().copied().unwrap_or_default(),
        median(flooded).as_secs_f64() / median(quiet).as_secs_f64()
    );
    eprintln!(
        "{name} flood: RSS {rss_before} kB before, peak {} kB during (+{growth_kb} kB), {} kB after; process VmHWM {} kB",
        report.rss_peak_kb,
        proc_kb("VmRSS"),
        proc_kb("VmHWM")
    );
    eprintln!("{name} flood: listener state after: {after:?}");
}

/// The limiter, deterministically: with no refill, one source has exactly `burst` failed
/// checks verified and every further check (even a genuine one) dropped unverified, while other
/// sources are unaffected.
async fn limiter_verifies_exactly_its_burst_per_source<L: Stack>() {
    init_plain_tracing();
    const SENT: usize = 500;
    let limit = SourceRateLimit {
        per_second: 0,
        burst: 50,
        ..SourceRateLimit::default()
    };
    let mut listener = limited_listener::<L>(&limit).await;
    let to = listener.local_addrs()[0];
    let keys = listener.token().derive();
    let attacker = Prober::bind([127, 0, 0, 5]);
    let dropped = || {
        let s = listener.stats();
        s.dropped_bad_integrity + s.dropped_rate_limited
    };
    send_counted(
        &attacker,
        to,
        SENT,
        || dialer_check(&keys, &support::ice_string(24)).0,
        dropped,
    );
    // A genuine check from the limited source is dropped unverified too.
    send_counted(
        &attacker,
        to,
        1,
        || dialer_check(&keys, &keys.listener_pwd).0,
        dropped,
    );
    let elsewhere = Prober::bind([127, 0, 0, 1]);
    assert!(barrier(&elsewhere, &listener).is_empty());
    let stats = listener.stats();
    assert_eq!(
        (stats.dropped_bad_integrity, stats.dropped_rate_limited),
        (
            u64::from(limit.burst),
            (SENT + 1) as u64 - u64::from(limit.burst)
        ),
        "{stats:?}"
    );
    assert_eq!(stats.limited_sources, 1, "{stats:?}");
    assert_eq!(
        attacker.drain().len(),
        0,
        "the limited source got no answer"
    );
    assert_eq!((stats.engines, stats.pending), (1, 1), "the barrier only");
    // A legitimate dialer from another source still connects.
    let (t, _a, _b) = timed_connect(&mut listener).await;
    eprintln!(
        "{} limiter: {SENT} bad-integrity checks + 1 genuine from one source: {} verified, {} dropped unverified; a dialer from another source connected in {t:?}",
        L::NAME,
        stats.dropped_bad_integrity,
        stats.dropped_rate_limited
    );
}

/// The limiter's table, deterministically: with room for [`MAX_SOURCES`] sources, the first
/// ones to fail are tracked and cut off after their burst; later sources find the table full
/// of active sources and are verified untracked (fail open: a flood from many addresses cannot
/// grow the table or lock out other dialers).
async fn limiter_table_stays_bounded_across_many_sources<L: Stack>() {
    init_plain_tracing();
    const MAX_SOURCES: usize = 16;
    const SOURCES: usize = 64;
    const PER_SOURCE: u64 = 10;
    let limit = SourceRateLimit {
        per_second: 0,
        burst: 5,
        max_sources: MAX_SOURCES,
    };
    let listener = limited_listener::<L>(&limit).await;
    let to = listener.local_addrs()[0];
    let keys = listener.token().derive();
    let dropped = || {
        let s = listener.stats();
        s.dropped_bad_integrity + s.dropped_rate_limited
    };
    for i in 0..SOURCES {
        let attacker = Prober::bind([127, 0, 1, 1 + i as u8]);
        send_counted(
            &attacker,
            to,
            PER_SOURCE as usize,
            || dialer_check(&keys, &support::ice_string(24)).0,
            dropped,
        );
    }
    assert!(barrier(&Prober::bind([127, 0, 0, 1]), &listener).is_empty());
    let stats = listener.stats();
    let burst = u64::from(limit.burst);
    let tracked = MAX_SOURCES as u64;
    let untracked = (SOURCES - MAX_SOURCES) as u64;
    assert_eq!(stats.limited_sources, MAX_SOURCES, "{stats:?}");
    assert_eq!(
        (stats.dropped_bad_integrity, stats.dropped_rate_limited),
        (
            tracked * burst + untracked * PER_SOURCE,
            tracked * (PER_SOURCE - burst)
        ),
        "{stats:?}"
    );
    assert_eq!((stats.engines, stats.pending), (1, 1), "the barrier only");
    eprintln!(
        "{} limiter: {SOURCES} sources x {PER_SOURCE} bad checks, table of {MAX_SOURCES}: {} tracked, {} verified, {} dropped unverified",
        L::NAME,
        stats.limited_sources,
        stats.dropped_bad_integrity,
        stats.dropped_rate_limited
    );
}

/// Garbage on an admitted 5-tuple goes to that dialer's engine (`rtc`), not through the demux:
/// empty and one-byte datagrams, DTLS records of every content type with random bodies, STUN
/// headers with random attributes, RTP-looking and random bytes. The engine may refuse them
/// but the listener must keep serving, and the engine must be reaped by the pending timeout.
async fn garbage_on_an_admitted_address_does_not_break_the_listener<L: Stack>() {
    use rand::{Rng, RngCore};
    init_plain_tracing();
    const GARBAGE: usize = 3000;
    let mut listener = Listener::<L>::bind(ListenerConfig {
        limits: oneway_core::AdmissionLimits {
            pending_timeout: Duration::from_millis(1500),
            ..Default::default()
        },
        ..ListenerConfig::loopback()
    })
    .await
    .expect("bind");
    let to = listener.local_addrs()[0];
    // The attacker is admitted: it sends a genuine check (it plays a dialer at the STUN level).
    let attacker = Prober::bind([127, 0, 0, 6]);
    assert!(barrier(&attacker, &listener).is_empty());
    let mut rng = rand::rng();
    for i in 0..GARBAGE {
        let len = match i % 4 {
            0 => i % 3,
            1 => rng.random_range(13..200),
            _ => rng.random_range(20..1400),
        };
        let mut d = vec![0u8; len];
        rng.fill_bytes(&mut d);
        if len >= 20 {
            match i % 5 {
                // A DTLS 1.2 record of each content type, with a plausible length.
                0 | 1 => {
                    d[0] = 20 + (i % 4) as u8;
                    d[1] = 0xfe;
                    d[2] = 0xfd;
                    let body = (len - 13) as u16;
                    d[11..13].copy_from_slice(&body.to_be_bytes());
                }
                // A STUN header (magic cookie, length of the rest), random attributes.
                2 => {
                    d[0] &= 0x01;
                    d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                    let body = ((len - 20) & !3) as u16;
                    d[2..4].copy_from_slice(&body.to_be_bytes());
                }
                // RTP/RTCP-looking.
                3 => d[0] = 0x80 | (d[0] & 0x3f),
                _ => {}
            }
        }
        attacker.send(to, &d);
        if i % 200 == 199 {
            // Let the listener keep up (the kernel drops what it cannot queue).
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // The listener still serves: a legitimate dialer connects.
    let (t, _a, _b) = timed_connect(&mut listener).await;
    // The attacker's engine is reaped by the pending timeout (or refused earlier by rtc).
    let deadline = Instant::now() + Duration::from_secs(10);
    while listener.stats().pending > 0 {
        assert!(
            Instant::now() < deadline,
            "the attacker's engine was never reaped: {:?}",
            listener.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = listener.stats();
    assert_eq!(
        (stats.engines, stats.connections, stats.pending),
        (1, 1, 0),
        "{stats:?}"
    );
    let mut refused = Vec::new();
    while let Some(e) = listener.try_next_event() {
        if let ListenerEvent::Refused { peer, code, .. } = e {
            refused.push((peer, code));
        }
    }
    assert!(
        refused.iter().any(|(peer, _)| *peer == attacker.addr()),
        "the attacker's engine was refused: {refused:?}"
    );
    eprintln!(
        "{} garbage: {GARBAGE} datagrams on an admitted address; a dialer connected in {t:?}; attacker refused {refused:?}",
        L::NAME
    );
}

/// A token holder checking in with one dialer's USERNAME from many source addresses (which it
/// may spoof: it needs no answer) must not grow the listener's routing table without bound:
/// each dialer keeps at most `MAX_ADDRESSES_PER_DIALER` addresses, the oldest evicted first.
async fn one_dialer_cannot_grow_the_routes_without_bound<L: Stack>() {
    init_plain_tracing();
    const SOURCES: usize = 200;
    let listener = Listener::<L>::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let to = listener.local_addrs()[0];
    support::one_username_from_many_sources(to, listener.token(), SOURCES);
    assert!(barrier(&Prober::bind([127, 0, 0, 1]), &listener).is_empty());
    let stats = listener.stats();
    // Two engines (the dialer's and the barrier's), each with a ufrag route and its addresses.
    let bound = 2 + 2 * oneway_core::admission::MAX_ADDRESSES_PER_DIALER;
    assert!(
        stats.routes <= bound,
        "{} routes for 2 dialers (at most {bound}): {stats:?}",
        stats.routes
    );
    assert_eq!(stats.engines, 2, "{stats:?}");
    eprintln!(
        "{} routes: one dialer's USERNAME from {SOURCES} addresses: {} routes in all",
        L::NAME,
        stats.routes
    );
}

/// Oversized datagrams (60 kB, far above any WebRTC datagram) sent as fast as possible: the
/// shell reads into fixed buffers (`net::RECV_BUFFER` bytes each, reused), so they cost no
/// memory, create no state, and a legitimate dialer still connects right after.
async fn oversized_datagrams_neither_hold_memory_nor_stop_the_listener<L: Stack>() {
    init_plain_tracing();
    let mut listener = Listener::<L>::bind(ListenerConfig::loopback())
        .await
        .expect("bind");
    let to = listener.local_addrs()[0];
    let attacker = Prober::bind([127, 0, 0, 9]);
    let junk = vec![0x17u8; 60_000];
    let rss_before = proc_kb("VmRSS");
    for _ in 0..2000 {
        attacker.send(to, &junk);
    }
    let (t, _a, _b) = timed_connect(&mut listener).await;
    let stats = listener.stats();
    assert_eq!(stats.engines, 1, "only the legitimate dialer: {stats:?}");
    let growth_kb = proc_kb("VmRSS").saturating_sub(rss_before);
    eprintln!(
        "{}: 2000 datagrams of 60 kB, then a dial in {t:?}; RSS +{growth_kb} kB",
        L::NAME
    );
}

/// The other bodies against each stack's listener.
macro_rules! against {
    ($module:ident, $stack:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn limiter_verifies_exactly_its_burst_per_source() {
                super::limiter_verifies_exactly_its_burst_per_source::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn limiter_table_stays_bounded_across_many_sources() {
                super::limiter_table_stays_bounded_across_many_sources::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn garbage_on_an_admitted_address_does_not_break_the_listener() {
                super::garbage_on_an_admitted_address_does_not_break_the_listener::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn one_dialer_cannot_grow_the_routes_without_bound() {
                super::one_dialer_cannot_grow_the_routes_without_bound::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oversized_datagrams_neither_hold_memory_nor_stop_the_listener() {
                super::oversized_datagrams_neither_hold_memory_nor_stop_the_listener::<$stack>()
                    .await;
            }
        }
    };
}

against!(str0m_listener, Str0m);
against!(webrtc_listener, WebrtcRs);
