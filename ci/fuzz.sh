#!/usr/bin/env bash
# Runs fuzz targets for SECONDS each (default 60) and prints the executions each ran.
#
#   ci/fuzz.sh [SECONDS] [TARGET...]      # no TARGET: every target of `cargo fuzz list`
#   FUZZ_PARALLEL=1 ci/fuzz.sh 3600       # every target at once, one process each
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); uses RUSTC_BOOTSTRAP=1 so the stable toolchain
# builds with sanitizers. Seed corpora in fuzz/corpus/<target>/ are (re)generated from
# spec/vectors/*.json and the SDP fixtures. Logs: $FUZZ_LOG_DIR (default /tmp)/oneway-fuzz-<target>.log.
# Exits non-zero if any target found a crash, a hang (an input running over FUZZ_TIMEOUT s) or
# an allocation over FUZZ_RSS_MB; the reproducer is in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
shift || true
command -v cargo-fuzz >/dev/null || { echo "fuzz: install cargo-fuzz first (cargo install cargo-fuzz)" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
log_dir="${FUZZ_LOG_DIR:-/tmp}"
timeout_s="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-1024}"
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

python3 - <<'PY'
import json, pathlib
root = pathlib.Path("..")
def put(target, name, data):
    d = pathlib.Path("corpus") / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)
valid = json.loads((root / "spec/vectors/valid.json").read_text())["vectors"]
for v in valid:
    put("token_decode", v["name"], bytes.fromhex(v["binary_hex"]))
    put("token_text", v["name"], v["text"].encode())
    put("token_text", v["name"] + "-qr", v["qr_text"].encode())
for v in json.loads((root / "spec/vectors/invalid.json").read_text())["vectors"]:
    put("token_text", v["name"], v["input"].encode())
for v in json.loads((root / "spec/vectors/reply-code.json").read_text())["vectors"]:
    put("reply_text", v["name"], v["text"].encode())
sdps = sorted((root / "crates/oneway-token/tests/fixtures/sdp").glob("*.sdp"))
for f in sdps:
    put("sdp_offer", f.stem, f.read_bytes())

# Channel-0 messages (spec/handshake.md §6): one of each type, with values from the vectors.
def msg(**fields):
    return json.dumps({"v": 1, **fields}, separators=(",", ":")).encode()
put("signal_message", "proof-zero", msg(type="proof", mac="A" * 43))
for v in valid:
    d = v["derived"]
    mac = __import__("base64").urlsafe_b64encode(bytes.fromhex(d["auth_key_hex"])).rstrip(b"=").decode()
    put("signal_message", f"proof-{v['name']}", msg(type="proof", mac=mac))
    put("signal_message", f"ice-restart-{v['name']}", msg(type="ice-restart", ufrag=d["token_ufrag"], pwd=d["listener_pwd"]))
    put("signal_message", f"ice-restart-answer-{v['name']}", msg(type="ice-restart-answer", ufrag=d["token_ufrag"], pwd=d["listener_pwd"]))
for f in sdps[:2]:
    put("signal_message", f"offer-{f.stem}", msg(type="offer", sdp=f.read_text()))
    put("signal_message", f"answer-{f.stem}", msg(type="answer", sdp=f.read_text()))
put("signal_message", "close", msg(type="close", reason="done"))
for code in ["auth-failed", "token-used", "accept-queue-full", "unsupported"]:
    put("signal_message", f"error-{code}", msg(type="error", code=code, reason="because"))
put("signal_message", "bad-version", b'{"v":2,"type":"close","reason":"x"}')
put("signal_message", "bad-type", b'{"v":1,"type":"launch"}')
put("signal_message", "no-version", b'{"type":"close","reason":"x"}')
put("signal_message", "escapes", b'{"v":1,"type":"close","reason":"\\u00e9\\ud83d\\ude00\\/\\n"}')

