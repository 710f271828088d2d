//! `oneway suite`: runs the scenario matrix in containers (`crates/oneway-scenario`) and writes
//! the Markdown, JSON and JUnit reports; `--partition K/N` runs one slice of it, and
//! `oneway suite merge` combines the slices' reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use oneway_scenario::docker::Engine;
use oneway_scenario::model::{self, Scenario};
use oneway_scenario::partition::{self, Costs, PartialInfo, Partition};
use oneway_scenario::report::{ImageInfo, Report, ScenarioInfo};
use oneway_scenario::run::{Options, Progress, Runner};
use oneway_scenario::{image, impair, merge, plan};
use tokio::sync::{mpsc, watch};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SuiteArgs {
    #[command(subcommand)]
    tool: Option<Tool>,
    /// Directory of scenario files.
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// Directory of implementation manifests.
    #[arg(long, value_name = "DIR")]
    impls: Option<PathBuf>,
    /// Which implementations (manifest ids, comma-separated or repeated; default: every
    /// manifest that is not `opt_in`, i.e. all but the browser). `--impl str0m,browser` runs
    /// the browser against str0m (and builds the browser image).
    #[arg(long = "impl", value_name = "ID", value_delimiter = ',')]
    impl_ids: Vec<String>,
    /// Which scenarios: `default` (every file), or `ci` (those marked `ci = true`).
    #[arg(long, default_value = "default", value_parser = ["default", "ci"])]
    set: String,
    /// Run only cells whose name contains this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    filter: Vec<String>,
    /// Skip cells whose name contains this text (repeatable).
    #[arg(long, value_name = "TEXT")]
    ignore: Vec<String>,
    /// Run each cell N times (pass rate with a 95 % interval, median and p95, flaky label).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: Option<u32>,
    /// Leave the last cell's containers and networks up for debugging (runs one cell at a
    /// time; each cell's are removed when the next one starts; the next run removes the last).
    #[arg(long)]
    keep: bool,
    /// Run up to N cells at the same time (each in its own subnets; default: the number of
    /// CPUs, at most 4; `--keep` runs one at a time).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: Option<u32>,
    /// Capture packets on every router (`<cell>/<router>.pcap`).
    #[arg(long)]
    capture: bool,
    /// Where to write reports, logs and captures.
    #[arg(long, value_name = "DIR", default_value = "suite-out")]
    out: PathBuf,
    /// Print the cells and exit without running anything.
    #[arg(long)]
    plan: bool,
    /// Run only the K-th of N slices of the cells (`--partition 2/3`), dealt by expected cost;
    /// the reports are partial, and `oneway suite merge` combines the N of them.
    #[arg(long, value_name = "K/N")]
    partition: Option<Partition>,
    /// With `--partition`: the cells' costs are their times in this earlier run's report.json
    /// (default: estimates from the scenarios' properties). Every partition must get the same.
    #[arg(long, value_name = "REPORT_JSON", requires = "partition")]
    costs: Option<PathBuf>,
    /// The `oneway` binary to run as the peer (default: this binary).
    #[arg(long, value_name = "PATH")]
    peer: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Tool {
    /// (Inside the impairment container) the userspace delayer used when the kernel has no
    /// netem: TUN devices plus policy routing between two interfaces.
    #[command(hide = true)]
    Impair(ImpairArgs),
    /// Combine the partial reports of `--partition K/N` runs (their `--out` directories) into
    /// the report.md, report.json and junit.xml one run of every cell would have written.
    Merge(MergeArgs),
}

#[derive(Args)]
struct MergeArgs {
    /// The partitions' output directories, each with its report.json.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,
    /// Where to write the merged reports (each partition's cell logs are copied there).
    #[arg(long, value_name = "DIR", default_value = "suite-out")]
    out: PathBuf,
}

#[derive(Args)]
struct ImpairArgs {
    /// One-way delay per direction, ms.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Jitter per direction, ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Loss per direction, percent.
    #[arg(long, default_value_t = 0.0)]
    loss_percent: f64,
    /// Inside interface (towards the dialer).
    inside: String,
    /// Outside interface (towards the router).
    outside: String,
    /// The inside subnet.
    inside_subnet: String,
}

/// Finds a directory given on the command line, in the working directory, or in the source
/// tree this binary was built from.
pub(crate) fn find_dir(given: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let here = PathBuf::from(name);
    if here.is_dir() {
        return Ok(here);
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    if source.is_dir() {
        return Ok(source);
    }
    anyhow::bail!("no {name}/ directory here; pass --{name} DIR")
}

/// One line per image: tag, cached or built, time, size, missing optional files.
fn print_built(built: &image::Built) {
    eprintln!(
        "image {} {} in {:.1} s ({} files{}){}",
        built.tag,
        if built.cached { "cached" } else { "built" },
        built.seconds,
        built.files,
        if built.bytes > 0 {
            format!(", {} MB", built.bytes / 1_000_000)
        } else {
            String::new()
        },
        if built.missing.is_empty() {
            String::new()
        } else {
            format!("; missing optional: {}", built.missing.join(", "))
        }
    );
}

/// Cells at the same time by default: one per CPU, at most 4 (most of a cell's time is spent
/// waiting on Docker and on timeouts, not computing).
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

pub async fn suite(args: SuiteArgs) -> anyhow::Result<()> {
    if let Some(Tool::Merge(a)) = args.tool {
        return merge_reports(&a);
    }
    if let Some(Tool::Impair(a)) = args.tool {
        let shape = impair::Shape {
            delay: Duration::from_millis(a.delay_ms),
            jitter: Duration::from_millis(a.jitter_ms),
            loss_percent: a.loss_percent,
        };
        impair::run(
            &a.inside,
            &a.outside,
            &a.inside_subnet,
            shape,
            "/tmp/impair.ready",
        )
        .await?;
        return Ok(());
    }
    let started = Instant::now();
    let scenario_dir = find_dir(args.scenarios.clone(), "scenarios")?;
    let impl_dir = find_dir(args.impls.clone(), "impls")?;
    let impls = model::select_impls(model::load_impls(&impl_dir)?, &args.impl_ids)?;
    let mut scenarios: Vec<Scenario> = model::load_scenarios(&scenario_dir)?;
    if args.set == "ci" {
        scenarios.retain(|s| s.ci);
    }
    let cells = plan::cells(&impls, &scenarios);
    let (cells, dropped) = plan::filter(cells, &args.filter, &args.ignore);
    let (selected, partial) = match args.partition {
        None => ((0..cells.len()).collect::<Vec<usize>>(), None),
        Some(p) => {
            let costs = match &args.costs {
                Some(path) => Costs::read(path)?,
                None => Costs::estimated(),
            };
            let per_cell = costs.of(&cells, &scenarios, &impls, args.repeat);
            let (picked, expected) = partition::select(&cells, &per_cell, p);
            let info = PartialInfo {
                partition: p,
                commit: std::env::var("ONEWAY_COMMIT")
                    .ok()
                    .filter(|c| !c.is_empty())
                    .or_else(|| partition::commit_of(&scenario_dir)),
                scenarios_digest: partition::digest_dir(&scenario_dir)?,
                manifests_digest: partition::digest_dir(&impl_dir)?,
                selection: selection(&args),
                costs: costs.source().to_owned(),
                planned: cells.iter().map(|c| c.name.clone()).collect(),
                assigned: picked.iter().map(|&i| cells[i].name.clone()).collect(),
                expected_seconds: expected,
            };
            eprintln!(
                "partition {p}: {} of {} cells, expected {:.0} s (partitions: {}; costs from {})",
                picked.len(),
                cells.len(),
                info.expected_seconds[p.index as usize - 1],
                info.expected_seconds
                    .iter()
                    .map(|s| format!("{s:.0}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                info.costs
            );
            (picked, Some(info))
        }
    };
    if args.plan {
        for c in selected.iter().map(|&i| &cells[i]) {
            println!(
                "{}{}{}",
                c.name,
                if c.media { "  [media]" } else { "" },
                c.skip
                    .as_ref()
                    .map(|s| format!("  [skip: {s}]"))
                    .unwrap_or_default()
            );
        }
        for d in &dropped {
            eprintln!("not selected: {d}");
        }
        return Ok(());
    }
    if cells.is_empty() {
        anyhow::bail!("no cell matches (see --plan)");
    }
    // From here on, the cells this run runs (a partition may have none: it still writes its
    // partial report, which merge needs).
    let numbered: Vec<(usize, &plan::Cell)> = selected.iter().map(|&i| (i, &cells[i])).collect();
    let cells: Vec<plan::Cell> = numbered.iter().map(|(_, c)| (*c).clone()).collect();
    let peer = match &args.peer {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64 & 0xff_ffff)
    );

    let (cancel_tx, cancel_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: tearing down the running cells' containers");
            let _ = cancel_tx.send(true);
        }
    });

    let needs_docker = cells.iter().any(|c| {
        c.skip.is_none()
            && scenarios
                .iter()
                .any(|s| s.name == c.scenario && !s.loopback)
    });
    let mut engine = None;
    let mut no_docker = None;
    if needs_docker {
        match Engine::connect(&run_id).await {
            Ok(e) => engine = Some(e),
            Err(e) => {
                eprintln!("{e}: running the loopback cells only; container cells are skipped");
                no_docker = Some(e.to_string());
            }
        }
    }

    let hidden = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut image_info = None;
    let mut has_turnserver = false;
    let mut has_tcpdump = false;
    let mut browser_image = None;
    if let Some(engine) = &engine {
        let swept = engine.sweep(false).await?;
        if swept > 0 {
            eprintln!("removed {swept} containers/networks left by earlier runs");
        }
        let spinner = ProgressBar::new_spinner();
        if hidden {
            spinner.set_draw_target(ProgressDrawTarget::hidden());
        }
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner.set_message("image: start");
        let step = |s: &str| {
            spinner.set_message(format!("image: {s}"));
            if hidden {
                eprintln!("image: {s}");
            }
        };
        let (built, rootfs) = image::ensure(engine, &peer, image::Variant::Base, &step).await?;
        spinner.finish_and_clear();
        print_built(&built);
        has_turnserver = rootfs.has("turnserver");
        has_tcpdump = rootfs.has("tcpdump");
        image_info = Some(ImageInfo {
            tag: built.tag,
            cached: built.cached,
            seconds: built.seconds,
        });
        // The browser variant, only when a cell that runs will use it.
        let wants_browser = cells.iter().any(|c| {
            c.skip.is_none()
                && impls.iter().any(|i| {
                    (i.id == c.dialer || i.id == c.listener)
                        && image::Variant::from_image(&i.image) == Some(image::Variant::Browser)
                })
        });
        if wants_browser {
            let spinner = ProgressBar::new_spinner();
            if hidden {
                spinner.set_draw_target(ProgressDrawTarget::hidden());
            }
            spinner.enable_steady_tick(Duration::from_millis(120));
            let step = |s: &str| {
                spinner.set_message(format!("browser image: {s}"));
                if hidden {
                    eprintln!("browser image: {s}");
                }
            };
            let (built, _) = image::ensure(engine, &peer, image::Variant::Browser, &step).await?;
            spinner.finish_and_clear();
            print_built(&built);
            browser_image = Some(built.tag);
        }
    }

    let total_runs: u64 = cells
        .iter()
        .map(|c| {
            let s = scenarios.iter().find(|s| s.name == c.scenario);
            u64::from(args.repeat.or(s.and_then(|s| s.repeat)).unwrap_or(1))
        })
        .sum();
    let bar = ProgressBar::new(total_runs);
    if hidden {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let first_cell = std::sync::Arc::new(std::sync::Mutex::new(None::<f64>));
    let printer = {
        let bar = bar.clone();
        let first_cell = first_cell.clone();
        tokio::spawn(async move {
            while let Some(p) = progress_rx.recv().await {
                match p {
                    Progress::RunStarted { cell, repeat } => {
                        if let Ok(mut f) = first_cell.lock() {
                            f.get_or_insert(started.elapsed().as_secs_f64());
                        }
                        bar.set_message(format!("{cell} #{repeat}"));
                    }
                    Progress::RunFinished { cell, verdict } => {
                        bar.inc(1);
                        bar.println(format!("{} {cell}: {}", verdict.mark(), verdict.name()));
                        if hidden {
                            eprintln!("{} {cell}: {}", verdict.mark(), verdict.name());
                        }
                    }
                    Progress::Image(s) | Progress::Note(s) => {
                        bar.println(s.clone());
                        if hidden {
                            eprintln!("{s}");
                        }
                    }
                }
            }
        })
    };
    let mut rerun_prefix = String::from("oneway suite");
    if let Some(d) = &args.scenarios {
        rerun_prefix.push_str(&format!(" --scenarios {}", d.display()));
    }
    if let Some(d) = &args.impls {
        rerun_prefix.push_str(&format!(" --impls {}", d.display()));
    }
    if !args.impl_ids.is_empty() {
        rerun_prefix.push_str(&format!(" --impl {}", args.impl_ids.join(",")));
    }
    rerun_prefix.push_str(&format!(" --out {}", args.out.display()));
    let runner = Runner {
        options: Options {
            peer_binary: peer,
            repeat: args.repeat,
            keep: args.keep,
            capture: args.capture,
            out: args.out.clone(),
            rerun_prefix,
            jobs: args.jobs.map_or_else(default_jobs, |j| j as usize),
        },
        impls: &impls,
        scenarios: &scenarios,
        engine: engine.clone(),
        no_engine_reason: no_docker.clone(),
        image: image_info.as_ref().map(|i| i.tag.clone()),
        browser_image,
        has_turnserver,
        has_tcpdump,
        progress: progress_tx,
        cancel: cancel_rx.clone(),
    };
    let results = runner.run_at(&numbered).await;
    drop(runner);
    let _ = printer.await;
    bar.finish_and_clear();
    if let Some(engine) = &engine
        && !args.keep
    {
        engine.sweep(true).await?;
    }
    let interrupted = *cancel_rx.borrow();
    let first_cell_after = first_cell.lock().ok().and_then(|f| *f);
    let report = Report {
        format: 1,
        seconds: started.elapsed().as_secs_f64(),
        first_cell_after,
        image: image_info,
        no_docker,
        impls: impls.iter().map(|i| i.id.clone()).collect(),
        scenarios: scenarios
            .iter()
            .map(|s| ScenarioInfo {
                name: s.name.clone(),
                description: s.description.clone(),
            })
            .collect(),
        cells: results,
        interrupted,
        partition: partial,
    };
    let md = write_reports(&args.out, &report)?;
    println!("{}", report.to_markdown());
    eprintln!(
        "{}; {}; reports: {} (and report.json, junit.xml)",
        report.summary(),
        report.prediction_summary(),
        md.display()
    );
    fail_on_deviations(&report)
}

/// Writes `report.md`, `report.json` and `junit.xml` into `out`; returns the Markdown's path.
fn write_reports(out: &Path, report: &Report) -> anyhow::Result<PathBuf> {
    Ok(oneway_scenario::report::write_reports(out, report)?)
}

/// An error (exit 1) naming how many cells deviate, if any does.
fn fail_on_deviations(report: &Report) -> anyhow::Result<()> {
    if !report.green() {
        anyhow::bail!(
            "{} cells deviate from their expectation",
            report
                .cells
                .iter()
                .filter(|c| !c.verdict.is_green())
                .count()
        );
    }
    Ok(())
}

/// The options that choose the cells and their runs, as partial reports record them.
fn selection(args: &SuiteArgs) -> String {
    format!(
        "--set {} --impl {:?} --filter {:?} --ignore {:?} --repeat {}",
        args.set,
        args.impl_ids,
        args.filter,
        args.ignore,
        args.repeat
            .map_or_else(|| "-".to_owned(), |r| r.to_string())
    )
}

/// `oneway suite merge`: reads each directory's report.json, merges them (refusing partial
/// reports that do not belong together), copies the cells' logs and writes the three reports.
fn merge_reports(args: &MergeArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    for dir in &args.dirs {
        let report = Report::read(&dir.join("report.json"))?;
        inputs.push(merge::Input {
            name: dir.display().to_string(),
            report,
        });
    }
    let report = merge::merge(&inputs)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for dir in &args.dirs {
        let from = dir.join("cells");
        if from.is_dir() && !same_dir(dir, &args.out) {
            copy_tree(&from, &args.out.join("cells"))?;
        }
    }
    let md = write_reports(&args.out, &report)?;
    eprintln!(
        "merged {} partial reports: {}; {}; reports: {} (and report.json, junit.xml)",
        inputs.len(),
        report.summary(),
        report.prediction_summary(),
        md.display()
    );
    fail_on_deviations(&report)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}
