//! A sans-IO TURN client for oneway dialers: TURN over TCP to the server (RFC 8656 §3.1,
//! RFC 5766), with a UDP relay towards the peer.
//!
//! The protocol engine is webrtc-rs's sans-IO [`rtc_turn`] client (Allocate with long-term
//! credentials, CreatePermission, Send/Data indications, ChannelBind and ChannelData,
//! Refresh); this crate adds what a stream transport and a dialer need on top: cutting the TCP
//! byte stream into STUN and ChannelData frames ([`framing`]), precise errors with stable cause
//! codes ([`TurnError::code`], e.g. `turn-auth-failed`), and retries after a stale nonce.
//! With the `tokio` feature, [`link`] drives a client over a real TCP connection for a
//! dialer's event loop (used by the str0m and webrtc-rs dialers).
//!
//! ```no_run
//! use std::time::Instant;
//! use oneway_turn::{Credentials, TurnClient, TurnEvent, TurnServer};
//!
//! let server = TurnServer {
//!     addr: "198.51.100.3:3478".parse().unwrap(),
//!     credentials: Credentials { username: "oneway".into(), password: "oneway".into() },
//! };
//! // After connecting a TCP stream to `server.addr` from `local`:
//! let local = "10.0.0.2:40000".parse().unwrap();
//! let mut client = TurnClient::new(&server, local).unwrap();
//! client.allocate(Instant::now()).unwrap();
//! while let Some(bytes) = client.poll_transmit() {
//!     // write `bytes` to the stream; feed what is read to `client.handle_stream_data`
//! #   let _ = bytes;
//! }
//! while let Some(event) = client.poll_event() {
//!     if let TurnEvent::Allocated { relayed } = event { println!("relay at {relayed}") }
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
pub mod framing;
#[cfg(feature = "tokio")]
pub mod link;

pub use client::{
    Credentials, MAX_QUEUE, REFRESH_INTERVAL_CAP, STALE_NONCE_RETRIES, TurnClient, TurnError,
    TurnEvent, TurnServer,
};
