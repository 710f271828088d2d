//! What a run and a cell leave behind: the records `report.json` carries.

use serde::{Deserialize, Serialize};

use crate::media::{MediaRecord, Parts};
use crate::model::Impairment;
use crate::prediction::{MappingResult, Prediction, Reachability};
use crate::verdict::{Outcome, Stats, Verdict};

/// One candidate check the dialer started, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// Dialer clock, ms.
    pub t_ms: f64,
    /// Remote `ip:port`.
    pub remote: String,
    /// Its candidate type in the token (`host`, `srflx`, …, or `unknown`).
    pub kind: String,
}

/// The selected pair as one end reported it, classified by the runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathEnd {
    /// Local `ip:port`.
    pub local: String,
    /// Remote `ip:port`.
    pub remote: String,
    /// Type of the local candidate (`host`, `srflx`, `prflx`, `relay`).
    pub local_type: String,
    /// Type of the remote candidate.
    pub remote_type: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

impl RunRecord {
    /// Whether this run's probe came back.
    pub fn echoed(&self) -> bool {
        self.stages.first_echo.is_some()
    }
}

impl PathEnd {
    /// The path's type as the scenarios name it: `relay` when either candidate is a relay (a
    /// dialer's relayed pair reaches the listener's host candidate), otherwise the remote's type.
    pub fn path_type(&self) -> String {
        if self.local_type == "relay" || self.remote_type == "relay" {
            "relay".to_owned()
        } else {
            self.remote_type.clone()
        }
    }
}

/// Stage times (dialer clock, ms since it started decoding the token).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Token decoded (`dialing`).
    pub decoded: Option<f64>,
    /// First check sent.
    pub first_check: Option<f64>,
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// Channel 0 open.
    pub channel: Option<f64>,
    /// Both proofs verified.
    pub auth: Option<f64>,
    /// Probe echoed.
    pub first_echo: Option<f64>,
}

/// The reply path of one run: the dialer's `reply-code`, the runner's hand-over to the
/// listener (it plays the out-of-band channel, at once: a person's delay is not included), and
/// the listener's answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// Dialer clock (`t_ms` of its first `reply-code`), ms.
    pub shown_ms: f64,
    /// The reply code, as printed.
    pub code: String,
    /// The dialer candidates it carries (`type transport address`).
    pub candidates: Vec<String>,
    /// Further `reply-code` events the dialer printed in the run (recorded, not handed over).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ignored_codes: u32,
    /// How the listener's manifest takes it (`stdin`, `command`), or `none` (no hand-over:
    /// the code was shown and nobody carried it).
    pub hand_over: String,
    /// Runner clock when the hand-over finished (the code written to standard input, or the
    /// command exited), ms since the runner started the dialer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over_ms: Option<f64>,
    /// Exit status of the hand-over command (`command` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_exit: Option<i64>,
    /// The dialer connected within [`CARRY_DELAY`](super::reply::CARRY_DELAY) of showing its
    /// code, so the runner did not hand it over (as a person would not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_needed: bool,
    /// Why the hand-over failed, when it did (write error, command timeout, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hand_over_error: Option<String>,
    /// The listener's `reply-accepted`, when it printed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<ReplyAccepted>,
    /// The listener's `reply-refused`, when it printed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<ReplyRefused>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The listener's `reply-accepted` event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyAccepted {
    /// Listener clock, ms.
    pub t_ms: f64,
    /// The dialer's ICE ufrag the code names.
    pub dialer: String,
    /// The dialer candidates it checks towards.
    pub candidates: Vec<String>,
}

/// The listener's `reply-refused` event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplyRefused {
    /// Listener clock, ms.
    pub t_ms: f64,
    /// Stable cause code.
    pub code: String,
    /// Details.
    pub reason: String,
}

/// One run of a cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1-based repeat number.
    pub repeat: u32,
    /// What happened.
    pub outcome: Outcome,
    /// Against the expectation.
    pub verdict: Verdict,
    /// Why it deviates, when it does.
    pub deviation: Option<String>,
    /// The token's candidates, in token order.
    pub candidates: Vec<String>,
    /// Checks in the order the dialer started them.
    pub tried: Vec<Tried>,
    /// Time from the first check to the check of the pair that won, when that was not the
    /// first (ms).
    pub fallback_ms: Option<f64>,
    /// The path as the dialer reports it.
    pub dialer_path: Option<PathEnd>,
    /// The path as the listener reports it.
    pub listener_path: Option<PathEnd>,
    /// The route the dialer's `connected` names (`one-way`, `reply`), when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialer_route: Option<String>,
    /// The route the listener's `connected` names, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_route: Option<String>,
    /// The route with the path class, for reports (`one-way direct`, `one-way mapped`,
    /// `one-way relayed`, `reply: punched`, `reply: relayed`, `route unknown`;
    /// [`crate::verdict::display_route`]), when the run connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Whether the dialer showed a reply code (a `reply-code` event).
    #[serde(default)]
    pub reply_shown: bool,
    /// The reply path's details, when the dialer showed a code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<ReplyRecord>,
    /// Stage times.
    pub stages: Stages,
    /// Impairment mechanism that ran (`netem` or `userspace`), if any.
    pub impairment: Option<String>,
    /// The impairment the scenario asked for on the dialer's access link, if any.
    #[serde(default)]
    pub shaping: Option<Impairment>,
    /// Round-trip time of the probe echo as the dialer measured it, ms.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Why the runner ended the run before the dialer gave up, when it did: the cell expects
    /// `listener-unreachable`, and that cause was already certain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// The listener's `reachability` event, when it printed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability: Option<Reachability>,
    /// The listener's port-mapping result (`mapped` / `mapping-failed`), when it printed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<MappingResult>,
    /// The listener's prediction against this run's outcome.
    #[serde(default)]
    pub prediction: Prediction,
    /// The media check, in a cell that judges media and a run that connected: what each side
    /// received from the other (packets, tones, frames) and the verdict per medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaRecord>,
    /// In a cell that judges media: which of data, audio and video passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Parts>,
    /// Wall time of the whole run including bring-up, seconds.
    pub seconds: f64,
    /// Log files (relative to the output directory).
    pub logs: Vec<String>,
}

/// A cell's result over its repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell.
    pub name: String,
    /// Scenario.
    pub scenario: String,
    /// Dialer id.
    pub dialer: String,
    /// Listener id.
    pub listener: String,
    /// Combined verdict.
    pub verdict: Verdict,
    /// Expected verdict and cause.
    pub expected: String,
    /// Reason from the scenario.
    pub reason: String,
    /// Why it was skipped or deviated (first deviating run).
    pub why: Option<String>,
    /// Observed cause code(s), distinct, for the "why" column.
    pub causes: Vec<String>,
    /// Repeat statistics.
    pub stats: Stats,
    /// The listener's reachability prediction against the outcome, over the runs (see
    /// [`crate::prediction`]): a disagreement is listed in the report, it does not change the
    /// verdict.
    #[serde(default)]
    pub prediction: Prediction,
    /// In a cell that judges media: which of data, audio and video passed in the run the
    /// report shows (the first that echoed, else the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Parts>,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Command that reruns this cell alone.
    pub rerun: String,
}
