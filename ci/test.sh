#!/usr/bin/env bash
# The project's test command (README, .ci/run). Runs every test target of the workspace,
# the doc tests, and compiles the benches (criterion runs each benchmark once in test mode).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
