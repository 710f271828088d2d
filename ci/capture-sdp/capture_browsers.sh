#!/usr/bin/env bash
# Capture real, complete (non-trickle) SDP offers from Chromium and Firefox (Debian packages)
# as oneway-token test fixtures.
#
# Usage (as root, needs `ip netns`):
#   ci/capture-sdp/capture_browsers.sh [OUTDIR]   (needs chromium, chromium-driver, firefox-esr)
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
#   RUN_TIMEOUT         seconds, default 240
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=netns.sh
source "$here/netns.sh"
repo="$(cd "$here/../.." && pwd)"
outdir="${1:-$repo/crates/oneway-token/tests/fixtures/sdp}"
ns=owcapb
run_timeout="${RUN_TIMEOUT:-240}"

tmpout="$(mktemp -d /tmp/oneway-capture-browsers.XXXXXX)"
cleanup_on_exit "$ns" "$tmpout"

make_capture_netns "$ns"

echo "== capture" >&2
timeout --kill-after=5 "$run_timeout" ip netns exec "$ns" python3 "$here/capture_browsers.py" "$tmpout"
mkdir -p "$outdir"
cp "$tmpout"/*.sdp "$outdir"/
ls -l "$outdir" >&2
