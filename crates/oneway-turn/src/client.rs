//! The TURN client state machine: webrtc-rs's sans-IO [`rtc_turn::client::Client`] (Allocate
//! with long-term credentials, CreatePermission, Send indications then ChannelBind +
//! ChannelData, Refresh) behind a smaller surface for one allocation over one TCP connection,
//! plus what it leaves to its caller: stream framing, a precise error for each failure, and
//! retries after a stale nonce (438).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc_shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc_stun::error_code::ErrorCodeAttribute;
use rtc_stun::message::{
    CLASS_ERROR_RESPONSE, Getter as _, METHOD_ALLOCATE, METHOD_CREATE_PERMISSION, Message,
    TransactionId,
};
use rtc_turn::client::{Client, ClientConfig, Event};
use sansio::Protocol as _;
use thiserror::Error;

use crate::framing::{FrameKind, FramingError, StreamDecoder};

/// Interval cap for Refresh requests: refresh at half the lifetime or every minute, whichever
/// is sooner, so a Refresh answered with 438 (stale nonce) is retried with the new nonce long
/// before the allocation expires.
pub const REFRESH_INTERVAL_CAP: Duration = Duration::from_secs(60);
/// How many times an Allocate or CreatePermission answered with 438 (stale nonce) is retried.
pub const STALE_NONCE_RETRIES: u32 = 2;
/// Most data events or stream writes queued; beyond it the oldest are dropped (the peer's
/// protocols retransmit).
pub const MAX_QUEUE: usize = 4096;

/// Long-term credentials for a TURN server (RFC 8489 §9.2).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

/// A TURN server to allocate a UDP relay from, reached over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnServer {
    /// The server's TCP address.
    pub addr: SocketAddr,
    /// Long-term credentials.
    pub credentials: Credentials,
}

/// Why the TURN client failed. [`TurnError::code`] gives a stable cause code.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TurnError {
    /// The server could not be reached, or closed the connection (reported by the driver that
    /// owns the connection).
    #[error("TURN server unreachable: {0}")]
    Unreachable(String),
    /// The server refused our credentials (401 after we authenticated).
    #[error("TURN server refused the credentials (error {code}: {reason})")]
    AuthFailed {
        /// STUN error code (401).
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
    /// The server answered a request with an error other than 401.
    #[error("TURN {request} refused (error {code}: {reason})")]
    Refused {
        /// Which request (`Allocate`, `CreatePermission`).
        request: &'static str,
        /// STUN error code.
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
    /// A request got no answer in time.
    #[error("TURN {request} got no answer")]
    Timeout {
        /// Which request.
        request: &'static str,
    },
    /// The server's answer could not be used (missing attributes, bad message).
    #[error("TURN protocol error: {0}")]
    Protocol(String),
    /// The byte stream from the server could not be cut into frames.
    #[error("TURN stream: {0}")]
    Framing(#[from] FramingError),
    /// Data was sent before the allocation succeeded.
    #[error("no TURN allocation yet")]
    NotAllocated,
    /// Data was sent to a peer without a permission.
    #[error("no TURN permission for {0}")]
    NoPermission(SocketAddr),
}

impl TurnError {
    /// Stable cause code for reports (`turn-unreachable`, `turn-auth-failed`, `turn-refused`,
    /// `turn-timeout`, `turn-protocol`, `turn-not-ready`).
    pub fn code(&self) -> &'static str {
        match self {
            TurnError::Unreachable(_) => "turn-unreachable",
            TurnError::AuthFailed { .. } => "turn-auth-failed",
            TurnError::Refused { .. } => "turn-refused",
            TurnError::Timeout { .. } => "turn-timeout",
            TurnError::Protocol(_) | TurnError::Framing(_) => "turn-protocol",
            TurnError::NotAllocated | TurnError::NoPermission(_) => "turn-not-ready",
        }
    }
}

/// What the client reports to its driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation succeeded: peers reach this client at `relayed`.
    Allocated {
        /// The relayed transport address (XOR-RELAYED-ADDRESS).
        relayed: SocketAddr,
    },
    /// The server will now relay to and from `peer`.
    PermissionCreated {
        /// The peer address.
        peer: SocketAddr,
    },
    /// A permission could not be created.
    PermissionFailed {
        /// The peer address.
        peer: SocketAddr,
        /// Why.
        error: TurnError,
    },
    /// Data relayed from a peer.
    Data {
        /// The peer that sent it (to the relayed address).
        peer: SocketAddr,
        /// The UDP payload.
        data: Vec<u8>,
    },
    /// The allocation failed or was lost; the client is unusable.
    Failed(TurnError),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    Idle,
    Allocating { retries: u32 },
    Allocated { relayed: SocketAddr },
    Failed,
}

