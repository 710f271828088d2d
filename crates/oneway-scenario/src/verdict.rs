//! Judging a run against its expectation, and statistics over repeats.

use serde::{Deserialize, Serialize};

use crate::model::{Expectation, ExpectedVerdict};

/// What happened in one run, before comparing with the expectation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// The dialer connected and its probe came back.
    Connected {
        /// The candidate type the dialer reached the listener by (`host`, `srflx`, …).
        path: String,
        /// How it came up: `one-way` or `reply` (the ends' `connected.route`, else `one-way`
        /// when no reply code reached the listener); absent when unknown (a reply code was
        /// handed over and neither end said).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<String>,
    },
    /// The dialer failed with a cause code.
    Failed {
        /// Cause code (refined: `listener-unreachable: filtering=…` when the listener saw
        /// nothing and the topology says why).
        cause: String,
    },
    /// The run could not be carried out (setup failure): not a verdict on the peers.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// A run's or a cell's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Expected to connect, connected by the expected path.
    Pass,
    /// Expected to fail, failed for the expected cause.
    ExpectedFail,
    /// Deviated from the expectation.
    Fail,
    /// Expected to fail but connected ("update the expectation").
    UnexpectedPass,
    /// Some repeats deviated and some did not.
    Flaky,
    /// The harness could not run it.
    Error,
    /// Not run.
    Skipped,
}

impl Verdict {
    /// Whether the verdict is green.
    pub fn is_green(self) -> bool {
        matches!(
            self,
            Verdict::Pass | Verdict::ExpectedFail | Verdict::Skipped
        )
    }

    /// The matrix mark.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "🟢",
            Verdict::ExpectedFail => "🟡",
            Verdict::Fail => "🔴",
            Verdict::UnexpectedPass => "🔵",
            Verdict::Flaky => "🟠",
            Verdict::Error => "⚫",
            Verdict::Skipped => "⚪",
        }
    }

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::ExpectedFail => "expected-fail",
            Verdict::Fail => "fail",
            Verdict::UnexpectedPass => "unexpected-pass",
            Verdict::Flaky => "flaky",
            Verdict::Error => "error",
            Verdict::Skipped => "skipped",
        }
    }
}

/// Judges one run; returns the verdict and, when it deviates, why.
pub fn judge(expect: &Expectation, outcome: &Outcome) -> (Verdict, Option<String>) {
    match (expect.verdict, outcome) {
        (_, Outcome::Error { message }) => (Verdict::Error, Some(message.clone())),
        (ExpectedVerdict::Pass, Outcome::Connected { path, route }) => {
            match (&expect.path, &expect.route, route) {
                (Some(want), _, _) if want != path => (
                    Verdict::Fail,
                    Some(format!("connected over {path}, expected {want}")),
                ),
                (_, Some(want), Some(got)) if want != got => (
                    Verdict::Fail,
                    Some(format!(
                        "connected by the {got} route ({}), expected the {want} route",
                        display_route(Some(got), path)
                    )),
                ),
                _ => (Verdict::Pass, None),
            }
        }
        (ExpectedVerdict::Pass, Outcome::Failed { cause }) => (
            Verdict::Fail,
            Some(format!("expected to connect; failed: {cause}")),
        ),
        (ExpectedVerdict::Fail, Outcome::Failed { cause }) => {
            if expect.cause.as_deref() == Some(cause.as_str()) {
                (Verdict::ExpectedFail, None)
            } else {
                (
                    Verdict::Fail,
                    Some(format!(
                        "failed for another cause: {cause} (expected {})",
                        expect.cause.as_deref().unwrap_or("?")
                    )),
                )
            }
        }
        (ExpectedVerdict::Fail, Outcome::Connected { path, route }) => (
            Verdict::UnexpectedPass,
            Some(format!(
                "connected over {path} ({}); update the expectation",
                display_route(route.as_deref(), path)
            )),
        ),
    }
}

/// The route as reports show it, from the route (`one-way`, `reply`, unknown) and the path
/// type of [`crate::run::PathEnd::path_type`]: `one-way direct`, `one-way mapped` (the
/// listener's port mapping), `one-way relayed` (the dialer's TURN relay), `reply: punched`
/// (the listener's checks towards the dialer opened the way), `reply: relayed` (the reply
/// route over the dialer's relay), or `route unknown`.
pub fn display_route(route: Option<&str>, path: &str) -> String {
    match (route, path) {
        (Some("one-way"), "mapped") => "one-way mapped".into(),
        (Some("one-way"), "relay") => "one-way relayed".into(),
        (Some("one-way"), _) => "one-way direct".into(),
        (Some("reply"), "relay") => "reply: relayed".into(),
        (Some("reply"), _) => "reply: punched".into(),
        (Some(other), _) => format!("route {other}"),
        (None, _) => "route unknown".into(),
    }
}

/// Combines the verdicts of a cell's repeats.
pub fn combine(verdicts: &[Verdict]) -> Verdict {
    let Some(first) = verdicts.first() else {
        return Verdict::Skipped;
    };
    if verdicts.iter().all(|v| v == first) {
        return *first;
    }
    if verdicts.iter().all(|v| *v == Verdict::Error) {
        return Verdict::Error;
    }
    Verdict::Flaky
}

