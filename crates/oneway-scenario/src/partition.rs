//! Partitions of the matrix (`oneway suite --partition K/N`): a deterministic slice of the
//! cells, balanced by each cell's expected cost, and the provenance a partial report carries so
//! that [`crate::merge`] can check that its inputs belong together.
//!
//! A cell's cost is its expected wall time in seconds. It is known in one of two ways:
//!
//! - **from an earlier report** ([`Costs::from_report`], `--costs report.json`): the seconds the
//!   cell's runs took there, per run, times the runs planned now;
//! - **from the scenario's properties** ([`estimate`]), for every cell the earlier report does
//!   not have, or when there is none: the containers of its topology (routers, STUN/TURN, the
//!   impairment hop), the handshake's round trips at the scenario's RTT, the early stop of a
//!   cell that expects `listener-unreachable` or the dialer's whole timeout for another expected
//!   failure, the browser's start-up, all times the repeats; a skipped cell costs nothing.
//!
//! The cells are dealt out longest first, each to the partition with the least cost so far
//! (ties: the lower partition; equal costs: the earlier cell), so every job that plans the same
//! cells with the same costs gets the same slices, and each slice keeps the plan's order.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::model::{ExpectedVerdict, ImplManifest, Scenario};
use crate::plan::Cell;
use crate::report::Report;

/// `K/N`: the K-th of N slices (1-based, like `cargo nextest --partition count:K/N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// K, from 1 to `count`.
    pub index: u32,
    /// N, at least 1.
    pub count: u32,
}

/// Why a `--partition` value is not `K/N` with 1 ≤ K ≤ N.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionParseError {
    /// Not of the form `K/N` (or `count:K/N`).
    #[error("{0:?} is not K/N (for example 2/3)")]
    Syntax(String),
    /// N is 0, or K is 0 or larger than N.
    #[error("{index}/{count}: K must be between 1 and N, and N at least 1")]
    OutOfRange {
        /// K.
        index: u32,
        /// N.
        count: u32,
    },
}

