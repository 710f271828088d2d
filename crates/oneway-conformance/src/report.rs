//! One [`ConformanceReport`], three renderings (as the suite's: `report.md`, `report.json`,
//! `junit.xml`, written by `oneway_scenario::report::write_reports`).

use std::fmt::Write as _;
use std::time::Duration;

use oneway_scenario::model::Role;
use oneway_scenario::report::{Renderings, escape};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::checks::{Check, Level};

/// How one check went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The implementation did what the spec requires.
    Pass,
    /// It did not.
    Fail,
    /// The check does not apply (a role it does not play, an option its manifest does not
    /// map, a profile the spec exempts); the reason says which.
    NotApplicable,
    /// The harness could not judge (the implementation did not start, the reference peer
    /// failed); counts against conformance like a failure.
    Error,
}

impl Verdict {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::NotApplicable => "n/a",
            Verdict::Error => "error",
        }
    }

    fn icon(self) -> &'static str {
        match self {
            Verdict::Pass => "🟢",
            Verdict::Fail => "🔴",
            Verdict::NotApplicable => "⚪",
            Verdict::Error => "⚫",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's id.
    pub id: String,
    /// The role the implementation played.
    pub role: Role,
    /// What was checked.
    pub title: String,
    /// The spec sections cited.
    pub spec: String,
    /// MUST or SHOULD.
    pub level: Level,
    /// The verdict.
    pub verdict: Verdict,
    /// What was observed (codes, exit status, counts), or why it does not apply.
    pub observed: String,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Log files of this check, relative to the output directory.
    #[serde(default)]
    pub logs: Vec<String>,
}

impl CheckResult {
    /// A result for `check`.
    pub fn new(check: &Check, verdict: Verdict, observed: impl Into<String>) -> Self {
        CheckResult {
            id: check.id.to_owned(),
            role: check.role,
            title: check.title.to_owned(),
            spec: check.spec.to_owned(),
            level: check.level,
            verdict,
            observed: observed.into(),
            seconds: 0.0,
            logs: Vec::new(),
        }
    }
}

/// Everything one `oneway conformance` run of one implementation found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConformanceReport {
    /// Format version of this JSON.
    pub format: u32,
    /// The implementation's id (its manifest's `id`).
    pub implementation: String,
    /// Its human name.
    pub name: String,
    /// Its roles, as the manifest lists them.
    pub roles: Vec<Role>,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Every check, in catalogue order.
    pub results: Vec<CheckResult>,
}

impl ConformanceReport {
    /// Whether every MUST check passed (none failed, errored or was left out), and at least
    /// one ran.
    pub fn conformant(&self) -> bool {
        self.results.iter().any(|r| r.verdict == Verdict::Pass)
            && self
                .results
                .iter()
                .filter(|r| r.level == Level::Must)
                .all(|r| matches!(r.verdict, Verdict::Pass | Verdict::NotApplicable))
    }

    /// Results with `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let failed_must = self
            .results
            .iter()
            .filter(|r| {
                r.level == Level::Must && matches!(r.verdict, Verdict::Fail | Verdict::Error)
            })
            .count();
        format!(
            "{}: {} ({} checks: {} pass, {} fail, {} error, {} n/a; {} MUST not met) in {:.0} s",
            self.implementation,
            if self.conformant() {
                "conformant"
            } else {
                "NOT conformant"
            },
            self.results.len(),
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::Error),
            self.count(Verdict::NotApplicable),
            failed_must,
            self.seconds
        )
    }

    /// JSON with every field.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The Markdown report: summary, one table per role, what failed.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# oneway conformance: {}\n", self.implementation);
        if !self.name.is_empty() {
            let _ = writeln!(md, "{}\n", self.name);
        }
        let _ = writeln!(md, "{}\n", self.summary());
        let _ = writeln!(
            md,
            "🟢 pass · 🔴 fail · ⚫ the harness could not judge · ⚪ not applicable. An implementation is conformant when every MUST passes.\n"
        );
        for (role, heading) in [(Role::Listen, "As listener"), (Role::Dial, "As dialer")] {
            let rows: Vec<&CheckResult> = self.results.iter().filter(|r| r.role == role).collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(md, "## {heading}\n");
            let _ = writeln!(md, "| | Check | Level | Spec | Observed |");
            let _ = writeln!(md, "|---|---|---|---|---|");
            for r in rows {
                let _ = writeln!(
                    md,
                    "| {} | `{}`: {} | {} | {} | {} |",
                    r.verdict.icon(),
                    r.id,
                    escape(&r.title),
                    r.level.name(),
                    escape(&r.spec),
                    escape(&r.observed)
                );
            }
            let _ = writeln!(md);
        }
        let failing: Vec<&CheckResult> = self
            .results
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Fail | Verdict::Error))
            .collect();
        if !failing.is_empty() {
            let _ = writeln!(md, "## Not met\n");
            for r in failing {
                let _ = writeln!(
                    md,
                    "- **{}** ({}, {}): {}{}",
                    r.id,
                    r.level.name(),
                    r.spec,
                    r.observed,
                    if r.logs.is_empty() {
                        String::new()
                    } else {
                        format!(" (logs: {})", r.logs.join(", "))
                    }
                );
            }
            let _ = writeln!(md);
        }
        md
    }

    /// JUnit XML: one test suite per role, one test case per check (`n/a` as skipped; a
    /// failed SHOULD as a failure too, with its level as a property).
    pub fn to_junit(&self) -> String {
        let mut report =
            quick_junit::Report::new(format!("oneway conformance {}", self.implementation));
        report.set_time(Duration::from_secs_f64(self.seconds.max(0.0)));
        for (role, name) in [(Role::Listen, "listener"), (Role::Dial, "dialer")] {
            let mut suite = TestSuite::new(format!("{}.{name}", self.implementation));
            for r in self.results.iter().filter(|r| r.role == role) {
                let mut status = match r.verdict {
                    Verdict::Pass => TestCaseStatus::success(),
                    Verdict::NotApplicable => TestCaseStatus::skipped(),
                    Verdict::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                    Verdict::Fail => TestCaseStatus::non_success(NonSuccessKind::Failure),
                };
                if r.verdict != Verdict::Pass {
                    status.set_message(format!("{}: {}", r.verdict.name(), r.observed));
                }
                let mut case = TestCase::new(r.id.clone(), status);
                case.set_classname(format!("oneway.conformance.{}.{name}", self.implementation));
                case.add_property(("level", r.level.name()));
                case.add_property(("spec", r.spec.as_str()));
                case.set_time(Duration::from_secs_f64(r.seconds.max(0.0)));
                case.set_system_out(format!(
                    "{}\nspec: {} ({})\nobserved: {}\n",
                    r.title,
                    r.spec,
                    r.level.name(),
                    r.observed
                ));
                suite.add_test_case(case);
            }
            report.add_test_suite(suite);
        }
        report.to_string().unwrap_or_default()
    }
}

impl Renderings for ConformanceReport {
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
