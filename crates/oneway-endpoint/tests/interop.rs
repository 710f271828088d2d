//! Interop matrix over loopback: {str0m, webrtc-rs} listener × {str0m, webrtc-rs} dialer.
//! Each cell connects one-way (in-band proof included), echoes, opens a second channel in band,
//! restarts ICE in band, and closes. Then both stacks dial one listener socket of each stack at
//! once, and each dialer dials each listener with a token whose fingerprint is wrong (it must
//! fail with a named cause, and the listener must keep serving). Every cell's result is printed
//! as a table; the test fails if any cell failed.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use oneway_token::Token;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Longest any one step may take (the steps take milliseconds; this only stops a hang).
const STEP: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Str0m,
    WebrtcRs,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Stack::Str0m => "str0m",
            Stack::WebrtcRs => "webrtc-rs",
        }
    }
}

/// A connection event of either stack, reduced to what the test checks.
#[derive(Debug)]
enum Ev {
    ChannelOpen(String),
    Data(Vec<u8>),
    IceRestarted,
    Closed(&'static str),
    Other,
}

enum Conn {
    S(oneway_str0m::Connection),
    W(oneway_webrtc::Connection),
}

/// A channel of either stack.
#[derive(Clone, Copy)]
enum Ch {
    S(oneway_str0m::ChannelRef),
    W(oneway_webrtc::ChannelRef),
}

impl Conn {
    async fn open(&self, label: &str) -> Result<Ch, String> {
        match self {
            Conn::S(c) => c
                .open_channel(label)
                .await
                .map(Ch::S)
                .map_err(|e| e.to_string()),
            Conn::W(c) => c
                .open_channel(label)
                .await
                .map(Ch::W)
                .map_err(|e| e.to_string()),
        }
    }

    async fn send(&self, ch: Ch, data: &[u8]) -> Result<(), String> {
        match (self, ch) {
            (Conn::S(c), Ch::S(ch)) => c.send(ch, data).await.map_err(|e| e.to_string()),
            (Conn::W(c), Ch::W(ch)) => c.send(ch, data).await.map_err(|e| e.to_string()),
            _ => Err("channel of another connection".to_owned()),
        }
    }

    async fn ice_restart(&self) -> Result<(), String> {
        match self {
            Conn::S(c) => c.ice_restart().await.map_err(|e| e.to_string()),
            Conn::W(c) => c.ice_restart().await.map_err(|e| e.to_string()),
        }
    }

    fn close(&self, reason: &str) {
        match self {
            Conn::S(c) => c.close(reason),
            Conn::W(c) => c.close(reason),
        }
    }

    /// The next event with the channel it concerns (for echoing).
    async fn next(&mut self) -> Option<(Ev, Option<Ch>)> {
        match self {
            Conn::S(c) => c.next_event().await.map(|e| match e {
                oneway_str0m::ConnectionEvent::ChannelOpen { channel, label } => {
                    (Ev::ChannelOpen(label), Some(Ch::S(channel)))
                }
                oneway_str0m::ConnectionEvent::Data { channel, data, .. } => {
                    (Ev::Data(data), Some(Ch::S(channel)))
                }
                oneway_str0m::ConnectionEvent::IceRestarted => (Ev::IceRestarted, None),
                oneway_str0m::ConnectionEvent::Closed { code, .. } => (Ev::Closed(code), None),
                _ => (Ev::Other, None),
            }),
            Conn::W(c) => c.next_event().await.map(|e| match e {
                oneway_webrtc::ConnectionEvent::ChannelOpen { channel, label } => {
                    (Ev::ChannelOpen(label), Some(Ch::W(channel)))
                }
                oneway_webrtc::ConnectionEvent::Data { channel, data, .. } => {
                    (Ev::Data(data), Some(Ch::W(channel)))
                }
                oneway_webrtc::ConnectionEvent::IceRestarted => (Ev::IceRestarted, None),
                oneway_webrtc::ConnectionEvent::Closed { code, .. } => (Ev::Closed(code), None),
                _ => (Ev::Other, None),
            }),
        }
    }

