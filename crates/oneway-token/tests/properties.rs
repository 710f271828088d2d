//! Property tests: encoding then decoding is the identity, and no input makes a decoder panic.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use oneway_token::sdp::parse_listener_offer;
use oneway_token::{
    Candidate, CandidateAddress, CandidateType, Fingerprint, IceCredentials, OfferOptions, Profile,
    RawExtension, SctpParams, Secret, Token, Transport,
};
use proptest::prelude::*;

fn candidate() -> impl Strategy<Value = Candidate> {
    let address = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| CandidateAddress::Ip(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<[u8; 16]>().prop_map(|a| CandidateAddress::Ip(IpAddr::V6(Ipv6Addr::from(a)))),
        any::<[u8; 16]>().prop_map(CandidateAddress::Mdns),
    ];
    let kind = prop_oneof![
        Just(CandidateType::Host),
        Just(CandidateType::ServerReflexive),
        Just(CandidateType::Relay)
    ];
    let transport = prop_oneof![Just(Transport::Udp), Just(Transport::TcpPassive)];
    (address, kind, transport, 1..=u16::MAX).prop_map(|(address, kind, transport, port)| {
        Candidate {
            transport,
            kind: if matches!(address, CandidateAddress::Mdns(_)) {
                CandidateType::Host
            } else {
                kind
            },
            address,
            port,
        }
    })
}

fn ice_string(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9+/]{{{min},{max}}}")).expect("regex")
}

prop_compose! {
    fn token()(
        profile in prop_oneof![Just(Profile::Native), Just(Profile::DialerIdentity), Just(Profile::Reply)],
        fingerprint in any::<[u8; 32]>(),
        secret in any::<[u8; 16]>(),
        candidates in proptest::collection::vec(candidate(), 1..=16),
        expires_at in proptest::option::of(0..=u64::from(u32::MAX)),
        sctp in proptest::option::of((1..=u16::MAX, any::<u32>())),
        ice in (ice_string(4, 40), ice_string(22, 60)),
        single_use in any::<bool>(),
        label in proptest::option::of("[a-zA-Z0-9 ☕é]{1,16}"),
        unknown in proptest::option::of((0xc0u8..=0xff, proptest::collection::vec(any::<u8>(), 0..40))),
        stun in proptest::collection::vec((any::<bool>(), any::<[u8; 16]>(), 1..=u16::MAX), 0..=4),
    ) -> Token {
        let mut candidates = candidates;
        let mut seen = Vec::new();
        // Tokens refuse `0.0.0.0`/`::` and repeated candidates by design; keep the generated ones valid.
        candidates.retain(|c| {
            let unspecified = matches!(c.address, CandidateAddress::Ip(ip) if ip.is_unspecified());
            let fresh = !seen.contains(c);
            seen.push(*c);
            !unspecified && fresh
        });
        if candidates.is_empty() {
            candidates.push(Candidate::udp_host([192, 0, 2, 1], 1));
        }
        let mut t = Token::new(profile, Fingerprint(fingerprint), Secret(secret), candidates);
        t.expires_at = expires_at;
        t.sctp = sctp.map(|(port, max_message_size)| SctpParams { port, max_message_size });
        if profile != Profile::Native {
            t.listener_ice = Some(IceCredentials::new(ice.0, ice.1).expect("valid ice strings"));
        }
        t.single_use = single_use;
        t.label = label;
        for (v6, octets, port) in stun {
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(octets))
            } else {
                IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
            };
            let server = SocketAddr::new(ip, port);
            // `stun` refuses repeated servers by design.
            if !t.stun.contains(&server) {
                t.stun.push(server);
            }
        }
        t.unknown_extensions = unknown.map(|(ty, value)| RawExtension { ty, value }).into_iter().collect();
        t
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_is_identity(t in token()) {
        let bytes = t.to_bytes().expect("generated tokens are valid");
        prop_assert_eq!(bytes.len(), t.encoded_len());
        prop_assert_eq!(&Token::from_bytes(&bytes).expect("decodes"), &t);
        prop_assert_eq!(&Token::from_text(&t.to_text().expect("text")).expect("text decodes"), &t);
        prop_assert_eq!(&Token::from_text(&t.to_qr_text().expect("qr")).expect("qr decodes"), &t);
        let url = format!("https://example.org/p?x=1#{}", t.to_text().expect("text"));
        prop_assert_eq!(&Token::from_text(&url).expect("url decodes"), &t);
    }

    #[test]
    fn every_strict_prefix_is_truncated(t in token(), cut in any::<prop::sample::Index>()) {
        let bytes = t.to_bytes().expect("valid");
        let cut = cut.index(bytes.len());
        let err = Token::from_bytes(&bytes[..cut]).expect_err("a strict prefix is never a token");
        prop_assert_eq!(err.code(), "truncated");
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Token::from_bytes(&bytes);
        let mut with_header = vec![1u8];
        with_header.extend_from_slice(&bytes);
        let _ = Token::from_bytes(&with_header);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = Token::from_text(&s);
        let _ = Token::from_text(&format!("ow1.{s}"));
        let _ = Token::from_text(&format!("OW1.{s}"));
        let _ = Token::from_text(&format!("https://x#{s}"));
    }

    #[test]
    fn mutated_tokens_never_panic(t in token(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = t.to_bytes().expect("valid");
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = Token::from_bytes(&bytes);
    }

    #[test]
    fn sdp_parsing_never_panics(lines in proptest::collection::vec("(a=candidate:|a=fingerprint:|a=ice-|m=application |a=)\\PC{0,60}", 0..30)) {
        let sdp = lines.join("\r\n");
        let _ = parse_listener_offer(&sdp);
        let _ = Token::from_offer(&sdp, &OfferOptions { profile: Profile::Native, secret: Secret([0; 16]) });
        let t = Token::new(Profile::Native, Fingerprint([0; 32]), Secret([0; 16]), vec![Candidate::udp_host([192, 0, 2, 1], 9)]);
        let _ = t.remote_description(Some(&sdp));
    }
}
