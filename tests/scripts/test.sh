#!/usr/bin/env bash
# Run every test of the workspace (unit, integration with real Ceph/nginx/mounts, end-to-end),
# then the demo as a smoke test, and print one closing tally over all of them. cargo builds
# berth-csi and berth-ingress for their packages' own integration tests; the harness in tests/
# then starts those executables.
set -uo pipefail
bin=${CARGO_TARGET_DIR:-target}/debug
log=$(mktemp /tmp/berth-test-log.XXXXXX)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo
echo "== demo (smoke test of the README's main job)"
demo_passed=0 demo_failed=0
if "$bin/demo"; then demo_passed=1; else demo_failed=1; status=1; fi
echo
echo "== fuzz (every outside-input parser, FUZZ_SECONDS=${FUZZ_SECONDS:-60} s per target)"
bash tests/scripts/fuzz.sh 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
# Leftovers of a crashed binary (mounts, loop devices, daemons) must not outlive the run.
# (cargo test built testenv; `cargo run` would compile it again with other features)
"$bin/testenv" sweep || true
# Why each failing test failed, the first lines of its message, next to the tally: a CI
# report that keeps only the end of the output still says what went wrong.
awk '
  /^---- .* ----$/ || /^---- .* stdout ----$/ { name = $2; n = 0; next }
  name != "" && /^$/ { if (n > 0) name = ""; next }
  name != "" && n < 4 {
    if (n == 0) { if (!shown++) print "\n== why each failing test failed (first lines)"; print "-- " name }
    print "   " substr($0, 1, 300); n++
  }
  /^failures:$/ { name = "" }
' "$log"
awk -v dp="$demo_passed" -v df="$demo_failed" -v secs="$(( $(date +%s) - start ))" '
  /^fuzz result: .* ok,/ { p++ }
  /^fuzz result: .* FAILED/ { f++ }
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1);
      if ($(i) ~ /^ignored;?$/) s += $(i-1)
    }
  }
  END { printf "\nall test binaries, the fuzz targets and the demo, %d s:\n%d passed, %d failed, %d skipped\n", secs, p + dp, f + df, s }' "$log"
exit "$status"
