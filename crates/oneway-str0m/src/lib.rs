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
//! Structure: this crate is only str0m's engine ([`engine`]: one `Rtc` through the Direct API
//! plus the handshake of `spec/handshake.md`), the [`Str0m`] stack that builds it for either
//! role ([`stack`]), and the two-way baseline. Sockets, gathering (host, STUN, mDNS), token
//! issuance, admission, routing, fallback and the TURN relay are the shared shell's
//! (`oneway-endpoint`); protocol rules shared by every stack live in `oneway-core`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod engine;
pub mod media;
pub mod stack;

pub use oneway_endpoint::{
    AddressScope, ChannelRef, Connection, ConnectionError, ConnectionEvent, ConnectionInfo,
    DangerousDialConfig, DialError, ListenerConfig, ListenerEvent, ListenerEvents, ListenerStats,
    Progress, StackError, Stage, Timings, TurnCredentials, TurnError, TurnServer,
};
pub use stack::Str0m;

/// A listener on str0m.
pub type Listener = oneway_endpoint::Listener<Str0m>;
/// How a str0m dialer connects.
pub type DialConfig = oneway_endpoint::DialConfig<Str0m>;

/// Connects to the listener of `token` with a str0m dialer; returns once both in-band proofs
/// have verified.
pub async fn dial(
    token: &oneway_token::Token,
    config: &DialConfig,
) -> Result<Connection, DialError> {
    oneway_endpoint::dial(token, config).await
}

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
