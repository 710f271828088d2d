//! The runner as the out-of-band channel of the reply path (`spec/handshake.md` §11): the
//! dialer's first `reply-code` event of a run is handed to the listener the way the listener's
//! manifest says (`reply = "stdin"` or an argv template, [`ReplyHandOver`]), [`CARRY_DELAY`]
//! after the dialer showed it, unless the dialer connected meanwhile. The delay stands in for
//! the person, who carries a code only when the direct attempt did not connect at once; without
//! it the two paths would race in every cell where one-way works, and the matrix could not show
//! that one-way works on its own. The time a person really takes is not included.
//!
//! [`ReplyRelay`] decides, without IO, what to hand over and when (the first code of a run,
//! exactly once; later codes are left to the record). [`ReplySink`] carries it out, bounded by
//! [`HAND_OVER_LIMIT`]. The record keeps the hand-over's facts; `outcome` adds the dialer's and
//! the listener's events from the logs.

use std::time::{Duration, Instant};

use oneway_core::PeerEvent;
use tokio::io::AsyncWriteExt as _;

use crate::docker::{Engine, Line, Stdin};
use crate::model::ReplyHandOver;

use super::ReplyRecord;

/// How long one hand-over may take (the write to standard input, or the command).
pub(super) const HAND_OVER_LIMIT: Duration = Duration::from_secs(10);

/// How long after the dialer showed its code the runner hands it over (when the dialer has not
/// connected by then).
pub const CARRY_DELAY: Duration = Duration::from_secs(1);

/// How long a run stays open after a hand-over before the runner may stop it early (the
/// listener's checks and the dialer's answer take a few round trips).
const AFTER_HAND_OVER: Duration = Duration::from_secs(5);

/// The longest reply code the runner hands over (a reply code is at most a few hundred
/// characters; anything longer is not one).
const MAX_CODE: usize = 4096;

/// What to do with a reply code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HandOver {
    /// Write these bytes (the code and `\n`) to the listener's standard input.
    Stdin(Vec<u8>),
    /// Run this argument vector (the template with `{reply}` filled) in the listener's
    /// container.
    Command(Vec<String>),
}

/// Decides what to hand over: the run's first `reply-code`, once, when the listener takes
/// codes. Pure; fed the dialer's output lines in order.
#[derive(Debug)]
pub(super) struct ReplyRelay {
    how: Option<ReplyHandOver>,
    /// The first code was seen (handed over or not).
    seen: bool,
}

impl ReplyRelay {
    /// A relay for a listener that takes codes as `how` (`None`: it takes none).
    pub(super) fn new(how: Option<&ReplyHandOver>) -> ReplyRelay {
        ReplyRelay {
            how: how.cloned(),
            seen: false,
        }
    }

    /// One line of the dialer's output. Returns what to hand over when it is the run's first
    /// `reply-code` and the listener takes codes: `Ok(None)` for every other line (later codes
    /// included); `Err` when the first code cannot be handed over as it is (it would not be
    /// one line, or is too long to be a code).
    pub(super) fn on_dialer_line(&mut self, line: &Line) -> Result<Option<HandOver>, String> {
        let Line::Stdout(l) = line else {
            return Ok(None);
        };
        let Some(PeerEvent::ReplyCode { reply, .. }) = PeerEvent::parse_line(l) else {
            return Ok(None);
        };
        if self.seen {
            return Ok(None);
        }
        self.seen = true;
        let Some(how) = &self.how else {
            return Ok(None);
        };
        if reply.is_empty()
            || reply.len() > MAX_CODE
            || reply.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(format!(
                "not handed over: the reply code is empty, longer than {MAX_CODE} bytes or holds white space or control characters ({} bytes)",
                reply.len()
            ));
        }
        Ok(Some(match how {
            ReplyHandOver::Stdin => HandOver::Stdin(format!("{reply}\n").into_bytes()),
            ReplyHandOver::Command(argv) => {
                HandOver::Command(argv.iter().map(|a| a.replace("{reply}", &reply)).collect())
            }
        }))
    }

    /// The `hand_over` name for the record.
    pub(super) fn hand_over_name(&self) -> &'static str {
        self.how.as_ref().map_or("none", ReplyHandOver::name)
    }
}

