//! `--partition K/N` and merge, without Docker: the committed default set dealt into three
//! partitions (snapshot of the slices and their expected seconds), partial reports of those
//! slices merged into a report identical to one run's (all three renderings), and every way
//! merge refuses its inputs, each with its named error.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a test may unwrap

use std::path::Path;

use oneway_scenario::merge::{self, Input, MergeError, Property};
use oneway_scenario::model::{self, ExpectedVerdict, ImplManifest, Scenario};
use oneway_scenario::partition::{self, Costs, PartialInfo, Partition};
use oneway_scenario::plan::{self, Cell};
use oneway_scenario::report::{ImageInfo, Report, ScenarioInfo};
use oneway_scenario::run::{CellResult, RunRecord, Stages};
use oneway_scenario::verdict::{Outcome, Stats, Verdict};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The default set as `oneway suite` plans it: every scenario, the manifests that are not
/// opt-in.
fn default_set() -> (Vec<ImplManifest>, Vec<Scenario>, Vec<Cell>) {
    let impls =
        model::select_impls(model::load_impls(&root().join("impls")).unwrap(), &[]).unwrap();
    let scenarios = model::load_scenarios(&root().join("scenarios")).unwrap();
    let cells = plan::cells(&impls, &scenarios);
    (impls, scenarios, cells)
}

/// A result for `cell` as a run that met its expectation would record it.
fn result(cell: &Cell, seconds: f64) -> CellResult {
    let (verdict, outcome) = match (&cell.skip, cell.expect.verdict) {
        (Some(_), _) => (Verdict::Skipped, None),
        (None, ExpectedVerdict::Pass) => (
            Verdict::Pass,
            Some(Outcome::Connected {
                path: cell.expect.path.clone().unwrap_or_else(|| "host".into()),
                route: cell.expect.route.clone(),
            }),
        ),
        (None, ExpectedVerdict::Fail) => (
            Verdict::ExpectedFail,
            Some(Outcome::Failed {
                cause: cell.expect.cause.clone().unwrap_or_default(),
            }),
        ),
    };
    let runs: Vec<RunRecord> = outcome
        .into_iter()
        .map(|outcome| RunRecord {
            repeat: 1,
            outcome,
            verdict,
            deviation: None,
            candidates: vec!["host udp 10.0.0.2:5000".into()],
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
            shaping: None,
            rtt_ms: None,
            stopped_early: None,
            reachability: None,
            mapping: None,
            prediction: Default::default(),
            media: None,
            parts: None,
            seconds,
            logs: vec![format!("cells/{}/dialer.log", cell.name.len())],
        })
        .collect();
    let n = runs.len() as u32;
    CellResult {
        name: cell.name.clone(),
        scenario: cell.scenario.clone(),
        dialer: cell.dialer.clone(),
        listener: cell.listener.clone(),
        verdict,
        expected: format!("{:?}", cell.expect.verdict),
        reason: cell.expect.reason.clone(),
        why: cell.skip.clone(),
        causes: Vec::new(),
        stats: Stats::new(n, n, n, &[]),
        prediction: Default::default(),
        parts: None,
        runs,
        rerun: format!("oneway suite --out suite-out --filter '{}'", cell.name),
    }
}

/// The report of one run of every cell.
fn full_report(scenarios: &[Scenario], cells: &[Cell], costs: &[f64]) -> Report {
    Report {
        format: 1,
        seconds: 300.0,
        first_cell_after: Some(2.5),
        image: Some(ImageInfo {
            tag: "oneway-suite:0123456789abcdef".into(),
            cached: true,
            seconds: 0.5,
        }),
        no_docker: None,
        impls: vec!["str0m".into(), "webrtc-rs".into()],
        scenarios: scenarios
            .iter()
            .map(|s| ScenarioInfo {
                name: s.name.clone(),
                description: s.description.clone(),
            })
            .collect(),
        cells: cells
            .iter()
            .zip(costs)
            .map(|(c, s)| result(c, *s))
            .collect(),
        interrupted: false,
        partition: None,
    }
}

