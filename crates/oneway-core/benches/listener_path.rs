//! The per-packet and per-connection costs on a listener's hot path: classifying a datagram from
//! an unknown address (the STUN demux of `spec/handshake.md` §4.3, with MESSAGE-INTEGRITY), and
//! computing and verifying the in-band proof.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oneway_core::demux::{ListenerCreds, classify};
use oneway_core::{ProofRole, proof};
use rtc_stun::attributes::ATTR_USERNAME;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::{BINDING_REQUEST, Message, Setter, TransactionId};
use rtc_stun::textattrs::TextAttribute;

const TOKEN_UFRAG: &str = "hsdE6ktp";
const LISTENER_PWD: &str = "listenerPwd0123456789abcdef";
const DIALER_PWD: &str = "DialerPwd0123456789abcd";

/// A Binding request as a dialer sends it, signed with `pwd`.
fn check(username: &str, pwd: &str) -> Vec<u8> {
    let provider = rtc_stun::crypto::default_provider().expect("crypto provider");
    let mut m = Message::new();
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(TransactionId::new()),
        Box::new(BINDING_REQUEST),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
            pwd.to_owned(),
            provider.crypto(),
        )),
    ];
    m.build(&setters).expect("valid STUN message");
    m.raw
}

fn demux(c: &mut Criterion) {
    let creds = ListenerCreds {
        token_ufrag: TOKEN_UFRAG,
        listener_pwd: LISTENER_PWD,
    };
    let username = format!("{TOKEN_UFRAG}+{DIALER_PWD}:dIaL");
    let valid = check(&username, LISTENER_PWD);
    let bad_integrity = check(&username, "not-the-listener-pwd-0123");
    let unknown_token = check(&format!("zzzzzzzz+{DIALER_PWD}:dIaL"), LISTENER_PWD);
    let dtls_garbage = vec![22_u8; 120];
    let mut group = c.benchmark_group("demux");
    group.throughput(Throughput::Elements(1));
    for (name, datagram) in [
        ("new-dialer", &valid),
        ("bad-integrity", &bad_integrity),
        ("unknown-token", &unknown_token),
        ("not-stun", &dtls_garbage),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| classify(black_box(datagram), creds, |_| false))
        });
    }
    group.finish();
}

fn in_band_proof(c: &mut Criterion) {
    let (key, listener_fp, dialer_fp) = ([7_u8; 32], [0xaa_u8; 32], [0xbb_u8; 32]);
    let sent = proof::compute(&key, ProofRole::Dialer, &listener_fp, &dialer_fp);
    let mut group = c.benchmark_group("proof");
    group.throughput(Throughput::Elements(1));
    group.bench_function("compute", |b| {
        b.iter(|| proof::compute(black_box(&key), ProofRole::Dialer, &listener_fp, &dialer_fp))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            proof::verify(
                black_box(&key),
                ProofRole::Dialer,
                &listener_fp,
                &dialer_fp,
                black_box(&sent),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, demux, in_band_proof);
criterion_main!(benches);
