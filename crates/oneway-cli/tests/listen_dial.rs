//! `oneway listen` and `oneway dial` as separate processes over loopback, speaking the peer
//! contract (`spec/peer-contract.md`): every native pair (str0m, webrtc-rs, both ways), and the
//! browser peer bridging standard input and output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oneway_core::PeerEvent;

mod support;

use support::{Killed, black_holed, oneway};

/// Starts an echoing loopback listener of `stack` and returns it with its token line.
fn start_listener(stack: &str, extra: &[&str]) -> (Killed, String) {
    let mut child = oneway()
        .args(["listen", "--bind", "127.0.0.1:0", "--echo", "--json"])
        .args(["--stack", stack])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("token line");
    let token = match PeerEvent::parse_line(&line) {
        Some(PeerEvent::Token {
            token,
            stack: printed,
            candidates,
            ..
        }) => {
            assert_eq!(printed, stack);
            assert_eq!(candidates.len(), 1, "{candidates:?}");
            assert!(
                candidates[0].starts_with("host udp 127.0.0.1:"),
                "{candidates:?}"
            );
            token
        }
        other => panic!("first line is not a token event: {line:?} ({other:?})"),
    };
    (Killed(child), token)
}

/// `oneway dial --json --probe --stack <stack>`: exit code, events, standard error.
fn dial(stack: &str, token: &str, extra: &[&str]) -> (Option<i32>, Vec<PeerEvent>, String) {
    let started = Instant::now();
    let out = oneway()
        .args(["dial", "--json", "--probe", "--stack", stack])
        .args(extra)
        .arg(token)
        .output()
        .expect("run dial");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "dial is bounded in time"
    );
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(PeerEvent::parse_line)
        .collect();
    (
        out.status.code(),
        events,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(events: &[PeerEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).expect("json")["event"]
                .as_str()
                .expect("tag")
                .to_owned()
        })
        .collect()
}

/// The native stacks; every test below runs for each, and the probe for every pair.
const STACKS: [&str; 2] = ["str0m", "webrtc-rs"];

/// A dialer of `dialer` probes an echoing listener of `listener`: the full event sequence,
/// the stack named in `dialing`, and a loopback path with ordered stage times.
fn probe_pair(listener: &str, dialer: &str) {
    let (_listener, token) = start_listener(listener, &[]);
    let (code, events, stderr) = dial(dialer, &token, &[]);
    assert_eq!(code, Some(0), "{listener} × {dialer}: {stderr}");
    assert_eq!(
        names(&events),
        [
            "dialing",
            "reply-code",
            "candidate-tried",
            "ice-connected",
            "dtls-connected",
            "channel-open",
            "connected",
            "first-echo"
        ],
        "{listener} × {dialer}: {events:?}"
    );
    match &events[0] {
        PeerEvent::Dialing { stack, .. } => assert_eq!(stack, dialer),
        other => panic!("{other:?}"),
    }
    match &events[6] {
        PeerEvent::Connected {
            selected: Some(pair),
            stages,
            ..
        } => {
            assert!(pair.remote.starts_with("127.0.0.1:"), "{pair:?}");
            assert!(
                stages.auth.is_some() && stages.ice <= stages.dtls && stages.dtls <= stages.auth,
                "{stages:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn str0m_listener_and_str0m_dialer() {
    probe_pair("str0m", "str0m");
}

#[test]
fn webrtc_rs_listener_and_webrtc_rs_dialer() {
    probe_pair("webrtc-rs", "webrtc-rs");
}

#[test]
fn webrtc_rs_listener_and_str0m_dialer() {
    probe_pair("webrtc-rs", "str0m");
}

#[test]
fn str0m_listener_and_webrtc_rs_dialer() {
    probe_pair("str0m", "webrtc-rs");
}

/// The `media` lines of `events` for audio: (track, packets, frequency).
fn heard(events: &[PeerEvent]) -> Vec<(String, u64, Option<u32>)> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Media {
                track,
                kind,
                packets,
                frequency_hz,
                ..
            } if kind == "audio" => Some((track.clone(), *packets, *frequency_hz)),
            _ => None,
        })
        .collect()
}

