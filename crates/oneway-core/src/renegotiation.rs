//! The checks every native peer makes on an in-band `offer` before its stack sees it
//! (`spec/handshake.md` §6.2, §10.5), sans-IO: one SDP reader ([`summarize`]), the running
//! session an offer must agree with ([`Running`], [`check_offer`]), the offer rate
//! ([`OfferRate`]) and the named errors ([`NegotiationError`]) sent on channel 0.
//!
//! Stacks check neither the ICE credentials nor the fingerprint of a later offer against the
//! running session (credentials that differ start an ICE restart, which a listener must never
//! take; a different fingerprint is ignored once DTLS is up), so [`check_offer`] does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most in-band offers accepted from the peer in [`OFFER_WINDOW`]; more get `too-many-offers`.
pub const OFFER_LIMIT: usize = 8;
/// The window of [`OFFER_LIMIT`].
pub const OFFER_WINDOW: Duration = Duration::from_secs(10);

/// Static payload types (RFC 3551) of audio codecs, valid without an `a=rtpmap`.
const STATIC: &[(&str, &str)] = &[("0", "pcmu"), ("8", "pcma"), ("9", "g722")];

/// Why an in-band `offer` or `answer` was refused; [`NegotiationError::code`] is the channel-0
/// error code (`spec/handshake.md` §8).
#[derive(Debug, thiserror::Error)]
pub enum NegotiationError {
    /// The SDP did not parse, or lacks what every description must carry.
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The offer carries ICE credentials other than the running ones (restarts use
    /// `ice-restart`, §6.1).
    #[error("the offer changes the ICE credentials")]
    CredentialsChanged,
    /// The offer carries a certificate fingerprint other than the running DTLS peer's.
    #[error("the offer changes the DTLS fingerprint")]
    FingerprintChanged,
    /// The offer gives one SSRC to two media sections, or one this peer sends with.
    #[error("SSRC {0} collides with another track's")]
    SsrcCollision(u32),
    /// A media section the offer adds lists no codec this peer has.
    #[error("no codec in common for m-line {0}")]
    NoCommonCodec(String),
    /// The stack refused the description.
    #[error("the stack refused the description: {0}")]
    Refused(String),
    /// An `answer` arrived while no offer of ours was waiting for one.
    #[error("answer without an offer")]
    UnexpectedAnswer,
    /// The peer sent more than [`OFFER_LIMIT`] offers within [`OFFER_WINDOW`].
    #[error("more than {OFFER_LIMIT} offers in {OFFER_WINDOW:?}")]
    TooManyOffers,
}

impl NegotiationError {
    /// The stable code sent in the channel-0 `error`.
    pub fn code(&self) -> &'static str {
        match self {
            NegotiationError::UnexpectedAnswer => "unexpected-answer",
            NegotiationError::TooManyOffers => "too-many-offers",
            _ => "renegotiation-failed",
        }
    }
}

/// One media section (`m=`) of an SDP, as far as the peers check and answer it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// `audio`, `video` or `application`.
    pub kind: String,
    /// The port (0: a rejected or stopped section).
    pub port: u16,
    /// `a=mid`.
    pub mid: Option<String>,
    /// `sendrecv` (the default), `sendonly`, `recvonly` or `inactive`.
    pub direction: String,
    /// Payload types in the `m=` line's order.
    pub formats: Vec<String>,
    /// `(payload type, lower-case encoding name)` from its `a=rtpmap` lines.
    pub rtpmap: Vec<(String, String)>,
    /// The SSRCs of its `a=ssrc` lines (each once).
    pub ssrcs: Vec<u32>,
}

impl Section {
    /// Port 0: a rejected or stopped section.
    pub fn port_zero(&self) -> bool {
        self.port == 0
    }

    /// An audio or video section.
    pub fn is_media(&self) -> bool {
        matches!(self.kind.as_str(), "audio" | "video")
    }

