//! Loss and churn against a str0m listener, with a str0m dialer: the shared bodies of
//! `oneway_testkit::churn` (connecting through a lossy path, dialers killed mid-handshake and
//! mid-transfer, many connections surviving one that goes away, a reliable ordered channel
//! across ICE restarts). The webrtc-rs stack and the mixed pairs run the same bodies in
//! `crates/oneway-webrtc/tests/churn.rs`.
//!
//! `loss_sweep` (ignored; `ci/loss-sweep.sh`) dials at increasing loss levels and prints the
//! success rate and median connect time of each.

use oneway_testkit::churn;
use oneway_testkit::stack::Str0m;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_carries_data_at_ten_percent_loss() {
    churn::connects_and_carries_data_at_loss::<Str0m, Str0m>(0.10, &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_killed_mid_handshake_leaves_no_state() {
    churn::a_dialer_killed_mid_handshake_leaves_no_state::<Str0m, Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_that_moved_addresses_is_still_reaped() {
    churn::a_dialer_that_moved_addresses_is_still_reaped::<Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_killed_mid_transfer_leaves_no_state() {
    // str0m's consent timeout is RFC 7675's 30 s, not settable: this test takes that long.
    churn::a_dialer_killed_mid_transfer_leaves_no_state::<Str0m, Str0m>(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_survive_one_going_away() {
    churn::many_connections_survive_one_going_away::<Str0m, Str0m>(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts() {
    churn::ordered_across_restarts::<Str0m, Str0m>(0.0, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts_at_five_percent_loss() {
    churn::ordered_across_restarts::<Str0m, Str0m>(0.05, 3000).await;
}

/// Dials `ONEWAY_SWEEP_DIALS` times (default 10) at each of `ONEWAY_SWEEP_LEVELS` and prints
/// how many connected. Run with `ci/loss-sweep.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: dozens of dials at high loss; run with ci/loss-sweep.sh"]
async fn loss_sweep() {
    let (dials, levels) = churn::sweep_params();
    churn::loss_sweep::<Str0m, Str0m>(dials, &levels).await;
}
