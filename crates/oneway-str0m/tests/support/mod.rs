//! The shared adversarial-test helpers (`oneway-testkit`), plus the few that take a str0m
//! `Listener` directly.

#![allow(dead_code)]

use std::time::Duration;

use oneway_str0m::Listener;
pub use oneway_testkit::*;

/// [`oneway_testkit::barrier`] against the listener's first address.
pub fn barrier(prober: &Prober, listener: &Listener) -> Vec<Vec<u8>> {
    oneway_testkit::barrier(prober, listener.local_addrs()[0], listener.token())
}

/// Counts the listener events waiting now.
pub fn take_events(listener: &mut Listener) -> EventCounts {
    EventCounts::from_events(std::iter::from_fn(|| listener.try_next_event()))
}

/// Waits until `n` refusals with `code` have arrived (counting into `counts`); bounded.
pub async fn wait_refusals(
    listener: &mut Listener,
    counts: &mut EventCounts,
    code: &str,
    n: usize,
    within: Duration,
) {
    oneway_testkit::wait_refusals!(listener, counts, code, n, within);
}
