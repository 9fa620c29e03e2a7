#!/usr/bin/env bash
# `omsyn export --fhir` checked by an independent validator (fhir.resources, FHIR R4 models) on a
# scenario documented through the real omsyn binary (tests/fhir).
set -euo pipefail
exec "$(dirname "$0")/python-suite.sh" tests/fhir "FHIR export, validated by fhir.resources (R4)"
