//! The recipe of `docs/implementers.md` ("Your image without a registry"), as written there:
//! `oneway image --tag … --list docs/examples/python-image/image.list` builds a `FROM scratch`
//! image with Debian's Python and the example program, and a container of it, started the way
//! the suite starts a third-party peer (`Engine::spawn_peer_container`), provides what the
//! document says: root, working directory `/`, a writable `/tmp`, the runner's environment,
//! and a working standard library. Without a Docker engine, `oneway image` must say so and
//! fail.

use std::process::Command;
use std::time::Duration;

use oneway_scenario::docker::{Engine, Line};

const TAG: &str = "oneway-recipe-example:test";

#[test]
fn the_documented_python_recipe_builds_a_working_image() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let list = format!("{root}/docs/examples/python-image/image.list");
    let doc = std::fs::read_to_string(format!("{root}/docs/implementers.md")).unwrap();
    assert!(
        doc.contains("oneway image --tag mypeer:latest --list image.list"),
        "docs/implementers.md no longer shows the command this test runs"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let engine = runtime.block_on(Engine::connect("image-recipe-test"));
    let output = Command::new(env!("CARGO_BIN_EXE_oneway"))
        .args(["image", "--tag", TAG, "--list", &list])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Ok(engine) = engine else {
        assert!(
            !output.status.success(),
            "built without an engine: {stdout}"
        );
        assert!(stderr.contains("Docker"), "{stderr}");
        println!("no Docker engine: only the failure message was checked");
        return;
    };
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!("image {TAG} built in ")),
        "{stdout}"
    );

    let facts = runtime.block_on(async {
        let argv = ["/usr/bin/python3", "/app/facts.py"].map(str::to_owned);
        let env = ["ONEWAY_ROLE=listen".to_owned()];
        let (id, mut lines) = engine
            .spawn_peer_container(TAG, "none", &argv, &env)
            .await
            .unwrap();
        let mut out = Vec::new();
        // The program prints one line and exits; the stream ends with the container.
        let collect = async {
            while let Some(line) = lines.recv().await {
                out.push(line);
            }
        };
        let ended = tokio::time::timeout(Duration::from_secs(60), collect).await;
        // The log stream can end a moment before the engine records the exit (bounded).
        let mut code = None;
        for _ in 0..50 {
            code = engine.container_exit_code(&id).await.unwrap();
            if code.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        engine.remove_container(&id).await.unwrap();
        assert!(ended.is_ok(), "the container did not end: {out:?}");
        assert_eq!(code, Some(0), "{out:?}");
        let line = out
            .iter()
            .find_map(|l| match l {
                Line::Stdout(s) if s.starts_with('{') => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no JSON line: {out:?}"));
        serde_json::from_str::<serde_json::Value>(&line).unwrap()
    });
    let _ = Command::new("docker").args(["rmi", TAG]).output();
    assert_eq!(facts["uid"], 0, "{facts}");
    assert_eq!(facts["cwd"], "/", "{facts}");
    assert_eq!(facts["tmp_writable"], true, "{facts}");
    assert_eq!(facts["role"], "listen", "{facts}");
    assert_eq!(facts["missing_modules"], serde_json::json!([]), "{facts}");
    assert!(
        facts["path"].as_str().unwrap_or("").contains("/usr/bin"),
        "{facts}"
    );
}
