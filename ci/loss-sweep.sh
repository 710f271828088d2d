#!/usr/bin/env bash
# Dials a listener through a lossy loopback proxy at increasing loss levels and prints, for each
# stack pair, how many dials connected and echoed at each level and their median connect time
# (the shared body `oneway_testkit::churn::loss_sweep`, run by the ignored `loss_sweep*` tests
# of crates/oneway-endpoint/tests/churn.rs).
#   ci/loss-sweep.sh [DIALS_PER_LEVEL] [LEVELS] [PAIRS]
#   e.g. ci/loss-sweep.sh 10 0,0.05,0.1,0.2,0.3 str0m,webrtc-rs,str0m-webrtc-rs
# PAIRS (default all three): str0m (str0m → str0m), webrtc-rs (webrtc-rs → webrtc-rs),
# str0m-webrtc-rs (str0m dialer → webrtc-rs listener).
set -euo pipefail
cd "$(dirname "$0")/.."
export ONEWAY_SWEEP_DIALS="${1:-10}"
[ -n "${2:-}" ] && export ONEWAY_SWEEP_LEVELS="$2"
pairs="${3:-str0m,webrtc-rs,str0m-webrtc-rs}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run() { # TEST
  if cargo test --locked -p oneway-endpoint --test churn -- --ignored --exact --nocapture "$1" >"$log" 2>&1; then
    grep -E '^(sweep |test result)' "$log"
  else
    tail -60 "$log" >&2
    exit 1
  fi
}
IFS=, read -ra wanted <<<"$pairs"
for pair in "${wanted[@]}"; do
  case "$pair" in
    str0m) run str0m::loss_sweep ;;
    webrtc-rs) run webrtc_rs::loss_sweep ;;
    str0m-webrtc-rs) run mixed::loss_sweep_str0m_dialer ;;
    *) echo "unknown pair $pair (str0m, webrtc-rs, str0m-webrtc-rs)" >&2; exit 2 ;;
  esac
done
