#!/usr/bin/env bash
# Capture real, complete (non-trickle) SDP offers from str0m 0.25 and webrtc-rs 0.21
# as oneway-token test fixtures.
#
# Usage (as root, needs `ip netns`):
#   ci/capture-sdp/capture_native.sh [OUTDIR]
# OUTDIR defaults to crates/oneway-token/tests/fixtures/sdp.
#
# Network rule: the capture binary runs inside a throwaway network namespace whose only
# interfaces are lo and a dummy interface (or an in-namespace veth pair) carrying RFC 5737 / RFC 3849 documentation
# addresses (192.0.2.10, 2001:db8::10). No STUN/TURN server is configured, so nothing
# leaves the namespace; a dummy interface drops whatever is sent to it anyway, and
# the veth fallback keeps both ends inside the namespace.
# Only the build (cargo, outside the namespace) talks to the package registry.
#
# Environment:
#   CARGO_TARGET_DIR    default /var/tmp/oneway-capture-target
#   BUILD_TIMEOUT       seconds, default 1500 (clean build is ~2.5 min on 2 cores)
#   RUN_TIMEOUT         seconds, default 60
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=netns.sh
source "$here/netns.sh"
repo="$(cd "$here/../.." && pwd)"
crate_dir="$here/native"
outdir="${1:-$repo/crates/oneway-token/tests/fixtures/sdp}"
ns=owcapn
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/oneway-capture-target}"
build_timeout="${BUILD_TIMEOUT:-1500}"
run_timeout="${RUN_TIMEOUT:-60}"

tmpout="$(mktemp -d /tmp/oneway-capture-native.XXXXXX)"
cleanup_on_exit "$ns" "$tmpout"

echo "== build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
timeout --kill-after=30 "$build_timeout" \
    cargo build --locked --manifest-path "$crate_dir/Cargo.toml" --bin capture-native-sdp
bin="$CARGO_TARGET_DIR/debug/capture-native-sdp"
[ -x "$bin" ] || { echo "error: $bin not built" >&2; exit 1; }

make_capture_netns "$ns"

echo "== capture" >&2
timeout --kill-after=5 "$run_timeout" ip netns exec "$ns" "$bin" "$tmpout"

mkdir -p "$outdir"
for f in str0m-datachannel.sdp str0m-datachannel-lite.sdp webrtc-rs-datachannel.sdp; do
    [ -s "$tmpout/$f" ] || { echo "error: $f missing or empty" >&2; exit 1; }
    cp "$tmpout/$f" "$outdir/$f"
    echo "wrote $outdir/$f" >&2
done
