//! ICE restarts on `rtc` (`spec/handshake.md` §6.1): `rtc` takes ICE credentials only through
//! SDP and forgets the selected pair as soon as a restart is applied, so each side prepares
//! its credentials, exchanges them on channel 0, and switches only once the peer surely has
//! what it needs ([`DeferredSwitch`]).

use std::time::Instant;

use oneway_connection::{Command, ConnectionEvent, StackError};
use oneway_core::ProofRole;
use oneway_core::signal::Message;

use crate::engine::RtcEngine;
use crate::negotiation::{Negotiation, ice_credentials, rtc_error};

/// An ICE restart this side has agreed to but not switched to yet (`spec/handshake.md` §6.1).
/// Switching restarts `rtc`'s ICE agent, which drops the selected pair until new checks
/// succeed: nothing this side sends gets out meanwhile, so an `ice-restart-answer` lost on the
/// way could never be retransmitted, and the peer would never learn the new credentials (the
/// connection then dies with `consent-lost`, and every message in flight with it). So the switch
/// waits until the peer surely has what it needs:
///
/// - a responder (either role), once channel 0 has nothing unacknowledged: its answer arrived;
/// - a listener (either way), on the first check that uses the dialer's new credentials: the
///   dialer checks with them only once it has switched itself (an initiating webrtc-rs dialer
///   switches on the answer, and its acknowledgement may not get out after that).
#[derive(Debug)]
pub(crate) struct DeferredSwitch {
    /// The peer's credentials after the restart.
    pub(crate) ufrag: String,
    /// See `ufrag`.
    pub(crate) pwd: String,
    /// Switch on the first check carrying `ufrag` (listener).
    pub(crate) on_check: bool,
    /// Switch once channel 0 is acknowledged (responder).
    pub(crate) on_ack: bool,
}

impl RtcEngine {
    /// The peer asks for an ICE restart with its new credentials `(ufrag, pwd)`.
    pub(crate) fn on_ice_restart(&mut self, now: Instant, ufrag: String, pwd: String) {
        // Answer now, switch once the peer surely has the answer (`DeferredSwitch`).
        // A dialer whose own restart is running (both sides started one) answers with
        // the credentials it already offered, so the listener learns one set from both
        // messages, and whichever of answer and acknowledgement comes first switches.
        let staged = match (&self.negotiation, &self.staged_offer) {
            (Negotiation::Dialer { .. }, Some(offer)) => ice_credentials(&offer.sdp),
            _ => None,
        };
        let mine = match staged {
            Some(creds) => Ok(creds),
            None => self.prepare_restart(),
        };
        let answered = mine.map(|(mine_ufrag, mine_pwd)| {
            self.send_control(
                now,
                &Message::IceRestartAnswer {
                    ufrag: mine_ufrag,
                    pwd: mine_pwd,
                },
            );
            self.flush_writes(now);
            self.deferred = Some(DeferredSwitch {
                ufrag,
                pwd,
                on_check: self.role == ProofRole::Listener,
                on_ack: true,
            });
        });
        match answered {
            Ok(()) => {
                let _ = self.events.send(ConnectionEvent::IceRestarted);
            }
            Err(e) => self.send_control(
                now,
                &Message::Error {
                    code: "ice-restart-failed".to_owned(),
                    reason: e.to_string(),
                },
            ),
        }
    }

