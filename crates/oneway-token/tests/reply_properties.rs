//! Property tests of reply codes (`spec/token.md` §12): version 2 round-trips, and no input
//! makes a reply decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use oneway_token::reply::{AnyReply, CandidateReply, ReplyCode};
use oneway_token::{Candidate, CandidateAddress, CandidateType, Transport};
use proptest::prelude::*;

fn candidate() -> impl Strategy<Value = Candidate> {
    let address = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<[u8; 16]>().prop_map(|a| CandidateAddress::Ip(IpAddr::V6(Ipv6Addr::from(a)))),
    ];
    let kind = prop_oneof![
        Just(CandidateType::Host),
        Just(CandidateType::ServerReflexive),
        Just(CandidateType::Relay)
    ];
    (address, kind, 1..=u16::MAX).prop_map(|(address, kind, port)| Candidate {
        transport: Transport::Udp,
        kind,
        address,
        port,
    })
}

fn ice_string(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9+/]{{{min},{max}}}")).expect("regex")
}

prop_compose! {
    fn reply()(
        issued in any::<u32>(),
        ufrag in ice_string(4, 255),
        pwd in proptest::option::of(ice_string(22, 255)),
        fast_start in any::<bool>(),
        candidates in proptest::collection::vec(candidate(), 1..=4),
    ) -> CandidateReply {
        CandidateReply { issued, ufrag, pwd, fast_start, candidates, received_tag: None }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn version_2_round_trips_and_verifies(r in reply(), key in any::<[u8; 32]>()) {
        let text = r.to_text(&key).expect("generated replies are valid");
        let pwd_len = r.pwd.as_ref().map_or(0, String::len);
        let (v4, v6) = r.candidates.iter().fold((0, 0), |(a, b), c| match c.address {
            CandidateAddress::Ip(IpAddr::V4(_)) => (a + 1, b),
            _ => (a, b + 1),
        });
        prop_assert_eq!(text.len(), CandidateReply::text_len(r.ufrag.len(), pwd_len, v4, v6));
        let decoded = CandidateReply::from_text(&text).expect("decodes");
        prop_assert_eq!(&CandidateReply { received_tag: None, ..decoded.clone() }, &r);
        prop_assert_eq!(decoded.verify(&key, u64::from(r.issued)), Ok(()));
        prop_assert_eq!(decoded.to_text(&key).expect("re-encodes"), text);
    }

    #[test]
    fn every_strict_prefix_is_refused(r in reply(), cut in any::<prop::sample::Index>()) {
        let bytes = r.to_bytes(&[7; 32]).expect("valid");
        let cut = cut.index(bytes.len());
        prop_assert!(CandidateReply::from_bytes(&bytes[..cut]).is_err());
    }

    #[test]
    fn mutated_replies_never_panic(r in reply(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = r.to_bytes(&[7; 32]).expect("valid");
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = CandidateReply::from_bytes(&bytes) {
            let _ = decoded.verify(&[7; 32], 0);
        }
    }

    #[test]
    fn decoding_arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), s in "\\PC{0,200}") {
        let _ = CandidateReply::from_bytes(&bytes);
        for prefix in ["", "owr1.", "owr2.", "owr3."] {
            let _ = AnyReply::from_text(&format!("{prefix}{s}"));
            let _ = ReplyCode::from_text(&format!("{prefix}{s}"));
        }
        use base64::Engine as _;
        let text = format!("owr2.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes));
        if let Ok(AnyReply::Candidates(decoded)) = AnyReply::from_text(&text) {
            let _ = decoded.verify(&[0; 32], u64::MAX);
        }
    }
}
