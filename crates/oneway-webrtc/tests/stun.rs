//! `ListenerConfig::stun` (webrtc-rs): the shared bodies of `oneway_testkit::stun_tests`.

use oneway_testkit::stack::WebrtcRs;
use oneway_testkit::stun_tests;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srflx_candidate_comes_after_host_and_dialing_still_works() {
    stun_tests::srflx_candidate_comes_after_host_and_dialing_still_works::<WebrtcRs>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_stun_server_is_a_clear_error() {
    stun_tests::a_silent_stun_server_is_a_clear_error::<WebrtcRs>().await;
}
