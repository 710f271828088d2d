//! The engine's media once negotiated (`spec/handshake.md` §10.5): sending tracks paced by the
//! engine's timer (Opus test tone, VP8 test pattern), written through str0m's `Writer` which
//! packetizes them, and the peer's tracks read as they arrive (Opus decoded and its tone
//! measured, VP8 frames and key frames checked) and reported as connection events.

use std::time::{Duration, Instant};

use oneway_connection::{ConnectionEvent, TrackKind, TrackStats};
use oneway_media::{ToneReceiver, VideoReceiver};
use str0m::Event;
use str0m::media::{
    KeyframeRequest, KeyframeRequestKind, MediaAdded, MediaChanged, MediaData, MediaKind,
};
use str0m::media::{MediaTime, Mid};

use super::Str0mEngine;
use crate::media::{self, MediaSender};

/// Most remote tracks measured (more are counted, not decoded).
const MAX_RECEIVERS: usize = 16;
/// An audio track's `MediaStats` event goes out every this many packets (1 s of Opus).
const AUDIO_STATS_EVERY: u64 = 50;
/// A video track's `MediaStats` event goes out every this many frames (1 s of the pattern).
const VIDEO_STATS_EVERY: u64 = oneway_media::video::VIDEO_FPS as u64;
/// How often a video track that has shown no key frame yet asks the sender for one (RTCP PLI).
/// The sender's first key frame is lost when its frames arrive before this side applied the
/// answer that negotiated the track (the answerer sends at once); without a request, the next
/// one would come only when the encoder decides.
const KEYFRAME_REQUEST_EVERY: Duration = Duration::from_secs(1);

/// How a remote track is read.
enum Reader {
    /// Opus, decoded to measure the tone (`None`: no decoder could be made, or too many tracks).
    Audio(Option<ToneReceiver>),
    /// VP8 frames, checked without decoding pictures.
    Video(VideoReceiver),
}

/// One of the peer's tracks, as far as it arrived.
pub(crate) struct RemoteTrack {
    mid: Mid,
    /// RTP packets received (for video, the packets each frame came in).
    packets: u64,
    /// Media data str0m delivered: one per Opus packet, one per whole VP8 frame.
    data: u64,
    reader: Reader,
    /// When this side last asked for a key frame (video without one so far).
    keyframe_asked: Option<Instant>,
}

impl RemoteTrack {
    fn new(mid: Mid, kind: MediaKind, measure: bool) -> Self {
        let reader = match kind {
            MediaKind::Audio if measure => Reader::Audio(
                ToneReceiver::new()
                    .map_err(|e| tracing::warn!(%mid, error = %e, "no Opus decoder"))
                    .ok(),
            ),
            MediaKind::Audio => Reader::Audio(None),
            MediaKind::Video => Reader::Video(VideoReceiver::default()),
        };
        RemoteTrack {
            mid,
            packets: 0,
            data: 0,
            reader,
            keyframe_asked: None,
        }
    }

    /// Whether to ask the sender for a key frame now: video that has shown none yet, at most
    /// once per [`KEYFRAME_REQUEST_EVERY`].
    fn wants_keyframe(&mut self, now: Instant) -> bool {
        let Reader::Video(video) = &self.reader else {
            return false;
        };
        let due = self
            .keyframe_asked
            .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_REQUEST_EVERY);
        if video.stats().keyframes > 0 || !due {
            return false;
        }
        self.keyframe_asked = Some(now);
        true
    }

    fn kind(&self) -> TrackKind {
        match self.reader {
            Reader::Audio(_) => TrackKind::Audio,
            Reader::Video(_) => TrackKind::Video,
        }
    }

    /// Reads one delivery of str0m's that came in `packets` RTP packets.
    fn push(&mut self, payload: &[u8], packets: u64) {
        self.packets += packets;
        self.data += 1;
        // What does not decode is counted by the reader; nothing else to do with it.
        match &mut self.reader {
            Reader::Audio(Some(decoder)) => {
                let _ = decoder.push(payload);
            }
            Reader::Audio(None) => {}
            Reader::Video(video) => {
                let _ = video.push_frame_packets(payload, packets);
            }
        }
    }

    /// Whether a `MediaStats` event is due (about once a second of media).
    fn stats_due(&self) -> bool {
        let every = match self.reader {
            Reader::Audio(_) => AUDIO_STATS_EVERY,
            Reader::Video(_) => VIDEO_STATS_EVERY,
        };
        self.data.is_multiple_of(every)
    }

    fn stats(&self) -> TrackStats {
        let mut stats = TrackStats {
            track: self.mid.to_string(),
            kind: self.kind(),
            packets: self.packets,
            decode_errors: 0,
            frequency_hz: None,
            frames: 0,
            keyframes: 0,
            resolution: None,
        };
        match &self.reader {
            Reader::Audio(Some(decoder)) => {
                stats.decode_errors = decoder.stats().errors;
                stats.frequency_hz = decoder.frequency().map(|f| f.round() as u32);
            }
            Reader::Audio(None) => {}
            Reader::Video(video) => {
                let v = video.stats();
                stats.decode_errors = v.errors;
                stats.frames = v.frames;
                stats.keyframes = v.keyframes;
                stats.resolution = v.resolution;
            }
        }
        stats
    }
}

