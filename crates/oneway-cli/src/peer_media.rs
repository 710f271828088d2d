//! `--send-audio tone:HZ`, `--send-video` and the `media` event lines
//! (`spec/peer-contract.md` §2.1): adding an Opus test-tone track and a VP8 test-pattern track
//! in band (`spec/handshake.md` §6.2) and printing what remote tracks deliver.

use std::time::Duration;

use oneway_connection::{Connection, ConnectionEvent, TrackKind, TrackRequest, TrackStats};
use oneway_core::PeerEvent;

use super::Output;

/// The tracks `--send-audio` and `--send-video` ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SendMedia {
    /// `--send-audio tone:HZ`: the tone's frequency.
    pub(crate) audio: Option<f64>,
    /// `--send-video`: the VP8 test pattern.
    pub(crate) video: bool,
}

impl SendMedia {
    /// Whether any track is asked for.
    pub(crate) fn any(&self) -> bool {
        self.audio.is_some() || self.video
    }

    /// The tracks to add, in order: the audio one first, then the video one (one
    /// renegotiation each).
    pub(crate) fn requests(&self) -> Vec<(&'static str, TrackRequest)> {
        let mut out = Vec::new();
        if let Some(hz) = self.audio {
            out.push(("--send-audio", TrackRequest::tone(hz)));
        }
        if self.video {
            out.push(("--send-video", TrackRequest::video()));
        }
        out
    }
}

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

/// The `media` line of one remote track's statistics: the frame fields for video only.
pub(crate) fn media_event(out: &Output, peer: Option<String>, stats: TrackStats) -> PeerEvent {
    let video = stats.kind == TrackKind::Video;
    PeerEvent::Media {
        t_ms: out.ms(),
        peer,
        track: stats.track,
        kind: stats.kind.as_str().to_owned(),
        packets: stats.packets,
        frequency_hz: stats.frequency_hz,
        frames: video.then_some(stats.frames),
        keyframes: video.then_some(stats.keyframes),
        width: stats.resolution.filter(|_| video).map(|(w, _)| w),
        height: stats.resolution.filter(|_| video).map(|(_, h)| h),
    }
}

/// Adds the tracks `media` asks for, one renegotiation after the other (audio, then video); a
/// refusal (a stack without in-band media, the peer's error) is reported on standard error and
/// the connection carries on.
pub(crate) async fn add_tracks(conn: &Connection, media: SendMedia) {
    for (flag, request) in media.requests() {
        match tokio::time::timeout(ADD_TRACK_WAIT, conn.add_track(request)).await {
            Ok(Ok(track)) => {
                tracing::info!(%track, kind = request.kind.as_str(), "sending a test track")
            }
            Ok(Err(e)) => eprintln!("{flag}: {e}"),
            Err(_) => eprintln!(
                "{flag}: no answer to the offer within {} s",
                ADD_TRACK_WAIT.as_secs()
            ),
        }
    }
}

/// How long adding one track may wait for the peer's answer before the peer carries on
/// without it.
const ADD_TRACK_WAIT: Duration = Duration::from_secs(5);

/// The listener's `--echo` with media: echoes every message, prints `media` lines, and first
/// adds the tracks `media` asks for towards the dialer.
pub(crate) async fn echo(
    mut conn: Connection,
    out: Output,
    peer: Option<String>,
    media: SendMedia,
) {
    add_tracks(&conn, media).await;
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

/// A probing dialer with `--send-audio` or `--send-video`, after `first-echo`: adds the tracks
/// and prints `media` lines for `window` (`--media-window`, 3 s by default).
pub(crate) async fn after_probe(
    conn: &mut Connection,
    out: &Output,
    media: SendMedia,
    window: Duration,
) {
    add_tracks(conn, media).await;
    let printing = async {
        while let Some(event) = conn.next_event().await {
            match event {
                ConnectionEvent::MediaStats(stats) => out.event(media_event(out, None, stats)),
                ConnectionEvent::Closed { .. } => return,
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(window, printing).await;
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

    #[test]
    fn audio_goes_first_then_video() {
        let both = SendMedia {
            audio: Some(440.0),
            video: true,
        };
        let kinds: Vec<_> = both.requests().iter().map(|(f, r)| (*f, r.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("--send-audio", TrackKind::Audio),
                ("--send-video", TrackKind::Video)
            ]
        );
        assert_eq!(both.requests()[0].1.tone_hz, 440.0);
        let video = SendMedia {
            audio: None,
            video: true,
        };
        assert_eq!(video.requests().len(), 1);
        assert!(video.any());
        assert!(!SendMedia::default().any());
        assert!(SendMedia::default().requests().is_empty());
    }

    #[test]
    fn video_lines_carry_frames_and_audio_lines_do_not() {
        let out = Output {
            json: true,
            start: std::time::Instant::now(),
        };
        let video = TrackStats {
            track: "v".into(),
            kind: TrackKind::Video,
            packets: 90,
            decode_errors: 0,
            frequency_hz: None,
            frames: 30,
            keyframes: 2,
            resolution: Some((320, 240)),
        };
        let line = serde_json::to_value(media_event(&out, None, video.clone())).expect("json");
        assert_eq!(line["frames"], 30);
        assert_eq!(line["keyframes"], 2);
        assert_eq!(line["width"], 320);
        assert_eq!(line["height"], 240);
        assert!(line.get("frequency_hz").is_none());
        // Before the first key frame: counts, no resolution.
        let early = TrackStats {
            resolution: None,
            keyframes: 0,
            ..video
        };
        let line = serde_json::to_value(media_event(&out, None, early)).expect("json");
        assert_eq!(line["keyframes"], 0);
        assert!(line.get("width").is_none() && line.get("height").is_none());
        let audio = TrackStats {
            track: "a".into(),
            kind: TrackKind::Audio,
            packets: 50,
            decode_errors: 0,
            frequency_hz: Some(440),
            frames: 0,
            keyframes: 0,
            resolution: None,
        };
        let line = serde_json::to_value(media_event(&out, None, audio)).expect("json");
        assert_eq!(line["frequency_hz"], 440);
        for absent in ["frames", "keyframes", "width", "height"] {
            assert!(line.get(absent).is_none(), "{absent}");
        }
    }
}
