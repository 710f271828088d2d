//! The oneway **browser peer**: a plain ES module and a static page (`web/`), and this Rust
//! driver that runs them in a real browser: Chromium, or Firefox ESR.
//!
//! The page works on its own, from any static file host, with no backend: `web/index.html`
//! listens and shows its token as a link and a QR code, or dials the token in its URL fragment.
//! This crate starts Debian's `chromium` with `chromedriver`, or Debian's `firefox-esr` with
//! `geckodriver` (from crates.io), with a fresh profile, serves the page on loopback with a tiny
//! static server ([`server`]), and drives it with `fantoccini`, so that tests and
//! `oneway listen|dial --stack browser [--browser firefox]` can put a browser in any role.
//! [`BrowserConfig`] chooses the engine and passes Chromium field trials, browser arguments
//! and Firefox prefs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oneway_browser::BrowserError> {
//! use oneway_browser::{Browser, BrowserConfig};
//!
//! let browser = Browser::launch(BrowserConfig::detect()?).await?;
//! let page = browser.open_page().await?;
//! let op = page.start("dial", serde_json::json!({"token": "ow1.…", "probe": true})).await?;
//! let outcome = page.wait(&op, std::time::Duration::from_secs(20), |event| println!("{event}")).await?;
//! # drop(outcome); browser.close().await; Ok(()) }
//! ```
//!
//! Which role needs what (`spec/handshake.md` §10): a browser dials `native` tokens one-way,
//! and shows its reply code (`owr2.…`, the reply fallback of §11) for a listener it cannot
//! reach directly; a browser listens with `dialer-identity` tokens for native dialers, and
//! takes browser dialers' reply codes (`owr1.…`) for them or for `reply` tokens.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod server;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::wd::WindowHandle;
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

pub use server::StaticServer;

/// The page, its module, and the driver hooks, embedded so the binary works from anywhere.
pub const WEB_FILES: &[(&str, &str, &str)] = &[
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/oneway.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/oneway.js"),
    ),
    (
        "/qr.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/qr.js"),
    ),
    (
        "/driver.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/driver.js"),
    ),
];

/// How long to wait for chromedriver to listen and for a session to start.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval for page events.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Why the browser peer could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// A browser or its WebDriver server is not installed (or not where configured); the
    /// second field says how to install or configure it.
    #[error("{0} not found ({1})")]
    NotInstalled(&'static str, &'static str),
    /// The configuration is inconsistent (an option for another engine, a malformed value).
    #[error("browser configuration: {0}")]
    Config(String),
    /// A process or socket could not be started.
    #[error("starting {what}: {reason}")]
    Start {
        /// What was being started.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A WebDriver command failed.
    #[error("webdriver: {0}")]
    WebDriver(String),
    /// The page reported an error for an operation (with the spec's cause code).
    #[error("page: {code}: {message}")]
    Page {
        /// Stable cause code (`spec/handshake.md` §8, `spec/token.md` §8).
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// An operation did not finish in time.
    #[error("page operation {op} did not finish within {after:?}")]
    Timeout {
        /// Operation id.
        op: String,
        /// The limit.
        after: Duration,
    },
}

impl BrowserError {
    /// The stable cause code for peer-contract events.
    pub fn code(&self) -> &str {
        match self {
            BrowserError::Page { code, .. } => code,
            BrowserError::Timeout { .. } => "timeout",
            _ => "browser-setup",
        }
    }
}

impl From<fantoccini::error::CmdError> for BrowserError {
    fn from(e: fantoccini::error::CmdError) -> Self {
        BrowserError::WebDriver(e.to_string())
    }
}

/// Which browser engine runs the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Debian's `chromium`, driven through `chromedriver`.
    #[default]
    Chromium,
    /// Debian's `firefox-esr`, driven through `geckodriver` (`cargo install geckodriver`).
    Firefox,
}

impl Engine {
    /// Every engine, in the order tests and reports list them.
    pub const ALL: [Engine; 2] = [Engine::Chromium, Engine::Firefox];

    /// The engine's name as options and environment variables spell it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
        }
    }

    /// The name people know the engine by (for messages and reports).
    pub fn display_name(self) -> &'static str {
        match self {
            Engine::Chromium => "Chromium",
            Engine::Firefox => "Firefox",
        }
    }

    /// The WebDriver server's name.
    pub fn driver_name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromedriver",
            Engine::Firefox => "geckodriver",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine name that is neither `chromium` nor `firefox`.
