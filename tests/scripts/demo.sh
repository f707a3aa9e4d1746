#!/usr/bin/env bash
# The README's main job: install what is missing, build, and play the demo.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
bash tests/scripts/install-deps.sh
echo "demo: building berth (the first build takes about 7 minutes on 2 cores; cargo shows its progress)"
cargo build --workspace --bins
exec cargo run -q -p berth-tests --bin demo
