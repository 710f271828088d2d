//! Text forms of the binary token (`spec/token.md` §6): `ow1.` + base64url for links and chat,
//! `OW1.` + base32 for QR codes, and URLs whose fragment holds either.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::TokenError;
use crate::token::Token;

/// Prefix of the compact text form (base64url, no padding).
pub const TEXT_PREFIX: &str = "ow1.";
/// Prefix of the QR text form (RFC 4648 base32, upper case, no padding).
pub const QR_TEXT_PREFIX: &str = "OW1.";
/// Longest input the text parser looks at. The longest valid token (16 IPv6 candidates and
/// 16 maximal extensions) is far below it in base64url, and URLs add little.
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// Which text form a token was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextForm {
    /// `ow1.` + base64url.
    Compact,
    /// `OW1.` + base32.
    Qr,
}

impl Token {
    /// The compact text form: `ow1.` + base64url (no padding) of the binary form.
    pub fn to_text(&self) -> Result<String, TokenError> {
        Ok(format!(
            "{TEXT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes()?)
        ))
    }

    /// The QR text form: `OW1.` + base32 (RFC 4648 §6, no padding) of the binary form. Every
    /// character is in the QR alphanumeric set, so it packs at 5.5 bits per character.
    pub fn to_qr_text(&self) -> Result<String, TokenError> {
        Ok(format!(
            "{QR_TEXT_PREFIX}{}",
            data_encoding::BASE32_NOPAD.encode(&self.to_bytes()?)
        ))
    }

    /// Decodes any text form: `ow1.…`, `OW1.…`, or a URL whose fragment is one of them
    /// (`https://example.org/page#ow1.…`). Surrounding white space is ignored.
    pub fn from_text(input: &str) -> Result<Token, TokenError> {
        let (bytes, _) = text_to_bytes(input)?;
        Token::from_bytes(&bytes)
    }
}

/// Finds the token in `input` and decodes its text layer, returning the binary form and which
/// text form it was in. Nothing past the text layer is checked.
pub fn text_to_bytes(input: &str) -> Result<(Vec<u8>, TextForm), TokenError> {
    // `str::trim` removes the code points with Unicode's White_Space property (§6.4 step 1).
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(TokenError::Empty);
    }
    if trimmed.len() > MAX_TEXT_LEN {
        return Err(TokenError::TooLong {
            len: trimmed.len(),
            max: MAX_TEXT_LEN,
        });
    }
    let (token, offset) = locate_token(trimmed);
    let version_end = token.find('.').ok_or(TokenError::MissingPrefix)?;
    let head = &token[..version_end];
    if !head.is_ascii() || head.len() < 3 {
        return Err(TokenError::MissingPrefix);
    }
    let (name, digits) = head.split_at(2);
    if !(name == "ow" || name == "OW") || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::MissingPrefix);
    }
    let version: u8 = digits.parse().unwrap_or(u8::MAX);
    if version != crate::binary::VERSION {
        return Err(TokenError::UnknownVersion(version));
    }
    let body = &token[version_end + 1..];
    // Positions count code points from the start of the trimmed input (`spec/token.md` §6.4).
    let body_offset = trimmed[..offset + version_end + 1].chars().count();
    if name == "ow" {
        decode_body(
            body,
            body_offset,
            "base64url",
            |b| matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'),
            |s| URL_SAFE_NO_PAD.decode(s).ok(),
        )
        .map(|bytes| (bytes, TextForm::Compact))
    } else {
        decode_body(
            body,
            body_offset,
            "base32",
            |b| matches!(b, b'A'..=b'Z' | b'2'..=b'7'),
            |s| data_encoding::BASE32_NOPAD.decode(s.as_bytes()).ok(),
        )
        .map(|bytes| (bytes, TextForm::Qr))
    }
}

/// Returns the token part of `text` and its byte offset in `text`: the text itself, or the
/// fragment of a URL: the value (after the part's first `=`, or the whole part) of the first
/// `&`-separated part whose value starts with `ow`/`OW`, else the whole fragment (§6.2).
fn locate_token(text: &str) -> (&str, usize) {
    let Some(hash) = text.find('#') else {
        return (text, 0);
    };
    let mut offset = hash + 1;
    for part in text[hash + 1..].split('&') {
        let value_start = part.find('=').map_or(0, |i| i + 1);
        let value = &part[value_start..];
        if value.starts_with("ow") || value.starts_with("OW") {
            return (value, offset + value_start);
        }
        offset += part.len() + 1;
    }
    (&text[hash + 1..], hash + 1)
}

/// `body_offset` is the body's position in code points from the start of the trimmed input.
fn decode_body(
    body: &str,
    body_offset: usize,
    alphabet: &'static str,
    allowed: impl Fn(u8) -> bool,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<Vec<u8>, TokenError> {
    if let Some((position, found)) = body
        .char_indices()
        .find(|(_, c)| !c.is_ascii() || !allowed(*c as u8))
    {
        return Err(TokenError::InvalidCharacter {
            alphabet,
            found,
            position: body_offset + body[..position].chars().count(),
        });
    }
    // With the alphabet checked, the only failure left is a length (or trailing bits) that
    // cannot come from whole bytes.
    decode(body).ok_or(TokenError::InvalidTextLength { alphabet })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_token_in_urls() {
        assert_eq!(locate_token("https://x.org/p#ow1.AAAA"), ("ow1.AAAA", 16));
        assert_eq!(
            locate_token("https://x.org/p#v=2&t=ow1.AAAA"),
            ("ow1.AAAA", 22)
        );
        assert_eq!(locate_token("ow1.AAAA"), ("ow1.AAAA", 0));
        // The test is on the value after `key=`, never on the key (§6.2).
        assert_eq!(
            locate_token("https://x.org/p#owner=bob&t=ow1.AAAA"),
            ("ow1.AAAA", 28)
        );
        assert_eq!(locate_token("https://x.org/p#owner&t=ow1.A"), ("owner", 16));
    }

    #[test]
    fn positions_count_code_points_of_the_trimmed_input() {
        assert_eq!(
            text_to_bytes("  https://exämple.org/p#ow1.AA*A"),
            Err(TokenError::InvalidCharacter {
                alphabet: "base64url",
                found: '*',
                position: 28
            })
        );
    }

    #[test]
    fn prefix_errors_are_specific() {
        assert_eq!(text_to_bytes("  "), Err(TokenError::Empty));
        assert_eq!(text_to_bytes("hello"), Err(TokenError::MissingPrefix));
        assert_eq!(
            text_to_bytes("ow2.AAAA"),
            Err(TokenError::UnknownVersion(2))
        );
        assert_eq!(text_to_bytes("ow.AAAA"), Err(TokenError::MissingPrefix));
        assert_eq!(
            text_to_bytes("ow999.AAAA"),
            Err(TokenError::UnknownVersion(255))
        );
        assert_eq!(
            text_to_bytes("ow1.AA*A"),
            Err(TokenError::InvalidCharacter {
                alphabet: "base64url",
                found: '*',
                position: 6
            })
        );
        assert_eq!(
            text_to_bytes("OW1.AAa"),
            Err(TokenError::InvalidCharacter {
                alphabet: "base32",
                found: 'a',
                position: 6
            })
        );
        assert_eq!(
            text_to_bytes("ow1.A"),
            Err(TokenError::InvalidTextLength {
                alphabet: "base64url"
            })
        );
    }
}