#[derive(Debug, thiserror::Error)]
#[error("unknown browser engine {0:?} (expected chromium or firefox)")]
pub struct UnknownEngine(pub String);

impl std::str::FromStr for Engine {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chromium" | "chrome" => Ok(Engine::Chromium),
            "firefox" | "firefox-esr" => Ok(Engine::Firefox),
            other => Err(UnknownEngine(other.to_owned())),
        }
    }
}

/// Which engine runs the page, where its binaries are, and how to start it.
///
/// [`BrowserConfig::detect`] reads these environment variables:
///
/// | variable | meaning |
/// |---|---|
/// | `ONEWAY_BROWSER` | `chromium` (default) or `firefox` |
/// | `ONEWAY_CHROMIUM`, `ONEWAY_CHROMEDRIVER` | Chromium and chromedriver binaries |
/// | `ONEWAY_FIREFOX`, `ONEWAY_GECKODRIVER` | Firefox and geckodriver binaries |
/// | `ONEWAY_CHROMIUM_FIELD_TRIALS` | Chromium `--force-fieldtrials=` value, e.g. `WebRTC-NoSdpMangleUfrag/Enabled/` |
/// | `ONEWAY_BROWSER_ARGS` | more browser command-line arguments, separated by white space |
/// | `ONEWAY_FIREFOX_PREFS` | more Firefox prefs, `name=value` separated by `;` |
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// The engine.
    pub engine: Engine,
    /// The browser binary (Chromium or Firefox).
    pub binary: PathBuf,
    /// The WebDriver server binary (chromedriver or geckodriver).
    pub driver: PathBuf,
    /// Run headless (default true).
    pub headless: bool,
    /// Chromium field trials (`--force-fieldtrials=`), e.g. `WebRTC-NoSdpMangleUfrag/Enabled/`.
    /// Firefox has none: [`BrowserConfig::launch`](Browser::launch) refuses them there.
    pub field_trials: Option<String>,
    /// More browser command-line arguments (after the defaults).
    pub extra_args: Vec<String>,
    /// More Firefox prefs (after, and overriding, [`FIREFOX_PREFS`]). Chromium has no prefs:
    /// [`Browser::launch`] refuses them there.
    pub prefs: Vec<(String, Value)>,
}

/// The Firefox prefs every session gets (field notes §8): media permission granted with fake
/// devices (Firefox gathers loopback candidates only with it), playback and WebAudio without a
/// user gesture (the page measures received audio), loopback ICE, raw host
/// addresses instead of mDNS names, no timer throttling in background tabs (each peer is a
/// tab), and no background networking.
pub const FIREFOX_PREFS: &[(&str, FirefoxPref)] = &[
    ("permissions.default.microphone", FirefoxPref::Int(1)),
    ("permissions.default.camera", FirefoxPref::Int(1)),
    (
        "media.navigator.permission.disabled",
        FirefoxPref::Bool(true),
    ),
    ("media.navigator.streams.fake", FirefoxPref::Bool(true)),
    ("media.autoplay.default", FirefoxPref::Int(0)),
    ("media.autoplay.block-webaudio", FirefoxPref::Bool(false)),
    ("media.peerconnection.ice.loopback", FirefoxPref::Bool(true)),
    (
        "media.peerconnection.ice.obfuscate_host_addresses",
        FirefoxPref::Bool(false),
    ),
    ("dom.min_background_timeout_value", FirefoxPref::Int(4)),
    (
        "dom.timeout.enable_budget_timer_throttling",
        FirefoxPref::Bool(false),
    ),
    ("network.proxy.type", FirefoxPref::Int(0)),
    (
        "network.captive-portal-service.enabled",
        FirefoxPref::Bool(false),
    ),
    (
        "network.connectivity-service.enabled",
        FirefoxPref::Bool(false),
    ),
    ("network.dns.disablePrefetch", FirefoxPref::Bool(true)),
    (
        "browser.safebrowsing.malware.enabled",
        FirefoxPref::Bool(false),
    ),
    (
        "browser.safebrowsing.phishing.enabled",
        FirefoxPref::Bool(false),
    ),
    ("browser.region.update.enabled", FirefoxPref::Bool(false)),
    ("app.update.disabledForTesting", FirefoxPref::Bool(true)),
    (
        "datareporting.policy.dataSubmissionEnabled",
        FirefoxPref::Bool(false),
    ),
    ("toolkit.telemetry.enabled", FirefoxPref::Bool(false)),
];

