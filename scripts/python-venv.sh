#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv used by tests/python: the official
# Apache Pulsar Python client plus pytest, and schemathesis for the OpenAPI-driven admin test. Prints the venv's python path on stdout.
#
#   VENV_PY=$(scripts/python-venv.sh)
#   MAGNETAR_BIN=.../magnetar "$(dirname "$VENV_PY")/pytest" tests/python -q
#
# Environment: MAGNETAR_VENV (default $HOME/.cache/magnetar-venv).
set -euo pipefail

VENV="${MAGNETAR_VENV:-$HOME/.cache/magnetar-venv}"
PULSAR_CLIENT_VERSION="3.13.0"
PYTEST_VERSION="9.2.0"
PYTEST_TIMEOUT_VERSION="2.4.0"
SCHEMATHESIS_VERSION="4.32.5"
FASTAVRO_VERSION="1.13.1"  # pulsar.schema.AvroSchema (test_schema.py)

log() { echo "python-venv: $*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
    log "python3 not found; installing it with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >&2 2>/dev/null; then
        log "python3 -m venv failed; installing python3-venv with apt-get"
        rm -rf "$VENV"
        apt-get update -qq >&2
        pyver=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 \
            || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${pyver}-venv" >&2
        python3 -m venv "$VENV" >&2
    fi
fi

PY="$VENV/bin/python"

# Install only when something pinned is missing or at another version (idempotent, offline-friendly).
need_install=0
"$PY" - "$PULSAR_CLIENT_VERSION" "$PYTEST_VERSION" "$PYTEST_TIMEOUT_VERSION" "$FASTAVRO_VERSION" \
    "$SCHEMATHESIS_VERSION" <<'PYEOF' || need_install=1
import sys
from importlib.metadata import version, PackageNotFoundError
want = {"pulsar-client": sys.argv[1], "pytest": sys.argv[2], "pytest-timeout": sys.argv[3],
        "fastavro": sys.argv[4], "schemathesis": sys.argv[5]}
for name, ver in want.items():
    try:
        if version(name) != ver:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYEOF

if [ "$need_install" = 1 ]; then
    log "installing pulsar-client==$PULSAR_CLIENT_VERSION pytest==$PYTEST_VERSION pytest-timeout==$PYTEST_TIMEOUT_VERSION fastavro==$FASTAVRO_VERSION schemathesis==$SCHEMATHESIS_VERSION into $VENV"
    "$PY" -m pip install -q --disable-pip-version-check \
        "pulsar-client==$PULSAR_CLIENT_VERSION" \
        "pytest==$PYTEST_VERSION" \
        "pytest-timeout==$PYTEST_TIMEOUT_VERSION" \
        "fastavro==$FASTAVRO_VERSION" \
        "schemathesis==$SCHEMATHESIS_VERSION" >&2
fi

echo "$PY"
