//! The oneway scenario runner: LAN/NAT topologies in containers, the interop matrix, fallback
//! order and setup latency (`oneway suite`).
//!
//! ```text
//!  impls/*.toml ─┐                        ┌─ Docker (bollard via testcontainers):
//!                ├─ plan ─ cells ─ run ───┤   networks, routers with nftables, coturn,
//! scenarios/*.toml┘   (pure)      │       │   peers as `docker exec` in their host containers
//!                                 │       └─ or loopback processes when Docker is absent
//!                                 ▼
//!                    Report ─ Markdown matrix, JSON, JUnit XML
//! ```
//!
//! - [`model`]: implementation manifests and scenario files (declarative, TOML).
//! - [`plan`]: scenario × implementation pairs → cells, with stable names and `--filter`.
//! - [`topology`]: a scenario's topology → networks, hosts, routes and nftables rule sets.
//! - [`run`]: brings each cell up, runs both peers, records what they print, tears down.
//! - [`verdict`]: a cell's outcome against its expectation; repeat statistics.
//! - [`media`]: the media check of a cell (audio and video both ways), sans-IO.
//! - [`report`]: the three renderings of one [`report::Report`].
//! - [`partition`]: `--partition K/N`, a cost-balanced slice of the cells, and what a partial
//!   report carries; [`merge`]: partial reports → the report of one whole run.
//!
//! Errors come from bad input or the engine and are returned; nothing here panics on input.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod docker;
pub mod image;
pub mod impair;
pub mod media;
pub mod merge;
pub mod model;
pub mod partition;
pub mod plan;
pub mod prediction;
pub mod report;
pub mod run;
pub mod topology;
pub mod verdict;

use std::path::PathBuf;

/// Everything that can stop the suite (a failing cell is a result, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A manifest or scenario file is not valid TOML of the expected shape.
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest or scenario file parsed but says something impossible.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No Docker engine answered.
    #[error("no Docker engine reachable ({0})")]
    NoDocker(String),
    /// The Docker engine refused or failed a call.
    #[error("docker: {0}")]
    Docker(String),
    /// The image could not be built.
    #[error("image: {0}")]
    Image(String),
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}
