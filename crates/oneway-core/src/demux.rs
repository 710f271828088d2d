//! The stack-independent part of a listener's datagram demultiplexing (`spec/handshake.md`
//! §4.3), sans-IO: which datagrams from an **unknown** address may reach an engine, and which are
//! dropped, and why.
//!
//! A listener keeps two tables of its own (they hold engines, which are stack-specific): engines
//! by dialer address (§4.3 step 1) and engines by current listener ufrag (step 2). For a
//! datagram whose source is in neither, it calls [`classify`]:
//!
//! ```text
//!  datagram ─▶ STUN? ─▶ Binding request? ─▶ USERNAME ─┬─▶ ufrag of an engine? ─▶ Known (step 2)
//!                                                     └─▶ §4.2 grammar ─▶ token ufrag ─▶ MESSAGE-INTEGRITY ─▶ NewDialer (step 3)
//! ```
//!
//! Every other outcome is a [`Dropped`] reason: the listener answers nothing and creates no
//! state. STUN encoding and MESSAGE-INTEGRITY come from webrtc-rs's `rtc-stun`.
//!
//! [`classify`] never panics, whatever the bytes: it is the entry point of the
//! `listener_datagram` fuzz target.

use rtc_stun::attributes::{
    ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY, ATTR_MESSAGE_INTEGRITY_SHA256, ATTR_USE_CANDIDATE,
    ATTR_USERNAME,
};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, Message, Setter};

use crate::username::{UsernameError, parse_dialer_username};

/// Size of a MESSAGE-INTEGRITY value (HMAC-SHA1).
const INTEGRITY_LEN: usize = 20;

/// Why a datagram from an unknown address was dropped. Every variant is silent on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Dropped {
    /// Not STUN by RFC 7983's first-byte rule (DTLS, RTP, garbage): step 4.
    #[error("not STUN (first byte {0:?})")]
    NotStun(Option<u8>),
    /// Looks like STUN but does not parse.
    #[error("malformed STUN: {0}")]
    Malformed(String),
    /// A STUN message other than a Binding request (responses never create state).
    #[error("STUN {0}, not a Binding request")]
    NotBindingRequest(String),
    /// A Binding request without a USERNAME (or one that is not UTF-8).
    #[error("Binding request without a USERNAME")]
    NoUsername,
    /// A Binding request without a 20-byte MESSAGE-INTEGRITY.
    #[error("Binding request without a MESSAGE-INTEGRITY")]
    NoIntegrity,
    /// The USERNAME does not follow `spec/handshake.md` §4.2 (step 3.1).
    #[error("USERNAME: {0}")]
    Username(#[from] UsernameError),
    /// The USERNAME names a token this listener did not issue (step 3.2).
    #[error("check for an unknown token")]
    UnknownToken,
    /// MESSAGE-INTEGRITY does not verify with the listener pwd (step 3.3).
    #[error("MESSAGE-INTEGRITY does not verify")]
    BadIntegrity,
}

impl Dropped {
    /// Stable short name, for logs and counters.
    pub fn code(&self) -> &'static str {
        match self {
            Dropped::NotStun(_) => "not-stun",
            Dropped::Malformed(_) => "stun-malformed",
            Dropped::NotBindingRequest(_) => "not-binding-request",
            Dropped::NoUsername => "no-username",
            Dropped::NoIntegrity => "no-integrity",
            Dropped::Username(e) => e.code(),
            Dropped::UnknownToken => "unknown-token",
            Dropped::BadIntegrity => "bad-integrity",
        }
    }
}

/// The credentials a listener demultiplexes new dialers with (from `oneway_token::DerivedKeys`).
#[derive(Clone, Copy, Debug)]
pub struct ListenerCreds<'a> {
    /// The 8-character token ufrag.
    pub token_ufrag: &'a str,
    /// The listener's ICE pwd (the MESSAGE-INTEGRITY key of every check to it).
    pub listener_pwd: &'a str,
}

impl<'a> From<&'a oneway_token::DerivedKeys> for ListenerCreds<'a> {
    fn from(keys: &'a oneway_token::DerivedKeys) -> Self {
        ListenerCreds {
            token_ufrag: &keys.token_ufrag,
            listener_pwd: &keys.listener_pwd,
        }
    }
}

