//! The one-way listener shell: one UDP socket per address family serving every dialer, one
//! engine per dialer, STUN demultiplexed by the token part of the USERNAME
//! (`spec/handshake.md` §4), admission and routing, for any [`Stack`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use oneway_connection::{
    Command, Connection, ConnectionEvent, ConnectionInfo, DriverGuard, ListenerCounters,
    ListenerState, Progress, Route, StackError,
};
use oneway_core::admission::{
    Admission, AdmissionLimits, Refusal, SourceLimiter, SourceRateLimit, route_dialer_address,
};
use oneway_core::demux::{self, Dropped, ListenerCreds, NewDialer, Routed};
use oneway_core::punch::{PunchLimits, PunchRefusal, PunchTarget, Puncher};
use oneway_portmap::{MappingHandle, PortmapError, Reachability};
use oneway_token::{
    Candidate, CandidateAddress, CandidateType, DerivedKeys, Fingerprint, MappedCandidate,
    MappingProtocol, Profile, SctpParams, Secret, Token,
};
use rand::RngCore;
use tokio::sync::{mpsc, oneshot};

use crate::engine::{Engine, ListenerEngineParams, Notice, Stack, Transmit};
use crate::gather::{host_candidates, unix_now};
use crate::net::{AddressScope, Datagram, Socket, SocketSet};
use crate::reach::{PortMapping, learn};
use crate::reply::{ReplyRefusal, punch_target};

pub use oneway_connection::{ListenerEvent, ListenerStats};

/// Default for [`ListenerConfig::accept_queue`].
pub const DEFAULT_ACCEPT_QUEUE: usize = 1024;
/// How many listener events may wait for [`Listener::next_event`]; older ones are dropped.
pub const EVENT_QUEUE: usize = 1024;
/// Default for [`ListenerConfig::consent_timeout`]: RFC 7675's 30 s.
pub const DEFAULT_CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
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
    /// advertised after the host and port-mapped candidates. When the server has a second
    /// address (RFC 5780 OTHER-ADDRESS) it also tells how the NAT filters.
    pub stun: Option<SocketAddr>,
    /// When to ask the router for a port mapping (PCP, NAT-PMP, UPnP-IGD; IPv6 pinholes by PCP):
    /// a granted mapping is advertised after the host candidates, before the STUN one.
    pub port_mapping: PortMapping,
    /// The router to ask for the mapping; `None`: the next hop of the default route of the
    /// socket's address family.
    pub portmap_gateway: Option<std::net::IpAddr>,
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
    /// How long a dialer may stay silent (no check, no data) before its engine ends: with
    /// `consent-lost` once authenticated. RFC 7675 consent freshness:
    /// [`DEFAULT_CONSENT_TIMEOUT`]. Engines whose stack fixes part of it (str0m's ICE-lite
    /// side reports a silent dialer after 15 s) wait the rest.
    pub consent_timeout: Duration,
    /// Announce and serve the stack's fast path (`fast` token extension, `spec/handshake.md`
    /// §5.4), when the stack has one. On by default; off keeps the standard handshake only.
    pub fast_path: bool,
    /// The bounds on punching towards dialers whose reply codes the listener takes
    /// ([`Listener::take_reply`], `spec/security.md` §4.1).
    pub punch_limits: PunchLimits,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            bind_v4: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            bind_v6: Some(SocketAddr::from(([0u16; 8], 0))),
            scope: AddressScope::Interfaces,
            extra_candidates: Vec::new(),
            stun: None,
            port_mapping: PortMapping::Off,
            portmap_gateway: None,
            ttl: None,
            single_use: false,
            label: None,
            mdns: false,
            limits: AdmissionLimits::default(),
            source_rate_limit: SourceRateLimit::default(),
            accept_queue: DEFAULT_ACCEPT_QUEUE,
            consent_timeout: DEFAULT_CONSENT_TIMEOUT,
            fast_path: true,
            punch_limits: PunchLimits::default(),
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

