//! Markdown tables of each report.

use std::fmt::Write as _;

use crate::capacity::CapacityReport;
use crate::latency::LatencyReport;
use crate::throughput::ThroughputReport;
use crate::tokens::TokenReport;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// Latency: one row per series (median stage times, p50/p95 first echo), the ratios, and with
/// an emulated RTT the stage budget in round trips.
pub fn latency(report: &LatencyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Series | Runs (failed) | Signalling | ICE | DTLS | Channel | Auth | First echo p50 | p95 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for s in &report.series {
        let m = &s.median_stages;
        let (p50, p95) = s
            .first_echo
            .map_or((None, None), |f| (Some(f.p50), Some(f.p95)));
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} |",
            s.label(),
            s.runs.len(),
            s.failures.len(),
            if !s.mode.is_baseline() {
                "n/a".to_owned()
            } else {
                opt(m.signalled)
            },
            opt(m.ice),
            opt(m.dtls),
            opt(m.channel),
            if s.mode.is_baseline() {
                "n/a".to_owned()
            } else {
                opt(m.auth)
            },
            opt(p50),
            opt(p95)
        );
    }
    let _ = writeln!(
        out,
        "\nTimes in ms from token decoded (one-way) or offer created (baselines); stage columns are medians. Signalling: the answer reached the offerer.\n"
    );
    for r in &report.ratios {
        let _ = writeln!(out, "- {} / {}: **{:.2}×**", r.one_way, r.baseline, r.ratio);
    }
    if let Some(rtt) = report.rtt_ms.filter(|rtt| *rtt > 0.0) {
        let _ = writeln!(
            out,
            "
Emulated RTT {rtt:.0} ms (a delaying proxy on loopback in every path, both modes; the WebSocket relay a quarter RTT from each peer). Stage budget in round trips, from the medians (each stage from the end of the latest earlier one):

| Series | Signalling | ICE | DTLS | SCTP / channel | Proof | Echo | First echo |
|---|---|---|---|---|---|---|---|"
        );
        let rtts = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
        for s in &report.series {
            if let Some(b) = s.budget {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {:.1} | **{:.1}** |",
                    s.label(),
                    rtts(b.signalling),
                    rtts(b.ice),
                    rtts(b.dtls),
                    rtts(b.channel),
                    rtts(b.proof),
                    b.echo,
                    b.total
                );
            }
        }
    }
    if let Some(version) = &report.browser {
        let _ = writeln!(
            out,
            "
Browser: {version}."
        );
    }
    out
}

