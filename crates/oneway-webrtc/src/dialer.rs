//! The one-way dialer on `rtc`: connects to a listener from its token alone
//! (`spec/handshake.md` §3). It sets its own offer and the answer the token implies
//! (`spec/token.md` §9.2), so the ICE credentials, fingerprint and candidates all come from the
//! token, with fingerprint verification on.
//!
//! With a `dialer-identity` token (a browser listener, `spec/handshake.md` §10.2) the listener
//! has chosen this dialer's identity: the dialer takes the ICE credentials and the certificate
//! the token specifies ([`oneway_token::dialer_cert`]), sets the listener's offer rebuilt from
//! the token as its remote description and answers it (controlled, DTLS client).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use oneway_token::dialer_cert::DialerCertificate;
use oneway_token::{CandidateAddress, Profile, Token, Transport};
use oneway_turn::TurnServer;
use oneway_turn::link::{LinkIo, Relay, RelayOutput};
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateRelayConfig, RTCDtlsRole, RTCIceCandidate,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::connection::{Connection, ConnectionInfo, DriverGuard};
use crate::engine::{
    CONTROL_LABEL, Command, Engine, Negotiation, Notice, Role, control_channel_init, rtc_error,
};
use crate::net::{Sockets, route_source};
use crate::{ICE_CHECK_INTERVAL, Progress, StackError};

/// How a dialer connects.
#[derive(Clone, Debug)]
pub struct DialConfig {
    /// Give up if not authenticated after this long.
    pub timeout: Duration,
    /// Receives stage progress as it happens (for `--json` events). The dialer drops its
    /// sender once the handshake succeeded or failed.
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// The dialer's DTLS certificate; `None` generates a fresh one per dial.
    pub certificate: Option<RTCCertificate>,
    /// Interval between ICE checks while connecting ([`ICE_CHECK_INTERVAL`] by default).
    pub ice_check_interval: Duration,
    /// A TURN server (reached over TCP) to allocate a UDP relay from. The dialer waits for the
    /// allocation (at most [`RELAY_WAIT`], or half the timeout) before it starts ICE, and
    /// offers the relayed address after its host candidates.
    pub turn: Option<TurnServer>,
    /// Offer only the relayed candidate (needs [`DialConfig::turn`]); a TURN failure then fails
    /// the dial with its cause code.
    pub relay_only: bool,
    /// Knobs that break the protocol on purpose, for tests of the listener's defences.
    pub dangerous: DangerousDialConfig,
}

/// Deliberately wrong behaviour, to test that listeners refuse it. Never use outside tests.
#[derive(Clone, Debug, Default)]
pub struct DangerousDialConfig {
    /// Use this key for the in-band proof instead of the token's.
    pub auth_key: Option<[u8; 32]>,
    /// Dial even if the token has expired.
    pub skip_expiry_check: bool,
}

impl Default for DialConfig {
    fn default() -> Self {
        DialConfig {
            timeout: Duration::from_secs(10),
            progress: None,
            certificate: None,
            ice_check_interval: ICE_CHECK_INTERVAL,
            turn: None,
            relay_only: false,
            dangerous: DangerousDialConfig::default(),
        }
    }
}

pub use oneway_connection::DialError;

