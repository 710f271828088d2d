//! Reply codes of the `reply` profile (`spec/token.md` §12): the short text a browser dialer
//! shows, and the browser listener reads, when no one-way path exists between two browsers.
//!
//! ```text
//! owr1. + base64url( ufrag-len(1) pwd-len(1) packed-ice-chars  fingerprint(32)  crc8(1) )
//! ```
//! Its length follows from the dialer's credential lengths ([`ReplyCode::text_len`]): 80
//! characters with Chromium's (4-character ufrag, 24-character pwd), 92 with Firefox's (8, 32).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ice::{IceCredentials, IceError};
use crate::token::Fingerprint;

/// Prefix of a reply code of format version 1.
pub const REPLY_PREFIX: &str = "owr1.";

/// Why a reply code was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Not `owr<digits>.`.
    #[error("a reply code starts with owr1.")]
    MissingPrefix,
    /// A version other than 1.
    #[error("reply code version {0} is not supported")]
    UnknownVersion(String),
    /// Not canonical base64url.
    #[error("reply code has a character outside base64url")]
    InvalidText,
    /// The base64url text has a length, final character or trailing bits that cannot be
    /// whole bytes (`spec/token.md` §12 step 2).
    #[error("reply code length does not make whole bytes (cut or altered)")]
    InvalidTextLength,
    /// Too short to hold its fields.
    #[error("reply code is truncated")]
    Truncated,
    /// The CRC-8 differs: mistyped.
    #[error("reply code checksum differs: mistyped or damaged")]
    ChecksumMismatch,
    /// The credentials are malformed.
    #[error("reply code credentials: {0}")]
    Ice(#[from] IceError),
}

impl ReplyError {
    /// Stable code, in the vocabulary of `spec/token.md` §8.
    pub fn code(&self) -> &'static str {
        match self {
            ReplyError::MissingPrefix => "missing-prefix",
            ReplyError::UnknownVersion(_) => "unknown-version",
            ReplyError::InvalidText => "invalid-character",
            ReplyError::InvalidTextLength => "invalid-text-length",
            ReplyError::Truncated => "truncated",
            ReplyError::ChecksumMismatch => "checksum-mismatch",
            ReplyError::Ice(_) => "invalid-reply",
        }
    }
}

/// What a browser dialer sends back in the `reply` profile: its own ICE credentials and the
/// fingerprint of its DTLS certificate. Nothing else (candidates come from its checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyCode {
    /// The dialer's ICE credentials.
    pub ice: IceCredentials,
    /// SHA-256 of the dialer's DTLS certificate.
    pub fingerprint: Fingerprint,
}

/// CRC-8 with polynomial 0x07, initial value 0, no reflection, no final XOR (CRC-8/SMBUS;
/// `crc8(b"123456789") = 0xF4`). It detects every error burst of up to 8 bits, so every
/// single mistyped base64url character.
pub fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

impl ReplyCode {
    /// The binary form (before base64url).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.ice.to_packed();
        out.extend_from_slice(&self.fingerprint.0);
        out.push(crc8(&out));
        out
    }

    /// Length in bytes of the binary form for a ufrag of `ufrag_len` and a pwd of `pwd_len`
    /// characters (`spec/token.md` §12): `35 + ceil(3 (u + p) / 4)`.
    pub fn byte_len(ufrag_len: usize, pwd_len: usize) -> usize {
        2 + (6 * (ufrag_len + pwd_len)).div_ceil(8) + 32 + 1
    }

    /// Length in characters of the text form (`owr1.` + base64url) for those credential
    /// lengths: `5 + ceil(4 * byte_len / 3)`.
    pub fn text_len(ufrag_len: usize, pwd_len: usize) -> usize {
        REPLY_PREFIX.len() + (4 * Self::byte_len(ufrag_len, pwd_len)).div_ceil(3)
    }

    /// `owr1.` + base64url.
    pub fn to_text(&self) -> String {
        format!("{REPLY_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }

    /// Decodes a reply code (surrounding white space is ignored).
    pub fn from_text(text: &str) -> Result<Self, ReplyError> {
        let text = text.trim();
        let rest = text.strip_prefix("owr").ok_or(ReplyError::MissingPrefix)?;
        let (digits, body) = rest.split_once('.').ok_or(ReplyError::MissingPrefix)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReplyError::MissingPrefix);
        }
        if digits != "1" {
            return Err(ReplyError::UnknownVersion(digits.to_owned()));
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|e| match e {
            base64::DecodeError::InvalidByte(..) | base64::DecodeError::InvalidPadding => {
                ReplyError::InvalidText
            }
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
                ReplyError::InvalidTextLength
            }
        })?;
        if bytes.len() < 2 + 32 + 1 {
            return Err(ReplyError::Truncated);
        }
        let (content, crc) = bytes.split_at(bytes.len() - 1);
        if crc8(content) != crc[0] {
            return Err(ReplyError::ChecksumMismatch);
        }
        let (ice, fingerprint) = content.split_at(content.len() - 32);
        let mut fp = [0u8; 32];
        fp.copy_from_slice(fingerprint);
        Ok(ReplyCode {
            ice: IceCredentials::from_packed(ice)?,
            fingerprint: Fingerprint(fp),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc8_check_value() {
        assert_eq!(crc8(b"123456789"), 0xF4);
    }

    /// Every engine's credential lengths give the length the spec states (`spec/token.md` §12),
    /// and the formula matches the encoder for every length a code can carry.
    #[test]
    fn reply_length_per_engine() {
        let make = |u: usize, p: usize| ReplyCode {
            ice: IceCredentials::new("u".repeat(u), "p".repeat(p)).unwrap(),
            fingerprint: Fingerprint([0x5a; 32]),
        };
        // (engine, ufrag, pwd, bytes, characters)
        for (engine, u, p, bytes, chars) in
            [("Chromium", 4, 24, 56, 80), ("Firefox", 8, 32, 65, 92)]
        {
            let reply = make(u, p);
            assert_eq!(reply.to_bytes().len(), bytes, "{engine} bytes");
            assert_eq!(reply.to_text().len(), chars, "{engine} characters");
            assert_eq!(ReplyCode::text_len(u, p), chars, "{engine} formula");
        }
        for u in [4, 5, 6, 7, 8, 16, 32, 255] {
            for p in [22, 23, 24, 25, 32, 64, 255] {
                let text = make(u, p).to_text();
                assert_eq!(text.len(), ReplyCode::text_len(u, p), "u={u} p={p}");
                assert_eq!(ReplyCode::from_text(&text).unwrap(), make(u, p));
            }
        }
    }

    #[test]
    fn chromium_sized_reply_fits_80_chars() {
        let reply = ReplyCode {
            ice: IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs").unwrap(),
            fingerprint: Fingerprint([0xab; 32]),
        };
        let text = reply.to_text();
        assert!(text.len() <= 80, "{} chars", text.len());
        assert_eq!(ReplyCode::from_text(&text).unwrap(), reply);
        let mut damaged = text.clone().into_bytes();
        damaged[20] = if damaged[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            ReplyCode::from_text(std::str::from_utf8(&damaged).unwrap()),
            Err(ReplyError::ChecksumMismatch)
        );
    }
}
