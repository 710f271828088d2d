//! Connect latency: token decoded → first echo on an application data channel, per stage, for
//! one-way and for the same stack's two-way baseline (SDP offer/answer through memory), with the
//! runs interleaved so that load drifts hit both alike.
//!
//! Peers are the native stacks and, when a [`BrowserConfig`] is given, the browser peer in real
//! Chromium: browser → native listener, native → browser listener (`dialer-identity` tokens),
//! and the browser's own baseline (two peer connections in one page, SDP through memory).
//!
//! With [`LatencyConfig::rtt`], every datagram of both modes crosses a delaying proxy on
//! loopback ([`oneway_testkit::impair::LossyProxy`]): the dialer dials the proxy in place of the
//! token's candidate, and the baseline's signalling shows each peer's host candidate as a proxy
//! in front of it. One-way and baseline then pay the same round-trip time per exchange, and
//! their ratio is measured in one run. (The browser series run on loopback only.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use oneway_browser::{Browser, BrowserConfig, Page};
use oneway_testkit::impair::LossyProxy;
use oneway_token::{CandidateAddress, Token};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::stats::Summary;
use crate::{BenchError, ConnectionEvent, Progress, StackName, echo_listener};

/// What to run.
#[derive(Clone, Debug)]
pub struct LatencyConfig {
    /// Measured runs per series.
    pub runs: usize,
    /// Unmeasured runs per series first (first-use costs: page faults, lazy statics).
    pub warmup: usize,
    /// Give up on one connection after this long.
    pub timeout: Duration,
    /// Emulated round-trip time (a delaying proxy on loopback); `None`: plain loopback.
    pub rtt: Option<Duration>,
    /// Add the browser peer's series, in this Chromium (ignored with `rtt`).
    pub browser: Option<BrowserConfig>,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            runs: 50,
            warmup: 2,
            timeout: Duration::from_secs(10),
            rtt: None,
            browser: None,
        }
    }
}

/// One end of a latency series: a native stack or the browser peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// A native stack in this process.
    Native(StackName),
    /// The browser peer (`oneway-browser`) in Chromium.
    Browser,
}

impl Peer {
    /// The name used in reports: the stack's, or `browser`.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Native(stack) => stack.name(),
            Peer::Browser => "browser",
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Peer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One-way or the signalled baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The dialer connects from the token alone, taking the token's fast path when it can
    /// (`spec/handshake.md` §5.4: DTLS 1.3, fast start, early data).
    OneWay,
    /// The dialer connects from the token alone with the standard handshake, although the
    /// token offers the fast path (what one-way cost before it).
    OneWayStandard,
    /// Offer and answer through memory (a perfect signalling server).
    Baseline,
}

impl Mode {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::OneWay => "one-way",
            Mode::OneWayStandard => "one-way, standard handshake",
            Mode::Baseline => "two-way baseline",
        }
    }
}

/// Stage times of one run, in milliseconds from the start (token decoded or offer created).
/// A stage the stack does not report is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageSample {
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// The first data channel open (channel 0 for one-way, the application's for the baseline).
    pub channel: Option<f64>,
    /// In-band proofs verified (one-way only).
    pub auth: Option<f64>,
    /// The echo of the first application message arrived.
    pub first_echo: f64,
}

/// Runs of one (listener stack, dialer stack, mode).
#[derive(Clone, Debug, Serialize)]
pub struct LatencySeries {
    /// Listener (or answerer).
    pub listener: Peer,
    /// Dialer (or offerer).
    pub dialer: Peer,
    /// One-way or baseline.
    pub mode: Mode,
    /// Every measured run.
    pub runs: Vec<StageSample>,
    /// Runs that failed (not in `runs`), with their error.
    pub failures: Vec<String>,
    /// Summary of `first_echo` over `runs`.
    pub first_echo: Option<Summary>,
    /// Median of each stage over `runs`.
    pub median_stages: StageMedians,
}

/// Per-stage medians in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageMedians {
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// First channel open.
    pub channel: Option<f64>,
    /// Proofs verified.
    pub auth: Option<f64>,
}

impl LatencySeries {
    pub(crate) fn new(listener: Peer, dialer: Peer, mode: Mode) -> Self {
        LatencySeries {
            listener,
            dialer,
            mode,
            runs: Vec::new(),
            failures: Vec::new(),
            first_echo: None,
            median_stages: StageMedians::default(),
        }
    }

    /// A label such as `str0m → str0m one-way`.
    pub fn label(&self) -> String {
        match self.mode {
            Mode::OneWay => format!("{} → {} one-way", self.dialer, self.listener),
            Mode::OneWayStandard => format!(
                "{} → {} one-way (standard handshake)",
                self.dialer, self.listener
            ),
            Mode::Baseline => format!("{} baseline", self.listener),
        }
    }

