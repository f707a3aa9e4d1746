# berth: the two commands of the README, and the pieces they are made of.
#   make demo   the main job, locally, no Kubernetes cluster needed
#   make test   everything CI checks: fmt, clippy, unit + integration + end-to-end tests
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: deps build lint test demo bench clean-env

deps:
	bash tests/scripts/install-deps.sh

build: deps
	cargo build --workspace --bins

lint: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# cargo test builds the binaries the integration tests start (with the tests' feature set,
# so nothing is compiled twice).
test: lint
	bash tests/scripts/test.sh
	bash tests/scripts/check-dockerfile.sh "$${CARGO_TARGET_DIR:-target}/debug"

demo:
	bash tests/scripts/demo.sh

bench: deps
	cargo build --release --workspace --bins
	target/release/bench all

clean-env:
	cargo run -q -p berth-tests --bin testenv -- sweep
