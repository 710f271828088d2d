//! `--send-audio tone:HZ` and the `media` event lines (`spec/peer-contract.md` §2.1): adding an
//! Opus test-tone track in band (`spec/handshake.md` §6.2) and printing what remote tracks
//! deliver.

use std::time::Duration;

use oneway_connection::{Connection, ConnectionEvent, TrackRequest, TrackStats};
use oneway_core::PeerEvent;

use super::Output;

/// How long a probing dialer with `--send-audio` keeps the connection after `first-echo`,
/// printing `media` lines, before it closes.
pub(crate) const MEDIA_WINDOW: Duration = Duration::from_secs(3);

/// Parses `tone:HZ` (20..=20000 Hz).
pub(crate) fn parse_send_audio(text: &str) -> Result<f64, String> {
    let hz = text
        .strip_prefix("tone:")
        .ok_or_else(|| format!("`{text}`: expected tone:HZ, e.g. tone:440"))?;
    let hz: f64 = hz
        .parse()
        .map_err(|_| format!("`{text}`: {hz} is not a frequency in Hz"))?;
    if !(20.0..=20_000.0).contains(&hz) {
        return Err(format!(
            "`{text}`: the tone must be between 20 and 20000 Hz"
        ));
    }
    Ok(hz)
}

/// The `media` line of one remote track's statistics.
pub(crate) fn media_event(out: &Output, peer: Option<String>, stats: TrackStats) -> PeerEvent {
    PeerEvent::Media {
        t_ms: out.ms(),
        peer,
        track: stats.track,
        kind: stats.kind.as_str().to_owned(),
        packets: stats.packets,
        frequency_hz: stats.frequency_hz,
    }
}

/// Adds a tone track; a refusal (a stack without in-band media, the peer's error) is reported
/// on standard error and the connection carries on.
pub(crate) async fn add_tone(conn: &Connection, hz: f64) {
    match conn.add_track(TrackRequest::tone(hz)).await {
        Ok(track) => tracing::info!(%track, hz, "sending an Opus test tone"),
        Err(e) => eprintln!("--send-audio: {e}"),
    }
}

/// The listener's `--echo` with media: echoes every message, prints `media` lines, and with
/// `send_audio` first adds a tone track towards the dialer.
pub(crate) async fn echo(
    mut conn: Connection,
    out: Output,
    peer: Option<String>,
    send_audio: Option<f64>,
) {
    if let Some(hz) = send_audio {
        add_tone(&conn, hz).await;
    }
    while let Some(event) = conn.next_event().await {
        match event {
            ConnectionEvent::Data {
                channel,
                binary,
                data,
            } => {
                let sent = if binary {
                    conn.send(channel, &data).await
                } else {
                    conn.send_text(channel, &String::from_utf8_lossy(&data))
                        .await
                };
                if sent.is_err() {
                    return;
                }
            }
            ConnectionEvent::MediaStats(stats) => out.event(media_event(&out, peer.clone(), stats)),
            ConnectionEvent::Closed { .. } => return,
            _ => {}
        }
    }
}

/// A probing dialer with `--send-audio`, after `first-echo`: adds the tone track and prints
/// `media` lines for [`MEDIA_WINDOW`].
pub(crate) async fn after_probe(conn: &mut Connection, out: &Output, hz: f64) {
    add_tone(conn, hz).await;
    let window = async {
        while let Some(event) = conn.next_event().await {
            match event {
                ConnectionEvent::MediaStats(stats) => out.event(media_event(out, None, stats)),
                ConnectionEvent::Closed { .. } => return,
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(MEDIA_WINDOW, window).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_audio_takes_a_tone_frequency() {
        assert_eq!(parse_send_audio("tone:440"), Ok(440.0));
        assert_eq!(parse_send_audio("tone:1000.5"), Ok(1000.5));
        for bad in [
            "440",
            "tone:",
            "tone:x",
            "tone:5",
            "tone:30000",
            "noise:440",
        ] {
            assert!(parse_send_audio(bad).is_err(), "{bad}");
        }
    }
}