/// A Firefox pref value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirefoxPref {
    /// A boolean pref.
    Bool(bool),
    /// An integer pref.
    Int(i64),
}

impl FirefoxPref {
    fn to_json(self) -> Value {
        match self {
            FirefoxPref::Bool(b) => json!(b),
            FirefoxPref::Int(i) => json!(i),
        }
    }
}

/// Parses one `name=value` Firefox pref: `true`/`false` are booleans, integers are integers,
/// anything else is a string.
pub fn parse_pref(text: &str) -> Result<(String, Value), BrowserError> {
    let (name, value) = text
        .split_once('=')
        .filter(|(n, _)| !n.trim().is_empty())
        .ok_or_else(|| BrowserError::Config(format!("Firefox pref {text:?} is not name=value")))?;
    let value = value.trim();
    let value = match value {
        "true" => json!(true),
        "false" => json!(false),
        v => v
            .parse::<i64>()
            .map(|i| json!(i))
            .unwrap_or_else(|_| json!(v)),
    };
    Ok((name.trim().to_owned(), value))
}

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `ONEWAY_…` if set (it must name a file), else the first of `names` on `PATH`, else the first
/// of `fallbacks` that exists.
fn locate(var: &str, names: &[&str], fallbacks: &[PathBuf]) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find_in_path(names).or_else(|| fallbacks.iter().find(|p| p.is_file()).cloned()),
    }
}

/// Where `cargo install` puts binaries: `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        out.push(PathBuf::from(home).join("bin").join(name));
    }
    if let Some(home) = std::env::var_os("HOME") {
        out.push(PathBuf::from(home).join(".cargo/bin").join(name));
    }
    out
}

impl BrowserConfig {
    /// The engine `ONEWAY_BROWSER` names (default Chromium), configured by
    /// [`BrowserConfig::detect_engine`].
    pub fn detect() -> Result<Self, BrowserError> {
        let engine = match std::env::var("ONEWAY_BROWSER") {
            Ok(name) if !name.trim().is_empty() => name
                .parse()
                .map_err(|e: UnknownEngine| BrowserError::Config(format!("ONEWAY_BROWSER: {e}")))?,
            _ => Engine::Chromium,
        };
        Self::detect_engine(engine)
    }

    /// Finds `engine`'s binaries and reads the options from the environment (see the table on
    /// [`BrowserConfig`]). Chromium: `ONEWAY_CHROMIUM` / `ONEWAY_CHROMEDRIVER`, else
    /// `chromium` (or `chromium-browser`, `google-chrome`) and `chromedriver` on `PATH`.
    /// Firefox: `ONEWAY_FIREFOX` / `ONEWAY_GECKODRIVER`, else `firefox-esr` (or `firefox`) and
    /// `geckodriver` on `PATH` or in `~/.cargo/bin`.
    pub fn detect_engine(engine: Engine) -> Result<Self, BrowserError> {
        let (binary, driver) = match engine {
            Engine::Chromium => (
                locate(
                    "ONEWAY_CHROMIUM",
                    &["chromium", "chromium-browser", "google-chrome"],
                    &[],
                )
                .ok_or(BrowserError::NotInstalled(
                    "chromium",
                    "install Debian's chromium, or set ONEWAY_CHROMIUM",
                ))?,
                locate("ONEWAY_CHROMEDRIVER", &["chromedriver"], &[]).ok_or(
                    BrowserError::NotInstalled(
                        "chromedriver",
                        "install Debian's chromium-driver, or set ONEWAY_CHROMEDRIVER",
                    ),
                )?,
            ),
            Engine::Firefox => (
                locate("ONEWAY_FIREFOX", &["firefox-esr", "firefox"], &[]).ok_or(
                    BrowserError::NotInstalled(
                        "firefox",
                        "install Debian's firefox-esr, or set ONEWAY_FIREFOX",
                    ),
                )?,
                locate("ONEWAY_GECKODRIVER", &["geckodriver"], &cargo_bin("geckodriver"))
                    .ok_or(BrowserError::NotInstalled(
                        "geckodriver",
                        "run `cargo install geckodriver --locked` (ci/install.sh does), or set ONEWAY_GECKODRIVER",
                    ))?,
            ),
        };
        let mut config = BrowserConfig {
            engine,
            binary,
            driver,
            headless: true,
            field_trials: None,
            extra_args: Vec::new(),
            prefs: Vec::new(),
        };
        config.apply_env()?;
        Ok(config)
    }

