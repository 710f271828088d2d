//! The runner: brings a cell's topology up, runs both peers, records what they print, judges
//! the run and tears everything down (also on error and on interruption).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use oneway_core::PeerEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::docker::{Engine, Line};
use crate::model::{Expectation, ExpectedVerdict, Impairment, ImplManifest, Role, Scenario};
use crate::plan::{Cell, Placeholders};
use crate::topology::{self, Layout, NodeRole, NodeSpec};
use crate::verdict::{self, Outcome, Stats, Verdict};

/// Options of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `oneway` binary put into the image (and run for loopback cells).
    pub peer_binary: PathBuf,
    /// Repeats per cell (overrides the scenarios' own).
    pub repeat: Option<u32>,
    /// Leave the containers and networks of the last container cell up.
    pub keep: bool,
    /// Capture packets on the routers (tcpdump).
    pub capture: bool,
    /// Where logs, captures and reports go.
    pub out: PathBuf,
    /// How to rerun one cell (`oneway suite` plus the directories); the cell filter is added.
    pub rerun_prefix: String,
    /// How many cells run at the same time (each in its own address slot, see
    /// [`topology::Layout::relocated`]); 1 with `keep`.
    pub jobs: usize,
}

/// One candidate check the dialer started, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// Dialer clock, ms.
    pub t_ms: f64,
    /// Remote `ip:port`.
    pub remote: String,
    /// Its candidate type in the token (`host`, `srflx`, …, or `unknown`).
    pub kind: String,
}

/// The selected pair as one end reported it, classified by the runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathEnd {
    /// Local `ip:port`.
    pub local: String,
    /// Remote `ip:port`.
    pub remote: String,
    /// Type of the local candidate (`host`, `srflx`, `prflx`, `relay`).
    pub local_type: String,
    /// Type of the remote candidate.
    pub remote_type: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

impl PathEnd {
    /// The path's type as the scenarios name it: `relay` when either candidate is a relay (a
    /// dialer's relayed pair reaches the listener's host candidate), otherwise the remote's type.
    pub fn path_type(&self) -> String {
        if self.local_type == "relay" || self.remote_type == "relay" {
            "relay".to_owned()
        } else {
            self.remote_type.clone()
        }
    }
}

/// Stage times (dialer clock, ms since it started decoding the token).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Token decoded (`dialing`).
    pub decoded: Option<f64>,
    /// First check sent.
    pub first_check: Option<f64>,
    /// ICE connected.
    pub ice: Option<f64>,
    /// DTLS connected.
    pub dtls: Option<f64>,
    /// Channel 0 open.
    pub channel: Option<f64>,
    /// Both proofs verified.
    pub auth: Option<f64>,
    /// Probe echoed.
    pub first_echo: Option<f64>,
}

/// One run of a cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1-based repeat number.
    pub repeat: u32,
    /// What happened.
    pub outcome: Outcome,
    /// Against the expectation.
    pub verdict: Verdict,
    /// Why it deviates, when it does.
    pub deviation: Option<String>,
    /// The token's candidates, in token order.
    pub candidates: Vec<String>,
    /// Checks in the order the dialer started them.
    pub tried: Vec<Tried>,
    /// Time from the first check to the check of the pair that won, when that was not the
    /// first (ms).
    pub fallback_ms: Option<f64>,
    /// The path as the dialer reports it.
    pub dialer_path: Option<PathEnd>,
    /// The path as the listener reports it.
    pub listener_path: Option<PathEnd>,
    /// Stage times.
    pub stages: Stages,
    /// Impairment mechanism that ran (`netem` or `userspace`), if any.
    pub impairment: Option<String>,
    /// The impairment the scenario asked for on the dialer's access link, if any.
    #[serde(default)]
    pub shaping: Option<Impairment>,
    /// Round-trip time of the probe echo as the dialer measured it, ms.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Why the runner ended the run before the dialer gave up, when it did: the cell expects
    /// `listener-unreachable`, and that cause was already certain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// Wall time of the whole run including bring-up, seconds.
    pub seconds: f64,
    /// Log files (relative to the output directory).
    pub logs: Vec<String>,
}

/// A cell's result over its repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell.
    pub name: String,
    /// Scenario.
    pub scenario: String,
    /// Dialer id.
    pub dialer: String,
    /// Listener id.
    pub listener: String,
    /// Combined verdict.
    pub verdict: Verdict,
    /// Expected verdict and cause.
    pub expected: String,
    /// Reason from the scenario.
    pub reason: String,
    /// Why it was skipped or deviated (first deviating run).
    pub why: Option<String>,
    /// Observed cause code(s), distinct, for the "why" column.
    pub causes: Vec<String>,
    /// Repeat statistics.
    pub stats: Stats,
    /// Every run.
    pub runs: Vec<RunRecord>,
    /// Command that reruns this cell alone.
    pub rerun: String,
}

/// Something for a progress display.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A step of the image build.
    Image(String),
    /// A run starts.
    RunStarted {
        /// Cell name.
        cell: String,
        /// Repeat.
        repeat: u32,
    },
    /// A run ended.
    RunFinished {
        /// Cell name.
        cell: String,
        /// Its verdict.
        verdict: Verdict,
    },
    /// A message worth a line.
    Note(String),
}

/// What the runner needs besides the cells.
pub struct Runner<'a> {
    /// Options.
    pub options: Options,
    /// Manifests by id.
    pub impls: &'a [ImplManifest],
    /// Scenarios.
    pub scenarios: &'a [Scenario],
    /// The engine, `None` when Docker is unreachable (container cells are skipped).
    pub engine: Option<Engine>,
    /// Why there is no engine.
    pub no_engine_reason: Option<String>,
    /// The image tag (with an engine).
    pub image: Option<String>,
    /// The browser variant's tag, when a selected implementation runs in it and it was built.
    pub browser_image: Option<String>,
    /// Whether the image has coturn and tcpdump.
    pub has_turnserver: bool,
    /// Whether the image has tcpdump.
    pub has_tcpdump: bool,
    /// Progress sink.
    pub progress: mpsc::UnboundedSender<Progress>,
    /// Becomes true on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
}

