#!/usr/bin/env bash
# README's "The first hour at a base", run literally: the first ```sh block after that heading,
# against the debug build, with HOME (and so every data directory the walkthrough names) in a
# temporary directory, from the repository's root (the work list's path). Fails on any error.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p omsyn-node --bin omsyn
bin="$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
block="$home/first-hour.sh"
# Whatever fails, the daemon the walkthrough started in the background is stopped with it.
echo "trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT" > "$block"
awk '/^## The first hour at a base/ { found = 1 }
     found && /^```sh/ { inside = 1; next }
     inside && /^```/ { exit }
     inside { print }' README.md >> "$block"
grep -q "omsyn init" "$block" || { echo "first-hour: no walkthrough found in README.md" >&2; exit 1; }
unset OMSYN_DATA OMSYN_STORE_KEY_FILE
# Every command must succeed.
HOME="$home" PATH="$bin:$PATH" timeout 120 bash -euo pipefail "$block"
echo "first-hour: the walkthrough ran"
