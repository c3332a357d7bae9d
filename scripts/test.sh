#!/usr/bin/env bash
# Sets up what is missing and runs every check: the one command for local
# work and CI alike.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== core builds without std for wasm32v1-none"
cargo build -q -p keylink-core --target wasm32v1-none --no-default-features
echo "== tests"
cargo test --workspace --all-targets
cargo test --workspace --doc
echo "== job-file tests that need the timestamp compilers"
cargo test -q -p keylink-core --test job_file -- --ignored
echo "== JS SDK: Node, CLI/Tink interop, headless Chromium, packaging, edge"
scripts/test-js.sh
