//! Errors of the token codec, named by cause.
//!
//! Every variant has a stable short [`code`](TokenError::code) (used by the CLI, JSON
//! output and `spec/vectors/invalid.json`) and a one-line `Display` text that names the
//! byte or field at fault.

use std::fmt;

/// Where in the binary token a read ran out of bytes.
///
/// Counts in `Candidate` and `Extension` are 1-based in `Display` ("candidate 2 of 3").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field {
    /// Byte 0: the format version.
    Version,
    /// Byte 1: the handshake profile.
    Profile,
    /// The 32-byte SHA-256 certificate fingerprint.
    Fingerprint,
    /// The 16-byte secret.
    Secret,
    /// The candidate count byte.
    CandidateCount,
    /// Candidate `index` (0-based) of `count`.
    Candidate {
        /// 0-based index of the candidate being read.
        index: u8,
        /// Number of candidates the token announced.
        count: u8,
    },
    /// The extension count byte.
    ExtensionCount,
    /// Extension `index` (0-based) of `count`.
    Extension {
        /// 0-based index of the extension being read.
        index: u8,
        /// Number of extensions the token announced.
        count: u8,
    },
    /// The trailing CRC-32.
    Checksum,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Version => f.write_str("version"),
            Field::Profile => f.write_str("profile"),
            Field::Fingerprint => f.write_str("fingerprint"),
            Field::Secret => f.write_str("secret"),
            Field::CandidateCount => f.write_str("candidate count"),
            Field::Candidate { index, count } => write!(f, "candidate {} of {}", index + 1, count),
            Field::ExtensionCount => f.write_str("extension count"),
            Field::Extension { index, count } => write!(f, "extension {} of {}", index + 1, count),
            Field::Checksum => f.write_str("checksum"),
        }
    }
}

