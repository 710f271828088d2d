//! Mapping between SDP and tokens (`spec/token.md` §9).
//!
//! * A listener's complete, non-trickle offer becomes a token with [`Token::from_offer`].
//! * A token becomes the SDP a dialer passes to `setRemoteDescription` with
//!   [`Token::remote_description`]: in the `native` profile an *answer* to the dialer's own
//!   offer (the dialer offers, then writes the listener's answer itself); in the other
//!   profiles the listener's *offer*.
//!
//! The parser reads only what the mapping needs and ignores every other line.

use std::fmt::Write as _;

use crate::error::TokenError;
use crate::ice::{IceCredentials, IceError, compose_listener_ufrag};
use crate::token::{
    Candidate, CandidateAddress, CandidateType, DEFAULT_SCTP_PORT, Fingerprint, MAX_CANDIDATES,
    Profile, SctpParams, Secret, Token, Transport,
};

/// Longest SDP text accepted (browsers' complete offers are a few KiB).
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// The mid of the data section in descriptions synthesized for the `dialer-identity` and `reply`
/// profiles.
pub const LISTENER_MID: &str = "0";
/// ICE type preference written for every token candidate: the order of the token alone ranks them.
const TYPE_PREFERENCE: u32 = 126;

/// Why SDP could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The SDP text exceeds [`MAX_SDP_LEN`].
    #[error("SDP is {len} bytes; at most {max} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// There is no `m=application … DTLS/SCTP` section.
    #[error("no data-channel (m=application … DTLS/SCTP) section")]
    NoApplicationSection,
    /// No `a=fingerprint` at session or media level.
    #[error("no a=fingerprint line")]
    MissingFingerprint,
    /// Fingerprints exist, but none is SHA-256.
    #[error("no sha-256 fingerprint (found {0}); tokens carry SHA-256 only")]
    UnsupportedFingerprint(String),
    /// The SHA-256 fingerprint is not 32 colon-separated hex pairs.
    #[error("a=fingerprint:sha-256 value is not 32 hex pairs")]
    InvalidFingerprint,
    /// No `a=ice-ufrag`/`a=ice-pwd`.
    #[error("no a=ice-ufrag/a=ice-pwd lines")]
    MissingIceCredentials,
    /// ICE credentials break RFC 8839.
    #[error("ICE credentials: {0}")]
    InvalidIceCredentials(#[from] IceError),
    /// A candidate line could not be parsed.
    #[error("line {line}: malformed candidate ({reason})")]
    InvalidCandidate {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Every candidate was skipped.
    #[error("no candidate a token can carry ({skipped} skipped: {first_reason})")]
    NoUsableCandidates {
        /// Number of candidates skipped.
        skipped: usize,
        /// Why the first one was skipped.
        first_reason: &'static str,
    },
    /// The operation needs a different profile (e.g. a dialer offer for `native` only).
    #[error("{operation} applies to profile {expected}, but the token's profile is {found}")]
    ProfileMismatch {
        /// What was attempted.
        operation: &'static str,
        /// Profile(s) it applies to.
        expected: &'static str,
        /// The token's profile.
        found: &'static str,
    },
    /// The result is not a valid token.
    #[error("resulting token is invalid: {0}")]
    Token(#[from] TokenError),
}

impl SdpError {
    /// A stable, short, kebab-case name for this error.
    pub fn code(&self) -> &'static str {
        match self {
            SdpError::TooLong { .. } => "sdp-too-long",
            SdpError::NoApplicationSection => "no-application-section",
            SdpError::MissingFingerprint => "missing-fingerprint",
            SdpError::UnsupportedFingerprint(_) => "unsupported-fingerprint",
            SdpError::InvalidFingerprint => "invalid-fingerprint",
            SdpError::MissingIceCredentials => "missing-ice-credentials",
            SdpError::InvalidIceCredentials(_) => "invalid-ice-credentials",
            SdpError::InvalidCandidate { .. } => "invalid-candidate",
            SdpError::NoUsableCandidates { .. } => "no-usable-candidates",
            SdpError::ProfileMismatch { .. } => "profile-mismatch",
            SdpError::Token(e) => e.code(),
        }
    }
}

/// The SDP type to pass to `setRemoteDescription` with the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpType {
    /// `"offer"`.
    Offer,
    /// `"answer"`.
    Answer,
}

