//! Generates `spec/vectors/*.json` (`spec/token.md` §10). Shared by
//! `examples/generate_vectors.rs` (writes the files) and `tests/vectors.rs` (checks the
//! committed files are exactly what this produces). Every input is fixed, so the output is
//! byte-for-byte reproducible.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::vec_init_then_push
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use oneway_token::{
    Candidate, CandidateAddress, CandidateType, FastPath, Fingerprint, IceCredentials,
    MappedCandidate, MappingProtocol, Profile, RawExtension, SctpParams, Secret, Token, Transport,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A fixed dialer offer (data channel only) used for the `native` answer vectors.
pub const DIALER_OFFER: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:dIaL\r\na=ice-pwd:DialerPwd0123456789abcd\r\na=ice-options:trickle\r\na=fingerprint:sha-256 11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

/// The dialer ufrag the `reply_pwd` of every valid vector's `derived` values is computed for
/// (16 characters, as str0m chooses).
pub const REPLY_PWD_DIALER_UFRAG: &str = "d1aLeRuFrag0str0";

/// The Unix time at which invalid vectors with an `expires` extension are judged.
pub const NOW: u64 = 1_800_000_000;

fn digest(label: &str) -> [u8; 32] {
    Sha256::digest(label.as_bytes()).into()
}

fn secret(name: &str) -> Secret {
    let mut s = [0u8; 16];
    s.copy_from_slice(&digest(&format!("oneway vector secret {name}"))[..16]);
    Secret(s)
}

fn fingerprint(name: &str) -> Fingerprint {
    Fingerprint(digest(&format!("oneway vector certificate {name}")))
}

fn v4(a: [u8; 4], port: u16) -> Candidate {
    Candidate::udp_host(Ipv4Addr::from(a), port)
}

fn v6(text: &str, port: u16) -> Candidate {
    Candidate::udp_host(text.parse::<Ipv6Addr>().unwrap(), port)
}

fn with(mut c: Candidate, kind: CandidateType, transport: Transport) -> Candidate {
    c.kind = kind;
    c.transport = transport;
    c
}

fn mdns(uuid: &str, port: u16) -> Candidate {
    Candidate {
        transport: Transport::Udp,
        kind: CandidateType::Host,
        address: CandidateAddress::Mdns(oneway_token::parse_uuid(uuid).unwrap()),
        port,
    }
}

fn base(name: &str, profile: Profile, candidates: Vec<Candidate>) -> Token {
    Token::new(profile, fingerprint(name), secret(name), candidates)
}

/// The valid vectors, as `(name, description, token)`.
pub fn valid_tokens() -> Vec<(&'static str, &'static str, Token)> {
    let mut out = Vec::new();
    out.push((
        "native-ipv4-minimal",
        "The size target: one IPv4 UDP host candidate, fingerprint and secret, no extension.",
        base(
            "native-ipv4-minimal",
            Profile::Native,
            vec![v4([192, 0, 2, 10], 50_000)],
        ),
    ));
    out.push((
        "native-dual-stack",
        "Two candidates: IPv4 then IPv6 host, both UDP.",
        base(
            "native-dual-stack",
            Profile::Native,
            vec![v4([192, 0, 2, 10], 50_000), v6("2001:db8::10", 50_002)],
        ),
    ));
    out.push((
        "native-four-candidates",
        "Four candidates in fallback order: IPv4 host, IPv6 host, IPv4 srflx, TCP relay.",
        base(
            "native-four-candidates",
            Profile::Native,
            vec![
                v4([10, 1, 0, 2], 50_000),
                v6("2001:db8:1::2", 50_000),
                with(
                    v4([198, 51, 100, 7], 61_000),
                    CandidateType::ServerReflexive,
                    Transport::Udp,
                ),
                with(
                    v4([203, 0, 113, 5], 443),
                    CandidateType::Relay,
                    Transport::TcpPassive,
                ),
            ],
        ),
    ));
    out.push((
        "native-mdns",
        "An mDNS host name as browsers emit it, then a passive TCP host candidate.",
        base(
            "native-mdns",
            Profile::Native,
            vec![
                mdns("2b0f3c4e-8a11-4d6b-9f0e-5c7a1b2c3d4e", 54_321),
                with(
                    v4([192, 0, 2, 10], 9_443),
                    CandidateType::Host,
                    Transport::TcpPassive,
                ),
            ],
        ),
    ));
    let mut all = base(
        "native-all-extensions",
        Profile::Native,
        vec![v4([192, 0, 2, 10], 50_000)],
    );
    all.expires_at = Some(NOW + 600);
    all.sctp = Some(SctpParams {
        port: 5001,
        max_message_size: 65_536,
    });
    all.single_use = true;
    all.label = Some("kitchen tablet ☕".to_owned());
    out.push((
        "native-all-extensions",
        "Every v1 extension a native token may carry: expires, sctp, single-use, label.",
        all,
    ));
    let mut identity = base(
        "dialer-identity",
        Profile::DialerIdentity,
        vec![mdns("6f1d2c3b-4a59-4e8d-b7c6-a5f4e3d2c1b0", 60_123)],
    );
    identity.listener_ice = Some(IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs").unwrap());
    out.push((
        "dialer-identity",
        "A browser listener (Chromium-shaped 4/24-character ICE credentials) that chose the dialer's identity.",
        identity,
    ));
    let mut reply = base("reply", Profile::Reply, vec![v4([192, 0, 2, 20], 40_000)]);
    reply.listener_ice =
        Some(IceCredentials::new("3f2a9b1c", "0a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap());
    out.push((
        "reply",
        "A browser listener (Firefox-shaped 8/32-character ICE credentials) that needs a reply code.",
        reply,
    ));
    let mut unknown = base(
        "unknown-optional-extension",
        Profile::Native,
        vec![v4([192, 0, 2, 10], 50_000)],
    );
    unknown.unknown_extensions = vec![RawExtension {
        ty: 0xc0,
        value: vec![1, 2, 3],
    }];
    out.push((
        "unknown-optional-extension",
        "An optional extension (0xc0) a v1 decoder does not know: skipped, and kept on re-encoding.",
        unknown,
    ));
    let mut mapped = base(
        "native-port-mapped",
        Profile::Native,
        vec![
            v4([10, 2, 0, 10], 50_000),
            with(
                v4([203, 0, 113, 7], 41_000),
                CandidateType::ServerReflexive,
                Transport::Udp,
            ),
            v6("2001:db8::10", 50_000),
        ],
    );
    mapped.mapped = vec![
        MappedCandidate {
            index: 1,
            protocol: MappingProtocol::Pcp,
        },
        MappedCandidate {
            index: 2,
            protocol: MappingProtocol::Pcp,
        },
    ];
    out.push((
        "native-port-mapped",
        "A listener behind a home NAT whose router mapped a port by PCP (the srflx candidate) and opened an IPv6 firewall pinhole (the IPv6 host candidate): the optional `mapped` extension (0x82).",
        mapped,
    ));
    let mut fast = base(
        "native-fast",
        Profile::Native,
        vec![v4([192, 0, 2, 10], 50_000)],
    );
    fast.fast = Some(FastPath {
        dtls13: true,
        fast_start_init: Some(EXAMPLE_INIT_CHUNK.to_vec()),
        other_bits: 0,
    });
    out.push((
        "native-fast",
        "A listener that accepts DTLS 1.3 and offers a fast start: the optional `fast` extension (0x83), feature byte 0x03 followed by its 24-byte SCTP INIT chunk.",
        fast,
    ));
    let mut sctp_defaults = base(
        "native-sctp-defaults",
        Profile::Native,
        vec![v4([192, 0, 2, 10], 50_000)],
    );
    sctp_defaults.sctp = Some(SctpParams {
        port: 5000,
        max_message_size: 262_144,
    });
    out.push((
        "native-sctp-defaults",
        "An sctp extension carrying exactly the defaults (port 5000, max-message-size 262144): valid, kept on re-encoding (spec/token.md section 5.2).",
        sctp_defaults,
    ));
    let mut stun = base(
        "native-stun",
        Profile::Native,
        vec![
            v4([10, 3, 0, 10], 50_000),
            with(
                v4([203, 0, 113, 9], 50_000),
                CandidateType::ServerReflexive,
                Transport::Udp,
            ),
        ],
    );
    stun.stun = vec![
        "192.0.2.53:3478".parse().unwrap(),
        "[2001:db8::53]:3478".parse().unwrap(),
    ];
    out.push((
        "native-stun",
        "A listener that names the two STUN servers (one IPv4, one IPv6) it learnt its srflx candidate from: the optional `stun` extension (0x84), so a dialer can learn its own srflx address for a reply code.",
        stun,
    ));
    let many = (0..16u16)
        .map(|i| v6(&format!("2001:db8::{:x}", i + 1), 50_000 + i))
        .collect();
    out.push((
        "sixteen-ipv6",
        "The largest candidate list: 16 IPv6 host candidates.",
        base("sixteen-ipv6", Profile::Native, many),
    ));
    out
}

/// An SCTP INIT chunk (RFC 9260 §3.3.2) for the fast-start vectors: type 1, flags 0, length 24,
/// initiate tag 0x1a2b3c4d, a_rwnd 1 MiB, 1024 streams each way, initial TSN 0x01020304, and
/// the Forward-TSN-Supported parameter (0xc000, length 4).
pub const EXAMPLE_INIT_CHUNK: [u8; 24] = [
    0x01, 0x00, 0x00, 0x18, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x10, 0x00, 0x00, 0x04, 0x00, 0x04, 0x00,
    0x01, 0x02, 0x03, 0x04, 0xc0, 0x00, 0x00, 0x04,
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn candidate_json(c: &Candidate) -> Value {
    json!({
        "transport": c.transport.sdp_name(),
        "type": c.kind.sdp_name(),
        "address": c.address.to_sdp_string(),
        "port": c.port,
    })
}

/// The JSON view of a decoded token used in `valid.json`.
pub fn decoded_json(t: &Token) -> Value {
    json!({
        "profile": t.profile.name(),
        "fingerprint": t.fingerprint.to_sdp_hex(),
        "secret_hex": hex(&t.secret.0),
        "candidates": t.candidates.iter().map(candidate_json).collect::<Vec<_>>(),
        "expires": t.expires_at,
        "sctp": t.sctp.map(|s| json!({"port": s.port, "max_message_size": s.max_message_size})),
        "listener_ice": t.listener_ice.as_ref().map(|i| json!({"ufrag": i.ufrag(), "pwd": i.pwd()})),
        "single_use": t.single_use,
        "label": t.label,
        "mapped": t.mapped.iter().map(|m| json!({"index": m.index, "protocol": m.protocol.name()})).collect::<Vec<_>>(),
        "fast": t.fast.as_ref().map(|f| json!({"dtls13": f.dtls13, "fast_start_init_hex": f.fast_start_init.as_deref().map(hex), "other_bits": f.other_bits})),
        "stun": t.stun.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "unknown_extensions": t.unknown_extensions.iter().map(|e| json!({"type": e.ty, "value_hex": hex(&e.value)})).collect::<Vec<_>>(),
    })
}

/// The JSON view of the derived values used in `valid.json`.
pub fn derived_json(t: &Token) -> Value {
    let keys = t.derive();
    json!({
        "token_ufrag": keys.token_ufrag,
        "listener_pwd": keys.listener_pwd,
        "auth_key_hex": hex(&keys.auth_key),
        "dialer_ufrag": keys.dialer_ice.as_ref().map(|c| c.ufrag().to_owned()),
        "dialer_pwd": keys.dialer_ice.as_ref().map(|c| c.pwd().to_owned()),
        "reply_key_hex": hex(&keys.reply_key),
        "reply_pwd": {
            "dialer_ufrag": REPLY_PWD_DIALER_UFRAG,
            "pwd": oneway_token::derive::reply_pwd(&keys.reply_key, REPLY_PWD_DIALER_UFRAG),
        },
    })
}

/// `spec/vectors/valid.json`.
pub fn valid_json() -> Value {
    let vectors: Vec<Value> = valid_tokens()
        .into_iter()
        .map(|(name, description, token)| {
            let bytes = token.to_bytes().unwrap();
            let remote = match token.profile {
                Profile::Native => token.remote_description(Some(DIALER_OFFER)).unwrap(),
                _ => token.remote_description(None).unwrap(),
            };
            json!({
                "name": name,
                "description": description,
                "binary_hex": hex(&bytes),
                "text": token.to_text().unwrap(),
                "qr_text": token.to_qr_text().unwrap(),
                "sizes": {
                    "binary": bytes.len(),
                    "text": token.to_text().unwrap().len(),
                    "qr_text": token.to_qr_text().unwrap().len(),
                    "qr_version_level_m": oneway_token::qr::token_qr(&token, None).unwrap().version,
                },
                "decoded": decoded_json(&token),
                "derived": derived_json(&token),
                "remote_description": {
                    "type": remote.sdp_type.as_str(),
                    "dialer_offer": (token.profile == Profile::Native).then_some(DIALER_OFFER),
                    "sdp": remote.sdp,
                },
            })
        })
        .collect();
    json!({
        "spec": "spec/token.md",
        "generated_by": "cargo run -p oneway-token --example generate_vectors",
        "format_version": 1,
        "about": "Each vector: binary_hex, text and qr_text must all decode to `decoded`; encoding `decoded` must give binary_hex exactly; `derived` follows spec/token.md section 7 (`reply_pwd.pwd` is the reply pwd of the dialer ufrag `reply_pwd.dialer_ufrag` under `reply_key_hex`); `remote_description` follows section 9 (for the native profile, as the answer to `dialer_offer`).",
        "vectors": vectors,
    })
}

// ---- invalid vectors: raw byte surgery on valid encodings ----

fn with_crc(mut content: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&content);
    content.extend_from_slice(&crc.to_be_bytes());
    content
}

fn minimal() -> Vec<u8> {
    valid_tokens()[0].2.to_bytes().unwrap()
}

/// The minimal token's content (everything before the CRC).
fn minimal_content() -> Vec<u8> {
    let b = minimal();
    b[..b.len() - 4].to_vec()
}

/// Header + fingerprint + secret of the minimal token (52 bytes... 50 bytes), for hand-built bodies.
fn head(profile: u8) -> Vec<u8> {
    let mut h = minimal_content()[..50].to_vec();
    h[1] = profile;
    h
}

fn ipv4_candidate(kind: u8, a: [u8; 4], port: u16) -> Vec<u8> {
    let mut c = vec![kind];
    c.extend_from_slice(&a);
    c.extend_from_slice(&port.to_be_bytes());
    c
}

fn body(profile: u8, candidates: &[Vec<u8>], extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut b = head(profile);
    b.push(candidates.len() as u8);
    for c in candidates {
        b.extend_from_slice(c);
    }
    b.push(extensions.len() as u8);
    for (ty, value) in extensions {
        b.push(*ty);
        b.push(value.len() as u8);
        b.extend_from_slice(value);
    }
    with_crc(b)
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "ow1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// `(name, description, input, input_form, now)` for every invalid vector.
pub fn invalid_inputs() -> Vec<(
    &'static str,
    &'static str,
    String,
    &'static str,
    Option<u64>,
)> {
    let good_c = ipv4_candidate(0x00, [192, 0, 2, 10], 50_000);
    let three = body(
        0,
        &[
            good_c.clone(),
            ipv4_candidate(0, [192, 0, 2, 11], 50_000),
            ipv4_candidate(0, [192, 0, 2, 12], 50_000),
        ],
        &[],
    );
    let minimal_text = valid_tokens()[0].2.to_text().unwrap();
    let mut v: Vec<(
        &'static str,
        &'static str,
        String,
        &'static str,
        Option<u64>,
    )> = Vec::new();
    let mut text =
        |name, description, input: String| v.push((name, description, input, "text", None));
    text("empty", "Nothing at all.", String::new());
    text(
        "missing-prefix",
        "Base64url without the ow1. prefix.",
        minimal_text[4..].to_owned(),
    );
    text(
        "unknown-version-prefix",
        "A future version's prefix.",
        format!("ow2.{}", &minimal_text[4..]),
    );
    text(
        "invalid-base64url-character",
        "A '+' (standard base64, not base64url) inside the text.",
        format!("{}+{}", &minimal_text[..20], &minimal_text[21..]),
    );
    text(
        "invalid-base32-character",
        "A lower-case letter in the QR form.",
        format!("OW1.{}", "a".repeat(8)),
    );
    text(
        "invalid-text-length",
        "One character dropped: the length cannot encode whole bytes.",
        minimal_text[..minimal_text.len() - 2].to_owned(),
    );
    text(
        "url-with-bad-fragment",
        "A URL whose fragment is not a token.",
        "https://example.org/page#hello".to_owned(),
    );
    text(
        "truncated-in-fingerprint",
        "Cut inside the fingerprint.",
        b64(&minimal()[..20]),
    );
    text(
        "truncated-in-candidate",
        "Cut inside the second of three candidates.",
        b64(&three[..61]),
    );
    text(
        "truncated-in-checksum",
        "The last two bytes missing.",
        b64(&minimal()[..minimal().len() - 2]),
    );
    text(
        "trailing-bytes",
        "One byte after the checksum.",
        b64(&[minimal(), vec![0]].concat()),
    );
    let mut flipped = minimal();
    flipped[10] ^= 0x01;
    text(
        "checksum-mismatch",
        "One bit of the fingerprint flipped.",
        b64(&flipped),
    );
    let mut v2 = minimal_content();
    v2[0] = 2;
    text(
        "unknown-version-binary",
        "Version byte 2 inside an ow1. text.",
        b64(&with_crc(v2)),
    );
    text(
        "unknown-profile",
        "Profile byte 7.",
        b64(&body(7, std::slice::from_ref(&good_c), &[])),
    );
    text(
        "no-candidates",
        "A candidate count of zero.",
        b64(&body(0, &[], &[])),
    );
    let mut seventeen = head(0);
    seventeen.push(17);
    text(
        "too-many-candidates",
        "A candidate count of 17.",
        b64(&with_crc(seventeen)),
    );
    text(
        "candidate-reserved-bit",
        "Candidate kind byte with bit 7 set.",
        b64(&body(
            0,
            &[ipv4_candidate(0x80, [192, 0, 2, 10], 50_000)],
            &[],
        )),
    );
    text(
        "candidate-reserved-type",
        "Candidate type value 3.",
        b64(&body(
            0,
            &[ipv4_candidate(0x0c, [192, 0, 2, 10], 50_000)],
            &[],
        )),
    );
    let mut mdns_srflx = vec![0x06];
    mdns_srflx.extend_from_slice(&[0x11; 16]);
    mdns_srflx.extend_from_slice(&5000u16.to_be_bytes());
    text(
        "mdns-not-host",
        "An mDNS name with type srflx.",
        b64(&body(0, &[mdns_srflx], &[])),
    );
    text(
        "zero-port",
        "A candidate on port 0.",
        b64(&body(0, &[ipv4_candidate(0, [192, 0, 2, 10], 0)], &[])),
    );
    text(
        "unspecified-address",
        "A candidate on 0.0.0.0.",
        b64(&body(0, &[ipv4_candidate(0, [0, 0, 0, 0], 50_000)], &[])),
    );
    text(
        "duplicate-candidate",
        "The same candidate twice.",
        b64(&body(0, &[good_c.clone(), good_c.clone()], &[])),
    );
    let mut many_ext = head(0);
    many_ext.extend_from_slice(&[1]);
    many_ext.extend_from_slice(&good_c);
    many_ext.push(17);
    text(
        "too-many-extensions",
        "An extension count of 17.",
        b64(&with_crc(many_ext)),
    );
    text(
        "extension-not-ascending",
        "label (0x81) before single-use (0x80).",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x81, b"x".to_vec()), (0x80, vec![])],
        )),
    );
    text(
        "extension-repeated",
        "The same extension type twice.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x80, vec![]), (0x80, vec![])],
        )),
    );
    text(
        "unknown-required-extension",
        "Type 0x7f, in the comprehension-required range.",
        b64(&body(0, std::slice::from_ref(&good_c), &[(0x7f, vec![1])])),
    );
    text(
        "expires-bad-length",
        "An expires value of 3 bytes.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x01, vec![1, 2, 3])],
        )),
    );
    // `mapped` (0x82): a srflx candidate at index 1 after a host one.
    let srflx_c = ipv4_candidate(0b0100, [203, 0, 113, 7], 41_000);
    let mapped_body = |value: Vec<u8>| {
        b64(&body(
            0,
            &[good_c.clone(), srflx_c.clone()],
            &[(0x82, value)],
        ))
    };
    // `fast` (0x83).
    let fast_body = |value: Vec<u8>| b64(&body(0, std::slice::from_ref(&good_c), &[(0x83, value)]));
    let with_bits = |bits: u8, init: &[u8]| {
        let mut v = vec![bits];
        v.extend_from_slice(init);
        v
    };
    text(
        "fast-empty",
        "A fast extension with no feature byte.",
        fast_body(vec![]),
    );
    text(
        "fast-start-without-init",
        "Feature byte 0x02 (fast start) with no INIT chunk after it.",
        fast_body(vec![0x02]),
    );
    text(
        "fast-init-without-bit",
        "An INIT chunk after feature byte 0x01 (the fast-start bit is clear).",
        fast_body(with_bits(0x01, &EXAMPLE_INIT_CHUNK)),
    );
    let mut not_init = EXAMPLE_INIT_CHUNK;
    not_init[0] = 0x02;
    text(
        "fast-init-not-an-init-chunk",
        "A fast-start chunk of type 2 (INIT ACK), not 1 (INIT).",
        fast_body(with_bits(0x03, &not_init)),
    );
    let mut bad_len = EXAMPLE_INIT_CHUNK;
    bad_len[3] = 0x1c;
    text(
        "fast-init-length-mismatch",
        "A fast-start INIT chunk whose length field (28) is not its size (24).",
        fast_body(with_bits(0x03, &bad_len)),
    );
    let mut zero_tag = EXAMPLE_INIT_CHUNK;
    zero_tag[4..8].copy_from_slice(&[0, 0, 0, 0]);
    text(
        "fast-init-zero-tag",
        "A fast-start INIT chunk with initiate tag 0 (RFC 9260 forbids it).",
        fast_body(with_bits(0x03, &zero_tag)),
    );
    text(
        "mapped-odd-length",
        "A mapped extension of 3 bytes (entries are 2 bytes each).",
        mapped_body(vec![1, 1, 1]),
    );
    text(
        "mapped-unknown-protocol",
        "A mapped entry with protocol 9 (only 1 PCP, 2 NAT-PMP, 3 UPnP-IGD exist).",
        mapped_body(vec![1, 9]),
    );
    text(
        "mapped-index-out-of-range",
        "A mapped entry naming candidate 5 of a two-candidate token.",
        mapped_body(vec![5, 1]),
    );
    text(
        "mapped-names-a-host",
        "A mapped entry naming an IPv4 host candidate (a router maps to an external, srflx, address).",
        mapped_body(vec![0, 1]),
    );
    text(
        "mapped-not-ascending",
        "Two mapped entries for the same candidate.",
        mapped_body(vec![1, 1, 1, 2]),
    );
    // `stun` (0x84): entries of form(1) address(4|16) port(2).
    let stun_body = |value: Vec<u8>| b64(&body(0, std::slice::from_ref(&good_c), &[(0x84, value)]));
    let stun_v4 = |a: [u8; 4], port: u16| {
        let mut e = vec![0u8];
        e.extend_from_slice(&a);
        e.extend_from_slice(&port.to_be_bytes());
        e
    };
    text(
        "stun-empty",
        "A stun extension with no entry.",
        stun_body(vec![]),
    );
    text(
        "stun-partial-entry",
        "A stun value of one IPv4 entry and 3 more bytes (an IPv4 entry is 7 bytes).",
        stun_body([stun_v4([192, 0, 2, 1], 3478), vec![0, 192, 0]].concat()),
    );
    text(
        "stun-ipv6-entry-cut",
        "A stun entry of form 1 (IPv6) with only 4 address bytes and a port: 7 bytes of the 19 it needs.",
        stun_body(
            stun_v4([192, 0, 2, 1], 3478)
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 1 } else { b })
                .collect(),
        ),
    );
    text(
        "stun-unknown-form",
        "A stun entry of form 2 (only 0 IPv4 and 1 IPv6 exist).",
        stun_body(
            stun_v4([192, 0, 2, 1], 3478)
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 0 { 2 } else { b })
                .collect(),
        ),
    );
    text(
        "stun-port-zero",
        "A STUN server on port 0.",
        stun_body(stun_v4([192, 0, 2, 1], 0)),
    );
    text(
        "stun-repeated",
        "The same STUN server listed twice.",
        stun_body([stun_v4([192, 0, 2, 1], 3478), stun_v4([192, 0, 2, 1], 3478)].concat()),
    );
    text(
        "stun-five-servers",
        "Five STUN servers (at most 4 are allowed).",
        stun_body(
            (1..=5u8)
                .flat_map(|i| stun_v4([192, 0, 2, i], 3478))
                .collect(),
        ),
    );
    text(
        "label-not-utf8",
        "A label that is not UTF-8.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x81, vec![0xff, 0xfe])],
        )),
    );
    text(
        "label-control-character",
        "A label with an escape character (terminal injection).",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x81, b"\x1b[2J".to_vec())],
        )),
    );
    let ice = IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs")
        .unwrap()
        .to_packed();
    text(
        "listener-ice-in-native",
        "The listener-ice extension in a native token.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x03, ice.clone())],
        )),
    );
    text(
        "dialer-identity-without-listener-ice",
        "A dialer-identity token lacking listener-ice.",
        b64(&body(1, std::slice::from_ref(&good_c), &[])),
    );
    let mut bad_ice = ice;
    bad_ice.pop();
    text(
        "listener-ice-bad-packing",
        "listener-ice value one byte short.",
        b64(&body(1, std::slice::from_ref(&good_c), &[(0x03, bad_ice)])),
    );
    // §6.4 step 1: the length limit, after trimming, in UTF-8 bytes.
    text(
        "too-long",
        "16385 bytes: one more than the limit.",
        format!("ow1.{}", "A".repeat(16_381)),
    );
    text(
        "too-long-multibyte",
        "8193 two-byte characters: 8193 characters, but 16386 bytes of UTF-8.",
        "\u{e9}".repeat(8193),
    );
    text(
        "length-limit-after-trimming",
        "16384 bytes after trimming, 16390 with the surrounding white space: not too long, so decoding goes on (and finds version byte 0).",
        format!(" \t\n{}{}\r\n ", "ow1.", "A".repeat(16_380)),
    );
    text(
        "bom-is-not-white-space",
        "A byte-order mark (U+FEFF) before the token: not White_Space, so not trimmed.",
        format!("\u{feff}{minimal_text}"),
    );
    // §6.4 step 4: characters before length; positions in code points of the trimmed input.
    text(
        "invalid-character-before-length",
        "A foreign character in a text whose length is also wrong: the character is reported.",
        "ow1.A*".to_owned(),
    );
    text(
        "invalid-character-position-in-url",
        "A '*' in a URL's token, after a non-ASCII host name and leading white space: position 28, in code points from the start of the trimmed input.",
        "  https://ex\u{e4}mple.org/p#ow1.AA*A".to_owned(),
    );
    // §8 step 4: the order of the meaning checks.
    let mdns_srflx_c = {
        let mut c = vec![0x06];
        c.extend_from_slice(&[0x11; 16]);
        c.extend_from_slice(&5000u16.to_be_bytes());
        c
    };
    let port0_c = ipv4_candidate(0, [192, 0, 2, 20], 0);
    text(
        "order-extension-before-candidates",
        "A 3-byte expires and a candidate on port 0: extensions are checked before candidates.",
        b64(&body(
            0,
            std::slice::from_ref(&port0_c),
            &[(0x01, vec![1, 2, 3])],
        )),
    );
    text(
        "order-unknown-required-in-wire-order",
        "Unknown required type 0x7f, then a single-use of length 1: extensions are checked one by one in wire order.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x7f, vec![1]), (0x80, vec![1])],
        )),
    );
    text(
        "order-candidate-rules-per-candidate",
        "Candidate 1 on port 0, candidate 2 an mDNS name of type srflx: all rules per candidate, in token order (zero-port), not rule by rule (mdns-not-host).",
        b64(&body(0, &[port0_c.clone(), mdns_srflx_c.clone()], &[])),
    );
    let ice_packed = IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs")
        .unwrap()
        .to_packed();
    text(
        "order-candidates-before-profile-rules",
        "A native token with listener-ice and a candidate on port 0: candidate rules come before extension-not-allowed.",
        b64(&body(
            0,
            std::slice::from_ref(&port0_c),
            &[(0x03, ice_packed.clone())],
        )),
    );
    text(
        "order-bad-value-before-missing-extension",
        "A dialer-identity token without listener-ice, with an sctp extension on port 0: the value is checked before the missing extension.",
        b64(&body(
            1,
            std::slice::from_ref(&good_c),
            &[(0x02, vec![0, 0, 0, 4, 0, 0])],
        )),
    );
    // §5.5: label rules.
    text(
        "label-empty",
        "A label of 0 bytes.",
        b64(&body(0, std::slice::from_ref(&good_c), &[(0x81, vec![])])),
    );
    text(
        "label-65-bytes",
        "A label of 65 bytes.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x81, vec![b'x'; 65])],
        )),
    );
    text(
        "label-c1-control",
        "A label with U+0085 NEXT LINE, a C1 control character (general category Cc).",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x81, "a\u{85}b".as_bytes().to_vec())],
        )),
    );
    // §5.7: type 0x04.
    text(
        "reserved-0x04-in-dialer-identity",
        "A dialer-identity token with the reserved type 0x04: unknown-required-extension in every profile.",
        b64(&body(
            1,
            std::slice::from_ref(&good_c),
            &[(0x03, ice_packed.clone()), (0x04, vec![0; 4])],
        )),
    );
    // §5 length rules: listener-ice has no length of its own.
    text(
        "listener-ice-empty",
        "An empty listener-ice value: malformed (invalid-extension-value), not a bad length.",
        b64(&body(1, std::slice::from_ref(&good_c), &[(0x03, vec![])])),
    );
    let expired_text = b64(&body(
        0,
        std::slice::from_ref(&good_c),
        &[(0x01, ((NOW - 1) as u32).to_be_bytes().to_vec())],
    ));
    v.push((
        "url-key-starting-with-ow",
        "A URL fragment `owner=bob&t=<token>`: `owner=bob` has the value `bob` and does not match, so the token part is decoded (and is expired).",
        format!("https://example.org/app#owner=bob&t={expired_text}"),
        "text",
        Some(NOW),
    ));
    v.push((
        "expired",
        "Valid, but judged after its expiry.",
        b64(&body(
            0,
            std::slice::from_ref(&good_c),
            &[(0x01, ((NOW - 1) as u32).to_be_bytes().to_vec())],
        )),
        "text",
        Some(NOW),
    ));
    v.push((
        "hex-truncated-in-secret",
        "The binary form (hex input), cut inside the secret.",
        hex(&minimal()[..40]),
        "hex",
        None,
    ));
    v
}