/// Why a token could not be decoded, encoded or used.
///
/// Grouped as in the spec (`spec/token.md` §8): text-layer errors, binary structure
/// errors, checksum, then semantic errors. Decoding reports the first error in that order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The input was empty (or only white space).
    #[error("empty input")]
    Empty,
    /// The text is longer than any valid token.
    #[error("text is {len} characters long; no valid token is longer than {max}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text does not start with `ow1.`/`OW1.` and is not a URL with such a fragment.
    #[error("expected a token starting with `ow1.` or `OW1.`, or a URL whose fragment is one")]
    MissingPrefix,
    /// The text or binary form names a version this codec does not implement.
    #[error("unknown token version {0} (this codec implements version 1)")]
    UnknownVersion(u8),
    /// A character outside the text form's alphabet.
    #[error("invalid {alphabet} character {found:?} at position {position}")]
    InvalidCharacter {
        /// `base64url` or `base32`.
        alphabet: &'static str,
        /// The offending character.
        found: char,
        /// 0-based position in Unicode code points from the start of the trimmed input
        /// (`spec/token.md` §6.4 step 4): URL and prefix included.
        position: usize,
    },
    /// The text's length or final character cannot be the unpadded encoding of whole bytes.
    #[error("{alphabet} text ends in a partial byte (the token was cut or altered)")]
    InvalidTextLength {
        /// `base64url` or `base32`.
        alphabet: &'static str,
    },
    /// The binary form ended while `field` was being read.
    #[error("truncated at byte {at} ({field})")]
    Truncated {
        /// Length of the input: the offset at which more bytes were needed.
        at: usize,
        /// What was being read.
        field: Field,
    },
    /// Bytes remain after the checksum.
    #[error("unexpected data after the checksum: {count} byte(s) from byte {at}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        at: usize,
        /// How many extra bytes.
        count: usize,
    },
    /// The CRC-32 does not match: the token was altered or mistyped.
    #[error(
        "checksum mismatch: token says {found:08x}, content gives {expected:08x} (token altered or mistyped)"
    )]
    ChecksumMismatch {
        /// CRC-32 computed over the content.
        expected: u32,
        /// CRC-32 stored in the token.
        found: u32,
    },
    /// The profile byte has no defined meaning.
    #[error("unknown profile {0}")]
    UnknownProfile(u8),
    /// The token lists no candidates.
    #[error("no candidates: a dialer would have nothing to connect to")]
    NoCandidates,
    /// More candidates than the format allows.
    #[error("{count} candidates; at most {max} are allowed")]
    TooManyCandidates {
        /// Number of candidates.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A candidate's kind byte uses reserved bits or values.
    #[error("candidate {} has kind byte {kind:#04x} with reserved bits or values", index + 1)]
    UnknownCandidateKind {
        /// 0-based candidate index.
        index: usize,
        /// The kind byte.
        kind: u8,
    },
    /// An mDNS candidate is not of type host.
    #[error("candidate {} is an mDNS name but not of type host", index + 1)]
    MdnsNotHost {
        /// 0-based candidate index.
        index: usize,
    },
    /// A candidate has port 0.
    #[error("candidate {} has port 0", index + 1)]
    ZeroPort {
        /// 0-based candidate index.
        index: usize,
    },
    /// A candidate has the unspecified address (`0.0.0.0` or `::`).
    #[error("candidate {} has the unspecified address", index + 1)]
    UnspecifiedAddress {
        /// 0-based candidate index.
        index: usize,
    },
    /// Two candidates are identical.
    #[error("candidate {} repeats candidate {}", index + 1, first + 1)]
    DuplicateCandidate {
        /// 0-based index of the repetition.
        index: usize,
        /// 0-based index of the first occurrence.
        first: usize,
    },
    /// More extensions than the format allows.
    #[error("{count} extensions; at most {max} are allowed")]
    TooManyExtensions {
        /// Number of extensions.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Extension types must be strictly ascending (which also forbids duplicates).
    #[error("extension {} has type {found:#04x} after {previous:#04x}; types must be strictly ascending", index + 1)]
    ExtensionNotAscending {
        /// 0-based extension index.
        index: usize,
        /// Type of the extension before it.
        previous: u8,
        /// Type of this extension.
        found: u8,
    },
    /// An extension in the comprehension-required range (0x00-0x7f) that this codec does not know.
    #[error("unknown required extension {0:#04x}")]
    UnknownRequiredExtension(u8),
    /// A known extension has the wrong length.
    #[error("extension {ty:#04x} ({name}) has length {len}; expected {expected}")]
    BadExtensionLength {
        /// Extension type.
        ty: u8,
        /// Extension name.
        name: &'static str,
        /// Length found.
        len: usize,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A known extension has a value outside its domain.
    #[error("extension {ty:#04x} ({name}) is invalid: {reason}")]
    InvalidExtensionValue {
        /// Extension type.
        ty: u8,
        /// Extension name.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The extension may not appear in tokens of this profile.
    #[error("extension {ty:#04x} ({name}) is not allowed in profile {profile}")]
    ExtensionNotAllowed {
        /// Extension type.
        ty: u8,
        /// Extension name.
        name: &'static str,
        /// The token's profile.
        profile: &'static str,
    },
    /// The profile requires an extension the token lacks.
    #[error("profile {profile} requires extension {ty:#04x} ({name})")]
    MissingExtension {
        /// Extension type.
        ty: u8,
        /// Extension name.
        name: &'static str,
        /// The token's profile.
        profile: &'static str,
    },
    /// The token's expiry time has passed.
    #[error("expired at {expired_at} (unix seconds); now is {now}")]
    Expired {
        /// The token's `expires` value.
        expired_at: u64,
        /// The time it was checked at.
        now: u64,
    },
}

impl TokenError {
    /// A stable, short, kebab-case name for this error, for machines (JSON, vectors, reports).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Empty => "empty",
            TokenError::TooLong { .. } => "too-long",
            TokenError::MissingPrefix => "missing-prefix",
            TokenError::UnknownVersion(_) => "unknown-version",
            TokenError::InvalidCharacter { .. } => "invalid-character",
            TokenError::InvalidTextLength { .. } => "invalid-text-length",
            TokenError::Truncated { .. } => "truncated",
            TokenError::TrailingBytes { .. } => "trailing-bytes",
            TokenError::ChecksumMismatch { .. } => "checksum-mismatch",
            TokenError::UnknownProfile(_) => "unknown-profile",
            TokenError::NoCandidates => "no-candidates",
            TokenError::TooManyCandidates { .. } => "too-many-candidates",
            TokenError::UnknownCandidateKind { .. } => "unknown-candidate-kind",
            TokenError::MdnsNotHost { .. } => "mdns-not-host",
            TokenError::ZeroPort { .. } => "zero-port",
            TokenError::UnspecifiedAddress { .. } => "unspecified-address",
            TokenError::DuplicateCandidate { .. } => "duplicate-candidate",
            TokenError::TooManyExtensions { .. } => "too-many-extensions",
            TokenError::ExtensionNotAscending { .. } => "extension-not-ascending",
            TokenError::UnknownRequiredExtension(_) => "unknown-required-extension",
            TokenError::BadExtensionLength { .. } => "bad-extension-length",
            TokenError::InvalidExtensionValue { .. } => "invalid-extension-value",
            TokenError::ExtensionNotAllowed { .. } => "extension-not-allowed",
            TokenError::MissingExtension { .. } => "missing-extension",
            TokenError::Expired { .. } => "expired",
        }
    }
}
