#!/usr/bin/env bash
# The README's main job: install what is missing, build, and play the demo.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
bash tests/scripts/install-deps.sh
cargo build -q --workspace --bins
exec cargo run -q -p berth-tests --bin demo
