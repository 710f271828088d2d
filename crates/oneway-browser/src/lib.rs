//! The oneway **browser peer**: a plain ES module and a static page (`web/`), and this Rust
//! driver that runs them in real Chromium.
//!
//! The page works on its own, from any static file host, with no backend: `web/index.html`
//! listens and shows its token as a link and a QR code, or dials the token in its URL fragment.
//! This crate starts Debian's `chromium` and `chromedriver` with a fresh profile, serves the
//! page on loopback with a tiny static server ([`server`]), and drives it with `fantoccini`,
//! so that tests and `oneway listen|dial --stack browser` can put a browser in any role.
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
//! Which role needs what (`spec/handshake.md` §10): a browser dials `native` tokens one-way;
//! a browser listens with `dialer-identity` tokens for native dialers, and with `reply`
//! tokens (plus a reply code) for browser dialers.

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
    /// Chromium or chromedriver is not installed (or not where configured).
    #[error("{0} not found (install Debian's chromium and chromium-driver, or set {1})")]
    NotInstalled(&'static str, &'static str),
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

/// Where Chromium and chromedriver are, and how to start them.
#[derive(Clone, Debug)]
pub struct BrowserConfig {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The chromedriver binary.
    pub chromedriver: PathBuf,
    /// Run headless (default true).
    pub headless: bool,
    /// Chromium field trials (`--force-fieldtrials=`), e.g. `WebRTC-IceHandshakeDtls/Enabled/`.
    pub field_trials: Option<String>,
    /// More Chromium arguments.
    pub extra_args: Vec<String>,
}

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl BrowserConfig {
    /// Finds the binaries: `ONEWAY_CHROMIUM` / `ONEWAY_CHROMEDRIVER`, else `chromium` (or
    /// `chromium-browser`, `google-chrome`) and `chromedriver` on `PATH`.
    pub fn detect() -> Result<Self, BrowserError> {
        let chromium = match std::env::var_os("ONEWAY_CHROMIUM") {
            Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
            None => find_in_path(&["chromium", "chromium-browser", "google-chrome"]),
        }
        .ok_or(BrowserError::NotInstalled("chromium", "ONEWAY_CHROMIUM"))?;
        let chromedriver = match std::env::var_os("ONEWAY_CHROMEDRIVER") {
            Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
            None => find_in_path(&["chromedriver"]),
        }
        .ok_or(BrowserError::NotInstalled(
            "chromedriver",
            "ONEWAY_CHROMEDRIVER",
        ))?;
        Ok(BrowserConfig {
            chromium,
            chromedriver,
            headless: true,
            field_trials: None,
            extra_args: Vec::new(),
        })
    }

    /// The Chromium command line (field notes §2): fresh profile, no background networking,
    /// loopback ICE allowed, fake media devices, raw host addresses instead of mDNS names.
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
}

/// A running Chromium, its chromedriver, and the static server that serves the page.
pub struct Browser {
    client: Arc<Mutex<ClientState>>,
    driver: Child,
    profile_dir: PathBuf,
    server: StaticServer,
    version: String,
}

struct ClientState {
    client: fantoccini::Client,
    current: Option<WindowHandle>,
    first_window_free: bool,
}

fn free_port() -> Result<u16, BrowserError> {
    let listener =
        StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| BrowserError::Start {
            what: "chromedriver",
            reason: format!("no free port: {e}"),
        })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BrowserError::Start {
            what: "chromedriver",
            reason: e.to_string(),
        })
}

impl Browser {
    /// Starts chromedriver and Chromium with a fresh profile, and serves the page on loopback.
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
        let port = free_port()?;
        let profile_dir =
            std::env::temp_dir().join(format!("oneway-chromium-{}-{}", std::process::id(), port));
        std::fs::create_dir_all(&profile_dir).map_err(|e| BrowserError::Start {
            what: "profile directory",
            reason: e.to_string(),
        })?;
        let driver = Command::new(&config.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BrowserError::Start {
                what: "chromedriver",
                reason: e.to_string(),
            })?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(BrowserError::Start {
                    what: "chromedriver",
                    reason: format!("nothing listening on port {port} after {STARTUP_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".to_owned(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": config.chromium.display().to_string(),
                "args": config.chromium_args(&profile_dir),
            }),
        );
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
                    what: "chromium session",
                    reason: e.to_string(),
                })
        })
        .await
        .map_err(|_| BrowserError::Start {
            what: "chromium session",
            reason: format!("no session after {STARTUP_TIMEOUT:?}"),
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
        })
    }

    /// Chromium's version, as the session reported it.
    pub fn version(&self) -> &str {
        &self.version
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

    /// Ends the session and stops chromedriver; removes the profile. Bounded: if the session
    /// does not end within 10 s, chromedriver is stopped anyway.
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
