//! The one-way listener on `rtc`: one UDP socket per configured address serving every dialer,
//! one `RTCPeerConnection` per dialer, datagrams demultiplexed by `oneway_core::demux`
//! (`spec/handshake.md` §4.3).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oneway_core::admission::{
    Admission, AdmissionLimits, Refusal, SourceLimiter, SourceRateLimit, route_dialer_address,
};
use oneway_core::demux::{self, ListenerCreds, NewDialer, Routed};
use oneway_token::{Candidate, DerivedKeys, Fingerprint, Profile, SctpParams, Secret, Token};
use rand::RngCore;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate,
};
use tokio::sync::mpsc;

use crate::connection::{Connection, ConnectionEvent, ConnectionInfo, DriverGuard};
use crate::engine::{
    CONTROL_LABEL, Command, Engine, Negotiation, Notice, Role, control_channel_init, rtc_error,
};
use crate::net::{Datagram, Sockets};
use crate::{Progress, StackError};

/// Default for [`ListenerConfig::accept_queue`].
pub const DEFAULT_ACCEPT_QUEUE: usize = 1024;
/// How many listener events may wait for [`Listener::next_event`]; newer ones are dropped.
pub const EVENT_QUEUE: usize = 1024;
/// Default for [`ListenerConfig::consent_timeout`]: RFC 7675's 30 s.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the driver sleeps without checking admission deadlines.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// How a listener binds, what it advertises, and its token policy.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// Socket addresses to bind, one socket each; each must be a concrete address (port 0
    /// picks a free port). Each becomes a host candidate, in this order.
    pub bind: Vec<SocketAddr>,
    /// Extra candidates advertised first (e.g. a forwarded port), in order.
    pub extra_candidates: Vec<Candidate>,
    /// STUN server to learn the NAT-mapped address of the first socket of its address family
    /// from; advertised as a server-reflexive candidate after the host candidates (none if the
    /// mapped address is a bound one: no NAT).
    pub stun: Option<SocketAddr>,
    /// Token lifetime; `None` means no expiry.
    pub ttl: Option<Duration>,
    /// Accept only the first dialer that proves the secret.
    pub single_use: bool,
    /// A label shown to dialers.
    pub label: Option<String>,
    /// Bounds on unauthenticated and authenticated state.
    pub limits: AdmissionLimits,
    /// How many authenticated connections may wait for [`Listener::accept`]; a dialer proven
    /// while it is full is refused with `accept-queue-full` before it is told it is connected.
    pub accept_queue: usize,
    /// Per-source budget of checks that fail MESSAGE-INTEGRITY; a source over it gets no HMAC
    /// computed until its budget refills (`spec/security.md`, denial of service).
    pub source_rate_limit: SourceRateLimit,
    /// How long a dialer may stay silent (no check, no data) before its engine ends: with
    /// `consent-lost` once authenticated, `ice-failed` before. RFC 7675 consent freshness:
    /// [`DEFAULT_CONSENT_TIMEOUT`]. `rtc` counts the first sixth as ICE "disconnected" and the
    /// rest until "failed".
    pub consent_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig::loopback()
    }
}

impl ListenerConfig {
    /// A listener on `127.0.0.1`, for tests and single-machine use.
    pub fn loopback() -> Self {
        ListenerConfig {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            extra_candidates: Vec::new(),
            stun: None,
            ttl: None,
            single_use: false,
            label: None,
            limits: AdmissionLimits::default(),
            accept_queue: DEFAULT_ACCEPT_QUEUE,
            source_rate_limit: SourceRateLimit::default(),
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
        }
    }

    /// A listener on every usable interface address (IPv4 first, port 0 each), plus loopback
    /// if `loopback` is set. This stack binds one socket per concrete address, so it
    /// enumerates them instead of binding `0.0.0.0`.
    pub fn interfaces(loopback: bool) -> Result<Self, StackError> {
        let addrs = crate::net::host_addresses(loopback)
            .map_err(|e| StackError::Io(format!("listing interfaces: {e}")))?;
        if addrs.is_empty() {
            return Err(StackError::Config(
                "no address to advertise: the machine has no usable interface (try loopback)"
                    .to_owned(),
            ));
        }
        Ok(ListenerConfig {
            bind: addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
            ..ListenerConfig::loopback()
        })
    }
}

