//! The one-way dialer shell: connects to a listener from its token alone
//! (`spec/handshake.md` §3), for any [`Stack`]. It resolves mDNS candidates, binds one socket
//! per address family the token's candidates need, offers its host candidates (and a TURN
//! relay's, last), lets the engine check the token's candidates in order, and reports each
//! stage.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oneway_connection::{
    Command, Connection, ConnectionInfo, DialError, DriverGuard, Progress, Route, StackError,
};
use oneway_core::demux::is_binding_success;
use oneway_core::punch::is_punch_check;
use oneway_token::dialer_cert::DialerCertificate;
use oneway_token::{Candidate, CandidateAddress, DerivedKeys, Profile, Token, Transport};
use oneway_turn::TurnServer;
use oneway_turn::link::{LinkIo, Relay, RelayOutput};
use tokio::sync::{mpsc, oneshot};

use crate::engine::{DialerEngineParams, Engine, Notice, Stack, Transmit};
use crate::gather::unix_now;
use crate::net::{AddressScope, Socket, SocketSet, host_addresses};
use crate::reply::{SrflxProbe, candidate_string, dialer_reply, reply_candidates};

/// Longest wait for mDNS names to resolve (at most half the dial timeout).
pub const MDNS_RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most queued commands the driver takes in one wake.
const COMMAND_BATCH: usize = 64;
/// Most remote addresses whose first answer the dialer remembers (for the route).
const MAX_ANSWERS_TRACKED: usize = 32;

/// Longest wait for the TURN allocation before the engine starts, for stacks that take their
/// local candidates only at the start ([`Stack::RELAY_BEFORE_START`]).
pub const RELAY_WAIT: Duration = Duration::from_secs(3);

/// How a dialer on stack `S` connects.
#[derive(Clone, Debug)]
pub struct DialConfig<S: Stack> {
    /// Give up if not authenticated after this long (every candidate is tried within it).
    pub timeout: Duration,
    /// Which local addresses to offer as host candidates; `None` picks from the token: loopback
    /// only when every candidate is loopback, otherwise the interfaces (plus loopback if some
    /// candidate is loopback).
    pub scope: Option<AddressScope>,
    /// Receives stage progress as it happens (for `--json` events). The dialer drops its
    /// sender once the handshake succeeded or failed, so a reader sees the stream end.
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// The dialer's DTLS certificate; `None` generates a fresh one per dial (~30 ms of key
    /// generation). Reusing one makes the dialer recognisable across connections.
    pub certificate: Option<S::Certificate>,
    /// Interval between ICE checks while connecting; `None`: the stack's default.
    pub ice_check_interval: Option<Duration>,
    /// A TURN server (reached over TCP) to allocate a UDP relay from: its relayed address is
    /// added as a local candidate once allocated, after the host candidates, so it is tried
    /// last and wins only when no direct pair works (`spec/peer-contract.md`).
    pub turn: Option<TurnServer>,
    /// Offer only the relayed candidate (needs [`DialConfig::turn`]): the path is always the
    /// relay, and a TURN failure fails the dial at once with its cause code.
    pub relay_only: bool,
    /// Take the fast path the token's `fast` extension offers, when this stack can
    /// (`spec/handshake.md` §5.4): DTLS 1.3, and a fast start (SNAP, channels without DCEP).
    /// On by default; off keeps the standard handshake (for comparisons).
    pub fast_path: bool,
    /// Under a fast start, return the connection as soon as the dialer's proof is sent (DTLS
    /// verified the listener's certificate against the token), so the first application data
    /// leaves with the proof instead of a round trip later (`spec/handshake.md` §5.5). The
    /// listener's proof then arrives as the connection runs; if the listener refuses (e.g. a
    /// single-use token already used), the connection closes with that cause
    /// (`ConnectionEvent::Closed`) instead of `dial` failing. Off by default.
    pub early_data: bool,
    /// Knobs that break the protocol on purpose, for tests of the listener's defences.
    pub dangerous: DangerousDialConfig,
    /// The stack, chosen by type.
    pub stack: PhantomData<fn() -> S>,
}

/// Deliberately wrong behaviour, to test that listeners refuse it. Never use outside tests.
#[derive(Clone, Debug, Default)]
pub struct DangerousDialConfig {
    /// Use this key for the in-band proof instead of the token's (a dialer that passes ICE but
    /// does not hold the secret's auth key).
    pub auth_key: Option<[u8; 32]>,
    /// Dial even if the token has expired (to test the listener's own expiry check).
    pub skip_expiry_check: bool,
    /// Send this MAC as the in-band proof instead of computing one: a relay replaying a proof
    /// captured from another dialer's DTLS session (`spec/security.md` §3).
    pub relayed_proof: Option<[u8; 32]>,
}

