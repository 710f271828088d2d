//! The handle an application holds for one authenticated oneway connection, the same for every
//! stack (`oneway-str0m`, `oneway-webrtc`), so applications, the CLI and the benchmarks drive
//! all stacks alike.
//!
//! A stack runs each connection in a driver task that owns the sockets and the sans-IO engine.
//! The [`Connection`] handle talks to that task over channels: [`Command`]s go in (keyed by the
//! connection's id, so one task can serve many connections on one socket), and
//! [`ConnectionEvent`]s come out. Nothing here does I/O itself.
//!
//! The stacks also share what they report: [`DialError`] (with the stable cause codes of
//! `spec/handshake.md` §8), [`ListenerEvent`], [`ListenerStats`], [`Progress`] and [`StackError`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use std::time::Instant;
//! use oneway_connection::*;
//! use tokio::sync::mpsc;
//!
//! // What a stack does when a connection is authenticated:
//! let (commands, mut driver_inbox) = mpsc::unbounded_channel();
//! let (events, app_events) = mpsc::unbounded_channel();
//! let driver = tokio::spawn(async {});
//! let info = ConnectionInfo { timings: Timings::new(Instant::now()), selected: None, tried: vec![], fast_start: false, route: Route::OneWay };
//! let guard = Arc::new(DriverGuard::new(driver.abort_handle()));
//! let mut connection = Connection::new(7, commands, app_events, info, guard);
//!
//! events.send(ConnectionEvent::IceRestarted).unwrap();
//! assert_eq!(connection.next_event().await, Some(ConnectionEvent::IceRestarted));
//! connection.close("bye");
//! let (key, command) = driver_inbox.recv().await.unwrap();
//! assert_eq!(key, 7);
//! assert!(matches!(command, Command::Close { reason } if reason == "bye"));
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oneway_token::TokenError;
use tokio::sync::{mpsc, oneshot};

mod media;
pub mod net;
mod stats;

pub use media::{TrackDirection, TrackKind, TrackRequest, TrackStats};
pub use stats::{ListenerCounters, ListenerState, ListenerStats};

/// An application data channel of a connection (never channel 0, which oneway reserves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelRef(u32);

impl ChannelRef {
    /// A reference to the stack's application channel number `id` (stacks number their
    /// channels; applications only compare and pass these references back).
    pub fn new(id: u32) -> Self {
        ChannelRef(id)
    }

    /// The stack's number for this channel.
    pub fn id(self) -> u32 {
        self.0
    }
}

/// What a connection reports to its application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The peer opened a channel.
    ChannelOpen {
        /// The new channel.
        channel: ChannelRef,
        /// Its label.
        label: String,
    },
    /// A message arrived.
    Data {
        /// On this channel.
        channel: ChannelRef,
        /// Binary (`true`) or text.
        binary: bool,
        /// Payload.
        data: Vec<u8>,
    },
    /// A channel closed.
    ChannelClosed {
        /// The channel.
        channel: ChannelRef,
    },
    /// An ICE restart completed on this side.
    IceRestarted,
    /// The peer renegotiated in band (channel-0 `offer`, `spec/handshake.md` §6.2) and this
    /// side answered. Stacks without SDP renegotiation never report it.
    Renegotiated,
    /// A media track the peer added by renegotiation opened.
    TrackOpen {
        /// The track's id.
        track: String,
    },
    /// A remote track started to deliver RTP (its first packet arrived), with its kind.
    TrackAdded {
        /// The track's id.
        track: String,
        /// Audio or video.
        kind: TrackKind,
    },
    /// The peer refused something this side sent on channel 0 after authentication (an
    /// `error` message, `spec/handshake.md` §6): `renegotiation-failed`, `unexpected-answer`,
    /// `unsupported`, …; the connection carries on.
    PeerError {
        /// The stable code (`spec/handshake.md` §8).
        code: String,
        /// Details.
        reason: String,
    },
    /// Periodic statistics of a remote track (about once a second while RTP arrives): packet
    /// count and, for audio, the decoded tone's frequency.
    MediaStats(TrackStats),
    /// An RTP packet arrived on a remote track.
    Rtp {
        /// The track's id.
        track: String,
        /// RTP payload type.
        payload_type: u8,
        /// The RTP payload (encoded media).
        payload: Vec<u8>,
    },
    /// The connection ended.
    Closed {
        /// Stable code (`closed-by-peer`, `auth-failed`, `consent-lost`, …).
        code: &'static str,
        /// Details.
        reason: String,
    },
}

