//! oneway on webrtc-rs: a one-way WebRTC listener that serves many dialers on one UDP socket,
//! and the dialer that connects to it with nothing but a token.
//!
//! Both roles are built on webrtc-rs's sans-IO core, the [`rtc`] crate (0.21), with one
//! `RTCPeerConnection` per connection, driven by a tokio task that owns the sockets. The async
//! `webrtc` crate on top of it cannot serve many dialers on one socket (it has no UDP mux) and
//! paces every stage by its own 200 ms timers; driving `rtc` directly avoids both. This crate
//! is only the engine ([`engine`]: a peer connection with the handshake of
//! `spec/handshake.md`, its SDP [`negotiation`], ICE [`restart`]s and the workarounds for
//! `rtc` in [`dtls_flights`] and [`nomination`]), the [`WebrtcRs`] stack that builds it
//! ([`stack`]), and the two-way baseline. Sockets, gathering (host, STUN, mDNS), token issuance,
//! admission, routing, fallback and the TURN relay are the shared shell's (`oneway-endpoint`);
//! protocol rules shared by every stack live in `oneway-core` and `oneway-token`.
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
mod dangerous;
mod dtls_flights;
pub mod engine;
pub mod media;
mod media_recv;
mod media_send;
mod negotiation;
mod nomination;
mod reply;
mod restart;
pub mod stack;

use std::time::Duration;

pub use oneway_endpoint::{
    AddressScope, ChannelRef, Connection, ConnectionError, ConnectionEvent, ConnectionInfo,
    DangerousDialConfig, DialError, ListenerConfig, ListenerEvent, ListenerEvents, ListenerStats,
    Progress, StackError, Stage, Timings, TurnCredentials, TurnError, TurnServer,
};
pub use stack::WebrtcRs;

/// A listener on webrtc-rs.
pub type Listener = oneway_endpoint::Listener<WebrtcRs>;
/// How a webrtc-rs dialer connects.
pub type DialConfig = oneway_endpoint::DialConfig<WebrtcRs>;

/// Connects to the listener of `token` with a webrtc-rs dialer; returns once both in-band
/// proofs have verified.
pub async fn dial(
    token: &oneway_token::Token,
    config: &DialConfig,
) -> Result<Connection, DialError> {
    oneway_endpoint::dial(token, config).await
}
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
