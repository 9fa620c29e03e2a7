#!/usr/bin/env bash
# The whole test suite (README's test command): installs what is missing on a fresh machine, then
# the Rust workspace's tests, then the mobile bindings end to end (Python suite, generated
# Kotlin/Swift up to date, Kotlin compiled and run), then the FHIR export through a validator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ci-install.sh
cargo test --workspace
scripts/test-mobile.sh
scripts/test-fhir.sh
scripts/test-dashboard.sh
scripts/test-home.sh
scripts/first-hour.sh
