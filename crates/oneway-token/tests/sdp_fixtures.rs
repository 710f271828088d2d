//! SDP ⇄ token round trips on real offers captured from Chromium, Firefox, str0m and webrtc-rs
//! (`tests/fixtures/sdp/`, see the READMEs there for how each was captured).

use std::path::{Path, PathBuf};

use oneway_token::sdp::{SdpType, parse_listener_offer};
use oneway_token::{OfferOptions, Profile, Secret, Token};

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdp");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sdp"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("utf-8 fixture"))
        })
        .collect()
}

/// Every stack the spec names has at least one captured offer.
#[test]
fn fixtures_cover_every_stack() {
    let names: Vec<String> = fixtures().into_iter().map(|(n, _)| n).collect();
    for stack in ["str0m", "webrtc-rs", "chromium", "firefox"] {
        assert!(
            names.iter().any(|n| n.starts_with(stack)),
            "no {stack} fixture in {names:?}"
        );
    }
}

fn attribute<'a>(sdp: &'a str, name: &str) -> Vec<&'a str> {
    sdp.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(name))
        .collect()
}

#[test]
fn offers_become_tokens_and_back() {
    for (name, sdp) in fixtures() {
        let offer = parse_listener_offer(&sdp).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!offer.candidates.is_empty(), "{name}: no candidates");
        let fingerprint = attribute(&sdp, "a=fingerprint:sha-256 ");
        assert_eq!(
            offer.fingerprint.to_sdp_hex(),
            fingerprint[0],
            "{name}: fingerprint"
        );

        for profile in [Profile::Native, Profile::DialerIdentity, Profile::Reply] {
            let options = OfferOptions {
                profile,
                secret: Secret([9; 16]),
            };
            let token = Token::from_offer(&sdp, &options)
                .unwrap_or_else(|e| panic!("{name} {profile}: {e}"));
            let decoded = Token::from_text(&token.to_text().expect("encodes")).expect("decodes");
            assert_eq!(decoded, token, "{name} {profile}: text round trip");
            assert_eq!(
                token.candidates, offer.candidates,
                "{name} {profile}: candidates"
            );

            if profile == Profile::Native {
                // The fixture doubles as a dialer's offer: the answer must mirror its data mid and
                // compose the listener ufrag from the dialer's pwd.
                let answer = token
                    .remote_description(Some(&sdp))
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(answer.sdp_type, SdpType::Answer);
                let pwd = offer.ice.pwd();
                let ufrag = attribute(&answer.sdp, "a=ice-ufrag:");
                assert_eq!(
                    ufrag,
                    vec![format!("{}+{pwd}", token.derive().token_ufrag).as_str()],
                    "{name}"
                );
                assert_eq!(
                    attribute(&answer.sdp, "a=mid:"),
                    vec![offer.mid.as_str()],
                    "{name}: mid"
                );
                assert_eq!(
                    attribute(&answer.sdp, "a=setup:"),
                    vec!["passive"],
                    "{name}"
                );
                assert!(
                    answer.sdp.contains("\r\na=ice-lite\r\n"),
                    "{name}: native listener is ICE-lite"
                );
            } else {
                // The listener's offer rebuilt from the token carries everything the original did.
                let rebuilt = token
                    .remote_description(None)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(rebuilt.sdp_type, SdpType::Offer);
                let again =
                    parse_listener_offer(&rebuilt.sdp).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(again.fingerprint, offer.fingerprint, "{name}");
                assert_eq!(again.ice, offer.ice, "{name}: ICE credentials");
                assert_eq!(
                    again.candidates, offer.candidates,
                    "{name}: candidates and order"
                );
                assert_eq!(again.sctp, offer.sctp, "{name}: SCTP parameters");
                assert!(
                    again.skipped.is_empty(),
                    "{name}: rebuilt offer has only usable candidates"
                );
            }
        }
    }
}

/// What each stack's offer turns into, for review: candidates kept, skipped with reasons, SCTP.
#[test]
fn conversion_summaries() {
    for (name, sdp) in fixtures() {
        let offer = parse_listener_offer(&sdp).expect("parses");
        let mut summary = String::new();
        for c in &offer.candidates {
            summary.push_str(&format!(
                "keep {} {} {}\n",
                c.transport.sdp_name(),
                c.kind.sdp_name(),
                if matches!(c.address, oneway_token::CandidateAddress::Mdns(_)) {
                    "mdns"
                } else {
                    "ip"
                }
            ));
        }
        for s in &offer.skipped {
            summary.push_str(&format!("skip: {}\n", s.reason));
        }
        summary.push_str(&format!(
            "sctp port {} max-message-size {}\nufrag {} chars, pwd {} chars\n",
            offer.sctp.port,
            offer.sctp.max_message_size,
            offer.ice.ufrag().len(),
            offer.ice.pwd().len()
        ));
        insta::assert_snapshot!(format!("conversion_{name}"), summary);
    }
}
