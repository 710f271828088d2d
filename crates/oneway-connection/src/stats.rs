//! What a listener holds and what it dropped, the same for every stack: the driver task updates
//! a [`ListenerCounters`] as it goes, the application reads [`ListenerStats`] snapshots.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use oneway_core::demux::Dropped;

/// A snapshot of what a listener holds, for tests and monitoring (`Listener::stats` of each
/// stack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// Per-dialer engines alive (pending and authenticated).
    pub engines: usize,
    /// Dialers between their first valid check and their proof (admission's count).
    pub pending: usize,
    /// Authenticated connections open (admission's count).
    pub connections: usize,
    /// Routing entries: dialer addresses plus listener ufrags.
    pub routes: usize,
    /// Sources the per-source limiter tracks (at most `SourceRateLimit::max_sources`).
    pub limited_sources: usize,
    /// Datagrams from unknown addresses dropped before any STUN work: not STUN, not a Binding
    /// request, unparseable, or without a USERNAME.
    pub dropped_not_a_check: u64,
    /// Checks dropped for a USERNAME outside the grammar or for another token.
    pub dropped_unknown_token: u64,
    /// Checks whose MESSAGE-INTEGRITY was verified and failed.
    pub dropped_bad_integrity: u64,
    /// Checks dropped unverified because their source used up its budget of failures.
    pub dropped_rate_limited: u64,
}

/// The state half of [`ListenerStats`], as a driver publishes it after each step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerState {
    /// See [`ListenerStats::engines`].
    pub engines: usize,
    /// See [`ListenerStats::pending`].
    pub pending: usize,
    /// See [`ListenerStats::connections`].
    pub connections: usize,
    /// See [`ListenerStats::routes`].
    pub routes: usize,
    /// See [`ListenerStats::limited_sources`].
    pub limited_sources: usize,
}

/// Where a listener's driver publishes [`ListenerStats`]; shared (in an `Arc`) with the
/// `Listener` handle, which reads it without waiting for the driver.
#[derive(Debug, Default)]
pub struct ListenerCounters {
    engines: AtomicUsize,
    pending: AtomicUsize,
    connections: AtomicUsize,
    routes: AtomicUsize,
    limited_sources: AtomicUsize,
    not_a_check: AtomicU64,
    unknown_token: AtomicU64,
    bad_integrity: AtomicU64,
    rate_limited: AtomicU64,
}

impl ListenerCounters {
    /// Replaces the state half (engines, admission counts, routes, limiter size).
    pub fn publish(&self, state: ListenerState) {
        self.engines.store(state.engines, Ordering::Relaxed);
        self.pending.store(state.pending, Ordering::Relaxed);
        self.connections.store(state.connections, Ordering::Relaxed);
        self.routes.store(state.routes, Ordering::Relaxed);
        self.limited_sources
            .store(state.limited_sources, Ordering::Relaxed);
    }

    /// Counts a datagram from an unknown address that the demux dropped, by its reason.
    pub fn dropped(&self, reason: &Dropped) {
        let counter = match reason {
            Dropped::BadIntegrity => &self.bad_integrity,
            Dropped::UnknownToken | Dropped::Username(_) => &self.unknown_token,
            _ => &self.not_a_check,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a check dropped unverified by the per-source limiter.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of everything.
    pub fn snapshot(&self) -> ListenerStats {
        ListenerStats {
            engines: self.engines.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            routes: self.routes.load(Ordering::Relaxed),
            limited_sources: self.limited_sources.load(Ordering::Relaxed),
            dropped_not_a_check: self.not_a_check.load(Ordering::Relaxed),
            dropped_unknown_token: self.unknown_token.load(Ordering::Relaxed),
            dropped_bad_integrity: self.bad_integrity.load(Ordering::Relaxed),
            dropped_rate_limited: self.rate_limited.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason() {
        let c = ListenerCounters::default();
        c.dropped(&Dropped::BadIntegrity);
        c.dropped(&Dropped::UnknownToken);
        c.dropped(&Dropped::NotStun(Some(22)));
        c.rate_limited();
        c.publish(ListenerState {
            engines: 2,
            pending: 1,
            connections: 1,
            routes: 4,
            limited_sources: 3,
        });
        let s = c.snapshot();
        assert_eq!(
            (
                s.dropped_bad_integrity,
                s.dropped_unknown_token,
                s.dropped_not_a_check,
                s.dropped_rate_limited
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (
                s.engines,
                s.pending,
                s.connections,
                s.routes,
                s.limited_sources
            ),
            (2, 1, 1, 4, 3)
        );
    }
}