/// Why a connection operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The connection has ended.
    #[error("connection closed")]
    Closed,
    /// The engine refused the operation.
    #[error("{0}")]
    Refused(String),
}

/// How far a handshake got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// ICE checks running.
    Checking,
    /// ICE connected, DTLS not yet.
    Ice,
    /// DTLS connected, channel 0 not yet open.
    Dtls,
    /// Channel 0 open, proofs not yet verified.
    ChannelOpen,
    /// Authenticated.
    Authenticated,
}

impl Stage {
    /// Name used in errors and events.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Checking => "ice",
            Stage::Ice => "dtls",
            Stage::Dtls => "sctp",
            Stage::ChannelOpen => "auth",
            Stage::Authenticated => "connected",
        }
    }
}

/// When each stage completed.
#[derive(Clone, Debug)]
pub struct Timings {
    /// When the attempt started (token decoded, or first check received).
    pub started: Instant,
    /// First STUN check sent (dialer) or received (listener).
    pub first_check: Option<Instant>,
    /// ICE connected.
    pub ice_connected: Option<Instant>,
    /// DTLS connected.
    pub dtls_connected: Option<Instant>,
    /// Channel 0 open.
    pub channel_open: Option<Instant>,
    /// Both proofs verified.
    pub authenticated: Option<Instant>,
}

impl Timings {
    /// Timings of an attempt that started at `started`, no stage reached yet.
    pub fn new(started: Instant) -> Self {
        Timings {
            started,
            first_check: None,
            ice_connected: None,
            dtls_connected: None,
            channel_open: None,
            authenticated: None,
        }
    }

    /// The furthest stage reached.
    pub fn stage(&self) -> Stage {
        if self.authenticated.is_some() {
            Stage::Authenticated
        } else if self.channel_open.is_some() {
            Stage::ChannelOpen
        } else if self.dtls_connected.is_some() {
            Stage::Dtls
        } else if self.ice_connected.is_some() {
            Stage::Ice
        } else {
            Stage::Checking
        }
    }

    /// Milliseconds from `started` to `at`.
    pub fn ms(&self, at: Option<Instant>) -> Option<f64> {
        at.map(|t| t.saturating_duration_since(self.started).as_secs_f64() * 1000.0)
    }

    /// The stage times of the peer contract (`spec/peer-contract.md`).
    pub fn stage_times(&self) -> oneway_core::StageTimes {
        oneway_core::StageTimes {
            first_check: self.ms(self.first_check),
            ice: self.ms(self.ice_connected),
            dtls: self.ms(self.dtls_connected),
            channel: self.ms(self.channel_open),
            auth: self.ms(self.authenticated),
        }
    }
}

/// What is known about a connection once it is authenticated.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    /// Stage times.
    pub timings: Timings,
    /// `(local, remote)` of the selected candidate pair.
    pub selected: Option<(SocketAddr, SocketAddr)>,
    /// Remote addresses checked, in order, with the time of the first check (dialer only).
    pub tried: Vec<(SocketAddr, Duration)>,
    /// The connection took the token's fast start (`spec/handshake.md` §5.4): SNAP, channels
    /// without DCEP, early data.
    pub fast_start: bool,
    /// How the connection came up: one-way, or after the listener took the dialer's reply code.
    pub route: Route,
}

/// How a connection came up (`spec/handshake.md` §11; `route` in `spec/peer-contract.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// The dialer's checks reached a candidate of the token.
    #[default]
    OneWay,
    /// The listener took the dialer's reply code and checked towards it first (hole punching).
    Reply,
}

impl Route {
    /// The name in the peer contract: `one-way` or `reply`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::OneWay => "one-way",
            Route::Reply => "reply",
        }
    }
}

impl ConnectionInfo {
    /// The selected pair in the peer contract's form.
    pub fn selected_pair(&self) -> Option<oneway_core::SelectedPair> {
        self.selected
            .map(|(local, remote)| oneway_core::SelectedPair {
                local: local.to_string(),
                remote: remote.to_string(),
            })
    }
}

/// Keeps a driver task alive while any handle to it exists; aborts it when the last one goes.
#[derive(Debug)]
pub struct DriverGuard(tokio::task::AbortHandle);

