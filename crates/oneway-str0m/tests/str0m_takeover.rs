//! What str0m 0.25's SDP API does after a Direct-API start, on its own (no oneway engine, no
//! network): the findings behind `oneway_str0m::media` (issue 20).

use std::time::Instant;

use oneway_str0m::media::ImpliedOffer;
use str0m::change::SdpOffer;
use str0m::channel::ChannelConfig;
use str0m::media::{Direction, MediaKind};
use str0m::{IceCreds, Rtc};

const PEER_UFRAG: &str = "peerufrag";
const PEER_PWD: &str = "peerpwdpeerpwdpeerpwdpw";
const PEER_FP: [u8; 32] = [0x11; 32];

/// An `Rtc` started like the oneway dialer: Direct API, DTLS client, SCTP client, channel 0.
fn direct_dialer() -> Rtc {
    let mut rtc = Rtc::builder()
        .set_local_ice_credentials(IceCreds {
            ufrag: "localufrag".to_owned(),
            pass: "localpwdlocalpwdlocalpw".to_owned(),
        })
        .build(Instant::now());
    let mut api = rtc.direct_api();
    api.set_ice_controlling(true);
    api.set_remote_ice_credentials(IceCreds {
        ufrag: PEER_UFRAG.to_owned(),
        pass: PEER_PWD.to_owned(),
    });
    api.set_remote_fingerprint(str0m::config::Fingerprint {
        hash_func: "sha-256".to_owned(),
        bytes: PEER_FP.to_vec(),
    });
    api.start_dtls(true).expect("DTLS");
    api.start_sctp(true);
    api.create_data_channel(ChannelConfig {
        label: "oneway".to_owned(),
        negotiated: Some(0),
        ..Default::default()
    });
    rtc
}

/// The implied offer of the peer of `direct_dialer`, with these credentials and certificate.
fn implied_offer(ufrag: &str, fingerprint: &[u8]) -> String {
    ImpliedOffer {
        mid: "0",
        ufrag,
        pwd: PEER_PWD,
        fingerprint,
        peer_active: false,
        snap_init: None,
    }
    .sdp()
}

fn take_over(rtc: &mut Rtc) {
    let sdp = implied_offer(PEER_UFRAG, &PEER_FP);
    let offer = SdpOffer::from_sdp_string(&sdp).expect("implied offer parses");
    rtc.sdp_api()
        .accept_offer(offer)
        .expect("str0m accepts the implied offer");
}

fn offer_audio(rtc: &mut Rtc) -> String {
    let mut api = rtc.sdp_api();
    api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, _pending) = api.apply().expect("adding media needs an offer");
    offer.to_sdp_string()
}

fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("m="))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect()
}

#[test]
fn without_the_take_over_str0m_offers_no_application_line() {
    // The Direct API never sets the session's application line (str0m `change/direct.rs` has
    // no setter; `Session::app` is set only from SDP), and `as_sdp` writes it only when set.
    let mut rtc = direct_dialer();
    let sdp = offer_audio(&mut rtc);
    assert_eq!(m_lines(&sdp), ["audio"], "{sdp}");
}

#[test]
fn after_the_take_over_str0m_offers_the_application_line_first() {
    let mut rtc = direct_dialer();
    take_over(&mut rtc);
    let sdp = offer_audio(&mut rtc);
    assert_eq!(m_lines(&sdp), ["application", "audio"], "{sdp}");
    assert!(sdp.contains("a=mid:0\r\n"), "{sdp}");
    assert!(
        sdp.contains("a=ice-ufrag:localufrag\r\n"),
        "same credentials: {sdp}"
    );
}

#[test]
fn str0m_takes_other_ice_credentials_as_a_restart_with_new_local_ones() {
    // `add_ice_details` (str0m `change/sdp.rs`): remote credentials that differ from the
    // running ones are an ICE restart, answered with fresh random local credentials, which a
    // oneway listener must never take (its ufrag routes checks, `spec/handshake.md` §4.3).
    let mut rtc = direct_dialer();
    take_over(&mut rtc);
    let sdp = implied_offer("otherufrag", &PEER_FP);
    let answer = rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).expect("parses"))
        .expect("str0m accepts it")
        .to_sdp_string();
    assert!(!answer.contains("a=ice-ufrag:localufrag"), "{answer}");
}

#[test]
fn str0m_ignores_another_fingerprint_once_it_has_one() {
    // `accept_offer` reads `a=fingerprint` only while it has no remote fingerprint.
    let mut rtc = direct_dialer();
    take_over(&mut rtc);
    let sdp = implied_offer(PEER_UFRAG, &[0x22; 32]);
    rtc.sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).expect("parses"))
        .expect("str0m accepts another fingerprint without a word");
}

#[test]
fn a_peer_that_took_over_mismatches_an_offer_without_the_application_line() {
    // The offer of a side that did not take over puts audio at index 0, where the peer holds
    // its application line: str0m matches the application line by index only (`sync_medias`)
    // and adds the audio at index 0 too, so its answer has two m-lines for the offer's one.
    let mut offerer = direct_dialer();
    let sdp = offer_audio(&mut offerer);
    let mut answerer = direct_dialer();
    take_over(&mut answerer);
    let result = answerer
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(&sdp).expect("parses"))
        .map(|a| a.to_sdp_string());
    let answer = result.expect("str0m answers");
    assert_ne!(m_lines(&answer).len(), m_lines(&sdp).len(), "{answer}");
}