    /// Waits for data (skipping other events) on any channel.
    async fn recv_data(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match timeout(STEP, self.next()).await {
                Err(_) => return Err("no data in time".to_owned()),
                Ok(None) => return Err("connection ended".to_owned()),
                Ok(Some((Ev::Data(d), _))) => return Ok(d),
                Ok(Some((Ev::Closed(code), _))) => return Err(format!("closed: {code}")),
                Ok(Some(_)) => {}
            }
        }
    }
}

/// What the listener side of a cell saw, reported by its echo task.
#[derive(Debug, Default)]
struct ListenerSaw {
    channels: Vec<String>,
    restarts: usize,
    closed: Option<&'static str>,
}

/// Starts a listener of `stack` on loopback that echoes on every connection and reports what
/// each connection saw when it ends.
async fn listener(stack: Stack) -> (Token, mpsc::UnboundedReceiver<ListenerSaw>) {
    let (saw_tx, saw_rx) = mpsc::unbounded_channel();
    let token = match stack {
        Stack::Str0m => {
            let mut l = oneway_str0m::Listener::bind(oneway_str0m::ListenerConfig::loopback())
                .await
                .expect("str0m listener binds");
            let token = l.token().clone();
            tokio::spawn(async move {
                while let Some(c) = l.accept().await {
                    tokio::spawn(echo(Conn::S(c), saw_tx.clone()));
                }
            });
            token
        }
        Stack::WebrtcRs => {
            let mut l = oneway_webrtc::Listener::bind(oneway_webrtc::ListenerConfig::loopback())
                .await
                .expect("webrtc-rs listener binds");
            let token = l.token().clone();
            tokio::spawn(async move {
                while let Some(c) = l.accept().await {
                    tokio::spawn(echo(Conn::W(c), saw_tx.clone()));
                }
            });
            token
        }
    };
    (token, saw_rx)
}

async fn echo(mut conn: Conn, saw: mpsc::UnboundedSender<ListenerSaw>) {
    let mut seen = ListenerSaw::default();
    while let Some((event, ch)) = conn.next().await {
        match (event, ch) {
            (Ev::Data(d), Some(ch)) => {
                let _ = conn.send(ch, &d).await;
            }
            (Ev::ChannelOpen(label), _) => seen.channels.push(label),
            (Ev::IceRestarted, _) => seen.restarts += 1,
            (Ev::Closed(code), _) => {
                seen.closed = Some(code);
                break;
            }
            _ => {}
        }
    }
    let _ = saw.send(seen);
}

async fn dial(stack: Stack, token: &Token) -> Result<Conn, String> {
    dial_within(stack, token, Duration::from_secs(10))
        .await
        .map_err(|(code, e)| format!("{code}: {e}"))
}

/// Dials with a connect timeout; a failure is `(cause code, message)`.
async fn dial_within(
    stack: Stack,
    token: &Token,
    timeout: Duration,
) -> Result<Conn, (&'static str, String)> {
    match stack {
        Stack::Str0m => {
            let config = oneway_str0m::DialConfig {
                timeout,
                ..Default::default()
            };
            oneway_str0m::dial(token, &config)
                .await
                .map(Conn::S)
                .map_err(|e| (e.code(), e.to_string()))
        }
        Stack::WebrtcRs => {
            let config = oneway_webrtc::DialConfig {
                timeout,
                ..Default::default()
            };
            oneway_webrtc::dial(token, &config)
                .await
                .map(Conn::W)
                .map_err(|e| (e.code(), e.to_string()))
        }
    }
}

/// Cause codes a dialer may give for a listener whose certificate is not the token's
/// (`spec/handshake.md` §8): stacks whose DTLS reports the failed verification say
/// `fingerprint-mismatch`, the others see a handshake that never completes.
const WRONG_FINGERPRINT_CODES: [&str; 2] = ["fingerprint-mismatch", "dtls-timeout"];

