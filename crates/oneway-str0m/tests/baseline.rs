//! The two-way baseline (in-memory offer/answer on the same stack) connects and echoes.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_baseline_connects_and_echoes() {
    let timings = oneway_str0m::baseline::signalled_echo(None, Duration::from_secs(10))
        .await
        .expect("baseline");
    let (ice, dtls, channel, echo) = (
        timings.ice.expect("ice"),
        timings.dtls.expect("dtls"),
        timings.channel.expect("channel"),
        timings.first_echo.expect("echo"),
    );
    assert!(
        ice <= dtls && dtls <= channel && channel <= echo,
        "{timings:?}"
    );
}
