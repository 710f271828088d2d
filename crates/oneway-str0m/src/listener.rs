//! The one-way listener: one UDP socket per address family serving every dialer, one `Rtc` per
//! dialer, STUN demultiplexed by the token part of the USERNAME (`spec/handshake.md` §4).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oneway_core::admission::{
    Admission, AdmissionLimits, Refusal, SourceLimiter, SourceRateLimit, route_dialer_address,
};
use oneway_core::demux::{self, Dropped, ListenerCreds, Routed};
use oneway_token::{Candidate, DerivedKeys, Fingerprint, Profile, Secret, Token};
use rand::RngCore;
use sha2::{Digest, Sha256};
use str0m::config::DtlsCert;
use str0m::{Candidate as RtcCandidate, IceCreds};
use tokio::sync::mpsc;

use crate::connection::{Connection, ConnectionEvent, ConnectionInfo, DriverGuard};
use crate::net::{AddressScope, Datagram, Socket, SocketSet, host_addresses};
use crate::peer::{Command, Notice, Peer, Role};
use crate::{Progress, StackError};

/// Default for [`ListenerConfig::accept_queue`].
pub const DEFAULT_ACCEPT_QUEUE: usize = 1024;
/// How many listener events may wait for [`Listener::next_event`]; older ones are dropped.
pub const EVENT_QUEUE: usize = 1024;
/// Longest the driver sleeps without checking deadlines.
const HOUSEKEEPING: Duration = Duration::from_millis(500);
/// Most queued commands the driver takes in one wake.
const COMMAND_BATCH: usize = 64;

/// How a listener binds, what it advertises, and its token policy.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// IPv4 socket address (`0.0.0.0:0` by default); `None` disables IPv4.
    pub bind_v4: Option<SocketAddr>,
    /// IPv6 socket address (`[::]:0` by default); `None` disables IPv6.
    pub bind_v6: Option<SocketAddr>,
    /// Which local addresses become host candidates.
    pub scope: AddressScope,
    /// Extra candidates advertised first (e.g. a forwarded port), in order.
    pub extra_candidates: Vec<Candidate>,
    /// A STUN server to learn each socket's server-reflexive (NAT-mapped) address from; it is
    /// advertised after the host candidates.
    pub stun: Option<SocketAddr>,
    /// Token lifetime; `None` means no expiry.
    pub ttl: Option<Duration>,
    /// Accept only the first dialer that proves the secret.
    pub single_use: bool,
    /// A label shown to dialers.
    pub label: Option<String>,
    /// Advertise host addresses as mDNS `<uuid>.local` names (published while the listener
    /// lives) instead of IP literals.
    pub mdns: bool,
    /// Bounds on unauthenticated and authenticated state.
    pub limits: AdmissionLimits,
    /// Per-source budget of checks failing MESSAGE-INTEGRITY (`spec/security.md` §4).
    pub source_rate_limit: SourceRateLimit,
    /// How many authenticated connections may wait for [`Listener::accept`]; a dialer proven
    /// while it is full is refused with `accept-queue-full` before it is told it is connected.
    pub accept_queue: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind_v4: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            bind_v6: Some(SocketAddr::from(([0u16; 8], 0))),
            scope: AddressScope::Interfaces,
            extra_candidates: Vec::new(),
            stun: None,
            ttl: None,
            single_use: false,
            label: None,
            mdns: false,
            limits: AdmissionLimits::default(),
            source_rate_limit: SourceRateLimit::default(),
            accept_queue: DEFAULT_ACCEPT_QUEUE,
        }
    }
}

impl ListenerConfig {
    /// A listener on loopback only, for tests and single-machine use.
    pub fn loopback() -> Self {
        ListenerConfig {
            bind_v4: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            bind_v6: None,
            scope: AddressScope::LoopbackOnly,
            ..Default::default()
        }
    }
}

pub use oneway_connection::ListenerEvent;

pub use oneway_connection::ListenerStats;
use oneway_connection::{ListenerCounters, ListenerState};