    pub(crate) fn finish(&mut self) {
        let column = |f: fn(&StageSample) -> Option<f64>| {
            let values: Vec<f64> = self.runs.iter().filter_map(f).collect();
            Summary::of(&values).map(|s| s.p50)
        };
        self.median_stages = StageMedians {
            ice: column(|s| s.ice),
            dtls: column(|s| s.dtls),
            channel: column(|s| s.channel),
            auth: column(|s| s.auth),
        };
        let totals: Vec<f64> = self.runs.iter().map(|s| s.first_echo).collect();
        self.first_echo = Summary::of(&totals);
    }
}

/// One-way median against the same stack's baseline median.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRatio {
    /// The one-way series (`dialer → listener`).
    pub one_way: String,
    /// The baseline series it is compared with.
    pub baseline: String,
    /// Median first echo, one-way / baseline.
    pub ratio: f64,
}

/// Everything a latency run measured.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    /// The settings used.
    pub runs: usize,
    /// The emulated round-trip time in ms (`None`: plain loopback).
    pub rtt_ms: Option<f64>,
    /// The browser's version, when browser series ran.
    pub browser: Option<String>,
    /// Every series.
    pub series: Vec<LatencySeries>,
    /// Ratios of medians (goal: ≤ 0.8).
    pub ratios: Vec<LatencyRatio>,
}

/// Measures every one-way pair of `stacks` (each as listener and as dialer) and each stack's
/// baseline, plus the browser's series when configured, interleaving the runs.
pub async fn run(
    config: &LatencyConfig,
    stacks: &[StackName],
    progress: &mut dyn Progress,
) -> Result<LatencyReport, BenchError> {
    let natives: Vec<Peer> = stacks.iter().copied().map(Peer::Native).collect();
    let browser = match (&config.browser, config.rtt) {
        (Some(browser_config), None) => Some(BrowserPeer::launch(browser_config.clone()).await?),
        _ => None,
    };
    let mut series = Vec::new();
    for &listener in &natives {
        for &dialer in &natives {
            series.push(LatencySeries::new(listener, dialer, Mode::OneWay));
        }
    }
    // Before/after the fast path, in one run: where the listener offers it and the dialer can
    // take it (str0m → str0m).
    if stacks.contains(&StackName::Str0m) {
        let str0m = Peer::Native(StackName::Str0m);
        series.push(LatencySeries::new(str0m, str0m, Mode::OneWayStandard));
    }
    if browser.is_some() {
        for &native in &natives {
            series.push(LatencySeries::new(native, Peer::Browser, Mode::OneWay));
        }
        for &native in &natives {
            series.push(LatencySeries::new(Peer::Browser, native, Mode::OneWay));
        }
    }
    for &peer in &natives {
        series.push(LatencySeries::new(peer, peer, Mode::Baseline));
    }
    if browser.is_some() {
        series.push(LatencySeries::new(
            Peer::Browser,
            Peer::Browser,
            Mode::Baseline,
        ));
    }
    let mut listeners = Vec::new();
    for &stack in stacks {
        listeners.push((Peer::Native(stack), echo_listener(stack).await?));
    }
    let total = (config.warmup + config.runs) * series.len();
    progress.start("latency", total as u64);
    for round in 0..config.warmup + config.runs {
        for s in series.iter_mut() {
            let native_token = || {
                listeners
                    .iter()
                    .find(|(peer, _)| *peer == s.listener)
                    .map(|(_, l)| l.token_text.clone())
                    .ok_or_else(|| BenchError::Setup("no listener".to_owned()))
            };
            let result = match (s.mode, s.listener, s.dialer, &browser) {
                (Mode::OneWay, Peer::Native(_), Peer::Native(dialer), _) => {
                    one_way(dialer, &native_token()?, config, true).await
                }
                (Mode::OneWayStandard, Peer::Native(_), Peer::Native(dialer), _) => {
                    one_way(dialer, &native_token()?, config, false).await
                }
                (Mode::OneWay, Peer::Native(_), Peer::Browser, Some(b)) => {
                    b.dial(&native_token()?, config.timeout).await
                }
                (Mode::OneWay, Peer::Browser, Peer::Native(dialer), Some(b)) => {
                    b.listen_and(config.timeout, |token| async move {
                        one_way(dialer, &token, config, true).await
                    })
                    .await
                }
                (Mode::Baseline, Peer::Native(stack), _, _) => baseline(stack, config).await,
                (Mode::Baseline, Peer::Browser, _, Some(b)) => b.baseline(config.timeout).await,
                _ => Err(BenchError::Setup(format!("no way to run {}", s.label()))),
            };
            if round >= config.warmup {
                match result {
                    Ok(sample) => s.runs.push(sample),
                    Err(e) => s.failures.push(e.to_string()),
                }
            }
            progress.advance(1);
        }
    }
    progress.finish();
    for s in series.iter_mut() {
        s.finish();
    }
    let ratios = series
        .iter()
        .filter(|s| s.mode != Mode::Baseline)
        .filter_map(|ow| {
            let base = series
                .iter()
                .find(|b| b.mode == Mode::Baseline && b.listener == ow.dialer)?;
            Some(LatencyRatio {
                one_way: ow.label(),
                baseline: base.label(),
                ratio: ow.first_echo?.p50 / base.first_echo?.p50,
            })
        })
        .collect();
    let browser_version = match browser {
        Some(b) => Some(b.close().await),
        None => None,
    };
    Ok(LatencyReport {
        runs: config.runs,
        rtt_ms: config.rtt.map(ms),
        browser: browser_version,
        series,
        ratios,
    })
}

