//! The binary form (`spec/token.md` §4): the only form that carries meaning; the text and
//! QR forms are encodings of these bytes.
//!
//! ```text
//! version(1) profile(1) fingerprint(32) secret(16)
//! candidate-count(1) candidate*   extension-count(1) extension*   crc32(4)
//! ```
//!
//! Decoding runs in three passes, and reports the first error of the first pass that fails:
//! structure (lengths, truncation), then the checksum, then meaning ([`Token::validate`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{Field, TokenError};
use crate::ice::IceCredentials;
use crate::token::{
    Candidate, CandidateAddress, CandidateType, FastPath, Fingerprint, MAX_CANDIDATES,
    MAX_EXTENSIONS, MAX_LABEL_BYTES, MAX_STUN_SERVERS, MappedCandidate, MappingProtocol, Profile,
    RawExtension, SctpParams, Secret, Token, Transport,
};

/// Format version implemented by this crate.
pub const VERSION: u8 = 1;
/// Size of the fixed part plus the two count bytes and the checksum: a token is this many
/// bytes plus its candidates and extensions (`spec/token.md` §4.6).
pub const FIXED_OVERHEAD: usize = 1 + 1 + 32 + 16 + 1 + 1 + 4;

/// Extension types of version 1 (`spec/token.md` §5).
pub mod ext {
    /// `expires`: u32 Unix seconds. Comprehension-required.
    pub const EXPIRES: u8 = 0x01;
    /// `sctp`: u16 port, u32 max-message-size. Comprehension-required.
    pub const SCTP: u8 = 0x02;
    /// `listener-ice`: the listener's ICE ufrag/pwd, packed. Comprehension-required.
    pub const LISTENER_ICE: u8 = 0x03;
    /// `single-use`: empty. Optional.
    pub const SINGLE_USE: u8 = 0x80;
    /// `label`: UTF-8 text. Optional.
    pub const LABEL: u8 = 0x81;
    /// `mapped`: (candidate index, protocol) pairs of port-mapped candidates. Optional.
    pub const MAPPED: u8 = 0x82;
    /// `fast`: the listener's fast-path features (DTLS 1.3, fast start). Optional.
    pub const FAST: u8 = 0x83;
    /// `stun`: the STUN servers the listener used (form, address, port entries). Optional.
    pub const STUN: u8 = 0x84;
    /// First type of the optional range: unknown types at or above it are skipped.
    pub const FIRST_OPTIONAL: u8 = 0x80;

    /// The spec's name for a known extension type.
    pub fn name(ty: u8) -> &'static str {
        match ty {
            EXPIRES => "expires",
            SCTP => "sctp",
            LISTENER_ICE => "listener-ice",
            SINGLE_USE => "single-use",
            LABEL => "label",
            MAPPED => "mapped",
            FAST => "fast",
            STUN => "stun",
            t if t >= FIRST_OPTIONAL => "unknown optional",
            _ => "unknown required",
        }
    }
}

// Candidate kind byte: bits 0-1 address form, bits 2-3 type, bit 4 transport, bits 5-7 zero.
const ADDR_IPV4: u8 = 0;
const ADDR_IPV6: u8 = 1;
const ADDR_MDNS: u8 = 2;
const KIND_RESERVED_BITS: u8 = 0b1110_0000;

// `stun` entry: form byte (0 IPv4, 1 IPv6), address, port.
const STUN_FORM_IPV4: u8 = 0;
const STUN_FORM_IPV6: u8 = 1;
const STUN_V6_ENTRY: usize = 1 + 16 + 2;

/// A bounded reader: every read names the field it is for, so truncation is reported precisely.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], TokenError> {
        let end = self.pos + n;
        let bytes = self.buf.get(self.pos..end).ok_or(TokenError::Truncated {
            at: self.buf.len(),
            field,
        })?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self, field: Field) -> Result<u8, TokenError> {
        Ok(self.take(1, field)?[0])
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], TokenError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
}