/// Where a hand-over goes.
pub(super) enum ReplySink<'a> {
    /// The listener takes no reply codes.
    None,
    /// The listener's standard input (an attached exec or container, or a host child's pipe).
    Stdin(Box<dyn tokio::io::AsyncWrite + Send + Unpin + 'a>),
    /// Commands run in this container.
    Container {
        /// The engine.
        engine: &'a Engine,
        /// The listener's container (its host container, or its own).
        id: String,
    },
    /// Commands run on the host (loopback cells).
    Host,
}

impl<'a> ReplySink<'a> {
    /// A sink for an attached standard input.
    pub(super) fn stdin(stdin: Stdin) -> ReplySink<'a> {
        ReplySink::Stdin(Box::new(stdin.0))
    }

    /// Carries out a hand-over, bounded by [`HAND_OVER_LIMIT`]. Returns the command's exit
    /// status (`None` for standard input), or why it failed.
    pub(super) async fn deliver(&mut self, h: &HandOver) -> Result<Option<i64>, String> {
        let work = async {
            match (self, h) {
                (ReplySink::Stdin(w), HandOver::Stdin(bytes)) => {
                    w.write_all(bytes)
                        .await
                        .map_err(|e| format!("writing to the listener's standard input: {e}"))?;
                    w.flush()
                        .await
                        .map_err(|e| format!("flushing the listener's standard input: {e}"))?;
                    Ok(None)
                }
                (ReplySink::Container { engine, id }, HandOver::Command(argv)) => engine
                    .run_argv(id, argv, HAND_OVER_LIMIT)
                    .await
                    .map(|(code, _)| Some(code))
                    .map_err(|e| e.to_string()),
                (ReplySink::Host, HandOver::Command(argv)) => {
                    let (program, args) = argv
                        .split_first()
                        .ok_or_else(|| "empty hand-over command".to_owned())?;
                    let status = tokio::process::Command::new(program)
                        .args(args)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .status()
                        .await
                        .map_err(|e| format!("{program}: {e}"))?;
                    Ok(status.code().map(i64::from))
                }
                (ReplySink::None, _) => Err("the listener takes no reply codes".to_owned()),
                _ => Err("the listener's process has no standard input attached".to_owned()),
            }
        };
        tokio::time::timeout(HAND_OVER_LIMIT, work)
            .await
            .unwrap_or_else(|_| Err(format!("no hand-over within {HAND_OVER_LIMIT:?}")))
    }
}

/// The relay, its sink and the clock of one run: fed the dialer's lines while the runner
/// watches it, it hands the first code over and keeps the facts for the record.
pub(super) struct ReplyChannel<'a> {
    relay: ReplyRelay,
    sink: ReplySink<'a>,
    dial_start: Instant,
    facts: Option<ReplyRecord>,
    /// A code waiting for [`CARRY_DELAY`], and when it is due.
    pending: Option<(HandOver, Instant)>,
    /// Until when the run stays open for the reply path (see [`ReplyChannel::open_until`]).
    open_until: Option<Instant>,
}

