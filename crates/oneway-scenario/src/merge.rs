//! Merging partial reports (`oneway suite merge DIR…`): the partitions of one plan become the
//! report a single run would have written.
//!
//! Every input must be a partial report ([`Report::partition`]) of the same commit, scenario
//! set, manifests, selection, costs and plan, with the same image (the same peer binary), and
//! the inputs together must hold every planned cell exactly once. Anything else is refused
//! with a [`MergeError`] that names the difference.
//!
//! The merged report has the cells in plan order and no `partition`; its wall time is the
//! slowest partition's (the partitions ran side by side), its first cell the earliest, and its
//! image is cached only when every partition found it cached.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::partition::PartialInfo;
use crate::report::{ImageInfo, Report};
use crate::run::CellResult;

/// Which property two partial reports disagree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Property {
    /// The source tree's commit.
    Commit,
    /// The scenario files.
    ScenarioSet,
    /// The implementation manifests.
    Manifests,
    /// `--set`, `--impl`, `--filter`, `--ignore`, `--repeat`.
    Selection,
    /// Where the cells' costs came from (`--costs`).
    Costs,
    /// N of `--partition K/N`.
    PartitionCount,
    /// The suite image (the peer binary and the files copied into it), or whether there was a
    /// Docker engine at all.
    Image,
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Commit => "commit",
            Self::ScenarioSet => "scenario set",
            Self::Manifests => "implementation manifests",
            Self::Selection => "cell selection",
            Self::Costs => "cost source",
            Self::PartitionCount => "partition count",
            Self::Image => "image",
        })
    }
}

/// Why partial reports cannot be merged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no partial report to merge")]
    NoInputs,
    /// An input is a full run's report, not a partition's.
    #[error("{input}: not a partial report (it has no \"partition\"; run with --partition K/N)")]
    NotPartial {
        /// The input.
        input: String,
    },
    /// Two inputs differ in a property that must be the same.
    #[error("{input} and {first} differ in their {property}: {theirs} vs {ours}")]
    Mismatch {
        /// What differs.
        property: Property,
        /// The first input, which the others are compared with.
        first: String,
        /// Its value.
        ours: String,
        /// The input that differs.
        input: String,
        /// Its value.
        theirs: String,
    },
    /// Two inputs planned different cells.
    #[error(
        "{input} and {first} planned different cells: {} only in {first}, {} only in {input}{}",
        only_first.len(),
        only_input.len(),
        first_few(only_first.iter().chain(only_input))
    )]
    PlanMismatch {
        /// The first input.
        first: String,
        /// The input that differs.
        input: String,
        /// Cells only the first planned.
        only_first: Vec<String>,
        /// Cells only `input` planned.
        only_input: Vec<String>,
    },
    /// Two inputs are the same partition.
    #[error("{first} and {input} are both partition {partition}")]
    DuplicatePartition {
        /// `K/N`.
        partition: String,
        /// One input.
        first: String,
        /// The other.
        input: String,
    },
    /// Cells are in more than one input.
    #[error("{} in more than one input{}", cells_n(cells.len()), first_few(cells.iter().map(|(c, i)| format!("{c} ({})", i.join(", ")))))]
    DuplicatedCells {
        /// Each duplicated cell with the inputs holding it.
        cells: Vec<(String, Vec<String>)>,
    },
    /// An input has a cell its plan does not have.
    #[error("{input} has {} not in its plan{}", cells_n(cells.len()), first_few(cells.iter()))]
    UnplannedCells {
        /// The input.
        input: String,
        /// The cells.
        cells: Vec<String>,
    },
    /// Planned cells are in no input (a partition is missing, or was interrupted).
    #[error(
        "{} planned, in no input{}{}",
        cells_n(cells.len()),
        if missing_partitions.is_empty() { String::new() } else { format!(" (missing partitions: {})", missing_partitions.join(", ")) },
        first_few(cells.iter())
    )]
    MissingCells {
        /// The cells, in plan order.
        cells: Vec<String>,
        /// The partitions (`K/N`) no input is.
        missing_partitions: Vec<String>,
    },
}

/// `1 cell`, `2 cells`.
fn cells_n(n: usize) -> String {
    if n == 1 {
        "1 cell".to_owned()
    } else {
        format!("{n} cells")
    }
}

/// `": a; b; c; …"` for an error message.
fn first_few<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let items: Vec<String> = items.map(|i| i.to_string()).collect();
    if items.is_empty() {
        return String::new();
    }
    let shown = items.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 3 {
        format!(": {shown}; …")
    } else {
        format!(": {shown}")
    }
}

/// One partial report and a name for it in errors (its directory).
#[derive(Clone, Debug)]
pub struct Input {
    /// How errors name it.
    pub name: String,
    /// The report.
    pub report: Report,
}

fn info(input: &Input) -> Result<&PartialInfo, MergeError> {
    input
        .report
        .partition
        .as_ref()
        .ok_or_else(|| MergeError::NotPartial {
            input: input.name.clone(),
        })
}

