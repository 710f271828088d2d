//! The dialer's side of the reply fallback on `rtc` (`spec/handshake.md` §11.2): its ICE agent
//! marks a pair failed after a few unanswered checks (`max_binding_requests`) and never checks
//! it again, even when the listener's own check later arrives from that very address (the
//! listener took the reply code and opened its NAT or firewall). So the first reply-route
//! check (`oneway_core::punch::is_punch_check`) from each address, before ICE connected, adds
//! that address again as a peer-reflexive remote candidate: a new pair, which the agent checks
//! at once, and whose check now gets through.

use std::net::SocketAddr;

use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::transport::RTCIceCandidateInit;

/// Most addresses revived per dialer (a reply code names at most 4 candidates).
const MAX_REVIVED: usize = 8;

/// The addresses already revived.
#[derive(Debug, Default)]
pub(crate) struct Revival {
    revived: Vec<SocketAddr>,
}

impl Revival {
    /// A check from `source` arrived before ICE connected: adds `source` as a peer-reflexive
    /// remote candidate once (bounded by [`MAX_REVIVED`]).
    pub(crate) fn on_listener_check(&mut self, pc: &mut RTCPeerConnection, source: SocketAddr) {
        if self.revived.contains(&source) || self.revived.len() >= MAX_REVIVED {
            return;
        }
        self.revived.push(source);
        // Priority of a peer-reflexive candidate (RFC 8445 §5.1.2.1: type preference 110).
        let priority: u32 = (110 << 24) | (65535 << 8) | 255;
        let init = RTCIceCandidateInit {
            candidate: format!(
                "candidate:reply{} 1 udp {priority} {} {} typ prflx",
                self.revived.len(),
                source.ip(),
                source.port()
            ),
            sdp_mline_index: Some(0),
            ..Default::default()
        };
        match pc.add_remote_candidate(init) {
            Ok(()) => {
                tracing::info!(%source, "a check from the listener: its address is checked again")
            }
            Err(e) => {
                tracing::debug!(%source, error = %e, "could not add the listener's address again")
            }
        }
    }
}
