//! `oneway bench latency|capacity|throughput|tokens`: whole-system figures with a progress bar,
//! a Markdown table on standard output, and JSON and SVG files in `--out`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use oneway_bench::{Machine, Progress, StackName};
use serde::Serialize;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
    /// Directory for `<name>.json`, `<name>.md` and the SVG plots.
    #[arg(long, global = true, default_value = "bench-results")]
    out: PathBuf,
    /// Stacks to run (as listener and as dialer); default: every stack compiled in.
    #[arg(long = "stack", global = true, value_name = "STACK", value_parser = parse_stack)]
    stacks: Vec<StackName>,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Token decoded → first echo, per stage, one-way against the same stack's two-way baseline.
    Latency {
        /// Measured runs per series.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Emulate this round-trip time (e.g. `50ms`) with a delaying proxy on loopback in
        /// every path, for one-way and baseline alike; output files get a `-rtt<ms>` suffix.
        #[arg(long, value_parser = humantime::parse_duration)]
        rtt: Option<Duration>,
        /// Add the browser peer (Debian's chromium and chromedriver, or `ONEWAY_CHROMIUM` and
        /// `ONEWAY_CHROMEDRIVER`): browser → native, native → browser, browser baseline.
        #[arg(long, conflicts_with = "rtt")]
        browser: bool,
    },
    /// N dialers at once against one listener socket (handshakes/s, p50/p99, memory).
    Capacity {
        /// Burst sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        dialers: Vec<usize>,
        /// Give up on a dialer after this long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        timeout: Duration,
    },
    /// Data-channel MB/s over loopback, one connection and several.
    Throughput {
        /// Connection counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        connections: Vec<usize>,
        /// MiB each connection sends.
        #[arg(long, default_value_t = 256)]
        mib: usize,
        /// Message size in KiB.
        #[arg(long, default_value_t = 64)]
        message_kib: usize,
    },
    /// Token bytes, text length and QR version per shape, and codec rates.
    Tokens {
        /// Codec iterations per shape.
        #[arg(long, default_value_t = 200_000)]
        iterations: u32,
    },
}

fn parse_stack(name: &str) -> Result<StackName, String> {
    StackName::parse(name).ok_or_else(|| {
        let known: Vec<&str> = StackName::ALL.iter().map(|s| s.name()).collect();
        format!("unknown stack `{name}` (compiled in: {})", known.join(", "))
    })
}

/// A progress bar on standard error (hidden when it is not a terminal).
struct Bar(Option<ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed_precise}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase.to_owned());
        self.0 = Some(bar);
    }
    fn advance(&mut self, steps: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(steps);
        }
    }
    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// What every JSON file holds: the machine, the command and the report.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    machine: &'a Machine,
    command: String,
    report: &'a T,
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let stacks = if args.stacks.is_empty() {
        StackName::ALL.to_vec()
    } else {
        args.stacks.clone()
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let machine = Machine::current();
    if !machine.optimized {
        eprintln!("note: this is a debug build; figures are not representative (use --release)");
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut bar = Bar(None);
    let (name, markdown) = match args.what {
        BenchCommand::Latency { runs, rtt, browser } => {
            let browser = if browser {
                Some(oneway_browser::BrowserConfig::detect().context("--browser")?)
            } else {
                None
            };
            let config = oneway_bench::latency::LatencyConfig {
                runs,
                rtt,
                browser,
                ..Default::default()
            };
            let report = oneway_bench::latency::run(&config, &stacks, &mut bar).await?;
            let name = match rtt {
                Some(rtt) => format!("latency-rtt{}ms", rtt.as_millis()),
                None => "latency".to_owned(),
            };
            let svg = args.out.join(format!("{name}-cdf.svg"));
            oneway_bench::plot::latency_cdf(&report, &svg)?;
            write_json(&args.out, &name, &machine, &command, &report)?;
            (name, oneway_bench::markdown::latency(&report))
        }
        BenchCommand::Capacity { dialers, timeout } => {
            let config = oneway_bench::capacity::CapacityConfig {
                counts: dialers,
                timeout,
            };
            let mut tables = String::new();
            let mut reports = Vec::new();
            for &stack in &stacks {
                let report = oneway_bench::capacity::run(&config, stack, stack, &mut bar).await?;
                let svg = args.out.join(format!("capacity-{stack}.svg"));
                oneway_bench::plot::capacity_curve(&report, &svg)?;
                tables.push_str(&format!(
                    "{stack} listener, {stack} dialers:\n\n{}\n",
                    oneway_bench::markdown::capacity(&report)
                ));
                reports.push(report);
            }
            write_json(&args.out, "capacity", &machine, &command, &reports)?;
            ("capacity".to_owned(), tables)
        }
        BenchCommand::Throughput {
            connections,
            mib,
            message_kib,
        } => {
            let config = oneway_bench::throughput::ThroughputConfig {
                connections,
                bytes_per_connection: mib << 20,
                message_size: message_kib << 10,
                ..Default::default()
            };
            let mut tables = String::new();
            let mut reports = Vec::new();
            for &stack in &stacks {
                let report = oneway_bench::throughput::run(&config, stack, stack, &mut bar).await?;
                tables.push_str(&oneway_bench::markdown::throughput(&report));
                reports.push(report);
            }
            write_json(&args.out, "throughput", &machine, &command, &reports)?;
            ("throughput".to_owned(), tables)
        }
        BenchCommand::Tokens { iterations } => {
            let report = oneway_bench::tokens::run(iterations)?;
            write_json(&args.out, "tokens", &machine, &command, &report)?;
            ("tokens".to_owned(), oneway_bench::markdown::tokens(&report))
        }
    };
    let document = format!("Machine: {machine}\n\nCommand: `{command}`\n\n{markdown}");
    let md = args.out.join(format!("{name}.md"));
    std::fs::write(&md, &document).with_context(|| format!("writing {}", md.display()))?;
    println!("{document}");
    eprintln!(
        "wrote {}/{name}.{{md,json}} (and SVG plots where the benchmark has them)",
        args.out.display()
    );
    Ok(())
}

fn write_json<T: Serialize>(
    dir: &Path,
    name: &str,
    machine: &Machine,
    command: &str,
    report: &T,
) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.json"));
    let envelope = Envelope {
        machine,
        command: command.to_owned(),
        report,
    };
    std::fs::write(&path, serde_json::to_string_pretty(&envelope)?)
        .with_context(|| format!("writing {}", path.display()))
}