impl<'a> ReplyChannel<'a> {
    /// A channel for a listener that takes codes as `how`, through `sink`; its clock starts
    /// now (call it when the dialer is started).
    pub(super) fn new(how: Option<&ReplyHandOver>, sink: ReplySink<'a>) -> ReplyChannel<'a> {
        ReplyChannel {
            relay: ReplyRelay::new(how),
            sink,
            dial_start: Instant::now(),
            facts: None,
            pending: None,
            open_until: None,
        }
    }

    /// When a pending code is due to be handed over ([`ReplyChannel::hand_over_due`]).
    pub(super) fn due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, at)| *at)
    }

    /// Until when the runner must not stop the run early: a code is pending, or was handed
    /// over less than [`AFTER_HAND_OVER`] ago.
    pub(super) fn open_until(&self) -> Option<Instant> {
        self.open_until
    }

    /// Hands a pending code over if it is due (bounded by [`HAND_OVER_LIMIT`]).
    pub(super) async fn hand_over_due(&mut self, log: &mut String) {
        let Some((h, at)) = self.pending.take() else {
            return;
        };
        if Instant::now() < at {
            self.pending = Some((h, at));
            return;
        }
        let mut facts = ReplyRecord {
            hand_over: self.relay.hand_over_name().to_owned(),
            ..ReplyRecord::default()
        };
        let result = self.sink.deliver(&h).await;
        facts.handed_over_ms = Some(self.dial_start.elapsed().as_secs_f64() * 1000.0);
        self.open_until = Some(Instant::now() + AFTER_HAND_OVER);
        match result {
            Ok(code) => facts.command_exit = code,
            Err(e) => facts.hand_over_error = Some(e),
        }
        self.note(&facts, log);
        self.facts = Some(facts);
    }

    fn note(&self, facts: &ReplyRecord, log: &mut String) {
        log.push_str(&format!(
            "-- runner: reply code handed over by {}{}{}\n",
            facts.hand_over,
            facts
                .handed_over_ms
                .map(|t| format!(" at {t:.0} ms"))
                .unwrap_or_default(),
            facts
                .hand_over_error
                .as_deref()
                .map(|e| format!(" (failed: {e})"))
                .unwrap_or_default()
        ));
    }

    /// One line of the dialer's output: the first reply code becomes pending for
    /// [`CARRY_DELAY`]; a `connected` before it is due cancels it. Appends a runner note to
    /// `log` when a code could not be taken, or was not needed.
    pub(super) async fn on_dialer_line(&mut self, line: &Line, log: &mut String) {
        if let Line::Stdout(l) = line
            && let Some(PeerEvent::Connected { .. }) = PeerEvent::parse_line(l)
            && self.pending.take().is_some()
        {
            log.push_str("-- runner: reply code not handed over: the dialer connected first\n");
            self.open_until = None;
            self.facts = Some(ReplyRecord {
                hand_over: self.relay.hand_over_name().to_owned(),
                not_needed: true,
                ..ReplyRecord::default()
            });
            return;
        }
        match self.relay.on_dialer_line(line) {
            Ok(None) => {}
            Err(e) => {
                let facts = ReplyRecord {
                    hand_over: self.relay.hand_over_name().to_owned(),
                    hand_over_error: Some(e),
                    ..ReplyRecord::default()
                };
                self.note(&facts, log);
                self.facts = Some(facts);
            }
            Ok(Some(h)) => {
                let due = Instant::now() + CARRY_DELAY;
                self.pending = Some((h, due));
                self.open_until = Some(due + AFTER_HAND_OVER);
            }
        }
    }

    /// The hand-over's facts (`None` when no code was handed over or refused for its form; a
    /// code shown to a listener that takes none is recorded by `outcome` from the logs). The
    /// channel, and with it the listener's standard input, stays open until it is dropped.
    pub(super) fn facts(&self) -> Option<ReplyRecord> {
        self.facts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_line(code: &str) -> Line {
        Line::Stdout(format!(
            r#"{{"event":"reply-code","t_ms":812.5,"reply":"{code}","candidates":["srflx udp 198.51.100.20:4000"]}}"#
        ))
    }

    #[test]
    fn the_first_code_goes_to_stdin_once() {
        let mut r = ReplyRelay::new(Some(&ReplyHandOver::Stdin));
        let other = Line::Stdout(r#"{"event":"dialing","t_ms":1,"candidates":[]}"#.into());
        assert_eq!(r.on_dialer_line(&other), Ok(None));
        assert_eq!(
            r.on_dialer_line(&Line::Stderr("owr2.notjson".into())),
            Ok(None)
        );
        assert_eq!(
            r.on_dialer_line(&code_line("owr2.AAAA")),
            Ok(Some(HandOver::Stdin(b"owr2.AAAA\n".to_vec())))
        );
        // A second code of the same run is not handed over.
        assert_eq!(r.on_dialer_line(&code_line("owr2.BBBB")), Ok(None));
        assert_eq!(r.hand_over_name(), "stdin");
    }

    #[test]
    fn a_command_template_gets_the_code() {
        let how = ReplyHandOver::Command(vec![
            "/usr/bin/peer".into(),
            "answer".into(),
            "--code={reply}".into(),
        ]);
        let mut r = ReplyRelay::new(Some(&how));
        assert_eq!(
            r.on_dialer_line(&code_line("owr1.xyz")),
            Ok(Some(HandOver::Command(vec![
                "/usr/bin/peer".into(),
                "answer".into(),
                "--code=owr1.xyz".into()
            ])))
        );
        assert_eq!(r.hand_over_name(), "command");
    }

    #[test]
    fn a_listener_without_hand_over_gets_nothing() {
        let mut r = ReplyRelay::new(None);
        assert_eq!(r.on_dialer_line(&code_line("owr2.AAAA")), Ok(None));
        assert_eq!(r.hand_over_name(), "none");
    }

    #[test]
    fn a_code_that_is_not_one_line_is_not_handed_over() {
        let mut r = ReplyRelay::new(Some(&ReplyHandOver::Stdin));
        // JSON "\n" inside the code would make a second line on the listener's input.
        assert!(r.on_dialer_line(&code_line(r"owr2.A\nquit")).is_err());
        // ... and the first code stays the only one considered.
        assert_eq!(r.on_dialer_line(&code_line("owr2.AAAA")), Ok(None));
        let mut r = ReplyRelay::new(Some(&ReplyHandOver::Stdin));
        assert!(r.on_dialer_line(&code_line("")).is_err());
        let long = "a".repeat(MAX_CODE + 1);
        let mut r = ReplyRelay::new(Some(&ReplyHandOver::Stdin));
        assert!(r.on_dialer_line(&code_line(&long)).is_err());
    }

    #[tokio::test]
    async fn the_channel_writes_the_code_after_the_carry_delay_and_records_when() {
        let (writer, mut reader) = tokio::io::duplex(64);
        let how = ReplyHandOver::Stdin;
        let mut ch = ReplyChannel::new(Some(&how), ReplySink::Stdin(Box::new(writer)));
        let mut log = String::new();
        ch.on_dialer_line(&code_line("owr2.AAAA"), &mut log).await;
        ch.on_dialer_line(&code_line("owr2.BBBB"), &mut log).await;
        let due = ch.due().expect("pending");
        assert!(ch.open_until().is_some_and(|open| open > due));
        // Not yet due: nothing is written.
        ch.hand_over_due(&mut log).await;
        assert!(ch.facts().is_none());
        tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
        ch.hand_over_due(&mut log).await;
        let mut got = vec![0u8; 10];
        tokio::io::AsyncReadExt::read_exact(&mut reader, &mut got)
            .await
            .expect("read");
        assert_eq!(got, b"owr2.AAAA\n");
        let facts = ch.facts().expect("facts");
        assert_eq!(facts.hand_over, "stdin");
        assert!(facts.handed_over_ms.is_some_and(|ms| ms >= 1000.0));
        assert_eq!(facts.hand_over_error, None);
        assert_eq!(ch.due(), None);
        assert_eq!(log.matches("handed over by stdin").count(), 1);
    }

    #[tokio::test]
    async fn a_dialer_that_connects_first_gets_nothing_handed_over() {
        let (writer, _reader) = tokio::io::duplex(64);
        let how = ReplyHandOver::Stdin;
        let mut ch = ReplyChannel::new(Some(&how), ReplySink::Stdin(Box::new(writer)));
        let mut log = String::new();
        ch.on_dialer_line(&code_line("owr2.AAAA"), &mut log).await;
        let connected = Line::Stdout(
            r#"{"event":"connected","t_ms":30,"selected":null,"stages":{"first_check":null,"ice":null,"dtls":null,"channel":null,"auth":null}}"#
                .into(),
        );
        ch.on_dialer_line(&connected, &mut log).await;
        assert_eq!(ch.due(), None);
        let facts = ch.facts().expect("facts");
        assert!(facts.not_needed && facts.handed_over_ms.is_none());
        assert!(log.contains("the dialer connected first"), "{log}");
    }

    #[tokio::test]
    async fn a_sink_that_does_not_fit_is_a_recorded_failure() {
        let how = ReplyHandOver::Command(vec!["x".into(), "{reply}".into()]);
        let (writer, _reader) = tokio::io::duplex(64);
        let mut ch = ReplyChannel::new(Some(&how), ReplySink::Stdin(Box::new(writer)));
        let mut log = String::new();
        ch.on_dialer_line(&code_line("owr2.AAAA"), &mut log).await;
        tokio::time::sleep(CARRY_DELAY).await;
        ch.hand_over_due(&mut log).await;
        let facts = ch.facts().expect("facts");
        assert!(facts.hand_over_error.is_some());
    }
}
