//! The listener's side of the reply fallback (`spec/handshake.md` §11), sans-IO: given the
//! dialer's credentials and candidates from a verified reply code, send ICE connectivity checks
//! towards them on a bounded schedule, so the listener's NAT or firewall lets the dialer's next
//! check in (hole punching), and the dialer's agent answers with a check of its own.
//!
//! A reply code is an instruction to send packets, so everything here is bounded
//! (`spec/security.md` §4.1): at most [`PunchLimits::max_active`] codes at once, at most
//! [`PunchLimits::checks_per_candidate`] checks to each of at most [`MAX_REPLY_CANDIDATES`]
//! addresses per code, and at most [`PunchLimits::rate_per_sec`] checks per second across all
//! codes; a code already taken is refused (`reply-replayed`). Checks are built with
//! webrtc-rs's `rtc-stun`.
//!
//! The caller drives it like every sans-IO part here: [`Puncher::start`] for each verified
//! code, then [`Puncher::poll_transmit`] until `None` and [`Puncher::poll_timeout`] for the
//! next wake; [`Puncher::stop`] once the dialer's check arrived.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_stun::attributes::{ATTR_ICE_CONTROLLED, ATTR_PRIORITY, ATTR_USERNAME};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};

/// Most dialer candidates one reply code names (`spec/token.md` §12.2).
pub const MAX_REPLY_CANDIDATES: usize = 4;
/// The PRIORITY of the listener's checks: a peer-reflexive host candidate (RFC 8445 §5.1.2.1,
/// type preference 110, local preference 65535, component 1).
pub const PUNCH_PRIORITY: u32 = (110 << 24) | (65535 << 8) | 255;

/// The bounds of a listener's punching (`spec/security.md` §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchLimits {
    /// Most reply codes being punched at once; another is refused with `reply-busy`.
    pub max_active: usize,
    /// Checks sent to each candidate of one code, at most.
    pub checks_per_candidate: u32,
    /// The first interval between two checks to one candidate; it doubles after each check up
    /// to [`PunchLimits::max_interval`].
    pub first_interval: Duration,
    /// The longest interval between two checks to one candidate.
    pub max_interval: Duration,
    /// Checks per second across all codes (a token bucket refilled at this rate).
    pub rate_per_sec: u32,
    /// Checks that may leave at once when the bucket is full.
    pub burst: u32,
    /// How long a taken code is remembered, to refuse it again (`reply-replayed`): at least
    /// the lifetime of a code plus the clock skew a listener accepts.
    pub replay_window: Duration,
    /// Most codes remembered; when full, a new code is refused with `reply-busy` until the
    /// oldest is forgotten, so a replay can never slip through a full memory.
    pub max_remembered: usize,
}

impl Default for PunchLimits {
    fn default() -> Self {
        PunchLimits {
            max_active: 8,
            checks_per_candidate: 12,
            first_interval: Duration::from_millis(50),
            max_interval: Duration::from_millis(1500),
            rate_per_sec: 50,
            burst: 16,
            replay_window: Duration::from_secs(660),
            max_remembered: 4096,
        }
    }
}

impl PunchLimits {
    /// How long one code is punched at most: the sum of its intervals.
    pub fn duration(&self) -> Duration {
        let mut total = Duration::ZERO;
        let mut interval = self.first_interval;
        for _ in 1..self.checks_per_candidate {
            total += interval;
            interval = (interval * 2).min(self.max_interval);
        }
        total
    }
}

/// What the listener punches towards: one verified reply code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchTarget {
    /// The dialer's ICE ufrag.
    pub dialer_ufrag: String,
    /// The dialer's ICE pwd (the checks' MESSAGE-INTEGRITY key).
    pub dialer_pwd: String,
    /// The listener ufrag as the dialer composed it (`token-ufrag "+"|"/" dialer-pwd`): the
    /// second half of the checks' USERNAME, and the key the dialer's own checks arrive with.
    pub listener_ufrag: String,
    /// The dialer's candidates, in the code's order (at most [`MAX_REPLY_CANDIDATES`]).
    pub candidates: Vec<SocketAddr>,
    /// What identifies the code against replay (its tag).
    pub replay_key: [u8; 8],
}

/// Why a reply code was not punched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PunchRefusal {
    /// This code was taken before (within [`PunchLimits::replay_window`]).
    #[error("this reply code was already taken")]
    Replayed,
    /// Too many codes are being punched, or remembered, at once.
    #[error("the listener is punching {0} reply codes already; try again in a few seconds")]
    Busy(usize),
    /// The code names no candidate this listener can send to, or too many.
    #[error("the reply code names no usable candidate ({0})")]
    NoUsableCandidate(String),
    /// A connection with this dialer exists already: nothing to punch.
    #[error("this dialer is connected already")]
    AlreadyConnected,
}

