//! `oneway conformance`: runs implementations from their manifests in both roles against the
//! misbehaving reference peer (`crates/oneway-conformance`) and writes, per implementation,
//! `report.md`, `report.json` and `junit.xml` (like the suite).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use oneway_conformance::checks::CHECKS;
use oneway_scenario::model;

#[derive(Args)]
pub struct ConformanceArgs {
    /// Directory of implementation manifests.
    #[arg(long, value_name = "DIR")]
    impls: Option<PathBuf>,
    /// Which implementations (manifest ids, comma-separated or repeated; default: every
    /// manifest that is not `opt_in`). `--impl browser` runs the browser peer (headless
    /// Chromium).
    #[arg(long = "impl", value_name = "ID", value_delimiter = ',')]
    impl_ids: Vec<String>,
    /// Only these checks (ids, comma-separated or repeated; see `--list`).
    #[arg(long = "check", value_name = "ID", value_delimiter = ',')]
    checks: Vec<String>,
    /// List the checks (id, role, level, spec sections) and exit.
    #[arg(long)]
    list: bool,
    /// Where reports and logs go: `<DIR>/<impl>/report.md`, `report.json`, `junit.xml` and
    /// `<check>/*.log`.
    #[arg(long, value_name = "DIR", default_value = "conformance-out")]
    out: PathBuf,
    /// The `oneway` binary that `argv[0] = "oneway"` of a manifest runs (default: this
    /// binary).
    #[arg(long, value_name = "PATH")]
    peer: Option<PathBuf>,
}

pub async fn conformance(args: ConformanceArgs) -> anyhow::Result<()> {
    if args.list {
        for c in CHECKS {
            println!(
                "{:<46} {:<6} {:<6} {}",
                c.id,
                match c.role {
                    model::Role::Listen => "listen",
                    model::Role::Dial => "dial",
                },
                c.level.name(),
                c.spec
            );
        }
        return Ok(());
    }
    let dir = crate::suite::find_dir(args.impls.clone(), "impls")?;
    let impls = model::select_impls(model::load_impls(&dir)?, &args.impl_ids)?;
    let peer = match &args.peer {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    let mut failing = Vec::new();
    for manifest in &impls {
        let out = args.out.join(&manifest.id);
        eprintln!(
            "conformance: {} ({} checks)",
            manifest.id,
            if args.checks.is_empty() {
                CHECKS.len()
            } else {
                args.checks.len()
            }
        );
        let options = oneway_conformance::Options {
            peer_binary: peer.clone(),
            out: out.clone(),
            only: args.checks.clone(),
        };
        let report = oneway_conformance::run(manifest, &options).await?;
        let md = oneway_scenario::report::write_reports(&out, &report)?;
        println!("{}", report.to_markdown());
        eprintln!(
            "{}; reports: {} (and report.json, junit.xml)",
            report.summary(),
            md.display()
        );
        if !report.conformant() {
            failing.push(manifest.id.clone());
        }
    }
    if !failing.is_empty() {
        anyhow::bail!("not conformant: {}", failing.join(", "));
    }
    Ok(())
}
