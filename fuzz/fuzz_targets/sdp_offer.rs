//! SDP offer parsing and remote-description synthesis: never panic.
#![no_main]
use oneway_token::{OfferOptions, Profile, Secret, Token};
libfuzzer_sys::fuzz_target!(|sdp: &str| {
    let options = OfferOptions { profile: Profile::Native, secret: Secret([7; 16]) };
    if let Ok(token) = Token::from_offer(sdp, &options) {
        let _ = token.remote_description(Some(sdp));
    }
});
