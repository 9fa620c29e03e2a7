#!/usr/bin/env bash
# Compiles the generated Kotlin bindings with a small app (mobile-bindings/tests/kotlin) and runs
# it on the JVM against the built library. Needs kotlinc (KOTLIN_HOME, or on PATH), Java and JNA;
# scripts/ci-install.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
kotlin_home="${KOTLIN_HOME:-/opt/kotlin/node_modules/kotlin-compiler}"
kotlinc="$kotlin_home/bin/kotlinc"
[ -x "$kotlinc" ] || kotlinc="$(command -v kotlinc || true)"
if [ -z "$kotlinc" ]; then
  echo "kotlinc not found: run scripts/ci-install.sh (or set KOTLIN_HOME)" >&2
  exit 1
fi
lib_dir="$(dirname "$kotlinc")/../lib"
jna=/usr/share/java/jna.jar
classpath="$jna:$lib_dir/kotlinx-coroutines-core-jvm.jar"
out="$target/kotlin-smoke"
rm -rf "$out" && mkdir -p "$out"
echo "== compiling the generated Kotlin bindings with a test app"
"$kotlinc" -nowarn -cp "$classpath" \
  mobile-bindings/generated/kotlin/no/omsyn/mobile/omsyn_mobile.kt \
  mobile-bindings/tests/kotlin/Smoke.kt -d "$out/classes" 2>&1 | grep -v '^warning:' || true
[ -f "$out/classes/SmokeKt.class" ] || { echo "Kotlin compilation failed" >&2; exit 1; }
echo "== running it on the JVM"
java -Djna.library.path="$target/debug" \
  -cp "$out/classes:$lib_dir/kotlin-stdlib.jar:$classpath" SmokeKt "$out/node"
