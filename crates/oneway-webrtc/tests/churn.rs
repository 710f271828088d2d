//! Loss and churn for the webrtc-rs listener and dialer (issue 9), and the mixed pairs with
//! str0m: the shared bodies of `oneway_testkit::churn`, which the str0m stack runs too
//! (`crates/oneway-str0m/tests/churn.rs`). Loss comes from the userspace proxy in
//! `oneway_testkit::impair` (this kernel has no netem).
//!
//! `loss_sweep` and `loss_sweep_str0m_dialer` (ignored; `ci/loss-sweep.sh`) dial at increasing
//! loss levels and print the success rate and median connect time of each.

use oneway_testkit::churn;
use oneway_testkit::stack::{Str0m, WebrtcRs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_carries_data_at_ten_percent_loss() {
    churn::connects_and_carries_data_at_loss::<WebrtcRs, WebrtcRs>(0.10, &[1, 2, 3]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn str0m_dialer_connects_to_webrtc_listener_at_ten_percent_loss() {
    churn::connects_and_carries_data_at_loss::<Str0m, WebrtcRs>(0.10, &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_dialer_connects_to_str0m_listener_at_ten_percent_loss() {
    churn::connects_and_carries_data_at_loss::<WebrtcRs, Str0m>(0.10, &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_killed_mid_handshake_leaves_no_state() {
    churn::a_dialer_killed_mid_handshake_leaves_no_state::<WebrtcRs, WebrtcRs>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_str0m_dialer_killed_mid_handshake_leaves_no_state() {
    churn::a_dialer_killed_mid_handshake_leaves_no_state::<Str0m, WebrtcRs>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_that_moved_addresses_is_still_reaped() {
    churn::a_dialer_that_moved_addresses_is_still_reaped::<WebrtcRs>().await;
}

/// With a 3 s consent timeout (`ListenerConfig::consent_timeout`), so it takes seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialer_killed_mid_transfer_leaves_no_state() {
    let consent = Some(std::time::Duration::from_secs(3));
    churn::a_dialer_killed_mid_transfer_leaves_no_state::<WebrtcRs, WebrtcRs>(consent).await;
}

/// The same with the default consent timeout (RFC 7675's 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: waits out the default 30 s consent timeout"]
async fn a_dialer_killed_mid_transfer_leaves_no_state_default_consent_timeout() {
    churn::a_dialer_killed_mid_transfer_leaves_no_state::<WebrtcRs, WebrtcRs>(None).await;
}

/// A str0m dialer killed mid-transfer, against the webrtc-rs listener (3 s consent timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_str0m_dialer_killed_mid_transfer_leaves_no_state() {
    let consent = Some(std::time::Duration::from_secs(3));
    churn::a_dialer_killed_mid_transfer_leaves_no_state::<Str0m, WebrtcRs>(consent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_survive_one_going_away() {
    churn::many_connections_survive_one_going_away::<WebrtcRs, WebrtcRs>(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts() {
    churn::ordered_across_restarts::<WebrtcRs, WebrtcRs>(0.0, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts_at_five_percent_loss() {
    churn::ordered_across_restarts::<WebrtcRs, WebrtcRs>(0.05, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts_str0m_dialer_at_five_percent_loss() {
    churn::ordered_across_restarts::<Str0m, WebrtcRs>(0.05, 3000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_across_ice_restarts_str0m_listener_at_five_percent_loss() {
    churn::ordered_across_restarts::<WebrtcRs, Str0m>(0.05, 3000).await;
}

/// Dials `ONEWAY_SWEEP_DIALS` times (default 10) at each of `ONEWAY_SWEEP_LEVELS` and prints
/// how many connected. Run with `ci/loss-sweep.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: dozens of dials at high loss; run with ci/loss-sweep.sh"]
async fn loss_sweep() {
    let (dials, levels) = churn::sweep_params();
    churn::loss_sweep::<WebrtcRs, WebrtcRs>(dials, &levels).await;
}

/// The sweep with a str0m dialer against the webrtc-rs listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: dozens of dials at high loss; run with ci/loss-sweep.sh"]
async fn loss_sweep_str0m_dialer() {
    let (dials, levels) = churn::sweep_params();
    churn::loss_sweep::<Str0m, WebrtcRs>(dials, &levels).await;
}
