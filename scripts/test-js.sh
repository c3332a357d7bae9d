#!/usr/bin/env bash
# Sets up what a fresh machine lacks and runs every JS test of sdk-js/
# (Node over the shared vectors, CLI and Tink interop, headless Chromium,
# packaging, edge-style). Called from scripts/test.sh; runs alone too.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WASM_BINDGEN_VERSION=0.2.130   # = the `=` pin in wasm/bindgen/Cargo.toml

step() { printf '\n== %s\n' "$*"; }

step "rust target wasm32-unknown-unknown"
rustup target add wasm32-unknown-unknown >/dev/null

step "wasm-bindgen CLI $WASM_BINDGEN_VERSION"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

step "chromium"
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi

step "Google Tink for Python"
python3 -c 'import tink' 2>/dev/null || python3 -m pip install --quiet tink

step "/usr/bin/time (benchmark only)"
[ -x /usr/bin/time ] || echo "(missing: the benchmark needs it, the tests do not)"

step "npm ci"
(cd sdk-js && npm ci --no-audit --no-fund)

step "build the wasm engine and the package"
(cd sdk-js && node scripts/build.mjs)

step "keylink CLI"
# The same build as scripts/test.sh's `cargo test` (same feature set), so
# nothing is compiled twice when both run.
cargo test -q --workspace --all-targets --no-run

step "JS tests"
cd sdk-js
exec node --test --test-reporter=spec test/*.test.mjs
