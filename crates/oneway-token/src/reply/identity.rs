//! Reply codes of version 1, for the `reply` profile (`spec/token.md` §12.1): the short text a browser dialer
//! shows, and the browser listener reads, when no one-way path exists between two browsers.
//!
//! ```text
//! owr1. + base64url( ufrag-len(1) pwd-len(1) packed-ice-chars  fingerprint(32)  crc8(1) )
//! ```
//! Its length follows from the dialer's credential lengths ([`ReplyCode::text_len`]): 80
//! characters with Chromium's (4-character ufrag, 24-character pwd), 92 with Firefox's (8, 32).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ReplyError, crc8, decode_body, split_prefix};
use crate::ice::IceCredentials;
use crate::token::Fingerprint;

/// Prefix of a reply code of format version 1.
pub const REPLY_PREFIX: &str = "owr1.";

/// What a browser dialer sends back in the `reply` profile: its own ICE credentials and the
/// fingerprint of its DTLS certificate. Nothing else (candidates come from its checks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyCode {
    /// The dialer's ICE credentials.
    pub ice: IceCredentials,
    /// SHA-256 of the dialer's DTLS certificate.
    pub fingerprint: Fingerprint,
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
    /// characters (`spec/token.md` §12.1): `35 + ceil(3 (u + p) / 4)`.
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

    /// Decodes a version-1 reply code (surrounding white space is ignored). Other versions,
    /// `owr2.` included, are `unknown-version`: read those with [`super::AnyReply::from_text`].
    pub fn from_text(text: &str) -> Result<Self, ReplyError> {
        match split_prefix(text)? {
            ("1", body) => Self::from_body(body),
            (other, _) => Err(ReplyError::UnknownVersion(other.to_owned())),
        }
    }

    /// Decodes the base64url part of a version-1 code (`spec/token.md` §12.3 steps 2-5).
    pub(super) fn from_body(body: &str) -> Result<Self, ReplyError> {
        let bytes = decode_body(body)?;
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

    /// Every engine's credential lengths give the length the spec states (`spec/token.md` §12.1),
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
