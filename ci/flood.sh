#!/usr/bin/env bash
# The full flood run of spec/security.md §4: ~10 000 datagrams/s of unknown-USERNAME STUN,
# bad-integrity STUN and DTLS garbage for SECONDS (default 10) while a legitimate dialer connects.
# Prints the flood rate achieved, connect times with and without the flood, and RSS.
#   ci/flood.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ONEWAY_FLOOD_SECS="${1:-10}"
log="$(mktemp)"
if cargo test --locked -p oneway-str0m --test flood -- --ignored --nocapture full_flood_does_not_stop_a_legitimate_dialer >"$log" 2>&1; then
  grep -E '^(flood:|test |test result)' "$log"
else
  tail -60 "$log" >&2
  exit 1
fi