/// A listening one-way endpoint on stack `S`.
#[derive(Debug)]
pub struct Listener<S: Stack> {
    token: Token,
    stats: Arc<ListenerCounters>,
    local_addrs: Vec<SocketAddr>,
    incoming: mpsc::Receiver<Connection>,
    events: mpsc::Receiver<ListenerEvent>,
    /// Keeps the mDNS names published while the listener lives.
    _mdns: Option<crate::mdns::MdnsPublisher>,
    /// From where the listener can be reached, and why.
    reachability: Reachability,
    /// The port mappings asked for (kept, renewed, and deleted when dropped).
    port_mappings: Vec<Result<MappingHandle, PortmapError>>,
    /// Verified reply codes to the driver, which punches (or refuses) and answers.
    replies: mpsc::Sender<(PunchTarget, oneshot::Sender<Result<(), PunchRefusal>>)>,
    keys: DerivedKeys,
    _driver: Arc<DriverGuard>,
    _stack: PhantomData<fn() -> S>,
}

impl<S: Stack> Listener<S> {
    /// Binds the sockets, gathers host candidates, issues a `native` token and starts serving.
    /// Must be called inside a tokio runtime.
    pub async fn bind(config: ListenerConfig) -> Result<Listener<S>, StackError> {
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

        let hosts = host_candidates(&sockets, config.scope)?;

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
        // STUN, port mapping and filtering discovery, concurrently (`reach`).
        let learned = learn(
            &sockets,
            &hosts,
            config.stun,
            config.port_mapping,
            config.portmap_gateway,
        )
        .await?;
        let mut mapped = Vec::new();
        for m in learned.granted() {
            // A mapping at a router behind another NAT reaches nobody outside it
            // (`spec/handshake.md` §4.1.1); the reachability report says why.
            if !oneway_portmap::is_public(m.external.ip()) {
                tracing::info!(external = %m.external, "mapped address is not public; not advertised");
                continue;
            }
            let protocol = match m.protocol {
                oneway_portmap::Protocol::Pcp => MappingProtocol::Pcp,
                oneway_portmap::Protocol::NatPmp => MappingProtocol::NatPmp,
                oneway_portmap::Protocol::Upnp => MappingProtocol::UpnpIgd,
            };
            // An IPv6 pinhole keeps the address: the host candidate itself is what opened.
            let at = match candidates.iter().position(|c| {
                c.kind == CandidateType::Host
                    && c.address == CandidateAddress::Ip(m.external.ip())
                    && c.port == m.external.port()
            }) {
                Some(at) if m.external.is_ipv6() => at,
                Some(_) => continue,
                None => {
                    candidates.push(Candidate {
                        kind: CandidateType::ServerReflexive,
                        ..Candidate::udp_host(m.external.ip(), m.external.port())
                    });
                    candidates.len() - 1
                }
            };
            if let Ok(index) = u8::try_from(at) {
                mapped.push(MappedCandidate { index, protocol });
            }
        }
        if let Some(srflx) = learned.server_reflexive {
            let known = hosts.contains(&srflx)
                || candidates.iter().any(|c| {
                    c.address == CandidateAddress::Ip(srflx.ip()) && c.port == srflx.port()
                });
            if known {
                tracing::info!(%srflx, "STUN: no NAT in front of this socket, or the mapping has this address; no other srflx candidate needed");
            } else {
                candidates.push(Candidate {
                    kind: CandidateType::ServerReflexive,
                    ..Candidate::udp_host(srflx.ip(), srflx.port())
                });
            }
        }
        candidates.truncate(oneway_token::MAX_CANDIDATES);
        mapped.retain(|m| usize::from(m.index) < candidates.len());
        mapped.sort_by_key(|m| m.index);
        if candidates.is_empty() {
            return Err(StackError::Config(
                "no address to advertise: the machine has no usable interface (try loopback)"
                    .to_owned(),
            ));
        }

        let (cert, fingerprint) = S::generate_certificate()?;
        let fingerprint = Fingerprint(fingerprint);
        let mut secret = [0u8; 16];
        rand::rng().fill_bytes(&mut secret);
        let mut token = Token::new(Profile::Native, fingerprint, Secret(secret), candidates);
        token.single_use = config.single_use;
        token.label = config.label.clone();
        token.mapped = mapped;
        // `stun` (spec/token.md §5.9): the server the srflx candidate came from (learning it
        // succeeded, or `learn` failed above), so a dialer can learn its own srflx address for a
        // reply code from the same server.
        token.stun = config.stun.into_iter().collect();
        token.expires_at = config.ttl.map(|ttl| unix_now() + ttl.as_secs().max(1));
        let fast_path = if config.fast_path {
            S::listener_fast_path()?
        } else {
            None
        };
        let fast_path = fast_path.map(|(announced, state)| {
            token.fast = Some(announced);
            state
        });
        token
            .validate()
            .map_err(|e| StackError::Config(format!("token: {e}")))?;

        let (incoming_tx, incoming) = mpsc::channel(config.accept_queue.max(1));
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (replies_tx, replies_rx) = mpsc::channel(REPLY_QUEUE);
        let sockets = Arc::new(SocketSet::new(sockets));
        let local_addrs = sockets.local_addrs();
        let stats = Arc::new(ListenerCounters::default());
        let driver = Driver::<S> {
            stats: Arc::clone(&stats),
            keys: token.derive(),
            sctp: token.sctp_params(),
            consent_timeout: config.consent_timeout,
            timers: BinaryHeap::new(),
            admission: Admission::new(&token, config.limits.clone()),
            limiter: SourceLimiter::new(config.source_rate_limit.clone()),
            sockets,
            hosts,
            cert,
            listener_fp: fingerprint.0,
            fast_path,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            next_key: 1,
            commands_tx,
            incoming_tx,
            events_tx,
            guard: Weak::new(),
            outbox: Vec::new(),
            puncher: Puncher::new(
                Instant::now(),
                config.punch_limits.clone(),
                rand::rng().next_u64(),
            ),
        };
        let (guard_tx, guard_rx) = tokio::sync::oneshot::channel();
        let handle = tokio::spawn(driver.run(guard_rx, commands_rx, replies_rx));
        let guard = Arc::new(DriverGuard::new(handle.abort_handle()));
        let _ = guard_tx.send(Arc::downgrade(&guard));
        let keys = token.derive();
        Ok(Listener {
            token,
            stats,
            local_addrs,
            incoming,
            events,
            _mdns: mdns,
            reachability: learned.reachability,
            port_mappings: learned.mappings,
            replies: replies_tx,
            keys,
            _driver: guard,
            _stack: PhantomData,
        })
    }

