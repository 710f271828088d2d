//! The token as a value: what a listener publishes (`spec/token.md` §3).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::TokenError;
use crate::ice::IceCredentials;

/// Most candidates a token may list (`spec/token.md` §4.4).
pub const MAX_CANDIDATES: usize = 16;
/// Most extensions a token may carry (`spec/token.md` §5).
pub const MAX_EXTENSIONS: usize = 16;
/// Most STUN servers the `stun` extension may list (`spec/token.md` §5.9).
pub const MAX_STUN_SERVERS: usize = 4;
/// Longest label, in UTF-8 bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// SCTP port both peers use unless the `sctp` extension says otherwise (RFC 8841).
pub const DEFAULT_SCTP_PORT: u16 = 5000;
/// SCTP max-message-size assumed unless the `sctp` extension says otherwise.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 262_144;

/// Which handshake the token's holder must perform (`spec/token.md` §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Profile {
    /// A native listener that accepts any dialer identity: the dialer composes the listener's
    /// ICE ufrag from the token and its own ICE pwd, and both sides prove the secret in band.
    Native,
    /// A listener (typically a browser) that chose the dialer's ICE credentials and DTLS
    /// certificate in advance; the listener's own ICE credentials travel in the token.
    DialerIdentity,
    /// A listener (typically a browser) that needs a short reply code from the dialer before
    /// the connection can complete. Not one-way; the honest browser-to-browser fallback.
    Reply,
}

impl Profile {
    /// The profile's wire value.
    pub fn to_byte(self) -> u8 {
        match self {
            Profile::Native => 0,
            Profile::DialerIdentity => 1,
            Profile::Reply => 2,
        }
    }

    /// Parses a wire value.
    pub fn from_byte(byte: u8) -> Result<Self, TokenError> {
        match byte {
            0 => Ok(Profile::Native),
            1 => Ok(Profile::DialerIdentity),
            2 => Ok(Profile::Reply),
            other => Err(TokenError::UnknownProfile(other)),
        }
    }

    /// The profile's name in the spec, CLI and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Native => "native",
            Profile::DialerIdentity => "dialer-identity",
            Profile::Reply => "reply",
        }
    }

    /// Whether the listener's ICE credentials are derived from the secret (`true`) or carried
    /// in the `listener-ice` extension (`false`).
    pub fn derives_listener_ice(self) -> bool {
        matches!(self, Profile::Native)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The 128-bit secret every derived credential and key comes from.
///
/// `Debug` does not print it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Secret(pub [u8; 16]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A SHA-256 certificate fingerprint, always full length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The SDP form: upper-case hex pairs separated by colons (RFC 8122), without the
    /// `sha-256 ` hash name.
    pub fn to_sdp_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{byte:02X}"));
        }
        out
    }

    /// Parses the SDP form (`AB:CD:...`, case-insensitive, 32 pairs).
    pub fn from_sdp_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        let mut parts = text.trim().split(':');
        for slot in out.iter_mut() {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *slot = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Fingerprint(out))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_sdp_hex())
    }
}

/// Transport of a candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP, passive (the listener accepts; RFC 6544). Active TCP candidates are never published.
    TcpPassive,
}

impl Transport {
    /// The SDP transport name: `udp` or `tcp`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::TcpPassive => "tcp",
        }
    }
}

/// The ICE candidate type (RFC 8445 §5.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CandidateType {
    /// An address of the listener's own interface (or its mDNS name).
    Host,
    /// A server-reflexive address learnt from a STUN server (a NAT mapping).
    ServerReflexive,
    /// An address on a TURN relay.
    Relay,
}

impl CandidateType {
    /// The SDP `typ` value.
    pub fn sdp_name(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::Relay => "relay",
        }
    }
}

/// Where a candidate is: an IP address or an mDNS name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CandidateAddress {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// An mDNS name `<uuid>.local` (RFC 8445 mDNS candidates, as browsers emit them), stored as
    /// the UUID's 16 bytes.
    Mdns([u8; 16]),
}

impl CandidateAddress {
    /// The address as written in SDP: an IP literal or `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.local`.
    pub fn to_sdp_string(&self) -> String {
        match self {
            CandidateAddress::Ip(ip) => ip.to_string(),
            CandidateAddress::Mdns(uuid) => format!("{}.local", format_uuid(uuid)),
        }
    }

    /// Parses an SDP address: an IP literal, or an mDNS name whose label is a UUID.
    pub fn from_sdp_str(text: &str) -> Option<Self> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(CandidateAddress::Ip(ip));
        }
        let label = text.strip_suffix(".local")?;
        parse_uuid(label).map(CandidateAddress::Mdns)
    }

    /// The unspecified address of the same family, used for `c=` and `raddr` in SDP.
    pub(crate) fn unspecified_sdp(&self) -> (&'static str, &'static str) {
        match self {
            CandidateAddress::Ip(IpAddr::V6(_)) => ("IP6", "::"),
            _ => ("IP4", "0.0.0.0"),
        }
    }

    pub(crate) fn is_unspecified(&self) -> bool {
        matches!(self, CandidateAddress::Ip(ip) if ip.is_unspecified())
    }
}

