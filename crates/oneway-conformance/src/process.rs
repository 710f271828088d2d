//! The implementation under test as a host process on loopback, started from its manifest the
//! way the suite's loopback cells start it (`oneway_scenario::run::command_line`), read
//! through its peer-contract events (`spec/peer-contract.md`).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oneway_core::PeerEvent;
use oneway_scenario::model::{ImplManifest, Role};
use oneway_scenario::plan::Placeholders;
use oneway_scenario::run::{OptionSet, command_line};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use crate::Error;

/// How long a listener may take to print its token (plus its manifest's `startup_secs`).
pub const TOKEN_WAIT: Duration = Duration::from_secs(15);
/// Extra time over a dialer's own timeout (and `startup_secs`) before it is stopped.
pub const DIALER_GRACE: Duration = Duration::from_secs(10);

/// A running peer: its events as they arrive, and its output as log text.
pub struct Peer {
    child: tokio::process::Child,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    /// Every event received so far, in order.
    pub seen: Vec<PeerEvent>,
    log: Arc<Mutex<String>>,
    /// The command line, for the log.
    pub argv: Vec<String>,
}

impl Peer {
    /// Starts `manifest`'s command for `role` with the listener options `options` (keys of
    /// `[listen.options]`; every one must be mapped) and placeholders `ph`.
    pub fn spawn(
        manifest: &ImplManifest,
        role: Role,
        options: &[String],
        ph: &Placeholders,
        peer_binary: &Path,
    ) -> Result<Peer, Error> {
        let (argv, env) = command_line(
            manifest,
            role,
            &OptionSet {
                listener: options,
                ..Default::default()
            },
            ph,
            peer_binary,
        )?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::Harness(format!("{}: empty argv", manifest.id)))?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for kv in &env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::Harness(format!("starting {program}: {e}")))?;
        let log = Arc::new(Mutex::new(format!("$ {}\n", argv.join(" "))));
        let (tx, events) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append(&log, "out| ", &line);
                    if let Some(event) = PeerEvent::parse_line(&line) {
                        let _ = tx.send(event);
                    }
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append(&log, "err| ", &line);
                }
            });
        }
        Ok(Peer {
            child,
            events,
            seen: Vec::new(),
            log,
            argv,
        })
    }

    /// The next event within `wait` (`None`: none came, or the output ended).
    pub async fn next_event(&mut self, wait: Duration) -> Option<PeerEvent> {
        match tokio::time::timeout(wait, self.events.recv()).await {
            Ok(Some(e)) => {
                self.seen.push(e.clone());
                Some(e)
            }
            _ => None,
        }
    }

    /// Waits (at most `wait`) for an event that `want` accepts; returns it.
    pub async fn wait_for(
        &mut self,
        wait: Duration,
        want: impl Fn(&PeerEvent) -> bool,
    ) -> Option<PeerEvent> {
        if let Some(e) = self.seen.iter().find(|e| want(e)) {
            return Some(e.clone());
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let e = self.next_event(left).await?;
            if want(&e) {
                return Some(e);
            }
        }
    }

    /// Takes every event already received, without waiting.
    pub fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// Events seen so far that `want` accepts.
    pub fn count(&mut self, want: impl Fn(&PeerEvent) -> bool) -> usize {
        self.drain();
        self.seen.iter().filter(|e| want(e)).count()
    }

    /// Waits for the process to exit (at most `wait`, then kills it); its exit code (`None`
    /// when killed or ended by a signal), with every event it printed collected.
    pub async fn finish(&mut self, wait: Duration) -> Option<i32> {
        let code = match tokio::time::timeout(wait, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                append(
                    &self.log,
                    "-- ",
                    &format!("conformance: no exit within {wait:?}; killed"),
                );
                let _ = self.child.kill().await;
                None
            }
        };
        // The readers end with the process's output: take what is left.
        while let Some(e) = self.next_event(Duration::from_millis(500)).await {
            let _ = e;
        }
        code
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
        self.drain();
    }

    /// The output so far, as log text (`out| ` and `err| ` prefixes).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Appends a note of the harness to the log.
    pub fn note(&self, text: &str) {
        append(&self.log, "-- ", text);
    }
}

fn append(log: &Mutex<String>, prefix: &str, line: &str) {
    if let Ok(mut log) = log.lock() {
        log.push_str(prefix);
        log.push_str(line);
        log.push('\n');
    }
}
