//! `oneway listen --stack browser` and `oneway dial --stack browser`: the browser peer
//! (`crates/oneway-browser`: headless Chromium or Firefox ESR running `web/oneway.js`) under
//! the same peer contract as the native stacks (`spec/peer-contract.md`). `--browser`,
//! `--browser-field-trials`, `--browser-arg` and `--browser-pref` (or the `ONEWAY_BROWSER…`
//! environment variables, see `oneway_browser::BrowserConfig`) choose and configure the engine.
//!
//! - The listener issues a `dialer-identity` token (`spec/handshake.md` §10.2), so native
//!   dialers connect with the token alone, or with `--profile reply` a `reply` token, which
//!   only browser dialers take (for an engine that cannot replace the dialer identity it chose,
//!   like Firefox). A browser dialer answers either token with a reply
//!   code (`owr1.…`, §10.3): every non-empty line of standard input before a connection (with
//!   `--echo`, every line) is such a code, handed to the page, which prints `reply-accepted` or
//!   `reply-refused`; end of input means no more codes, and the listener keeps listening. A
//!   browser peer connection has one remote description, so such a token admits one dialer;
//!   the listener then bridges the `data` channel the dialer opens to standard input and output
//!   (or echoes with `--echo`) until it is stopped.
//! - The dialer dials `native` tokens one-way (§10.1) and, in parallel, prints its reply code
//!   (`reply-code`, `owr2.…`, the reply fallback of §11) for a listener it may not reach
//!   directly. A `reply` or `dialer-identity` token (a browser listener) is answered with a
//!   reply code (`owr1.…`) to give to that listener. Like the native dialers it opens the `data`
//!   channel and, without `--probe`, bridges it to standard input and output (lines in,
//!   messages out).

use std::io::Write as _;

use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use oneway_browser::{Browser, BrowserConfig, Engine, Page};
use serde_json::{Value, json};

use super::DialFailed;

/// The options of `--stack browser` (each also has an environment variable, read first; the
/// options add to or override it).
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct BrowserArgs {
    /// Browser engine of `--stack browser` (default: `ONEWAY_BROWSER`, else chromium).
    #[arg(long = "browser", value_name = "ENGINE", value_parser = ["chromium", "firefox"])]
    pub(crate) engine: Option<String>,
    /// Chromium field trials of `--stack browser` (`--force-fieldtrials=`), e.g.
    /// `WebRTC-NoSdpMangleUfrag/Enabled/` (default: `ONEWAY_CHROMIUM_FIELD_TRIALS`).
    #[arg(long, value_name = "TRIALS")]
    pub(crate) browser_field_trials: Option<String>,
    /// One more browser command-line argument (repeat; after `ONEWAY_BROWSER_ARGS`).
    #[arg(long = "browser-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) browser_args: Vec<String>,
    /// One more Firefox pref, `name=value` (repeat; after `ONEWAY_FIREFOX_PREFS`).
    #[arg(long = "browser-pref", value_name = "NAME=VALUE")]
    pub(crate) browser_prefs: Vec<String>,
}

impl BrowserArgs {
    /// Whether any browser option was given.
    pub(crate) fn is_set(&self) -> bool {
        self.engine.is_some()
            || self.browser_field_trials.is_some()
            || !self.browser_args.is_empty()
            || !self.browser_prefs.is_empty()
    }

    /// The browser configuration: the environment's, then these options.
    pub(crate) fn config(&self) -> anyhow::Result<BrowserConfig> {
        let mut config = match &self.engine {
            Some(name) => BrowserConfig::detect_engine(name.parse::<Engine>()?)?,
            None => BrowserConfig::detect()?,
        };
        if let Some(trials) = &self.browser_field_trials {
            if config.engine != Engine::Chromium {
                anyhow::bail!(super::Usage(
                    "--browser-field-trials applies to Chromium only (Firefox takes --browser-pref)"
                        .to_owned()
                ));
            }
            config.field_trials = Some(trials.clone());
        }
        config.extra_args.extend(self.browser_args.iter().cloned());
        if !self.browser_prefs.is_empty() && config.engine != Engine::Firefox {
            anyhow::bail!(super::Usage(
                "--browser-pref applies to Firefox only (Chromium takes --browser-field-trials and --browser-arg)"
                    .to_owned()
            ));
        }
        for pref in &self.browser_prefs {
            config.prefs.push(oneway_browser::parse_pref(pref)?);
        }
        Ok(config)
    }
}

/// Peer-contract event names the browser page emits (others are page-only diagnostics).
const CONTRACT_EVENTS: &[&str] = &[
    "token",
    "dialing",
    "candidate-tried",
    "ice-connected",
    "dtls-connected",
    "channel-open",
    "connected",
    "reply-code",
    "reply-accepted",
    "reply-refused",
    "first-echo",
    "refused",
    "closed",
    "error",
];

