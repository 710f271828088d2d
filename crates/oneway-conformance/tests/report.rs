//! Snapshots of the three renderings of a conformance report (a fixed report covering every
//! verdict), and the catalogue's citations.

use oneway_conformance::checks::{CHECKS, Level};
use oneway_conformance::report::{CheckResult, ConformanceReport, Verdict};

fn fixed_report() -> ConformanceReport {
    let verdicts = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::NotApplicable,
        Verdict::Error,
    ];
    let results = CHECKS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let verdict = verdicts[i % verdicts.len()];
            let mut r = CheckResult::new(c, verdict, format!("observed {i} | with a pipe"));
            r.seconds = 0.5 * i as f64;
            if verdict == Verdict::Fail {
                r.logs = vec![format!("{}/listener.log", c.id)];
            }
            r
        })
        .collect();
    ConformanceReport {
        format: 1,
        implementation: "mypeer".to_owned(),
        name: "My peer 1.2".to_owned(),
        roles: vec![
            oneway_scenario::model::Role::Listen,
            oneway_scenario::model::Role::Dial,
        ],
        seconds: 42.0,
        results,
    }
}

#[test]
fn markdown_report() {
    insta::assert_snapshot!(fixed_report().to_markdown());
}

#[test]
fn junit_report() {
    insta::assert_snapshot!(fixed_report().to_junit());
}

#[test]
fn json_report_round_trips() {
    let report = fixed_report();
    let json = report.to_json();
    let back: ConformanceReport = serde_json::from_str(&json).expect("parses");
    assert_eq!(back, report);
    insta::assert_snapshot!(json);
}

#[test]
fn conformant_only_when_every_must_passes() {
    let mut report = fixed_report();
    assert!(!report.conformant(), "a failed MUST");
    for r in &mut report.results {
        r.verdict = Verdict::Pass;
    }
    assert!(report.conformant());
    let should = report
        .results
        .iter_mut()
        .find(|r| r.level == Level::Should)
        .expect("a SHOULD check");
    should.verdict = Verdict::Fail;
    assert!(report.conformant(), "a failed SHOULD does not count");
    let must = report
        .results
        .iter()
        .position(|r| r.level == Level::Must)
        .expect("a MUST check");
    report.results[must].verdict = Verdict::Error;
    assert!(
        !report.conformant(),
        "a MUST the harness could not judge counts"
    );
    report.results[must].verdict = Verdict::NotApplicable;
    assert!(report.conformant(), "n/a does not count");
}

#[test]
fn every_check_cites_a_spec_section_and_has_a_unique_id() {
    let mut ids = std::collections::BTreeSet::new();
    for c in CHECKS {
        assert!(ids.insert(c.id), "duplicate id {}", c.id);
        assert!(c.spec.contains('§'), "{} cites a section: {}", c.id, c.spec);
        assert!(
            c.spec.contains(".md"),
            "{} cites a spec file: {}",
            c.id,
            c.spec
        );
    }
}
