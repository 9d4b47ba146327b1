#!/usr/bin/env bash
# Builds Magnetar (installing build prerequisites if missing) and runs `magnetar standalone`.
# Extra arguments go to `magnetar standalone`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnetar-target}"
bash scripts/setup.sh
cargo build -q -p magnetar-tools --bin magnetar
exec "$CARGO_TARGET_DIR/debug/magnetar" standalone "$@"