const TOKEN_WAIT: Duration = Duration::from_secs(15);
/// Points a container's resolver at loopback, where nothing answers (see the browser setup).
const NO_DNS: &str = "echo 'nameserver 127.0.0.1' > /etc/resolv.conf";
/// Extra time over the dialer's own timeout before the runner gives up on it.
const DIALER_GRACE: Duration = Duration::from_secs(10);
/// How long the listener may take to print its `connected` after the dialer exits (the wait
/// ends at its `closed`, `refused` or `error`).
const LISTENER_LINGER: Duration = Duration::from_millis(700);
/// A cell that expects `listener-unreachable` ends once the listener has reported nothing
/// from the dialer and the dialer has tried no new remote address for this long: its checks
/// to every address in the token (and their retransmissions over this window) were all lost
/// on the way to the listener, and the topology's rules do not change, so the rest of the
/// dialer's timeout cannot change the outcome.
const EARLY_STOP_SETTLE: Duration = Duration::from_secs(3);

/// Whether the expectation is a failure because nothing reaches the listener.
fn expect_unreachable(expect: &Expectation) -> bool {
    expect.verdict == ExpectedVerdict::Fail
        && expect
            .cause
            .as_deref()
            .is_some_and(|c| c.starts_with("listener-unreachable"))
}

/// How the wait for the dialer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DialerEnd {
    /// Its output ended (it exited).
    Exited,
    /// It outlived its timeout plus [`DIALER_GRACE`].
    TimedOut,
    /// The runner stopped waiting: see [`EARLY_STOP_SETTLE`].
    StoppedEarly,
}

/// Whether a listener event shows that something from the dialer reached it.
fn listener_saw(line: &Line) -> bool {
    let Line::Stdout(l) = line else { return false };
    matches!(
        PeerEvent::parse_line(l),
        Some(
            PeerEvent::IceConnected { .. }
                | PeerEvent::DtlsConnected { .. }
                | PeerEvent::ChannelOpen { .. }
                | PeerEvent::Connected { .. }
                | PeerEvent::Refused { .. }
                | PeerEvent::Closed { .. }
        )
    )
}

/// Collects the dialer's output until it exits (bounded by `limit`), and the listener's
/// meanwhile; with `settle`, stops early as [`EARLY_STOP_SETTLE`] describes.
async fn watch_dialer(
    d: &mut PeerProc,
    listener: &mut mpsc::UnboundedReceiver<Line>,
    logs: &mut Logs,
    limit: Duration,
    settle: Option<Duration>,
    cancel: &watch::Receiver<bool>,
) -> Result<DialerEnd, Error> {
    let mut cancel = cancel.clone();
    let deadline = tokio::time::Instant::now() + limit;
    let mut tried = std::collections::HashSet::new();
    let mut last_new = None;
    let mut saw = false;
    let mut listener_open = true;
    loop {
        let settled = match (settle, last_new) {
            (Some(s), Some(t)) if !saw => Some(t + s),
            _ => None,
        };
        let wake = settled.map_or(deadline, |s: tokio::time::Instant| s.min(deadline));
        tokio::select! {
            line = d.lines.recv() => {
                let Some(line) = line else { return Ok(DialerEnd::Exited) };
                push_line(&mut logs.dialer, &line);
                if let Line::Stdout(l) = &line
                    && let Some(PeerEvent::CandidateTried { remote, .. }) = PeerEvent::parse_line(l)
                    && tried.insert(remote)
                {
                    last_new = Some(tokio::time::Instant::now());
                }
            }
            line = listener.recv(), if listener_open => match line {
                Some(line) => {
                    push_line(&mut logs.listener, &line);
                    saw |= listener_saw(&line);
                }
                None => listener_open = false,
            },
            _ = tokio::time::sleep_until(wake) => {
                if settled.is_some_and(|s| s < deadline) {
                    logs.dialer.push_str(&format!(
                        "-- runner: stopped early: the listener saw nothing and no new address was tried for {:?}\n",
                        settle.unwrap_or_default()
                    ));
                    return Ok(DialerEnd::StoppedEarly);
                }
                logs.dialer.push_str(&format!("-- runner: no exit within {limit:?}\n"));
                return Ok(DialerEnd::TimedOut);
            }
            _ = cancel.wait_for(|c| *c) => return Err(Error::Interrupted),
        }
    }
}

