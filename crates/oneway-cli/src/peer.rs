//! `oneway listen` and `oneway dial`: thin wrappers that print the peer-contract events
//! (`spec/peer-contract.md`) or human output, and bridge standard input and output.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use oneway_connection::{
    ChannelRef, Connection, ConnectionEvent, DialError, ListenerEvent, Progress,
};
use oneway_core::PeerEvent;
use oneway_endpoint::reply::candidate_string;
use oneway_endpoint::{
    AddressScope, DialConfig, Listener, ListenerConfig, MappingEvent, MappingHandle, PortMapping,
    ProtocolChoice, Reachability,
};
use oneway_str0m::Str0m;
use oneway_token::Token;
use oneway_webrtc::WebrtcRs;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::{TokenInput, Usage};

/// Label of the application channel `listen` and `dial` bridge.
pub(crate) const DATA_CHANNEL: &str = "data";

/// Which WebRTC implementation runs the peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Stack {
    /// str0m (sans-IO Rust WebRTC).
    #[default]
    Str0m,
    /// A headless browser (Chromium, or Firefox with `--browser firefox`) running the browser
    /// peer (`crates/oneway-browser`): listens with `dialer-identity` tokens, dials `native`
    /// tokens.
    Browser,
    /// webrtc-rs (the sans-IO `rtc` crate, `crates/oneway-webrtc`).
    #[value(name = "webrtc-rs")]
    WebrtcRs,
}

#[path = "browser.rs"]
mod browser_peer;
#[path = "peer_media.rs"]
mod media;

pub(crate) use browser_peer::BrowserArgs;

#[derive(Args)]
pub struct ListenArgs {
    /// WebRTC implementation.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) stack: Stack,
    /// Socket address to bind (repeat for IPv4 and IPv6); default `0.0.0.0:0` and `[::]:0`.
    #[arg(long, value_name = "ADDR")]
    pub(crate) bind: Vec<SocketAddr>,
    /// Advertise loopback addresses too (and only loopback when binding to 127.0.0.1).
    #[arg(long)]
    pub(crate) loopback: bool,
    /// STUN server (`host:port`) to learn the NAT-mapped address from; advertised as a srflx
    /// candidate after the host (and port-mapped) candidates. A server with a second address
    /// (RFC 5780) also tells whether the NAT filters.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) stun: Option<String>,
    /// Do not ask the router for a port mapping. By default a listener none of whose
    /// addresses is public asks for one (PCP, then NAT-PMP, then UPnP-IGD).
    #[arg(long, conflicts_with = "portmap")]
    pub(crate) no_portmap: bool,
    /// Ask for a port mapping with this protocol only (and even when an address is public).
    #[arg(long, value_name = "PROTOCOL", value_parser = ["pcp", "natpmp", "upnp"])]
    pub(crate) portmap: Option<String>,
    /// Advertise mDNS `<uuid>.local` names instead of IP addresses (offline LANs).
    #[arg(long)]
    pub(crate) mdns: bool,
    /// Do not announce the stack's fast path (DTLS 1.3, fast start: `spec/handshake.md` §5.4)
    /// in the token; every dialer then takes the standard handshake.
    #[arg(long)]
    pub(crate) no_fast_path: bool,
    /// `--stack browser`: the profile of the token the page issues (`spec/token.md`):
    /// `dialer-identity` (the default; native dialers connect with the token alone) or `reply`
    /// (browser dialers only, which answer with a reply code; for an engine that cannot replace
    /// the dialer identity it chose, like Firefox: `spec/handshake.md` §10.2). Native
    /// listeners issue `native` tokens and refuse it.
    #[arg(long, value_name = "PROFILE", value_parser = ["dialer-identity", "reply"])]
    pub(crate) profile: Option<String>,
    /// Accept only the first dialer that proves the token.
    #[arg(long)]
    pub(crate) single_use: bool,
    /// Token lifetime, e.g. `10m`, `1h` (default: no expiry).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) ttl: Option<Duration>,
    /// A label shown to dialers.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Page that opens tokens from its URL fragment; prints `<URL>#ow1.…`.
    #[arg(long, value_name = "URL")]
    pub(crate) page_url: Option<String>,
    /// Echo everything every dialer sends (interop runs), instead of bridging stdin/stdout.
    #[arg(long)]
    pub(crate) echo: bool,
    /// With --echo: add an audio track towards each dialer once connected, sending an Opus
    /// test tone (`tone:HZ`, e.g. `tone:440`); received tracks are printed as `media` events
    /// (the native stacks; a stack that cannot says so on standard error and carries on).
    #[arg(long, value_name = "tone:HZ", value_parser = media::parse_send_audio, requires = "echo")]
    pub(crate) send_audio: Option<f64>,
    /// With --echo: add a video track towards each dialer once connected (after the audio
    /// track of --send-audio, in a second renegotiation), sending a VP8 test pattern; received
    /// video is printed as `media` events with frame counts.
    #[arg(long, requires = "echo")]
    pub(crate) send_video: bool,
    /// Print one JSON event per line (the peer contract) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) browser: BrowserArgs,
}