use oneway_connection::{ListenerCounters, ListenerState};
pub use oneway_connection::{ListenerEvent, ListenerStats};

/// A listening one-way endpoint.
#[derive(Debug)]
pub struct Listener {
    token: Token,
    stats: Arc<ListenerCounters>,
    local_addrs: Vec<SocketAddr>,
    incoming: mpsc::Receiver<Connection>,
    events: mpsc::Receiver<ListenerEvent>,
    _driver: Arc<DriverGuard>,
}

impl Listener {
    /// Binds the sockets, issues a `native` token and starts serving. Must be called inside a
    /// tokio runtime.
    pub async fn bind(config: ListenerConfig) -> Result<Listener, StackError> {
        if config.bind.is_empty() {
            return Err(StackError::Config("no address to bind".to_owned()));
        }
        let mut sockets = Sockets::bind(&config.bind)
            .await
            .map_err(|e| StackError::Io(format!("binding: {e}")))?;
        let local_addrs = sockets.local_addrs();
        let mut candidates = config.extra_candidates.clone();
        candidates.extend(
            local_addrs
                .iter()
                .map(|a| Candidate::udp_host(a.ip(), a.port())),
        );
        if let Some(server) = config.stun {
            let local = local_addrs
                .iter()
                .find(|a| a.is_ipv4() == server.is_ipv4())
                .copied()
                .ok_or_else(|| {
                    StackError::Config(format!(
                        "no socket of the STUN server's address family ({server})"
                    ))
                })?;
            let mapped = server_reflexive(&mut sockets, local, server).await?;
            if local_addrs.contains(&mapped) {
                tracing::info!(%mapped, "STUN: no NAT in front of this socket; no srflx candidate needed");
            } else {
                candidates.push(Candidate {
                    kind: oneway_token::CandidateType::ServerReflexive,
                    ..Candidate::udp_host(mapped.ip(), mapped.port())
                });
            }
        }
        candidates.truncate(oneway_token::MAX_CANDIDATES);

        let (cert, fingerprint) = crate::generate_certificate()?;
        let mut secret = [0u8; 16];
        rand::rng().fill_bytes(&mut secret);
        let mut token = Token::new(
            Profile::Native,
            Fingerprint(fingerprint),
            Secret(secret),
            candidates,
        );
        token.single_use = config.single_use;
        token.label = config.label.clone();
        token.expires_at = config.ttl.map(|ttl| unix_now() + ttl.as_secs().max(1));
        token
            .validate()
            .map_err(|e| StackError::Config(format!("token: {e}")))?;

        let (incoming_tx, incoming) = mpsc::channel(config.accept_queue.max(1));
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ListenerCounters::default());
        let driver = Driver {
            stats: Arc::clone(&stats),
            keys: token.derive(),
            sctp: token.sctp_params(),
            admission: Admission::new(&token, config.limits.clone()),
            limiter: SourceLimiter::new(config.source_rate_limit.clone()),
            local_addrs: local_addrs.clone(),
            cert,
            listener_fp: fingerprint,
            consent_timeout: config.consent_timeout,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BinaryHeap::new(),
            next_key: 1,
            commands_tx,
            incoming_tx,
            events_tx,
            guard: Weak::new(),
        };
        let (guard_tx, guard_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(driver.run(sockets, guard_rx, commands_rx));
        let guard = Arc::new(DriverGuard::new(handle.abort_handle()));
        let _ = guard_tx.send(Arc::downgrade(&guard));
        Ok(Listener {
            token,
            stats,
            local_addrs,
            incoming,
            events,
            _driver: guard,
        })
    }

    /// The token to publish.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The bound socket addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// What the listener holds now, as of the last datagram, command or timer it handled.
    pub fn stats(&self) -> ListenerStats {
        self.stats.snapshot()
    }

    /// The next authenticated connection; `None` if the listener stopped.
    pub async fn accept(&mut self) -> Option<Connection> {
        self.incoming.recv().await
    }