#[derive(Debug)]
struct PendingPermission {
    peer: SocketAddr,
    retries: u32,
}

/// A TURN client for one allocation over one stream connection (TCP) to the server. It owns no
/// socket: feed it the bytes read from the connection ([`TurnClient::handle_stream_data`]) and
/// time ([`TurnClient::handle_timeout`]), and write what [`TurnClient::poll_transmit`] returns.
pub struct TurnClient {
    inner: Client,
    server: SocketAddr,
    local: SocketAddr,
    decoder: StreamDecoder,
    state: State,
    permissions: HashMap<TransactionId, PendingPermission>,
    permitted: Vec<SocketAddr>,
    /// The last error code an Allocate got (the inner client reports failures as text).
    last_allocate_error: Option<(u16, String)>,
    /// The last error code a CreatePermission got, by transaction.
    permission_errors: HashMap<TransactionId, (u16, String)>,
    events: VecDeque<TurnEvent>,
}

impl std::fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnClient")
            .field("server", &self.server)
            .field("local", &self.local)
            .field("state", &self.state)
            .field("permitted", &self.permitted)
            .finish_non_exhaustive()
    }
}

impl TurnClient {
    /// A client for `server`, whose TCP connection has the local address `local`.
    pub fn new(server: &TurnServer, local: SocketAddr) -> Result<Self, TurnError> {
        let crypto = rtc_turn::crypto::default_provider()
            .map_err(|e| TurnError::Protocol(format!("crypto provider: {e}")))?;
        let config = ClientConfig {
            turn_serv_addr: server.addr.to_string(),
            local_addr: local,
            transport_protocol: TransportProtocol::TCP,
            username: server.credentials.username.clone(),
            password: server.credentials.password.clone(),
            allocation_refresh_interval_cap: Some(REFRESH_INTERVAL_CAP),
            ..Default::default()
        };
        let inner = Client::new(config, Arc::clone(&crypto))
            .map_err(|e| TurnError::Protocol(format!("TURN client: {e}")))?;
        Ok(TurnClient {
            inner,
            server: server.addr,
            local,
            decoder: StreamDecoder::new(),
            state: State::Idle,
            permissions: HashMap::new(),
            permitted: Vec::new(),
            last_allocate_error: None,
            permission_errors: HashMap::new(),
            events: VecDeque::new(),
        })
    }

