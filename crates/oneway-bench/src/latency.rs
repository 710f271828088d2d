//! Connect latency: token decoded → first echo on an application data channel, per stage, for
//! one-way and for the same stack's two-way baseline (SDP offer/answer through memory), with the
//! runs interleaved so that load drifts hit both alike.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::Summary;
use crate::{BenchError, ConnectionEvent, Progress, StackName, echo_listener};

/// What to run.
#[derive(Clone, Debug)]
pub struct LatencyConfig {
    /// Measured runs per series.
    pub runs: usize,
    /// Unmeasured runs per series first (first-use costs: page faults, lazy statics).
    pub warmup: usize,
    /// Give up on one connection after this long.
    pub timeout: Duration,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            runs: 50,
            warmup: 2,
            timeout: Duration::from_secs(10),
        }
    }
}

/// One-way or the signalled baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The dialer connects from the token alone.
    OneWay,
    /// Offer and answer through memory (a perfect signalling server).
    Baseline,
}

impl Mode {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::OneWay => "one-way",
            Mode::Baseline => "two-way baseline",
        }
    }
}

/// Stage times of one run, in milliseconds from the start (token decoded or offer created).
/// A stage the stack does not report is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageSample {
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// The first data channel open (channel 0 for one-way, the application's for the baseline).
    pub channel: Option<f64>,
    /// In-band proofs verified (one-way only).
    pub auth: Option<f64>,
    /// The echo of the first application message arrived.
    pub first_echo: f64,
}

/// Runs of one (listener stack, dialer stack, mode).
#[derive(Clone, Debug, Serialize)]
pub struct LatencySeries {
    /// Listener (or answerer) stack.
    pub listener: StackName,
    /// Dialer (or offerer) stack.
    pub dialer: StackName,
    /// One-way or baseline.
    pub mode: Mode,
    /// Every measured run.
    pub runs: Vec<StageSample>,
    /// Runs that failed (not in `runs`), with their error.
    pub failures: Vec<String>,
    /// Summary of `first_echo` over `runs`.
    pub first_echo: Option<Summary>,
    /// Median of each stage over `runs`.
    pub median_stages: StageMedians,
}

/// Per-stage medians in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageMedians {
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// First channel open.
    pub channel: Option<f64>,
    /// Proofs verified.
    pub auth: Option<f64>,
}

impl LatencySeries {
    fn new(listener: StackName, dialer: StackName, mode: Mode) -> Self {
        LatencySeries {
            listener,
            dialer,
            mode,
            runs: Vec::new(),
            failures: Vec::new(),
            first_echo: None,
            median_stages: StageMedians::default(),
        }
    }

    /// A label such as `str0m → str0m one-way`.
    pub fn label(&self) -> String {
        match self.mode {
            Mode::OneWay => format!("{} → {} one-way", self.dialer, self.listener),
            Mode::Baseline => format!("{} baseline", self.listener),
        }
    }

    fn finish(&mut self) {
        let column = |f: fn(&StageSample) -> Option<f64>| {
            let values: Vec<f64> = self.runs.iter().filter_map(f).collect();
            Summary::of(&values).map(|s| s.p50)
        };
        self.median_stages = StageMedians {
            ice: column(|s| s.ice),
            dtls: column(|s| s.dtls),
            channel: column(|s| s.channel),
            auth: column(|s| s.auth),
        };
        let totals: Vec<f64> = self.runs.iter().map(|s| s.first_echo).collect();
        self.first_echo = Summary::of(&totals);
    }
}

/// One-way median against the same stack's baseline median.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRatio {
    /// The one-way series (`dialer → listener`).
    pub one_way: String,
    /// The baseline series it is compared with.
    pub baseline: String,
    /// Median first echo, one-way / baseline.
    pub ratio: f64,
}

/// Everything a latency run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    /// The settings used.
    pub runs: usize,
    /// Every series.
    pub series: Vec<LatencySeries>,
    /// Ratios of medians (goal: ≤ 0.8).
    pub ratios: Vec<LatencyRatio>,
}

