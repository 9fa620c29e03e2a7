"""Issue #12: concurrent writes once corrupted a patient's journal and lost acknowledged entries.

Every entrance writes to the same patient's documents at once, round after round: a nurse's
phone through the bindings (eight app threads), a second nurse's `omsyn note add` commands
forwarded to her daemon, the base's forwarded commands and its dashboard's HTTP API, the home
unit's HTTP API (device reports and messages) — while live sync sessions carry every change
between all four nodes. Afterwards every acknowledged write is on every node exactly once, and
`omsyn check` (which decodes every document from disk) is clean on every node.

OMSYN_STRESS_ROUNDS sets the rounds (default 3); a wide sweep: OMSYN_STRESS_ROUNDS=50.
"""

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "support"))
from omsyn_cli import OMSYN, ZONE, Node, Serving, admin_base, at  # noqa: E402
from harness import new_key, om, temp_root  # noqa: E402

ROUNDS = int(os.environ.get("OMSYN_STRESS_ROUNDS", "3"))
CONVERGENCE_TIMEOUT_S = 90


class EveryEntranceAtOnce(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.tmp = temp_root()
        root = self.tmp.name
        self.base = admin_base(root)
        self.patient = self.base.cli("patient", "add", "--name", "Turid Nilsen", "--zone", ZONE)["id"]
        # The nurses of the care team; their phones are enrolled below.
        for staff, name in (("S1", "Kari Nordmann"), ("S2", "Kari")):
            self.base.cli("staff", "add", "--id", staff, "--name", name)
            self.base.cli("team", "--patient", self.patient, "--add", staff)
        self.visit = self.base.cli(
            "visit", "plan", "--patient", self.patient, "--start", at("12:00"), "--end", at("12:30"),
            "--kind", "physical", "--staff", "S1",
        )["id"]
        self.kari = Node(root, "kari", "--role", "nurse", "--name", "Kari", "--staff-id", "S2", "--zone", ZONE)
        self.kari.enroll_at(self.base)
        self.home = Node(root, "home", "--role", "home-unit", "--name", "Hjemme hos Turid",
                         "--patient", self.patient, "--zone", ZONE)
        self.home.enroll_at(self.base)
        self.serving = [Serving(self.base)]
        base_ticket = self.serving[0].ticket
        self.serving.append(Serving(self.home, peers=[base_ticket]))
        home_ticket = self.serving[1].ticket
        self.serving.append(Serving(self.kari, peers=[base_ticket, home_ticket]))
        self.dashboard, self.home_api = self.serving[0], self.serving[1]
        # The phone: a nurse's node through the bindings, syncing live with the base and the home.
        self.phone_dir = os.path.join(root, "phone")
        self.phone_key = new_key()
        self.phone = await om.OmsynNode.create(
            self.phone_dir, self.phone_key,
            om.NodeSetup(role=om.NodeRole.NURSE, name="Liv", staff_id="S1", patient=None, zone=ZONE),
        )
        request = self.phone.enrollment_request()
        await self.phone.install_certificate(self.base.cli("enroll", "approve", request)["certificate"])
        await self.phone.start_sync(om.SyncOptions(
            listen="127.0.0.1:0", relay=None, peers=[base_ticket, home_ticket], local_discovery=False))
        for node in (self.home, self.kari):
            self.wait_until(lambda node=node: self.holds_patient(node), f"{node.dir} holds the patient")
        await self.until_async(self.phone_holds_patient, "the phone holds the patient")

    async def asyncTearDown(self):
        await self.phone.shutdown()
        for s in self.serving:
            s.stop()
        self.tmp.cleanup()

    def holds_patient(self, node):
        out = subprocess.run([OMSYN, "--json", "--data", node.dir, "show", "--patient", self.patient],
                             capture_output=True, text=True)
        return out.returncode == 0

    async def phone_holds_patient(self):
        try:
            await self.phone.patient_record(self.patient)
            return True
        except om.OmsynError:
            return False

    def wait_until(self, condition, what, timeout=CONVERGENCE_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            time.sleep(0.2)

    async def until_async(self, condition, what, timeout=CONVERGENCE_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while not await condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            await asyncio.sleep(0.2)

    # ----- the writers -------------------------------------------------------------------------

    def phone_note(self, text):
        return asyncio.run(self.phone.add_note(self.patient, None, text, None)).id

    def forwarded_note(self, node, text):
        out = subprocess.run([OMSYN, "--data", node.dir, "note", "add", "--patient", self.patient,
                              "--text", text], capture_output=True, text=True)
        if out.returncode != 0:
            raise AssertionError(f"forwarded note add failed: {out.stderr}")
        return out.stdout.strip()

    def device_report(self, round_, i):
        body = {"device": "Pulsoksymeter #7", "event_id": f"r{round_}-{i}", "kind": "measurement",
                "measurement": "pulse", "value": str(60 + i), "unit": "/min", "at": at("00:01")}
        status, answer = self.home_api.call("POST", "/api/home/device-events", body)
        if status != 201:
            raise AssertionError(f"device report: {status} {answer}")
        return answer["entry"]["id"]

    def home_message(self, text):
        status, answer = self.home_api.call("POST", "/api/home/messages", {"text": text})
        if status != 200:
            raise AssertionError(f"home message: {status} {answer}")
        return answer["message"]["id"]

    def reassign(self, staff):
        status, answer = self.dashboard.call("POST", f"/api/visits/{self.visit}/assign", {"staff": [staff]})
        if status != 200:
            raise AssertionError(f"dashboard assign: {status} {answer}")

    def one_round(self, r):
        """Fires every entrance at once; returns (journal entry ids, message ids) acknowledged."""
        with ThreadPoolExecutor(max_workers=32) as pool:
            entries = [pool.submit(self.phone_note, f"telefon {r}-{i}") for i in range(8)]
            entries += [pool.submit(self.forwarded_note, self.kari, f"kari {r}-{i}") for i in range(8)]
            entries += [pool.submit(self.forwarded_note, self.base, f"base {r}-{i}") for i in range(4)]
            entries += [pool.submit(self.device_report, r, i) for i in range(8)]
            messages = [pool.submit(self.home_message, f"melding {r}-{i}") for i in range(3)]
            plans = [pool.submit(self.reassign, ("S1", "S2")[i % 2]) for i in range(4)]
            for p in plans:
                p.result()
            return [e.result() for e in entries], [m.result() for m in messages]

    # ----- what every node must hold -------------------------------------------------------------

    def cli_view(self, node):
        out = subprocess.run([OMSYN, "--json", "--data", node.dir, "show", "--patient", self.patient],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise AssertionError(f"show on {node.dir}: {out.stderr}")
        view = json.loads(out.stdout)
        return [e["id"] for e in view["journal"]], [m["id"] for m in view["messages"]]

    async def phone_view(self):
        record = await self.phone.patient_record(self.patient)
        messages = await self.phone.messages(self.patient)
        return [e.id for e in record.journal], [m.id for m in messages]

    def holds_all(self, view, entries, messages):
        journal, held_messages = view
        return set(entries) <= set(journal) and set(messages) <= set(held_messages)

    async def test_every_acknowledged_write_from_every_entrance_reaches_every_node_once(self):
        entries, messages = [], []
        for r in range(ROUNDS):
            e, m = await asyncio.to_thread(self.one_round, r)
            entries += e
            messages += m
        self.assertEqual(len(set(entries)), len(entries), "every write got an entry id of its own")
        for node in (self.base, self.kari, self.home):
            self.wait_until(lambda node=node: self.holds_all(self.cli_view(node), entries, messages),
                            f"{os.path.basename(node.dir)} holds every acknowledged write")
            journal, held = self.cli_view(node)
            for id_ in entries + messages:
                self.assertEqual((journal + held).count(id_), 1, f"{id_} once on {node.dir}")

        async def phone_holds_all():
            return self.holds_all(await self.phone_view(), entries, messages)
        await self.until_async(phone_holds_all, "the phone holds every acknowledged write")

        for node in (self.base, self.kari, self.home):
            checked = node.cli("check")  # forwarded to the daemon: decodes every document from disk
            self.assertTrue(checked["ok"], checked)
        await self.phone.shutdown()
        del self.phone
        gc.collect()  # closes the phone's store, so the CLI can open it
        key_file = os.path.join(self.tmp.name, "phone.key")
        with open(key_file, "w") as f:
            f.write(self.phone_key.hex())
        os.chmod(key_file, 0o600)
        out = subprocess.run([OMSYN, "--json", "--data", self.phone_dir, "--store-key-file", key_file, "check"],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.phone = await om.OmsynNode.open(self.phone_dir, self.phone_key)


if __name__ == "__main__":
    unittest.main()
