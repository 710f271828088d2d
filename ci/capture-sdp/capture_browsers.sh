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
#   CARGO_TARGET_DIR    default /var/tmp/oneway-capture-target
#   BUILD_TIMEOUT       seconds, default 1500 (clean build is ~2.5 min on 2 cores)
#   RUN_TIMEOUT         seconds, default 60
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
outdir="${1:-$repo/crates/oneway-token/tests/fixtures/sdp}"
ns=owcapb
run_timeout="${RUN_TIMEOUT:-240}"

tmpout="$(mktemp -d /tmp/oneway-capture-browsers.XXXXXX)"
ns_created=0

cleanup() {
    local rc=$?
    if [ "$ns_created" = 1 ]; then
        ip netns del "$ns" 2>/dev/null || echo "warning: could not delete netns $ns" >&2
    fi
    rm -rf "$tmpout"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== network namespace $ns" >&2
if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    echo "error: netns $ns already exists (stale run?); remove it with: ip netns del $ns" >&2
    exit 1
fi
ip netns add "$ns"
ns_created=1
ip -n "$ns" link set lo up
# Prefer a dummy interface. Where the kernel has no `dummy` link type (e.g. some
# containers), use a veth pair with BOTH ends inside the namespace: whatever is sent
# out of owcap0 arrives at owcap1 (no addresses, forwarding off) and goes nowhere.
if ip -n "$ns" link add dummy0 type dummy 2>/dev/null; then
    ifname=dummy0
else
    echo "note: no 'dummy' link type; using an in-namespace veth pair instead" >&2
    ifname=owcap0
    ip -n "$ns" link add owcap0 type veth peer name owcap1
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.owcap1.disable_ipv6=1 || true
    ip -n "$ns" link set owcap1 up
fi
ip -n "$ns" addr add 192.0.2.10/24 dev "$ifname"
ip -n "$ns" addr add 2001:db8::10/64 dev "$ifname" nodad
ip -n "$ns" link set "$ifname" up
ip -n "$ns" route add default dev "$ifname"
ip -n "$ns" -6 route add default dev "$ifname"
ip -n "$ns" addr show >&2

echo "== capture" >&2
timeout --kill-after=5 "$run_timeout" ip netns exec "$ns" python3 "$here/capture_browsers.py" "$tmpout"
mkdir -p "$outdir"
cp "$tmpout"/*.sdp "$outdir"/
ls -l "$outdir" >&2
