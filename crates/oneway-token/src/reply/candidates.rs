//! Reply codes of version 2 (`spec/token.md` §12.2): a dialer's ICE credentials and
//! candidates, for a native listener that the dialer could not reach one way. The listener
//! then sends connectivity checks towards those candidates (hole punching).
//!
//! ```text
//! owr2. + base64url( flags(1) issued(4) ufrag-len(1) pwd-len(1) packed-ice-chars
//!                    candidate* tag(8) crc8(1) )
//! ```
//! The tag is HMAC-SHA256 under the token's reply key (`spec/token.md` §7), so only a holder of
//! the token can make a code the listener accepts; `issued` bounds how long it is accepted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ReplyError, crc8, decode_body, split_prefix};
use crate::binary::write_candidate;
use crate::derive::{hmac_sha256, reply_pwd};
use crate::ice::{
    MIN_PWD_CHARS, MIN_UFRAG_CHARS, check_ice_chars, pack_ice_chars, unpack_ice_chars,
};
use crate::token::{Candidate, CandidateAddress, CandidateType, Transport};

/// Prefix of a reply code of format version 2.
pub const REPLY_V2_PREFIX: &str = "owr2.";
/// HMAC prefix of a version-2 reply code's tag.
pub const REPLY_TAG_PREFIX: &[u8] = b"oneway/v1 reply";
/// Seconds after `issued` during which a listener accepts a version-2 reply code.
pub const REPLY_LIFETIME_SECS: u64 = 600;
/// Seconds by which `issued` may lie in the listener's future (the two clocks differ).
pub const REPLY_MAX_SKEW_SECS: u64 = 60;
/// Most candidates a version-2 reply code carries.
pub const MAX_REPLY_CANDIDATES: usize = 4;
/// Bytes of a version-2 code besides its characters and candidates: flags 1, issued 4, the two
/// lengths 2, tag 8, CRC 1.
pub const REPLY_V2_FIXED_BYTES: usize = 16;

const TAG_BYTES: usize = 8;
const HEADER_BYTES: usize = 7;
const FLAG_COUNT: u8 = 0b0000_0111;
const FLAG_FAST_START: u8 = 0b0000_1000;
const FLAG_RESERVED: u8 = 0b1111_0000;
const MAX_LENGTH_BYTE: usize = 255;

/// What a dialer sends back to a native listener it could not reach one way: its ICE
/// credentials and candidates (`spec/token.md` §12.2).
///
/// Build one with the public fields and encode it with [`CandidateReply::to_text`] (the tag
/// needs the token's reply key); decode with [`CandidateReply::from_text`] (or
/// [`super::AnyReply::from_text`]), then check it with [`CandidateReply::verify`] before
/// acting on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateReply {
    /// Unix time in seconds when the dialer made the code.
    pub issued: u32,
    /// The dialer's ICE ufrag (4 to 255 ice-chars).
    pub ufrag: String,
    /// The dialer's ICE pwd (22 to 255 ice-chars), or `None` when it is derived from the reply
    /// key and the ufrag ([`reply_pwd`]).
    pub pwd: Option<String>,
    /// The dialer's composed listener ufrag uses `/` instead of `+`: it takes the token's fast
    /// start (`spec/handshake.md` §4.2).
    pub fast_start: bool,
    /// The dialer's candidates, 1 to 4: UDP, an IPv4 or IPv6 address (no mDNS), port not 0.
    pub candidates: Vec<Candidate>,
    /// The tag read from the text: set by decoding, `None` for a code built locally (which
    /// [`CandidateReply::verify`] refuses). Encoding ignores it and computes the tag.
    pub received_tag: Option<[u8; 8]>,
}

