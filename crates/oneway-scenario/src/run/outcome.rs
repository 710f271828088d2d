//! From the peers' events to the record and the outcome: stage times, checks tried, the path
//! each end reports and its classification.

use std::collections::HashMap;
use std::net::IpAddr;

use oneway_core::PeerEvent;

use crate::topology::Layout;
use crate::verdict::Outcome;

use super::wait::Logs;
use super::{PathEnd, RunRecord, Runner, Tried};

impl Runner<'_> {
    /// Reads both peers' events into the record and decides the outcome.
    pub(super) fn outcome(
        &self,
        record: &mut RunRecord,
        logs: &Logs,
        code: Option<i64>,
        layout: Option<&Layout>,
    ) -> Outcome {
        let dialer_events: Vec<PeerEvent> = logs
            .dialer
            .lines()
            .filter_map(|l| l.strip_prefix("out| "))
            .filter_map(PeerEvent::parse_line)
            .collect();
        let listener_events: Vec<PeerEvent> = logs
            .listener
            .lines()
            .filter_map(|l| l.strip_prefix("out| "))
            .filter_map(PeerEvent::parse_line)
            .collect();
        for line in logs
            .listener
            .lines()
            .filter_map(|l| l.strip_prefix("out| "))
        {
            if record.reachability.is_none() {
                record.reachability = crate::prediction::parse_reachability(line);
            }
            if record.mapping.is_none() {
                record.mapping = crate::prediction::parse_mapping(line);
            }
        }
        let mut kinds = candidate_kinds(&record.candidates);
        // A remote that is the listener's port mapping (not a pinhole, whose external address
        // is its host address) is a `mapped` path, whatever type the token or the dialer gives
        // it (`srflx`-like in the token, `prflx` when the dialer learned it from a check).
        let mapped = record
            .mapping
            .as_ref()
            .filter(|m| !m.is_pinhole())
            .and_then(|m| m.external.clone());
        if let Some(external) = &mapped {
            kinds.insert(external.clone(), "mapped".to_owned());
        }
        let mut refused = None;
        let mut connected = false;
        let mut echoed = false;
        for e in &dialer_events {
            match e {
                PeerEvent::Dialing { t_ms, .. } => record.stages.decoded = Some(*t_ms),
                PeerEvent::CandidateTried { t_ms, remote } => record.tried.push(Tried {
                    t_ms: *t_ms,
                    remote: remote.clone(),
                    kind: kinds
                        .get(remote)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into()),
                }),
                PeerEvent::Connected {
                    selected, stages, ..
                } => {
                    connected = true;
                    record.stages.first_check = stages.first_check;
                    record.stages.ice = stages.ice;
                    record.stages.dtls = stages.dtls;
                    record.stages.channel = stages.channel;
                    record.stages.auth = stages.auth;
                    if let Some(s) = selected {
                        record.dialer_path = Some(classify(
                            &s.local,
                            &s.remote,
                            kinds.get(&s.remote).map(String::as_str),
                            layout,
                            "dialer",
                        ));
                    }
                }
                PeerEvent::FirstEcho { t_ms, rtt_ms, .. } => {
                    echoed = true;
                    record.stages.first_echo = Some(*t_ms);
                    record.rtt_ms = Some(*rtt_ms);
                }
                PeerEvent::Refused { code, .. } | PeerEvent::Error { code, .. } => {
                    refused = Some(code.clone());
                }
                _ => {}
            }
        }
        let mut listener_saw_dialer = false;
        for e in &listener_events {
            match e {
                PeerEvent::Connected {
                    selected: Some(s), ..
                } => {
                    listener_saw_dialer = true;
                    record.listener_path =
                        Some(classify(&s.local, &s.remote, None, layout, "listener"));
                }
                PeerEvent::IceConnected { .. }
                | PeerEvent::DtlsConnected { .. }
                | PeerEvent::ChannelOpen { .. }
                | PeerEvent::Refused { .. }
                | PeerEvent::Closed { .. } => listener_saw_dialer = true,
                _ => {}
            }
        }
        // Fallback: how long after the first check the winning remote was first tried.
        if let (Some(first), Some(path)) = (record.tried.first(), &record.dialer_path)
            && let Some(win) = record.tried.iter().find(|t| t.remote == path.remote)
            && win.remote != first.remote
        {
            record.fallback_ms = Some(win.t_ms - first.t_ms);
        }
        if connected && echoed && code == Some(0) {
            let path = record
                .dialer_path
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), PathEnd::path_type);
            return Outcome::Connected { path };
        }
        let stopped_early = record.stopped_early.is_some();
        let mut cause = refused.unwrap_or_else(|| match code {
            // The dialer was still retrying checks nobody answers: what it reports when its
            // own timeout ends.
            None if stopped_early => "ice-timeout".to_owned(),
            Some(c) => format!("exit-{c}"),
            None => "dialer-hung".to_owned(),
        });
        if cause == "ice-timeout" && !listener_saw_dialer {
            cause = match layout.and_then(|l| l.listener_block.as_deref()) {
                Some(block) => format!("listener-unreachable: {block}"),
                None => "listener-unreachable".to_owned(),
            };
        }
        Outcome::Failed { cause }
    }
}

