#!/usr/bin/env bash
# The coordinator's dashboard in headless Chromium (selenium + Debian's chromium-driver) against a
# running `omsyn run --http` (tests/dashboard). With OMSYN_SCREENSHOT=FILE, saves a screenshot.
set -euo pipefail
exec "$(dirname "$0")/python-suite.sh" tests/dashboard "the dashboard in headless Chromium"