impl DriverGuard {
    /// Guards the task behind `handle`.
    pub fn new(handle: tokio::task::AbortHandle) -> Self {
        DriverGuard(handle)
    }
}

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One authenticated connection. Dropping it closes the connection.
#[derive(Debug)]
pub struct Connection {
    key: u64,
    commands: mpsc::UnboundedSender<(u64, Command)>,
    events: mpsc::UnboundedReceiver<ConnectionEvent>,
    info: ConnectionInfo,
    _driver: Arc<DriverGuard>,
}

impl Connection {
    /// The handle for connection `key` of the driver task that reads `commands`, sends this
    /// connection's `events`, and is kept alive by `driver`.
    pub fn new(
        key: u64,
        commands: mpsc::UnboundedSender<(u64, Command)>,
        events: mpsc::UnboundedReceiver<ConnectionEvent>,
        info: ConnectionInfo,
        driver: Arc<DriverGuard>,
    ) -> Self {
        Connection {
            key,
            commands,
            events,
            info,
            _driver: driver,
        }
    }

    /// Stage times, the selected pair and the candidates tried.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The next event; `None` once the connection has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<ConnectionEvent> {
        self.events.recv().await
    }

    /// Opens an application channel (in band, by DCEP: no renegotiation needed).
    pub async fn open_channel(&self, label: &str) -> Result<ChannelRef, ConnectionError> {
        self.request(|reply| Command::Open {
            label: label.to_owned(),
            reply,
        })
        .await
    }

    /// Sends a binary message on `channel`. Returns once the message is queued.
    pub async fn send(&self, channel: ChannelRef, data: &[u8]) -> Result<(), ConnectionError> {
        self.request(|reply| Command::Send {
            channel,
            binary: true,
            data: data.to_vec(),
            reply,
        })
        .await
    }

    /// Sends a text message on `channel`.
    pub async fn send_text(&self, channel: ChannelRef, text: &str) -> Result<(), ConnectionError> {
        let data = text.as_bytes().to_vec();
        self.request(|reply| Command::Send {
            channel,
            binary: false,
            data,
            reply,
        })
        .await
    }

    /// Echoes every message back on its channel (text as text, binary as binary) until the
    /// connection ends or a send fails: the peer contract's `--echo` listener
    /// (`spec/peer-contract.md` §1).
    pub async fn echo(mut self) {
        while let Some(event) = self.next_event().await {
            if let ConnectionEvent::Data {
                channel,
                binary,
                data,
            } = event
            {
                let sent = if binary {
                    self.send(channel, &data).await
                } else {
                    self.send_text(channel, &String::from_utf8_lossy(&data))
                        .await
                };
                if sent.is_err() {
                    return;
                }
            }
        }
    }

    /// Restarts ICE over the connection: new credentials exchanged on channel 0, every pair
    /// checked again. Data keeps flowing on the old path meanwhile.
    pub async fn ice_restart(&self) -> Result<(), ConnectionError> {
        self.request(|reply| Command::IceRestart { reply }).await
    }

    /// Adds a media track by renegotiating in band (`spec/handshake.md` §6.2); returns the
    /// track's id once the peer's answer is applied. Stacks without in-band media refuse it.
    pub async fn add_track(&self, request: TrackRequest) -> Result<String, ConnectionError> {
        self.request(|reply| Command::AddTrack { request, reply })
            .await
    }

    /// Stops a track this side added (`track`: the id [`Connection::add_track`] returned) by
    /// renegotiating in band: its media stops at once, and the offer stops its m-line (port 0
    /// on str0m; `a=inactive` on webrtc-rs, whose `rtc` keeps a stopped transceiver's section).
    /// Returns the track's id once the peer's answer is applied.
    pub async fn remove_track(&self, track: &str) -> Result<String, ConnectionError> {
        let track = track.to_owned();
        self.request(|reply| Command::RemoveTrack { track, reply })
            .await
    }

    /// Changes the direction of a track this side added (`track`: the id
    /// [`Connection::add_track`] returned) by renegotiating in band; media this side sends on
    /// it stops or starts with it. Returns the track's id once the peer's answer is applied.
    pub async fn set_track_direction(
        &self,
        track: &str,
        direction: TrackDirection,
    ) -> Result<String, ConnectionError> {
        let track = track.to_owned();
        self.request(|reply| Command::SetTrackDirection {
            track,
            direction,
            reply,
        })
        .await
    }

    /// Sends a command that answers through a oneshot, and waits for the answer.
    async fn request<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, ConnectionError> {
        let (reply, result) = oneshot::channel();
        self.command(command(reply))?;
        result
            .await
            .map_err(|_| ConnectionError::Closed)?
            .map_err(ConnectionError::Refused)
    }

    /// Closes the connection, telling the peer why.
    pub fn close(&self, reason: &str) {
        let _ = self.command(Command::Close {
            reason: reason.to_owned(),
        });
    }

    fn command(&self, command: Command) -> Result<(), ConnectionError> {
        self.commands
            .send((self.key, command))
            .map_err(|_| ConnectionError::Closed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.commands.send((
            self.key,
            Command::Close {
                reason: "connection dropped".to_owned(),
            },
        ));
    }
}

