//! One connection's engine: a str0m `Rtc` (Direct API) plus the oneway handshake
//! (`spec/handshake.md`), without sockets: [`Str0mEngine`] implements
//! [`oneway_endpoint::Engine`]. After every input, [`Engine::poll`] drains `Rtc::poll_output`
//! until `Timeout`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_connection::{Command, ConnectionEvent};
use oneway_core::ProofRole;
use oneway_core::handshake::{self, BeforeAuth, Failure};
use oneway_core::signal::{CHANNEL_ID, CHANNEL_LABEL, Message};
use oneway_endpoint::fast_channels::{DataVerdict, FastChannelError, FastChannels};
use oneway_endpoint::session::{ChannelTable, Handshake, SendQueue, reply_closed};
use oneway_endpoint::{Engine, Notice, Transmit};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tokio::sync::mpsc;

mod media_io;
mod renegotiate;
pub use renegotiate::TrackReply;
/// Bytes str0m's SCTP may hold for sending, acknowledged or not: str0m's default, kept on
/// purpose. It caps the data in flight (throughput ≤ this per round trip: ~2.6 MB/s at 50 ms),
/// but str0m's SCTP (sctp-proto 0.10) scans every chunk in flight several times per poll, so
/// CPU per byte grows with it: on loopback 512 KiB and 1 MiB cost 2.5× and 4× the CPU of
/// 128 KiB and were slower (`oneway bench throughput`, 4 connections).
pub const SCTP_MAX_BUFFERED_AMOUNT: usize = 128 * 1024;

/// Datagram size str0m aims for when both ends are on this host (the dialer only sees
/// loopback candidates; the listener's first check came from loopback): str0m's largest,
/// ~30% fewer packets than its 1150-byte default. Loopback has no path MTU to respect (64 KiB),
/// and a dialer on this host reaches the listener only through the host.
pub const LOOPBACK_MTU: usize = str0m::DATAGRAM_MTU_TARGET_MAX;

/// str0m's builder with the settings this crate uses for every engine; `loopback` when the
/// peer is on this host ([`LOOPBACK_MTU`]).
pub(crate) fn rtc_builder(loopback: bool) -> str0m::RtcConfig {
    let builder = str0m::Rtc::builder().set_sctp_max_buffered_amount(SCTP_MAX_BUFFERED_AMOUNT);
    if loopback {
        builder.set_mtu(LOOPBACK_MTU..=LOOPBACK_MTU)
    } else {
        builder
    }
}

/// Most datagrams one `poll` sends before yielding back to the driver, so one busy connection
/// cannot starve the others on a shared socket.
pub const POLL_OUTPUT_BOUND: usize = 4096;
/// How long after the last check str0m's ICE reports an authenticated connection
/// `Disconnected` (fixed by str0m).
pub const ICE_DISCONNECT_AFTER: Duration = Duration::from_secs(15);
/// How long an authenticated connection stays up once ICE reports it disconnected, waiting for
/// checks (or a restart) to bring it back, before it closes with `consent-lost`, by default:
/// with [`ICE_DISCONNECT_AFTER`], a dialer that died goes after 30 s in all, RFC 7675's
/// consent timeout. A listener's `consent_timeout` sets it to the rest of its own.
pub const CONSENT_GRACE: Duration = Duration::from_secs(15);
/// Most channel-0 messages waiting for room in SCTP's send buffer (a full application channel
/// can hold it up); beyond it a message is dropped with a warning.
pub const CONTROL_QUEUE: usize = 64;

/// Most pairs a listener remembers a check on before ICE connects, and most nominating copies
/// it feeds str0m (DTLS before nomination, [`Str0mEngine::select_early`]).
const EARLY_PAIRS: usize = 8;

/// How long a fast-start dialer that sent data early waits for the listener's proof before it
/// closes with `proof-timeout` (the listener's own limit for the dialer's proof, §5.3).
pub const EARLY_PROOF_TIMEOUT: Duration = Duration::from_secs(15);

