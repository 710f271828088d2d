//! One connection's engine: a sans-IO `rtc` peer connection plus the oneway handshake
//! (`spec/handshake.md`), without sockets. The drivers feed it datagrams, timeouts and commands,
//! and send what [`Engine::poll`] returns.
//!
//! `rtc` negotiates only through SDP, so both roles set descriptions that `oneway-token`
//! synthesizes: the dialer its own offer and the token's answer to it (`spec/token.md` §9.2),
//! the listener the offer a dialer's first check implies
//! ([`oneway_token::sdp::implied_dialer_offer`]) and its own answer, which is never sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use oneway_core::demux::{self, is_dtls};
use oneway_core::proof::{self, ProofRole};
use oneway_core::signal::{CHANNEL_ID, CHANNEL_LABEL, Message};
use oneway_token::{SctpParams, Token};
use rtc::data_channel::{RTCDataChannelId, RTCDataChannelInit};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::StackError;
use crate::connection::{ChannelRef, ConnectionEvent, Stage, Timings};

/// Most bytes queued for application channels; beyond it `send` fails.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Most rounds of `poll_event`/`poll_read`/`poll_write` one [`Engine::poll`] runs before it
/// yields back to the driver, so one busy connection cannot starve the others on a socket.
pub const POLL_ROUNDS: usize = 64;
/// Most datagrams kept while waiting for ICE to connect (see [`Engine::handle_datagram`]).
pub const EARLY_DATAGRAMS: usize = 16;

/// Which side of the handshake this engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The token issuer: ICE-lite, controlled, DTLS server, SCTP server.
    Listener,
    /// The token holder: full ICE, controlling, DTLS client, SCTP client.
    Dialer,
}

/// What the engine tells its driver, besides datagrams.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// ICE found a working pair.
    IceConnected,
    /// DTLS completed.
    DtlsConnected,
    /// Channel 0 is open.
    ChannelOpen,
    /// Listener only: the dialer's proof verified; the driver must call [`Engine::admit`] or
    /// [`Engine::reject`].
    DialerProven,
    /// Both proofs verified.
    Authenticated,
    /// The engine ended, with a stable code of `spec/handshake.md` §8.
    Closed {
        /// Stable code.
        code: &'static str,
        /// Details.
        reason: String,
    },
}

/// A datagram to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Local address to send from.
    pub source: SocketAddr,
    /// Remote address.
    pub destination: SocketAddr,
    /// Payload.
    pub contents: Vec<u8>,
}

pub use oneway_connection::Command;

/// Most datagrams of one DTLS handshake flight kept for [`DtlsFlights`].
const FLIGHT_DATAGRAMS: usize = 16;
/// Most peer handshake datagrams remembered for [`DtlsFlights`].
const SEEN_DATAGRAMS: usize = 64;

/// RFC 6347 §4.2.4 for `rtc`'s DTLS handshake: when the peer retransmits a flight, this side
/// retransmits its last one. `rtc-dtls` 0.21 clears its retransmit timer whenever handshake
/// datagrams arrive, even a retransmission that completes nothing; a flight of ours lost in
/// part was then never sent again, and the handshake stalled until the dialer's `dtls-timeout`
/// (a str0m dialer, which retransmits its ClientHello, met it in 1 to 2 dials out of 10 at
/// 5-10 % loss). Only kept until DTLS connects; bounded.
#[derive(Debug, Default)]
struct DtlsFlights {
    /// This side's last flight: its handshake datagrams since the peer's last new one.
    last: Vec<Outgoing>,
    /// A new peer datagram arrived since this side last sent: the next send starts a flight.
    peer_spoke: bool,
    /// Digests of the peer's handshake datagrams, record sequence numbers left out (a
    /// retransmission carries new ones).
    seen: VecDeque<u64>,
}

impl DtlsFlights {
    /// This side sends a DTLS datagram.
    fn sent(&mut self, out: &Outgoing) {
        if self.peer_spoke {
            self.last.clear();
            self.peer_spoke = false;
        }
        if self.last.len() < FLIGHT_DATAGRAMS {
            self.last.push(out.clone());
        }
    }

    /// The peer sent a DTLS datagram: this side's last flight again if the datagram repeats
    /// handshake records the peer already sent.
    fn received(&mut self, contents: &[u8]) -> &[Outgoing] {
        if contents.first() != Some(&22) {
            return &[];
        }
        let digest = handshake_digest(contents);
        if self.seen.contains(&digest) {
            return &self.last;
        }
        if self.seen.len() >= SEEN_DATAGRAMS {
            self.seen.pop_front();
        }
        self.seen.push_back(digest);
        self.peer_spoke = true;
        &[]
    }
}