impl SdpType {
    /// `"offer"` or `"answer"`, as `RTCSessionDescriptionInit.type` wants it.
    pub fn as_str(self) -> &'static str {
        match self {
            SdpType::Offer => "offer",
            SdpType::Answer => "answer",
        }
    }
}

/// A description ready for `setRemoteDescription`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteDescription {
    /// Offer or answer.
    pub sdp_type: SdpType,
    /// SDP text with CRLF line ends.
    pub sdp: String,
}

/// A candidate line that could not go into a token, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedCandidate {
    /// 1-based SDP line number.
    pub line: usize,
    /// The reason, in words.
    pub reason: &'static str,
}

/// What a listener's offer says that a token can carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerOffer {
    /// The SHA-256 certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// The offer's own ICE credentials.
    pub ice: IceCredentials,
    /// Usable candidates, by descending ICE priority, at most [`MAX_CANDIDATES`].
    pub candidates: Vec<Candidate>,
    /// Candidates left out, with reasons.
    pub skipped: Vec<SkippedCandidate>,
    /// SCTP port and max-message-size (RFC 8841 defaults: 5000, and 65536 when absent).
    pub sctp: SctpParams,
    /// The data section's mid.
    pub mid: String,
}

/// Options for [`Token::from_offer`].
#[derive(Clone, Debug)]
pub struct OfferOptions {
    /// Which profile the token is for.
    pub profile: Profile,
    /// The freshly generated secret.
    pub secret: Secret,
}

/// One m-section (or the session part) of parsed SDP.
#[derive(Debug, Default)]
struct Section<'a> {
    media: &'a str,
    proto: &'a str,
    first_format: &'a str,
    /// `(line number, attribute name, value)`.
    attributes: Vec<(usize, &'a str, &'a str)>,
}

impl<'a> Section<'a> {
    fn attr(&self, name: &str) -> Option<&'a str> {
        self.attributes
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(_, _, v)| *v)
    }

    fn attrs(&self, name: &'a str) -> impl Iterator<Item = (usize, &'a str)> + '_ {
        self.attributes
            .iter()
            .filter(move |(_, n, _)| *n == name)
            .map(|(line, _, v)| (*line, *v))
    }

    fn is_data(&self) -> bool {
        self.media == "application" && self.proto.contains("DTLS/SCTP")
    }
}

/// Splits SDP into the session part and its m-sections.
fn parse_sections(sdp: &str) -> Result<(Section<'_>, Vec<Section<'_>>), SdpError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpError::TooLong {
            len: sdp.len(),
            max: MAX_SDP_LEN,
        });
    }
    let mut session = Section::default();
    let mut media: Vec<Section<'_>> = Vec::new();
    for (index, raw) in sdp.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let current = media.last_mut().unwrap_or(&mut session);
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_ascii_whitespace();
            let media_type = fields.next().unwrap_or("");
            let proto = fields.nth(1).unwrap_or("");
            media.push(Section {
                media: media_type,
                proto,
                first_format: fields.next().unwrap_or(""),
                attributes: Vec::new(),
            });
        } else if let Some(attribute) = line.strip_prefix("a=") {
            let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
            current.attributes.push((index + 1, name, value.trim()));
        }
    }
    Ok((session, media))
}

fn media_or_session<'a>(data: &Section<'a>, session: &Section<'a>, name: &str) -> Option<&'a str> {
    data.attr(name).or_else(|| session.attr(name))
}