impl CandidateReply {
    /// Bytes of the binary form for a ufrag of `ufrag_len` and a pwd of `pwd_len` characters
    /// (0 when derived), with `ipv4` IPv4 and `ipv6` IPv6 candidates:
    /// `16 + ceil(6 (U + P) / 8) + 7 per IPv4 + 19 per IPv6`.
    pub fn byte_len(ufrag_len: usize, pwd_len: usize, ipv4: usize, ipv6: usize) -> usize {
        REPLY_V2_FIXED_BYTES + (6 * (ufrag_len + pwd_len)).div_ceil(8) + 7 * ipv4 + 19 * ipv6
    }

    /// Characters of the text form for those sizes: `5 + ceil(4 bytes / 3)`.
    pub fn text_len(ufrag_len: usize, pwd_len: usize, ipv4: usize, ipv6: usize) -> usize {
        REPLY_V2_PREFIX.len() + (4 * Self::byte_len(ufrag_len, pwd_len, ipv4, ipv6)).div_ceil(3)
    }

    /// The dialer's ICE pwd: the one carried, or the one derived from `reply_key` and the ufrag.
    pub fn pwd_or_derived(&self, reply_key: &[u8; 32]) -> String {
        self.pwd
            .clone()
            .unwrap_or_else(|| reply_pwd(reply_key, &self.ufrag))
    }

    /// Checks the fields against `spec/token.md` §12.2; encoding refuses what decoding would.
    pub fn validate(&self) -> Result<(), ReplyError> {
        if self.candidates.is_empty() || self.candidates.len() > MAX_REPLY_CANDIDATES {
            return Err(ReplyError::Invalid("candidate count not 1 to 4"));
        }
        check_ice_chars("ufrag", &self.ufrag, MIN_UFRAG_CHARS)?;
        if self.ufrag.len() > MAX_LENGTH_BYTE {
            return Err(ReplyError::Invalid("ufrag longer than 255 characters"));
        }
        if let Some(pwd) = &self.pwd {
            check_ice_chars("pwd", pwd, MIN_PWD_CHARS)?;
            if pwd.len() > MAX_LENGTH_BYTE {
                return Err(ReplyError::Invalid("pwd longer than 255 characters"));
            }
        }
        for c in &self.candidates {
            if !matches!(c.address, CandidateAddress::Ip(_)) {
                return Err(ReplyError::Invalid("candidate address is not IPv4 or IPv6"));
            }
            if c.transport != Transport::Udp {
                return Err(ReplyError::Invalid("candidate transport is not UDP"));
            }
            if c.port == 0 {
                return Err(ReplyError::Invalid("candidate port 0"));
            }
        }
        Ok(())
    }

    /// The bytes the tag covers: everything before it.
    fn tagged_bytes(&self) -> Result<Vec<u8>, ReplyError> {
        self.validate()?;
        let pwd = self.pwd.as_deref().unwrap_or("");
        let mut flags = self.candidates.len() as u8;
        if self.fast_start {
            flags |= FLAG_FAST_START;
        }
        let mut out = vec![flags];
        out.extend_from_slice(&self.issued.to_be_bytes());
        out.push(self.ufrag.len() as u8);
        out.push(pwd.len() as u8);
        pack_ice_chars(self.ufrag.bytes().chain(pwd.bytes()), &mut out);
        for c in &self.candidates {
            write_candidate(c, &mut out);
        }
        Ok(out)
    }