/// One address the dialer may try, in the token's order (the fallback order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// UDP or passive TCP.
    pub transport: Transport,
    /// host, srflx or relay.
    pub kind: CandidateType,
    /// IP address or mDNS name.
    pub address: CandidateAddress,
    /// Port, never 0.
    pub port: u16,
}

impl Candidate {
    /// A UDP host candidate on an IP address.
    pub fn udp_host(ip: impl Into<IpAddr>, port: u16) -> Self {
        Candidate {
            transport: Transport::Udp,
            kind: CandidateType::Host,
            address: CandidateAddress::Ip(ip.into()),
            port,
        }
    }

    /// Encoded size of this candidate in bytes (kind byte, address, port).
    pub fn encoded_len(&self) -> usize {
        1 + self.address_len() + 2
    }

    pub(crate) fn address_len(&self) -> usize {
        match self.address {
            CandidateAddress::Ip(IpAddr::V4(_)) => 4,
            CandidateAddress::Ip(IpAddr::V6(_)) | CandidateAddress::Mdns(_) => 16,
        }
    }
}

/// SCTP parameters that differ from the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SctpParams {
    /// The SCTP port of the listener (`a=sctp-port`).
    pub port: u16,
    /// The listener's max-message-size (`a=max-message-size`); 0 means unlimited (RFC 8841).
    pub max_message_size: u32,
}

impl Default for SctpParams {
    fn default() -> Self {
        SctpParams {
            port: DEFAULT_SCTP_PORT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// An optional extension this codec does not understand, kept verbatim so that
/// decode-then-encode gives back the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawExtension {
    /// Type, in the optional range `0x80..=0xff`.
    pub ty: u8,
    /// Value, at most 255 bytes.
    pub value: Vec<u8>,
}

/// A decoded oneway token, version 1.
///
/// Build one with [`Token::new`] and the public fields, then encode it with
/// [`Token::to_bytes`]/[`Token::to_text`]; decode with [`Token::from_bytes`]/[`Token::from_text`].
/// Encoding validates exactly as decoding does, so every encoded token decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The handshake the dialer must perform.
    pub profile: Profile,
    /// SHA-256 fingerprint of the listener's DTLS certificate.
    pub fingerprint: Fingerprint,
    /// The secret all ICE credentials and keys derive from.
    pub secret: Secret,
    /// Candidates in the order the dialer should try them.
    pub candidates: Vec<Candidate>,
    /// `expires` (0x01): Unix time in seconds after which the token is refused.
    pub expires_at: Option<u64>,
    /// `sctp` (0x02): SCTP port and max-message-size when not the defaults.
    pub sctp: Option<SctpParams>,
    /// `listener-ice` (0x03): the listener's own ICE credentials; required for the
    /// `dialer-identity` and `reply` profiles, forbidden for `native`.
    pub listener_ice: Option<IceCredentials>,
    /// `single-use` (0x80): the listener accepts only the first dialer that proves the secret.
    pub single_use: bool,
    /// `label` (0x81): a short human-readable name for the listener.
    pub label: Option<String>,
    /// `mapped` (0x82): which candidates a router opened for the listener by port mapping
    /// (`spec/token.md` §5.6), in ascending candidate order.
    pub mapped: Vec<MappedCandidate>,
    /// `fast` (0x83): the listener's fast-path features (`spec/token.md` §5.8).
    pub fast: Option<FastPath>,
    /// `stun` (0x84): the STUN servers the listener used, so a dialer can learn its own
    /// server-reflexive address from the same servers (`spec/token.md` §5.9). Empty: no
    /// extension. At most [`MAX_STUN_SERVERS`], no port 0, no repeats.
    pub stun: Vec<SocketAddr>,
    /// Optional extensions this codec does not understand, preserved.
    pub unknown_extensions: Vec<RawExtension>,
}

/// How a router opened a candidate for the listener (`mapped`, `spec/token.md` §5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MappingProtocol {
    /// Port Control Protocol (RFC 6887); also IPv6 firewall pinholes.
    Pcp,
    /// NAT Port Mapping Protocol (RFC 6886).
    NatPmp,
    /// UPnP Internet Gateway Device.
    UpnpIgd,
}

impl MappingProtocol {
    /// The wire value (1, 2, 3).
    pub fn code(self) -> u8 {
        match self {
            MappingProtocol::Pcp => 1,
            MappingProtocol::NatPmp => 2,
            MappingProtocol::UpnpIgd => 3,
        }
    }