/// The RTP packets a delivery of str0m's came in, from its sequence numbers.
fn packet_count(data: &MediaData) -> u64 {
    let (first, last) = (**data.seq_range.start(), **data.seq_range.end());
    last.saturating_sub(first).saturating_add(1)
}

impl Str0mEngine {
    /// RTP packets received so far on each of the peer's tracks (by mid).
    pub fn received_packets(&self) -> Vec<(String, u64)> {
        self.media
            .remote
            .iter()
            .map(|t| (t.mid.to_string(), t.packets))
            .collect()
    }

    /// What arrived so far on each of the peer's tracks: packets, and the decoded tone's
    /// frequency or the VP8 frames, key frames and size (as in `ConnectionEvent::MediaStats`).
    pub fn received_stats(&self) -> Vec<TrackStats> {
        self.media.remote.iter().map(RemoteTrack::stats).collect()
    }

    /// Frames sent so far on each of this side's sending tracks (by mid): Opus frames for
    /// audio, VP8 frames for video.
    pub fn sent_frames(&self) -> Vec<(String, u64)> {
        self.media
            .senders
            .iter()
            .map(|s| (s.mid.to_string(), s.sent))
            .collect()
    }

    /// Brings the sender of `mid` in line with its negotiated direction: a track this side
    /// sends on gets one (from `source`, else the default source of its kind,
    /// [`media::source_for`]) or resumes; one it does not send on pauses; a stopped one loses
    /// its sender.
    pub(super) fn sync_sender(
        &mut self,
        now: Instant,
        mid: Mid,
        source: Option<Box<dyn media::FrameSource>>,
    ) {
        let at = self.media.senders.iter().position(|s| s.mid == mid);
        let Some((kind, direction, disabled)) = self
            .rtc
            .media(mid)
            .map(|m| (m.kind(), m.direction(), m.disabled()))
        else {
            if let Some(at) = at {
                self.media.senders.remove(at);
            }
            return;
        };
        match (disabled, direction.is_sending(), at) {
            (true, _, Some(at)) => {
                self.media.senders.remove(at);
            }
            (true, _, None) | (false, false, None) => {}
            (false, true, Some(at)) => self.media.senders[at].resume(now),
            (false, false, Some(at)) => self.media.senders[at].pause(),
            (false, true, None) => {
                let source = source.or_else(|| media::source_for(kind, media::DEFAULT_TONE_HZ));
                if let Some(source) = source {
                    tracing::debug!(%mid, ?kind, "sending on the track");
                    self.media.senders.push(MediaSender::new(mid, source, now));
                }
            }
        }
    }