/// One connection's engine.
pub struct Str0mEngine {
    pub(crate) rtc: Rtc,
    /// Role, keys, proofs, notices and the path record (shared bookkeeping).
    hs: Handshake,
    ctrl: ChannelId,
    closed: bool,
    events: mpsc::UnboundedSender<ConnectionEvent>,
    channels: ChannelTable<ChannelId>,
    outbound: SendQueue<ChannelId>,
    restart: Option<(IceCreds, tokio::sync::oneshot::Sender<Result<(), String>>)>,
    /// Datagrams produced while handling input (e.g. a last message before closing), sent by
    /// the next `poll`.
    pending_out: Vec<Transmit>,
    ice_connected: bool,
    /// Remote candidates the dialer added from the token, re-added on restart.
    remote_candidates: Vec<str0m::Candidate>,
    /// Tests only: a MAC sent in place of this session's proof (a relayed proof).
    relayed_proof: Option<[u8; 32]>,
    /// Since when ICE has reported the authenticated connection disconnected.
    disconnected_since: Option<Instant>,
    /// How long after that the connection closes with `consent-lost`.
    consent_grace: Duration,
    /// Channel-0 messages SCTP had no room for yet; sent before any application data.
    control_queue: VecDeque<String>,
    /// This connection took the token's fast start (`spec/handshake.md` §5.4): SCTP by SNAP,
    /// so channel 0 is open before DTLS is, and the dialer proves as soon as DTLS is up.
    fast_start: bool,
    /// DTLS is connected.
    dtls_up: bool,
    /// str0m reported channel 0 open.
    control_open: bool,
    /// Channel 0 is usable: both of the above (the proof may be sent).
    control_ready: bool,
    /// Under a fast start: application channels on announced negotiated streams (§5.5).
    fast_channels: Option<FastChannels<ChannelId>>,
    /// Listener: the dialer's proof verified (admission pending).
    peer_proven: bool,
    /// Dialer under a fast start: when the listener's proof must have arrived.
    early_proof_deadline: Option<Instant>,
    /// Refusing the peer: the last datagrams are being flushed, and nothing str0m reports
    /// meanwhile (e.g. a proof that arrived in the same packet as the offence) counts.
    refusing: bool,
    /// Listener, until ICE connects: the ICE pwd checks are signed with, and the dialer's latest
    /// check per (source, destination) pair, for [`Str0mEngine::select_early`].
    early: Option<EarlyChecks>,
    /// In-band media: str0m's SDP API after the Direct-API start (`renegotiate`).
    media: renegotiate::MediaState,
}

/// What a listener keeps to answer DTLS before the dialer nominates (bounded).
#[derive(Debug)]
struct EarlyChecks {
    pwd: String,
    checks: Vec<((SocketAddr, SocketAddr), Vec<u8>)>,
    copies: usize,
}

impl Str0mEngine {
    /// Wraps a configured `Rtc` whose channel 0 was created as `ctrl`.
    pub(crate) fn new(
        rtc: Rtc,
        role: ProofRole,
        auth_key: [u8; 32],
        listener_fp: [u8; 32],
        ctrl: ChannelId,
        started: Instant,
        events: mpsc::UnboundedSender<ConnectionEvent>,
    ) -> Self {
        Str0mEngine {
            rtc,
            hs: Handshake::new(role, auth_key, listener_fp, started),
            ctrl,
            closed: false,
            events,
            channels: ChannelTable::default(),
            outbound: SendQueue::default(),
            restart: None,
            pending_out: Vec::new(),
            ice_connected: false,
            remote_candidates: Vec::new(),
            relayed_proof: None,
            disconnected_since: None,
            consent_grace: CONSENT_GRACE,
            control_queue: VecDeque::new(),
            fast_start: false,
            dtls_up: false,
            control_open: false,
            control_ready: false,
            fast_channels: None,
            peer_proven: false,
            early_proof_deadline: None,
            refusing: false,
            early: None,
            media: renegotiate::MediaState::default(),
        }
    }

    /// Marks this connection as a fast start (SNAP already configured on the `Rtc`) and creates
    /// the first peer streams of its fast channels.
    pub(crate) fn set_fast_start(&mut self) {
        self.fast_start = true;
        self.fast_channels = Some(FastChannels::new(self.hs.role));
        self.reserve_peer_streams();
    }

