//! The one-way dialer: connects to a listener from its token alone (`spec/handshake.md` §3).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oneway_token::dialer_cert::DialerCertificate;
use oneway_token::ice::compose_listener_ufrag;
use oneway_token::sdp::candidate_attribute;
use oneway_token::{CandidateAddress, Profile, Token, Transport};
use str0m::{Candidate as RtcCandidate, IceCreds};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Connection, ConnectionInfo, DriverGuard};
use crate::net::{AddressScope, Socket, SocketSet, host_addresses};
use crate::peer::{Command, Notice, Peer, Role};
use crate::{Progress, StackError};
use oneway_turn::TurnServer;
use oneway_turn::link::{LinkIo, Relay, RelayOutput};

/// Longest wait for mDNS names to resolve (at most half the dial timeout).
pub const MDNS_RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most queued commands the driver takes in one wake.
const COMMAND_BATCH: usize = 64;

/// How a dialer connects.
#[derive(Clone, Debug)]
pub struct DialConfig {
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
    pub certificate: Option<str0m::config::DtlsCert>,
    /// A TURN server (reached over TCP) to allocate a UDP relay from: its relayed address is
    /// added as a local candidate once allocated, after the host candidates, so it is tried
    /// last and wins only when no direct pair works (`spec/peer-contract.md`).
    pub turn: Option<TurnServer>,
    /// Offer only the relayed candidate (needs [`DialConfig::turn`]): the path is always the
    /// relay, and a TURN failure fails the dial at once with its cause code.
    pub relay_only: bool,
    /// Knobs that break the protocol on purpose, for tests of the listener's defences.
    pub dangerous: DangerousDialConfig,
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

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            timeout: Duration::from_secs(10),
            scope: None,
            progress: None,
            certificate: None,
            turn: None,
            relay_only: false,
            dangerous: DangerousDialConfig::default(),
        }
    }
}

pub use oneway_connection::DialError;