    /// The next listener event (admissions, refusals, progress).
    pub async fn next_event(&mut self) -> Option<ListenerEvent> {
        self.events.recv().await
    }

    /// A listener event if one is waiting.
    pub fn try_next_event(&mut self) -> Option<ListenerEvent> {
        self.events.try_recv().ok()
    }

    /// Moves the event stream out, so events and connections can be awaited side by side.
    /// Afterwards [`Listener::next_event`] returns `None`.
    pub fn take_events(&mut self) -> ListenerEvents {
        let (_, empty) = mpsc::channel(1);
        ListenerEvents(std::mem::replace(&mut self.events, empty))
    }
}

/// A listener's event stream, taken with [`Listener::take_events`].
#[derive(Debug)]
pub struct ListenerEvents(mpsc::Receiver<ListenerEvent>);

impl ListenerEvents {
    /// The next event; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<ListenerEvent> {
        self.0.recv().await
    }
}

/// Tries per STUN request, and how long each waits for the answer.
pub const STUN_TRIES: u32 = 3;
/// See [`STUN_TRIES`].
pub const STUN_TRY_TIMEOUT: Duration = Duration::from_millis(500);

/// Asks `server` which address the socket bound to `local` appears from (RFC 8489 Binding,
/// XOR-MAPPED-ADDRESS). Runs before the driver starts, so other datagrams are dropped: no
/// token has been published yet.
async fn server_reflexive(
    sockets: &mut Sockets,
    local: SocketAddr,
    server: SocketAddr,
) -> Result<SocketAddr, StackError> {
    let stun = |e: oneway_core::stun_client::StunClientError| {
        StackError::Io(format!("STUN server {server}: {e}"))
    };
    for _ in 0..STUN_TRIES {
        let request = oneway_core::stun_client::BindingRequest::new().map_err(stun)?;
        sockets.send(local, server, &request.bytes);
        let deadline = tokio::time::Instant::now() + STUN_TRY_TIMEOUT;
        while let Ok(Some(d)) = tokio::time::timeout_at(deadline, sockets.recv()).await {
            if d.source != server || d.destination != local {
                continue;
            }
            if let Some(mapped) = request.parse_response(&d.contents).map_err(stun)? {
                return Ok(mapped);
            }
        }
    }
    Err(StackError::Io(format!(
        "no answer from STUN server {server} after {STUN_TRIES} tries of {STUN_TRY_TIMEOUT:?}"
    )))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Slot {
    engine: Engine,
    remote: SocketAddr,
    /// Every address routed to this engine (`by_addr`), oldest first, at most
    /// [`MAX_ADDRESSES_PER_DIALER`](oneway_core::admission::MAX_ADDRESSES_PER_DIALER).
    addrs: VecDeque<SocketAddr>,
    local_ufrag: String,
    events: Option<mpsc::UnboundedReceiver<ConnectionEvent>>,
    /// The engine's next timeout; the heap entry carrying this exact instant is the live one.
    next_timeout: Option<Instant>,
}

struct Driver {
    /// Shared with the `Listener`: what [`Listener::stats`] reports.
    stats: Arc<ListenerCounters>,
    keys: DerivedKeys,
    sctp: SctpParams,
    admission: Admission,
    /// Per-source budget of failed integrity checks (shared rule: `oneway_core::admission`).
    limiter: SourceLimiter,
    local_addrs: Vec<SocketAddr>,
    cert: RTCCertificate,
    listener_fp: [u8; 32],
    /// See [`ListenerConfig::consent_timeout`].
    consent_timeout: Duration,
    /// Keyed by locally assigned numbers: a cheap key, not chosen by an attacker.
    peers: HashMap<u64, Slot>,
    /// Keyed by dialer address (attacker-chosen): std `HashMap` with SipHash.
    by_addr: HashMap<SocketAddr, u64>,
    /// Keyed by composed listener ufrag (attacker-chosen): std `HashMap` with SipHash.
    by_ufrag: HashMap<String, u64>,
    /// Engine timeouts, earliest first. Entries whose instant no longer equals their slot's
    /// `next_timeout` are stale and skipped; the heap is rebuilt when stale ones pile up.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    next_key: u64,
    commands_tx: mpsc::UnboundedSender<(u64, Command)>,
    incoming_tx: mpsc::Sender<Connection>,
    events_tx: mpsc::Sender<ListenerEvent>,
    guard: Weak<DriverGuard>,
}

impl Driver {
    async fn run(
        mut self,
        mut sockets: Sockets,
        guard: tokio::sync::oneshot::Receiver<Weak<DriverGuard>>,
        mut commands: mpsc::UnboundedReceiver<(u64, Command)>,
    ) {
        let Ok(guard) = guard.await else {
            return;
        };
        self.guard = guard;
        loop {
            let now = Instant::now();
            let deadline = self
                .timers
                .peek()
                .map(|Reverse((t, _))| *t)
                .into_iter()
                .chain(self.admission.next_deadline())
                .min()
                .unwrap_or(now + HOUSEKEEPING)
                .min(now + HOUSEKEEPING);
            tokio::select! {
                received = sockets.recv() => match received {
                    Some(d) => self.on_datagram(&sockets, Instant::now(), d),
                    None => return,
                },
                command = commands.recv() => match command {
                    Some((key, command)) => self.on_command(&sockets, key, command),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timeout(&sockets),
            }
            self.publish_stats();
        }
    }

    fn publish_stats(&self) {
        self.stats.publish(ListenerState {
            engines: self.peers.len(),
            pending: self.admission.pending(),
            connections: self.admission.connections(),
            routes: self.by_addr.len() + self.by_ufrag.len(),
            limited_sources: self.limiter.tracked(),
        });
    }

    fn on_datagram(&mut self, sockets: &Sockets, now: Instant, d: Datagram) {
        // §4.3 step 1: a known 5-tuple.
        if let Some(key) = self.by_addr.get(&d.source).copied() {
            self.feed(sockets, now, key, &d);
            return;
        }
        if !self.limiter.allows(now, d.source.ip()) {
            // This source used up its budget of failed checks: no HMAC for it until it refills.
            tracing::trace!(source = %d.source, code = "rate-limited", "datagram dropped");
            self.stats.rate_limited();
            return;
        }
        let creds = ListenerCreds::from(&self.keys);
        let by_ufrag = &self.by_ufrag;
        match demux::classify(&d.contents, creds, |u| by_ufrag.contains_key(u)) {
            Ok(Routed::Known { listener_ufrag }) => {
                // Step 2: a known dialer checking from another address. Every engine's local
                // pwd is the listener pwd (it survives ICE restarts), so integrity is checked
                // here before the new address is remembered.
                let verified = demux::BindingRequest::parse(&d.contents)
                    .and_then(|r| r.check_integrity(&self.keys.listener_pwd));
                let Some(key) = self.by_ufrag.get(&listener_ufrag).copied() else {
                    return;
                };
                match verified {
                    Ok(()) => {
                        self.route(key, d.source);
                        self.feed(sockets, now, key, &d);
                    }
                    Err(e) => {
                        self.limiter.failed(now, d.source.ip());
                        self.stats.dropped(&e);
                        tracing::debug!(source = %d.source, code = e.code(), "check dropped: {e}")
                    }
                }
            }
            Ok(Routed::NewDialer(dialer)) => self.new_dialer(sockets, now, &d, dialer),
            Ok(_) => {}
            Err(e) => {
                if e == demux::Dropped::BadIntegrity {
                    self.limiter.failed(now, d.source.ip());
                }
                self.stats.dropped(&e);
                tracing::trace!(source = %d.source, code = e.code(), "datagram dropped: {e}")
            }
        }
    }

    fn new_dialer(&mut self, sockets: &Sockets, now: Instant, d: &Datagram, dialer: NewDialer) {
        if let Err(refusal) = self.admission.admit(now, unix_now(), d.source) {
            self.refused(d.source, &refusal);
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let slot = match self.new_slot(now, d, &dialer) {
            Ok(slot) => slot,
            Err(e) => {
                self.admission.abandoned(d.source);
                tracing::warn!(source = %d.source, error = %e, "could not create an engine");
                return;
            }
        };
        self.by_ufrag.insert(slot.local_ufrag.clone(), key);
        self.by_addr.insert(d.source, key);
        self.peers.insert(key, slot);
        self.event(ListenerEvent::Admitted { peer: d.source });
        self.feed(sockets, now, key, d);
    }

    fn new_slot(&self, now: Instant, d: &Datagram, dialer: &NewDialer) -> Result<Slot, StackError> {
        let settings = SettingEngineBuilder::new()
            .with_ice_credentials(
                dialer.listener_ufrag.clone(),
                self.keys.listener_pwd.clone(),
            )
            .with_lite(true)
            // The dialer's certificate is unknown in advance: the in-band proof authenticates it.
            .with_disable_certificate_fingerprint_verification(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_ice_timeouts(
                Some(self.consent_timeout / 6),
                Some(self.consent_timeout - self.consent_timeout / 6),
                None,
            )
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_certificates(vec![self.cert.clone()])
                    .build(),
            )
            .with_setting_engine(settings)
            .with_media_engine(crate::engine::media_engine()?)
            .build(now)
            .map_err(rtc_error("peer connection"))?;
        let ctrl = pc
            .create_data_channel(CONTROL_LABEL, Some(control_channel_init()))
            .map_err(rtc_error("channel 0"))?
            .id();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut engine = Engine::new(
            pc,
            Role::Listener,
            Negotiation::Listener {
                remote: d.source,
                sctp: self.sctp,
                local_ice: (
                    dialer.listener_ufrag.clone(),
                    self.keys.listener_pwd.clone(),
                ),
            },
            self.keys.auth_key,
            self.listener_fp,
            self.listener_fp,
            ctrl,
            now,
            events_tx,
        );
        engine.answer_implied_offer(now, &dialer.dialer_ufrag, &dialer.dialer_pwd)?;
        for local in &self.local_addrs {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: local.ip().to_string(),
                    port: local.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()
            .map_err(rtc_error("host candidate"))?;
            let init = RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(rtc_error("host candidate"))?;
            engine.add_local_candidate(init)?;
        }
        Ok(Slot {
            engine,
            remote: d.source,
            addrs: VecDeque::from([d.source]),
            local_ufrag: dialer.listener_ufrag.clone(),
            events: Some(events_rx),
            next_timeout: None,
        })
    }

    fn feed(&mut self, sockets: &Sockets, now: Instant, key: u64, d: &Datagram) {
        if let Some(slot) = self.peers.get_mut(&key) {
            slot.engine
                .handle_datagram(now, d.source, d.destination, &d.contents);
        }
        self.service(sockets, now, key);
    }

    fn on_command(&mut self, sockets: &Sockets, key: u64, command: Command) {
        let now = Instant::now();
        match self.peers.get_mut(&key) {
            Some(slot) => slot.engine.handle_command(now, command),
            None => drop(command),
        }
        self.service(sockets, now, key);
    }

    fn on_timeout(&mut self, sockets: &Sockets) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let live = self
                .peers
                .get(&key)
                .is_some_and(|s| s.next_timeout == Some(at));
            if !live {
                continue;
            }
            if let Some(slot) = self.peers.get_mut(&key) {
                slot.next_timeout = None;
                slot.engine.handle_timeout(now);
            }
            self.service(sockets, now, key);
        }
        for addr in self.admission.expire(now) {
            let timeout = self.admission.limits().pending_timeout;
            // Routing never forgets the address admission knows a dialer by.
            if let Some(key) = self.by_addr.get(&addr).copied() {
                // Removed before the event, so whoever sees the event sees the state after it.
                self.remove(key);
                self.refused(addr, &Refusal::ProofTimeout(timeout));
            }
        }
    }

    /// Polls one engine, sends its datagrams, schedules its timeout, acts on its notices.
    fn service(&mut self, sockets: &Sockets, now: Instant, key: u64) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let (outgoing, next) = slot.engine.poll(now);
        if next != slot.next_timeout {
            slot.next_timeout = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, key)));
            }
        }
        // Published before sending, so whoever sees an answer also sees the state behind it.
        self.publish_stats();
        for o in outgoing {
            sockets.send(o.source, o.destination, &o.contents);
        }
        self.compact_timers();
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let remote = slot.remote;
        for notice in slot.engine.take_notices() {
            match notice {
                Notice::IceConnected => self.progress(remote, Progress::IceConnected),
                Notice::DtlsConnected => self.progress(remote, Progress::DtlsConnected),
                Notice::ChannelOpen => self.progress(remote, Progress::ChannelOpen),
                Notice::DialerProven => self.admit_proven(sockets, now, key),
                Notice::Authenticated => {}
                Notice::Closed { code, reason } => {
                    let authenticated = self
                        .peers
                        .get(&key)
                        .is_some_and(|s| s.engine.is_authenticated());
                    // Removed before the event, so whoever sees the event also sees the
                    // listener without this engine (`Listener::stats`).
                    self.remove(key);
                    if authenticated {
                        self.admission.closed();
                        self.event(ListenerEvent::Closed { peer: remote, code });
                    } else {
                        self.admission.abandoned(remote);
                        self.event(ListenerEvent::Refused {
                            peer: remote,
                            code,
                            reason,
                        });
                    }
                    return;
                }
            }
        }
    }

    /// Rebuilds the timer heap from the live timeouts once stale entries outnumber them.
    fn compact_timers(&mut self) {
        if self.timers.len() <= 4 * self.peers.len() + 64 {
            return;
        }
        self.timers = self
            .peers
            .iter()
            .filter_map(|(key, s)| s.next_timeout.map(|at| Reverse((at, *key))))
            .collect();
    }

    /// The dialer proved the secret. Admission and a place in the accept queue are settled
    /// before the engine answers with the listener's proof (`spec/handshake.md` §5.2).
    fn admit_proven(&mut self, sockets: &Sockets, now: Instant, key: u64) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let remote = slot.remote;
        let permit = match self.incoming_tx.clone().try_reserve_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let reason = "the application's accept queue is full".to_owned();
                tracing::warn!(peer = %remote, "{reason}; refusing");
                slot.engine.reject(now, "accept-queue-full", reason);
                self.service(sockets, now, key);
                return;
            }
        };
        if let Err(refusal) = self.admission.authenticated(remote) {
            slot.engine.reject(now, refusal.code(), refusal.to_string());
            self.service(sockets, now, key);
            return;
        }
        slot.engine.admit(now);
        let (Some(events), Some(guard)) = (slot.events.take(), self.guard.upgrade()) else {
            return;
        };
        permit.send(Connection::new(
            key,
            self.commands_tx.clone(),
            events,
            ConnectionInfo {
                timings: slot.engine.timings.clone(),
                selected: slot.engine.selected,
                tried: Vec::new(),
            },
            guard,
        ));
        self.progress(remote, Progress::Authenticated);
        self.service(sockets, now, key);
    }

    /// Routes `addr` to the engine `key`, forgetting that engine's oldest address if it has
    /// [`MAX_ADDRESSES_PER_DIALER`](oneway_core::admission::MAX_ADDRESSES_PER_DIALER) already.
    fn route(&mut self, key: u64, addr: SocketAddr) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(old) = route_dialer_address(&mut self.by_addr, &mut slot.addrs, key, addr) {
            tracing::debug!(%old, "too many addresses for one dialer; oldest forgotten");
        }
    }

    fn remove(&mut self, key: u64) {
        if let Some(slot) = self.peers.remove(&key) {
            self.by_ufrag.remove(&slot.local_ufrag);
            for addr in &slot.addrs {
                if self.by_addr.get(addr) == Some(&key) {
                    self.by_addr.remove(addr);
                }
            }
        }
    }

    fn refused(&mut self, peer: SocketAddr, refusal: &Refusal) {
        tracing::info!(%peer, code = refusal.code(), "dialer refused: {refusal}");
        self.event(ListenerEvent::Refused {
            peer,
            code: refusal.code(),
            reason: refusal.to_string(),
        });
    }

    fn progress(&mut self, peer: SocketAddr, progress: Progress) {
        self.event(ListenerEvent::Progress { peer, progress });
    }

    fn event(&mut self, event: ListenerEvent) {
        self.publish_stats();
        // A slow reader loses events, never connections.
        let _ = self.events_tx.try_send(event);
    }
}