    /// Applies `ONEWAY_CHROMIUM_FIELD_TRIALS`, `ONEWAY_BROWSER_ARGS` and `ONEWAY_FIREFOX_PREFS`
    /// (each only to the engine it concerns: field trials are ignored for Firefox, prefs for
    /// Chromium, so one environment can configure both engines).
    pub fn apply_env(&mut self) -> Result<(), BrowserError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let (Engine::Chromium, Some(trials)) = (self.engine, var("ONEWAY_CHROMIUM_FIELD_TRIALS"))
        {
            self.field_trials = Some(trials.trim().to_owned());
        }
        if let Some(args) = var("ONEWAY_BROWSER_ARGS") {
            self.extra_args
                .extend(args.split_whitespace().map(str::to_owned));
        }
        if let (Engine::Firefox, Some(prefs)) = (self.engine, var("ONEWAY_FIREFOX_PREFS")) {
            for pref in prefs.split(';').filter(|p| !p.trim().is_empty()) {
                self.prefs.push(parse_pref(pref)?);
            }
        }
        Ok(())
    }

    /// A short description for reports: engine, field trials, extra arguments and prefs.
    pub fn describe(&self) -> String {
        let mut out = self.engine.display_name().to_owned();
        if let Some(t) = &self.field_trials {
            out.push_str(&format!(" +fieldtrials {t}"));
        }
        if !self.extra_args.is_empty() {
            out.push_str(&format!(" +args {}", self.extra_args.join(" ")));
        }
        for (name, value) in &self.prefs {
            out.push_str(&format!(" +pref {name}={value}"));
        }
        out
    }

    /// The Chromium command line (field notes §2): fresh profile, no background networking,
    /// loopback ICE allowed, fake media devices, playback without a user gesture (received
    /// audio is decoded and measured only while it plays), raw host addresses instead of mDNS
    /// names.
    pub fn chromium_args(&self, profile_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = [
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-proxy-server",
            "--allow-loopback-in-peer-connection",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--window-size=900,1000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.headless {
            args.push("--headless=new".to_owned());
        }
        args.push(format!("--user-data-dir={}", profile_dir.display()));
        if let Some(trials) = &self.field_trials {
            args.push(format!("--force-fieldtrials={trials}"));
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The Firefox command line: headless, the window size of the Chromium sessions, and the
    /// extra arguments.
    pub fn firefox_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.headless {
            args.push("-headless".to_owned());
        }
        args.extend(["--width=900".to_owned(), "--height=1000".to_owned()]);
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Every Firefox pref of the session: [`FIREFOX_PREFS`], then [`BrowserConfig::prefs`].
    pub fn firefox_prefs(&self) -> serde_json::Map<String, Value> {
        let mut prefs: serde_json::Map<String, Value> = FIREFOX_PREFS
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_json()))
            .collect();
        for (name, value) in &self.prefs {
            prefs.insert(name.clone(), value.clone());
        }
        prefs
    }

    /// The WebDriver capabilities of a session.
    fn capabilities(
        &self,
        profile_dir: &Path,
    ) -> Result<serde_json::Map<String, Value>, BrowserError> {
        let mut caps = serde_json::Map::new();
        match self.engine {
            Engine::Chromium => {
                if !self.prefs.is_empty() {
                    return Err(BrowserError::Config(
                        "Firefox prefs given for Chromium (use field trials or arguments)"
                            .to_owned(),
                    ));
                }
                caps.insert("browserName".to_owned(), json!("chrome"));
                caps.insert(
                    "goog:chromeOptions".to_owned(),
                    json!({
                        "binary": self.binary.display().to_string(),
                        "args": self.chromium_args(profile_dir),
                    }),
                );
            }
            Engine::Firefox => {
                if self.field_trials.is_some() {
                    return Err(BrowserError::Config(
                        "Chromium field trials given for Firefox (use prefs)".to_owned(),
                    ));
                }
                caps.insert("browserName".to_owned(), json!("firefox"));
                caps.insert(
                    "moz:firefoxOptions".to_owned(),
                    json!({
                        "binary": self.binary.display().to_string(),
                        "args": self.firefox_args(),
                        "prefs": self.firefox_prefs(),
                    }),
                );
            }
        }
        Ok(caps)
    }
}

