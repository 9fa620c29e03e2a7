#!/usr/bin/env bash
# Measures how long each binding call blocks the caller's thread (see
# mobile-bindings/tests/python/bench_calls.py), on a release build. Extra arguments (--json) go to
# the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
profile="${PROFILE:-release}"
cargo build -q --profile "$profile" -p omsyn-mobile -p omsyn-node
dir="$target/$profile"
[ "$profile" = dev ] && dir="$target/debug"
py="$target/mobile-python-$profile"
rm -rf "$py" && mkdir -p "$py"
cargo run -q -p omsyn-mobile --bin uniffi-bindgen -- generate --library "$dir/libomsyn_mobile.so" --language python --out-dir "$py" >/dev/null
cp "$dir/libomsyn_mobile.so" "$py/"
# Absolute paths: the benchmark runs from its own directory (CARGO_TARGET_DIR may be either).
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
case "$py" in /*) ;; *) py="$PWD/$py" ;; esac
cd mobile-bindings/tests/python
OMSYN_BIN="$dir/omsyn" OMSYN_BINDINGS="$py" python3 bench_calls.py "$@"
