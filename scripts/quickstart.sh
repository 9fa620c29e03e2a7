#!/usr/bin/env bash
# Omsyn quick start: a base office creates the organisation and enrols two nurses' phones by
# file, plans a visit, the nurses document offline, their data is merged through export files
# (every change verified against its author's signature and role), and the base prints the merged
# day report, the open conflicts and the patient's access log.
# Uses throw-away data directories under a temporary folder; touches nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p omsyn-node
omsyn() { ./target/release/omsyn "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
base="--data $work/base"; kari="--data $work/kari"; ola="--data $work/ola"
day=2026-11-23

echo "== 1. Three nodes: a base office and two nurses' phones"
omsyn $base init --role base --name "Hjemmesykepleien Øst" --staff-id K0001 --zone "Sone 1"
omsyn $kari init --role nurse --name "Kari Nordmann" --staff-id S00010 --zone "Sone 1"
omsyn $ola  init --role nurse --name "Ola Hansen" --staff-id S00009 --zone "Sone 1"

echo "== 2. The base creates the organisation and enrols both phones (request and certificate as files)"
omsyn $base org create --name "Hjemmesykepleien Demokommune" >/dev/null
for n in kari ola; do
  omsyn --data "$work/$n" enroll request --out "$work/$n.request" >/dev/null
  omsyn $base enroll approve "$work/$n.request" --out "$work/$n.cert" >/dev/null
  omsyn --data "$work/$n" enroll install "$work/$n.cert"
done

echo "== 3. The base registers a patient, her medication, and plans two visits"
p=$(omsyn $base patient add --name "Turid Nilsen" --national-id 54122069157 --zone "Sone 1" \
      --address "Parkveien 98" --access-note "nøkkelboks ved døra, kode 4411")
omsyn $base patient flag --patient "$p" --kind fall-risk --note "falt i oktober" >/dev/null
slot="$(omsyn $base med add --patient "$p" --name "Metformin 500 mg" --dose "1 tablett" --slot 08:00 --slot 20:00 | head -1)"
v1=$(omsyn $base visit plan --patient "$p" --start ${day}T08:00:00+01:00 --end ${day}T08:30:00+01:00 --kind physical --staff S00010)
v2=$(omsyn $base visit plan --patient "$p" --start ${day}T13:00:00+01:00 --end ${day}T13:15:00+01:00 --kind digital --staff S00009)
omsyn $base export "$work/plan.omsyn" >/dev/null
omsyn $kari import "$work/plan.omsyn"
omsyn $ola  import "$work/plan.omsyn"

echo "== 4. The network is down. Both nurses document on their phones."
omsyn $kari visit done --visit "$v1" --arrival ${day}T08:04:00+01:00 --departure ${day}T08:27:00+01:00 >/dev/null
omsyn $kari med give --patient "$p" --slot "$slot" --at ${day}T08:10:00+01:00 >/dev/null
omsyn $kari observe --patient "$p" --kind blood-pressure --value 142/88 --unit mmHg --at ${day}T08:12:00+01:00 >/dev/null
# Ola, covering a colleague, also gives the morning dose: the same slot, given twice.
omsyn $ola med give --patient "$p" --slot "$slot" --at ${day}T09:40:00+01:00 >/dev/null
omsyn $ola visit missed --visit "$v2" --reason no-answer --note "ingen svar på video, ringte datter" --at ${day}T13:05:00+01:00 >/dev/null
# Meanwhile the base changes a phone number that Kari also edits: a concurrent field edit.
omsyn $base patient set --patient "$p" --field phone --value "900 11 222"
omsyn $kari patient set --patient "$p" --field phone --value "900 33 444"

echo "== 5. The nurses' phones reach the base again: their data merges"
omsyn $kari export "$work/kari.omsyn" >/dev/null; omsyn $base import "$work/kari.omsyn"
omsyn $ola  export "$work/ola.omsyn"  >/dev/null; omsyn $base import "$work/ola.omsyn"

echo "== 6. The base's merged day report and open conflicts"
omsyn $base day-report --date $day
echo
omsyn $base conflicts
echo
omsyn $base show --patient "$p"
echo
echo "== 7. Who read and wrote Turid's data (what she may see), and the log chains verified"
omsyn $base audit --patient "$p"
omsyn $base audit verify
