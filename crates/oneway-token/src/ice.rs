//! ICE credentials: RFC 8839 validation, the listener ufrag composition of the `native`
//! profile, and the 6-bit packing used by the `listener-ice` extension.

use std::fmt;

/// Fewest characters in an ICE ufrag (RFC 8839 §5.4).
pub const MIN_UFRAG_CHARS: usize = 4;
/// Fewest characters in an ICE pwd (RFC 8839 §5.4).
pub const MIN_PWD_CHARS: usize = 22;
/// Most characters in an ICE ufrag or pwd (RFC 8839 §5.4).
pub const MAX_ICE_CHARS: usize = 256;
/// Separator between the token ufrag and the dialer's pwd in a composed listener ufrag
/// (`native` profile, `spec/token.md` §7.2).
pub const COMPOSED_UFRAG_SEPARATOR: char = '+';
/// The separator of a composed listener ufrag whose dialer announces a *fast start*
/// (`spec/handshake.md` §4.2, §5.4): its ufrag is then its SCTP INIT chunk in base64.
pub const FAST_START_SEPARATOR: char = '/';

/// The ice-char alphabet (RFC 8839: ALPHA / DIGIT / "+" / "/"), in the order of the standard
/// base64 alphabet, which is what the 6-bit packing uses.
const ICE_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why ICE credentials were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// A ufrag or pwd has a character outside the ice-char alphabet.
    #[error("{what} contains {found:?}, which is not an ice-char (A-Z a-z 0-9 + /)")]
    BadCharacter {
        /// `ufrag` or `pwd`.
        what: &'static str,
        /// The offending character.
        found: char,
    },
    /// A ufrag or pwd is too short or too long.
    #[error("{what} has {len} characters; RFC 8839 allows {min} to {max}")]
    BadLength {
        /// `ufrag` or `pwd`.
        what: &'static str,
        /// Its length.
        len: usize,
        /// Minimum.
        min: usize,
        /// Maximum.
        max: usize,
    },
    /// A composed listener ufrag does not have the `<token ufrag>+<dialer pwd>` shape.
    #[error("ufrag {0:?} is not <8-char token ufrag>+<dialer pwd>")]
    NotComposed(String),
    /// A packed credential value is malformed.
    #[error("packed ICE credentials are malformed: {0}")]
    BadPacking(&'static str),
}

/// An ICE username fragment and password (RFC 8839 §5.4), validated.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IceCredentials {
    ufrag: String,
    pwd: String,
}

impl IceCredentials {
    /// Validates both values against RFC 8839's lengths and alphabet.
    pub fn new(ufrag: impl Into<String>, pwd: impl Into<String>) -> Result<Self, IceError> {
        let (ufrag, pwd) = (ufrag.into(), pwd.into());
        check_ice_chars("ufrag", &ufrag, MIN_UFRAG_CHARS)?;
        check_ice_chars("pwd", &pwd, MIN_PWD_CHARS)?;
        Ok(IceCredentials { ufrag, pwd })
    }

    /// The username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// The password.
    pub fn pwd(&self) -> &str {
        &self.pwd
    }

    /// Packs as the `listener-ice` extension value: ufrag length, pwd length, then the
    /// characters at 6 bits each (`spec/token.md` §5.3).
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = vec![self.ufrag.len() as u8, self.pwd.len() as u8];
        pack_ice_chars(self.ufrag.bytes().chain(self.pwd.bytes()), &mut out);
        out
    }

    /// Unpacks a `listener-ice` extension value.
    pub fn from_packed(value: &[u8]) -> Result<Self, IceError> {
        let [ufrag_len, pwd_len, packed @ ..] = value else {
            return Err(IceError::BadPacking("shorter than its two length bytes"));
        };
        let (ufrag_len, pwd_len) = (*ufrag_len as usize, *pwd_len as usize);
        let chars = ufrag_len + pwd_len;
        if packed.len() != (chars * 6).div_ceil(8) {
            return Err(IceError::BadPacking(
                "length does not match the character counts",
            ));
        }
        let text = unpack_ice_chars(packed, chars)?;
        let (ufrag, pwd) = text.split_at(ufrag_len);
        IceCredentials::new(ufrag, pwd)
    }
}

impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"..")
            .finish()
    }
}

pub(crate) fn check_ice_chars(what: &'static str, value: &str, min: usize) -> Result<(), IceError> {
    if let Some(found) = value.chars().find(|c| !is_ice_char(*c)) {
        return Err(IceError::BadCharacter { what, found });
    }
    if !(min..=MAX_ICE_CHARS).contains(&value.len()) {
        return Err(IceError::BadLength {
            what,
            len: value.len(),
            min,
            max: MAX_ICE_CHARS,
        });
    }
    Ok(())
}

/// Whether `c` is an ice-char (RFC 8839: ALPHA / DIGIT / "+" / "/").
pub fn is_ice_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/'
}

pub(crate) fn pack_ice_chars(chars: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in chars {
        // Callers pass validated ice-chars; an unknown byte would be a bug, packed as 0.
        let sextet = ICE_ALPHABET.iter().position(|&a| a == c).unwrap_or(0) as u32;
        acc = (acc << 6) | sextet;
        bits += 6;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
}

pub(crate) fn unpack_ice_chars(packed: &[u8], chars: usize) -> Result<String, IceError> {
    let mut out = String::with_capacity(chars);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut bytes = packed.iter();
    while out.len() < chars {
        if bits < 6 {
            let byte = bytes.next().ok_or(IceError::BadPacking("too few bytes"))?;
            acc = (acc << 8) | u32::from(*byte);
            bits += 8;
        }
        bits -= 6;
        out.push(char::from(ICE_ALPHABET[((acc >> bits) & 0x3f) as usize]));
    }
    if acc & ((1 << bits) - 1) != 0 {
        return Err(IceError::BadPacking("padding bits are not zero"));
    }
    Ok(out)
}

/// Composes the listener ufrag a dialer writes in the `native` profile:
/// `<token ufrag> "+" <dialer's own local ICE pwd>` (`spec/token.md` §7.2).
pub fn compose_listener_ufrag(token_ufrag: &str, dialer_pwd: &str) -> Result<String, IceError> {
    compose(token_ufrag, COMPOSED_UFRAG_SEPARATOR, dialer_pwd)
}

/// Composes the listener ufrag of a dialer that takes the token's fast start:
/// `<token ufrag> "/" <dialer's own local ICE pwd>` (`spec/handshake.md` §4.2).
pub fn compose_fast_start_ufrag(token_ufrag: &str, dialer_pwd: &str) -> Result<String, IceError> {
    compose(token_ufrag, FAST_START_SEPARATOR, dialer_pwd)
}

/// Whether a composed listener ufrag announces a fast start (its 9th character is `/`).
pub fn is_fast_start_ufrag(ufrag: &str) -> bool {
    ufrag.as_bytes().get(crate::derive::TOKEN_UFRAG_CHARS) == Some(&(FAST_START_SEPARATOR as u8))
}

fn compose(token_ufrag: &str, separator: char, dialer_pwd: &str) -> Result<String, IceError> {
    check_ice_chars("pwd", dialer_pwd, MIN_PWD_CHARS)?;
    let composed = format!("{token_ufrag}{separator}{dialer_pwd}");
    check_ice_chars("ufrag", &composed, MIN_UFRAG_CHARS)?;
    Ok(composed)
}

/// Splits a composed listener ufrag (either separator) into the token ufrag and the dialer's
/// pwd; [`is_fast_start_ufrag`] tells which separator it has.
///
/// The token ufrag is always [`crate::derive::TOKEN_UFRAG_CHARS`] characters, so the split is by
/// position, and works although `+` may also occur inside the pwd.
pub fn split_listener_ufrag(ufrag: &str) -> Result<(&str, &str), IceError> {
    let n = crate::derive::TOKEN_UFRAG_CHARS;
    let not_composed = || IceError::NotComposed(ufrag.chars().take(64).collect());
    if !ufrag.is_ascii() || ufrag.len() < n + 1 + MIN_PWD_CHARS {
        return Err(not_composed());
    }
    let (token_ufrag, rest) = ufrag.split_at(n);
    let dialer_pwd = rest
        .strip_prefix(COMPOSED_UFRAG_SEPARATOR)
        .or_else(|| rest.strip_prefix(FAST_START_SEPARATOR))
        .ok_or_else(not_composed)?;
    check_ice_chars("ufrag", ufrag, MIN_UFRAG_CHARS)?;
    Ok((token_ufrag, dialer_pwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_every_length() {
        let alphabet = std::str::from_utf8(ICE_ALPHABET).expect("ascii");
        for ufrag_len in 4..12 {
            for pwd_len in 22..30 {
                let ufrag: String = alphabet
                    .chars()
                    .cycle()
                    .skip(ufrag_len)
                    .take(ufrag_len)
                    .collect();
                let pwd: String = alphabet.chars().rev().cycle().take(pwd_len).collect();
                let creds = IceCredentials::new(ufrag, pwd).expect("valid");
                let packed = creds.to_packed();
                assert_eq!(packed.len(), 2 + ((ufrag_len + pwd_len) * 6).div_ceil(8));
                assert_eq!(IceCredentials::from_packed(&packed), Ok(creds));
            }
        }
    }

    #[test]
    fn nonzero_padding_is_refused() {
        let creds = IceCredentials::new("abcde", "0123456789012345678901").expect("valid");
        let mut packed = creds.to_packed();
        *packed.last_mut().expect("non-empty") |= 1;
        assert_eq!(
            IceCredentials::from_packed(&packed),
            Err(IceError::BadPacking("padding bits are not zero"))
        );
    }

    #[test]
    fn rfc8839_limits() {
        assert!(matches!(
            IceCredentials::new("abc", "0123456789012345678901"),
            Err(IceError::BadLength { what: "ufrag", .. })
        ));
        assert!(matches!(
            IceCredentials::new("abcd", "012345678901234567890"),
            Err(IceError::BadLength { what: "pwd", .. })
        ));
        assert!(matches!(
            IceCredentials::new("ab:d", "0123456789012345678901"),
            Err(IceError::BadCharacter { found: ':', .. })
        ));
        assert!(IceCredentials::new("a".repeat(256), "b".repeat(256)).is_ok());
        assert!(IceCredentials::new("a".repeat(257), "b".repeat(22)).is_err());
    }

    #[test]
    fn composed_ufrag_splits_by_position() {
        let pwd = "a+b/c+d0123456789abcdef";
        let composed = compose_listener_ufrag("Tk/+AbCd", pwd).expect("valid");
        assert_eq!(composed, "Tk/+AbCd+a+b/c+d0123456789abcdef");
        assert_eq!(split_listener_ufrag(&composed), Ok(("Tk/+AbCd", pwd)));
        assert!(split_listener_ufrag("Tk/+AbCd-a+b/c+d0123456789abcdef").is_err());
        assert!(split_listener_ufrag("short").is_err());
        let fast = compose_fast_start_ufrag("Tk/+AbCd", pwd).expect("valid");
        assert_eq!(fast, "Tk/+AbCd/a+b/c+d0123456789abcdef");
        assert_eq!(split_listener_ufrag(&fast), Ok(("Tk/+AbCd", pwd)));
        assert!(is_fast_start_ufrag(&fast));
        assert!(!is_fast_start_ufrag(&composed));
        assert!(!is_fast_start_ufrag("Tk/+"));
        assert!(split_listener_ufrag("Tk/+AbCd+é123456789012345678901").is_err());
    }
}
