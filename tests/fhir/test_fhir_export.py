"""`omsyn export --fhir` validated by an independent validator: fhir.resources (FHIR R4 4.0.1
models, pydantic). A base and a nurse built with the real omsyn binary document a scenario that
produces every exported resource type (a home unit's devices report every kind of event, and
the alerts become tasks); every resource of every Bundle must parse and validate.

Environment: OMSYN_BIN, the omsyn binary (scripts/test-fhir.sh sets it).
"""

import json
import os
import sys
import tempfile
import unittest

from fhir.resources.bundle import Bundle
from fhir.resources import construct_fhir_element

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from omsyn_cli import ZONE, Node, Serving, admin_base, at  # noqa: E402


def scenario(root):
    """Returns (base, patient) after a day with every kind of documentation."""
    base = admin_base(root)
    nurse = Node(root, "nurse", "--role", "nurse", "--name", "Kari Nordmann", "--staff-id", "S1", "--zone", ZONE)
    nurse.enroll_at(base)
    p = base.cli("patient", "add", "--name", "Turid Nilsen", "--national-id", "54122069157",
                 "--address", "Parkveien 98", "--access-note", "nøkkelboks 4411", "--phone", "+4790000000",
                 "--zone", ZONE, "--gp", "Dr. Berg")["id"]
    base.cli("patient", "contact", "--patient", p, "--name", "Anne Nilsen", "--relation", "datter", "--phone", "+4791111111")
    base.cli("patient", "flag", "--patient", p, "--kind", "fall-risk", "--note", "bruker rullator")
    base.cli("team", "--patient", p, "--add", "S1")
    med = base.cli("med", "add", "--patient", p, "--name", "Metformin 500 mg", "--dose", "1 tablett", "--slot", "08:00")["id"]
    noon = base.cli("med", "add", "--patient", p, "--name", "Paracet 500 mg", "--dose", "2 tabletter", "--slot", "12:00")["id"]
    home = base.cli("visit", "plan", "--patient", p, "--start", at("08:00"), "--end", at("08:30"), "--kind", "physical", "--staff", "S1")["id"]
    video = base.cli("visit", "plan", "--patient", p, "--start", at("12:00"), "--end", at("12:15"), "--kind", "digital", "--staff", "S1")["id"]
    missed = base.cli("visit", "plan", "--patient", p, "--start", at("20:00"), "--end", at("20:15"), "--kind", "digital", "--staff", "S1")["id"]
    cancelled = base.cli("visit", "plan", "--patient", p, "--start", at("22:00"), "--end", at("22:15"), "--kind", "physical", "--staff", "S1")["id"]
    base.cli("visit", "cancel", "--visit", cancelled, "--reason", "innlagt på sykehus")
    # The nurse gets the patient, documents, and comes back.
    transfer = os.path.join(root, "to-nurse.omsyn")
    base.cli("export", transfer)
    nurse.cli("import", transfer)
    nurse.cli("visit", "done", "--visit", home, "--arrival", at("08:05"), "--departure", at("08:25"))
    nurse.cli("visit", "done", "--visit", video, "--arrival", at("12:01"))
    nurse.cli("visit", "missed", "--visit", missed, "--reason", "no-answer", "--note", "svarte ikke")
    nurse.cli("med", "give", "--patient", p, "--slot", f"{med}@08:00")
    nurse.cli("med", "give", "--patient", p, "--slot", f"{med}@08:00")  # a double dose: DUPTHPY
    nurse.cli("observe", "--patient", p, "--kind", "blood-pressure", "--value", "128/82", "--unit", "mmHg",
              "--visit", home)
    nurse.cli("observe", "--patient", p, "--kind", "weight", "--value", "71.5", "--unit", "kg")
    note = nurse.cli("note", "add", "--patient", p, "--text", "Sår på venstre legg.")["id"]
    nurse.cli("note", "correct", "--patient", p, "--entry", note, "--text", "Sår på høyre legg.")
    nurse.cli("message", "send", "--patient", p, "--to", "base", "--text", "Trenger ny resept.")
    photo = os.path.join(root, "saar.png")
    with open(photo, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    nurse.cli("message", "send", "--patient", p, "--to", "base", "--picture", photo)
    nurse.cli("show", "--patient", p)
    # The home unit's devices report every kind of event; the missed dose becomes a task the
    # nurse claims.
    home = Node(root, "home", "--role", "home-unit", "--name", "Hjemme hos Turid", "--patient", p, "--zone", ZONE)
    home.enroll_at(base)
    home.cli("import", transfer)
    serving = Serving(home)
    device = {"device": "Evondos E300 #4711", "at": at("00:04")}  # not ahead of the clock
    reports = [
        {"kind": "dose-dispensed", "medication": noon, "slot": "12:00"},
        {"kind": "dose-taken", "medication": noon, "slot": "12:00"},
        {"kind": "dose-missed", "medication": med, "slot": "08:00"},
        {"kind": "device-error", "code": "E42 jammed"},
        {"kind": "power-failure"},
        {"kind": "alarm"},
        {"kind": "measurement", "measurement": "spo2", "value": "96", "unit": "%"},
    ]
    for n, report in enumerate(reports):
        status, answer = serving.call("POST", "/api/home/device-events", dict(device, event_id=f"ev-{n}", **report))
        assert status == 201, answer
    from_home = os.path.join(root, "from-home.omsyn")
    home.cli("export", from_home)
    serving.stop()
    nurse.cli("import", from_home)
    [alarm] = [t for t in nurse.cli("tasks")["tasks"] if t.get("event", {}).get("kind") == "alarm-pressed"]
    nurse.cli("tasks", "claim", alarm["id"])
    back = os.path.join(root, "to-base.omsyn")
    nurse.cli("export", back)
    base.cli("import", back)
    return base, p


class FhirExport(unittest.TestCase):
    def test_every_exported_resource_validates_as_fhir_r4(self):
        with tempfile.TemporaryDirectory(prefix="omsyn-fhir-") as root:
            base, patient = scenario(root)
            out = os.path.join(root, "fhir")
            summary = base.cli("export", "--fhir", out)
            self.assertEqual(summary["bundles"], 1)
            files = sorted(os.listdir(out))
            self.assertEqual(files, [f"{patient}.json"])
            with open(os.path.join(out, files[0]), encoding="utf-8") as f:
                raw = json.load(f)
            bundle = Bundle.parse_obj(raw)
            self.assertEqual(bundle.type, "collection")
            kinds = {}
            for entry in raw["entry"]:
                resource = entry["resource"]
                # Each resource validated on its own model too, so a bad one is named.
                construct_fhir_element(resource["resourceType"], resource)
                kinds.setdefault(resource["resourceType"], []).append(resource)
            for kind in ["Patient", "Flag", "Appointment", "Encounter", "Observation",
                         "MedicationAdministration", "DocumentReference", "Communication",
                         "DetectedIssue", "AuditEvent", "Task"]:
                self.assertIn(kind, kinds, f"no {kind} exported")
            self.assertEqual(summary["resources"], {k: len(v) for k, v in kinds.items()})

            # The figures of the scenario, as a record system would read them.
            [p] = kinds["Patient"]
            self.assertEqual(p["identifier"][0], {"system": "urn:oid:2.16.578.1.12.4.1.4.1", "value": "54122069157"})
            statuses = sorted(a["status"] for a in kinds["Appointment"])
            self.assertEqual(statuses, ["cancelled", "fulfilled", "fulfilled", "noshow"])
            classes = sorted(e["class"]["code"] for e in kinds["Encounter"])
            self.assertEqual(classes, ["HH", "VR"])
            doses = [d for d in kinds["MedicationAdministration"] if "dispenser" not in json.dumps(d)]
            self.assertEqual([d["status"] for d in doses], ["completed", "completed"])
            [taken] = [d for d in kinds["MedicationAdministration"] if "dispenser" in json.dumps(d)]
            self.assertIn("Evondos", taken["performer"][0]["actor"]["display"])
            alerts = [i for i in kinds["DetectedIssue"] if "Evondos" in i.get("author", {}).get("display", "")]
            self.assertEqual(len(alerts), 5, "dispensed, missed, error, power failure, alarm")
            # Alerts and tasks name the dose by its medication, the owners by name, not by ids.
            [missed_alert] = [i for i in alerts if "MISSED" in i["code"]["text"]]
            self.assertIn("Metformin 500 mg 08:00 on ", missed_alert["code"]["text"])
            [missed_task] = [t for t in kinds["Task"] if "MISSED" in t["description"]]
            self.assertIn("Metformin 500 mg 08:00 on ", missed_task["description"])
            self.assertTrue(all(" m-" not in t["description"] for t in kinds["Task"]), kinds["Task"])
            self.assertTrue(any(o.get("valueQuantity", {}).get("unit") == "%" for o in kinds["Observation"]))
            # A measurement made during a visit refers to that visit's exported Encounter.
            [during] = [o for o in kinds["Observation"] if "encounter" in o]
            self.assertIn(during["encounter"]["reference"].split("/")[1], {e["id"] for e in kinds["Encounter"]})
            self.assertEqual(len(kinds["Task"]), 5, "four device alerts and the unanswered video visit")
            [claimed] = [t for t in kinds["Task"] if t["status"] == "accepted"]
            self.assertEqual(claimed["priority"], "stat")
            self.assertIn("Kari Nordmann", claimed["note"][0]["text"])
            self.assertTrue(all(t["focus"]["reference"].split("/")[1] in
                                {r["id"] for rs in kinds.values() for r in rs} for t in kinds["Task"]),
                            "every task's focus is exported too")
            [dup] = [i for i in kinds["DetectedIssue"] if i.get("code", {}).get("coding")]
            self.assertEqual(dup["code"]["coding"][0]["code"], "DUPTHPY")
            self.assertEqual(dup["severity"], "high")
            self.assertEqual(sorted(r["reference"] for r in dup["implicated"]),
                             sorted(f"MedicationAdministration/{d['id']}" for d in doses))
            [picture] = [c for c in kinds["Communication"] if "contentAttachment" in c["payload"][0]]
            self.assertEqual(picture["payload"][0]["contentAttachment"]["contentType"], "image/png")
            self.assertEqual(picture["payload"][0]["contentAttachment"]["title"], "saar.png")
            [doc] = kinds["DocumentReference"]
            self.assertIn("høyre", doc["description"])
            self.assertTrue(any(a["action"] == "E" for a in kinds["AuditEvent"]), "the export itself is logged")
            self.assertTrue(any(a["action"] == "R" for a in kinds["AuditEvent"]), "the nurse's read is logged")


if __name__ == "__main__":
    unittest.main()