#[derive(Args)]
pub struct DialArgs {
    #[command(flatten)]
    pub(crate) input: TokenInput,
    /// WebRTC implementation.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) stack: Stack,
    /// Give up if not connected after this long [default: 10s; 120s on a terminal without
    /// --json, to leave a person time to carry the reply code to the listener].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// Send one probe message, wait for its echo, print the round trip, and exit.
    #[arg(long)]
    pub(crate) probe: bool,
    /// TURN server (`host:port`, TURN over TCP) to allocate a UDP relay from; the relayed
    /// address is offered after the host candidates (str0m and webrtc-rs).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["turn_user", "turn_password"])]
    pub(crate) turn: Option<String>,
    /// TURN user name (long-term credentials).
    #[arg(long, value_name = "USER", requires = "turn")]
    pub(crate) turn_user: Option<String>,
    /// TURN password (long-term credentials).
    #[arg(long, value_name = "PASSWORD", requires = "turn")]
    pub(crate) turn_password: Option<String>,
    /// Offer only the TURN relay (no host candidates): the path is always the relay.
    #[arg(long, requires = "turn")]
    pub(crate) relay_only: bool,
    /// Take the standard handshake even when the token offers a fast path
    /// (`spec/handshake.md` §5.4).
    #[arg(long)]
    pub(crate) no_fast_path: bool,
    /// With --probe: after the echo, add an audio track sending an Opus test tone
    /// (`tone:HZ`, e.g. `tone:440`), print `media` events for what arrives for --media-window
    /// (3 s), then close (the native stacks; a stack that cannot says so on standard error and
    /// carries on).
    #[arg(long, value_name = "tone:HZ", value_parser = media::parse_send_audio, requires = "probe")]
    pub(crate) send_audio: Option<f64>,
    /// With --probe: after the echo, add a video track sending a VP8 test pattern (after the
    /// audio track of --send-audio, in a second renegotiation), print `media` events for what
    /// arrives for --media-window (3 s), then close.
    #[arg(long, requires = "probe")]
    pub(crate) send_video: bool,
    /// With --send-audio or --send-video: how long to keep the connection once the tracks are
    /// added, printing `media` events, before closing (e.g. `6s`; a loaded machine's stacks
    /// may report a track's first statistics late).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    pub(crate) media_window: Duration,
    /// Print one JSON event per line (the peer contract) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) browser: BrowserArgs,
}

impl ListenArgs {
    /// The tracks `--send-audio` and `--send-video` ask for.
    pub(crate) fn send_media(&self) -> media::SendMedia {
        media::SendMedia {
            audio: self.send_audio,
            video: self.send_video,
        }
    }
}

impl DialArgs {
    /// The tracks `--send-audio` and `--send-video` ask for.
    pub(crate) fn send_media(&self) -> media::SendMedia {
        media::SendMedia {
            audio: self.send_audio,
            video: self.send_video,
        }
    }

    /// `--timeout`, or its default: 10 s, or 120 s when a person reads the output (a terminal,
    /// no `--json`) and may carry the reply code to the listener (`spec/handshake.md` §11).
    pub(crate) fn dial_timeout(&self) -> Duration {
        use std::io::IsTerminal as _;
        self.timeout
            .unwrap_or(if !self.json && std::io::stderr().is_terminal() {
                Duration::from_secs(120)
            } else {
                Duration::from_secs(10)
            })
    }
}

/// Prints events as JSON lines or as text on standard error.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) start: Instant,
}

impl Output {
    pub(crate) fn ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub(crate) fn event(&self, event: PeerEvent) {
        if self.json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", event.to_line());
            let _ = out.flush();
        } else {
            eprintln!("{}", describe(&event));
        }
    }
}

