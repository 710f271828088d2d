//! The media check of a cell (sans-IO: the peers' `media` events in, a verdict out).
//!
//! In a scenario with `media = true`, a pair whose manifests both have the `media` capability
//! runs with each side's `media` option: the listener sends an Opus tone of
//! [`LISTENER_TONE_HZ`] and the VP8 test pattern (the reference listeners by answering the
//! dialer's send-and-receive tracks, with an empty option), the dialer a tone of
//! [`DIALER_TONE_HZ`] and the pattern (`{tone_hz}` in an option is the side's frequency).
//! The media path is judged
//! like the data path, in both directions: each side must have received the **other** side's
//! audio (at least [`MIN_AUDIO_PACKETS`] RTP packets, the decoded tone within
//! [`TONE_TOLERANCE`] of the sender's frequency) and video (at least [`MIN_VIDEO_FRAMES`]
//! frames, at least [`MIN_KEY_FRAMES`] key frame). A cell passes only when data, audio and
//! video all pass ([`apply`]).

use std::collections::BTreeMap;

use oneway_core::PeerEvent;
use serde::{Deserialize, Serialize};

use crate::verdict::{Outcome, Verdict};

/// The listener's tone, Hz.
pub const LISTENER_TONE_HZ: u32 = 440;
/// The dialer's tone, Hz.
pub const DIALER_TONE_HZ: u32 = 1000;
/// RTP packets of the other side's audio a side must have received (0.5 s of 20 ms frames).
pub const MIN_AUDIO_PACKETS: u64 = 25;
/// How far the decoded tone may be from the sender's, as a fraction of it (±5 %).
pub const TONE_TOLERANCE: f64 = 0.05;
/// Video frames of the other side's pattern a side must have received whole.
pub const MIN_VIDEO_FRAMES: u64 = 10;
/// Key frames among them.
pub const MIN_KEY_FRAMES: u64 = 1;

/// The best audio track one side received from the other (its last `media` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioReceived {
    /// The remote track's id.
    pub track: String,
    /// RTP packets received on it.
    pub packets: u64,
    /// The decoded tone, Hz, when one was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_hz: Option<u32>,
}

/// The best video track one side received from the other (its last `media` line).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoReceived {
    /// The remote track's id.
    pub track: String,
    /// RTP packets received on it.
    pub packets: u64,
    /// Frames received whole.
    pub frames: u64,
    /// Key frames among them.
    pub keyframes: u64,
    /// Width of the last key frame, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u16>,
    /// Height of the last key frame, pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u16>,
}

/// What one side received from the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The sender's tone, Hz (what the decoded audio must match).
    pub expected_hz: u32,
    /// Audio tracks it printed `media` lines for.
    pub audio_tracks: u32,
    /// The audio track judged: the first that passes, else the one with the most packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioReceived>,
    /// Video tracks it printed `media` lines for.
    pub video_tracks: u32,
    /// The video track judged: the first that passes, else the one with the most frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoReceived>,
}

impl Received {
    /// Reads one side's `media` lines; `expected_hz` is the other side's tone.
    pub fn from_events(events: &[PeerEvent], expected_hz: u32) -> Received {
        // Per track, in first-seen order: the last line (counts only grow) and the last
        // frequency measured.
        let mut audio: BTreeMap<String, AudioReceived> = BTreeMap::new();
        let mut video: BTreeMap<String, VideoReceived> = BTreeMap::new();
        for e in events {
            let PeerEvent::Media {
                track,
                kind,
                packets,
                frequency_hz,
                frames,
                keyframes,
                width,
                height,
                ..
            } = e
            else {
                continue;
            };
            match kind.as_str() {
                "audio" => {
                    let a = audio.entry(track.clone()).or_insert(AudioReceived {
                        track: track.clone(),
                        packets: 0,
                        frequency_hz: None,
                    });
                    a.packets = a.packets.max(*packets);
                    if frequency_hz.is_some() {
                        a.frequency_hz = *frequency_hz;
                    }
                }
                "video" => {
                    let v = video.entry(track.clone()).or_insert(VideoReceived {
                        track: track.clone(),
                        packets: 0,
                        frames: 0,
                        keyframes: 0,
                        width: None,
                        height: None,
                    });
                    v.packets = v.packets.max(*packets);
                    v.frames = v.frames.max(frames.unwrap_or(0));
                    v.keyframes = v.keyframes.max(keyframes.unwrap_or(0));
                    if width.is_some() && height.is_some() {
                        v.width = *width;
                        v.height = *height;
                    }
                }
                _ => {}
            }
        }
        let audio_tracks = audio.len() as u32;
        let video_tracks = video.len() as u32;
        let audio = audio
            .values()
            .find(|a| audio_problem(a, expected_hz).is_none())
            .or_else(|| audio.values().max_by_key(|a| a.packets))
            .cloned();
        let video = video
            .values()
            .find(|v| video_problem(v).is_none())
            .or_else(|| video.values().max_by_key(|v| (v.frames, v.packets)))
            .cloned();
        Received {
            expected_hz,
            audio_tracks,
            audio,
            video_tracks,
            video,
        }
    }