/// Connects to the listener of `token`. Returns once both in-band proofs have verified.
pub async fn dial(token: &Token, config: &DialConfig) -> Result<Connection, DialError> {
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if !config.dangerous.skip_expiry_check {
        token.check_expiry(now_unix)?;
    }
    if !matches!(token.profile, Profile::Native | Profile::DialerIdentity) {
        return Err(DialError::UnsupportedProfile {
            profile: token.profile.name(),
            dialer: crate::STACK,
        });
    }

    let mut remotes: Vec<(usize, SocketAddr)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
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
        let wait = MDNS_RESOLVE_TIMEOUT.min(config.timeout / 2);
        tokio::task::spawn_blocking(move || crate::mdns::resolve(&mdns_names, wait))
            .await
            .map_err(|e| StackError::Io(format!("mDNS task: {e}")))??
    };
    for (index, c) in token.candidates.iter().enumerate() {
        match (c.transport, c.address) {
            (Transport::Udp, CandidateAddress::Ip(ip)) => {
                remotes.push((index, SocketAddr::new(ip, c.port)))
            }
            (Transport::Udp, CandidateAddress::Mdns(uuid)) => match resolved.get(&uuid) {
                Some(ips) => {
                    remotes.extend(ips.iter().map(|ip| (index, SocketAddr::new(*ip, c.port))))
                }
                None => skipped.push(format!(
                    "candidate {}: {} did not resolve over mDNS",
                    index + 1,
                    c.address.to_sdp_string()
                )),
            },
            _ => skipped.push(format!(
                "candidate {}: TCP is not supported by this dialer",
                index + 1
            )),
        }
    }
    if remotes.is_empty() {
        return Err(DialError::NoUsableCandidate(skipped.join("; ")));
    }
    for reason in &skipped {
        tracing::info!("{reason}");
    }

    let all_loopback = remotes.iter().all(|(_, a)| a.ip().is_loopback());
    let some_loopback = remotes.iter().any(|(_, a)| a.ip().is_loopback());
    let scope = config.scope.unwrap_or(match (all_loopback, some_loopback) {
        (true, _) => AddressScope::LoopbackOnly,
        (false, true) => AddressScope::InterfacesAndLoopback,
        (false, false) => AddressScope::Interfaces,
    });
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

    let now = Instant::now();
    let keys = token.derive();
    let identity = dialer_identity(token, &keys)?;
    let (local_creds, remote_creds, certificate) = match identity {
        // dialer-identity (`spec/handshake.md` §10.2): the listener chose our credentials and
        // certificate; it is the controlling agent.
        Some((local, remote, cert)) => (local, remote, Some(cert)),
        None => {
            let local = IceCreds::new();
            let listener_ufrag = compose_listener_ufrag(&keys.token_ufrag, &local.pass)
                .map_err(|e| StackError::Config(format!("composing the listener ufrag: {e}")))?;
            let remote = IceCreds {
                ufrag: listener_ufrag,
                pass: keys.listener_pwd.clone(),
            };
            (local, remote, config.certificate.clone())
        }
    };
    let mut builder = crate::peer::rtc_builder(all_loopback).set_local_ice_credentials(local_creds);
    if let Some(cert) = certificate {
        builder = builder.set_dtls_cert(cert);
    }
    let mut rtc = builder.build(now);
    for local in locals.iter().filter(|_| !config.relay_only) {
        match RtcCandidate::host(*local, "udp") {
            Ok(c) => {
                rtc.add_local_candidate(c);
            }
            Err(e) => {
                tracing::debug!(%local, error = %e, "local address not usable as a candidate")
            }
        }
    }
    let mut api = rtc.direct_api();
    api.set_ice_controlling(token.profile == Profile::Native);
    api.set_remote_ice_credentials(remote_creds);
    api.set_remote_fingerprint(str0m::config::Fingerprint {
        hash_func: "sha-256".to_owned(),
        bytes: token.fingerprint.0.to_vec(),
    });
    api.start_dtls(true)
        .map_err(|e| StackError::Rtc(e.to_string()))?;
    api.start_sctp(true);
    let ctrl = api.create_data_channel(Peer::control_channel_config());

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let auth_key = config.dangerous.auth_key.unwrap_or(keys.auth_key);
    let mut peer = Peer::new(
        rtc,
        Role::Dialer,
        auth_key,
        token.fingerprint.0,
        ctrl,
        now,
        events_tx,
    );
    if let Some(mac) = config.dangerous.relayed_proof {
        peer.relay_proof(mac);
    }
    for (index, addr) in &remotes {
        // mDNS candidates keep their token position (priority) with the resolved address.
        let resolved = oneway_token::Candidate {
            address: CandidateAddress::Ip(addr.ip()),
            ..token.candidates[*index]
        };
        let line = candidate_attribute(*index, &resolved);
        match RtcCandidate::from_sdp_string(&line) {
            Ok(c) => peer.add_remote_candidate(c),
            Err(e) => tracing::warn!(%line, error = %e, "str0m refused a token candidate"),
        }
    }

    let relay = config.turn.clone().map(|server| {
        let peers: Vec<SocketAddr> = remotes.iter().map(|(_, a)| *a).collect();
        Relay::start(server, peers)
    });

    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let driver = Driver {
        relay,
        relay_only: config.relay_only,
        peer,
        sockets: Arc::new(SocketSet::new(sockets)),
        ready: Some(ready_tx),
        progress: config.progress.clone(),
        deadline: now + config.timeout,
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

/// The relay's next report, or never without a relay.
async fn relay_recv(relay: Option<&mut Relay>) -> Option<LinkIo> {
    match relay {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// The identity a `dialer-identity` token chose for us: our ICE credentials, the listener's
/// (from `listener-ice`), and the certificate rebuilt from the secret (`spec/token.md` §7.3).
fn dialer_identity(
    token: &Token,
    keys: &oneway_token::DerivedKeys,
) -> Result<Option<(IceCreds, IceCreds, str0m::config::DtlsCert)>, StackError> {
    let (Some(dialer), Some(listener)) = (&keys.dialer_ice, &token.listener_ice) else {
        return Ok(None);
    };
    let cert = DialerCertificate::derive(&token.secret)
        .map_err(|e| StackError::Config(format!("dialer certificate: {e}")))?;
    Ok(Some((
        IceCreds {
            ufrag: dialer.ufrag().to_owned(),
            pass: dialer.pwd().to_owned(),
        },
        IceCreds {
            ufrag: listener.ufrag().to_owned(),
            pass: listener.pwd().to_owned(),
        },
        str0m::config::DtlsCert {
            certificate: cert.certificate_der,
            private_key: cert.private_key_pkcs8,
        },
    )))
}

struct Driver {
    peer: Peer,
    /// The TURN relay, when configured.
    relay: Option<Relay>,
    /// Whether only the relayed candidate is offered (a TURN failure then ends the dial).
    relay_only: bool,
    sockets: Arc<SocketSet>,
    ready: Option<oneshot::Sender<Result<ConnectionInfo, DialError>>>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    deadline: Instant,
    timeout: Duration,
    reported_tried: usize,
    /// Datagrams of this wake, sent together at its end (GSO runs: [`SocketSet::send_batch`]).
    outbox: Vec<crate::peer::Outgoing>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<(u64, Command)>) {
        let sockets = Arc::clone(&self.sockets);
        let mut next = Some(Instant::now());
        loop {
            let now = Instant::now();
            let mut wake = next.unwrap_or(now + Duration::from_secs(1));
            if self.ready.is_some() {
                wake = wake.min(self.deadline);
            }
            if let Some(at) = self.relay.as_mut().and_then(Relay::poll_timeout) {
                wake = wake.min(at);
            }
            let mut relay_io: Option<Option<LinkIo>> = None;
            // One input, then a full poll (str0m's contract), for each of a batch read at once.
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
                    self.peer.handle_timeout(now);
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
                self.peer
                    .handle_datagram(Instant::now(), d.source, d.destination, &d.contents);
                next = self.service();
            }
            for command in queued {
                self.peer.handle_command(Instant::now(), command);
                next = self.service();
            }
            self.sockets.send_batch(&self.outbox);
            self.outbox.clear();
            if self.peer.is_closed() && self.ready.is_none() {
                // Give the last datagrams (close message) a moment, then stop.
                return;
            }
        }
    }

    /// The error of a dial that ran out of time: the stage that did not complete, or, when no
    /// check got through and the TURN relay failed, the relay's cause (`turn-auth-failed`, …).
    fn timeout_error(&self) -> DialError {
        DialError::timed_out(
            self.peer.timings.stage(),
            self.timeout,
            self.peer.tried.iter().map(|(a, _)| *a).collect(),
            self.relay
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .map(|e| (e.code(), e.to_string())),
        )
    }

    /// Applies what the relay produced: its candidate, and data relayed from peers.
    fn relay_output(&mut self, out: RelayOutput) {
        if let Some((relayed, local)) = out.add_candidate {
            match RtcCandidate::relayed(relayed, local, "udp") {
                Ok(c) => {
                    tracing::info!(%relayed, "relayed candidate added");
                    if self.peer.rtc.add_local_candidate(c).is_none() {
                        tracing::warn!(%relayed, "str0m refused the relayed candidate");
                    }
                }
                Err(e) => tracing::warn!(%relayed, error = %e, "relayed candidate not usable"),
            }
        }
        let Some(relayed) = self.relay.as_ref().and_then(Relay::relayed) else {
            return;
        };
        // One input, then a full poll (str0m's contract), as for datagrams from the sockets.
        for (peer, data) in out.received {
            self.peer
                .handle_datagram(Instant::now(), peer, relayed, &data);
            self.service();
        }
    }

    fn service(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let (outgoing, next) = self.peer.poll(now);
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
        while self.reported_tried < self.peer.tried.len() {
            let (remote, after) = self.peer.tried[self.reported_tried];
            self.reported_tried += 1;
            self.report(Progress::CandidateTried { remote, after });
        }
        for notice in self.peer.take_notices() {
            match notice {
                Notice::IceConnected => self.report(Progress::IceConnected),
                Notice::DtlsConnected => self.report(Progress::DtlsConnected),
                Notice::ChannelOpen => self.report(Progress::ChannelOpen),
                Notice::DialerProven => {}
                Notice::Authenticated => {
                    self.report(Progress::Authenticated);
                    let info = ConnectionInfo {
                        timings: self.peer.timings.clone(),
                        selected: self.peer.selected,
                        tried: self.peer.tried.clone(),
                    };
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(info));
                    }
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

    fn report(&self, progress: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(progress);
        }
    }
}