/// Gives the listener up to [`LISTENER_LINGER`] to report the end of the connection.
async fn linger(lines: &mut mpsc::UnboundedReceiver<Line>, log: &mut String) {
    let wait = async {
        while let Some(line) = lines.recv().await {
            push_line(log, &line);
            if let Line::Stdout(l) = &line
                && matches!(
                    PeerEvent::parse_line(l),
                    Some(
                        PeerEvent::Closed { .. }
                            | PeerEvent::Refused { .. }
                            | PeerEvent::Error { .. }
                    )
                )
            {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LISTENER_LINGER, wait).await;
    drain(lines, log);
}

impl Runner<'_> {
    fn note(&self, message: String) {
        let _ = self.progress.send(Progress::Note(message));
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Runs the cells, up to [`Options::jobs`] at a time, each in an address slot no other
    /// running cell has; the results are in the cells' order. Stops starting cells when
    /// cancelled (keeping the results so far; the running ones tear down).
    pub async fn run(&self, cells: &[Cell]) -> Vec<CellResult> {
        let jobs = if self.options.keep {
            1
        } else {
            self.options.jobs.clamp(1, usize::from(topology::SLOTS))
        };
        // Slot 0 first: with one job every cell has the addresses of the module documentation.
        let free = std::sync::Mutex::new((0..jobs as u8).rev().collect::<Vec<u8>>());
        let free = &free;
        futures_util::stream::iter(cells.iter().enumerate())
            .map(|(index, cell)| async move {
                if self.cancelled() {
                    return None;
                }
                let slot = free.lock().ok().and_then(|mut f| f.pop()).unwrap_or(0);
                let result = self.run_cell(index, cell, slot).await;
                if let Ok(mut f) = free.lock() {
                    f.push(slot);
                }
                Some(result)
            })
            .buffered(jobs)
            .filter_map(|r| async move { r })
            .collect()
            .await
    }

    fn scenario(&self, name: &str) -> Option<&Scenario> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    fn manifest(&self, id: &str) -> Option<&ImplManifest> {
        self.impls.iter().find(|m| m.id == id)
    }

    async fn run_cell(&self, index: usize, cell: &Cell, slot: u8) -> CellResult {
        let rerun = format!("{} --filter '{}'", self.options.rerun_prefix, cell.name);
        let expected = match &cell.expect.cause {
            Some(c) => format!("{} ({c})", cell.expect.verdict_name()),
            None => cell.expect.verdict_name().to_owned(),
        };
        let mut result = CellResult {
            name: cell.name.clone(),
            scenario: cell.scenario.clone(),
            dialer: cell.dialer.clone(),
            listener: cell.listener.clone(),
            verdict: Verdict::Skipped,
            expected,
            reason: cell.expect.reason.clone(),
            why: cell.skip.clone(),
            causes: Vec::new(),
            stats: Stats::default(),
            runs: Vec::new(),
            rerun,
        };
        let Some(scenario) = self.scenario(&cell.scenario) else {
            result.why = Some("scenario vanished".into());
            return result;
        };
        if cell.skip.is_some() {
            return result;
        }
        if !scenario.loopback && self.engine.is_none() {
            result.why = Some(format!(
                "container scenario skipped: {}",
                self.no_engine_reason
                    .as_deref()
                    .unwrap_or("no Docker engine")
            ));
            return result;
        }
        let repeats = self.options.repeat.or(scenario.repeat).unwrap_or(1).max(1);
        let mut latencies = Vec::new();
        for repeat in 1..=repeats {
            if self.cancelled() {
                break;
            }
            let _ = self.progress.send(Progress::RunStarted {
                cell: cell.name.clone(),
                repeat,
            });
            let record = self.run_once(index, cell, scenario, repeat, slot).await;
            if let Some(t) = record.stages.first_echo {
                latencies.push(t);
            }
            let _ = self.progress.send(Progress::RunFinished {
                cell: cell.name.clone(),
                verdict: record.verdict,
            });
            result.runs.push(record);
        }
        let verdicts: Vec<Verdict> = result.runs.iter().map(|r| r.verdict).collect();
        result.verdict = verdict::combine(&verdicts);
        let connected = result
            .runs
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Connected { .. }))
            .count() as u32;
        let green = verdicts.iter().filter(|v| v.is_green()).count() as u32;
        result.stats = Stats::new(result.runs.len() as u32, connected, green, &latencies);
        for r in &result.runs {
            let c = match &r.outcome {
                Outcome::Connected { path } => format!("connected via {path}"),
                Outcome::Failed { cause } => cause.clone(),
                Outcome::Error { message } => format!("error: {message}"),
            };
            if !result.causes.contains(&c) {
                result.causes.push(c);
            }
        }
        result.why = result.runs.iter().find_map(|r| r.deviation.clone());
        result
    }

    async fn run_once(
        &self,
        index: usize,
        cell: &Cell,
        scenario: &Scenario,
        repeat: u32,
        slot: u8,
    ) -> RunRecord {
        let start = Instant::now();
        let dir_name = format!("{:03}-{}-r{repeat}", index + 1, slug(&cell.name));
        let dir = self.options.out.join("cells").join(&dir_name);
        let mut record = RunRecord {
            repeat,
            outcome: Outcome::Error {
                message: String::new(),
            },
            verdict: Verdict::Error,
            deviation: None,
            candidates: Vec::new(),
            tried: Vec::new(),
            fallback_ms: None,
            dialer_path: None,
            listener_path: None,
            stages: Stages::default(),
            impairment: None,
            shaping: scenario.impairment,
            rtt_ms: None,
            stopped_early: None,
            seconds: 0.0,
            logs: Vec::new(),
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            record.outcome = Outcome::Error {
                message: format!("creating {}: {e}", dir.display()),
            };
            return record;
        }
        let (Some(dialer), Some(listener)) =
            (self.manifest(&cell.dialer), self.manifest(&cell.listener))
        else {
            record.outcome = Outcome::Error {
                message: "manifest vanished".into(),
            };
            return record;
        };
        let mut logs = Logs::default();
        let outcome = if scenario.loopback {
            self.loopback(scenario, dialer, listener, &mut record, &mut logs)
                .await
        } else {
            let layout = topology::layout(&scenario.topology, scenario.impairment).relocated(slot);
            let name = format!("{:03}r{repeat}", index + 1);
            self.containers(
                &name,
                &layout,
                scenario,
                &cell.expect,
                dialer,
                listener,
                &mut record,
                &mut logs,
                &dir,
            )
            .await
        };
        record.outcome = match outcome {
            Ok(o) => o,
            Err(Error::Interrupted) => Outcome::Error {
                message: "interrupted".into(),
            },
            Err(e) => Outcome::Error {
                message: e.to_string(),
            },
        };
        let (v, deviation) = verdict::judge(&cell.expect, &record.outcome);
        record.verdict = v;
        record.deviation = deviation;
        logs.finish();
        for (file, text) in &logs.files {
            let path = dir.join(file);
            if std::fs::write(&path, text).is_ok() {
                record.logs.push(format!("cells/{dir_name}/{file}"));
            }
        }
        record.seconds = start.elapsed().as_secs_f64();
        record
    }

    /// Runs a loopback cell with host processes.
    async fn loopback(
        &self,
        scenario: &Scenario,
        dialer: &ImplManifest,
        listener: &ImplManifest,
        record: &mut RunRecord,
        logs: &mut Logs,
    ) -> Result<Outcome, Error> {
        let timeout = scenario.timeout_secs.unwrap_or(dialer.timeout_secs);
        let mut ph = Placeholders {
            timeout_secs: timeout,
            ..Default::default()
        };
        let (largv, lenv) = command(
            listener,
            Role::Listen,
            scenario,
            &ph,
            &self.options.peer_binary,
        )?;
        let mut l = HostProc::spawn(&largv, &lenv)?;
        let token = wait_token(
            &mut l.lines,
            &mut logs.listener,
            TOKEN_WAIT + Duration::from_secs(listener.startup_secs),
            &self.cancel,
        )
        .await;
        let result = async {
            let (token, candidates) = token?;
            record.candidates = candidates;
            ph.token = token;
            let (dargv, denv) =
                command(dialer, Role::Dial, scenario, &ph, &self.options.peer_binary)?;
            let mut d = HostProc::spawn(&dargv, &denv)?;
            let limit = Duration::from_secs(timeout + dialer.startup_secs) + DIALER_GRACE;
            let finished =
                collect_until_end(&mut d.lines, &mut logs.dialer, limit, &self.cancel).await;
            let code = d.child.wait().await.ok().and_then(|s| s.code());
            tokio::time::sleep(LISTENER_LINGER).await;
            drain(&mut l.lines, &mut logs.listener);
            finished?;
            Ok(self.outcome(record, logs, code.map(i64::from), None))
        }
        .await;
        let _ = l.child.kill().await;
        drain(&mut l.lines, &mut logs.listener);
        result
    }

    /// Runs one container cell.
    #[allow(clippy::too_many_arguments)]
    async fn containers(
        &self,
        name: &str,
        layout: &Layout,
        scenario: &Scenario,
        expect: &Expectation,
        dialer: &ImplManifest,
        listener: &ImplManifest,
        record: &mut RunRecord,
        logs: &mut Logs,
        dir: &Path,
    ) -> Result<Outcome, Error> {
        let (Some(engine), Some(image)) = (&self.engine, &self.image) else {
            return Err(Error::NoDocker("no engine".into()));
        };
        let host_image = |m: &ImplManifest| -> Result<String, Error> {
            match crate::image::Variant::from_image(&m.image) {
                Some(crate::image::Variant::Browser) => {
                    self.browser_image.clone().ok_or_else(|| {
                        Error::Image(format!(
                            "{} needs the browser image, which was not built",
                            m.id
                        ))
                    })
                }
                _ => Ok(image.clone()),
            }
        };
        let images = NodeImages {
            base: image.clone(),
            listener: host_image(listener)?,
            dialer: host_image(dialer)?,
        };
        if self.options.keep {
            // The subnets are fixed, so a kept cell's networks would collide with the next
            // cell's: remove what the previous cell left up (only the last cell stays up).
            engine.sweep(true).await?;
        }
        let mut env = Env {
            engine,
            prefix: format!("ow-{}-{name}", engine_run(engine)),
            networks: Vec::new(),
            containers: Vec::new(),
        };
        let result = self
            .containers_inner(
                &mut env, &images, layout, scenario, expect, dialer, listener, record, logs, dir,
            )
            .await;
        if self.options.keep {
            self.note(format!(
                "--keep: {} containers of {name} left up (removed when the next cell or run starts; now: docker rm -f $(docker ps -aq --filter label=oneway.suite))",
                env.containers.len()
            ));
        } else {
            env.teardown().await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn containers_inner<'a>(
        &self,
        env: &mut Env<'_>,
        images: &'a NodeImages,
        layout: &'a Layout,
        scenario: &Scenario,
        expect: &Expectation,
        dialer: &ImplManifest,
        listener: &ImplManifest,
        record: &mut RunRecord,
        logs: &mut Logs,
        dir: &Path,
    ) -> Result<Outcome, Error> {
        let engine = env.engine;
        let unresolved = layout.unresolved_placeholders();
        if !unresolved.is_empty() {
            return Err(Error::Docker(format!(
                "the layout names interfaces its nodes do not have: {}",
                unresolved.join(", ")
            )));
        }
        // Networks, then containers, then their setup: each step's Docker calls run
        // concurrently (every created resource is recorded for teardown even when a sibling
        // call fails).
        let net_names: HashMap<&str, String> = layout
            .networks
            .iter()
            .map(|net| (net.key, format!("{}-{}", env.prefix, net.key)))
            .collect();
        let created = join_all(
            layout
                .networks
                .iter()
                .map(|net| engine.create_network(&net_names[net.key], &net.v4, net.v6.as_deref())),
        )
        .await;
        let mut failed = None;
        for r in created {
            match r {
                Ok(id) => env.networks.push(id),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let start = |node: &'a NodeSpec| {
            let nets: Vec<(String, String, Option<String>)> = node
                .ifaces
                .iter()
                .map(|i| (net_names[i.net].clone(), i.v4.clone(), i.v6.clone()))
                .collect();
            let mut sysctls = HashMap::from([
                ("net.ipv4.conf.all.rp_filter".to_owned(), "0".to_owned()),
                ("net.ipv4.conf.default.rp_filter".to_owned(), "0".to_owned()),
            ]);
            if node.forwards {
                sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
            }
            if node.ifaces.iter().any(|i| i.v6.is_some()) {
                sysctls.insert("net.ipv6.conf.all.disable_ipv6".into(), "0".into());
            }
            let cname = format!("{}-{}", env.prefix, node.key);
            let image = images.of(node.role);
            async move {
                (
                    node.key,
                    engine.start_node(&cname, image, &nets, sysctls).await,
                )
            }
        };
        let started = join_all(layout.nodes.iter().map(start)).await;
        let mut ids: HashMap<&str, String> = HashMap::new();
        for (key, r) in started {
            match r {
                Ok(id) => {
                    env.containers.push(id.clone());
                    ids.insert(key, id);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if self.cancelled() {
            return Err(Error::Interrupted);
        }
        // Interface names by network, then each node's setup (nodes concurrently; the log
        // keeps the layout's order).
        let setup = |node: &'a NodeSpec| {
            let id = ids[node.key].clone();
            async move {
                let (_, addrs) = engine
                    .run_script(&id, "ip -o addr show", Duration::from_secs(10))
                    .await?;
                let mut script = node.setup.join("\n");
                for i in &node.ifaces {
                    let ifname = interface_of(&addrs, &i.v4).ok_or_else(|| {
                        Error::Docker(format!("{}: no interface has {}", node.key, i.v4))
                    })?;
                    script = script.replace(&format!("{{if:{}}}", i.net), &ifname);
                }
                let (code, output) = engine
                    .run_script(&id, &format!("set -e\n{script}"), Duration::from_secs(20))
                    .await?;
                Ok::<_, Error>((node, script, code, output))
            }
        };
        let set_up = join_all(layout.nodes.iter().map(setup)).await;
        for r in set_up {
            let (node, script, code, output) = r?;
            logs.setup.push_str(&format!(
                "== {} ({})\n{script}\n-- exit {code}\n{output}\n",
                node.key, node.note
            ));
            if node.role == NodeRole::Impair {
                record.impairment = output
                    .lines()
                    .find_map(|l| l.strip_prefix("impairment="))
                    .map(str::to_owned);
            }
            if code != 0 {
                return Err(Error::Docker(format!(
                    "setup of {} failed (exit {code}): {}",
                    node.key,
                    output.lines().last().unwrap_or_default()
                )));
            }
        }
        // Chromium and chromedriver look names up at start; the topologies have no DNS, and a
        // query to the engine's resolver is lost (about 25 s of timeouts per start). Peers in
        // the browser image get a resolver on loopback, where nothing listens: lookups fail at
        // once, and the peers only use IP addresses.
        for (key, manifest) in [("listener", listener), ("dialer", dialer)] {
            if crate::image::Variant::from_image(&manifest.image)
                != Some(crate::image::Variant::Browser)
            {
                continue;
            }
            let Some(id) = layout.node(key).map(|n| ids[n.key].clone()) else {
                continue;
            };
            let script = NO_DNS;
            let (code, output) = engine
                .run_script(&id, script, Duration::from_secs(10))
                .await?;
            logs.setup.push_str(&format!(
                "== {key}: no DNS\n{script}\n-- exit {code}\n{output}\n"
            ));
        }
        // coturn on the WAN: STUN for srflx candidates, TURN for relays.
        let mut stun_proc = None;
        if let Some(stun) = layout.node("stun") {
            if !self.has_turnserver {
                return Err(Error::Image(
                    "coturn's turnserver is not in the image (apt-get install coturn)".into(),
                ));
            }
            let stun_ip = stun
                .ifaces
                .first()
                .map_or(topology::STUN_IP, |i| i.v4.as_str());
            let argv: Vec<String> = [
                "turnserver",
                "-n",
                "--listening-ip",
                stun_ip,
                "--relay-ip",
                stun_ip,
                "--listening-port",
                "3478",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--lt-cred-mech",
                "--user",
                "oneway:oneway",
                "--realm",
                "oneway",
                "--log-file",
                "stdout",
                "--simple-log",
                "--no-software-attribute",
                "--pidfile",
                "/tmp/turnserver.pid",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            let mut p = engine.spawn(&ids[stun.key], &argv, &[]).await?;
            // Ready when it logs its UDP listener (bounded).
            let ready = async {
                while let Some(line) = p.lines.recv().await {
                    let text = match &line {
                        Line::Stdout(l) | Line::Stderr(l) => l.clone(),
                    };
                    logs.stun.push_str(&text);
                    logs.stun.push('\n');
                    if text.contains("listener opened on") || text.contains("Total General servers")
                    {
                        return true;
                    }
                }
                false
            };
            if !tokio::time::timeout(Duration::from_secs(5), ready)
                .await
                .unwrap_or(false)
            {
                return Err(Error::Docker("coturn did not start within 5 s".into()));
            }
            stun_proc = Some(p);
        }
        // Packet capture on every router (and the impairment hop).
        let mut captures = Vec::new();
        if self.options.capture {
            if self.has_tcpdump {
                for node in layout
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.role, NodeRole::Router | NodeRole::Impair))
                {
                    let argv = vec![
                        "/bin/sh".to_owned(),
                        "-c".to_owned(),
                        // `-Z root`: the image has no `tcpdump` user to drop privileges to (tcpdump
                        // exits after writing the file header otherwise).
                        "echo $$ > /tmp/tcpdump.pid; exec tcpdump -Z root -i any -n -U -w /tmp/capture.pcap".to_owned(),
                    ];
                    let p = engine.spawn(&ids[node.key], &argv, &[]).await?;
                    captures.push((node.key, p));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            } else {
                self.note("--capture: tcpdump is not in the image; no capture".into());
            }
        }
        let timeout = scenario.timeout_secs.unwrap_or(dialer.timeout_secs);
        let mut ph = Placeholders {
            timeout_secs: timeout,
            stun: layout.stun.clone().unwrap_or_default(),
            turn: layout.turn.clone().unwrap_or_default(),
            ..Default::default()
        };
        let peer = Path::new(crate::image::PEER_PATH);
        let listener_id = layout
            .node("listener")
            .map(|n| ids[n.key].clone())
            .ok_or_else(|| Error::Docker("layout has no listener".into()))?;
        let dialer_id = layout
            .node("dialer")
            .map(|n| ids[n.key].clone())
            .ok_or_else(|| Error::Docker("layout has no dialer".into()))?;
        let (largv, lenv) = command(listener, Role::Listen, scenario, &ph, peer)?;
        let mut l = PeerProc::start(
            engine,
            listener,
            &listener_id,
            &largv,
            &lenv,
            &mut env.containers,
        )
        .await?;
        let (token, candidates) = wait_token(
            &mut l.lines,
            &mut logs.listener,
            TOKEN_WAIT + Duration::from_secs(listener.startup_secs),
            &self.cancel,
        )
        .await?;
        record.candidates = candidates.clone();
        ph.token = token;
        if let Some(kind) = layout.first_candidate {
            let first = candidates
                .first()
                .and_then(|c| candidate_ip(c))
                .ok_or_else(|| Error::Docker("the token has no candidate".into()))?;
            let rule = topology::first_candidate_rule(kind, &first);
            let (code, output) = engine
                .run_script(&dialer_id, &rule, Duration::from_secs(10))
                .await?;
            logs.setup.push_str(&format!(
                "== dialer: first candidate {first} {kind:?}\n{rule}\n-- exit {code}\n{output}\n"
            ));
            if code != 0 {
                return Err(Error::Docker(format!(
                    "first-candidate rule failed: {output}"
                )));
            }
        }
        let (dargv, denv) = command(dialer, Role::Dial, scenario, &ph, peer)?;
        let mut d = PeerProc::start(
            engine,
            dialer,
            &dialer_id,
            &dargv,
            &denv,
            &mut env.containers,
        )
        .await?;
        let limit = Duration::from_secs(timeout + dialer.startup_secs) + DIALER_GRACE;
        // An expected `listener-unreachable` cell ends as soon as that cause is certain.
        let settle = expect_unreachable(expect).then_some(EARLY_STOP_SETTLE);
        let ended = watch_dialer(&mut d, &mut l.lines, logs, limit, settle, &self.cancel).await?;
        let code = match ended {
            DialerEnd::StoppedEarly => {
                record.stopped_early = Some(format!(
                    "the listener saw nothing and the dialer tried no new address for {} s",
                    EARLY_STOP_SETTLE.as_secs()
                ));
                drain(&mut l.lines, &mut logs.listener);
                None
            }
            DialerEnd::Exited | DialerEnd::TimedOut => {
                let code = d.exit_code(engine).await;
                linger(&mut l.lines, &mut logs.listener).await;
                code
            }
        };
        if let Some(mut p) = stun_proc {
            drain(&mut p.lines, &mut logs.stun);
        }
        for (key, _) in &captures {
            let id = &ids[*key];
            let _ = engine
                .run_script(
                    id,
                    // Shell built-ins only: the image has no `cat`.
                    "read pid < /tmp/tcpdump.pid; kill $pid; sleep 0.2",
                    Duration::from_secs(5),
                )
                .await;
            match copy_out(engine, id, "/tmp/capture.pcap").await {
                Ok(bytes) => {
                    let file = dir.join(format!("{key}.pcap"));
                    if std::fs::write(&file, bytes).is_ok() {
                        record.logs.push(format!(
                            "{}/{key}.pcap",
                            dir.strip_prefix(&self.options.out).unwrap_or(dir).display()
                        ));
                    }
                }
                Err(e) => self.note(format!("capture on {key}: {e}")),
            }
        }
        Ok(self.outcome(record, logs, code, Some(layout)))
    }

    /// Reads both peers' events into the record and decides the outcome.
    fn outcome(
        &self,
        record: &mut RunRecord,
        logs: &Logs,
        code: Option<i64>,
        layout: Option<&Layout>,
    ) -> Outcome {
        let dialer_events: Vec<PeerEvent> = logs
            .dialer
            .lines()
            .filter_map(|l| l.strip_prefix("out| "))
            .filter_map(PeerEvent::parse_line)
            .collect();
        let listener_events: Vec<PeerEvent> = logs
            .listener
            .lines()
            .filter_map(|l| l.strip_prefix("out| "))
            .filter_map(PeerEvent::parse_line)
            .collect();
        let kinds = candidate_kinds(&record.candidates);
        let mut refused = None;
        let mut connected = false;
        let mut echoed = false;
        for e in &dialer_events {
            match e {
                PeerEvent::Dialing { t_ms, .. } => record.stages.decoded = Some(*t_ms),
                PeerEvent::CandidateTried { t_ms, remote } => record.tried.push(Tried {
                    t_ms: *t_ms,
                    remote: remote.clone(),
                    kind: kinds
                        .get(remote)
                        .cloned()
                        .unwrap_or_else(|| "unknown".into()),
                }),
                PeerEvent::Connected {
                    selected, stages, ..
                } => {
                    connected = true;
                    record.stages.first_check = stages.first_check;
                    record.stages.ice = stages.ice;
                    record.stages.dtls = stages.dtls;
                    record.stages.channel = stages.channel;
                    record.stages.auth = stages.auth;
                    if let Some(s) = selected {
                        record.dialer_path = Some(classify(
                            &s.local,
                            &s.remote,
                            kinds.get(&s.remote).map(String::as_str),
                            layout,
                            "dialer",
                        ));
                    }
                }
                PeerEvent::FirstEcho { t_ms, rtt_ms, .. } => {
                    echoed = true;
                    record.stages.first_echo = Some(*t_ms);
                    record.rtt_ms = Some(*rtt_ms);
                }
                PeerEvent::Refused { code, .. } | PeerEvent::Error { code, .. } => {
                    refused = Some(code.clone());
                }
                _ => {}
            }
        }
        let mut listener_saw_dialer = false;
        for e in &listener_events {
            match e {
                PeerEvent::Connected {
                    selected: Some(s), ..
                } => {
                    listener_saw_dialer = true;
                    record.listener_path =
                        Some(classify(&s.local, &s.remote, None, layout, "listener"));
                }
                PeerEvent::IceConnected { .. }
                | PeerEvent::DtlsConnected { .. }
                | PeerEvent::ChannelOpen { .. }
                | PeerEvent::Refused { .. }
                | PeerEvent::Closed { .. } => listener_saw_dialer = true,
                _ => {}
            }
        }
        // Fallback: how long after the first check the winning remote was first tried.
        if let (Some(first), Some(path)) = (record.tried.first(), &record.dialer_path)
            && let Some(win) = record.tried.iter().find(|t| t.remote == path.remote)
            && win.remote != first.remote
        {
            record.fallback_ms = Some(win.t_ms - first.t_ms);
        }
        if connected && echoed && code == Some(0) {
            let path = record
                .dialer_path
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), PathEnd::path_type);
            return Outcome::Connected { path };
        }
        let stopped_early = record.stopped_early.is_some();
        let mut cause = refused.unwrap_or_else(|| match code {
            // The dialer was still retrying checks nobody answers: what it reports when its
            // own timeout ends.
            None if stopped_early => "ice-timeout".to_owned(),
            Some(c) => format!("exit-{c}"),
            None => "dialer-hung".to_owned(),
        });
        if cause == "ice-timeout" && !listener_saw_dialer {
            cause = match layout.and_then(|l| l.listener_block.as_deref()) {
                Some(block) => format!("listener-unreachable: {block}"),
                None => "listener-unreachable".to_owned(),
            };
        }
        Outcome::Failed { cause }
    }
}

/// The `expect` verdict as text.
trait VerdictName {
    fn verdict_name(&self) -> &'static str;
}

impl VerdictName for crate::model::Expectation {
    fn verdict_name(&self) -> &'static str {
        match self.verdict {
            crate::model::ExpectedVerdict::Pass => "pass",
            crate::model::ExpectedVerdict::Fail => "fail",
        }
    }
}

fn engine_run(engine: &Engine) -> String {
    engine
        .labels()
        .get(crate::docker::LABEL_RUN)
        .cloned()
        .unwrap_or_default()
}

/// Resources of one run, removed in reverse order.
struct Env<'a> {
    engine: &'a Engine,
    prefix: String,
    networks: Vec<String>,
    containers: Vec<String>,
}

