#!/usr/bin/env bash
# The coordinator's dashboard in headless Chromium (selenium + Debian's chromium-driver) against a
# running `omsyn run --http` (tests/dashboard). With OMSYN_SCREENSHOT=FILE, saves a screenshot.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p omsyn-node
echo "== the dashboard in headless Chromium"
OMSYN_BIN="$target/debug/omsyn" /opt/omsyn-venv/bin/python -m unittest discover -s tests/dashboard -p 'test_*.py' -v