/// A dialer of `dialer_stack` given the token of a `listener_stack` listener with one bit of
/// the fingerprint flipped: it must fail with a named cause and never connect; the listener
/// then still serves a dialer with the right token. Returns the failed dial's code and time.
async fn run_wrong_fingerprint(
    listener_stack: Stack,
    dialer_stack: Stack,
) -> Result<(&'static str, f64), String> {
    let (token, _saw) = listener(listener_stack).await;
    let mut forged = token.clone();
    forged.fingerprint.0[7] ^= 0x10;
    let start = Instant::now();
    let code = match dial_within(dialer_stack, &forged, Duration::from_secs(3)).await {
        Ok(conn) => {
            conn.close("must not connect");
            return Err("connected with a wrong fingerprint".to_owned());
        }
        Err((code, _)) if WRONG_FINGERPRINT_CODES.contains(&code) => code,
        Err((code, e)) => return Err(format!("failed with {code} ({e}), not a named cause")),
    };
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let mut good = dial(dialer_stack, &token)
        .await
        .map_err(|e| format!("listener stopped serving: {e}"))?;
    let ch = good.open("data").await?;
    echo_on(&mut good, ch, b"still serving").await?;
    good.close("done");
    Ok((code, ms))
}

async fn echo_on(conn: &mut Conn, ch: Ch, payload: &[u8]) -> Result<(), String> {
    conn.send(ch, payload).await?;
    let back = conn.recv_data().await?;
    if back == payload {
        Ok(())
    } else {
        Err(format!("echoed {back:?}"))
    }
}

/// One cell's steps, each `Ok(ms)` or `Err(why)`; a failed step skips the rest.
#[derive(Default)]
struct Cell {
    steps: Vec<(&'static str, Result<f64, String>)>,
}

impl Cell {
    fn passed(&self) -> bool {
        self.steps.len() == STEPS.len() && self.steps.iter().all(|(_, r)| r.is_ok())
    }
}

const STEPS: [&str; 5] = [
    "connect+proof",
    "echo",
    "2nd channel",
    "ice restart",
    "close",
];

async fn run_cell(listener_stack: Stack, dialer_stack: Stack) -> Cell {
    let mut cell = Cell::default();
    let (token, mut saw) = listener(listener_stack).await;
    macro_rules! step {
        ($name:expr, $body:expr) => {{
            let t = Instant::now();
            let r: Result<_, String> = match timeout(STEP, $body).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_owned()),
            };
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            match r {
                Ok(v) => {
                    cell.steps.push(($name, Ok(ms)));
                    v
                }
                Err(e) => {
                    cell.steps.push(($name, Err(e)));
                    return cell;
                }
            }
        }};
    }
    let mut conn = step!("connect+proof", dial(dialer_stack, &token));
    let data = step!("echo", async {
        let ch = conn.open("data").await?;
        echo_on(&mut conn, ch, b"hello").await?;
        Ok(ch)
    });
    step!("2nd channel", async {
        let ch = conn.open("second").await?;
        echo_on(&mut conn, ch, b"second").await
    });
    step!("ice restart", async {
        conn.ice_restart().await?;
        // Data still flows after the switch, on a channel opened before it.
        echo_on(&mut conn, data, b"after restart").await
    });
    step!("close", async {
        conn.close("done");
        let seen = saw.recv().await.ok_or("listener echo task gone")?;
        if seen.closed != Some("closed-by-peer") {
            return Err(format!("listener saw {:?}", seen.closed));
        }
        if seen.channels != ["data", "second"] {
            return Err(format!("listener saw channels {:?}", seen.channels));
        }
        if seen.restarts != 1 {
            return Err(format!("listener saw {} restarts", seen.restarts));
        }
        Ok(())
    });
    cell
}