    /// Keeps the window of peer streams created ahead (`FastChannels::to_reserve`).
    fn reserve_peer_streams(&mut self) {
        let Some(fast) = self.fast_channels.as_mut() else {
            return;
        };
        for stream in fast.to_reserve() {
            let id = self.rtc.direct_api().create_data_channel(ChannelConfig {
                negotiated: Some(stream),
                ..Default::default()
            });
            fast.reserved(stream, id);
        }
    }

    /// Whether application data may flow before both proofs verified: under a fast start, a
    /// dialer once its proof is sent, a listener once the dialer's proof verified (its events
    /// wait in the connection's queue until the shell admits or refuses the dialer).
    fn early_data_allowed(&self) -> bool {
        self.fast_start
            && match self.hs.role {
                ProofRole::Dialer => self.control_ready,
                ProofRole::Listener => self.peer_proven,
            }
    }

    /// Whether application channels and data may be used now.
    fn may_carry_data(&self) -> bool {
        self.hs.authenticated || self.early_data_allowed()
    }

    /// Channel 0 carries messages once DTLS is up and str0m reports it open: after SCTP's
    /// handshake normally, at the start under SNAP. The dialer then sends its proof.
    fn on_control_ready(&mut self, now: Instant) {
        if self.control_ready || !self.dtls_up || !self.control_open {
            return;
        }
        self.control_ready = true;
        self.hs.path.timings.channel_open = Some(now);
        self.hs.notices.push(Notice::ChannelOpen);
        if self.hs.role == ProofRole::Dialer {
            self.send_proof();
            if self.fast_start && !self.closed() {
                self.early_proof_deadline = Some(now + EARLY_PROOF_TIMEOUT);
                self.hs.notices.push(Notice::EarlyDataReady);
            }
        }
    }

    /// Listener: answer DTLS on a checked pair before the dialer nominates it (see
    /// [`Str0mEngine::select_early`]); `pwd` is the listener's ICE pwd.
    pub(crate) fn select_pairs_early(&mut self, pwd: String) {
        self.early = Some(EarlyChecks {
            pwd,
            checks: Vec::new(),
            copies: 0,
        });
    }

    /// DTLS before nomination (`spec/handshake.md` §4.4): str0m's ICE-lite agent sends nothing
    /// but STUN on a pair until a check with USE-CANDIDATE nominates it, so a dialer that
    /// starts DTLS on a checked pair before nominating it (Chromium nominates about 50 ms
    /// later) would wait for the listener's first flight. When the dialer's DTLS arrives on a
    /// pair whose check verified with the listener's pwd, str0m is first given that check
    /// again with USE-CANDIDATE added and signed anew (`oneway_core::demux::nominating_copy`),
    /// as libwebrtc's controlled side answers at once on any valid pair.
    fn select_early(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        if self.ice_connected {
            self.early = None;
            return;
        }
        let Some(early) = self.early.as_mut() else {
            return;
        };
        let pair = (source, destination);
        let known = early.checks.iter().position(|(p, _)| *p == pair);
        if contents.first() == Some(&0) {
            // A Binding request (class bits 0): remember the latest per pair.
            match known {
                Some(at) => early.checks[at].1 = contents.to_vec(),
                None if early.checks.len() < EARLY_PAIRS => {
                    early.checks.push((pair, contents.to_vec()));
                }
                None => {}
            }
            return;
        }
        let Some(at) = known.filter(|_| handshake::is_dtls(contents) && early.copies < EARLY_PAIRS)
        else {
            return;
        };
        let copy = match oneway_core::demux::nominating_copy(&early.checks[at].1, &early.pwd) {
            Ok(copy) => copy,
            Err(e) => {
                tracing::debug!(%source, error = %e, "no early selection");
                return;
            }
        };
        early.copies += 1;
        tracing::debug!(%source, "DTLS before nomination: selecting the dialer's pair");
        if let Ok(receive) = Receive::new(Protocol::Udp, source, destination, &copy)
            && let Err(e) = self.rtc.handle_input(Input::Receive(now, receive))
        {
            tracing::debug!(%source, error = %e, "nominating copy refused by str0m");
        }
    }

