//! Data-channel throughput over loopback: reliable ordered channel, binary messages, one or
//! several connections to one listener at once. The time runs from the first message sent to
//! the listener's acknowledgement of the last one, so it counts delivery, not queueing.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::{BenchError, EchoMode, Progress, StackName, listener};

/// What to run.
#[derive(Clone, Debug)]
pub struct ThroughputConfig {
    /// Connection counts to run (each a separate round against a fresh listener).
    pub connections: Vec<usize>,
    /// Bytes each connection sends.
    pub bytes_per_connection: usize,
    /// Size of each message.
    pub message_size: usize,
    /// Give up on a round after this long.
    pub timeout: Duration,
}

impl Default for ThroughputConfig {
    fn default() -> Self {
        ThroughputConfig {
            connections: vec![1, 4],
            bytes_per_connection: 256 << 20,
            message_size: 64 << 10,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One round.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputPoint {
    /// Listener stack.
    pub listener: StackName,
    /// Dialer stack (the sender).
    pub dialer: StackName,
    /// Connections sending at once.
    pub connections: usize,
    /// Message size in bytes.
    pub message_size: usize,
    /// Bytes the listener received.
    pub bytes: u64,
    /// Seconds from the first send to the last acknowledgement.
    pub seconds: f64,
    /// `bytes / seconds / 10^6`.
    pub megabytes_per_second: f64,
}

/// Every round of a throughput run.
#[derive(Clone, Debug, Serialize)]
pub struct ThroughputReport {
    /// The rounds.
    pub points: Vec<ThroughputPoint>,
}

/// Runs each round of `config`.
pub async fn run(
    config: &ThroughputConfig,
    listener_stack: StackName,
    dialer_stack: StackName,
    progress: &mut dyn Progress,
) -> Result<ThroughputReport, BenchError> {
    let mut points = Vec::new();
    let total: usize = config
        .connections
        .iter()
        .map(|c| c * config.bytes_per_connection)
        .sum();
    progress.start("throughput", (total >> 20) as u64);
    for &connections in &config.connections {
        points.push(round(config, connections, listener_stack, dialer_stack, progress).await?);
    }
    progress.finish();
    Ok(ThroughputReport { points })
}

async fn round(
    config: &ThroughputConfig,
    connections: usize,
    listener_stack: StackName,
    dialer_stack: StackName,
    progress: &mut dyn Progress,
) -> Result<ThroughputPoint, BenchError> {
    let limits = oneway_core::AdmissionLimits::default();
    let sink = listener(listener_stack, EchoMode::Sink, limits).await?;
    let token = oneway_token::Token::from_text(&sink.token_text)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut conns = Vec::new();
    for _ in 0..connections {
        let conn = dialer_stack.dial(&token, Duration::from_secs(10)).await?;
        let channel = conn
            .open_channel("bulk")
            .await
            .map_err(|e| BenchError::Connect("open".to_owned(), e.to_string()))?;
        conns.push((conn, channel));
    }
    let before = sink
        .received_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let start = Instant::now();
    let deadline = start + config.timeout;
    let mut senders = Vec::new();
    for (mut conn, channel) in conns {
        let (bytes, size, tx) = (config.bytes_per_connection, config.message_size, tx.clone());
        senders.push(tokio::spawn(async move {
            let payload = vec![0xab_u8; size.max(1)];
            let mut sent = 0usize;
            while sent < bytes {
                let chunk = &payload[..payload.len().min(bytes - sent)];
                send_when_room(&conn, channel, chunk, deadline).await?;
                sent += chunk.len();
                let _ = tx.send(chunk.len());
            }
            send_when_room(&conn, channel, b"done", deadline).await?;
            let acked = tokio::time::timeout_at(deadline.into(), async {
                while let Some(event) = conn.next_event().await {
                    if let crate::ConnectionEvent::Data { data, .. } = event
                        && data == b"done"
                    {
                        return true;
                    }
                }
                false
            })
            .await
            .unwrap_or(false);
            if !acked {
                return Err(BenchError::Connect(
                    "timeout".to_owned(),
                    "no acknowledgement".to_owned(),
                ));
            }
            Ok(Instant::now())
        }));
    }
    drop(tx);
    let mut reported = 0usize;
    while let Some(bytes) = rx.recv().await {
        reported += bytes;
        while reported >= 1 << 20 {
            reported -= 1 << 20;
            progress.advance(1);
        }
    }
    let mut end = start;
    for s in senders {
        let at = s
            .await
            .map_err(|e| BenchError::Setup(format!("sender task: {e}")))??;
        end = end.max(at);
    }
    let bytes = sink
        .received_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    let seconds = (end - start).as_secs_f64();
    Ok(ThroughputPoint {
        listener: listener_stack,
        dialer: dialer_stack,
        connections,
        message_size: config.message_size,
        bytes,
        seconds,
        megabytes_per_second: if seconds > 0.0 {
            bytes as f64 / seconds / 1e6
        } else {
            0.0
        },
    })
}

/// Sends `data`, waiting while the stack's send queue is full (SCTP drains it), until
/// `deadline`.
async fn send_when_room(
    conn: &crate::Connection,
    channel: crate::ChannelRef,
    data: &[u8],
    deadline: Instant,
) -> Result<(), BenchError> {
    loop {
        if Instant::now() > deadline {
            return Err(BenchError::Connect(
                "timeout".to_owned(),
                "sending took too long".to_owned(),
            ));
        }
        match conn.send(channel, data).await {
            Ok(()) => return Ok(()),
            Err(crate::ConnectionError::Refused(_)) => {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            Err(e) => return Err(BenchError::Connect("send".to_owned(), e.to_string())),
        }
    }
}