/// Two dialers of each stack at once against one listener socket of `listener_stack`.
async fn run_mixed(listener_stack: Stack) -> Result<f64, String> {
    let start = Instant::now();
    let (token, _saw) = listener(listener_stack).await;
    let mut tasks = Vec::new();
    for (i, stack) in [Stack::Str0m, Stack::WebrtcRs, Stack::Str0m, Stack::WebrtcRs]
        .into_iter()
        .enumerate()
    {
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = dial(stack, &token).await?;
            let ch = conn.open("data").await?;
            let payload = format!("dialer {i} ({})", stack.name());
            echo_on(&mut conn, ch, payload.as_bytes()).await?;
            conn.close("done");
            Ok::<_, String>(())
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        match timeout(STEP, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(format!("dialer {i}: {e}")),
            Ok(Err(e)) => return Err(format!("dialer {i} panicked: {e}")),
            Err(_) => return Err(format!("dialer {i} timed out")),
        }
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_matrix() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let only = std::env::var("ONEWAY_INTEROP_CELL").ok();
    let stacks = [Stack::Str0m, Stack::WebrtcRs];
    let mut table = String::new();
    let _ = writeln!(table, "| listener × dialer | {} |", STEPS.join(" | "));
    let _ = writeln!(table, "|---|{}", "---|".repeat(STEPS.len()));
    let mut failed = Vec::new();
    for listener_stack in stacks {
        for dialer_stack in stacks {
            let name = format!("{} × {}", listener_stack.name(), dialer_stack.name());
            if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
                continue;
            }
            let cell = run_cell(listener_stack, dialer_stack).await;
            let mut row = format!("| {name} |");
            for (i, _) in STEPS.iter().enumerate() {
                let text = match cell.steps.get(i) {
                    Some((_, Ok(ms))) => format!(" ok {ms:.0} ms |"),
                    Some((_, Err(e))) => format!(" FAIL: {e} |"),
                    None => " skipped |".to_owned(),
                };
                row.push_str(&text);
            }
            let _ = writeln!(table, "{row}");
            if !cell.passed() {
                failed.push(name);
            }
        }
    }
    let _ = writeln!(
        table,
        "\n| mixed dialers (2 str0m + 2 webrtc-rs at once) | result |\n|---|---|"
    );
    for listener_stack in stacks {
        let name = format!("{} listener", listener_stack.name());
        match run_mixed(listener_stack).await {
            Ok(ms) => {
                let _ = writeln!(table, "| {name} | ok, all 4 echoed in {ms:.0} ms |");
            }
            Err(e) => {
                let _ = writeln!(table, "| {name} | FAIL: {e} |");
                failed.push(format!("mixed on {name}"));
            }
        }
    }
    let _ = writeln!(
        table,
        "\n| wrong fingerprint: listener × dialer | dialer failed with | then a good dialer |\n|---|---|---|"
    );
    let mut wrong = Vec::new();
    for listener_stack in stacks {
        for dialer_stack in stacks {
            wrong.push((
                listener_stack,
                dialer_stack,
                tokio::spawn(run_wrong_fingerprint(listener_stack, dialer_stack)),
            ));
        }
    }
    for (listener_stack, dialer_stack, task) in wrong {
        let name = format!("{} × {}", listener_stack.name(), dialer_stack.name());
        match task.await {
            Ok(Ok((code, ms))) => {
                let _ = writeln!(table, "| {name} | `{code}` after {ms:.0} ms | ok, echoed |");
            }
            Ok(Err(e)) => {
                let _ = writeln!(table, "| {name} | FAIL: {e} | |");
                failed.push(format!("wrong fingerprint {name}"));
            }
            Err(e) => {
                let _ = writeln!(table, "| {name} | FAIL: panicked: {e} | |");
                failed.push(format!("wrong fingerprint {name}"));
            }
        }
    }
    println!("\n{table}");
    assert!(failed.is_empty(), "failed cells: {failed:?}\n{table}");
}
