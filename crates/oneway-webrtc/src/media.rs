//! In-band media of the webrtc-rs peer (`spec/handshake.md` §6.2, §10.5): adding an audio
//! track and offering it on channel 0, answering offers as asked (a section the peer wants to
//! receive gets a test tone back), glare (the dialer is polite), sending the Opus test tone of
//! `oneway-media` at 20 ms pacing through `rtc`'s sender, and decoding what arrives.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use oneway_connection::{ConnectionEvent, TrackDirection, TrackKind, TrackRequest, TrackStats};
use oneway_core::ProofRole;
use oneway_core::signal::Message;
use oneway_media::{FRAME_DURATION, FRAME_SAMPLES, ToneReceiver, ToneSource};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::oneshot;

use crate::engine::RtcEngine;
use crate::media_sdp::{offer_problem, sections};
use crate::negotiation::rtc_error;

/// How often a remote track's statistics are reported.
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// The tone a section gets when the peer's offer asks to receive media this side did not add,
/// unless this side added a tone track before (then that track's frequency).
pub const ANSWER_TONE_HZ: f64 = 440.0;
/// Most frames one sender catches up in one go after a late timer; older ones are skipped.
const MAX_CATCH_UP: u32 = 5;

/// The media state of one connection.
#[derive(Default)]
pub(crate) struct Media {
    /// This side's offer, waiting for the peer's answer.
    pending: Option<PendingOffer>,
    /// The tone senders.
    senders: Vec<ToneSender>,
    /// Remote tracks by id.
    received: HashMap<String, Received>,
    /// Payload types that carry Opus in the current descriptions.
    opus: Vec<u8>,
    /// Payload types of audio sections in the current descriptions.
    audio: Vec<u8>,
    /// When statistics are next reported.
    next_stats: Option<Instant>,
    /// The frequency of the first tone this side added itself, for the tones it answers with.
    own_hz: Option<f64>,
}

struct PendingOffer {
    reply: oneshot::Sender<Result<String, String>>,
    track: String,
    /// Rolled back on glare (polite side): offered again once the peer's offer is answered.
    rolled_back: bool,
}

struct ToneSender {
    id: RTCRtpSenderId,
    ssrc: u32,
    source: ToneSource,
    sequence: u16,
    timestamp: u32,
    /// Sends from this instant on, every 20 ms; `None` until the negotiation completed.
    next: Option<Instant>,
}

struct Received {
    kind: TrackKind,
    packets: u64,
    /// `packets` at the last report: a track with nothing new is not reported again.
    reported: u64,
    tone: Option<ToneReceiver>,
}

impl Media {
    /// The earliest instant the media code needs a timeout.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.senders
            .iter()
            .filter_map(|s| s.next)
            .chain(self.next_stats)
            .min()
    }
}

fn tone_track(hz: f64) -> Result<(MediaStreamTrack, ToneSource, u32), String> {
    let source = ToneSource::new(hz).map_err(|e| e.to_string())?;
    let ssrc = rand::random::<u32>();
    let id = format!("oneway-tone-{:08x}", rand::random::<u32>());
    let track = MediaStreamTrack::new(
        format!("oneway-{:08x}", rand::random::<u32>()),
        id.clone(),
        id,
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48_000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    );
    Ok((track, source, ssrc))
}