fn describe(event: &PeerEvent) -> String {
    match event {
        PeerEvent::CandidateTried { t_ms, remote } => format!("[{t_ms:7.1} ms] trying {remote}"),
        PeerEvent::IceConnected { t_ms, .. } => format!("[{t_ms:7.1} ms] ICE connected"),
        PeerEvent::DtlsConnected { t_ms, .. } => format!("[{t_ms:7.1} ms] DTLS connected"),
        PeerEvent::ChannelOpen { t_ms, .. } => format!("[{t_ms:7.1} ms] channel 0 open"),
        PeerEvent::Connected {
            t_ms,
            peer,
            selected,
            route,
            ..
        } => {
            format!(
                "[{t_ms:7.1} ms] connected{}{}",
                peer.as_ref()
                    .map(|p| format!(" to dialer {p}"))
                    .unwrap_or_default(),
                selected
                    .as_ref()
                    .map(|s| format!(" via {} -> {}", s.local, s.remote))
                    .unwrap_or_default()
            ) + match route.as_deref() {
                Some("reply") => " (reply route: the listener took the reply code)",
                _ => "",
            }
        }
        PeerEvent::ReplyCode { t_ms, reply, .. } => format!(
            "[{t_ms:7.1} ms] trying the listener directly. If that fails, the listener cannot be \
             reached from here: give this code to the other side (for `oneway listen`: paste it \
             there and press Enter), and this dialer connects when the listener answers:\n\n    \
             {reply}\n"
        ),
        PeerEvent::ReplyAccepted {
            t_ms,
            dialer,
            candidates,
        } => format!(
            "[{t_ms:7.1} ms] reply code taken: checking towards dialer {dialer} at {}",
            candidates.join(", ")
        ),
        PeerEvent::ReplyRefused { t_ms, code, reason } => {
            format!("[{t_ms:7.1} ms] reply code refused: {code}: {reason}")
        }
        PeerEvent::FirstEcho { t_ms, rtt_ms } => {
            format!("[{t_ms:7.1} ms] echo received, round trip {rtt_ms:.2} ms")
        }
        PeerEvent::Refused {
            t_ms,
            peer,
            code,
            reason,
        } => format!(
            "[{t_ms:7.1} ms] refused{}: {code}: {reason}",
            peer.as_ref().map(|p| format!(" {p}")).unwrap_or_default()
        ),
        PeerEvent::Media {
            t_ms,
            track,
            kind,
            packets,
            frequency_hz,
            frames,
            keyframes,
            width,
            height,
            ..
        } => format!(
            "[{t_ms:7.1} ms] {kind} track {track}: {packets} RTP packets{}{}{}",
            frequency_hz
                .map(|f| format!(", tone {f} Hz"))
                .unwrap_or_default(),
            frames
                .map(|f| format!(", {f} frames ({} key)", keyframes.unwrap_or(0)))
                .unwrap_or_default(),
            width
                .zip(*height)
                .map(|(w, h)| format!(", {w}x{h}"))
                .unwrap_or_default()
        ),
        PeerEvent::Closed { t_ms, peer, code } => format!(
            "[{t_ms:7.1} ms] closed{}: {code}",
            peer.as_ref().map(|p| format!(" {p}")).unwrap_or_default()
        ),
        PeerEvent::Mapped {
            t_ms,
            protocol,
            external,
            lifetime_s,
            ..
        } => format!(
            "[{t_ms:7.1} ms] port mapped by {protocol}: {external} (lifetime {lifetime_s} s, renewed at half)"
        ),
        PeerEvent::MappingFailed { t_ms, code, reason } => {
            format!("[{t_ms:7.1} ms] port mapping: {code}: {reason}")
        }
        PeerEvent::Reachability { t_ms, sentence, .. } => {
            format!("[{t_ms:7.1} ms] reachable from: {sentence}")
        }
        other => other.to_line(),
    }
}

pub(crate) fn candidate_strings(token: &Token) -> Vec<String> {
    token.candidates.iter().map(candidate_string).collect()
}

/// Standard input as lines, read by one task for the whole process (reply codes before a
/// dialer connects, then the bridged conversation). Lines longer than 64 KiB end the reading.
pub(crate) fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.len() > 64 * 1024 || tx.send(line).await.is_err() {
                return;
            }
        }
    });
    rx
}