/// A running browser, its WebDriver server, and the static server that serves the page.
pub struct Browser {
    client: Arc<Mutex<ClientState>>,
    driver: Child,
    profile_dir: PathBuf,
    server: StaticServer,
    version: String,
    engine: Engine,
}

struct ClientState {
    client: fantoccini::Client,
    current: Option<WindowHandle>,
    first_window_free: bool,
}

fn free_port() -> Result<u16, BrowserError> {
    let listener =
        StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| BrowserError::Start {
            what: "webdriver server",
            reason: format!("no free port: {e}"),
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BrowserError::Start {
            what: "webdriver server",
            reason: e.to_string(),
        })
}

impl Browser {
    /// Starts the WebDriver server and the browser with a fresh profile, and serves the page
    /// on loopback.
    pub async fn launch(config: BrowserConfig) -> Result<Self, BrowserError> {
        Self::launch_with_server(config, StaticServer::start(Vec::new()).await?).await
    }

    /// Like [`Browser::launch`], with a server the caller configured (extra directories).
    pub async fn launch_with_server(
        config: BrowserConfig,
        server: StaticServer,
    ) -> Result<Self, BrowserError> {
        // fantoccini's HTTP client uses rustls; it needs a process-wide crypto provider
        // (field notes §5). Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let driver_name = config.engine.driver_name();
        let port = free_port()?;
        let profile_dir = std::env::temp_dir().join(format!(
            "oneway-{}-{}-{}",
            config.engine,
            std::process::id(),
            port
        ));
        std::fs::create_dir_all(&profile_dir).map_err(|e| BrowserError::Start {
            what: "profile directory",
            reason: e.to_string(),
        })?;
        let caps = config.capabilities(&profile_dir)?;
        let mut command = Command::new(&config.driver);
        command.arg(format!("--port={port}"));
        if config.engine == Engine::Firefox {
            // A system-chosen port for the BiDi WebSocket (the default, 9222, would collide
            // between two sessions) and the temporary profile under our directory.
            command
                .args(["--websocket-port", "0", "--profile-root"])
                .arg(&profile_dir);
        }
        let driver = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BrowserError::Start {
                what: driver_name,
                reason: e.to_string(),
            })?;
        tracing::debug!(engine = %config.engine, port, "started {driver_name}");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(BrowserError::Start {
                    what: driver_name,
                    reason: format!("nothing listening on port {port} after {STARTUP_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let session = "browser session";
        let client = tokio::time::timeout(STARTUP_TIMEOUT, async {
            fantoccini::ClientBuilder::rustls()
                .map_err(|e| BrowserError::Start {
                    what: "webdriver client",
                    reason: e.to_string(),
                })?
                .capabilities(caps)
                .connect(&url)
                .await
                .map_err(|e| BrowserError::Start {
                    what: session,
                    reason: format!("{}: {e}", config.engine.display_name()),
                })
        })
        .await
        .map_err(|_| BrowserError::Start {
            what: session,
            reason: format!(
                "no {} session after {STARTUP_TIMEOUT:?}",
                config.engine.display_name()
            ),
        })??;
        let version = client
            .capabilities()
            .and_then(|c| c.get("browserVersion"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        Ok(Browser {
            client: Arc::new(Mutex::new(ClientState {
                client,
                current: None,
                first_window_free: true,
            })),
            driver,
            profile_dir,
            server,
            version,
            engine: config.engine,
        })
    }

    /// The browser's version, as the session reported it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The engine this browser runs.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The page's base URL (`http://127.0.0.1:<port>/`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Opens a new tab on the page's driver URL (`index.html?driven`), a peer of its own.
    pub async fn open_page(&self) -> Result<Page, BrowserError> {
        self.open_url(&format!("{}index.html?driven", self.base_url()))
            .await
    }

    /// Opens a new tab on `url` (the first call reuses the session's initial tab).
    pub async fn open_url(&self, url: &str) -> Result<Page, BrowserError> {
        let mut state = self.client.lock().await;
        let handle = if state.first_window_free {
            state.first_window_free = false;
            state.client.window().await?
        } else {
            state.client.new_window(true).await?.handle
        };
        state.client.switch_to_window(handle.clone()).await?;
        state.current = Some(handle.clone());
        state.client.goto(url).await?;
        drop(state);
        let page = Page {
            client: Arc::clone(&self.client),
            window: handle,
        };
        // Wait (bounded) for the module to load.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if page
                .execute("return !!(window.onewayReady);", Vec::new())
                .await?
                == json!(true)
            {
                return Ok(page);
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Page {
                    code: "page-load".to_owned(),
                    message: format!("{url} did not load the oneway module in 10 s"),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Closes every tab but one and leaves that one on `about:blank`, ending the peer
    /// connections of every page (the next [`Browser::open_url`] reuses it). Between test
    /// cases, so that no peer connection of an earlier case keeps sending.
    pub async fn reset_tabs(&self) -> Result<(), BrowserError> {
        let mut state = self.client.lock().await;
        let handles = state.client.windows().await?;
        for handle in handles.iter().skip(1) {
            state.client.switch_to_window(handle.clone()).await?;
            state.client.close_window().await?;
        }
        if let Some(first) = handles.first() {
            state.client.switch_to_window(first.clone()).await?;
            state.client.goto("about:blank").await?;
            state.current = Some(first.clone());
        }
        state.first_window_free = true;
        Ok(())
    }

    /// Ends the session and stops the WebDriver server; removes the profile. Bounded: if the
    /// session does not end within 10 s, the server is stopped anyway.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            let state = self.client.lock().await;
            let _ = state.client.clone().close().await;
        })
        .await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile_dir);
    }
}

/// One tab: one peer (or one demo page) in the shared browser.
#[derive(Clone)]
pub struct Page {
    client: Arc<Mutex<ClientState>>,
    window: WindowHandle,
}

/// What an operation ended with, and the events it emitted on the way.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The operation's result value.
    pub value: Value,
    /// The peer-contract events it emitted, in order (each has `event` and `t_ms`).
    pub events: Vec<Value>,
}

impl Page {
    /// Runs a synchronous script in this tab.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, BrowserError> {
        let mut state = self.client.lock().await;
        if state.current.as_ref() != Some(&self.window) {
            state.client.switch_to_window(self.window.clone()).await?;
            state.current = Some(self.window.clone());
        }
        Ok(state.client.execute(script, args).await?)
    }

    /// Starts operation `kind` of `web/driver.js` with `args`; returns its id at once (the
    /// operation runs in the page; WebDriver stays free for other tabs).
    pub async fn start(&self, kind: &str, args: Value) -> Result<String, BrowserError> {
        let id = self
            .execute(
                "return window.onewayDriver.start(arguments[0], arguments[1]);",
                vec![json!(kind), args],
            )
            .await?;
        id.as_str()
            .map(str::to_owned)
            .ok_or_else(|| BrowserError::WebDriver(format!("start({kind}) returned {id}")))
    }

    /// Takes the events operation `op` emitted since the last call, and its result if done.
    pub async fn poll(&self, op: &str) -> Result<(Vec<Value>, Option<Value>), BrowserError> {
        let v = self
            .execute(
                "return window.onewayDriver.poll(arguments[0]);",
                vec![json!(op)],
            )
            .await?;
        let events = v
            .get("events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok((events, v.get("result").filter(|r| !r.is_null()).cloned()))
    }

    /// Waits (at most `limit`) for operation `op` to end, handing each event to `on_event`.
    pub async fn wait(
        &self,
        op: &str,
        limit: Duration,
        mut on_event: impl FnMut(&Value),
    ) -> Result<Outcome, BrowserError> {
        let deadline = Instant::now() + limit;
        let mut all = Vec::new();
        loop {
            let (events, result) = self.poll(op).await?;
            for e in &events {
                on_event(e);
            }
            all.extend(events);
            if let Some(result) = result {
                if result.get("ok") == Some(&json!(true)) {
                    return Ok(Outcome {
                        value: result.get("value").cloned().unwrap_or(Value::Null),
                        events: all,
                    });
                }
                return Err(BrowserError::Page {
                    code: result
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("internal")
                        .to_owned(),
                    message: result
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                });
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Timeout {
                    op: op.to_owned(),
                    after: limit,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until operation `op` emits an event named `name`; returns it (other events are
    /// passed to `on_event`). Fails if the operation ends first.
    pub async fn wait_event(
        &self,
        op: &str,
        name: &str,
        limit: Duration,
        mut on_event: impl FnMut(&Value),
    ) -> Result<Value, BrowserError> {
        let deadline = Instant::now() + limit;
        loop {
            let (events, result) = self.poll(op).await?;
            let mut found = None;
            for e in events {
                on_event(&e);
                if found.is_none() && e.get("event").and_then(Value::as_str) == Some(name) {
                    found = Some(e);
                }
            }
            if let Some(e) = found {
                return Ok(e);
            }
            if let Some(result) = result {
                return Err(BrowserError::Page {
                    code: result
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("ended")
                        .to_owned(),
                    message: format!(
                        "operation {op} ended before `{name}`: {}",
                        result.get("message").and_then(Value::as_str).unwrap_or("")
                    ),
                });
            }
            if Instant::now() > deadline {
                return Err(BrowserError::Timeout {
                    op: op.to_owned(),
                    after: limit,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A PNG screenshot of this tab.
    pub async fn screenshot(&self) -> Result<Vec<u8>, BrowserError> {
        let mut state = self.client.lock().await;
        if state.current.as_ref() != Some(&self.window) {
            state.client.switch_to_window(self.window.clone()).await?;
            state.current = Some(self.window.clone());
        }
        Ok(state.client.screenshot().await?)
    }

    /// Text content of the first element matching a CSS selector, if any.
    pub async fn text_of(&self, selector: &str) -> Result<Option<String>, BrowserError> {
        let v = self
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(selector)],
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }
}

/// For tests: the address the static server listens on is loopback only.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(engine: Engine) -> BrowserConfig {
        BrowserConfig {
            engine,
            binary: PathBuf::from("/nonexistent/browser"),
            driver: PathBuf::from("/nonexistent/driver"),
            headless: true,
            field_trials: None,
            extra_args: Vec::new(),
            prefs: Vec::new(),
        }
    }

    #[test]
    fn engine_names() {
        for engine in Engine::ALL {
            assert_eq!(engine.name().parse::<Engine>().ok(), Some(engine));
        }
        assert_eq!("Firefox-ESR".parse::<Engine>().ok(), Some(Engine::Firefox));
        assert!("safari".parse::<Engine>().is_err());
    }

    #[test]
    fn prefs_parse_by_type() {
        assert_eq!(
            parse_pref("a.b=true").unwrap(),
            ("a.b".to_owned(), json!(true))
        );
        assert_eq!(parse_pref(" a = 12 ").unwrap(), ("a".to_owned(), json!(12)));
        assert_eq!(parse_pref("a=x=y").unwrap(), ("a".to_owned(), json!("x=y")));
        assert!(parse_pref("no-value").is_err());
        assert!(parse_pref("=1").is_err());
    }

    #[test]
    fn chromium_capabilities_carry_field_trials_and_args() {
        let mut c = config(Engine::Chromium);
        c.field_trials = Some("WebRTC-NoSdpMangleUfrag/Enabled/".to_owned());
        c.extra_args.push("--lang=en".to_owned());
        let caps = c.capabilities(Path::new("/tmp/p")).unwrap();
        let args = caps["goog:chromeOptions"]["args"].as_array().unwrap();
        assert!(args.contains(&json!(
            "--force-fieldtrials=WebRTC-NoSdpMangleUfrag/Enabled/"
        )));
        assert_eq!(args.last(), Some(&json!("--lang=en")));
        c.prefs.push(("a".to_owned(), json!(1)));
        assert!(matches!(
            c.capabilities(Path::new("/tmp/p")),
            Err(BrowserError::Config(_))
        ));
    }

    #[test]
    fn firefox_capabilities_carry_prefs_with_overrides() {
        let mut c = config(Engine::Firefox);
        c.prefs
            .push(("media.peerconnection.ice.loopback".to_owned(), json!(false)));
        c.prefs.push(("x.y".to_owned(), json!("z")));
        let caps = c.capabilities(Path::new("/tmp/p")).unwrap();
        let options = &caps["moz:firefoxOptions"];
        assert_eq!(caps["browserName"], json!("firefox"));
        assert_eq!(options["prefs"]["permissions.default.microphone"], json!(1));
        assert_eq!(
            options["prefs"]["media.peerconnection.ice.loopback"],
            json!(false)
        );
        assert_eq!(options["prefs"]["x.y"], json!("z"));
        assert_eq!(options["args"][0], json!("-headless"));
        c.field_trials = Some("X/Enabled/".to_owned());
        assert!(matches!(
            c.capabilities(Path::new("/tmp/p")),
            Err(BrowserError::Config(_))
        ));
    }
}