/// Capacity: one row per burst.
pub fn capacity(report: &CapacityReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Dialers | Connected | Accepted | Burst | Handshakes/s | Connect p50 | p99 | KiB/connection | Errors |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for p in &report.points {
        let (p50, p99) = p
            .connect_ms
            .map_or((None, None), |s| (Some(s.p50), Some(s.p99)));
        let errors = if p.errors.is_empty() {
            "none".to_owned()
        } else {
            p.errors
                .iter()
                .map(|(code, n)| format!("{code} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} ms | {:.0} | {} ms | {} ms | {} | {} |",
            p.dialers,
            p.connected,
            p.accepted,
            p.burst_ms,
            p.handshakes_per_second,
            opt(p50),
            opt(p99),
            p.kib_per_connection
                .map_or_else(|| "–".to_owned(), |k| format!("{k:.0}")),
            errors
        );
    }
    let _ = writeln!(
        out,
        "\nFirst burst with a failure: {}. Listener and dialers share one process and its cores.",
        report
            .first_failing
            .map_or_else(|| "none".to_owned(), |n| n.to_string())
    );
    out
}

/// Throughput: one row per round.
pub fn throughput(report: &ThroughputReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Pair | Connections | Message | Bytes | Seconds | MB/s |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for p in &report.points {
        let _ = writeln!(
            out,
            "| {} → {} | {} | {} KiB | {} MiB | {:.2} | {:.1} |",
            p.dialer,
            p.listener,
            p.connections,
            p.message_size >> 10,
            p.bytes >> 20,
            p.seconds,
            p.megabytes_per_second
        );
    }
    out
}

/// Token sizes and codec rates.
pub fn tokens(report: &TokenReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Token | Profile | Bytes | `ow1.` chars | `OW1.` chars | QR version (M) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for s in &report.sizes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            s.shape, s.profile, s.bytes, s.text_chars, s.qr_chars, s.qr_version
        );
    }
    let _ = writeln!(
        out,
        "\n| Token | Decode binary /s | Decode text /s | Encode text /s |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    for r in &report.rates {
        let _ = writeln!(
            out,
            "| {} | {:.2} M | {:.2} M | {:.2} M |",
            r.shape,
            r.decode_binary_per_second / 1e6,
            r.decode_text_per_second / 1e6,
            r.encode_text_per_second / 1e6
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StackName;
    use crate::latency::{
        LatencyRatio, LatencySeries, Mode, Peer, Profile, Signalling, StageBudget, StageSample,
    };

    fn series(listener: Peer, dialer: Peer, mode: Mode, echoes: &[f64]) -> LatencySeries {
        let mut s = LatencySeries::new(listener, dialer, mode);
        for (i, &first_echo) in echoes.iter().enumerate() {
            let i = i as f64;
            s.runs.push(StageSample {
                signalled: match mode {
                    Mode::Baseline {
                        signalling: Signalling::WebSocket,
                        ..
                    } => Some(first_echo * 0.1 + i),
                    Mode::Baseline { .. } => Some(0.1),
                    Mode::OneWay | Mode::OneWayStandard => None,
                },
                ice: Some(first_echo * 0.3 + i),
                dtls: Some(first_echo * 0.6 + i),
                channel: Some(first_echo * 0.7 + i),
                auth: (mode == Mode::OneWay).then_some(first_echo * 0.85 + i),
                first_echo,
            });
        }
        s.failures.push("ice-timeout: no check answered".to_owned());
        s.finish();
        if let Some(f) = s.first_echo {
            s.budget = Some(StageBudget::of(&s.median_stages, f.p50, 50.0));
        }
        s
    }

    #[test]
    fn latency_table_reports_ratios_round_trips_and_browser() {
        let str0m = Peer::Native(StackName::Str0m);
        let report = LatencyReport {
            runs: 3,
            rtt_ms: Some(50.0),
            browser: Some("Chromium 156.0".to_owned()),
            series: vec![
                series(str0m, str0m, Mode::OneWay, &[160.0, 170.0, 150.0]),
                series(str0m, Peer::Browser, Mode::OneWay, &[210.0, 220.0, 230.0]),
                series(str0m, str0m, Mode::BASELINE, &[200.0, 210.0, 190.0]),
                series(
                    str0m,
                    str0m,
                    Mode::Baseline {
                        signalling: Signalling::WebSocket,
                        profile: Profile::Dtls13Snap,
                    },
                    &[260.0, 250.0, 270.0],
                ),
            ],
            ratios: vec![
                LatencyRatio {
                    one_way: "str0m → str0m one-way".to_owned(),
                    baseline: "str0m baseline".to_owned(),
                    ratio: 0.8,
                },
                LatencyRatio {
                    one_way: "str0m → str0m one-way".to_owned(),
                    baseline: "str0m baseline DTLS 1.3 + SNAP, WebSocket".to_owned(),
                    ratio: 0.62,
                },
            ],
        };
        insta::assert_snapshot!(latency(&report));
    }

    #[test]
    fn stage_budget_counts_each_stage_from_the_latest_earlier_end() {
        // A SNAP baseline: the channel is open before DTLS; it costs no round trip.
        let medians = crate::latency::StageMedians {
            signalled: Some(50.0),
            ice: Some(100.0),
            dtls: Some(150.0),
            channel: Some(1.0),
            auth: None,
        };
        let b = StageBudget::of(&medians, 200.0, 50.0);
        assert_eq!(
            (b.signalling, b.ice, b.dtls, b.channel, b.proof),
            (Some(1.0), Some(1.0), Some(1.0), Some(0.0), None)
        );
        assert_eq!((b.echo, b.total), (1.0, 4.0));
    }
}
