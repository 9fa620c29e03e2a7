#!/usr/bin/env bash
# Runs one Python suite that drives the real omsyn binary: builds it, then runs the unittest files
# in DIR with the test venv (scripts/ci-install.sh makes it), OMSYN_BIN naming the binary.
# Usage: scripts/python-suite.sh DIR TITLE
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p omsyn-node
echo "== $2"
OMSYN_BIN="$target/debug/omsyn" /opt/omsyn-venv/bin/python -m unittest discover -s "$1" -p 'test_*.py' -v
