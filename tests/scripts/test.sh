#!/usr/bin/env bash
# Run every test of the workspace (unit, integration with real Ceph/nginx/mounts, end-to-end)
# and print one closing tally over all test binaries. cargo builds berth-csi and berth-ingress
# for their packages' own integration tests; the harness in tests/ then starts those executables.
set -uo pipefail
log=$(mktemp /tmp/berth-test-log.XXXXXX)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Leftovers of a crashed binary (mounts, loop devices, daemons) must not outlive the run.
# (cargo test built testenv; `cargo run` would compile it again with other features)
"${CARGO_TARGET_DIR:-target}/debug/testenv" sweep || true
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1);
         if ($(i) ~ /^ignored;?$/) s += $(i-1)
       }
     }
     END { printf "\nall test binaries, %d s:\n%d passed, %d failed, %d skipped\n", '"$(( $(date +%s) - start ))"', p, f, s }' "$log"
exit "$status"
