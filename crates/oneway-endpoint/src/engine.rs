//! The seam between the shell and a WebRTC stack: [`Engine`], one sans-IO state machine per
//! connection, and [`Stack`], which builds engines for either role.
//!
//! An engine never touches a socket or a clock. The shell feeds it datagrams
//! ([`Engine::handle_datagram`]), timeouts ([`Engine::handle_timeout`]) and commands from the
//! connection handle ([`Engine::handle_command`]); after every input it calls [`Engine::poll`]
//! for the datagrams to send and the next deadline, and [`Engine::take_notices`] for what
//! happened. Everything else (sockets, gathering, token issuance, admission and routing, the
//! dialer's candidate order, fallback and TURN relay, events, the driver task) is the shell's.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_connection::{Command, ConnectionEvent, StackError, Timings};
use oneway_core::demux::NewDialer;
use oneway_token::{DerivedKeys, FastPath, SctpParams, Token};
use tokio::sync::mpsc;

/// A datagram an engine wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (a host candidate, or the relayed address of the dialer's
    /// TURN allocation).
    pub source: SocketAddr,
    /// Remote address.
    pub destination: SocketAddr,
    /// Payload.
    pub contents: Vec<u8>,
}

/// What an engine tells the shell, besides datagrams.
#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    /// ICE found a working pair.
    IceConnected,
    /// DTLS completed.
    DtlsConnected,
    /// Channel 0 is open.
    ChannelOpen,
    /// Listener only: the dialer's proof verified; the shell must now call [`Engine::admit`]
    /// or [`Engine::reject`].
    DialerProven,
    /// Dialer only, under a fast start (`spec/handshake.md` §5.5): its proof is sent and DTLS
    /// verified the listener's certificate against the token, so it may send application data
    /// before the listener's proof arrives.
    EarlyDataReady,
    /// Both proofs verified: the connection may carry application data.
    Authenticated,
    /// The engine ended; the code is one of `spec/handshake.md` §8.
    Closed {
        /// Stable code (e.g. `auth-failed`, `closed-by-peer`).
        code: &'static str,
        /// Details for logs.
        reason: String,
    },
}

/// One connection's sans-IO state machine: a WebRTC stack's peer connection plus the oneway
/// handshake (`spec/handshake.md`). What differs between stacks, and nothing else.
pub trait Engine: Send + 'static {
    /// Feeds one datagram received on `destination` (a local address) from `source`.
    fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    );

    /// Advances time to `now` (called at or after the deadline [`Engine::poll`] returned).
    fn handle_timeout(&mut self, now: Instant);

    /// Applies a command from the connection handle (open channel, send, ICE restart, close).
    fn handle_command(&mut self, now: Instant, command: Command);

    /// The datagrams to send now, and the next time the engine needs
    /// [`Engine::handle_timeout`] (`None`: no timer).
    fn poll(&mut self, now: Instant) -> (Vec<Transmit>, Option<Instant>);

    /// The handshake state ([`crate::session::Handshake`]) the engine keeps.
    fn handshake(&self) -> &crate::session::Handshake;

    /// See [`Engine::handshake`].
    fn handshake_mut(&mut self) -> &mut crate::session::Handshake;

    /// The notices accumulated since the last call.
    fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.handshake_mut().notices)
    }

    /// Listener: admission accepted the proven dialer; answer with the listener's proof.
    fn admit(&mut self, now: Instant);

    /// Listener: admission refused the proven dialer; tell it why and close.
    fn reject(&mut self, now: Instant, code: &'static str, reason: String);

    /// Whether the engine has ended.
    fn is_closed(&self) -> bool;

    /// Whether both proofs have verified.
    fn is_authenticated(&self) -> bool {
        self.handshake().authenticated
    }

    /// Whether this connection took the token's fast start (`spec/handshake.md` §5.4).
    fn is_fast_start(&self) -> bool {
        false
    }

    /// Dialer: its local ICE ufrag and pwd (`None` where the stack did not record them).
    fn local_ice(&self) -> Option<(String, String)> {
        self.handshake().local_ice.clone()
    }

    /// Stage times so far.
    fn timings(&self) -> &Timings {
        &self.handshake().path.timings
    }

    /// `(local, remote)` of the selected candidate pair, once DTLS runs on one.
    fn selected(&self) -> Option<(SocketAddr, SocketAddr)> {
        self.handshake().path.selected
    }

    /// Dialer: the remote addresses checked so far, in order, with the time of the first check.
    fn tried(&self) -> &[(SocketAddr, Duration)] {
        &self.handshake().path.tried
    }

    /// Dialer: adds the relayed candidate of a TURN allocation that completed after the engine
    /// started (`base`: the local address the allocation was made from). `false` if this engine
    /// takes local candidates only at the start ([`Stack::RELAY_BEFORE_START`]).
    fn add_relayed_candidate(&mut self, relayed: SocketAddr, base: SocketAddr) -> bool;
}

