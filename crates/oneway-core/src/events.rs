//! The `--json` event lines every peer prints (`spec/peer-contract.md`): one JSON object per
//! line on standard output, each with `event` and `t_ms` (milliseconds since the process
//! started its attempt). The scenario runner reads these from every implementation.

use serde::{Deserialize, Serialize};

/// Stage times of one connection, in milliseconds since its start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    /// First connectivity check sent (dialer) or received (listener).
    pub first_check: Option<f64>,
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// Channel 0 open (SCTP up).
    pub channel: Option<f64>,
    /// Both proofs verified.
    pub auth: Option<f64>,
}

/// The candidate pair carrying the connection, as one end sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectedPair {
    /// Local `ip:port`.
    pub local: String,
    /// Remote `ip:port`.
    pub remote: String,
}

/// One event line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PeerEvent {
    /// Listener: the token is ready to publish.
    Token {
        /// Milliseconds since start.
        t_ms: f64,
        /// Implementation (`str0m`, `webrtc-rs`, `browser`, …).
        stack: String,
        /// Compact text form.
        token: String,
        /// Candidates in fallback order, as `type transport address:port`.
        candidates: Vec<String>,
    },
    /// Listener: a router mapped a port for the listener's socket (PCP, NAT-PMP or UPnP-IGD),
    /// or renewed it; the external address is a candidate of the token.
    Mapped {
        /// Milliseconds since start.
        t_ms: f64,
        /// `pcp`, `natpmp` or `upnp`.
        protocol: String,
        /// The external `ip:port` the router forwards.
        external: String,
        /// The listener's `ip:port` it forwards to.
        internal: String,
        /// Seconds the router grants before the mapping must be renewed.
        lifetime_s: u64,
        /// The router asked.
        gateway: String,
    },
    /// Listener: port mapping failed, was refused or vanished; the other candidates keep
    /// working.
    MappingFailed {
        /// Milliseconds since start.
        t_ms: f64,
        /// Stable cause: `no-gateway`, `portmap-timeout`, `portmap-refused`,
        /// `portmap-unavailable`, `portmap-malformed`, `portmap-address-changed`,
        /// `portmap-lost`, `portmap-io`.
        code: String,
        /// Details.
        reason: String,
    },
    /// Listener: from where it can be reached, and why (printed once, after `token`).
    Reachability {
        /// Milliseconds since start.
        t_ms: f64,
        /// `internet` or `same-lan-only`.
        scope: String,
        /// `public-host`, `mapping`, `non-filtering-nat` or `none`.
        via: String,
        /// Stable reason: `public-address`, `mapped`, `nat-does-not-filter`, `nat-filters`,
        /// `firewall-filters`, `nat-filtering-unknown`, `not-public`, `no-external-address`.
        reason: String,
        /// The same in plain words.
        sentence: String,
    },
    /// Dialer: the token was decoded and checks begin.
    Dialing {
        /// Milliseconds since start.
        t_ms: f64,
        /// Implementation.
        stack: String,
        /// The token's candidates, in the order they will be tried.
        candidates: Vec<String>,
    },
    /// Dialer: the first check to a remote address was sent (in fallback order).
    CandidateTried {
        /// Milliseconds since start.
        t_ms: f64,
        /// Remote `ip:port`.
        remote: String,
    },
    /// ICE connected.
    IceConnected {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
    },
    /// DTLS connected.
    DtlsConnected {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
    },
    /// Channel 0 is open.
    ChannelOpen {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
    },
    /// Both in-band proofs verified: the connection is up.
    Connected {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
        /// The selected pair, as this end sees it.
        selected: Option<SelectedPair>,
        /// Stage times of this connection (relative to its own start).
        stages: StageTimes,
    },
    /// Dialer: the probe message came back.
    FirstEcho {
        /// Milliseconds since start.
        t_ms: f64,
        /// Round trip of the probe.
        rtt_ms: f64,
    },
    /// A dialer was refused, or a dial failed; `code` is a stable cause.
    Refused {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
        /// Stable cause code.
        code: String,
        /// Details.
        reason: String,
    },
    /// A connection ended.
    Closed {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
        /// Stable cause code.
        code: String,
    },
    /// The peer failed as a whole (setup, bad token); it exits after this.
    Error {
        /// Milliseconds since start.
        t_ms: f64,
        /// Stable cause code.
        code: String,
        /// Details.
        message: String,
    },
}

impl PeerEvent {
    /// The line to print.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses one output line; `None` for lines that are not events (logs, blank lines).
    pub fn parse_line(line: &str) -> Option<PeerEvent> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_are_tagged() {
        let e = PeerEvent::Connected {
            t_ms: 12.5,
            peer: None,
            selected: Some(SelectedPair {
                local: "10.1.0.2:5000".into(),
                remote: "10.2.0.2:6000".into(),
            }),
            stages: StageTimes {
                ice: Some(3.0),
                ..Default::default()
            },
        };
        let line = e.to_line();
        assert!(
            line.starts_with(r#"{"event":"connected","t_ms":12.5,"selected""#),
            "{line}"
        );
        assert_eq!(PeerEvent::parse_line(&line), Some(e));
        assert_eq!(PeerEvent::parse_line("2026-11-24 INFO something"), None);
        assert_eq!(
            PeerEvent::parse_line(r#"{"event":"no-such-event","t_ms":1}"#),
            None
        );
    }
}
