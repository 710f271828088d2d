//! In-band media of the webrtc-rs peer (`spec/handshake.md` §6.2, §10.5): adding an audio or
//! video track, removing one, changing its direction, each offered on channel 0; answering the
//! peer's offers (a new section the peer wants to receive gets the Opus test tone or the VP8
//! test pattern back) after the checks every native peer makes
//! ([`oneway_core::renegotiation`]); glare (the dialer is polite). Sending is in
//! [`crate::media_send`], receiving in [`crate::media_recv`].

use std::time::Instant;

use oneway_connection::{ConnectionEvent, TrackDirection, TrackKind, TrackRequest};
use oneway_core::ProofRole;
use oneway_core::renegotiation::{self, NegotiationError, OfferRate, Running, summarize};
use oneway_core::signal::Message;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{
    RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverId, RTCRtpTransceiverInit,
};
use tokio::sync::oneshot;

use crate::engine::RtcEngine;
use crate::media_recv::{PayloadTypes, Receivers};
use crate::media_send::{Sender, Source, local_track};
use crate::negotiation::rtc_error;

pub use crate::media_recv::STATS_INTERVAL;
pub use crate::media_send::MAX_RTP_PACKET;

/// The tone a section gets when the peer's offer asks to receive audio this side did not add,
/// unless this side added a tone track before (then that track's frequency).
pub const ANSWER_TONE_HZ: f64 = 440.0;

/// The codecs (`rtpmap` encoding names) `rtc`'s default media engine registers: a media
/// section an offer adds needs one of them.
const CODECS: &[&str] = &[
    "opus", "g722", "pcmu", "pcma", "vp8", "vp9", "h264", "h265", "av1",
];

/// The media state of one connection.
#[derive(Default)]
pub(crate) struct Media {
    /// This side's offer, waiting for the peer's answer.
    pending: Option<PendingOffer>,
    /// The tracks this side added or answered with.
    tracks: Vec<LocalTrack>,
    /// The remote tracks.
    receivers: Receivers,
    /// Payload types of the current descriptions.
    types: PayloadTypes,
    /// The frequency of the first tone this side added itself, for the tones it answers with.
    own_hz: Option<f64>,
    /// The peer's offers in the last window.
    rate: OfferRate,
}

struct PendingOffer {
    reply: oneshot::Sender<Result<String, String>>,
    track: String,
    /// Rolled back on glare (polite side): offered again once the peer's offer is answered.
    rolled_back: bool,
}

/// A track of this side: its transceiver, and what it sends.
struct LocalTrack {
    /// The id the application knows it by.
    id: String,
    transceiver: RTCRtpTransceiverId,
    /// Its source (`None` for a receive-only track).
    sender: Option<Sender>,
    /// When its sender last stopped (its RTP clock runs on across a pause).
    stopped_at: Option<Instant>,
    /// Removed: its transceiver is stopped and never sends again.
    removed: bool,
}

impl Media {
    /// The earliest instant the media code needs a timeout.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.tracks
            .iter()
            .filter_map(|t| t.sender.as_ref().and_then(Sender::next))
            .chain(self.receivers.next_timeout())
            .min()
    }
}

fn rtc_kind(kind: TrackKind) -> RtpCodecKind {
    match kind {
        TrackKind::Audio => RtpCodecKind::Audio,
        TrackKind::Video => RtpCodecKind::Video,
    }
}

fn rtc_direction(direction: TrackDirection) -> RTCRtpTransceiverDirection {
    match direction {
        TrackDirection::SendRecv => RTCRtpTransceiverDirection::Sendrecv,
        TrackDirection::SendOnly => RTCRtpTransceiverDirection::Sendonly,
        TrackDirection::RecvOnly => RTCRtpTransceiverDirection::Recvonly,
    }
}

impl RtcEngine {
    /// Checks that a renegotiation may start now.
    fn may_offer(&self) -> Result<(), String> {
        if !self.hs.authenticated {
            return Err("not authenticated yet".to_owned());
        }
        if self.media.pending.is_some() {
            return Err("a renegotiation is already running".to_owned());
        }
        Ok(())
    }

    /// Sends an offer for `track`'s change, or answers `reply` with why not.
    fn offer_for(
        &mut self,
        now: Instant,
        track: String,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        match self.send_offer(now) {
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
        }
    }

