//! The runner: brings a cell's topology up, runs both peers, records what they print, judges
//! the run and tears everything down (also on error and on interruption).
//!
//! - `record`: what a run and a cell leave behind (serialized into `report.json`).
//! - `wait`: reading the peers' output until a token, an exit, a timeout or an early stop.
//! - `loopback`: cells run as host processes.
//! - `containers`: cells run in a Docker topology (bring-up, impairments, teardown).
//! - `outcome`: the peers' events → the record and the outcome (path classification).
//! - `command`: a manifest's command line for one role.
//! - `reply`: the runner as the reply path's out-of-band channel (the dialer's `reply-code` to
//!   the listener, as its manifest says).

mod command;
mod containers;
mod loopback;
mod outcome;
mod record;
mod reply;
mod wait;

pub use command::{OptionSet, command_line};
pub use record::{
    CellResult, PathEnd, ReplyAccepted, ReplyRecord, ReplyRefused, RunRecord, Stages, Tried,
};

use std::path::PathBuf;
use std::time::Instant;

use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::docker::Engine;
use crate::model::{ImplManifest, Scenario};
use crate::plan::Cell;
use crate::prediction::{self, DialerPlace, Prediction};
use crate::topology::{self};
use crate::verdict::{self, Outcome, Stats, Verdict};

use wait::Logs;

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `oneway` binary put into the image (and run for loopback cells).
    pub peer_binary: PathBuf,
    /// Repeats per cell (overrides the scenarios' own).
    pub repeat: Option<u32>,
    /// Leave the containers and networks of the last container cell up.
    pub keep: bool,
    /// Capture packets on the routers (tcpdump).
    pub capture: bool,
    /// Where logs, captures and reports go.
    pub out: PathBuf,
    /// How to rerun one cell (`oneway suite` plus the directories); the cell filter is added.
    pub rerun_prefix: String,
    /// How many cells run at the same time (each in its own address slot, see
    /// [`topology::Layout::relocated`]); 1 with `keep`.
    pub jobs: usize,
}

/// Something for a progress display.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A step of the image build.
    Image(String),
    /// A run starts.
    RunStarted {
        /// Cell name.
        cell: String,
        /// Repeat.
        repeat: u32,
    },
    /// A run ended.
    RunFinished {
        /// Cell name.
        cell: String,
        /// Its verdict.
        verdict: Verdict,
    },
    /// A message worth a line.
    Note(String),
}

/// What the runner needs besides the cells.
pub struct Runner<'a> {
    /// Options.
    pub options: Options,
    /// Manifests by id.
    pub impls: &'a [ImplManifest],
    /// Scenarios.
    pub scenarios: &'a [Scenario],
    /// The engine, `None` when Docker is unreachable (container cells are skipped).
    pub engine: Option<Engine>,
    /// Why there is no engine.
    pub no_engine_reason: Option<String>,
    /// The image tag (with an engine).
    pub image: Option<String>,
    /// The browser variant's tag, when a selected implementation runs in it and it was built.
    pub browser_image: Option<String>,
    /// Whether the image has coturn and tcpdump.
    pub has_turnserver: bool,
    /// Whether the image has tcpdump.
    pub has_tcpdump: bool,
    /// Progress sink.
    pub progress: mpsc::UnboundedSender<Progress>,
    /// Becomes true on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
}