/// What a listener does with a datagram from an unknown address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Routed {
    /// Step 2: a Binding request whose listener ufrag is `listener_ufrag`, which
    /// [`classify`]'s `is_known` said belongs to an engine. The engine itself checks integrity
    /// (it holds the credentials in force, which change on an ICE restart); if it accepts, the
    /// listener remembers the new address for it.
    Known {
        /// The part of the USERNAME before the first `:`.
        listener_ufrag: String,
    },
    /// Step 3: a verified check from a dialer holding the token. Apply admission, then create
    /// an engine with these credentials and feed it the datagram.
    NewDialer(NewDialer),
}

/// The credentials of a new dialer, taken from its first valid check (`spec/handshake.md` §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDialer {
    /// The listener's ufrag as the dialer composed it (`token-ufrag "+" dialer-pwd`): the
    /// engine's local ufrag.
    pub listener_ufrag: String,
    /// The dialer's ICE ufrag: the engine's remote ufrag.
    pub dialer_ufrag: String,
    /// The dialer's ICE pwd: the engine's remote pwd.
    pub dialer_pwd: String,
    /// The dialer announced the token's fast start (`/` in its composed ufrag,
    /// `spec/handshake.md` §5.4).
    pub fast_start: bool,
}

/// A STUN Binding request with a USERNAME, parsed.
#[derive(Debug)]
pub struct BindingRequest {
    message: Message,
    username: String,
}

impl BindingRequest {
    /// Parses `datagram` as a Binding request carrying a USERNAME.
    pub fn parse(datagram: &[u8]) -> Result<Self, Dropped> {
        if !is_stun(datagram) {
            return Err(Dropped::NotStun(datagram.first().copied()));
        }
        let mut message = Message::new();
        message
            .unmarshal_binary(datagram)
            .map_err(|e| Dropped::Malformed(e.to_string()))?;
        if message.typ != BINDING_REQUEST {
            return Err(Dropped::NotBindingRequest(message.typ.to_string()));
        }
        let username = message
            .get(ATTR_USERNAME)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or(Dropped::NoUsername)?;
        Ok(BindingRequest { message, username })
    }

    /// The whole USERNAME.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The part of the USERNAME before the first `:` (the receiver's ufrag, RFC 8445 §7.2.2).
    pub fn listener_ufrag(&self) -> &str {
        self.username.split(':').next().unwrap_or_default()
    }

    /// Whether MESSAGE-INTEGRITY verifies with `pwd` (RFC 8489 §14.5, short-term credentials).
    pub fn check_integrity(&self, pwd: &str) -> Result<(), Dropped> {
        let valid_len = self
            .message
            .get(ATTR_MESSAGE_INTEGRITY)
            .is_ok_and(|v| v.len() == INTEGRITY_LEN);
        if !valid_len {
            return Err(Dropped::NoIntegrity);
        }
        let provider = rtc_stun::crypto::default_provider()
            .map_err(|e| Dropped::Malformed(format!("no HMAC provider: {e}")))?;
        // `check` rewrites the length field while hashing and restores it: work on a copy.
        let mut message = self.message.clone();
        MessageIntegrity::check(&mut message, pwd.as_bytes(), provider.crypto())
            .map_err(|_| Dropped::BadIntegrity)
    }

    /// §4.3 step 3: the USERNAME grammar, the token ufrag, then MESSAGE-INTEGRITY.
    pub fn new_dialer(&self, creds: ListenerCreds<'_>) -> Result<NewDialer, Dropped> {
        let parsed = parse_dialer_username(&self.username)?;
        if parsed.token_ufrag != creds.token_ufrag {
            return Err(Dropped::UnknownToken);
        }
        self.check_integrity(creds.listener_pwd)?;
        Ok(NewDialer {
            listener_ufrag: parsed.listener_ufrag.to_owned(),
            dialer_ufrag: parsed.dialer_ufrag.to_owned(),
            dialer_pwd: parsed.dialer_pwd.to_owned(),
            fast_start: parsed.fast_start,
        })
    }
}

/// Classifies a datagram from an address no engine owns (§4.3 steps 2 to 4). `is_known` tells
/// whether a listener ufrag belongs to an existing engine. Never panics.
pub fn classify(
    datagram: &[u8],
    creds: ListenerCreds<'_>,
    is_known: impl FnOnce(&str) -> bool,
) -> Result<Routed, Dropped> {
    let request = BindingRequest::parse(datagram)?;
    if is_known(request.listener_ufrag()) {
        return Ok(Routed::Known {
            listener_ufrag: request.listener_ufrag().to_owned(),
        });
    }
    request.new_dialer(creds).map(Routed::NewDialer)
}