/// One extension as read off the wire, before interpretation.
struct WireExtension<'a> {
    ty: u8,
    value: &'a [u8],
}

impl Token {
    /// Decodes the binary form, checking structure, checksum and meaning.
    ///
    /// Expiry is not checked here (decoding is pure and has no clock): call
    /// [`Token::check_expiry`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Token, TokenError> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let version = r.byte(Field::Version)?;
        if version != VERSION {
            return Err(TokenError::UnknownVersion(version));
        }
        let profile_byte = r.byte(Field::Profile)?;
        let fingerprint = Fingerprint(r.array(Field::Fingerprint)?);
        let secret = Secret(r.array(Field::Secret)?);

        let count = r.byte(Field::CandidateCount)?;
        if usize::from(count) > MAX_CANDIDATES {
            return Err(TokenError::TooManyCandidates {
                count: count.into(),
                max: MAX_CANDIDATES,
            });
        }
        let mut candidates = Vec::with_capacity(count.into());
        for index in 0..count {
            candidates.push(read_candidate(&mut r, index, count)?);
        }

        let ext_count = r.byte(Field::ExtensionCount)?;
        if usize::from(ext_count) > MAX_EXTENSIONS {
            return Err(TokenError::TooManyExtensions {
                count: ext_count.into(),
                max: MAX_EXTENSIONS,
            });
        }
        let mut wire = Vec::with_capacity(ext_count.into());
        for index in 0..ext_count {
            let field = Field::Extension {
                index,
                count: ext_count,
            };
            let ty = r.byte(field)?;
            let len = r.byte(field)?;
            wire.push(WireExtension {
                ty,
                value: r.take(len.into(), field)?,
            });
        }

        let content_end = r.pos;
        let found = u32::from_be_bytes(r.array(Field::Checksum)?);
        if r.pos < bytes.len() {
            return Err(TokenError::TrailingBytes {
                at: r.pos,
                count: bytes.len() - r.pos,
            });
        }
        let expected = crc32fast::hash(&bytes[..content_end]);
        if expected != found {
            return Err(TokenError::ChecksumMismatch { expected, found });
        }

