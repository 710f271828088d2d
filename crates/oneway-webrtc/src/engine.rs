//! One connection's engine: a sans-IO `rtc` peer connection plus the oneway handshake
//! (`spec/handshake.md`), without sockets: [`RtcEngine`] implements
//! [`oneway_endpoint::Engine`].
//!
//! `rtc` negotiates only through SDP, so both roles set descriptions that `oneway-token`
//! synthesizes ([`crate::negotiation`]): the dialer its own offer and the token's answer to it
//! (`spec/token.md` §9.2), the listener the offer a dialer's first check implies
//! ([`oneway_token::sdp::implied_dialer_offer`]) and its own answer, which is never sent. ICE
//! restarts are in [`crate::restart`]; the workarounds for `rtc`'s DTLS retransmission and
//! nomination in [`crate::dtls_flights`] and [`crate::nomination`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use oneway_connection::{Command, ConnectionEvent};
use oneway_core::ProofRole;
use oneway_core::demux;
use oneway_core::handshake::{self, BeforeAuth, Failure, is_dtls};
use oneway_core::signal::{CHANNEL_ID, CHANNEL_LABEL, Message};
use oneway_endpoint::session::{ChannelTable, Handshake, SendQueue, reply_closed};
use oneway_endpoint::{Engine, Notice, Transmit};
use rtc::data_channel::{RTCDataChannelId, RTCDataChannelInit};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

pub use crate::dangerous::{DangerousEngine, OWN_FINGERPRINT, OWN_PWD, OWN_UFRAG};
use crate::dtls_flights::DtlsFlights;
use crate::negotiation::Negotiation;
use crate::nomination::{EarlySelection, StunKind, stun_kind};
use crate::restart::DeferredSwitch;
use oneway_core::demux::nominating_copy;

/// Most rounds of `poll_event`/`poll_read`/`poll_write` one [`Engine::poll`] runs before it
/// yields back to the driver, so one busy connection cannot starve the others on a socket.
pub const POLL_ROUNDS: usize = 64;
/// Most datagrams kept while waiting for ICE to connect (see [`Engine::handle_datagram`]).
pub const EARLY_DATAGRAMS: usize = 16;

/// One connection's engine.
pub struct RtcEngine {
    pub(crate) pc: RTCPeerConnection,
    /// Role, keys, proofs, notices and the path record (shared bookkeeping).
    pub(crate) hs: Handshake,
    pub(crate) negotiation: Negotiation,
    /// SHA-256 of this side's certificate.
    local_fp: [u8; 32],
    ctrl: RTCDataChannelId,
    closed: bool,
    pub(crate) events: mpsc::UnboundedSender<ConnectionEvent>,
    channels: ChannelTable<RTCDataChannelId>,
    outbound: SendQueue<RTCDataChannelId>,
    pub(crate) restart: Option<oneshot::Sender<Result<(), String>>>,
    /// A restart agreed but not switched to yet (see [`DeferredSwitch`]).
    pub(crate) deferred: Option<DeferredSwitch>,
    /// Dialer: a restart the application asked for while a deferred switch was pending; started
    /// once that switch is done.
    pub(crate) queued_restart: Option<oneshot::Sender<Result<(), String>>>,
    /// Dialer: the ICE-restart offer staged by `prepare_restart`, set when the answer arrives.
    pub(crate) staged_offer: Option<RTCSessionDescription>,
    pending_out: Vec<Transmit>,
    /// DTLS that arrived before ICE connected, replayed once it has (see `handle_datagram`).
    early: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Flight retransmission on the peer's retransmissions, until DTLS connects.
    flights: DtlsFlights,
    /// Listener: the last nominating check (USE-CANDIDATE) `rtc` left unanswered, replayed
    /// once its own check on that pair succeeds (see `handle_datagram`).
    unanswered_nomination: Option<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Listener: DTLS before nomination, on the pair the dialer's DTLS came on (see
    /// [`EarlySelection`]).
    early_selection: EarlySelection,
    ice_connected: bool,
    dtls_connected: bool,
    /// Tests only: a MAC sent in place of this session's proof (a relayed proof).
    pub(crate) relayed_proof: Option<[u8; 32]>,
    /// A dialer whose ICE failed timeout was stretched to its dial timeout (so a listener that
    /// takes its reply code late is still answered) ends a connection whose ICE stays
    /// disconnected this long with `consent-lost`, as the default failed timeout would.
    pub(crate) consent_after_disconnect: Option<Duration>,
    /// When a disconnected, authenticated connection ends with `consent-lost`.
    consent_deadline: Option<Instant>,
    /// Dialer: the listener's addresses checked again after its reply-route checks.
    revival: crate::reply::Revival,
    /// Conformance runs only: protocol breaks on purpose ([`DangerousEngine`]).
    dangerous: DangerousEngine,
    /// In-band media: tracks, the pending offer, senders and receivers.
    pub(crate) media: crate::media::Media,
}