/// `--send-audio` between processes: the dialer probes, adds a 440 Hz track, and prints
/// `media` lines for the listener's 1000 Hz tone (its answer to the dialer's track). Every
/// native pair: str0m answers and offers media in band too (its SDP API takes over after the
/// Direct API start, `spec/handshake.md` §10.5).
#[test]
fn send_audio_between_native_processes() {
    for (listener, dialer) in [
        ("webrtc-rs", "webrtc-rs"),
        ("webrtc-rs", "str0m"),
        ("str0m", "webrtc-rs"),
        ("str0m", "str0m"),
    ] {
        let (_listener, token) = start_listener(listener, &["--send-audio", "tone:1000"]);
        let (code, events, stderr) = dial(dialer, &token, &["--send-audio", "tone:440"]);
        assert_eq!(code, Some(0), "{listener} × {dialer}: {stderr}");
        let heard = heard(&events);
        assert!(
            heard.iter().any(|(_, packets, hz)| *packets >= 50
                && hz.is_some_and(|f| f.abs_diff(1000) <= 5)),
            "{listener} × {dialer}: no 1000 Hz track with 50 packets: {heard:?}; {stderr}"
        );
        assert!(names(&events).contains(&"first-echo".to_owned()));
    }
}

/// One video `media` line: track, frames, key frames, resolution.
type Seen = (String, u64, u64, Option<(u16, u16)>);

/// The `media` lines of `events` for video.
fn seen(events: &[PeerEvent]) -> Vec<Seen> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Media {
                track,
                kind,
                frames,
                keyframes,
                width,
                height,
                ..
            } if kind == "video" => Some((
                track.clone(),
                frames.unwrap_or(0),
                keyframes.unwrap_or(0),
                width.zip(*height),
            )),
            _ => None,
        })
        .collect()
}

/// `--send-audio` and `--send-video` together between processes, every native pair: both
/// sides add an audio track and then a video track (two renegotiations each); the dialer
/// hears the listener's 1000 Hz tone and sees its VP8 test pattern (frames whole, a key frame
/// with a resolution), and its video lines carry no tone while its audio lines carry no
/// frame counts.
#[test]
fn send_audio_and_video_between_native_processes() {
    for (listener, dialer) in [
        ("webrtc-rs", "webrtc-rs"),
        ("webrtc-rs", "str0m"),
        ("str0m", "webrtc-rs"),
        ("str0m", "str0m"),
    ] {
        let (_listener, token) =
            start_listener(listener, &["--send-audio", "tone:1000", "--send-video"]);
        let (code, events, stderr) = dial(
            dialer,
            &token,
            &["--send-audio", "tone:440", "--send-video"],
        );
        assert_eq!(code, Some(0), "{listener} × {dialer}: {stderr}");
        assert!(names(&events).contains(&"first-echo".to_owned()));
        let heard = heard(&events);
        assert!(
            heard.iter().any(|(_, packets, hz)| *packets >= 50
                && hz.is_some_and(|f| f.abs_diff(1000) <= 5)),
            "{listener} × {dialer}: no 1000 Hz track with 50 packets: {heard:?}; {stderr}"
        );
        let seen = seen(&events);
        assert!(
            seen.iter()
                .any(|(_, frames, keys, size)| *frames >= 10 && *keys >= 1 && size.is_some()),
            "{listener} × {dialer}: no video track with 10 frames and a key frame: {seen:?}; {stderr}"
        );
        for e in &events {
            if let PeerEvent::Media {
                kind,
                frequency_hz,
                frames,
                ..
            } = e
            {
                match kind.as_str() {
                    "audio" => assert!(frames.is_none(), "{e:?}"),
                    "video" => assert!(frequency_hz.is_none() && frames.is_some(), "{e:?}"),
                    other => panic!("kind {other}"),
                }
            }
        }
    }
}