impl Runner<'_> {
    fn note(&self, message: String) {
        let _ = self.progress.send(Progress::Note(message));
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Runs the cells, up to [`Options::jobs`] at a time, each in an address slot no other
    /// running cell has; the results are in the cells' order. Stops starting cells when
    /// cancelled (keeping the results so far; the running ones tear down).
    pub async fn run(&self, cells: &[Cell]) -> Vec<CellResult> {
        let numbered: Vec<(usize, &Cell)> = cells.iter().enumerate().collect();
        self.run_at(&numbered).await
    }

    /// [`Runner::run`] for some cells of a plan, each with its index in the whole plan (which
    /// names its log directory, `cells/NNN-…`): a partition's cells keep the directories they
    /// have in a run of every cell, so merged reports link to the same files.
    pub async fn run_at(&self, cells: &[(usize, &Cell)]) -> Vec<CellResult> {
        let jobs = if self.options.keep {
            1
        } else {
            self.options.jobs.clamp(1, usize::from(topology::SLOTS))
        };
        // Slot 0 first: with one job every cell has the addresses of the module documentation.
        let free = std::sync::Mutex::new((0..jobs as u8).rev().collect::<Vec<u8>>());
        let free = &free;
        futures_util::stream::iter(cells.iter().copied())
            .map(|(index, cell)| async move {
                if self.cancelled() {
                    return None;
                }
                let slot = free.lock().ok().and_then(|mut f| f.pop()).unwrap_or(0);
                let result = self.run_cell(index, cell, slot).await;
                if let Ok(mut f) = free.lock() {
                    f.push(slot);
                }
                Some(result)
            })
            .buffered(jobs)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }

    fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    fn manifest(&self, id: &str) -> Option<&ImplManifest> {
        self.impls.iter().find(|m| m.id == id)
    }

    async fn run_cell(&self, index: usize, cell: &Cell, slot: u8) -> CellResult {
        let rerun = format!("{} --filter '{}'", self.options.rerun_prefix, cell.name);
        let expected = match (&cell.expect.cause, cell.expect.route.as_deref()) {
            (Some(c), _) => format!("{} ({c})", cell.expect.verdict_name()),
            (None, Some(crate::model::REPLY)) => {
                format!("{} (route reply)", cell.expect.verdict_name())
            }
            (None, _) => cell.expect.verdict_name().to_owned(),
        };
        let mut result = CellResult {
            name: cell.name.clone(),
            scenario: cell.scenario.clone(),
            dialer: cell.dialer.clone(),
            listener: cell.listener.clone(),
            verdict: Verdict::Skipped,
            expected,
            reason: cell.expect.reason.clone(),
            why: cell.skip.clone(),
            causes: Vec::new(),
            stats: Stats::default(),
            prediction: Prediction::default(),
            parts: None,
            runs: Vec::new(),
            rerun,
        };
        let Some(scenario) = self.scenario(&cell.scenario) else {
            result.why = Some("scenario vanished".into());
            return result;
        };
        if cell.skip.is_some() {
            return result;
        }
        if !scenario.loopback && self.engine.is_none() {
            result.why = Some(format!(
                "container scenario skipped: {}",
                self.no_engine_reason
                    .as_deref()
                    .unwrap_or("no Docker engine")
            ));
            return result;
        }
        let repeats = self.options.repeat.or(scenario.repeat).unwrap_or(1).max(1);
        let mut latencies = Vec::new();
        for repeat in 1..=repeats {
            if self.cancelled() {
                break;
            }
            let _ = self.progress.send(Progress::RunStarted {
                cell: cell.name.clone(),
                repeat,
            });
            let record = self.run_once(index, cell, scenario, repeat, slot).await;
            if let Some(t) = record.stages.first_echo {
                latencies.push(t);
            }
            let _ = self.progress.send(Progress::RunFinished {
                cell: cell.name.clone(),
                verdict: record.verdict,
            });
            result.runs.push(record);
        }
        let verdicts: Vec<Verdict> = result.runs.iter().map(|r| r.verdict).collect();
        result.verdict = verdict::combine(&verdicts);
        let connected = result
            .runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Connected { .. }))
            .count() as u32;
        let green = verdicts.iter().filter(|v| v.is_green()).count() as u32;
        result.stats = Stats::new(result.runs.len() as u32, connected, green, &latencies);
        for r in &result.runs {
            let c = match &r.outcome {
                Outcome::Connected { path, route } => format!(
                    "connected via {path} ({})",
                    verdict::display_route(route.as_deref(), path)
                ),
                Outcome::Failed { cause } => cause.clone(),
                Outcome::Error { message } => format!("error: {message}"),
            };
            if !result.causes.contains(&c) {
                result.causes.push(c);
            }
        }
        result.why = result.runs.iter().find_map(|r| r.deviation.clone());
        result.parts = result
            .runs
            .iter()
            .find(|r| r.echoed())
            .or(result.runs.first())
            .and_then(|r| r.parts);
        result.prediction = prediction::combine(result.runs.iter().map(|r| &r.prediction));
        result
    }

    async fn run_once(
        &self,
        index: usize,
        cell: &Cell,
        scenario: &Scenario,
        repeat: u32,
        slot: u8,
    ) -> RunRecord {
        let start = Instant::now();
        let dir_name = format!("{:03}-{}-r{repeat}", index + 1, slug(&cell.name));
        let dir = self.options.out.join("cells").join(&dir_name);
        let mut record = RunRecord {
            repeat,
            outcome: Outcome::Error {
                message: String::new(),
            },
            verdict: Verdict::Error,
            deviation: None,
            candidates: Vec::new(),
            tried: Vec::new(),
            fallback_ms: None,
            dialer_path: None,
            listener_path: None,
            dialer_route: None,
            listener_route: None,
            route: None,
            reply_shown: false,
            reply: None,
            stages: Stages::default(),
            impairment: None,
            shaping: scenario.impairment,
            rtt_ms: None,
            stopped_early: None,
            reachability: None,
            mapping: None,
            prediction: Prediction::default(),
            media: None,
            parts: None,
            seconds: 0.0,
            logs: Vec::new(),
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            record.outcome = Outcome::Error {
                message: format!("creating {}: {e}", dir.display()),
            };
            return record;
        }
        let (Some(dialer), Some(listener)) =
            (self.manifest(&cell.dialer), self.manifest(&cell.listener))
        else {
            record.outcome = Outcome::Error {
                message: "manifest vanished".into(),
            };
            return record;
        };
        let mut logs = Logs::default();
        let outcome = if scenario.loopback {
            self.loopback(scenario, dialer, listener, &mut record, &mut logs)
                .await
        } else {
            let layout = topology::layout(&scenario.topology, scenario.impairment).relocated(slot);
            let name = format!("{:03}r{repeat}", index + 1);
            self.containers(
                &name,
                &layout,
                scenario,
                &cell.expect,
                dialer,
                listener,
                &mut record,
                &mut logs,
                &dir,
            )
            .await
        };
        record.outcome = match outcome {
            Ok(o) => o,
            Err(Error::Interrupted) => Outcome::Error {
                message: "interrupted".into(),
            },
            Err(e) => Outcome::Error {
                message: e.to_string(),
            },
        };
        let (v, deviation) = verdict::judge(&cell.expect, &record.outcome);
        let (v, deviation) = if cell.media {
            record.media = crate::media::judge_run(
                &record.outcome,
                &outcome::events(&logs.dialer),
                &outcome::events(&logs.listener),
            );
            record.parts = Some(crate::media::Parts::of(
                v == Verdict::Pass,
                record.media.as_ref(),
            ));
            crate::media::apply(v, deviation, record.media.as_ref())
        } else {
            (v, deviation)
        };
        record.verdict = v;
        record.deviation = deviation;
        record.prediction = prediction::judge(
            record.reachability.as_ref(),
            DialerPlace::of(&scenario.topology),
            &record.outcome,
        );
        logs.finish();
        for (file, text) in &logs.files {
            let path = dir.join(file);
            if std::fs::write(&path, text).is_ok() {
                record.logs.push(format!("cells/{dir_name}/{file}"));
            }
        }
        record.seconds = start.elapsed().as_secs_f64();
        record
    }
}

/// The `expect` verdict as text.
trait VerdictName {
    fn verdict_name(&self) -> &'static str;
}

impl VerdictName for crate::model::Expectation {
    fn verdict_name(&self) -> &'static str {
        match self.verdict {
            crate::model::ExpectedVerdict::Pass => "pass",
            crate::model::ExpectedVerdict::Fail => "fail",
        }
    }
}

/// A file-name-safe form of a cell name.
pub fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("str0m x str0m (same-lan)"), "str0m-x-str0m-same-lan");
    }
}
