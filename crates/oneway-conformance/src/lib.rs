//! `oneway conformance`: runs any implementation, from its manifest (`impls/*.toml`, the
//! contract of the suite: `spec/peer-contract.md`, `docs/implementers.md`), in both roles
//! against a reference peer that misbehaves on purpose, and judges each check against the
//! spec section it cites, at its MUST/SHOULD level.
//!
//! ```text
//!  impls/<id>.toml ── process (loopback, the manifest's argv) ──┐
//!                                                               ├─ checks ─ ConformanceReport
//!  reference peer (in this process, on loopback): ──────────────┘   Markdown, JSON, JUnit
//!    oneway-endpoint's Listener / dial on str0m, or on webrtc-rs with a violation switched
//!    on; the dialer's dangerous knobs; forged tokens; raw UDP (crafted STUN, garbage)
//! ```
//!
//! - [`checks`]: the catalogue (id, role, spec section, level).
//! - [`reference`]: the misbehaving reference peer.
//! - [`process`]: the implementation under test as a host process, read through its events.
//! - [`report`]: the report and its three renderings.
//!
//! The implementation runs as a host process on loopback, as in the suite's loopback cells: its
//! listener with the manifest's `loopback` option (and `single_use` or `ttl` for the checks
//! that need them), its dialer with `{token}` and `{timeout_secs}`. What it does is read only
//! from its peer-contract events and exit code, and from what reaches the reference peer.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
mod dialer;
mod listener;
pub mod process;
pub mod reference;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oneway_scenario::model::{ImplManifest, Role};
use oneway_scenario::plan::Placeholders;

use checks::{CHECKS, Check};
use process::Peer;
use report::{CheckResult, ConformanceReport, Verdict};

/// What can stop a conformance run (a failing check is a result, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A manifest could not be read or a command line not built.
    #[error(transparent)]
    Manifest(#[from] oneway_scenario::Error),
    /// The harness itself failed (a process could not start, a log not be written).
    #[error("{0}")]
    Harness(String),
    /// `--check` named no known check.
    #[error("no check {0:?} (see `oneway conformance --list`)")]
    UnknownCheck(String),
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `oneway` binary (`argv[0] = "oneway"` of a `base` or `browser` manifest).
    pub peer_binary: PathBuf,
    /// Where each check's logs go (`<out>/<check>/…`).
    pub out: PathBuf,
    /// Only these checks (ids); empty: all.
    pub only: Vec<String>,
}

/// A check's verdict and what was observed, with the logs to keep.
pub(crate) struct Judged {
    pub(crate) verdict: Verdict,
    pub(crate) observed: String,
    pub(crate) logs: Vec<(&'static str, String)>,
}

impl Judged {
    pub(crate) fn new(verdict: Verdict, observed: impl Into<String>) -> Self {
        Judged {
            verdict,
            observed: observed.into(),
            logs: Vec::new(),
        }
    }

    /// Pass when `ok`, fail otherwise.
    pub(crate) fn pass_if(ok: bool, observed: impl Into<String>) -> Self {
        Judged::new(if ok { Verdict::Pass } else { Verdict::Fail }, observed)
    }

    pub(crate) fn with_log(mut self, name: &'static str, peer: &Peer) -> Self {
        self.logs.push((name, peer.log()));
        self
    }
}

/// The implementation under test and the run's options, shared by every check.
pub(crate) struct Ctx<'a> {
    pub(crate) manifest: &'a ImplManifest,
    pub(crate) options: &'a Options,
}

impl Ctx<'_> {
    /// Whether the listener's manifest maps listener option `option`.
    pub(crate) fn maps(&self, option: &str) -> bool {
        self.manifest
            .listen
            .as_ref()
            .is_some_and(|c| c.options.contains_key(option))
    }

    /// Starts the implementation's listener on loopback with `extra` options; its process and
    /// token. `Err` is the judgement when it cannot start (not applicable for an unmapped
    /// extra option, an error otherwise).
    pub(crate) async fn listener(
        &self,
        extra: &[&str],
        ph: Placeholders,
    ) -> Result<(Peer, oneway_token::Token), Judged> {
        for option in std::iter::once(&"loopback").chain(extra) {
            if !self.maps(option) {
                let verdict = if *option == "loopback" {
                    Verdict::Error
                } else {
                    Verdict::NotApplicable
                };
                return Err(Judged::new(
                    verdict,
                    format!("the manifest maps no `{option}` listener option"),
                ));
            }
        }
        let options: Vec<String> = std::iter::once("loopback")
            .chain(extra.iter().copied())
            .map(str::to_owned)
            .collect();
        let mut peer = Peer::spawn(
            self.manifest,
            Role::Listen,
            &options,
            &ph,
            &self.options.peer_binary,
        )
        .map_err(|e| Judged::new(Verdict::Error, e.to_string()))?;
        let wait = process::TOKEN_WAIT + Duration::from_secs(self.manifest.startup_secs);
        let token = peer
            .wait_for(wait, |e| {
                matches!(
                    e,
                    oneway_core::PeerEvent::Token { .. } | oneway_core::PeerEvent::Error { .. }
                )
            })
            .await;
        match token {
            Some(oneway_core::PeerEvent::Token { token, .. }) => {
                match oneway_token::Token::from_text(&token) {
                    Ok(t) => Ok((peer, t)),
                    Err(e) => {
                        peer.stop().await;
                        Err(Judged::new(
                            Verdict::Fail,
                            format!("its token does not decode: {}: {e}", e.code()),
                        )
                        .with_log("listener", &peer))
                    }
                }
            }
            other => {
                peer.stop().await;
                Err(Judged::new(
                    Verdict::Error,
                    match other {
                        Some(oneway_core::PeerEvent::Error { code, message, .. }) => {
                            format!("the listener failed to start: {code}: {message}")
                        }
                        _ => format!("no `token` event within {wait:?}"),
                    },
                )
                .with_log("listener", &peer))
            }
        }
    }

    /// Runs the implementation's dialer on `token` (text) with `timeout_secs`, until it
    /// exits (or its timeout, start-up and a grace period pass); the finished process and
    /// its exit code.
    pub(crate) async fn dialer(
        &self,
        token: &str,
        timeout_secs: u64,
    ) -> Result<(Peer, Option<i32>), Judged> {
        let ph = Placeholders {
            token: token.to_owned(),
            timeout_secs,
            ..Default::default()
        };
        let mut peer = Peer::spawn(
            self.manifest,
            Role::Dial,
            &[],
            &ph,
            &self.options.peer_binary,
        )
        .map_err(|e| Judged::new(Verdict::Error, e.to_string()))?;
        let limit =
            Duration::from_secs(timeout_secs + self.manifest.startup_secs) + process::DIALER_GRACE;
        let code = peer.finish(limit).await;
        Ok((peer, code))
    }
}

