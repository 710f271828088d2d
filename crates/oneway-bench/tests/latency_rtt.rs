//! `oneway bench latency --rtt`: every series of both stacks connects through the delaying
//! proxies, and each one pays the emulated round trips (a lower bound, never a timing goal).

use std::time::Duration;

use oneway_bench::latency::{LatencyConfig, Mode, Peer, Profile, Signalling, run};
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
    // 2 × 2 one-way pairs, str0m → str0m with the standard handshake; str0m's baselines:
    // standard and DTLS 1.3 + SNAP, each through memory and the WebSocket relay; webrtc-rs's:
    // standard through memory and the relay.
    assert_eq!(report.series.len(), 11);
    for s in &report.series {
        assert!(s.failures.is_empty(), "{}: {:?}", s.label(), s.failures);
        let sample = s.runs.first().expect("one run");
        // ICE, DTLS, SCTP and the echo each need at least one round trip through the proxy;
        // with DTLS 1.3 and SNAP (the baseline's, or one-way's fast path, `spec/handshake.md`
        // §5.4), ICE, DTLS and the echo; a real signalling server adds one for offer and answer.
        let fast = s.mode == Mode::OneWay
            && s.listener == Peer::Native(StackName::Str0m)
            && s.dialer == Peer::Native(StackName::Str0m);
        let (min_rtts, signalled) = match s.mode {
            Mode::OneWay if fast => (3.0, None),
            Mode::OneWay | Mode::OneWayStandard => (4.0, None),
            Mode::Baseline {
                signalling,
                profile,
            } => {
                let handshake = match profile {
                    Profile::Standard => 4.0,
                    Profile::Dtls13Snap => 3.0,
                };
                match signalling {
                    Signalling::Memory => (handshake, Some(0.0)),
                    Signalling::WebSocket => (handshake + 1.0, Some(20.0)),
                }
            }
        };
        assert!(
            sample.first_echo >= min_rtts * 20.0,
            "{}: first echo after {} ms, less than {min_rtts} emulated RTTs",
            s.label(),
            sample.first_echo
        );
        if let Some(min) = signalled {
            let at = sample.signalled.expect("a baseline reports its signalling");
            assert!(at >= min, "{}: answer after {at} ms", s.label());
        }
        // A fast-start dialer sends early data: it is handed the connection before the
        // listener's proof, so it records no proof stage.
        if matches!(s.mode, Mode::OneWay | Mode::OneWayStandard) && !fast {
            assert!(sample.auth.is_some(), "{}: no proof stage", s.label());
        }
        let budget = s.budget.expect("a stage budget at an emulated RTT");
        assert!((budget.total - sample.first_echo / 20.0).abs() < 1e-9);
    }
    // One-way (and str0m's standard-handshake one-way) against every baseline of the dialer's
    // stack: 3 × 4 (str0m) + 2 × 2 (webrtc-rs).
    assert_eq!(report.ratios.len(), 16);
}