fn read_fingerprint(data: &Section<'_>, session: &Section<'_>) -> Result<Fingerprint, SdpError> {
    let all: Vec<&str> = data
        .attrs("fingerprint")
        .chain(session.attrs("fingerprint"))
        .map(|(_, v)| v)
        .collect();
    if all.is_empty() {
        return Err(SdpError::MissingFingerprint);
    }
    let sha256 = all.iter().find_map(|v| {
        let (algorithm, hex) = v.split_once(' ')?;
        algorithm.eq_ignore_ascii_case("sha-256").then_some(hex)
    });
    match sha256 {
        Some(hex) => Fingerprint::from_sdp_hex(hex).ok_or(SdpError::InvalidFingerprint),
        None => Err(SdpError::UnsupportedFingerprint(
            all.iter()
                .map(|v| v.split(' ').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

fn read_ice(data: &Section<'_>, session: &Section<'_>) -> Result<IceCredentials, SdpError> {
    let ufrag = media_or_session(data, session, "ice-ufrag");
    let pwd = media_or_session(data, session, "ice-pwd");
    match (ufrag, pwd) {
        (Some(ufrag), Some(pwd)) => Ok(IceCredentials::new(ufrag, pwd)?),
        _ => Err(SdpError::MissingIceCredentials),
    }
}

fn read_sctp(data: &Section<'_>) -> SctpParams {
    let port = data
        .attr("sctp-port")
        .or_else(|| data.attr("sctpmap").and_then(|v| v.split(' ').next()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SCTP_PORT);
    // RFC 8841 §6: an absent max-message-size means 64 KiB.
    let max_message_size = data
        .attr("max-message-size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(65_536);
    SctpParams {
        port,
        max_message_size,
    }
}

/// A parsed `a=candidate` value, or the reason it cannot go into a token.
fn parse_candidate(
    value: &str,
    line: usize,
) -> Result<Result<(u32, Candidate), &'static str>, SdpError> {
    let invalid = |reason| SdpError::InvalidCandidate { line, reason };
    let fields: Vec<&str> = value.split_ascii_whitespace().collect();
    let [
        _foundation,
        component,
        transport,
        priority,
        address,
        port,
        typ_key,
        typ,
        ref rest @ ..,
    ] = fields[..]
    else {
        return Err(invalid("fewer than 8 fields"));
    };
    if typ_key != "typ" {
        return Err(invalid("7th field is not `typ`"));
    }
    let priority: u32 = priority
        .parse()
        .map_err(|_| invalid("priority is not a number"))?;
    let port: u16 = port.parse().map_err(|_| invalid("port is not a number"))?;
    if component != "1" {
        return Ok(Err("component is not 1 (RTP/data)"));
    }
    let tcptype = rest.windows(2).find(|w| w[0] == "tcptype").map(|w| w[1]);
    let transport = match (transport.to_ascii_lowercase().as_str(), tcptype) {
        ("udp", _) => Transport::Udp,
        ("tcp", Some("passive")) => Transport::TcpPassive,
        ("tcp", _) => return Ok(Err("TCP candidate that is not passive")),
        _ => return Ok(Err("transport is neither UDP nor TCP")),
    };
    let kind = match typ {
        "host" => CandidateType::Host,
        "srflx" => CandidateType::ServerReflexive,
        "relay" => CandidateType::Relay,
        "prflx" => return Ok(Err("peer-reflexive candidates are never published")),
        _ => return Err(invalid("unknown candidate type")),
    };
    let Some(address) = CandidateAddress::from_sdp_str(address) else {
        return Ok(Err(
            "address is neither an IP literal nor a <uuid>.local name",
        ));
    };
    if port == 0 || address.is_unspecified() {
        return Ok(Err("port 0 or unspecified address"));
    }
    if matches!(address, CandidateAddress::Mdns(_)) && kind != CandidateType::Host {
        return Ok(Err("mDNS name on a non-host candidate"));
    }
    Ok(Ok((
        priority,
        Candidate {
            transport,
            kind,
            address,
            port,
        },
    )))
}

/// Reads what a token needs from a listener's complete (non-trickle) SDP offer.
pub fn parse_listener_offer(sdp: &str) -> Result<ListenerOffer, SdpError> {
    let (session, media) = parse_sections(sdp)?;
    let data = media
        .iter()
        .find(|s| s.is_data())
        .ok_or(SdpError::NoApplicationSection)?;
    let fingerprint = read_fingerprint(data, &session)?;
    let ice = read_ice(data, &session)?;
    let mut ranked: Vec<(u32, Candidate)> = Vec::new();
    let mut skipped = Vec::new();
    for (line, value) in data.attrs("candidate") {
        match parse_candidate(value, line)? {
            Ok((priority, candidate)) if !ranked.iter().any(|(_, c)| *c == candidate) => {
                ranked.push((priority, candidate));
            }
            Ok(_) => skipped.push(SkippedCandidate {
                line,
                reason: "duplicate of an earlier candidate",
            }),
            Err(reason) => skipped.push(SkippedCandidate { line, reason }),
        }
    }
    // Stable: equal priorities keep the offer's order.
    ranked.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
    if ranked.len() > MAX_CANDIDATES {
        skipped.extend(ranked[MAX_CANDIDATES..].iter().map(|_| SkippedCandidate {
            line: 0,
            reason: "lowest priority beyond the 16-candidate limit",
        }));
        ranked.truncate(MAX_CANDIDATES);
    }
    if ranked.is_empty() {
        return Err(SdpError::NoUsableCandidates {
            skipped: skipped.len(),
            first_reason: skipped
                .first()
                .map_or("the offer has no a=candidate lines", |s| s.reason),
        });
    }
    Ok(ListenerOffer {
        fingerprint,
        ice,
        candidates: ranked.into_iter().map(|(_, c)| c).collect(),
        skipped,
        sctp: read_sctp(data),
        mid: data.attr("mid").unwrap_or(LISTENER_MID).to_owned(),
    })
}

impl Token {
    /// Builds a token from a listener's complete, non-trickle SDP offer (`spec/token.md` §9.1).
    ///
    /// Candidates are ordered by descending ICE priority. In the `native` profile the offer's
    /// own ICE credentials are dropped (the listener must use the derived ones); in the other
    /// profiles they go into the `listener-ice` extension. SCTP parameters that differ from the
    /// defaults go into the `sctp` extension.
    pub fn from_offer(sdp: &str, options: &OfferOptions) -> Result<Token, SdpError> {
        let offer = parse_listener_offer(sdp)?;
        let mut token = Token::new(
            options.profile,
            offer.fingerprint,
            options.secret,
            offer.candidates,
        );
        if offer.sctp != SctpParams::default() {
            token.sctp = Some(offer.sctp);
        }
        if !options.profile.derives_listener_ice() {
            token.listener_ice = Some(offer.ice);
        }
        token.validate()?;
        Ok(token)
    }

    /// The SDP a dialer passes to `setRemoteDescription` (`spec/token.md` §9.2).
    ///
    /// `native` profile: `dialer_offer` must be the dialer's own local offer; the result is the
    /// listener's answer to it. Other profiles: `dialer_offer` must be `None`; the result is the
    /// listener's offer.
    pub fn remote_description(
        &self,
        dialer_offer: Option<&str>,
    ) -> Result<RemoteDescription, SdpError> {
        match (self.profile, dialer_offer) {
            (Profile::Native, Some(offer)) => self.native_answer(offer),
            (Profile::Native, None) => Err(SdpError::ProfileMismatch {
                operation: "a listener offer (no dialer offer given)",
                expected: "dialer-identity or reply",
                found: self.profile.name(),
            }),
            (_, None) => self.listener_offer(),
            (_, Some(_)) => Err(SdpError::ProfileMismatch {
                operation: "an answer to a dialer offer",
                expected: "native",
                found: self.profile.name(),
            }),
        }
    }

    /// `native` profile: the listener's answer to the dialer's own offer. The answer's
    /// `a=ice-ufrag` is the composed `<token ufrag>+<dialer pwd>`; non-data m-sections of the
    /// offer are rejected (port 0) as RFC 3264 requires an answer to keep every m-line.
    pub fn native_answer(&self, dialer_offer: &str) -> Result<RemoteDescription, SdpError> {
        self.native_answer_with_ice(dialer_offer, None)
    }

    /// [`Token::native_answer`] with the listener's ICE credentials given as `(ufrag, pwd)`
    /// instead of derived: the answer a dialer sets after an in-band ICE restart
    /// (`spec/handshake.md` §6.1), when the listener has answered with new credentials.
    pub fn native_answer_with_ice(
        &self,
        dialer_offer: &str,
        listener_ice: Option<(&str, &str)>,
    ) -> Result<RemoteDescription, SdpError> {
        if self.profile != Profile::Native {
            return Err(SdpError::ProfileMismatch {
                operation: "native_answer",
                expected: "native",
                found: self.profile.name(),
            });
        }
        let (session, media) = parse_sections(dialer_offer)?;
        let data = media
            .iter()
            .find(|s| s.is_data())
            .ok_or(SdpError::NoApplicationSection)?;
        let dialer_ice = read_ice(data, &session)?;
        let keys = self.derive();
        let (ufrag, pwd) = match listener_ice {
            Some((ufrag, pwd)) => (ufrag.to_owned(), pwd.to_owned()),
            None => (
                compose_listener_ufrag(&keys.token_ufrag, dialer_ice.pwd())?,
                keys.listener_pwd.clone(),
            ),
        };
        let mut sdp = String::new();
        let data_mid = data.attr("mid").unwrap_or(LISTENER_MID);
        write_session(&mut sdp, data_mid, true);
        for section in &media {
            let mid = section.attr("mid").unwrap_or("");
            if std::ptr::eq(section, data) {
                self.write_data_section(&mut sdp, mid, &ufrag, &pwd, "passive");
            } else {
                let _ = write!(
                    sdp,
                    "m={} 0 {} {}\r\nc=IN IP4 0.0.0.0\r\na=mid:{mid}\r\n",
                    section.media, section.proto, section.first_format
                );
            }
        }
        Ok(RemoteDescription {
            sdp_type: SdpType::Answer,
            sdp,
        })
    }

    /// `dialer-identity` and `reply` profiles: the listener's offer, rebuilt from the token.
    pub fn listener_offer(&self) -> Result<RemoteDescription, SdpError> {
        let Some(ice) = self
            .listener_ice
            .as_ref()
            .filter(|_| self.profile != Profile::Native)
        else {
            return Err(SdpError::ProfileMismatch {
                operation: "listener_offer",
                expected: "dialer-identity or reply",
                found: self.profile.name(),
            });
        };
        let mut sdp = String::new();
        write_session(&mut sdp, LISTENER_MID, false);
        self.write_data_section(&mut sdp, LISTENER_MID, ice.ufrag(), ice.pwd(), "actpass");
        Ok(RemoteDescription {
            sdp_type: SdpType::Offer,
            sdp,
        })
    }

    /// The data section with every token field; `ufrag` may be a placeholder in displays.
    pub(crate) fn write_data_section(
        &self,
        sdp: &mut String,
        mid: &str,
        ufrag: &str,
        pwd: &str,
        setup: &str,
    ) {
        let sctp = self.sctp_params();
        let _ = write!(
            sdp,
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=mid:{mid}\r\n\
             a=ice-ufrag:{ufrag}\r\n\
             a=ice-pwd:{pwd}\r\n\
             a=fingerprint:sha-256 {}\r\n\
             a=setup:{setup}\r\n\
             a=sctp-port:{}\r\n\
             a=max-message-size:{}\r\n",
            self.fingerprint.to_sdp_hex(),
            sctp.port,
            sctp.max_message_size,
        );
        for line in self.candidate_attributes() {
            let _ = write!(sdp, "a={line}\r\n");
        }
        sdp.push_str("a=end-of-candidates\r\n");
    }

    /// The `candidate:…` attribute values (without `a=`) of every candidate, in token order,
    /// with the priorities of §9.2. Stacks without SDP feed these to their candidate parsers.
    pub fn candidate_attributes(&self) -> Vec<String> {
        self.candidates
            .iter()
            .enumerate()
            .map(|(index, c)| candidate_attribute(index, c))
            .collect()
    }
}

/// The `candidate:` attribute value of the token candidate at `index`.
pub fn candidate_attribute(index: usize, c: &Candidate) -> String {
    let mut line = format!(
        "candidate:{} 1 {} {} {} {} typ {}",
        index + 1,
        c.transport.sdp_name(),
        candidate_priority(index),
        c.address.to_sdp_string(),
        c.port,
        c.kind.sdp_name(),
    );
    if c.kind != CandidateType::Host {
        let _ = write!(line, " raddr {} rport 0", c.address.unspecified_sdp().1);
    }
    if c.transport == Transport::TcpPassive {
        line.push_str(" tcptype passive");
    }
    line
}

pub(crate) fn write_session(sdp: &mut String, bundle_mid: &str, ice_lite: bool) {
    let _ = write!(
        sdp,
        "v=0\r\no=- 0 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {bundle_mid}\r\n"
    );
    if ice_lite {
        sdp.push_str("a=ice-lite\r\n");
    }
}

/// The offer a `native` dialer's first check implies, for a listener whose stack only takes SDP
/// (`spec/handshake.md` §4.3 step 3.5): the dialer's ICE credentials from the USERNAME, a
/// placeholder fingerprint (the listener does not verify the dialer's certificate: the in-band
/// proof authenticates it), `a=setup:actpass`, and the check's source as the one candidate (a
/// host candidate: the listener is ICE-lite and never sends checks, so the type only matters for
/// the priority). The mid is never on the wire, so any value works whatever the dialer chose.
pub fn implied_dialer_offer(
    dialer_ufrag: &str,
    dialer_pwd: &str,
    source: std::net::SocketAddr,
    sctp: SctpParams,
) -> String {
    let mut sdp = String::new();
    write_session(&mut sdp, LISTENER_MID, false);
    let zeros = vec!["00"; 32].join(":");
    let _ = write!(
        sdp,
        "a=fingerprint:sha-256 {zeros}\r\n\
         m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
         c=IN IP4 0.0.0.0\r\n\
         a=mid:{LISTENER_MID}\r\n\
         a=ice-ufrag:{dialer_ufrag}\r\n\
         a=ice-pwd:{dialer_pwd}\r\n\
         a=setup:actpass\r\n\
         a=sctp-port:{}\r\n\
         a=max-message-size:{}\r\n\
         a=candidate:1 1 udp {} {} {} typ host\r\n\
         a=end-of-candidates\r\n",
        sctp.port,
        sctp.max_message_size,
        candidate_priority(0),
        source.ip(),
        source.port(),
    );
    sdp
}

/// The ICE priority written for the candidate at `index` (`spec/token.md` §9.2): one type
/// preference for all, local preference falling with the index, so the token order is the
/// check order.
pub fn candidate_priority(index: usize) -> u32 {
    (TYPE_PREFERENCE << 24) + ((65_535 - index as u32) << 8) + 255
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::DEFAULT_MAX_MESSAGE_SIZE;

    #[test]
    fn priorities_fall_with_index() {
        assert_eq!(candidate_priority(0), 2_130_706_431);
        assert!(candidate_priority(0) > candidate_priority(1));
        assert!(candidate_priority(MAX_CANDIDATES - 1) > 0);
    }

    #[test]
    fn default_sctp_matches_constants() {
        assert_eq!(
            SctpParams::default().max_message_size,
            DEFAULT_MAX_MESSAGE_SIZE
        );
    }
}
