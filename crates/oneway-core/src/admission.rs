//! The listener's admission policy (`spec/handshake.md` §7), as a value tests can drive:
//! token expiry, single use, and bounded, expiring state for dialers that have not yet
//! proven the secret, and a per-source rate limit on the checks that cost the listener a
//! MESSAGE-INTEGRITY computation. Time is passed in; nothing here reads a clock.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use oneway_token::Token;

/// Limits on what a listener keeps for one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Most dialers between their first valid check and their proof. A flood of valid-looking
    /// checks can hold at most this many engines.
    pub max_pending: usize,
    /// How long a dialer has from its first valid check to a verified proof (ICE, DTLS, SCTP and
    /// the proof must all fit in it).
    pub pending_timeout: Duration,
    /// Most authenticated connections at once.
    pub max_connections: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_pending: 256,
            pending_timeout: Duration::from_secs(15),
            max_connections: 4096,
        }
    }
}

/// Why a listener refused a dialer. `code()` names are stable (logs, JSON events, reports).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The token has expired.
    #[error("token expired at {expired_at} (unix seconds); now is {now}")]
    Expired {
        /// The token's expiry.
        expired_at: u64,
        /// When the dialer arrived.
        now: u64,
    },
    /// A single-use token was already used by another dialer.
    #[error("single-use token already used")]
    AlreadyUsed,
    /// Too many dialers are between first check and proof.
    #[error("{max} dialers already pending")]
    TooManyPending {
        /// The limit.
        max: usize,
    },
    /// Too many authenticated connections.
    #[error("{max} connections already open")]
    TooManyConnections {
        /// The limit.
        max: usize,
    },
    /// The dialer did not complete the proof in time.
    #[error("no valid proof within {0:?}")]
    ProofTimeout(Duration),
    /// The dialer's proof did not verify.
    #[error("in-band proof failed: {0}")]
    ProofFailed(String),
}

impl Refusal {
    /// Stable short name.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Expired { .. } => "token-expired",
            Refusal::AlreadyUsed => "token-used",
            Refusal::TooManyPending { .. } => "too-many-pending",
            Refusal::TooManyConnections { .. } => "too-many-connections",
            Refusal::ProofTimeout(_) => "proof-timeout",
            Refusal::ProofFailed(_) => "auth-failed",
        }
    }
}

/// Admission state of one token.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    expires_at: Option<u64>,
    single_use: bool,
    used: bool,
    /// Keyed by the dialer's address, which the attacker chooses: std `HashMap` (SipHash).
    pending: HashMap<SocketAddr, Instant>,
    connections: usize,
}

impl Admission {
    /// Admission for `token` under `limits`.
    pub fn new(token: &Token, limits: AdmissionLimits) -> Self {
        Admission {
            limits,
            expires_at: token.expires_at,
            single_use: token.single_use,
            used: false,
            pending: HashMap::new(),
            connections: 0,
        }
    }

    /// A first valid check arrived from `src`: admit it as pending, or refuse.
    pub fn admit(&mut self, now: Instant, now_unix: u64, src: SocketAddr) -> Result<(), Refusal> {
        if let Some(expired_at) = self.expires_at
            && now_unix >= expired_at
        {
            return Err(Refusal::Expired {
                expired_at,
                now: now_unix,
            });
        }
        if self.single_use && self.used {
            return Err(Refusal::AlreadyUsed);
        }
        if self.pending.contains_key(&src) {
            return Ok(());
        }
        self.expire(now);
        if self.pending.len() >= self.limits.max_pending {
            return Err(Refusal::TooManyPending {
                max: self.limits.max_pending,
            });
        }
        if self.connections >= self.limits.max_connections {
            return Err(Refusal::TooManyConnections {
                max: self.limits.max_connections,
            });
        }
        self.pending.insert(src, now + self.limits.pending_timeout);
        Ok(())
    }

    /// The dialer at `src` proved the secret. For a single-use token only the first succeeds.
    pub fn authenticated(&mut self, src: SocketAddr) -> Result<(), Refusal> {
        self.pending.remove(&src);
        if self.single_use && self.used {
            return Err(Refusal::AlreadyUsed);
        }
        self.used = true;
        self.connections += 1;
        Ok(())
    }

