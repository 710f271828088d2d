//! A lossy, delaying UDP forwarding proxy for loopback tests and benchmarks: userspace
//! impairment, because this kernel has no `sch_netem` (field notes §6). It only needs std, tokio
//! and rand, so it serves every native stack's tests, and `oneway bench latency --rtt`.
//!
//! ```text
//!  dialer ──▶ proxy.addr() ──(loss)──▶ upstream socket (one per dialer address) ──▶ target
//!  dialer ◀── proxy.addr() ◀──(loss)── upstream socket ◀──────────────────────────── target
//! ```
//!
//! The target sees each dialer at its own upstream socket address, as behind a NAT, and the
//! dialer sees the target at the proxy's address: give the dialer a token whose candidate is
//! `proxy.addr()`. Loss is independent per datagram and per direction, from a seeded RNG.
//! [`LossyProxy::cut`] drops everything from then on, which is what the target sees when a
//! dialer is killed or unplugged: silence, no close. [`LossyProxy::set_delay`] holds every
//! datagram that passes for a fixed one-way delay, in order (one FIFO for both directions, like a
//! link with a constant propagation delay), so a round trip through the proxy takes twice the
//! delay; datagrams beyond [`MAX_DELAYED`] in flight are dropped, as a full router queue would.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most dialer addresses one proxy forwards for (each gets its own upstream socket).
pub const MAX_FLOWS: usize = 256;
/// Most datagrams held by the delay at once (a router's queue); more are dropped.
pub const MAX_DELAYED: usize = 8192;
/// Largest datagram forwarded; WebRTC stays far below it.
const BUFFER: usize = 2048;
/// Loss is held in parts per million.
const PPM: f64 = 1_000_000.0;

/// Datagram counts of one proxy, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Datagrams passed on.
    pub forwarded: u64,
    /// Datagrams dropped by the loss model or a cut.
    pub dropped: u64,
}

struct Shared {
    loss_ppm: AtomicU32,
    delay_us: AtomicU64,
    delayed: mpsc::Sender<Delayed>,
    cut: AtomicBool,
    cut_on_dtls: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    rng: Mutex<StdRng>,
}

impl Shared {
    /// Whether the loss model (or a cut) lets `datagram` through.
    fn pass(&self, datagram: &[u8]) -> bool {
        if self.cut_on_dtls.load(Ordering::Relaxed)
            && datagram.first().is_some_and(|b| (20..=63).contains(b))
        {
            self.cut.store(true, Ordering::Relaxed);
        }
        let loss = f64::from(self.loss_ppm.load(Ordering::Relaxed)) / PPM;
        let lost = self.cut.load(Ordering::Relaxed)
            || (loss > 0.0
                && self
                    .rng
                    .lock()
                    .is_ok_and(|mut r| r.random_bool(loss.min(1.0))));
        !lost
    }