    /// str0m's media events; `false` for any other event.
    pub(super) fn on_media_event(&mut self, now: Instant, event: &Event) -> bool {
        match event {
            Event::MediaAdded(MediaAdded {
                mid,
                kind,
                direction,
                ..
            }) => {
                tracing::debug!(%mid, ?kind, ?direction, "the peer added a track");
                self.remote_track(*mid, *kind);
                // A section the peer wants to receive gets this side's test media.
                self.sync_sender(now, *mid, None);
                let _ = self.events.send(ConnectionEvent::TrackOpen {
                    track: mid.to_string(),
                });
                true
            }
            Event::MediaChanged(MediaChanged { mid, direction }) => {
                tracing::debug!(%mid, ?direction, "a track changed");
                self.sync_sender(now, *mid, None);
                true
            }
            Event::MediaData(data) => {
                self.on_media_data(now, data);
                true
            }
            Event::KeyframeRequest(KeyframeRequest { mid, kind, .. }) => {
                tracing::debug!(%mid, ?kind, "the peer asks for a key frame");
                if let Some(sender) = self.media.senders.iter_mut().find(|s| s.mid == *mid) {
                    sender.source.request_keyframe();
                }
                true
            }
            _ => false,
        }
    }

    /// The peer's track `mid`, made on first sight (at most [`MAX_RECEIVERS`] are measured).
    fn remote_track(&mut self, mid: Mid, kind: MediaKind) -> &mut RemoteTrack {
        let at = match self.media.remote.iter().position(|t| t.mid == mid) {
            Some(at) => at,
            None => {
                let measure = self.media.remote.len() < MAX_RECEIVERS;
                self.media.remote.push(RemoteTrack::new(mid, kind, measure));
                self.media.remote.len() - 1
            }
        };
        &mut self.media.remote[at]
    }

    /// Reads a delivery on a remote track; announces the track with its first one and reports
    /// its stats about once a second (`ConnectionEvent::MediaStats`).
    fn on_media_data(&mut self, now: Instant, data: &MediaData) {
        let Some(kind) = self.rtc.media(data.mid).map(|m| m.kind()) else {
            return;
        };
        let packets = packet_count(data);
        let track = self.remote_track(data.mid, kind);
        track.push(&data.data, packets);
        let ask_keyframe = track.wants_keyframe(now);
        let first = track.data == 1;
        let stats = track.stats_due().then(|| track.stats());
        let kind = track.kind();
        if first {
            let _ = self.events.send(ConnectionEvent::TrackAdded {
                track: data.mid.to_string(),
                kind,
            });
        }
        let _ = self.events.send(ConnectionEvent::Rtp {
            track: data.mid.to_string(),
            payload_type: *data.pt,
            payload: data.data.to_vec(),
        });
        if let Some(stats) = stats {
            let _ = self.events.send(ConnectionEvent::MediaStats(stats));
        }
        if ask_keyframe
            && let Some(mut writer) = self.rtc.writer(data.mid)
            && writer.is_request_keyframe_possible(KeyframeRequestKind::Pli)
        {
            tracing::debug!(mid = %data.mid, "no key frame yet: asking for one (PLI)");
            if let Err(e) = writer.request_keyframe(None, KeyframeRequestKind::Pli) {
                tracing::debug!(mid = %data.mid, error = %e, "key frame request not sent");
            }
        }
    }

    /// Writes the frames due at `now` on every sending track, with the payload type
    /// negotiated for its codec and an RTP time on its kind's clock (str0m packetizes).
    pub(super) fn send_media(&mut self, now: Instant) {
        for i in 0..self.media.senders.len() {
            let frames = self.media.senders[i].due(now);
            if frames.is_empty() {
                continue;
            }
            let (mid, pace) = (self.media.senders[i].mid, self.media.senders[i].pace);
            let Some(writer) = self.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer
                .payload_params()
                .find(|p| p.spec().codec == pace.codec)
                .map(|p| p.pt())
            else {
                tracing::warn!(%mid, codec = ?pace.codec, "codec not negotiated; frame not sent");
                continue;
            };
            let mut sent = 0;
            for (rtp_time, frame) in frames {
                let Some(writer) = self.rtc.writer(mid) else {
                    break;
                };
                let time = MediaTime::new(rtp_time, pace.clock);
                match writer.write(pt, now, time, frame) {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        tracing::debug!(%mid, error = %e, "frame not written");
                        break;
                    }
                }
            }
            self.media.senders[i].sent += sent;
        }
    }
}
