//! The implementation as dialer, against the reference listener (the shared shell on
//! loopback, normal or misbehaving) and forged tokens.

use std::net::SocketAddr;

use oneway_core::PeerEvent;
use oneway_endpoint::{Listener, ListenerConfig, Stack};
use oneway_str0m::Str0m;
use oneway_token::{Candidate, Fingerprint, Token};

use crate::process::Peer;
use crate::reference::{Misbehaving, NeverProves, ProvesForAnotherToken, Violation, dial_config};
use crate::report::Verdict;
use crate::{Ctx, Judged};

/// The `{timeout_secs}` of a dial that must fail.
const REFUSED_TIMEOUT: u64 = 5;
/// The `{timeout_secs}` of a dial that must connect.
const GOOD_TIMEOUT: u64 = 10;

/// What a finished dialer printed and returned.
struct Dialed {
    exit: Option<i32>,
    /// The code of its last `refused` event.
    refused: Option<String>,
    /// Whether it printed `connected` or `first-echo`.
    connected: bool,
}

impl Dialed {
    fn of(peer: &Peer, exit: Option<i32>) -> Self {
        Dialed {
            exit,
            refused: peer.seen.iter().rev().find_map(|e| match e {
                PeerEvent::Refused { code, .. } => Some(code.clone()),
                _ => None,
            }),
            connected: peer
                .seen
                .iter()
                .any(|e| matches!(e, PeerEvent::Connected { .. } | PeerEvent::FirstEcho { .. })),
        }
    }

    fn describe(&self) -> String {
        format!(
            "exit {}, {}{}",
            self.exit
                .map_or_else(|| "none (killed)".to_owned(), |c| c.to_string()),
            match &self.refused {
                Some(c) => format!("`refused` with `{c}`"),
                None => "no `refused` event".to_owned(),
            },
            if self.connected {
                ", and it printed `connected`/`first-echo`"
            } else {
                ""
            }
        )
    }
}

/// Serves `listener` as the contract's listener does: accepts every dialer and echoes every
/// message on every channel (`spec/peer-contract.md` §1). Abort the task to stop.
fn echo_server<S: Stack>(mut listener: Listener<S>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(conn) = listener.accept().await {
            tokio::spawn(conn.echo());
        }
    })
}

/// A reference listener on loopback on stack `S`.
async fn reference_listener<S: Stack>(config: ListenerConfig) -> Result<Listener<S>, Judged> {
    Listener::<S>::bind(config)
        .await
        .map_err(|e| Judged::new(Verdict::Error, format!("the reference listener: {e}")))
}

fn text(token: &Token) -> Result<String, Judged> {
    token
        .to_text()
        .map_err(|e| Judged::new(Verdict::Error, format!("encoding the forged token: {e}")))
}

/// Runs the implementation's dialer on `token`.
async fn dial(ctx: &Ctx<'_>, token: &str, timeout: u64) -> Result<(Peer, Dialed), Judged> {
    let (peer, exit) = ctx.dialer(token, timeout).await?;
    let dialed = Dialed::of(&peer, exit);
    Ok((peer, dialed))
}

pub(crate) async fn wrong_fingerprint(ctx: &Ctx<'_>) -> Judged {
    let listener = match reference_listener::<Str0m>(ListenerConfig::loopback()).await {
        Ok(l) => l,
        Err(j) => return j,
    };
    let mut token = listener.token().clone();
    token.fingerprint = Fingerprint(rand::random());
    let token = match text(&token) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let (peer, d) = match dial(ctx, &token, REFUSED_TIMEOUT).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let code_ok = matches!(
        d.refused.as_deref(),
        Some("fingerprint-mismatch" | "dtls-timeout")
    );
    let connections = listener.stats().connections;
    Judged::pass_if(
        d.exit.is_some_and(|c| c != 0) && !d.connected && code_ok && connections == 0,
        format!(
            "token with a wrong fingerprint: {} (expected `fingerprint-mismatch` or `dtls-timeout`); reference listener: {connections} authenticated",
            d.describe()
        ),
    )
    .with_log("dialer", &peer)
}

pub(crate) async fn listener_never_proves(ctx: &Ctx<'_>) -> Judged {
    refuses_misbehaving_listener::<NeverProves>(
        ctx,
        "a listener that admits but never proves",
        "auth-timeout",
    )
    .await
}