impl<S: Stack> Default for DialConfig<S> {
    fn default() -> Self {
        DialConfig {
            timeout: Duration::from_secs(10),
            scope: None,
            progress: None,
            certificate: None,
            ice_check_interval: None,
            turn: None,
            relay_only: false,
            fast_path: true,
            early_data: false,
            dangerous: DangerousDialConfig::default(),
            stack: PhantomData,
        }
    }
}

/// Connects to the listener of `token` on stack `S`. Returns once both in-band proofs have
/// verified.
pub async fn dial<S: Stack>(
    token: &Token,
    config: &DialConfig<S>,
) -> Result<Connection, DialError> {
    if !config.dangerous.skip_expiry_check {
        token.check_expiry(unix_now())?;
    }
    if !matches!(token.profile, Profile::Native | Profile::DialerIdentity) {
        return Err(DialError::UnsupportedProfile {
            profile: token.profile.name(),
            dialer: S::NAME,
        });
    }
    let (remotes, resolved) = usable_candidates(token, config.timeout).await?;

    let all_loopback = remotes.iter().all(|(_, a)| a.ip().is_loopback());
    let some_loopback = remotes.iter().any(|(_, a)| a.ip().is_loopback());
    let scope = config.scope.unwrap_or(match (all_loopback, some_loopback) {
        (true, _) => AddressScope::LoopbackOnly,
        (false, true) => AddressScope::InterfacesAndLoopback,
        (false, false) => AddressScope::Interfaces,
    });
    let (sockets, locals) = bind_for(&remotes, scope)?;
    if config.relay_only && config.turn.is_none() {
        return Err(DialError::NoUsableCandidate(
            "relay only, but no TURN server is configured".to_owned(),
        ));
    }
    if sockets.is_empty() && config.turn.is_none() {
        return Err(DialError::NoUsableCandidate(
            "no local address in the families of the token's candidates".to_owned(),
        ));
    }

    // The dial's clock starts before a TURN allocation, which counts against the timeout.
    let started = Instant::now();
    let mut relay = config.turn.clone().map(|server| {
        let peers: Vec<SocketAddr> = remotes.iter().map(|(_, a)| *a).collect();
        Relay::start(server, peers)
    });
    let relayed = match relay.as_mut() {
        Some(r) if S::RELAY_BEFORE_START => {
            let ready = wait_for_relay(r, started + RELAY_WAIT.min(config.timeout / 2)).await;
            if config.relay_only && ready.is_none() {
                let (code, reason) = match &r.error {
                    Some(e) => (e.code(), e.to_string()),
                    None => (
                        "turn-timeout",
                        format!("no TURN allocation within {RELAY_WAIT:?}"),
                    ),
                };
                return Err(DialError::Closed { code, reason });
            }
            ready
        }
        _ => None,
    };

    let now = Instant::now();
    let keys = token.derive();
    let certificate = match token.profile {
        // dialer-identity (`spec/handshake.md` §10.2): the listener chose our certificate.
        Profile::DialerIdentity => {
            let cert = DialerCertificate::derive(&token.secret)
                .map_err(|e| StackError::Config(format!("dialer certificate: {e}")))?;
            Some(S::certificate_from_der(
                &cert.certificate_der,
                &cert.private_key_pkcs8,
            )?)
        }
        _ => config.certificate.clone(),
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let offered: &[SocketAddr] = if config.relay_only { &[] } else { &locals };
    let engine = S::dialer_engine(DialerEngineParams {
        now,
        token: &resolved,
        remotes: &remotes,
        keys: &keys,
        auth_key: config.dangerous.auth_key.unwrap_or(keys.auth_key),
        certificate,
        locals: offered,
        relayed,
        loopback: all_loopback,
        ice_check_interval: config.ice_check_interval,
        timeout: config.timeout,
        relayed_proof: config.dangerous.relayed_proof,
        fast_path: config.fast_path,
        events: events_tx,
    })?;

    // The reply fallback (`spec/handshake.md` §11): a `native` dialer makes a reply code from
    // its credentials and candidates, learning its server-reflexive address from the token's
    // STUN servers meanwhile.
    let reply = (token.profile == Profile::Native).then(|| {
        let families = (
            locals.iter().any(SocketAddr::is_ipv4),
            locals.iter().any(SocketAddr::is_ipv6),
        );
        ReplyState {
            probe: SrflxProbe::new(now, &token.stun, families),
            keys: keys.clone(),
            hosts: if config.relay_only {
                Vec::new()
            } else {
                locals.clone()
            },
            loopback: all_loopback,
            relay_until: config
                .turn
                .is_some()
                .then(|| started + RELAY_WAIT.min(config.timeout / 2)),
        }
    });

    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let driver = Driver {
        reply,
        listener_checked: None,
        answered: Vec::new(),
        relay,
        relay_only: config.relay_only,
        early_data: config.early_data,
        engine,
        sockets: Arc::new(SocketSet::new(sockets)),
        ready: Some(ready_tx),
        progress: config.progress.clone(),
        deadline: started + config.timeout,
        timeout: config.timeout,
        reported_tried: 0,
        outbox: Vec::new(),
    };
    let handle = tokio::spawn(driver.run(commands_rx));
    let guard = Arc::new(DriverGuard::new(handle.abort_handle()));
    match ready_rx.await {
        Ok(Ok(info)) => Ok(Connection::new(0, commands_tx, events_rx, info, guard)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DialError::Closed {
            code: "internal",
            reason: "dialer task ended".to_owned(),
        }),
    }
}

/// The token with only the candidates a dialer can use, in token order (each mDNS name
/// resolved, within [`MDNS_RESOLVE_TIMEOUT`] or half of `timeout`, and replaced by its first
/// address), and the remote addresses to check, each with its candidate's index in that token.
async fn usable_candidates(
    token: &Token,
    timeout: Duration,
) -> Result<(Vec<(usize, SocketAddr)>, Token), DialError> {
    let mdns_names: Vec<[u8; 16]> = token
        .candidates
        .iter()
        .filter_map(|c| match (c.transport, c.address) {
            (Transport::Udp, CandidateAddress::Mdns(uuid)) => Some(uuid),
            _ => None,
        })
        .collect();
    let resolved = if mdns_names.is_empty() {
        Default::default()
    } else {
        let wait = MDNS_RESOLVE_TIMEOUT.min(timeout / 2);
        tokio::task::spawn_blocking(move || crate::mdns::resolve(&mdns_names, wait))
            .await
            .map_err(|e| StackError::Io(format!("mDNS task: {e}")))??
    };
    let mut remotes: Vec<(usize, SocketAddr)> = Vec::new();
    let mut usable: Vec<Candidate> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (index, c) in token.candidates.iter().enumerate() {
        let ips: Vec<IpAddr> = match (c.transport, c.address) {
            (Transport::Udp, CandidateAddress::Ip(ip)) => vec![ip],
            (Transport::Udp, CandidateAddress::Mdns(uuid)) => match resolved.get(&uuid) {
                Some(ips) if !ips.is_empty() => ips.clone(),
                _ => {
                    skipped.push(format!(
                        "candidate {}: {} did not resolve over mDNS",
                        index + 1,
                        c.address.to_sdp_string()
                    ));
                    continue;
                }
            },
            _ => {
                skipped.push(format!(
                    "candidate {}: TCP is not supported by this dialer",
                    index + 1
                ));
                continue;
            }
        };
        let position = usable.len();
        usable.push(Candidate {
            address: CandidateAddress::Ip(ips[0]),
            ..*c
        });
        remotes.extend(
            ips.iter()
                .map(|ip| (position, SocketAddr::new(*ip, c.port))),
        );
    }
    if remotes.is_empty() {
        return Err(DialError::NoUsableCandidate(if skipped.is_empty() {
            "the token has no candidate".to_owned()
        } else {
            skipped.join("; ")
        }));
    }
    for reason in &skipped {
        tracing::info!("{reason}");
    }
    let mut resolved_token = token.clone();
    resolved_token.candidates = usable;
    Ok((remotes, resolved_token))
}

/// One wildcard socket per address family of `remotes` that has a local address in `scope`,
/// and the host candidates they stand for.
fn bind_for(
    remotes: &[(usize, SocketAddr)],
    scope: AddressScope,
) -> Result<(Vec<Socket>, Vec<SocketAddr>), DialError> {
    let addresses =
        host_addresses(scope).map_err(|e| StackError::Io(format!("listing interfaces: {e}")))?;
    let mut sockets: Vec<Socket> = Vec::new();
    let mut locals: Vec<SocketAddr> = Vec::new();
    for v4 in [true, false] {
        if !remotes.iter().any(|(_, a)| a.is_ipv4() == v4) {
            continue;
        }
        let ips: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|ip| ip.is_ipv4() == v4)
            .collect();
        if ips.is_empty() {
            continue;
        }
        let wildcard: SocketAddr = if v4 {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = match Socket::bind(wildcard) {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(%wildcard, error = %e, "cannot bind; skipping this address family");
                continue;
            }
        };
        locals.extend(
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, socket.local_addr().port())),
        );
        sockets.push(socket);
    }
    Ok((sockets, locals))
}

