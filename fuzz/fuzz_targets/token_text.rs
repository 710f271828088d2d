//! Text, QR and URL forms: never panic; whatever decodes round-trips through the compact form.
#![no_main]
libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(token) = oneway_token::Token::from_text(text) {
        let again = token.to_text().expect("a decoded token encodes");
        assert_eq!(oneway_token::Token::from_text(&again).as_ref(), Ok(&token));
    }
});