    /// One line for reports: `audio 150 RTP packets, tone 441 Hz (want 440); video 92
    /// frames (3 key), 320x240, 310 RTP packets`.
    pub fn summary(&self) -> String {
        let audio = match &self.audio {
            None => "no audio".to_owned(),
            Some(a) => format!(
                "audio {} RTP packets, tone {} (want {} Hz)",
                a.packets,
                a.frequency_hz
                    .map_or_else(|| "not decoded".to_owned(), |f| format!("{f} Hz")),
                self.expected_hz
            ),
        };
        let video = match &self.video {
            None => "no video".to_owned(),
            Some(v) => format!(
                "video {} frames ({} key){}, {} RTP packets",
                v.frames,
                v.keyframes,
                v.width
                    .zip(v.height)
                    .map(|(w, h)| format!(", {w}x{h}"))
                    .unwrap_or_default(),
                v.packets
            ),
        };
        format!("{audio}; {video}")
    }

    /// Why the audio from `sender` fails, or `None` when it passes.
    pub fn audio_failure(&self, sender: &str) -> Option<String> {
        match &self.audio {
            None => Some(format!("no audio from {sender}")),
            Some(a) => {
                audio_problem(a, self.expected_hz).map(|p| format!("audio from {sender}: {p}"))
            }
        }
    }

    /// Why the video from `sender` fails, or `None` when it passes.
    pub fn video_failure(&self, sender: &str) -> Option<String> {
        match &self.video {
            None => Some(format!("no video from {sender}")),
            Some(v) => video_problem(v).map(|p| format!("video from {sender}: {p}")),
        }
    }
}

/// What is wrong with an audio track carrying a tone of `expected_hz`, if anything.
fn audio_problem(a: &AudioReceived, expected_hz: u32) -> Option<String> {
    if a.packets < MIN_AUDIO_PACKETS {
        return Some(format!(
            "{} RTP packets (at least {MIN_AUDIO_PACKETS})",
            a.packets
        ));
    }
    let Some(hz) = a.frequency_hz else {
        return Some(format!("no tone decoded from {} RTP packets", a.packets));
    };
    let expected = f64::from(expected_hz);
    if (f64::from(hz) - expected).abs() > expected * TONE_TOLERANCE {
        return Some(format!(
            "tone {hz} Hz, expected {expected_hz} Hz ±{:.0} %",
            TONE_TOLERANCE * 100.0
        ));
    }
    None
}

/// What is wrong with a video track, if anything.
fn video_problem(v: &VideoReceived) -> Option<String> {
    if v.frames < MIN_VIDEO_FRAMES {
        return Some(format!(
            "{} frames in {} RTP packets (at least {MIN_VIDEO_FRAMES})",
            v.frames, v.packets
        ));
    }
    if v.keyframes < MIN_KEY_FRAMES {
        return Some(format!("no key frame in {} frames", v.frames));
    }
    None
}

/// The media check of one run: what each side received from the other, and the verdict per
/// medium.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    /// What the dialer received from the listener.
    pub dialer_received: Received,
    /// What the listener received from the dialer.
    pub listener_received: Received,
    /// Audio passed both ways.
    pub audio: bool,
    /// Video passed both ways.
    pub video: bool,
    /// Why it failed (empty when both passed), e.g. `no video from listener`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl MediaRecord {
    /// Judges both sides' `media` lines: the dialer's against the listener's tone, the
    /// listener's against the dialer's.
    pub fn judge(dialer_events: &[PeerEvent], listener_events: &[PeerEvent]) -> MediaRecord {
        let dialer_received = Received::from_events(dialer_events, LISTENER_TONE_HZ);
        let listener_received = Received::from_events(listener_events, DIALER_TONE_HZ);
        let audio_failures: Vec<String> = [
            dialer_received.audio_failure("listener"),
            listener_received.audio_failure("dialer"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let video_failures: Vec<String> = [
            dialer_received.video_failure("listener"),
            listener_received.video_failure("dialer"),
        ]
        .into_iter()
        .flatten()
        .collect();
        MediaRecord {
            audio: audio_failures.is_empty(),
            video: video_failures.is_empty(),
            failures: audio_failures.into_iter().chain(video_failures).collect(),
            dialer_received,
            listener_received,
        }
    }

    /// Whether audio and video both passed.
    pub fn passed(&self) -> bool {
        self.audio && self.video
    }
}

/// Which parts of a media cell passed: data (the probe's echo, judged as without media),
/// audio and video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    /// The data path passed.
    pub data: bool,
    /// Audio passed both ways.
    pub audio: bool,
    /// Video passed both ways.
    pub video: bool,
}

