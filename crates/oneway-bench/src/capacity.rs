//! Listener capacity: N dialers connect at once to one listener socket on loopback.
//!
//! Dialers and listener share this process (and its cores), so the figures are a lower bound
//! of what a listener alone sustains; memory per connection counts both ends of a connection.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::Summary;
use crate::{BenchError, EchoMode, Progress, StackName, listener, resident_kib};

/// What to run.
#[derive(Clone, Debug)]
pub struct CapacityConfig {
    /// Burst sizes, run in this order, each against a fresh listener.
    pub counts: Vec<usize>,
    /// Give up on one dialer after this long.
    pub timeout: Duration,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            counts: vec![10, 100, 1000],
            timeout: Duration::from_secs(30),
        }
    }
}

/// One burst.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityPoint {
    /// Listener stack.
    pub listener: StackName,
    /// Dialer stack.
    pub dialer: StackName,
    /// Dialers started at once.
    pub dialers: usize,
    /// Dialers that authenticated.
    pub connected: usize,
    /// Connections the listener accepted.
    pub accepted: u64,
    /// Failures by cause code.
    pub errors: BTreeMap<String, usize>,
    /// From the first dial to the last success, milliseconds.
    pub burst_ms: f64,
    /// `connected / burst` per second.
    pub handshakes_per_second: f64,
    /// Per-dialer connect times (start of the burst → authenticated), milliseconds.
    pub connect_ms: Option<Summary>,
    /// Resident memory growth while every connection was held, per connection (both ends), KiB.
    pub kib_per_connection: Option<f64>,
}

/// Every burst of a capacity run.
#[derive(Clone, Debug, Serialize)]
pub struct CapacityReport {
    /// The bursts, in the order run.
    pub points: Vec<CapacityPoint>,
    /// The smallest burst in which any dialer failed.
    pub first_failing: Option<usize>,
}

/// Runs each burst of `config` for the `listener`/`dialer` stack pair.
pub async fn run(
    config: &CapacityConfig,
    listener_stack: StackName,
    dialer_stack: StackName,
    progress: &mut dyn Progress,
) -> Result<CapacityReport, BenchError> {
    let mut points = Vec::new();
    progress.start("capacity", config.counts.iter().sum::<usize>() as u64);
    for &n in &config.counts {
        points.push(burst(n, config.timeout, listener_stack, dialer_stack, progress).await?);
    }
    progress.finish();
    let first_failing = points
        .iter()
        .filter(|p| p.connected < p.dialers)
        .map(|p| p.dialers)
        .min();
    Ok(CapacityReport {
        points,
        first_failing,
    })
}

async fn burst(
    n: usize,
    timeout: Duration,
    listener_stack: StackName,
    dialer_stack: StackName,
    progress: &mut dyn Progress,
) -> Result<CapacityPoint, BenchError> {
    // Limits sized to the burst: the point is to measure the machine, not the defaults.
    let limits = oneway_core::AdmissionLimits {
        max_pending: n,
        pending_timeout: timeout,
        max_connections: n,
    };
    let echo = listener(listener_stack, EchoMode::Echo, limits).await?;
    let token = oneway_token::Token::from_text(&echo.token_text)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let rss_before = resident_kib().map(|(rss, _)| rss);
    let start = Instant::now();
    let dials: Vec<_> = (0..n)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move {
                let result = dialer_stack
                    .dial(&token, timeout)
                    .await
                    .map_err(|e| match e {
                        BenchError::Connect(code, _) => code,
                        other => other.to_string(),
                    });
                (result, Instant::now())
            })
        })
        .collect();
    let mut connections = Vec::new();
    let mut done = Vec::new();
    let mut errors = BTreeMap::<String, usize>::new();
    for d in dials {
        match d.await {
            Ok((Ok(conn), at)) => {
                connections.push(conn);
                done.push(at - start);
            }
            Ok((Err(code), _)) => *errors.entry(code).or_default() += 1,
            Err(e) => *errors.entry(format!("task: {e}")).or_default() += 1,
        }
        progress.advance(1);
    }
    // Let the listener see the last proofs before reading its count and the memory.
    let settle = Instant::now() + Duration::from_secs(2);
    while (echo.accepted.load(std::sync::atomic::Ordering::Relaxed) as usize) < connections.len()
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rss_after = resident_kib().map(|(rss, _)| rss);
    let connected = connections.len();
    let burst = done.iter().max().copied().unwrap_or_default();
    let connect: Vec<f64> = done.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let kib_per_connection = match (rss_before, rss_after) {
        (Some(before), Some(after)) if connected > 0 => {
            Some(after.saturating_sub(before) as f64 / connected as f64)
        }
        _ => None,
    };
    let accepted = echo.accepted.load(std::sync::atomic::Ordering::Relaxed);
    drop(connections);
    drop(echo);
    Ok(CapacityPoint {
        listener: listener_stack,
        dialer: dialer_stack,
        dialers: n,
        connected,
        accepted,
        errors,
        burst_ms: burst.as_secs_f64() * 1000.0,
        handshakes_per_second: if burst.is_zero() {
            0.0
        } else {
            connected as f64 / burst.as_secs_f64()
        },
        connect_ms: Summary::of(&connect),
        kib_per_connection,
    })
}