pub(crate) async fn proof_for_another_token(ctx: &Ctx<'_>) -> Judged {
    refuses_misbehaving_listener::<ProvesForAnotherToken>(
        ctx,
        "a listener proving with another token's key",
        "auth-failed",
    )
    .await
}

/// The implementation dials a reference listener misbehaving with `V` (`what`); it passes when
/// it exits non-zero, never connected, and reports `refused` with `expected`.
async fn refuses_misbehaving_listener<V: Violation>(
    ctx: &Ctx<'_>,
    what: &str,
    expected: &str,
) -> Judged {
    let listener = match reference_listener::<Misbehaving<V>>(ListenerConfig::loopback()).await {
        Ok(l) => l,
        Err(j) => return j,
    };
    let token = match text(listener.token()) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let (peer, d) = match dial(ctx, &token, REFUSED_TIMEOUT).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    Judged::pass_if(
        d.exit.is_some_and(|c| c != 0) && !d.connected && d.refused.as_deref() == Some(expected),
        format!("{what}: {} (expected `{expected}`)", d.describe()),
    )
    .with_log("dialer", &peer)
}

/// Whether the reference listener received anything at all: an admitted check, or a
/// datagram it dropped.
fn listener_saw_anything<S: Stack>(listener: &mut Listener<S>) -> bool {
    let stats = listener.stats();
    let admitted = std::iter::from_fn(|| listener.try_next_event()).count();
    stats.engines > 0
        || admitted > 0
        || stats.dropped_not_a_check
            + stats.dropped_unknown_token
            + stats.dropped_bad_integrity
            + stats.dropped_rate_limited
            > 0
}

pub(crate) async fn expired(ctx: &Ctx<'_>) -> Judged {
    let mut listener = match reference_listener::<Str0m>(ListenerConfig::loopback()).await {
        Ok(l) => l,
        Err(j) => return j,
    };
    let mut token = listener.token().clone();
    token.expires_at = Some(crate::unix_now().saturating_sub(3600));
    let token = match text(&token) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let (peer, d) = match dial(ctx, &token, REFUSED_TIMEOUT).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let saw = listener_saw_anything(&mut listener);
    Judged::pass_if(
        d.exit == Some(2) && !d.connected && d.refused.as_deref() == Some("expired") && !saw,
        format!(
            "a token that expired an hour ago: {} (expected exit 2 and `expired`); the listener {}",
            d.describe(),
            if saw {
                "received datagrams from it"
            } else {
                "received nothing"
            }
        ),
    )
    .with_log("dialer", &peer)
}

/// Malformed variants of `text`: `(what, text)`.
fn malformed_variants(text: &str) -> Vec<(&'static str, String)> {
    let body = text.strip_prefix("ow1.").unwrap_or(text);
    let mid = body.len() / 2;
    // One character changed in the middle (inside the fingerprint or the secret).
    let mut altered: Vec<char> = body.chars().collect();
    if let Some(c) = altered.get_mut(mid) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    let altered: String = altered.into_iter().collect();
    let mut with_bad_char = body.to_owned();
    with_bad_char.insert(mid, '!');
    vec![
        ("one character altered", format!("ow1.{altered}")),
        (
            "cut short",
            format!("ow1.{}", &body[..body.len().saturating_sub(12)]),
        ),
        (
            "a character outside base64url",
            format!("ow1.{with_bad_char}"),
        ),
        ("version 2 prefix", format!("ow2.{body}")),
    ]
}

pub(crate) async fn malformed(ctx: &Ctx<'_>) -> Judged {
    let mut listener = match reference_listener::<Str0m>(ListenerConfig::loopback()).await {
        Ok(l) => l,
        Err(j) => return j,
    };
    let good = match text(listener.token()) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let mut lines = Vec::new();
    let mut ok = true;
    let mut judged_logs = Vec::new();
    for (what, bad) in malformed_variants(&good) {
        let expected = match Token::from_text(&bad) {
            Err(e) => e.code(),
            Ok(_) => {
                return Judged::new(
                    Verdict::Error,
                    format!("the malformed variant ({what}) decodes with the reference codec"),
                );
            }
        };
        let (peer, d) = match dial(ctx, &bad, REFUSED_TIMEOUT).await {
            Ok(x) => x,
            Err(j) => return j,
        };
        let this_ok = d.exit == Some(2) && !d.connected && d.refused.as_deref() == Some(expected);
        ok &= this_ok;
        lines.push(format!(
            "{what}: {} (expected exit 2, `{expected}`){}",
            d.describe(),
            if this_ok { "" } else { " ✗" }
        ));
        judged_logs.push(peer.log());
    }
    let saw = listener_saw_anything(&mut listener);
    ok &= !saw;
    if saw {
        lines.push("the reference listener received datagrams".to_owned());
    }
    let mut judged = Judged::pass_if(ok, lines.join("; "));
    judged.logs.push(("dialer", judged_logs.join("\n")));
    judged
}