/// Measures every one-way pair of `stacks` (each as listener and as dialer) and each stack's
/// baseline, interleaving the runs.
pub async fn run(
    config: &LatencyConfig,
    stacks: &[StackName],
    progress: &mut dyn Progress,
) -> Result<LatencyReport, BenchError> {
    let mut series = Vec::new();
    for &listener in stacks {
        for &dialer in stacks {
            series.push(LatencySeries::new(listener, dialer, Mode::OneWay));
        }
    }
    for &stack in stacks {
        series.push(LatencySeries::new(stack, stack, Mode::Baseline));
    }
    let mut listeners = Vec::new();
    for &stack in stacks {
        listeners.push((stack, echo_listener(stack).await?));
    }
    let total = (config.warmup + config.runs) * series.len();
    progress.start("latency", total as u64);
    for round in 0..config.warmup + config.runs {
        for s in series.iter_mut() {
            let result = match s.mode {
                Mode::OneWay => {
                    let token = listeners
                        .iter()
                        .find(|(stack, _)| *stack == s.listener)
                        .map(|(_, l)| l.token_text.clone())
                        .ok_or_else(|| BenchError::Setup("no listener".to_owned()))?;
                    one_way(s.dialer, &token, config.timeout).await
                }
                Mode::Baseline => baseline(s.listener, config.timeout).await,
            };
            if round >= config.warmup {
                match result {
                    Ok(sample) => s.runs.push(sample),
                    Err(e) => s.failures.push(e.to_string()),
                }
            }
            progress.advance(1);
        }
    }
    progress.finish();
    for s in series.iter_mut() {
        s.finish();
    }
    let ratios = series
        .iter()
        .filter(|s| s.mode == Mode::OneWay)
        .filter_map(|ow| {
            let base = series
                .iter()
                .find(|b| b.mode == Mode::Baseline && b.listener == ow.dialer)?;
            Some(LatencyRatio {
                one_way: ow.label(),
                baseline: base.label(),
                ratio: ow.first_echo?.p50 / base.first_echo?.p50,
            })
        })
        .collect();
    Ok(LatencyReport {
        runs: config.runs,
        series,
        ratios,
    })
}

/// One one-way connection: decode the token text, dial, open a channel, echo one message.
async fn one_way(
    dialer: StackName,
    token_text: &str,
    timeout: Duration,
) -> Result<StageSample, BenchError> {
    let start = Instant::now();
    let token =
        oneway_token::Token::from_text(token_text).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut conn = dialer.dial(&token, timeout).await?;
    let channel = conn
        .open_channel("bench")
        .await
        .map_err(|e| BenchError::Connect("open".to_owned(), e.to_string()))?;
    conn.send(channel, b"bench-probe")
        .await
        .map_err(|e| BenchError::Connect("send".to_owned(), e.to_string()))?;
    let echo = tokio::time::timeout(timeout, async {
        while let Some(event) = conn.next_event().await {
            if let ConnectionEvent::Data { .. } = event {
                return Some(start.elapsed());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| BenchError::Connect("echo".to_owned(), "no echo".to_owned()))?;
    let t = &conn.info().timings;
    let at = |i: Option<Instant>| i.map(|i| ms(i.saturating_duration_since(start)));
    Ok(StageSample {
        ice: at(t.ice_connected),
        dtls: at(t.dtls_connected),
        channel: at(t.channel_open),
        auth: at(t.authenticated),
        first_echo: ms(echo),
    })
}

/// One baseline connection of `stack`.
async fn baseline(stack: StackName, timeout: Duration) -> Result<StageSample, BenchError> {
    let t = stack.baseline(timeout).await?;
    let first_echo = t
        .first_echo
        .ok_or_else(|| BenchError::Connect("echo".to_owned(), "no echo".to_owned()))?;
    Ok(StageSample {
        ice: t.ice.map(ms),
        dtls: t.dtls.map(ms),
        channel: t.channel.map(ms),
        auth: None,
        first_echo: ms(first_echo),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