impl RtcEngine {
    /// `Command::AddTrack`: adds the track and sends an `offer` on channel 0.
    pub(crate) fn add_track(
        &mut self,
        now: Instant,
        request: TrackRequest,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        if !self.hs.authenticated {
            let _ = reply.send(Err("not authenticated yet".to_owned()));
            return;
        }
        if self.media.pending.is_some() {
            let _ = reply.send(Err("a renegotiation is already running".to_owned()));
            return;
        }
        if request.kind != TrackKind::Audio {
            let _ = reply.send(Err(
                "unsupported: the webrtc-rs peer adds audio tracks only".to_owned(),
            ));
            return;
        }
        match self.add_local_track(request) {
            Ok(track) => match self.send_offer(now) {
                Ok(()) => {
                    self.media.pending = Some(PendingOffer {
                        reply,
                        track,
                        rolled_back: false,
                    })
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Adds a transceiver for `request`; returns the track's id (the sender's, or the
    /// transceiver's mid-to-be for a receive-only track).
    fn add_local_track(&mut self, request: TrackRequest) -> Result<String, String> {
        if !request.direction.sends() {
            let id = self
                .pc
                .add_transceiver_from_kind(RtpCodecKind::Audio, None)
                .map_err(|e| e.to_string())?;
            return Ok(format!("recvonly-{id}"));
        }
        let (track, source, ssrc) = tone_track(request.tone_hz)?;
        self.media.own_hz.get_or_insert(request.tone_hz);
        let track_id = track.track_id().to_string();
        let direction = match request.direction {
            TrackDirection::SendOnly => RTCRtpTransceiverDirection::Sendonly,
            _ => RTCRtpTransceiverDirection::Sendrecv,
        };
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .map_err(|e| e.to_string())?;
        let id = self
            .pc
            .rtp_transceiver(transceiver)
            .and_then(|t| t.sender())
            .ok_or_else(|| "the new transceiver has no sender".to_owned())?;
        self.media.senders.push(ToneSender {
            id,
            ssrc,
            source,
            sequence: rand::random(),
            timestamp: rand::random(),
            next: None,
        });
        Ok(track_id)
    }

    fn send_offer(&mut self, now: Instant) -> Result<(), String> {
        let offer = self.pc.create_offer(None).map_err(|e| e.to_string())?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(now, offer)
            .map_err(|e| e.to_string())?;
        self.send_control(now, &Message::Offer { sdp });
        Ok(())
    }

    /// A channel-0 `offer`. On glare (this side's offer is pending) the listener (impolite)
    /// ignores it, the dialer (polite) rolls its own back, answers, and offers again.
    pub(crate) fn on_offer(&mut self, now: Instant, sdp: &str) {
        if let Some(pending) = &mut self.media.pending
            && !pending.rolled_back
        {
            if self.hs.role == ProofRole::Listener {
                tracing::debug!("glare: ignoring the dialer's offer (the listener is impolite)");
                return;
            }
            tracing::debug!("glare: rolling back our offer (the dialer is polite)");
            let rollback = RTCSessionDescription::rollback(None)
                .and_then(|d| self.pc.set_local_description(now, d));
            if let Err(e) = rollback {
                tracing::warn!(error = %e, "rollback failed");
            }
            pending.rolled_back = true;
        }
        match self.answer_in_band(now, sdp) {
            Ok(answer) => {
                self.send_control(now, &Message::Answer { sdp: answer });
                self.negotiated(now);
                let _ = self.events.send(ConnectionEvent::Renegotiated);
            }
            Err(e) => {
                tracing::warn!(error = %e, "in-band offer refused");
                self.send_control(
                    now,
                    &Message::Error {
                        code: "renegotiation-failed".to_owned(),
                        reason: e,
                    },
                );
            }
        }
        if self.media.pending.as_ref().is_some_and(|p| p.rolled_back) {
            match self.send_offer(now) {
                Ok(()) => {
                    if let Some(p) = &mut self.media.pending {
                        p.rolled_back = false;
                    }
                }
                Err(e) => {
                    if let Some(p) = self.media.pending.take() {
                        let _ = p.reply.send(Err(format!("offer after glare: {e}")));
                    }
                }
            }
        }
    }

    /// Sets the offer, adds a tone to every audio section the peer wants to receive and this
    /// side does not send on yet, and returns the answer.
    fn answer_in_band(&mut self, now: Instant, sdp: &str) -> Result<String, String> {
        if let Some(problem) = offer_problem(sdp) {
            return Err(problem);
        }
        let offer =
            RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| format!("offer: {e}"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| format!("offer: {e}"))?;
        let answered = self.answer_applied_offer(now, sdp);
        if answered.is_err() {
            // Back to the previous descriptions (`spec/handshake.md` §6.2).
            let rollback = RTCSessionDescription::rollback(None)
                .and_then(|d| self.pc.set_remote_description(now, d));
            if let Err(e) = rollback {
                tracing::warn!(error = %e, "rollback of the refused offer failed");
            }
        }
        answered
    }

    /// After the offer is set: tones for the sections the peer wants to receive, the answer.
    fn answer_applied_offer(&mut self, now: Instant, sdp: &str) -> Result<String, String> {
        let mut wanted = sections(sdp)
            .iter()
            .filter(|s| s.kind == "audio" && s.port != 0 && s.peer_receives())
            .count();
        wanted = wanted.saturating_sub(self.media.senders.len());
        let hz = self.media.own_hz.unwrap_or(ANSWER_TONE_HZ);
        for _ in 0..wanted {
            let added = tone_track(hz).and_then(|(track, source, ssrc)| {
                let id = self.pc.add_track(track).map_err(|e| e.to_string())?;
                Ok(ToneSender {
                    id,
                    ssrc,
                    source,
                    sequence: rand::random(),
                    timestamp: rand::random(),
                    next: None,
                })
            });
            match added {
                Ok(sender) => self.media.senders.push(sender),
                Err(e) => tracing::warn!(error = %e, "no tone for a section the peer receives"),
            }
        }
        let answer = self
            .pc
            .create_answer(None)
            .map_err(|e| format!("answer: {e}"))?;
        let text = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(|e| format!("local answer: {e}"))?;
        Ok(text)
    }

    /// A channel-0 `answer`: applies it to this side's pending offer, or names the error.
    pub(crate) fn on_answer(&mut self, now: Instant, sdp: &str) {
        let Some(pending) = self.media.pending.take() else {
            self.send_control(
                now,
                &Message::Error {
                    code: "unexpected-answer".to_owned(),
                    reason: "no offer of this peer is waiting for an answer".to_owned(),
                },
            );
            return;
        };
        let applied = RTCSessionDescription::answer(sdp.to_owned())
            .and_then(|answer| self.pc.set_remote_description(now, answer))
            .map_err(rtc_error("in-band answer"));
        match applied {
            Ok(()) => {
                self.negotiated(now);
                let _ = pending.reply.send(Ok(pending.track));
                let _ = self.events.send(ConnectionEvent::Renegotiated);
            }
            Err(e) => {
                tracing::warn!(error = %e, "in-band answer refused");
                let rollback = RTCSessionDescription::rollback(None)
                    .and_then(|d| self.pc.set_local_description(now, d));
                if let Err(e) = rollback {
                    tracing::warn!(error = %e, "rollback failed");
                }
                self.send_control(
                    now,
                    &Message::Error {
                        code: "renegotiation-failed".to_owned(),
                        reason: e.to_string(),
                    },
                );
                let _ = pending.reply.send(Err(e.to_string()));
            }
        }
    }

    /// A channel-0 `error` while this side's offer is pending: the peer refused it.
    pub(crate) fn offer_refused(&mut self, now: Instant, code: &str, reason: &str) -> bool {
        let Some(pending) = self.media.pending.take() else {
            return false;
        };
        let rollback = RTCSessionDescription::rollback(None)
            .and_then(|d| self.pc.set_local_description(now, d));
        if let Err(e) = rollback {
            tracing::warn!(error = %e, "rollback failed");
        }
        let _ = pending.reply.send(Err(format!("{code}: {reason}")));
        true
    }

    /// A negotiation completed: senders with a negotiated codec start, Opus payload types
    /// are read from the descriptions.
    fn negotiated(&mut self, now: Instant) {
        let mut opus = Vec::new();
        let mut audio = Vec::new();
        let remote = self.pc.remote_description().map(|d| d.sdp.clone());
        let local = self.pc.local_description().map(|d| d.sdp);
        for sdp in [remote, local].into_iter().flatten() {
            for s in sections(&sdp) {
                opus.extend(s.opus_payload_types());
                if s.kind == "audio" {
                    audio.extend(s.formats.iter().filter_map(|f| f.parse::<u8>().ok()));
                }
            }
        }
        opus.sort_unstable();
        opus.dedup();
        self.media.opus = opus;
        audio.sort_unstable();
        audio.dedup();
        self.media.audio = audio;
        for sender in &mut self.media.senders {
            if sender.next.is_none() {
                sender.next = Some(now);
            }
        }
    }

    /// Sends the frames that are due, and reports statistics when due.
    pub(crate) fn media_timeout(&mut self, now: Instant) {
        for i in 0..self.media.senders.len() {
            self.send_due(now, i);
        }
        if self.media.next_stats.is_some_and(|t| t <= now) {
            self.media.next_stats = Some(now + STATS_INTERVAL);
            for (track, r) in &mut self.media.received {
                if r.packets == r.reported {
                    continue;
                }
                r.reported = r.packets;
                let tone = r.tone.as_ref().map(ToneReceiver::stats);
                let _ = self.events.send(ConnectionEvent::MediaStats(TrackStats {
                    track: track.clone(),
                    kind: r.kind,
                    packets: r.packets,
                    decode_errors: tone.map_or(0, |t| t.errors),
                    frequency_hz: tone.and_then(|t| t.frequency).map(|f| f.round() as u32),
                    frames: 0,
                    keyframes: 0,
                    resolution: None,
                }));
            }
        }
    }

    fn send_due(&mut self, now: Instant, i: usize) {
        for _ in 0..MAX_CATCH_UP {
            let Some(sender) = self.media.senders.get_mut(i) else {
                return;
            };
            let Some(next) = sender.next.filter(|n| *n <= now) else {
                return;
            };
            sender.next = Some(next + FRAME_DURATION);
            let payload = match sender.source.next_frame() {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "tone frame not encoded");
                    continue;
                }
            };
            let (id, ssrc, sequence, timestamp) =
                (sender.id, sender.ssrc, sender.sequence, sender.timestamp);
            sender.sequence = sender.sequence.wrapping_add(1);
            sender.timestamp = sender.timestamp.wrapping_add(FRAME_SAMPLES as u32);
            let Some(mut rtp_sender) = self.pc.rtp_sender(id) else {
                return;
            };
            let Some(pt) = rtp_sender
                .get_parameters()
                .rtp_parameters
                .codecs
                .first()
                .map(|c| c.payload_type)
            else {
                return;
            };
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: sequence,
                    timestamp,
                    ssrc,
                    ..Default::default()
                },
                payload: Bytes::from(payload),
            };
            if let Err(e) = rtp_sender.write_rtp(now, packet) {
                tracing::debug!(error = %e, "RTP not written");
            }
        }
        // Still behind after catching up: skip ahead rather than burst.
        if let Some(s) = self.media.senders.get_mut(i)
            && s.next.is_some_and(|n| n <= now)
        {
            s.next = Some(now + FRAME_DURATION);
        }
    }

    /// An RTP packet on remote track `track`: counted, decoded when it is Opus.
    pub(crate) fn on_rtp(&mut self, now: Instant, track: String, payload_type: u8, payload: &[u8]) {
        let opus = self.media.opus.contains(&payload_type);
        let kind = if opus || self.media.audio.contains(&payload_type) {
            TrackKind::Audio
        } else {
            TrackKind::Video
        };
        let entry = self.media.received.entry(track.clone()).or_insert_with(|| {
            let _ = self.events.send(ConnectionEvent::TrackAdded {
                track: track.clone(),
                kind,
            });
            Received {
                kind,
                packets: 0,
                reported: 0,
                tone: if opus { ToneReceiver::new().ok() } else { None },
            }
        });
        entry.packets += 1;
        if let Some(tone) = &mut entry.tone {
            let _ = tone.push(payload);
        }
        if self.media.next_stats.is_none() {
            self.media.next_stats = Some(now + STATS_INTERVAL);
        }
    }
}