/// The error each invalid vector is built to produce. The generator refuses to write a vector
/// whose actual error differs, so a vector can never silently test something else.
fn intended_code(name: &str) -> &'static str {
    match name {
        "empty" => "empty",
        "missing-prefix" | "url-with-bad-fragment" => "missing-prefix",
        "unknown-version-prefix" | "unknown-version-binary" => "unknown-version",
        "invalid-base64url-character" | "invalid-base32-character" => "invalid-character",
        "invalid-text-length" => "invalid-text-length",
        n if n.starts_with("truncated") || n == "hex-truncated-in-secret" => "truncated",
        "trailing-bytes" => "trailing-bytes",
        "checksum-mismatch" => "checksum-mismatch",
        "unknown-profile" => "unknown-profile",
        "no-candidates" => "no-candidates",
        "too-many-candidates" => "too-many-candidates",
        "candidate-reserved-bit" | "candidate-reserved-type" => "unknown-candidate-kind",
        "mdns-not-host" => "mdns-not-host",
        "zero-port" => "zero-port",
        "unspecified-address" => "unspecified-address",
        "duplicate-candidate" => "duplicate-candidate",
        "too-many-extensions" => "too-many-extensions",
        "extension-not-ascending" | "extension-repeated" => "extension-not-ascending",
        "unknown-required-extension" => "unknown-required-extension",
        "expires-bad-length" => "bad-extension-length",
        "label-not-utf8"
        | "label-control-character"
        | "listener-ice-bad-packing"
        | "mapped-unknown-protocol"
        | "mapped-index-out-of-range"
        | "mapped-names-a-host"
        | "mapped-not-ascending"
        | "stun-unknown-form"
        | "stun-port-zero"
        | "stun-repeated"
        | "stun-five-servers" => "invalid-extension-value",
        "stun-empty" | "stun-partial-entry" | "stun-ipv6-entry-cut" => "bad-extension-length",
        "mapped-odd-length"
        | "fast-empty"
        | "fast-start-without-init"
        | "fast-init-without-bit" => "bad-extension-length",
        "fast-init-not-an-init-chunk" | "fast-init-length-mismatch" | "fast-init-zero-tag" => {
            "invalid-extension-value"
        }
        "listener-ice-in-native" => "extension-not-allowed",
        "dialer-identity-without-listener-ice" => "missing-extension",
        "expired" | "url-key-starting-with-ow" => "expired",
        "too-long" | "too-long-multibyte" => "too-long",
        "length-limit-after-trimming" => "unknown-version",
        "bom-is-not-white-space" => "missing-prefix",
        "invalid-character-before-length" | "invalid-character-position-in-url" => {
            "invalid-character"
        }
        "order-extension-before-candidates" | "label-empty" | "label-65-bytes" => {
            "bad-extension-length"
        }
        "order-unknown-required-in-wire-order" | "reserved-0x04-in-dialer-identity" => {
            "unknown-required-extension"
        }
        "order-candidate-rules-per-candidate" | "order-candidates-before-profile-rules" => {
            "zero-port"
        }
        "order-bad-value-before-missing-extension" | "label-c1-control" | "listener-ice-empty" => {
            "invalid-extension-value"
        }
        other => panic!("invalid vector {other} has no intended error code"),
    }
}