/// A command from a `Connection` handle.
#[derive(Debug)]
pub enum Command {
    /// Open an application channel (DCEP) with this label.
    Open {
        /// Channel label.
        label: String,
        /// Where the new channel's reference goes.
        reply: oneshot::Sender<Result<ChannelRef, String>>,
    },
    /// Send on an application channel.
    Send {
        /// The channel.
        channel: ChannelRef,
        /// Binary (`true`) or text.
        binary: bool,
        /// Payload.
        data: Vec<u8>,
        /// Result.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Add a media track and renegotiate over channel 0 (`offer`/`answer`, §6.2).
    AddTrack {
        /// The track.
        request: TrackRequest,
        /// The new track's id, once the peer's answer is applied.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Remove a track this side added, by renegotiating over channel 0.
    RemoveTrack {
        /// The id `AddTrack` answered with.
        track: String,
        /// The track's id, once the peer's answer is applied.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Change the direction of a track this side added, by renegotiating over channel 0.
    SetTrackDirection {
        /// The id `AddTrack` answered with.
        track: String,
        /// The new direction, seen from this side.
        direction: TrackDirection,
        /// The track's id, once the peer's answer is applied.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Start an ICE restart over channel 0.
    IceRestart {
        /// Completes when the new credentials are in force on both sides.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Close the connection.
    Close {
        /// Reason sent to the peer.
        reason: String,
    },
}

/// Stage times of one two-way baseline connection (SDP offer/answer through memory), from the
/// start of signalling: what one-way connections are measured against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BaselineTimings {
    /// Offerer's ICE connected.
    pub ice: Option<Duration>,
    /// Offerer's DTLS connected.
    pub dtls: Option<Duration>,
    /// The data channel open on the offerer.
    pub channel: Option<Duration>,
    /// The first message came back.
    pub first_echo: Option<Duration>,
}

/// How a baseline's in-memory signalling presents each peer's host candidate to the other: it
/// is given the address a peer's socket is bound to and returns the address to advertise in its
/// place (e.g. a delaying proxy in front of it, to emulate a round-trip time). The identity
/// (`Ok(local)`) is the plain loopback baseline.
pub type Advertise<'a> = &'a mut (dyn FnMut(SocketAddr) -> std::io::Result<SocketAddr> + Send);

/// Replaces the candidate address `from` with `to` in SDP text or a single `candidate:` line
/// (`… <ip> <port> typ …`); other text is unchanged.
pub fn rewrite_candidate_address(sdp: &str, from: SocketAddr, to: SocketAddr) -> String {
    if from == to {
        return sdp.to_owned();
    }
    sdp.replace(
        &format!(" {} {} typ ", from.ip(), from.port()),
        &format!(" {} {} typ ", to.ip(), to.port()),
    )
}

/// Setup or I/O failure of a listener or dialer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// A socket or interface operation failed.
    #[error("I/O: {0}")]
    Io(String),
    /// The configuration cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// The WebRTC stack refused a setup step.
    #[error("WebRTC stack: {0}")]
    Rtc(String),
}

/// Stages a handshake reports as it goes (for `--json` events and timings).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The dialer's reply code is ready (`spec/handshake.md` §11): the listener's user can give
    /// it to the listener if the one-way attempt, which goes on, cannot reach it.
    ReplyCode {
        /// The code in its text form (`owr2.…`).
        code: String,
        /// The dialer candidates it carries, as `type transport address:port`.
        candidates: Vec<String>,
    },
    /// The dialer sent its first check to this remote address (the n-th tried).
    CandidateTried {
        /// Remote address.
        remote: SocketAddr,
        /// Time since the start.
        after: Duration,
    },
    /// ICE connected.
    IceConnected,
    /// DTLS connected.
    DtlsConnected,
    /// Channel 0 open.
    ChannelOpen,
    /// Both proofs verified.
    Authenticated,
}

/// What happened to dialers, for logs and `--json` events.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// A check with a valid token and integrity arrived: an engine was created.
    Admitted {
        /// The dialer's address.
        peer: SocketAddr,
    },
    /// A dialer reached a stage.
    Progress {
        /// The dialer's address.
        peer: SocketAddr,
        /// What it reached.
        progress: Progress,
    },
    /// A dialer was refused or dropped.
    Refused {
        /// The dialer's address.
        peer: SocketAddr,
        /// Stable code.
        code: &'static str,
        /// Details.
        reason: String,
    },
    /// A connection ended.
    Closed {
        /// The dialer's address.
        peer: SocketAddr,
        /// Stable code.
        code: &'static str,
    },
}

/// Why a dial failed. [`DialError::code`] gives the stable cause code of `spec/handshake.md` §8.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The token is expired (checked before anything is sent).
    #[error("token: {0}")]
    Token(#[from] TokenError),
    /// The token's profile needs a handshake this dialer does not implement.
    #[error("profile {profile} is not supported by the {dialer} dialer")]
    UnsupportedProfile {
        /// The token's profile.
        profile: &'static str,
        /// The dialer's stack.
        dialer: &'static str,
    },
    /// No candidate can be tried from here.
    #[error("no usable candidate: {0}")]
    NoUsableCandidate(String),
    /// Setup failed.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The stage named did not complete in time.
    #[error("timed out after {after:?} waiting for {} ({} remote addresses tried)", stage.name(), tried.len())]
    Timeout {
        /// The stage that did not complete.
        stage: Stage,
        /// The configured timeout.
        after: Duration,
        /// Remote addresses checked, in order.
        tried: Vec<SocketAddr>,
    },
    /// The connection ended before authentication; `code` comes from the peer or the engine.
    #[error("{code}: {reason}")]
    Closed {
        /// Stable code (e.g. `auth-failed`, `fingerprint-mismatch`).
        code: &'static str,
        /// Details.
        reason: String,
    },
}

impl DialError {
    /// The error of a dial that ran out of time at `stage`, having checked `tried`. When no
    /// check got through (`stage` is [`Stage::Checking`]) and the dialer's TURN relay failed,
    /// the relay's failure (its cause code such as `turn-auth-failed`, and its message) is the
    /// better explanation, and is what is returned.
    pub fn timed_out(
        stage: Stage,
        after: Duration,
        tried: Vec<SocketAddr>,
        relay_failure: Option<(&'static str, String)>,
    ) -> DialError {
        match relay_failure {
            Some((code, message)) if stage == Stage::Checking => DialError::Closed {
                code,
                reason: format!("no check got through, and the TURN relay failed: {message}"),
            },
            _ => DialError::Timeout {
                stage,
                after,
                tried,
            },
        }
    }

    /// Stable cause code for reports and exit messages.
    ///
    /// Some stacks (webrtc-rs's `rtc`) report no failure when the listener's certificate
    /// differs from the token's fingerprint: the DTLS handshake just never completes. So a
    /// wrong fingerprint may surface as `dtls-timeout`, as does a listener that stops
    /// answering after ICE.
    pub fn code(&self) -> &'static str {
        match self {
            DialError::Token(e) => e.code(),
            DialError::UnsupportedProfile { .. } => "unsupported-profile",
            DialError::NoUsableCandidate(_) => "no-usable-candidate",
            DialError::Stack(_) => "setup-failed",
            DialError::Timeout { stage, .. } => match stage {
                Stage::Checking => "ice-timeout",
                Stage::Ice => "dtls-timeout",
                Stage::Dtls => "sctp-timeout",
                Stage::ChannelOpen | Stage::Authenticated => "auth-timeout",
            },
            DialError::Closed { code, .. } => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_candidate_address_changes_only_that_candidate() {
        let sdp = "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n\
                   a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\n\
                   c=IN IP4 127.0.0.1\r\n";
        let from: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let to: SocketAddr = "127.0.0.2:50000".parse().expect("addr");
        let out = rewrite_candidate_address(sdp, from, to);
        assert_eq!(
            out,
            "a=candidate:1 1 udp 2130706431 127.0.0.2 50000 typ host\r\n\
             a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\n\
             c=IN IP4 127.0.0.1\r\n"
        );
        let line = "candidate:7 1 udp 1 127.0.0.1 40000 typ host generation 0";
        assert_eq!(
            rewrite_candidate_address(line, from, to),
            "candidate:7 1 udp 1 127.0.0.2 50000 typ host generation 0"
        );
        assert_eq!(rewrite_candidate_address(sdp, from, from), sdp);
    }
}
