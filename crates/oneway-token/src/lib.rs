//! Reference codec for **oneway tokens**: everything a WebRTC dialer needs to connect to a
//! listener with nothing sent back, in one compact string.
//!
//! This crate is the executable form of `spec/token.md`; read them side by side. It is pure:
//! no I/O, no clock, no async, no WebRTC stack.
//!
//! ```text
//!   Token ──to_bytes──▶ binary (§4) ──base64url──▶ "ow1.…"      (links, chat, URL fragments)
//!     ▲                     │       ──base32─────▶ "OW1.…"      (QR alphanumeric mode)
//!     └────from_bytes───────┘
//!   SDP offer ──Token::from_offer──▶ Token ──remote_description──▶ SDP for setRemoteDescription
//!   Token ──derive()──▶ ICE ufrag/pwd, auth key (HKDF-SHA256, §7)
//! ```
//!
//! # Example
//! ```
//! use oneway_token::{Candidate, Fingerprint, Profile, Secret, Token};
//!
//! let token = Token::new(
//!     Profile::Native,
//!     Fingerprint([0xab; 32]),
//!     Secret([0x42; 16]),
//!     vec![Candidate::udp_host([192, 0, 2, 10], 50_000)],
//! );
//! let text = token.to_text()?;
//! assert!(text.starts_with("ow1.") && text.len() <= 90);
//! assert_eq!(Token::from_text(&format!("https://example.org/p#{text}"))?, token);
//! # Ok::<(), oneway_token::TokenError>(())
//! ```
//!
//! # Errors and panics
//! Errors come from input; a panic would be a bug. Every function that reads a token, a text
//! form or SDP returns a named error ([`TokenError`], [`SdpError`]) with a stable
//! [`code`](TokenError::code), and never panics, whatever the input (checked by property
//! tests and the `fuzz/` targets).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binary;
pub mod derive;
pub mod dialer_cert;
mod error;
pub mod ice;
pub mod inspect;
pub mod qr;
pub mod reply;
pub mod sdp;
mod text;
mod token;

pub use binary::{FIXED_OVERHEAD, VERSION, ext};
pub use derive::DerivedKeys;
pub use error::{Field, TokenError};
pub use ice::{IceCredentials, IceError};
pub use sdp::{OfferOptions, SdpError, SdpType};
pub use text::{MAX_TEXT_LEN, QR_TEXT_PREFIX, TEXT_PREFIX, TextForm, text_to_bytes};
pub use token::{
    Candidate, CandidateAddress, CandidateType, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_SCTP_PORT,
    FastPath, Fingerprint, MAX_CANDIDATES, MAX_EXTENSIONS, MAX_LABEL_BYTES, MAX_STUN_SERVERS,
    MappedCandidate, MappingProtocol, Profile, RawExtension, SctpParams, Secret, Token, Transport,
    format_uuid, parse_uuid,
};
