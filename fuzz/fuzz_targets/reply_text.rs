//! Reply codes of both versions (`spec/token.md` §12): never panic; a version-2 code that
//! decodes re-encodes to the same text under the key it verifies with.
#![no_main]
use oneway_token::reply::AnyReply;

libfuzzer_sys::fuzz_target!(|text: &str| {
    let key = [0x5a; 32];
    match AnyReply::from_text(text) {
        Ok(AnyReply::Identity(code)) => {
            assert_eq!(
                AnyReply::from_text(&code.to_text()),
                Ok(AnyReply::Identity(code))
            );
        }
        Ok(AnyReply::Candidates(code)) => {
            let again = code.to_text(&key).expect("a decoded reply code encodes");
            if code.verify(&key, u64::from(code.issued)).is_ok() {
                assert_eq!(again.as_str(), text.trim());
            }
        }
        Err(_) => {}
    }
});
