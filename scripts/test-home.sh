#!/usr/bin/env bash
# The home unit's local HTTP API (tests/home) against a running `omsyn run --http` on a home unit.
set -euo pipefail
exec "$(dirname "$0")/python-suite.sh" tests/home "the home unit's HTTP API"