/// A digest of a DTLS datagram without its records' sequence numbers.
fn handshake_digest(datagram: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut stripped = datagram.to_vec();
    let mut at = 0;
    // Record header: type, version (2), epoch (2), sequence number (6), length (2).
    while let Some(header) = stripped.get_mut(at..at + 13) {
        header[5..11].fill(0);
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        at += 13 + len;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    stripped.hash(&mut hasher);
    hasher.finish()
}

/// An ICE restart this side has agreed to but not switched to yet (`spec/handshake.md` §6.1).
/// Switching restarts `rtc`'s ICE agent, which drops the selected pair until new checks
/// succeed: nothing this side sends gets out meanwhile, so an `ice-restart-answer` lost on the
/// way could never be retransmitted, and the peer would never learn the new credentials (the
/// connection then dies with `consent-lost`, and every message in flight with it). So the switch
/// waits until the peer surely has what it needs:
///
/// - a responder (either role), once channel 0 has nothing unacknowledged: its answer arrived;
/// - a listener (either way), on the first check that uses the dialer's new credentials: the
///   dialer checks with them only once it has switched itself (an initiating webrtc-rs dialer
///   switches on the answer, and its acknowledgement may not get out after that).
#[derive(Debug)]
struct DeferredSwitch {
    /// The peer's credentials after the restart.
    ufrag: String,
    /// See `ufrag`.
    pwd: String,
    /// Switch on the first check carrying `ufrag` (listener).
    on_check: bool,
    /// Switch once channel 0 is acknowledged (responder).
    on_ack: bool,
}

/// What a role needs to renegotiate: `rtc` takes ICE credentials only through SDP.
pub(crate) enum Negotiation {
    /// The dialer answers its own offers with the token's answer (`spec/token.md` §9.2).
    Dialer {
        /// The token dialed.
        token: Box<Token>,
    },
    /// The listener sets the offer a dialer's credentials imply, and answers it.
    Listener {
        /// The dialer's address (its implied host candidate).
        remote: SocketAddr,
        /// The listener's SCTP parameters.
        sctp: SctpParams,
        /// The listener's ICE credentials (the composed ufrag and the listener pwd). They stay
        /// the same across an ICE restart (see `spec/handshake.md` §6.1).
        local_ice: (String, String),
    },
}

/// One connection's engine.
pub struct Engine {
    pc: RTCPeerConnection,
    role: Role,
    negotiation: Negotiation,
    auth_key: [u8; 32],
    /// SHA-256 of the listener's certificate (the token's fingerprint).
    listener_fp: [u8; 32],
    /// SHA-256 of this side's certificate.
    local_fp: [u8; 32],
    ctrl: RTCDataChannelId,
    authenticated: bool,
    closed: bool,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    channels: HashMap<RTCDataChannelId, ChannelRef>,
    refs: HashMap<ChannelRef, RTCDataChannelId>,
    next_ref: u32,
    pending_opens: Vec<(
        RTCDataChannelId,
        oneshot::Sender<Result<ChannelRef, String>>,
    )>,
    outbound: VecDeque<(RTCDataChannelId, bool, Vec<u8>)>,
    outbound_bytes: usize,
    restart: Option<oneshot::Sender<Result<(), String>>>,
    /// A restart agreed but not switched to yet (see [`DeferredSwitch`]).
    deferred: Option<DeferredSwitch>,
    /// Dialer: a restart the application asked for while a deferred switch was pending; started
    /// once that switch is done.
    queued_restart: Option<oneshot::Sender<Result<(), String>>>,
    /// Dialer: the ICE-restart offer staged by `prepare_restart`, set when the answer arrives.
    staged_offer: Option<RTCSessionDescription>,
    notices: Vec<Notice>,
    pending_out: Vec<Outgoing>,
    /// DTLS that arrived before ICE connected, replayed once it has (see `handle_datagram`).
    early: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    /// Flight retransmission on the peer's retransmissions, until DTLS connects.
    flights: DtlsFlights,
    /// Listener: the last nominating check (USE-CANDIDATE) `rtc` left unanswered, replayed
    /// once its own check on that pair succeeds (see `handle_datagram`).
    unanswered_nomination: Option<(SocketAddr, SocketAddr, Vec<u8>)>,
    pub(crate) timings: Timings,
    pub(crate) tried: Vec<(SocketAddr, Duration)>,
    pub(crate) selected: Option<(SocketAddr, SocketAddr)>,
    ice_connected: bool,
    dtls_connected: bool,
}

/// The channel-0 configuration both sides create (negotiated, id 0, ordered, reliable).
pub(crate) fn control_channel_init() -> RTCDataChannelInit {
    RTCDataChannelInit {
        negotiated: Some(CHANNEL_ID),
        ..Default::default()
    }
}

/// The media engine both roles use: `rtc`'s default codecs, so that an in-band `offer` adding
/// audio or video (`spec/handshake.md` §6.2) gets an answer that accepts it.
pub(crate) fn media_engine() -> Result<MediaEngine, StackError> {
    let mut engine = MediaEngine::default();
    engine
        .register_default_codecs()
        .map_err(rtc_error("media codecs"))?;
    Ok(engine)
}

pub(crate) fn rtc_error(context: &str) -> impl FnOnce(rtc::shared::error::Error) -> StackError {
    move |e| StackError::Rtc(format!("{context}: {e}"))
}

impl Engine {
    /// Wraps a configured peer connection whose channel 0 was created as `ctrl`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        pc: RTCPeerConnection,
        role: Role,
        negotiation: Negotiation,
        auth_key: [u8; 32],
        listener_fp: [u8; 32],
        local_fp: [u8; 32],
        ctrl: RTCDataChannelId,
        started: Instant,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Self {
        Engine {
            pc,
            role,
            negotiation,
            auth_key,
            listener_fp,
            local_fp,
            ctrl,
            authenticated: false,
            closed: false,
            events,
            channels: HashMap::new(),
            refs: HashMap::new(),
            next_ref: 1,
            pending_opens: Vec::new(),
            outbound: VecDeque::new(),
            outbound_bytes: 0,
            restart: None,
            deferred: None,
            queued_restart: None,
            staged_offer: None,
            notices: Vec::new(),
            pending_out: Vec::new(),
            early: Vec::new(),
            flights: DtlsFlights::default(),
            unanswered_nomination: None,
            timings: Timings::new(started),
            tried: Vec::new(),
            selected: None,
            ice_connected: false,
            dtls_connected: false,
        }
    }

    /// Whether the engine has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether both proofs have verified.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The furthest stage reached.
    pub fn stage(&self) -> Stage {
        self.timings.stage()
    }

    /// Feeds one datagram.
    ///
    /// `rtc` drops DTLS records that arrive on a pair ICE has not validated yet. A dialer may
    /// send its ClientHello as soon as *its* side has a nominated pair, which can be before the
    /// lite listener has processed the nominating check's effects; the dialer then retransmits
    /// only after its DTLS timer (about 1 s in str0m). The engine keeps such early records (at
    /// most [`EARLY_DATAGRAMS`]) and replays them when ICE connects.
    pub fn handle_datagram(
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
        if self.timings.first_check.is_none() && contents.first().is_some_and(|b| *b < 2) {
            self.timings.first_check = Some(now);
        }
        if is_dtls(contents) && !self.ice_connected {
            if self.early.len() < EARLY_DATAGRAMS {
                self.early.push((source, destination, contents.to_vec()));
            }
            return;
        }
        if self.selected.is_none() && is_dtls(contents) {
            self.selected = Some((destination, source));
        }
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
        let nominating = self.role == Role::Listener
            && !self.ice_connected
            && stun_kind(contents)
                == Some(StunKind::Request {
                    use_candidate: true,
                });
        if nominating {
            self.unanswered_nomination = Some((source, destination, contents.to_vec()));
        }
        self.read(now, source, destination, contents);
        if self.role == Role::Listener
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

    /// Advances time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if let Err(e) = self.pc.handle_timeout(now) {
            self.finish("rtc-error", e.to_string());
        }
    }

    /// Applies a command from the connection handle.
    pub fn handle_command(&mut self, now: Instant, command: Command) {
        if self.closed {
            reply_closed(command);
            return;
        }
        match command {
            Command::Open { label, reply } => {
                if !self.authenticated {
                    let _ = reply.send(Err("not authenticated yet".to_owned()));
                    return;
                }
                match self.pc.create_data_channel(&label, None) {
                    Ok(channel) => self.pending_opens.push((channel.id(), reply)),
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
                let result = match self.refs.get(&channel) {
                    None => Err(format!("unknown channel {channel:?}")),
                    Some(_) if self.outbound_bytes + data.len() > MAX_QUEUED_BYTES => {
                        Err("send queue full (16 MiB): the peer is not reading".to_owned())
                    }
                    Some(id) => {
                        self.outbound_bytes += data.len();
                        self.outbound.push_back((*id, binary, data));
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Command::IceRestart { reply } => {
                if self.role == Role::Dialer
                    && self.deferred.is_some()
                    && self.queued_restart.is_none()
                    && self.restart.is_none()
                {
                    // Our staged offer is the one being switched to: start after it.
                    self.queued_restart = Some(reply);
                    return;
                }
                if !self.authenticated || self.restart.is_some() || self.queued_restart.is_some() {
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
    pub fn poll(&mut self, now: Instant) -> (Vec<Outgoing>, Option<Instant>) {
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
                    RTCMessage::RtpPacket(track, packet) if self.authenticated => {
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
            self.pc.poll_timeout()
        };
        (std::mem::take(&mut self.pending_out), next)
    }

    fn on_transmit(&mut self, now: Instant, out: TaggedBytesMut) {
        let source = out.transport.local_addr;
        let destination = out.transport.peer_addr;
        let contents = out.message.to_vec();
        if self.role == Role::Dialer
            && contents.first().is_some_and(|b| *b < 2)
            && !self.tried.iter().any(|(a, _)| *a == destination)
        {
            self.tried.push((
                destination,
                now.saturating_duration_since(self.timings.started),
            ));
            if self.timings.first_check.is_none() {
                self.timings.first_check = Some(now);
            }
        }
        if self.selected.is_none() && self.ice_connected && is_dtls(&contents) {
            self.selected = Some((source, destination));
        }
        let out = Outgoing {
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
                tracing::debug!(?state, role = ?self.role, "ICE state");
                match state {
                    RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
                        if !self.ice_connected =>
                    {
                        self.ice_connected = true;
                        self.timings.ice_connected = Some(now);
                        self.notices.push(Notice::IceConnected);
                        for (source, destination, contents) in std::mem::take(&mut self.early) {
                            if self.selected.is_none() {
                                self.selected = Some((destination, source));
                            }
                            self.read(now, source, destination, &contents);
                        }
                    }
                    RTCIceConnectionState::Failed if self.authenticated => {
                        self.finish("consent-lost", "ICE failed (consent lost)".to_owned());
                    }
                    // Before authentication the dialer's deadline names the stage; a listener
                    // engine just ends.
                    RTCIceConnectionState::Failed if self.role == Role::Listener => {
                        self.finish("ice-failed", "ICE failed".to_owned());
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                tracing::debug!(?state, role = ?self.role, "connection state");
                match state {
                    RTCPeerConnectionState::Connected if !self.dtls_connected => {
                        self.dtls_connected = true;
                        self.flights = DtlsFlights::default();
                        self.timings.dtls_connected = Some(now);
                        self.notices.push(Notice::DtlsConnected);
                    }
                    RTCPeerConnectionState::Closed if self.dtls_connected => {
                        self.finish("closed-by-peer", "DTLS closed".to_owned());
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id)) => {
                if id == self.ctrl {
                    self.timings.channel_open = Some(now);
                    self.notices.push(Notice::ChannelOpen);
                    if self.role == Role::Dialer {
                        self.send_proof(now);
                    }
                } else {
                    self.on_channel_open(id);
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) if self.authenticated => {
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
                } else if let Some(channel) = self.channels.remove(&id) {
                    self.refs.remove(&channel);
                    let _ = self.events.send(ConnectionEvent::ChannelClosed { channel });
                }
            }
            _ => {}
        }
    }

    fn on_channel_open(&mut self, id: RTCDataChannelId) {
        if !self.authenticated {
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
        let channel = ChannelRef::new(self.next_ref);
        self.next_ref += 1;
        self.channels.insert(id, channel);
        self.refs.insert(channel, id);
        if let Some(pos) = self.pending_opens.iter().position(|(p, _)| *p == id) {
            let (_, reply) = self.pending_opens.remove(pos);
            let _ = reply.send(Ok(channel));
        } else {
            let _ = self
                .events
                .send(ConnectionEvent::ChannelOpen { channel, label });
        }
    }

    fn on_message(&mut self, now: Instant, id: RTCDataChannelId, text: bool, data: &[u8]) {
        if id == self.ctrl {
            self.on_control(now, data);
            return;
        }
        if let (true, Some(channel)) = (self.authenticated, self.channels.get(&id)) {
            let _ = self.events.send(ConnectionEvent::Data {
                channel: *channel,
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
        Some(match self.role {
            Role::Listener => (self.local_fp, remote),
            Role::Dialer => (remote, self.local_fp),
        })
    }

    fn send_proof(&mut self, now: Instant) {
        let Some((listener_fp, dialer_fp)) = self.fingerprints() else {
            self.refuse(
                now,
                "auth-failed",
                "DTLS certificates unavailable".to_owned(),
            );
            return;
        };
        let role = match self.role {
            Role::Listener => ProofRole::Listener,
            Role::Dialer => ProofRole::Dialer,
        };
        let mac = proof::compute(&self.auth_key, role, &listener_fp, &dialer_fp);
        self.send_control(now, &Message::proof(&mac));
    }

    fn on_control(&mut self, now: Instant, bytes: &[u8]) {
        let message = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, "bad control message");
                if self.authenticated {
                    self.send_control(
                        now,
                        &Message::Error {
                            code: e.code().to_owned(),
                            reason: e.to_string(),
                        },
                    );
                } else {
                    self.refuse(
                        now,
                        "auth-failed",
                        format!("malformed message before the proof: {e}"),
                    );
                }
                return;
            }
        };
        if !self.authenticated {
            if let Message::Error { code, reason } = &message {
                tracing::warn!(%code, %reason, "refused by the peer");
                self.finish(known_code(code), reason.clone());
                return;
            }
            match message.proof_mac() {
                Some(Ok(mac)) => self.on_proof(now, &mac),
                Some(Err(e)) => self.refuse(now, "auth-failed", e.to_string()),
                None => self.refuse(
                    now,
                    "auth-failed",
                    format!("{} before the proof", message.kind()),
                ),
            }
            return;
        }
        match message {
            Message::IceRestart { ufrag, pwd } => {
                // Answer now, switch once the peer surely has the answer (`DeferredSwitch`).
                // A dialer whose own restart is running (both sides started one) answers with
                // the credentials it already offered, so the listener learns one set from both
                // messages, and whichever of answer and acknowledgement comes first switches.
                let staged = match (&self.negotiation, &self.staged_offer) {
                    (Negotiation::Dialer { .. }, Some(offer)) => ice_credentials(&offer.sdp),
                    _ => None,
                };
                let mine = match staged {
                    Some(creds) => Ok(creds),
                    None => self.prepare_restart(),
                };
                let answered = mine.map(|(mine_ufrag, mine_pwd)| {
                    self.send_control(
                        now,
                        &Message::IceRestartAnswer {
                            ufrag: mine_ufrag,
                            pwd: mine_pwd,
                        },
                    );
                    self.flush_writes(now);
                    self.deferred = Some(DeferredSwitch {
                        ufrag,
                        pwd,
                        on_check: self.role == Role::Listener,
                        on_ack: true,
                    });
                });
                match answered {
                    Ok(()) => {
                        let _ = self.events.send(ConnectionEvent::IceRestarted);
                    }
                    Err(e) => self.send_control(
                        now,
                        &Message::Error {
                            code: "ice-restart-failed".to_owned(),
                            reason: e.to_string(),
                        },
                    ),
                }
            }
            Message::IceRestartAnswer { ufrag, pwd } => match self.restart.take() {
                // The listener's ICE agent is switched when the dialer checks with its new
                // credentials (`DeferredSwitch`); the restart is agreed now.
                Some(reply) if self.role == Role::Listener => {
                    self.deferred = Some(DeferredSwitch {
                        ufrag,
                        pwd,
                        on_check: true,
                        on_ack: false,
                    });
                    let _ = self.events.send(ConnectionEvent::IceRestarted);
                    let _ = reply.send(Ok(()));
                }
                // Both sides started a restart and ours was switched to already, on the
                // acknowledgement of our answer to theirs (same credentials): done.
                Some(reply) if self.staged_offer.is_none() => {
                    let _ = reply.send(Ok(()));
                }
                Some(reply) => {
                    // A switch deferred for the peer's restart is this one (same credentials).
                    self.deferred = None;
                    let result = self.apply_restart(now, &ufrag, &pwd);
                    if result.is_ok() {
                        let _ = self.events.send(ConnectionEvent::IceRestarted);
                    }
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                    if let Some(reply) = self.queued_restart.take() {
                        self.handle_command(now, Command::IceRestart { reply });
                    }
                }
                None => tracing::warn!("ice-restart-answer without a restart"),
            },
            Message::Close { reason } => self.finish("closed-by-peer", reason),
            Message::Error { code, reason } => {
                tracing::warn!(%code, %reason, "peer reported an error");
                if let Some(reply) = self.restart.take() {
                    let _ = reply.send(Err(format!("{code}: {reason}")));
                }
            }
            Message::Offer { sdp } => match self.answer_offer(now, &sdp) {
                Ok(answer) => {
                    self.send_control(now, &Message::Answer { sdp: answer });
                    let _ = self.events.send(ConnectionEvent::Renegotiated);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "in-band offer refused");
                    self.send_control(
                        now,
                        &Message::Error {
                            code: "renegotiation-failed".to_owned(),
                            reason: e.to_string(),
                        },
                    );
                }
            },
            Message::Answer { .. } => {
                self.send_control(now, &Message::Error {
                    code: "unsupported".to_owned(),
                    reason: "this peer (webrtc-rs) answers in-band offers but never offers; an answer was not expected".to_owned(),
                });
            }
            Message::Proof { .. } => tracing::debug!("proof after authentication ignored"),
            other => tracing::debug!(kind = other.kind(), "unhandled control message"),
        }
    }

    fn on_proof(&mut self, now: Instant, mac: &[u8; 32]) {
        let Some((listener_fp, dialer_fp)) = self.fingerprints() else {
            self.refuse(
                now,
                "auth-failed",
                "DTLS certificates unavailable".to_owned(),
            );
            return;
        };
        if listener_fp != self.listener_fp {
            self.refuse(
                now,
                "fingerprint-mismatch",
                "listener certificate differs from the token".to_owned(),
            );
            return;
        }
        let expected = match self.role {
            Role::Listener => ProofRole::Dialer,
            Role::Dialer => ProofRole::Listener,
        };
        if let Err(e) = proof::verify(&self.auth_key, expected, &listener_fp, &dialer_fp, mac) {
            self.refuse(now, "auth-failed", e.to_string());
            return;
        }
        match self.role {
            Role::Listener => self.notices.push(Notice::DialerProven),
            Role::Dialer => self.authenticate(now),
        }
    }

    fn authenticate(&mut self, now: Instant) {
        self.authenticated = true;
        self.timings.authenticated = Some(now);
        self.notices.push(Notice::Authenticated);
    }

    /// Listener: admission accepted the proven dialer; answer with the listener's proof.
    pub fn admit(&mut self, now: Instant) {
        if self.role == Role::Listener && !self.authenticated && !self.closed {
            self.send_proof(now);
            self.authenticate(now);
        }
    }

    /// Listener: admission refused the proven dialer; tell it why and close.
    pub fn reject(&mut self, now: Instant, code: &'static str, reason: String) {
        self.refuse(now, code, reason);
    }

    /// Switches to the credentials of a deferred restart (see [`DeferredSwitch`]), then starts
    /// a restart the application queued meanwhile.
    fn switch_deferred(&mut self, now: Instant) {
        let Some(DeferredSwitch { ufrag, pwd, .. }) = self.deferred.take() else {
            return;
        };
        tracing::debug!(role = ?self.role, "switching to the restarted ICE credentials");
        if let Err(e) = self.apply_restart(now, &ufrag, &pwd) {
            tracing::warn!(error = %e, "ICE restart could not be applied");
        }
        if let Some(reply) = self.queued_restart.take() {
            self.handle_command(now, Command::IceRestart { reply });
        }
    }

    /// First half of an ICE restart (`spec/handshake.md` §6.1), on either side: the
    /// credentials to send in `ice-restart` or `ice-restart-answer`. A dialer stages a new offer
    /// with fresh credentials (staging has no effect yet); a listener keeps its credentials
    /// (they are bound to the token, and it answers the dialer's new offer).
    ///
    /// `rtc` forgets the selected pair as soon as a restart is applied, so the messages must
    /// have arrived before [`Engine::apply_restart`]: the responder sends its answer and switches
    /// later ([`DeferredSwitch`]); an initiating dialer applies when the answer arrives.
    fn prepare_restart(&mut self) -> Result<(String, String), StackError> {
        match &self.negotiation {
            Negotiation::Dialer { token } if token.profile != oneway_token::Profile::Native => {
                // The listener (a browser) chose our credentials; new ones would need its
                // offer, which only SDP renegotiation carries.
                Err(StackError::Config(
                    "ice-restart is not supported with a dialer-identity token".to_owned(),
                ))
            }
            Negotiation::Dialer { .. } => {
                self.pc.restart_ice();
                let offer = self
                    .pc
                    .create_offer(None)
                    .map_err(rtc_error("ICE-restart offer"))?;
                let creds = ice_credentials(&offer.sdp).ok_or_else(|| {
                    StackError::Rtc("ICE-restart offer without credentials".to_owned())
                })?;
                self.staged_offer = Some(offer);
                Ok(creds)
            }
            Negotiation::Listener { local_ice, .. } => Ok(local_ice.clone()),
        }
    }

    /// Second half: switch to the peer's new credentials `(ufrag, pwd)`.
    fn apply_restart(&mut self, now: Instant, ufrag: &str, pwd: &str) -> Result<(), StackError> {
        match &self.negotiation {
            Negotiation::Dialer { .. } => {
                let offer = self
                    .staged_offer
                    .take()
                    .ok_or_else(|| StackError::Rtc("no staged ICE-restart offer".to_owned()))?;
                self.pc
                    .set_local_description(now, offer)
                    .map_err(rtc_error("ICE-restart local description"))?;
                self.set_token_answer(now, Some((ufrag, pwd)))
            }
            Negotiation::Listener { .. } => self.answer_implied_offer(now, ufrag, pwd),
        }
    }

    /// Moves what the peer connection has to send into `pending_out` now.
    fn flush_writes(&mut self, now: Instant) {
        while let Some(out) = self.pc.poll_write() {
            self.on_transmit(now, out);
        }
    }

    /// Adds a local candidate (a socket the driver reads).
    pub(crate) fn add_local_candidate(
        &mut self,
        init: rtc::peer_connection::transport::RTCIceCandidateInit,
    ) -> Result<(), StackError> {
        self.pc
            .add_local_candidate(init)
            .map_err(rtc_error("local candidate"))
    }

    /// Dialer: the initial negotiation. Sets the local offer, the local candidates and the
    /// token's answer (`spec/token.md` §9.2), which starts the ICE checks. With a
    /// `dialer-identity` token, sets the listener's offer rebuilt from the token and answers it
    /// instead (`spec/handshake.md` §10.2).
    pub(crate) fn start_dialer(
        &mut self,
        now: Instant,
        locals: Vec<rtc::peer_connection::transport::RTCIceCandidateInit>,
    ) -> Result<(), StackError> {
        if let Negotiation::Dialer { token } = &self.negotiation
            && token.profile != oneway_token::Profile::Native
        {
            let offer = token
                .listener_offer()
                .map_err(|e| StackError::Config(format!("listener offer: {e}")))?;
            let offer =
                RTCSessionDescription::offer(offer.sdp).map_err(rtc_error("listener offer"))?;
            self.pc
                .set_remote_description(now, offer)
                .map_err(rtc_error("listener offer"))?;
            let answer = self.pc.create_answer(None).map_err(rtc_error("answer"))?;
            self.pc
                .set_local_description(now, answer)
                .map_err(rtc_error("local answer"))?;
            for init in locals {
                self.add_local_candidate(init)?;
            }
            return self.add_local_candidate(Default::default());
        }
        let offer = self.pc.create_offer(None).map_err(rtc_error("offer"))?;
        self.pc
            .set_local_description(now, offer)
            .map_err(rtc_error("local description"))?;
        for init in locals {
            self.add_local_candidate(init)?;
        }
        // End of candidates: gathering is complete.
        self.add_local_candidate(Default::default())?;
        self.set_token_answer(now, None)
    }

    /// Dialer: sets the token's answer to the current local offer, with `listener_ice` in place
    /// of the derived credentials after a restart.
    pub(crate) fn set_token_answer(
        &mut self,
        now: Instant,
        listener_ice: Option<(&str, &str)>,
    ) -> Result<(), StackError> {
        let Negotiation::Dialer { token } = &self.negotiation else {
            return Err(StackError::Config("not a dialer".to_owned()));
        };
        let offer = self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| StackError::Rtc("no local description".to_owned()))?;
        let answer = token
            .native_answer_with_ice(&offer, listener_ice)
            .map_err(|e| StackError::Config(format!("token answer: {e}")))?;
        let answer = RTCSessionDescription::answer(answer.sdp).map_err(rtc_error("answer"))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(rtc_error("remote description"))
    }

    /// Listener: sets the offer the dialer's credentials imply, and answers it.
    pub(crate) fn answer_implied_offer(
        &mut self,
        now: Instant,
        dialer_ufrag: &str,
        dialer_pwd: &str,
    ) -> Result<(), StackError> {
        let Negotiation::Listener { remote, sctp, .. } = &self.negotiation else {
            return Err(StackError::Config("not a listener".to_owned()));
        };
        let offer =
            oneway_token::sdp::implied_dialer_offer(dialer_ufrag, dialer_pwd, *remote, *sctp);
        let offer = RTCSessionDescription::offer(offer).map_err(rtc_error("implied offer"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(rtc_error("implied offer"))?;
        let answer = self.pc.create_answer(None).map_err(rtc_error("answer"))?;
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_error("local answer"))
    }

    /// An in-band `offer` (`spec/handshake.md` §6.2): sets it as the remote description and
    /// returns the local answer. The peer's ICE credentials and DTLS role are unchanged (an
    /// offer that changes the credentials restarts ICE, as in any renegotiation); this side keeps
    /// its own (the setting engine fixes them) and its DTLS role, so the answer only adds what
    /// the offer adds: media sections, received (`recvonly`: this peer sends no media).
    fn answer_offer(&mut self, now: Instant, sdp: &str) -> Result<String, StackError> {
        let offer =
            RTCSessionDescription::offer(sdp.to_owned()).map_err(rtc_error("in-band offer"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(rtc_error("in-band offer"))?;
        let answer = self.pc.create_answer(None).map_err(rtc_error("answer"))?;
        let text = answer.sdp.clone();
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_error("local answer"))?;
        Ok(text)
    }

    /// The peer failed authentication or broke the protocol before it: tell it, log, close.
    fn refuse(&mut self, now: Instant, code: &'static str, reason: String) {
        tracing::warn!(code, %reason, role = ?self.role, "peer refused");
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
        for (_, reply) in self.pending_opens.drain(..) {
            let _ = reply.send(Err(format!("{code}: {reason}")));
        }
        if let Some(reply) = self.restart.take() {
            let _ = reply.send(Err(format!("{code}: {reason}")));
        }
        let _ = self.events.send(ConnectionEvent::Closed {
            code,
            reason: reason.clone(),
        });
        self.notices.push(Notice::Closed { code, reason });
    }

    fn send_control(&mut self, now: Instant, message: &Message) {
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
        while let Some((id, binary, data)) = self.outbound.pop_front() {
            self.outbound_bytes -= data.len();
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

    /// Takes the notices accumulated since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }
}

/// What a STUN datagram is, as far as the nomination replay needs to know.
#[derive(Debug, PartialEq, Eq)]
enum StunKind {
    /// A Binding request, with or without USE-CANDIDATE.
    Request {
        /// Carries USE-CANDIDATE (RFC 8445 §7.1.2).
        use_candidate: bool,
    },
    /// A Binding success response.
    SuccessResponse,
}

/// Classifies a STUN Binding request or success response (RFC 8489 §5); `None` for anything
/// else, including malformed attributes.
fn stun_kind(contents: &[u8]) -> Option<StunKind> {
    const HEADER: usize = 20;
    const USE_CANDIDATE: u16 = 0x0025;
    let header = contents.get(..HEADER)?;
    if header[4..8] != [0x21, 0x12, 0xA4, 0x42] {
        return None;
    }
    match u16::from_be_bytes([header[0], header[1]]) {
        0x0101 => return Some(StunKind::SuccessResponse),
        0x0001 => {}
        _ => return None,
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = contents.get(HEADER..HEADER + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        if kind == USE_CANDIDATE {
            return Some(StunKind::Request {
                use_candidate: true,
            });
        }
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    Some(StunKind::Request {
        use_candidate: false,
    })
}

/// `(ufrag, pwd)` from an SDP's first `a=ice-ufrag`/`a=ice-pwd` lines.
fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let find = |key: &str| {
        sdp.lines()
            .find_map(|l| l.trim_end().strip_prefix(key))
            .map(str::to_owned)
    };
    Some((find("a=ice-ufrag:")?, find("a=ice-pwd:")?))
}

fn reply_closed(command: Command) {
    let closed = "connection closed".to_owned();
    match command {
        Command::Open { reply, .. } => {
            let _ = reply.send(Err(closed));
        }
        Command::Send { reply, .. } | Command::IceRestart { reply } => {
            let _ = reply.send(Err(closed));
        }
        Command::Close { .. } => {}
    }
}

/// The static form of a cause code received from the peer (`spec/handshake.md` §8); codes this
/// implementation does not know become `refused-by-peer`.
fn known_code(code: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "accept-queue-full",
        "auth-failed",
        "fingerprint-mismatch",
        "token-expired",
        "token-used",
        "too-many-pending",
        "too-many-connections",
        "proof-timeout",
        "unsupported",
    ];
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("refused-by-peer")
}

/// The label oneway gives channel 0.
pub(crate) const CONTROL_LABEL: &str = CHANNEL_LABEL;

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::{DtlsFlights, Outgoing, StunKind, stun_kind};

    /// A Binding request header with `attributes` (already padded).
    fn request(attributes: &[u8]) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&u16::try_from(attributes.len()).unwrap_or(0).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(attributes);
        m
    }

    #[test]
    fn classifies_nominating_checks() {
        // PRIORITY (4 bytes), then USE-CANDIDATE (empty).
        let nominating = request(&[0x00, 0x24, 0, 4, 1, 2, 3, 4, 0x00, 0x25, 0, 0]);
        assert_eq!(
            stun_kind(&nominating),
            Some(StunKind::Request {
                use_candidate: true
            })
        );
        // USERNAME of 5 bytes (padded to 8), no USE-CANDIDATE.
        let plain = request(&[0x00, 0x06, 0, 5, b'a', b'b', b'c', b'd', b'e', 0, 0, 0]);
        assert_eq!(
            stun_kind(&plain),
            Some(StunKind::Request {
                use_candidate: false
            })
        );
        let mut success = request(&[]);
        success[1] = 0x01;
        success[0] = 0x01;
        assert_eq!(stun_kind(&success), Some(StunKind::SuccessResponse));
    }

    #[test]
    fn rejects_truncated_and_foreign_datagrams() {
        let nominating = request(&[0x00, 0x25, 0, 0]);
        assert_eq!(
            stun_kind(&nominating[..22]),
            None,
            "length beyond the datagram"
        );
        assert_eq!(stun_kind(&[22, 254, 253, 0]), None, "DTLS");
        // An attribute length running past the end.
        assert_eq!(stun_kind(&request(&[0x00, 0x06, 0, 200, 0, 0, 0, 0])), None);
        let mut no_cookie = request(&[]);
        no_cookie[4] = 0;
        assert_eq!(stun_kind(&no_cookie), None);
    }

    /// A DTLS handshake record (content type 22) with sequence number `seq` and `body`.
    fn record(seq: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, seq];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    #[test]
    fn a_retransmitted_peer_flight_brings_back_our_last_flight() {
        let out = |b: u8| Outgoing {
            source: SocketAddr::from(([127, 0, 0, 1], 1)),
            destination: SocketAddr::from(([127, 0, 0, 1], 2)),
            contents: vec![22, b],
        };
        let mut flights = DtlsFlights::default();
        // The peer's ClientHello, our HelloVerifyRequest.
        assert!(flights.received(&record(0, b"hello")).is_empty());
        flights.sent(&out(1));
        // The peer's second ClientHello (new), our four-datagram flight.
        let mut two = record(1, b"hello+cookie");
        two.extend(record(2, b"more"));
        assert!(flights.received(&two).is_empty());
        for b in 2..6 {
            flights.sent(&out(b));
        }
        // The peer retransmits it, with new record sequence numbers: our flight again.
        let mut again = record(7, b"hello+cookie");
        again.extend(record(8, b"more"));
        let replay: Vec<u8> = flights
            .received(&again)
            .iter()
            .map(|o| o.contents[1])
            .collect();
        assert_eq!(replay, vec![2, 3, 4, 5]);
        // Other content, or anything but handshake records, replays nothing.
        assert!(flights.received(&record(9, b"other")).is_empty());
        assert!(flights.received(&[23, 0xfe, 0xfd]).is_empty());
        // A truncated record is digested without panicking.
        assert!(flights.received(&[22, 0xfe, 0xfd, 0, 0]).is_empty());
    }
}