        let mut token = Token::new(
            Profile::from_byte(profile_byte)?,
            fingerprint,
            secret,
            candidates,
        );
        apply_extensions(&mut token, &wire)?;
        token.validate()?;
        Ok(token)
    }

    /// Encodes the binary form after checking the token is one [`Token::from_bytes`] accepts.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TokenError> {
        self.validate()?;
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(VERSION);
        out.push(self.profile.to_byte());
        out.extend_from_slice(&self.fingerprint.0);
        out.extend_from_slice(&self.secret.0);
        out.push(self.candidates.len() as u8);
        for candidate in &self.candidates {
            write_candidate(candidate, &mut out);
        }
        let extensions = self.wire_extensions();
        out.push(extensions.len() as u8);
        for (ty, value) in &extensions {
            out.push(*ty);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        Ok(out)
    }

    /// Size of the binary form in bytes (`spec/token.md` §4.6).
    pub fn encoded_len(&self) -> usize {
        FIXED_OVERHEAD
            + self
                .candidates
                .iter()
                .map(Candidate::encoded_len)
                .sum::<usize>()
            + self
                .wire_extensions()
                .iter()
                .map(|(_, value)| 2 + value.len())
                .sum::<usize>()
    }

    /// The extensions as `(type, value)` in ascending type order, as they are encoded.
    pub fn wire_extensions(&self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(at) = self.expires_at {
            // validate() guarantees the value fits in u32.
            out.push((ext::EXPIRES, (at as u32).to_be_bytes().to_vec()));
        }
        if let Some(sctp) = self.sctp {
            let mut value = sctp.port.to_be_bytes().to_vec();
            value.extend_from_slice(&sctp.max_message_size.to_be_bytes());
            out.push((ext::SCTP, value));
        }
        if let Some(ice) = &self.listener_ice {
            out.push((ext::LISTENER_ICE, ice.to_packed()));
        }
        if self.single_use {
            out.push((ext::SINGLE_USE, Vec::new()));
        }
        if let Some(label) = &self.label {
            out.push((ext::LABEL, label.as_bytes().to_vec()));
        }
        if !self.mapped.is_empty() {
            let value = self
                .mapped
                .iter()
                .flat_map(|m| [m.index, m.protocol.code()])
                .collect();
            out.push((ext::MAPPED, value));
        }
        if let Some(fast) = &self.fast {
            let mut value = vec![fast.feature_byte()];
            if let Some(init) = &fast.fast_start_init {
                value.extend_from_slice(init);
            }
            out.push((ext::FAST, value));
        }
        if !self.stun.is_empty() {
            let mut value = Vec::with_capacity(self.stun.len() * STUN_V6_ENTRY);
            for server in &self.stun {
                match server.ip() {
                    IpAddr::V4(ip) => {
                        value.push(STUN_FORM_IPV4);
                        value.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        value.push(STUN_FORM_IPV6);
                        value.extend_from_slice(&ip.octets());
                    }
                }
                value.extend_from_slice(&server.port().to_be_bytes());
            }
            out.push((ext::STUN, value));
        }
        for raw in &self.unknown_extensions {
            out.push((raw.ty, raw.value.clone()));
        }
        out.sort_by_key(|(ty, _)| *ty);
        out
    }

    /// Checks every rule of `spec/token.md` that is about meaning rather than structure.
    /// Both encoding and decoding call it, so the two accept exactly the same tokens.
    pub fn validate(&self) -> Result<(), TokenError> {
        if self.candidates.is_empty() {
            return Err(TokenError::NoCandidates);
        }
        if self.candidates.len() > MAX_CANDIDATES {
            return Err(TokenError::TooManyCandidates {
                count: self.candidates.len(),
                max: MAX_CANDIDATES,
            });
        }
        for (index, c) in self.candidates.iter().enumerate() {
            if matches!(c.address, CandidateAddress::Mdns(_)) && c.kind != CandidateType::Host {
                return Err(TokenError::MdnsNotHost { index });
            }
            if c.port == 0 {
                return Err(TokenError::ZeroPort { index });
            }
            if c.address.is_unspecified() {
                return Err(TokenError::UnspecifiedAddress { index });
            }
            if let Some(first) = self.candidates[..index].iter().position(|other| other == c) {
                return Err(TokenError::DuplicateCandidate { index, first });
            }
        }
        if let Some(at) = self.expires_at
            && at > u64::from(u32::MAX)
        {
            return Err(invalid(
                ext::EXPIRES,
                "expiry does not fit in 32 bits (after 2106)",
            ));
        }
        if let Some(ice) = &self.listener_ice {
            let chars_fit = ice.ufrag().len() <= 255 && ice.pwd().len() <= 255;
            if !chars_fit || ice.to_packed().len() > 255 {
                return Err(invalid(
                    ext::LISTENER_ICE,
                    "credentials too long to pack in 255 bytes",
                ));
            }
        }
        match (
            self.profile.derives_listener_ice(),
            self.listener_ice.is_some(),
        ) {
            (true, true) => {
                return Err(TokenError::ExtensionNotAllowed {
                    ty: ext::LISTENER_ICE,
                    name: ext::name(ext::LISTENER_ICE),
                    profile: self.profile.name(),
                });
            }
            (false, false) => {
                return Err(TokenError::MissingExtension {
                    ty: ext::LISTENER_ICE,
                    name: ext::name(ext::LISTENER_ICE),
                    profile: self.profile.name(),
                });
            }
            _ => {}
        }
        if let Some(label) = &self.label {
            validate_label(label)?;
        }
        validate_mapped(&self.mapped, &self.candidates)?;
        if let Some(fast) = &self.fast {
            validate_fast(fast)?;
        }
        validate_stun(&self.stun)?;
        let mut unknown_types = Vec::new();
        for raw in &self.unknown_extensions {
            if raw.ty < ext::FIRST_OPTIONAL {
                return Err(TokenError::UnknownRequiredExtension(raw.ty));
            }
            if raw.value.len() > 255
                || matches!(
                    raw.ty,
                    ext::SINGLE_USE | ext::LABEL | ext::MAPPED | ext::FAST | ext::STUN
                )
            {
                return Err(invalid(
                    raw.ty,
                    "unknown-extension value too long or type is a known one",
                ));
            }
            if unknown_types.contains(&raw.ty) {
                return Err(invalid(raw.ty, "extension type repeated"));
            }
            unknown_types.push(raw.ty);
        }
        let total = self.wire_extensions().len();
        if total > MAX_EXTENSIONS {
            return Err(TokenError::TooManyExtensions {
                count: total,
                max: MAX_EXTENSIONS,
            });
        }
        Ok(())
    }
}

