//! Whole-system benchmarks of oneway, as `oneway bench` runs them.
//!
//! - [`latency`]: token decoded → first echo, per stage, one-way against the same stack's
//!   two-way baseline (SDP through memory), runs interleaved.
//! - [`capacity`]: N dialers at once against one listener socket: handshakes per second, p50/p99
//!   connect time, memory per connection, the first N at which anything fails.
//! - [`throughput`]: data-channel MB/s over loopback, one connection and several.
//! - [`tokens`]: token bytes, text length and QR version per profile and candidate count, and
//!   codec rates.
//!
//! Every figure is measured in one run on one machine and reported with that machine
//! ([`Machine`]); comparisons are ratios within the run, never absolute thresholds. Results render
//! as Markdown ([`markdown`]) and SVG plots ([`plot`]), and serialize to JSON.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capacity;
pub mod latency;
pub mod markdown;
pub mod plot;
pub mod stats;
pub mod throughput;
pub mod tokens;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use oneway_connection::{
    BaselineTimings, ChannelRef, Connection, ConnectionError, ConnectionEvent,
};

use serde::Serialize;

/// Why a benchmark could not run or a connection in it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The benchmark could not be set up (bind, token, ...).
    #[error("setup: {0}")]
    Setup(String),
    /// A connection failed; the first field is a stable cause code.
    #[error("{0}: {1}")]
    Connect(String, String),
    /// Writing a plot failed.
    #[error("plot: {0}")]
    Plot(String),
}

/// A WebRTC stack the benchmarks can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[non_exhaustive]
pub enum StackName {
    /// `oneway-str0m`.
    #[serde(rename = "str0m")]
    Str0m,
    /// `oneway-webrtc` (webrtc-rs's sans-IO `rtc` crate).
    #[serde(rename = "webrtc-rs")]
    WebrtcRs,
}

