//! `oneway image`: builds a `FROM scratch` image for a third-party peer from host files, the
//! way the suite builds its own (`oneway_scenario::image::build_custom`), for an implementer
//! with no registry and no base image (`docs/implementers.md`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use oneway_scenario::docker::Engine;
use oneway_scenario::image::{ImageEntry, build_custom};

#[derive(Args)]
pub(crate) struct ImageArgs {
    /// Tag of the image to build (`name:version`); an image with this tag is replaced.
    #[arg(long, value_name = "NAME:VERSION")]
    tag: String,
    /// A file listing entries, one per line (`#` comments, also after white space); relative
    /// host paths are relative to the list's directory.
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Entries: `HOST_PATH` (same path in the image) or `IMAGE_PATH=HOST_PATH`; a directory
    /// adds every file under it. The shared libraries of every ELF file are added (`ldd`).
    #[arg(value_name = "ENTRY")]
    entries: Vec<String>,
}

pub(crate) async fn image(args: ImageArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let mut entries = Vec::new();
    if let Some(list) = &args.list {
        let text =
            std::fs::read_to_string(list).with_context(|| format!("reading {}", list.display()))?;
        let base = list
            .parent()
            .map(|p| cwd.join(p))
            .unwrap_or_else(|| cwd.clone());
        entries.extend(ImageEntry::parse_list(&text, &base)?);
    }
    for spec in &args.entries {
        entries.push(ImageEntry::parse(spec, &cwd)?);
    }
    if entries.is_empty() {
        anyhow::bail!(crate::Usage(
            "give entries (HOST_PATH or IMAGE_PATH=HOST_PATH) or --list FILE".to_owned()
        ));
    }
    let engine = Engine::connect("image").await?;
    let built = build_custom(&engine, &entries, &args.tag).await?;
    println!(
        "image {} built in {:.1} s ({} files, {} MB)",
        built.tag,
        built.seconds,
        built.files,
        built.bytes / 1_000_000
    );
    Ok(())
}
