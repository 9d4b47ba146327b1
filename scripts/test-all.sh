#!/usr/bin/env bash
# Runs every Magnetar test: formatting, clippy, the Rust test suites (including the Rust
# `pulsar` crate compatibility tests) and the Python compatibility suite (official
# pulsar-client) against `magnetar standalone`. Installs what it needs (scripts/setup.sh,
# scripts/python-venv.sh). The cargo target directory lives outside the clone so repeated
# runs reuse compiled dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnetar-target}"
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1

bash scripts/setup.sh

# The Python venv comes first: Rust interop tests drive the official Python client too.
PY=$(bash scripts/python-venv.sh)
export MAGNETAR_PYTHON="$PY"

# The `pulsar` crate's build script needs protoc: use the vendored one our proto crate uses.
cargo fetch -q
PROTOC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/protoc-bin-vendored-linux-x86_64-*/bin/protoc | head -n 1)
export PROTOC
FEATURES=(--features magnetar-tests/pulsar-rs)

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets "${FEATURES[@]}" -q -- -D warnings

echo "== cargo build"
cargo build --workspace --bins "${FEATURES[@]}" -q
export MAGNETAR_BIN="$CARGO_TARGET_DIR/debug/magnetar"

echo "== cargo test"
cargo test --workspace "${FEATURES[@]}" -q 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
rust_summary=$(grep -E '^test result:' "$CARGO_TARGET_DIR/cargo-test.log" |
  awk '{p+=$4; f+=$6} END {print p" passed, "f" failed"}')

echo "== python compatibility suite (official pulsar-client)"
"$PY" -m pytest tests/python -q

echo "rust: $rust_summary"
