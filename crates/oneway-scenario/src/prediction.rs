//! The listener's reachability prediction against the cell's outcome.
//!
//! A native listener prints, after its token, a `reachability` event (`spec/peer-contract.md`):
//! from where it expects to be reached (`scope`: `internet` or `same-lan-only`), through what
//! (`via`), why (`reason`) and a sentence for its user; and, when it tried port mapping, a
//! `mapped` or `mapping-failed` event. The runner reads them and compares the prediction with
//! what the cell's dialer met. The rule ([`judge`]):
//!
//! - **Not applicable** when the listener printed no `reachability` event (browsers, third
//!   parties), when the run did not produce an outcome (harness error), when the dialer is on
//!   the listener's LAN or behind the same NAT (same-LAN and hairpin topologies: such a dialer
//!   does not test reachability from outside, so neither prediction is contradicted by it),
//!   when the dialer's own network blocks UDP and it failed (its failure says nothing about the
//!   listener), and when the dialer failed for a cause that is not about reaching the listener
//!   (anything but `listener-unreachable…` and `ice-timeout`).
//! - Otherwise the dialer is outside the listener's LAN (a `sites` topology):
//!   - `internet` **agrees** when it connected (by any path) and **disagrees** when it failed
//!     with `listener-unreachable…` or `ice-timeout`;
//!   - `same-lan-only` **agrees** when it failed with one of those causes and **disagrees** when
//!     it connected (by any path: a relay on the WAN is outside the LAN too).
//! - The prediction is about **one-way** reachability (whether a dialer holding only the token
//!   gets through). A run that connected by the **reply** route (the runner handed the
//!   dialer's reply code to the listener, which punched towards the dialer) does not test it:
//!   not applicable; so is a connection whose route is unknown after a reply code reached the
//!   listener. A run that failed after the listener took a reply code (`reply-unreachable…`)
//!   still failed one-way, and is judged like `listener-unreachable…`.
//!
//! A disagreement does not change the cell's verdict; the report lists it.

use serde::{Deserialize, Serialize};

use crate::model::{Edge, Topology};
use crate::verdict::Outcome;

/// The listener's `reachability` event, as printed (parsed tolerantly: `via` may be a string or
/// an object with a `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// `internet` or `same-lan-only`.
    pub scope: String,
    /// `public-host`, `mapping`, `non-filtering-nat` or `none`.
    pub via: String,
    /// The reason code (`mapped`, `nat-filters`, `not-public`, …).
    pub reason: String,
    /// The sentence the listener shows its user.
    pub sentence: String,
}

impl Reachability {
    /// Whether it predicts reachability from the internet.
    pub fn internet(&self) -> bool {
        self.scope == "internet"
    }

    /// `internet (mapped)`-style short form for tables.
    pub fn short(&self) -> String {
        format!("{} ({})", self.scope, self.reason)
    }
}

/// What the listener's port mapping did, from its `mapped` / `mapping-failed` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingResult {
    /// `mapped` or the failure's cause code (`portmap-refused`, …).
    pub code: String,
    /// The protocol that mapped (`pcp`, `natpmp`, `upnp`), when it mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The external address, when it mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// The internal address, when it mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<String>,
    /// The failure's reason in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MappingResult {
    /// One line for reports: `pcp 11.0.0.2:41000` or `portmap-refused: …`.
    pub fn describe(&self) -> String {
        match (&self.protocol, &self.external) {
            (Some(p), Some(e)) => format!("{p} {e}"),
            _ => match &self.reason {
                Some(r) => format!("{}: {r}", self.code),
                None => self.code.clone(),
            },
        }
    }

    /// Whether the mapping is a pinhole (the external address is the internal one).
    pub fn is_pinhole(&self) -> bool {
        self.external.is_some() && self.external == self.internal
    }
}

fn text(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("kind").and_then(|k| k.as_str()).map(str::to_owned),
        other => Some(other.to_string()),
    }
}

