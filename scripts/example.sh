#!/usr/bin/env bash
# Runs the bundled example job end to end: builds keylink, runs
# examples/clickstream/job.json with the embedded SQLite key store, and
# prints where the outputs are. No server, no configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q --release -p keylink-host --bin keylink
target/release/keylink run examples/clickstream/job.json --overwrite "$@"
echo
echo "outputs are in examples/clickstream/out/ (keys.csv, encrypted.csv, analytics.csv, marketing.csv)"
echo "keys and jobs are in examples/clickstream/keylink.db: try"
echo "  target/release/keylink jobs list --key-store sqlite:examples/clickstream/keylink.db"
echo "  target/release/keylink decrypt --keys examples/clickstream/out/keys.csv examples/clickstream/out/encrypted.csv /tmp/plain.csv --overwrite"