/// A listening one-way endpoint.
#[derive(Debug)]
pub struct Listener {
    token: Token,
    stats: Arc<ListenerCounters>,
    local_addrs: Vec<SocketAddr>,
    incoming: mpsc::Receiver<Connection>,
    events: mpsc::Receiver<ListenerEvent>,
    /// Keeps the mDNS names published while the listener lives.
    _mdns: Option<crate::mdns::MdnsPublisher>,
    _driver: Arc<DriverGuard>,
}

impl Listener {
    /// Binds the sockets, gathers host candidates, issues a `native` token and starts serving.
    /// Must be called inside a tokio runtime.
    pub async fn bind(config: ListenerConfig) -> Result<Listener, StackError> {
        let mut sockets: Vec<Socket> = Vec::new();
        for addr in [config.bind_v4, config.bind_v6].into_iter().flatten() {
            match Socket::bind(addr) {
                Ok(s) => sockets.push(s),
                // IPv6 may be disabled on the machine; IPv4 alone still serves.
                Err(e) if addr.is_ipv6() && !sockets.is_empty() => {
                    tracing::info!(%addr, error = %e, "IPv6 socket unavailable; serving IPv4 only");
                }
                Err(e) => return Err(StackError::Io(format!("binding {addr}: {e}"))),
            }
        }
        if sockets.is_empty() {
            return Err(StackError::Config(
                "no socket to bind: enable IPv4 or IPv6".to_owned(),
            ));
        }

        let mut hosts: Vec<SocketAddr> = Vec::new();
        let addresses = host_addresses(config.scope)
            .map_err(|e| StackError::Io(format!("listing interfaces: {e}")))?;
        for socket in &sockets {
            let local = socket.local_addr();
            if !local.ip().is_unspecified() {
                hosts.push(local);
                continue;
            }
            for ip in addresses
                .iter()
                .filter(|ip| ip.is_ipv4() == local.is_ipv4())
            {
                hosts.push(SocketAddr::new(*ip, local.port()));
            }
        }

        let mut candidates = config.extra_candidates.clone();
        let mdns = if config.mdns {
            let publisher = crate::mdns::MdnsPublisher::publish(&hosts)?;
            candidates.extend(publisher.names().iter().map(|(addr, uuid)| Candidate {
                address: oneway_token::CandidateAddress::Mdns(*uuid),
                ..Candidate::udp_host(addr.ip(), addr.port())
            }));
            Some(publisher)
        } else {
            candidates.extend(hosts.iter().map(|a| Candidate::udp_host(a.ip(), a.port())));
            None
        };
        if let Some(server) = config.stun {
            let socket = sockets
                .iter()
                .find(|s| s.local_addr().is_ipv4() == server.is_ipv4())
                .ok_or_else(|| {
                    StackError::Config(format!(
                        "no socket of the STUN server's address family ({server})"
                    ))
                })?;
            let mapped = server_reflexive(socket, server).await?;
            if hosts.contains(&mapped) {
                tracing::info!(%mapped, "STUN: no NAT in front of this socket; no srflx candidate needed");
            } else {
                candidates.push(Candidate {
                    kind: oneway_token::CandidateType::ServerReflexive,
                    ..Candidate::udp_host(mapped.ip(), mapped.port())
                });
            }
        }
        candidates.truncate(oneway_token::MAX_CANDIDATES);
        if candidates.is_empty() {
            return Err(StackError::Config(
                "no address to advertise: the machine has no usable interface (try loopback)"
                    .to_owned(),
            ));
        }

        let provider = str0m::crypto::from_feature_flags();
        let cert: DtlsCert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| {
                StackError::Config("str0m could not generate a DTLS certificate".to_owned())
            })?;
        let fingerprint = Fingerprint(Sha256::digest(&cert.certificate).into());
        let mut secret = [0u8; 16];
        rand::rng().fill_bytes(&mut secret);
        let mut token = Token::new(Profile::Native, fingerprint, Secret(secret), candidates);
        token.single_use = config.single_use;
        token.label = config.label.clone();
        token.expires_at = config.ttl.map(|ttl| unix_now() + ttl.as_secs().max(1));
        token
            .validate()
            .map_err(|e| StackError::Config(format!("token: {e}")))?;