/// Parses one `reachability` event line; `None` for any other line.
pub fn parse_reachability(line: &str) -> Option<Reachability> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    if v.get("event")?.as_str()? != "reachability" {
        return None;
    }
    Some(Reachability {
        scope: text(&v, "scope")?,
        via: text(&v, "via").unwrap_or_default(),
        reason: text(&v, "reason").unwrap_or_default(),
        sentence: text(&v, "sentence").unwrap_or_default(),
    })
}

/// Parses one `mapped` or `mapping-failed` event line; `None` for any other line.
pub fn parse_mapping(line: &str) -> Option<MappingResult> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    match v.get("event")?.as_str()? {
        "mapped" => Some(MappingResult {
            code: "mapped".into(),
            protocol: text(&v, "protocol"),
            external: text(&v, "external"),
            internal: text(&v, "internal"),
            reason: None,
        }),
        "mapping-failed" => Some(MappingResult {
            code: text(&v, "code").unwrap_or_else(|| "mapping-failed".into()),
            protocol: None,
            external: None,
            internal: None,
            reason: text(&v, "reason"),
        }),
        _ => None,
    }
}

/// Where the dialer of a topology sits relative to the listener's LAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialerPlace {
    /// On the listener's LAN or behind the same NAT (same-LAN, hairpin).
    InsideLan,
    /// At its own site across the WAN.
    Outside {
        /// Its own network drops UDP (it needs a relay to reach anyone).
        udp_blocked: bool,
    },
}

impl DialerPlace {
    /// The place of the dialer of `topology`.
    pub fn of(topology: &Topology) -> DialerPlace {
        match topology {
            Topology::SameLan { .. } | Topology::Hairpin { .. } => DialerPlace::InsideLan,
            Topology::Sites { dialer, .. } => DialerPlace::Outside {
                udp_blocked: matches!(dialer, Edge::UdpBlocked),
            },
        }
    }
}

/// How a prediction compares with the outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agreement {
    /// The outcome is what the listener predicted.
    Agree,
    /// The outcome contradicts the prediction.
    Disagree,
    /// The outcome does not test the prediction (or there is none).
    #[default]
    NotApplicable,
}

impl Agreement {
    /// A mark for the Markdown report.
    pub fn mark(self) -> &'static str {
        match self {
            Agreement::Agree => "✓",
            Agreement::Disagree => "✗",
            Agreement::NotApplicable => "–",
        }
    }

    /// Stable name (`agree`, `disagree`, `not-applicable`).
    pub fn name(self) -> &'static str {
        match self {
            Agreement::Agree => "agree",
            Agreement::Disagree => "disagree",
            Agreement::NotApplicable => "not-applicable",
        }
    }
}

/// A prediction judged against an outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prediction {
    /// Agree, disagree or not applicable.
    pub agreement: Agreement,
    /// The prediction in short (`internet (mapped)`), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<String>,
    /// Why, in words.
    pub why: String,
}

fn unreachable_cause(cause: &str) -> bool {
    cause.starts_with("listener-unreachable")
        || cause.starts_with("reply-unreachable")
        || cause == "ice-timeout"
}

/// Judges a listener's prediction against a run's outcome (the rule in the module docs).
pub fn judge(
    reachability: Option<&Reachability>,
    place: DialerPlace,
    outcome: &Outcome,
) -> Prediction {
    let na = |predicted: Option<String>, why: &str| Prediction {
        agreement: Agreement::NotApplicable,
        predicted,
        why: why.to_owned(),
    };
    let Some(r) = reachability else {
        return na(None, "the listener printed no reachability event");
    };
    let predicted = Some(r.short());
    let udp_blocked = match place {
        DialerPlace::InsideLan => {
            return na(
                predicted,
                "the dialer is on the listener's LAN (or behind the same NAT): it does not test reachability from outside",
            );
        }
        DialerPlace::Outside { udp_blocked } => udp_blocked,
    };
    let (agree, why) = match outcome {
        Outcome::Error { .. } => return na(predicted, "the run has no outcome (harness error)"),
        Outcome::Connected { route, .. } if route.as_deref() != Some("one-way") => {
            return na(
                predicted,
                &format!(
                    "connected by the {} route: the prediction is about one-way reachability",
                    route
                        .as_deref()
                        .unwrap_or("unknown (a reply code reached the listener)")
                ),
            );
        }
        Outcome::Connected { path, .. } => (
            r.internet(),
            format!("a dialer outside the listener's LAN connected one-way (via {path})"),
        ),
        Outcome::Failed { cause } if udp_blocked => {
            return na(
                predicted,
                &format!("the dialer's own network blocks UDP and it failed ({cause})"),
            );
        }
        Outcome::Failed { cause } if unreachable_cause(cause) => (
            !r.internet(),
            format!("a dialer outside the listener's LAN could not reach it ({cause})"),
        ),
        Outcome::Failed { cause } => {
            return na(
                predicted,
                &format!("the dialer failed for a cause not about reaching the listener ({cause})"),
            );
        }
    };
    Prediction {
        agreement: if agree {
            Agreement::Agree
        } else {
            Agreement::Disagree
        },
        predicted,
        why: format!("predicted {}; {why}", r.scope),
    }
}