    /// The pending dialer at `src` failed or left before its proof.
    pub fn abandoned(&mut self, src: SocketAddr) {
        self.pending.remove(&src);
    }

    /// An authenticated connection ended.
    pub fn closed(&mut self) {
        self.connections = self.connections.saturating_sub(1);
    }

    /// Removes and returns the pending dialers whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let overdue: Vec<SocketAddr> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(a, _)| *a)
            .collect();
        for addr in &overdue {
            self.pending.remove(addr);
        }
        overdue
    }

    /// The earliest pending deadline, to schedule the next [`Admission::expire`].
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }

    /// Dialers currently pending.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Authenticated connections currently open.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The limits in force.
    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }
}

/// Most source addresses a listener routes to one dialer's engine. A dialer has a handful of
/// candidates; a token holder repeating one USERNAME from many (possibly spoofed) addresses
/// must not grow the routing table without bound, so beyond this the oldest address but the
/// first is forgotten (a genuine dialer's next check from it brings it back).
pub const MAX_ADDRESSES_PER_DIALER: usize = 8;

/// Routes `addr` to the dialer `key` in a listener's address table `by_addr`. `addrs` are the
/// addresses routed to that dialer, oldest first; the first is the one it was admitted from,
/// which [`Admission`] knows it by (its pending timeout and its count), so it stays routed for
/// the dialer's lifetime. Beyond [`MAX_ADDRESSES_PER_DIALER`] the oldest of the others is
/// forgotten (removed from `by_addr` if it still routes to `key`). Returns the address it
/// forgot, for the listener's log.
pub fn route_dialer_address<K: Copy + Eq>(
    by_addr: &mut HashMap<SocketAddr, K>,
    addrs: &mut VecDeque<SocketAddr>,
    key: K,
    addr: SocketAddr,
) -> Option<SocketAddr> {
    if by_addr.insert(addr, key) == Some(key) {
        return None;
    }
    addrs.push_back(addr);
    let mut forgotten = None;
    while addrs.len() > MAX_ADDRESSES_PER_DIALER {
        if let Some(old) = addrs.remove(1)
            && by_addr.get(&old) == Some(&key)
        {
            by_addr.remove(&old);
            forgotten = Some(old);
        }
    }
    forgotten
}

/// Per-source limit on STUN checks that fail MESSAGE-INTEGRITY verification, `spec/security.md`
/// §4. Each failure costs the listener an HMAC and a source that keeps failing is an attacker
/// (it may have seen the token ufrag on path), so once a source has used up its budget of
/// failures, its further checks are dropped **before** verification until the budget refills.
/// Sources whose checks verify are never charged, so many legitimate dialers behind one address
/// are not slowed down. Sources are counted per IPv4 address or IPv6 /64 prefix (ports and
/// interface ids are free for an attacker to vary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceRateLimit {
    /// Sustained failed checks per second one source may have verified.
    pub per_second: u32,
    /// Failed checks one source may have verified in a burst above the sustained rate.
    pub burst: u32,
    /// Most sources tracked at once. When the table is full of recently failing sources, a
    /// new failing source is not tracked (its checks go on being verified): a flood from many
    /// (spoofed) addresses cannot make the table grow or lock out other sources.
    pub max_sources: usize,
}

impl Default for SourceRateLimit {
    /// 20 failures/s with a burst of 50 per source, 4096 sources: a dialer never fails
    /// integrity with a genuine token, and a flooding source costs at most 20 HMACs/s.
    fn default() -> Self {
        SourceRateLimit {
            per_second: 20,
            burst: 50,
            max_sources: 4096,
        }
    }
}