/// `ip:port` → candidate type, from the token event's `"type transport ip:port"` strings.
fn candidate_kinds(candidates: &[String]) -> HashMap<String, String> {
    candidates
        .iter()
        .filter_map(|c| {
            let mut parts = c.split_whitespace();
            let kind = parts.next()?;
            let _transport = parts.next()?;
            let addr = parts.next()?;
            Some((addr.to_owned(), kind.to_owned()))
        })
        .collect()
}

pub(super) fn candidate_ip(candidate: &str) -> Option<String> {
    let addr = candidate.split_whitespace().nth(2)?;
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    Some(sock.ip().to_string())
}

/// Classifies a pair reported by `end` (`dialer` or `listener`): `local_ip:port` is the end's
/// own socket, `remote` the other end; `remote_kind` is the type when the remote is a token
/// candidate.
pub(super) fn classify(
    local: &str,
    remote: &str,
    remote_kind: Option<&str>,
    layout: Option<&Layout>,
    end: &str,
) -> PathEnd {
    let ip_of = |a: &str| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip());
    // The remote's family, or the local one's when the remote is hidden (Chromium reports a
    // peer-reflexive remote as `(hidden):port`).
    let family = match ip_of(remote).or_else(|| ip_of(local)) {
        Some(IpAddr::V6(_)) => "ipv6",
        _ => "ipv4",
    };
    let own_host = |addr: &str| -> bool {
        let Some(ip) = ip_of(addr) else { return false };
        if ip.is_loopback() {
            return true;
        }
        layout
            .and_then(|l| l.owner_of(&ip.to_string()))
            .is_some_and(|n| n.key == end)
    };
    let other = if end == "dialer" {
        "listener"
    } else {
        "dialer"
    };
    let remote_type = match remote_kind {
        Some(k) => k.to_owned(),
        None => {
            let Some(ip) = ip_of(remote) else {
                return PathEnd {
                    local: local.into(),
                    remote: remote.into(),
                    local_type: if own_host(local) { "host" } else { "unknown" }.into(),
                    remote_type: "unknown".into(),
                    family: family.into(),
                };
            };
            let owner = layout.and_then(|l| l.owner_of(&ip.to_string()));
            match owner {
                Some(n) if n.key == other => "host".into(),
                Some(n) if n.key == "stun" => "relay".into(),
                Some(_) => "prflx".into(),
                None if ip.is_loopback() => "host".into(),
                None => "prflx".into(),
            }
        }
    };
    // The end's own relayed address (a TURN allocation on coturn) is its relay candidate.
    let own_relay = ip_of(local)
        .and_then(|ip| layout.and_then(|l| l.owner_of(&ip.to_string())))
        .is_some_and(|n| n.key == "stun");
    let local_type = if own_host(local) {
        "host"
    } else if own_relay {
        "relay"
    } else {
        "unknown"
    };
    PathEnd {
        local: local.into(),
        remote: remote.into(),
        local_type: local_type.into(),
        remote_type,
        family: family.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_local_address_makes_the_path_relay() {
        let end = |local: &str, remote: &str| PathEnd {
            local: "10.0.0.2:1".into(),
            remote: "198.51.100.10:2".into(),
            local_type: local.into(),
            remote_type: remote.into(),
            family: "ipv4".into(),
        };
        assert_eq!(end("relay", "host").path_type(), "relay");
        assert_eq!(end("host", "relay").path_type(), "relay");
        assert_eq!(end("host", "srflx").path_type(), "srflx");
    }

    #[test]
    fn candidate_strings_map_to_kinds() {
        let k = candidate_kinds(&[
            "host udp 10.2.0.10:5000".into(),
            "srflx udp 198.51.100.2:5000".into(),
        ]);
        assert_eq!(k["198.51.100.2:5000"], "srflx");
        assert_eq!(
            candidate_ip("host udp [2001:db8:1::10]:7").as_deref(),
            Some("2001:db8:1::10")
        );
    }
}
