//! The listener's admission policy (`spec/handshake.md` §7), as a value tests can drive:
//! token expiry, single use, and bounded, expiring state for dialers that have not yet
//! proven the secret. Time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::net::SocketAddr;
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
}
