#!/usr/bin/env bash
# The full flood run of spec/security.md §4: ~10 000 datagrams/s of unknown-USERNAME STUN,
# bad-integrity STUN and DTLS garbage for SECONDS (default 10) while a legitimate dialer connects,
# against the str0m listener and then the webrtc-rs listener. Prints the flood rate achieved,
# connect times with and without the flood, the per-source limiter's counts, and RSS.
#   ci/flood.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export ONEWAY_FLOOD_SECS="${1:-10}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run() {
  if cargo test --locked "$@" >"$log" 2>&1; then
    grep -E '^(str0m flood:|webrtc-rs flood:|test |test result)' "$log"
  else
    tail -60 "$log" >&2
    exit 1
  fi
}
# One test floods each stack's listener in turn (str0m, then webrtc-rs).
run -p oneway-endpoint --test flood -- --nocapture --exact flood_does_not_stop_a_legitimate_dialer
