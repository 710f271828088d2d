//! The str0m dialer's TURN relay against coturn on loopback: the shared bodies of
//! `oneway_testkit::turn_tests` (skipped when `turnserver` is not installed).

use oneway_testkit::stack::Str0m;
use oneway_testkit::turn_tests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_dial_connects_through_coturn_and_carries_data() {
    turn_tests::relay_only_dial_connects_through_coturn_and_carries_data::<Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_with_turn_auth_failed() {
    turn_tests::wrong_password_fails_with_turn_auth_failed::<Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_turn_server_fails_with_turn_unreachable() {
    turn_tests::unreachable_turn_server_fails_with_turn_unreachable::<Str0m>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_path_still_wins_with_a_relay_configured() {
    turn_tests::host_path_still_wins_with_a_relay_configured::<Str0m>().await;
}
