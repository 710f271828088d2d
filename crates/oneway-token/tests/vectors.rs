//! The codec against `spec/vectors/` (`spec/token.md` §10).
//!
//! 1. Every valid vector's binary, text and QR forms decode to its `decoded` fields; encoding
//!    gives the same bytes back; derived values and the remote description match.
//! 2. Every invalid vector is refused with its error code.
//! 3. The committed files are exactly what `cargo run -p oneway-token --example generate_vectors`
//!    writes, so they cannot drift from the generator.

mod common;

use common::vectors;
use oneway_token::Token;
use serde_json::Value;

fn load(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../spec/vectors")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn valid_vectors_decode_encode_and_derive() {
    let doc = load("valid.json");
    let list = doc["vectors"].as_array().expect("vectors");
    assert!(list.len() >= 9, "valid.json lost vectors");
    for v in list {
        let name = v["name"].as_str().expect("name");
        let bytes = unhex(v["binary_hex"].as_str().expect("hex"));
        let token = Token::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for form in ["text", "qr_text"] {
            let from_text = Token::from_text(v[form].as_str().expect("text"))
                .unwrap_or_else(|e| panic!("{name} {form}: {e}"));
            assert_eq!(from_text, token, "{name}: {form} decodes differently");
        }
        assert_eq!(
            token.to_bytes().expect("encodes"),
            bytes,
            "{name}: re-encoding differs"
        );
        assert_eq!(
            vectors::decoded_json(&token),
            v["decoded"],
            "{name}: decoded fields"
        );
        assert_eq!(
            vectors::derived_json(&token),
            v["derived"],
            "{name}: derived values"
        );
        assert_eq!(
            v["sizes"]["binary"].as_u64(),
            Some(bytes.len() as u64),
            "{name}: size"
        );
        let rd = &v["remote_description"];
        let remote = token
            .remote_description(rd["dialer_offer"].as_str())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(remote.sdp_type.as_str(), rd["type"], "{name}: sdp type");
        assert_eq!(
            remote.sdp,
            rd["sdp"].as_str().expect("sdp"),
            "{name}: remote description"
        );
    }
}

#[test]
fn invalid_vectors_are_refused_with_their_code() {
    let doc = load("invalid.json");
    let list = doc["vectors"].as_array().expect("vectors");
    assert!(list.len() >= 30, "invalid.json lost vectors");
    for v in list {
        let name = v["name"].as_str().expect("name");
        let result = vectors::decode_input(
            v["input"].as_str().expect("input"),
            v["input_form"].as_str().expect("form"),
            v["now"].as_u64(),
        );
        match result {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                assert_eq!(e.code(), v["error"], "{name}: {e}");
                assert_eq!(
                    vectors::error_position(&e).map(|p| p as u64),
                    v["position"].as_u64(),
                    "{name}: position of the invalid character"
                );
            }
        }
    }
}

#[test]
fn committed_vectors_match_the_generator() {
    for (file, generated) in [
        ("valid.json", vectors::valid_json()),
        ("invalid.json", vectors::invalid_json()),
        (
            "dialer-certificate.json",
            vectors::dialer_certificate_json(),
        ),
        ("reply-code.json", vectors::reply_code_json()),
    ] {
        assert_eq!(
            load(file),
            generated,
            "spec/vectors/{file} is stale: run `cargo run -p oneway-token --example generate_vectors`"
        );
    }
}

#[test]
fn size_targets_of_the_spec_hold() {
    let doc = load("valid.json");
    let minimal = &doc["vectors"][0];
    assert_eq!(minimal["name"], "native-ipv4-minimal");
    // spec/token.md §4.6: <= 64 bytes binary, <= 90 text characters for one IPv4 candidate.
    assert!(minimal["sizes"]["binary"].as_u64() <= Some(64));
    assert!(minimal["sizes"]["text"].as_u64() <= Some(90));
}

