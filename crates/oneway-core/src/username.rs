//! The STUN USERNAME a dialer's checks carry in the `native` profile (`spec/handshake.md` §4).
//!
//! ```text
//! username       = listener-ufrag ":" dialer-ufrag
//! listener-ufrag = token-ufrag ("+" / "/") dialer-pwd ; spec/token.md §7.2; "/": fast start
//! token-ufrag    = 8ice-char
//! dialer-pwd     = 22*247ice-char
//! dialer-ufrag   = 4*256ice-char
//! ```
//! and the whole is at most [`MAX_USERNAME_BYTES`] bytes.

use oneway_token::ice::{
    IceError, MIN_UFRAG_CHARS, is_fast_start_ufrag, is_ice_char, split_listener_ufrag,
};

/// Longest USERNAME accepted: STUN requires fewer than 509 bytes (RFC 8489 §14.3).
pub const MAX_USERNAME_BYTES: usize = 508;

/// Why a USERNAME was refused. A listener drops the check silently for every variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    /// Longer than [`MAX_USERNAME_BYTES`].
    #[error("USERNAME is {0} bytes; at most 508 are allowed")]
    TooLong(usize),
    /// No `:` between the two ufrags.
    #[error("USERNAME has no ':' separator")]
    NoSeparator,
    /// The listener part is not `<token-ufrag>+<dialer-pwd>`.
    #[error("listener ufrag: {0}")]
    ListenerUfrag(#[from] IceError),
    /// The dialer part is not a valid ufrag.
    #[error("dialer ufrag is not 4 to 256 ice-chars")]
    DialerUfrag,
}

impl UsernameError {
    /// Stable short name.
    pub fn code(&self) -> &'static str {
        match self {
            UsernameError::TooLong(_) => "username-too-long",
            UsernameError::NoSeparator => "username-no-separator",
            UsernameError::ListenerUfrag(_) => "username-not-composed",
            UsernameError::DialerUfrag => "username-bad-dialer-ufrag",
        }
    }
}

/// A parsed dialer check USERNAME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialerUsername<'a> {
    /// The listener's full ufrag as the dialer wrote it (`token-ufrag+dialer-pwd`).
    pub listener_ufrag: &'a str,
    /// The 8-character token ufrag: which token the dialer holds.
    pub token_ufrag: &'a str,
    /// The dialer's own ICE pwd, learnt from the USERNAME.
    pub dialer_pwd: &'a str,
    /// The dialer's ICE ufrag.
    pub dialer_ufrag: &'a str,
    /// The listener ufrag was composed with `/`: the dialer takes the token's fast start
    /// (`spec/handshake.md` §5.4) and its ufrag is its SCTP INIT chunk in base64.
    pub fast_start: bool,
}

/// Parses the USERNAME of a Binding request received by a `native` listener.
pub fn parse_dialer_username(username: &str) -> Result<DialerUsername<'_>, UsernameError> {
    if username.len() > MAX_USERNAME_BYTES {
        return Err(UsernameError::TooLong(username.len()));
    }
    let (listener_ufrag, dialer_ufrag) =
        username.split_once(':').ok_or(UsernameError::NoSeparator)?;
    let (token_ufrag, dialer_pwd) = split_listener_ufrag(listener_ufrag)?;
    if dialer_ufrag.len() < MIN_UFRAG_CHARS
        || dialer_ufrag.len() > 256
        || !dialer_ufrag.chars().all(is_ice_char)
    {
        return Err(UsernameError::DialerUfrag);
    }
    Ok(DialerUsername {
        listener_ufrag,
        token_ufrag,
        dialer_pwd,
        dialer_ufrag,
        fast_start: is_fast_start_ufrag(listener_ufrag),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_browser_shaped_username() {
        let u = parse_dialer_username("hsdE6ktp+DialerPwd0123456789abcd:dIaL").expect("valid");
        assert_eq!(u.token_ufrag, "hsdE6ktp");
        assert_eq!(u.dialer_pwd, "DialerPwd0123456789abcd");
        assert_eq!(u.dialer_ufrag, "dIaL");
        assert_eq!(u.listener_ufrag, "hsdE6ktp+DialerPwd0123456789abcd");
        assert!(!u.fast_start);
        let fast = parse_dialer_username("hsdE6ktp/DialerPwd0123456789abcd:dIaL").expect("valid");
        assert!(fast.fast_start);
        assert_eq!(fast.dialer_pwd, "DialerPwd0123456789abcd");
    }

    #[test]
    fn refuses_every_malformed_shape() {
        let pwd = "p".repeat(22);
        assert_eq!(
            parse_dialer_username("abc").expect_err("refused").code(),
            "username-no-separator"
        );
        assert_eq!(
            parse_dialer_username(&format!("short:{pwd}"))
                .expect_err("refused")
                .code(),
            "username-not-composed"
        );
        assert_eq!(
            parse_dialer_username(&format!("hsdE6ktp-{pwd}:dIaL"))
                .expect_err("refused")
                .code(),
            "username-not-composed"
        );
        assert_eq!(
            parse_dialer_username(&format!("hsdE6ktp+{pwd}:dIa"))
                .expect_err("refused")
                .code(),
            "username-bad-dialer-ufrag"
        );
        assert_eq!(
            parse_dialer_username(&format!("hsdE6ktp+{pwd}:dI:L"))
                .expect_err("refused")
                .code(),
            "username-bad-dialer-ufrag"
        );
        assert_eq!(
            parse_dialer_username(&"a".repeat(600))
                .expect_err("refused")
                .code(),
            "username-too-long"
        );
    }
}