/// RFC 7983 demultiplexing: STUN messages start with a byte in 0..=3.
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| *b <= 3)
}

/// Whether a datagram looks like a STUN Binding request (RFC 8489 §5: type 0x0001 and the magic
/// cookie), without parsing it. A dialer uses it to notice its listener's checks (the reply
/// route, `spec/handshake.md` §11): an ICE-lite listener sends none otherwise.
pub fn is_binding_request(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[..2] == [0x00, 0x01]
        && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// Whether a datagram looks like a STUN Binding success response (type 0x0101 and the magic
/// cookie), without parsing it.
pub fn is_binding_success(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[..2] == [0x01, 0x01]
        && datagram[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// RFC 7983 demultiplexing: DTLS records start with a byte in 20..=63.
pub fn is_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

/// Why a check could not be turned into a nominating one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NominationCopyError {
    /// Not a well-formed STUN message.
    #[error("not a STUN message: {0}")]
    Malformed(String),
    /// A STUN message, but not a Binding request.
    #[error("not a Binding request")]
    NotARequest,
    /// Its MESSAGE-INTEGRITY is missing or does not verify with the listener's password.
    #[error("integrity does not verify with the listener's password")]
    Integrity,
    /// Building the copy failed.
    #[error("building the nominating check: {0}")]
    Build(String),
}

/// `check` (a Binding request from the dialer, `spec/handshake.md` §4.5: a listener that
/// answers DTLS before nomination makes its ICE agent select the pair with this copy) with USE-CANDIDATE added, MESSAGE-INTEGRITY
/// and FINGERPRINT computed anew with `pwd`, the same transaction ID and every other
/// attribute kept. Refuses a check whose integrity does not verify with `pwd`.
pub fn nominating_copy(check: &[u8], pwd: &str) -> Result<Vec<u8>, NominationCopyError> {
    let mut original = Message::new();
    original
        .unmarshal_binary(check)
        .map_err(|e| NominationCopyError::Malformed(e.to_string()))?;
    if original.typ != BINDING_REQUEST {
        return Err(NominationCopyError::NotARequest);
    }
    let provider = rtc_stun::crypto::default_provider()
        .map_err(|e| NominationCopyError::Build(format!("no HMAC provider: {e}")))?;
    let crypto = provider.crypto();
    MessageIntegrity::check(&mut original, pwd.as_bytes(), crypto)
        .map_err(|_| NominationCopyError::Integrity)?;
    let mut copy = Message::new();
    copy.typ = original.typ;
    copy.transaction_id = original.transaction_id;
    copy.write_header();
    for attribute in &original.attributes.0 {
        if [
            ATTR_MESSAGE_INTEGRITY,
            ATTR_MESSAGE_INTEGRITY_SHA256,
            ATTR_FINGERPRINT,
            ATTR_USE_CANDIDATE,
        ]
        .contains(&attribute.typ)
        {
            continue;
        }
        copy.add(attribute.typ, &attribute.value);
    }
    copy.add(ATTR_USE_CANDIDATE, &[]);
    MessageIntegrity::new_short_term_integrity_with_provider(pwd.to_owned(), crypto)
        .add_to(&mut copy)
        .map_err(|e| NominationCopyError::Build(e.to_string()))?;
    FINGERPRINT
        .add_to(&mut copy)
        .map_err(|e| NominationCopyError::Build(e.to_string()))?;
    Ok(copy.raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_stun::integrity::MessageIntegrity;
    use rtc_stun::message::{BINDING_SUCCESS, Setter, TransactionId};
    use rtc_stun::textattrs::TextAttribute;

    const TOKEN_UFRAG: &str = "hsdE6ktp";
    const LISTENER_PWD: &str = "listenerPwd0123456789abcdef";
    const DIALER_PWD: &str = "DialerPwd0123456789abcd";

    fn creds() -> ListenerCreds<'static> {
        ListenerCreds {
            token_ufrag: TOKEN_UFRAG,
            listener_pwd: LISTENER_PWD,
        }
    }

    fn check(username: &str, pwd: Option<&str>) -> Vec<u8> {
        let provider = rtc_stun::crypto::default_provider().unwrap();
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(BINDING_REQUEST),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ];
        if let Some(pwd) = pwd {
            setters.push(Box::new(
                MessageIntegrity::new_short_term_integrity_with_provider(
                    pwd.to_owned(),
                    provider.crypto(),
                ),
            ));
        }
        m.build(&setters).unwrap();
        m.raw
    }

    fn username() -> String {
        format!("{TOKEN_UFRAG}+{DIALER_PWD}:dIaL")
    }

    #[test]
    fn a_valid_check_is_a_new_dialer() {
        let routed = classify(&check(&username(), Some(LISTENER_PWD)), creds(), |_| false);
        assert_eq!(
            routed,
            Ok(Routed::NewDialer(NewDialer {
                listener_ufrag: format!("{TOKEN_UFRAG}+{DIALER_PWD}"),
                dialer_ufrag: "dIaL".to_owned(),
                dialer_pwd: DIALER_PWD.to_owned(),
                fast_start: false,
            }))
        );
    }

    #[test]
    fn a_known_listener_ufrag_is_routed_to_its_engine_before_any_other_check() {
        // Integrity is the engine's business (its pwd may have changed in an ICE restart).
        let datagram = check("restartedUfrag:dIaL", Some("another password entirely"));
        let routed = classify(&datagram, creds(), |u| u == "restartedUfrag");
        assert_eq!(
            routed,
            Ok(Routed::Known {
                listener_ufrag: "restartedUfrag".to_owned()
            })
        );
    }

    #[test]
    fn each_failure_has_its_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "not-stun"),
            (vec![0x16, 0xfe, 0xfd], "not-stun"),
            (vec![0, 1, 0, 0], "stun-malformed"),
            (check(&username(), None), "no-integrity"),
            (
                check(&username(), Some("wrong password, long enough")),
                "bad-integrity",
            ),
            (
                check(&format!("zzzzzzzz+{DIALER_PWD}:dIaL"), Some(LISTENER_PWD)),
                "unknown-token",
            ),
            (
                check("nocolon", Some(LISTENER_PWD)),
                "username-no-separator",
            ),
            (
                check("short:dIaL", Some(LISTENER_PWD)),
                "username-not-composed",
            ),
        ];
        for (datagram, code) in cases {
            let got = classify(&datagram, creds(), |_| false).expect_err("dropped");
            assert_eq!(got.code(), code, "{got}");
        }
        let mut response = Message::new();
        let setters: [Box<dyn Setter>; 2] =
            [Box::new(TransactionId::new()), Box::new(BINDING_SUCCESS)];
        response.build(&setters).unwrap();
        assert_eq!(
            classify(&response.raw, creds(), |_| true)
                .expect_err("dropped")
                .code(),
            "not-binding-request"
        );
        let mut bare = Message::new();
        let setters: [Box<dyn Setter>; 2] =
            [Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)];
        bare.build(&setters).unwrap();
        assert_eq!(
            classify(&bare.raw, creds(), |_| true)
                .expect_err("dropped")
                .code(),
            "no-username"
        );
    }

    #[test]
    fn a_tampered_check_fails_integrity() {
        let mut datagram = check(&username(), Some(LISTENER_PWD));
        // Flip a bit inside the USERNAME value (after the 20-byte header and 4-byte attribute
        // header), keeping the grammar valid: 'h' -> 'i' changes the token ufrag, so flip the
        // dialer ufrag's last letter instead.
        let at = 20 + 4 + username().len() - 1;
        datagram[at] = b'M';
        assert_eq!(
            classify(&datagram, creds(), |_| false),
            Err(Dropped::BadIntegrity)
        );
    }

    #[test]
    fn truncations_and_bit_flips_never_panic() {
        let datagram = check(&username(), Some(LISTENER_PWD));
        for len in 0..=datagram.len() {
            let _ = classify(&datagram[..len], creds(), |_| false);
        }
        for i in 0..datagram.len() {
            for bit in 0..8 {
                let mut d = datagram.clone();
                d[i] ^= 1 << bit;
                let _ = classify(&d, creds(), |u| u.len() == 3);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = classify(&bytes, creds(), |_| false);
        }

        #[test]
        fn arbitrary_stun_shaped_bytes_never_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            len in 0u16..400,
        ) {
            let mut d = vec![0u8, 1];
            d.extend_from_slice(&len.to_be_bytes());
            d.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
            d.extend_from_slice(&[7; 12]);
            d.extend_from_slice(&body);
            let _ = classify(&d, creds(), |_| false);
        }
    }
}
