//! The in-band proof (`spec/handshake.md` §5): each side shows it holds the token secret,
//! bound to both DTLS certificates of this very session.
//!
//! ```text
//! mac = HMAC-SHA256(auth-key, label ‖ listener-fingerprint ‖ dialer-fingerprint)
//! label = "oneway/v1 proof dialer" | "oneway/v1 proof listener"
//! ```
//! The fingerprints are the SHA-256 of each side's DTLS certificate as the DTLS handshake
//! presented it. A proof relayed from another DTLS session names another certificate and fails.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of a proof MAC in bytes.
pub const PROOF_LEN: usize = 32;

/// Whose proof it is: the labels differ so a proof cannot be reflected back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofRole {
    /// Sent by the dialer, checked by the listener.
    Dialer,
    /// Sent by the listener, checked by the dialer.
    Listener,
}

impl ProofRole {
    /// The HMAC label.
    pub fn label(self) -> &'static [u8] {
        match self {
            ProofRole::Dialer => b"oneway/v1 proof dialer",
            ProofRole::Listener => b"oneway/v1 proof listener",
        }
    }

    /// The other side.
    pub fn peer(self) -> ProofRole {
        match self {
            ProofRole::Dialer => ProofRole::Listener,
            ProofRole::Listener => ProofRole::Dialer,
        }
    }
}

/// The proof did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("in-band proof does not match: wrong token secret, or a proof from another DTLS session")]
pub struct ProofMismatch;

fn mac(
    auth_key: &[u8; 32],
    role: ProofRole,
    listener_fp: &[u8; 32],
    dialer_fp: &[u8; 32],
) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; a 32-byte key cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(auth_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(role.label());
    mac.update(listener_fp);
    mac.update(dialer_fp);
    mac
}

/// Computes the proof `role` sends.
pub fn compute(
    auth_key: &[u8; 32],
    role: ProofRole,
    listener_fp: &[u8; 32],
    dialer_fp: &[u8; 32],
) -> [u8; PROOF_LEN] {
    mac(auth_key, role, listener_fp, dialer_fp)
        .finalize()
        .into_bytes()
        .into()
}

/// Verifies a received proof in constant time.
pub fn verify(
    auth_key: &[u8; 32],
    role: ProofRole,
    listener_fp: &[u8; 32],
    dialer_fp: &[u8; 32],
    received: &[u8],
) -> Result<(), ProofMismatch> {
    mac(auth_key, role, listener_fp, dialer_fp)
        .verify_slice(received)
        .map_err(|_| ProofMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [1; 32];
    const A: [u8; 32] = [0xaa; 32];
    const B: [u8; 32] = [0xbb; 32];

    #[test]
    fn proofs_bind_key_role_and_both_certificates() {
        let p = compute(&KEY, ProofRole::Dialer, &A, &B);
        assert_eq!(verify(&KEY, ProofRole::Dialer, &A, &B, &p), Ok(()));
        assert_eq!(
            verify(&[2; 32], ProofRole::Dialer, &A, &B, &p),
            Err(ProofMismatch),
            "other secret"
        );
        assert_eq!(
            verify(&KEY, ProofRole::Listener, &A, &B, &p),
            Err(ProofMismatch),
            "reflected"
        );
        assert_eq!(
            verify(&KEY, ProofRole::Dialer, &A, &[0xcc; 32], &p),
            Err(ProofMismatch),
            "relayed"
        );
        assert_eq!(
            verify(&KEY, ProofRole::Dialer, &B, &A, &p),
            Err(ProofMismatch),
            "swapped"
        );
        assert_eq!(
            verify(&KEY, ProofRole::Dialer, &A, &B, &p[..31]),
            Err(ProofMismatch),
            "truncated"
        );
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key = 32 × 0x01, "oneway/v1 proof dialer" ‖ 32 × 0xaa ‖ 32 × 0xbb),
        // computed independently with Python's hmac module.
        let p = compute(&KEY, ProofRole::Dialer, &A, &B);
        let hex: String = p.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, KNOWN_DIALER_PROOF);
    }

    const KNOWN_DIALER_PROOF: &str =
        "2df5cde8e012daba291bdf61d0601ae66e06c5f5e85c706a1cb96ef0703d3b98";
}