/// A cell's prediction over its runs: the first disagreeing run, else the first agreeing one,
/// else the first run's (not applicable), else not applicable without runs.
pub fn combine<'a>(runs: impl IntoIterator<Item = &'a Prediction> + Clone) -> Prediction {
    for wanted in [Agreement::Disagree, Agreement::Agree] {
        if let Some(p) = runs.clone().into_iter().find(|p| p.agreement == wanted) {
            return p.clone();
        }
    }
    runs.into_iter().next().cloned().unwrap_or(Prediction {
        agreement: Agreement::NotApplicable,
        predicted: None,
        why: "not run".into(),
    })
}

/// Counts of agreements, disagreements and not-applicable cells.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Cells whose outcome agrees with the prediction.
    pub agree: usize,
    /// Cells whose outcome contradicts it.
    pub disagree: usize,
    /// Cells where it does not apply.
    pub not_applicable: usize,
}

impl Tally {
    /// Adds one cell.
    pub fn add(&mut self, a: Agreement) {
        match a {
            Agreement::Agree => self.agree += 1,
            Agreement::Disagree => self.disagree += 1,
            Agreement::NotApplicable => self.not_applicable += 1,
        }
    }

    /// `reachability prediction: N agree, M disagree, K not applicable`.
    pub fn line(&self) -> String {
        format!(
            "reachability prediction: {} agree, {} disagree, {} not applicable",
            self.agree, self.disagree, self.not_applicable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(scope: &str) -> Reachability {
        Reachability {
            scope: scope.into(),
            via: "mapping".into(),
            reason: "mapped".into(),
            sentence: "s".into(),
        }
    }

    const OUT: DialerPlace = DialerPlace::Outside { udp_blocked: false };

    fn connected() -> Outcome {
        Outcome::Connected {
            path: "mapped".into(),
            route: Some("one-way".into()),
        }
    }

    fn failed(c: &str) -> Outcome {
        Outcome::Failed { cause: c.into() }
    }

    #[test]
    fn parses_the_contract_lines_tolerantly() {
        let r = parse_reachability(
            r#"{"event":"reachability","t_ms":3.5,"scope":"internet","via":"mapping","reason":"mapped","sentence":"internet, via a PCP mapping 11.0.0.2:41000"}"#,
        )
        .expect("parsed");
        assert_eq!((r.scope.as_str(), r.via.as_str()), ("internet", "mapping"));
        // `via` as the crate serializes it: a tagged object.
        let r = parse_reachability(
            r#"{"event":"reachability","scope":"same-lan-only","via":{"kind":"none"},"reason":"nat-filters","sentence":"x"}"#,
        )
        .expect("parsed");
        assert_eq!((r.via.as_str(), r.reason.as_str()), ("none", "nat-filters"));
        assert_eq!(parse_reachability(r#"{"event":"token"}"#), None);
        assert_eq!(parse_reachability("not json"), None);
        assert_eq!(parse_reachability(r#"{"event":"reachability"}"#), None);
        let m = parse_mapping(
            r#"{"event":"mapped","t_ms":1,"protocol":"pcp","external":"11.0.0.2:41000","internal":"10.2.0.10:5000","lifetime_s":7200,"gateway":"10.2.0.254"}"#,
        )
        .expect("mapped");
        assert_eq!(m.describe(), "pcp 11.0.0.2:41000");
        assert!(!m.is_pinhole());
        let f = parse_mapping(
            r#"{"event":"mapping-failed","t_ms":1,"code":"portmap-refused","reason":"UPnP 606"}"#,
        )
        .expect("failed");
        assert_eq!(f.describe(), "portmap-refused: UPnP 606");
    }

    #[test]
    fn outside_dialers_test_the_prediction() {
        let internet = reach("internet");
        let lan = reach("same-lan-only");
        let j = |r: &Reachability, o: &Outcome| judge(Some(r), OUT, o).agreement;
        assert_eq!(j(&internet, &connected()), Agreement::Agree);
        assert_eq!(
            j(&internet, &failed("listener-unreachable: filtering=x")),
            Agreement::Disagree
        );
        assert_eq!(j(&internet, &failed("ice-timeout")), Agreement::Disagree);
        assert_eq!(j(&lan, &connected()), Agreement::Disagree);
        assert_eq!(j(&lan, &failed("listener-unreachable")), Agreement::Agree);
        // A cause that is not about reaching the listener says nothing.
        assert_eq!(
            j(&internet, &failed("auth-failed")),
            Agreement::NotApplicable
        );
        assert_eq!(
            j(
                &internet,
                &Outcome::Error {
                    message: "x".into()
                }
            ),
            Agreement::NotApplicable
        );
    }

    #[test]
    fn inside_dialers_blocked_dialers_and_silent_listeners_do_not_apply() {
        let lan = reach("same-lan-only");
        assert_eq!(
            judge(Some(&lan), DialerPlace::InsideLan, &connected()).agreement,
            Agreement::NotApplicable
        );
        let blocked = DialerPlace::Outside { udp_blocked: true };
        assert_eq!(
            judge(
                Some(&reach("internet")),
                blocked,
                &failed("listener-unreachable")
            )
            .agreement,
            Agreement::NotApplicable
        );
        // ... but a blocked dialer that connected (through a relay) still tests it.
        assert_eq!(
            judge(Some(&reach("internet")), blocked, &connected()).agreement,
            Agreement::Agree
        );
        assert_eq!(
            judge(None, OUT, &connected()).agreement,
            Agreement::NotApplicable
        );
    }

    #[test]
    fn the_reply_route_does_not_test_a_one_way_prediction() {
        let lan = reach("same-lan-only");
        let by = |route: Option<&str>| Outcome::Connected {
            path: "srflx".into(),
            route: route.map(str::to_owned),
        };
        let p = judge(Some(&lan), OUT, &by(Some("reply")));
        assert_eq!(p.agreement, Agreement::NotApplicable);
        assert!(p.why.contains("one-way reachability"), "{}", p.why);
        assert_eq!(
            judge(Some(&lan), OUT, &by(None)).agreement,
            Agreement::NotApplicable
        );
        assert_eq!(
            judge(Some(&lan), OUT, &by(Some("one-way"))).agreement,
            Agreement::Disagree
        );
        // Failing even with the reply path is failing one-way.
        assert_eq!(
            judge(
                Some(&lan),
                OUT,
                &failed("reply-unreachable: symmetric NAT on both sides")
            )
            .agreement,
            Agreement::Agree
        );
    }

    #[test]
    fn a_disagreeing_run_marks_the_cell() {
        let agree = judge(Some(&reach("internet")), OUT, &connected());
        let disagree = judge(Some(&reach("internet")), OUT, &failed("ice-timeout"));
        assert_eq!(
            combine([&agree, &disagree, &agree]).agreement,
            Agreement::Disagree
        );
        assert_eq!(combine([&agree]).agreement, Agreement::Agree);
        assert_eq!(
            combine(std::iter::empty::<&Prediction>()).agreement,
            Agreement::NotApplicable
        );
        let mut t = Tally::default();
        for a in [Agreement::Agree, Agreement::Agree, Agreement::NotApplicable] {
            t.add(a);
        }
        assert_eq!(
            t.line(),
            "reachability prediction: 2 agree, 0 disagree, 1 not applicable"
        );
    }
}
