#!/usr/bin/env bash
# The home unit's local HTTP API (tests/home) against a running `omsyn run --http` on a home unit.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p omsyn-node
echo "== the home unit's HTTP API"
OMSYN_BIN="$target/debug/omsyn" /opt/omsyn-venv/bin/python -m unittest discover -s tests/home -p 'test_*.py' -v