fn invalid(ty: u8, reason: &'static str) -> TokenError {
    TokenError::InvalidExtensionValue {
        ty,
        name: ext::name(ty),
        reason,
    }
}

/// `mapped` (§5.6): at least one entry, indexes strictly ascending and naming a candidate,
/// each an srflx candidate (a router's external address) or an IPv6 host candidate (a
/// firewall pinhole keeps the address).
fn validate_mapped(mapped: &[MappedCandidate], candidates: &[Candidate]) -> Result<(), TokenError> {
    let mut previous: Option<u8> = None;
    for m in mapped {
        if previous.is_some_and(|p| m.index <= p) {
            return Err(invalid(
                ext::MAPPED,
                "candidate indexes not strictly ascending",
            ));
        }
        previous = Some(m.index);
        let Some(c) = candidates.get(usize::from(m.index)) else {
            return Err(invalid(
                ext::MAPPED,
                "names a candidate the token does not have",
            ));
        };
        let pinhole = c.kind == CandidateType::Host
            && matches!(c.address, CandidateAddress::Ip(IpAddr::V6(_)));
        if !(c.kind == CandidateType::ServerReflexive || pinhole) || c.transport != Transport::Udp {
            return Err(invalid(
                ext::MAPPED,
                "names a candidate that is not UDP srflx or an IPv6 host",
            ));
        }
    }
    Ok(())
}

/// `fast` (§5.8): an INIT chunk, when present, is a whole SCTP INIT chunk (type 1, flags 0,
/// its length field equal to its size, a non-zero initiate tag) that fits the extension.
fn validate_fast(fast: &FastPath) -> Result<(), TokenError> {
    let Some(init) = &fast.fast_start_init else {
        return Ok(());
    };
    if init.len() < FastPath::MIN_INIT_BYTES || init.len() > 254 {
        return Err(TokenError::BadExtensionLength {
            ty: ext::FAST,
            name: ext::name(ext::FAST),
            len: init.len() + 1,
            expected: "1 byte, or 21 to 255 bytes with the fast-start bit",
        });
    }
    match FastPath::init_chunk_problem(init) {
        Some(problem) => Err(invalid(ext::FAST, problem)),
        None => Ok(()),
    }
}

/// `stun` (§5.9), the rules about the decoded list: at most four servers, none on port 0,
/// none repeated (address and port compared).
fn validate_stun(servers: &[SocketAddr]) -> Result<(), TokenError> {
    if servers.len() > MAX_STUN_SERVERS {
        return Err(invalid(ext::STUN, "more than 4 STUN servers"));
    }
    for (index, server) in servers.iter().enumerate() {
        if server.port() == 0 {
            return Err(invalid(ext::STUN, "STUN server on port 0"));
        }
        let same = |other: &SocketAddr| other.ip() == server.ip() && other.port() == server.port();
        if servers[..index].iter().any(same) {
            return Err(invalid(ext::STUN, "STUN server repeated"));
        }
    }
    Ok(())
}

