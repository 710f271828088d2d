//! The `oneway` binary, run as a user would: output snapshots, exit codes, every invalid vector.

use std::path::Path;
use std::process::{Command, Output};

const NOW: &str = "1800000000";

fn oneway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oneway"))
        .args(args)
        .output()
        .expect("run oneway")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

fn vectors(file: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../spec/vectors")
        .join(file);
    serde_json::from_str(&std::fs::read_to_string(path).expect("vector file")).expect("json")
}

fn valid(name: &str) -> serde_json::Value {
    vectors("valid.json")["vectors"]
        .as_array()
        .expect("list")
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .expect("vector exists")
}

#[test]
fn inspect_text_snapshot() {
    let text = valid("native-four-candidates")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let out = oneway(&["inspect", &text, "--now", NOW]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!("inspect_native_four_candidates", stdout(&out));
}

#[test]
fn inspect_json_snapshot() {
    let text = valid("dialer-identity")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let out = oneway(&["inspect", "--json", &text, "--now", NOW]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    insta::assert_json_snapshot!("inspect_dialer_identity_json", json);
}

#[test]
fn every_form_inspects_the_same() {
    let v = valid("native-all-extensions");
    let text = v["text"].as_str().expect("text");
    let reference = stdout(&oneway(&["inspect", "--json", text, "--now", NOW]));
    let url = format!("https://example.org/app#{text}");
    for args in [
        vec!["inspect", "--json", &url, "--now", NOW],
        vec![
            "inspect",
            "--json",
            v["qr_text"].as_str().expect("qr"),
            "--now",
            NOW,
        ],
        vec![
            "inspect",
            "--json",
            "--hex",
            v["binary_hex"].as_str().expect("hex"),
            "--now",
            NOW,
        ],
    ] {
        let out = oneway(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let mut a: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        let mut b: serde_json::Value = serde_json::from_str(&reference).expect("json");
        a["read_from"] = serde_json::Value::Null;
        b["read_from"] = serde_json::Value::Null;
        assert_eq!(a, b, "{args:?}");
    }
}

#[test]
fn every_invalid_vector_exits_2_with_one_named_line() {
    for v in vectors("invalid.json")["vectors"].as_array().expect("list") {
        let name = v["name"].as_str().expect("name");
        let input = v["input"].as_str().expect("input");
        let now = v["now"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "0".to_owned());
        let mut args = vec!["inspect", "--now", &now];
        if v["input_form"] == "hex" {
            args.push("--hex");
        }
        // `--` so inputs that start with `-` are still tokens, not flags.
        args.extend(["--", input]);
        let out = oneway(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert_eq!(
            lines[0],
            format!("token: {}", v["message"].as_str().expect("message")),
            "{name}"
        );
    }
}

#[test]
fn expired_token_is_shown_then_refused() {
    let text = valid("native-all-extensions")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let out = oneway(&["inspect", &text, "--now", "1900000000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("EXPIRED"), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with("token: expired at "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn qr_prints_code_version_and_writes_images() {
    let text = valid("native-ipv4-minimal")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let dir = std::env::temp_dir().join(format!("oneway-cli-qr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let (png, svg) = (dir.join("t.png"), dir.join("t.svg"));
    let out = oneway(&[
        "qr",
        &text,
        "--png",
        png.to_str().expect("path"),
        "--svg",
        svg.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("QR version 5 (37×37 modules, level M)"),
        "{printed}"
    );
    assert!(
        printed.contains('█') || printed.contains('▀'),
        "no terminal rendering"
    );
    assert_eq!(
        &std::fs::read(&png).expect("png")[..8],
        b"\x89PNG\r\n\x1a\n"
    );
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
    let out = oneway(&["qr", &text, "--url", "https://example.org/app"]);
    assert!(
        stdout(&out).contains("https://example.org/app#OW1."),
        "{}",
        stdout(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(oneway(&["inspect"]).status.code(), Some(2));
    assert_eq!(oneway(&["no-such-command"]).status.code(), Some(2));
    let out = oneway(&["inspect", "--hex", "01zz"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "token: invalid hex character 'z' at position 2"
    );
}

#[test]
fn native_listeners_refuse_a_token_profile() {
    for stack in ["str0m", "webrtc-rs"] {
        let out = oneway(&[
            "listen",
            "--stack",
            stack,
            "--bind",
            "127.0.0.1:0",
            "--profile",
            "reply",
        ]);
        assert_eq!(out.status.code(), Some(2), "{stack}");
        assert_eq!(
            stderr(&out).trim(),
            "usage: --profile needs --stack browser (native listeners issue native tokens)",
            "{stack}"
        );
    }
    // Only the profiles a browser listener issues.
    let out = oneway(&["listen", "--stack", "browser", "--profile", "native"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The README's `inspect` example must keep working on the sample token written there.
#[test]
fn readme_main_command_inspects_its_sample_token() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md");
    let token = readme
        .split_whitespace()
        .find(|w| w.starts_with("ow1.") && !w.contains('…'))
        .expect("README shows a sample token")
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    let out = oneway(&["inspect", token]);
    assert!(
        out.status.success(),
        "README sample token: {}",
        stderr(&out)
    );
}

/// The browser is opt-in: absent from the default plan, present with `--impl`, where browser x
/// browser runs too (its dialer's reply code reaches the listener on standard input); an
/// unknown id is refused.
#[test]
fn suite_plan_selects_implementations() {
    let default = oneway(&["suite", "--plan", "--filter", "(same-lan)"]);
    assert!(default.status.success(), "{}", stderr(&default));
    assert!(
        !stdout(&default).contains("browser"),
        "{}",
        stdout(&default)
    );
    let named = oneway(&[
        "suite",
        "--plan",
        "--impl",
        "str0m,browser",
        "--filter",
        "(same-lan)",
    ]);
    assert!(named.status.success(), "{}", stderr(&named));
    let plan = stdout(&named);
    for cell in [
        "browser x browser (same-lan)\n",
        "browser x str0m (same-lan)\n",
        "str0m x browser (same-lan)\n",
        // same-lan judges media for pairs that both have the `media` capability.
        "str0m x str0m (same-lan)  [media]\n",
    ] {
        assert!(plan.contains(cell), "{cell}: {plan}");
    }
    assert!(!plan.contains("webrtc-rs"), "{plan}");
    let unknown = oneway(&["suite", "--plan", "--impl", "nope"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no implementation \"nope\""),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn inspect_stun_snapshot() {
    let text = valid("native-stun")["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let out = oneway(&["inspect", &text, "--now", NOW]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("stun servers   192.0.2.53:3478, [2001:db8::53]:3478"));
    insta::assert_snapshot!("inspect_native_stun", stdout(&out));
}

fn reply_vector(name: &str) -> serde_json::Value {
    vectors("reply-code.json")["vectors"]
        .as_array()
        .expect("list")
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .expect("reply vector exists")
}

/// A token whose secret is the version-2 reply vectors' (`secret_hex`), so its reply key
/// verifies their tags.
fn token_for_reply_vectors() -> String {
    let hex = reply_vector("v2-derived-pwd-srflx")["secret_hex"]
        .as_str()
        .expect("secret")
        .to_owned();
    let mut secret = [0u8; 16];
    for (i, slot) in secret.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    oneway_token::Token::new(
        oneway_token::Profile::Native,
        oneway_token::Fingerprint([0xab; 32]),
        oneway_token::Secret(secret),
        vec![oneway_token::Candidate::udp_host([192, 0, 2, 10], 50_000)],
    )
    .to_text()
    .expect("valid token")
}

#[test]
fn inspect_reply_code_snapshots() {
    let token = token_for_reply_vectors();
    let v2 = reply_vector("v2-chromium-srflx-relay6");
    let out = oneway(&[
        "inspect",
        v2["text"].as_str().expect("text"),
        "--reply-for",
        &token,
        "--now",
        NOW,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!("inspect_reply_code_v2", stdout(&out));
    let v1 = reply_vector("chromium");
    let out = oneway(&["inspect", "--json", v1["text"].as_str().expect("text")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    insta::assert_json_snapshot!("inspect_reply_code_v1_json", json);
}

#[test]
fn every_invalid_reply_vector_exits_2_with_one_named_line() {
    let token = token_for_reply_vectors();
    for v in vectors("reply-code.json")["vectors"]
        .as_array()
        .expect("list")
    {
        let Some(code) = v["error"].as_str() else {
            continue;
        };
        let name = v["name"].as_str().expect("name");
        if code == "missing-prefix" {
            // Not a reply code at all: inspect reads it as a token.
            continue;
        }
        let now = v["now"]
            .as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| NOW.to_owned());
        let args = [
            "inspect",
            "--now",
            &now,
            "--reply-for",
            &token,
            "--",
            v["text"].as_str().expect("text"),
        ];
        let out = oneway(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert_eq!(
            lines[0],
            format!("reply code: {}", v["message"].as_str().expect("message")),
            "{name}"
        );
    }
}