impl FromStr for Partition {
    type Err = PartitionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = s.strip_prefix("count:").unwrap_or(s);
        let syntax = || PartitionParseError::Syntax(s.to_owned());
        let (k, n) = body.split_once('/').ok_or_else(syntax)?;
        let index: u32 = k.trim().parse().map_err(|_| syntax())?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 || index == 0 || index > count {
            return Err(PartitionParseError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

// The constants below were fitted to one run of the default set on 2 cores (2026-12-06,
// `--jobs 2`): a cell took 3 s on one LAN (2 containers), 5.5-6.5 s behind one NAT (4),
// 8 s behind two (5), 8-9.5 s when the listener is unreachable, and the added RTT of the
// impaired links barely showed.

/// Seconds of a container cell besides its containers and the handshake (the networks).
const CONTAINER_SETUP_SECS: f64 = 0.5;
/// Seconds per container of the cell's topology (create, start, routes and rule sets, and
/// its removal).
const CONTAINER_SECS: f64 = 1.0;
/// Seconds a loopback cell spends besides the handshake (two host processes).
const LOOPBACK_SETUP_SECS: f64 = 0.2;
/// Seconds of a handshake with no added delay (token, checks, DTLS, proof, echo, linger).
const HANDSHAKE_SECS: f64 = 1.0;
/// Round trips of a one-way handshake and its echo, for the scenario's RTT.
const HANDSHAKE_ROUND_TRIPS: f64 = 6.0;
/// Seconds Chromium takes to start, per browser peer in the cell.
const BROWSER_SECS: f64 = 6.0;
/// Seconds a pass by the reply route adds (an estimate, not yet fitted): the dialer shows its
/// code within about 1 s, then the listener's checks open the way.
const REPLY_SECS: f64 = 1.5;
/// Seconds a cell that judges media adds to a pass: two renegotiations per side and the
/// dialer's media window (the committed manifests' `--media-window 6s`).
const MEDIA_SECS: f64 = 7.0;
/// Seconds before the runner stops a cell that expects `listener-unreachable` (the settle
/// window plus the checks' first retransmissions; see the runner's early stop).
const UNREACHABLE_SECS: f64 = 3.5;

/// The expected seconds of one cell from its scenario and manifests alone (see the module
/// documentation); `repeat` overrides the scenario's repeats as `--repeat` does.
pub fn estimate(
    cell: &Cell,
    scenario: &Scenario,
    impls: &[ImplManifest],
    repeat: Option<u32>,
) -> f64 {
    if cell.skip.is_some() {
        return 0.0;
    }
    let manifest = |id: &str| impls.iter().find(|m| m.id == id);
    let (dialer, listener) = (manifest(&cell.dialer), manifest(&cell.listener));
    let mut secs = if scenario.loopback {
        LOOPBACK_SETUP_SECS
    } else {
        let layout = crate::topology::layout(&scenario.topology, scenario.impairment);
        CONTAINER_SETUP_SECS + CONTAINER_SECS * layout.nodes.len() as f64
    };
    let rtt = scenario
        .impairment
        .map_or(0.0, |i| f64::from(i.rtt_ms) / 1000.0);
    let loss = scenario.impairment.map_or(0.0, |i| i.loss_percent);
    secs += match cell.expect.verdict {
        ExpectedVerdict::Pass => {
            let reply = if cell.expect.route.as_deref() == Some(crate::model::REPLY) {
                REPLY_SECS
            } else {
                0.0
            };
            let media = if cell.media { MEDIA_SECS } else { 0.0 };
            HANDSHAKE_SECS + HANDSHAKE_ROUND_TRIPS * rtt * (1.0 + loss / 10.0) + reply + media
        }
        ExpectedVerdict::Fail
            if cell.expect.cause.as_deref().is_some_and(|c| {
                c.starts_with("listener-unreachable") || c.starts_with("reply-unreachable")
            }) =>
        {
            UNREACHABLE_SECS
        }
        // Any other failure ends when the dialer gives up.
        ExpectedVerdict::Fail => scenario
            .timeout_secs
            .or(dialer.map(|d| d.timeout_secs))
            .unwrap_or(10) as f64,
    };
    for m in [dialer, listener].into_iter().flatten() {
        secs += m.startup_secs as f64;
        if crate::image::Variant::from_image(&m.image) == Some(crate::image::Variant::Browser) {
            secs += BROWSER_SECS;
        }
    }
    let repeats = repeat.or(scenario.repeat).unwrap_or(1).max(1);
    secs * f64::from(repeats)
}

/// Where the costs of the cells come from.
#[derive(Clone, Debug, Default)]
pub struct Costs {
    /// Seconds per run, by cell name, from an earlier report.
    per_run: BTreeMap<String, f64>,
    /// What [`Costs::source`] says.
    source: String,
}

impl Costs {
    /// Costs from the scenarios' properties alone.
    pub fn estimated() -> Self {
        Self {
            per_run: BTreeMap::new(),
            source: "scenario properties".to_owned(),
        }
    }

    /// Costs measured by an earlier run: each cell's seconds per run in `report` (cells with no
    /// run there are estimated). `digest` names the file in [`Costs::source`].
    pub fn from_report(report: &Report, digest: &str) -> Self {
        let per_run = report
            .cells
            .iter()
            .filter(|c| !c.runs.is_empty())
            .map(|c| {
                let secs: f64 = c.runs.iter().map(|r| r.seconds).sum();
                (c.name.clone(), secs / c.runs.len() as f64)
            })
            .collect();
        Self {
            per_run,
            source: format!("report sha256:{digest}"),
        }
    }

    /// Reads an earlier run's `report.json` (see [`Costs::from_report`]).
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let report: Report = serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self::from_report(&report, &hex(&Sha256::digest(&bytes))))
    }

    /// `scenario properties`, or `report sha256:<digest>`: recorded in partial reports, where
    /// merge checks that every partition dealt the cells with the same costs.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expected seconds of each cell, in order.
    pub fn of(
        &self,
        cells: &[Cell],
        scenarios: &[Scenario],
        impls: &[ImplManifest],
        repeat: Option<u32>,
    ) -> Vec<f64> {
        cells
            .iter()
            .map(|c| {
                let Some(s) = scenarios.iter().find(|s| s.name == c.scenario) else {
                    return 0.0;
                };
                match self.per_run.get(&c.name) {
                    Some(per_run) if c.skip.is_none() => {
                        per_run * f64::from(repeat.or(s.repeat).unwrap_or(1).max(1))
                    }
                    _ => estimate(c, s, impls, repeat),
                }
            })
            .collect()
    }
}

/// The partition (0-based) of each cell: longest first, each to the least loaded partition.
pub fn assign(costs: &[f64], count: u32) -> Vec<u32> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0_f64; count as usize];
    let mut out = vec![0; costs.len()];
    for i in order {
        let mut best = 0;
        for (p, l) in load.iter().enumerate() {
            if *l < load[best] {
                best = p;
            }
        }
        load[best] += costs[i].max(0.0);
        out[i] = best as u32;
    }
    out
}

