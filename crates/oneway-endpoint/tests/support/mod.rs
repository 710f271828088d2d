//! The shared adversarial-test helpers (`oneway-testkit`), with the ones that take a listener in
//! their form for any stack's.

#![allow(dead_code, unused_imports)]

pub use oneway_testkit::stack::{barrier, take_events, wait_refusals};
pub use oneway_testkit::*;
