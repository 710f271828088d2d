//! `oneway bench latency --rtt`: every series of both stacks connects through the delaying
//! proxies, and each one pays the emulated round trips (a lower bound, never a timing goal).

use std::time::Duration;

use oneway_bench::latency::{LatencyConfig, Mode, run};
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
    // 2 × 2 one-way pairs and 2 baselines.
    assert_eq!(report.series.len(), 6);
    for s in &report.series {
        assert!(s.failures.is_empty(), "{}: {:?}", s.label(), s.failures);
        let sample = s.runs.first().expect("one run");
        // ICE, DTLS, SCTP and the echo each need at least one round trip through the proxy.
        assert!(
            sample.first_echo >= 4.0 * 20.0,
            "{}: first echo after {} ms, less than 4 emulated RTTs",
            s.label(),
            sample.first_echo
        );
        if s.mode == Mode::OneWay {
            assert!(sample.auth.is_some(), "{}: no proof stage", s.label());
        }
    }
    assert_eq!(report.ratios.len(), 4);
}
