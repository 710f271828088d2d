//! One [`Report`], three renderings: a Markdown matrix in the style of libp2p test-plans, JSON
//! with every recorded field, and JUnit XML for CI systems.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::partition::PartialInfo;
use crate::prediction::{Agreement, Tally};
use crate::run::{CellResult, RunRecord};
use crate::verdict::Verdict;

/// How the image step went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `oneway-suite:<hash>`.
    pub tag: String,
    /// Already built (cache hit by content hash).
    pub cached: bool,
    /// Seconds spent (hashing, and building when not cached).
    pub seconds: f64,
}

/// A scenario as listed in the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Name.
    pub name: String,
    /// One line.
    pub description: String,
}

/// Everything one `oneway suite` run found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Format version of this JSON.
    pub format: u32,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Seconds from the start until the first cell started.
    pub first_cell_after: Option<f64>,
    /// The image, when Docker was reachable.
    pub image: Option<ImageInfo>,
    /// Why container scenarios were skipped, when they were.
    pub no_docker: Option<String>,
    /// Implementation ids.
    pub impls: Vec<String>,
    /// Scenarios in matrix order.
    pub scenarios: Vec<ScenarioInfo>,
    /// Cells.
    pub cells: Vec<CellResult>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Set in a partial report (`--partition K/N`): which slice, and what merge checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<PartialInfo>,
}

