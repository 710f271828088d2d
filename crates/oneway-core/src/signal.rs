//! Messages on the `oneway` channel (data channel id 0), `spec/handshake.md` §6.
//!
//! One JSON object per data-channel message (sent as a string), at most
//! [`MAX_MESSAGE_BYTES`], with a version `"v": 1` and a `"type"`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::proof::PROOF_LEN;

/// Largest channel-0 message accepted. An SDP offer with a few media sections fits easily.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The message format version.
pub const SIGNAL_VERSION: u8 = 1;
/// Label of the channel these messages travel on.
pub const CHANNEL_LABEL: &str = "oneway";
/// SCTP stream id of that channel (negotiated out of band: both sides create it).
pub const CHANNEL_ID: u16 = 0;

/// One channel-0 message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Message {
    /// The sender's in-band proof (base64url, no padding, of the 32-byte MAC).
    Proof {
        /// The MAC.
        mac: String,
    },
    /// Starts an ICE restart with the sender's new credentials.
    IceRestart {
        /// New ufrag.
        ufrag: String,
        /// New pwd.
        pwd: String,
    },
    /// Answers an `ice-restart` with the receiver's new credentials.
    IceRestartAnswer {
        /// New ufrag.
        ufrag: String,
        /// New pwd.
        pwd: String,
    },
    /// An SDP offer for stacks that renegotiate with SDP (tracks, codecs).
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The SDP answer to an `offer`.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// Under a fast start (`spec/handshake.md` §5.5): the sender opened an application channel
    /// on negotiated SCTP stream `id` (no DCEP); sent before the channel's first data.
    Open {
        /// SCTP stream id: even from the dialer, odd from the listener, in order.
        id: u16,
        /// The channel's label.
        label: String,
    },
    /// The sender is closing the connection.
    Close {
        /// Why, for logs.
        reason: String,
    },
    /// The sender refused something; `code` is a stable name (e.g. `auth-failed`).
    Error {
        /// Stable name.
        code: String,
        /// Human-readable text.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u8,
    #[serde(flatten)]
    message: Message,
}

/// Why a channel-0 message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error("message of {0} bytes exceeds the 65536-byte limit")]
    TooLarge(usize),
    /// Not a JSON object of a known type with the required fields.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A `"v"` other than 1.
    #[error("unsupported message version {0}")]
    UnsupportedVersion(u64),
    /// A proof whose MAC is not 32 bytes of base64url.
    #[error("proof MAC is not 32 bytes of base64url")]
    BadProofEncoding,
}

impl SignalError {
    /// Stable short name.
    pub fn code(&self) -> &'static str {
        match self {
            SignalError::TooLarge(_) => "message-too-large",
            SignalError::Malformed(_) => "message-malformed",
            SignalError::UnsupportedVersion(_) => "message-version",
            SignalError::BadProofEncoding => "proof-encoding",
        }
    }
}

impl Message {
    /// A proof message for `mac`.
    pub fn proof(mac: &[u8; PROOF_LEN]) -> Self {
        Message::Proof {
            mac: URL_SAFE_NO_PAD.encode(mac),
        }
    }

    /// The MAC of a `proof` message, decoded; `None` for other types.
    pub fn proof_mac(&self) -> Option<Result<[u8; PROOF_LEN], SignalError>> {
        match self {
            Message::Proof { mac } => Some(
                URL_SAFE_NO_PAD
                    .decode(mac)
                    .ok()
                    .and_then(|bytes| <[u8; PROOF_LEN]>::try_from(bytes).ok())
                    .ok_or(SignalError::BadProofEncoding),
            ),
            _ => None,
        }
    }

    /// Serializes as the JSON text sent on the channel.
    pub fn encode(&self) -> String {
        // Serializing a plain enum of strings cannot fail.
        serde_json::to_string(&Envelope {
            v: SIGNAL_VERSION,
            message: self.clone(),
        })
        .unwrap_or_default()
    }

    /// Parses one received message.
    pub fn decode(bytes: &[u8]) -> Result<Self, SignalError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(SignalError::TooLarge(bytes.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| SignalError::Malformed(e.to_string()))?;
        match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(1) => {}
            Some(other) => return Err(SignalError::UnsupportedVersion(other)),
            None => return Err(SignalError::Malformed("missing \"v\"".to_owned())),
        }
        let envelope: Envelope =
            serde_json::from_value(value).map_err(|e| SignalError::Malformed(e.to_string()))?;
        Ok(envelope.message)
    }

    /// The message's `type` name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proof { .. } => "proof",
            Message::IceRestart { .. } => "ice-restart",
            Message::IceRestartAnswer { .. } => "ice-restart-answer",
            Message::Offer { .. } => "offer",
            Message::Answer { .. } => "answer",
            Message::Open { .. } => "open",
            Message::Close { .. } => "close",
            Message::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_stable() {
        assert_eq!(
            Message::IceRestart {
                ufrag: "abcd".into(),
                pwd: "p".repeat(22)
            }
            .encode(),
            r#"{"v":1,"type":"ice-restart","ufrag":"abcd","pwd":"pppppppppppppppppppppp"}"#
        );
        let proof = Message::proof(&[0; 32]);
        assert_eq!(
            proof.encode(),
            r#"{"v":1,"type":"proof","mac":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#
        );
        assert_eq!(
            Message::decode(proof.encode().as_bytes()),
            Ok(proof.clone())
        );
        assert_eq!(proof.proof_mac(), Some(Ok([0; 32])));
    }

    #[test]
    fn bad_messages_get_named_errors() {
        assert_eq!(
            Message::decode(b"{").expect_err("refused").code(),
            "message-malformed"
        );
        assert_eq!(
            Message::decode(br#"{"type":"close","reason":"x"}"#)
                .expect_err("refused")
                .code(),
            "message-malformed"
        );
        assert_eq!(
            Message::decode(br#"{"v":2,"type":"close","reason":"x"}"#)
                .expect_err("refused")
                .code(),
            "message-version"
        );
        assert_eq!(
            Message::decode(br#"{"v":1,"type":"launch"}"#)
                .expect_err("refused")
                .code(),
            "message-malformed"
        );
        assert_eq!(
            Message::decode(&vec![b' '; MAX_MESSAGE_BYTES + 1])
                .expect_err("refused")
                .code(),
            "message-too-large"
        );
        let short = Message::Proof { mac: "AAAA".into() };
        assert_eq!(short.proof_mac(), Some(Err(SignalError::BadProofEncoding)));
    }
}
