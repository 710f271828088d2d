//! `oneway`: one-way WebRTC bootstrap without a signalling server.
//!
//! The binary is thin: it parses arguments, calls the library crates and formats their output.
//! Exit codes: 0 success, 2 bad input (a malformed, invalid or expired token, or bad
//! arguments), 1 any other failure.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use oneway_token::inspect::Inspection;
use oneway_token::qr::{QrError, token_qr};
use oneway_token::reply::{AnyReply, ReplyError, ReplyInspection};
use oneway_token::{TextForm, Token, TokenError};

mod bench;
mod conformance;
mod peer;
mod peer_image;
mod suite;

#[derive(Parser)]
#[command(
    name = "oneway",
    version,
    about = "Connect WebRTC peers with a one-way token: no signalling server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a token and show every field, the derived ICE credentials, sizes and implied SDP;
    /// or decode a reply code (`owr1.…`, `owr2.…`) and show its fields.
    Inspect(InspectArgs),
    /// Show a token as a QR code in the terminal, or write it as PNG/SVG.
    Qr(QrArgs),
    /// Issue a token and accept dialers (like `nc -l`: bridges stdin/stdout, or `--echo`).
    Listen(peer::ListenArgs),
    /// Connect to the listener of a token (bridges stdin/stdout, or `--probe`).
    Dial(peer::DialArgs),
    /// Run the scenario matrix: LAN/NAT topologies in containers, every implementation pair,
    /// verdicts against expectations; Markdown, JSON and JUnit reports.
    Suite(Box<suite::SuiteArgs>),
    /// Check an implementation (from its manifest) in both roles against a reference peer
    /// that misbehaves on purpose; each check cites its spec section and MUST/SHOULD level
    /// (Markdown, JSON and JUnit reports).
    Conformance(conformance::ConformanceArgs),
    /// Measure connect latency against the signalled baseline, listener capacity, throughput
    /// and token sizes (Markdown, JSON and SVG output).
    Bench(bench::BenchArgs),
    /// Build a `FROM scratch` image for a peer from host files and their shared libraries
    /// (no registry, no Dockerfile): `oneway image --tag mypeer:1 /usr/bin/python3 ...`.
    Image(peer_image::ImageArgs),
}

/// Arguments that cannot work together (for example a flag the chosen stack does not
/// implement): printed as `usage: …`, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub(crate) String);

/// Where the token comes from.
#[derive(Args)]
pub(crate) struct TokenInput {
    /// The token (`ow1.…`, `OW1.…`) or a URL whose fragment holds it; `-` reads standard input.
    token: String,
    /// Read TOKEN as the hex of the binary form instead of a text form.
    #[arg(long)]
    hex: bool,
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    input: TokenInput,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Judge expiry at this Unix time (seconds) instead of the system clock.
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<u64>,
    /// When the input is a version-2 reply code (`owr2.…`): the token it answers, whose reply
    /// key verifies its tag (and whose holder's clock judges its age).
    #[arg(long, value_name = "TOKEN")]
    reply_for: Option<String>,
}

#[derive(Args)]
struct QrArgs {
    #[command(flatten)]
    input: TokenInput,
    /// Encode `<URL>#OW1.…` so a phone opens this page with the token in its fragment.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Also write the code as a PNG image to FILE.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Also write the code as an SVG image to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `rtc_dtls::config` warns on every webrtc-rs dial that it has no server name; oneway
    // authenticates by fingerprint, so that line is noise.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,rtc_dtls::config=error")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(token_error) = error.downcast_ref::<TokenError>() {
                eprintln!("token: {token_error}");
                ExitCode::from(2)
            } else if let Some(reply_error) = error.downcast_ref::<ReplyError>() {
                eprintln!("reply code: {reply_error}");
                ExitCode::from(2)
            } else if let Some(usage) = error.downcast_ref::<Usage>() {
                eprintln!("usage: {usage}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {error:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect(args) => inspect(args),
        Command::Qr(args) => qr(args),
        Command::Listen(args) => block_on_stdin(peer::listen(args)),
        Command::Dial(args) => block_on_stdin(peer::dial_command(args)),
        Command::Suite(args) => runtime()?.block_on(suite::suite(*args)),
        Command::Bench(args) => runtime()?.block_on(bench::bench(args)),
        Command::Image(args) => runtime()?.block_on(peer_image::image(args)),
        Command::Conformance(args) => runtime()?.block_on(conformance::conformance(args)),
    }
}