#[test]
fn dial_with_a_forged_token_fails_with_a_cause_code() {
    for stack in STACKS {
        let (_listener, token) = start_listener(stack, &[]);
        let mut forged = oneway_token::Token::from_text(&token).expect("valid");
        forged.secret.0[3] ^= 1;
        let (code, events, stderr) = dial(
            stack,
            &forged.to_text().expect("encodes"),
            &["--timeout", "2s"],
        );
        assert_eq!(code, Some(1), "{stack}: {stderr}");
        match events.last() {
            Some(PeerEvent::Refused { code, .. }) => assert_eq!(code, "ice-timeout"),
            other => panic!("{stack}: {other:?}"),
        }
        assert!(stderr.contains("dial: ice-timeout"), "{stack}: {stderr}");
    }
}

#[test]
fn dial_with_a_malformed_token_exits_2() {
    for stack in STACKS {
        let (code, events, stderr) = dial(stack, "ow1.AQAB", &[]);
        assert_eq!(code, Some(2), "{stack}: {stderr}");
        assert!(stderr.starts_with("token: "), "{stack}: {stderr}");
        // spec/peer-contract.md §1: no `dialing`, one `refused` with the spec/token.md §8 code.
        match events.as_slice() {
            [PeerEvent::Refused { code, .. }] => assert_eq!(code, "truncated", "{stack}"),
            other => panic!("{stack}: {other:?}"),
        }
    }
}

#[test]
fn expired_token_is_refused_before_dialing() {
    for stack in STACKS {
        let (_listener, token) = start_listener(stack, &["--ttl", "1s"]);
        std::thread::sleep(Duration::from_millis(2100));
        let (code, events, stderr) = dial(stack, &token, &[]);
        assert_eq!(code, Some(2), "{stack}: {stderr}");
        assert!(
            stderr.starts_with("token: expired at "),
            "{stack}: {stderr}"
        );
        match events.as_slice() {
            [PeerEvent::Refused { code, .. }] => assert_eq!(code, "expired", "{stack}"),
            other => panic!("{stack}: no `dialing` before an expired token's refusal: {other:?}"),
        }
    }
}

/// `oneway dial --stack browser` without `--probe` bridges stdin and stdout through Chromium's
/// `data` channel, like the native dialers. Skips when Chromium is absent outside CI.
#[test]
fn browser_dial_bridges_stdin_and_stdout() {
    use std::io::Write as _;
    if let Err(e) = oneway_browser::BrowserConfig::detect() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Chromium is required: {e}"
        );
        eprintln!("SKIPPED: {e}");
        return;
    }
    let (_listener, token) = start_listener("str0m", &["--loopback"]);
    let mut child = oneway()
        .args(["dial", "--stack", "browser", &token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start browser dial");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = stdout_lines(&mut child);
    let mut child = Killed(child);
    stdin
        .write_all(b"hello through chromium\n")
        .expect("write stdin");
    stdin.flush().expect("flush stdin");
    let echoed = lines.recv_timeout(Duration::from_secs(40));
    // SIGINT lets the dialer close Chromium and chromedriver (SIGKILL would orphan them).
    let exited = interrupt(&mut child);
    drop(stdin);
    assert!(exited, "the dialer exits on SIGINT");
    assert_eq!(
        echoed.as_deref(),
        Ok("hello through chromium"),
        "the echoed line came back on stdout"
    );
}

/// The next event line of `lines` (60 s at most).
fn next_event(lines: &std::sync::mpsc::Receiver<String>, what: &str) -> PeerEvent {
    let line = lines
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("no {what} line: {e}"));
    PeerEvent::parse_line(&line).unwrap_or_else(|| panic!("not an event: {line}"))
}

