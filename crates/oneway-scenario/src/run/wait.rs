//! Reading the peers' output: until the listener's token, until the dialer exits (or times out,
//! or is stopped early), and the listener's last lines; the per-run log text.

use std::time::Duration;

use oneway_core::PeerEvent;
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::docker::Line;
use crate::model::{Expectation, ExpectedVerdict};

use super::reply::ReplyChannel;

/// How long the listener may take to print its token (plus its manifest's startup time).
pub(super) const TOKEN_WAIT: Duration = Duration::from_secs(15);
/// Extra time over the dialer's own timeout before the runner gives up on it.
pub(super) const DIALER_GRACE: Duration = Duration::from_secs(10);
/// How long the listener may take to print its `connected` after the dialer exits (the wait
/// ends at its `closed`, `refused` or `error`).
pub(super) const LISTENER_LINGER: Duration = Duration::from_millis(700);
/// A cell that expects `listener-unreachable` (or `reply-unreachable`) ends once the listener has reported nothing
/// from the dialer and the dialer has tried no new remote address for this long: its checks
/// to every address in the token (and their retransmissions over this window) were all lost
/// on the way to the listener, and the topology's rules do not change, so the rest of the
/// dialer's timeout cannot change the outcome.
pub(super) const EARLY_STOP_SETTLE: Duration = Duration::from_secs(3);

/// Whether the expectation is a failure because nothing reaches the listener, one-way
/// (`listener-unreachable…`) or even after it took the dialer's reply code
/// (`reply-unreachable…`: the code comes within about a second, well inside the settle window).
pub(super) fn expect_unreachable(expect: &Expectation) -> bool {
    expect.verdict == ExpectedVerdict::Fail
        && expect.cause.as_deref().is_some_and(|c| {
            c.starts_with("listener-unreachable") || c.starts_with("reply-unreachable")
        })
}

/// How the wait for the dialer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DialerEnd {
    /// Its output ended (it exited).
    Exited,
    /// It outlived its timeout plus [`DIALER_GRACE`].
    TimedOut,
    /// The runner stopped waiting: see [`EARLY_STOP_SETTLE`].
    StoppedEarly,
}

/// Whether a listener event shows that something from the dialer reached it.
pub(super) fn listener_saw(line: &Line) -> bool {
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
/// meanwhile; hands the dialer's first reply code to the listener through `reply` at once;
/// with `settle`, stops early as [`EARLY_STOP_SETTLE`] describes.
#[allow(clippy::too_many_arguments)]
pub(super) async fn watch_dialer(
    dialer: &mut mpsc::UnboundedReceiver<Line>,
    listener: &mut mpsc::UnboundedReceiver<Line>,
    logs: &mut Logs,
    reply: &mut ReplyChannel<'_>,
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
            // The reply path keeps the run open while its code is pending or just handed over.
            (Some(s), Some(t)) if !saw => {
                let quiet: tokio::time::Instant = t + s;
                Some(match reply.open_until() {
                    Some(open) => quiet.max(tokio::time::Instant::from_std(open)),
                    None => quiet,
                })
            }
            _ => None,
        };
        let mut wake = settled.map_or(deadline, |s: tokio::time::Instant| s.min(deadline));
        if let Some(due) = reply.due() {
            wake = wake.min(tokio::time::Instant::from_std(due));
        }
        tokio::select! {
            line = dialer.recv() => {
                let Some(line) = line else { return Ok(DialerEnd::Exited) };
                push_line(&mut logs.dialer, &line);
                reply.on_dialer_line(&line, &mut logs.dialer).await;
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
                if reply.due().is_some_and(|d| d <= std::time::Instant::now()) {
                    reply.hand_over_due(&mut logs.dialer).await;
                    continue;
                }
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
pub(super) async fn linger(lines: &mut mpsc::UnboundedReceiver<Line>, log: &mut String) {
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
/// Output of the processes of one run, as log text (`out| ` and `err| ` prefixes).
#[derive(Default)]
pub(super) struct Logs {
    pub(super) listener: String,
    pub(super) dialer: String,
    pub(super) stun: String,
    pub(super) setup: String,
    pub(super) files: Vec<(String, String)>,
}

impl Logs {
    pub(super) fn finish(&mut self) {
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

pub(super) fn push_line(log: &mut String, line: &Line) {
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

pub(super) fn drain(lines: &mut mpsc::UnboundedReceiver<Line>, log: &mut String) {
    while let Ok(line) = lines.try_recv() {
        push_line(log, &line);
    }
}

pub(super) async fn wait_token(
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
