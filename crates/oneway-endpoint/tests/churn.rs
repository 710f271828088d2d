//! Loss and churn (issue 9) for every stack and the mixed pairs: the shared bodies of
//! `oneway_testkit::churn`, run over the shell with each engine. Loss comes from the userspace
//! proxy in `oneway_testkit::impair` (this kernel has no netem).
//!
//! `loss_sweep_*` (ignored; `ci/loss-sweep.sh`) dial at increasing loss levels and print the
//! success rate and median connect time of each.

use std::time::Duration;

use oneway_testkit::churn;
use oneway_testkit::stack::{Str0m, WebrtcRs};

/// The bodies every stack runs against its own listener.
macro_rules! same_stack {
    ($module:ident, $stack:ty, consent: $consent:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn connects_and_carries_data_at_ten_percent_loss() {
                churn::connects_and_carries_data_at_loss::<$stack, $stack>(0.10, &[1, 2, 3]).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dialer_killed_mid_handshake_leaves_no_state() {
                churn::a_dialer_killed_mid_handshake_leaves_no_state::<$stack, $stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dialer_that_moved_addresses_is_still_reaped() {
                churn::a_dialer_that_moved_addresses_is_still_reaped::<$stack>().await;
            }

            /// With the listener's consent timeout `$consent` (`None`: RFC 7675's 30 s).
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_dialer_killed_mid_transfer_leaves_no_state() {
                churn::a_dialer_killed_mid_transfer_leaves_no_state::<$stack, $stack>($consent)
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_hundred_connections_survive_one_going_away() {
                churn::many_connections_survive_one_going_away::<$stack, $stack>(100).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_message_lost_across_ice_restarts() {
                churn::ordered_across_restarts::<$stack, $stack>(0.0, 3000).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_message_lost_across_ice_restarts_at_five_percent_loss() {
                churn::ordered_across_restarts::<$stack, $stack>(0.05, 3000).await;
            }

            /// Dials `ONEWAY_SWEEP_DIALS` times (default 10) at each of `ONEWAY_SWEEP_LEVELS`
            /// and prints how many connected. Run with `ci/loss-sweep.sh`.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "slow: dozens of dials at high loss; run with ci/loss-sweep.sh"]
            async fn loss_sweep() {
                let (dials, levels) = churn::sweep_params();
                churn::loss_sweep::<$stack, $stack>(dials, &levels).await;
            }
        }
    };
}

// str0m's ICE reports a silent dialer after 15 s, so its listener keeps the default 30 s.
same_stack!(str0m, Str0m, consent: None);
same_stack!(webrtc_rs, WebrtcRs, consent: Some(Duration::from_secs(3)));

/// The webrtc-rs listener with the default consent timeout (RFC 7675's 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: waits out the default 30 s consent timeout"]
async fn a_webrtc_dialer_killed_mid_transfer_leaves_no_state_default_consent_timeout() {
    churn::a_dialer_killed_mid_transfer_leaves_no_state::<WebrtcRs, WebrtcRs>(None).await;
}

/// The mixed pairs (dialer, listener).
mod mixed {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn str0m_dialer_connects_to_webrtc_listener_at_ten_percent_loss() {
        churn::connects_and_carries_data_at_loss::<Str0m, WebrtcRs>(0.10, &[2]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webrtc_dialer_connects_to_str0m_listener_at_ten_percent_loss() {
        churn::connects_and_carries_data_at_loss::<WebrtcRs, Str0m>(0.10, &[2]).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_str0m_dialer_killed_mid_handshake_leaves_no_state() {
        churn::a_dialer_killed_mid_handshake_leaves_no_state::<Str0m, WebrtcRs>().await;
    }

    /// A str0m dialer killed mid-transfer, against the webrtc-rs listener (3 s consent).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_str0m_dialer_killed_mid_transfer_leaves_no_state() {
        let consent = Some(Duration::from_secs(3));
        churn::a_dialer_killed_mid_transfer_leaves_no_state::<Str0m, WebrtcRs>(consent).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_message_lost_across_ice_restarts_str0m_dialer_at_five_percent_loss() {
        churn::ordered_across_restarts::<Str0m, WebrtcRs>(0.05, 3000).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_message_lost_across_ice_restarts_str0m_listener_at_five_percent_loss() {
        churn::ordered_across_restarts::<WebrtcRs, Str0m>(0.05, 3000).await;
    }

    /// The sweep with a str0m dialer against the webrtc-rs listener.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "slow: dozens of dials at high loss; run with ci/loss-sweep.sh"]
    async fn loss_sweep_str0m_dialer() {
        let (dials, levels) = churn::sweep_params();
        churn::loss_sweep::<Str0m, WebrtcRs>(dials, &levels).await;
    }
}