pub(crate) async fn fallback(ctx: &Ctx<'_>) -> Judged {
    // The dead candidate: a socket that is bound (no ICMP) and never read.
    let dead = match std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| {
        let a = s.local_addr()?;
        Ok((s, a))
    }) {
        Ok(x) => x,
        Err(e) => return Judged::new(Verdict::Error, format!("binding the dead candidate: {e}")),
    };
    let (_dead_socket, dead_addr) = dead;
    let listener = match reference_listener::<Str0m>(ListenerConfig {
        extra_candidates: vec![Candidate::udp_host(dead_addr.ip(), dead_addr.port())],
        ..ListenerConfig::loopback()
    })
    .await
    {
        Ok(l) => l,
        Err(j) => return j,
    };
    let live: Vec<SocketAddr> = listener.local_addrs().to_vec();
    let token = match text(listener.token()) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let echo = echo_server(listener);
    let dialed = dial(ctx, &token, GOOD_TIMEOUT).await;
    echo.abort();
    let (peer, d) = match dialed {
        Ok(x) => x,
        Err(j) => return j,
    };
    let mut tried: Vec<String> = Vec::new();
    for e in &peer.seen {
        if let PeerEvent::CandidateTried { remote, .. } = e
            && !tried.contains(remote)
        {
            tried.push(remote.clone());
        }
    }
    let selected = peer.seen.iter().find_map(|e| match e {
        PeerEvent::Connected {
            selected: Some(s), ..
        } => Some(s.remote.clone()),
        _ => None,
    });
    let dead_s = dead_addr.to_string();
    let live_s: Vec<String> = live.iter().map(ToString::to_string).collect();
    let dead_at = tried.iter().position(|t| *t == dead_s);
    let live_at = tried.iter().position(|t| live_s.contains(t));
    let echoed = peer
        .seen
        .iter()
        .any(|e| matches!(e, PeerEvent::FirstEcho { .. }));
    let in_order = matches!((dead_at, live_at), (Some(a), Some(b)) if a < b);
    let via_live = selected.as_ref().is_none_or(|s| live_s.contains(s));
    Judged::pass_if(
        d.exit == Some(0) && echoed && in_order && via_live,
        format!(
            "token [dead {dead_s}, live {}]: exit {}, first-echo {}, `candidate-tried` order {tried:?}, selected remote {}",
            live_s.join(", "),
            d.exit.map_or_else(|| "none".to_owned(), |c| c.to_string()),
            if echoed { "yes" } else { "no" },
            selected.as_deref().unwrap_or("not reported")
        ),
    )
    .with_log("dialer", &peer)
}

pub(crate) async fn refusal_cause(ctx: &Ctx<'_>) -> Judged {
    let listener = match reference_listener::<Str0m>(ListenerConfig {
        accept_queue: 1,
        ..ListenerConfig::loopback()
    })
    .await
    {
        Ok(l) => l,
        Err(j) => return j,
    };
    // A first dialer fills the accept queue (the listener's application never accepts it), so
    // the next proven dialer is refused with `accept-queue-full` in place of the proof.
    let first = match oneway_endpoint::dial(
        listener.token(),
        &dial_config(std::time::Duration::from_secs(GOOD_TIMEOUT)),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            return Judged::new(
                Verdict::Error,
                format!(
                    "the reference dialer filling the accept queue failed: {}",
                    e.code()
                ),
            );
        }
    };
    let token = match text(listener.token()) {
        Ok(t) => t,
        Err(j) => return j,
    };
    let (peer, d) = match dial(ctx, &token, GOOD_TIMEOUT).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    drop(first);
    Judged::pass_if(
        d.exit.is_some_and(|c| c != 0)
            && !d.connected
            && d.refused.as_deref() == Some("accept-queue-full"),
        format!(
            "the listener sent `error` `accept-queue-full` in place of its proof: {}",
            d.describe()
        ),
    )
    .with_log("dialer", &peer)
}