/// The cells of `partition` with their index in `cells` (the plan), in plan order, and the
/// expected seconds of every partition (index 0 is partition 1).
pub fn select(cells: &[Cell], costs: &[f64], partition: Partition) -> (Vec<usize>, Vec<f64>) {
    let assigned = assign(costs, partition.count);
    let mut loads = vec![0.0; partition.count as usize];
    for (p, c) in assigned.iter().zip(costs) {
        loads[*p as usize] += c;
    }
    let picked = (0..cells.len())
        .filter(|&i| assigned[i] + 1 == partition.index)
        .collect();
    (picked, loads)
}

/// What a partial report carries (`"partition"` in its `report.json`) so that merge can check
/// its inputs came from one source tree, one scenario set, one set of manifests and one plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialInfo {
    /// Which slice this is.
    pub partition: Partition,
    /// The commit of the source tree (`ONEWAY_COMMIT`, else `git rev-parse HEAD` with
    /// `-dirty` when tracked files changed), when known.
    pub commit: Option<String>,
    /// [`digest_dir`] of the scenario directory.
    pub scenarios_digest: String,
    /// [`digest_dir`] of the manifest directory.
    pub manifests_digest: String,
    /// The options that choose the cells and their runs (`--set`, `--impl`, `--filter`,
    /// `--ignore`, `--repeat`), as text.
    pub selection: String,
    /// Where the costs came from ([`Costs::source`]).
    pub costs: String,
    /// Every planned cell of the whole matrix, in plan order.
    pub planned: Vec<String>,
    /// The cells dealt to this partition, in plan order.
    pub assigned: Vec<String>,
    /// Expected seconds of each partition (index 0 is partition 1).
    pub expected_seconds: Vec<f64>,
}

/// SHA-256 over the names and contents of a directory's `*.toml` files, in name order.
pub fn digest_dir(dir: &Path) -> Result<String, Error> {
    let mut h = Sha256::new();
    for (path, text) in crate::model::read_dir_toml(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    Ok(hex(&h.finalize()))
}

/// The commit of the git work tree holding `dir` (`<sha>-dirty` when tracked files differ from
/// it), or `None` without git or outside a work tree.
pub fn commit_of(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "HEAD"]).filter(|h| !h.is_empty())?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse_like_nextest() {
        assert_eq!(
            "2/3".parse::<Partition>(),
            Ok(Partition { index: 2, count: 3 })
        );
        assert_eq!(
            "count:1/1".parse::<Partition>(),
            Ok(Partition { index: 1, count: 1 })
        );
        assert_eq!(
            "0/3".parse::<Partition>(),
            Err(PartitionParseError::OutOfRange { index: 0, count: 3 })
        );
        assert_eq!(
            "4/3".parse::<Partition>(),
            Err(PartitionParseError::OutOfRange { index: 4, count: 3 })
        );
        assert!(matches!(
            "hash:1/2".parse::<Partition>(),
            Err(PartitionParseError::Syntax(_))
        ));
        assert_eq!(Partition { index: 2, count: 3 }.to_string(), "2/3");
    }

    #[test]
    fn the_longest_cells_are_spread_first() {
        // 9 + 1 | 5 + 4 | 5 + 3 + 2
        let costs = [1.0, 9.0, 5.0, 5.0, 4.0, 3.0, 2.0];
        assert_eq!(assign(&costs, 3), [0, 0, 1, 2, 1, 2, 2]);
        assert_eq!(assign(&costs, 1), [0; 7]);
        // More partitions than cells: the extra ones are empty.
        assert_eq!(assign(&[1.0, 1.0], 4), [0, 1]);
    }
}
