#!/usr/bin/env bash
# The mobile bindings' end-to-end tests: builds the library, generates its Python bindings in
# library mode, and runs the Python suite against it (the base office is the real omsyn binary).
# Then compiles the generated Kotlin with a test app and runs it on the JVM, when kotlinc is
# found (scripts/ci-install.sh installs it; KOTLIN_HOME or kotlinc on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q -p omsyn-mobile -p omsyn-node
lib="$target/debug/libomsyn_mobile.so"
py="$target/mobile-python"
rm -rf "$py" && mkdir -p "$py"
cargo run -q -p omsyn-mobile --bin uniffi-bindgen -- generate --library "$lib" --language python --out-dir "$py" >/dev/null
cp "$lib" "$py/"
echo "== Python suite of the mobile bindings"
OMSYN_BIN="$target/debug/omsyn" OMSYN_BINDINGS="$py" \
  python3 -m unittest discover -s mobile-bindings/tests/python -p 'test_*.py' -v
scripts/mobile-bindings.sh --check
scripts/kotlin-smoke.sh
