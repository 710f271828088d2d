//! The reply hand-over end to end on loopback, without Docker: scripted peers (`/bin/sh`) play a
//! dialer that prints reply codes and a listener that takes them, on its standard input or by
//! a command, and the runner must hand the first code over once and record the route.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a test may unwrap

use std::path::PathBuf;

use oneway_scenario::model::{ImplManifest, Scenario};
use oneway_scenario::plan;
use oneway_scenario::run::{Options, Runner};
use oneway_scenario::verdict::{Outcome, Verdict};
use tokio::sync::{mpsc, watch};

/// A dialer that shows two reply codes, then (after the runner's carry delay) "connects by the
/// reply route" and echoes.
const DIALER: &str = r#"echo '{"event":"dialing","t_ms":0,"stack":"fake","candidates":[]}'
echo '{"event":"reply-code","t_ms":3.5,"reply":"owr2.FIRST","candidates":["host udp 127.0.0.1:7"]}'
echo '{"event":"reply-code","t_ms":4.5,"reply":"owr2.SECOND","candidates":[]}'
sleep 3
echo '{"event":"connected","t_ms":900,"selected":{"local":"127.0.0.1:7","remote":"127.0.0.1:9"},"stages":{"first_check":1,"ice":800},"route":"reply"}'
echo '{"event":"first-echo","t_ms":950,"rtt_ms":1.0}'
"#;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "oneway-reply-loopback-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A manifest whose listener runs `listener` and takes codes as `reply` (a TOML value).
fn manifest(listener: &str, reply: &str) -> ImplManifest {
    let text = format!(
        "id = \"fake\"\nroles = [\"listen\", \"dial\"]\ncapabilities = [\"reply\"]\ntimeout_secs = 5\n[listen]\nargv = [\"/bin/sh\", \"-c\", {listener:?}]\nreply = {reply}\noptions = {{ loopback = [] }}\n[dial]\nargv = [\"/bin/sh\", \"-c\", {DIALER:?}, \"dial\", \"{{token}}\"]\n"
    );
    ImplManifest::parse(&text, "fake").unwrap()
}

async fn run_one(m: ImplManifest, out: PathBuf) -> oneway_scenario::run::CellResult {
    let scenario = Scenario::parse(
        "description = \"scripted reply\"\nloopback = true\n[topology]\nkind = \"same-lan\"\n[expect]\nverdict = \"pass\"\nroute = \"reply\"\nreason = \"the listener takes the code\"\n",
        "scripted-reply",
    )
    .unwrap();
    let impls = vec![m];
    let scenarios = vec![scenario];
    let cells = plan::cells(&impls, &scenarios);
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].skip, None);
    let (progress, _rx) = mpsc::unbounded_channel();
    let (_cancel_tx, cancel) = watch::channel(false);
    let runner = Runner {
        options: Options {
            peer_binary: PathBuf::from("/bin/false"),
            repeat: None,
            keep: false,
            capture: false,
            out,
            rerun_prefix: "oneway suite".into(),
            jobs: 1,
        },
        impls: &impls,
        scenarios: &scenarios,
        engine: None,
        no_engine_reason: Some("test".into()),
        image: None,
        browser_image: None,
        has_turnserver: false,
        has_tcpdump: false,
        progress,
        cancel,
    };
    let mut results = runner.run(&cells).await;
    results.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_code_reaches_the_listener_on_its_standard_input_once() {
    // It reads one line, names it in `reply-accepted`, and says the connection came up by it.
    let listener = r#"echo '{"event":"token","t_ms":1,"stack":"fake","token":"ow1.fake","candidates":["host udp 127.0.0.1:9"]}'
read -r code || exit 3
echo "{\"event\":\"reply-accepted\",\"t_ms\":5,\"dialer\":\"$code\",\"candidates\":[]}"
echo '{"event":"connected","t_ms":6,"selected":{"local":"127.0.0.1:9","remote":"127.0.0.1:7"},"stages":{},"route":"reply"}'
exec sleep 20
"#;
    let out = temp("stdin");
    let c = run_one(manifest(listener, "\"stdin\""), out.clone()).await;
    assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    let r = &c.runs[0];
    assert_eq!(
        r.outcome,
        Outcome::Connected {
            path: "host".into(),
            route: Some("reply".into())
        }
    );
    assert_eq!(r.route.as_deref(), Some("reply: punched"));
    assert_eq!(
        (r.dialer_route.as_deref(), r.listener_route.as_deref()),
        (Some("reply"), Some("reply"))
    );
    assert!(r.reply_shown);
    let reply = r.reply.as_ref().unwrap();
    assert_eq!(reply.code, "owr2.FIRST");
    assert_eq!(reply.shown_ms, 3.5);
    assert_eq!(reply.ignored_codes, 1);
    assert_eq!(reply.hand_over, "stdin");
    assert_eq!(reply.hand_over_error, None);
    assert!(
        reply.handed_over_ms.is_some_and(|t| t < 5000.0),
        "{reply:?}"
    );
    // The listener read exactly the first code, as one line.
    assert_eq!(reply.accepted.as_ref().unwrap().dialer, "owr2.FIRST");
    let _ = std::fs::remove_dir_all(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_template_gets_the_code_and_its_exit_status_is_recorded() {
    let out = temp("command");
    let drop_box = out.join("code");
    // The hand-over command writes the code to a file, which the listener waits for (bounded).
    let listener = format!(
        r#"echo '{{"event":"token","t_ms":1,"stack":"fake","token":"ow1.fake","candidates":["host udp 127.0.0.1:9"]}}'
i=0; while [ ! -s {f} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
read -r code < {f} || exit 3
echo "{{\"event\":\"reply-accepted\",\"t_ms\":5,\"dialer\":\"$code\",\"candidates\":[]}}"
exec sleep 20
"#,
        f = drop_box.display()
    );
    let reply = format!(
        "[\"/bin/sh\", \"-c\", \"echo \\\"$0\\\" > {}\", \"{{reply}}\"]",
        drop_box.display()
    );
    let c = run_one(manifest(&listener, &reply), out.clone()).await;
    // This listener does not say how the connection came up; the dialer's `route` does.
    assert_eq!(c.verdict, Verdict::Pass, "{c:#?}");
    let r = &c.runs[0];
    assert_eq!(r.listener_route, None);
    assert_eq!(r.dialer_route.as_deref(), Some("reply"));
    let reply = r.reply.as_ref().unwrap();
    assert_eq!(reply.hand_over, "command");
    assert_eq!(reply.command_exit, Some(0));
    assert_eq!(reply.accepted.as_ref().unwrap().dialer, "owr2.FIRST");
    let _ = std::fs::remove_dir_all(out);
}
