"""The coordinator's dashboard end to end in a real headless browser (Debian's chromium driven
through chromedriver by selenium) against a running base daemon (`omsyn run --http`), with two
nurses' nodes on the real omsyn binary syncing with it over loopback.

Environment: OMSYN_BIN (the omsyn binary); OMSYN_SCREENSHOT and OMSYN_PLAN_SCREENSHOT (optional:
where to save a screenshot of the dashboard, and of a suggestion on it).
"""

import datetime
import json
import os
import subprocess
import sys
import tempfile
import unittest

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from browser import headless_chromium  # noqa: E402
from omsyn_cli import OMSYN, ZONE, Node, admin_base, at  # noqa: E402

WAIT = 30


def nurse(root, base, staff, name, competence):
    node = Node(root, staff, "--role", "nurse", "--name", name, "--staff-id", staff, "--zone", ZONE)
    node.enroll_at(base, "--competence", competence)
    return node


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="omsyn-dashboard-")
        root = self.tmp.name
        base = admin_base(root, "Testkommune hjemmesykepleie")
        self.kari = nurse(root, base, "S1", "Kari Nordmann", "sykepleier")
        self.per = nurse(root, base, "S2", "Per Hansen", "helsefagarbeider")
        p = base.cli("patient", "add", "--name", "Turid Nilsen", "--zone", ZONE)["id"]
        base.cli("team", "--patient", p, "--add", "S1")
        base.cli("team", "--patient", p, "--add", "S2")
        self.med = base.cli("med", "add", "--patient", p, "--name", "Metformin 500 mg", "--dose", "1", "--slot", "08:00")["id"]
        self.morning = base.cli("visit", "plan", "--patient", p, "--start", at("08:00"), "--end", at("08:30"),
                                "--kind", "physical", "--staff", "S1")["id"]
        self.evening = base.cli("visit", "plan", "--patient", p, "--start", at("18:00"), "--end", at("18:15"),
                                "--kind", "digital", "--staff", "S1")["id"]
        self.patient = p
        self.base = base
        self.daemon = subprocess.Popen(
            [OMSYN, "--json", "--data", base.dir, "run", "--listen", "127.0.0.1:0", "--no-mdns", "--http", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        first = json.loads(self.daemon.stdout.readline())
        self.ticket, self.url = first["ticket"], first["dashboard"]
        for n in (self.kari, self.per):
            n.cli("sync", "--peer", self.ticket)
        self.browser = headless_chromium()

    def tearDown(self):
        self.browser.quit()
        self.daemon.kill()
        self.daemon.wait()
        self.daemon.stdout.close()
        self.tmp.cleanup()

    def status_of(self, visit):
        # Read in one script: the board re-renders whenever a device syncs.
        rows = self.browser.execute_script(
            "return [...document.querySelectorAll(arguments[0])].map(r => [r.dataset.staff, r.dataset.status]);",
            f'tr.visit[data-visit="{visit}"]',
        )
        return [tuple(r) for r in rows]

    def wait_until(self, condition, what):
        # An element found a moment ago may have been redrawn since (the page refreshes on every
        # commit): the condition is asked again.
        WebDriverWait(self.browser, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda _: condition(), message=what)

    def test_the_board_follows_sync_and_its_changes_reach_the_nurses(self):
        b = self.browser
        b.get(self.url)
        self.wait_until(lambda: self.status_of(self.morning) == [("S1", "open")], "the planned visit on the board")

        # A visit documented on a nurse's node appears once it syncs.
        self.kari.cli("visit", "done", "--visit", self.morning, "--arrival", at("08:04"), "--departure", at("08:27"))
        self.kari.cli("sync", "--peer", self.ticket)
        self.wait_until(lambda: self.status_of(self.morning) == [("S1", "done")], "the documented visit, live")
        self.wait_until(lambda: b.find_element(By.CSS_SELECTOR, "#fig-done b").text == "1", "one visit done")

        # Reassign the evening visit to Per in the page; the picker, filled when reached for,
        # shows continuity.
        # Found afresh and focused in one script: the board may re-render until a picker has the
        # focus, and not after.
        picker = f'select.reassign[data-visit="{self.evening}"]'
        self.wait_until(lambda: b.execute_script(
            "const s = document.querySelector(arguments[0]); s.focus(); return s.dataset.filled;", picker) == "usual",
            "the picker filled")
        select = Select(b.find_element(By.CSS_SELECTOR, picker))
        per_option = [o for o in select.options if o.get_attribute("value") == "S2"][0]
        self.assertIn("care team", per_option.text)
        self.assertIn("helsefagarbeider", per_option.text)
        select.select_by_value("S2")
        # The board drawn anew between choosing and pressing Assign — a change that arrived
        # while the picker had the focus is drawn once it loses it, as pressing the button
        # makes it — keeps the choice: the picker shows it, and Assign assigns it.
        b.execute_script("return refresh()")
        b.execute_script("document.activeElement.blur()")
        self.wait_until(lambda: b.execute_script(
            "return !document.querySelector(arguments[0]).dataset.filled", picker), "the board drawn anew")
        self.assertEqual(Select(b.find_element(By.CSS_SELECTOR, picker)).first_selected_option.get_attribute("value"), "S2")
        b.find_element(By.CSS_SELECTOR, f'button.assign[data-visit="{self.evening}"]').click()
        self.wait_until(lambda: self.status_of(self.evening) == [("S2", "open")], "the visit under Per")
        # The answer showed the visit: a read of the patient, logged like any other.
        log = self.base.cli("audit", "--patient", self.patient)["entries"]
        self.assertTrue(any(e["action"] == "read" and e["what"] == "visit (dashboard)" for e in log), log)

        # Both nurses gave the 08:00 dose while apart: a conflict to review, resolved in the page.
        for n in (self.kari, self.per):
            n.cli("med", "give", "--patient", self.patient, "--slot", f"{self.med}@08:00")
            n.cli("sync", "--peer", self.ticket)
        self.wait_until(lambda: b.find_elements(By.CSS_SELECTOR, ".conflict.high"), "the double dose to review")
        if os.environ.get("OMSYN_SCREENSHOT"):
            b.save_screenshot(os.environ["OMSYN_SCREENSHOT"])
        conflict = b.find_element(By.CSS_SELECTOR, ".conflict.high")
        # Named for people: the patient, the medication from her list, the nurses.
        for name in ("Turid Nilsen", "Metformin 500 mg at 08:00", "Kari Nordmann", "Per Hansen"):
            self.assertIn(name, conflict.text)
        self.assertNotIn(self.med, conflict.text)
        conflict_id = conflict.get_attribute("data-conflict")
        conflict.find_element(By.CSS_SELECTOR, ".note").send_keys("Ringte Kari og Per: dosen ble gitt én gang.")
        conflict.find_element(By.CSS_SELECTOR, ".resolve").click()
        self.wait_until(lambda: not b.find_elements(By.CSS_SELECTOR, f'.conflict[data-conflict="{conflict_id}"]'),
                        "the conflict gone from the page")
        self.assertEqual(b.find_element(By.ID, "error").text, "")

        # Both changes made in the page reached the nurse's node.
        self.per.cli("sync", "--peer", self.ticket)
        visits = self.per.cli("visit", "list", "--date", datetime.date.today().isoformat())["visits"]
        evening = [v for v in visits if v["id"] == self.evening][0]
        self.assertEqual(evening["staff"], ["S2"])
        self.assertEqual(self.per.cli("conflicts")["conflicts"], [])

    def test_an_unanswered_video_visit_becomes_a_task_the_base_claims_in_the_page(self):
        b = self.browser
        b.get(self.url)
        self.wait_until(lambda: self.status_of(self.evening) == [("S1", "open")], "the board loaded")
        for hhmm in ("18:00", "18:05", "18:10"):
            self.kari.cli("visit", "missed", "--visit", self.evening, "--reason", "no-answer", "--at", at(hhmm))
        self.kari.cli("sync", "--peer", self.ticket)
        self.wait_until(lambda: b.find_elements(By.CSS_SELECTOR, ".task.high"), "the physical visit task")
        task = b.find_element(By.CSS_SELECTOR, ".task.high")
        task_id = task.get_attribute("data-task")
        self.assertIn("physical visit: the 18:00 video visit", task.text)
        self.assertIn("Turid Nilsen", task.text)
        self.assertIn("for zone", task.text)
        task.find_element(By.CSS_SELECTOR, ".claim").click()
        self.wait_until(
            lambda: "claimed by Base Sone 1" in b.find_element(By.CSS_SELECTOR, f'.task[data-task="{task_id}"]').text,
            "the base's claim in the page",
        )
        self.assertEqual(b.find_element(By.ID, "error").text, "")
        # Per holds the patient: the zone's task is his to see, with the base's claim on it.
        self.per.cli("sync", "--peer", self.ticket)
        [seen] = self.per.cli("tasks")["tasks"]
        self.assertEqual(seen["id"], task_id)
        self.assertEqual([c["by"]["staff"] for c in seen["claims"]], ["B1"])

    def test_the_coordinator_accepts_some_of_a_suggestion_and_the_nurse_gets_it(self):
        b = self.browser
        tomorrow = datetime.date.today() + datetime.timedelta(days=1)

        def at_tomorrow(hhmm):
            h, m = hhmm.split(":")
            t = datetime.datetime.combine(tomorrow, datetime.time(int(h), int(m)))
            return t.astimezone().isoformat()

        # Tomorrow: an injection planned for Per, who is not an authorised nurse, and a visit
        # nobody is assigned to.
        q = self.base.cli("patient", "add", "--name", "Egil Haugen", "--zone", ZONE)["id"]
        for patient, home in ((q, "59.2701,10.4012"), (self.patient, "59.2745,10.4101")):
            self.base.cli("patient", "set", "--patient", patient, "--field", "location", "--value", home)
        insulin = self.base.cli("plan", "add", "--patient", q, "--description", "Insulin", "--code", "INJ",
                                "--requires-nurse")["id"]
        injection = self.base.cli("visit", "plan", "--patient", q, "--start", at_tomorrow("09:00"),
                                  "--end", at_tomorrow("09:15"), "--kind", "physical", "--staff", "S2",
                                  "--tiltak", insulin)["id"]
        lunch = self.base.cli("visit", "plan", "--patient", self.patient, "--start", at_tomorrow("12:00"),
                              "--end", at_tomorrow("12:20"), "--kind", "physical")["id"]

        b.get(self.url)
        self.wait_until(lambda: self.status_of(self.morning) == [("S1", "open")], "the board loaded")
        b.execute_script("const d = document.querySelector('#date'); d.value = arguments[0];"
                         "d.dispatchEvent(new Event('change'));", tomorrow.isoformat())
        self.wait_until(lambda: self.status_of(injection) == [("S2", "open")], "tomorrow's board")
        shift = b.find_element(By.ID, "plan-shift")
        shift.clear()
        shift.send_keys("07:00-22:00")
        b.find_element(By.ID, "plan-suggest").click()
        self.wait_until(lambda: b.find_elements(By.CSS_SELECTOR, f'#plan-moves tr.move[data-visit="{lunch}"]'),
                        "the suggestion's moves")
        if os.environ.get("OMSYN_PLAN_SCREENSHOT"):
            b.save_screenshot(os.environ["OMSYN_PLAN_SCREENSHOT"])
        move = b.find_element(By.CSS_SELECTOR, f'#plan-moves tr.move[data-visit="{injection}"]')
        self.assertIn("Per Hansen is not an authorised nurse", move.text)
        self.assertIn("Kari Nordmann", move.find_elements(By.TAG_NAME, "td")[4].text)
        self.assertNotIn("S2", move.text)
        # The coordinator takes the injection's move but not the other one.
        b.find_element(By.CSS_SELECTOR, f'#plan-moves tr.move[data-visit="{lunch}"] .accept-move').click()
        b.find_element(By.ID, "plan-accept").click()
        self.wait_until(lambda: "accepted: 1 reassigned" in b.find_element(By.ID, "plan-status").text,
                        "the acceptance")
        self.wait_until(lambda: self.status_of(injection) == [("S1", "open")], "the injection under Kari")
        self.assertEqual(self.status_of(lunch), [("(unassigned)", "open")], "a move not accepted changes nothing")
        self.assertEqual(b.find_element(By.ID, "error").text, "")

        # The accepted change reaches Kari's phone, and the base logged the acceptance.
        self.kari.cli("sync", "--peer", self.ticket)
        visits = self.kari.cli("visit", "list", "--date", tomorrow.isoformat())["visits"]
        self.assertEqual([v["staff"] for v in visits if v["id"] == injection], [["S1"]])
        log = self.base.cli("audit")["entries"]
        self.assertTrue(any(e["action"] == "write" and "accepted" in e["what"] for e in log), log)

    def test_the_api_refuses_requests_without_the_session_token(self):
        import urllib.error
        import urllib.request

        base_url = self.url.split("/?")[0]
        for path in ("/", "/api/board", "/api/conflicts"):
            with self.assertRaises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base_url + path)
            self.assertEqual(refused.exception.code, 401, path)
        token = self.url.split("token=")[1]
        request = urllib.request.Request(base_url + "/api/board", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request) as ok:
            self.assertEqual(json.load(ok)["report"]["totals"]["planned"], 2)
        bad = urllib.request.Request(
            base_url + f"/api/visits/{self.evening}/assign", data=b'{"staff": ["not valid!"]}', method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with self.assertRaises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(bad)
        self.assertEqual(rejected.exception.code, 400)
        self.assertIn("staff", json.load(rejected.exception)["error"])
        # Someone the base does not know: the answer names the step as data, not as a command
        # line of the CLI, which the coordinator at the board does not have.
        unknown = urllib.request.Request(
            base_url + f"/api/visits/{self.evening}/assign", data=b'{"staff": ["S0099"]}', method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with self.assertRaises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(unknown)
        self.assertEqual(rejected.exception.code, 400)
        answer = json.load(rejected.exception)
        self.assertIn("S0099 is no staff member", answer["error"])
        self.assertNotIn("omsyn ", answer["error"])
        self.assertEqual(answer["remedy"], {"kind": "add-staff", "staff": "S0099"})
        malformed = urllib.request.Request(
            base_url + f"/api/visits/{self.evening}/assign", data=b"not json", method="POST",
            headers={"Authorization": f"Bearer {token}"},
        )
        with self.assertRaises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(malformed)
        self.assertEqual(rejected.exception.code, 400)
        self.assertIn("request body", json.load(rejected.exception)["error"])
        # A page on another local port is the same site, not the same origin: refused.
        foreign = urllib.request.Request(
            base_url + f"/api/visits/{self.evening}/assign", data=b'{"staff": ["S2"]}', method="POST",
            headers={"Authorization": f"Bearer {token}", "Origin": "http://127.0.0.1:1",
                     "Content-Type": "application/json"},
        )
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(foreign)
        self.assertEqual(refused.exception.code, 403)
        with urllib.request.urlopen(request) as unchanged:
            board = json.load(unchanged)["report"]
        self.assertEqual([v["staff"] for v in board["visits"] if v["visit"] == self.evening], [["S1"]])
        # The planning assistant refuses what it cannot plan with, saying why.
        for body, expected in (({"date": "2026-02-30"}, "date"), ({"zone": "Sone 9"}, "Sone 9"),
                               ({"shifts": "who;when\n"}, "staff_id;start;end"), ({"speed": 3}, "unknown field"),
                               ({"priorities": "cost"}, "unknown objective")):
            bad = urllib.request.Request(
                base_url + "/api/plan/suggest", data=json.dumps(body).encode(), method="POST",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with self.assertRaises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(bad)
            self.assertEqual(refused.exception.code, 400, body)
            self.assertIn(expected, json.load(refused.exception)["error"], body)


if __name__ == "__main__":
    unittest.main()
