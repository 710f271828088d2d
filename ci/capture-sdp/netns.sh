# Shared by the capture scripts: a throwaway network namespace whose only interfaces are lo and
# one interface carrying the documentation addresses 192.0.2.10/24 (RFC 5737) and 2001:db8::10/64
# (RFC 3849), with default routes into it, so nothing a stack sends can leave the namespace.
# Usage: source netns.sh; cleanup_on_exit NAME TMPDIR; make_capture_netns NAME

ns_created=0

# On any exit (also Ctrl-C or a failed step): delete the namespace if it was made, and TMPDIR.
cleanup_on_exit() {
    _cleanup_ns="$1"
    _cleanup_dir="$2"
    trap '_rc=$?; if [ "$ns_created" = 1 ]; then ip netns del "$_cleanup_ns" 2>/dev/null || echo "warning: could not delete netns $_cleanup_ns" >&2; fi; rm -rf "$_cleanup_dir"; exit "$_rc"' EXIT
    trap 'exit 130' INT TERM
}

make_capture_netns() {
    local ns="$1" ifname
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

}