    fn tag_of(reply_key: &[u8; 32], tagged: &[u8]) -> [u8; TAG_BYTES] {
        let mac = hmac_sha256(reply_key, &[REPLY_TAG_PREFIX, tagged]);
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&mac[..TAG_BYTES]);
        tag
    }

    /// The binary form (before base64url), tagged with `reply_key`.
    pub fn to_bytes(&self, reply_key: &[u8; 32]) -> Result<Vec<u8>, ReplyError> {
        let mut out = self.tagged_bytes()?;
        let tag = Self::tag_of(reply_key, &out);
        out.extend_from_slice(&tag);
        out.push(crc8(&out));
        Ok(out)
    }

    /// `owr2.` + base64url of [`CandidateReply::to_bytes`].
    pub fn to_text(&self, reply_key: &[u8; 32]) -> Result<String, ReplyError> {
        Ok(format!(
            "{REPLY_V2_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes(reply_key)?)
        ))
    }

    /// Decodes a version-2 reply code (surrounding white space is ignored): `spec/token.md`
    /// §12.3 steps 1-5. Other versions are `unknown-version`. The result is not yet trusted:
    /// call [`CandidateReply::verify`].
    pub fn from_text(text: &str) -> Result<Self, ReplyError> {
        match split_prefix(text)? {
            ("2", body) => Self::from_body(body),
            (other, _) => Err(ReplyError::UnknownVersion(other.to_owned())),
        }
    }

    pub(super) fn from_body(body: &str) -> Result<Self, ReplyError> {
        Self::from_bytes(&decode_body(body)?)
    }

    /// Decodes the binary form: `spec/token.md` §12.3 steps 3-5.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReplyError> {
        if bytes.len() < REPLY_V2_FIXED_BYTES {
            return Err(ReplyError::Truncated);
        }
        let (content, crc) = bytes.split_at(bytes.len() - 1);
        if crc8(content) != crc[0] {
            return Err(ReplyError::ChecksumMismatch);
        }
        let (tagged, tag) = content.split_at(content.len() - TAG_BYTES);
        let (header, mut rest) = tagged.split_at(HEADER_BYTES);
        let flags = header[0];
        if flags & FLAG_RESERVED != 0 {
            return Err(ReplyError::Invalid("reserved flag bits set"));
        }
        let count = usize::from(flags & FLAG_COUNT);
        if count == 0 || count > MAX_REPLY_CANDIDATES {
            return Err(ReplyError::Invalid("candidate count not 1 to 4"));
        }
        let issued = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let (ufrag_len, pwd_len) = (usize::from(header[5]), usize::from(header[6]));
        if ufrag_len < MIN_UFRAG_CHARS {
            return Err(ReplyError::Invalid("ufrag length below 4"));
        }
        if pwd_len != 0 && pwd_len < MIN_PWD_CHARS {
            return Err(ReplyError::Invalid("pwd length not 0 or 22 to 255"));
        }
        let chars = ufrag_len + pwd_len;
        let packed = take(&mut rest, (6 * chars).div_ceil(8))?;
        let text = unpack_ice_chars(packed, chars)
            .map_err(|_| ReplyError::Invalid("packed characters have non-zero padding bits"))?;
        let (ufrag, pwd) = text.split_at(ufrag_len);
        let mut candidates = Vec::with_capacity(count);
        for _ in 0..count {
            candidates.push(read_candidate(&mut rest)?);
        }
        if !rest.is_empty() {
            return Err(ReplyError::Invalid("bytes left over before the tag"));
        }
        let mut received = [0u8; TAG_BYTES];
        received.copy_from_slice(tag);
        Ok(CandidateReply {
            issued,
            ufrag: ufrag.to_owned(),
            pwd: (!pwd.is_empty()).then(|| pwd.to_owned()),
            fast_start: flags & FLAG_FAST_START != 0,
            candidates,
            received_tag: Some(received),
        })
    }

    /// Checks a decoded code against the token's reply key and the listener's clock
    /// (`spec/token.md` §12.3 steps 6-7): the tag (`reply-foreign`), then
    /// `issued + 600 < now` (`reply-expired`), then `issued > now + 60` (`reply-clock-skew`).
    pub fn verify(&self, reply_key: &[u8; 32], now_unix: u64) -> Result<(), ReplyError> {
        let received = self.received_tag.ok_or(ReplyError::Foreign)?;
        let expected = Self::tag_of(reply_key, &self.tagged_bytes()?);
        let differ = expected
            .iter()
            .zip(received)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return Err(ReplyError::Foreign);
        }
        let issued = u64::from(self.issued);
        if issued + REPLY_LIFETIME_SECS < now_unix {
            return Err(ReplyError::Expired {
                issued: self.issued,
                now: now_unix,
            });
        }
        if issued > now_unix.saturating_add(REPLY_MAX_SKEW_SECS) {
            return Err(ReplyError::ClockSkew {
                issued: self.issued,
                now: now_unix,
            });
        }
        Ok(())
    }
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], ReplyError> {
    if rest.len() < n {
        return Err(ReplyError::Invalid("bytes missing before the tag"));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

/// One candidate, as in a token (`spec/token.md` §4.1), restricted to UDP, IPv4 or IPv6, and a
/// non-zero port.
fn read_candidate(rest: &mut &[u8]) -> Result<Candidate, ReplyError> {
    let kind = take(rest, 1)?[0];
    if kind & 0b1110_0000 != 0 {
        return Err(ReplyError::Invalid("candidate kind has reserved bits set"));
    }
    if kind & 0b1_0000 != 0 {
        return Err(ReplyError::Invalid("candidate transport is not UDP"));
    }
    let kind_type = match (kind >> 2) & 0b11 {
        0 => CandidateType::Host,
        1 => CandidateType::ServerReflexive,
        2 => CandidateType::Relay,
        _ => return Err(ReplyError::Invalid("candidate type is reserved")),
    };
    let address = match kind & 0b11 {
        0 => {
            let a = take(rest, 4)?;
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        }
        1 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(take(rest, 16)?);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(ReplyError::Invalid("candidate address is not IPv4 or IPv6")),
    };
    let port = take(rest, 2)?;
    let port = u16::from_be_bytes([port[0], port[1]]);
    if port == 0 {
        return Err(ReplyError::Invalid("candidate port 0"));
    }
    Ok(Candidate {
        transport: Transport::Udp,
        kind: kind_type,
        address: CandidateAddress::Ip(address),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::AnyReply;

    const KEY: [u8; 32] = [0x11; 32];

    fn srflx_v4() -> Candidate {
        Candidate {
            transport: Transport::Udp,
            kind: CandidateType::ServerReflexive,
            address: CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7))),
            port: 61_000,
        }
    }

    fn reply(ufrag_len: usize, pwd_len: usize) -> CandidateReply {
        CandidateReply {
            issued: 1_800_000_000,
            ufrag: "u".repeat(ufrag_len),
            pwd: (pwd_len > 0).then(|| "p".repeat(pwd_len)),
            fast_start: false,
            candidates: vec![srflx_v4()],
            received_tag: None,
        }
    }

    /// `spec/token.md` §12.2's table: every dialer with one IPv4 srflx candidate fits in 80
    /// characters, and the formula matches the encoder.
    #[test]
    fn size_table_and_the_80_character_bound() {
        // (dialer, ufrag chars, pwd chars carried, bytes, characters)
        for (dialer, u, p, bytes, chars) in [
            ("str0m standard (16-char ufrag, derived pwd)", 16, 0, 35, 52),
            ("str0m fast start, 24-byte INIT", 32, 0, 47, 68),
            ("str0m fast start, 28-byte INIT", 38, 0, 52, 75),
            ("Chromium", 4, 24, 44, 64),
            ("Firefox", 8, 32, 53, 76),
        ] {
            let r = reply(u, p);
            let text = r.to_text(&KEY).unwrap();
            assert_eq!(r.to_bytes(&KEY).unwrap().len(), bytes, "{dialer} bytes");
            assert_eq!(text.len(), chars, "{dialer} characters");
            assert_eq!(
                CandidateReply::text_len(u, p, 1, 0),
                chars,
                "{dialer} formula"
            );
            assert!(text.len() <= 80, "{dialer}: {} characters", text.len());
        }
        for u in [4, 5, 7, 16, 38, 255] {
            for p in [0, 22, 23, 24, 32, 255] {
                let r = reply(u, p);
                let text = r.to_text(&KEY).unwrap();
                assert_eq!(
                    text.len(),
                    CandidateReply::text_len(u, p, 1, 0),
                    "u={u} p={p}"
                );
                let decoded = CandidateReply::from_text(&text).unwrap();
                assert_eq!(decoded.ufrag, r.ufrag);
                assert_eq!(decoded.pwd, r.pwd);
                decoded.verify(&KEY, 1_800_000_000).unwrap();
            }
        }
    }

    #[test]
    fn round_trip_and_dispatch() {
        let mut r = reply(16, 0);
        r.fast_start = true;
        r.candidates.push(Candidate {
            transport: Transport::Udp,
            kind: CandidateType::Relay,
            address: CandidateAddress::Ip("2001:db8::7".parse().unwrap()),
            port: 3478,
        });
        let text = r.to_text(&KEY).unwrap();
        let Ok(AnyReply::Candidates(decoded)) = AnyReply::from_text(&format!(" {text}\n")) else {
            panic!("not a version-2 code");
        };
        assert!(decoded.received_tag.is_some());
        assert_eq!(
            CandidateReply {
                received_tag: None,
                ..decoded.clone()
            },
            r
        );
        assert_eq!(decoded.to_text(&KEY).unwrap(), text);
        assert_eq!(
            decoded.pwd_or_derived(&KEY),
            crate::derive::reply_pwd(&KEY, &r.ufrag)
        );
        assert_eq!(
            crate::reply::ReplyCode::from_text(&text),
            Err(ReplyError::UnknownVersion("2".to_owned()))
        );
    }

    #[test]
    fn verification_order() {
        let r = reply(4, 24);
        let decoded = CandidateReply::from_text(&r.to_text(&KEY).unwrap()).unwrap();
        let issued = u64::from(r.issued);
        assert_eq!(decoded.verify(&KEY, issued + 600), Ok(()));
        assert_eq!(decoded.verify(&KEY, issued - 60), Ok(()));
        assert!(matches!(
            decoded.verify(&KEY, issued + 601),
            Err(ReplyError::Expired { .. })
        ));
        assert!(matches!(
            decoded.verify(&KEY, issued - 61),
            Err(ReplyError::ClockSkew { .. })
        ));
        // A foreign key is reported before the time checks.
        assert_eq!(
            decoded.verify(&[0x22; 32], issued + 601),
            Err(ReplyError::Foreign)
        );
        assert_eq!(r.verify(&KEY, issued), Err(ReplyError::Foreign));
        let mut altered = decoded.clone();
        altered.candidates[0].port += 1;
        assert_eq!(altered.verify(&KEY, issued), Err(ReplyError::Foreign));
    }

    #[test]
    fn encoder_refuses_what_decoder_refuses() {
        let mut r = reply(4, 0);
        r.candidates.clear();
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
        let mut r = reply(4, 0);
        r.candidates[0].transport = Transport::TcpPassive;
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
        let mut r = reply(4, 0);
        r.candidates[0].address = CandidateAddress::Mdns([1; 16]);
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
        let mut r = reply(4, 0);
        r.candidates[0].port = 0;
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
        assert_eq!(
            reply(3, 0).to_text(&KEY).unwrap_err().code(),
            "invalid-reply"
        );
        assert_eq!(
            reply(4, 21).to_text(&KEY).unwrap_err().code(),
            "invalid-reply"
        );
        assert_eq!(
            reply(256, 0).to_text(&KEY).unwrap_err().code(),
            "invalid-reply"
        );
        let mut r = reply(4, 0);
        r.ufrag = "ab:c".to_owned();
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
        let mut r = reply(4, 0);
        r.candidates = vec![srflx_v4(); 5];
        assert_eq!(r.to_text(&KEY).unwrap_err().code(), "invalid-reply");
    }
}