    /// Sets how long an authenticated connection survives ICE reporting it disconnected.
    pub(crate) fn set_consent_grace(&mut self, grace: Duration) {
        self.consent_grace = grace;
    }

    /// Tests only: send `mac` as this side's proof instead of computing it, as a relay replaying
    /// a proof from another DTLS session would.
    pub(crate) fn relay_proof(&mut self, mac: [u8; 32]) {
        self.relayed_proof = Some(mac);
    }

    /// Adds a remote candidate (the dialer's candidates from the token), remembered for restarts.
    pub(crate) fn add_remote_candidate(&mut self, candidate: str0m::Candidate) {
        self.remote_candidates.push(candidate.clone());
        self.rtc.add_remote_candidate(candidate);
    }

    /// The channel-0 configuration both sides create (negotiated, id 0, ordered, reliable).
    pub(crate) fn control_channel_config() -> ChannelConfig {
        ChannelConfig {
            label: CHANNEL_LABEL.to_owned(),
            negotiated: Some(CHANNEL_ID),
            ..Default::default()
        }
    }

    fn closed(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    fn datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) {
        if self.closed() {
            return;
        }
        self.hs
            .path
            .received(now, source, destination, contents, self.ice_connected);
        self.select_early(now, source, destination, contents);
        match Receive::new(Protocol::Udp, source, destination, contents) {
            Ok(receive) => {
                if let Err(e) = self.rtc.handle_input(Input::Receive(now, receive)) {
                    tracing::debug!(%source, error = %e, "datagram refused by str0m");
                }
            }
            Err(e) => tracing::debug!(%source, error = %e, "unparseable datagram"),
        }
    }

    fn timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.early_proof_deadline
            && now >= deadline
            && !self.hs.authenticated
            && !self.closed()
        {
            self.fail(
                now,
                "proof-timeout",
                format!("the listener did not prove within {EARLY_PROOF_TIMEOUT:?}"),
            );
            return;
        }
        if let Some(since) = self.disconnected_since
            && now >= since + self.consent_grace
            && !self.closed()
        {
            let grace = self.consent_grace;
            self.fail(
                now,
                "consent-lost",
                format!("no ICE consent for {grace:?} after ICE disconnected"),
            );
            return;
        }
        if self.hs.authenticated && !self.closed() {
            self.send_media(now);
        }
        if !self.closed()
            && let Err(e) = self.rtc.handle_input(Input::Timeout(now))
        {
            self.fail(now, failure_code(&e), e.to_string());
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        if self.closed() {
            reply_closed(command);
            return;
        }
        match command {
            Command::Open { label, reply } => {
                if !self.may_carry_data() {
                    let _ = reply.send(Err("not authenticated yet".to_owned()));
                    return;
                }
                let Some(fast) = self.fast_channels.as_mut() else {
                    let id = self.rtc.direct_api().create_data_channel(ChannelConfig {
                        label,
                        ..Default::default()
                    });
                    self.channels.requested(id, reply);
                    return;
                };
                // Fast start: a negotiated stream announced on channel 0 (no DCEP round trip).
                let stream = match fast.open_local() {
                    Ok(stream) => stream,
                    Err(e) => {
                        let _ = reply.send(Err(e.to_string()));
                        return;
                    }
                };
                let id = self.rtc.direct_api().create_data_channel(ChannelConfig {
                    label: label.clone(),
                    negotiated: Some(stream),
                    ..Default::default()
                });
                self.send_control(&Message::Open { id: stream, label });
                self.channels.requested(id, reply);
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
                if !self.hs.authenticated || self.restart.is_some() {
                    let _ = reply.send(Err(
                        "not authenticated, or a restart is already running".to_owned()
                    ));
                    return;
                }
                let creds = self.restart_credentials();
                self.send_control(&Message::IceRestart {
                    ufrag: creds.ufrag.clone(),
                    pwd: creds.pass.clone(),
                });
                self.restart = Some((creds, reply));
            }
            Command::AddTrack { request, reply } => {
                let (track, source) = crate::media::track_request(&request);
                self.add_track(now, track, source, reply);
            }
            Command::RemoveTrack { track, reply } => self.remove_track(now, &track, reply),
            Command::SetTrackDirection {
                track,
                direction,
                reply,
            } => {
                let direction = crate::media::str0m_direction(direction);
                self.set_track_direction(now, &track, direction, reply);
            }
            Command::Close { reason } => {
                self.send_control(&Message::Close {
                    reason: reason.clone(),
                });
                // Let the close message leave before tearing down.
                let _ = self.drain(now);
                self.finish("closed-locally", reason);
            }
        }
    }