    /// Whether the side that wrote this section wants to receive media on it.
    pub fn receives(&self) -> bool {
        matches!(self.direction.as_str(), "sendrecv" | "recvonly")
    }

    /// Whether the side that wrote this section sends media on it.
    pub fn sends(&self) -> bool {
        matches!(self.direction.as_str(), "sendrecv" | "sendonly")
    }

    /// The lower-case encoding name of payload type `pt`, from `a=rtpmap` or the static table.
    pub fn codec(&self, pt: &str) -> Option<&str> {
        self.rtpmap
            .iter()
            .find(|(p, _)| p == pt)
            .map(|(_, name)| name.as_str())
            .or_else(|| STATIC.iter().find(|(p, _)| *p == pt).map(|(_, n)| *n))
    }

    /// The encoding names of the offered formats, in order (a format without a name is
    /// given as its payload type).
    pub fn codecs(&self) -> Vec<&str> {
        self.formats
            .iter()
            .map(|pt| self.codec(pt).unwrap_or(pt))
            .collect()
    }

    /// The payload types whose encoding is `name` (compared without case).
    pub fn payload_types<'a>(&'a self, name: &'a str) -> impl Iterator<Item = u8> + 'a {
        self.rtpmap
            .iter()
            .filter(move |(_, n)| n.eq_ignore_ascii_case(name))
            .filter_map(|(pt, _)| pt.parse().ok())
    }
}

/// What [`check_offer`] and the engines read from an SDP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdpSummary {
    /// The first `a=ice-ufrag`.
    pub ufrag: Option<String>,
    /// The first `a=ice-pwd`.
    pub pwd: Option<String>,
    /// The first `a=fingerprint` (lower-case hash name, digest).
    pub fingerprint: Option<(String, Vec<u8>)>,
    /// The media sections in order.
    pub sections: Vec<Section>,
}

/// Reads the lines the checks and the engines need; other lines are left to the stack's parser.
pub fn summarize(sdp: &str) -> SdpSummary {
    let mut out = SdpSummary::default();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or_default().to_owned();
            let port = parts
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            out.sections.push(Section {
                kind,
                port,
                direction: "sendrecv".to_owned(),
                formats: parts.skip(1).map(str::to_owned).collect(),
                ..Section::default()
            });
        } else if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            out.ufrag.get_or_insert_with(|| v.to_owned());
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            out.pwd.get_or_insert_with(|| v.to_owned());
        } else if let Some(v) = line.strip_prefix("a=fingerprint:") {
            if out.fingerprint.is_none() {
                out.fingerprint = parse_fingerprint(v);
            }
        } else if let Some(s) = out.sections.last_mut() {
            read_section_line(s, line);
        }
    }
    out
}