/// A WebRTC stack, as the shell sees it: its certificate type and how it builds engines.
pub trait Stack: Clone + Copy + Debug + Default + Send + Sync + 'static {
    /// The stack's name in `--json` events (`spec/peer-contract.md`) and errors.
    const NAME: &'static str;
    /// Whether the dialer's engine takes its local candidates only at the start, so the shell
    /// waits for the TURN allocation (at most [`crate::dialer::RELAY_WAIT`]) before it builds
    /// the engine; otherwise the relayed candidate is added when it is ready.
    const RELAY_BEFORE_START: bool;
    /// A DTLS certificate with its private key, as the stack takes it.
    type Certificate: Clone + Debug + Send + Sync + 'static;
    /// The per-connection engine.
    type Engine: Engine;
    /// A listener's fast-path state (what it announced in the token's `fast` extension, e.g.
    /// its SCTP INIT chunk), handed to every listener engine; `()` for a stack without one.
    type FastPath: Clone + Debug + Send + Sync + 'static;

    /// A fresh self-signed certificate and the SHA-256 of its DER (the token's fingerprint).
    fn generate_certificate() -> Result<(Self::Certificate, [u8; 32]), StackError>;

    /// The certificate a `dialer-identity` token chose (`spec/token.md` §7.3), from its DER and
    /// PKCS#8 private key.
    fn certificate_from_der(der: &[u8], pkcs8: &[u8]) -> Result<Self::Certificate, StackError>;

    /// The SHA-256 of `certificate`'s DER.
    fn fingerprint(certificate: &Self::Certificate) -> Result<[u8; 32], StackError>;

    /// What a listener of this stack announces in the token's `fast` extension
    /// (`spec/token.md` §5.8), with the state its engines need; `None` (the default) for a stack
    /// with no fast path.
    fn listener_fast_path() -> Result<Option<(FastPath, Self::FastPath)>, StackError> {
        Ok(None)
    }

    /// An engine for a dialer whose first check a listener admitted.
    fn listener_engine(
        params: ListenerEngineParams<'_, Self::Certificate, Self::FastPath>,
    ) -> Result<Self::Engine, StackError>;

    /// An engine for a dialer of `params.token`, its checks started.
    fn dialer_engine(
        params: DialerEngineParams<'_, Self::Certificate>,
    ) -> Result<Self::Engine, StackError>;

    /// One-time start-up work a process can do before its first dial (e.g. initialising the
    /// crypto library), so that it is not paid between decoding a token and the first check.
    fn warm_up() {}
}

/// What a listener engine is built from (`F`: the stack's fast-path state).
#[derive(Debug)]
pub struct ListenerEngineParams<'a, C, F = ()> {
    /// The time of the admitted check.
    pub now: Instant,
    /// The dialer's address (the source of its first check).
    pub remote: SocketAddr,
    /// The listener's host candidates.
    pub hosts: &'a [SocketAddr],
    /// The listener's certificate.
    pub certificate: &'a C,
    /// Its SHA-256 (the token's fingerprint).
    pub fingerprint: [u8; 32],
    /// The token's derived keys (listener pwd, proof key).
    pub keys: &'a DerivedKeys,
    /// The listener's SCTP parameters (from the token).
    pub sctp: SctpParams,
    /// The dialer's credentials, recovered from its first check (`spec/handshake.md` §4.3).
    pub dialer: &'a NewDialer,
    /// The listener's fast-path state when its token announces one (`None`: the standard
    /// handshake only). A dialer that announced a fast start has `dialer.fast_start`.
    pub fast_path: Option<&'a F>,
    /// How long a silent dialer keeps its engine (RFC 7675 consent).
    pub consent_timeout: Duration,
    /// Where the connection's events go once authenticated.
    pub events: mpsc::UnboundedSender<ConnectionEvent>,
}

/// What a dialer engine is built from.
#[derive(Debug)]
pub struct DialerEngineParams<'a, C> {
    /// When the dial started.
    pub now: Instant,
    /// The token dialed, with every mDNS candidate replaced by its resolved address and the
    /// candidates this dialer cannot use (unresolved names, TCP) left out, in token order
    /// (its other fields as published).
    pub token: &'a Token,
    /// The remote addresses to check, in order, with their candidate's index in `token`.
    pub remotes: &'a [(usize, SocketAddr)],
    /// The token's derived keys.
    pub keys: &'a DerivedKeys,
    /// The key the dialer proves with (the token's, unless a test breaks it on purpose).
    pub auth_key: [u8; 32],
    /// The dialer's certificate: the configured one, or the one a `dialer-identity` token
    /// chose; `None` makes a fresh one.
    pub certificate: Option<C>,
    /// Local host candidates (empty when only the relay is offered).
    pub locals: &'a [SocketAddr],
    /// `(relayed, base)` of the TURN allocation, when it is known at the start.
    pub relayed: Option<(SocketAddr, SocketAddr)>,
    /// Every remote is on this host (loopback): the engine may use a larger MTU.
    pub loopback: bool,
    /// Interval between ICE checks while connecting; `None`: the stack's default.
    pub ice_check_interval: Option<Duration>,
    /// How long the dial may take: the engine keeps answering checks (a listener that took the
    /// reply code late, `spec/handshake.md` §11) at least this long.
    pub timeout: Duration,
    /// Tests only: this MAC is sent as the proof instead of the computed one.
    pub relayed_proof: Option<[u8; 32]>,
    /// Whether to use the fast path the token's `fast` extension offers (`spec/handshake.md`
    /// §5.4); `false` keeps the standard handshake.
    pub fast_path: bool,
    /// Where the connection's events go once authenticated.
    pub events: mpsc::UnboundedSender<ConnectionEvent>,
}