/// The partial report of partition `p`: what `oneway suite --partition p` writes.
fn partial(full: &Report, cells: &[Cell], costs: &[f64], p: Partition) -> Input {
    let (picked, expected) = partition::select(cells, costs, p);
    let mut report = full.clone();
    report.cells = picked.iter().map(|&i| full.cells[i].clone()).collect();
    // The slowest partition took as long as the whole run; the others less.
    report.seconds = full.seconds - 10.0 * f64::from(p.index - 1);
    report.first_cell_after = full.first_cell_after.map(|t| t + f64::from(p.index - 1));
    report.partition = Some(PartialInfo {
        partition: p,
        commit: Some("070e70f".into()),
        scenarios_digest: "s1".into(),
        manifests_digest: "m1".into(),
        selection: "--set default".into(),
        costs: "scenario properties".into(),
        planned: cells.iter().map(|c| c.name.clone()).collect(),
        assigned: picked.iter().map(|&i| cells[i].name.clone()).collect(),
        expected_seconds: expected,
    });
    Input {
        name: format!("part-{}", p.index),
        report,
    }
}

fn three() -> (Report, Vec<Input>) {
    let (impls, scenarios, cells) = default_set();
    let costs = Costs::estimated().of(&cells, &scenarios, &impls, None);
    let full = full_report(&scenarios, &cells, &costs);
    let inputs = (1..=3)
        .map(|index| partial(&full, &cells, &costs, Partition { index, count: 3 }))
        .collect();
    (full, inputs)
}

#[test]
fn the_default_set_deals_into_three_balanced_partitions() {
    let (impls, scenarios, cells) = default_set();
    assert_eq!(cells.len(), 152);
    let costs = Costs::estimated().of(&cells, &scenarios, &impls, None);
    let mut out = Vec::new();
    let mut seen = vec![0; cells.len()];
    let mut loads = Vec::new();
    for index in 1..=3 {
        let p = Partition { index, count: 3 };
        let (picked, expected) = partition::select(&cells, &costs, p);
        assert_eq!(
            partition::select(&cells, &costs, p).0,
            picked,
            "deterministic"
        );
        assert!(picked.windows(2).all(|w| w[0] < w[1]), "plan order");
        let load: f64 = picked.iter().map(|&i| costs[i]).sum();
        assert!((load - expected[index as usize - 1]).abs() < 1e-9);
        loads.push(load);
        out.push(format!(
            "partition {p}: {} cells, expected {load:.1} s",
            picked.len()
        ));
        for &i in &picked {
            seen[i] += 1;
            out.push(format!("  {:5.1} s  {}", costs[i], cells[i].name));
        }
    }
    assert!(
        seen.iter().all(|&n| n == 1),
        "every cell in exactly one partition"
    );
    // Longest first: no partition is more than the dearest cell behind another.
    let dearest = costs.iter().copied().fold(0.0, f64::max);
    let spread = loads.iter().copied().fold(0.0, f64::max)
        - loads.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(spread <= dearest, "{loads:?}");
    insta::assert_snapshot!(out.join("\n"));
}

#[test]
fn costs_from_an_earlier_report_replace_the_estimates() {
    let (impls, scenarios, cells) = default_set();
    let estimated = Costs::estimated().of(&cells, &scenarios, &impls, None);
    let mut earlier = full_report(&scenarios, &cells, &estimated);
    // The earlier run measured one cell at 100 s a run; with --repeat 2 it costs 200 s.
    let slow = cells.iter().position(|c| c.skip.is_none()).unwrap();
    earlier.cells[slow].runs[0].seconds = 100.0;
    let measured = Costs::from_report(&earlier, "abc");
    assert_eq!(measured.source(), "report sha256:abc");
    let costs = measured.of(&cells, &scenarios, &impls, Some(2));
    assert_eq!(costs[slow], 200.0);
    let (picked, _) = partition::select(&cells, &costs, Partition { index: 1, count: 3 });
    // The dearest cell goes first, to partition 1, and little else joins it.
    assert!(picked.contains(&slow));
    assert!(picked.len() < cells.len() / 3, "{}", picked.len());
}

#[test]
fn three_partitions_merge_into_the_report_of_one_run() {
    let (full, inputs) = three();
    let merged = merge::merge(&inputs).unwrap();
    assert_eq!(merged.cells.len(), 152);
    assert_eq!(merged, full);
    assert_eq!(merged.to_markdown(), full.to_markdown());
    assert_eq!(merged.to_json(), full.to_json());
    assert_eq!(merged.to_junit(), full.to_junit());
    // In any order of the inputs.
    let mut reversed = inputs;
    reversed.reverse();
    assert_eq!(merge::merge(&reversed).unwrap(), full);
}

#[test]
fn a_partial_report_says_so_and_round_trips() {
    let (_, inputs) = three();
    let r = &inputs[1].report;
    let md = r.to_markdown();
    assert!(md.contains("**Partial report**: partition 2/3"), "{md}");
    let back: Report = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(&back, r);
    // A whole run's JSON has no "partition" key (its format is unchanged).
    let (full, _) = three();
    assert!(!full.to_json().contains("\"partition\""));
}