/// The channel-0 configuration both sides create (negotiated, id 0, ordered, reliable).
pub(crate) fn control_channel_init() -> RTCDataChannelInit {
    RTCDataChannelInit {
        negotiated: Some(CHANNEL_ID),
        ..Default::default()
    }
}

impl RtcEngine {
    /// Wraps a configured peer connection whose channel 0 was created as `ctrl`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pc: RTCPeerConnection,
        role: ProofRole,
        negotiation: Negotiation,
        auth_key: [u8; 32],
        listener_fp: [u8; 32],
        local_fp: [u8; 32],
        ctrl: RTCDataChannelId,
        started: Instant,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Self {
        RtcEngine {
            pc,
            hs: Handshake::new(role, auth_key, listener_fp, started),
            negotiation,
            local_fp,
            ctrl,
            closed: false,
            events,
            channels: ChannelTable::default(),
            outbound: SendQueue::default(),
            restart: None,
            deferred: None,
            queued_restart: None,
            staged_offer: None,
            pending_out: Vec::new(),
            early: Vec::new(),
            flights: DtlsFlights::default(),
            unanswered_nomination: None,
            early_selection: EarlySelection::default(),
            ice_connected: false,
            dtls_connected: false,
            relayed_proof: None,
            consent_after_disconnect: None,
            consent_deadline: None,
            revival: crate::reply::Revival::default(),
            dangerous: DangerousEngine::default(),
            media: Default::default(),
        }
    }

