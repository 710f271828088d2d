//! A lossy UDP forwarding proxy for loopback tests: userspace impairment, because this kernel
//! has no `sch_netem` (field notes §6). It only needs std, tokio and rand, so it serves every
//! native stack's tests.
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
//! dialer is killed or unplugged: silence, no close.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Most dialer addresses one proxy forwards for (each gets its own upstream socket).
pub const MAX_FLOWS: usize = 256;
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
    cut: AtomicBool,
    cut_on_dtls: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    rng: Mutex<StdRng>,
}

impl Shared {
    /// Whether to pass `datagram` on.
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
        let counter = if lost { &self.dropped } else { &self.forwarded };
        counter.fetch_add(1, Ordering::Relaxed);
        !lost
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
        let front = Arc::new(UdpSocket::bind((target.ip(), 0)).await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            loss_ppm: AtomicU32::new((loss.clamp(0.0, 1.0) * PPM) as u32),
            cut: AtomicBool::new(false),
            cut_on_dtls: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        });
        let tasks = Arc::new(Mutex::new(Vec::new()));
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
        if shared.pass(&buf[..n]) {
            let _ = upstream.send_to(&buf[..n], target).await;
        }
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
        if shared.pass(&buf[..n]) {
            let _ = front.send_to(&buf[..n], dialer).await;
        }
    }
}
