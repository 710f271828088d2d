//! Sans-IO protocol pieces of oneway that every stack shares (`spec/handshake.md`).
//!
//! Nothing here opens a socket, reads a clock or spawns a task: time and input are passed in,
//! so every rule is unit-tested without a network. The stack crates (`oneway-str0m`, …) are
//! thin shells that feed datagrams and events through these pieces.
//!
//! ```text
//!  datagram ─▶ STUN? ─▶ username::parse_dialer_username ─▶ token lookup ─▶ MESSAGE-INTEGRITY
//!                                                                   │ (stack's STUN code)
//!                           admission::Admission::admit ◀───────────┘
//!                                        │ one engine per dialer
//!  DTLS ─▶ SCTP ─▶ channel 0 ─▶ signal::Message::Proof ─▶ proof::verify ─▶ Admission::authenticated
//!                                        │
//!                          application channels, renegotiation (signal::Message)
//! ```
//!
//! Errors come from input and are named; a panic would be a bug.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod demux;
pub mod events;
pub mod handshake;
pub mod proof;
pub mod punch;
pub mod renegotiation;
pub mod signal;
pub mod stun_client;
pub mod username;

pub use admission::{Admission, AdmissionLimits, Refusal};
pub use events::{PeerEvent, SelectedPair, StageTimes};
pub use proof::{ProofMismatch, ProofRole};
pub use signal::{Message, SignalError};
pub use username::{DialerUsername, UsernameError, parse_dialer_username};
