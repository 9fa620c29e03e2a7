#!/usr/bin/env bash
# Regenerates the Kotlin and Swift sources of the mobile bindings (uniffi-bindgen in library mode)
# into mobile-bindings/generated/. With --check, generates into a temporary directory and fails if
# the committed sources differ (CI runs this, so the committed bindings always match the library).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
check=false
[ "${1:-}" = "--check" ] && check=true
cargo build -q -p omsyn-mobile
lib="$target/debug/libomsyn_mobile.so"
out=mobile-bindings/generated
$check && out="$(mktemp -d)"
for language in kotlin swift; do
  rm -rf "${out:?}/$language"
  cargo run -q -p omsyn-mobile --bin uniffi-bindgen -- \
    generate --library "$lib" --language "$language" --out-dir "$out/$language" >/dev/null
done
if $check; then
  if ! diff -r mobile-bindings/generated "$out" >/dev/null; then
    diff -r mobile-bindings/generated "$out" | head -20 >&2
    echo "the committed bindings in mobile-bindings/generated are stale: run scripts/mobile-bindings.sh" >&2
    exit 1
  fi
  echo "== generated Kotlin and Swift bindings are up to date"
  rm -rf "$out"
else
  find "$out" -type f | sort
fi
