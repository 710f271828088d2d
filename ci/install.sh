#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine of this project's kind.
# Idempotent: installs only what is missing. The tests need the Rust toolchain, iproute2
# (the mDNS test runs inside a private network namespace), and chromium + chromium-driver
# (the browser peer's tests drive real headless Chromium), firefox-esr and geckodriver (the same
# tests in Firefox ESR; geckodriver is not in Debian: `cargo install` from crates.io);
# later suites add their Debian packages to `packages` (chromium, chromium-driver, nftables, ...).
set -euo pipefail
# miniupnpd-nftables: the port-mapping tests' router and the suite's port-mapping routers (copied
# into its image; only the binary: without the `miniupnpd` package, which --no-install-recommends
# leaves out, no service is installed or started).
# python3: Debian's interpreter and standard library, copied into the tested image recipe of
# docs/implementers.md (crates/oneway-cli/tests/image_recipe.rs).
# libopus-dev + pkg-config: crates/oneway-media encodes and decodes its Opus test tone with the
# `opus` crate, which links Debian's libopus (found through pkg-config) at build time.
# libvpx-dev: its VP8 test pattern is encoded by Debian's libvpx (`vpx-encode`, pkg-config).
packages=(iproute2 chromium chromium-driver firefox-esr nftables coturn tcpdump miniupnpd-nftables python3 libopus-dev libvpx-dev pkg-config)
missing=()
command -v cargo >/dev/null || { echo "install: cargo is missing (this machine kind ships a Rust toolchain)" >&2; exit 1; }
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== install: apt-get install ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "== install: $(cargo --version)"
# geckodriver (WebDriver for Firefox) goes to /usr/local/bin, where the tests find it on PATH
# and the suite's Firefox image copies it from (docker/firefox.files). Skipped when present;
# a copy that `cargo install` already put in ~/.cargo/bin is reused.
geckodriver=/usr/local/bin/geckodriver
if [ ! -x "$geckodriver" ]; then
  cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin/geckodriver"
  if [ -x "$cargo_bin" ]; then
    echo "== install: geckodriver from $cargo_bin"
    install -m 0755 "$cargo_bin" "$geckodriver"
  else
    echo "== install: cargo install geckodriver --locked --root /usr/local"
    # Its own target directory, so the build does not touch the project's.
    CARGO_TARGET_DIR="${TMPDIR:-/tmp}/geckodriver-build" cargo install geckodriver --locked --root /usr/local
  fi
fi
echo "== install: $("$geckodriver" --version | head -1)"
