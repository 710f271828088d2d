//! `oneway suite --set ci` end to end: the loopback cell, and with a Docker engine the small
//! container set (same LAN, first candidate black-holed, listener behind a port-restricted NAT,
//! reached by the reply route). Builds the suite image from this test's `oneway` binary (cached by
//! content hash). Without Docker, checks the one-line notice and that container cells are
//! skipped with that reason.

use std::process::Command;

#[test]
fn ci_set_runs_with_correct_verdicts_and_three_reports() {
    let out = std::env::temp_dir().join(format!("oneway-suite-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let output = Command::new(env!("CARGO_BIN_EXE_oneway"))
        .args(["suite", "--set", "ci", "--out"])
        .arg(&out)
        .arg("--scenarios")
        .arg(format!("{root}/scenarios"))
        .arg("--impls")
        .arg(format!("{root}/impls"))
        .args(["--filter", "str0m x str0m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = output.id();
    let output = output.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}); stderr:\n{stderr}")),
    )
    .unwrap();
    assert!(out.join("report.md").exists() && out.join("junit.xml").exists());
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuites"), "{junit}");
    let verdict = |scenario: &str| -> (String, String) {
        let cell = json["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["scenario"] == scenario)
            .unwrap_or_else(|| panic!("no cell for {scenario}"));
        (
            cell["verdict"].as_str().unwrap_or_default().to_owned(),
            cell["why"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(verdict("loopback").0, "pass", "{stdout}\n{stderr}");
    if json["no_docker"].is_string() {
        assert!(stderr.contains("no Docker engine reachable"), "{stderr}");
        let (v, why) = verdict("same-lan");
        assert_eq!(v, "skipped");
        assert!(why.contains("no Docker engine"), "{why}");
        return;
    }
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(verdict("same-lan").0, "pass", "{stdout}");
    assert_eq!(verdict("first-candidate-black-holed").0, "pass", "{stdout}");
    // Unreachable one-way; the runner carries the dialer's reply code and the listener punches
    // (`spec/handshake.md` §11).
    assert_eq!(
        verdict("listener-behind-port-restricted").0,
        "pass",
        "{stdout}"
    );
    let punched = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scenario"] == "listener-behind-port-restricted")
        .unwrap();
    assert_eq!(
        punched["runs"][0]["route"].as_str(),
        Some("reply: punched"),
        "{punched}"
    );
    // The fallback cell tried the black-holed candidate first and moved on.
    let cell = json["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scenario"] == "first-candidate-black-holed")
        .unwrap();
    let run = &cell["runs"][0];
    assert!(run["tried"].as_array().unwrap().len() >= 2, "{run}");
    assert!(run["fallback_ms"].as_f64().unwrap() > 0.0, "{run}");
    assert_eq!(run["listener_path"]["family"], "ipv4", "{run}");
    // Nothing is left behind.
    let left = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=oneway.suite.pid={pid}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(left, "", "containers left behind");
    let _ = std::fs::remove_dir_all(&out);
}
