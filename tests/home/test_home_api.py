"""The home unit's local API end to end: a home unit on the real omsyn binary serving
`omsyn run --http`, a tablet app and the devices in the home talking to it over HTTP.

Environment: OMSYN_BIN (the omsyn binary).
"""

import base64
import datetime
import json
import os
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from omsyn_cli import ZONE, Node, Serving, admin_base, at  # noqa: E402


class HomeApi(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="omsyn-home-")
        root = self.tmp.name
        base = admin_base(root)
        kari = Node(root, "kari", "--role", "nurse", "--name", "Kari Nordmann", "--staff-id", "S1", "--zone", ZONE)
        kari.enroll_at(base)
        self.base, self.kari = base, kari
        p = base.cli("patient", "add", "--name", "Turid Nilsen", "--zone", ZONE)["id"]
        self.med = base.cli("med", "add", "--patient", p, "--name", "Metformin 500 mg", "--dose", "1",
                            "--slot", "08:00")["id"]
        self.visit = base.cli("visit", "plan", "--patient", p, "--start", at("12:00"), "--end", at("12:15"),
                              "--kind", "digital", "--staff", "S1")["id"]
        self.home = Node(root, "home", "--role", "home-unit", "--name", "Hjemme hos Turid", "--patient", p, "--zone", ZONE)
        self.home.enroll_at(base)
        base.cli("team", "--patient", p, "--add", "S1")
        transfer = os.path.join(root, "from-base.omsyn")
        base.cli("export", "--patient", p, transfer)
        # Kari writes to the home: her changes carry her certificate, so the home knows her name.
        kari.cli("import", transfer)
        kari.cli("message", "send", "--patient", p, "--to", "home", "--text", "Vi kommer på video kl. 12.")
        from_kari = os.path.join(root, "from-kari.omsyn")
        kari.cli("export", "--patient", p, from_kari)
        self.home.cli("import", transfer)
        self.home.cli("import", from_kari)
        self.patient = p
        self.daemon = Serving(self.home)
        self.call, self.base_url, self.token = self.daemon.call, self.daemon.base_url, self.daemon.token

    def tearDown(self):
        self.daemon.stop()
        self.tmp.cleanup()

    def journal(self):
        """The home unit's journal for its patient, through the CLI (answered by the daemon)."""
        return self.home.cli("show", "--patient", self.patient)["journal"]

    def test_todays_visits_say_when_how_and_who_is_coming(self):
        status, today = self.call("GET", "/api/home/today")
        self.assertEqual(status, 200)
        [v] = today["visits"]
        self.assertEqual(v["visit"], self.visit)
        self.assertTrue(v["video"])
        self.assertEqual(v["coming"], [{"id": "S1", "name": "Kari Nordmann"}])

    def test_messages_go_to_the_care_team_and_are_listed(self):
        status, sent = self.call("POST", "/api/home/messages", {"text": "Kan dere komme litt senere?"})
        self.assertEqual(status, 200)
        self.assertIn("care-team", json.dumps(sent["message"]["to"]))
        status, listed = self.call("GET", "/api/home/messages")
        self.assertEqual([m["text"] for m in listed["messages"]],
                         ["Vi kommer på video kl. 12.", "Kan dere komme litt senere?"])
        self.assertEqual(self.call("POST", "/api/home/messages", {"text": " "})[0], 400)
        self.assertEqual(self.call("POST", "/api/home/messages", {"text": "x", "to": "nobody"})[0], 400)

    def test_pictures_travel_with_messages_and_bad_pictures_are_refused_whole(self):
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
        body = {"text": "Se på såret", "pictures": [
            {"content_type": "image/png", "name": "saar.png", "data": base64.b64encode(png).decode()}]}
        status, sent = self.call("POST", "/api/home/messages", body)
        self.assertEqual(status, 200, sent)
        [picture] = sent["message"]["pictures"]
        self.assertEqual((picture["content_type"], picture["size"]), ("image/png", len(png)))
        status, listed = self.call("GET", "/api/home/messages")
        self.assertEqual(listed["messages"][-1]["pictures"], [picture])
        request = urllib.request.Request(self.base_url + picture["url"],
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request) as r:
            self.assertEqual(r.headers["Content-Type"], "image/png")
            self.assertIn("sandbox", r.headers["Content-Security-Policy"])
            self.assertEqual(r.headers["X-Content-Type-Options"], "nosniff")
            self.assertEqual(r.read(), png)
        bad = [
            ({"content_type": "image/png", "data": "not base64!"}, "base64"),
            ({"content_type": "image/png", "data": base64.b64encode(b"GIF89a...").decode()}, "not a image/png"),
            ({"content_type": "text/html", "data": base64.b64encode(png).decode()}, "image/jpeg"),
            ({"content_type": "image/jpeg",
              "data": base64.b64encode(b"\xff\xd8\xff" + bytes(600 * 1024)).decode()}, "at most"),
        ]
        for picture, mentions in bad:
            got, answer = self.call("POST", "/api/home/messages", {"text": "x", "pictures": [picture]})
            self.assertEqual(got, 400, answer)
            self.assertIn("pictures[0]", answer["error"])
            self.assertIn(mentions, answer["error"])
        self.assertEqual(len(self.call("GET", "/api/home/messages")[1]["messages"]), 2, "nothing half-stored")
        self.assertEqual(self.call("GET", "/api/home/messages/e-0000000000000000/pictures/0")[0], 404)

    def test_an_alarm_is_a_task_for_the_visiting_nurse_and_the_base_is_told_by_its_own_policy(self):
        # Early today (devices may not date reports ahead of the unit's clock): the 12:00 visit is next.
        raised = at("00:04")
        body = {"device": "Safemate alarm #12", "event_id": "a-1", "kind": "alarm", "at": raised}
        self.assertEqual(self.call("POST", "/api/home/device-events", body)[0], 201)
        self.assertEqual(self.home.cli("tasks")["tasks"], [], "a home unit claims nothing")
        shipped = os.path.join(self.tmp.name, "from-home.omsyn")
        self.home.cli("export", "--patient", self.patient, shipped)  # answered by the running daemon
        self.kari.cli("import", shipped)
        self.base.cli("import", shipped)
        [task] = self.kari.cli("tasks")["tasks"]
        self.assertEqual(task["owner"], {"kind": "nurses", "staff": ["S1"]}, "the nurse of the 12:00 visit")
        self.assertEqual((task["kind"], task["priority"]), ("respond-to-alert", "urgent"))
        # The base waits a day before it is told, by its own policy: not yet, whatever the time now.
        self.assertEqual(self.base.cli("tasks", "policy", "--alarm-ack", "1440")["alarm_ack_minutes"], 1440)
        [on_base] = self.base.cli("tasks", "--all")["tasks"]
        self.assertEqual(on_base["id"], task["id"], "the same task on every node")
        told_at = datetime.datetime.fromisoformat(on_base["escalates_at"])
        self.assertEqual(told_at - datetime.datetime.fromisoformat(raised), datetime.timedelta(days=1))
        self.assertFalse(on_base["escalated"])

        claimed = self.kari.cli("tasks", "claim", task["id"])
        self.assertEqual(claimed["also_claimed_by"], [])
        from_kari = os.path.join(self.tmp.name, "from-kari-2.omsyn")
        self.kari.cli("export", "--patient", self.patient, from_kari)
        self.base.cli("import", from_kari)
        [on_base] = self.base.cli("tasks", "--all")["tasks"]
        self.assertFalse(on_base["escalated"], "claimed before the deadline: the base is not asked")
        self.assertEqual([c["by"]["staff"] for c in on_base["claims"]], ["S1"])
        self.assertEqual(self.base.cli("tasks")["tasks"], [on_base], "a base sees every open task")

    def test_a_report_dated_ahead_of_the_units_clock_is_refused(self):
        ahead = (datetime.datetime.now().astimezone() + datetime.timedelta(hours=1)).isoformat()
        body = {"device": "Safemate alarm #12", "event_id": "a-2", "kind": "alarm", "at": ahead}
        status, answer = self.call("POST", "/api/home/device-events", body)
        self.assertEqual(status, 400, answer)
        self.assertIn("clock", answer["error"])
        self.assertEqual(self.journal(), [])

    def test_every_device_report_kind_is_stored_once_with_the_device_as_performer(self):
        dispenser = "Evondos E300 #4711"
        reports = [
            {"kind": "dose-dispensed", "medication": self.med, "slot": "08:00"},
            {"kind": "dose-taken", "medication": self.med, "slot": "08:00"},
            {"kind": "dose-missed", "medication": self.med, "slot": "08:00"},
            {"kind": "device-error", "code": "E42 jammed"},
            {"kind": "power-failure"},
            {"kind": "alarm"},
            {"kind": "measurement", "measurement": "blood-pressure", "value": "128/82", "unit": "mmHg"},
            {"kind": "measurement", "measurement": "spo2", "value": "96", "unit": "%"},
            {"kind": "measurement", "measurement": "weight", "value": "71.5", "unit": "kg"},
            {"kind": "measurement", "measurement": "glucose", "value": "6.2", "unit": "mmol/L"},
            # A device that sends its reading as a JSON number.
            {"kind": "measurement", "measurement": "pulse", "value": 72, "unit": "/min"},
            {"kind": "measurement", "measurement": "temperature", "value": 37.5, "unit": "C"},
        ]
        for i, report in enumerate(reports):
            body = dict(report, device=dispenser, event_id=f"ev-{i}", at=at("00:04"))
            status, created = self.call("POST", "/api/home/device-events", body)
            self.assertEqual(status, 201, (report, created))
            self.assertEqual(created["entry"]["author"]["device"], self.home.cli("id")["id"])
            # Devices retry: the same report again is stored once.
            self.assertEqual(self.call("POST", "/api/home/device-events", body), (200, {"duplicate": True}))
        journal = self.journal()
        self.assertEqual(len(journal), len(reports))
        self.assertTrue(all(dispenser in json.dumps(e["body"]) for e in journal))

    def test_malformed_reports_get_a_clear_4xx_and_nothing_is_stored(self):
        base = {"device": "Evondos E300 #4711", "event_id": "x"}
        cases = [
            (b"not json", 400, "request body"),
            ({"kind": "alarm"}, 400, "request body"),  # no device or event id
            (dict(base, kind="dance"), 400, "kind"),
            (dict(base, kind="dose-taken", slot="08:00"), 400, "medication"),
            (dict(base, kind="dose-taken", medication="m-0123456789abcdef", slot="08:00"), 404, "medication"),
            (dict(base, kind="dose-taken", medication=self.med, slot="09:00"), 400, "slot"),
            (dict(base, kind="measurement", measurement="spo2", value="960"), 400, "spo2"),
            (dict(base, kind="measurement", measurement="spo2", value=960), 400, "spo2"),
            (dict(base, kind="measurement", measurement="spo2", value=[96]), 400, "request body"),
            (dict(base, kind="measurement", measurement="blood-pressure", value="82/128"), 400, "blood-pressure"),
            (dict(base, kind="alarm", at="yesterday"), 400, "at"),
            (dict(base, kind="alarm", extra="field"), 400, "request body"),
            (dict(base, device="", kind="alarm"), 400, "device"),
        ]
        for body, status, mentions in cases:
            got, answer = self.call("POST", "/api/home/device-events", body)
            self.assertEqual(got, status, (body, answer))
            self.assertIn(mentions, answer["error"], body)
        self.assertEqual(self.journal(), [])


if __name__ == "__main__":
    unittest.main()