impl PunchRefusal {
    /// Stable cause code (`spec/handshake.md` §11).
    pub fn code(&self) -> &'static str {
        match self {
            PunchRefusal::Replayed => "reply-replayed",
            PunchRefusal::Busy(_) => "reply-busy",
            PunchRefusal::NoUsableCandidate(_) => "reply-no-candidate",
            PunchRefusal::AlreadyConnected => "reply-unneeded",
        }
    }
}

/// One check to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchTransmit {
    /// The dialer candidate it goes to.
    pub destination: SocketAddr,
    /// The STUN Binding request.
    pub contents: Vec<u8>,
}

#[derive(Debug)]
struct Punch {
    target: PunchTarget,
    /// Checks sent to each candidate so far (all candidates advance together).
    rounds: u32,
    /// Index of the next candidate of the current round.
    next_candidate: usize,
    next_at: Instant,
    interval: Duration,
}

/// The listener's punching state: the active codes, the codes taken, the rate budget.
#[derive(Debug)]
pub struct Puncher {
    limits: PunchLimits,
    tie_breaker: u64,
    active: Vec<Punch>,
    /// Taken codes, oldest first, with the instant each is forgotten.
    remembered: VecDeque<(Instant, [u8; 8])>,
    remembered_set: HashSet<[u8; 8]>,
    /// Listener ufrags and candidates of codes punched recently, oldest first (for
    /// [`Puncher::was_punched`]).
    punched: VecDeque<(Instant, String, Vec<SocketAddr>)>,
    tokens: f64,
    refilled: Instant,
    sent: u64,
}

impl Puncher {
    /// A puncher with `limits`; `tie_breaker` is the ICE-CONTROLLED value of its checks
    /// (random, RFC 8445 §7.1.1).
    pub fn new(now: Instant, limits: PunchLimits, tie_breaker: u64) -> Self {
        let tokens = f64::from(limits.burst);
        Puncher {
            limits,
            tie_breaker,
            active: Vec::new(),
            remembered: VecDeque::new(),
            remembered_set: HashSet::new(),
            punched: VecDeque::new(),
            tokens,
            refilled: now,
            sent: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &PunchLimits {
        &self.limits
    }

    /// Starts punching towards `target`, whose code was decoded and verified (tag, age).
    pub fn start(&mut self, now: Instant, target: PunchTarget) -> Result<(), PunchRefusal> {
        self.forget(now);
        if self.remembered_set.contains(&target.replay_key) {
            return Err(PunchRefusal::Replayed);
        }
        if target.candidates.is_empty() || target.candidates.len() > MAX_REPLY_CANDIDATES {
            return Err(PunchRefusal::NoUsableCandidate(format!(
                "{} candidates; 1 to {MAX_REPLY_CANDIDATES} are allowed",
                target.candidates.len()
            )));
        }
        if self.active.len() >= self.limits.max_active {
            return Err(PunchRefusal::Busy(self.active.len()));
        }
        if self.remembered.len() >= self.limits.max_remembered {
            return Err(PunchRefusal::Busy(self.remembered.len()));
        }
        self.remembered
            .push_back((now + self.limits.replay_window, target.replay_key));
        self.remembered_set.insert(target.replay_key);
        self.punched.push_back((
            now + self.limits.replay_window,
            target.listener_ufrag.clone(),
            target.candidates.clone(),
        ));
        self.active.push(Punch {
            target,
            rounds: 0,
            next_candidate: 0,
            next_at: now,
            interval: self.limits.first_interval,
        });
        Ok(())
    }

    /// Stops punching for the dialer whose checks arrive with `listener_ufrag` (its own check
    /// got through). Returns whether a code for it was being punched.
    pub fn stop(&mut self, listener_ufrag: &str) -> bool {
        let before = self.active.len();
        self.active
            .retain(|p| p.target.listener_ufrag != listener_ufrag);
        before != self.active.len()
    }

    /// Whether the listener checked towards `source` for the dialer whose checks arrive with
    /// `listener_ufrag` (a code of its was taken within [`PunchLimits::replay_window`]): a first
    /// check of that dialer from there came up by the reply route.
    pub fn was_punched(&self, listener_ufrag: &str, source: SocketAddr) -> bool {
        self.punched
            .iter()
            .any(|(_, u, candidates)| u == listener_ufrag && candidates.contains(&source))
    }

    /// Codes being punched now.
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Checks sent since the start.
    pub fn checks_sent(&self) -> u64 {
        self.sent
    }

    /// The next check due at `now`, if the rate budget allows one.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<PunchTransmit> {
        self.refill(now);
        if self.tokens < 1.0 {
            return None;
        }
        let index = self
            .active
            .iter()
            .enumerate()
            .filter(|(_, p)| p.next_at <= now)
            .min_by_key(|(_, p)| p.next_at)
            .map(|(i, _)| i)?;
        let punch = &mut self.active[index];
        let destination = punch.target.candidates[punch.next_candidate];
        let contents = build_check(&punch.target, self.tie_breaker);
        punch.next_candidate += 1;
        if punch.next_candidate == punch.target.candidates.len() {
            punch.next_candidate = 0;
            punch.rounds += 1;
            punch.next_at = now + punch.interval;
            punch.interval = (punch.interval * 2).min(self.limits.max_interval);
            if punch.rounds >= self.limits.checks_per_candidate {
                self.active.swap_remove(index);
            }
        }
        self.tokens -= 1.0;
        self.sent += 1;
        // Building fails only without an HMAC provider: then nothing can be sent at all.
        Some(PunchTransmit {
            destination,
            contents: contents.ok()?,
        })
    }

    /// When [`Puncher::poll_transmit`] may next return a check.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let due = self.active.iter().map(|p| p.next_at).min()?;
        if self.tokens >= 1.0 {
            return Some(due);
        }
        let wait = (1.0 - self.tokens) / f64::from(self.limits.rate_per_sec.max(1));
        Some(due.max(self.refilled + Duration::from_secs_f64(wait)))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(self.limits.rate_per_sec))
            .min(f64::from(self.limits.burst));
        self.refilled = now;
    }

    fn forget(&mut self, now: Instant) {
        while let Some((until, key)) = self.remembered.front().copied() {
            if until > now {
                break;
            }
            self.remembered.pop_front();
            self.remembered_set.remove(&key);
        }
        while self
            .punched
            .front()
            .is_some_and(|(until, _, _)| *until <= now)
        {
            self.punched.pop_front();
        }
    }
}