/// Drives `relay` until its relayed candidate is ready, it fails, or `until`; returns
/// `(relayed, local)` when ready.
async fn wait_for_relay(relay: &mut Relay, until: Instant) -> Option<(SocketAddr, SocketAddr)> {
    // Bounded by `until`; each turn handles one report of the connection tasks or a timeout.
    while relay.error.is_none() {
        let mut wake = until;
        if let Some(at) = relay.poll_timeout() {
            wake = wake.min(at);
        }
        let out = tokio::select! {
            io = relay.recv() => relay.handle_io(Instant::now(), io),
            _ = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= until {
                    return None;
                }
                relay.handle_timeout(Instant::now())
            }
        };
        if let Some(ready) = out.add_candidate {
            return Some(ready);
        }
    }
    None
}

/// The relay's next report, or never without a relay.
async fn relay_recv(relay: Option<&mut Relay>) -> Option<LinkIo> {
    match relay {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// A dialer's reply code in the making: its server-reflexive probe, then the code.
struct ReplyState {
    probe: SrflxProbe,
    keys: DerivedKeys,
    /// The dialer's host candidates.
    hosts: Vec<SocketAddr>,
    /// Every candidate of the token is loopback (then loopback hosts may be offered).
    loopback: bool,
    /// With a TURN server: until when the code waits for the relayed address (a code with the
    /// relay serves the `reply: relayed` path, `spec/handshake.md` §11.1).
    relay_until: Option<Instant>,
}

struct Driver<E> {
    engine: E,
    /// The reply code not made yet (`None` once reported, or for profiles without one).
    reply: Option<ReplyState>,
    /// When the listener's first reply-route check ([`is_punch_check`]) arrived before ICE
    /// connected: it took the reply code and punched.
    listener_checked: Option<Instant>,
    /// When the first answer to this dialer's checks came from each remote address, before ICE
    /// connected (at most [`MAX_ANSWERS_TRACKED`] addresses).
    answered: Vec<(SocketAddr, Instant)>,
    /// The TURN relay, when configured.
    relay: Option<Relay>,
    /// Whether only the relayed candidate is offered (a TURN failure then ends the dial).
    relay_only: bool,
    /// See [`DialConfig::early_data`].
    early_data: bool,
    sockets: Arc<SocketSet>,
    ready: Option<oneshot::Sender<Result<ConnectionInfo, DialError>>>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    deadline: Instant,
    timeout: Duration,
    reported_tried: usize,
    /// Datagrams of this wake, sent together at its end (GSO runs: [`SocketSet::send_batch`]).
    outbox: Vec<Transmit>,
}

impl<E: Engine> Driver<E> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<(u64, Command)>) {
        let sockets = Arc::clone(&self.sockets);
        let mut next = self.service();
        self.sockets.send_batch(&self.outbox);
        self.outbox.clear();
        loop {
            let now = Instant::now();
            let mut wake = next.unwrap_or(now + Duration::from_secs(1));
            if self.ready.is_some() {
                wake = wake.min(self.deadline);
            }
            if let Some(at) = self.relay.as_mut().and_then(Relay::poll_timeout) {
                wake = wake.min(at);
            }
            if let Some(r) = self.reply.as_ref() {
                for at in [r.probe.poll_timeout(), r.relay_until]
                    .into_iter()
                    .flatten()
                {
                    if at > now {
                        wake = wake.min(at);
                    }
                }
            }
            let mut relay_io: Option<Option<LinkIo>> = None;
            // One input, then a full poll, for each of a batch read at once.
            let mut batch = Vec::new();
            let mut queued = Vec::new();
            tokio::select! {
                received = sockets.recv_batch() => match received {
                    Ok(datagrams) => batch = datagrams,
                    Err(e) => tracing::warn!(error = %e, "receive failed"),
                },
                command = commands.recv() => match command {
                    Some((_, command)) => {
                        queued.push(command);
                        // Commands sent meanwhile (a burst of sends) are taken in the same wake.
                        while queued.len() < COMMAND_BATCH
                            && let Ok((_, command)) = commands.try_recv()
                        {
                            queued.push(command);
                        }
                    }
                    None => return,
                },
                io = relay_recv(self.relay.as_mut()) => relay_io = Some(io),
                _ = tokio::time::sleep_until(wake.into()) => {
                    let now = Instant::now();
                    if self.ready.is_some() && now >= self.deadline {
                        let error = self.timeout_error();
                        if let Some(ready) = self.ready.take() {
                            let _ = ready.send(Err(error));
                        }
                        return;
                    }
                    self.engine.handle_timeout(now);
                    if let Some(relay) = self.relay.as_mut() {
                        let out = relay.handle_timeout(now);
                        self.relay_output(out);
                    }
                }
            }
            if let Some(io) = relay_io {
                if let Some(relay) = self.relay.as_mut() {
                    let out = relay.handle_io(Instant::now(), io);
                    self.relay_output(out);
                }
                if self.relay_only
                    && self.ready.is_some()
                    && let Some(e) = self.relay.as_ref().and_then(|r| r.error.clone())
                {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(DialError::Closed {
                            code: e.code(),
                            reason: e.to_string(),
                        }));
                    }
                    return;
                }
            }
            if batch.is_empty() && queued.is_empty() {
                next = self.service();
            }
            for d in batch {
                if self.take_probe_answer(d.source, &d.contents) {
                    continue;
                }
                self.note_route(d.source, &d.contents);
                self.engine
                    .handle_datagram(Instant::now(), d.source, d.destination, &d.contents);
                next = self.service();
            }
            for command in queued {
                self.engine.handle_command(Instant::now(), command);
                next = self.service();
            }
            self.sockets.send_batch(&self.outbox);
            self.outbox.clear();
            if self.engine.is_closed() && self.ready.is_none() {
                // The last datagrams (a close message) have left: stop.
                return;
            }
        }
    }

    /// The error of a dial that ran out of time: the stage that did not complete, or, when no
    /// check got through and the TURN relay failed, the relay's cause (`turn-auth-failed`, …).
    fn timeout_error(&self) -> DialError {
        DialError::timed_out(
            self.engine.timings().stage(),
            self.timeout,
            self.engine.tried().iter().map(|(a, _)| *a).collect(),
            self.relay
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .map(|e| (e.code(), e.to_string())),
        )
    }

    /// Applies what the relay produced: its candidate (for engines that take it late), and
    /// data relayed from peers, handed to the engine as received on the relayed address.
    fn relay_output(&mut self, out: RelayOutput) {
        if let Some((relayed, local)) = out.add_candidate {
            if self.engine.add_relayed_candidate(relayed, local) {
                tracing::info!(%relayed, "relayed candidate added");
            } else {
                tracing::debug!(%relayed, "relayed candidate not added after the start");
            }
        }
        let Some(relayed) = self.relay.as_ref().and_then(Relay::relayed) else {
            return;
        };
        for (peer, data) in out.received {
            self.note_route(peer, &data);
            self.engine
                .handle_datagram(Instant::now(), peer, relayed, &data);
            self.service();
        }
    }

    /// A STUN server's answer to the reply probe (`true`: taken, not for the engine).
    fn take_probe_answer(&mut self, source: SocketAddr, contents: &[u8]) -> bool {
        match self.reply.as_mut() {
            Some(r) if r.probe.is_server(source) => r.probe.handle_datagram(source, contents),
            _ => false,
        }
    }

    /// Before ICE connected, remembers the listener's first reply-route check and the first
    /// answer to this dialer's checks from each address.
    fn note_route(&mut self, source: SocketAddr, contents: &[u8]) {
        if self.engine.timings().stage_times().ice.is_some() {
            return;
        }
        if self.listener_checked.is_none() && is_punch_check(contents) {
            tracing::info!(%source, "a check from the listener arrived: it took the reply code");
            self.listener_checked = Some(Instant::now());
        } else if is_binding_success(contents)
            && self.answered.len() < MAX_ANSWERS_TRACKED
            && !self.answered.iter().any(|(a, _)| *a == source)
        {
            self.answered.push((source, Instant::now()));
        }
    }

    /// The route (`spec/handshake.md` §11.2): `reply` when the listener's check came before
    /// the first answer on the selected pair (the way in was opened by the listener), else
    /// `one-way`: of two paths that both work, the first to answer won.
    fn route(&self) -> Route {
        let Some(checked) = self.listener_checked else {
            return Route::OneWay;
        };
        let remote = self.engine.selected().map(|(_, remote)| remote);
        let answered = self
            .answered
            .iter()
            .find(|(a, _)| Some(*a) == remote)
            .map(|(_, at)| *at);
        match answered {
            Some(at) if at < checked => Route::OneWay,
            _ => Route::Reply,
        }
    }

    /// Sends the reply probe's requests, and reports the reply code once the probe is done.
    fn service_reply(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        for (server, bytes) in reply.probe.poll_transmit(now) {
            if let Some(source) = reply.hosts.iter().find(|h| h.is_ipv4() == server.is_ipv4()) {
                self.outbox.push(Transmit {
                    source: *source,
                    destination: server,
                    contents: bytes,
                });
            }
        }
        if !reply.probe.is_done(now) || self.ready.is_none() {
            return;
        }
        let relay_pending = self
            .relay
            .as_ref()
            .is_some_and(|r| r.relayed().is_none() && r.error.is_none());
        if relay_pending && reply.relay_until.is_some_and(|until| now < until) {
            return;
        }
        let Some(reply) = self.reply.take() else {
            return;
        };
        let Some(local_ice) = self.engine.local_ice() else {
            return;
        };
        let relayed = self.relay.as_ref().and_then(Relay::relayed);
        let candidates =
            reply_candidates(&reply.probe.result(), relayed, &reply.hosts, reply.loopback);
        if candidates.is_empty() {
            tracing::info!("no candidate to put in a reply code: none is shown");
            return;
        }
        let strings: Vec<String> = candidates.iter().map(candidate_string).collect();
        let code = match dialer_reply(
            &reply.keys,
            &local_ice,
            self.engine.is_fast_start(),
            candidates,
            unix_now(),
        )
        .to_text(&reply.keys.reply_key)
        {
            Ok(code) => code,
            Err(e) => {
                tracing::warn!(error = %e, "no reply code: its fields do not encode");
                return;
            }
        };
        tracing::info!(%code, candidates = ?strings, "reply code ready");
        self.report(Progress::ReplyCode {
            code,
            candidates: strings,
        });
    }

    /// Polls the engine: datagrams to the outbox (or the relay), progress reported, the
    /// handshake's end announced. Returns the engine's next deadline.
    fn service(&mut self) -> Option<Instant> {
        let now = Instant::now();
        self.service_reply(now);
        let (outgoing, next) = self.engine.poll(now);
        match self.relay.as_mut() {
            Some(relay) if relay.relayed().is_some() => {
                let relayed = relay.relayed();
                for o in outgoing {
                    if Some(o.source) == relayed {
                        relay.send(now, o.destination, &o.contents);
                    } else {
                        self.outbox.push(o);
                    }
                }
            }
            _ => self.outbox.extend(outgoing),
        }
        while let Some(&(remote, after)) = self.engine.tried().get(self.reported_tried) {
            self.reported_tried += 1;
            self.report(Progress::CandidateTried { remote, after });
        }
        for notice in self.engine.take_notices() {
            match notice {
                Notice::IceConnected => self.report(Progress::IceConnected),
                Notice::DtlsConnected => self.report(Progress::DtlsConnected),
                Notice::ChannelOpen => self.report(Progress::ChannelOpen),
                Notice::DialerProven => {}
                Notice::EarlyDataReady if self.early_data => self.connected(),
                Notice::EarlyDataReady => {}
                Notice::Authenticated => {
                    self.report(Progress::Authenticated);
                    self.connected();
                    // Progress covers the handshake only: closing it lets readers finish.
                    self.progress = None;
                }
                Notice::Closed { code, reason } => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(DialError::Closed { code, reason }));
                    }
                }
            }
        }
        next
    }

    /// Hands the connection to the caller of `dial` (once).
    fn connected(&mut self) {
        let info = ConnectionInfo {
            timings: self.engine.timings().clone(),
            selected: self.engine.selected(),
            tried: self.engine.tried().to_vec(),
            fast_start: self.engine.is_fast_start(),
            route: self.route(),
        };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Ok(info));
        }
    }

    fn report(&self, progress: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(progress);
        }
    }
}