/// Runs a command that may bridge standard input, then drops the runtime without waiting for
/// its blocking tasks: tokio reads stdin on a blocking thread that only ends when a line or EOF
/// arrives, so an interrupted `listen`/`dial` would otherwise hang until the user pressed Enter.
fn block_on_stdin<F: std::future::Future<Output = anyhow::Result<()>>>(
    command: F,
) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(command);
    runtime.shutdown_background();
    result
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn read_token(input: &TokenInput) -> anyhow::Result<(Token, Option<TextForm>)> {
    token_from_text(input, read_input(input)?)
}

/// The input's text: the argument, or standard input for `-`.
fn read_input(input: &TokenInput) -> anyhow::Result<String> {
    let mut text = input.token.clone();
    if text == "-" {
        text.clear();
        std::io::stdin()
            .take(oneway_token::MAX_TEXT_LEN as u64 + 1)
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
    }
    Ok(text)
}

fn token_from_text(input: &TokenInput, text: String) -> anyhow::Result<(Token, Option<TextForm>)> {
    if input.hex {
        let bytes = parse_hex(text.trim())?;
        return Ok((Token::from_bytes(&bytes)?, None));
    }
    let (bytes, form) = oneway_token::text_to_bytes(&text)?;
    Ok((Token::from_bytes(&bytes)?, Some(form)))
}

fn parse_hex(text: &str) -> Result<Vec<u8>, TokenError> {
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some((position, &found)) = digits
        .iter()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit())
    {
        return Err(TokenError::InvalidCharacter {
            alphabet: "hex",
            found,
            position,
        });
    }
    if !digits.len().is_multiple_of(2) {
        return Err(TokenError::InvalidTextLength { alphabet: "hex" });
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .fold(0u8, |acc, c| acc << 4 | c.to_digit(16).unwrap_or(0) as u8)
        })
        .collect())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let text = read_input(&args.input)?;
    let now = args.now.unwrap_or_else(unix_now);
    if !args.input.hex && text.trim_start().starts_with("owr") {
        return inspect_reply(&args, &text, now);
    }
    let (token, form) = token_from_text(&args.input, text)?;
    let report = Inspection::new(&token, form, now);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    // The full report is printed first, so an expired token can still be examined.
    token.check_expiry(now)?;
    Ok(())
}

/// `oneway inspect owr1.…|owr2.… [--reply-for TOKEN]` (`spec/token.md` §12).
fn inspect_reply(args: &InspectArgs, text: &str, now: u64) -> anyhow::Result<()> {
    let reply = AnyReply::from_text(text)?;
    let verified = match (&reply, &args.reply_for) {
        (AnyReply::Candidates(code), Some(token)) => {
            let token = Token::from_text(token)?;
            Some(code.verify(&token.derive().reply_key, now))
        }
        _ => None,
    };
    let report = ReplyInspection::new(&reply, text, now, verified.as_ref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    // As for tokens, the report comes first, so a refused code can still be examined.
    if let Some(result) = verified {
        result?;
    }
    Ok(())
}

fn qr(args: QrArgs) -> anyhow::Result<()> {
    let (token, _) = read_token(&args.input)?;
    let qr = token_qr(&token, args.url.as_deref()).map_err(|e| match e {
        QrError::Token(t) => anyhow::Error::new(t),
        other => anyhow::Error::new(other),
    })?;
    let terminal = qr
        .code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build();
    println!("{terminal}");
    println!(
        "QR version {} ({}×{} modules, level M), {} payload characters",
        qr.version,
        qr.modules,
        qr.modules,
        qr.payload.len()
    );
    println!("{}", qr.payload);
    if let Some(path) = &args.svg {
        let svg = qr
            .code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build();
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.png {
        let image = qr
            .code
            .render::<image::Luma<u8>>()
            .min_dimensions(256, 256)
            .build();
        image
            .save(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
