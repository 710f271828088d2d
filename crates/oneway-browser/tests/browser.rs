//! The browser peer in real headless browsers (no mock), in four variants:
//!
//! - `chromium`: every case in Debian's Chromium (case names without a prefix);
//! - `chromium_nomunge::`: every role with Chromium's coming rule against local SDP munging
//!   forced (`--force-fieldtrials=WebRTC-NoSdpMangleUfrag/Enabled/`);
//! - `firefox::`: every role in Debian's Firefox ESR (through geckodriver);
//! - `chromium_x_firefox::`: a Chromium and a Firefox, browser to browser both ways.
//!
//! One browser (two for the last variant) is shared by every case of a variant, each case in
//! its own tab(s). The role cases are one set of functions run in every variant (the table
//! `CASES` names the variants of each); a summary of the connect times per role and variant
//! ends the output.
//!
//! The media cases between native peers and browsers (audio and video each way, remove and
//! direction change by the browser) are in `browser/media.rs`, names `media_*`.
//!
//! Runs in the normal test command. Skips with a printed reason only when a browser is absent
//! outside CI; with `CI=true` a missing browser fails. Takes `cargo test` name filters
//! (`cargo test --test browser firefox` runs the Firefox variant; a filter matches any part of
//! a case's full name, so `media_str0m_dials` runs those cases in every variant).
//! Screenshots go to `target/browser-artifacts/` (CI keeps them as artifacts).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use oneway_browser::{Browser, BrowserConfig, Engine, Page, StaticServer};
use oneway_str0m::{
    ConnectionEvent, DialConfig, Listener, ListenerConfig, Progress, dial as str0m_dial,
};
use oneway_token::Token;
use serde_json::{Value, json};

#[path = "browser/media.rs"]
mod media;

type CaseResult = Result<String, String>;
type Case = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

struct Ctx {
    /// The variant's browser.
    browser: Browser,
    /// The second engine's browser (variant `chromium_x_firefox` only).
    other: Option<Browser>,
    variant: &'static Variant,
}

impl Ctx {
    /// The second browser, for cases that pair two engines.
    fn other(&self) -> Result<&Browser, String> {
        self.other
            .as_ref()
            .ok_or_else(|| "this variant has no second browser".to_owned())
    }

    /// Where this variant's screenshot `name` goes.
    fn screenshot_path(&self, name: &str) -> PathBuf {
        artifacts_dir().join(format!("{}-{name}.png", self.variant.name))
    }
}

/// A set of browsers the cases run in.
struct Variant {
    /// Short name (artifact file names, summary).
    name: &'static str,
    /// Prefix of the case names (empty for the default variant, so its names stay stable).
    prefix: &'static str,
    engine: Engine,
    /// Chromium field trials forced in this variant.
    field_trials: Option<&'static str>,
    /// A second engine started beside the first.
    other: Option<Engine>,
}

/// Chromium's coming rule against local SDP munging (field notes §2, §8).
const NO_MUNGE_TRIAL: &str = "WebRTC-NoSdpMangleUfrag/Enabled/";

static CHROMIUM: Variant = Variant {
    name: "chromium",
    prefix: "",
    engine: Engine::Chromium,
    field_trials: None,
    other: None,
};
static CHROMIUM_NOMUNGE: Variant = Variant {
    name: "chromium-nomunge",
    prefix: "chromium_nomunge::",
    engine: Engine::Chromium,
    field_trials: Some(NO_MUNGE_TRIAL),
    other: None,
};
static FIREFOX: Variant = Variant {
    name: "firefox",
    prefix: "firefox::",
    engine: Engine::Firefox,
    field_trials: None,
    other: None,
};
static CROSS: Variant = Variant {
    name: "chromium-x-firefox",
    prefix: "chromium_x_firefox::",
    engine: Engine::Chromium,
    field_trials: None,
    other: Some(Engine::Firefox),
};
static VARIANTS: [&Variant; 4] = [&CHROMIUM, &CHROMIUM_NOMUNGE, &FIREFOX, &CROSS];
/// The variants every role runs in.
static ROLES: &[&Variant] = &[&CHROMIUM, &CHROMIUM_NOMUNGE, &FIREFOX];
static CHROMIUM_ONLY: &[&Variant] = &[&CHROMIUM];
static PAIRS: &[&Variant] = &[&CROSS];

impl Variant {
    fn config(&self, engine: Engine) -> Result<BrowserConfig, oneway_browser::BrowserError> {
        let mut config = BrowserConfig::detect_engine(engine)?;
        if engine == Engine::Chromium && self.field_trials.is_some() {
            config.field_trials = self.field_trials.map(str::to_owned);
        }
        Ok(config)
    }
}

const LIMIT: Duration = Duration::from_secs(30);

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn event_ms(events: &[Value], name: &str) -> Option<f64> {
    events
        .iter()
        .find(|e| e["event"] == name)
        .and_then(|e| e["t_ms"].as_f64())
}

/// Connect time as the page measured it: from `dialing` (or the token) to `connected`.
fn connect_ms(events: &[Value], from: &str) -> String {
    match (event_ms(events, from), event_ms(events, "connected")) {
        (Some(a), Some(b)) => format!("{:.1} ms", b - a),
        _ => "n/a".to_owned(),
    }
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-artifacts")
}

