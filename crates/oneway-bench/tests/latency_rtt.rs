//! `oneway bench latency --rtt`: every series of both stacks connects through the delaying
//! proxies, and each one pays the emulated round trips (a lower bound, never a timing goal).

use std::time::Duration;

use oneway_bench::latency::{LatencyConfig, Mode, Peer, run};
use oneway_bench::{NoProgress, StackName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_crosses_the_emulated_rtt() {
    let rtt = Duration::from_millis(20);
    let config = LatencyConfig {
        runs: 1,
        warmup: 0,
        timeout: Duration::from_secs(20),
        rtt: Some(rtt),
        browser: None,
    };
    let report = run(&config, StackName::ALL, &mut NoProgress)
        .await
        .expect("latency run");
    assert_eq!(report.rtt_ms, Some(20.0));
    // 2 × 2 one-way pairs, str0m → str0m with the standard handshake, and 2 baselines.
    assert_eq!(report.series.len(), 7);
    for s in &report.series {
        assert!(s.failures.is_empty(), "{}: {:?}", s.label(), s.failures);
        let sample = s.runs.first().expect("one run");
        // ICE, DTLS and the echo each need at least one round trip through the proxy (the
        // fast path: `spec/handshake.md` §5.5); the standard handshake adds SCTP's.
        let fast = s.mode == Mode::OneWay
            && s.listener == Peer::Native(StackName::Str0m)
            && s.dialer == Peer::Native(StackName::Str0m);
        let floor = if fast { 3.0 } else { 4.0 };
        assert!(
            sample.first_echo >= floor * 20.0,
            "{}: first echo after {} ms, less than {floor} emulated RTTs",
            s.label(),
            sample.first_echo
        );
        // A fast-start dialer sends early data: it is handed the connection before the
        // listener's proof, so it records no proof stage.
        if s.mode != Mode::Baseline && !fast {
            assert!(sample.auth.is_some(), "{}: no proof stage", s.label());
        }
    }
    assert_eq!(report.ratios.len(), 5);
}