impl Env<'_> {
    /// Removes the containers (concurrently), then the networks (concurrently).
    async fn teardown(&mut self) {
        let engine = self.engine;
        let containers: Vec<String> = self.containers.drain(..).collect();
        for r in join_all(containers.iter().map(|c| engine.remove_container(c))).await {
            if let Err(e) = r {
                tracing::warn!("teardown: {e}");
            }
        }
        let networks: Vec<String> = self.networks.drain(..).collect();
        for r in join_all(networks.iter().map(|n| engine.remove_network(n))).await {
            if let Err(e) = r {
                tracing::warn!("teardown: {e}");
            }
        }
    }
}

/// Output of the processes of one run, as log text (`out| ` and `err| ` prefixes).
#[derive(Default)]
struct Logs {
    listener: String,
    dialer: String,
    stun: String,
    setup: String,
    files: Vec<(String, String)>,
}

impl Logs {
    fn finish(&mut self) {
        self.files = vec![
            ("listener.log".into(), self.listener.clone()),
            ("dialer.log".into(), self.dialer.clone()),
            ("setup.log".into(), self.setup.clone()),
        ];
        if !self.stun.is_empty() {
            self.files.push(("coturn.log".into(), self.stun.clone()));
        }
    }
}

fn push_line(log: &mut String, line: &Line) {
    match line {
        Line::Stdout(l) => {
            log.push_str("out| ");
            log.push_str(l);
        }
        Line::Stderr(l) => {
            log.push_str("err| ");
            log.push_str(l);
        }
    }
    log.push('\n');
}

