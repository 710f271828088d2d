//! The QR form (`spec/token.md` §6.3): the `OW1.` base32 text in alphanumeric mode, optionally
//! after a page URL in byte mode, at error-correction level M, in the smallest version that fits.

use qrcode::bits::Bits;
use qrcode::{EcLevel, QrCode, Version};

use crate::error::TokenError;
use crate::token::Token;

/// Why a QR code could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The token itself is invalid.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The payload does not fit in a version-40 code.
    #[error("payload of {bytes} bytes does not fit in any QR version at level M")]
    TooLarge {
        /// Length of the text payload.
        bytes: usize,
    },
}

/// A QR code for a token, with what went into it.
pub struct TokenQr {
    /// The code, ready to render.
    pub code: QrCode,
    /// The exact text the code holds.
    pub payload: String,
    /// The QR version (1 to 40).
    pub version: i16,
    /// Modules per side (`17 + 4 × version`).
    pub modules: usize,
}

/// Builds the QR code of `token`. With `page_url` (e.g. `https://example.org/p`), the code holds
/// `<page_url>#OW1.…`: the URL in byte mode and the token in alphanumeric mode, so a phone opens
/// the page with the token in its fragment.
pub fn token_qr(token: &Token, page_url: Option<&str>) -> Result<TokenQr, QrError> {
    let token_text = token.to_qr_text()?;
    let url_part = page_url.map(|url| format!("{}#", url.trim_end_matches('#')));
    let payload = format!("{}{token_text}", url_part.as_deref().unwrap_or(""));
    let level = EcLevel::M;
    for v in 1..=40 {
        let version = Version::Normal(v);
        let mut bits = Bits::new(version);
        let fits = url_part
            .as_deref()
            .is_none_or(|url| bits.push_byte_data(url.as_bytes()).is_ok())
            && bits.push_alphanumeric_data(token_text.as_bytes()).is_ok()
            && bits.push_terminator(level).is_ok();
        if !fits {
            continue;
        }
        if let Ok(code) = QrCode::with_bits(bits, level) {
            return Ok(TokenQr {
                modules: code.width(),
                code,
                payload,
                version: v,
            });
        }
    }
    Err(QrError::TooLarge {
        bytes: payload.len(),
    })
}