# Listener datagrams (spec/handshake.md §4.3): STUN Binding requests keyed with the constant
# credentials in fuzz_targets/listener_datagram.rs, DTLS and RTP-looking datagrams.
import hmac, hashlib, os, random, struct, zlib
random.seed(9)
def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)
def binding(username, pwd, fingerprint=True, typ=0x0001):
    txid = bytes(random.randrange(256) for _ in range(12))
    body = attr(0x0006, username.encode()) + attr(0x0024, struct.pack("!I", 1 << 24)) + attr(0x802A, bytes(8))
    if pwd is not None:
        head = struct.pack("!HHI", typ, len(body) + 24, 0x2112A442) + txid
        body += attr(0x0008, hmac.new(pwd.encode(), head + body, hashlib.sha1).digest())
    if fingerprint:
        head = struct.pack("!HHI", typ, len(body) + 8, 0x2112A442) + txid
        body += attr(0x8028, struct.pack("!I", (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF))
    return struct.pack("!HHI", typ, len(body), 0x2112A442) + txid + body
ufrag, pwd = "hsdE6ktp", "ASoXCQvZxeol0cZPcLuVVxGW"
dialer = "DialerPwd0123456789abcdef"
put("listener_datagram", "valid-check", binding(f"{ufrag}+{dialer}:dIaL", pwd))
put("listener_datagram", "valid-no-fingerprint", binding(f"{ufrag}+{dialer}:dIaL", pwd, fingerprint=False))
put("listener_datagram", "bad-integrity", binding(f"{ufrag}+{dialer}:dIaL", "guessedPwd0123456789abc"))
put("listener_datagram", "no-integrity", binding(f"{ufrag}+{dialer}:dIaL", None))
put("listener_datagram", "unknown-token", binding(f"AAAAAAAA+{dialer}:dIaL", pwd))
put("listener_datagram", "known-ufrag", binding("knownUfrag:dIaL", "whatever0123456789abcd"))
put("listener_datagram", "no-separator", binding(f"{ufrag}+{dialer}", pwd))
put("listener_datagram", "long-username", binding(f"{ufrag}+{'p' * 300}:{'u' * 250}", pwd))
put("listener_datagram", "binding-success", binding(f"{ufrag}+{dialer}:dIaL", pwd, typ=0x0101))
put("listener_datagram", "dtls-client-hello", bytes([22, 0xFE, 0xFD]) + bytes(8) + struct.pack("!H", 60) + bytes([1]) + os.urandom(59))
put("listener_datagram", "rtp", bytes([0x80, 0x60]) + os.urandom(40))
put("listener_datagram", "empty", b"")
PY

echo "== fuzz: building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build "$target" >"$log_dir/oneway-fuzz-build-$target.log" 2>&1 || {
    tail -30 "$log_dir/oneway-fuzz-build-$target.log" >&2
    echo "fuzz: building $target failed" >&2
    exit 1
  }
done

# Runs one target; writes its summary line to $log_dir/oneway-fuzz-<target>.summary and
# returns non-zero if it found something.
run_target() {
  local target="$1" log="$log_dir/oneway-fuzz-$1.log" start elapsed status=0 execs cov rss
  echo "== fuzz $target for ${seconds}s (log: $log)"
  start=$(date +%s)
  cargo fuzz run "$target" -- -max_total_time="$seconds" -timeout="$timeout_s" \
    -rss_limit_mb="$rss_mb" -print_final_stats=1 >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  cov=$(grep -oE '^#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//' || true)
  rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)
  grep -E '^(==[0-9]+==|SUMMARY|.*panicked at)' "$log" | head -5 || true
  if [ "$status" -ne 0 ]; then
    printf '%-18s FAILED after %ss (exit %s); see %s\n' "$target" "$elapsed" "$status" "$log" >"$log_dir/oneway-fuzz-$target.summary"
    return 1
  fi
  printf '%-18s %12s executions in %5ss  peak RSS %s MB  %s\n' "$target" "${execs:-?}" "$elapsed" "${rss:-?}" "$cov" >"$log_dir/oneway-fuzz-$target.summary"
}

failed=()
if [ "${FUZZ_PARALLEL:-0}" = 1 ]; then
  # Every target at once (one libFuzzer process each), e.g. for hour-long runs on several cores.
  declare -A pids
  for target in "${targets[@]}"; do run_target "$target" & pids[$target]=$!; done
  for target in "${targets[@]}"; do wait "${pids[$target]}" || failed+=("$target"); done
else
  for target in "${targets[@]}"; do run_target "$target" || failed+=("$target"); done
fi
echo "== fuzz summary (${seconds}s per target)"
for target in "${targets[@]}"; do cat "$log_dir/oneway-fuzz-$target.summary"; done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failures in ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