fn drain(lines: &mut mpsc::UnboundedReceiver<Line>, log: &mut String) {
    while let Ok(line) = lines.try_recv() {
        push_line(log, &line);
    }
}

async fn wait_token(
    lines: &mut mpsc::UnboundedReceiver<Line>,
    log: &mut String,
    limit: Duration,
    cancel: &watch::Receiver<bool>,
) -> Result<(String, Vec<String>), Error> {
    let mut cancel = cancel.clone();
    let wait = async {
        while let Some(line) = lines.recv().await {
            push_line(log, &line);
            if let Line::Stdout(l) = &line {
                match PeerEvent::parse_line(l) {
                    Some(PeerEvent::Token {
                        token, candidates, ..
                    }) => return Ok((token, candidates)),
                    Some(PeerEvent::Error { code, message, .. }) => {
                        return Err(Error::Docker(format!("listener failed: {code}: {message}")));
                    }
                    _ => {}
                }
            }
        }
        Err(Error::Docker(
            "the listener exited before printing its token".into(),
        ))
    };
    tokio::select! {
        r = tokio::time::timeout(limit, wait) => r.unwrap_or_else(|_| Err(Error::Docker(format!("no token from the listener within {limit:?}")))),
        _ = cancel.wait_for(|c| *c) => Err(Error::Interrupted),
    }
}