/// One one-way connection: decode the token text, dial, open a channel, echo one message. With
/// an RTT, the token's first candidate is replaced by a delaying proxy in front of it first.
/// `fast`: take the token's fast path (with early data) when the dialer can.
async fn one_way(
    dialer: StackName,
    token_text: &str,
    config: &LatencyConfig,
    fast: bool,
) -> Result<StageSample, BenchError> {
    let timeout = config.timeout;
    let (token_text, _proxy) = match config.rtt {
        Some(rtt) => {
            let (text, proxy) = through_proxy(token_text, rtt)?;
            (text, Some(proxy))
        }
        None => (token_text.to_owned(), None),
    };
    let token_text = token_text.as_str();
    let start = Instant::now();
    let token =
        oneway_token::Token::from_text(token_text).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut conn = dialer.dial_with(&token, timeout, fast).await?;
    let channel = conn
        .open_channel("bench")
        .await
        .map_err(|e| BenchError::Connect("open".to_owned(), e.to_string()))?;
    conn.send(channel, b"bench-probe")
        .await
        .map_err(|e| BenchError::Connect("send".to_owned(), e.to_string()))?;
    let echo = tokio::time::timeout(timeout, async {
        while let Some(event) = conn.next_event().await {
            if let ConnectionEvent::Data { .. } = event {
                return Some(start.elapsed());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| BenchError::Connect("echo".to_owned(), "no echo".to_owned()))?;
    let t = &conn.info().timings;
    let at = |i: Option<Instant>| i.map(|i| ms(i.saturating_duration_since(start)));
    Ok(StageSample {
        ice: at(t.ice_connected),
        dtls: at(t.dtls_connected),
        channel: at(t.channel_open),
        auth: at(t.authenticated),
        first_echo: ms(echo),
    })
}

/// `token_text` with its candidates replaced by one: a proxy in front of the first IP
/// candidate that delays each direction by `rtt / 2`.
fn through_proxy(token_text: &str, rtt: Duration) -> Result<(String, LossyProxy), BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let mut token = Token::from_text(token_text).map_err(|e| setup(&e))?;
    let (first, target) = token
        .candidates
        .iter()
        .find_map(|c| match c.address {
            CandidateAddress::Ip(ip) => Some((*c, SocketAddr::new(ip, c.port))),
            CandidateAddress::Mdns(_) => None,
        })
        .ok_or_else(|| BenchError::Setup("the token has no IP candidate".to_owned()))?;
    let proxy = delaying_proxy(target, rtt).map_err(|e| setup(&e))?;
    token.candidates = vec![oneway_token::Candidate {
        address: CandidateAddress::Ip(proxy.addr().ip()),
        port: proxy.addr().port(),
        ..first
    }];
    Ok((token.to_text().map_err(|e| setup(&e))?, proxy))
}

/// A proxy in front of `target` adding `rtt` to every round trip through it.
fn delaying_proxy(target: SocketAddr, rtt: Duration) -> std::io::Result<LossyProxy> {
    let proxy = LossyProxy::start_now(target, 0.0, 0)?;
    proxy.set_delay(rtt / 2);
    Ok(proxy)
}

/// One baseline connection of `stack` (through delaying proxies with an RTT).
async fn baseline(stack: StackName, config: &LatencyConfig) -> Result<StageSample, BenchError> {
    let mut proxies = Vec::new();
    let rtt = config.rtt;
    let mut advertise = |local: SocketAddr| match rtt {
        Some(rtt) => {
            let proxy = delaying_proxy(local, rtt)?;
            let shown = proxy.addr();
            proxies.push(proxy);
            Ok(shown)
        }
        None => Ok(local),
    };
    let t = stack.baseline_via(config.timeout, &mut advertise).await?;
    let first_echo = t
        .first_echo
        .ok_or_else(|| BenchError::Connect("echo".to_owned(), "no echo".to_owned()))?;
    Ok(StageSample {
        ice: t.ice.map(ms),
        dtls: t.dtls.map(ms),
        channel: t.channel.map(ms),
        auth: None,
        first_echo: ms(first_echo),
    })
}

/// The browser peer: one Chromium and one tab for every browser series.
struct BrowserPeer {
    browser: Browser,
    page: Page,
}

impl BrowserPeer {
    async fn launch(config: BrowserConfig) -> Result<Self, BenchError> {
        let browser = Browser::launch(config).await.map_err(browser_setup)?;
        let page = browser.open_page().await.map_err(browser_setup)?;
        Ok(BrowserPeer { browser, page })
    }

    /// Runs page operation `kind` to its end (its own timeout is `timeout`; the driver waits
    /// 5 s longer for it).
    async fn run(
        &self,
        kind: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<oneway_browser::Outcome, BenchError> {
        let op = self.page.start(kind, args).await.map_err(browser_failed)?;
        self.page
            .wait(&op, timeout + Duration::from_secs(5), |_| {})
            .await
            .map_err(browser_failed)
    }

    /// The browser dials `token_text` one-way and echoes once; stage times come from the
    /// page's own clock (its `t_ms`, from the call that decodes the token).
    async fn dial(&self, token_text: &str, timeout: Duration) -> Result<StageSample, BenchError> {
        let args =
            json!({"token": token_text, "probe": true, "timeoutMs": timeout.as_millis() as u64});
        let outcome = self.run("dial", args, timeout).await?;
        let at = |name: &str| {
            outcome
                .events
                .iter()
                .find(|e| e["event"] == name)
                .and_then(|e| e["t_ms"].as_f64())
        };
        Ok(StageSample {
            ice: at("ice-connected"),
            dtls: at("dtls-connected"),
            channel: at("channel-open"),
            auth: at("connected"),
            first_echo: at("first-echo").ok_or_else(|| {
                BenchError::Connect("echo".to_owned(), "no first-echo event".to_owned())
            })?,
        })
    }

    /// The browser listens (`dialer-identity`, loopback candidates, echo); `dial` connects to
    /// its token. The listener's gathering happens before, outside the measured time.
    async fn listen_and<F>(
        &self,
        timeout: Duration,
        dial: impl FnOnce(String) -> F,
    ) -> Result<StageSample, BenchError>
    where
        F: std::future::Future<Output = Result<StageSample, BenchError>>,
    {
        let op = self
            .page
            .start(
                "listen",
                json!({"profile": "dialer-identity", "loopback": true, "echo": true}),
            )
            .await
            .map_err(browser_failed)?;
        let token = self
            .page
            .wait_event(&op, "token", Duration::from_secs(15), |_| {})
            .await
            .map_err(browser_failed)?;
        let text = token["token"]
            .as_str()
            .ok_or_else(|| BenchError::Setup("browser token event without a token".to_owned()))?
            .to_owned();
        let sample = dial(text).await;
        // The listen operation ends once the dialer is authenticated; close its connection.
        if self.page.wait(&op, timeout, |_| {}).await.is_ok() {
            let _ = self.page.start("close", json!({"conn": op})).await;
        }
        sample
    }

    /// The browser's two-way baseline (`baseline` in `web/driver.js`).
    async fn baseline(&self, timeout: Duration) -> Result<StageSample, BenchError> {
        let args = json!({"timeoutMs": timeout.as_millis() as u64});
        let outcome = self.run("baseline", args, timeout).await?;
        let stage = |name: &str| outcome.value.get(name).and_then(Value::as_f64);
        Ok(StageSample {
            ice: stage("ice"),
            dtls: stage("dtls"),
            channel: stage("channel"),
            auth: None,
            first_echo: stage("first_echo")
                .ok_or_else(|| BenchError::Connect("echo".to_owned(), "no echo time".to_owned()))?,
        })
    }

    /// Closes Chromium; returns its version.
    async fn close(self) -> String {
        let version = self.browser.version().to_owned();
        self.browser.close().await;
        version
    }
}

fn browser_setup(e: oneway_browser::BrowserError) -> BenchError {
    BenchError::Setup(format!("browser: {e}"))
}

fn browser_failed(e: oneway_browser::BrowserError) -> BenchError {
    BenchError::Connect(e.code().to_owned(), e.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