    /// Feeds one datagram.
    ///
    /// `rtc` drops DTLS records that arrive on a pair ICE has not validated yet. A dialer may
    /// send its ClientHello as soon as *its* side has a nominated pair, which can be before the
    /// lite listener has processed the nominating check's effects; the dialer then retransmits
    /// only after its DTLS timer (about 1 s in str0m). The engine keeps such early records (at
    /// most [`EARLY_DATAGRAMS`]) and replays them when ICE connects.
    fn datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        if self.closed {
            return;
        }
        if let Some(DeferredSwitch {
            ufrag,
            on_check: true,
            ..
        }) = &self.deferred
            && demux::BindingRequest::parse(contents).is_ok_and(|r| {
                r.username()
                    .rsplit_once(':')
                    .is_some_and(|(_, u)| u == ufrag)
            })
        {
            self.switch_deferred(now);
        }
        if self.hs.role == ProofRole::Dialer
            && !self.ice_connected
            && oneway_core::punch::is_punch_check(contents)
        {
            self.revival.on_listener_check(&mut self.pc, source);
        }
        if is_dtls(contents) && !self.ice_connected {
            self.hs
                .path
                .received(now, source, destination, contents, false);
            if self.early.len() < EARLY_DATAGRAMS {
                self.early.push((source, destination, contents.to_vec()));
            }
            if self.hs.role == ProofRole::Listener {
                self.early_selection.dtls((source, destination));
                self.select_early(now);
            }
            return;
        }
        self.hs
            .path
            .received(now, source, destination, contents, true);
        if is_dtls(contents) && !self.dtls_connected {
            let again = self.flights.received(contents);
            if !again.is_empty() {
                tracing::debug!(
                    datagrams = again.len(),
                    "the peer retransmitted its DTLS flight; retransmitting ours"
                );
                self.pending_out.extend_from_slice(again);
            }
        }
        let nominating = self.hs.role == ProofRole::Listener
            && !self.ice_connected
            && stun_kind(contents)
                == Some(StunKind::Request {
                    use_candidate: true,
                });
        if nominating {
            self.unanswered_nomination = Some((source, destination, contents.to_vec()));
        }
        let listening = self.hs.role == ProofRole::Listener && !self.ice_connected;
        let kind = if listening { stun_kind(contents) } else { None };
        if let Some(StunKind::Request {
            use_candidate: false,
        }) = kind
        {
            self.early_selection.check((source, destination), contents);
        }
        self.read(now, source, destination, contents);
        if kind == Some(StunKind::SuccessResponse) {
            self.early_selection.answered((source, destination));
            self.select_early(now);
        }
        if self.hs.role == ProofRole::Listener
            && !self.ice_connected
            && stun_kind(contents) == Some(StunKind::SuccessResponse)
            && let Some((s, d, check)) = self.unanswered_nomination.take()
            && s == source
            && d == destination
        {
            // `rtc`'s controlled agent (lite or not) answers a USE-CANDIDATE check only if its
            // own check on that pair has already succeeded; otherwise it sends that check and
            // leaves the nomination unanswered, so a dialer that nominates at once (str0m)
            // waits for its retransmission timer, about 500 ms. Its check has just succeeded:
            // replaying the nominating check now selects the pair and answers it at once.
            self.read(now, source, destination, &check);
        }
    }

    /// Listener, before ICE connects: once the dialer's DTLS arrived on a pair whose checks
    /// succeeded both ways, has `rtc` select that pair, so DTLS is answered before the dialer
    /// nominates (see [`EarlySelection`]).
    fn select_early(&mut self, now: Instant) {
        if self.ice_connected {
            return;
        }
        let Negotiation::Listener {
            local_ice: (_, pwd),
            ..
        } = &self.negotiation
        else {
            return;
        };
        let Some(((source, destination), check)) = self.early_selection.ready() else {
            return;
        };
        let copy = nominating_copy(&check, pwd);
        match copy {
            Ok(copy) => {
                tracing::debug!(%source, "DTLS before nomination: selecting the dialer's pair");
                self.read(now, source, destination, &copy);
            }
            Err(e) => tracing::debug!(%source, error = %e, "no early selection"),
        }
    }

    fn read(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: destination,
                peer_addr: source,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: BytesMut::from(contents),
        };
        if let Err(e) = self.pc.handle_read(message) {
            tracing::debug!(%source, error = %e, "datagram refused by rtc");
        }
    }

    fn timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.consent_deadline.is_some_and(|at| now >= at) {
            self.finish(
                "consent-lost",
                "ICE stayed disconnected (consent lost)".to_owned(),
            );
            return;
        }
        if let Err(e) = self.pc.handle_timeout(now) {
            self.finish("rtc-error", e.to_string());
            return;
        }
        if self.hs.authenticated {
            self.media_timeout(now);
        }
    }

    pub(crate) fn command(&mut self, now: Instant, command: Command) {
        if self.closed {
            reply_closed(command);
            return;
        }
        match command {
            Command::Open { label, reply } => {
                if !self.hs.authenticated {
                    let _ = reply.send(Err("not authenticated yet".to_owned()));
                    return;
                }
                match self.pc.create_data_channel(&label, None) {
                    Ok(channel) => self.channels.requested(channel.id(), reply),
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Command::Send {
                channel,
                binary,
                data,
                reply,
            } => {
                let result = self.outbound.push(&self.channels, channel, binary, data);
                let _ = reply.send(result);
            }
            Command::IceRestart { reply } => {
                if self.hs.role == ProofRole::Dialer
                    && self.deferred.is_some()
                    && self.queued_restart.is_none()
                    && self.restart.is_none()
                {
                    // Our staged offer is the one being switched to: start after it.
                    self.queued_restart = Some(reply);
                    return;
                }
                if !self.hs.authenticated || self.restart.is_some() || self.queued_restart.is_some()
                {
                    let _ = reply.send(Err(
                        "not authenticated, or a restart is already running".to_owned()
                    ));
                    return;
                }
                match self.prepare_restart() {
                    Ok((ufrag, pwd)) => {
                        self.send_control(now, &Message::IceRestart { ufrag, pwd });
                        self.restart = Some(reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                    }
                }
            }
            Command::AddTrack { request, reply } => self.add_track(now, request, reply),
            Command::RemoveTrack { track, reply } => self.remove_track(now, track, reply),
            Command::SetTrackDirection {
                track,
                direction,
                reply,
            } => self.set_track_direction(now, track, direction, reply),
            Command::Close { reason } => {
                self.send_control(
                    now,
                    &Message::Close {
                        reason: reason.clone(),
                    },
                );
                self.finish("closed-locally", reason);
            }
        }
    }

    /// Drains the peer connection: returns the datagrams to send and the next time the engine
    /// needs a timeout. Handles every event and message on the way.
    fn poll_all(&mut self, now: Instant) -> (Vec<Transmit>, Option<Instant>) {
        self.flush_outbound(now);
        for _ in 0..POLL_ROUNDS {
            let mut progressed = false;
            while let Some(event) = self.pc.poll_event() {
                progressed = true;
                self.on_event(now, event);
            }
            while let Some(message) = self.pc.poll_read() {
                progressed = true;
                match message.message {
                    RTCMessage::DataChannelMessage(id, m) => {
                        self.on_message(now, id, m.is_string, &m.data)
                    }
                    RTCMessage::RtpPacket(track, packet) if self.hs.authenticated => {
                        self.on_rtp(now, &track, &packet);
                        let _ = self.events.send(ConnectionEvent::Rtp {
                            track,
                            payload_type: packet.header.payload_type,
                            payload: packet.payload.to_vec(),
                        });
                    }
                    _ => {}
                }
            }
            while let Some(out) = self.pc.poll_write() {
                progressed = true;
                self.on_transmit(now, out);
            }
            if !progressed {
                break;
            }
        }
        let next = if self.closed {
            None
        } else {
            [
                self.pc.poll_timeout(),
                self.consent_deadline,
                self.media.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
        };
        (std::mem::take(&mut self.pending_out), next)
    }

    fn on_transmit(&mut self, now: Instant, out: TaggedBytesMut) {
        let source = out.transport.local_addr;
        let destination = out.transport.peer_addr;
        let contents = out.message.to_vec();
        self.hs
            .path
            .sent(now, source, destination, &contents, self.ice_connected);
        let out = Transmit {
            source,
            destination,
            contents,
        };
        if !self.dtls_connected && is_dtls(&out.contents) {
            self.flights.sent(&out);
        }
        self.pending_out.push(out);
    }

    fn on_event(&mut self, now: Instant, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => {
                tracing::debug!(?state, role = ?self.hs.role, "ICE state");
                match state {
                    RTCIceConnectionState::Disconnected if self.hs.authenticated => {
                        self.consent_deadline = self.consent_after_disconnect.map(|d| now + d);
                    }
                    RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                        if self.ice_connected =>
                    {
                        self.consent_deadline = None;
                    }
                    RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                        if !self.ice_connected =>
                    {
                        self.ice_connected = true;
                        self.hs.path.timings.ice_connected = Some(now);
                        self.hs.notices.push(Notice::IceConnected);
                        for (source, destination, contents) in std::mem::take(&mut self.early) {
                            self.hs
                                .path
                                .received(now, source, destination, &contents, true);
                            self.read(now, source, destination, &contents);
                        }
                    }
                    RTCIceConnectionState::Failed if self.hs.authenticated => {
                        self.finish("consent-lost", "ICE failed (consent lost)".to_owned());
                    }
                    // Before authentication the dialer's deadline names the stage; a listener
                    // engine just ends.
                    RTCIceConnectionState::Failed if self.hs.role == ProofRole::Listener => {
                        self.finish("ice-failed", "ICE failed".to_owned());
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                tracing::debug!(?state, role = ?self.hs.role, "connection state");
                match state {
                    RTCPeerConnectionState::Connected if !self.dtls_connected => {
                        self.dtls_connected = true;
                        self.flights = DtlsFlights::default();
                        self.hs.path.timings.dtls_connected = Some(now);
                        self.hs.notices.push(Notice::DtlsConnected);
                    }
                    RTCPeerConnectionState::Closed if self.dtls_connected => {
                        self.finish("closed-by-peer", "DTLS closed".to_owned());
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                if id == self.ctrl {
                    self.hs.path.timings.channel_open = Some(now);
                    self.hs.notices.push(Notice::ChannelOpen);
                    if self.hs.role == ProofRole::Dialer {
                        self.send_proof(now);
                    }
                } else {
                    self.on_channel_open(id);
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init))
                if self.hs.authenticated =>
            {
                let _ = self.events.send(ConnectionEvent::TrackOpen {
                    track: init.track_id,
                });
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnBufferedAmountLow(id))
                if id == self.ctrl && self.deferred.as_ref().is_some_and(|d| d.on_ack) =>
            {
                // Channel 0's low-water mark is 0: everything on it, the answer included, has
                // been acknowledged.
                self.switch_deferred(now);
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(id)) => {
                if id == self.ctrl {
                    self.finish("closed-by-peer", "control channel closed".to_owned());
                } else if let Some(channel) = self.channels.closed(id) {
                    let _ = self.events.send(ConnectionEvent::ChannelClosed { channel });
                }
            }
            _ => {}
        }
    }

    fn on_channel_open(&mut self, id: RTCDataChannelId) {
        if !self.hs.authenticated {
            // No application channel before the proof: spec/handshake.md §5.3.
            tracing::warn!("application channel opened before authentication; closing it");
            if let Some(mut channel) = self.pc.data_channel(id) {
                let _ = channel.close();
            }
            return;
        }
        let label = self
            .pc
            .data_channel(id)
            .map(|c| c.label().to_owned())
            .unwrap_or_default();
        if let Some(event) = self.channels.opened(id, label) {
            let _ = self.events.send(event);
        }
    }

    fn on_message(&mut self, now: Instant, id: RTCDataChannelId, text: bool, data: &[u8]) {
        if id == self.ctrl {
            self.on_control(now, data);
            return;
        }
        if let (true, Some(channel)) = (self.hs.authenticated, self.channels.channel(id)) {
            let _ = self.events.send(ConnectionEvent::Data {
                channel,
                binary: !text,
                data: data.to_vec(),
            });
        }
    }

    /// `(listener_fp, dialer_fp)` of this DTLS session.
    fn fingerprints(&self) -> Option<([u8; 32], [u8; 32])> {
        let sctp = self.pc.sctp()?;
        let remote_der = sctp.transport().get_remote_certificates().first()?.clone();
        let remote: [u8; 32] = Sha256::digest(&remote_der).into();
        Some(match self.hs.role {
            ProofRole::Listener => (self.local_fp, remote),
            ProofRole::Dialer => (remote, self.local_fp),
        })
    }

    /// SHA-256 of the certificate the peer presented in DTLS.
    pub(crate) fn remote_fingerprint(&self) -> Option<[u8; 32]> {
        self.fingerprints()
            .map(|(listener, dialer)| match self.hs.role {
                ProofRole::Listener => dialer,
                ProofRole::Dialer => listener,
            })
    }

    /// The deliberate protocol violations of this engine (see [`DangerousEngine`]).
    pub fn dangerous_mut(&mut self) -> &mut DangerousEngine {
        &mut self.dangerous
    }

    fn send_proof(&mut self, now: Instant) {
        for text in std::mem::take(&mut self.dangerous.before_proof) {
            if let Some(mut channel) = self.pc.data_channel(self.ctrl)
                && let Err(e) = channel.send_text(now, text)
            {
                tracing::warn!(error = %e, "message before the proof not sent");
            }
        }
        if self.dangerous.withhold_proof {
            tracing::warn!(role = ?self.hs.role, "withholding the proof (conformance run)");
            return;
        }
        let Some(fingerprints) = self.fingerprints() else {
            self.refuse(
                now,
                "auth-failed",
                "DTLS certificates unavailable".to_owned(),
            );
            return;
        };
        let mac = match (self.relayed_proof, self.dangerous.proof_key) {
            (Some(mac), _) => mac,
            (None, Some(key)) => handshake::own_proof(self.hs.role, &key, fingerprints),
            (None, None) => self.hs.own_proof(fingerprints),
        };
        self.send_control(now, &Message::proof(&mac));
    }

    fn on_control(&mut self, now: Instant, bytes: &[u8]) {
        // Messages that arrive with (or after) one that ended the handshake are not read: a
        // proof that follows a refused message must not admit the peer (spec/handshake.md
        // §5.3).
        if self.closed {
            return;
        }
        if !self.hs.authenticated {
            match handshake::before_auth(bytes) {
                BeforeAuth::Proof(mac) => self.on_proof(now, &mac),
                BeforeAuth::RefusedByPeer(Failure { code, reason }) => {
                    tracing::warn!(%code, %reason, "refused by the peer");
                    self.finish(code, reason);
                }
                BeforeAuth::Violation(Failure { code, reason }) => self.refuse(now, code, reason),
            }
            return;
        }
        let message = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "bad control message");
                self.send_control(
                    now,
                    &Message::Error {
                        code: e.code().to_owned(),
                        reason: e.to_string(),
                    },
                );
                return;
            }
        };
        match message {
            Message::IceRestart { ufrag, pwd } => self.on_ice_restart(now, ufrag, pwd),
            Message::IceRestartAnswer { ufrag, pwd } => self.on_ice_restart_answer(now, ufrag, pwd),
            Message::Close { reason } => self.finish("closed-by-peer", reason),
            Message::Error { code, reason } => {
                tracing::warn!(%code, %reason, "peer reported an error");
                let _ = self.events.send(ConnectionEvent::PeerError {
                    code: code.clone(),
                    reason: reason.clone(),
                });
                // The codes that refuse an offer (`spec/handshake.md` §6.2, §10.5).
                let refuses_offer = matches!(
                    code.as_str(),
                    "renegotiation-failed" | "unsupported" | "too-many-offers"
                );
                if refuses_offer && self.offer_refused(now, &code, &reason) {
                    return;
                }
                if let Some(reply) = self.restart.take() {
                    let _ = reply.send(Err(format!("{code}: {reason}")));
                }
            }
            Message::Offer { sdp } => self.on_offer(now, &sdp),
            Message::Answer { sdp } => self.on_answer(now, &sdp),
            Message::Proof { .. } => tracing::debug!("proof after authentication ignored"),
            other => tracing::debug!(kind = other.kind(), "unhandled control message"),
        }
    }

    fn on_proof(&mut self, now: Instant, mac: &[u8; 32]) {
        let fingerprints = self.fingerprints();
        if let Err(Failure { code, reason }) = self.hs.on_peer_proof(now, fingerprints, mac) {
            self.refuse(now, code, reason);
            return;
        }
        if self.hs.authenticated {
            let own = self
                .pc
                .local_description()
                .map(|d| oneway_core::renegotiation::summarize(&d.sdp))
                .unwrap_or_default();
            for text in self.dangerous.take_after_auth(&own, &self.local_fp) {
                if let Some(mut channel) = self.pc.data_channel(self.ctrl)
                    && let Err(e) = channel.send_text(now, text)
                {
                    tracing::warn!(error = %e, "crafted message after authentication not sent");
                }
            }
        }
    }

    /// Moves what the peer connection has to send into `pending_out` now.
    pub(crate) fn flush_writes(&mut self, now: Instant) {
        while let Some(out) = self.pc.poll_write() {
            self.on_transmit(now, out);
        }
    }

    /// The peer failed authentication or broke the protocol before it: tell it, log, close.
    fn refuse(&mut self, now: Instant, code: &'static str, reason: String) {
        tracing::warn!(code, %reason, role = ?self.hs.role, "peer refused");
        self.send_control(
            now,
            &Message::Error {
                code: code.to_owned(),
                reason: reason.clone(),
            },
        );
        self.finish(code, reason);
    }

    fn finish(&mut self, code: &'static str, reason: String) {
        if self.closed {
            return;
        }
        // Let what is queued (a last control message) leave, then close: `close` queues an SCTP
        // ABORT and a DTLS close_notify behind it.
        while let Some(out) = self.pc.poll_write() {
            let now = out.now;
            self.on_transmit(now, out);
        }
        let _ = self.pc.close();
        while let Some(out) = self.pc.poll_write() {
            let now = out.now;
            self.on_transmit(now, out);
        }
        self.closed = true;
        self.channels.fail_pending(&format!("{code}: {reason}"));
        if let Some(reply) = self.restart.take() {
            let _ = reply.send(Err(format!("{code}: {reason}")));
        }
        let _ = self.events.send(ConnectionEvent::Closed {
            code,
            reason: reason.clone(),
        });
        self.hs.notices.push(Notice::Closed { code, reason });
    }

    pub(crate) fn send_control(&mut self, now: Instant, message: &Message) {
        let text = message.encode();
        let sent = match self.pc.data_channel(self.ctrl) {
            Some(mut channel) => channel.send_text(now, text).map_err(|e| e.to_string()),
            None => Err("channel 0 gone".to_owned()),
        };
        if let Err(e) = sent {
            tracing::warn!(kind = message.kind(), error = %e, "control message not sent");
        }
    }

    fn flush_outbound(&mut self, now: Instant) {
        while let Some((id, binary, data)) = self.outbound.pop() {
            let Some(mut channel) = self.pc.data_channel(id) else {
                continue;
            };
            let result = if binary {
                channel.send(now, BytesMut::from(&data[..]))
            } else {
                match String::from_utf8(data) {
                    Ok(text) => channel.send_text(now, text),
                    Err(_) => {
                        tracing::warn!("text message is not UTF-8; dropped");
                        continue;
                    }
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "channel write failed; dropping the message");
            }
        }
    }
}

impl Engine for RtcEngine {
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        self.datagram(now, source, destination, contents);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.timeout(now);
    }

    fn handle_command(&mut self, now: Instant, command: Command) {
        self.command(now, command);
    }

    fn poll(&mut self, now: Instant) -> (Vec<Transmit>, Option<Instant>) {
        self.poll_all(now)
    }

    fn handshake(&self) -> &Handshake {
        &self.hs
    }

    fn handshake_mut(&mut self) -> &mut Handshake {
        &mut self.hs
    }

    fn admit(&mut self, now: Instant) {
        if self.hs.role == ProofRole::Listener && !self.hs.authenticated && !self.closed {
            self.send_proof(now);
            self.hs.authenticate(now);
        }
    }

    fn reject(&mut self, now: Instant, code: &'static str, reason: String) {
        self.refuse(now, code, reason);
    }

    fn is_closed(&self) -> bool {
        self.closed
    }

    fn add_relayed_candidate(&mut self, _relayed: SocketAddr, _base: SocketAddr) -> bool {
        // `rtc` takes local candidates before end-of-candidates only: the shell waits for the
        // allocation before the engine starts (`RELAY_BEFORE_START`).
        false
    }
}

/// The label oneway gives channel 0.
pub(crate) const CONTROL_LABEL: &str = CHANNEL_LABEL;
