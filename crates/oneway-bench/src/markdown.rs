//! Markdown tables of each report.

use std::fmt::Write as _;

use crate::capacity::CapacityReport;
use crate::latency::{LatencyReport, Mode};
use crate::throughput::ThroughputReport;
use crate::tokens::TokenReport;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// Latency: one row per series (median stage times, p50/p95 first echo), then the ratios.
pub fn latency(report: &LatencyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Series | Runs (failed) | ICE | DTLS | Channel | Auth | First echo p50 | p95 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for s in &report.series {
        let m = &s.median_stages;
        let (p50, p95) = s
            .first_echo
            .map_or((None, None), |f| (Some(f.p50), Some(f.p95)));
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            s.label(),
            s.runs.len(),
            s.failures.len(),
            opt(m.ice),
            opt(m.dtls),
            opt(m.channel),
            if s.mode == Mode::Baseline {
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
        "\nTimes in ms from token decoded (one-way) or offer created (baseline); stage columns are medians.\n"
    );
    for r in &report.ratios {
        let _ = writeln!(
            out,
            "- {} / {}: **{:.2}×** (goal ≤ 0.8×)",
            r.one_way, r.baseline, r.ratio
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
