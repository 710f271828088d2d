//! oneway on [str0m]: a one-way WebRTC listener that serves many dialers on one socket per
//! address family, and the dialer that connects to it with nothing but a token.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use oneway_str0m::{DialConfig, Listener, ListenerConfig, dial};
//!
//! let mut listener = Listener::bind(ListenerConfig::loopback()).await?;
//! let token = listener.token().clone();            // publish token.to_text()
//! let dialer = tokio::spawn(async move { dial(&token, &DialConfig::default()).await });
//! let connection = listener.accept().await.expect("listener running");
//! let dialed = dialer.await??;
//! let channel = dialed.open_channel("chat").await?;
//! dialed.send(channel, b"hello").await?;
//! # drop(connection); Ok(()) }
//! ```
//!
//! Structure: each connection is a sans-socket engine ([`peer`]: one `Rtc` plus the handshake of
//! `spec/handshake.md`) driven by a tokio task that owns the sockets ([`listener`], [`dialer`]).
//! Protocol rules shared by every stack live in `oneway-core`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod connection;
pub mod dialer;
pub mod listener;
pub mod mdns;
pub mod net;
pub mod peer;

pub use oneway_connection::{Progress, StackError};

/// The stack name used in `--json` events (`spec/peer-contract.md`) and errors.
pub const STACK: &str = "str0m";

/// Initialises str0m's crypto library (aws-lc-rs) once per process. The first engine a process
/// builds takes about 35 ms longer than the next ones (1 ms; release build, 2-core EPYC): a
/// one-time cost that a dialer started for a single connection would otherwise pay between
/// decoding the token and sending its first check. Call it at start-up; later calls return at
/// once.
pub fn warm_up() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| drop(str0m::Rtc::builder().build(std::time::Instant::now())));
}

pub use connection::{
    ChannelRef, Connection, ConnectionError, ConnectionEvent, ConnectionInfo, Stage, Timings,
};
pub use dialer::{DangerousDialConfig, DialConfig, DialError, dial};
pub use listener::{Listener, ListenerConfig, ListenerEvent, ListenerEvents, ListenerStats};
pub use net::AddressScope;
pub use oneway_turn::{Credentials as TurnCredentials, TurnError, TurnServer};