    /// The TURN server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The local address of the connection to the server.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        match self.state {
            State::Allocated { relayed } => Some(relayed),
            _ => None,
        }
    }

    /// Whether the allocation failed (or was never possible).
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Whether the server relays to and from `peer`.
    pub fn is_permitted(&self, peer: SocketAddr) -> bool {
        self.permitted.contains(&peer)
    }

    /// Whether the server relays to and from `peer`'s IP address: a TURN permission is for an
    /// address whatever the port (RFC 8656 §9), though the client tracks each peer it sends to.
    pub fn is_ip_permitted(&self, peer: SocketAddr) -> bool {
        self.permitted.iter().any(|p| p.ip() == peer.ip())
    }

    /// Starts the allocation (the first Allocate goes without credentials, the server's 401
    /// brings the realm and nonce, the second is signed).
    pub fn allocate(&mut self, now: Instant) -> Result<(), TurnError> {
        if self.state != State::Idle {
            return Ok(());
        }
        self.inner
            .allocate(now)
            .map_err(|e| TurnError::Protocol(format!("building Allocate: {e}")))?;
        self.state = State::Allocating { retries: 0 };
        Ok(())
    }

    /// Asks the server to relay to and from `peer` (refreshed by the client before it expires).
    pub fn create_permission(&mut self, now: Instant, peer: SocketAddr) -> Result<(), TurnError> {
        self.create_permission_attempt(now, peer, 0)
    }

    fn create_permission_attempt(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        retries: u32,
    ) -> Result<(), TurnError> {
        let relayed = self.relayed().ok_or(TurnError::NotAllocated)?;
        let mut relay = self
            .inner
            .relay(relayed)
            .map_err(|_| TurnError::NotAllocated)?;
        match relay.create_permission(now, peer) {
            Ok(Some(tid)) => {
                self.permissions
                    .insert(tid, PendingPermission { peer, retries });
            }
            Ok(None) => {} // already requested or granted
            Err(e) => return Err(TurnError::Protocol(format!("CreatePermission: {e}"))),
        }
        Ok(())
    }

    /// Sends `data` to `peer` through the relay: as a Send indication until a channel is bound
    /// (the client binds one on first use), then as ChannelData.
    pub fn send_to(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        data: &[u8],
    ) -> Result<(), TurnError> {
        let relayed = self.relayed().ok_or(TurnError::NotAllocated)?;
        if !self.is_permitted(peer) {
            return Err(TurnError::NoPermission(peer));
        }
        let mut relay = self
            .inner
            .relay(relayed)
            .map_err(|_| TurnError::NotAllocated)?;
        relay
            .send_to(now, data, peer)
            .map_err(|e| TurnError::Protocol(format!("sending to {peer}: {e}")))
    }

    /// Feeds bytes read from the connection to the server.
    pub fn handle_stream_data(&mut self, now: Instant, bytes: &[u8]) -> Result<(), TurnError> {
        if let Err(e) = self.decoder.push(bytes) {
            return Err(self.fail(e.into()));
        }
        // Bounded: each frame consumes at least four bytes of a finite buffer.
        loop {
            let (kind, frame) = match self.decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            };
            if kind == FrameKind::Stun {
                self.note_error_response(&frame);
            }
            let message = TransportMessage {
                now,
                transport: TransportContext {
                    local_addr: self.local,
                    peer_addr: self.server,
                    transport_protocol: TransportProtocol::TCP,
                    ecn: None,
                },
                message: BytesMut::from(&frame[..]),
            };
            if let Err(e) = self.inner.handle_read(message) {
                // A malformed or unexpected frame: drop it, as a UDP client drops a datagram.
                tracing::debug!(error = %e, ?kind, "TURN frame ignored");
            }
            self.collect(now);
        }
        Ok(())
    }

    /// Remembers the error code of an Allocate or CreatePermission error response: the inner
    /// client reports failures as text only.
    fn note_error_response(&mut self, frame: &[u8]) {
        let mut msg = Message::new();
        msg.raw = frame.to_vec();
        if msg.decode().is_err() || msg.typ.class != CLASS_ERROR_RESPONSE {
            return;
        }
        let mut code = ErrorCodeAttribute::default();
        if code.get_from(&msg).is_err() {
            return;
        }
        let entry = (
            code.code.0,
            String::from_utf8_lossy(&code.reason).into_owned(),
        );
        if msg.typ.method == METHOD_ALLOCATE {
            self.last_allocate_error = Some(entry);
        } else if msg.typ.method == METHOD_CREATE_PERMISSION {
            self.permission_errors.insert(msg.transaction_id, entry);
        }
    }

    /// Advances time: retransmission deadlines (none over TCP but the transaction timeout),
    /// Refresh and permission refresh.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.inner.handle_timeout(now) {
            tracing::debug!(error = %e, "TURN timeout handling");
        }
        self.collect(now);
    }

    /// When [`TurnClient::handle_timeout`] must next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.state == State::Failed {
            return None;
        }
        self.inner.poll_timeout()
    }

    /// The next bytes to write to the connection (whole STUN or padded ChannelData messages).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.state == State::Failed {
            return None;
        }
        self.inner.poll_write().map(|t| t.message.to_vec())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// Marks the client failed and queues the event; returns the error.
    fn fail(&mut self, error: TurnError) -> TurnError {
        if self.state != State::Failed {
            tracing::warn!(server = %self.server, %error, "TURN failed");
            self.state = State::Failed;
            self.push(TurnEvent::Failed(error.clone()));
        }
        error
    }

    fn push(&mut self, event: TurnEvent) {
        if self.events.len() >= MAX_QUEUE {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Moves the inner client's events into ours, retrying after stale nonces.
    fn collect(&mut self, now: Instant) {
        // Bounded by the inner client's queue, which only shrinks here.
        while let Some(event) = self.inner.poll_event() {
            match event {
                Event::AllocateResponse(_, relayed) => {
                    if matches!(self.state, State::Allocating { .. }) {
                        tracing::info!(server = %self.server, %relayed, "TURN allocation");
                        self.state = State::Allocated { relayed };
                        self.push(TurnEvent::Allocated { relayed });
                    }
                }
                Event::AllocateError(_, e) => {
                    let retries = match self.state {
                        State::Allocating { retries } => retries,
                        _ => continue,
                    };
                    match self.last_allocate_error.take() {
                        Some((438, _)) if retries < STALE_NONCE_RETRIES => {
                            tracing::debug!("TURN Allocate: stale nonce, retrying");
                            self.state = State::Idle;
                            match self.allocate(now) {
                                Ok(()) => {
                                    self.state = State::Allocating {
                                        retries: retries + 1,
                                    }
                                }
                                Err(e) => {
                                    self.fail(e);
                                }
                            }
                        }
                        Some((code @ 401, reason)) => {
                            self.fail(TurnError::AuthFailed { code, reason });
                        }
                        Some((code, reason)) => {
                            self.fail(TurnError::Refused {
                                request: "Allocate",
                                code,
                                reason,
                            });
                        }
                        None => {
                            self.fail(TurnError::Protocol(format!("Allocate: {e}")));
                        }
                    }
                }
                Event::CreatePermissionResponse(tid, peer) => {
                    self.permissions.remove(&tid);
                    if !self.permitted.contains(&peer) {
                        self.permitted.push(peer);
                    }
                    tracing::debug!(%peer, "TURN permission");
                    self.push(TurnEvent::PermissionCreated { peer });
                }
                Event::CreatePermissionError(tid, e) => {
                    let error = self.permission_errors.remove(&tid);
                    let Some(pending) = self.permissions.remove(&tid) else {
                        continue;
                    };
                    match error {
                        Some((438, _)) if pending.retries < STALE_NONCE_RETRIES => {
                            tracing::debug!(peer = %pending.peer, "TURN CreatePermission: stale nonce, retrying");
                            if let Err(e) = self.create_permission_attempt(
                                now,
                                pending.peer,
                                pending.retries + 1,
                            ) {
                                self.push(TurnEvent::PermissionFailed {
                                    peer: pending.peer,
                                    error: e,
                                });
                            }
                        }
                        Some((code, reason)) => self.push(TurnEvent::PermissionFailed {
                            peer: pending.peer,
                            error: TurnError::Refused {
                                request: "CreatePermission",
                                code,
                                reason,
                            },
                        }),
                        None => self.push(TurnEvent::PermissionFailed {
                            peer: pending.peer,
                            error: TurnError::Protocol(format!("CreatePermission: {e}")),
                        }),
                    }
                }
                Event::TransactionTimeout(tid) => {
                    if let Some(pending) = self.permissions.remove(&tid) {
                        self.push(TurnEvent::PermissionFailed {
                            peer: pending.peer,
                            error: TurnError::Timeout {
                                request: "CreatePermission",
                            },
                        });
                    } else if matches!(self.state, State::Allocating { .. }) {
                        self.fail(TurnError::Timeout {
                            request: "Allocate",
                        });
                    } else {
                        tracing::debug!("TURN transaction timed out (Refresh or ChannelBind)");
                    }
                }
                Event::DataIndicationOrChannelData(_, peer, data) => self.push(TurnEvent::Data {
                    peer,
                    data: data.to_vec(),
                }),
                other => tracing::trace!(?other, "TURN event ignored"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client against a scripted server: each answer is built with rtc-stun and fed back
    //! as stream bytes, so the 401 → credentials step, a stale nonce (438) and a refused
    //! password are checked without a real server (`tests/coturn.rs` uses coturn).

    use super::*;
    use rtc_stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
    use rtc_stun::error_code::ErrorCode;
    use rtc_stun::message::{CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, MessageType, Setter};
    use rtc_stun::textattrs::TextAttribute;
    use rtc_turn::proto::lifetime::Lifetime;
    use rtc_turn::proto::relayaddr::RelayedAddress;

    const RELAYED: &str = "192.0.2.15:50000";

    fn client() -> TurnClient {
        let server = TurnServer {
            addr: "192.0.2.1:3478".parse().expect("addr"),
            credentials: Credentials {
                username: "user".into(),
                password: "pass".into(),
            },
        };
        TurnClient::new(&server, "10.0.0.2:40000".parse().expect("addr")).expect("client")
    }

    /// The one request the client wrote since the last call.
    fn request(c: &mut TurnClient) -> Message {
        let bytes = c.poll_transmit().expect("a request");
        assert!(c.poll_transmit().is_none(), "one request at a time");
        let mut m = Message::new();
        m.raw = bytes;
        m.decode().expect("STUN");
        assert_eq!(m.typ, MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST));
        m
    }

    fn answer(
        c: &mut TurnClient,
        to: &Message,
        class: rtc_stun::message::MessageClass,
        attrs: Vec<Box<dyn Setter>>,
    ) {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(to.transaction_id),
            Box::new(MessageType::new(METHOD_ALLOCATE, class)),
        ];
        setters.extend(attrs);
        let mut m = Message::new();
        m.build(&setters).expect("build");
        // Split in two reads: the stream framing must reassemble it.
        let (a, b) = m.raw.split_at(7);
        c.handle_stream_data(Instant::now(), a).expect("stream");
        c.handle_stream_data(Instant::now(), b).expect("stream");
    }

    fn error(code: u16, nonce: &str) -> Vec<Box<dyn Setter>> {
        vec![
            Box::new(ErrorCodeAttribute {
                code: ErrorCode(code),
                reason: b"reason".to_vec(),
            }),
            Box::new(TextAttribute::new(ATTR_REALM, "oneway".into())),
            Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())),
        ]
    }

    fn success() -> Vec<Box<dyn Setter>> {
        let relayed: SocketAddr = RELAYED.parse().expect("addr");
        vec![
            Box::new(RelayedAddress {
                ip: relayed.ip(),
                port: relayed.port(),
            }),
            Box::new(Lifetime(Duration::from_secs(600))),
        ]
    }

    #[test]
    fn unauthorized_then_signed_allocate_succeeds() {
        let mut c = client();
        c.allocate(Instant::now()).expect("allocate");
        let first = request(&mut c);
        assert!(
            !first.contains(ATTR_USERNAME),
            "the first Allocate is anonymous"
        );
        answer(&mut c, &first, CLASS_ERROR_RESPONSE, error(401, "n1"));
        let signed = request(&mut c);
        assert!(signed.contains(ATTR_USERNAME) && signed.contains(ATTR_NONCE));
        answer(&mut c, &signed, CLASS_SUCCESS_RESPONSE, success());
        let relayed: SocketAddr = RELAYED.parse().expect("addr");
        assert_eq!(c.poll_event(), Some(TurnEvent::Allocated { relayed }));
        assert_eq!(c.relayed(), Some(relayed));
    }

    #[test]
    fn stale_nonce_is_retried_then_a_second_401_is_auth_failed() {
        let mut c = client();
        c.allocate(Instant::now()).expect("allocate");
        let first = request(&mut c);
        answer(&mut c, &first, CLASS_ERROR_RESPONSE, error(401, "n1"));
        let signed = request(&mut c);
        answer(&mut c, &signed, CLASS_ERROR_RESPONSE, error(438, "n2"));
        assert_eq!(c.poll_event(), None, "438 is retried, not reported");
        // The retry starts over (anonymous, then signed with the server's new nonce).
        let again = request(&mut c);
        answer(&mut c, &again, CLASS_ERROR_RESPONSE, error(401, "n3"));
        let signed = request(&mut c);
        answer(&mut c, &signed, CLASS_ERROR_RESPONSE, error(401, "n4"));
        match c.poll_event() {
            Some(TurnEvent::Failed(e)) => assert_eq!(e.code(), "turn-auth-failed", "{e}"),
            other => panic!("expected auth failure, got {other:?}"),
        }
        assert!(c.is_failed());
        assert!(c.poll_transmit().is_none());
    }

    #[test]
    fn other_errors_are_refusals_with_their_code() {
        let mut c = client();
        c.allocate(Instant::now()).expect("allocate");
        let first = request(&mut c);
        answer(&mut c, &first, CLASS_ERROR_RESPONSE, error(401, "n1"));
        let signed = request(&mut c);
        answer(&mut c, &signed, CLASS_ERROR_RESPONSE, error(486, "n1"));
        assert!(matches!(
            c.poll_event(),
            Some(TurnEvent::Failed(TurnError::Refused { code: 486, .. }))
        ));
    }

    #[test]
    fn sending_needs_an_allocation() {
        let mut c = client();
        let peer: SocketAddr = "192.0.2.9:1000".parse().expect("addr");
        assert_eq!(
            c.send_to(Instant::now(), peer, b"x"),
            Err(TurnError::NotAllocated)
        );
        assert_eq!(
            c.create_permission(Instant::now(), peer),
            Err(TurnError::NotAllocated)
        );
    }
}
