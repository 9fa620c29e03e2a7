#!/usr/bin/env bash
# `omsyn export --fhir` checked by an independent validator (fhir.resources, FHIR R4 models) on a
# scenario documented through the real omsyn binary (tests/fhir).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p omsyn-node
echo "== FHIR export, validated by fhir.resources (R4)"
OMSYN_BIN="$target/debug/omsyn" /opt/omsyn-venv/bin/python -m unittest discover -s tests/fhir -p 'test_*.py' -v
