//! The dialer's DTLS certificate in the `dialer-identity` profile (`spec/token.md` §7.3).
//!
//! A browser listener chooses the dialer's identity before anyone dials: it sets, as its
//! remote description, an answer naming the fingerprint of a certificate that the native dialer
//! later presents. Both sides build that certificate from the token secret alone, byte for
//! byte:
//!
//! ```text
//! d    = HKDF-SHA256(secret, "oneway/v1", "oneway/v1 dialer-cert-key", 32), big-endian, 1 ≤ d < n
//! Q    = d·G on P-256
//! tbs  = fixed template (v3, serial 1, CN=oneway, 2025-01-01 .. 9999-12-31) with Q
//! sig  = ECDSA-SHA256(d, tbs), nonce per RFC 6979 (deterministic)
//! cert = SEQUENCE { tbs, ecdsa-with-SHA256, BIT STRING sig }
//! ```
//!
//! Anyone holding the token can rebuild the key. That is no new power: the token is already a
//! bearer capability (`spec/security.md`), and the listener still authenticates the dialer by
//! the in-band proof.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePrivateKey as _;
use sha2::{Digest as _, Sha256};

use crate::derive::hkdf_expand;
use crate::token::{Fingerprint, Secret};

/// HKDF label of the dialer's P-256 private key.
pub const LABEL_DIALER_CERT_KEY: &str = "oneway/v1 dialer-cert-key";

/// `AlgorithmIdentifier { ecdsa-with-SHA256 }`.
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
/// `Name { CN=oneway }` (UTF8String), issuer and subject.
const NAME_ONEWAY: &[u8] = &[
    0x30, 0x11, 0x31, 0x0f, 0x30, 0x0d, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x06, b'o', b'n', b'e',
    b'w', b'a', b'y',
];
/// `Validity { UTCTime 250101000000Z, GeneralizedTime 99991231235959Z }`.
const VALIDITY: &[u8] = b"\x30\x20\x17\x0d250101000000Z\x18\x0f99991231235959Z";
/// `version [0] v3` and `serialNumber 1`.
const VERSION_AND_SERIAL: &[u8] = &[0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01];
/// `SubjectPublicKeyInfo` up to the 65-byte uncompressed point (id-ecPublicKey, prime256v1).
const SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The secret yields no P-256 key: the derived scalar is 0 or not below the group order.
/// A listener picks another secret (this happens for fewer than 1 in 2^32 secrets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the token secret gives no P-256 key (scalar 0 or not below the group order)")]
pub struct NoKeyForSecret;

/// The dialer's certificate and key, rebuilt from a token secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DialerCertificate {
    /// The private scalar `d`, 32 bytes big-endian.
    pub private_scalar: [u8; 32],
    /// The public key, uncompressed SEC1 point (65 bytes).
    pub public_key: Vec<u8>,
    /// DER of the TBSCertificate (what is signed).
    pub tbs_der: Vec<u8>,
    /// DER of the `Ecdsa-Sig-Value`.
    pub signature_der: Vec<u8>,
    /// DER of the certificate.
    pub certificate_der: Vec<u8>,
    /// The private key as PKCS#8 DER (what DTLS stacks load).
    pub private_key_pkcs8: Vec<u8>,
    /// SHA-256 of `certificate_der`: the fingerprint the listener writes in its remote answer.
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for DialerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialerCertificate")
            .field("fingerprint", &self.fingerprint.to_sdp_hex())
            .finish_non_exhaustive()
    }
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        n @ 0..=127 => out.push(n as u8),
        n @ 128..=255 => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(body);
    out
}

impl DialerCertificate {
    /// Builds the certificate of `spec/token.md` §7.3 for `secret`.
    pub fn derive(secret: &Secret) -> Result<Self, NoKeyForSecret> {
        let scalar = hkdf_expand::<32>(secret, LABEL_DIALER_CERT_KEY);
        let key = SigningKey::from_bytes(&scalar.into()).map_err(|_| NoKeyForSecret)?;
        let public_key = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let mut tbs_body = Vec::with_capacity(200);
        for part in [
            VERSION_AND_SERIAL,
            ECDSA_WITH_SHA256,
            NAME_ONEWAY,
            VALIDITY,
            NAME_ONEWAY,
            SPKI_PREFIX,
            &public_key,
        ] {
            tbs_body.extend_from_slice(part);
        }
        let tbs_der = der(0x30, &tbs_body);
        let signature: Signature = key.sign(&tbs_der);
        let signature_der = signature.to_der().as_bytes().to_vec();
        let mut bit_string = vec![0u8];
        bit_string.extend_from_slice(&signature_der);
        let mut cert_body = tbs_der.clone();
        cert_body.extend_from_slice(ECDSA_WITH_SHA256);
        cert_body.extend_from_slice(&der(0x03, &bit_string));
        let certificate_der = der(0x30, &cert_body);
        let private_key_pkcs8 = key
            .to_pkcs8_der()
            .map_err(|_| NoKeyForSecret)?
            .as_bytes()
            .to_vec();
        let fingerprint = Fingerprint(Sha256::digest(&certificate_der).into());
        Ok(DialerCertificate {
            private_scalar: scalar,
            public_key,
            tbs_der,
            signature_der,
            certificate_der,
            private_key_pkcs8,
            fingerprint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_verifiable() {
        use p256::ecdsa::signature::Verifier as _;
        let a = DialerCertificate::derive(&Secret([9; 16])).unwrap();
        let b = DialerCertificate::derive(&Secret([9; 16])).unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a.fingerprint,
            DialerCertificate::derive(&Secret([10; 16]))
                .unwrap()
                .fingerprint
        );
        let key = SigningKey::from_bytes(&a.private_scalar.into()).unwrap();
        let sig = Signature::from_der(&a.signature_der).unwrap();
        key.verifying_key().verify(&a.tbs_der, &sig).unwrap();
        assert_eq!(a.certificate_der[0], 0x30);
    }
}
