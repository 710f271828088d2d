//! `oneway listen --stack webrtc-rs` and `oneway dial --stack webrtc-rs`: the webrtc-rs peer
//! (`crates/oneway-webrtc`, on the sans-IO `rtc` crate) under the same peer contract as the
//! str0m peer (`spec/peer-contract.md`). Thin: every protocol step lives in `oneway-webrtc`.
//!
//! What this peer does not do, refused as bad arguments (exit 2): `--mdns` (the listener
//! publishes no `.local` names, and its dialer does not resolve them), and `--bind` with an
//! unspecified address (it binds one socket per concrete address; without `--bind` it binds
//! every usable interface address).

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use oneway_core::PeerEvent;
use oneway_webrtc::{
    ChannelRef, Connection, ConnectionEvent, DialConfig, DialError, Listener, ListenerConfig,
    ListenerEvent, Progress, STACK, dial as webrtc_dial,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::{
    DATA_CHANNEL, DialArgs, DialFailed, ListenArgs, Output, candidate_strings,
    print_token_for_people,
};
use crate::Usage;

/// `oneway listen --stack webrtc-rs`.
pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    if args.mdns {
        anyhow::bail!(Usage(
            "--stack webrtc-rs does not implement mDNS candidates (--mdns); use --stack str0m"
                .to_owned()
        ));
    }
    if let Some(a) = args.bind.iter().find(|a| a.ip().is_unspecified()) {
        anyhow::bail!(Usage(format!(
            "--stack webrtc-rs binds concrete addresses: --bind {a} is unspecified (omit --bind to use every interface address)"
        )));
    }
    let out = Output {
        json: args.json,
        start: Instant::now(),
    };
    let mut config = if args.bind.is_empty() {
        ListenerConfig::interfaces(args.loopback).context("choosing addresses to bind")?
    } else {
        ListenerConfig {
            bind: args.bind.clone(),
            ..ListenerConfig::loopback()
        }
    };
    config.single_use = args.single_use;
    config.ttl = args.ttl;
    config.label = args.label.clone();
    if let Some(server) = &args.stun {
        let resolved = tokio::net::lookup_host(server.as_str())
            .await
            .with_context(|| format!("resolving --stun {server}"))?
            .next()
            .with_context(|| format!("--stun {server}: no address"))?;
        config.stun = Some(resolved);
    }
    let mut listener = Listener::bind(config)
        .await
        .context("starting the listener")?;
    let token = listener.token().clone();
    let text = token.to_text()?;
    out.event(PeerEvent::Token {
        t_ms: out.ms(),
        stack: STACK.to_owned(),
        token: text.clone(),
        candidates: candidate_strings(&token),
    });
    if !args.json {
        print_token_for_people(&token, &text, args.page_url.as_deref());
    }

    let mut bridged = false;
    let mut events = listener.take_events();
    loop {
        tokio::select! {
            // Events first: a dialer's stage events precede its `connected`.
            biased;
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                if let Some(e) = listener_event(&out, event) {
                    out.event(e);
                }
            }
            accepted = listener.accept() => {
                let Some(conn) = accepted else { return Ok(()) };
                let info = conn.info();
                out.event(PeerEvent::Connected {
                    t_ms: out.ms(),
                    peer: info.selected.map(|(_, remote)| remote.to_string()),
                    selected: info.selected_pair(),
                    stages: info.timings.stage_times(),
                });
                if args.echo {
                    tokio::spawn(echo(conn));
                } else if !bridged {
                    bridged = true;
                    tokio::spawn(async move {
                        if let Err(e) = bridge(conn, None).await {
                            eprintln!("error: {e:#}");
                        }
                    });
                } else {
                    conn.close("this listener bridges one dialer at a time");
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn listener_event(out: &Output, event: ListenerEvent) -> Option<PeerEvent> {
    let t_ms = out.ms();
    Some(match event {
        ListenerEvent::Refused { peer, code, reason } => PeerEvent::Refused {
            t_ms,
            peer: Some(peer.to_string()),
            code: code.to_owned(),
            reason,
        },
        ListenerEvent::Closed { peer, code } => PeerEvent::Closed {
            t_ms,
            peer: Some(peer.to_string()),
            code: code.to_owned(),
        },
        ListenerEvent::Progress { peer, progress } => {
            progress_event(t_ms, Some(peer.to_string()), progress)?
        }
        _ => return None,
    })
}

/// The peer-contract event for a stage, if it has one.
fn progress_event(t_ms: f64, peer: Option<String>, progress: Progress) -> Option<PeerEvent> {
    Some(match progress {
        Progress::CandidateTried { remote, .. } => PeerEvent::CandidateTried {
            t_ms,
            remote: remote.to_string(),
        },
        Progress::IceConnected => PeerEvent::IceConnected { t_ms, peer },
        Progress::DtlsConnected => PeerEvent::DtlsConnected { t_ms, peer },
        Progress::ChannelOpen => PeerEvent::ChannelOpen { t_ms, peer },
        _ => return None,
    })
}

/// `oneway dial --stack webrtc-rs`.
pub async fn dial(args: DialArgs) -> anyhow::Result<()> {
    let out = Output {
        json: args.json,
        start: Instant::now(),
    };
    let (token, _) = crate::read_token(&args.input)?;
    out.event(PeerEvent::Dialing {
        t_ms: out.ms(),
        stack: STACK.to_owned(),
        candidates: candidate_strings(&token),
    });

    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let config = DialConfig {
        timeout: args.timeout,
        progress: Some(progress_tx),
        ..Default::default()
    };
    let (json, start) = (out.json, out.start);
    let printer = tokio::spawn(async move {
        let out = Output { json, start };
        while let Some(p) = progress_rx.recv().await {
            if let Some(event) = progress_event(out.ms(), None, p) {
                out.event(event);
            }
        }
    });
    let dialed = webrtc_dial(&token, &config).await;
    // The printer ends when the last progress sender (inside `config`) is gone; waiting for it
    // keeps the event lines in order.
    drop(config);
    let _ = printer.await;
    let conn = match dialed {
        Ok(conn) => conn,
        Err(e) => {
            out.event(PeerEvent::Refused {
                t_ms: out.ms(),
                peer: None,
                code: e.code().to_owned(),
                reason: e.to_string(),
            });
            if let DialError::Token(t) = e {
                return Err(t.into());
            }
            anyhow::bail!(DialFailed(format!("{}: {e}", e.code())));
        }
    };
    let info = conn.info().clone();
    out.event(PeerEvent::Connected {
        t_ms: out.ms(),
        peer: None,
        selected: info.selected_pair(),
        stages: info.timings.stage_times(),
    });
    let channel = conn
        .open_channel(DATA_CHANNEL)
        .await
        .context("opening the data channel")?;
    if args.probe {
        return probe(conn, channel, &out).await;
    }
    bridge(conn, Some(channel)).await
}

/// Echoes every message on every channel, as the same type.
async fn echo(mut conn: Connection) {
    while let Some(event) = conn.next_event().await {
        if let ConnectionEvent::Data {
            channel,
            binary,
            data,
        } = event
        {
            let sent = if binary {
                conn.send(channel, &data).await
            } else {
                conn.send_text(channel, &String::from_utf8_lossy(&data))
                    .await
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Copies standard input lines to the data channel and received messages to standard output.
async fn bridge(mut conn: Connection, mut channel: Option<ChannelRef>) -> anyhow::Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = stdin.next_line(), if stdin_open && channel.is_some() => match line? {
                Some(line) => {
                    if let Some(ch) = channel {
                        conn.send_text(ch, &format!("{line}\n")).await?;
                    }
                }
                None => stdin_open = false,
            },
            event = conn.next_event() => match event {
                Some(ConnectionEvent::ChannelOpen { channel: ch, label }) if label == DATA_CHANNEL => channel = Some(ch),
                Some(ConnectionEvent::Data { data, .. }) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
                Some(ConnectionEvent::Closed { code, reason }) => {
                    eprintln!("connection closed: {code}: {reason}");
                    return Ok(());
                }
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
}

/// Sends one message and waits (at most 10 s) for it to come back.
async fn probe(mut conn: Connection, channel: ChannelRef, out: &Output) -> anyhow::Result<()> {
    let sent_at = Instant::now();
    let payload = format!("oneway-probe {}", out.ms());
    conn.send_text(channel, &payload).await?;
    let wait = async {
        while let Some(event) = conn.next_event().await {
            match event {
                ConnectionEvent::Data { data, .. } if data == payload.as_bytes() => return Ok(()),
                ConnectionEvent::Closed { code, reason } => {
                    anyhow::bail!(DialFailed(format!("{code}: {reason}")))
                }
                _ => {}
            }
        }
        anyhow::bail!(DialFailed("connection ended before the echo".to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .map_err(|_| DialFailed("no echo within 10 s".to_owned()))??;
    out.event(PeerEvent::FirstEcho {
        t_ms: out.ms(),
        rtt_ms: sent_at.elapsed().as_secs_f64() * 1000.0,
    });
    conn.close("probe done");
    // Let the close message leave.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
