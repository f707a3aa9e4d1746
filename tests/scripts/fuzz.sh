#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser that takes outside input (fuzz/fuzz_targets/*.rs):
# build all cargo-fuzz targets (nightly, ASan), run each for FUZZ_SECONDS (default 60) from its
# seed corpus fuzz/corpus/<target>, fail on any crash, and print the executions per target.
# New inputs go to a scratch directory (the repo keeps only the small seeds); a crashing input
# is kept under fuzz/artifacts/<target>/ for the regression test. Usage: fuzz.sh [target...]
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
secs=${FUZZ_SECONDS:-60}
# The fuzz crate builds with its own flags: never mix its artefacts into the workspace's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz (cached in ~/.cargo/bin)"
  cargo install cargo-fuzz --locked || exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
echo "== fuzz: building ${#targets[@]} targets"
cargo +nightly fuzz build -O --fuzz-dir fuzz || exit 1
scratch=$(mktemp -d /tmp/berth-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failed=0 total=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  log="$scratch/$t.log"
  cargo +nightly fuzz run -O --fuzz-dir fuzz "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
  rc=$?
  execs=$(awk '/stat::number_of_executed_units:/ {n=$2} END {print n+0}' "$log")
  total=$((total + execs))
  if [ $rc -eq 0 ]; then
    echo "fuzz result: $t ok, $execs executions in ${secs} s"
  else
    failed=$((failed + 1))
    echo "fuzz result: $t FAILED (exit $rc) after $execs executions; the input is in fuzz/artifacts/$t/:"
    grep -E "panicked|ERROR: |SUMMARY|assertion" "$log" | head -5
  fi
done
echo "fuzz: ${#targets[@]} targets, $failed failed, $total executions in all"
[ "$failed" -eq 0 ]
