//! Channel-0 message parser (`oneway_core::signal`): never panics, refuses oversized input by
//! name, and whatever it accepts re-encodes to a message that decodes to the same value.
#![no_main]
use oneway_core::signal::{MAX_MESSAGE_BYTES, Message, SignalError};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    match Message::decode(data) {
        Ok(message) => {
            assert!(data.len() <= MAX_MESSAGE_BYTES);
            // The proof accessor never panics either: a MAC or a named error.
            if let Some(Err(e)) = message.proof_mac() {
                assert_eq!(e, SignalError::BadProofEncoding);
            }
            let again = message.encode();
            if again.len() <= MAX_MESSAGE_BYTES {
                assert_eq!(Message::decode(again.as_bytes()).as_ref(), Ok(&message));
            }
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            if data.len() > MAX_MESSAGE_BYTES {
                assert_eq!(e, SignalError::TooLarge(data.len()));
            }
        }
    }
});
