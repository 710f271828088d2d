//! Loopback cells: both peers as processes on the host.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::Error;
use crate::docker::Line;
use crate::model::{ImplManifest, ReplyHandOver, Role, Scenario};
use crate::plan::Placeholders;
use crate::verdict::Outcome;

use super::command::command;
use super::reply::{ReplyChannel, ReplySink};
use super::wait::{
    DIALER_GRACE, DialerEnd, LISTENER_LINGER, Logs, TOKEN_WAIT, drain, wait_token, watch_dialer,
};
use super::{RunRecord, Runner};

impl Runner<'_> {
    /// Runs a loopback cell with host processes.
    pub(super) async fn loopback(
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
            dialer,
            scenario,
            &ph,
            &self.options.peer_binary,
        )?;
        let how = listener.reply_hand_over();
        let mut l = HostProc::spawn(&largv, &lenv, how == Some(&ReplyHandOver::Stdin))?;
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
            let (dargv, denv) = command(
                dialer,
                Role::Dial,
                listener,
                scenario,
                &ph,
                &self.options.peer_binary,
            )?;
            let sink = match (how, l.child.stdin.take()) {
                (Some(ReplyHandOver::Stdin), Some(stdin)) => ReplySink::Stdin(Box::new(stdin)),
                (Some(ReplyHandOver::Command(_)), _) => ReplySink::Host,
                _ => ReplySink::None,
            };
            let mut reply = ReplyChannel::new(how, sink);
            let mut d = HostProc::spawn(&dargv, &denv, false)?;
            let limit = Duration::from_secs(timeout + dialer.startup_secs) + DIALER_GRACE;
            let finished = watch_dialer(
                &mut d.lines,
                &mut l.lines,
                logs,
                &mut reply,
                limit,
                None,
                &self.cancel,
            )
            .await;
            if !matches!(finished, Ok(DialerEnd::Exited)) {
                let _ = d.child.kill().await;
            }
            let code = tokio::time::timeout(Duration::from_secs(5), d.child.wait())
                .await
                .ok()
                .and_then(|r| r.ok())
                .and_then(|s| s.code());
            tokio::time::sleep(LISTENER_LINGER).await;
            drain(&mut l.lines, &mut logs.listener);
            finished?;
            record.reply = reply.facts();
            Ok(self.outcome(record, logs, code.map(i64::from), None))
        }
        .await;
        let _ = l.child.kill().await;
        drain(&mut l.lines, &mut logs.listener);
        result
    }
}

/// A loopback peer on the host.
struct HostProc {
    child: tokio::process::Child,
    lines: mpsc::UnboundedReceiver<Line>,
}

impl HostProc {
    /// Starts `argv`; its standard input is a pipe when `stdin` (taken by the reply
    /// hand-over), else null.
    fn spawn(argv: &[String], env: &[String], stdin: bool) -> Result<HostProc, Error> {
        use tokio::io::AsyncBufReadExt as _;
        let (program, args) = argv.split_first().ok_or_else(|| Error::Invalid {
            file: "manifest".into(),
            message: "empty argv".into(),
        })?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(if stdin {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
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