/// Each way merge refuses, with its named error; the messages are in the snapshot.
#[test]
fn merge_refuses_inputs_that_do_not_belong_together() {
    let mut messages = Vec::new();
    let mut refuse = |what: &str, inputs: Vec<Input>| -> MergeError {
        let e = merge::merge(&inputs).unwrap_err();
        messages.push(format!("{what}: {e}"));
        e
    };
    let info = |i: &mut Input| i.report.partition.as_mut().unwrap().clone();
    let set = |f: &dyn Fn(&mut PartialInfo)| {
        let (_, mut inputs) = three();
        let mut p = info(&mut inputs[2]);
        f(&mut p);
        inputs[2].report.partition = Some(p);
        inputs
    };

    assert_eq!(refuse("none", Vec::new()), MergeError::NoInputs);

    let (full, mut inputs) = three();
    inputs[1].report = full;
    assert!(
        matches!(refuse("full run", inputs), MergeError::NotPartial { input } if input == "part-2")
    );

    let property = |e: MergeError| match e {
        MergeError::Mismatch { property, .. } => Some(property),
        _ => None,
    };
    let e = refuse("commit", set(&|p| p.commit = Some("8d1496b".into())));
    assert_eq!(property(e), Some(Property::Commit));
    let e = refuse("commit unknown", set(&|p| p.commit = None));
    assert_eq!(property(e), Some(Property::Commit));
    let e = refuse("scenarios", set(&|p| p.scenarios_digest = "s2".into()));
    assert_eq!(property(e), Some(Property::ScenarioSet));
    let e = refuse("manifests", set(&|p| p.manifests_digest = "m2".into()));
    assert_eq!(property(e), Some(Property::Manifests));
    let e = refuse("selection", set(&|p| p.selection = "--set ci".into()));
    assert_eq!(property(e), Some(Property::Selection));
    let e = refuse("costs", set(&|p| p.costs = "report sha256:abc".into()));
    assert_eq!(property(e), Some(Property::Costs));
    let e = refuse("count", set(&|p| p.partition.count = 4));
    assert_eq!(property(e), Some(Property::PartitionCount));

    let (_, mut inputs) = three();
    inputs[2].report.image.as_mut().unwrap().tag = "oneway-suite:fedcba9876543210".into();
    assert_eq!(property(refuse("image", inputs)), Some(Property::Image));
    let (_, mut inputs) = three();
    inputs[2].report.image = None;
    inputs[2].report.no_docker = Some("no Docker engine reachable".into());
    assert_eq!(property(refuse("no engine", inputs)), Some(Property::Image));

    let e = refuse(
        "plan",
        set(&|p| {
            p.planned.pop();
            p.planned.push("str0m x str0m (new-scenario)".into());
        }),
    );
    assert!(
        matches!(e, MergeError::PlanMismatch { ref only_first, ref only_input, .. }
        if only_first.len() == 1 && only_input == &["str0m x str0m (new-scenario)"])
    );

    let (_, mut inputs) = three();
    inputs.push(inputs[0].clone());
    inputs[3].name = "part-1-again".into();
    assert!(matches!(
        refuse("same partition twice", inputs),
        MergeError::DuplicatePartition { .. }
    ));

    let (_, mut inputs) = three();
    let stray = inputs[0].report.cells[0].clone();
    inputs[1].report.cells.push(stray);
    assert!(matches!(
        refuse("duplicated cell", inputs),
        MergeError::DuplicatedCells { ref cells } if cells.len() == 1 && cells[0].1 == ["part-1", "part-2"]
    ));

    let (_, mut inputs) = three();
    inputs[0].report.cells[0].name = "str0m x str0m (renamed)".into();
    assert!(matches!(
        refuse("unplanned cell", inputs),
        MergeError::UnplannedCells { ref input, .. } if input == "part-1"
    ));

    let (_, mut inputs) = three();
    inputs.remove(1);
    assert!(matches!(
        refuse("missing partition", inputs),
        MergeError::MissingCells { ref missing_partitions, .. } if missing_partitions == &["2/3"]
    ));

    let (_, mut inputs) = three();
    inputs[2].report.cells.pop();
    inputs[2].report.interrupted = true;
    assert!(matches!(
        refuse("interrupted partition", inputs),
        MergeError::MissingCells { ref cells, ref missing_partitions } if cells.len() == 1 && missing_partitions.is_empty()
    ));

    insta::assert_snapshot!(messages.join("\n"));
}
