//! The engine's side of in-band media (`spec/handshake.md` §6.2, §10.5): channel-0 `offer` and
//! `answer` through str0m's SDP API once it took over from the Direct API
//! ([`crate::media`]) and the tracks this side adds; the media itself is `media_io`.

use std::collections::VecDeque;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oneway_connection::ConnectionEvent;
use oneway_core::ProofRole;
use oneway_core::signal::Message;
use str0m::IceCreds;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Mid};
use tokio::sync::oneshot;

use super::Str0mEngine;
use super::media_io::RemoteTrack;
use crate::media::{
    self, FrameSource, MediaSender, NegotiationError, OfferRate, Running, TrackRequest,
};

/// Where the mid of a track this side asked for goes, once the peer answered.
pub type TrackReply = oneshot::Sender<Result<String, String>>;

/// A change of this side's tracks, waiting for its offer or its answer.
enum LocalChange {
    /// Add a track; a sending track takes its frames from `source`.
    Add {
        request: TrackRequest,
        source: Option<Box<dyn FrameSource>>,
    },
    /// Change a negotiated track's direction (this side's view).
    Direction { mid: Mid, direction: Direction },
    /// Stop a negotiated track for good (its m-line gets port 0).
    Remove { mid: Mid },
}

/// A change and where its outcome goes.
struct Asked {
    change: LocalChange,
    reply: Option<TrackReply>,
}

/// A change in our offer: the track's mid and the change.
type OfferedTrack = (Mid, Asked);

/// In-band media state of one connection.
#[derive(Default)]
pub(crate) struct MediaState {
    /// str0m's SDP API took over (the implied offer was accepted).
    taken_over: bool,
    /// The peer's ICE credentials in force (offers must repeat them).
    remote_ice: Option<IceCreds>,
    /// Under a fast start: the peer's SCTP INIT, base64 as in `a=sctp-init`.
    snap_init: Option<String>,
    /// Our offer waiting for its answer, with the tracks it adds.
    pending: Option<(SdpPendingOffer, Vec<OfferedTrack>)>,
    /// Tracks asked for and not offered yet (one offer at a time).
    queued: VecDeque<Asked>,
    /// Mids of negotiated media sections (the peer's offers re-list them).
    known_mids: Vec<String>,
    /// The peer's offer rate.
    rate: OfferRate,
    /// Sending tracks, audio and video.
    pub(super) senders: Vec<MediaSender>,
    /// The peer's tracks as they arrive.
    pub(super) remote: Vec<RemoteTrack>,
    /// The last `error`s the peer sent after authentication (code, reason), oldest first.
    peer_errors: VecDeque<(String, String)>,
}

/// Most peer errors [`Str0mEngine::peer_errors`] keeps.
const PEER_ERRORS: usize = 16;

impl MediaState {
    /// When the next frame of a sending track is due.
    pub(crate) fn next_frame_at(&self) -> Option<Instant> {
        self.senders
            .iter()
            .filter(|s| !s.paused)
            .map(|s| s.next_at)
            .min()
    }
}

impl Str0mEngine {
    /// Records the peer's ICE credentials in force (from the stack, and after each restart).
    pub(crate) fn set_remote_ice(&mut self, creds: IceCreds) {
        self.media.remote_ice = Some(creds);
    }

    /// Under a fast start, the peer's SCTP INIT chunk (its `a=sctp-init`).
    pub(crate) fn set_peer_snap_init(&mut self, chunk: &[u8]) {
        self.media.snap_init = Some(STANDARD.encode(chunk));
    }

    /// Adds a media track: queues it and offers it on channel 0 (`spec/handshake.md` §6.2) as
    /// soon as no other offer of ours is waiting. `reply` gets the track's mid once the peer
    /// answered, or the peer's refusal. A sending track then sends from `source` at its kind's
    /// pace ([`media::Pace`]: an Opus frame every 20 ms, a VP8 frame every 50 ms); `None`: the
    /// default source of its kind ([`media::source_for`], a 440 Hz tone or the test pattern).
    pub fn add_track(
        &mut self,
        now: Instant,
        request: TrackRequest,
        source: Option<Box<dyn FrameSource>>,
        reply: TrackReply,
    ) {
        self.ask(now, LocalChange::Add { request, source }, reply);
    }

    /// Changes the direction of the negotiated track `mid` (this side's view) by an offer;
    /// `reply` gets the mid back once the peer answered. Media this side sends starts or stops
    /// with it.
    pub fn set_track_direction(
        &mut self,
        now: Instant,
        mid: &str,
        direction: Direction,
        reply: TrackReply,
    ) {
        let mid = Mid::from(mid);
        self.ask(now, LocalChange::Direction { mid, direction }, reply);
    }

    /// Stops the negotiated track `mid` for good by an offer (its m-line gets port 0); `reply`
    /// gets the mid back once the peer answered.
    pub fn remove_track(&mut self, now: Instant, mid: &str, reply: TrackReply) {
        let mid = Mid::from(mid);
        self.ask(now, LocalChange::Remove { mid }, reply);
    }

