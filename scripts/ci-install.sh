#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (root), and nothing that is there:
# iproute2 (network namespaces), Python 3 (the bindings' test harness), a JDK, JNA and the Kotlin
# compiler (compiling the generated Kotlin bindings; npm's kotlin-compiler is the whole kotlinc
# distribution, with kotlinx-coroutines; Debian's kotlin package is too old for uniffi's code), and
# a Python virtual environment with fhir.resources, the independent FHIR R4 validator (6.2.2 is its
# last release whose default models are R4 4.0.1; it needs pydantic 1, hence its own venv), and
# Chromium with chromedriver plus selenium for the dashboard's browser test.
set -euo pipefail
KOTLIN_VERSION=2.4.20
KOTLIN_PREFIX=/opt/kotlin
VENV=/opt/omsyn-venv
packages=()
command -v ip >/dev/null 2>&1 || packages+=(iproute2)
command -v python3 >/dev/null 2>&1 || packages+=(python3)
python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
command -v java >/dev/null 2>&1 || packages+=(default-jdk-headless)
command -v npm >/dev/null 2>&1 || packages+=(npm)
[ -f /usr/share/java/jna.jar ] || packages+=(libjna-java)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
# The Python suites run in Europe/Oslo (the nodes' default zone): the C library needs its rules.
[ -f /usr/share/zoneinfo/Europe/Oslo ] || packages+=(tzdata)
if [ ${#packages[@]} -gt 0 ]; then
  echo "== installing ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
if [ ! -x "$KOTLIN_PREFIX/node_modules/kotlin-compiler/bin/kotlinc" ]; then
  echo "== installing kotlinc $KOTLIN_VERSION (npm kotlin-compiler)"
  npm install --silent --no-save --no-audit --no-fund --prefix "$KOTLIN_PREFIX" "kotlin-compiler@$KOTLIN_VERSION"
fi
if ! "$VENV/bin/python" -c 'import fhir.resources, selenium' >/dev/null 2>&1; then
  echo "== installing fhir.resources 6.2.2 (FHIR R4 validator) and selenium into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'fhir.resources==6.2.2' 'pydantic<2' 'selenium==4.51.0'
fi
