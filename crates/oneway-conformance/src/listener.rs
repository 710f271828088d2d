//! The implementation as listener, against the reference dialer and raw datagrams.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oneway_connection::Progress;
use oneway_core::PeerEvent;
use oneway_scenario::plan::Placeholders;
use oneway_token::{Profile, Secret, Token};

use crate::process::Peer;
use crate::reference::{
    self, Misbehaving, RenegotiatesBeforeProof, check_for, dial_config, first_address, good_dial,
    outcome_code,
};
use crate::report::Verdict;
use crate::{Ctx, Judged};

/// How long a dial that must fail is given.
const REFUSED_DIAL: Duration = Duration::from_secs(4);
/// How long a dial that must connect is given.
const GOOD_DIAL: Duration = Duration::from_secs(10);
/// How long the listener may take to print an event about a dialer that has finished.
const EVENT_WAIT: Duration = Duration::from_secs(3);

fn connected(e: &PeerEvent) -> bool {
    matches!(e, PeerEvent::Connected { .. })
}

fn random_secret() -> Secret {
    Secret(rand::random())
}

/// The listener's `connected` events so far, after giving it a moment for late lines.
async fn connections(l: &mut Peer) -> usize {
    let _ = l.wait_for(Duration::from_millis(300), |_| false).await;
    l.count(connected)
}

async fn finish(mut l: Peer, judged: Judged) -> Judged {
    l.stop().await;
    judged.with_log("listener", &l)
}