/// `oneway dial --stack browser --json --probe` of `token`, and the reply code it prints (with
/// its candidates): the process, its output lines after the code, the code.
fn browser_dialer(
    token: &str,
    timeout: &str,
) -> (
    Killed,
    std::sync::mpsc::Receiver<String>,
    String,
    Vec<String>,
) {
    let mut dialer = oneway()
        .args([
            "dial",
            "--stack",
            "browser",
            "--json",
            "--probe",
            "--timeout",
            timeout,
            token,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start browser dialer");
    let dialer_out = stdout_lines(&mut dialer);
    let dialer = Killed(dialer);
    loop {
        match next_event(&dialer_out, "reply-code") {
            PeerEvent::ReplyCode {
                reply, candidates, ..
            } => return (dialer, dialer_out, reply, candidates),
            PeerEvent::Refused { code, reason, .. } => panic!("dialer refused: {code}: {reason}"),
            _ => continue,
        }
    }
}

/// Lines of a child's standard output, read on a thread.
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends SIGINT and waits (at most 30 s: closing Chromium is slow on a loaded machine) for the
/// process to exit; true if it did.
fn interrupt(child: &mut Killed) -> bool {
    let _ = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.0.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `oneway listen --stack browser` without `--echo` bridges the data channel a native dialer
/// opens to stdin and stdout, both ways.
#[test]
fn browser_listen_bridges_stdin_and_stdout() {
    use std::io::Write as _;
    if let Err(e) = oneway_browser::BrowserConfig::detect() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Chromium is required: {e}"
        );
        eprintln!("SKIPPED: {e}");
        return;
    }
    let mut listener = oneway()
        .args(["listen", "--stack", "browser", "--loopback"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start browser listener");
    let mut listener_in = listener.stdin.take().expect("stdin");
    let listener_out = stdout_lines(&mut listener);
    let mut listener = Killed(listener);
    let token = listener_out
        .recv_timeout(Duration::from_secs(40))
        .expect("token line");
    let mut dialer = oneway()
        .args(["dial", &token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dialer");
    let mut dialer_in = dialer.stdin.take().expect("stdin");
    let dialer_out = stdout_lines(&mut dialer);
    let mut dialer = Killed(dialer);
    dialer_in.write_all(b"from the dialer\n").expect("write");
    dialer_in.flush().expect("flush");
    let at_listener = listener_out.recv_timeout(Duration::from_secs(20));
    listener_in.write_all(b"from chromium\n").expect("write");
    listener_in.flush().expect("flush");
    let at_dialer = dialer_out.recv_timeout(Duration::from_secs(20));
    let dialer_exited = interrupt(&mut dialer);
    let listener_exited = interrupt(&mut listener);
    drop((dialer_in, listener_in));
    assert_eq!(at_listener.as_deref(), Ok("from the dialer"));
    assert_eq!(at_dialer.as_deref(), Ok("from chromium"));
    assert!(dialer_exited && listener_exited, "both exit on SIGINT");
}

/// Browser x browser through the CLI, as the suite runs it (`reply = "stdin"`): a browser
/// dialer of a browser listener's token prints `reply-code` (`owr1.…`, no candidates); the
/// listener refuses a mistyped code on standard input (`reply-refused`), takes the real one
/// (`reply-accepted`, naming the dialer's ufrag), and the dialer connects and echoes.
#[test]
fn browser_listener_takes_a_browser_dialers_reply_code_on_stdin() {
    use std::io::Write as _;
    if let Err(e) = oneway_browser::BrowserConfig::detect() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Chromium is required: {e}"
        );
        eprintln!("SKIPPED: {e}");
        return;
    }
    let mut listener = oneway()
        .args([
            "listen",
            "--stack",
            "browser",
            "--loopback",
            "--echo",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start browser listener");
    let mut listener_in = listener.stdin.take().expect("stdin");
    let listener_out = stdout_lines(&mut listener);
    let mut listener = Killed(listener);
    let token = match next_event(&listener_out, "token") {
        PeerEvent::Token { token, .. } => token,
        other => panic!("first line is not a token: {other:?}"),
    };
    let (mut dialer, dialer_out, reply, candidates) = browser_dialer(&token, "60s");
    assert!(candidates.is_empty(), "{candidates:?}");
    assert!(reply.starts_with("owr1."), "{reply}");
    let ufrag = oneway_token::reply::ReplyCode::from_text(&reply)
        .expect("the printed code decodes")
        .ice
        .ufrag()
        .to_owned();
    // A mistyped code first: refused, nothing changes. Then a blank line, then the code.
    let mut mistyped = reply.clone().into_bytes();
    let at = mistyped.len() - 3;
    mistyped[at] = if mistyped[at] == b'A' { b'B' } else { b'A' };
    listener_in.write_all(&mistyped).expect("write");
    listener_in.write_all(b"\n\n").expect("write");
    listener_in.flush().expect("flush");
    let refused = loop {
        match next_event(&listener_out, "reply-refused") {
            PeerEvent::ReplyRefused { code, .. } => break code,
            _ => continue,
        }
    };
    assert_eq!(refused, "checksum-mismatch");
    writeln!(listener_in, "{reply}").expect("write");
    listener_in.flush().expect("flush");
    loop {
        match next_event(&listener_out, "reply-accepted") {
            PeerEvent::ReplyAccepted {
                dialer, candidates, ..
            } => {
                assert_eq!(dialer, ufrag);
                assert!(candidates.is_empty());
                break;
            }
            PeerEvent::ReplyRefused { code, reason, .. } => panic!("refused: {code}: {reason}"),
            _ => continue,
        }
    }
    loop {
        match next_event(&dialer_out, "first-echo") {
            PeerEvent::FirstEcho { .. } => break,
            PeerEvent::Refused { code, reason, .. } => panic!("dialer refused: {code}: {reason}"),
            _ => continue,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = dialer.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the dialer did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "dialer exit {status}");
    assert!(interrupt(&mut listener), "the listener exits on SIGINT");
    drop(listener_in);
}

/// The reply fallback with a browser dialer across processes, as the suite runs it: `oneway
/// dial --stack browser --json` of a native listener's token whose candidate is black-holed
/// prints `reply-code` (`owr2.…`, the contract's event); written to `oneway listen`'s standard
/// input, it makes the listener punch towards the browser, and both report route `reply`.
#[test]
fn native_listener_takes_a_browser_dialers_reply_code_on_stdin() {
    use std::io::Write as _;
    if let Err(e) = oneway_browser::BrowserConfig::detect() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Chromium is required: {e}"
        );
        eprintln!("SKIPPED: {e}");
        return;
    }
    let mut listener = oneway()
        .args(["listen", "--bind", "127.0.0.1:0", "--echo", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let mut listener_in = listener.stdin.take().expect("stdin");
    let listener_out = stdout_lines(&mut listener);
    let mut listener = Killed(listener);
    let token = match next_event(&listener_out, "token") {
        PeerEvent::Token { token, .. } => token,
        other => panic!("first line is not a token: {other:?}"),
    };
    let (token, hole) = black_holed(&token);
    let (mut dialer, dialer_out, reply, candidates) = browser_dialer(&token, "30s");
    assert!(!candidates.is_empty());
    assert!(reply.starts_with("owr2."), "{reply}");
    writeln!(listener_in, "{reply}").expect("write");
    listener_in.flush().expect("flush");
    let listener_route = loop {
        match next_event(&listener_out, "connected") {
            PeerEvent::ReplyRefused { code, reason, .. } => panic!("refused: {code}: {reason}"),
            PeerEvent::Connected { route, .. } => break route,
            _ => continue,
        }
    };
    let dialer_route = loop {
        match next_event(&dialer_out, "connected") {
            PeerEvent::Connected { route, .. } => break route,
            PeerEvent::Refused { code, reason, .. } => panic!("dialer refused: {code}: {reason}"),
            _ => continue,
        }
    };
    loop {
        if let PeerEvent::FirstEcho { .. } = next_event(&dialer_out, "first-echo") {
            break;
        }
    }
    assert_eq!(listener_route.as_deref(), Some("reply"));
    assert_eq!(dialer_route.as_deref(), Some("reply"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while dialer.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the dialer did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(interrupt(&mut listener), "the listener exits on SIGINT");
    drop((listener_in, hole));
}
