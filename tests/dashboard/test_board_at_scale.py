"""The coordinator's board at M scale in headless Chromium: a day of about 2,300 visits in four
zones (tests/fixtures/worklist-M-1day.csv, made by
`python3 gen_worklist.py --tier M --days 1 --seed 1` from the shared data generator) imported into a
base, served by `omsyn run --http`, with a nurse's node syncing a documented visit to it.

Prints the measured times (BENCHMARKS.md, "The board at M scale"). The assertions are about what
the board shows; the timeouts are generous so a slow CI machine fails only if the board is broken.

Environment: OMSYN_BIN (the omsyn binary).
"""

import csv
import datetime
import io
import os
import sys
import tempfile
import time
import unittest

from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from browser import headless_chromium  # noqa: E402
from omsyn_cli import ZONE, Node, Serving, admin_base, at  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "worklist-M-1day.csv")
WAIT = 180


def todays_list(path):
    """The fixture's rows moved to today (a nurse's node needs the patients she visits today) and
    into the base's zone (a base holds its own zone's patients: here the whole day is one base's,
    as in a municipality coordinated from one office), and the first assigned single-staffed
    row's nurse."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    today = datetime.date.today().isoformat()
    for row in rows:
        row["date"] = today
        row["zone"] = ZONE
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    nurse = next(r for r in rows if r["staff_id"] and r["double_staffed"] == "nei")
    return out.getvalue(), nurse


class BoardAtScale(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="omsyn-board-m-")
        root = self.tmp.name
        listing, first = todays_list(FIXTURE)
        path = os.path.join(root, "worklist.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write(listing)
        self.base = admin_base(root, "Testkommune hjemmesykepleie")
        offset = datetime.datetime.now().astimezone().strftime("%z")
        started = time.monotonic()
        self.base.cli("import-worklist", path, "--offset", f"{offset[:3]}:{offset[3:]}")
        print(f"\nimport-worklist: {time.monotonic() - started:.1f} s", flush=True)
        self.nurse_name, staff = first["staff_name"], first["staff_id"]
        self.nurse = Node(root, "nurse", "--role", "nurse", "--name", self.nurse_name, "--staff-id", staff,
                          "--zone", ZONE)
        self.nurse.enroll_at(self.base, "--competence", first["staff_role"])
        self.staff = staff
        self.daemon = Serving(self.base)
        self.ticket, self.url = self.daemon.ticket, self.daemon.first["dashboard"]
        self.browser = headless_chromium()

    def tearDown(self):
        self.browser.quit()
        self.daemon.stop()
        self.tmp.cleanup()

    def wait_until(self, condition, what):
        WebDriverWait(self.browser, WAIT, poll_frequency=0.05).until(lambda _: condition(), message=what)

    def board(self):
        """What the board shows, read in one script (it re-renders as devices sync): the planned
        figure, the distinct visits in rows, and the status and text of the rows of `visit`."""
        return self.browser.execute_script("""
            const rows = [...document.querySelectorAll("tr.visit")];
            const planned = document.querySelector("#fig-planned b");
            return { planned: planned ? Number(planned.textContent) : null,
                     visits: new Set(rows.map((r) => r.dataset.visit)).size,
                     done: document.querySelector("#fig-done b")?.textContent };""")

    def parts(self):
        """The last refresh's board request and drawing, in the page's own measure (ms)."""
        return self.browser.execute_script("return [document.body.dataset.boardMs, document.body.dataset.renderMs];")

    def row(self, visit):
        return self.browser.execute_script(
            "const r = document.querySelector(arguments[0]); return r && [r.dataset.status, r.textContent];",
            f'tr.visit[data-visit="{visit}"]')

    def test_a_day_of_thousands_of_visits_renders_whole_and_follows_a_nurses_sync(self):
        b = self.browser
        # The nurse's phone gets her patients from the base before her shift.
        self.nurse.cli("sync", "--peer", self.ticket)
        mine = [v for v in self.nurse.cli("visit", "list", "--date", datetime.date.today().isoformat())["visits"]
                if v["staff"] == [self.staff]]
        self.assertTrue(mine, "the nurse holds her own visits")

        started = time.monotonic()
        b.get(self.url)
        self.wait_until(lambda: (self.board()["planned"] or 0) > 0 and self.board()["visits"] == self.board()["planned"],
                        "every planned visit in a row of the board")
        first_render = time.monotonic() - started
        first_parts = self.parts()
        shown = self.board()
        planned = shown["planned"]
        self.assertGreater(planned, 2000, shown)
        self.assertEqual(shown["done"], "0")

        # A visit documented on the nurse's phone reaches the board by sync, by her name.
        visit = mine[0]["id"]
        self.nurse.cli("visit", "done", "--visit", visit, "--arrival", at("08:04"), "--departure", at("08:27"))
        started = time.monotonic()
        self.nurse.cli("sync", "--peer", self.ticket)
        synced = time.monotonic() - started
        self.wait_until(lambda: (self.row(visit) or [None])[0] == "done", "the documented visit, live")
        to_board = time.monotonic() - started
        later_parts = self.parts()
        _, text = self.row(visit)
        self.assertIn(f"by {self.nurse_name}", text)
        self.assertEqual(self.board(), {"planned": planned, "visits": planned, "done": "1"})
        # The per-staff chart and the staff's rows name people, not ids.
        charts = b.execute_script("return document.querySelector('#charts').textContent;")
        self.assertIn(self.nurse_name, charts)
        heading = b.execute_script("return document.querySelector(arguments[0]).textContent;",
                                   f'tr.staff-head[data-staff="{self.staff}"]')
        self.assertIn(self.nurse_name, heading)
        self.assertEqual(b.execute_script("return document.querySelector('#error').textContent;"), "")

        # The board's API alone, for comparison with the page.
        started = time.monotonic()
        status, answer = self.daemon.call("GET", "/api/board")
        self.assertEqual((status, answer["report"]["totals"]["planned"]), (200, planned))
        api = time.monotonic() - started
        print(f"board at M scale: {planned} visits; first render {first_render:.2f} s "
              f"(board request {first_parts[0]} ms, drawing {first_parts[1]} ms); GET /api/board alone "
              f"{api:.2f} s; nurse's sync {synced:.2f} s, on the board {to_board:.2f} s after the sync began "
              f"(last refresh: board request {later_parts[0]} ms, drawing {later_parts[1]} ms)", flush=True)


if __name__ == "__main__":
    unittest.main()
