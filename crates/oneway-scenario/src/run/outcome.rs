//! From the peers' events to the record and the outcome: stage times, checks tried, the path
//! each end reports and its classification.

use std::collections::HashMap;
use std::net::IpAddr;

use oneway_core::PeerEvent;

use crate::topology::Layout;
use crate::verdict::Outcome;

use super::wait::Logs;
use super::{PathEnd, ReplyAccepted, ReplyRecord, ReplyRefused, RunRecord, Runner, Tried};

impl Runner<'_> {
    /// Reads both peers' events into the record and decides the outcome.
    pub(super) fn outcome(
        &self,
        record: &mut RunRecord,
        logs: &Logs,
        code: Option<i64>,
        layout: Option<&Layout>,
    ) -> Outcome {
        let dialer_events = events(&logs.dialer);
        let listener_events = events(&logs.listener);
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
        let mut reply = record.reply.take();
        for e in &dialer_events {
            match e {
                PeerEvent::ReplyCode {
                    t_ms,
                    reply: code,
                    candidates,
                } => match &mut reply {
                    Some(r) if !r.code.is_empty() => r.ignored_codes += 1,
                    _ => {
                        let r = reply.get_or_insert_with(|| ReplyRecord {
                            hand_over: "none".into(),
                            ..ReplyRecord::default()
                        });
                        r.shown_ms = *t_ms;
                        r.code = code.clone();
                        r.candidates = candidates.clone();
                    }
                },
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
                    selected,
                    stages,
                    route,
                    ..
                } => {
                    connected = true;
                    record.dialer_route = route.clone();
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
                    selected, route, ..
                } => {
                    listener_saw_dialer = true;
                    if let Some(s) = selected {
                        record.listener_path =
                            Some(classify(&s.local, &s.remote, None, layout, "listener"));
                    }
                    if record.listener_route.is_none() {
                        record.listener_route = route.clone();
                    }
                }
                PeerEvent::ReplyAccepted {
                    t_ms,
                    dialer,
                    candidates,
                } => {
                    if let Some(r) = &mut reply
                        && r.accepted.is_none()
                    {
                        r.accepted = Some(ReplyAccepted {
                            t_ms: *t_ms,
                            dialer: dialer.clone(),
                            candidates: candidates.clone(),
                        });
                    }
                }
                PeerEvent::ReplyRefused { t_ms, code, reason } => {
                    if let Some(r) = &mut reply
                        && r.refused.is_none()
                    {
                        r.refused = Some(ReplyRefused {
                            t_ms: *t_ms,
                            code: code.clone(),
                            reason: reason.clone(),
                        });
                    }
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
        // A code that reached the listener (handed over without a failure): only then can a
        // connection have come up by the reply route.
        let handed_over = reply
            .as_ref()
            .is_some_and(|r| r.handed_over_ms.is_some() && r.hand_over_error.is_none());
        let reply_accepted = reply.as_ref().is_some_and(|r| r.accepted.is_some());
        record.reply_shown = reply.as_ref().is_some_and(|r| !r.code.is_empty());
        record.reply = reply;
        if connected && echoed && code == Some(0) {
            let path = record
                .dialer_path
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), PathEnd::path_type);
            let route = route_of(
                record.dialer_route.as_deref(),
                record.listener_route.as_deref(),
                handed_over,
            );
            record.route = Some(crate::verdict::display_route(route.as_deref(), &path));
            return Outcome::Connected { path, route };
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
            cause = unreachable_cause(
                reply_accepted,
                layout.and_then(|l| l.listener_block.as_deref()),
                layout.and_then(|l| l.reply_block.as_deref()),
            );
        }
        Outcome::Failed { cause }
    }
}

/// The event lines a peer printed on standard output (its log's `out| ` lines).
pub(super) fn events(log: &str) -> Vec<PeerEvent> {
    log.lines()
        .filter_map(|l| l.strip_prefix("out| "))
        .filter_map(PeerEvent::parse_line)
        .collect()
}

/// The route of a connection: the one the dialer's `connected` names, else the listener's;
/// without either, `one-way` when no reply code reached the listener (nothing else could have
/// opened the way), else unknown.
fn route_of(dialer: Option<&str>, listener: Option<&str>, handed_over: bool) -> Option<String> {
    dialer
        .or(listener)
        .map(str::to_owned)
        .or_else(|| (!handed_over).then(|| "one-way".to_owned()))
}

/// The cause of a dialer's `ice-timeout` when nothing of it reached the listener:
/// `listener-unreachable[: <listener_block>]`, or, when the listener had accepted the dialer's
/// reply code and its checks towards the dialer did not open the way either,
/// `reply-unreachable[: <reply_block>]` (both sides' NATs map per destination, so neither
/// side's checks arrive where the other one sends).
fn unreachable_cause(
    reply_accepted: bool,
    listener_block: Option<&str>,
    reply_block: Option<&str>,
) -> String {
    let (prefix, block) = if reply_accepted {
        ("reply-unreachable", reply_block.or(listener_block))
    } else {
        ("listener-unreachable", listener_block)
    };
    match block {
        Some(b) => format!("{prefix}: {b}"),
        None => prefix.to_owned(),
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
    fn routes_come_from_the_ends_or_from_the_hand_over() {
        assert_eq!(
            route_of(Some("reply"), Some("one-way"), true).as_deref(),
            Some("reply")
        );
        assert_eq!(
            route_of(None, Some("reply"), true).as_deref(),
            Some("reply")
        );
        // Nobody said; no code reached the listener: the checks of the token did it.
        assert_eq!(route_of(None, None, false).as_deref(), Some("one-way"));
        assert_eq!(route_of(None, None, true), None);
    }

    #[test]
    fn an_accepted_reply_that_opened_nothing_is_reply_unreachable() {
        let block = Some("filtering=address-and-port-dependent");
        let both = Some("symmetric NAT on both sides");
        assert_eq!(
            unreachable_cause(false, block, both),
            "listener-unreachable: filtering=address-and-port-dependent"
        );
        assert_eq!(
            unreachable_cause(true, block, both),
            "reply-unreachable: symmetric NAT on both sides"
        );
        assert_eq!(
            unreachable_cause(true, block, None),
            "reply-unreachable: filtering=address-and-port-dependent"
        );
        assert_eq!(unreachable_cause(false, None, None), "listener-unreachable");
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