/// Longest wait for the TURN allocation before ICE starts (`rtc` takes its local candidates
/// before the end-of-candidates mark, so the relayed one must be known by then).
pub const RELAY_WAIT: Duration = Duration::from_secs(3);

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

    let mut remotes: Vec<SocketAddr> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (index, c) in token.candidates.iter().enumerate() {
        match (c.transport, c.address) {
            (Transport::Udp, CandidateAddress::Ip(ip)) => remotes.push(SocketAddr::new(ip, c.port)),
            (Transport::Udp, CandidateAddress::Mdns(_)) => skipped.push(format!(
                "candidate {}: mDNS names are not resolved by the webrtc-rs dialer",
                index + 1
            )),
            _ => skipped.push(format!(
                "candidate {}: TCP is not supported by this dialer",
                index + 1
            )),
        }
    }
    for reason in &skipped {
        tracing::info!("{reason}");
    }
    // One socket per local address that routes to some candidate.
    let mut local_ips: Vec<IpAddr> = Vec::new();
    for remote in &remotes {
        match route_source(*remote) {
            Ok(ip) if !local_ips.contains(&ip) => local_ips.push(ip),
            Ok(_) => {}
            Err(e) => skipped.push(format!("{remote}: no route ({e})")),
        }
    }
    if local_ips.is_empty() {
        return Err(DialError::NoUsableCandidate(if skipped.is_empty() {
            "the token has no candidate".to_owned()
        } else {
            skipped.join("; ")
        }));
    }
    let binds: Vec<SocketAddr> = local_ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
    let sockets = Sockets::bind(&binds)
        .await
        .map_err(|e| StackError::Io(format!("binding: {e}")))?;

    // The dial's clock starts before the TURN allocation, which counts against the timeout.
    let started = Instant::now();
    if config.relay_only && config.turn.is_none() {
        return Err(DialError::NoUsableCandidate(
            "relay only, but no TURN server is configured".to_owned(),
        ));
    }
    let mut relay = config
        .turn
        .clone()
        .map(|server| Relay::start(server, remotes.clone()));
    let relayed = match relay.as_mut() {
        Some(r) => wait_for_relay(r, started + RELAY_WAIT.min(config.timeout / 2)).await,
        None => None,
    };
    if config.relay_only
        && relayed.is_none()
        && let Some(r) = &relay
    {
        let (code, reason) = match &r.error {
            Some(e) => (e.code(), e.to_string()),
            None => (
                "turn-timeout",
                format!("no TURN allocation within {RELAY_WAIT:?}"),
            ),
        };
        return Err(DialError::Closed { code, reason });
    }
    let now = Instant::now();
    let keys = token.derive();
    let identity = dialer_identity(token, &keys)?;
    let (cert, local_fp) = match (&identity, &config.certificate) {
        // dialer-identity: the certificate the listener chose (`spec/token.md` §7.3).
        (Some(identity), _) => (identity.certificate.clone(), identity.fingerprint),
        (None, Some(cert)) => {
            let der = cert
                .dtls_certificate
                .certificate
                .first()
                .ok_or_else(|| StackError::Config("certificate without DER".to_owned()))?;
            (cert.clone(), Sha256::digest(der.as_ref()).into())
        }
        (None, None) => crate::generate_certificate()?,
    };
    let mut settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(config.ice_check_interval), None)
        .with_srflx_acceptance_min_wait(Some(crate::REFLEXIVE_ACCEPTANCE_WAIT))
        .with_prflx_acceptance_min_wait(Some(crate::REFLEXIVE_ACCEPTANCE_WAIT))
        .with_relay_acceptance_min_wait(Some(crate::RELAY_ACCEPTANCE_WAIT));
    if let Some(DialerIdentity {
        ice: (ufrag, pwd), ..
    }) = identity
    {
        // The ICE credentials the listener chose for us; we answer its offer as DTLS client.
        settings = settings
            .with_ice_credentials(ufrag, pwd)
            .with_answering_dtls_role(RTCDtlsRole::Client);
    }
    let settings = settings.build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new()
                .with_certificates(vec![cert])
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
    let auth_key = config.dangerous.auth_key.unwrap_or(keys.auth_key);
    let mut engine = Engine::new(
        pc,
        Role::Dialer,
        Negotiation::Dialer {
            token: Box::new(token.clone()),
        },
        auth_key,
        token.fingerprint.0,
        local_fp,
        ctrl,
        now,
        events_tx,
    );
    let mut locals = Vec::new();
    for local in sockets
        .local_addrs()
        .into_iter()
        .filter(|_| !config.relay_only)
    {
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
        locals.push(
            RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(rtc_error("host candidate"))?,
        );
    }
    if let Some((relayed, local)) = relayed {
        let candidate = CandidateRelayConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: relayed.ip().to_string(),
                port: relayed.port(),
                component: 1,
                ..Default::default()
            },
            rel_addr: local.ip().to_string(),
            rel_port: local.port(),
            ..Default::default()
        }
        .new_candidate_relay()
        .map_err(rtc_error("relayed candidate"))?;
        tracing::info!(%relayed, "relayed candidate added");
        locals.push(
            RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(rtc_error("relayed candidate"))?,
        );
    }
    engine.start_dialer(now, locals)?;

    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let driver = Driver {
        engine,
        relay,
        ready: Some(ready_tx),
        progress: config.progress.clone(),
        deadline: started + config.timeout,
        timeout: config.timeout,
        reported_tried: 0,
    };
    let handle = tokio::spawn(driver.run(sockets, commands_rx));
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

/// The identity a `dialer-identity` token chose for this dialer.
struct DialerIdentity {
    /// Its ICE credentials `(ufrag, pwd)`.
    ice: (String, String),
    /// The certificate rebuilt from the secret (`spec/token.md` §7.3).
    certificate: RTCCertificate,
    /// SHA-256 of the certificate's DER.
    fingerprint: [u8; 32],
}

