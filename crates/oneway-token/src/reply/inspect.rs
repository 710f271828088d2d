//! A reply code's fields for people (`Display`) and machines (`serde`), as `oneway inspect`
//! prints them.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::{AnyReply, REPLY_V2_FIXED_BYTES, ReplyError};
use crate::token::{Candidate, CandidateAddress};

/// Everything `oneway inspect` reports about a reply code (`spec/token.md` §12).
#[derive(Clone, Debug, Serialize)]
pub struct ReplyInspection {
    /// Reply code version: 1 or 2.
    pub version: u8,
    /// What the version is for.
    pub purpose: &'static str,
    /// The code's text, trimmed.
    pub text: String,
    /// Characters of the text.
    pub chars: usize,
    /// Bytes of the binary form.
    pub bytes: usize,
    /// Version 2: when the dialer made the code (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<u32>,
    /// Version 2: `issued` in RFC 3339, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_utc: Option<String>,
    /// Version 2: seconds from `issued` to the inspection time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    /// The dialer's ICE ufrag.
    pub ufrag: String,
    /// The dialer's ICE pwd when the code carries it.
    pub pwd: Option<String>,
    /// Version 2: the dialer takes the token's fast start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_start: Option<bool>,
    /// Version 1: SHA-256 of the dialer's certificate, SDP notation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Version 2: the dialer's candidates, `"<type> udp <address>:<port>"`, in its order.
    pub candidates: Vec<String>,
    /// Version 2: the tag, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Version 2: the outcome of `verify` against a token (`valid` or an error code), when a
    /// token was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
}

impl ReplyInspection {
    /// Inspects `reply`, read from `text`, at `now_unix_secs`; `verified` is the result of
    /// [`super::CandidateReply::verify`] when the caller had the token's reply key.
    pub fn new(
        reply: &AnyReply,
        text: &str,
        now_unix_secs: u64,
        verified: Option<&Result<(), ReplyError>>,
    ) -> Self {
        let text = text.trim().to_owned();
        let chars = text.chars().count();
        // Base64url without padding: every 4 characters are 3 bytes; the prefix is 5.
        let bytes = (chars.saturating_sub(5) * 3) / 4;
        match reply {
            AnyReply::Identity(code) => ReplyInspection {
                version: 1,
                purpose: "a browser dialer's identity, for a browser listener (reply profile)",
                text,
                chars,
                bytes,
                issued: None,
                issued_utc: None,
                age_seconds: None,
                ufrag: code.ice.ufrag().to_owned(),
                pwd: Some(code.ice.pwd().to_owned()),
                fast_start: None,
                fingerprint: Some(code.fingerprint.to_sdp_hex()),
                candidates: Vec::new(),
                tag: None,
                verification: None,
            },
            AnyReply::Candidates(code) => ReplyInspection {
                version: 2,
                purpose: "a dialer's credentials and candidates, for a native listener to check towards (hole punching)",
                text,
                chars,
                bytes,
                issued: Some(code.issued),
                issued_utc: Some(
                    humantime::format_rfc3339_seconds(
                        UNIX_EPOCH + Duration::from_secs(code.issued.into()),
                    )
                    .to_string(),
                ),
                age_seconds: Some(now_unix_secs as i64 - i64::from(code.issued)),
                ufrag: code.ufrag.clone(),
                pwd: code.pwd.clone(),
                fast_start: Some(code.fast_start),
                fingerprint: None,
                candidates: code.candidates.iter().map(candidate_line).collect(),
                tag: code.received_tag.map(|t| hex(&t)),
                verification: verified.map(|r| match r {
                    Ok(()) => "valid".to_owned(),
                    Err(e) => e.code().to_owned(),
                }),
            },
        }
    }
}

fn candidate_line(c: &Candidate) -> String {
    let address = match c.address {
        CandidateAddress::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        other => other.to_sdp_string(),
    };
    format!(
        "{} {} {address}:{}",
        c.kind.sdp_name(),
        c.transport.sdp_name(),
        c.port
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Display for ReplyInspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "oneway reply code v{} · {}", self.version, self.purpose)?;
        if let (Some(issued), Some(utc), Some(age)) =
            (self.issued, &self.issued_utc, self.age_seconds)
        {
            writeln!(f, "issued         {utc} (unix {issued}, {age}s ago)")?;
        }
        writeln!(f, "dialer ufrag   {}", self.ufrag)?;
        match &self.pwd {
            Some(pwd) => writeln!(f, "dialer pwd     {pwd}")?,
            None => writeln!(
                f,
                "dialer pwd     derived from the token's reply key (spec/token.md §7)"
            )?,
        }
        if let Some(fast_start) = self.fast_start {
            writeln!(
                f,
                "fast start     {}",
                if fast_start { "yes" } else { "no" }
            )?;
        }
        if let Some(fingerprint) = &self.fingerprint {
            writeln!(f, "fingerprint    sha-256 {fingerprint}")?;
        }
        if let Some(tag) = &self.tag {
            let verdict = match self.verification.as_deref() {
                None => "not verified: give the token with --reply-for",
                Some("valid") => "valid for the token given",
                Some(code) => code,
            };
            writeln!(f, "tag            {tag} ({verdict})")?;
        }
        if !self.candidates.is_empty() {
            writeln!(f, "\ncandidates (the dialer's order)")?;
            for (i, c) in self.candidates.iter().enumerate() {
                writeln!(f, "  {:>2}. {c}", i + 1)?;
            }
        }
        let fixed = if self.version == 2 {
            format!(" ({REPLY_V2_FIXED_BYTES} B fixed)")
        } else {
            String::new()
        };
        writeln!(f, "\nsize  {} chars · {} B{fixed}", self.chars, self.bytes)?;
        write!(f, "\ntext  {}", self.text)
    }
}
