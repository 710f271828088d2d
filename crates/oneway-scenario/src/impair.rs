//! The userspace impairment used where the kernel has no `sch_netem`: a delayer on two TUN
//! devices in the impairment hop's network namespace.
//!
//! Policy routing sends everything that arrives on the inside interface to `owa`, and
//! everything that arrives on the outside interface to `owb`. The delayer reads each packet,
//! drops it with the configured probability, and otherwise writes it back into the same TUN
//! device after the delay; the kernel then receives it from that device and routes it on by the
//! main table. No NAT runs on this hop, so the double pass through the stack is harmless.
//!
//! ```text
//! dialer ── inside ─▶ [rule iif inside → owa] ─▶ delayer ─▶ owa ─▶ main table ─▶ outside ── router
//! dialer ◀─ inside ── main table ◀─ owb ◀─ delayer ◀─ [rule iif outside → owb] ◀─ outside ── router
//! ```

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use crate::Error;

/// Delay, jitter and loss for one direction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// One-way delay.
    pub delay: Duration,
    /// Uniform jitter added to or subtracted from the delay.
    pub jitter: Duration,
    /// Drop probability in percent.
    pub loss_percent: f64,
}

/// Largest packet handled (the links' MTU is 1500).
const MAX_PACKET: usize = 65_536;
/// Packets held at once per direction; beyond this, packets are dropped (tail drop).
const MAX_QUEUE: usize = 10_000;

/// Sets up the TUN devices and policy routing between `inside` and `outside`
/// (`inside_subnet` is routed back through the inside interface), writes `ready_file`, then
/// delays packets until killed.
pub async fn run(
    inside: &str,
    outside: &str,
    inside_subnet: &str,
    shape: Shape,
    ready_file: &str,
) -> Result<(), Error> {
    let a = open("owa")?;
    let b = open("owb")?;
    for args in [
        vec!["rule", "add", "iif", inside, "lookup", "100"],
        vec!["route", "add", "default", "dev", "owa", "table", "100"],
        vec!["rule", "add", "iif", outside, "lookup", "101"],
        vec!["route", "add", inside_subnet, "dev", "owb", "table", "101"],
    ] {
        ip(&args)?;
    }
    std::fs::write(ready_file, "ready\n").map_err(|e| Error::Io {
        path: ready_file.into(),
        source: e,
    })?;
    let (ra, rb) = tokio::join!(pump(a, shape), pump(b, shape));
    ra.and(rb)
}

fn open(name: &str) -> Result<Arc<tun::AsyncDevice>, Error> {
    let mut config = tun::Configuration::default();
    config.tun_name(name).mtu(1500).up();
    let device = tun::create_as_async(&config)
        .map_err(|e| Error::Docker(format!("creating TUN device {name}: {e}")))?;
    Ok(Arc::new(device))
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| Error::Docker(format!("ip {}: {e}", args.join(" "))))?;
    if !status.success() {
        return Err(Error::Docker(format!(
            "ip {} failed: {status}",
            args.join(" ")
        )));
    }
    Ok(())
}

/// Reads packets from a device and writes each back after its delay.
async fn pump(device: Arc<tun::AsyncDevice>, shape: Shape) -> Result<(), Error> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(MAX_QUEUE);
    let writer = device.clone();
    let write_task = tokio::spawn(async move {
        let mut pending: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
        loop {
            let next_due = pending.front().map(|(t, _)| *t);
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => {
                        // Keep the queue ordered by due time (jitter may reorder, as netem does).
                        let at = pending.iter().rposition(|(t, _)| *t <= item.0).map_or(0, |i| i + 1);
                        pending.insert(at, item);
                    }
                    None => return,
                },
                _ = sleep_until(next_due) => {
                    while pending.front().is_some_and(|(t, _)| *t <= Instant::now()) {
                        if let Some((_, packet)) = pending.pop_front() {
                            let _ = writer.send(&packet).await;
                        }
                    }
                }
            }
        }
    });
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let n = device
            .recv(&mut buf)
            .await
            .map_err(|e| Error::Docker(format!("reading TUN: {e}")))?;
        let (drop, due) = {
            let mut rng = rand::rng();
            let drop = rng.random::<f64>() * 100.0 < shape.loss_percent;
            let jitter = if shape.jitter.is_zero() {
                0.0
            } else {
                rng.random_range(-1.0..=1.0) * shape.jitter.as_secs_f64()
            };
            let delay = (shape.delay.as_secs_f64() + jitter).max(0.0);
            (drop, Instant::now() + Duration::from_secs_f64(delay))
        };
        if drop {
            continue;
        }
        if tx.try_send((due, buf[..n].to_vec())).is_err() && write_task.is_finished() {
            return Err(Error::Docker("the TUN writer stopped".into()));
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