    fn poll_all(&mut self, now: Instant) -> (Vec<Transmit>, Option<Instant>) {
        self.flush_outbound();
        let next = self.drain(now);
        (std::mem::take(&mut self.pending_out), next)
    }

    /// Moves str0m's output into `pending_out` and handles its events, until str0m asks for a
    /// timeout (returned) or [`POLL_OUTPUT_BOUND`] outputs were taken.
    fn drain(&mut self, now: Instant) -> Option<Instant> {
        for _ in 0..POLL_OUTPUT_BOUND {
            if self.closed() {
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    let consent = self.disconnected_since.map(|t| t + self.consent_grace);
                    let proof = self.early_proof_deadline.filter(|_| !self.hs.authenticated);
                    let frame = self.media.next_frame_at();
                    return Some(
                        [consent, proof, frame]
                            .into_iter()
                            .flatten()
                            .fold(at, Instant::min),
                    );
                }
                Ok(Output::Transmit(t)) => {
                    let contents: Vec<u8> = t.contents.into();
                    self.hs
                        .path
                        .sent(now, t.source, t.destination, &contents, self.ice_connected);
                    self.pending_out.push(Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents,
                    });
                }
                Ok(Output::Event(event)) => self.on_event(now, event),
                Err(e) => {
                    self.fail(now, failure_code(&e), e.to_string());
                    return None;
                }
            }
        }
        // Output left: ask to be polled again right away.
        Some(now)
    }

    fn on_event(&mut self, now: Instant, event: Event) {
        if self.refusing {
            return;
        }
        if self.hs.authenticated && self.on_media_event(now, &event) {
            return;
        }
        match event {
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(?state, role = ?self.hs.role, "ICE state");
                match state {
                    IceConnectionState::Connected | IceConnectionState::Completed
                        if !self.ice_connected =>
                    {
                        self.ice_connected = true;
                        self.hs.path.timings.ice_connected = Some(now);
                        self.hs.notices.push(Notice::IceConnected);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        self.disconnected_since = None;
                    }
                    IceConnectionState::Disconnected if self.hs.authenticated => {
                        tracing::info!(
                            grace = ?self.consent_grace,
                            "ICE disconnected; closing after the grace unless checks resume"
                        );
                        self.disconnected_since.get_or_insert(now);
                    }
                    _ => {}
                }
            }
            Event::Connected => {
                self.hs.path.timings.dtls_connected = Some(now);
                self.hs.notices.push(Notice::DtlsConnected);
                self.dtls_up = true;
                self.on_control_ready(now);
            }
            Event::ChannelOpen(id, label) if id == self.ctrl => {
                tracing::debug!(%label, fast_start = self.fast_start, "control channel open");
                self.control_open = true;
                self.on_control_ready(now);
            }
            // A peer stream created ahead: the application hears of it at its `open`.
            Event::ChannelOpen(id, _)
                if self
                    .fast_channels
                    .as_ref()
                    .is_some_and(|f| f.is_reserved(id)) => {}
            Event::ChannelOpen(id, label) => self.on_channel_open(id, label),
            Event::ChannelData(data) if data.id == self.ctrl => self.on_control(now, &data.data),
            Event::ChannelData(data) => {
                if let Some(fast) = self.fast_channels.as_mut() {
                    match fast.on_data(data.id, data.binary, data.data.clone()) {
                        Ok(DataVerdict::Held) => return,
                        Ok(DataVerdict::Deliver) => {}
                        Err(e) => return self.refuse_fast(now, &e),
                    }
                }
                self.deliver(data.id, data.binary, data.data);
            }
            Event::ChannelClose(id) if id == self.ctrl => {
                self.finish("closed-by-peer", "control channel closed".to_owned());
            }
            Event::ChannelClose(id) => {
                if let Some(channel) = self.channels.closed(id) {
                    let _ = self.events.send(ConnectionEvent::ChannelClosed { channel });
                }
            }
            Event::Closed => self.finish("closed-by-peer", "DTLS close_notify".to_owned()),
            _ => {}
        }
    }

    /// Hands application data to the connection (held in its queue until the application
    /// takes it: a listener's application gets the connection only once it admitted the dialer).
    fn deliver(&mut self, id: ChannelId, binary: bool, data: Vec<u8>) {
        if let (true, Some(channel)) = (self.may_carry_data(), self.channels.channel(id)) {
            let _ = self.events.send(ConnectionEvent::Data {
                channel,
                binary,
                data,
            });
        }
    }

    /// The peer announced its fast channel on `stream` (channel-0 `open`).
    fn on_fast_open(&mut self, now: Instant, stream: u16, label: String) {
        let Some(fast) = self.fast_channels.as_mut() else {
            self.send_control(&Message::Error {
                code: "unsupported".to_owned(),
                reason: "open without a fast start".to_owned(),
            });
            return;
        };
        match fast.announce(stream) {
            Ok((id, held)) => {
                if let Some(event) = self.channels.opened(id, label) {
                    let _ = self.events.send(event);
                }
                for (binary, data) in held {
                    self.deliver(id, binary, data);
                }
                self.reserve_peer_streams();
            }
            Err(e) => self.refuse_fast(now, &e),
        }
    }

    /// A fast-channel rule broken by the peer: refuse it with the cause (`spec/handshake.md`
    /// §5.5), before or after authentication alike.
    fn refuse_fast(&mut self, now: Instant, error: &FastChannelError) {
        self.refuse(now, error.code(), error.to_string());
    }

    fn on_channel_open(&mut self, id: ChannelId, label: String) {
        if !self.may_carry_data() {
            // No application channel before the proof: spec/handshake.md §5.
            tracing::warn!(%label, "application channel opened before authentication; closing it");
            self.rtc.direct_api().close_data_channel(id);
            return;
        }
        if let Some(event) = self.channels.opened(id, label) {
            let _ = self.events.send(event);
        }
    }

    fn fingerprints(&mut self) -> Option<([u8; 32], [u8; 32])> {
        let api = self.rtc.direct_api();
        let local: [u8; 32] = api
            .local_dtls_fingerprint()
            .bytes
            .as_slice()
            .try_into()
            .ok()?;
        let remote: [u8; 32] = api
            .remote_dtls_fingerprint()?
            .bytes
            .as_slice()
            .try_into()
            .ok()?;
        Some(match self.hs.role {
            ProofRole::Listener => (local, remote),
            ProofRole::Dialer => (remote, local),
        })
    }

    fn send_proof(&mut self) {
        let Some(fingerprints) = self.fingerprints() else {
            self.finish("auth-failed", "DTLS fingerprints unavailable".to_owned());
            return;
        };
        let mac = self
            .relayed_proof
            .unwrap_or_else(|| self.hs.own_proof(fingerprints));
        self.send_control(&Message::proof(&mac));
    }

    fn on_control(&mut self, now: Instant, bytes: &[u8]) {
        if !self.may_carry_data() {
            match handshake::before_auth(bytes) {
                BeforeAuth::Proof(mac) => self.on_proof(now, &mac),
                BeforeAuth::RefusedByPeer(Failure { code, reason }) => {
                    // The listener refused us; keep its cause.
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
                self.send_control(&Message::Error {
                    code: e.code().to_owned(),
                    reason: e.to_string(),
                });
                return;
            }
        };
        match message {
            Message::IceRestart { ufrag, pwd } => {
                // Answer first, then switch (spec/handshake.md §6.1).
                let mine = self.restart_credentials();
                self.send_control(&Message::IceRestartAnswer {
                    ufrag: mine.ufrag.clone(),
                    pwd: mine.pass.clone(),
                });
                self.apply_restart(mine, IceCreds { ufrag, pass: pwd });
            }
            Message::IceRestartAnswer { ufrag, pwd } => match self.restart.take() {
                Some((mine, reply)) => {
                    self.apply_restart(mine, IceCreds { ufrag, pass: pwd });
                    let _ = reply.send(Ok(()));
                }
                None => tracing::warn!("ice-restart-answer without a restart"),
            },
            Message::Close { reason } => self.finish("closed-by-peer", reason),
            // A fast-start dialer that sent data early hears of its refusal here.
            Message::Error { code, reason } if !self.hs.authenticated => {
                tracing::warn!(%code, %reason, "refused by the peer");
                self.finish(handshake::known_code(&code), reason);
            }
            Message::Error { code, reason } if self.offer_refused(&code, &reason) => {
                tracing::warn!(%code, %reason, "the peer refused our offer");
                self.note_peer_error(&code, &reason);
            }
            Message::Error { code, reason } => {
                tracing::warn!(%code, %reason, "peer reported an error");
                self.note_peer_error(&code, &reason);
                // The responder could not apply our restart (`ice-restart-failed`): fail it
                // rather than wait forever for an answer.
                if let Some((_, reply)) = self.restart.take() {
                    let _ = reply.send(Err(format!("{code}: {reason}")));
                }
            }
            Message::Open { id, label } => self.on_fast_open(now, id, label),
            Message::Offer { sdp } => self.on_offer(now, &sdp),
            Message::Answer { sdp } => self.on_answer(now, &sdp),
            // The listener's proof after the dialer sent data early (fast start).
            proof @ Message::Proof { .. } if !self.hs.authenticated => {
                if let Some(Ok(mac)) = proof.proof_mac() {
                    self.on_proof(now, &mac);
                }
            }
            Message::Proof { .. } => tracing::debug!("proof after authentication ignored"),
            other => tracing::debug!(kind = other.kind(), "unhandled control message"),
        }
    }

    fn on_proof(&mut self, now: Instant, mac: &[u8; 32]) {
        // A listener's shell decides on admission first (single use, limits), then calls
        // `admit` or `reject`: a refused dialer never receives the listener's proof.
        let fingerprints = self.fingerprints();
        match self.hs.on_peer_proof(now, fingerprints, mac) {
            Ok(()) => self.peer_proven = self.hs.role == ProofRole::Listener,
            Err(Failure { code, reason }) => self.refuse(now, code, reason),
        }
    }

    /// This side's credentials for an ICE restart (`spec/handshake.md` §6.1): a dialer makes
    /// new ones; a listener repeats its own, which are bound to the token (its ufrag is the
    /// composed one the §4.3 demultiplexer routes by, its pwd is derived from the secret).
    fn restart_credentials(&mut self) -> IceCreds {
        match self.hs.role {
            ProofRole::Dialer => IceCreds::new(),
            ProofRole::Listener => self.rtc.direct_api().local_ice_credentials(),
        }
    }

    /// Switches to new credentials. The controlling dialer then forgets and re-adds every remote
    /// candidate, so every pair is checked again with the new credentials and nominated anew:
    /// the Direct-API form of an ICE restart (str0m exposes its full restart only through SDP).
    fn apply_restart(&mut self, local: IceCreds, remote: IceCreds) {
        let mut api = self.rtc.direct_api();
        api.set_local_ice_credentials(local);
        api.set_remote_ice_credentials(remote.clone());
        self.set_remote_ice(remote);
        if self.hs.role == ProofRole::Dialer {
            for c in &self.remote_candidates {
                self.rtc.direct_api().invalidate_candidate(c);
            }
            for c in self.remote_candidates.clone() {
                self.rtc.add_remote_candidate(c);
            }
        }
        let _ = self.events.send(ConnectionEvent::IceRestarted);
    }

    /// The peer failed authentication (or broke the protocol before it): tell it, log, close.
    fn refuse(&mut self, now: Instant, code: &'static str, reason: String) {
        tracing::warn!(code, %reason, role = ?self.hs.role, "peer refused");
        self.send_control(&Message::Error {
            code: code.to_owned(),
            reason: reason.clone(),
        });
        // Flush the error, ignoring what else str0m reports: a proof that came with the
        // offence must not authenticate a refused peer.
        self.refusing = true;
        let _ = self.drain(now);
        self.finish(code, reason);
    }

    fn fail(&mut self, _now: Instant, code: &'static str, reason: String) {
        tracing::warn!(code, %reason, "connection failed");
        self.finish(code, reason);
    }

    fn finish(&mut self, code: &'static str, reason: String) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.rtc.disconnect();
        self.channels.fail_pending(&format!("{code}: {reason}"));
        if let Some((_, reply)) = self.restart.take() {
            let _ = reply.send(Err(format!("{code}: {reason}")));
        }
        let _ = self.events.send(ConnectionEvent::Closed {
            code,
            reason: reason.clone(),
        });
        self.hs.notices.push(Notice::Closed { code, reason });
    }

    /// Sends a channel-0 message, or queues it (in order) until SCTP has room: an application
    /// channel filling the send buffer must not swallow an `ice-restart` or a `close`.
    fn send_control(&mut self, message: &Message) {
        if self.control_queue.len() >= CONTROL_QUEUE {
            tracing::warn!(kind = message.kind(), "control queue full; message dropped");
            return;
        }
        self.control_queue.push_back(message.encode());
        self.flush_control();
    }

    /// Writes queued channel-0 messages while SCTP accepts them; `true` once none is left.
    fn flush_control(&mut self) -> bool {
        while let Some(text) = self.control_queue.front() {
            match self
                .rtc
                .channel(self.ctrl)
                .map(|mut c| c.write(false, text.as_bytes()))
            {
                Some(Ok(true)) => {
                    self.control_queue.pop_front();
                }
                // No room yet: retried on the next poll.
                Some(Ok(false)) => return false,
                other => {
                    tracing::warn!(result = ?other.map(|r| r.map_err(|e| e.to_string())), "control message not accepted by SCTP");
                    self.control_queue.pop_front();
                }
            }
        }
        true
    }

    fn flush_outbound(&mut self) {
        if !self.flush_control() {
            return;
        }
        while let Some((id, binary, data)) = self.outbound.pop() {
            let written = match self.rtc.channel(id) {
                // Channel gone: drop what was queued for it.
                None => Ok(true),
                Some(mut channel) => channel.write(binary, &data),
            };
            match written {
                Ok(true) => {}
                Ok(false) => {
                    // SCTP buffer full: retry on the next poll.
                    self.outbound.unpop((id, binary, data));
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "channel write failed; dropping the message"),
            }
        }
    }
}

