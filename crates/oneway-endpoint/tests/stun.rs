//! `ListenerConfig::stun` for every stack: the shared bodies of `oneway_testkit::stun_tests`.

use oneway_testkit::stack::{Str0m, WebrtcRs};
use oneway_testkit::stun_tests;

macro_rules! stun {
    ($module:ident, $stack:ty) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn srflx_candidate_comes_after_host_and_dialing_still_works() {
                stun_tests::srflx_candidate_comes_after_host_and_dialing_still_works::<$stack>()
                    .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_silent_stun_server_is_a_clear_error() {
                stun_tests::a_silent_stun_server_is_a_clear_error::<$stack>().await;
            }
        }
    };
}

stun!(str0m, Str0m);
stun!(webrtc_rs, WebrtcRs);