pub async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let stun = match &args.stun {
        Some(server) => Some(
            tokio::net::lookup_host(server.as_str())
                .await
                .with_context(|| format!("resolving --stun {server}"))?
                .next()
                .with_context(|| format!("--stun {server}: no address"))?,
        ),
        None => None,
    };
    check_stack_options(
        args.stack,
        args.browser.is_set(),
        args.send_media(),
        "listeners",
    )?;
    if args.profile.is_some() && args.stack != Stack::Browser {
        anyhow::bail!(Usage(
            "--profile needs --stack browser (native listeners issue native tokens)".to_owned()
        ));
    }
    let served = match args.stack {
        Stack::Str0m => native_listener::<Str0m>(&args, stun).await?,
        Stack::WebrtcRs => native_listener::<WebrtcRs>(&args, stun).await?,
        Stack::Browser => {
            if args.mdns || args.single_use || args.portmap.is_some() {
                anyhow::bail!(Usage(
                    "--stack browser chooses its own candidates and admits one dialer per token: --mdns, --single-use and --portmap do not apply"
                        .to_owned()
                ));
            }
            let loopback = args.loopback
                || (!args.bind.is_empty() && args.bind.iter().all(|a| a.ip().is_loopback()));
            let config = args.browser.config()?;
            let profile = args.profile.as_deref().unwrap_or("dialer-identity");
            return browser_peer::listen(
                config, profile, args.json, loopback, args.echo, stun, args.ttl,
            )
            .await;
        }
    };
    serve(&args, served).await
}

/// A running native listener, whatever its stack: its token, and what it reports in order.
pub(crate) struct Served {
    pub(crate) stack: &'static str,
    pub(crate) token: Token,
    /// What the listener found about its reachability before issuing the token.
    pub(crate) reach: Option<Reach>,
    pub(crate) reports: mpsc::UnboundedReceiver<Report>,
    /// Reply codes for the listener to take (`spec/handshake.md` §11); answered with
    /// [`Report::Reply`].
    pub(crate) replies: mpsc::UnboundedSender<String>,
    pub(crate) _pump: AbortOnDrop,
}

/// A native listener's reachability: the verdict, the failed mapping attempts (code, words), and
/// the granted mappings, which `serve` watches and deletes on exit.
pub(crate) struct Reach {
    pub(crate) reachability: Reachability,
    pub(crate) failures: Vec<(&'static str, String)>,
    pub(crate) mappings: Vec<MappingHandle>,
}

/// What a listener reports: a dialer's progress or refusal, or an accepted connection.
pub(crate) enum Report {
    Event(ListenerEvent),
    Accepted(Connection),
    /// The outcome of a reply code: the dialer's ufrag and candidates, or a refusal's code and
    /// words.
    Reply(Result<(String, Vec<String>), (&'static str, String)>),
}

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Moves a listener's events and connections into one channel, events first, so a dialer's
/// stage events precede its `connected`.
fn served<S: oneway_endpoint::Stack>(mut listener: Listener<S>) -> Served {
    let token = listener.token().clone();
    let reach = Reach {
        reachability: listener.reachability().clone(),
        failures: listener
            .port_mappings()
            .iter()
            .filter_map(|m| m.as_ref().err())
            .map(|e| (e.code(), e.to_string()))
            .collect(),
        mappings: listener.take_port_mappings(),
    };
    let mut events = listener.take_events();
    let (tx, reports) = mpsc::unbounded_channel();
    let (replies, mut reply_codes) = mpsc::unbounded_channel::<String>();
    let pump = tokio::spawn(async move {
        loop {
            let report = tokio::select! {
                biased;
                event = events.next() => match event {
                    Some(event) => Report::Event(event),
                    None => return,
                },
                accepted = listener.accept() => match accepted {
                    Some(conn) => Report::Accepted(conn),
                    None => return,
                },
                Some(code) = reply_codes.recv() => Report::Reply(
                    listener
                        .take_reply(&code)
                        .await
                        .map(|taken| {
                            (
                                taken.dialer_ufrag,
                                taken.candidates.iter().map(candidate_string).collect(),
                            )
                        })
                        .map_err(|e| (e.code(), e.to_string())),
                ),
            };
            if tx.send(report).is_err() {
                return;
            }
        }
    });
    Served {
        stack: S::NAME,
        token,
        reach: Some(reach),
        reports,
        replies,
        _pump: AbortOnDrop(pump),
    }
}

/// Starts the native listener on stack `S` that `args` ask for (`stun`: the resolved `--stun`
/// server).
async fn native_listener<S: oneway_endpoint::Stack>(
    args: &ListenArgs,
    stun: Option<SocketAddr>,
) -> anyhow::Result<Served> {
    let port_mapping = match (&args.portmap, args.no_portmap) {
        (_, true) => PortMapping::Off,
        (Some(protocol), false) => PortMapping::Always(
            protocol
                .parse::<ProtocolChoice>()
                .map_err(|e| Usage(format!("--portmap {protocol}: {e}")))?,
        ),
        (None, false) => PortMapping::WhenNotPublic(ProtocolChoice::Auto),
    };
    let mut config = ListenerConfig {
        single_use: args.single_use,
        port_mapping,
        mdns: args.mdns,
        fast_path: !args.no_fast_path,
        ttl: args.ttl,
        label: args.label.clone(),
        stun,
        scope: if args.loopback {
            AddressScope::InterfacesAndLoopback
        } else {
            AddressScope::Interfaces
        },
        ..Default::default()
    };
    if !args.bind.is_empty() {
        config.bind_v4 = args.bind.iter().find(|a| a.is_ipv4()).copied();
        config.bind_v6 = args.bind.iter().find(|a| a.is_ipv6()).copied();
        if args.bind.iter().all(|a| a.ip().is_loopback()) {
            config.scope = AddressScope::LoopbackOnly;
        }
    }
    let listener = Listener::<S>::bind(config)
        .await
        .context("starting the listener")?;
    Ok(served(listener))
}

/// Prints the token, then serves dialers until Ctrl-C: echoes (`--echo`) or bridges the first
/// dialer to standard input and output.
async fn serve(args: &ListenArgs, mut served: Served) -> anyhow::Result<()> {
    let out = Output {
        json: args.json,
        start: Instant::now(),
    };
    let token = &served.token;
    let text = token.to_text()?;
    out.event(PeerEvent::Token {
        t_ms: out.ms(),
        stack: served.stack.to_owned(),
        token: text.clone(),
        candidates: candidate_strings(token),
    });
    let mut mappings = Vec::new();
    if let Some(reach) = served.reach.take() {
        for handle in &reach.mappings {
            out.event(mapped_event(&out, &handle.mapping()));
        }
        for (code, reason) in reach.failures {
            out.event(PeerEvent::MappingFailed {
                t_ms: out.ms(),
                code: code.to_owned(),
                reason,
            });
        }
        out.event(reachability_event(&out, &reach.reachability));
        mappings = reach.mappings;
    }
    if !args.json {
        print_token_for_people(token, &text, args.page_url.as_deref());
    }
    let (mapping_tx, mut mapping_events) = mpsc::unbounded_channel();
    let mut keepers = Vec::new();
    for mut handle in mappings {
        let tx = mapping_tx.clone();
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        let keeper = tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = handle.next_event() => match event {
                        Some(e) => { let _ = tx.send(e); }
                        None => return,
                    },
                    _ = &mut stop => {
                        // A clean exit deletes the mapping.
                        if let Err(e) = handle.shutdown().await {
                            let _ = tx.send(MappingEvent::Failed(e));
                        }
                        return;
                    }
                }
            }
        });
        keepers.push((stop_tx, keeper));
    }
    drop(mapping_tx);
    let result = serve_dialers(args, &out, &mut served, &mut mapping_events).await;
    for (stop, keeper) in keepers {
        let _ = stop.send(());
        // Bounded: the delete request times out on its own (oneway-portmap).
        let _ = tokio::time::timeout(Duration::from_secs(3), keeper).await;
    }
    while let Ok(event) = mapping_events.try_recv() {
        out.event(mapping_event(&out, event));
    }
    result
}