        let (incoming_tx, incoming) = mpsc::channel(config.accept_queue.max(1));
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let sockets = Arc::new(SocketSet::new(sockets));
        let local_addrs = sockets.local_addrs();
        let stats = Arc::new(ListenerCounters::default());
        let driver = Driver {
            stats: Arc::clone(&stats),
            keys: token.derive(),
            admission: Admission::new(&token, config.limits.clone()),
            limiter: SourceLimiter::new(config.source_rate_limit.clone()),
            sockets,
            hosts,
            cert,
            listener_fp: fingerprint.0,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            next_key: 1,
            commands_tx,
            incoming_tx,
            events_tx,
            guard: Weak::new(),
            outbox: Vec::new(),
        };
        let (guard_tx, guard_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(driver.run(guard_rx, commands_rx));
        let guard = Arc::new(DriverGuard::new(handle.abort_handle()));
        let _ = guard_tx.send(Arc::downgrade(&guard));
        Ok(Listener {
            token,
            stats,
            local_addrs,
            incoming,
            events,
            _mdns: mdns,
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

/// Asks `server` which address `socket` appears from (RFC 8489 Binding, XOR-MAPPED-ADDRESS).
async fn server_reflexive(socket: &Socket, server: SocketAddr) -> Result<SocketAddr, StackError> {
    let stun = |e: oneway_core::stun_client::StunClientError| {
        StackError::Io(format!("STUN server {server}: {e}"))
    };
    for _ in 0..STUN_TRIES {
        let request = oneway_core::stun_client::BindingRequest::new().map_err(stun)?;
        let unspecified = SocketAddr::new(socket.local_addr().ip(), 0);
        socket
            .send(unspecified, server, &request.bytes)
            .map_err(|e| StackError::Io(format!("STUN request to {server}: {e}")))?;
        let deadline = tokio::time::Instant::now() + STUN_TRY_TIMEOUT;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv()).await {
            let Ok(d) = received else { continue };
            if d.source != server {
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
    peer: Peer,
    remote: SocketAddr,
    /// Every address routed to this engine (`by_addr`), oldest first, at most
    /// [`MAX_ADDRESSES_PER_DIALER`](oneway_core::admission::MAX_ADDRESSES_PER_DIALER).
    addrs: VecDeque<SocketAddr>,
    local_ufrag: String,
    events: Option<mpsc::UnboundedReceiver<ConnectionEvent>>,
    next_timeout: Option<Instant>,
}

struct Driver {
    stats: Arc<ListenerCounters>,
    keys: DerivedKeys,
    admission: Admission,
    limiter: SourceLimiter,
    sockets: Arc<SocketSet>,
    hosts: Vec<SocketAddr>,
    cert: DtlsCert,
    listener_fp: [u8; 32],
    /// Keyed by locally assigned numbers: a cheap key, not chosen by an attacker.
    peers: HashMap<u64, Slot>,
    /// Keyed by dialer address (attacker-chosen): std `HashMap` with SipHash.
    by_addr: HashMap<SocketAddr, u64>,
    /// Keyed by composed listener ufrag (attacker-chosen): std `HashMap` with SipHash.
    by_ufrag: HashMap<String, u64>,
    next_key: u64,
    commands_tx: mpsc::UnboundedSender<(u64, Command)>,
    incoming_tx: mpsc::Sender<Connection>,
    events_tx: mpsc::Sender<ListenerEvent>,
    /// Shared with the `Listener` and every connection: the task runs until all are dropped.
    guard: Weak<DriverGuard>,
    /// Datagrams of this wake, sent together at its end (GSO runs: [`SocketSet::send_batch`]).
    outbox: Vec<crate::peer::Outgoing>,
}

impl Driver {
    async fn run(
        mut self,
        guard: tokio::sync::oneshot::Receiver<Weak<DriverGuard>>,
        mut commands: mpsc::UnboundedReceiver<(u64, Command)>,
    ) {
        let Ok(guard) = guard.await else {
            return;
        };
        self.guard = guard;
        let sockets = Arc::clone(&self.sockets);
        loop {
            let now = Instant::now();
            let deadline = self
                .peers
                .values()
                .filter_map(|s| s.next_timeout)
                .chain(self.admission.next_deadline())
                .min()
                .unwrap_or(now + HOUSEKEEPING)
                .min(now + HOUSEKEEPING);
            tokio::select! {
                received = sockets.recv_batch() => match received {
                    Ok(batch) => {
                        for d in batch {
                            self.on_datagram(Instant::now(), d);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "receive failed"),
                },
                command = commands.recv() => match command {
                    Some((key, command)) => {
                        self.on_command(key, command);
                        // Commands sent meanwhile (a burst of sends) are taken in the same wake.
                        for _ in 1..COMMAND_BATCH {
                            let Ok((key, command)) = commands.try_recv() else { break };
                            self.on_command(key, command);
                        }
                    }
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timeout(),
            }
            self.publish_stats();
            self.sockets.send_batch(&self.outbox);
            self.outbox.clear();
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

    fn on_datagram(&mut self, now: Instant, d: Datagram) {
        if let Some(key) = self.by_addr.get(&d.source).copied() {
            self.feed(now, key, &d);
            return;
        }
        if !self.limiter.allows(now, d.source.ip()) {
            // This source used up its budget of failed checks: no HMAC for it until it refills.
            tracing::trace!(source = %d.source, code = "rate-limited", "datagram dropped");
            self.stats.rate_limited();
            return;
        }
        // §4.3 steps 2 to 4, shared by every stack: `oneway_core::demux`.
        let by_ufrag = &self.by_ufrag;
        let routed = demux::classify(&d.contents, ListenerCreds::from(&self.keys), |ufrag| {
            by_ufrag.contains_key(ufrag)
        });
        let dialer = match routed {
            Ok(Routed::Known { listener_ufrag }) => {
                // A known dialer checking from another of its addresses: its engine checks
                // integrity with the credentials in force (they change on an ICE restart).
                let Some(key) = self.by_ufrag.get(&listener_ufrag).copied() else {
                    return;
                };
                let accepted = self
                    .peers
                    .get(&key)
                    .is_some_and(|s| s.peer.accepts(now, d.source, d.destination, &d.contents));
                if accepted {
                    self.route(key, d.source);
                    self.feed(now, key, &d);
                }
                return;
            }
            Ok(Routed::NewDialer(dialer)) => dialer,
            Ok(_) => return,
            Err(e) => {
                // Only token holders get a response: no reply, no state.
                tracing::trace!(source = %d.source, code = e.code(), "datagram dropped: {e}");
                if e == Dropped::BadIntegrity {
                    self.limiter.failed(now, d.source.ip());
                }
                self.stats.dropped(&e);
                return;
            }
        };
        if let Err(refusal) = self.admission.admit(now, unix_now(), d.source) {
            self.refused(d.source, &refusal);
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let slot = match self.new_slot(
            now,
            d.source,
            &dialer.listener_ufrag,
            &dialer.dialer_ufrag,
            &dialer.dialer_pwd,
        ) {
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
        self.feed(now, key, &d);
    }

    fn new_slot(
        &self,
        now: Instant,
        remote: SocketAddr,
        local_ufrag: &str,
        dialer_ufrag: &str,
        dialer_pwd: &str,
    ) -> Result<Slot, StackError> {
        let mut rtc = crate::peer::rtc_builder(remote.ip().is_loopback())
            .set_ice_lite(true)
            .set_dtls_cert(self.cert.clone())
            .set_fingerprint_verification(false)
            .set_local_ice_credentials(IceCreds {
                ufrag: local_ufrag.to_owned(),
                pass: self.keys.listener_pwd.clone(),
            })
            .build(now);
        for host in &self.hosts {
            let candidate = RtcCandidate::host(*host, "udp")
                .map_err(|e| StackError::Rtc(format!("host candidate {host}: {e}")))?;
            rtc.add_local_candidate(candidate);
        }
        let mut api = rtc.direct_api();
        api.set_ice_controlling(false);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: dialer_ufrag.to_owned(),
            pass: dialer_pwd.to_owned(),
        });
        // The dialer's certificate is unknown in advance (verification is off): the in-band
        // proof authenticates it. str0m wants some remote fingerprint before DTLS starts.
        api.set_remote_fingerprint(str0m::config::Fingerprint {
            hash_func: "sha-256".to_owned(),
            bytes: vec![0; 32],
        });
        api.start_dtls(false)
            .map_err(|e| StackError::Rtc(e.to_string()))?;
        api.start_sctp(false);
        let ctrl = api.create_data_channel(Peer::control_channel_config());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let peer = Peer::new(
            rtc,
            Role::Listener,
            self.keys.auth_key,
            self.listener_fp,
            ctrl,
            now,
            events_tx,
        );
        Ok(Slot {
            peer,
            remote,
            addrs: VecDeque::from([remote]),
            local_ufrag: local_ufrag.to_owned(),
            events: Some(events_rx),
            next_timeout: Some(now),
        })
    }

    fn feed(&mut self, now: Instant, key: u64, d: &Datagram) {
        if let Some(slot) = self.peers.get_mut(&key) {
            slot.peer
                .handle_datagram(now, d.source, d.destination, &d.contents);
        }
        self.service(now, key);
    }

    fn on_command(&mut self, key: u64, command: Command) {
        let now = Instant::now();
        match self.peers.get_mut(&key) {
            Some(slot) => slot.peer.handle_command(now, command),
            None => drop(command),
        }
        self.service(now, key);
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, s)| s.next_timeout.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(slot) = self.peers.get_mut(&key) {
                slot.peer.handle_timeout(now);
            }
            self.service(now, key);
        }
        for addr in self.admission.expire(now) {
            let timeout = self.admission.limits().pending_timeout;
            // Routing never forgets the address admission knows a dialer by.
            if let Some(key) = self.by_addr.get(&addr).copied() {
                self.remove(key);
                self.refused(addr, &Refusal::ProofTimeout(timeout));
            }
        }
    }

    /// Polls one engine, sends its datagrams, acts on its notices.
    fn service(&mut self, now: Instant, key: u64) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let (outgoing, next) = slot.peer.poll(now);
        slot.next_timeout = next;
        // Published before sending (at the end of the wake), so whoever sees an answer also
        // sees the state behind it.
        self.publish_stats();
        self.outbox.extend(outgoing);
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let remote = slot.remote;
        for notice in slot.peer.take_notices() {
            match notice {
                Notice::IceConnected => self.progress(remote, Progress::IceConnected),
                Notice::DtlsConnected => self.progress(remote, Progress::DtlsConnected),
                Notice::ChannelOpen => self.progress(remote, Progress::ChannelOpen),
                Notice::DialerProven => self.admit_proven(now, key),
                // Already handed to the application by `admit_proven`.
                Notice::Authenticated => {}
                Notice::Closed { code, reason } => {
                    let authenticated = self
                        .peers
                        .get(&key)
                        .is_some_and(|s| s.peer.is_authenticated());
                    // State first, then the event: whoever sees the event sees the state.
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

    /// The dialer proved the secret. Admission (single use, limits) and a free place in the
    /// accept queue are both settled *before* the engine answers with the listener's proof, so a
    /// dialer told it is connected is always handed to the application: nothing is dropped
    /// after the fact.
    fn admit_proven(&mut self, now: Instant, key: u64) {
        let Some(slot) = self.peers.get_mut(&key) else {
            return;
        };
        let remote = slot.remote;
        let permit = match self.incoming_tx.clone().try_reserve_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let reason = "the application's accept queue is full".to_owned();
                tracing::warn!(peer = %remote, "{reason}; refusing");
                slot.peer.reject(now, "accept-queue-full", reason);
                self.admission.abandoned(remote);
                self.service(now, key);
                return;
            }
        };
        if let Err(refusal) = self.admission.authenticated(remote) {
            slot.peer.reject(now, refusal.code(), refusal.to_string());
            self.service(now, key);
            return;
        }
        slot.peer.admit(now);
        let (Some(events), Some(guard)) = (slot.events.take(), self.guard.upgrade()) else {
            return;
        };
        permit.send(Connection::new(
            key,
            self.commands_tx.clone(),
            events,
            ConnectionInfo {
                timings: slot.peer.timings.clone(),
                selected: slot.peer.selected,
                tried: Vec::new(),
            },
            guard,
        ));
        self.progress(remote, Progress::Authenticated);
        self.service(now, key);
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