/// `spec/vectors/reply-code.json`: version-1 entries through [`ReplyCode`] and [`AnyReply`],
/// version-2 entries through [`AnyReply`] and [`CandidateReply::verify`] (`spec/token.md` §12).
#[test]
fn reply_code_vectors_decode_encode_and_verify() {
    use oneway_token::reply::{AnyReply, CandidateReply, ReplyCode};
    let doc = load("reply-code.json");
    let list = doc["vectors"].as_array().expect("vectors");
    let mut v2_valid = 0;
    let mut v2_invalid = 0;
    for v in list {
        let name = v["name"].as_str().expect("name");
        let text = v["text"].as_str().expect("text");
        if v["version"].as_u64() != Some(2) {
            let any = AnyReply::from_text(text);
            match v["error"].as_str() {
                Some(code) => {
                    assert_eq!(
                        ReplyCode::from_text(text).map(|_| ()).unwrap_err().code(),
                        code,
                        "{name}"
                    );
                    assert_eq!(
                        any.map(|_| ()).unwrap_err().code(),
                        code,
                        "{name}: AnyReply"
                    );
                }
                None => {
                    let reply =
                        ReplyCode::from_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(reply.ice.ufrag(), v["ufrag"], "{name}");
                    assert_eq!(reply.ice.pwd(), v["pwd"], "{name}");
                    assert_eq!(reply.fingerprint.to_sdp_hex(), v["fingerprint"], "{name}");
                    assert_eq!(reply.to_text(), text, "{name}: re-encoding");
                    assert_eq!(any, Ok(AnyReply::Identity(reply)), "{name}: AnyReply");
                }
            }
            continue;
        }
        let key: [u8; 32] = unhex(v["reply_key_hex"].as_str().expect("key"))
            .try_into()
            .expect("32-byte key");
        let secret: [u8; 16] = unhex(v["secret_hex"].as_str().expect("secret"))
            .try_into()
            .expect("16-byte secret");
        let now = v["now"].as_u64().expect("now");
        let result = AnyReply::from_text(text).and_then(|any| match any {
            AnyReply::Candidates(reply) => reply.verify(&key, now).map(|()| reply),
            AnyReply::Identity(_) => panic!("{name}: decoded as version 1"),
        });
        match v["error"].as_str() {
            Some(code) => {
                v2_invalid += 1;
                assert_eq!(result.map(|_| ()).unwrap_err().code(), code, "{name}");
            }
            None => {
                v2_valid += 1;
                let derived = oneway_token::DerivedKeys::derive(
                    &oneway_token::Secret(secret),
                    oneway_token::Profile::Native,
                );
                assert_eq!(derived.reply_key, key, "{name}: reply key from the secret");
                let reply = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    u64::from(reply.issued),
                    v["issued"].as_u64().expect("issued")
                );
                assert_eq!(reply.ufrag, v["ufrag"], "{name}");
                assert_eq!(reply.pwd.as_deref(), v["pwd"].as_str(), "{name}");
                assert_eq!(reply.pwd_or_derived(&key), v["pwd_or_derived"], "{name}");
                assert_eq!(reply.fast_start, v["fast_start"], "{name}");
                let candidates: Vec<Value> = reply
                    .candidates
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "transport": c.transport.sdp_name(),
                            "type": c.kind.sdp_name(),
                            "address": c.address.to_sdp_string(),
                            "port": c.port,
                        })
                    })
                    .collect();
                assert_eq!(Value::from(candidates), v["candidates"], "{name}");
                let tag: Vec<u8> = reply.received_tag.expect("decoded").to_vec();
                assert_eq!(tag, unhex(v["tag_hex"].as_str().expect("tag")), "{name}");
                assert_eq!(
                    reply.to_text(&key).expect("encodes"),
                    text,
                    "{name}: re-encoding"
                );
                assert_eq!(
                    CandidateReply::from_text(text).as_ref(),
                    Ok(&reply),
                    "{name}: CandidateReply::from_text"
                );
                assert_eq!(v["chars"].as_u64(), Some(text.len() as u64), "{name}");
                if reply.candidates.len() == 1 {
                    // spec/token.md §12.2: at most 80 characters with one IPv4 candidate.
                    assert!(text.len() <= 80, "{name}: {} characters", text.len());
                }
            }
        }
    }
    assert!(
        v2_valid >= 4,
        "reply-code.json lost version-2 valid vectors"
    );
    assert!(
        v2_invalid >= 14,
        "reply-code.json lost version-2 invalid vectors"
    );
}