/// A `mapped` event for `m`.
fn mapped_event(out: &Output, m: &oneway_endpoint::Mapping) -> PeerEvent {
    PeerEvent::Mapped {
        t_ms: out.ms(),
        protocol: m.protocol.name().to_owned(),
        external: m.external.to_string(),
        internal: m.internal.to_string(),
        lifetime_s: m.lifetime.as_secs(),
        gateway: m.gateway.ip().to_string(),
    }
}

/// The event for what a mapping's keeper reported.
fn mapping_event(out: &Output, event: MappingEvent) -> PeerEvent {
    match event {
        MappingEvent::Renewed(m) => mapped_event(out, &m),
        MappingEvent::Failed(e) => PeerEvent::MappingFailed {
            t_ms: out.ms(),
            code: e.code().to_owned(),
            reason: e.to_string(),
        },
    }
}

/// The `reachability` event.
fn reachability_event(out: &Output, r: &Reachability) -> PeerEvent {
    use oneway_portmap_names::{scope_name, via_name};
    PeerEvent::Reachability {
        t_ms: out.ms(),
        scope: scope_name(r.scope).to_owned(),
        via: via_name(&r.via).to_owned(),
        reason: r.reason.code().to_owned(),
        sentence: r.sentence.clone(),
    }
}

/// The peer contract's names for a reachability verdict's scope and way in.
mod oneway_portmap_names {
    use oneway_endpoint::reach::{Scope, Via};