impl StackName {
    /// Every stack compiled in.
    pub const ALL: &'static [StackName] = &[StackName::Str0m, StackName::WebrtcRs];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            StackName::Str0m => "str0m",
            StackName::WebrtcRs => "webrtc-rs",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<StackName> {
        Self::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Dials `token` one-way with this stack's dialer, taking the token's fast path (with early
    /// data) when the stack can; the error is `(cause code, details)`.
    pub async fn dial(
        self,
        token: &oneway_token::Token,
        timeout: Duration,
    ) -> Result<Connection, BenchError> {
        self.dial_with(token, timeout, true).await
    }

    /// [`StackName::dial`]; `fast: false` keeps the standard handshake even when the token
    /// offers the fast path (`spec/handshake.md` §5.4), for before/after comparisons.
    pub async fn dial_with(
        self,
        token: &oneway_token::Token,
        timeout: Duration,
        fast: bool,
    ) -> Result<Connection, BenchError> {
        match self {
            StackName::Str0m => {
                let config = oneway_str0m::DialConfig {
                    timeout,
                    fast_path: fast,
                    early_data: fast,
                    ..Default::default()
                };
                oneway_str0m::dial(token, &config)
                    .await
                    .map_err(|e| BenchError::Connect(e.code().to_owned(), e.to_string()))
            }
            StackName::WebrtcRs => {
                let config = oneway_webrtc::DialConfig {
                    timeout,
                    fast_path: fast,
                    early_data: fast,
                    ..Default::default()
                };
                oneway_webrtc::dial(token, &config)
                    .await
                    .map_err(|e| BenchError::Connect(e.code().to_owned(), e.to_string()))
            }
        }
    }

    /// One two-way baseline connection of this stack (SDP through memory, loopback).
    pub async fn baseline(self, timeout: Duration) -> Result<BaselineTimings, BenchError> {
        self.baseline_via(timeout, &mut Ok).await
    }

    /// [`StackName::baseline`] with each peer's host candidate shown to the other as
    /// `advertise(bound address)` (a delaying proxy emulates an RTT).
    pub async fn baseline_via(
        self,
        timeout: Duration,
        advertise: oneway_connection::Advertise<'_>,
    ) -> Result<BaselineTimings, BenchError> {
        let failed = |e: String| BenchError::Connect("baseline".to_owned(), e);
        match self {
            StackName::Str0m => {
                oneway_str0m::baseline::signalled_echo_via(None, timeout, advertise)
                    .await
                    .map_err(|e| failed(e.to_string()))
            }
            StackName::WebrtcRs => {
                oneway_webrtc::baseline::signalled_echo_via(None, timeout, advertise)
                    .await
                    .map_err(|e| failed(e.to_string()))
            }
        }
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Receives progress from a running benchmark (the CLI shows a progress bar).
pub trait Progress {
    /// A phase with `total` steps begins.
    fn start(&mut self, phase: &str, total: u64);
    /// `steps` more steps are done.
    fn advance(&mut self, steps: u64);
    /// The phase is over.
    fn finish(&mut self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _phase: &str, _total: u64) {}
    fn advance(&mut self, _steps: u64) {}
    fn finish(&mut self) {}
}

/// The machine a report was made on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model as `/proc/cpuinfo` names it.
    pub cpu: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// Whether this binary was built with optimizations.
    pub optimized: bool,
}

impl Machine {
    /// Reads the current machine's description (best effort: unknown fields say "unknown").
    pub fn current() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
            optimized: !cfg!(debug_assertions),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cores of {}, Linux {}, {} build",
            self.cores,
            self.cpu,
            self.kernel,
            if self.optimized { "release" } else { "debug" }
        )
    }
}

/// This process's resident set size and its peak, in KiB (`/proc/self/status`).
pub fn resident_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A listener running in this process that echoes every message on every application channel
/// and counts the bytes it received.
#[derive(Debug)]
pub struct EchoListener {
    /// The listener's token (`ow1.` text).
    pub token_text: String,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    /// Application bytes received so far.
    pub received_bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What an echo listener does with application messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoMode {
    /// Send every message back.
    Echo,
    /// Count the bytes; answer `done` once a message starting with `done` arrives.
    Sink,
}

/// Starts an echo listener of `stack` on loopback with default limits.
pub async fn echo_listener(stack: StackName) -> Result<EchoListener, BenchError> {
    listener(
        stack,
        EchoMode::Echo,
        oneway_core::AdmissionLimits::default(),
    )
    .await
}

/// Starts a loopback listener of `stack` with the given admission limits.
pub async fn listener(
    stack: StackName,
    mode: EchoMode,
    limits: oneway_core::AdmissionLimits,
) -> Result<EchoListener, BenchError> {
    let accepted = Arc::new(AtomicU64::new(0));
    let received_bytes = Arc::new(AtomicU64::new(0));
    let setup = |e: &dyn fmt::Display| BenchError::Setup(e.to_string());
    let accept_queue = limits.max_connections.max(1);
    let (token, (mut incoming, pump)) = match stack {
        StackName::Str0m => {
            let config = oneway_str0m::ListenerConfig {
                limits,
                accept_queue,
                ..oneway_str0m::ListenerConfig::loopback()
            };
            let listener = oneway_str0m::Listener::bind(config)
                .await
                .map_err(|e| setup(&e))?;
            (listener.token().clone(), pump(listener))
        }
        StackName::WebrtcRs => {
            let config = oneway_webrtc::ListenerConfig {
                limits,
                accept_queue,
                ..oneway_webrtc::ListenerConfig::loopback()
            };
            let listener = oneway_webrtc::Listener::bind(config)
                .await
                .map_err(|e| setup(&e))?;
            (listener.token().clone(), pump(listener))
        }
    };
    let token_text = token.to_text().map_err(|e| setup(&e))?;
    let (acc, rx) = (accepted.clone(), received_bytes.clone());
    let task = tokio::spawn(async move {
        let _pump = AbortOnDrop(pump);
        while let Some(conn) = incoming.recv().await {
            acc.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(conn, mode, rx.clone()));
        }
    });
    Ok(EchoListener {
        token_text,
        accepted,
        received_bytes,
        task,
    })
}

/// Serves one accepted connection until it ends: echoes, or counts bytes (see [`EchoMode`]).
async fn serve(mut conn: Connection, mode: EchoMode, received: Arc<AtomicU64>) {
    while let Some(event) = conn.next_event().await {
        if let ConnectionEvent::Data {
            channel,
            binary,
            data,
        } = event
        {
            received.fetch_add(data.len() as u64, Ordering::Relaxed);
            let reply = match mode {
                EchoMode::Echo => Some(data),
                EchoMode::Sink if data.starts_with(b"done") => Some(b"done".to_vec()),
                EchoMode::Sink => None,
            };
            // Echo text as text (the browser peer compares strings), anything else as binary.
            let _ = match (reply, binary) {
                (Some(reply), false) => match String::from_utf8(reply) {
                    Ok(text) => conn.send_text(channel, &text).await,
                    Err(e) => conn.send(channel, e.as_bytes()).await,
                },
                (Some(reply), true) => conn.send(channel, &reply).await,
                (None, _) => Ok(()),
            };
        }
    }
}

/// The accept call of each stack's listener.
trait Accept: Send + 'static {
    fn accept(&mut self) -> impl std::future::Future<Output = Option<Connection>> + Send;
}

impl Accept for oneway_str0m::Listener {
    fn accept(&mut self) -> impl std::future::Future<Output = Option<Connection>> + Send {
        oneway_str0m::Listener::accept(self)
    }
}

impl Accept for oneway_webrtc::Listener {
    fn accept(&mut self) -> impl std::future::Future<Output = Option<Connection>> + Send {
        oneway_webrtc::Listener::accept(self)
    }
}

/// Moves `listener`'s accepted connections into a channel from a task of their own.
fn pump(
    mut listener: impl Accept,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<Connection>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            if tx.send(conn).is_err() {
                break;
            }
        }
    });
    (rx, task)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
