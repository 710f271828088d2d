//! Binary decoder: never panics; whatever decodes re-encodes to the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(token) = oneway_token::Token::from_bytes(data) {
        assert_eq!(token.to_bytes().as_deref(), Ok(data));
    }
});
