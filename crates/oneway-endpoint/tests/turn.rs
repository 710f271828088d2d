//! Each dialer's TURN relay against coturn on loopback: the shared bodies of
//! `oneway_testkit::turn_tests` (skipped when `turnserver` is not installed). The shell drives
//! the relay for every stack; a stack only says whether it takes the relayed candidate late.

use oneway_testkit::stack::{Str0m, WebrtcRs};
use oneway_testkit::turn_tests;

macro_rules! turn {
    ($module:ident, $stack:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn relay_only_dial_connects_through_coturn_and_carries_data() {
                turn_tests::relay_only_dial_connects_through_coturn_and_carries_data::<$stack>()
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn wrong_password_fails_with_turn_auth_failed() {
                turn_tests::wrong_password_fails_with_turn_auth_failed::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unreachable_turn_server_fails_with_turn_unreachable() {
                turn_tests::unreachable_turn_server_fails_with_turn_unreachable::<$stack>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn host_path_still_wins_with_a_relay_configured() {
                turn_tests::host_path_still_wins_with_a_relay_configured::<$stack>().await;
            }
        }
    };
}

turn!(str0m, Str0m);
turn!(webrtc_rs, WebrtcRs);