/// Decodes an invalid vector's input the way a conforming implementation must: the text (or
/// hex) layer, then the binary form, then expiry at `now` when given.
pub fn decode_input(
    input: &str,
    form: &str,
    now: Option<u64>,
) -> Result<Token, oneway_token::TokenError> {
    let token = if form == "hex" {
        let bytes: Vec<u8> = (0..input.len() / 2)
            .map(|i| u8::from_str_radix(&input[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        Token::from_bytes(&bytes)?
    } else {
        Token::from_text(input)?
    };
    if let Some(now) = now {
        token.check_expiry(now)?;
    }
    Ok(token)
}

/// The position an `invalid-character` error reports (`spec/token.md` §6.4 step 4), in code
/// points from the start of the trimmed input; `None` for every other error.
pub fn error_position(error: &oneway_token::TokenError) -> Option<usize> {
    match error {
        oneway_token::TokenError::InvalidCharacter { position, .. } => Some(*position),
        _ => None,
    }
}

/// `spec/vectors/invalid.json`.
pub fn invalid_json() -> Value {
    let vectors: Vec<Value> = invalid_inputs()
        .into_iter()
        .map(|(name, description, input, form, now)| {
            let error = decode_input(&input, form, now).expect_err(name);
            assert_eq!(error.code(), intended_code(name), "vector {name}: {error}");
            json!({
                "name": name,
                "description": description,
                "input": input,
                "input_form": form,
                "now": now,
                "error": error.code(),
                "position": error_position(&error),
                "message": error.to_string(),
            })
        })
        .collect();
    json!({
        "spec": "spec/token.md",
        "generated_by": "cargo run -p oneway-token --example generate_vectors",
        "format_version": 1,
        "about": "Each input must be refused with the error code `error` (spec/token.md section 8). `input_form` is `text` (any text form or URL) or `hex` (the binary form). When `now` is set, expiry is judged at that Unix time. For `invalid-character`, `position` is the 0-based position of the first foreign character in Unicode code points from the start of the trimmed input (spec/token.md section 6.4), and must match; it is null otherwise. `message` is this codec's wording and is informative only.",
        "vectors": vectors,
    })
}

/// Renders a JSON document as the committed files are written: pretty, with a final newline.
pub fn render(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap();
    s.push('\n');
    s
}

// ---- browser-profile vectors: the dialer certificate (§7.3) and reply codes (§12) ----

/// `spec/vectors/dialer-certificate.json`.
pub fn dialer_certificate_json() -> Value {
    use oneway_token::dialer_cert::DialerCertificate;
    let vectors: Vec<Value> = ["dialer-identity", "dialer-certificate-2"]
        .into_iter()
        .map(|name| {
            let s = secret(name);
            let c = DialerCertificate::derive(&s).unwrap();
            json!({
                "name": name,
                "secret_hex": hex(&s.0),
                "private_scalar_hex": hex(&c.private_scalar),
                "public_key_hex": hex(&c.public_key),
                "tbs_der_hex": hex(&c.tbs_der),
                "signature_der_hex": hex(&c.signature_der),
                "certificate_der_hex": hex(&c.certificate_der),
                "private_key_pkcs8_hex": hex(&c.private_key_pkcs8),
                "fingerprint": c.fingerprint.to_sdp_hex(),
            })
        })
        .collect();
    json!({
        "spec": "spec/token.md",
        "generated_by": "cargo run -p oneway-token --example generate_vectors",
        "format_version": 1,
        "about": "The dialer certificate of the dialer-identity profile (spec/token.md section 7.3), from secret_hex: the P-256 private scalar, the uncompressed public key, the TBSCertificate, the RFC 6979 ECDSA signature, the certificate and its SHA-256 fingerprint must match byte for byte. private_key_pkcs8_hex is informative (one valid encoding of the key).",
        "vectors": vectors,
    })
}

/// `spec/vectors/reply-code.json`.
pub fn reply_code_json() -> Value {
    use oneway_token::IceCredentials;
    use oneway_token::reply::ReplyCode;
    let valid = [
        ("chromium", "Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs"),
        ("firefox", "9b2c4d6e", "0123456789abcdef0123456789ABCDEF"),
    ];
    let mut vectors: Vec<Value> = valid
        .iter()
        .map(|(name, ufrag, pwd)| {
            let reply = ReplyCode {
                ice: IceCredentials::new(*ufrag, *pwd).unwrap(),
                fingerprint: fingerprint(name),
            };
            json!({
                "name": name,
                "text": reply.to_text(),
                "ufrag": ufrag,
                "pwd": pwd,
                "fingerprint": reply.fingerprint.to_sdp_hex(),
                "chars": reply.to_text().len(),
                "error": null,
            })
        })
        .collect();
    let good = ReplyCode {
        ice: IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs").unwrap(),
        fingerprint: fingerprint("chromium"),
    }
    .to_text();
    let mut typo = good.clone().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'A' { b'B' } else { b'A' };
    let invalid = [
        ("missing-prefix", "ow1.AAAA".to_owned()),
        // Was `owr2.` before version 2 existed (spec/token.md §12.2); any unknown version will do.
        ("unknown-version", good.replacen("owr1.", "owr3.", 1)),
        ("mistyped", String::from_utf8(typo).unwrap()),
        ("bad-text-length", good[..30].to_owned()),
        ("too-short", {
            use base64::Engine as _;
            format!(
                "owr1.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0x04u8; 34])
            )
        }),
        ("extra-byte", {
            use base64::Engine as _;
            let mut bytes = IceCredentials::new("Qx7z", "Hw3qJ0tXbX1Zr8CkL2mN4pVs")
                .unwrap()
                .to_packed();
            bytes.push(0);
            bytes.extend_from_slice(&fingerprint("chromium").0);
            bytes.push(oneway_token::reply::crc8(&bytes));
            format!(
                "owr1.{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            )
        }),
    ];
    for (name, text) in invalid {
        let error = ReplyCode::from_text(&text).expect_err(name);
        vectors.push(json!({
            "name": name,
            "text": text,
            "error": error.code(),
            "message": error.to_string(),
        }));
    }
    vectors.extend(reply_v2_vectors());
    json!({
        "spec": "spec/token.md",
        "generated_by": "cargo run -p oneway-token --example generate_vectors",
        "format_version": 1,
        "about": "Reply codes (spec/token.md section 12). A vector without `version` is version 1 (section 12.1): with error null it must decode to ufrag, pwd and fingerprint, and encoding those must give text exactly; otherwise decoding must fail with `error`. A vector with `version` 2 (section 12.2) carries the reply key it was made with (`reply_key_hex`, derived from `secret_hex` by section 7) and the Unix time `now` to verify at: with error null it must decode to issued, ufrag, pwd (null when derived), fast_start and candidates, `pwd_or_derived` is the dialer's pwd (the reply pwd when pwd is null), `tag_hex` is the tag, encoding the fields with the key must give text exactly, and verifying at `now` with the key must succeed; otherwise decoding, then verifying (section 12.3 steps 6-7), must fail with `error`.",
        "vectors": vectors,
    })
}

/// The token secret the version-2 reply vectors are tagged for, and another one.
const REPLY_V2_SECRET: &str = "reply-v2";
const REPLY_V2_FOREIGN_SECRET: &str = "reply-v2-foreign";

fn reply_key(name: &str) -> [u8; 32] {
    oneway_token::DerivedKeys::derive(&secret(name), Profile::Native).reply_key
}

/// 6-bit packing of ice-chars (spec/token.md §5.3), for hand-built malformed bodies.
fn pack_chars(chars: &str) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in chars.bytes() {
        acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
    out
}

/// A version-2 body from raw parts, with a correct tag under `key` and a correct CRC, so that
/// only the intended rule breaks.
fn raw_v2(
    flags: u8,
    u: u8,
    p: u8,
    packed: &[u8],
    candidates: &[Vec<u8>],
    key: &[u8; 32],
) -> String {
    use base64::Engine as _;
    let mut b = vec![flags];
    b.extend_from_slice(&(NOW as u32).to_be_bytes());
    b.push(u);
    b.push(p);
    b.extend_from_slice(packed);
    for c in candidates {
        b.extend_from_slice(c);
    }
    let mac = oneway_token::derive::hmac_sha256(key, &[oneway_token::reply::REPLY_TAG_PREFIX, &b]);
    b.extend_from_slice(&mac[..8]);
    b.push(oneway_token::reply::crc8(&b));
    format!(
        "owr2.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

fn ipv6_candidate(kind: u8, text: &str, port: u16) -> Vec<u8> {
    let mut c = vec![kind];
    c.extend_from_slice(&text.parse::<Ipv6Addr>().unwrap().octets());
    c.extend_from_slice(&port.to_be_bytes());
    c
}

/// The version-2 entries of `spec/vectors/reply-code.json`.
fn reply_v2_vectors() -> Vec<Value> {
    use oneway_token::reply::{AnyReply, CandidateReply};
    let key = reply_key(REPLY_V2_SECRET);
    let issued = NOW as u32;
    let srflx = with(
        v4([198, 51, 100, 7], 61_000),
        CandidateType::ServerReflexive,
        Transport::Udp,
    );
    let relay6 = with(
        v6("2001:db8:3::7", 3478),
        CandidateType::Relay,
        Transport::Udp,
    );
    let str0m_ufrag = "d1aLeRuFrag0str0";
    let fast_ufrag = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(EXAMPLE_INIT_CHUNK)
    };
    let make = |ufrag: &str, pwd: Option<&str>, fast_start: bool, candidates: Vec<Candidate>| {
        CandidateReply {
            issued,
            ufrag: ufrag.to_owned(),
            pwd: pwd.map(str::to_owned),
            fast_start,
            candidates,
            received_tag: None,
        }
    };
    let derived = make(str0m_ufrag, None, false, vec![srflx]);
    let valid = [
        (
            "v2-derived-pwd-srflx",
            "A str0m-shaped dialer (16-character ufrag, reply pwd derived, so not carried) with one IPv4 srflx candidate: the common case.",
            derived.clone(),
            u64::from(issued),
        ),
        (
            "v2-chromium-srflx-relay6",
            "Chromium-shaped credentials carried (4-character ufrag, 24-character pwd), an IPv4 srflx and an IPv6 relay candidate.",
            make(
                "Qx7z",
                Some("Hw3qJ0tXbX1Zr8CkL2mN4pVs"),
                false,
                vec![srflx, relay6],
            ),
            u64::from(issued),
        ),
        (
            "v2-fast-start",
            "A dialer taking the token's fast start (flag bit 3): its ufrag is its 24-byte SCTP INIT chunk in base64 (32 characters), reply pwd derived.",
            make(&fast_ufrag, None, true, vec![srflx]),
            u64::from(issued),
        ),
        (
            "v2-four-candidates",
            "The most candidates a code carries: IPv4 host, IPv6 host, IPv4 srflx, IPv4 relay.",
            make(
                str0m_ufrag,
                None,
                false,
                vec![
                    v4([10, 4, 0, 2], 50_000),
                    v6("2001:db8:4::2", 50_000),
                    srflx,
                    with(
                        v4([203, 0, 113, 40], 3478),
                        CandidateType::Relay,
                        Transport::Udp,
                    ),
                ],
            ),
            u64::from(issued),
        ),
        (
            "v2-at-lifetime-end",
            "Verified exactly 600 seconds after it was made: still accepted (expired only when issued + 600 < now).",
            derived.clone(),
            u64::from(issued) + 600,
        ),
        (
            "v2-at-skew-limit",
            "Verified 60 seconds before it says it was made: still accepted (clock skew only when issued > now + 60).",
            derived.clone(),
            u64::from(issued) - 60,
        ),
    ];
    let mut out: Vec<Value> = valid
        .into_iter()
        .map(|(name, description, reply, now)| {
            let text = reply.to_text(&key).unwrap();
            let Ok(AnyReply::Candidates(decoded)) = AnyReply::from_text(&text) else {
                panic!("{name} does not decode");
            };
            decoded.verify(&key, now).unwrap();
            json!({
                "name": name,
                "description": description,
                "version": 2,
                "text": text,
                "secret_hex": hex(&secret(REPLY_V2_SECRET).0),
                "reply_key_hex": hex(&key),
                "now": now,
                "issued": reply.issued,
                "ufrag": reply.ufrag,
                "pwd": reply.pwd,
                "pwd_or_derived": reply.pwd_or_derived(&key),
                "fast_start": reply.fast_start,
                "candidates": reply.candidates.iter().map(candidate_json).collect::<Vec<_>>(),
                "tag_hex": hex(&decoded.received_tag.unwrap()),
                "chars": text.len(),
                "error": null,
            })
        })
        .collect();

    let good = derived.to_text(&key).unwrap();
    let mut typo = good.clone().into_bytes();
    let at = 12;
    typo[at] = if typo[at] == b'A' { b'B' } else { b'A' };
    let packed16 = pack_chars(str0m_ufrag);
    let c_srflx = ipv4_candidate(0b0100, [198, 51, 100, 7], 61_000);
    let invalid: Vec<(&str, &str, String, u64, [u8; 32])> = vec![
        (
            "v2-invalid-character",
            "A `+` (standard base64, not base64url) in a version-2 code.",
            good.replacen("owr2.", "owr2.+", 1)[..good.len()].to_owned(),
            u64::from(issued),
            key,
        ),
        (
            "v2-bad-text-length",
            "A version-2 code cut to a length that cannot be whole bytes.",
            good[..good.len() - 2].to_owned(),
            u64::from(issued),
            key,
        ),
        (
            "v2-too-short",
            "15 bytes: fewer than the 16 fixed bytes of version 2.",
            {
                use base64::Engine as _;
                format!(
                    "owr2.{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0x01u8; 15])
                )
            },
            u64::from(issued),
            key,
        ),
        (
            "v2-mistyped",
            "One character of a valid code changed: the CRC-8 catches it.",
            String::from_utf8(typo).unwrap(),
            u64::from(issued),
            key,
        ),
        (
            "v2-reserved-flag-bit",
            "Flag bit 4 (reserved) set.",
            raw_v2(0x11, 16, 0, &packed16, std::slice::from_ref(&c_srflx), &key),
            u64::from(issued),
            key,
        ),
        (
            "v2-no-candidates",
            "Candidate count 0.",
            raw_v2(0x00, 16, 0, &packed16, &[], &key),
            u64::from(issued),
            key,
        ),
        (
            "v2-five-candidates",
            "Candidate count 5 (at most 4), with five candidates.",
            raw_v2(
                0x05,
                16,
                0,
                &packed16,
                &(1..=5u8)
                    .map(|i| ipv4_candidate(0b0100, [198, 51, 100, i], 61_000))
                    .collect::<Vec<_>>(),
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-ufrag-too-short",
            "A 3-character ufrag (RFC 8839 requires 4).",
            raw_v2(
                0x01,
                3,
                0,
                &pack_chars("abc"),
                std::slice::from_ref(&c_srflx),
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-pwd-too-short",
            "A carried pwd of 21 characters (0 for derived, else 22 to 255).",
            raw_v2(
                0x01,
                4,
                21,
                &pack_chars(&format!("Qx7z{}", "p".repeat(21))),
                std::slice::from_ref(&c_srflx),
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-nonzero-padding",
            "A 5-character ufrag (30 bits in 4 bytes) whose 2 padding bits are not zero.",
            {
                let mut packed = pack_chars("abcde");
                *packed.last_mut().unwrap() |= 0b01;
                raw_v2(0x01, 5, 0, &packed, std::slice::from_ref(&c_srflx), &key)
            },
            u64::from(issued),
            key,
        ),
        (
            "v2-mdns-candidate",
            "A candidate of address form 2 (an mDNS name): not allowed in a reply code.",
            raw_v2(
                0x01,
                16,
                0,
                &packed16,
                &[ipv6_candidate(0b0010, "2001:db8::1", 50_000)],
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-tcp-candidate",
            "A passive TCP candidate (kind bit 4): only UDP is allowed.",
            raw_v2(
                0x01,
                16,
                0,
                &packed16,
                &[ipv4_candidate(0b1_0000, [192, 0, 2, 7], 443)],
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-reserved-candidate-type",
            "A candidate of type 3 (reserved).",
            raw_v2(
                0x01,
                16,
                0,
                &packed16,
                &[ipv4_candidate(0b1100, [192, 0, 2, 7], 5000)],
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-port-zero",
            "A candidate on port 0.",
            raw_v2(
                0x01,
                16,
                0,
                &packed16,
                &[ipv4_candidate(0b0100, [198, 51, 100, 7], 0)],
                &key,
            ),
            u64::from(issued),
            key,
        ),
        (
            "v2-byte-left-over",
            "One byte between the last candidate and the tag.",
            raw_v2(0x01, 16, 0, &packed16, &[c_srflx.clone(), vec![0]], &key),
            u64::from(issued),
            key,
        ),
        (
            "v2-candidate-missing",
            "Candidate count 2 with one candidate: bytes missing before the tag.",
            raw_v2(0x02, 16, 0, &packed16, std::slice::from_ref(&c_srflx), &key),
            u64::from(issued),
            key,
        ),
        (
            "v2-foreign",
            "Well-formed, but tagged with the reply key of another token (secret `reply-v2-foreign`); verified with this token's key.",
            derived
                .to_text(&reply_key(REPLY_V2_FOREIGN_SECRET))
                .unwrap(),
            u64::from(issued),
            key,
        ),
        (
            "v2-altered",
            "A valid code whose candidate port was changed and whose CRC-8 was recomputed: the tag no longer matches.",
            {
                use base64::Engine as _;
                let mut b = derived.to_bytes(&key).unwrap();
                let port_at = b.len() - 9 - 1;
                b[port_at] ^= 0x01;
                let crc_at = b.len() - 1;
                b[crc_at] = oneway_token::reply::crc8(&b[..crc_at]);
                format!(
                    "owr2.{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
                )
            },
            u64::from(issued),
            key,
        ),
        (
            "v2-expired",
            "Verified 601 seconds after it was made.",
            good.clone(),
            u64::from(issued) + 601,
            key,
        ),
        (
            "v2-clock-skew",
            "Verified 61 seconds before it says it was made.",
            good.clone(),
            u64::from(issued) - 61,
            key,
        ),
    ];
    for (name, description, text, now, verify_key) in invalid {
        let error = CandidateReply::from_text(&text)
            .and_then(|r| r.verify(&verify_key, now))
            .expect_err(name);
        assert_eq!(
            error.code(),
            intended_reply_code(name),
            "vector {name}: {error}"
        );
        out.push(json!({
            "name": name,
            "description": description,
            "version": 2,
            "text": text,
            "secret_hex": hex(&secret(REPLY_V2_SECRET).0),
            "reply_key_hex": hex(&verify_key),
            "now": now,
            "error": error.code(),
            "message": error.to_string(),
        }));
    }
    out
}

/// The error each version-2 invalid reply vector is built to produce.
fn intended_reply_code(name: &str) -> &'static str {
    match name {
        "v2-invalid-character" => "invalid-character",
        "v2-bad-text-length" => "invalid-text-length",
        "v2-too-short" => "truncated",
        "v2-mistyped" => "checksum-mismatch",
        "v2-foreign" | "v2-altered" => "reply-foreign",
        "v2-expired" => "reply-expired",
        "v2-clock-skew" => "reply-clock-skew",
        n if n.starts_with("v2-") => "invalid-reply",
        other => panic!("reply vector {other} has no intended error code"),
    }
}