impl Engine for Str0mEngine {
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
        if self.hs.role == ProofRole::Listener && !self.hs.authenticated && !self.closed() {
            self.send_proof();
            self.hs.authenticate(now);
        }
    }

    fn reject(&mut self, now: Instant, code: &'static str, reason: String) {
        self.refuse(now, code, reason);
    }

    fn is_closed(&self) -> bool {
        self.closed()
    }

    fn is_fast_start(&self) -> bool {
        self.fast_start
    }

    fn add_relayed_candidate(&mut self, relayed: SocketAddr, base: SocketAddr) -> bool {
        match str0m::Candidate::relayed(relayed, base, "udp") {
            Ok(c) => self.rtc.add_local_candidate(c).is_some(),
            Err(e) => {
                tracing::warn!(%relayed, error = %e, "relayed candidate not usable");
                false
            }
        }
    }
}

/// The cause code (`spec/handshake.md` §8) for an error str0m returns: str0m verifies the
/// listener's certificate against the token's fingerprint during DTLS and reports a mismatch as
/// a remote-SDP error, which is `fingerprint-mismatch`; anything else is `rtc-error`.
fn failure_code(error: &str0m::RtcError) -> &'static str {
    match error {
        str0m::RtcError::RemoteSdp(message) if message.contains("fingerprint") => {
            "fingerprint-mismatch"
        }
        _ => "rtc-error",
    }
}