/// Statistics over a cell's repeats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Runs.
    pub runs: u32,
    /// Runs that connected.
    pub connected: u32,
    /// Runs whose verdict was green.
    pub green: u32,
    /// Connected / runs.
    pub pass_rate: f64,
    /// 95 % Wilson score interval of the pass rate.
    pub pass_rate_ci95: (f64, f64),
    /// Median time to first echo (dialer clock), ms.
    pub median_ms: Option<f64>,
    /// 95th percentile time to first echo, ms.
    pub p95_ms: Option<f64>,
    /// 0 < green/runs < 1.
    pub flaky: bool,
}

impl Stats {
    /// Computes the statistics; `latencies` are the connected runs' times to first echo.
    pub fn new(runs: u32, connected: u32, green: u32, latencies: &[f64]) -> Stats {
        let mut sorted: Vec<f64> = latencies
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        sorted.sort_by(f64::total_cmp);
        Stats {
            runs,
            connected,
            green,
            pass_rate: if runs == 0 {
                0.0
            } else {
                f64::from(connected) / f64::from(runs)
            },
            pass_rate_ci95: wilson(connected, runs),
            median_ms: percentile(&sorted, 50.0),
            p95_ms: percentile(&sorted, 95.0),
            flaky: green > 0 && green < runs,
        }
    }
}

/// The 95 % Wilson score interval for `k` successes in `n` trials.
pub fn wilson(k: u32, n: u32) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = f64::from(n);
    let p = f64::from(k) / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(verdict: ExpectedVerdict, cause: Option<&str>, path: Option<&str>) -> Expectation {
        Expectation {
            verdict,
            cause: cause.map(str::to_owned),
            path: path.map(str::to_owned),
            route: None,
            reason: "r".into(),
        }
    }

    fn connected(path: &str, route: Option<&str>) -> Outcome {
        Outcome::Connected {
            path: path.into(),
            route: route.map(str::to_owned),
        }
    }

    #[test]
    fn a_pass_by_another_route_is_a_deviation_and_an_unknown_route_is_not_judged() {
        let mut e = expect(ExpectedVerdict::Pass, None, None);
        e.route = Some("reply".into());
        assert_eq!(
            judge(&e, &connected("srflx", Some("reply"))).0,
            Verdict::Pass
        );
        assert_eq!(judge(&e, &connected("prflx", None)).0, Verdict::Pass);
        let (v, why) = judge(&e, &connected("srflx", Some("one-way")));
        assert_eq!(v, Verdict::Fail);
        assert_eq!(
            why.as_deref(),
            Some("connected by the one-way route (one-way direct), expected the reply route")
        );
        e.route = Some("one-way".into());
        let (v, why) = judge(&e, &connected("srflx", Some("reply")));
        assert_eq!(v, Verdict::Fail);
        assert!(why.unwrap().contains("reply: punched"));
        // No route named: any route passes.
        let e = expect(ExpectedVerdict::Pass, None, None);
        assert_eq!(
            judge(&e, &connected("host", Some("reply"))).0,
            Verdict::Pass
        );
    }

    #[test]
    fn display_routes_combine_route_and_path() {
        assert_eq!(display_route(Some("one-way"), "host"), "one-way direct");
        assert_eq!(display_route(Some("one-way"), "srflx"), "one-way direct");
        assert_eq!(display_route(Some("one-way"), "mapped"), "one-way mapped");
        assert_eq!(display_route(Some("one-way"), "relay"), "one-way relayed");
        assert_eq!(display_route(Some("reply"), "prflx"), "reply: punched");
        assert_eq!(display_route(Some("reply"), "relay"), "reply: relayed");
        assert_eq!(display_route(None, "host"), "route unknown");
    }

    #[test]
    fn expected_failure_for_the_expected_cause_is_green() {
        let e = expect(ExpectedVerdict::Fail, Some("ice-timeout"), None);
        let failed = |c: &str| Outcome::Failed { cause: c.into() };
        assert_eq!(judge(&e, &failed("ice-timeout")).0, Verdict::ExpectedFail);
        assert_eq!(judge(&e, &failed("auth-failed")).0, Verdict::Fail);
        assert_eq!(
            judge(
                &e,
                &Outcome::Connected {
                    path: "host".into(),
                    route: None,
                }
            )
            .0,
            Verdict::UnexpectedPass
        );
    }

    #[test]
    fn success_over_an_unexpected_path_is_a_deviation() {
        let e = expect(ExpectedVerdict::Pass, None, Some("srflx"));
        assert_eq!(
            judge(
                &e,
                &Outcome::Connected {
                    path: "srflx".into(),
                    route: None,
                }
            )
            .0,
            Verdict::Pass
        );
        assert_eq!(
            judge(
                &e,
                &Outcome::Connected {
                    path: "relay".into(),
                    route: None,
                }
            )
            .0,
            Verdict::Fail
        );
    }

    #[test]
    fn wilson_interval_matches_known_values() {
        let (lo, hi) = wilson(10, 10);
        assert!(
            (lo - 0.7225).abs() < 1e-3 && (hi - 1.0).abs() < 1e-9,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(5, 10);
        assert!((lo - 0.2366).abs() < 1e-3 && (hi - 0.7634).abs() < 1e-3);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn stats_and_flakiness() {
        let s = Stats::new(4, 3, 3, &[10.0, 30.0, 20.0]);
        assert_eq!(s.median_ms, Some(20.0));
        assert_eq!(s.p95_ms, Some(30.0));
        assert!(s.flaky);
        assert_eq!(combine(&[Verdict::Pass, Verdict::Fail]), Verdict::Flaky);
        assert_eq!(combine(&[Verdict::Pass, Verdict::Pass]), Verdict::Pass);
    }
}
