#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine (idempotent).
set -euo pipefail
rustup target add wasm32-unknown-unknown wasm32v1-none >/dev/null
if ! python3 -c 'import tink' 2>/dev/null; then
  echo "== installing Google Tink for Python (the independent client of the interop tests)"
  python3 -m pip install --quiet --disable-pip-version-check tink
fi
