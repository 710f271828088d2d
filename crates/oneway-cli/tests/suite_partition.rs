//! `oneway suite --partition K/N` and `oneway suite merge` end to end, without Docker:
//! `DOCKER_HOST` names a socket nobody listens on, so the loopback cells run as host processes
//! and every container cell is skipped with that reason, in the full run and in the partitions
//! alike. The planning path (`--plan`) and the running path must deal every cell to exactly one
//! partition, and the merged report must have the cells, verdicts, reasons, rerun commands and
//! log paths of one full run.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `oneway suite …` in `dir`, with no reachable Docker engine.
fn suite(dir: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oneway"));
    cmd.current_dir(dir)
        .env("DOCKER_HOST", "unix:///nonexistent/oneway-test/docker.sock")
        .env("ONEWAY_COMMIT", "test-commit")
        .arg("suite");
    if args.first() != Some(&"merge") {
        cmd.arg("--scenarios")
            .arg(format!("{ROOT}/scenarios"))
            .arg("--impls")
            .arg(format!("{ROOT}/impls"));
    }
    cmd.args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oneway-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn plan_partitions_deal_every_cell_once() {
    let dir = scratch("partition-plan");
    let lines = |o: &Output| -> Vec<String> {
        assert!(o.status.success(), "{}", text(o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let full = lines(&suite(&dir, &["--plan"]));
    assert_eq!(full.len(), 152, "38 scenarios x 4 native pairs");
    let mut dealt = Vec::new();
    for k in 1..=3 {
        let o = suite(&dir, &["--plan", "--partition", &format!("{k}/3")]);
        let part = lines(&o);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("partition {k}/3: ")),
            "{}",
            text(&o)
        );
        // Each slice keeps the plan's order.
        let positions: Vec<usize> = part
            .iter()
            .map(|l| full.iter().position(|f| f == l).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{part:?}");
        dealt.extend(part);
    }
    dealt.sort();
    let mut all = full.clone();
    all.sort();
    assert_eq!(dealt, all, "every planned cell in exactly one partition");
    // The same slice every time.
    assert_eq!(
        lines(&suite(&dir, &["--plan", "--partition", "2/3"])),
        lines(&suite(&dir, &["--plan", "--partition", "count:2/3"]))
    );
    let bad = suite(&dir, &["--plan", "--partition", "4/3"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn three_partitions_merged_equal_one_full_run() {
    let dir = scratch("partition-run");
    let full = suite(&dir.join("full"), &["--out", "out"]);
    assert!(full.status.success(), "{}", text(&full));
    for k in 1..=3 {
        // Each partition in its own directory with the same --out, as CI jobs are.
        let o = suite(
            &dir.join(format!("p{k}")),
            &["--partition", &format!("{k}/3"), "--out", "out"],
        );
        assert!(o.status.success(), "partition {k}: {}", text(&o));
    }
    let merged = suite(
        &dir,
        &["merge", "p1/out", "p2/out", "p3/out", "--out", "merged"],
    );
    assert!(merged.status.success(), "{}", text(&merged));

    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
    };
    let one = read(dir.join("full/out/report.json"));
    let all = read(dir.join("merged/report.json"));
    assert!(all.get("partition").is_none());
    let cells = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let logs: Vec<&serde_json::Value> = c["runs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r["logs"].as_array().unwrap())
                    .collect();
                serde_json::json!([
                    c["name"],
                    c["verdict"],
                    c["expected"],
                    c["why"],
                    c["causes"],
                    c["rerun"],
                    logs
                ])
            })
            .collect()
    };
    let (one_cells, all_cells) = (cells(&one), cells(&all));
    assert_eq!(one_cells.len(), 152);
    assert_eq!(all_cells, one_cells);
    let passed = one_cells.iter().filter(|c| c[1] == "pass").count();
    assert_eq!(passed, 4, "the loopback cells ran: {one_cells:?}");
    for key in ["impls", "scenarios", "no_docker", "interrupted"] {
        assert_eq!(all[key], one[key], "{key}");
    }
    // The merged directory has every run's logs, under the names the full run gave them.
    for c in &all_cells {
        for log in c[6].as_array().unwrap() {
            let log = log.as_str().unwrap();
            assert!(dir.join("merged").join(log).is_file(), "{log}");
            assert!(dir.join("full/out").join(log).is_file(), "{log}");
        }
    }
    assert!(dir.join("merged/report.md").is_file() && dir.join("merged/junit.xml").is_file());

    // Two partitions of three: named refusal, nothing written.
    let short = suite(&dir, &["merge", "p1/out", "p3/out", "--out", "short"]);
    assert_eq!(short.status.code(), Some(1), "{}", text(&short));
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("missing partitions: 2/3"),
        "{}",
        text(&short)
    );
    assert!(!dir.join("short/report.json").exists());
    // A full run's report is not a partition's.
    let mixed = suite(&dir, &["merge", "p1/out", "full/out", "--out", "mixed"]);
    assert!(
        String::from_utf8_lossy(&mixed.stderr).contains("not a partial report"),
        "{}",
        text(&mixed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