async fn collect_until_end(
    lines: &mut mpsc::UnboundedReceiver<Line>,
    log: &mut String,
    limit: Duration,
    cancel: &watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut cancel = cancel.clone();
    let collect = async {
        while let Some(line) = lines.recv().await {
            push_line(log, &line);
        }
    };
    tokio::select! {
        r = tokio::time::timeout(limit, collect) => {
            if r.is_err() {
                log.push_str(&format!("-- runner: no exit within {limit:?}\n"));
            }
            Ok(())
        }
        _ = cancel.wait_for(|c| *c) => Err(Error::Interrupted),
    }
}

/// `ip:port` → candidate type, from the token event's `"type transport ip:port"` strings.
fn candidate_kinds(candidates: &[String]) -> HashMap<String, String> {
    candidates
        .iter()
        .filter_map(|c| {
            let mut parts = c.split_whitespace();
            let kind = parts.next()?;
            let _transport = parts.next()?;
            let addr = parts.next()?;
            Some((addr.to_owned(), kind.to_owned()))
        })
        .collect()
}

fn candidate_ip(candidate: &str) -> Option<String> {
    let addr = candidate.split_whitespace().nth(2)?;
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    Some(sock.ip().to_string())
}

/// Classifies a pair reported by `end` (`dialer` or `listener`): `local_ip:port` is the end's
/// own socket, `remote` the other end; `remote_kind` is the type when the remote is a token
/// candidate.
fn classify(
    local: &str,
    remote: &str,
    remote_kind: Option<&str>,
    layout: Option<&Layout>,
    end: &str,
) -> PathEnd {
    let ip_of = |a: &str| a.parse::<std::net::SocketAddr>().ok().map(|s| s.ip());
    // The remote's family, or the local one's when the remote is hidden (Chromium reports a
    // peer-reflexive remote as `(hidden):port`).
    let family = match ip_of(remote).or_else(|| ip_of(local)) {
        Some(IpAddr::V6(_)) => "ipv6",
        _ => "ipv4",
    };
    let own_host = |addr: &str| -> bool {
        let Some(ip) = ip_of(addr) else { return false };
        if ip.is_loopback() {
            return true;
        }
        layout
            .and_then(|l| l.owner_of(&ip.to_string()))
            .is_some_and(|n| n.key == end)
    };
    let other = if end == "dialer" {
        "listener"
    } else {
        "dialer"
    };
    let remote_type = match remote_kind {
        Some(k) => k.to_owned(),
        None => {
            let Some(ip) = ip_of(remote) else {
                return PathEnd {
                    local: local.into(),
                    remote: remote.into(),
                    local_type: if own_host(local) { "host" } else { "unknown" }.into(),
                    remote_type: "unknown".into(),
                    family: family.into(),
                };
            };
            let owner = layout.and_then(|l| l.owner_of(&ip.to_string()));
            match owner {
                Some(n) if n.key == other => "host".into(),
                Some(n) if n.key == "stun" => "relay".into(),
                Some(_) => "prflx".into(),
                None if ip.is_loopback() => "host".into(),
                None => "prflx".into(),
            }
        }
    };
    // The end's own relayed address (a TURN allocation on coturn) is its relay candidate.
    let own_relay = ip_of(local)
        .and_then(|ip| layout.and_then(|l| l.owner_of(&ip.to_string())))
        .is_some_and(|n| n.key == "stun");
    let local_type = if own_host(local) {
        "host"
    } else if own_relay {
        "relay"
    } else {
        "unknown"
    };
    PathEnd {
        local: local.into(),
        remote: remote.into(),
        local_type: local_type.into(),
        remote_type,
        family: family.into(),
    }
}

