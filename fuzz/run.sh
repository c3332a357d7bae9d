#!/usr/bin/env bash
# The bounded fuzz check: runs every target for N seconds (default 30).
#   fuzz/run.sh            # 30 s per target
#   fuzz/run.sh 120        # 2 min per target
#   fuzz/run.sh 60 csv_decode
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script:
# turn it into a regression test (core/tests/...) before fixing it.
set -euo pipefail
seconds="${1:-30}"
shift || true
cd "$(dirname "$0")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds"
done