/// The image a report's container cells ran in, `no Docker engine`, or `None` when none of its
/// cells needed Docker (nothing to compare).
fn image_text(report: &Report) -> Option<String> {
    match (&report.image, &report.no_docker) {
        (Some(i), _) => Some(i.tag.clone()),
        (None, Some(_)) => Some("no Docker engine".to_owned()),
        (None, None) => None,
    }
}

/// Checks the inputs against each other and merges them into the report one run of the whole
/// plan would have written (see the module documentation).
pub fn merge(inputs: &[Input]) -> Result<Report, MergeError> {
    let first = inputs.first().ok_or(MergeError::NoInputs)?;
    let base = info(first)?;
    for input in &inputs[1..] {
        let other = info(input)?;
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "unknown".to_owned());
        let checks = [
            (
                Property::PartitionCount,
                base.partition.count.to_string(),
                other.partition.count.to_string(),
            ),
            (Property::Commit, opt(&base.commit), opt(&other.commit)),
            (
                Property::ScenarioSet,
                base.scenarios_digest.clone(),
                other.scenarios_digest.clone(),
            ),
            (
                Property::Manifests,
                base.manifests_digest.clone(),
                other.manifests_digest.clone(),
            ),
            (
                Property::Selection,
                base.selection.clone(),
                other.selection.clone(),
            ),
            (Property::Costs, base.costs.clone(), other.costs.clone()),
        ];
        let images = image_text(&first.report).zip(image_text(&input.report));
        for (property, ours, theirs) in checks
            .into_iter()
            .chain(images.map(|(a, b)| (Property::Image, a, b)))
        {
            if ours != theirs {
                return Err(MergeError::Mismatch {
                    property,
                    first: first.name.clone(),
                    ours,
                    input: input.name.clone(),
                    theirs,
                });
            }
        }
        if other.planned != base.planned {
            let a: BTreeSet<&String> = base.planned.iter().collect();
            let b: BTreeSet<&String> = other.planned.iter().collect();
            return Err(MergeError::PlanMismatch {
                first: first.name.clone(),
                input: input.name.clone(),
                only_first: a.difference(&b).map(|s| (*s).clone()).collect(),
                only_input: b.difference(&a).map(|s| (*s).clone()).collect(),
            });
        }
    }
    // Partitions: each at most once.
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for input in inputs {
        let p = info(input)?.partition;
        if let Some(earlier) = seen.insert(p.index, &input.name) {
            return Err(MergeError::DuplicatePartition {
                partition: p.to_string(),
                first: earlier.to_owned(),
                input: input.name.clone(),
            });
        }
    }
    // Cells: each planned cell exactly once.
    let planned: BTreeSet<&str> = base.planned.iter().map(String::as_str).collect();
    let mut holders: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for input in inputs {
        let unplanned: Vec<String> = input
            .report
            .cells
            .iter()
            .filter(|c| !planned.contains(c.name.as_str()))
            .map(|c| c.name.clone())
            .collect();
        if !unplanned.is_empty() {
            return Err(MergeError::UnplannedCells {
                input: input.name.clone(),
                cells: unplanned,
            });
        }
        for c in &input.report.cells {
            holders
                .entry(c.name.as_str())
                .or_default()
                .push(input.name.clone());
        }
    }
    let duplicated: Vec<(String, Vec<String>)> = base
        .planned
        .iter()
        .filter_map(|name| {
            let h = holders.get(name.as_str())?;
            (h.len() > 1).then(|| (name.clone(), h.clone()))
        })
        .collect();
    if !duplicated.is_empty() {
        return Err(MergeError::DuplicatedCells { cells: duplicated });
    }
    let missing: Vec<String> = base
        .planned
        .iter()
        .filter(|name| !holders.contains_key(name.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        let missing_partitions = (1..=base.partition.count)
            .filter(|k| !seen.contains_key(k))
            .map(|k| format!("{k}/{}", base.partition.count))
            .collect();
        return Err(MergeError::MissingCells {
            cells: missing,
            missing_partitions,
        });
    }
    let mut by_name: BTreeMap<&str, &CellResult> = BTreeMap::new();
    for input in inputs {
        for c in &input.report.cells {
            by_name.insert(c.name.as_str(), c);
        }
    }
    let cells = base
        .planned
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).map(|c| (*c).clone()))
        .collect();
    let reports = || inputs.iter().map(|i| &i.report);
    let image = reports().find_map(|r| r.image.as_ref()).map(|i| ImageInfo {
        tag: i.tag.clone(),
        cached: reports().all(|r| r.image.as_ref().is_none_or(|i| i.cached)),
        seconds: reports()
            .filter_map(|r| r.image.as_ref().map(|i| i.seconds))
            .fold(0.0, f64::max),
    });
    Ok(Report {
        format: first.report.format,
        seconds: reports().map(|r| r.seconds).fold(0.0, f64::max),
        first_cell_after: reports()
            .filter_map(|r| r.first_cell_after)
            .min_by(f64::total_cmp),
        image,
        no_docker: reports().find_map(|r| r.no_docker.clone()),
        impls: first.report.impls.clone(),
        scenarios: first.report.scenarios.clone(),
        cells,
        interrupted: reports().any(|r| r.interrupted),
        partition: None,
    })
}