/// The interface holding `ip`, from `ip -o addr show` output.
fn interface_of(addrs: &str, ip: &str) -> Option<String> {
    addrs.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let _index = parts.next()?;
        let name = parts.next()?;
        let _family = parts.next()?;
        let cidr = parts.next()?;
        (cidr.split('/').next() == Some(ip))
            .then(|| name.split('@').next().unwrap_or(name).to_owned())
    })
}

/// Builds a peer's argv and env from its manifest.
fn command(
    manifest: &ImplManifest,
    role: Role,
    scenario: &Scenario,
    ph: &Placeholders,
    peer_binary: &Path,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let cmd = match role {
        Role::Listen => manifest.listen.as_ref(),
        Role::Dial => manifest.dial.as_ref(),
    }
    .ok_or_else(|| Error::Invalid {
        file: manifest.id.clone(),
        message: format!("no command for {role:?}"),
    })?;
    let mut argv: Vec<String> = cmd.argv.iter().map(|a| ph.fill(a)).collect();
    if role == Role::Listen {
        let mut options = scenario.listener_options.clone();
        if scenario.loopback {
            options.push("loopback".into());
        }
        for o in &options {
            let extra = cmd.options.get(o).ok_or_else(|| Error::Invalid {
                file: manifest.id.clone(),
                message: format!("no listener option `{o}`"),
            })?;
            argv.extend(extra.iter().map(|a| ph.fill(a)));
        }
    } else {
        // A dialer option the manifest does not map is left out: the scenario's `[[unless]]`
        // on the capability expects the outcome without it.
        for o in &scenario.dialer_options {
            if let Some(extra) = cmd.options.get(o) {
                argv.extend(extra.iter().map(|a| ph.fill(a)));
            }
        }
    }
    if crate::image::Variant::from_image(&manifest.image).is_some()
        && argv.first().is_some_and(|a| a == "oneway")
    {
        argv[0] = peer_binary.display().to_string();
    }
    let mut env: Vec<String> = cmd
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", ph.fill(v)))
        .collect();
    env.push(format!(
        "ONEWAY_ROLE={}",
        if role == Role::Listen {
            "listen"
        } else {
            "dial"
        }
    ));
    if role == Role::Dial {
        env.push(format!("ONEWAY_TOKEN={}", ph.token));
    }
    env.push(format!("ONEWAY_TIMEOUT_SECS={}", ph.timeout_secs));
    Ok((argv, env))
}