impl Parts {
    /// The parts of a run: `data_passed` is the data path's verdict, `media` its media check
    /// (`None`: not judged, as when the run did not connect: audio and video then fail).
    pub fn of(data_passed: bool, media: Option<&MediaRecord>) -> Parts {
        Parts {
            data: data_passed,
            audio: media.is_some_and(|m| m.audio),
            video: media.is_some_and(|m| m.video),
        }
    }

    /// `data + audio + video` when all passed; otherwise the parts that passed, then the
    /// failed ones marked: `data + audio, video ✗`, `data ✗ audio ✗ video ✗`.
    pub fn text(&self) -> String {
        let all = [
            ("data", self.data),
            ("audio", self.audio),
            ("video", self.video),
        ];
        let passed: Vec<&str> = all.iter().filter(|(_, ok)| *ok).map(|(n, _)| *n).collect();
        let failed: Vec<String> = all
            .iter()
            .filter(|(_, ok)| !*ok)
            .map(|(n, _)| format!("{n} ✗"))
            .collect();
        match (passed.is_empty(), failed.is_empty()) {
            (_, true) => passed.join(" + "),
            (true, false) => failed.join(" "),
            (false, false) => format!("{}, {}", passed.join(" + "), failed.join(" ")),
        }
    }
}

/// The run's verdict with its media check: a data pass whose media failed is a deviation
/// (`media: no video from listener; …`). Any other verdict (a data deviation, an expected
/// failure, an error) stands as the data path gave it.
pub fn apply(
    verdict: Verdict,
    deviation: Option<String>,
    media: Option<&MediaRecord>,
) -> (Verdict, Option<String>) {
    match media {
        Some(m) if verdict == Verdict::Pass && !m.passed() => (
            Verdict::Fail,
            Some(format!("media: {}", m.failures.join("; "))),
        ),
        _ => (verdict, deviation),
    }
}