/// Reads the `stun` value (§5.9) entry by entry: for each, a fifth entry, then the form
/// byte, then the entry's length, then port and repetition (via [`validate_stun`]).
fn read_stun(value: &[u8]) -> Result<Vec<SocketAddr>, TokenError> {
    let bad_length = TokenError::BadExtensionLength {
        ty: ext::STUN,
        name: ext::name(ext::STUN),
        len: value.len(),
        expected: "1 to 4 entries of 7 (IPv4) or 19 (IPv6) bytes",
    };
    if value.is_empty() {
        return Err(bad_length);
    }
    let mut servers = Vec::new();
    let mut rest = value;
    while let Some((&form, after)) = rest.split_first() {
        if servers.len() == MAX_STUN_SERVERS {
            return Err(invalid(ext::STUN, "more than 4 STUN servers"));
        }
        let address_len = match form {
            STUN_FORM_IPV4 => 4,
            STUN_FORM_IPV6 => 16,
            _ => return Err(invalid(ext::STUN, "unknown address form")),
        };
        if after.len() < address_len + 2 {
            return Err(bad_length);
        }
        let (address, after) = after.split_at(address_len);
        let (port, after) = after.split_at(2);
        let ip = match *address {
            [a, b, c, d] => IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            _ => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(address);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
        };
        servers.push(SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])));
        validate_stun(&servers)?;
        rest = after;
    }
    Ok(servers)
}

fn validate_label(label: &str) -> Result<(), TokenError> {
    if label.is_empty() || label.len() > MAX_LABEL_BYTES {
        return Err(TokenError::BadExtensionLength {
            ty: ext::LABEL,
            name: ext::name(ext::LABEL),
            len: label.len(),
            expected: "1 to 64 bytes",
        });
    }
    if label.chars().any(char::is_control) {
        return Err(invalid(ext::LABEL, "contains control characters"));
    }
    Ok(())
}

fn read_candidate(r: &mut Reader<'_>, index: u8, count: u8) -> Result<Candidate, TokenError> {
    let field = Field::Candidate { index, count };
    let kind_byte = r.byte(field)?;
    let unknown = || TokenError::UnknownCandidateKind {
        index: index.into(),
        kind: kind_byte,
    };
    if kind_byte & KIND_RESERVED_BITS != 0 {
        return Err(unknown());
    }
    let kind = match (kind_byte >> 2) & 0b11 {
        0 => CandidateType::Host,
        1 => CandidateType::ServerReflexive,
        2 => CandidateType::Relay,
        _ => return Err(unknown()),
    };
    let transport = if kind_byte & 0b1_0000 == 0 {
        Transport::Udp
    } else {
        Transport::TcpPassive
    };
    let address = match kind_byte & 0b11 {
        ADDR_IPV4 => CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::from(r.array::<4>(field)?))),
        ADDR_IPV6 => CandidateAddress::Ip(IpAddr::V6(Ipv6Addr::from(r.array::<16>(field)?))),
        ADDR_MDNS => CandidateAddress::Mdns(r.array::<16>(field)?),
        _ => return Err(unknown()),
    };
    let port = u16::from_be_bytes(r.array(field)?);
    Ok(Candidate {
        transport,
        kind,
        address,
        port,
    })
}

pub(crate) fn write_candidate(c: &Candidate, out: &mut Vec<u8>) {
    let type_bits = match c.kind {
        CandidateType::Host => 0,
        CandidateType::ServerReflexive => 1,
        CandidateType::Relay => 2,
    };
    let transport_bit = match c.transport {
        Transport::Udp => 0,
        Transport::TcpPassive => 1,
    };
    let (addr_bits, addr): (u8, Vec<u8>) = match c.address {
        CandidateAddress::Ip(IpAddr::V4(ip)) => (ADDR_IPV4, ip.octets().to_vec()),
        CandidateAddress::Ip(IpAddr::V6(ip)) => (ADDR_IPV6, ip.octets().to_vec()),
        CandidateAddress::Mdns(uuid) => (ADDR_MDNS, uuid.to_vec()),
    };
    out.push(transport_bit << 4 | type_bits << 2 | addr_bits);
    out.extend_from_slice(&addr);
    out.extend_from_slice(&c.port.to_be_bytes());
}

