//! The media matrix over loopback (issue 20's table): {str0m, webrtc-rs} dialer ×
//! {str0m, webrtc-rs} listener. Each cell, after a one-way start, adds in band an Opus tone
//! each way (440 Hz from the dialer, 1000 Hz from the listener), the VP8 test pattern each way,
//! removes the dialer's video, and turns the dialer's audio to receive-only and back, and on a
//! second connection both sides add a tone at the same moment (glare); each step
//! is judged on the receiving side (RTP packets, decoded tone, VP8 frames, key frames and size)
//! while data keeps echoing. The table is printed; the test fails if any column of any cell did.

use oneway_testkit::media::{MediaRow, media_cell};
use oneway_testkit::stack::{Str0m, WebrtcRs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_between_every_native_pair() {
    oneway_testkit::init_plain_tracing();
    let rows = vec![
        media_cell::<Str0m, Str0m>().await,
        media_cell::<Str0m, WebrtcRs>().await,
        media_cell::<WebrtcRs, Str0m>().await,
        media_cell::<WebrtcRs, WebrtcRs>().await,
    ];
    let mut table = MediaRow::header().to_owned();
    for row in &rows {
        table.push('\n');
        table.push_str(&row.to_string());
    }
    println!("{table}");
    assert!(rows.iter().all(MediaRow::passed), "media matrix:\n{table}");
}