    /// Passes `datagram` on from `socket` to `to` unless the loss model drops it: now, or after
    /// the delay when one is set (dropped when the delay queue is full). Counts what it did.
    async fn forward(&self, socket: &Arc<UdpSocket>, datagram: &[u8], to: SocketAddr) {
        let delay = self.delay_us.load(Ordering::Relaxed);
        let passed = if !self.pass(datagram) {
            false
        } else if delay == 0 {
            let _ = socket.send_to(datagram, to).await;
            true
        } else {
            let item = Delayed {
                due: Instant::now() + Duration::from_micros(delay),
                socket: Arc::clone(socket),
                to,
                datagram: datagram.to_vec(),
            };
            self.delayed.try_send(item).is_ok()
        };
        let counter = if passed {
            &self.forwarded
        } else {
            &self.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A datagram waiting out the link delay.
struct Delayed {
    due: Instant,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    datagram: Vec<u8>,
}

/// Sends delayed datagrams when they are due, in arrival order.
async fn release_delayed(mut queue: mpsc::Receiver<Delayed>) {
    while let Some(item) = queue.recv().await {
        tokio::time::sleep_until(item.due).await;
        let _ = item.socket.send_to(&item.datagram, item.to).await;
    }
}

/// A running proxy; it stops when dropped.
pub struct LossyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl LossyProxy {
    /// Starts forwarding from a new loopback port to `target`, dropping each datagram with
    /// probability `loss` (0.0..=1.0) in each direction. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr, loss: f64, seed: u64) -> io::Result<LossyProxy> {
        Self::start_now(target, loss, seed)
    }

    /// [`LossyProxy::start`] for callers that cannot await (binding a UDP socket does not
    /// block). Must be called inside a tokio runtime.
    pub fn start_now(target: SocketAddr, loss: f64, seed: u64) -> io::Result<LossyProxy> {
        let front = std::net::UdpSocket::bind((target.ip(), 0))?;
        front.set_nonblocking(true)?;
        let front = Arc::new(UdpSocket::from_std(front)?);
        let addr = front.local_addr()?;
        let (delayed, queue) = mpsc::channel(MAX_DELAYED);
        let shared = Arc::new(Shared {
            loss_ppm: AtomicU32::new((loss.clamp(0.0, 1.0) * PPM) as u32),
            delay_us: AtomicU64::new(0),
            delayed,
            cut: AtomicBool::new(false),
            cut_on_dtls: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let tasks = Arc::new(Mutex::new(vec![tokio::spawn(release_delayed(queue))]));
        let main = tokio::spawn(forward_front(
            Arc::clone(&front),
            target,
            Arc::clone(&shared),
            Arc::clone(&tasks),
        ));
        tasks.lock().expect("tasks").push(main);
        Ok(LossyProxy {
            addr,
            shared,
            tasks,
        })
    }

    /// The address dialers send to (put it in the token in place of the target's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the loss probability of each datagram.
    pub fn set_loss(&self, loss: f64) {
        self.shared
            .loss_ppm
            .store((loss.clamp(0.0, 1.0) * PPM) as u32, Ordering::Relaxed);
    }

    /// Holds every datagram that passes for `delay` before sending it on (each direction), so
    /// a round trip through the proxy takes `2 × delay` more.
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::Relaxed);
    }

    /// Drops every datagram from now on, both ways: the target sees a killed dialer.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::Relaxed);
    }

    /// Cuts as soon as the first DTLS datagram passes either way (mid-handshake: ICE has
    /// succeeded, DTLS has started).
    pub fn cut_on_first_dtls(&self) {
        self.shared.cut_on_dtls.store(true, Ordering::Relaxed);
    }

    /// Whether the proxy has been cut.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::Relaxed)
    }

    /// Datagrams forwarded and dropped so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            forwarded: self.shared.forwarded.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.lock() {
            for t in tasks.iter() {
                t.abort();
            }
        }
    }
}

/// Dialer → target: one upstream socket per dialer address, created on its first datagram.
async fn forward_front(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut flows: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; BUFFER];
    loop {
        let Ok((n, from)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let upstream = match flows.get(&from) {
            Some(u) => Arc::clone(u),
            None if flows.len() >= MAX_FLOWS => continue,
            None => {
                let Ok(u) = UdpSocket::bind((target.ip(), 0)).await else {
                    continue;
                };
                let u = Arc::new(u);
                flows.insert(from, Arc::clone(&u));
                let back = tokio::spawn(forward_back(
                    Arc::clone(&u),
                    Arc::clone(&front),
                    from,
                    Arc::clone(&shared),
                ));
                if let Ok(mut t) = tasks.lock() {
                    t.push(back);
                }
                u
            }
        };
        shared.forward(&upstream, &buf[..n], target).await;
    }
}

/// Target → dialer, for one dialer address.
async fn forward_back(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    dialer: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let Ok((n, _)) = upstream.recv_from(&mut buf).await else {
            continue;
        };
        shared.forward(&front, &buf[..n], dialer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round trip through the proxy takes at least twice the delay, and datagrams keep their
    /// order.
    #[tokio::test]
    async fn delay_holds_each_direction_in_order() {
        let echo = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
        let target = echo.local_addr().expect("addr");
        let echo_task = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                let Ok((n, from)) = echo.recv_from(&mut buf).await else {
                    return;
                };
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let proxy = LossyProxy::start(target, 0.0, 1).await.expect("proxy");
        proxy.set_delay(Duration::from_millis(20));
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
        let sent = Instant::now();
        for i in 0u8..3 {
            client.send_to(&[i], proxy.addr()).await.expect("send");
        }
        let mut buf = [0u8; 8];
        for i in 0u8..3 {
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
                    .await
                    .expect("an echo within 5 s")
                    .expect("recv");
            assert_eq!((&buf[..n], from), (&[i][..], proxy.addr()));
        }
        assert!(sent.elapsed() >= Duration::from_millis(40));
        assert_eq!(
            proxy.stats(),
            ProxyStats {
                forwarded: 6,
                dropped: 0
            }
        );
        echo_task.abort();
    }
}
