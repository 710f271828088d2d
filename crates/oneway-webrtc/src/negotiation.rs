//! The SDP `rtc` negotiates with, synthesized from the token (`spec/token.md` §9): the dialer
//! sets its own offer and the token's answer to it (or, with a `dialer-identity` token, the
//! listener's offer rebuilt from the token, and answers it); the listener sets the offer a
//! dialer's first check implies and answers it. In-band offers and answers
//! (`spec/handshake.md` §6.2) are [`crate::media`]'s.

use std::net::SocketAddr;
use std::time::Instant;

use oneway_connection::StackError;
use oneway_token::{SctpParams, Token};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::sdp::RTCSessionDescription;

use crate::engine::RtcEngine;

/// What a role needs to renegotiate: `rtc` takes ICE credentials only through SDP.
pub(crate) enum Negotiation {
    /// The dialer answers its own offers with the token's answer (`spec/token.md` §9.2).
    Dialer {
        /// The token dialed.
        token: Box<Token>,
    },
    /// The listener sets the offer a dialer's credentials imply, and answers it.
    Listener {
        /// The dialer's address (its implied host candidate).
        remote: SocketAddr,
        /// The listener's SCTP parameters.
        sctp: SctpParams,
        /// The listener's ICE credentials (the composed ufrag and the listener pwd). They stay
        /// the same across an ICE restart (see `spec/handshake.md` §6.1).
        local_ice: (String, String),
    },
}

/// The media engine both roles use: `rtc`'s default codecs, so that an in-band `offer` adding
/// audio or video (`spec/handshake.md` §6.2) gets an answer that accepts it.
pub(crate) fn media_engine() -> Result<MediaEngine, StackError> {
    let mut engine = MediaEngine::default();
    engine
        .register_default_codecs()
        .map_err(rtc_error("media codecs"))?;
    Ok(engine)
}

/// Turns an `rtc` error into a setup error naming `context`.
pub(crate) fn rtc_error(context: &str) -> impl FnOnce(rtc::shared::error::Error) -> StackError {
    move |e| StackError::Rtc(format!("{context}: {e}"))
}

/// `(ufrag, pwd)` from an SDP's first `a=ice-ufrag`/`a=ice-pwd` lines.
pub(crate) fn ice_credentials(sdp: &str) -> Option<(String, String)> {
    let find = |key: &str| {
        sdp.lines()
            .find_map(|l| l.trim_end().strip_prefix(key))
            .map(str::to_owned)
    };
    Some((find("a=ice-ufrag:")?, find("a=ice-pwd:")?))
}

impl RtcEngine {
    /// Adds a local candidate (a socket the driver reads).
    pub(crate) fn add_local_candidate(
        &mut self,
        init: rtc::peer_connection::transport::RTCIceCandidateInit,
    ) -> Result<(), StackError> {
        self.pc
            .add_local_candidate(init)
            .map_err(rtc_error("local candidate"))
    }

    /// Dialer: the initial negotiation. Sets the local offer, the local candidates and the
    /// token's answer (`spec/token.md` §9.2), which starts the ICE checks. With a
    /// `dialer-identity` token, sets the listener's offer rebuilt from the token and answers it
    /// instead (`spec/handshake.md` §10.2).
    pub(crate) fn start_dialer(
        &mut self,
        now: Instant,
        locals: Vec<rtc::peer_connection::transport::RTCIceCandidateInit>,
    ) -> Result<(), StackError> {
        if let Negotiation::Dialer { token } = &self.negotiation
            && token.profile != oneway_token::Profile::Native
        {
            let offer = token
                .listener_offer()
                .map_err(|e| StackError::Config(format!("listener offer: {e}")))?;
            let offer =
                RTCSessionDescription::offer(offer.sdp).map_err(rtc_error("listener offer"))?;
            self.pc
                .set_remote_description(now, offer)
                .map_err(rtc_error("listener offer"))?;
            let answer = self.pc.create_answer(None).map_err(rtc_error("answer"))?;
            self.pc
                .set_local_description(now, answer)
                .map_err(rtc_error("local answer"))?;
            for init in locals {
                self.add_local_candidate(init)?;
            }
            return self.add_local_candidate(Default::default());
        }
        let offer = self.pc.create_offer(None).map_err(rtc_error("offer"))?;
        self.pc
            .set_local_description(now, offer)
            .map_err(rtc_error("local description"))?;
        for init in locals {
            self.add_local_candidate(init)?;
        }
        // End of candidates: gathering is complete.
        self.add_local_candidate(Default::default())?;
        self.set_token_answer(now, None)
    }

    /// Dialer: sets the token's answer to the current local offer, with `listener_ice` in place
    /// of the derived credentials after a restart.
    pub(crate) fn set_token_answer(
        &mut self,
        now: Instant,
        listener_ice: Option<(&str, &str)>,
    ) -> Result<(), StackError> {
        let Negotiation::Dialer { token } = &self.negotiation else {
            return Err(StackError::Config("not a dialer".to_owned()));
        };
        let offer = self
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| StackError::Rtc("no local description".to_owned()))?;
        let answer = token
            .native_answer_with_ice(&offer, listener_ice)
            .map_err(|e| StackError::Config(format!("token answer: {e}")))?;
        let answer = RTCSessionDescription::answer(answer.sdp).map_err(rtc_error("answer"))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(rtc_error("remote description"))
    }

    /// Listener: sets the offer the dialer's credentials imply, and answers it.
    pub(crate) fn answer_implied_offer(
        &mut self,
        now: Instant,
        dialer_ufrag: &str,
        dialer_pwd: &str,
    ) -> Result<(), StackError> {
        let Negotiation::Listener { remote, sctp, .. } = &self.negotiation else {
            return Err(StackError::Config("not a listener".to_owned()));
        };
        let offer =
            oneway_token::sdp::implied_dialer_offer(dialer_ufrag, dialer_pwd, *remote, *sctp);
        let offer = RTCSessionDescription::offer(offer).map_err(rtc_error("implied offer"))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(rtc_error("implied offer"))?;
        let answer = self.pc.create_answer(None).map_err(rtc_error("answer"))?;
        self.pc
            .set_local_description(now, answer)
            .map_err(rtc_error("local answer"))
    }
}