    /// `Command::AddTrack`: adds the track and sends an `offer` on channel 0.
    pub(crate) fn add_track(
        &mut self,
        now: Instant,
        request: TrackRequest,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        if let Err(e) = self.may_offer() {
            let _ = reply.send(Err(e));
            return;
        }
        match self.add_local_track(request) {
            Ok(track) => self.offer_for(now, track, reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Adds a transceiver for `request`; returns the track's id (the sender's track id, or
    /// `recvonly-` and the transceiver for a receive-only track).
    fn add_local_track(&mut self, request: TrackRequest) -> Result<String, String> {
        if !request.direction.sends() {
            let transceiver = self
                .pc
                .add_transceiver_from_kind(
                    rtc_kind(request.kind),
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )
                .map_err(|e| e.to_string())?;
            let id = format!("recvonly-{transceiver}");
            self.media.tracks.push(LocalTrack {
                id: id.clone(),
                transceiver,
                sender: None,
                stopped_at: None,
                removed: false,
            });
            return Ok(id);
        }
        let source = Source::new(request.kind, request.tone_hz)?;
        let (track, ssrc) = local_track(request.kind);
        if request.kind == TrackKind::Audio {
            self.media.own_hz.get_or_insert(request.tone_hz);
        }
        let id = track.track_id().to_string();
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                track,
                Some(RTCRtpTransceiverInit {
                    direction: rtc_direction(request.direction),
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .map_err(|e| e.to_string())?;
        let sender = self
            .pc
            .rtp_transceiver(transceiver)
            .and_then(|t| t.sender())
            .ok_or_else(|| "the new transceiver has no sender".to_owned())?;
        self.media.tracks.push(LocalTrack {
            id: id.clone(),
            transceiver,
            sender: Some(Sender::new(sender, ssrc, source)),
            stopped_at: None,
            removed: false,
        });
        Ok(id)
    }

    fn track_index(&self, track: &str) -> Result<usize, String> {
        self.media
            .tracks
            .iter()
            .position(|t| t.id == track && !t.removed)
            .ok_or_else(|| format!("no track {track} of this side"))
    }

    /// `Command::RemoveTrack`: stops the track's transceiver (its media stops at once) and
    /// offers the change.
    pub(crate) fn remove_track(
        &mut self,
        now: Instant,
        track: String,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        let index = self.may_offer().and_then(|()| self.track_index(&track));
        let index = match index {
            Ok(i) => i,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let local = &mut self.media.tracks[index];
        local.removed = true;
        if let Some(sender) = &mut local.sender {
            sender.set_sending(now, false, None);
        }
        let stopped = match self.pc.rtp_transceiver(local.transceiver) {
            Some(mut t) => t.stop().map_err(|e| e.to_string()),
            None => Err("the track's transceiver is gone".to_owned()),
        };
        match stopped {
            Ok(()) => self.offer_for(now, track, reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `Command::SetTrackDirection`: sets the track's transceiver direction and offers it; its
    /// sending stops or starts once the peer's answer is applied.
    pub(crate) fn set_track_direction(
        &mut self,
        now: Instant,
        track: String,
        direction: TrackDirection,
        reply: oneshot::Sender<Result<String, String>>,
    ) {
        let index = self.may_offer().and_then(|()| self.track_index(&track));
        let index = match index {
            Ok(i) if direction.sends() && self.media.tracks[i].sender.is_none() => Err(format!(
                "track {track} was added receive-only and has no source to send"
            )),
            other => other,
        };
        let index = match index {
            Ok(i) => i,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let transceiver = self.media.tracks[index].transceiver;
        match self.pc.rtp_transceiver(transceiver) {
            Some(mut t) => t.set_direction(rtc_direction(direction)),
            None => {
                let _ = reply.send(Err("the track's transceiver is gone".to_owned()));
                return;
            }
        }
        self.offer_for(now, track, reply);
    }

    fn send_offer(&mut self, now: Instant) -> Result<(), String> {
        let offer = self.pc.create_offer(None).map_err(|e| e.to_string())?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(now, offer)
            .map_err(|e| e.to_string())?;
        tracing::trace!(%sdp, "in-band offer");
        self.send_control(now, &Message::Offer { sdp });
        Ok(())
    }

    fn refuse_negotiation(&mut self, now: Instant, error: &NegotiationError) {
        tracing::warn!(code = error.code(), %error, "in-band offer or answer refused");
        self.send_control(
            now,
            &Message::Error {
                code: error.code().to_owned(),
                reason: error.to_string(),
            },
        );
    }

    /// A channel-0 `offer`: counted, checked against the running session, then answered. On
    /// glare (this side's offer is pending) the listener (impolite) ignores it, the dialer
    /// (polite) rolls its own back, answers, and offers again.
    pub(crate) fn on_offer(&mut self, now: Instant, sdp: &str) {
        if !self.media.rate.allow(now) {
            return self.refuse_negotiation(now, &NegotiationError::TooManyOffers);
        }
        let known_mids = match self.check_offer(sdp) {
            Ok(mids) => mids,
            Err(e) => return self.refuse_negotiation(now, &e),
        };
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
        match self.answer_in_band(now, sdp, &known_mids) {
            Ok(answer) => {
                self.send_control(now, &Message::Answer { sdp: answer });
                self.negotiated(now);
                let _ = self.events.send(ConnectionEvent::Renegotiated);
            }
            Err(e) => self.refuse_negotiation(now, &NegotiationError::Refused(e)),
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

    /// The checks of `spec/handshake.md` §6.2 against the running session: the peer's ICE
    /// credentials in force (the current remote description), the certificate it presented
    /// in DTLS, the codecs `rtc` has, the mids negotiated so far and the SSRCs this side sends
    /// with. Returns the mids negotiated so far.
    fn check_offer(&mut self, sdp: &str) -> Result<Vec<String>, NegotiationError> {
        let remote = self
            .pc
            .remote_description()
            .map(|d| summarize(&d.sdp))
            .unwrap_or_default();
        let (Some(ufrag), Some(pwd)) = (remote.ufrag, remote.pwd) else {
            return Err(NegotiationError::Refused(
                "no remote ICE credentials".into(),
            ));
        };
        let fingerprint = self
            .remote_fingerprint()
            .ok_or_else(|| NegotiationError::Refused("DTLS is not up".into()))?;
        let mut known_mids: Vec<String> =
            remote.sections.into_iter().filter_map(|s| s.mid).collect();
        if let Some(local) = self.pc.local_description() {
            for mid in summarize(&local.sdp)
                .sections
                .into_iter()
                .filter_map(|s| s.mid)
            {
                if !known_mids.contains(&mid) {
                    known_mids.push(mid);
                }
            }
        }
        let codecs: Vec<String> = CODECS.iter().map(|c| (*c).to_owned()).collect();
        let local_ssrcs: Vec<u32> = self
            .media
            .tracks
            .iter()
            .filter_map(|t| t.sender.as_ref().map(|s| s.ssrc))
            .collect();
        renegotiation::check_offer(
            sdp,
            &Running {
                remote_ufrag: &ufrag,
                remote_pwd: &pwd,
                remote_fingerprint: &fingerprint,
                codecs: &codecs,
                known_mids: &known_mids,
                local_ssrcs: &local_ssrcs,
            },
        )?;
        Ok(known_mids)
    }

    /// Sets the offer, gives every new section the peer wants to receive on a source (the
    /// tone or the pattern), and returns the answer; a failure rolls the offer back.
    fn answer_in_band(
        &mut self,
        now: Instant,
        sdp: &str,
        known_mids: &[String],
    ) -> Result<String, String> {
        let offer =
            RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| format!("offer: {e}"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|e| format!("offer: {e}"))?;
        let answered = self.answer_applied_offer(now, sdp, known_mids);
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

    /// After the offer is set: sources for the new sections the peer wants to receive, the
    /// answer.
    fn answer_applied_offer(
        &mut self,
        now: Instant,
        sdp: &str,
        known_mids: &[String],
    ) -> Result<String, String> {
        let wanted: Vec<TrackKind> = summarize(sdp)
            .sections
            .iter()
            .filter(|s| s.is_media() && !s.port_zero() && s.receives())
            .filter(|s| s.mid.as_ref().is_none_or(|m| !known_mids.contains(m)))
            .map(|s| match s.kind.as_str() {
                "video" => TrackKind::Video,
                _ => TrackKind::Audio,
            })
            .collect();
        let hz = self.media.own_hz.unwrap_or(ANSWER_TONE_HZ);
        for kind in wanted {
            if let Err(e) = self.answer_with(kind, hz) {
                tracing::warn!(error = %e, "no source for a section the peer receives");
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

    /// Adds a track of `kind` to the transceiver `rtc` picks for it (a new section of that
    /// kind without a sender).
    fn answer_with(&mut self, kind: TrackKind, hz: f64) -> Result<(), String> {
        let source = Source::new(kind, hz)?;
        let (track, ssrc) = local_track(kind);
        let id = track.track_id().to_string();
        let sender = self.pc.add_track(track).map_err(|e| e.to_string())?;
        let transceiver = self
            .pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find(|t| {
                self.pc
                    .rtp_transceiver(*t)
                    .and_then(|t| t.sender())
                    .is_some_and(|s: RTCRtpSenderId| s == sender)
            })
            .ok_or_else(|| "the answering track has no transceiver".to_owned())?;
        self.media.tracks.push(LocalTrack {
            id,
            transceiver,
            sender: Some(Sender::new(sender, ssrc, source)),
            stopped_at: None,
            removed: false,
        });
        Ok(())
    }

    /// A channel-0 `answer`: applies it to this side's pending offer, or names the error.
    pub(crate) fn on_answer(&mut self, now: Instant, sdp: &str) {
        let Some(pending) = self.media.pending.take() else {
            return self.refuse_negotiation(now, &NegotiationError::UnexpectedAnswer);
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
                let rollback = RTCSessionDescription::rollback(None)
                    .and_then(|d| self.pc.set_local_description(now, d));
                if let Err(e) = rollback {
                    tracing::warn!(error = %e, "rollback failed");
                }
                self.refuse_negotiation(now, &NegotiationError::Refused(e.to_string()));
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

    /// A negotiation completed: the payload types are read from the descriptions, and each
    /// sender sends while its transceiver's negotiated direction includes sending.
    fn negotiated(&mut self, now: Instant) {
        let mut types = PayloadTypes::default();
        let remote = self.pc.remote_description().map(|d| d.sdp.clone());
        let local = self.pc.local_description().map(|d| d.sdp);
        for sdp in [remote, local].into_iter().flatten() {
            for s in summarize(&sdp).sections {
                types.opus.extend(s.payload_types("opus"));
                types.vp8.extend(s.payload_types("vp8"));
                if s.kind == "audio" {
                    types
                        .audio
                        .extend(s.formats.iter().filter_map(|f| f.parse::<u8>().ok()));
                }
            }
        }
        for list in [&mut types.opus, &mut types.vp8, &mut types.audio] {
            list.sort_unstable();
            list.dedup();
        }
        self.media.types = types;
        for i in 0..self.media.tracks.len() {
            let transceiver = self.media.tracks[i].transceiver;
            let sends = self
                .pc
                .rtp_transceiver(transceiver)
                .is_some_and(|t| t.current_direction().has_send());
            let local = &mut self.media.tracks[i];
            let sending = sends && !local.removed;
            if let Some(sender) = &mut local.sender {
                let was = sender.next().is_some();
                sender.set_sending(now, sending, local.stopped_at);
                if was && !sending {
                    local.stopped_at = Some(now);
                }
                tracing::debug!(track = %local.id, kind = ?sender.kind(), sending, "track negotiated");
            }
        }
    }

    /// Sends the frames that are due, and reports statistics when due.
    pub(crate) fn media_timeout(&mut self, now: Instant) {
        for track in &mut self.media.tracks {
            if let Some(sender) = &mut track.sender {
                sender.send_due(&mut self.pc, now);
            }
        }
        self.media.receivers.report(now, &self.events);
    }

    /// An RTP packet on remote track `track`: counted, decoded when it is Opus or VP8.
    pub(crate) fn on_rtp(&mut self, now: Instant, track: &str, packet: &rtc::rtp::Packet) {
        self.media
            .receivers
            .on_rtp(now, &self.media.types, &self.events, track, packet);
    }
}
