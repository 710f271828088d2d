//! Damage to a valid token is always refused with a named error (`spec/token.md` §8).

mod common;

use common::vectors::valid_tokens;
use oneway_token::{Token, TokenError};

/// CRC-32 catches every single-bit error, and the structure catches the rest: flipping any one
/// bit of any valid vector must be refused.
#[test]
fn every_single_bit_flip_is_refused() {
    let mut flips = 0;
    for (name, _, token) in valid_tokens() {
        let bytes = token.to_bytes().expect("valid");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                let result = Token::from_bytes(&damaged);
                assert!(
                    result.is_err(),
                    "{name}: flipping bit {bit} of byte {i} was accepted"
                );
                flips += 1;
            }
        }
    }
    assert!(flips > 8000, "only {flips} flips tried");
}

#[test]
fn truncation_names_the_field() {
    let (_, _, token) = valid_tokens()
        .into_iter()
        .find(|(n, _, _)| *n == "native-four-candidates")
        .expect("vector");
    let bytes = token.to_bytes().expect("valid");
    let err = Token::from_bytes(&bytes[..60]).expect_err("truncated");
    assert_eq!(err.to_string(), "truncated at byte 60 (candidate 2 of 4)");
    let err = Token::from_bytes(&[]).expect_err("empty");
    assert!(matches!(err, TokenError::Truncated { at: 0, .. }), "{err}");
}

#[test]
fn oversized_text_is_refused_before_decoding() {
    let huge = format!("ow1.{}", "A".repeat(oneway_token::MAX_TEXT_LEN));
    assert_eq!(
        Token::from_text(&huge).expect_err("too long").code(),
        "too-long"
    );
}

#[test]
fn every_error_code_is_kebab_case() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../spec/vectors/invalid.json"
        ))
        .expect("file"),
    )
    .expect("json");
    for v in doc["vectors"].as_array().expect("list") {
        let code = v["error"].as_str().expect("code");
        assert!(
            code.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{code}"
        );
    }
}