    /// The token to publish.
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// From where the listener can be reached, and why: the verdict of its own measurements
    /// (host addresses, STUN, port mapping, NAT filtering) when it issued the token.
    pub fn reachability(&self) -> &Reachability {
        &self.reachability
    }

    /// The outcome of each port mapping asked for (one per socket; none when mapping was off
    /// or not needed).
    pub fn port_mappings(&self) -> &[Result<MappingHandle, PortmapError>] {
        &self.port_mappings
    }

    /// Takes the granted mappings, to watch their renewals ([`MappingHandle::next_event`]) and
    /// delete them on a clean exit ([`MappingHandle::shutdown`]); otherwise the listener keeps
    /// them and deletes them, best effort, when dropped.
    pub fn take_port_mappings(&mut self) -> Vec<MappingHandle> {
        std::mem::take(&mut self.port_mappings)
            .into_iter()
            .filter_map(Result::ok)
            .collect()
    }

    /// Takes a dialer's reply code (`owr2.…`, `spec/handshake.md` §11): once it decodes, was
    /// made for this token and is recent (`spec/token.md` §12.3), the listener sends checks
    /// towards the dialer's candidates within the bounds of [`ListenerConfig::punch_limits`],
    /// so a dialer it cannot be reached by one-way can reach it. A refused code changes
    /// nothing.
    pub async fn take_reply(&self, code: &str) -> Result<TakenReply, ReplyRefusal> {
        let (target, reply) = punch_target(code, &self.keys, unix_now())?;
        let (answer_tx, answer_rx) = oneshot::channel();
        let dialer_ufrag = target.dialer_ufrag.clone();
        let candidates = target.candidates.clone();
        self.replies
            .send((target, answer_tx))
            .await
            .map_err(|_| ReplyRefusal::Stopped)?;
        answer_rx.await.map_err(|_| ReplyRefusal::Stopped)??;
        tracing::info!(dialer = %dialer_ufrag, ?candidates, "reply code taken; checking towards the dialer");
        Ok(TakenReply {
            dialer_ufrag,
            candidates: reply.candidates,
        })
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

/// How many reply codes may wait for the driver.
const REPLY_QUEUE: usize = 16;

/// A reply code the listener took: it checks towards these candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TakenReply {
    /// The dialer's ICE ufrag.
    pub dialer_ufrag: String,
    /// The dialer's candidates, in the code's order.
    pub candidates: Vec<Candidate>,
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

struct Slot<E> {
    engine: E,
    remote: SocketAddr,
    /// Every address routed to this engine (`by_addr`), oldest first, at most
    /// [`MAX_ADDRESSES_PER_DIALER`](oneway_core::admission::MAX_ADDRESSES_PER_DIALER).
    addrs: VecDeque<SocketAddr>,
    local_ufrag: String,
    events: Option<mpsc::UnboundedReceiver<ConnectionEvent>>,
    next_timeout: Option<Instant>,
    /// How the dialer's checks got in: one-way, or after the listener punched for its reply code.
    route: Route,
}

struct Driver<S: Stack> {
    stats: Arc<ListenerCounters>,
    keys: DerivedKeys,
    sctp: SctpParams,
    /// See [`ListenerConfig::consent_timeout`].
    consent_timeout: Duration,
    /// Engine timeouts, earliest first. Entries whose instant no longer equals their slot's
    /// `next_timeout` are stale and skipped; the heap is rebuilt when stale ones pile up.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    admission: Admission,
    limiter: SourceLimiter,
    sockets: Arc<SocketSet>,
    hosts: Vec<SocketAddr>,
    cert: S::Certificate,
    listener_fp: [u8; 32],
    /// The stack's fast-path state, when the token announces a fast path.
    fast_path: Option<S::FastPath>,
    /// Keyed by locally assigned numbers: a cheap key, not chosen by an attacker.
    peers: HashMap<u64, Slot<S::Engine>>,
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
    outbox: Vec<Transmit>,
    /// Checks towards dialers whose reply codes were taken (`spec/handshake.md` §11).
    puncher: Puncher,
}

impl<S: Stack> Driver<S> {
    async fn run(
        mut self,
        guard: tokio::sync::oneshot::Receiver<Weak<DriverGuard>>,
        mut commands: mpsc::UnboundedReceiver<(u64, Command)>,
        mut replies: mpsc::Receiver<(PunchTarget, oneshot::Sender<Result<(), PunchRefusal>>)>,
    ) {
        let Ok(guard) = guard.await else {
            return;
        };
        self.guard = guard;
        let sockets = Arc::clone(&self.sockets);
        loop {
            let now = Instant::now();
            let deadline = self
                .timers
                .peek()
                .map(|Reverse((t, _))| *t)
                .into_iter()
                .chain(self.admission.next_deadline())
                .chain(self.puncher.poll_timeout())
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
                reply = replies.recv() => {
                    if let Some((target, answer)) = reply {
                        let _ = answer.send(self.start_punch(target));
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timeout(),
            }
            self.punch(Instant::now());
            self.publish_stats();
            self.sockets.send_batch(&self.outbox);
            self.outbox.clear();
        }
    }

    /// Starts punching for a verified reply code, unless its dialer is here already.
    fn start_punch(&mut self, target: PunchTarget) -> Result<(), PunchRefusal> {
        if self.by_ufrag.contains_key(&target.listener_ufrag) {
            return Err(PunchRefusal::AlreadyConnected);
        }
        self.puncher.start(Instant::now(), target)
    }

    /// Sends the punching checks due (from a host address of the candidate's family).
    fn punch(&mut self, now: Instant) {
        while let Some(check) = self.puncher.poll_transmit(now) {
            let family = check.destination.is_ipv4();
            let Some(source) = self.hosts.iter().find(|h| h.is_ipv4() == family) else {
                tracing::debug!(destination = %check.destination, "no socket of this family; check not sent");
                continue;
            };
            tracing::trace!(destination = %check.destination, "reply route: check towards the dialer");
            self.outbox.push(Transmit {
                source: *source,
                destination: check.destination,
                contents: check.contents,
            });
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
                // A known dialer checking from another of its addresses. Every engine's local pwd
                // is the listener pwd (it survives ICE restarts, `spec/handshake.md` §6.1), so
                // integrity is checked here before the new address is remembered.
                let Some(key) = self.by_ufrag.get(&listener_ufrag).copied() else {
                    return;
                };
                let verified = demux::BindingRequest::parse(&d.contents)
                    .and_then(|r| r.check_integrity(&self.keys.listener_pwd));
                match verified {
                    Ok(()) => {
                        self.route(key, d.source);
                        self.feed(now, key, &d);
                    }
                    Err(e) => {
                        self.limiter.failed(now, d.source.ip());
                        self.stats.dropped(&e);
                        tracing::debug!(source = %d.source, code = e.code(), "check dropped: {e}");
                    }
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
        if dialer.fast_start && self.fast_path.is_none() {
            // `/` in the composed ufrag announces a fast start this listener never offered
            // (`spec/handshake.md` §4.3): serving it the standard handshake would hang.
            tracing::debug!(source = %d.source, "check announces a fast start this token does not offer; dropped");
            return;
        }
        if let Err(refusal) = self.admission.admit(now, unix_now(), d.source) {
            self.refused(d.source, &refusal);
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let slot = match self.new_slot(now, d.source, &dialer) {
            Ok(slot) => slot,
            Err(e) => {
                self.admission.abandoned(d.source);
                tracing::warn!(source = %d.source, error = %e, "could not create an engine");
                return;
            }
        };
        let mut slot = slot;
        // The dialer's check got in: no more punching for it. If a reply code of its was taken
        // and the check comes from an address the listener checked towards, that is how
        // (`spec/handshake.md` §11.3).
        self.puncher.stop(&slot.local_ufrag);
        if self.puncher.was_punched(&slot.local_ufrag, d.source) {
            slot.route = Route::Reply;
        }
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
        dialer: &NewDialer,
    ) -> Result<Slot<S::Engine>, StackError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let engine = S::listener_engine(ListenerEngineParams {
            now,
            remote,
            hosts: &self.hosts,
            certificate: &self.cert,
            fingerprint: self.listener_fp,
            keys: &self.keys,
            sctp: self.sctp,
            dialer,
            fast_path: self.fast_path.as_ref(),
            consent_timeout: self.consent_timeout,
            events: events_tx,
        })?;
        Ok(Slot {
            engine,
            remote,
            addrs: VecDeque::from([remote]),
            local_ufrag: dialer.listener_ufrag.clone(),
            events: Some(events_rx),
            next_timeout: None,
            route: Route::OneWay,
        })
    }

    fn feed(&mut self, now: Instant, key: u64, d: &Datagram) {
        if let Some(slot) = self.peers.get_mut(&key) {
            slot.engine
                .handle_datagram(now, d.source, d.destination, &d.contents);
        }
        self.service(now, key);
    }

    fn on_command(&mut self, key: u64, command: Command) {
        let now = Instant::now();
        match self.peers.get_mut(&key) {
            Some(slot) => slot.engine.handle_command(now, command),
            None => drop(command),
        }
        self.service(now, key);
    }

    fn on_timeout(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.peers.get_mut(&key) else {
                continue;
            };
            if slot.next_timeout != Some(at) {
                continue;
            }
            slot.next_timeout = None;
            slot.engine.handle_timeout(now);
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
        let (outgoing, next) = slot.engine.poll(now);
        if next != slot.next_timeout {
            slot.next_timeout = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, key)));
            }
        }
        // Published before sending (at the end of the wake), so whoever sees an answer also
        // sees the state behind it.
        self.publish_stats();
        self.outbox.extend(outgoing);
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
                Notice::DialerProven => self.admit_proven(now, key),
                // Already handed to the application by `admit_proven`; `EarlyDataReady` is a
                // dialer's.
                Notice::Authenticated | Notice::EarlyDataReady => {}
                Notice::Closed { code, reason } => {
                    let authenticated = self
                        .peers
                        .get(&key)
                        .is_some_and(|s| s.engine.is_authenticated());
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
                slot.engine.reject(now, "accept-queue-full", reason);
                self.admission.abandoned(remote);
                self.service(now, key);
                return;
            }
        };
        if let Err(refusal) = self.admission.authenticated(remote) {
            slot.engine.reject(now, refusal.code(), refusal.to_string());
            self.service(now, key);
            return;
        }
        slot.engine.admit(now);
        if !slot.engine.is_authenticated() {
            // The engine refused or closed meanwhile: never hand over an unauthenticated
            // connection (and give back the place `authenticated` took).
            self.admission.closed();
            self.service(now, key);
            return;
        }
        let (Some(events), Some(guard)) = (slot.events.take(), self.guard.upgrade()) else {
            return;
        };
        permit.send(Connection::new(
            key,
            self.commands_tx.clone(),
            events,
            ConnectionInfo {
                timings: slot.engine.timings().clone(),
                selected: slot.engine.selected(),
                tried: Vec::new(),
                fast_start: slot.engine.is_fast_start(),
                route: slot.route,
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