/// A str0m listener on loopback that echoes on every channel; returns its token text.
async fn str0m_echo_listener() -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let mut listener = Listener::bind(ListenerConfig::loopback())
        .await
        .map_err(err("str0m listener"))?;
    let text = listener.token().to_text().map_err(err("token"))?;
    let task = tokio::spawn(async move {
        while let Some(mut conn) = listener.accept().await {
            tokio::spawn(async move {
                while let Some(event) = conn.next_event().await {
                    match event {
                        ConnectionEvent::Data {
                            channel,
                            binary: false,
                            data,
                        } => {
                            let _ = conn
                                .send_text(channel, &String::from_utf8_lossy(&data))
                                .await;
                        }
                        ConnectionEvent::Data { channel, data, .. } => {
                            let _ = conn.send(channel, &data).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    Ok((text, task))
}

/// A webrtc-rs (`rtc`) listener on loopback that echoes on every channel; returns its token,
/// and a count of the RTP packets its connections received (after in-band renegotiation).
async fn webrtc_echo_listener() -> Result<(String, tokio::task::JoinHandle<()>, RtpCount), String> {
    use oneway_webrtc::ConnectionEvent as Event;
    let mut listener = oneway_webrtc::Listener::bind(oneway_webrtc::ListenerConfig::loopback())
        .await
        .map_err(err("webrtc-rs listener"))?;
    let text = listener.token().to_text().map_err(err("token"))?;
    let rtp = RtpCount::default();
    let count = rtp.clone();
    let task = tokio::spawn(async move {
        while let Some(mut conn) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                while let Some(event) = conn.next_event().await {
                    match event {
                        Event::Rtp { .. } => count.add(),
                        Event::Data {
                            channel,
                            binary: false,
                            data,
                        } => {
                            let _ = conn
                                .send_text(channel, &String::from_utf8_lossy(&data))
                                .await;
                        }
                        Event::Data { channel, data, .. } => {
                            let _ = conn.send(channel, &data).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    Ok((text, task, rtp))
}

/// RTP packets a native peer received.
#[derive(Clone, Default)]
struct RtpCount(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl RtpCount {
    fn add(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (at most 10 s) until a steady stream arrived (25 packets: half a second of Opus at
    /// 20 ms); returns how many.
    async fn wait_some(&self) -> Result<usize, String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get() < 25 {
            if Instant::now() > deadline {
                return Err(format!(
                    "the native peer received {} RTP packets in 10 s",
                    self.get()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(self.get())
    }
}

/// str0m dials a browser listener's token, opens `data`, and checks one echo.
async fn str0m_probe(token_text: &str) -> Result<(f64, f64), String> {
    let token = Token::from_text(token_text).map_err(err("browser token"))?;
    let start = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let config = DialConfig {
        progress: Some(tx),
        ..Default::default()
    };
    let mut conn = str0m_dial(&token, &config)
        .await
        .map_err(err("str0m dial"))?;
    let connected = start.elapsed().as_secs_f64() * 1000.0;
    drop(config);
    while rx.try_recv().is_ok() {}
    let _ = Progress::Authenticated;
    let ch = conn.open_channel("data").await.map_err(err("open data"))?;
    let sent = Instant::now();
    conn.send_text(ch, "hello from str0m")
        .await
        .map_err(err("send"))?;
    let echoed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = conn.next_event().await {
            if let ConnectionEvent::Data { data, .. } = e
                && data == b"hello from str0m"
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !echoed {
        return Err("no echo from the browser listener".to_owned());
    }
    let rtt = sent.elapsed().as_secs_f64() * 1000.0;
    conn.close("done");
    Ok((connected, rtt))
}

/// webrtc-rs dials a browser listener's `dialer-identity` token, opens `data`, checks one echo.
async fn webrtc_probe(token_text: &str) -> Result<(f64, f64), String> {
    let token = Token::from_text(token_text).map_err(err("browser token"))?;
    let start = Instant::now();
    let mut conn = oneway_webrtc::dial(&token, &oneway_webrtc::DialConfig::default())
        .await
        .map_err(err("webrtc-rs dial"))?;
    let connected = start.elapsed().as_secs_f64() * 1000.0;
    let ch = conn.open_channel("data").await.map_err(err("open data"))?;
    let sent = Instant::now();
    conn.send_text(ch, "hello from webrtc-rs")
        .await
        .map_err(err("send"))?;
    let echoed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = conn.next_event().await {
            if let oneway_webrtc::ConnectionEvent::Data { data, .. } = e
                && data == b"hello from webrtc-rs"
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    if !echoed {
        return Err("no echo from the browser listener".to_owned());
    }
    let rtt = sent.elapsed().as_secs_f64() * 1000.0;
    conn.close("done");
    Ok((connected, rtt))
}

fn spec_vectors(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("vectors", json!({}))
            .await
            .map_err(err("start"))?;
        let out = page
            .wait(&op, LIMIT, |_| {})
            .await
            .map_err(err("vectors"))?;
        let failures = out.value["failures"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let passed = out.value["passed"].as_u64().unwrap_or(0);
        if !failures.is_empty() || passed < 100 {
            return Err(format!("{passed} checks passed; failures: {failures:#?}"));
        }
        let skipped = out.value["skipped"]
            .as_array()
            .filter(|s| !s.is_empty())
            .map(|s| format!("; skipped {s:?}"))
            .unwrap_or_default();
        Ok(format!(
            "{passed} vector checks passed in {}{skipped}",
            ctx.browser.engine().display_name()
        ))
    })
}

/// The owr2 reply code and the `stun` token extension in this browser: round trips, the size
/// rule, and every error code (web/driver.js `codecSelfCheck`).
fn reply_codec(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page.start("codec", json!({})).await.map_err(err("start"))?;
        let out = page.wait(&op, LIMIT, |_| {}).await.map_err(err("codec"))?;
        let failures = out.value["failures"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let passed = out.value["passed"].as_u64().unwrap_or(0);
        if !failures.is_empty() || passed < 50 {
            return Err(format!("{passed} checks passed; failures: {failures:#?}"));
        }
        Ok(format!("{passed} owr2 and stun codec checks passed"))
    })
}

/// A loopback STUN server: answers every Binding request with XOR-MAPPED-ADDRESS
/// 203.0.113.5:<source port>, so a browser that asks it gathers that server-reflexive candidate.
async fn loopback_stun_server()
-> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), String> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(err("STUN server"))?;
    let addr = socket.local_addr().map_err(err("STUN server"))?;
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mapped = std::net::SocketAddr::from(([203, 0, 113, 5], from.port()));
            if let Some(reply) = oneway_core::stun_client::binding_response(&buf[..n], mapped) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    Ok((addr, task))
}

fn reply_fallback_with_stun(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(reply_fallback(ctx, true))
}

fn reply_fallback_host_only(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(reply_fallback(ctx, false))
}

/// The reply fallback of a browser dialer (spec/handshake.md §11): it dials a `native` token
/// whose only candidate is a black hole (a bound loopback port that never answers), with a
/// loopback STUN server in the token's `stun` (or none). While the one-way attempt runs, it
/// emits `reply-code` in the peer-contract shape; the code decodes, verifies with the token's
/// reply key, names this browser's own ICE credentials, and carries its server-reflexive
/// candidate first (or, without STUN, its loopback host candidates: the token's are loopback
/// too). The one-way attempt still ends with `ice-timeout`.
async fn reply_fallback(ctx: &Ctx, with_stun: bool) -> CaseResult {
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").map_err(err("black hole"))?;
    let hole = hole.local_addr().map_err(err("black hole"))?;
    let (stun, stun_task) = loopback_stun_server().await?;
    let result = async {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let servers = if with_stun {
            vec![stun.to_string()]
        } else {
            vec![]
        };
        let made = page
            .start(
                "native-token",
                json!({"candidates": [hole.to_string()], "stun": servers}),
            )
            .await
            .map_err(err("token"))?;
        let made = page
            .wait(&made, LIMIT, |_| {})
            .await
            .map_err(err("token"))?;
        let token = made.value["token"].as_str().ok_or("no token")?.to_owned();
        let dial = page
            .start(
                "dial",
                json!({"token": token, "probe": true, "timeoutMs": 6000}),
            )
            .await
            .map_err(err("dial"))?;
        let event = page
            .wait_event(&dial, "reply-code", LIMIT, |_| {})
            .await
            .map_err(err("reply-code"))?;
        let (reply, candidates) = match oneway_core::PeerEvent::parse_line(&event.to_string()) {
            Some(oneway_core::PeerEvent::ReplyCode {
                reply, candidates, ..
            }) => (reply, candidates),
            other => {
                return Err(format!(
                    "`reply-code` is not the contract's event: {event} ({other:?})"
                ));
            }
        };
        let check = page
            .start(
                "check-reply",
                json!({"code": reply, "token": token, "dial": dial}),
            )
            .await
            .map_err(err("check-reply"))?;
        let checked = page
            .wait(&check, LIMIT, |_| {})
            .await
            .map_err(err("the reply code does not decode or verify"))?
            .value;
        if checked["version"] != json!(2) || checked["own"] != json!(true) {
            return Err(format!(
                "the reply code does not name this browser's credentials: {checked}"
            ));
        }
        if checked["candidates"] != json!(candidates) || candidates.is_empty() {
            return Err(format!(
                "event candidates {candidates:?}, code candidates {}",
                checked["candidates"]
            ));
        }
        let first = &candidates[0];
        if with_stun && !first.starts_with("srflx udp 203.0.113.5:") {
            return Err(format!(
                "no server-reflexive candidate first: {candidates:?}"
            ));
        }
        if !with_stun && !candidates.iter().all(|c| c.starts_with("host udp ")) {
            return Err(format!(
                "host candidates expected without STUN: {candidates:?}"
            ));
        }
        let ended = page.wait(&dial, LIMIT, |_| {}).await;
        match ended {
            Err(oneway_browser::BrowserError::Page { code, .. }) if code == "ice-timeout" => {}
            other => {
                return Err(format!(
                    "the one-way attempt should end with ice-timeout: {other:?}"
                ));
            }
        }
        Ok(format!(
            "reply-code at {:.0} ms: {} chars, {candidates:?}",
            event["t_ms"].as_f64().unwrap_or(f64::NAN),
            reply.len()
        ))
    }
    .await;
    stun_task.abort();
    result
}

/// HMAC-SHA1 as str0m's STUN code wants it.
fn sha1_hmac(key: &[u8], data: &[&[u8]]) -> [u8; 20] {
    str0m::crypto::from_feature_flags()
        .sha1_hmac_provider
        .sha1_hmac(key, data)
}

/// The browser's side of hole punching (spec/handshake.md §11): a listener that took the
/// browser's reply code checks towards its candidates from an address the token does not name
/// (`USERNAME = <browser ufrag>:<token ufrag>+<browser pwd>`, integrity keyed with the browser's
/// pwd, ICE-CONTROLLED). The browser, a controlling full ICE agent, must answer with a Binding
/// success and send a triggered check back to that address (`USERNAME = <token ufrag>+<browser
/// pwd>:<browser ufrag>`), which is what opens the listener's NAT. Played here with raw STUN
/// from a loopback socket, so it needs no native listener.
fn browser_answers_punching_checks(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        use str0m::ice::{StunMessage, TransId};
        let hole = std::net::UdpSocket::bind("127.0.0.1:0").map_err(err("black hole"))?;
        let hole = hole.local_addr().map_err(err("black hole"))?;
        let listener = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(err("listener socket"))?;
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let made = page
            .start("native-token", json!({"candidates": [hole.to_string()]}))
            .await
            .map_err(err("token"))?;
        let made = page
            .wait(&made, LIMIT, |_| {})
            .await
            .map_err(err("token"))?;
        let token_text = made.value["token"].as_str().ok_or("no token")?.to_owned();
        let keys = Token::from_text(&token_text)
            .map_err(err("token"))?
            .derive();
        let dial = page
            .start(
                "dial",
                json!({"token": token_text, "probe": true, "timeoutMs": 8000}),
            )
            .await
            .map_err(err("dial"))?;
        let event = page
            .wait_event(&dial, "reply-code", LIMIT, |_| {})
            .await
            .map_err(err("reply-code"))?;
        let check = page
            .start(
                "check-reply",
                json!({"code": event["reply"], "token": token_text, "dial": dial}),
            )
            .await
            .map_err(err("check-reply"))?;
        let reply = page
            .wait(&check, LIMIT, |_| {})
            .await
            .map_err(err("check-reply"))?
            .value;
        let (ufrag, pwd) = (
            reply["ufrag"].as_str().ok_or("no ufrag")?.to_owned(),
            reply["pwd"].as_str().ok_or("no pwd")?.to_owned(),
        );
        let target: std::net::SocketAddr = reply["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|c| c.strip_prefix("host udp 127.0.0.1:"))
            .and_then(|port| format!("127.0.0.1:{port}").parse().ok())
            .ok_or_else(|| format!("no loopback host candidate in {reply}"))?;
        let username = format!("{ufrag}:{}+{pwd}", keys.token_ufrag);
        let trans = TransId::new();
        let request = StunMessage::binding_request(&username, trans, false, 7, 1 << 24, false);
        let mut buf = vec![0u8; 1500];
        let n = request
            .to_bytes(Some(pwd.as_bytes()), &mut buf, sha1_hmac)
            .map_err(err("STUN"))?;
        let sent = Instant::now();
        listener
            .send_to(&buf[..n], target)
            .await
            .map_err(err("send check"))?;
        let (mut answered, mut checked_back) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut rx = vec![0u8; 1500];
        while (answered.is_none() || checked_back.is_none()) && Instant::now() < deadline {
            let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_millis(200), listener.recv_from(&mut rx)).await
            else {
                continue;
            };
            let Ok(msg) = StunMessage::parse(&rx[..n]) else {
                continue;
            };
            if msg.is_successful_binding_response() && msg.trans_id() == trans {
                if !msg.verify(pwd.as_bytes(), sha1_hmac) {
                    return Err("the browser's answer is not signed with its pwd".to_owned());
                }
                answered = Some((sent.elapsed().as_secs_f64() * 1000.0, from));
            } else if msg.is_binding_request() {
                let expected = format!("{}+{pwd}:{ufrag}", keys.token_ufrag);
                if msg.username() != Some(expected.as_str()) {
                    return Err(format!(
                        "a check back with USERNAME {:?}, not {expected}",
                        msg.username()
                    ));
                }
                if !msg.verify(keys.listener_pwd.as_bytes(), sha1_hmac) {
                    return Err(
                        "the check back is not signed with the token's listener pwd".to_owned()
                    );
                }
                checked_back.get_or_insert(sent.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let _ = page.start("close", json!({"conn": dial})).await;
        let (answer_ms, from) =
            answered.ok_or("the browser did not answer the listener's check")?;
        let back_ms =
            checked_back.ok_or("the browser sent no triggered check to the listener's address")?;
        if from != target {
            return Err(format!("answered from {from}, not its candidate {target}"));
        }
        Ok(format!(
            "browser answered the check in {answer_ms:.1} ms and checked back in {back_ms:.1} ms"
        ))
    })
}

fn str0m_punches_to_browser(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(punched_by::<oneway_str0m::Str0m>(ctx, "str0m"))
}

fn webrtc_punches_to_browser(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(punched_by::<oneway_webrtc::WebrtcRs>(ctx, "webrtc-rs"))
}

/// The reply fallback end to end (spec/handshake.md §11): a native listener on `S` whose token
/// candidates are black-holed (a bound port that drops everything, as a filtering NAT drops an
/// unsolicited check), so the browser's one-way checks never arrive. The browser shows its
/// reply code; the listener takes it (`Listener::take_reply`), checks towards the browser, the
/// browser answers and checks back, and the connection comes up with route `reply` at the
/// listener; the browser's probe is echoed.
async fn punched_by<S: oneway_endpoint::Stack>(ctx: &Ctx, stack: &str) -> CaseResult {
    let mut listener =
        oneway_endpoint::Listener::<S>::bind(oneway_endpoint::ListenerConfig::loopback())
            .await
            .map_err(err("listener"))?;
    let hole = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(err("black hole"))?;
    let mut token = listener.token().clone();
    let hole_port = hole.local_addr().map_err(err("black hole"))?.port();
    for c in &mut token.candidates {
        c.port = hole_port;
    }
    let token = token.to_text().map_err(err("token"))?;
    let page = ctx.browser.open_page().await.map_err(err("page"))?;
    let dial = page
        .start(
            "dial",
            json!({"token": token, "probe": true, "timeoutMs": 20000}),
        )
        .await
        .map_err(err("dial"))?;
    let event = page
        .wait_event(&dial, "reply-code", LIMIT, |_| {})
        .await
        .map_err(err("reply-code"))?;
    let code = event["reply"].as_str().ok_or("no reply")?.to_owned();
    let t = Instant::now();
    let taken = listener
        .take_reply(&code)
        .await
        .map_err(|e| format!("{stack} listener refused the browser's reply code {code}: {e}"))?;
    let mut conn = tokio::time::timeout(LIMIT, listener.accept())
        .await
        .map_err(|_| format!("{stack} listener accepted nobody after taking the code"))?
        .ok_or("the listener stopped")?;
    let accepted_ms = t.elapsed().as_secs_f64() * 1000.0;
    let route = conn.info().route;
    let echo = tokio::spawn(async move {
        while let Some(event) = conn.next_event().await {
            if let oneway_endpoint::ConnectionEvent::Data {
                channel,
                binary,
                data,
            } = event
            {
                let _ = if binary {
                    conn.send(channel, &data).await
                } else {
                    conn.send_text(channel, &String::from_utf8_lossy(&data))
                        .await
                };
            }
        }
    });
    let out = page.wait(&dial, LIMIT, |_| {}).await;
    echo.abort();
    let out = out.map_err(err("browser dial"))?;
    if route != oneway_connection::Route::Reply {
        return Err(format!("listener route {route:?}, not reply"));
    }
    if !out.events.iter().any(|e| e["event"] == "first-echo") {
        return Err(format!("no first-echo: {:?}", out.events));
    }
    let connected = out
        .events
        .iter()
        .find(|e| e["event"] == "connected")
        .cloned()
        .unwrap_or_default();
    if connected["route"] != json!("reply") {
        return Err(format!(
            "the browser's route is {}, not reply (token {token}): {connected}",
            connected["route"]
        ));
    }
    Ok(format!(
        "{stack} listener took the code ({} chars, dialer {}, {:?}) and accepted in {accepted_ms:.0} ms; browser echoed",
        code.len(),
        taken.dialer_ufrag,
        taken.candidates.len()
    ))
}

fn browser_dials_str0m(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let (token, listener) = str0m_echo_listener().await?;
        browser_dials(ctx, token, listener).await
    })
}

fn browser_dials_webrtc(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let (token, listener, _) = webrtc_echo_listener().await?;
        browser_dials(ctx, token, listener).await
    })
}

/// The browser dials a native listener's `native` token, checks the event sequence and one echo.
async fn browser_dials(
    ctx: &Ctx,
    token: String,
    listener: tokio::task::JoinHandle<()>,
) -> CaseResult {
    {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("dial", json!({"token": token, "probe": true}))
            .await
            .map_err(err("start"))?;
        let out = page.wait(&op, LIMIT, |_| {}).await.map_err(err("dial"));
        listener.abort();
        let out = out?;
        let names: Vec<&str> = out
            .events
            .iter()
            .filter_map(|e| e["event"].as_str())
            .collect();
        for needed in [
            "dialing",
            "ice-connected",
            "dtls-connected",
            "channel-open",
            "connected",
            "first-echo",
        ] {
            if !names.contains(&needed) {
                return Err(format!("no `{needed}` event: {names:?}"));
            }
        }
        // One-way (spec/handshake.md §11.2): the listener sent no check; no route is allowed
        // only where the engine does not count received requests.
        let route = out
            .events
            .iter()
            .find(|e| e["event"] == "connected")
            .map(|e| e["route"].clone())
            .unwrap_or_default();
        if route != json!("one-way") && !route.is_null() {
            return Err(format!("a one-way connection reports route {route}"));
        }
        Ok(format!(
            "connected in {}, echo rtt {:.1} ms",
            connect_ms(&out.events, "dialing"),
            out.value["rtt_ms"].as_f64().unwrap_or(f64::NAN)
        ))
    }
}

fn str0m_dials_browser(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(native_dials_browser(ctx, "str0m"))
}

fn webrtc_dials_browser(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(native_dials_browser(ctx, "webrtc-rs"))
}

/// A browser listener publishes a `dialer-identity` token; the native `stack` dials it.
async fn native_dials_browser(ctx: &Ctx, stack: &str) -> CaseResult {
    {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("listen", json!({"profile": "dialer-identity"}))
            .await
            .map_err(err("start"))?;
        let token = page
            .wait_event(&op, "token", LIMIT, |_| {})
            .await
            .map_err(err("token"))?;
        let text = token["token"].as_str().ok_or("no token text")?.to_owned();
        let probed = if stack == "str0m" {
            str0m_probe(&text).await
        } else {
            webrtc_probe(&text).await
        };
        let (connected, rtt) = match probed {
            Ok(x) => x,
            Err(e) => {
                let (events, result) = page.poll(&op).await.map_err(err("poll"))?;
                return Err(format!(
                    "{e}; browser listener events {events:?}, result {result:?}"
                ));
            }
        };
        let out = page
            .wait(&op, LIMIT, |_| {})
            .await
            .map_err(err("listener"))?;
        if out.value["token"] != json!(text) {
            return Err("listener ended with another token".to_owned());
        }
        Ok(format!(
            "{stack} connected in {connected:.1} ms (dialer-identity, {} B token), echo rtt {rtt:.1} ms",
            text.len()
        ))
    }
}

/// Two tabs: a `reply` listener in `listener` and a browser dialer in `dialer` (the same
/// browser, or two engines); the reply code goes back by the test.
async fn browser_pair(
    listener: &Browser,
    dialer: &Browser,
) -> Result<(Page, String, Page, String, Vec<Value>, String), String> {
    let a = listener.open_page().await.map_err(err("page a"))?;
    let b = dialer.open_page().await.map_err(err("page b"))?;
    let listen = a
        .start("listen", json!({"profile": "reply"}))
        .await
        .map_err(err("listen"))?;
    let token = a
        .wait_event(&listen, "token", LIMIT, |_| {})
        .await
        .map_err(err("token"))?;
    let text = token["token"].as_str().ok_or("no token")?.to_owned();
    let dial = b
        .start("dial", json!({"token": text, "probe": true, "keep": true}))
        .await
        .map_err(err("dial"))?;
    let reply = b
        .wait_event(&dial, "reply-code", LIMIT, |_| {})
        .await
        .map_err(err("reply code"))?;
    let code = reply["reply"].as_str().ok_or("no reply code")?.to_owned();
    if reply["candidates"] != json!([]) {
        return Err(format!("an owr1 reply code carries no candidates: {reply}"));
    }
    let accept = a
        .start("accept-reply", json!({"listen": listen, "code": code}))
        .await
        .map_err(err("accept"))?;
    a.wait(&accept, LIMIT, |_| {})
        .await
        .map_err(err("accept-reply"))?;
    let out = b.wait(&dial, LIMIT, |_| {}).await.map_err(err("dialer"))?;
    a.wait(&listen, LIMIT, |_| {})
        .await
        .map_err(err("listener"))?;
    let mut events = vec![reply.clone()];
    events.extend(out.events);
    Ok((a, listen, b, dial, events, code))
}

/// The reply-code length `spec/token.md` §12 states for each engine's credentials.
fn expected_reply_len(engine: Engine) -> usize {
    match engine {
        Engine::Chromium => 80,
        Engine::Firefox => 92,
    }
}

/// Connects a browser dialer (in `dialer`) to a browser listener (in `listener`) with a reply
/// code, and checks the code's length against the spec's rule for the dialer's engine.
async fn reply_pair(listener: &Browser, dialer: &Browser) -> CaseResult {
    let (_a, _l, _b, _d, events, code) = browser_pair(listener, dialer).await?;
    let reply = oneway_token::reply::ReplyCode::from_text(&code).map_err(err("reply code"))?;
    let (u, p) = (reply.ice.ufrag().len(), reply.ice.pwd().len());
    let rule = oneway_token::reply::ReplyCode::text_len(u, p);
    let expected = expected_reply_len(dialer.engine());
    if code.len() != rule || code.len() != expected {
        return Err(format!(
            "{} reply code has {} chars; the §12 rule gives {rule} for ({u}, {p}), the table {expected}: {code}",
            dialer.engine().display_name(),
            code.len()
        ));
    }
    Ok(format!(
        "connected {} after the reply code was read; reply code {} chars ({} ufrag {u}, pwd {p})",
        connect_ms(&events, "reply-code"),
        code.len(),
        dialer.engine().display_name()
    ))
}

fn browser_to_browser_reply(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(reply_pair(&ctx.browser, &ctx.browser))
}

fn chromium_listener_firefox_dialer(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move { reply_pair(&ctx.browser, ctx.other()?).await })
}

fn firefox_listener_chromium_dialer(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move { reply_pair(ctx.other()?, &ctx.browser).await })
}

fn renegotiate_browser_pair(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let (a, listen, b, dial, _, _) = browser_pair(&ctx.browser, &ctx.browser).await?;
        let wait = a
            .start("wait-track", json!({"conn": listen}))
            .await
            .map_err(err("wait-track"))?;
        let add = b
            .start("add-audio", json!({"conn": dial}))
            .await
            .map_err(err("add-audio"))?;
        b.wait(&add, LIMIT, |_| {})
            .await
            .map_err(err("dialer adds audio"))?;
        let got = a
            .wait(&wait, LIMIT, |_| {})
            .await
            .map_err(err("listener track"))?;
        Ok(format!(
            "dialer added fake-microphone audio in band; listener received {} RTP packets",
            got.value["packets"]
        ))
    })
}

fn renegotiate_with_str0m(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let (token, listener) = str0m_echo_listener().await?;
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("dial", json!({"token": token, "probe": true, "keep": true}))
            .await
            .map_err(err("start"))?;
        page.wait(&op, LIMIT, |_| {}).await.map_err(err("dial"))?;
        let add = page
            .start("add-audio", json!({"conn": op}))
            .await
            .map_err(err("add-audio"))?;
        let result = page.wait(&add, LIMIT, |_| {}).await;
        listener.abort();
        // The str0m peer hands in-band offers to str0m's SDP API (spec/handshake.md §10.5):
        // it answers (the media cases check what it receives).
        match result {
            Err(e) => Err(format!("str0m did not answer the audio offer: {e}")),
            Ok(_) => Ok("browser offered audio in band; str0m answered".to_owned()),
        }
    })
}

/// Browser dialer → webrtc-rs listener; the browser adds fake-microphone audio with an in-band
/// `offer`, the `rtc` peer answers it and receives the RTP.
fn renegotiate_with_webrtc(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let (token, listener, rtp) = webrtc_echo_listener().await?;
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let result = async {
            let op = page
                .start("dial", json!({"token": token, "probe": true, "keep": true}))
                .await
                .map_err(err("start"))?;
            page.wait(&op, LIMIT, |_| {}).await.map_err(err("dial"))?;
            let t = Instant::now();
            let add = page
                .start("add-audio", json!({"conn": op}))
                .await
                .map_err(err("add-audio"))?;
            page.wait(&add, LIMIT, |_| {})
                .await
                .map_err(err("add-audio"))?;
            let answered = t.elapsed().as_secs_f64() * 1000.0;
            let packets = rtp.wait_some().await?;
            let _ = page.start("close", json!({"conn": op})).await;
            Ok(format!(
                "browser offered fake-microphone audio in band; webrtc-rs listener answered ({answered:.0} ms incl. getUserMedia) and received {packets} RTP packets"
            ))
        }
        .await;
        listener.abort();
        result
    })
}

/// Browser listener (`dialer-identity`) ← webrtc-rs dialer; the browser listener adds audio with
/// an in-band `offer`, the `rtc` dialer answers it and receives the RTP.
fn renegotiate_webrtc_dialer(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("listen", json!({"profile": "dialer-identity"}))
            .await
            .map_err(err("start"))?;
        let token = page
            .wait_event(&op, "token", LIMIT, |_| {})
            .await
            .map_err(err("token"))?;
        let text = token["token"].as_str().ok_or("no token text")?.to_owned();
        let token = Token::from_text(&text).map_err(err("browser token"))?;
        let mut conn = oneway_webrtc::dial(&token, &oneway_webrtc::DialConfig::default())
            .await
            .map_err(err("webrtc-rs dial"))?;
        page.wait(&op, LIMIT, |_| {})
            .await
            .map_err(err("listener"))?;
        let rtp = RtpCount::default();
        let count = rtp.clone();
        let reader = tokio::spawn(async move {
            while let Some(event) = conn.next_event().await {
                if let oneway_webrtc::ConnectionEvent::Rtp { .. } = event {
                    count.add();
                }
            }
        });
        let result = async {
            let add = page
                .start("add-audio", json!({"conn": op}))
                .await
                .map_err(err("add-audio"))?;
            page.wait(&add, LIMIT, |_| {})
                .await
                .map_err(err("add-audio"))?;
            rtp.wait_some().await
        }
        .await;
        let _ = page.start("close", json!({"conn": op})).await;
        reader.abort();
        Ok(format!(
            "browser listener offered fake-microphone audio in band; webrtc-rs dialer answered and received {} RTP packets",
            result?
        ))
    })
}

fn static_page(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let url = format!("{}index.html?loopback", ctx.browser.base_url());
        let page = ctx.browser.open_url(&url).await.map_err(err("page"))?;
        let deadline = Instant::now() + LIMIT;
        let token = loop {
            if let Some(t) = page.text_of("#token").await.map_err(err("read token"))?
                && t.starts_with("ow1.")
            {
                break t;
            }
            if Instant::now() > deadline {
                return Err("the page showed no token".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let href = page
            .execute("return document.getElementById('token-link').href;", vec![])
            .await
            .map_err(err("link"))?;
        if !href
            .as_str()
            .is_some_and(|h| h.contains(&format!("#{token}")))
        {
            return Err(format!("token link is {href}"));
        }
        let qr = page
            .execute(
                "return document.querySelectorAll('#qr svg path').length;",
                vec![],
            )
            .await
            .map_err(err("qr"))?;
        if qr != json!(1) {
            return Err("no QR code on the page".to_owned());
        }
        // The link, as a native dialer gets it (`oneway dial <link>`): it may carry a second
        // token for browser dialers (`#<dialer-identity>&<reply>`, Firefox), and the first wins.
        let link = href.as_str().ok_or("no link")?.to_owned();
        let (connected, _) = str0m_probe(&link).await?;
        let state = loop {
            let s = page.text_of("#state").await.map_err(err("state"))?;
            if s.as_deref() == Some("connected") || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let png = page.screenshot().await.map_err(err("screenshot"))?;
        let path = ctx.screenshot_path("static-page-connected");
        std::fs::create_dir_all(artifacts_dir()).map_err(err("artifacts dir"))?;
        std::fs::write(&path, &png).map_err(err("write screenshot"))?;
        if state.as_deref() != Some("connected") {
            return Err(format!(
                "DOM state is {state:?}, not connected (screenshot {})",
                path.display()
            ));
        }
        Ok(format!(
            "page token dialed by str0m in {connected:.1} ms; DOM shows connected; screenshot {}",
            path.display()
        ))
    })
}

/// Polls `script` (returning a boolean) in `page` until it is true or `LIMIT` passes.
async fn wait_until(page: &Page, script: &str, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        if page.execute(script, vec![]).await.map_err(err(what))? == json!(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of `page` as this variant's `name`; returns its path.
async fn shoot(ctx: &Ctx, page: &Page, name: &str) -> Result<String, String> {
    let png = page.screenshot().await.map_err(err("screenshot"))?;
    std::fs::create_dir_all(artifacts_dir()).map_err(err("artifacts dir"))?;
    let path = ctx.screenshot_path(name);
    std::fs::write(&path, &png).map_err(err("write screenshot"))?;
    Ok(path.display().to_string())
}

/// Whether the element `id` is shown (not hidden by itself or an ancestor).
fn shown(id: &str) -> String {
    format!("const e = document.getElementById('{id}'); return !!e && e.offsetParent !== null;")
}

/// The static page as two people use it, one link for every dialer (issue 17): the listener
/// page waits with its link, the loopback warning and the reply-code field; clicking its own
/// link does not dial it; a browser opens the link and shows its reply code; a mistyped code
/// is refused and changes nothing; the right code connects both pages, which then show only
/// the conversation; a damaged link fails with what to do next; reloading the listener's own
/// link issues a new one instead of dialing itself. Screenshots of each state.
fn static_page_walkthrough(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let url = format!("{}index.html?loopback", ctx.browser.base_url());
        let listener = ctx
            .browser
            .open_url(&url)
            .await
            .map_err(err("listener page"))?;
        wait_until(
            &listener,
            "return (document.getElementById('token').textContent || '').startsWith('ow1.') && document.getElementById('state').textContent === 'waiting for the other device';",
            "listener token",
        )
        .await?;
        let mut shots = vec![shoot(ctx, &listener, "page-1-listener-waiting").await?];
        for (id, want) in [
            ("reply-code-in", true),
            ("loopback-warning", true),
            ("failure", false),
        ] {
            if listener
                .execute(&shown(id), vec![])
                .await
                .map_err(err(id))?
                != json!(want)
            {
                return Err(format!("listener page: #{id} shown should be {want}"));
            }
        }
        if listener
            .execute("return document.getElementById('events').open;", vec![])
            .await
            .map_err(err("events"))?
            != json!(false)
        {
            return Err("the Events box is open by default".to_owned());
        }
        let link = listener
            .execute("return document.getElementById('token-link').href;", vec![])
            .await
            .map_err(err("link"))?
            .as_str()
            .ok_or("no link")?
            .to_owned();
        // A click on its own link copies it; the page does not dial its own token.
        listener
            .execute(
                "document.getElementById('token-link').click(); return true;",
                vec![],
            )
            .await
            .map_err(err("click own link"))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after_click = listener
            .execute(
                "return [location.hash, document.getElementById('state').textContent];",
                vec![],
            )
            .await
            .map_err(err("after click"))?;
        if after_click != json!(["", "waiting for the other device"]) {
            return Err(format!(
                "clicking its own link changed the listener: {after_click}"
            ));
        }
        // The other device: a browser opens the link and shows its reply code.
        let dialer = ctx
            .browser
            .open_url(&link)
            .await
            .map_err(err("dialer page"))?;
        wait_until(
            &dialer,
            "return (document.getElementById('reply-code').textContent || '').startsWith('owr1.');",
            "dialer reply code",
        )
        .await?;
        let heading = dialer
            .execute(
                "return document.querySelector('#reply-out h2').textContent;",
                vec![],
            )
            .await
            .map_err(err("heading"))?;
        if heading != json!("Show this code to the other device") {
            return Err(format!("dialer heading is {heading}"));
        }
        shots.push(shoot(ctx, &dialer, "page-2-dialer-shows-reply-code").await?);
        let code = dialer
            .text_of("#reply-code")
            .await
            .map_err(err("reply code"))?
            .ok_or("no reply code")?;
        let enter = "const i = document.getElementById('reply-code-in'); i.value = arguments[0]; document.getElementById('reply-apply').click(); return true;";
        // A mistyped code: refused with a reason, the field stays usable, the token unchanged.
        let token_before = listener.text_of("#token").await.map_err(err("token"))?;
        let mut typo = code.clone().into_bytes();
        typo[12] = if typo[12] == b'A' { b'B' } else { b'A' };
        let typo = String::from_utf8(typo).map_err(err("typo"))?;
        listener
            .execute(enter, vec![json!(typo)])
            .await
            .map_err(err("enter typo"))?;
        wait_until(
            &listener,
            "return (document.getElementById('reply-error').textContent || '').includes('not right');",
            "mistyped code refused",
        )
        .await?;
        shots.push(shoot(ctx, &listener, "page-3-listener-mistyped-code").await?);
        if listener.text_of("#token").await.map_err(err("token"))? != token_before {
            return Err("a mistyped code changed the listener's token".to_owned());
        }
        // The right code: both pages connect and show only the conversation.
        let t = Instant::now();
        listener
            .execute(enter, vec![json!(code)])
            .await
            .map_err(err("enter code"))?;
        shots.push(shoot(ctx, &listener, "page-4-listener-took-code").await?);
        for (page, who) in [(&listener, "listener"), (&dialer, "dialer")] {
            wait_until(
                page,
                "return document.getElementById('state').textContent === 'connected';",
                who,
            )
            .await?;
        }
        let connected_ms = t.elapsed().as_secs_f64() * 1000.0;
        for (page, who) in [(&listener, "listener"), (&dialer, "dialer")] {
            for (id, want) in [
                ("chat", true),
                ("listener", false),
                ("dialer", false),
                ("token", false),
            ] {
                if page.execute(&shown(id), vec![]).await.map_err(err(id))? != json!(want) {
                    return Err(format!(
                        "{who} page connected: #{id} shown should be {want}"
                    ));
                }
            }
        }
        shots.push(shoot(ctx, &listener, "page-5-listener-connected").await?);
        shots.push(shoot(ctx, &dialer, "page-6-dialer-connected").await?);
        // A damaged link (every token in it): the dialer page fails and says what to do next.
        let mut damaged = link.clone().into_bytes();
        for (at, _) in link.match_indices("ow1.") {
            let i = at + 20;
            damaged[i] = if damaged[i] == b'A' { b'B' } else { b'A' };
        }
        let damaged = String::from_utf8(damaged).map_err(err("damaged"))?;
        let broken = ctx
            .browser
            .open_url(&damaged)
            .await
            .map_err(err("broken page"))?;
        wait_until(
            &broken,
            "return document.getElementById('state').dataset.state === 'failed' && document.getElementById('failure').offsetParent !== null;",
            "failure shown",
        )
        .await?;
        let next = broken
            .text_of("#failure-next")
            .await
            .map_err(err("next step"))?;
        if !next.as_deref().is_some_and(|n| n.contains("Copy it again")) {
            return Err(format!("the failure says {next:?}, not what to do next"));
        }
        shots.push(shoot(ctx, &broken, "page-7-dialer-failure-next-step").await?);
        // The listener's own link, reloaded in its own tab: a new link, no dial.
        let own = ctx.browser.open_url(&url).await.map_err(err("own page"))?;
        wait_until(
            &own,
            "return (document.getElementById('token').textContent || '').startsWith('ow1.');",
            "own token",
        )
        .await?;
        let own_link = own
            .execute("return document.getElementById('token-link').href;", vec![])
            .await
            .map_err(err("own link"))?;
        own.execute(
            "location.href = arguments[0]; location.reload(); return true;",
            vec![own_link.clone()],
        )
        .await
        .map_err(err("reload"))?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        wait_until(
            &own,
            "return !!window.onewayReady && (document.getElementById('token').textContent || '').startsWith('ow1.') && document.getElementById('state').textContent === 'waiting for the other device';",
            "reloaded listener",
        )
        .await?;
        let reloaded = own
            .execute(
                "return [location.hash, document.getElementById('token-link').href !== arguments[0]];",
                vec![own_link],
            )
            .await
            .map_err(err("reloaded"))?;
        if reloaded != json!(["", true]) {
            return Err(format!(
                "the reloaded listener tab dialed or kept its own link: {reloaded}"
            ));
        }
        if own
            .execute(&shown("self-note"), vec![])
            .await
            .map_err(err("note"))?
            != json!(true)
        {
            return Err("the reloaded listener tab does not say its old link died".to_owned());
        }
        shots.push(shoot(ctx, &own, "page-8-listener-reloaded-own-link").await?);
        Ok(format!(
            "connected {connected_ms:.0} ms after the code was entered; screenshots: {}",
            shots.join(", ")
        ))
    })
}

/// The static page as a browser dialer of a program's link (a `native` token) it cannot reach
/// directly: it keeps trying and shows its reply code (owr2) with the plain sentence of the
/// fallback; the program (a str0m listener) takes the code, and the page connects, hiding the
/// code. Screenshots of both states.
fn static_page_reply_fallback(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let mut listener = Listener::bind(ListenerConfig::loopback())
            .await
            .map_err(err("listener"))?;
        let hole = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(err("black hole"))?;
        let hole_port = hole.local_addr().map_err(err("black hole"))?.port();
        let mut token = listener.token().clone();
        for c in &mut token.candidates {
            c.port = hole_port;
        }
        let token = token.to_text().map_err(err("token"))?;
        let url = format!("{}index.html#{token}", ctx.browser.base_url());
        let page = ctx.browser.open_url(&url).await.map_err(err("page"))?;
        wait_until(
            &page,
            "return (document.getElementById('reply-code').textContent || '').startsWith('owr2.') && document.getElementById('reply-code').offsetParent !== null;",
            "the page's reply code",
        )
        .await?;
        let shown_text = page
            .execute(
                "return [document.getElementById('reply-title').textContent, document.getElementById('reply-code').textContent, document.getElementById('state').textContent];",
                vec![],
            )
            .await
            .map_err(err("reply code"))?;
        let title = shown_text[0].as_str().unwrap_or("");
        let code = shown_text[1].as_str().unwrap_or("").to_owned();
        if !title.contains("cannot be reached directly") || shown_text[2] != json!("connecting") {
            return Err(format!(
                "the page does not say what the code is for: {shown_text}"
            ));
        }
        let mut shots = vec![shoot(ctx, &page, "page-9-dialer-reply-fallback").await?];
        listener
            .take_reply(&code)
            .await
            .map_err(|e| format!("the listener refused the page's code {code}: {e}"))?;
        let conn = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .map_err(|_| "the listener accepted nobody after taking the page's code".to_owned())?
            .ok_or("the listener stopped")?;
        wait_until(
            &page,
            "return document.getElementById('state').textContent === 'connected' && document.getElementById('reply-code').offsetParent === null;",
            "connected page without its code",
        )
        .await?;
        shots.push(shoot(ctx, &page, "page-10-dialer-connected-after-reply").await?);
        let route = conn.info().route;
        drop(conn);
        Ok(format!(
            "page showed a {} char owr2 code; connected by route {route:?}; screenshots: {}",
            code.len(),
            shots.join(", ")
        ))
    })
}

fn detect(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let op = page
            .start("detect", json!({}))
            .await
            .map_err(err("start"))?;
        let out = page.wait(&op, LIMIT, |_| {}).await.map_err(err("detect"))?;
        let munging = out.value["munging"] == json!(true);
        // With the no-munging trial forced, Chromium must reject local ufrag/pwd munging: this
        // checks that the trial reached the browser.
        if ctx.variant.field_trials == Some(NO_MUNGE_TRIAL) && munging {
            return Err(format!(
                "{NO_MUNGE_TRIAL} is forced, yet Chromium accepted a munged local ufrag"
            ));
        }
        Ok(format!(
            "{} {}: local ufrag/pwd munging {}",
            ctx.browser.engine().display_name(),
            ctx.browser.version(),
            if munging { "accepted" } else { "rejected" }
        ))
    })
}

/// The page's QR encoder (web/qr.js) gives exactly the modules the Rust `qrcode` crate gives
/// for the same segments, version and mask.
fn qr_matches_rust(ctx: &Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + '_>> {
    Box::pin(async move {
        use qrcode::bits::Bits;
        use qrcode::canvas::{Canvas, MaskPattern};
        use qrcode::{Color, EcLevel, Version};
        let page = ctx.browser.open_page().await.map_err(err("page"))?;
        let token = "OW1.AEARYLEU77I54UJ74I4GGZSHPS4SLQJS3HUPJOJHXWCJZAU46HTEYFHOMIFIXETPBUKJZVKIIZVTRI2MAEBG6HJMHNFFSTUNW7DKL5HD2LA3B2W3AEBROBAYIMPPGHYN5ITUWV3NPVM27QFEF5UY3YUVNRHUIIJ5";
        let url = "http://127.0.0.1:8080/index.html#";
        let mut checked = Vec::new();
        for (prefix, text) in [
            ("", token.to_owned()),
            (url, format!("{url}{token}")),
            (
                "",
                "owr1.BBhDHvMfDeonS1dtfVmvwKQvaY3ilWyrq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq9U"
                    .to_owned(),
            ),
        ] {
            let op = page
                .start("qr", json!({"text": text}))
                .await
                .map_err(err("start"))?;
            let out = page.wait(&op, LIMIT, |_| {}).await.map_err(err("qr"))?;
            let version = out.value["version"].as_i64().ok_or("no version")? as i16;
            let mask = out.value["mask"].as_u64().ok_or("no mask")?;
            let js: Vec<bool> = out.value["modules"]
                .as_array()
                .ok_or("no modules")?
                .iter()
                .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                .map(|v| v == json!(true))
                .collect();
            let v = Version::Normal(version);
            let mut bits = Bits::new(v);
            if text.starts_with("owr") {
                bits.push_byte_data(text.as_bytes()).map_err(err("bits"))?;
            } else {
                if !prefix.is_empty() {
                    bits.push_byte_data(prefix.as_bytes())
                        .map_err(err("bits"))?;
                }
                bits.push_alphanumeric_data(token.as_bytes())
                    .map_err(err("bits"))?;
            }
            bits.push_terminator(EcLevel::M)
                .map_err(err("terminator"))?;
            let (data, ec) = qrcode::ec::construct_codewords(&bits.into_bytes(), v, EcLevel::M)
                .map_err(err("codewords"))?;
            let mut canvas = Canvas::new(v, EcLevel::M);
            canvas.draw_all_functional_patterns();
            canvas.draw_data(&data, &ec);
            let pattern = [
                MaskPattern::Checkerboard,
                MaskPattern::HorizontalLines,
                MaskPattern::VerticalLines,
                MaskPattern::DiagonalLines,
                MaskPattern::LargeCheckerboard,
                MaskPattern::Fields,
                MaskPattern::Diamonds,
                MaskPattern::Meadow,
            ][mask as usize];
            canvas.apply_mask(pattern);
            let rust: Vec<bool> = canvas
                .into_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect();
            if rust != js {
                let differ = rust.iter().zip(&js).filter(|(a, b)| a != b).count();
                return Err(format!(
                    "{} chars: version {version} mask {mask}: {differ} modules differ",
                    text.len()
                ));
            }
            checked.push(format!("v{version}/mask {mask}"));
        }
        Ok(format!(
            "identical to the qrcode crate for {}",
            checked.join(", ")
        ))
    })
}

/// Every case, and the variants it runs in.
static CASES: &[(&str, Case, &[&Variant])] = &[
    ("spec_vectors_in_browser", spec_vectors, ROLES),
    ("reply_code_owr2_and_stun_codec", reply_codec, ROLES),
    (
        "browser_dialer_reply_fallback_code_with_stun",
        reply_fallback_with_stun,
        ROLES,
    ),
    (
        "browser_dialer_reply_fallback_code_host_only",
        reply_fallback_host_only,
        ROLES,
    ),
    (
        "browser_dialer_answers_punching_checks",
        browser_answers_punching_checks,
        ROLES,
    ),
    (
        "browser_dialer_punched_by_str0m_listener",
        str0m_punches_to_browser,
        ROLES,
    ),
    (
        "browser_dialer_punched_by_webrtc_listener",
        webrtc_punches_to_browser,
        ROLES,
    ),
    (
        "browser_dialer_to_str0m_listener",
        browser_dials_str0m,
        ROLES,
    ),
    (
        "browser_dialer_to_webrtc_listener",
        browser_dials_webrtc,
        ROLES,
    ),
    (
        "str0m_dialer_to_browser_listener",
        str0m_dials_browser,
        ROLES,
    ),
    (
        "webrtc_dialer_to_browser_listener",
        webrtc_dials_browser,
        ROLES,
    ),
    ("static_page_token_dial_screenshot", static_page, ROLES),
    (
        "static_page_walkthrough_screenshots",
        static_page_walkthrough,
        ROLES,
    ),
    (
        "static_page_dialer_reply_fallback_screenshots",
        static_page_reply_fallback,
        ROLES,
    ),
    (
        "browser_to_browser_reply_code",
        browser_to_browser_reply,
        ROLES,
    ),
    (
        "renegotiate_audio_browser_to_browser",
        renegotiate_browser_pair,
        ROLES,
    ),
    (
        "renegotiate_audio_browser_to_str0m",
        renegotiate_with_str0m,
        ROLES,
    ),
    (
        "renegotiate_audio_browser_to_webrtc_listener",
        renegotiate_with_webrtc,
        ROLES,
    ),
    (
        "renegotiate_audio_browser_listener_to_webrtc_dialer",
        renegotiate_webrtc_dialer,
        ROLES,
    ),
    ("detect_one_way_paths", detect, ROLES),
    (
        "page_qr_matches_qrcode_crate",
        qr_matches_rust,
        CHROMIUM_ONLY,
    ),
    (
        "chromium_listener_firefox_dialer_reply_code",
        chromium_listener_firefox_dialer,
        PAIRS,
    ),
    (
        "firefox_listener_chromium_dialer_reply_code",
        firefox_listener_chromium_dialer,
        PAIRS,
    ),
];

/// One selected case of one variant.
struct Selected {
    full_name: String,
    name: &'static str,
    case: Case,
}

/// Launches a variant's browser(s); `Err` says why they cannot run.
async fn launch(variant: &'static Variant) -> Result<Ctx, String> {
    let config = variant.config(variant.engine).map_err(|e| e.to_string())?;
    let other_config = match variant.other {
        Some(engine) => Some(variant.config(engine).map_err(|e| e.to_string())?),
        None => None,
    };
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../spec/vectors");
    let server = StaticServer::start(vec![("/vectors/".to_owned(), vectors)])
        .await
        .map_err(|e| format!("static server: {e}"))?;
    let browser = Browser::launch_with_server(config.clone(), server)
        .await
        .map_err(|e| format!("cannot start {}: {e}", config.describe()))?;
    let other = match other_config {
        Some(c) => match Browser::launch(c.clone()).await {
            Ok(b) => Some(b),
            Err(e) => {
                browser.close().await;
                return Err(format!("cannot start {}: {e}", c.describe()));
            }
        },
        None => None,
    };
    Ok(Ctx {
        browser,
        other,
        variant,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let all: Vec<(&'static Variant, Selected)> = VARIANTS
        .iter()
        .flat_map(|v| {
            CASES
                .iter()
                .chain(media::CASES)
                .filter(|(_, _, vs)| vs.iter().any(|x| std::ptr::eq(*x, *v)))
                .map(move |(name, case, _)| {
                    (
                        *v,
                        Selected {
                            full_name: format!("{}{name}", v.prefix),
                            name,
                            case: *case,
                        },
                    )
                })
        })
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (_, s) in &all {
            println!("{}: test", s.full_name);
        }
        return;
    }
    let selected: Vec<(&'static Variant, Selected)> = all
        .into_iter()
        .filter(|(_, s)| {
            filters.is_empty() || filters.iter().any(|f| s.full_name.contains(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        println!("0 passed, 0 failed");
        return;
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut summary = Vec::new();
    for variant in VARIANTS {
        let cases: Vec<&Selected> = selected
            .iter()
            .filter(|(v, _)| std::ptr::eq(*v, variant))
            .map(|(_, s)| s)
            .collect();
        if cases.is_empty() {
            continue;
        }
        let outcome = runtime.block_on(async {
            let ctx = match launch(variant).await {
                Ok(ctx) => ctx,
                Err(e) => return Err(e),
            };
            println!(
                "running {} browser cases in variant {} ({} {}{})",
                cases.len(),
                variant.name,
                ctx.browser.engine().display_name(),
                ctx.browser.version(),
                ctx.other
                    .as_ref()
                    .map(|o| format!(" and {} {}", o.engine().display_name(), o.version()))
                    .unwrap_or_default()
            );
            let mut results = Vec::new();
            for s in &cases {
                // Each case starts with one blank tab: no peer connection of an earlier case
                // is left running (in Firefox, one left from an earlier native dialer has made
                // the next native dialer's handshake fail).
                for b in std::iter::once(&ctx.browser).chain(ctx.other.as_ref()) {
                    if let Err(e) = b.reset_tabs().await {
                        println!("resetting tabs before {}: {e}", s.full_name);
                    }
                }
                let t = Instant::now();
                let result = tokio::time::timeout(Duration::from_secs(90), (s.case)(&ctx))
                    .await
                    .unwrap_or_else(|_| Err("timed out after 90 s".to_owned()));
                let took = t.elapsed().as_secs_f64();
                match &result {
                    Ok(note) => println!("test {} ... ok ({took:.1} s): {note}", s.full_name),
                    Err(e) => println!("test {} ... FAILED ({took:.1} s): {e}", s.full_name),
                }
                results.push((s.name, result));
            }
            ctx.browser.close().await;
            if let Some(other) = ctx.other {
                other.close().await;
            }
            Ok(results)
        });
        match outcome {
            Ok(results) => {
                for (name, result) in results {
                    match result {
                        Ok(note) => {
                            passed += 1;
                            summary.push(format!("{:<20} {name}: {note}", variant.name));
                        }
                        Err(_) => {
                            failed += 1;
                            summary.push(format!("{:<20} {name}: FAILED", variant.name));
                        }
                    }
                }
            }
            Err(e) if !ci && e.contains("not found") => {
                println!("SKIPPED variant {}: {e}", variant.name);
                skipped += cases.len();
            }
            Err(e) => {
                println!("variant {} cannot run: {e}", variant.name);
                failed += cases.len();
            }
        }
    }
    println!("summary (connect times per role and variant):");
    for line in &summary {
        println!("  {line}");
    }
    println!(
        "browser tests took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
