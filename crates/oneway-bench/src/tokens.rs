//! Token sizes (binary bytes, `ow1.` text characters, QR version) per candidate set, and codec
//! rates measured in this process.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use oneway_token::{
    Candidate, CandidateAddress, CandidateType, Fingerprint, Profile, Secret, Token, Transport,
};
use serde::Serialize;

use crate::BenchError;

/// Size of one token shape.
#[derive(Clone, Debug, Serialize)]
pub struct TokenSize {
    /// What the token holds.
    pub shape: String,
    /// Profile name.
    pub profile: String,
    /// Number of candidates.
    pub candidates: usize,
    /// Binary form, bytes.
    pub bytes: usize,
    /// `ow1.` text form, characters.
    pub text_chars: usize,
    /// `OW1.` QR text form, characters.
    pub qr_chars: usize,
    /// QR version at error-correction level M.
    pub qr_version: i16,
}

/// Codec rate for one shape.
#[derive(Clone, Debug, Serialize)]
pub struct CodecRate {
    /// Shape measured.
    pub shape: String,
    /// Binary decodes per second.
    pub decode_binary_per_second: f64,
    /// `ow1.` text decodes per second.
    pub decode_text_per_second: f64,
    /// Binary + text encodes per second.
    pub encode_text_per_second: f64,
}

/// The token report.
#[derive(Clone, Debug, Serialize)]
pub struct TokenReport {
    /// Sizes per shape.
    pub sizes: Vec<TokenSize>,
    /// Codec rates per shape.
    pub rates: Vec<CodecRate>,
}

fn candidate(address: CandidateAddress, kind: CandidateType, port: u16) -> Candidate {
    Candidate {
        transport: Transport::Udp,
        kind,
        address,
        port,
    }
}

/// The token shapes measured: typical and worst cases of the native profile.
pub fn shapes() -> Vec<(String, Token)> {
    let fp = Fingerprint([0x5a; 32]);
    let secret = Secret([0x11; 16]);
    let v4 = |d: u8| CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::new(192, 168, 1, d)));
    let v6 =
        |d: u16| CandidateAddress::Ip(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, d)));
    let srflx = CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)));
    let mdns = CandidateAddress::Mdns([0x42; 16]);
    let host = CandidateType::Host;
    let mut list: Vec<(String, Vec<Candidate>)> = vec![
        (
            "1 IPv4 host".to_owned(),
            vec![candidate(v4(10), host, 50_000)],
        ),
        (
            "1 mDNS host".to_owned(),
            vec![candidate(mdns, host, 50_000)],
        ),
        (
            "IPv4 + IPv6 host".to_owned(),
            vec![
                candidate(v4(10), host, 50_000),
                candidate(v6(1), host, 50_001),
            ],
        ),
        (
            "host + srflx + IPv6 + mDNS".to_owned(),
            vec![
                candidate(v4(10), host, 50_000),
                candidate(srflx, CandidateType::ServerReflexive, 61_000),
                candidate(v6(1), host, 50_001),
                candidate(mdns, host, 50_000),
            ],
        ),
    ];
    list.push((
        "16 IPv6 host".to_owned(),
        (0..16)
            .map(|i| candidate(v6(i + 1), host, 50_000 + i))
            .collect(),
    ));
    let mut out: Vec<(String, Token)> = list
        .into_iter()
        .map(|(name, cands)| (name, Token::new(Profile::Native, fp, secret, cands)))
        .collect();
    let mut full = Token::new(
        Profile::Native,
        fp,
        secret,
        vec![candidate(v4(10), host, 50_000)],
    );
    full.expires_at = Some(1_900_000_000);
    full.single_use = true;
    full.label = Some("kitchen".to_owned());
    out.push(("1 IPv4 + expiry, single-use, label".to_owned(), full));
    out
}

/// Measures sizes of every shape, and codec rates over `iterations` per shape.
pub fn run(iterations: u32) -> Result<TokenReport, BenchError> {
    let err = |e: oneway_token::TokenError| BenchError::Setup(e.to_string());
    let mut sizes = Vec::new();
    let mut rates = Vec::new();
    for (shape, token) in shapes() {
        let bytes = token.to_bytes().map_err(err)?;
        let text = token.to_text().map_err(err)?;
        let qr = oneway_token::qr::token_qr(&token, None)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        sizes.push(TokenSize {
            shape: shape.clone(),
            profile: token.profile.name().to_owned(),
            candidates: token.candidates.len(),
            bytes: bytes.len(),
            text_chars: text.len(),
            qr_chars: qr.payload.len(),
            qr_version: qr.version,
        });
        let per_second = |f: &dyn Fn()| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            f64::from(iterations) / start.elapsed().as_secs_f64().max(1e-9)
        };
        rates.push(CodecRate {
            shape,
            decode_binary_per_second: per_second(&|| {
                let _ = black_box(Token::from_bytes(black_box(&bytes)));
            }),
            decode_text_per_second: per_second(&|| {
                let _ = black_box(Token::from_text(black_box(&text)));
            }),
            encode_text_per_second: per_second(&|| {
                let _ = black_box(black_box(&token).to_text());
            }),
        });
    }
    Ok(TokenReport { sizes, rates })
}
