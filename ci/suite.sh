#!/usr/bin/env bash
# Runs the scenario matrix: `ci/suite.sh` (the default set, every cell), or
# `ci/suite.sh --set ci` (the small set the test command also runs), plus any `oneway suite`
# flags (`--filter`, `--repeat N`, `--capture`, `--keep`, `--out DIR`). Needs a Docker engine and
# the packages of ci/install.sh (nftables, coturn, tcpdump); reports go to suite-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
cargo build -q -p oneway-cli --locked
target="${CARGO_TARGET_DIR:-target}"
"$target/debug/oneway" suite "$@"
echo "== ci/suite.sh finished in $(( $(date +%s) - start ))s"