/// The media check of a run whose cell judges media: `None` unless the data path connected
/// (a run that did not connect has no media to judge; its data verdict says why).
pub fn judge_run(
    outcome: &Outcome,
    dialer_events: &[PeerEvent],
    listener_events: &[PeerEvent],
) -> Option<MediaRecord> {
    matches!(outcome, Outcome::Connected { .. })
        .then(|| MediaRecord::judge(dialer_events, listener_events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(track: &str, packets: u64, hz: Option<u32>) -> PeerEvent {
        PeerEvent::Media {
            t_ms: 1.0,
            peer: None,
            track: track.into(),
            kind: "audio".into(),
            packets,
            frequency_hz: hz,
            frames: None,
            keyframes: None,
            width: None,
            height: None,
        }
    }

    fn video(track: &str, packets: u64, frames: u64, keyframes: u64) -> PeerEvent {
        PeerEvent::Media {
            t_ms: 1.0,
            peer: None,
            track: track.into(),
            kind: "video".into(),
            packets,
            frequency_hz: None,
            frames: Some(frames),
            keyframes: Some(keyframes),
            width: (keyframes > 0).then_some(320),
            height: (keyframes > 0).then_some(240),
        }
    }

    /// Good media from the side whose tone is `hz`, as the other side prints it.
    fn good(hz: u32) -> Vec<PeerEvent> {
        vec![
            audio("a1", 40, None),
            audio("a1", 90, Some(hz + 3)),
            video("v1", 30, 12, 1),
            video("v1", 80, 45, 2),
        ]
    }

    #[test]
    fn both_ways_good_passes_with_counts_and_tones() {
        let m = MediaRecord::judge(&good(LISTENER_TONE_HZ), &good(DIALER_TONE_HZ));
        assert!(m.passed(), "{:?}", m.failures);
        assert!(m.failures.is_empty());
        let a = m.dialer_received.audio.as_ref().expect("audio");
        assert_eq!((a.packets, a.frequency_hz), (90, Some(443)));
        let v = m.listener_received.video.as_ref().expect("video");
        assert_eq!(
            (v.frames, v.keyframes, v.width, v.height),
            (45, 2, Some(320), Some(240))
        );
        assert_eq!(m.listener_received.expected_hz, DIALER_TONE_HZ);
        assert_eq!(apply(Verdict::Pass, None, Some(&m)), (Verdict::Pass, None));
        assert_eq!(Parts::of(true, Some(&m)).text(), "data + audio + video");
        assert_eq!(
            m.listener_received.summary(),
            "audio 90 RTP packets, tone 1003 Hz (want 1000 Hz); video 45 frames (2 key), 320x240, 80 RTP packets"
        );
        assert_eq!(
            MediaRecord::judge(&[], &[]).dialer_received.summary(),
            "no audio; no video"
        );
    }

    #[test]
    fn missing_video_from_the_listener_is_a_named_deviation() {
        let dialer: Vec<PeerEvent> = good(LISTENER_TONE_HZ)
            .into_iter()
            .filter(|e| matches!(e, PeerEvent::Media { kind, .. } if kind == "audio"))
            .collect();
        let m = MediaRecord::judge(&dialer, &good(DIALER_TONE_HZ));
        assert!(m.audio);
        assert!(!m.video);
        assert_eq!(m.failures, ["no video from listener"]);
        let (v, why) = apply(Verdict::Pass, None, Some(&m));
        assert_eq!(v, Verdict::Fail);
        assert_eq!(why.as_deref(), Some("media: no video from listener"));
        assert_eq!(Parts::of(true, Some(&m)).text(), "data + audio, video ✗");
    }

    #[test]
    fn the_wrong_tone_too_few_packets_and_no_key_frame_fail() {
        // The listener hears its own frequency instead of the dialer's.
        let m = MediaRecord::judge(
            &good(LISTENER_TONE_HZ),
            &[
                audio("a", 90, Some(LISTENER_TONE_HZ)),
                video("v", 50, 30, 0),
            ],
        );
        assert!(!m.audio && !m.video);
        assert_eq!(
            m.failures,
            [
                "audio from dialer: tone 440 Hz, expected 1000 Hz ±5 %",
                "video from dialer: no key frame in 30 frames"
            ]
        );
        // 5 % of 1000 Hz: 1050 passes, 1051 does not.
        for (hz, ok) in [(950, true), (1050, true), (1051, false), (949, false)] {
            let r = Received::from_events(&[audio("a", 30, Some(hz))], DIALER_TONE_HZ);
            assert_eq!(r.audio_failure("dialer").is_none(), ok, "{hz}");
        }
        let r = Received::from_events(&[audio("a", 24, Some(1000))], DIALER_TONE_HZ);
        assert_eq!(
            r.audio_failure("dialer").as_deref(),
            Some("audio from dialer: 24 RTP packets (at least 25)")
        );
        let r = Received::from_events(&[audio("a", 60, None)], DIALER_TONE_HZ);
        assert_eq!(
            r.audio_failure("dialer").as_deref(),
            Some("audio from dialer: no tone decoded from 60 RTP packets")
        );
        let r = Received::from_events(&[video("v", 20, 9, 1)], DIALER_TONE_HZ);
        assert_eq!(
            r.video_failure("dialer").as_deref(),
            Some("video from dialer: 9 frames in 20 RTP packets (at least 10)")
        );
    }

    #[test]
    fn any_passing_track_of_a_kind_counts() {
        // An answer's track at another tone beside the sender's own track.
        let events = [
            audio("answer", 150, Some(LISTENER_TONE_HZ)),
            audio("own", 60, Some(DIALER_TONE_HZ)),
        ];
        let r = Received::from_events(&events, DIALER_TONE_HZ);
        assert_eq!(r.audio_tracks, 2);
        assert_eq!(r.audio.as_ref().map(|a| a.track.as_str()), Some("own"));
        assert_eq!(r.audio_failure("dialer"), None);
        // None passes: the one with the most packets is reported.
        let r = Received::from_events(&events[..1], DIALER_TONE_HZ);
        assert_eq!(r.audio.as_ref().map(|a| a.packets), Some(150));
        assert!(r.audio_failure("dialer").is_some());
    }

    #[test]
    fn nothing_at_all_names_every_missing_part() {
        let m = MediaRecord::judge(&[], &[]);
        assert_eq!(
            m.failures,
            [
                "no audio from listener",
                "no audio from dialer",
                "no video from listener",
                "no video from dialer"
            ]
        );
        assert_eq!(Parts::of(true, Some(&m)).text(), "data, audio ✗ video ✗");
        assert_eq!(Parts::of(false, None).text(), "data ✗ audio ✗ video ✗");
    }

    #[test]
    fn other_verdicts_stand() {
        let bad = MediaRecord::judge(&[], &[]);
        for v in [
            Verdict::Fail,
            Verdict::ExpectedFail,
            Verdict::UnexpectedPass,
            Verdict::Error,
        ] {
            assert_eq!(
                apply(v, Some("why".into()), Some(&bad)),
                (v, Some("why".into()))
            );
        }
        assert_eq!(apply(Verdict::Pass, None, None), (Verdict::Pass, None));
        let failed = Outcome::Failed {
            cause: "ice-timeout".into(),
        };
        assert_eq!(judge_run(&failed, &good(440), &good(1000)), None);
        let connected = Outcome::Connected {
            path: "host".into(),
            route: Some("one-way".into()),
        };
        assert!(judge_run(&connected, &good(440), &good(1000)).is_some_and(|m| m.passed()));
    }
}