pub(crate) async fn wrong_secret(ctx: &Ctx<'_>) -> Judged {
    let (mut l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let mut forged = token.clone();
    forged.secret = random_secret();
    let code = outcome_code(oneway_endpoint::dial(&forged, &dial_config(REFUSED_DIAL)).await);
    let n = connections(&mut l).await;
    let judged = Judged::pass_if(
        code == "ice-timeout" && n == 0,
        format!(
            "a dialer with a forged secret ended with `{code}` (expected `ice-timeout`: no answer); the listener printed {n} `connected`"
        ),
    );
    finish(l, judged).await
}

/// A dialer with the token's ICE credentials but a wrong proof key. With `reported`, judges
/// the listener's `refused` event (SHOULD) instead of the refusal itself.
pub(crate) async fn wrong_proof(ctx: &Ctx<'_>, reported: bool) -> Judged {
    let (mut l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let mut config = dial_config(GOOD_DIAL);
    config.dangerous.auth_key = Some(rand::random());
    let code = outcome_code(oneway_endpoint::dial(&token, &config).await);
    let judged = if reported {
        let refused = l
            .wait_for(EVENT_WAIT, |e| matches!(e, PeerEvent::Refused { .. }))
            .await;
        match refused {
            Some(PeerEvent::Refused { code: c, .. }) => Judged::pass_if(
                c == "auth-failed",
                format!(
                    "after a wrong proof the listener printed `refused` with `{c}` (expected `auth-failed`)"
                ),
            ),
            _ => Judged::new(
                Verdict::Fail,
                format!(
                    "no `refused` event within {EVENT_WAIT:?} of refusing a wrong proof (the dialer saw `{code}`)"
                ),
            ),
        }
    } else {
        let n = connections(&mut l).await;
        Judged::pass_if(
            code == "auth-failed" && n == 0,
            format!(
                "a dialer with a wrong proof ended with `{code}` (expected `auth-failed` from the listener's channel-0 `error`); the listener printed {n} `connected`"
            ),
        )
    };
    finish(l, judged).await
}

pub(crate) async fn replayed_single_use(ctx: &Ctx<'_>) -> Judged {
    let (mut l, token) = match ctx.listener(&["single_use"], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let first = good_dial(&token, GOOD_DIAL).await;
    let judged = match first {
        Err(e) => Judged::new(
            Verdict::Error,
            format!(
                "the first dialer of the single-use token did not connect, so a replay cannot be judged: {e}"
            ),
        ),
        Ok(_) => {
            let code =
                outcome_code(oneway_endpoint::dial(&token, &dial_config(REFUSED_DIAL)).await);
            let n = connections(&mut l).await;
            let refused = l
                .seen
                .iter()
                .filter_map(|e| match e {
                    PeerEvent::Refused { code, .. } => Some(code.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>();
            Judged::pass_if(
                code != "connected" && n <= 1,
                format!(
                    "first dialer connected; the replay ended with `{code}`; the listener printed {n} `connected` and `refused` {refused:?}"
                ),
            )
        }
    };
    finish(l, judged).await
}

pub(crate) async fn expired(ctx: &Ctx<'_>) -> Judged {
    let ph = Placeholders {
        ttl_secs: 2,
        ..Default::default()
    };
    let (mut l, token) = match ctx.listener(&["ttl"], ph).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let Some(expires) = token.expires_at else {
        return finish(
            l,
            Judged::new(
                Verdict::Fail,
                "asked for a 2 s lifetime (`ttl`), the listener issued a token without `expires`",
            ),
        )
        .await;
    };
    let now = crate::unix_now();
    if expires > now + 30 {
        return finish(
            l,
            Judged::new(
                Verdict::Fail,
                format!(
                    "asked for a 2 s lifetime, the token expires {} s from now",
                    expires - now
                ),
            ),
        )
        .await;
    }
    // Wait until the token is past its expiry by a second on this clock.
    while crate::unix_now() < expires + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut config = dial_config(REFUSED_DIAL);
    config.dangerous.skip_expiry_check = true;
    let code = outcome_code(oneway_endpoint::dial(&token, &config).await);
    let n = connections(&mut l).await;
    let refused = l
        .wait_for(EVENT_WAIT, |e| matches!(e, PeerEvent::Refused { .. }))
        .await
        .and_then(|e| match e {
            PeerEvent::Refused { code, .. } => Some(code),
            _ => None,
        });
    let judged = Judged::pass_if(
        code != "connected" && n == 0,
        format!(
            "a dialer of the expired token ended with `{code}`; the listener printed {n} `connected`{}",
            refused
                .map(|c| format!(" and `refused` with `{c}`"))
                .unwrap_or_else(|| " and no `refused`".to_owned())
        ),
    );
    finish(l, judged).await
}

/// Checks sent with another token's ufrag.
const FOREIGN_CHECKS: usize = 50;

pub(crate) async fn foreign_ufrag(ctx: &Ctx<'_>) -> Judged {
    let (l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let Some(to) = first_address(&token) else {
        return finish(
            l,
            Judged::new(Verdict::Error, "the token has no UDP IP candidate"),
        )
        .await;
    };
    let probe = tokio::task::spawn_blocking(move || probe_foreign(&token, to)).await;
    let judged = match probe {
        Ok(Ok((answered, errors, barrier))) => Judged::pass_if(
            answered == 0,
            format!(
                "{FOREIGN_CHECKS} checks with another token's ufrag (integrity keyed with this token's pwd): {answered} answered ({errors} with a STUN error response, {} with success); a genuine check after them was answered ({barrier:.1?})",
                answered - errors
            ),
        ),
        Ok(Err(e)) => Judged::new(Verdict::Error, e),
        Err(e) => Judged::new(Verdict::Error, format!("probe task: {e}")),
    };
    finish(l, judged).await
}

/// Sends the foreign checks, then a genuine one as a barrier; how many foreign checks got any
/// answer, how many of those answers were STUN error responses, and how long the genuine one
/// took to be answered.
fn probe_foreign(
    token: &Token,
    to: std::net::SocketAddr,
) -> Result<(usize, usize, Duration), String> {
    let prober = oneway_testkit::Prober {
        socket: reference::loopback_socket(to).map_err(|e| format!("binding the prober: {e}"))?,
    };
    let ufrag_len = match &token.listener_ice {
        Some(ice) => ice.ufrag().len(),
        None => token.derive().token_ufrag.len(),
    };
    let mut foreign = Vec::new();
    for _ in 0..FOREIGN_CHECKS {
        let other = match token.profile {
            Profile::Native => {
                oneway_token::DerivedKeys::derive(&random_secret(), Profile::Native).token_ufrag
            }
            _ => oneway_testkit::ice_string(ufrag_len),
        };
        let (check, id) = check_for(token, Some(&other));
        foreign.push(id);
        prober.send(to, &check);
    }
    // The barrier: a genuine check, re-sent (fresh) until answered, at most 5 times.
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    for _ in 0..5 {
        let (check, id) = check_for(token, None);
        prober.send(to, &check);
        let received = prober.receive_until(Duration::from_secs(2), |d| {
            oneway_testkit::trans_id(d) == Some(id)
        });
        let answered = received
            .iter()
            .any(|d| oneway_testkit::trans_id(d) == Some(id));
        got.extend(received);
        if answered {
            // Anything the listener sent for the foreign checks has arrived by now (it
            // handles one socket's datagrams in order); take stragglers too.
            got.extend(prober.receive_until(Duration::from_millis(300), |_| false));
            let answers: Vec<&Vec<u8>> = got
                .iter()
                .filter(|d| oneway_testkit::trans_id(d).is_some_and(|t| foreign.contains(&t)))
                .collect();
            // STUN message class: 0x0101 success, 0x0111 error response.
            let errors = answers
                .iter()
                .filter(|d| d.len() > 1 && d[0] == 0x01 && d[1] == 0x11)
                .count();
            return Ok((answers.len(), errors, started.elapsed()));
        }
    }
    Err(
        "the listener answered no genuine check either, so silence to foreign ones proves nothing"
            .to_owned(),
    )
}

pub(crate) async fn vanished_dialer(ctx: &Ctx<'_>) -> Judged {
    if ctx.manifest.listen_profile == "dialer-identity" {
        return Judged::new(
            Verdict::NotApplicable,
            "a dialer-identity token admits exactly one dialer (handshake.md §10.2): there is no later dial of the same token to observe",
        );
    }
    let (mut l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let (tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let mut config = dial_config(GOOD_DIAL);
    config.progress = Some(tx);
    let vanishing = {
        let token = token.clone();
        tokio::spawn(async move { oneway_endpoint::dial(&token, &config).await.map(drop) })
    };
    let reached = tokio::time::timeout(GOOD_DIAL, async {
        while let Some(p) = progress.recv().await {
            if p == Progress::DtlsConnected {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    // Vanish: the dial's task (and with it its driver and sockets) ends mid-handshake, before
    // channel 0 opens and before any proof.
    vanishing.abort();
    let _ = vanishing.await;
    if !reached {
        return finish(
            l,
            Judged::new(
                Verdict::Error,
                "the vanishing dialer never reached DTLS, so it did not vanish mid-handshake",
            ),
        )
        .await;
    }
    let good = good_dial(&token, GOOD_DIAL).await;
    let n = connections(&mut l).await;
    let judged = match good {
        Ok(ok) => Judged::new(
            Verdict::Pass,
            format!(
                "a dialer vanished after DTLS, before its proof; then {ok} (listener: {n} `connected`)"
            ),
        ),
        Err(e) => Judged::new(
            Verdict::Fail,
            format!("a dialer vanished after DTLS, before its proof; then {e}"),
        ),
    };
    finish(l, judged).await
}

/// Most garbage datagrams one check sends.
const FLOOD_MAX: usize = 200_000;
/// Garbage datagrams sent before the good dialer starts.
const FLOOD_FIRST: usize = 2_000;

pub(crate) async fn garbage(ctx: &Ctx<'_>) -> Judged {
    let (l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let Some(to) = first_address(&token) else {
        return finish(
            l,
            Judged::new(Verdict::Error, "the token has no UDP IP candidate"),
        )
        .await;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (primed_tx, primed) = tokio::sync::oneshot::channel();
    let flood = {
        let stop = Arc::clone(&stop);
        tokio::task::spawn_blocking(move || {
            let sockets: Vec<std::net::UdpSocket> = (0..3)
                .filter_map(|_| reference::loopback_socket(to).ok())
                .collect();
            let mut primed = Some(primed_tx);
            let mut sent = 0usize;
            for i in 0..FLOOD_MAX {
                if i == FLOOD_FIRST
                    && let Some(p) = primed.take()
                {
                    let _ = p.send(());
                }
                if i > FLOOD_FIRST && stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(s) = sockets.get(i % sockets.len().max(1))
                    && s.send_to(&reference::garbage(i), to).is_ok()
                {
                    sent += 1;
                }
            }
            sent
        })
    };
    let _ = primed.await;
    let good = good_dial(&token, GOOD_DIAL).await;
    stop.store(true, Ordering::Relaxed);
    let sent = flood.await.unwrap_or(0);
    if sent < FLOOD_FIRST {
        return finish(
            l,
            Judged::new(
                Verdict::Error,
                format!("only {sent} garbage datagrams could be sent to {to}"),
            ),
        )
        .await;
    }
    let judged = match good {
        Ok(ok) => Judged::new(
            Verdict::Pass,
            format!(
                "{sent} garbage datagrams (random, empty, 65000-byte, lying STUN headers, stray DTLS/RTP, checks without or with foreign integrity) during the dial; {ok}"
            ),
        ),
        Err(e) => Judged::new(
            Verdict::Fail,
            format!("{sent} garbage datagrams during the dial; {e}"),
        ),
    };
    finish(l, judged).await
}

pub(crate) async fn renegotiation_before_proof(ctx: &Ctx<'_>) -> Judged {
    let (mut l, token) = match ctx.listener(&[], Placeholders::default()).await {
        Ok(x) => x,
        Err(j) => return j,
    };
    let config = oneway_endpoint::DialConfig::<Misbehaving<RenegotiatesBeforeProof>> {
        timeout: GOOD_DIAL,
        ..Default::default()
    };
    let code = outcome_code(oneway_endpoint::dial(&token, &config).await);
    let n = connections(&mut l).await;
    let judged = Judged::pass_if(
        code == "auth-failed" && n == 0,
        format!(
            "a dialer that sent `ice-restart` and `offer` on channel 0 before its proof ended with `{code}` (expected `auth-failed`); the listener printed {n} `connected`"
        ),
    );
    finish(l, judged).await
}
