//! oneway on webrtc-rs: a one-way WebRTC listener that serves many dialers on one UDP socket,
//! and the dialer that connects to it with nothing but a token.
//!
//! Both roles are built on webrtc-rs's sans-IO core, the [`rtc`] crate (0.21), with one
//! `RTCPeerConnection` per connection, driven by a tokio task that owns the sockets. The async
//! `webrtc` crate on top of it cannot serve many dialers on one socket (it has no UDP mux) and
//! paces every stage by its own 200 ms timers; driving `rtc` directly avoids both. The engine
//! ([`engine`]) wraps a peer connection with the handshake of `spec/handshake.md`; protocol
//! rules shared by every stack (demultiplexing, proof, channel-0 messages, admission, SDP
//! synthesis) live in `oneway-core` and `oneway-token`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use oneway_webrtc::{DialConfig, Listener, ListenerConfig, dial};
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
//! Errors come from input and are named; a panic would be a bug.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod connection;
pub mod dialer;
pub mod engine;
pub mod listener;
pub mod net;

use std::time::Duration;

pub use connection::{
    ChannelRef, Connection, ConnectionError, ConnectionEvent, ConnectionInfo, Stage, Timings,
};
pub use dialer::{DangerousDialConfig, DialConfig, DialError, dial};
pub use listener::{Listener, ListenerConfig, ListenerEvent, ListenerEvents, ListenerStats};
pub use oneway_connection::{Progress, StackError};
pub use oneway_turn::{Credentials as TurnCredentials, TurnError, TurnServer};
pub use rtc::peer_connection::certificate::RTCCertificate;

/// The stack name used in `--json` events (`spec/peer-contract.md`).
pub const STACK: &str = "webrtc-rs";

/// How often the dialer's ICE agent sends a check while connecting. `rtc` defaults to 200 ms,
/// which delays every connection by up to that much; a dialer has a handful of candidates at
/// most, so a faster pace costs little.
pub const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(20);

/// How long the dialer's `rtc` agent waits after checks start before it may nominate a
/// server-reflexive or peer-reflexive pair (`rtc` defaults: 500 ms and 1 s, made for trickle
/// ICE where better candidates may still arrive). A one-way dialer has every candidate from the
/// token, in the listener's order, and checks the better pairs first, so it nominates the first
/// pair that works.
pub const REFLEXIVE_ACCEPTANCE_WAIT: Duration = Duration::ZERO;

/// The same wait for a pair on the dialer's TURN relay (`rtc` default: 2 s): short, but long
/// enough for direct pairs, checked first, to win when they work.
pub const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_millis(100);

/// A fresh self-signed ECDSA P-256 DTLS certificate and the SHA-256 of its DER (the
/// fingerprint a token carries).
pub fn generate_certificate() -> Result<(RTCCertificate, [u8; 32]), StackError> {
    use rtc::peer_connection::certificate::CertificateParams;
    use sha2::{Digest, Sha256};
    let provider = rtc::crypto::default_provider()
        .map_err(|e| StackError::Config(format!("crypto provider: {e}")))?;
    let params = CertificateParams::new(vec!["oneway".to_owned()])
        .map_err(|e| StackError::Config(format!("certificate parameters: {e}")))?;
    let cert = RTCCertificate::generate(
        provider.crypto(),
        rtc::crypto::SignatureScheme::EcdsaP256Sha256,
        params,
    )
    .map_err(|e| StackError::Config(format!("certificate: {e}")))?;
    let der = cert
        .dtls_certificate
        .certificate
        .first()
        .ok_or_else(|| StackError::Config("generated certificate has no DER".to_owned()))?;
    let fingerprint: [u8; 32] = Sha256::digest(der.as_ref()).into();
    Ok((cert, fingerprint))
}