    /// The peer answered our ICE restart with its credentials `(ufrag, pwd)`.
    pub(crate) fn on_ice_restart_answer(&mut self, now: Instant, ufrag: String, pwd: String) {
        match self.restart.take() {
            // The listener's ICE agent is switched when the dialer checks with its new
            // credentials (`DeferredSwitch`); the restart is agreed now.
            Some(reply) if self.role == ProofRole::Listener => {
                self.deferred = Some(DeferredSwitch {
                    ufrag,
                    pwd,
                    on_check: true,
                    on_ack: false,
                });
                let _ = self.events.send(ConnectionEvent::IceRestarted);
                let _ = reply.send(Ok(()));
            }
            // Both sides started a restart and ours was switched to already, on the
            // acknowledgement of our answer to theirs (same credentials): done.
            Some(reply) if self.staged_offer.is_none() => {
                let _ = reply.send(Ok(()));
            }
            Some(reply) => {
                // A switch deferred for the peer's restart is this one (same credentials).
                self.deferred = None;
                let result = self.apply_restart(now, &ufrag, &pwd);
                if result.is_ok() {
                    let _ = self.events.send(ConnectionEvent::IceRestarted);
                }
                let _ = reply.send(result.map_err(|e| e.to_string()));
                if let Some(reply) = self.queued_restart.take() {
                    self.command(now, Command::IceRestart { reply });
                }
            }
            None => tracing::warn!("ice-restart-answer without a restart"),
        }
    }

    /// Switches to the credentials of a deferred restart (see [`DeferredSwitch`]), then starts
    /// a restart the application queued meanwhile.
    pub(crate) fn switch_deferred(&mut self, now: Instant) {
        let Some(DeferredSwitch { ufrag, pwd, .. }) = self.deferred.take() else {
            return;
        };
        tracing::debug!(role = ?self.role, "switching to the restarted ICE credentials");
        if let Err(e) = self.apply_restart(now, &ufrag, &pwd) {
            tracing::warn!(error = %e, "ICE restart could not be applied");
        }
        if let Some(reply) = self.queued_restart.take() {
            self.command(now, Command::IceRestart { reply });
        }
    }

    /// First half of an ICE restart (`spec/handshake.md` §6.1), on either side: the
    /// credentials to send in `ice-restart` or `ice-restart-answer`. A dialer stages a new offer
    /// with fresh credentials (staging has no effect yet); a listener keeps its credentials
    /// (they are bound to the token, and it answers the dialer's new offer).
    ///
    /// `rtc` forgets the selected pair as soon as a restart is applied, so the messages must
    /// have arrived before [`RtcEngine::apply_restart`]: the responder sends its answer and switches
    /// later ([`DeferredSwitch`]); an initiating dialer applies when the answer arrives.
    pub(crate) fn prepare_restart(&mut self) -> Result<(String, String), StackError> {
        match &self.negotiation {
            Negotiation::Dialer { token } if token.profile != oneway_token::Profile::Native => {
                // The listener (a browser) chose our credentials; new ones would need its
                // offer, which only SDP renegotiation carries.
                Err(StackError::Config(
                    "ice-restart is not supported with a dialer-identity token".to_owned(),
                ))
            }
            Negotiation::Dialer { .. } => {
                self.pc.restart_ice();
                let offer = self
                    .pc
                    .create_offer(None)
                    .map_err(rtc_error("ICE-restart offer"))?;
                let creds = ice_credentials(&offer.sdp).ok_or_else(|| {
                    StackError::Rtc("ICE-restart offer without credentials".to_owned())
                })?;
                self.staged_offer = Some(offer);
                Ok(creds)
            }
            Negotiation::Listener { local_ice, .. } => Ok(local_ice.clone()),
        }
    }

    /// Second half: switch to the peer's new credentials `(ufrag, pwd)`.
    fn apply_restart(&mut self, now: Instant, ufrag: &str, pwd: &str) -> Result<(), StackError> {
        match &self.negotiation {
            Negotiation::Dialer { .. } => {
                let offer = self
                    .staged_offer
                    .take()
                    .ok_or_else(|| StackError::Rtc("no staged ICE-restart offer".to_owned()))?;
                self.pc
                    .set_local_description(now, offer)
                    .map_err(rtc_error("ICE-restart local description"))?;
                self.set_token_answer(now, Some((ufrag, pwd)))
            }
            Negotiation::Listener { .. } => self.answer_implied_offer(now, ufrag, pwd),
        }
    }
}