    fn ask(&mut self, now: Instant, change: LocalChange, reply: TrackReply) {
        if self.closed() || !self.hs.authenticated {
            let _ = reply.send(Err("not authenticated, or closed".to_owned()));
            return;
        }
        if let LocalChange::Direction { mid, .. } | LocalChange::Remove { mid } = &change
            && self.rtc.media(*mid).is_none()
        {
            let _ = reply.send(Err(format!("no track {mid}")));
            return;
        }
        self.media.queued.push_back(Asked {
            change,
            reply: Some(reply),
        });
        self.offer_queued(now);
    }

    /// The last `error` messages the peer sent after authentication (code, reason), oldest
    /// first: refusals of this side's offers, answers and other requests.
    pub fn peer_errors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.media
            .peer_errors
            .iter()
            .map(|(c, r)| (c.as_str(), r.as_str()))
    }

    pub(super) fn note_peer_error(&mut self, code: &str, reason: &str) {
        let _ = self.events.send(ConnectionEvent::PeerError {
            code: code.to_owned(),
            reason: reason.to_owned(),
        });
        if self.media.peer_errors.len() == PEER_ERRORS {
            self.media.peer_errors.pop_front();
        }
        self.media
            .peer_errors
            .push_back((code.to_owned(), reason.to_owned()));
    }

    /// Tests only: sends `message` on channel 0 as it is, whatever state the negotiation is in
    /// (a peer that breaks the rules).
    #[doc(hidden)]
    pub fn send_raw_control(&mut self, message: &Message) {
        self.send_control(message);
    }

    /// Hands str0m's SDP API the running session as the peer's offer, once, so that it writes
    /// and matches the application m-line (see [`crate::media`]).
    /// `app_mid`: the application mid of the peer's first offer, if it offers first.
    fn take_over(&mut self, app_mid: Option<&str>) -> Result<(), NegotiationError> {
        if self.media.taken_over {
            return Ok(());
        }
        let Some(remote) = self.media.remote_ice.clone() else {
            return Err(NegotiationError::Refused(
                "the peer's ICE credentials are unknown".into(),
            ));
        };
        let Some(fingerprint) = self
            .rtc
            .direct_api()
            .remote_dtls_fingerprint()
            .map(|f| f.bytes.clone())
        else {
            return Err(NegotiationError::Refused("DTLS is not up".into()));
        };
        let mid = app_mid.unwrap_or(media::APPLICATION_MID).to_owned();
        let sdp = media::ImpliedOffer {
            mid: &mid,
            ufrag: &remote.ufrag,
            pwd: &remote.pass,
            fingerprint: &fingerprint,
            peer_active: self.hs.role == ProofRole::Listener,
            snap_init: self.media.snap_init.as_deref(),
        }
        .sdp();
        let offer = SdpOffer::from_sdp_string(&sdp)
            .map_err(|e| NegotiationError::Malformed(format!("implied offer: {e}")))?;
        self.rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| NegotiationError::Refused(format!("implied offer: {e}")))?;
        self.media.taken_over = true;
        self.media.known_mids.push(mid);
        tracing::debug!(role = ?self.hs.role, "str0m's SDP API took over");
        Ok(())
    }

    /// Offers the queued changes in one offer, if none of ours is waiting.
    pub(super) fn offer_queued(&mut self, _now: Instant) {
        if self.media.pending.is_some() || self.media.queued.is_empty() || self.closed() {
            return;
        }
        if let Err(e) = self.take_over(None) {
            for asked in self.media.queued.drain(..) {
                if let Some(reply) = asked.reply {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            return;
        }
        let mut api = self.rtc.sdp_api();
        let mut changes = Vec::new();
        for asked in self.media.queued.drain(..) {
            let mid = match &asked.change {
                LocalChange::Add { request, .. } => {
                    api.add_media(request.kind, request.direction, None, None, None)
                }
                LocalChange::Direction { mid, direction } => {
                    api.set_direction(*mid, *direction);
                    *mid
                }
                LocalChange::Remove { mid } => {
                    api.stop_media(*mid);
                    *mid
                }
            };
            changes.push((mid, asked));
        }
        let Some((offer, pending)) = api.apply() else {
            // Nothing to negotiate (the direction was already that one).
            for (mid, asked) in changes {
                if let Some(reply) = asked.reply {
                    let _ = reply.send(Ok(mid.to_string()));
                }
            }
            return;
        };
        tracing::debug!(changes = changes.len(), "offering in band");
        self.media.pending = Some((pending, changes));
        self.send_control(&Message::Offer {
            sdp: offer.to_sdp_string(),
        });
    }

    /// The peer's `offer`: checked, then answered by str0m, or refused with a named error.
    /// Glare (`spec/handshake.md` §6.2): the dialer is polite and rolls its own offer back (its
    /// tracks are offered again after answering); the listener ignores the dialer's offer.
    pub(super) fn on_offer(&mut self, now: Instant, sdp: &str) {
        if !self.hs.authenticated {
            // Early data under a fast start carries channels, not media (`spec/handshake.md` §5.5).
            return self
                .refuse_negotiation(&NegotiationError::Refused("not authenticated yet".into()));
        }
        if !self.media.rate.allow(now) {
            return self.refuse_negotiation(&NegotiationError::TooManyOffers);
        }
        if self.media.pending.is_some() {
            if self.hs.role == ProofRole::Listener {
                tracing::debug!("glare: the listener ignores the dialer's offer");
                return;
            }
            if let Some((_, changes)) = self.media.pending.take() {
                tracing::debug!("glare: the dialer rolls its offer back");
                for (_, asked) in changes.into_iter().rev() {
                    self.media.queued.push_front(asked);
                }
            }
        }
        match self.answer_offer(sdp) {
            Ok(answer) => {
                self.send_control(&Message::Answer { sdp: answer });
                let _ = self.events.send(ConnectionEvent::Renegotiated);
            }
            Err(e) => self.refuse_negotiation(&e),
        }
        self.offer_queued(now);
    }

    fn answer_offer(&mut self, sdp: &str) -> Result<String, NegotiationError> {
        let remote = self
            .media
            .remote_ice
            .clone()
            .ok_or_else(|| NegotiationError::Refused("no ICE credentials".into()))?;
        let fingerprint = self
            .rtc
            .direct_api()
            .remote_dtls_fingerprint()
            .map(|f| f.bytes.clone())
            .ok_or_else(|| NegotiationError::Refused("DTLS is not up".into()))?;
        let codecs: Vec<String> = self
            .rtc
            .codec_config()
            .params()
            .iter()
            .map(|p| p.spec().codec.to_string())
            .collect();
        let sending: Vec<Mid> = self.media.senders.iter().map(|s| s.mid).collect();
        let local_ssrcs: Vec<u32> = sending
            .into_iter()
            .filter_map(|mid| {
                self.rtc
                    .direct_api()
                    .stream_tx_by_mid(mid, None)
                    .map(|tx| *tx.ssrc())
            })
            .collect();
        media::check_offer(
            sdp,
            &Running {
                remote_ufrag: &remote.ufrag,
                remote_pwd: &remote.pass,
                remote_fingerprint: &fingerprint,
                codecs: &codecs,
                known_mids: &self.media.known_mids,
                local_ssrcs: &local_ssrcs,
            },
        )?;
        let summary = media::summarize(sdp);
        let app_mid = summary
            .sections
            .iter()
            .find(|s| s.kind == "application")
            .and_then(|s| s.mid.as_deref());
        self.take_over(app_mid)?;
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| NegotiationError::Malformed(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| NegotiationError::Refused(e.to_string()))?;
        for section in summary.sections {
            if let Some(mid) = section.mid
                && !self.media.known_mids.contains(&mid)
            {
                self.media.known_mids.push(mid);
            }
        }
        Ok(answer.to_sdp_string())
    }

    /// The peer's `answer` to our offer: applied, and the tracks' replies answered.
    pub(super) fn on_answer(&mut self, now: Instant, sdp: &str) {
        let Some((pending, tracks)) = self.media.pending.take() else {
            return self.refuse_negotiation(&NegotiationError::UnexpectedAnswer);
        };
        let result = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| NegotiationError::Malformed(e.to_string()))
            .and_then(|answer| {
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| NegotiationError::Refused(e.to_string()))
            });
        match result {
            Ok(()) => {
                for (mid, asked) in tracks {
                    self.applied(now, mid, asked.change);
                    if let Some(reply) = asked.reply {
                        let _ = reply.send(Ok(mid.to_string()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the peer's answer was refused");
                for (_, asked) in tracks {
                    if let Some(reply) = asked.reply {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
                self.refuse_negotiation(&e);
            }
        }
        self.offer_queued(now);
    }

    /// A change the peer's answer accepted: media this side sends starts, pauses, resumes or
    /// ends (a video track whose VP8 encoder could not be made sends nothing).
    fn applied(&mut self, now: Instant, mid: Mid, change: LocalChange) {
        match change {
            LocalChange::Add { request, source } => {
                self.media.known_mids.push(mid.to_string());
                if request.direction.is_sending() {
                    self.sync_sender(now, mid, source);
                }
            }
            LocalChange::Direction { .. } | LocalChange::Remove { .. } => {
                self.sync_sender(now, mid, None);
            }
        }
    }

    /// The peer refused our offer (`error` on channel 0): its tracks fail; `false` when no offer
    /// was waiting (the error is about something else).
    pub(super) fn offer_refused(&mut self, code: &str, reason: &str) -> bool {
        if !matches!(
            code,
            "renegotiation-failed" | "unsupported" | "too-many-offers"
        ) {
            return false;
        }
        let Some((_, tracks)) = self.media.pending.take() else {
            return false;
        };
        for (_, asked) in tracks {
            if let Some(reply) = asked.reply {
                let _ = reply.send(Err(format!("{code}: {reason}")));
            }
        }
        true
    }

    fn refuse_negotiation(&mut self, error: &NegotiationError) {
        tracing::warn!(code = error.code(), %error, "in-band negotiation refused");
        self.send_control(&Message::Error {
            code: error.code().to_owned(),
            reason: error.to_string(),
        });
    }
}
