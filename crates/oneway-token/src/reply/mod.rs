//! Reply codes (`spec/token.md` §12): the short text a dialer shows, and the listener's user
//! hands to the listener, when no one-way path exists.
//!
//! - Version 1, `owr1.` ([`ReplyCode`], §12.1): a browser dialer's ICE credentials and
//!   certificate fingerprint, for a browser listener (`reply` profile).
//! - Version 2, `owr2.` ([`CandidateReply`], §12.2): a dialer's ICE credentials and candidates,
//!   for a native listener that then checks towards the dialer (hole punching). Tagged with a
//!   key derived from the token's secret, and valid for [`REPLY_LIFETIME_SECS`].
//!
//! [`AnyReply::from_text`] reads either version.

mod candidates;
mod identity;
mod inspect;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::ice::IceError;

pub use candidates::{
    CandidateReply, MAX_REPLY_CANDIDATES, REPLY_LIFETIME_SECS, REPLY_MAX_SKEW_SECS,
    REPLY_TAG_PREFIX, REPLY_V2_FIXED_BYTES, REPLY_V2_PREFIX,
};
pub use identity::{REPLY_PREFIX, ReplyCode};
pub use inspect::ReplyInspection;

/// Why a reply code was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// Not `owr<digits>.`.
    #[error("a reply code starts with owr1.")]
    MissingPrefix,
    /// A version this decoder does not read.
    #[error("reply code version {0} is not supported")]
    UnknownVersion(String),
    /// Not canonical base64url.
    #[error("reply code has a character outside base64url")]
    InvalidText,
    /// The base64url text has a length, final character or trailing bits that cannot be
    /// whole bytes (`spec/token.md` §12.3 step 2).
    #[error("reply code length does not make whole bytes (cut or altered)")]
    InvalidTextLength,
    /// Too short to hold its fields.
    #[error("reply code is truncated")]
    Truncated,
    /// The CRC-8 differs: mistyped.
    #[error("reply code checksum differs: mistyped or damaged")]
    ChecksumMismatch,
    /// The credentials of a version-1 code are malformed.
    #[error("reply code credentials: {0}")]
    Ice(#[from] IceError),
    /// A version-2 code's fields break `spec/token.md` §12.2.
    #[error("malformed reply code: {0}")]
    Invalid(&'static str),
    /// The tag does not match this token's reply key: the code was made for another token,
    /// or altered.
    #[error("reply code was made for another token, or altered (tag differs)")]
    Foreign,
    /// The code is older than [`REPLY_LIFETIME_SECS`].
    #[error("reply code made at {issued} (unix seconds) has expired; now is {now}")]
    Expired {
        /// When the dialer made it.
        issued: u32,
        /// The time it was checked at.
        now: u64,
    },
    /// The code claims to be made more than [`REPLY_MAX_SKEW_SECS`] in the future.
    #[error(
        "reply code made at {issued} (unix seconds) is in the future; now is {now} (clocks differ)"
    )]
    ClockSkew {
        /// When the dialer says it made it.
        issued: u32,
        /// The time it was checked at.
        now: u64,
    },
}

impl ReplyError {
    /// Stable code, in the vocabulary of `spec/token.md` §8 and §12.3.
    pub fn code(&self) -> &'static str {
        match self {
            ReplyError::MissingPrefix => "missing-prefix",
            ReplyError::UnknownVersion(_) => "unknown-version",
            ReplyError::InvalidText => "invalid-character",
            ReplyError::InvalidTextLength => "invalid-text-length",
            ReplyError::Truncated => "truncated",
            ReplyError::ChecksumMismatch => "checksum-mismatch",
            ReplyError::Ice(_) | ReplyError::Invalid(_) => "invalid-reply",
            ReplyError::Foreign => "reply-foreign",
            ReplyError::Expired { .. } => "reply-expired",
            ReplyError::ClockSkew { .. } => "reply-clock-skew",
        }
    }
}

/// A reply code of either version, as [`AnyReply::from_text`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyReply {
    /// Version 1 (`owr1.`): a browser dialer's identity.
    Identity(ReplyCode),
    /// Version 2 (`owr2.`): a dialer's credentials and candidates.
    Candidates(CandidateReply),
}

impl AnyReply {
    /// Decodes a reply code of version 1 or 2 (surrounding white space is ignored). A
    /// version-2 code still needs [`CandidateReply::verify`].
    pub fn from_text(text: &str) -> Result<Self, ReplyError> {
        let (version, body) = split_prefix(text)?;
        match version {
            "1" => ReplyCode::from_body(body).map(AnyReply::Identity),
            "2" => CandidateReply::from_body(body).map(AnyReply::Candidates),
            other => Err(ReplyError::UnknownVersion(other.to_owned())),
        }
    }
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

/// Step 1 of `spec/token.md` §12.3: trims white space and splits `owr<digits>.` off, giving
/// the digits and the base64url body.
fn split_prefix(text: &str) -> Result<(&str, &str), ReplyError> {
    let rest = text
        .trim()
        .strip_prefix("owr")
        .ok_or(ReplyError::MissingPrefix)?;
    let (digits, body) = rest.split_once('.').ok_or(ReplyError::MissingPrefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReplyError::MissingPrefix);
    }
    Ok((digits, body))
}

/// Step 2 of `spec/token.md` §12.3: canonical base64url without padding, characters checked
/// before the length.
fn decode_body(body: &str) -> Result<Vec<u8>, ReplyError> {
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ReplyError::InvalidText);
    }
    URL_SAFE_NO_PAD.decode(body).map_err(|e| match e {
        base64::DecodeError::InvalidByte(..) | base64::DecodeError::InvalidPadding => {
            ReplyError::InvalidText
        }
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidLastSymbol(..) => {
            ReplyError::InvalidTextLength
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc8_check_value() {
        assert_eq!(crc8(b"123456789"), 0xF4);
    }

    #[test]
    fn prefix_and_version_dispatch() {
        assert_eq!(
            AnyReply::from_text("ow1.AAAA"),
            Err(ReplyError::MissingPrefix)
        );
        assert_eq!(
            AnyReply::from_text("owr.AAAA"),
            Err(ReplyError::MissingPrefix)
        );
        assert_eq!(
            AnyReply::from_text("owr3.AAAA"),
            Err(ReplyError::UnknownVersion("3".to_owned()))
        );
        assert_eq!(AnyReply::from_text("owr2.AA"), Err(ReplyError::Truncated));
        assert_eq!(AnyReply::from_text("owr2.A*"), Err(ReplyError::InvalidText));
        assert_eq!(
            AnyReply::from_text("owr2.AAAAA"),
            Err(ReplyError::InvalidTextLength)
        );
    }
}