/// Prints page events as peer-contract lines (with `t_ms` since this process started the
/// operation) or as text on standard error.
struct Printer {
    json: bool,
    start: Instant,
    op_started_ms: f64,
    /// The dialer's browser launch, ms: added to its `dialing` event as `startup_ms` (its
    /// `t_ms` start at the page's token decode, as the peer contract asks).
    startup_ms: Option<f64>,
}

impl Printer {
    fn print(&self, event: &Value) {
        let name = event["event"].as_str().unwrap_or("");
        if name == "data" {
            // Bridged data that arrived with the operation's last events.
            let _ = write_data(event);
            return;
        }
        if !CONTRACT_EVENTS.contains(&name) {
            if !self.json {
                eprintln!("{event}");
            }
            return;
        }
        let mut event = event.clone();
        if let (Some(ms), "dialing") = (self.startup_ms, name) {
            event["startup_ms"] = json!((ms * 100.0).round() / 100.0);
        }
        let t = event["t_ms"]
            .as_f64()
            .unwrap_or_else(|| self.start.elapsed().as_secs_f64() * 1000.0 - self.op_started_ms);
        event["t_ms"] = json!(((self.op_started_ms + t) * 100.0).round() / 100.0);
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        } else if name == "token" {
            println!("{}", event["token"].as_str().unwrap_or(""));
            eprintln!(
                "listening in the browser; dial with: oneway dial {}",
                event["token"].as_str().unwrap_or("")
            );
        } else if name == "reply-code" {
            let reply = event["reply"].as_str().unwrap_or("");
            if reply.starts_with("owr1.") {
                eprintln!(
                    "the listener is a browser: give it this code (it connects once the code is entered there): {reply}"
                );
            } else {
                eprintln!(
                    "still trying to reach the listener directly; if it cannot be reached, give this code to the other side (`oneway listen` takes it on its standard input): {reply}"
                );
            }
        } else {
            eprintln!(
                "[{:7.1} ms] {name} {}",
                event["t_ms"].as_f64().unwrap_or(0.0),
                compact(&event)
            );
        }
    }

    fn since_start(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }
}

fn compact(event: &Value) -> String {
    let mut e = event.clone();
    if let Some(o) = e.as_object_mut() {
        o.remove("event");
        o.remove("t_ms");
    }
    e.to_string()
}

async fn launch(config: BrowserConfig) -> anyhow::Result<(Browser, Page)> {
    tracing::info!(browser = %config.describe(), "launching the browser peer");
    let browser = Browser::launch(config).await?;
    let page = browser.open_page().await?;
    Ok((browser, page))
}

/// Standard input as lines, read by one task for the whole process: a listener's reply codes
/// before a connection, and the bridged data after it. The channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    rx
}

/// A listener's reply codes: standard input lines, handed to the page's listener (operation
/// `listen`) once it has issued its token. The page reports each as `reply-accepted` or
/// `reply-refused` on that operation.
struct Replies {
    lines: mpsc::Receiver<String>,
    open: bool,
    listen: String,
}

/// Hands one line to the page's listener `listen` (blank lines are skipped).
async fn hand_reply(page: &Page, listen: &str, line: &str) -> anyhow::Result<()> {
    let code = line.trim();
    if !code.is_empty() {
        tracing::info!(code, "reply code from standard input");
        page.start("accept-reply", json!({"listen": listen, "code": code}))
            .await?;
    }
    Ok(())
}

impl Replies {
    /// The next line, or `None` at end of input (then never again).
    async fn next(&mut self) -> Option<String> {
        let line = self.lines.recv().await;
        self.open = line.is_some();
        line
    }
}

/// Polls `op` until it ends or the process is interrupted; prints every event. With `replies`,
/// standard input lines go to the listener as reply codes once its token is out.
async fn follow(
    page: &Page,
    op: &str,
    printer: &Printer,
    mut replies: Option<&mut Replies>,
) -> anyhow::Result<Option<Value>> {
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut token_out = false;
    let listen = replies
        .as_ref()
        .map(|r| r.listen.clone())
        .unwrap_or_default();
    loop {
        let (events, result) = page.poll(op).await?;
        for e in &events {
            token_out |= e["event"] == "token";
            printer.print(e);
        }
        if let Some(result) = result {
            return Ok(Some(result));
        }
        let listening = token_out && replies.as_ref().is_some_and(|r| r.open);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            line = async { replies.as_mut()?.next().await }, if listening => {
                if let Some(line) = line {
                    hand_reply(page, &listen, &line).await?;
                }
            }
            _ = &mut interrupted => return Ok(None),
        }
    }
}

/// A connected `--echo` listener: echoes (in the page) until interrupted, still taking reply
/// codes (refused now: the token admitted its dialer) and printing the listener's events.
async fn serve_echo(page: &Page, op: &str, printer: &Printer, replies: &mut Replies) {
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => match page.poll(op).await {
                Ok((events, _)) => events.iter().for_each(|e| printer.print(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "the browser page stopped answering");
                    let _ = (&mut interrupted).await;
                    return;
                }
            },
            line = replies.next(), if replies.open => {
                if let Some(line) = line
                    && let Err(e) = hand_reply(page, &replies.listen, &line).await
                {
                    tracing::warn!(error = %e, "reply code not handed to the page");
                }
            }
            _ = &mut interrupted => return,
        }
    }
}