impl Report {
    /// Reads a `report.json`.
    pub fn read(path: &std::path::Path) -> Result<Self, crate::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| crate::Error::Parse {
            file: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Number of cells per verdict, in a fixed order.
    pub fn counts(&self) -> Vec<(Verdict, usize)> {
        [
            Verdict::Pass,
            Verdict::ExpectedFail,
            Verdict::Fail,
            Verdict::UnexpectedPass,
            Verdict::Flaky,
            Verdict::Error,
            Verdict::Skipped,
        ]
        .into_iter()
        .map(|v| (v, self.cells.iter().filter(|c| c.verdict == v).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    /// Whether every cell is green (pass, expected-fail or skipped) and the run was complete.
    pub fn green(&self) -> bool {
        !self.interrupted && self.cells.iter().all(|c| c.verdict.is_green())
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = self
            .counts()
            .iter()
            .map(|(v, n)| format!("{n} {}", v.name()))
            .collect();
        format!(
            "{} cells: {} in {:.0} s{}",
            self.cells.len(),
            counts.join(", "),
            self.seconds,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )
    }

    /// The listeners' reachability predictions against the outcomes, counted over the cells.
    pub fn prediction_tally(&self) -> Tally {
        let mut t = Tally::default();
        for c in &self.cells {
            t.add(c.prediction.agreement);
        }
        t
    }

    /// `reachability prediction: N agree, M disagree, K not applicable`.
    pub fn prediction_summary(&self) -> String {
        self.prediction_tally().line()
    }

    /// JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// JUnit XML: one test suite per scenario, one test case per cell.
    pub fn to_junit(&self) -> String {
        let mut report = quick_junit::Report::new("oneway suite");
        report.set_time(Duration::from_secs_f64(self.seconds.max(0.0)));
        for s in &self.scenarios {
            let mut suite = TestSuite::new(s.name.clone());
            for c in self.cells.iter().filter(|c| c.scenario == s.name) {
                let mut status = match c.verdict {
                    Verdict::Pass | Verdict::ExpectedFail => TestCaseStatus::success(),
                    Verdict::Skipped => TestCaseStatus::skipped(),
                    Verdict::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                    Verdict::Fail | Verdict::UnexpectedPass | Verdict::Flaky => {
                        TestCaseStatus::non_success(NonSuccessKind::Failure)
                    }
                };
                let message = match c.verdict {
                    Verdict::Pass | Verdict::ExpectedFail => None,
                    _ => Some(format!(
                        "{}: {}",
                        c.verdict.name(),
                        c.why.clone().unwrap_or_else(|| c.causes.join("; "))
                    )),
                };
                if let Some(m) = message {
                    status.set_message(m);
                }
                let mut case = TestCase::new(c.name.clone(), status);
                case.set_classname(format!("oneway.suite.{}", c.scenario));
                case.add_property(("reachability-prediction", c.prediction.agreement.name()));
                let run = shown_run(c);
                if let Some(route) = run.and_then(|r| r.route.as_deref()) {
                    case.add_property(("route", route));
                }
                case.add_property((
                    "reply-shown",
                    if c.runs.iter().any(|r| r.reply_shown) {
                        "true"
                    } else {
                        "false"
                    },
                ));
                if let Some(t) = run
                    .and_then(|r| r.reply.as_ref())
                    .and_then(|r| r.handed_over_ms)
                {
                    case.add_property(("reply-handed-over-ms", format!("{t:.0}").as_str()));
                }
                if let Some(p) = &c.prediction.predicted {
                    case.add_property(("reachability-predicted", p.as_str()));
                }
                let media = c.parts.map(|p| {
                    let m = run.and_then(|r| r.media.as_ref());
                    let side = |f: fn(&crate::media::MediaRecord) -> String| {
                        m.map_or_else(|| "not connected".to_owned(), f)
                    };
                    (
                        p.text(),
                        side(|m| m.dialer_received.summary()),
                        side(|m| m.listener_received.summary()),
                    )
                });
                if let Some((parts, dialer, listener)) = &media {
                    case.add_property(("media", parts.as_str()));
                    case.add_property(("media-dialer-received", dialer.as_str()));
                    case.add_property(("media-listener-received", listener.as_str()));
                }
                let secs: f64 = c.runs.iter().map(|r| r.seconds).sum();
                case.set_time(Duration::from_secs_f64(secs.max(0.0)));
                let media_out = media
                    .map(|(parts, dialer, listener)| {
                        format!(
                            "media: {parts}\n  dialer received: {dialer}\n  listener received: {listener}\n"
                        )
                    })
                    .unwrap_or_default();
                case.set_system_out(format!(
                    "expected: {} ({})\nobserved: {}\nroute: {}\n{media_out}reachability prediction: {} ({})\nrerun: {}\n",
                    c.expected,
                    c.reason,
                    c.causes.join("; "),
                    run.map(route_text).unwrap_or_default(),
                    c.prediction.agreement.name(),
                    c.prediction.why,
                    c.rerun
                ));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }

    /// The Markdown report: legend, matrix, details per cell, deviations.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# oneway suite\n");
        let _ = writeln!(md, "{}\n", self.summary());
        let tally = self.prediction_tally();
        let _ = writeln!(
            md,
            "{}{}\n",
            tally.line(),
            if tally.disagree > 0 {
                " (**listed under \"Prediction disagreements\"**)"
            } else {
                ""
            }
        );
        if let Some(p) = &self.partition {
            let _ = writeln!(
                md,
                "**Partial report**: partition {} ({} of {} planned cells; costs from {}). `oneway suite merge` combines the partitions into the whole matrix.\n",
                p.partition,
                p.assigned.len(),
                p.planned.len(),
                p.costs
            );
        }
        if let Some(i) = &self.image {
            let _ = writeln!(
                md,
                "Image `{}` ({}, {:.1} s).{}\n",
                i.tag,
                if i.cached { "cached" } else { "built" },
                i.seconds,
                self.first_cell_after
                    .map(|t| format!(" First cell started after {t:.1} s."))
                    .unwrap_or_default()
            );
        }
        if let Some(reason) = &self.no_docker {
            let _ = writeln!(
                md,
                "**No Docker engine** ({reason}): only the loopback cells ran; container cells are skipped.\n"
            );
        }
        let _ = writeln!(
            md,
            "🟢 pass · 🟡 expected failure (for the expected cause) · 🔴 deviation · 🔵 unexpected pass · 🟠 flaky · ⚫ harness error · ⚪ skipped\n"
        );
        let _ = writeln!(
            md,
            "Routes: `one-way direct`, `one-way mapped` (the listener's port mapping) and `one-way relayed` (the dialer's TURN relay) came up with the token alone; `reply: punched` and `reply: relayed` came up after the dialer's reply code reached the listener, which checked towards the dialer. The route is what the ends' `connected` events say (the runner's inference when they say nothing: `one-way` if no code reached the listener). A pass expecting one route that came up by the other is a deviation. The runner hands the reply code over 1 s after the dialer showed it, unless the dialer connected meanwhile (a stand-in for the person, who carries a code only when the direct attempt did not connect at once); the time a person really takes is not included. The reachability prediction is about one-way reachability: a cell that connected by the reply route does not test it (not applicable).\n"
        );
        // Matrix: rows are scenarios, columns are dialer x listener pairs.
        let mut pairs: Vec<String> = Vec::new();
        for c in &self.cells {
            let p = format!("{} x {}", c.dialer, c.listener);
            if !pairs.contains(&p) {
                pairs.push(p);
            }
        }
        let _ = writeln!(md, "## Matrix (dialer x listener)\n");
        let _ = write!(md, "| scenario |");
        for p in &pairs {
            let _ = write!(md, " {p} |");
        }
        let _ = writeln!(md, " why |");
        let _ = write!(md, "|---|");
        for _ in &pairs {
            let _ = write!(md, "---|");
        }
        let _ = writeln!(md, "---|");
        for s in &self.scenarios {
            let cells: Vec<&CellResult> =
                self.cells.iter().filter(|c| c.scenario == s.name).collect();
            if cells.is_empty() {
                continue;
            }
            let _ = write!(md, "| `{}` |", s.name);
            for p in &pairs {
                match cells
                    .iter()
                    .find(|c| format!("{} x {}", c.dialer, c.listener) == *p)
                {
                    Some(c) => {
                        let _ = write!(md, " {} |", cell_text(c));
                    }
                    None => {
                        let _ = write!(md, " |");
                    }
                }
            }
            let why = cells
                .iter()
                .find(|c| !matches!(c.verdict, Verdict::Pass))
                .map(|c| why_text(c))
                .unwrap_or_default();
            let _ = writeln!(md, " {} |", escape(&why));
        }
        let _ = writeln!(md, "\n## Scenarios\n");
        for s in &self.scenarios {
            let _ = writeln!(md, "- `{}`: {}", s.name, escape(&s.description));
        }
        let _ = writeln!(md, "\n## Cells\n");
        let _ = writeln!(
            md,
            "| cell | verdict | expected | observed | path (dialer / listener) | route (reply code: shown / handed over / listener) | fallback | stages ms (first check / ICE / DTLS / auth / echo) | link (impairment; measured echo RTT) | runs | reachability prediction (listener) |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for c in &self.cells {
            let run = shown_run(c);
            let _ = writeln!(
                md,
                "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                escape(&c.name),
                c.verdict.mark(),
                c.verdict.name(),
                escape(&c.expected),
                escape(&if c.causes.is_empty() {
                    c.why.clone().unwrap_or_default()
                } else {
                    c.causes.join("; ")
                }),
                run.map(path_text).unwrap_or_default(),
                escape(&run.map(route_text).unwrap_or_default()),
                run.map(fallback_text).unwrap_or_default(),
                run.map(stages_text).unwrap_or_default(),
                run.map(link_text).unwrap_or_default(),
                runs_text(c),
                escape(&prediction_text(c)),
            );
        }
        let media: Vec<&CellResult> = self.cells.iter().filter(|c| c.parts.is_some()).collect();
        if !media.is_empty() {
            let _ = writeln!(md, "\n## Media\n");
            let _ = writeln!(
                md,
                "Each side sends an Opus tone (listener {} Hz, dialer {} Hz) and a VP8 test pattern; each must receive the other's: audio with at least {} RTP packets and the tone within ±{:.0} %, video with at least {} frames and {} key frame. A cell passes when data, audio and video all pass.\n",
                crate::media::LISTENER_TONE_HZ,
                crate::media::DIALER_TONE_HZ,
                crate::media::MIN_AUDIO_PACKETS,
                crate::media::TONE_TOLERANCE * 100.0,
                crate::media::MIN_VIDEO_FRAMES,
                crate::media::MIN_KEY_FRAMES,
            );
            let _ = writeln!(
                md,
                "| cell | parts | dialer received (from the listener) | listener received (from the dialer) |"
            );
            let _ = writeln!(md, "|---|---|---|---|");
            for c in media {
                let m = shown_run(c).and_then(|r| r.media.as_ref());
                let side = |f: fn(&crate::media::MediaRecord) -> String| {
                    m.map_or_else(|| "– (not connected)".to_owned(), f)
                };
                let _ = writeln!(
                    md,
                    "| {} | {} {} | {} | {} |",
                    escape(&c.name),
                    c.verdict.mark(),
                    c.parts.map(|p| p.text()).unwrap_or_default(),
                    escape(&side(|m| m.dialer_received.summary())),
                    escape(&side(|m| m.listener_received.summary())),
                );
            }
        }
        let disagreeing: Vec<&CellResult> = self
            .cells
            .iter()
            .filter(|c| c.prediction.agreement == Agreement::Disagree)
            .collect();
        if !disagreeing.is_empty() {
            let _ = writeln!(md, "\n## Prediction disagreements\n");
            let _ = writeln!(
                md,
                "The listener's reachability prediction is contradicted by the outcome (not a deviation of the verdict; a bug to look at in the listener's assessment).\n"
            );
            for c in disagreeing {
                let sentence = c
                    .runs
                    .iter()
                    .find_map(|r| r.reachability.as_ref())
                    .map(|r| format!(" (the listener said: \"{}\")", r.sentence))
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "- **{}** ✗ {}{}  \n  rerun: `{}`",
                    escape(&c.name),
                    escape(&c.prediction.why),
                    escape(&sentence),
                    c.rerun
                );
            }
        }
        let deviating: Vec<&CellResult> = self
            .cells
            .iter()
            .filter(|c| !c.verdict.is_green())
            .collect();
        if !deviating.is_empty() {
            let _ = writeln!(md, "\n## Deviations\n");
            for c in deviating {
                let _ = writeln!(
                    md,
                    "- **{}** {} {}: {}  \n  rerun: `{}`",
                    escape(&c.name),
                    c.verdict.mark(),
                    c.verdict.name(),
                    escape(c.why.as_deref().unwrap_or("")),
                    c.rerun
                );
                if let Some(paste) = paste_expectation(c) {
                    let _ = writeln!(
                        md,
                        "  if this is the new normal, the scenario's expectation is:\n\n  ```toml\n{paste}  ```"
                    );
                }
            }
        }
        md
    }
}

/// The run a cell's row shows: the first that echoed, else the first.
fn shown_run(c: &CellResult) -> Option<&RunRecord> {
    c.runs
        .iter()
        .find(|r| r.stages.first_echo.is_some())
        .or(c.runs.first())
}

/// The route column: the display route of a connected run, then what became of the reply
/// code (`code @812 ms, handed over @815 ms (stdin), accepted`), or `–`.
fn route_text(r: &RunRecord) -> String {
    let mut parts: Vec<String> = r.route.iter().cloned().collect();
    if let Some(reply) = &r.reply {
        let mut s = if reply.code.is_empty() {
            "no code".to_owned()
        } else {
            format!("code @{:.0} ms", reply.shown_ms)
        };
        match (reply.handed_over_ms, &reply.hand_over_error) {
            (_, Some(e)) => {
                let _ = write!(s, ", hand-over failed: {e}");
            }
            (Some(t), None) => {
                let _ = write!(s, ", handed over @{t:.0} ms ({})", reply.hand_over);
                if let Some(code) = reply.command_exit.filter(|c| *c != 0) {
                    let _ = write!(s, " exit {code}");
                }
            }
            (None, None) if reply.not_needed => {
                s.push_str(", not handed over: the dialer connected first");
            }
            (None, None) => s.push_str(", not handed over (the listener takes none)"),
        }
        if reply.accepted.is_some() {
            s.push_str(", accepted");
        }
        if let Some(refused) = &reply.refused {
            let _ = write!(s, ", refused ({})", refused.code);
        }
        if reply.ignored_codes > 0 {
            let _ = write!(s, ", {} more ignored", reply.ignored_codes);
        }
        parts.push(s);
    }
    if parts.is_empty() {
        "–".to_owned()
    } else {
        parts.join("; ")
    }
}

fn cell_text(c: &CellResult) -> String {
    // A media cell whose data path passed shows its path like a pass; its parts say the rest.
    let data_passed = c.parts.is_some_and(|p| p.data);
    let detail = match c.verdict {
        Verdict::Pass | Verdict::Fail if c.verdict == Verdict::Pass || data_passed => c
            .runs
            .iter()
            .find_map(|r| {
                r.dialer_path.as_ref().map(|p| match r.route.as_deref() {
                    // The reply route says more than the path type in the matrix.
                    Some(route) if route.starts_with("reply") => route.to_owned(),
                    _ => p.path_type(),
                })
            })
            .map(|p| {
                let ms = c
                    .stats
                    .median_ms
                    .map(|m| format!(" {m:.0} ms"))
                    .unwrap_or_default();
                format!("{p}{ms}")
            })
            .unwrap_or_default(),
        Verdict::Skipped => "skipped".into(),
        Verdict::Flaky => format!(
            "{}/{} ({:.0}–{:.0} %)",
            c.stats.green,
            c.stats.runs,
            c.stats.pass_rate_ci95.0 * 100.0,
            c.stats.pass_rate_ci95.1 * 100.0
        ),
        _ => c
            .causes
            .first()
            .map(|s| s.split(':').next().unwrap_or(s).to_owned())
            .unwrap_or_default(),
    };
    let flag = if c.prediction.agreement == Agreement::Disagree {
        " ✗prediction"
    } else {
        ""
    };
    let parts = c
        .parts
        .map(|p| format!(" · {}", p.text()))
        .unwrap_or_default();
    format!("{} {}{parts}{flag}", c.verdict.mark(), escape(&detail))
}

/// The prediction column: mark, the prediction, and the mapping when there was one.
fn prediction_text(c: &CellResult) -> String {
    let p = &c.prediction;
    let mapping = c
        .runs
        .iter()
        .find_map(|r| r.mapping.as_ref())
        .map(|m| format!("; mapping {}", m.describe()))
        .unwrap_or_default();
    match &p.predicted {
        Some(predicted) => format!(
            "{} {} {predicted}{mapping}",
            p.agreement.mark(),
            p.agreement.name()
        ),
        None => format!("{} {}", p.agreement.mark(), p.why),
    }
}

fn why_text(c: &CellResult) -> String {
    match c.verdict {
        Verdict::ExpectedFail => format!("{}: {}", c.causes.join("; "), c.reason),
        Verdict::Skipped => c.why.clone().unwrap_or_default(),
        _ => c.why.clone().unwrap_or_else(|| c.causes.join("; ")),
    }
}

fn path_text(r: &RunRecord) -> String {
    let end = |p: &Option<crate::run::PathEnd>| {
        p.as_ref()
            .map(|p| format!("{}→{} {}", p.local_type, p.remote_type, p.family))
            .unwrap_or_else(|| "–".into())
    };
    if r.dialer_path.is_none() && r.listener_path.is_none() {
        return String::new();
    }
    format!("{} / {}", end(&r.dialer_path), end(&r.listener_path))
}

fn fallback_text(r: &RunRecord) -> String {
    let order: Vec<String> = r
        .tried
        .iter()
        .map(|t| format!("{} @{:.0}", t.kind, t.t_ms))
        .collect();
    let mut s = order.join(" → ");
    if let Some(f) = r.fallback_ms {
        let _ = write!(s, " (fell back after {f:.0} ms)");
    }
    s
}

fn stages_text(r: &RunRecord) -> String {
    let f = |x: Option<f64>| x.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"));
    if r.stages.first_check.is_none() && r.stages.first_echo.is_none() {
        return String::new();
    }
    format!(
        "{} / {} / {} / {} / {}",
        f(r.stages.first_check),
        f(r.stages.ice),
        f(r.stages.dtls),
        f(r.stages.auth),
        f(r.stages.first_echo)
    )
}

/// The impairment asked for, the mechanism that ran, and the echo RTT measured by the dialer.
fn link_text(r: &RunRecord) -> String {
    let shaping = match &r.shaping {
        Some(i) => {
            let mut s = format!("{} ms RTT", i.rtt_ms);
            if i.jitter_ms > 0 {
                let _ = write!(s, " ±{} ms", i.jitter_ms);
            }
            if i.loss_percent > 0.0 {
                let _ = write!(s, ", {} % loss", i.loss_percent);
            }
            let _ = write!(s, " ({})", r.impairment.as_deref().unwrap_or("not applied"));
            s
        }
        None => "–".to_owned(),
    };
    match r.rtt_ms {
        Some(rtt) => format!("{shaping}; RTT {rtt:.1} ms"),
        None => shaping,
    }
}

fn runs_text(c: &CellResult) -> String {
    if c.stats.runs == 0 {
        return String::new();
    }
    let mut s = format!(
        "{}/{} connected, 95 % CI {:.0}–{:.0} %",
        c.stats.connected,
        c.stats.runs,
        c.stats.pass_rate_ci95.0 * 100.0,
        c.stats.pass_rate_ci95.1 * 100.0
    );
    if let (Some(m), Some(p)) = (c.stats.median_ms, c.stats.p95_ms) {
        let _ = write!(s, "; echo median {m:.0} ms, p95 {p:.0} ms");
    }
    if c.stats.flaky {
        s.push_str("; **flaky**");
    }
    s
}

/// A ready-to-paste `[expect]` for a cell whose runs all ended the same way.
fn paste_expectation(c: &CellResult) -> Option<String> {
    if c.verdict == Verdict::Error || c.verdict == Verdict::Flaky {
        return None;
    }
    // A media deviation: the data path met the expectation, which stays as it is.
    if c.parts.is_some_and(|p| p.data) {
        return None;
    }
    let r = c.runs.first()?;
    Some(match &r.outcome {
        crate::verdict::Outcome::Connected { path, route } => {
            let route = match route.as_deref() {
                Some("reply") => "  route = \"reply\"\n",
                _ => "",
            };
            format!(
                "  [expect]\n  verdict = \"pass\"\n  path = \"{path}\"\n{route}  reason = \"…\"\n"
            )
        }
        crate::verdict::Outcome::Failed { cause } => {
            format!("  [expect]\n  verdict = \"fail\"\n  cause = \"{cause}\"\n  reason = \"…\"\n")
        }
        crate::verdict::Outcome::Error { .. } => return None,
    })
}

/// The three renderings of every oneway report (the suite's [`Report`], the conformance
/// run's), written side by side by [`write_reports`].
pub trait Renderings {
    /// `report.md`.
    fn markdown(&self) -> String;
    /// `report.json`.
    fn json(&self) -> String;
    /// `junit.xml`.
    fn junit(&self) -> String;
}

impl Renderings for Report {
    fn markdown(&self) -> String {
        self.to_markdown()
    }
    fn json(&self) -> String {
        self.to_json()
    }
    fn junit(&self) -> String {
        self.to_junit()
    }
}

/// Writes `report.md`, `report.json` and `junit.xml` into `out` (created if missing); returns
/// the Markdown's path.
pub fn write_reports(
    out: &std::path::Path,
    report: &impl Renderings,
) -> Result<std::path::PathBuf, crate::Error> {
    std::fs::create_dir_all(out).map_err(|e| crate::Error::Io {
        path: out.to_owned(),
        source: e,
    })?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|e| crate::Error::Io { path, source: e })
    };
    let md = write("report.md", report.markdown())?;
    write("report.json", report.json())?;
    write("junit.xml", report.junit())?;
    Ok(md)
}

/// A table cell's text: pipes escaped, on one line.
pub fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