    /// The protocol with wire value `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(MappingProtocol::Pcp),
            2 => Some(MappingProtocol::NatPmp),
            3 => Some(MappingProtocol::UpnpIgd),
            _ => None,
        }
    }

    /// The name `oneway inspect` and events use: `pcp`, `natpmp`, `upnp`.
    pub fn name(self) -> &'static str {
        match self {
            MappingProtocol::Pcp => "pcp",
            MappingProtocol::NatPmp => "natpmp",
            MappingProtocol::UpnpIgd => "upnp",
        }
    }
}

/// `fast` (0x83, `spec/token.md` §5.8): what the listener accepts beyond the standard
/// handshake, so a dialer that knows it can skip round trips (`spec/handshake.md` §5.4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FastPath {
    /// Bit 0: the listener accepts a DTLS 1.3 ClientHello (it still accepts DTLS 1.2).
    pub dtls13: bool,
    /// Bit 1: the listener's SCTP INIT chunk (RFC 9260 §3.3.2) for a *fast start*: SNAP
    /// (no SCTP four-way handshake), channels opened without DCEP and early data, for a dialer
    /// that announces it in its USERNAME (`spec/handshake.md` §4.2).
    pub fast_start_init: Option<Vec<u8>>,
    /// Feature bits 2–7, which version 1 does not define: kept, and ignored by a dialer.
    pub other_bits: u8,
}

impl FastPath {
    /// Feature bit: DTLS 1.3 accepted.
    pub const DTLS13: u8 = 0x01;
    /// Feature bit: fast start; the INIT chunk follows the feature byte.
    pub const FAST_START: u8 = 0x02;
    /// Shortest INIT chunk: its 20-byte fixed part.
    pub const MIN_INIT_BYTES: usize = 20;

    /// Why `init` is not one whole SCTP INIT chunk (type 1, flags 0, its length field equal to
    /// its size, a non-zero initiate tag, 20 to 254 bytes), or `None` when it is one.
    pub fn init_chunk_problem(init: &[u8]) -> Option<&'static str> {
        if init.len() < Self::MIN_INIT_BYTES || init.len() > 254 {
            return Some("SCTP INIT chunk shorter than 20 or longer than 254 bytes");
        }
        let declared = usize::from(u16::from_be_bytes([init[2], init[3]]));
        if init[0] != 1 || init[1] != 0 || declared != init.len() {
            return Some("not one SCTP INIT chunk (type 1, flags 0, length = its size)");
        }
        if init[4..8] == [0, 0, 0, 0] {
            return Some("SCTP INIT chunk with initiate tag 0");
        }
        None
    }

    /// The feature byte as encoded.
    pub fn feature_byte(&self) -> u8 {
        let mut bits = self.other_bits & !(Self::DTLS13 | Self::FAST_START);
        if self.dtls13 {
            bits |= Self::DTLS13;
        }
        if self.fast_start_init.is_some() {
            bits |= Self::FAST_START;
        }
        bits
    }
}

/// One entry of `mapped`: candidate `index` (0-based, in token order) was opened by
/// `protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappedCandidate {
    /// The candidate's position in [`Token::candidates`].
    pub index: u8,
    /// How it was opened.
    pub protocol: MappingProtocol,
}

impl Token {
    /// A token with no extensions.
    pub fn new(
        profile: Profile,
        fingerprint: Fingerprint,
        secret: Secret,
        candidates: Vec<Candidate>,
    ) -> Self {
        Token {
            profile,
            fingerprint,
            secret,
            candidates,
            expires_at: None,
            sctp: None,
            listener_ice: None,
            single_use: false,
            label: None,
            mapped: Vec::new(),
            fast: None,
            stun: Vec::new(),
            unknown_extensions: Vec::new(),
        }
    }

    /// The SCTP parameters in force: the extension's, or the defaults.
    pub fn sctp_params(&self) -> SctpParams {
        self.sctp.unwrap_or_default()
    }

    /// Refuses the token if `now_unix_secs` is at or past its expiry (`spec/token.md` §6).
    pub fn check_expiry(&self, now_unix_secs: u64) -> Result<(), TokenError> {
        match self.expires_at {
            Some(expired_at) if now_unix_secs >= expired_at => Err(TokenError::Expired {
                expired_at,
                now: now_unix_secs,
            }),
            _ => Ok(()),
        }
    }
}

/// Lower-case hyphenated UUID text (8-4-4-4-12), as browsers write mDNS candidate names.
pub fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Parses hyphenated UUID text (8-4-4-4-12 hex digits, either case).
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    if groups.len() != lengths.len() || groups.iter().zip(lengths).any(|(g, n)| g.len() != n) {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
