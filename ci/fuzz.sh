#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) and prints executions per target.
# Needs cargo-fuzz; uses RUSTC_BOOTSTRAP=1 so the stable toolchain can build with sanitizers.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || { echo "fuzz: install cargo-fuzz first (cargo install cargo-fuzz)" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
python3 - <<'PY'
import base64, json, os, pathlib
root = pathlib.Path("..")
def put(target, name, data):
    d = pathlib.Path("corpus") / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)
for v in json.loads((root / "spec/vectors/valid.json").read_text())["vectors"]:
    put("token_decode", v["name"], bytes.fromhex(v["binary_hex"]))
    put("token_text", v["name"], v["text"].encode())
    put("token_text", v["name"] + "-qr", v["qr_text"].encode())
for v in json.loads((root / "spec/vectors/invalid.json").read_text())["vectors"]:
    put("token_text", v["name"], v["input"].encode())
for f in (root / "crates/oneway-token/tests/fixtures/sdp").glob("*.sdp"):
    put("sdp_offer", f.stem, f.read_bytes())
PY
for target in token_decode token_text sdp_offer; do
  echo "== fuzz $target for ${seconds}s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" 2>&1 | tee "/tmp/oneway-fuzz-$target.log" | grep -E '^(#[0-9]+ +DONE|==|SUMMARY)' || true
  grep -E 'Done [0-9]+ runs' "/tmp/oneway-fuzz-$target.log" | tail -1
done
