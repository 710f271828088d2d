//! Flood generators and memory readings for the flood tests of every stack.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oneway_token::Token;
use rand::{Rng, RngCore};

use crate::{binding_request, dialer_check, ice_string};

/// Distinct datagrams of each kind, sent round-robin (building each costs an HMAC).
pub const POOL: usize = 512;

/// Kilobytes of `field` (`VmRSS`, `VmHWM`) in /proc/self/status.
pub fn proc_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The three kinds of flood datagrams for a listener of `token`, [`POOL`] of each: unknown
/// USERNAMEs, the real token ufrag with bad MESSAGE-INTEGRITY, DTLS-looking garbage.
pub fn pools(token: &Token) -> [Vec<Vec<u8>>; 3] {
    let keys = token.derive();
    let mut rng = rand::rng();
    // Unknown USERNAMEs: half composed for a random token, half random text.
    let unknown = (0..POOL)
        .map(|i| {
            let username = if i % 2 == 0 {
                format!("{}+{}:{}", ice_string(8), ice_string(24), ice_string(8))
            } else {
                ice_string(rng.random_range(1..120))
            };
            binding_request(&username, &ice_string(24)).0
        })
        .collect();
    // The real token ufrag (seen on path), integrity keyed with a guessed pwd.
    let bad_integrity = (0..POOL)
        .map(|_| dialer_check(&keys, &ice_string(24)).0)
        .collect();
    // DTLS-looking garbage: a handshake record header and random bytes.
    let garbage = (0..POOL)
        .map(|_| {
            let mut d = vec![0u8; rng.random_range(13..300)];
            rng.fill_bytes(&mut d);
            d[0] = 22;
            d[1] = 0xfe;
            d[2] = 0xfd;
            d
        })
        .collect();
    [unknown, bad_integrity, garbage]
}

/// Sends `pool` round-robin to `to` from `from_ip` at `rate` datagrams/s until `stop`.
pub fn flooder(
    from_ip: [u8; 4],
    to: SocketAddr,
    pool: Vec<Vec<u8>>,
    rate: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind((std::net::Ipv4Addr::from(from_ip), 0)).expect("bind flooder");
        let start = Instant::now();
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            // Catch up to where the rate says we should be, then sleep a millisecond.
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            while n < due {
                let _ = socket.send_to(&pool[(n as usize) % pool.len()], to);
                n += 1;
            }
            sent.store(n, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// The median (upper middle) of `v`; `v` must not be empty.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Samples `VmRSS` every 50 ms until `stop`; the thread returns the peak in kB.
pub fn rss_sampler(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(proc_kb("VmRSS"));
            std::thread::sleep(Duration::from_millis(50));
        }
        peak
    })
}

/// What a [`Flood`] did.
#[derive(Clone, Debug)]
pub struct FloodReport {
    /// Datagrams sent of each kind (unknown USERNAMEs, bad integrity, DTLS garbage).
    pub sent: [u64; 3],
    /// From the first datagram to the stop.
    pub elapsed: Duration,
    /// Peak `VmRSS` of the process while it ran, kB.
    pub rss_peak_kb: u64,
}

impl FloodReport {
    /// All datagrams sent.
    pub fn total(&self) -> u64 {
        self.sent.iter().sum()
    }

    /// Datagrams per second achieved.
    pub fn rate(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The three [`pools`] sent to one listener, each from its own loopback address
/// ([`Flood::SOURCES`], in the order of [`FloodReport::sent`]), at `rate / 3` datagrams/s each,
/// with an RSS sampler, until [`Flood::stop`].
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    counters: Vec<Arc<AtomicU64>>,
    sampler: std::thread::JoinHandle<u64>,
    start: Instant,
}

impl Flood {
    /// The source address of each kind: unknown USERNAMEs, bad integrity, DTLS garbage.
    pub const SOURCES: [[u8; 4]; 3] = [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]];

    /// Starts flooding `to`, a listener of `token`, at about `rate` datagrams/s in all.
    pub fn start(to: SocketAddr, token: &Token, rate: u64) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let counters: Vec<Arc<AtomicU64>> = (0..3).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let pools = pools(token);
        let start = Instant::now();
        let threads = pools
            .into_iter()
            .enumerate()
            .map(|(i, pool)| {
                flooder(
                    Self::SOURCES[i],
                    to,
                    pool,
                    rate / 3,
                    Arc::clone(&stop),
                    Arc::clone(&counters[i]),
                )
            })
            .collect();
        let sampler = rss_sampler(Arc::clone(&stop));
        Flood {
            stop,
            threads,
            counters,
            sampler,
            start,
        }
    }

    /// How long it has run.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Stops every sender and the sampler.
    pub fn stop(self) -> FloodReport {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("flooder");
        }
        let elapsed = self.start.elapsed();
        let rss_peak_kb = self.sampler.join().expect("sampler");
        let mut sent = [0; 3];
        for (s, c) in sent.iter_mut().zip(&self.counters) {
            *s = c.load(Ordering::Relaxed);
        }
        FloodReport {
            sent,
            elapsed,
            rss_peak_kb,
        }
    }
}
