//! The handshake rules on channel 0 that every engine applies the same way
//! (`spec/handshake.md` §5): what a message before authentication means, how a peer's proof is
//! checked against the token and this DTLS session, and which cause codes a peer may send.
//!
//! Engines hold the stack-specific parts (where the DTLS fingerprints come from, how a message
//! is written); these functions decide.

use crate::proof::{self, PROOF_LEN, ProofRole};
use crate::signal::Message;

/// A reason to end a handshake, with its stable cause code (`spec/handshake.md` §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Stable code, e.g. `auth-failed`.
    pub code: &'static str,
    /// Details for logs and the peer.
    pub reason: String,
}

impl Failure {
    fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Failure {
            code,
            reason: reason.into(),
        }
    }
}

/// What a channel-0 message received before authentication means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BeforeAuth {
    /// The peer's proof MAC, to check with [`check_peer_proof`].
    Proof([u8; PROOF_LEN]),
    /// The peer refused us (`error`): end with its cause.
    RefusedByPeer(Failure),
    /// Anything else breaks the protocol: refuse the peer (tell it, then close).
    Violation(Failure),
}

/// Classifies a channel-0 message that arrived before authentication: only `proof` (or the
/// peer's `error`) may come first (`spec/handshake.md` §5.3).
pub fn before_auth(bytes: &[u8]) -> BeforeAuth {
    let message = match Message::decode(bytes) {
        Ok(m) => m,
        Err(e) => {
            return BeforeAuth::Violation(Failure::new(
                "auth-failed",
                format!("malformed message before the proof: {e}"),
            ));
        }
    };
    if let Message::Error { code, reason } = &message {
        return BeforeAuth::RefusedByPeer(Failure::new(known_code(code), reason.clone()));
    }
    match message.proof_mac() {
        Some(Ok(mac)) => BeforeAuth::Proof(mac),
        Some(Err(e)) => BeforeAuth::Violation(Failure::new("auth-failed", e.to_string())),
        None => BeforeAuth::Violation(Failure::new(
            "auth-failed",
            format!("{} before the proof", message.kind()),
        )),
    }
}

/// Checks the proof `mac` the peer of `own` sent. `fingerprints` are `(listener, dialer)`
/// SHA-256 fingerprints of this DTLS session's certificates (`None` if the stack cannot tell);
/// `token_fingerprint` is the token's. The listener's certificate must be the token's
/// (`fingerprint-mismatch` otherwise), and the MAC must bind both certificates
/// (`auth-failed`).
pub fn check_peer_proof(
    own: ProofRole,
    auth_key: &[u8; 32],
    token_fingerprint: &[u8; 32],
    fingerprints: Option<([u8; 32], [u8; 32])>,
    mac: &[u8; PROOF_LEN],
) -> Result<(), Failure> {
    let Some((listener_fp, dialer_fp)) = fingerprints else {
        return Err(Failure::new("auth-failed", "DTLS fingerprints unavailable"));
    };
    if listener_fp != *token_fingerprint {
        return Err(Failure::new(
            "fingerprint-mismatch",
            "listener certificate differs from the token",
        ));
    }
    proof::verify(auth_key, own.peer(), &listener_fp, &dialer_fp, mac)
        .map_err(|e| Failure::new("auth-failed", e.to_string()))
}

/// The proof `own` sends, bound to this session's `(listener, dialer)` fingerprints.
pub fn own_proof(
    own: ProofRole,
    auth_key: &[u8; 32],
    fingerprints: ([u8; 32], [u8; 32]),
) -> [u8; PROOF_LEN] {
    proof::compute(auth_key, own, &fingerprints.0, &fingerprints.1)
}

/// Cause codes a peer may send in `error` before authentication (`spec/handshake.md` §8).
pub const PEER_CAUSES: [&str; 11] = [
    "accept-queue-full",
    "bad-channel-open",
    "early-data-limit",
    "auth-failed",
    "fingerprint-mismatch",
    "token-expired",
    "token-used",
    "too-many-pending",
    "too-many-connections",
    "proof-timeout",
    "unsupported",
];

/// The static form of a cause code received from the peer; codes this implementation does not
/// know become `refused-by-peer`.
pub fn known_code(code: &str) -> &'static str {
    PEER_CAUSES
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("refused-by-peer")
}

/// RFC 7983 demultiplexing: DTLS records start with a byte in 20..=63.
pub fn is_dtls(contents: &[u8]) -> bool {
    contents.first().is_some_and(|b| (20..=63).contains(b))
}

/// A STUN Binding request or response as the path bookkeeping counts it (first byte 0 or 1).
pub fn is_stun_binding(contents: &[u8]) -> bool {
    contents.first().is_some_and(|b| *b < 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_proof_or_an_error_may_come_first() {
        let mac = [7u8; 32];
        assert_eq!(
            before_auth(Message::proof(&mac).encode().as_bytes()),
            BeforeAuth::Proof(mac)
        );
        let refused = Message::Error {
            code: "token-used".to_owned(),
            reason: "used".to_owned(),
        };
        assert_eq!(
            before_auth(refused.encode().as_bytes()),
            BeforeAuth::RefusedByPeer(Failure::new("token-used", "used"))
        );
        let foreign = Message::Error {
            code: "made-up".to_owned(),
            reason: String::new(),
        };
        assert!(matches!(
            before_auth(foreign.encode().as_bytes()),
            BeforeAuth::RefusedByPeer(Failure {
                code: "refused-by-peer",
                ..
            })
        ));
        let early = Message::Close {
            reason: "x".to_owned(),
        };
        assert!(matches!(
            before_auth(early.encode().as_bytes()),
            BeforeAuth::Violation(Failure {
                code: "auth-failed",
                ..
            })
        ));
        assert!(matches!(
            before_auth(b"\xff not json"),
            BeforeAuth::Violation(Failure {
                code: "auth-failed",
                ..
            })
        ));
    }

    #[test]
    fn a_proof_binds_the_token_fingerprint_and_both_certificates() {
        let key = [1u8; 32];
        let (listener, dialer) = ([2u8; 32], [3u8; 32]);
        let mac = own_proof(ProofRole::Dialer, &key, (listener, dialer));
        assert_eq!(
            check_peer_proof(
                ProofRole::Listener,
                &key,
                &listener,
                Some((listener, dialer)),
                &mac
            ),
            Ok(())
        );
        let wrong_listener = check_peer_proof(
            ProofRole::Listener,
            &key,
            &[9u8; 32],
            Some((listener, dialer)),
            &mac,
        );
        assert_eq!(
            wrong_listener.map_err(|f| f.code),
            Err("fingerprint-mismatch")
        );
        let other_session = check_peer_proof(
            ProofRole::Listener,
            &key,
            &listener,
            Some((listener, [4u8; 32])),
            &mac,
        );
        assert_eq!(other_session.map_err(|f| f.code), Err("auth-failed"));
        // A proof reflected back to its sender fails: the labels differ by role.
        let reflected = check_peer_proof(
            ProofRole::Dialer,
            &key,
            &listener,
            Some((listener, dialer)),
            &mac,
        );
        assert_eq!(reflected.map_err(|f| f.code), Err("auth-failed"));
        let unknown = check_peer_proof(ProofRole::Listener, &key, &listener, None, &mac);
        assert_eq!(unknown.map_err(|f| f.code), Err("auth-failed"));
    }
}
