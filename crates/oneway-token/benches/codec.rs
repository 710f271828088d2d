//! Encode and decode rates of the reference codec (`spec/token.md` target: >= 1 M decodes/s).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oneway_token::{Candidate, Fingerprint, Profile, Secret, Token};

fn tokens() -> Vec<(&'static str, Token)> {
    let one = Token::new(
        Profile::Native,
        Fingerprint([0xab; 32]),
        Secret([0x42; 16]),
        vec![Candidate::udp_host([192, 0, 2, 10], 50_000)],
    );
    let mut four = one.clone();
    four.candidates = vec![
        Candidate::udp_host([192, 0, 2, 10], 50_000),
        Candidate::udp_host(
            "2001:db8::10".parse::<std::net::Ipv6Addr>().expect("ipv6"),
            50_000,
        ),
        Candidate::udp_host([10, 0, 0, 2], 50_000),
        Candidate::udp_host(
            "2001:db8::11".parse::<std::net::Ipv6Addr>().expect("ipv6"),
            50_000,
        ),
    ];
    four.expires_at = Some(1_800_000_000);
    vec![("1-candidate", one), ("4-candidates", four)]
}

fn codec(c: &mut Criterion) {
    for (name, token) in tokens() {
        let bytes = token.to_bytes().expect("valid");
        let text = token.to_text().expect("valid");
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("encode-binary", |b| b.iter(|| black_box(&token).to_bytes()));
        group.bench_function("encode-text", |b| b.iter(|| black_box(&token).to_text()));
        group.bench_function("decode-binary", |b| {
            b.iter(|| Token::from_bytes(black_box(&bytes)))
        });
        group.bench_function("decode-text", |b| {
            b.iter(|| Token::from_text(black_box(&text)))
        });
        group.bench_function("derive-keys", |b| b.iter(|| black_box(&token).derive()));
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