/// A Binding request from the listener to the dialer (RFC 8445 §7.2.2): USERNAME
/// `<dialer ufrag>:<listener ufrag>`, PRIORITY, ICE-CONTROLLED (the listener stays the
/// controlled agent), MESSAGE-INTEGRITY with the dialer's pwd, FINGERPRINT.
pub fn build_check(target: &PunchTarget, tie_breaker: u64) -> Result<Vec<u8>, String> {
    let mut message = Message::new();
    message
        .build(&[
            Box::new(TransactionId::new()) as Box<dyn Setter>,
            Box::new(BINDING_REQUEST),
        ])
        .map_err(|e| e.to_string())?;
    let username = format!("{}:{}", target.dialer_ufrag, target.listener_ufrag);
    message.add(ATTR_USERNAME, username.as_bytes());
    message.add(ATTR_PRIORITY, &PUNCH_PRIORITY.to_be_bytes());
    message.add(ATTR_ICE_CONTROLLED, &tie_breaker.to_be_bytes());
    let provider = rtc_stun::crypto::default_provider().map_err(|e| e.to_string())?;
    MessageIntegrity::new_short_term_integrity_with_provider(
        target.dialer_pwd.clone(),
        provider.crypto(),
    )
    .add_to(&mut message)
    .map_err(|e| e.to_string())?;
    FINGERPRINT
        .add_to(&mut message)
        .map_err(|e| e.to_string())?;
    Ok(message.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::textattrs::TextAttribute;

    fn target(n: u8, candidates: usize) -> PunchTarget {
        PunchTarget {
            dialer_ufrag: format!("dial{n}"),
            dialer_pwd: "p".repeat(24),
            listener_ufrag: format!("tokenufr+{}", "p".repeat(24)),
            candidates: (0..candidates)
                .map(|i| SocketAddr::from(([192, 0, 2, n], 4000 + i as u16)))
                .collect(),
            replay_key: [n; 8],
        }
    }

    /// Drains every check due from `start` to `start + span`, stepping 1 ms; returns
    /// `(time since start, destination)` per check.
    fn drain(p: &mut Puncher, start: Instant, span: Duration) -> Vec<(Duration, SocketAddr)> {
        let mut out = Vec::new();
        let mut now = start;
        while now <= start + span {
            while let Some(t) = p.poll_transmit(now) {
                out.push((now - start, t.destination));
            }
            now += Duration::from_millis(1);
        }
        out
    }

    #[test]
    fn a_check_is_what_the_dialer_agent_verifies() {
        let t = target(1, 1);
        let bytes = build_check(&t, 7).unwrap();
        let mut m = Message::new();
        m.unmarshal_binary(&bytes).unwrap();
        assert_eq!(m.typ, BINDING_REQUEST);
        let username = TextAttribute::get_from_as(&m, ATTR_USERNAME).unwrap();
        assert_eq!(username.text, format!("dial1:{}", t.listener_ufrag));
        let provider = rtc_stun::crypto::default_provider().unwrap();
        MessageIntegrity::check(&mut m, t.dialer_pwd.as_bytes(), provider.crypto()).unwrap();
        assert!(
            MessageIntegrity::check(&mut m, b"another pwd of 22 chars", provider.crypto()).is_err()
        );
        let (controlled, _) = m.attributes.get(ATTR_ICE_CONTROLLED);
        assert_eq!(controlled.value, 7u64.to_be_bytes());
    }

    #[test]
    fn each_candidate_gets_a_bounded_backed_off_series() {
        let start = Instant::now();
        let limits = PunchLimits::default();
        let mut p = Puncher::new(start, limits.clone(), 1);
        p.start(start, target(1, 2)).unwrap();
        let sent = drain(&mut p, start, limits.duration() + Duration::from_secs(2));
        assert_eq!(sent.len(), 2 * limits.checks_per_candidate as usize);
        assert_eq!(p.active(), 0, "done after its series");
        // Both candidates, alternately; first at once, then 50 ms, 100 ms, … apart.
        assert_eq!(
            sent[0],
            (Duration::ZERO, SocketAddr::from(([192, 0, 2, 1], 4000)))
        );
        assert_eq!(sent[1].1, SocketAddr::from(([192, 0, 2, 1], 4001)));
        assert_eq!(sent[2].0, Duration::from_millis(50));
        assert_eq!(sent[4].0, Duration::from_millis(150));
        assert!(sent.last().unwrap().0 <= limits.duration());
    }

    #[test]
    fn a_flood_of_codes_never_exceeds_the_rate_or_the_active_bound() {
        let start = Instant::now();
        let limits = PunchLimits::default();
        let mut p = Puncher::new(start, limits.clone(), 1);
        let mut busy = 0;
        for n in 0..100u8 {
            match p.start(start, target(n, MAX_REPLY_CANDIDATES)) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.code(), "reply-busy");
                    busy += 1;
                }
            }
        }
        assert_eq!(busy, 100 - limits.max_active);
        let span = Duration::from_secs(3);
        let sent = drain(&mut p, start, span);
        // The bucket: a burst, then the rate; never more in any 1-second window than
        // burst + rate.
        let allowed = limits.burst as usize + limits.rate_per_sec as usize * 3;
        assert!(sent.len() <= allowed, "{} checks > {allowed}", sent.len());
        for window in 0..3u64 {
            let from = Duration::from_secs(window);
            let n = sent
                .iter()
                .filter(|(t, _)| *t >= from && *t < from + Duration::from_secs(1))
                .count();
            assert!(
                n <= (limits.burst + limits.rate_per_sec) as usize,
                "{n} checks in second {window}"
            );
        }
        // And the rate is used: the bucket refills.
        assert!(
            sent.len() >= limits.rate_per_sec as usize * 2,
            "{}",
            sent.len()
        );
    }

    #[test]
    fn a_replayed_code_is_refused_until_the_window_ends() {
        let start = Instant::now();
        let limits = PunchLimits::default();
        let mut p = Puncher::new(start, limits.clone(), 1);
        p.start(start, target(1, 1)).unwrap();
        assert_eq!(p.start(start, target(1, 1)), Err(PunchRefusal::Replayed));
        let later = start + limits.replay_window + Duration::from_secs(1);
        assert_eq!(p.start(later, target(1, 1)), Ok(()));
    }

    #[test]
    fn stop_ends_the_series_and_remembers_the_route() {
        let start = Instant::now();
        let mut p = Puncher::new(start, PunchLimits::default(), 1);
        let t = target(1, 1);
        p.start(start, t.clone()).unwrap();
        assert!(p.poll_transmit(start).is_some());
        assert!(p.stop(&t.listener_ufrag));
        assert!(p.poll_transmit(start + Duration::from_secs(1)).is_none());
        assert!(p.was_punched(&t.listener_ufrag, t.candidates[0]));
        assert!(!p.was_punched(&t.listener_ufrag, SocketAddr::from(([192, 0, 2, 9], 1))));
        assert!(!p.was_punched("another+ufrag", t.candidates[0]));
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn codes_without_candidates_or_with_too_many_are_refused() {
        let start = Instant::now();
        let mut p = Puncher::new(start, PunchLimits::default(), 1);
        assert_eq!(
            p.start(start, target(1, 0)).map_err(|e| e.code()),
            Err("reply-no-candidate")
        );
        assert_eq!(
            p.start(start, target(2, MAX_REPLY_CANDIDATES + 1))
                .map_err(|e| e.code()),
            Err("reply-no-candidate")
        );
    }
}