/// The identity a `dialer-identity` token chose for this dialer; `None` for other profiles.
fn dialer_identity(
    token: &Token,
    keys: &oneway_token::DerivedKeys,
) -> Result<Option<DialerIdentity>, StackError> {
    if token.profile != Profile::DialerIdentity {
        return Ok(None);
    }
    let (Some(ice), Some(_)) = (&keys.dialer_ice, &token.listener_ice) else {
        return Err(StackError::Config(
            "dialer-identity token without listener-ice".to_owned(),
        ));
    };
    let cert = DialerCertificate::derive(&token.secret)
        .map_err(|e| StackError::Config(format!("dialer certificate: {e}")))?;
    let provider = rtc::crypto::default_provider()
        .map_err(|e| StackError::Config(format!("crypto provider: {e}")))?;
    // The certificate is valid until 9999; `rtc` only uses `expires` to refuse stale ones.
    let expires = SystemTime::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let rtc_cert = RTCCertificate::from_pkcs8(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        vec![cert.certificate_der.clone().into()],
        &cert.private_key_pkcs8,
        expires,
    )
    .map_err(|e| StackError::Config(format!("dialer certificate: {e}")))?;
    Ok(Some(DialerIdentity {
        ice: (ice.ufrag().to_owned(), ice.pwd().to_owned()),
        certificate: rtc_cert,
        fingerprint: cert.fingerprint.0,
    }))
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

struct Driver {
    engine: Engine,
    /// The TURN relay, when configured.
    relay: Option<Relay>,
    ready: Option<oneshot::Sender<Result<ConnectionInfo, DialError>>>,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    deadline: Instant,
    timeout: Duration,
    reported_tried: usize,
}

impl Driver {
    async fn run(
        mut self,
        mut sockets: Sockets,
        mut commands: mpsc::UnboundedReceiver<(u64, Command)>,
    ) {
        let mut next = self.service(&sockets);
        loop {
            let now = Instant::now();
            let mut wake = next.unwrap_or(now + Duration::from_secs(1));
            if self.ready.is_some() {
                wake = wake.min(self.deadline);
            }
            if let Some(at) = self.relay.as_mut().and_then(Relay::poll_timeout) {
                wake = wake.min(at);
            }
            tokio::select! {
                received = sockets.recv() => match received {
                    Some(d) => self.engine.handle_datagram(Instant::now(), d.source, d.destination, &d.contents),
                    None => return,
                },
                command = commands.recv() => match command {
                    Some((_, command)) => self.engine.handle_command(Instant::now(), command),
                    None => return,
                },
                io = relay_recv(self.relay.as_mut()) => {
                    if let Some(relay) = self.relay.as_mut() {
                        let out = relay.handle_io(Instant::now(), io);
                        self.relay_output(out);
                    }
                }
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
            next = self.service(&sockets);
            if self.engine.is_closed() && self.ready.is_none() {
                return;
            }
        }
    }

    /// The error of a dial that ran out of time: the stage that did not complete, or, when no
    /// check got through and the TURN relay failed, the relay's cause (`turn-auth-failed`, …).
    fn timeout_error(&self) -> DialError {
        DialError::timed_out(
            self.engine.stage(),
            self.timeout,
            self.engine.tried.iter().map(|(a, _)| *a).collect(),
            self.relay
                .as_ref()
                .and_then(|r| r.error.as_ref())
                .map(|e| (e.code(), e.to_string())),
        )
    }

    /// Hands data relayed from peers to the engine, as received on the relayed address (the
    /// relayed candidate itself was added before ICE started).
    fn relay_output(&mut self, out: RelayOutput) {
        let Some(relayed) = self.relay.as_ref().and_then(Relay::relayed) else {
            return;
        };
        for (peer, data) in out.received {
            self.engine
                .handle_datagram(Instant::now(), peer, relayed, &data);
        }
    }

    fn service(&mut self, sockets: &Sockets) -> Option<Instant> {
        let now = Instant::now();
        let (outgoing, next) = self.engine.poll(now);
        let relayed = self.relay.as_ref().and_then(Relay::relayed);
        for o in outgoing {
            match self.relay.as_mut() {
                Some(relay) if Some(o.source) == relayed => {
                    relay.send(now, o.destination, &o.contents)
                }
                _ => sockets.send(o.source, o.destination, &o.contents),
            }
        }
        while self.reported_tried < self.engine.tried.len() {
            let (remote, after) = self.engine.tried[self.reported_tried];
            self.reported_tried += 1;
            self.report(Progress::CandidateTried { remote, after });
        }
        for notice in self.engine.take_notices() {
            match notice {
                Notice::IceConnected => self.report(Progress::IceConnected),
                Notice::DtlsConnected => self.report(Progress::DtlsConnected),
                Notice::ChannelOpen => self.report(Progress::ChannelOpen),
                Notice::DialerProven => {}
                Notice::Authenticated => {
                    self.report(Progress::Authenticated);
                    let info = ConnectionInfo {
                        timings: self.engine.timings.clone(),
                        selected: self.engine.selected,
                        tried: self.engine.tried.clone(),
                    };
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(info));
                    }
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