fn read_section_line(s: &mut Section, line: &str) {
    if let Some(v) = line.strip_prefix("a=mid:") {
        s.mid = Some(v.to_owned());
    } else if let Some(v) = line.strip_prefix("a=ssrc:") {
        if let Some(Ok(ssrc)) = v.split_whitespace().next().map(str::parse::<u32>)
            && !s.ssrcs.contains(&ssrc)
        {
            s.ssrcs.push(ssrc);
        }
    } else if let Some(v) = line.strip_prefix("a=rtpmap:") {
        if let Some((pt, rest)) = v.split_once(' ') {
            let name = rest.split('/').next().unwrap_or_default().to_lowercase();
            s.rtpmap.push((pt.to_owned(), name));
        }
    } else if let Some(d) = line
        .strip_prefix("a=")
        .filter(|d| matches!(*d, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
    {
        s.direction = d.to_owned();
    }
}

fn parse_fingerprint(value: &str) -> Option<(String, Vec<u8>)> {
    let (hash, hex) = value.split_once(' ')?;
    let bytes = hex
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((hash.to_ascii_lowercase(), bytes))
}

/// The running session an offer must agree with.
#[derive(Debug, Clone)]
pub struct Running<'a> {
    /// The peer's ICE ufrag in force.
    pub remote_ufrag: &'a str,
    /// The peer's ICE pwd in force.
    pub remote_pwd: &'a str,
    /// The SHA-256 of the certificate the peer presented in DTLS.
    pub remote_fingerprint: &'a [u8],
    /// Codec names this peer has (`opus`, `VP8`, …; compared without case).
    pub codecs: &'a [String],
    /// Mids of the media sections already negotiated.
    pub known_mids: &'a [String],
    /// The SSRCs this peer sends with.
    pub local_ssrcs: &'a [u32],
}

/// Checks an offer against the running session before the stack sees it: an SDP text with
/// sections, ICE credentials and a fingerprint; the same ICE credentials and fingerprint; no
/// SSRC twice nor one of ours; a common codec in every media section it adds. A stack with an
/// SDP parser of its own runs that first. Returns what it read.
pub fn check_offer(sdp: &str, running: &Running<'_>) -> Result<SdpSummary, NegotiationError> {
    if !sdp.trim_start().starts_with("v=0") {
        return Err(NegotiationError::Malformed(
            "the text does not start with v=0".into(),
        ));
    }
    let summary = summarize(sdp);
    if summary.sections.is_empty() {
        return Err(NegotiationError::Malformed("no m= section".into()));
    }
    let (Some(ufrag), Some(pwd)) = (&summary.ufrag, &summary.pwd) else {
        return Err(NegotiationError::Malformed(
            "no a=ice-ufrag/a=ice-pwd".into(),
        ));
    };
    if ufrag != running.remote_ufrag || pwd != running.remote_pwd {
        return Err(NegotiationError::CredentialsChanged);
    }
    let Some((hash, digest)) = &summary.fingerprint else {
        return Err(NegotiationError::Malformed("no a=fingerprint".into()));
    };
    if hash != "sha-256" || digest.as_slice() != running.remote_fingerprint {
        return Err(NegotiationError::FingerprintChanged);
    }
    let mut seen: Vec<u32> = Vec::new();
    for ssrc in summary.sections.iter().flat_map(|s| &s.ssrcs) {
        if seen.contains(ssrc) || running.local_ssrcs.contains(ssrc) {
            return Err(NegotiationError::SsrcCollision(*ssrc));
        }
        seen.push(*ssrc);
    }
    for section in &summary.sections {
        let new = section
            .mid
            .as_ref()
            .is_none_or(|m| !running.known_mids.contains(m));
        if section.is_media() && !section.port_zero() && new {
            let common = section.codecs().iter().any(|c| {
                running
                    .codecs
                    .iter()
                    .any(|mine| mine.eq_ignore_ascii_case(c))
            });
            if !common {
                return Err(NegotiationError::NoCommonCodec(format!(
                    "{} ({}: offered {})",
                    section.mid.as_deref().unwrap_or("?"),
                    section.kind,
                    section.codecs().join(", ")
                )));
            }
        }
    }
    Ok(summary)
}

/// Counts the peer's offers in a sliding window ([`OFFER_LIMIT`] per [`OFFER_WINDOW`]).
#[derive(Debug, Default)]
pub struct OfferRate {
    times: VecDeque<Instant>,
}

impl OfferRate {
    /// Records an offer at `now`; `false` when it is one too many.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= OFFER_WINDOW)
        {
            self.times.pop_front();
        }
        if self.times.len() >= OFFER_LIMIT {
            return false;
        }
        self.times.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: [u8; 4] = [0xAB, 0x01, 0x02, 0xFF];

    fn offer(ufrag: &str, fp: &str, audio_codec: &str) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
             m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
             a=ice-ufrag:{ufrag}\r\na=ice-pwd:pwdpwdpwdpwdpwdpwdpwdpwd\r\n\
             a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=sctp-port:5000\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
             a=rtcp-mux\r\na=rtpmap:111 {audio_codec}/48000/2\r\n"
        )
    }

    fn running(codecs: &[String]) -> Running<'_> {
        Running {
            remote_ufrag: "ufra",
            remote_pwd: "pwdpwdpwdpwdpwdpwdpwdpwd",
            remote_fingerprint: &FP,
            codecs,
            known_mids: &[],
            local_ssrcs: &[77],
        }
    }

    #[test]
    fn an_offer_is_checked_against_the_running_session() {
        let codecs = vec!["opus".to_owned()];
        assert!(check_offer(&offer("ufra", "AB:01:02:FF", "opus"), &running(&codecs)).is_ok());
        assert!(matches!(
            check_offer(&offer("other", "AB:01:02:FF", "opus"), &running(&codecs)),
            Err(NegotiationError::CredentialsChanged)
        ));
        assert!(matches!(
            check_offer(&offer("ufra", "AB:01:02:FE", "opus"), &running(&codecs)),
            Err(NegotiationError::FingerprintChanged)
        ));
        let e = check_offer(&offer("ufra", "AB:01:02:FF", "speex"), &running(&codecs));
        assert!(matches!(e, Err(NegotiationError::NoCommonCodec(ref m)) if m.starts_with("1 ")));
        let colliding = offer("ufra", "AB:01:02:FF", "opus") + "a=ssrc:77 cname:x\r\n";
        assert!(matches!(
            check_offer(&colliding, &running(&codecs)),
            Err(NegotiationError::SsrcCollision(77))
        ));
        let e = check_offer("v=0\r\nnonsense", &running(&codecs)).unwrap_err();
        assert_eq!(e.code(), "renegotiation-failed");
        assert!(matches!(
            check_offer("this is not SDP", &running(&codecs)),
            Err(NegotiationError::Malformed(_))
        ));
    }

    #[test]
    fn one_ssrc_in_two_sections_collides() {
        let codecs = vec!["opus".to_owned()];
        let twice = offer("ufra", "AB:01:02:FF", "opus")
            + "a=ssrc:5 cname:x\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:2\r\n\
               a=rtpmap:111 opus/48000/2\r\na=ssrc:5 cname:x\r\n";
        assert!(matches!(
            check_offer(&twice, &running(&codecs)),
            Err(NegotiationError::SsrcCollision(5))
        ));
    }

    #[test]
    fn a_known_section_needs_no_common_codec_again_and_a_stopped_one_none() {
        let codecs = vec!["opus".to_owned()];
        let speex = offer("ufra", "AB:01:02:FF", "speex");
        let known = vec!["1".to_owned()];
        let mut r = running(&codecs);
        r.known_mids = &known;
        assert!(check_offer(&speex, &r).is_ok());
        let stopped = speex.replace("m=audio 9", "m=audio 0");
        assert!(check_offer(&stopped, &running(&codecs)).is_ok());
    }

    #[test]
    fn sections_direction_codecs_and_static_payload_types_are_read() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:1\r\na=recvonly\r\n\
            a=rtpmap:111 OPUS/48000/2\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=rtpmap:96 VP8/90000\r\n";
        let s = summarize(sdp).sections;
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].kind, "audio");
        assert_eq!(s[1].mid.as_deref(), Some("1"));
        assert!(s[1].receives() && !s[1].sends());
        assert_eq!(s[1].codecs(), ["opus", "pcmu"]);
        assert_eq!(s[1].payload_types("opus").collect::<Vec<_>>(), [111]);
        assert!(s[2].port_zero() && s[2].is_media() && s[2].sends());
        assert_eq!(s[2].payload_types("VP8").collect::<Vec<_>>(), [96]);
        assert!(!s[0].is_media());
    }

    #[test]
    fn the_offer_rate_is_bounded() {
        let start = Instant::now();
        let mut rate = OfferRate::default();
        for _ in 0..OFFER_LIMIT {
            assert!(rate.allow(start));
        }
        assert!(!rate.allow(start));
        assert!(rate.allow(start + OFFER_WINDOW));
    }
}
