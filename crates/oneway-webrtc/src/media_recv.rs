//! What the webrtc-rs peer does with the media it receives: counts each remote track's RTP
//! packets, decodes Opus (the tone's frequency) and reads VP8 (frames, key frames,
//! resolution), and reports each track's [`TrackStats`] every [`STATS_INTERVAL`] while packets
//! keep arriving.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oneway_connection::{ConnectionEvent, TrackKind, TrackStats};
use oneway_media::{ToneReceiver, VideoReceiver};
use tokio::sync::mpsc;

/// How often a remote track's statistics are reported.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// How the payload types of the current descriptions map to what the receiver does.
#[derive(Debug, Default)]
pub(crate) struct PayloadTypes {
    /// Payload types that carry Opus.
    pub opus: Vec<u8>,
    /// Payload types that carry VP8.
    pub vp8: Vec<u8>,
    /// Payload types of audio sections.
    pub audio: Vec<u8>,
}

enum Decoder {
    Tone(Box<ToneReceiver>),
    Video(VideoReceiver),
    None,
}

struct Received {
    kind: TrackKind,
    packets: u64,
    /// `packets` at the last report: a track with nothing new is not reported again.
    reported: u64,
    decoder: Decoder,
}

/// The remote tracks of one connection.
#[derive(Default)]
pub(crate) struct Receivers {
    tracks: HashMap<String, Received>,
    /// When statistics are next reported.
    next_stats: Option<Instant>,
}

impl Receivers {
    /// When statistics are next due.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.next_stats
    }

    /// An RTP packet on remote track `track`: counted, decoded when it is Opus or VP8. A new
    /// track is announced with `TrackAdded`.
    pub(crate) fn on_rtp(
        &mut self,
        now: Instant,
        types: &PayloadTypes,
        events: &mpsc::UnboundedSender<ConnectionEvent>,
        track: &str,
        packet: &rtc::rtp::Packet,
    ) {
        let pt = packet.header.payload_type;
        let entry = self.tracks.entry(track.to_owned()).or_insert_with(|| {
            let (kind, decoder) = if types.opus.contains(&pt) {
                let tone = ToneReceiver::new().ok().map(Box::new);
                (TrackKind::Audio, tone.map_or(Decoder::None, Decoder::Tone))
            } else if types.vp8.contains(&pt) {
                (TrackKind::Video, Decoder::Video(VideoReceiver::default()))
            } else if types.audio.contains(&pt) {
                (TrackKind::Audio, Decoder::None)
            } else {
                (TrackKind::Video, Decoder::None)
            };
            let _ = events.send(ConnectionEvent::TrackAdded {
                track: track.to_owned(),
                kind,
            });
            Received {
                kind,
                packets: 0,
                reported: 0,
                decoder,
            }
        });
        entry.packets += 1;
        match &mut entry.decoder {
            Decoder::Tone(tone) => {
                let _ = tone.push(&packet.payload);
            }
            Decoder::Video(video) => {
                if let Err(e) = video.push_rtp(&packet.payload, packet.header.marker) {
                    tracing::debug!(error = %e, "VP8 payload not read");
                }
            }
            Decoder::None => {}
        }
        if self.next_stats.is_none() {
            self.next_stats = Some(now + STATS_INTERVAL);
        }
    }

    /// Reports the statistics of every track with new packets, when due.
    pub(crate) fn report(&mut self, now: Instant, events: &mpsc::UnboundedSender<ConnectionEvent>) {
        if self.next_stats.is_none_or(|t| t > now) {
            return;
        }
        self.next_stats = Some(now + STATS_INTERVAL);
        for (track, r) in &mut self.tracks {
            if r.packets == r.reported {
                continue;
            }
            r.reported = r.packets;
            let mut stats = TrackStats {
                track: track.clone(),
                kind: r.kind,
                packets: r.packets,
                decode_errors: 0,
                frequency_hz: None,
                frames: 0,
                keyframes: 0,
                resolution: None,
            };
            match &r.decoder {
                Decoder::Tone(tone) => {
                    let t = tone.stats();
                    stats.decode_errors = t.errors;
                    stats.frequency_hz = t.frequency.map(|f| f.round() as u32);
                }
                Decoder::Video(video) => {
                    let v = video.stats();
                    stats.decode_errors = v.errors;
                    stats.frames = v.frames;
                    stats.keyframes = v.keyframes;
                    stats.resolution = v.resolution;
                }
                Decoder::None => {}
            }
            let _ = events.send(ConnectionEvent::MediaStats(stats));
        }
    }
}