/// Writes a bridged `data` event's payload (text, or base64 for binary) to standard output.
fn write_data(event: &Value) -> std::io::Result<()> {
    use base64::Engine as _;
    let bytes = match (event["text"].as_str(), event["base64"].as_str()) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)?;
    out.flush()
}

/// Copies standard input lines to the page's `data` channel and what arrives on it to standard
/// output, until the channel closes or the process is interrupted (as the native dialers do).
async fn bridge(page: &Page, op: &str, mut stdin: mpsc::Receiver<String>) -> anyhow::Result<()> {
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // One listener for the whole loop: a fresh `ctrl_c()` per turn would miss a SIGINT that
    // arrives while a WebDriver call is in flight, and Chromium would outlive the process.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            line = stdin.recv(), if stdin_open => match line {
                Some(line) => {
                    page.start("send", json!({"conn": op, "text": format!("{line}\n")}))
                        .await?;
                }
                None => stdin_open = false,
            },
            _ = tick.tick() => {
                let (events, _) = page.poll(op).await?;
                for e in events {
                    match e["event"].as_str() {
                        Some("data") => write_data(&e)?,
                        Some("closed") => {
                            eprintln!(
                                "connection closed: {}",
                                e["code"].as_str().unwrap_or("closed-by-peer")
                            );
                            return Ok(());
                        }
                        _ => {}
                    }
                }
            }
            _ = &mut interrupted => return Ok(()),
        }
    }
}

/// `oneway listen --stack browser`, issuing a token of `profile` (`dialer-identity` or
/// `reply`). With `stun`, the browser gathers a server-reflexive candidate from that STUN
/// server, and the token carries it after the host candidates.
pub async fn listen(
    config: BrowserConfig,
    profile: &str,
    json_output: bool,
    loopback: bool,
    echo: bool,
    stun: Option<std::net::SocketAddr>,
    ttl: Option<Duration>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (browser, page) = launch(config).await?;
    let mut printer = Printer {
        json: json_output,
        start,
        op_started_ms: 0.0,
        startup_ms: None,
    };
    printer.op_started_ms = printer.since_start();
    let op = page
        .start(
            "listen",
            json!({
                "profile": profile,
                "loopback": loopback,
                "echo": echo,
                "bridge": !echo,
                "iceServers": stun.map(|a| vec![json!({"urls": format!("stun:{a}")})]).unwrap_or_default(),
                "ttlSecs": ttl.map(|d| d.as_secs().max(1)),
            }),
        )
        .await?;
    let mut replies = Replies {
        lines: stdin_lines(),
        open: true,
        listen: op.clone(),
    };
    let result = follow(&page, &op, &printer, Some(&mut replies)).await;
    let mut bridged = Ok(());
    if let Ok(Some(r)) = &result
        && r["ok"] == json!(true)
    {
        if echo {
            // Connected: keep echoing until stopped (the peer contract's listener never exits).
            serve_echo(&page, &op, &printer, &mut replies).await;
        } else {
            bridged = bridge(&page, &op, replies.lines).await;
        }
    }
    browser.close().await;
    bridged?;
    match result? {
        Some(r) if r["ok"] != json!(true) => anyhow::bail!(
            "browser listener: {}: {}",
            r["code"].as_str().unwrap_or("internal"),
            r["message"].as_str().unwrap_or("")
        ),
        _ => Ok(()),
    }
}

/// `oneway dial --stack browser`.
pub async fn dial(
    config: BrowserConfig,
    token_text: &str,
    json_output: bool,
    probe: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let (browser, page) = match launch(config).await {
        Ok(x) => x,
        Err(e) => {
            let printer = Printer {
                json: json_output,
                start,
                op_started_ms: 0.0,
                startup_ms: None,
            };
            printer.print(&json!({"event": "error", "t_ms": 0.0, "code": "browser-setup", "message": e.to_string()}));
            return Err(e);
        }
    };
    // The dialer's clock starts where the page decodes the token (spec/peer-contract.md:
    // "before decoding the token"); Chromium's launch before it is reported as `startup_ms`.
    let printer = Printer {
        json: json_output,
        start,
        op_started_ms: 0.0,
        startup_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
    };
    let op = page
        .start(
            "dial",
            json!({"token": token_text, "probe": probe, "bridge": !probe, "timeoutMs": timeout.as_millis() as u64}),
        )
        .await?;
    let result = follow(&page, &op, &printer, None).await;
    let outcome = match result {
        Ok(Some(r)) if r["ok"] == json!(true) => {
            if probe {
                Ok(())
            } else {
                bridge(&page, &op, stdin_lines()).await
            }
        }
        Ok(Some(r)) => Err(DialFailed(format!(
            "{}: {}",
            r["code"].as_str().unwrap_or("internal"),
            r["message"].as_str().unwrap_or("")
        ))
        .into()),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    browser.close().await;
    outcome
}