/// Runs every selected check of `manifest`; the report.
pub async fn run(manifest: &ImplManifest, options: &Options) -> Result<ConformanceReport, Error> {
    if let Some(unknown) = options.only.iter().find(|id| checks::find(id).is_none()) {
        return Err(Error::UnknownCheck(unknown.clone()));
    }
    let started = Instant::now();
    let ctx = Ctx { manifest, options };
    let mut results = Vec::new();
    for check in CHECKS {
        if !options.only.is_empty() && !options.only.iter().any(|id| id == check.id) {
            continue;
        }
        tracing::info!(implementation = %manifest.id, check = check.id, "running");
        let t = Instant::now();
        let judged = if !manifest.supports(check.role) {
            Judged::new(
                Verdict::NotApplicable,
                format!(
                    "the manifest lists no `{}` role",
                    match check.role {
                        Role::Listen => "listen",
                        Role::Dial => "dial",
                    }
                ),
            )
        } else {
            run_check(&ctx, check).await
        };
        let mut result = CheckResult::new(check, judged.verdict, judged.observed);
        result.seconds = t.elapsed().as_secs_f64();
        for (name, text) in judged.logs {
            let dir = options.out.join(check.id);
            let path = dir.join(format!("{name}.log"));
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&path, text))
                .map_err(|e| Error::Harness(format!("{}: {e}", path.display())))?;
            result.logs.push(format!("{}/{name}.log", check.id));
        }
        tracing::info!(
            implementation = %manifest.id,
            check = check.id,
            verdict = result.verdict.name(),
            observed = %result.observed,
            "done"
        );
        results.push(result);
    }
    Ok(ConformanceReport {
        format: 1,
        implementation: manifest.id.clone(),
        name: manifest.name.clone(),
        roles: manifest.roles.clone(),
        seconds: started.elapsed().as_secs_f64(),
        results,
    })
}

async fn run_check(ctx: &Ctx<'_>, check: &Check) -> Judged {
    match check.id {
        "listener-refuses-wrong-secret" => listener::wrong_secret(ctx).await,
        "listener-refuses-wrong-proof" => listener::wrong_proof(ctx, false).await,
        "listener-reports-refusals" => listener::wrong_proof(ctx, true).await,
        "listener-refuses-replayed-single-use-token" => listener::replayed_single_use(ctx).await,
        "listener-refuses-expired-token" => listener::expired(ctx).await,
        "listener-ignores-foreign-ufrag" => listener::foreign_ufrag(ctx).await,
        "listener-no-state-after-vanished-dialer" => listener::vanished_dialer(ctx).await,
        "listener-serves-during-garbage" => listener::garbage(ctx).await,
        "listener-refuses-renegotiation-before-proof" => {
            listener::renegotiation_before_proof(ctx).await
        }
        "dialer-refuses-wrong-fingerprint" => dialer::wrong_fingerprint(ctx).await,
        "dialer-refuses-listener-without-proof" => dialer::listener_never_proves(ctx).await,
        "dialer-refuses-proof-for-another-token" => dialer::proof_for_another_token(ctx).await,
        "dialer-refuses-expired-token" => dialer::expired(ctx).await,
        "dialer-names-malformed-token" => dialer::malformed(ctx).await,
        "dialer-falls-back-in-token-order" => dialer::fallback(ctx).await,
        "dialer-reports-refusal-cause" => dialer::refusal_cause(ctx).await,
        other => Judged::new(Verdict::Error, format!("no procedure for check {other}")),
    }
}

/// Unix time, seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
