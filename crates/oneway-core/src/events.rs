//! The `--json` event lines every peer prints (`spec/peer-contract.md`): one JSON object per
//! line on standard output, each with `event` and `t_ms` (milliseconds since the process
//! started its attempt). The scenario runner reads these from every implementation.
//!
//! The spec defines every event and field (`spec/peer-contract.md` §2.1, §2.2); the test
//! `spec_tables_match_the_event_type` below fails when this type and those tables differ.

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
        /// Milliseconds of start-up before the clock started (a browser launch), if any.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        startup_ms: Option<f64>,
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
        /// How the connection came up: `one-way` (the dialer's checks reached a candidate of
        /// the token) or `reply` (after the listener took the dialer's reply code and punched
        /// towards it, `spec/handshake.md` §11). Absent when the peer cannot tell.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        route: Option<String>,
    },
    /// Dialer: its reply code is ready, to give to the listener's user if the listener cannot
    /// be reached directly (`spec/handshake.md` §11); the one-way attempt goes on meanwhile.
    ReplyCode {
        /// Milliseconds since start.
        t_ms: f64,
        /// The reply code (`owr2.…`, `spec/token.md` §12.2; `owr1.…` from a browser dialer of a
        /// browser listener, §12.1).
        reply: String,
        /// The dialer candidates it carries, as `type transport address:port`.
        candidates: Vec<String>,
    },
    /// Listener: it took a reply code and checks towards the dialer's candidates.
    ReplyAccepted {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer's ICE ufrag the code names.
        dialer: String,
        /// The dialer candidates it checks towards, as `type transport address:port`.
        candidates: Vec<String>,
    },
    /// Listener: it refused a reply code and changed nothing; `code` is a stable cause.
    ReplyRefused {
        /// Milliseconds since start.
        t_ms: f64,
        /// Stable cause code (`spec/token.md` §12.3, `spec/handshake.md` §11).
        code: String,
        /// Details.
        reason: String,
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
    /// A remote media track's statistics (about once a second while its RTP arrives,
    /// `spec/handshake.md` §6.2): packets received and, for Opus audio, the decoded tone; for
    /// VP8 video, frames, key frames and the resolution.
    Media {
        /// Milliseconds since start.
        t_ms: f64,
        /// The dialer, on a listener.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        peer: Option<String>,
        /// The remote track's id.
        track: String,
        /// `audio` or `video`.
        kind: String,
        /// RTP packets received on the track so far.
        packets: u64,
        /// The decoded audio's dominant frequency in Hz (rounded), once 0.5 s is decoded.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        frequency_hz: Option<u32>,
        /// Video: frames received whole so far (absent for audio).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        frames: Option<u64>,
        /// Video: key frames among them whose VP8 header checked out (absent for audio).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        keyframes: Option<u64>,
        /// Video: the width in pixels of the last key frame (absent for audio, or before one).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        width: Option<u16>,
        /// Video: the height in pixels of the last key frame (absent for audio, or before one).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        height: Option<u16>,
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
            route: None,
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

    /// One instance of every variant, each optional field present. The exhaustive `match`
    /// in `variant_name` makes a new variant a compile error here until it has a sample.
    fn samples() -> Vec<PeerEvent> {
        let peer = Some("10.0.0.2:5000".to_owned());
        let s = |v: &str| v.to_owned();
        vec![
            PeerEvent::Token {
                t_ms: 1.0,
                stack: s("x"),
                token: s("ow1.x"),
                candidates: vec![s("host udp 10.0.0.1:5000")],
            },
            PeerEvent::Mapped {
                t_ms: 1.0,
                protocol: s("pcp"),
                external: s("1.2.3.4:5"),
                internal: s("10.0.0.1:5"),
                lifetime_s: 7200,
                gateway: s("10.0.0.254"),
            },
            PeerEvent::MappingFailed {
                t_ms: 1.0,
                code: s("no-gateway"),
                reason: s("r"),
            },
            PeerEvent::Reachability {
                t_ms: 1.0,
                scope: s("internet"),
                via: s("mapping"),
                reason: s("mapped"),
                sentence: s("s"),
            },
            PeerEvent::Dialing {
                t_ms: 1.0,
                stack: s("x"),
                candidates: vec![],
                startup_ms: Some(2.0),
            },
            PeerEvent::CandidateTried {
                t_ms: 1.0,
                remote: s("10.0.0.1:5000"),
            },
            PeerEvent::IceConnected {
                t_ms: 1.0,
                peer: peer.clone(),
            },
            PeerEvent::DtlsConnected {
                t_ms: 1.0,
                peer: peer.clone(),
            },
            PeerEvent::ChannelOpen {
                t_ms: 1.0,
                peer: peer.clone(),
            },
            PeerEvent::Connected {
                t_ms: 1.0,
                peer: peer.clone(),
                selected: Some(SelectedPair {
                    local: s("a"),
                    remote: s("b"),
                }),
                stages: StageTimes::default(),
                route: Some(s("reply")),
            },
            PeerEvent::ReplyCode {
                t_ms: 1.0,
                reply: s("owr2.x"),
                candidates: vec![s("srflx udp 1.2.3.4:5")],
            },
            PeerEvent::ReplyAccepted {
                t_ms: 1.0,
                dialer: s("abcd"),
                candidates: vec![s("srflx udp 1.2.3.4:5")],
            },
            PeerEvent::ReplyRefused {
                t_ms: 1.0,
                code: s("reply-replayed"),
                reason: s("r"),
            },
            PeerEvent::FirstEcho {
                t_ms: 1.0,
                rtt_ms: 0.5,
            },
            PeerEvent::Refused {
                t_ms: 1.0,
                peer: peer.clone(),
                code: s("ice-timeout"),
                reason: s("r"),
            },
            // Every field, optional ones included (an audio line has `frequency_hz`, a video
            // line the frame fields), so the spec's field list is checked in full.
            PeerEvent::Media {
                t_ms: 1.0,
                peer: peer.clone(),
                track: s("t"),
                kind: s("video"),
                packets: 50,
                frequency_hz: Some(440),
                frames: Some(30),
                keyframes: Some(1),
                width: Some(320),
                height: Some(240),
            },
            PeerEvent::Closed {
                t_ms: 1.0,
                peer,
                code: s("closed-by-peer"),
            },
            PeerEvent::Error {
                t_ms: 1.0,
                code: s("bind"),
                message: s("m"),
            },
        ]
    }

    fn variant_name(e: &PeerEvent) -> &'static str {
        match e {
            PeerEvent::Token { .. } => "token",
            PeerEvent::Mapped { .. } => "mapped",
            PeerEvent::MappingFailed { .. } => "mapping-failed",
            PeerEvent::Reachability { .. } => "reachability",
            PeerEvent::Dialing { .. } => "dialing",
            PeerEvent::CandidateTried { .. } => "candidate-tried",
            PeerEvent::IceConnected { .. } => "ice-connected",
            PeerEvent::DtlsConnected { .. } => "dtls-connected",
            PeerEvent::ChannelOpen { .. } => "channel-open",
            PeerEvent::Connected { .. } => "connected",
            PeerEvent::ReplyCode { .. } => "reply-code",
            PeerEvent::ReplyAccepted { .. } => "reply-accepted",
            PeerEvent::ReplyRefused { .. } => "reply-refused",
            PeerEvent::FirstEcho { .. } => "first-echo",
            PeerEvent::Refused { .. } => "refused",
            PeerEvent::Media { .. } => "media",
            PeerEvent::Closed { .. } => "closed",
            PeerEvent::Error { .. } => "error",
        }
    }

    /// The rows of the first Markdown table after `heading` in `text`, as cells.
    fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
        let start = text
            .find(heading)
            .unwrap_or_else(|| panic!("spec has no {heading}"));
        text[start..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // header and separator
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_owned())
                    .collect()
            })
            .collect()
    }

    /// The names between backticks in a table cell (`a`, *`b`* → a, b).
    fn backticked(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// The JSON keys of a value, with nested objects' keys as `outer.inner`.
    fn keys(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        if let Some(map) = value.as_object() {
            for (k, v) in map {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&name, v, out);
                out.push(name);
            }
        }
    }

    /// `spec/peer-contract.md` §2.1 (events and their fields) and §2.2 (field definitions)
    /// describe exactly this type: same event names, same fields per event, every field
    /// (nested ones included) defined, and no definition of a field no event has.
    #[test]
    fn spec_tables_match_the_event_type() {
        let spec = include_str!("../../../spec/peer-contract.md");
        let events = table_after(spec, "### 2.1 Event types");
        let fields = table_after(spec, "### 2.2 Fields");
        let samples = samples();
        let mut spec_names: Vec<String> = events
            .iter()
            .map(|r| backticked(&r[0])[0].clone())
            .collect();
        let mut code_names: Vec<String> =
            samples.iter().map(|e| variant_name(e).to_owned()).collect();
        spec_names.sort();
        code_names.sort();
        assert_eq!(
            spec_names, code_names,
            "event types: spec §2.1 vs PeerEvent"
        );

        let defined: Vec<String> = fields
            .iter()
            .map(|r| backticked(&r[0])[0].clone())
            .collect();
        let mut used = vec!["event".to_owned(), "t_ms".to_owned()];
        for sample in &samples {
            let name = variant_name(sample);
            let json = serde_json::to_value(sample).expect("serializes");
            let mut all = Vec::new();
            keys("", &json, &mut all);
            let mut top: Vec<String> = json
                .as_object()
                .expect("object")
                .keys()
                .filter(|k| *k != "event" && *k != "t_ms")
                .cloned()
                .collect();
            let row = events
                .iter()
                .find(|r| backticked(&r[0])[0] == name)
                .expect("row");
            let mut listed = backticked(&row[2]);
            top.sort();
            listed.sort();
            assert_eq!(listed, top, "fields of `{name}`: spec §2.1 vs PeerEvent");
            for key in all {
                assert!(
                    defined.contains(&key),
                    "field `{key}` of `{name}` is not defined in spec §2.2"
                );
                if !used.contains(&key) {
                    used.push(key);
                }
            }
        }
        for field in &defined {
            assert!(
                used.contains(field),
                "spec §2.2 defines `{field}`, which no event has"
            );
        }
    }
}