    pub(super) fn scope_name(scope: Scope) -> &'static str {
        match scope {
            Scope::Internet => "internet",
            Scope::SameLanOnly => "same-lan-only",
        }
    }

    pub(super) fn via_name(via: &Via) -> &'static str {
        match via {
            Via::PublicHost { .. } => "public-host",
            Via::Mapping { .. } => "mapping",
            Via::NonFilteringNat { .. } => "non-filtering-nat",
            Via::None => "none",
        }
    }
}

/// Serves dialers until Ctrl-C or SIGTERM, printing their events and the mappings' renewals.
async fn serve_dialers(
    args: &ListenArgs,
    out: &Output,
    served: &mut Served,
    mapping_events: &mut mpsc::UnboundedReceiver<MappingEvent>,
) -> anyhow::Result<()> {
    let out = *out;
    let mut terminate = terminate_signal()?;
    let mut bridged = false;
    // Standard input: reply codes (`spec/handshake.md` §11) until a dialer is bridged to it;
    // other lines typed meanwhile wait for the bridge (at most 64 of them).
    let mut stdin = Some(stdin_lines());
    let mut typed_early: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            Some(event) = mapping_events.recv() => out.event(mapping_event(&out, event)),
            _ = terminate.recv() => return Ok(()),
            line = next_line(&mut stdin), if !bridged => match line {
                Some(line) if line.trim_start().starts_with("owr") => {
                    let _ = served.replies.send(line.trim().to_owned());
                }
                Some(line) if typed_early.len() < 64 => typed_early.push(line),
                Some(_) => {}
                None => stdin = None,
            },
            report = served.reports.recv() => match report {
                None => return Ok(()),
                Some(Report::Event(event)) => {
                    if let Some(e) = listener_event(&out, event) {
                        out.event(e);
                    }
                }
                Some(Report::Reply(outcome)) => out.event(match outcome {
                    Ok((dialer, candidates)) => PeerEvent::ReplyAccepted {
                        t_ms: out.ms(),
                        dialer,
                        candidates,
                    },
                    Err((code, reason)) => PeerEvent::ReplyRefused {
                        t_ms: out.ms(),
                        code: code.to_owned(),
                        reason,
                    },
                }),
                Some(Report::Accepted(conn)) => {
                    let info = conn.info();
                    out.event(PeerEvent::Connected {
                        t_ms: out.ms(),
                        peer: info.selected.map(|(_, remote)| remote.to_string()),
                        selected: info.selected_pair(),
                        stages: info.timings.stage_times(),
                        route: Some(info.route.as_str().to_owned()),
                    });
                    if args.echo {
                        let peer = info.selected.map(|(_, remote)| remote.to_string());
                        tokio::spawn(media::echo(conn, out, peer, args.send_media()));
                    } else if !bridged {
                        bridged = true;
                        let lines = stdin.take();
                        let early = std::mem::take(&mut typed_early);
                        tokio::spawn(async move {
                            if let Err(e) = bridge(conn, None, early, lines).await {
                                eprintln!("error: {e:#}");
                            }
                        });
                    } else {
                        conn.close("this listener bridges one dialer at a time");
                    }
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The next line of standard input, or never once it ended.
async fn next_line(lines: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match lines {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGTERM (how containers and service managers stop a listener), as a stream.
fn terminate_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")
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
            let peer = Some(peer.to_string());
            match progress {
                Progress::IceConnected => PeerEvent::IceConnected { t_ms, peer },
                Progress::DtlsConnected => PeerEvent::DtlsConnected { t_ms, peer },
                Progress::ChannelOpen => PeerEvent::ChannelOpen { t_ms, peer },
                _ => return None,
            }
        }
        _ => return None,
    })
}

pub(crate) fn print_token_for_people(token: &Token, text: &str, page_url: Option<&str>) {
    println!("{text}");
    if let Some(url) = page_url {
        println!("{}#{text}", url.trim_end_matches('#'));
    }
    if let Ok(qr) = oneway_token::qr::token_qr(token, page_url) {
        let rendered = qr
            .code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        println!("{rendered}");
    }
    eprintln!("listening; dial with: oneway dial {text}");
    eprintln!(
        "if a dialer shows a reply code (owr2.…) because it cannot reach this listener, paste it here and press Enter"
    );
}

/// Copies standard input lines (`typed_early` first, the lines typed before the connection) to
/// the data channel, and received messages to standard output.
async fn bridge(
    mut conn: Connection,
    mut channel: Option<ChannelRef>,
    mut typed_early: Vec<String>,
    mut stdin: Option<mpsc::Receiver<String>>,
) -> anyhow::Result<()> {
    loop {
        if let Some(ch) = channel {
            for line in typed_early.drain(..) {
                conn.send_text(ch, &format!("{line}\n")).await?;
            }
        }
        tokio::select! {
            line = next_line(&mut stdin), if channel.is_some() => match line {
                Some(line) => {
                    if let Some(ch) = channel {
                        conn.send_text(ch, &format!("{line}\n")).await?;
                    }
                }
                None => stdin = None,
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

/// Why `oneway dial` failed: printed, then exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("dial: {0}")]
pub struct DialFailed(pub String);

pub async fn dial_command(args: DialArgs) -> anyhow::Result<()> {
    if args.turn.is_some() && args.stack == Stack::Browser {
        anyhow::bail!(Usage(
            "--turn is implemented by the str0m and webrtc-rs dialers; use --stack str0m or webrtc-rs"
                .to_owned()
        ));
    }
    check_stack_options(
        args.stack,
        args.browser.is_set(),
        args.send_media(),
        "dialers",
    )?;
    // A token that cannot be used (malformed, invalid or expired) is refused with its
    // `spec/token.md` §8 code before `dialing`, and exits 2 (`spec/peer-contract.md` §1).
    let early = Output {
        json: args.json,
        start: Instant::now(),
    };
    let token = match usable_token(&args.input) {
        Ok(token) => token,
        Err(e) => {
            if let Some(token_error) = e.downcast_ref::<oneway_token::TokenError>() {
                early.event(PeerEvent::Refused {
                    t_ms: early.ms(),
                    peer: None,
                    code: token_error.code().to_owned(),
                    reason: token_error.to_string(),
                });
            }
            return Err(e);
        }
    };
    if args.stack == Stack::Browser {
        let config = args.browser.config()?;
        return browser_peer::dial(
            config,
            &token.to_text()?,
            args.json,
            args.probe,
            args.dial_timeout(),
        )
        .await;
    }
    if args.stack == Stack::Str0m {
        // Process start-up, before the clock of the connection starts: str0m's crypto library
        // initialises on first use (about 35 ms), a cost of the process, not of the connection.
        tokio::task::spawn_blocking(oneway_str0m::warm_up)
            .await
            .context("initialising str0m")?;
    }
    let out = Output {
        json: args.json,
        start: Instant::now(),
    };
    let turn = match &args.turn {
        Some(server) => Some(oneway_endpoint::TurnServer {
            addr: tokio::net::lookup_host(server.as_str())
                .await
                .with_context(|| format!("resolving --turn {server}"))?
                .next()
                .with_context(|| format!("--turn {server}: no address"))?,
            credentials: oneway_endpoint::TurnCredentials {
                username: args.turn_user.clone().unwrap_or_default(),
                password: args.turn_password.clone().unwrap_or_default(),
            },
        }),
        None => None,
    };
    out.event(PeerEvent::Dialing {
        t_ms: out.ms(),
        stack: match args.stack {
            Stack::WebrtcRs => oneway_webrtc::STACK,
            _ => oneway_str0m::STACK,
        }
        .to_owned(),
        candidates: candidate_strings(&token),
        startup_ms: None,
    });

    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let json = args.json;
    let start = out.start;
    let printer = tokio::spawn(async move {
        let out = Output { json, start };
        while let Some(p) = progress_rx.recv().await {
            let t_ms = out.ms();
            let event = match p {
                Progress::CandidateTried { remote, .. } => PeerEvent::CandidateTried {
                    t_ms,
                    remote: remote.to_string(),
                },
                Progress::IceConnected => PeerEvent::IceConnected { t_ms, peer: None },
                Progress::DtlsConnected => PeerEvent::DtlsConnected { t_ms, peer: None },
                Progress::ChannelOpen => PeerEvent::ChannelOpen { t_ms, peer: None },
                Progress::ReplyCode { code, candidates } => PeerEvent::ReplyCode {
                    t_ms,
                    reply: code,
                    candidates,
                },
                _ => continue,
            };
            out.event(event);
        }
    });

    let dialed = match args.stack {
        Stack::WebrtcRs => native_dial::<WebrtcRs>(&token, &args, progress_tx, turn).await,
        _ => native_dial::<Str0m>(&token, &args, progress_tx, turn).await,
    };
    // The printer ends when the last progress sender (inside the config) is gone; waiting for
    // it keeps the event lines in order.
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
        route: Some(info.route.as_str().to_owned()),
    });
    let channel = conn
        .open_channel(DATA_CHANNEL)
        .await
        .context("opening the data channel")?;
    if args.probe {
        return probe(conn, channel, &out, args.send_media(), args.media_window).await;
    }
    bridge(conn, Some(channel), Vec::new(), Some(stdin_lines())).await
}

/// The options that belong to one kind of stack, given to the other: browser options without
/// `--stack browser`, `--send-audio` or `--send-video` with it (`role`: `listeners` or
/// `dialers`).
fn check_stack_options(
    stack: Stack,
    browser_options: bool,
    media: media::SendMedia,
    role: &str,
) -> anyhow::Result<()> {
    if stack != Stack::Browser && browser_options {
        anyhow::bail!(Usage(
            "--browser, --browser-field-trials, --browser-arg and --browser-pref need --stack browser"
                .to_owned()
        ));
    }
    if media.any() && stack == Stack::Browser {
        let flag = if media.audio.is_some() {
            "--send-audio"
        } else {
            "--send-video"
        };
        anyhow::bail!(Usage(format!(
            "{flag} is implemented by the native {role}; use --stack str0m or webrtc-rs"
        )));
    }
    Ok(())
}

/// Reads the dialer's token and checks its expiry: every error here is a [`TokenError`]
/// (exit code 2) except failing to read standard input.
///
/// [`TokenError`]: oneway_token::TokenError
fn usable_token(input: &TokenInput) -> anyhow::Result<Token> {
    let (token, _) = crate::read_token(input)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    token.check_expiry(now)?;
    Ok(token)
}

/// Dials `token` with a native dialer on stack `S`.
async fn native_dial<S: oneway_endpoint::Stack>(
    token: &Token,
    args: &DialArgs,
    progress: mpsc::UnboundedSender<Progress>,
    turn: Option<oneway_endpoint::TurnServer>,
) -> Result<Connection, DialError> {
    let config = DialConfig::<S> {
        timeout: args.dial_timeout(),
        progress: Some(progress),
        turn,
        relay_only: args.relay_only,
        fast_path: !args.no_fast_path,
        ..Default::default()
    };
    oneway_endpoint::dial(token, &config).await
}

/// Sends one message and waits (at most 10 s) for it to come back. Without the echo it prints
/// `refused`: `echo-timeout`, or the code of a close that came first
/// (`spec/handshake.md` §8).
async fn probe(
    mut conn: Connection,
    channel: ChannelRef,
    out: &Output,
    media: media::SendMedia,
    media_window: Duration,
) -> anyhow::Result<()> {
    let sent_at = Instant::now();
    let payload = format!("oneway-probe {}", out.ms());
    conn.send_text(channel, &payload).await?;
    let wait = async {
        while let Some(event) = conn.next_event().await {
            match event {
                ConnectionEvent::Data { data, .. } if data == payload.as_bytes() => return Ok(()),
                ConnectionEvent::Closed { code, reason } => {
                    return Err((code.to_string(), reason.to_string()));
                }
                _ => {}
            }
        }
        Err((
            "closed-locally".to_owned(),
            "connection ended before the echo".to_owned(),
        ))
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| {
            Err((
                "echo-timeout".to_owned(),
                "connected, but the probe did not come back within 10 s".to_owned(),
            ))
        });
    if let Err((code, reason)) = outcome {
        out.event(PeerEvent::Refused {
            t_ms: out.ms(),
            peer: None,
            code: code.clone(),
            reason: reason.clone(),
        });
        anyhow::bail!(DialFailed(format!("{code}: {reason}")));
    }
    out.event(PeerEvent::FirstEcho {
        t_ms: out.ms(),
        rtt_ms: sent_at.elapsed().as_secs_f64() * 1000.0,
    });
    if media.any() {
        media::after_probe(&mut conn, out, media, media_window).await;
    }
    conn.close("probe done");
    // Let the close message leave.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_refuses_the_media_flags_and_a_native_stack_takes_them() {
        let audio = media::SendMedia {
            audio: Some(440.0),
            video: false,
        };
        let video = media::SendMedia {
            audio: None,
            video: true,
        };
        for (m, flag) in [(audio, "--send-audio"), (video, "--send-video")] {
            let e = check_stack_options(Stack::Browser, false, m, "dialers")
                .expect_err("a browser refuses it");
            assert!(e.to_string().starts_with(flag), "{e}");
            assert!(e.downcast_ref::<Usage>().is_some(), "a usage error: {e}");
            for native in [Stack::Str0m, Stack::WebrtcRs] {
                assert!(check_stack_options(native, false, m, "listeners").is_ok());
            }
        }
        assert!(
            check_stack_options(
                Stack::Browser,
                false,
                media::SendMedia::default(),
                "dialers"
            )
            .is_ok()
        );
    }
}