/// How often a full [`SourceLimiter`] table is swept for sources whose budget has refilled, at
/// most: sweeping is linear in the table size, so it must not run per datagram.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets of failed checks per source, bounded by [`SourceRateLimit::max_sources`].
#[derive(Debug)]
pub struct SourceLimiter {
    limit: SourceRateLimit,
    /// Keyed by attacker-chosen addresses: std `HashMap` (SipHash).
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl SourceLimiter {
    /// A limiter enforcing `limit`.
    pub fn new(limit: SourceRateLimit) -> Self {
        SourceLimiter {
            limit,
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// The key a source is counted under: the IPv4 address, or the IPv6 /64 prefix (an
    /// IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn source_key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * f64::from(self.limit.per_second)).min(self.burst());
        bucket.last = now;
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit.burst.max(1))
    }

    /// Whether a check from `source` may be verified at `now`: `false` once the source has used
    /// up its budget of failures (drop the check unverified, code `rate-limited`).
    pub fn allows(&mut self, now: Instant, source: IpAddr) -> bool {
        let key = Self::source_key(source);
        let Some(mut bucket) = self.buckets.get(&key).copied() else {
            return true;
        };
        self.refill(&mut bucket, now);
        self.buckets.insert(key, bucket);
        bucket.tokens >= 1.0
    }

    /// Charges one failed verification to `source`. Returns `false` if the source could not be
    /// tracked because the table is full of active sources.
    pub fn failed(&mut self, now: Instant, source: IpAddr) -> bool {
        let key = Self::source_key(source);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.limit.max_sources {
            self.sweep(now);
            if self.buckets.len() >= self.limit.max_sources {
                return false;
            }
        }
        let mut bucket = self.buckets.get(&key).copied().unwrap_or(Bucket {
            tokens: self.burst(),
            last: now,
        });
        self.refill(&mut bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
        self.buckets.insert(key, bucket);
        true
    }

    /// Forgets sources whose budget has refilled, at most once per [`SWEEP_INTERVAL`].
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_INTERVAL)
        {
            return;
        }
        self.last_sweep = Some(now);
        let rate = f64::from(self.limit.per_second);
        let burst = self.burst();
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
        });
    }

    /// Sources currently tracked (at most [`SourceRateLimit::max_sources`]).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// The limit in force.
    pub fn limit(&self) -> &SourceRateLimit {
        &self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oneway_token::{Candidate, Fingerprint, Profile, Secret};

    fn token() -> Token {
        Token::new(
            Profile::Native,
            Fingerprint([1; 32]),
            Secret([2; 16]),
            vec![Candidate::udp_host([192, 0, 2, 1], 9)],
        )
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 1, 0, 2], port))
    }

    #[test]
    fn routing_keeps_the_admitted_address_and_forgets_the_oldest_other() {
        let mut by_addr = HashMap::new();
        let mut addrs = VecDeque::from([addr(1)]);
        by_addr.insert(addr(1), 7u64);
        let mut forgotten = Vec::new();
        for port in 2..=20 {
            forgotten.extend(route_dialer_address(
                &mut by_addr,
                &mut addrs,
                7,
                addr(port),
            ));
        }
        assert_eq!(addrs.len(), MAX_ADDRESSES_PER_DIALER);
        assert_eq!(by_addr.len(), MAX_ADDRESSES_PER_DIALER);
        assert_eq!(
            by_addr.get(&addr(1)),
            Some(&7),
            "the admitted address stays routed"
        );
        assert_eq!(addrs[0], addr(1));
        let first_forgotten: Vec<SocketAddr> = (2..=13).map(addr).collect();
        assert_eq!(forgotten, first_forgotten, "the oldest others go, in order");
        // An address already routed to the dialer changes nothing.
        assert_eq!(
            route_dialer_address(&mut by_addr, &mut addrs, 7, addr(20)),
            None
        );
        assert_eq!(addrs.len(), MAX_ADDRESSES_PER_DIALER);
    }

    #[test]
    fn pending_state_is_bounded_and_expires() {
        let limits = AdmissionLimits {
            max_pending: 3,
            pending_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let mut a = Admission::new(&token(), limits);
        let t0 = Instant::now();
        for port in 1..=3 {
            a.admit(t0, 0, addr(port)).expect("room");
        }
        assert_eq!(
            a.admit(t0, 0, addr(1)),
            Ok(()),
            "a known dialer is not counted twice"
        );
        assert_eq!(
            a.admit(t0, 0, addr(4)),
            Err(Refusal::TooManyPending { max: 3 })
        );
        assert_eq!(a.next_deadline(), Some(t0 + Duration::from_secs(5)));
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            a.admit(later, 0, addr(4)),
            Ok(()),
            "overdue dialers make room"
        );
        assert_eq!(a.pending(), 1);
        assert_eq!(a.expire(later + Duration::from_secs(6)), vec![addr(4)]);
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn single_use_admits_one_authenticated_dialer() {
        let mut t = token();
        t.single_use = true;
        let mut a = Admission::new(&t, AdmissionLimits::default());
        let now = Instant::now();
        a.admit(now, 0, addr(1)).expect("first");
        a.admit(now, 0, addr(2)).expect("second may try");
        assert_eq!(a.authenticated(addr(1)), Ok(()));
        assert_eq!(a.authenticated(addr(2)), Err(Refusal::AlreadyUsed));
        assert_eq!(a.admit(now, 0, addr(3)), Err(Refusal::AlreadyUsed));
        assert_eq!(a.connections(), 1);
    }

    #[test]
    fn expiry_is_checked_at_admission() {
        let mut t = token();
        t.expires_at = Some(100);
        let mut a = Admission::new(&t, AdmissionLimits::default());
        assert_eq!(a.admit(Instant::now(), 99, addr(1)), Ok(()));
        assert_eq!(
            a.admit(Instant::now(), 100, addr(2)).map_err(|r| r.code()),
            Err("token-expired")
        );
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    /// Offers `n` bad checks from `source` at `at(i)`; returns how many were verified.
    fn flood(l: &mut SourceLimiter, source: IpAddr, n: u64, at: impl Fn(u64) -> Instant) -> usize {
        let mut verified = 0;
        for i in 0..n {
            let now = at(i);
            if l.allows(now, source) {
                verified += 1;
                l.failed(now, source);
            }
        }
        verified
    }

    #[test]
    fn a_failing_source_gets_its_burst_then_its_rate() {
        let mut l = SourceLimiter::new(SourceRateLimit {
            per_second: 10,
            burst: 5,
            max_sources: 16,
        });
        let t0 = Instant::now();
        assert_eq!(flood(&mut l, ip(1), 1000, |_| t0), 5, "the burst, no more");
        assert!(l.allows(t0, ip(2)), "other sources unaffected");
        // 10 000 bad checks over the next 2 s: 10 verified per second.
        let verified = flood(&mut l, ip(1), 10_000, |i| {
            t0 + Duration::from_micros((i + 1) * 200)
        });
        assert!(
            (19..=21).contains(&verified),
            "{verified} verified in 2 s at 10/s"
        );
    }

    #[test]
    fn sources_that_verify_are_never_limited() {
        let mut l = SourceLimiter::new(SourceRateLimit {
            per_second: 1,
            burst: 1,
            max_sources: 16,
        });
        let now = Instant::now();
        assert!((0..10_000).all(|_| l.allows(now, ip(1))));
        assert_eq!(l.tracked(), 0, "no state for sources that never failed");
    }

    #[test]
    fn ports_and_ipv6_interface_ids_share_a_budget() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("v6");
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().expect("v6");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert_eq!(SourceLimiter::source_key(a), SourceLimiter::source_key(b));
        assert_ne!(
            SourceLimiter::source_key(a),
            SourceLimiter::source_key(other)
        );
        let mapped: IpAddr = "::ffff:198.51.100.1".parse().expect("mapped");
        assert_eq!(SourceLimiter::source_key(mapped), ip(1));
        let mut l = SourceLimiter::new(SourceRateLimit {
            per_second: 1,
            burst: 2,
            max_sources: 16,
        });
        let now = Instant::now();
        l.failed(now, a);
        l.failed(now, b);
        assert!(!l.allows(now, a), "a and b share one /64 budget");
        assert!(l.allows(now, other));
    }

    #[test]
    fn the_source_table_is_bounded_and_fails_open() {
        let mut l = SourceLimiter::new(SourceRateLimit {
            per_second: 1,
            burst: 1,
            max_sources: 100,
        });
        let t0 = Instant::now();
        let tracked = (0..10_000u32)
            .filter(|i| l.failed(t0, IpAddr::from(i.to_be_bytes())))
            .count();
        assert_eq!(tracked, 100);
        assert_eq!(l.tracked(), 100, "never more than max_sources");
        let untracked = IpAddr::from(20_000u32.to_be_bytes());
        assert!(l.allows(t0, untracked), "an untracked source is verified");
        assert!(
            !l.allows(t0, IpAddr::from(0u32.to_be_bytes())),
            "tracked ones stay limited"
        );
        // Once the tracked sources' budgets have refilled, a sweep makes room again.
        let later = t0 + Duration::from_secs(2);
        assert!(l.failed(later, untracked));
        assert_eq!(l.tracked(), 1);
    }
}