fn apply_extensions(token: &mut Token, wire: &[WireExtension<'_>]) -> Result<(), TokenError> {
    let mut previous: Option<u8> = None;
    for (index, e) in wire.iter().enumerate() {
        if let Some(previous) = previous
            && e.ty <= previous
        {
            return Err(TokenError::ExtensionNotAscending {
                index,
                previous,
                found: e.ty,
            });
        }
        previous = Some(e.ty);
        let bad_length = |expected: &'static str| TokenError::BadExtensionLength {
            ty: e.ty,
            name: ext::name(e.ty),
            len: e.value.len(),
            expected,
        };
        match e.ty {
            ext::EXPIRES => {
                let bytes: [u8; 4] = e.value.try_into().map_err(|_| bad_length("4 bytes"))?;
                token.expires_at = Some(u32::from_be_bytes(bytes).into());
            }
            ext::SCTP => {
                let [p0, p1, m0, m1, m2, m3] = *e.value else {
                    return Err(bad_length("6 bytes"));
                };
                let port = u16::from_be_bytes([p0, p1]);
                if port == 0 {
                    return Err(invalid(ext::SCTP, "SCTP port 0"));
                }
                token.sctp = Some(SctpParams {
                    port,
                    max_message_size: u32::from_be_bytes([m0, m1, m2, m3]),
                });
            }
            ext::LISTENER_ICE => {
                let ice = IceCredentials::from_packed(e.value)
                    .map_err(|_| invalid(ext::LISTENER_ICE, "not a valid packed ufrag/pwd pair"))?;
                token.listener_ice = Some(ice);
            }
            ext::SINGLE_USE => {
                if !e.value.is_empty() {
                    return Err(bad_length("0 bytes"));
                }
                token.single_use = true;
            }
            ext::LABEL => {
                let label =
                    std::str::from_utf8(e.value).map_err(|_| invalid(ext::LABEL, "not UTF-8"))?;
                validate_label(label)?;
                token.label = Some(label.to_owned());
            }
            ext::MAPPED => {
                if e.value.is_empty() || e.value.len() % 2 != 0 {
                    return Err(bad_length("a positive even number of bytes"));
                }
                for pair in e.value.chunks_exact(2) {
                    let protocol = MappingProtocol::from_code(pair[1])
                        .ok_or_else(|| invalid(ext::MAPPED, "unknown mapping protocol"))?;
                    token.mapped.push(MappedCandidate {
                        index: pair[0],
                        protocol,
                    });
                }
            }
            ext::FAST => {
                let Some((&bits, rest)) = e.value.split_first() else {
                    return Err(bad_length("at least 1 byte"));
                };
                let fast_start = bits & FastPath::FAST_START != 0;
                if fast_start == rest.is_empty() {
                    return Err(bad_length(
                        "1 byte, or 21 to 255 bytes with the fast-start bit",
                    ));
                }
                let fast = FastPath {
                    dtls13: bits & FastPath::DTLS13 != 0,
                    fast_start_init: fast_start.then(|| rest.to_vec()),
                    other_bits: bits & !(FastPath::DTLS13 | FastPath::FAST_START),
                };
                validate_fast(&fast)?;
                token.fast = Some(fast);
            }
            ext::STUN => token.stun = read_stun(e.value)?,
            ty if ty < ext::FIRST_OPTIONAL => return Err(TokenError::UnknownRequiredExtension(ty)),
            ty => token.unknown_extensions.push(RawExtension {
                ty,
                value: e.value.to_vec(),
            }),
        }
    }
    Ok(())
}