/// The image of each node of a cell: the peers' host containers run their implementation's
/// variant (`base` or `browser`), every other node the base image.
struct NodeImages {
    base: String,
    listener: String,
    dialer: String,
}

impl NodeImages {
    fn of(&self, role: NodeRole) -> &str {
        match role {
            NodeRole::Listener => &self.listener,
            NodeRole::Dialer => &self.dialer,
            _ => &self.base,
        }
    }
}

/// A peer process: an exec in its host container (`image = "base"` or `"browser"`), or its own
/// container sharing the host container's network namespace.
struct PeerProc {
    lines: mpsc::UnboundedReceiver<Line>,
    exec: Option<String>,
    container: Option<String>,
}

impl PeerProc {
    async fn start(
        engine: &Engine,
        manifest: &ImplManifest,
        host: &str,
        argv: &[String],
        env: &[String],
        containers: &mut Vec<String>,
    ) -> Result<PeerProc, Error> {
        if crate::image::Variant::from_image(&manifest.image).is_some() {
            let e = engine.spawn(host, argv, env).await?;
            Ok(PeerProc {
                lines: e.lines,
                exec: Some(e.id),
                container: None,
            })
        } else {
            let (id, lines) = engine
                .spawn_container(&manifest.image, host, argv, env)
                .await?;
            containers.push(id.clone());
            Ok(PeerProc {
                lines,
                exec: None,
                container: Some(id),
            })
        }
    }

    async fn exit_code(&self, engine: &Engine) -> Option<i64> {
        for _ in 0..50 {
            let code = match (&self.exec, &self.container) {
                (Some(e), _) => engine.exit_code(e).await.ok().flatten(),
                (_, Some(c)) => engine.container_exit_code(c).await.ok().flatten(),
                _ => None,
            };
            if code.is_some() {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// A loopback peer on the host.
struct HostProc {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<Line>,
}

impl HostProc {
    fn spawn(argv: &[String], env: &[String]) -> Result<HostProc, Error> {
        use tokio::io::AsyncBufReadExt as _;
        let (program, args) = argv.split_first().ok_or_else(|| Error::Invalid {
            file: "manifest".into(),
            message: "empty argv".into(),
        })?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
        let mut child = cmd.spawn().map_err(|e| Error::Io {
            path: PathBuf::from(program),
            source: e,
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(Line::Stdout(l));
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    let _ = tx.send(Line::Stderr(l));
                }
            });
        }
        Ok(HostProc { child, lines: rx })
    }
}

/// Copies one file out of a container (through the archive API).
async fn copy_out(engine: &Engine, container: &str, path: &str) -> Result<Vec<u8>, Error> {
    let bytes = engine.download(container, path).await?;
    let mut archive = tar::Archive::new(bytes.as_slice());
    let entries = archive
        .entries()
        .map_err(|e| Error::Docker(format!("archive: {e}")))?;
    let Some(entry) = entries.into_iter().next() else {
        return Err(Error::Docker(format!("{path}: empty archive")));
    };
    let mut entry = entry.map_err(|e| Error::Docker(format!("archive: {e}")))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out)
        .map_err(|e| Error::Docker(format!("archive: {e}")))?;
    Ok(out)
}

/// A file-name-safe form of a cell name.
pub fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_local_address_makes_the_path_relay() {
        let end = |local: &str, remote: &str| PathEnd {
            local: "10.0.0.2:1".into(),
            remote: "198.51.100.10:2".into(),
            local_type: local.into(),
            remote_type: remote.into(),
            family: "ipv4".into(),
        };
        assert_eq!(end("relay", "host").path_type(), "relay");
        assert_eq!(end("host", "relay").path_type(), "relay");
        assert_eq!(end("host", "srflx").path_type(), "srflx");
    }

    #[test]
    fn interface_lookup_parses_ip_o_addr() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\n45: eth1@if46    inet 10.1.0.254/24 brd 10.1.0.255 scope global eth1\n";
        assert_eq!(interface_of(out, "10.1.0.254").as_deref(), Some("eth1"));
        assert_eq!(interface_of(out, "10.9.9.9"), None);
    }

    #[test]
    fn candidate_strings_map_to_kinds() {
        let k = candidate_kinds(&[
            "host udp 10.2.0.10:5000".into(),
            "srflx udp 198.51.100.2:5000".into(),
        ]);
        assert_eq!(k["198.51.100.2:5000"], "srflx");
        assert_eq!(
            candidate_ip("host udp [2001:db8:1::10]:7").as_deref(),
            Some("2001:db8:1::10")
        );
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("str0m x str0m (same-lan)"), "str0m-x-str0m-same-lan");
    }
}
