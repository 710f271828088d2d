#!/usr/bin/env bash
# Dials a listener through a lossy loopback proxy at increasing loss levels and prints how many
# dials connected and echoed at each (crates/oneway-str0m/tests/churn.rs, `loss_sweep`).
#   ci/loss-sweep.sh [DIALS_PER_LEVEL] [LEVELS]     e.g. ci/loss-sweep.sh 10 0,0.1,0.2,0.3
set -euo pipefail
cd "$(dirname "$0")/.."
export ONEWAY_SWEEP_DIALS="${1:-10}"
[ -n "${2:-}" ] && export ONEWAY_SWEEP_LEVELS="$2"
log="$(mktemp)"
if cargo test --locked -p oneway-str0m --test churn -- --ignored --nocapture loss_sweep >"$log" 2>&1; then
  grep -E '^(loss |test |test result)' "$log"
else
  tail -60 "$log" >&2
  exit 1
fi
