"""The whole FFI surface, end to end: two nodes opened through the generated Python bindings,
enrolled at a base office running the real `omsyn` binary, syncing over loopback."""

import asyncio
import os
import threading
import unittest

from datetime import datetime

from harness import Base, Events, ZONE, at_today, enrolled, new_key, om, temp_root, today


def ms(rfc3339):
    return int(datetime.fromisoformat(rfc3339).timestamp() * 1000)


class Scenario:
    """A base with one patient (care team: nurse S1), a medication, and a visit today assigned
    to S1; a nurse's phone (S1) and the patient's home unit, both enrolled through the bindings."""

    async def setup(self):
        self.root = temp_root()
        root = self.root.name
        self.base = Base(root)
        self.patient = self.base.cli("patient", "add", "--name", "Turid Nilsen", "--zone", ZONE)["id"]
        # The nurse the visit is planned for; her phone is enrolled in the test.
        self.base.cli("staff", "add", "--id", "S1", "--name", "Kari Nordmann")
        self.base.cli("team", "--patient", self.patient, "--add", "S1")
        self.medication = self.base.cli(
            "med", "add", "--patient", self.patient, "--name", "Metformin 500 mg",
            "--dose", "1 tablett", "--slot", "08:00",
        )["id"]
        self.visit = self.base.cli(
            "visit", "plan", "--patient", self.patient, "--start", at_today("08:00"),
            "--end", at_today("08:30"), "--kind", "digital", "--staff", "S1",
        )["id"]
        self.base_ticket = self.base.serve()
        self.nurse, self.nurse_dir, self.nurse_key = await enrolled(
            self.base, root, "nurse",
            om.NodeSetup(role=om.NodeRole.NURSE, name="Kari Nordmann", staff_id="S1", patient=None, zone=ZONE),
        )
        self.home, self.home_dir, self.home_key = await enrolled(
            self.base, root, "home",
            om.NodeSetup(role=om.NodeRole.HOME_UNIT, name="Hjemme hos Turid", staff_id=None, patient=self.patient, zone=ZONE),
        )
        for node in (self.nurse, self.home):
            summary = await node.sync_now(self.base_ticket)
            assert summary.caught_up, summary
        return self

    async def teardown(self):
        for node in (self.nurse, self.home):
            await node.shutdown()
        self.base.stop()
        self.root.cleanup()


class EndToEnd(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.s = await Scenario().setup()

    async def asyncTearDown(self):
        await self.s.teardown()

    async def test_visit_documented_on_the_phone_reaches_the_home_unit_with_its_event(self):
        s = self.s
        work = await s.nurse.work_list(today())
        self.assertEqual([w.visit for w in work], [s.visit])
        self.assertEqual(work[0].state, om.VisitState.OPEN)
        self.assertEqual(work[0].mode, om.VisitMode.DIGITAL)
        self.assertEqual(work[0].patient_name, "Turid Nilsen")
        self.assertEqual(work[0].staff, ["S1"])
        self.assertEqual(work[0].staff_names, ["Kari Nordmann"], "who is coming, by name")

        events = Events(asyncio.get_running_loop())
        s.home.set_listener(events)
        home_ticket = await s.home.start_sync(om.SyncOptions(listen="127.0.0.1:0", relay=None, peers=[], local_discovery=False))
        await s.nurse.start_sync(om.SyncOptions(listen="127.0.0.1:0", relay=None, peers=[home_ticket], local_discovery=False))
        connected = await events.wait_for(lambda e: e.is_PEER_CONNECTED(), "peer connected")
        self.assertEqual(connected.peer, s.nurse.id())
        self.assertEqual(connected.role, om.NodeRole.NURSE)

        await s.nurse.start_visit(s.visit, None)
        done = await s.nurse.visit_done(s.visit, None, None, None)
        note = await s.nurse.add_note(s.patient, s.visit, "Turid var i god form, spiste frokost.", None)
        given = await s.nurse.medication_given(s.patient, s.medication, "08:00", s.visit, None)
        bp = await s.nurse.observe(s.patient, s.visit, "blood-pressure", "128/82", "mmHg", None)
        self.assertEqual(note.kind, om.EntryKind.NOTE)
        # What each write says back names the dose and the visit as the journal shows them.
        self.assertIn("GIVEN Metformin 500 mg 08:00 on ", given.summary)
        self.assertNotIn(s.medication, given.summary)
        self.assertIn("visit of ", done.summary)
        self.assertNotIn(s.visit, done.summary)
        self.assertEqual(note.author.name, "Kari Nordmann")
        self.assertEqual(note.author.staff_id, "S1")

        await events.wait_for(
            lambda e: e.is_DOCUMENT_CHANGED() and e.patient == s.patient and e.document.startswith("journal/"),
            "document changed",
        )
        # Each write is pushed as it commits: read again after each further change arrives,
        # until the last entry is in.
        def changes():
            return len(events.matching(lambda e: e.is_DOCUMENT_CHANGED()))

        while True:
            seen = changes()
            record = await s.home.patient_record(s.patient)
            if bp.id in [e.id for e in record.journal]:
                break
            await events.wait_for(lambda e, seen=seen: changes() > seen, "more changes")
        ids = [e.id for e in record.journal]
        for entry in (done, note, given, bp):
            self.assertIn(entry.id, ids)
        self.assertEqual(record.visits[0].state, om.VisitState.DONE)
        self.assertEqual(record.name, "Turid Nilsen")
        self.assertTrue(record.purpose)

        # A message from the home reaches the nurse.
        nurse_events = Events(asyncio.get_running_loop())
        s.nurse.set_listener(nurse_events)
        sent = await s.home.send_message(s.patient, om.MessageRecipient.CARE_TEAM, "Kan dere komme litt senere i morgen?", None, [])
        await nurse_events.wait_for(
            lambda e: e.is_DOCUMENT_CHANGED() and e.document.startswith("messages/"), "message arrived"
        )
        messages = await s.nurse.messages(s.patient)
        self.assertIn(sent.id, [m.id for m in messages])
        self.assertEqual([m for m in messages if m.id == sent.id][0].to, om.MessageRecipient.CARE_TEAM)

        status = await s.home.sync_status()
        self.assertTrue(status.running)
        self.assertTrue(status.ticket.startswith("omsyn1:"))
        nurse_row = [p for p in status.peers if p.id == s.nurse.id()][0]
        self.assertTrue(nurse_row.connected)
        self.assertEqual(nurse_row.name, "Kari Nordmann")
        self.assertEqual([p.patient for p in status.patients], [s.patient])

        await s.nurse.stop_sync()
        await events.wait_for(lambda e: e.is_PEER_LOST(), "peer lost")
        await s.home.stop_sync()
        self.assertFalse((await s.home.sync_status()).running)

    async def test_a_dose_documented_twice_offline_raises_a_conflict_event_and_is_resolved(self):
        s = self.s
        second, _, _ = await enrolled(
            s.base, s.root.name, "nurse2",
            om.NodeSetup(role=om.NodeRole.NURSE, name="Per Hansen", staff_id="S1", patient=None, zone=ZONE),
        )
        await second.sync_now(s.base_ticket)
        # Both give the 08:00 dose while apart.
        await s.nurse.medication_given(s.patient, s.medication, "08:00", None, None)
        await second.medication_given(s.patient, s.medication, "08:00", None, None)
        events = Events(asyncio.get_running_loop())
        s.nurse.set_listener(events)
        second_ticket = await second.start_sync(om.SyncOptions(listen="127.0.0.1:0", relay=None, peers=[], local_discovery=False))
        await s.nurse.sync_now(second_ticket)
        appeared = await events.wait_for(lambda e: e.is_CONFLICT_APPEARED(), "conflict appeared")
        self.assertTrue(appeared.conflict.high_severity)
        self.assertEqual(appeared.conflict.patient, s.patient)
        open_conflicts = await s.nurse.conflicts()
        self.assertEqual([c.id for c in open_conflicts], [appeared.conflict.id])
        # The app shows names, not ids: whose record, which medication, who gave it.
        [shown] = open_conflicts
        self.assertEqual(shown.patient_name, "Turid Nilsen")
        self.assertEqual(shown.medication_name, "Metformin 500 mg")
        self.assertEqual(sorted(shown.by_names), ["Kari Nordmann", "Per Hansen"])
        resolution = await s.nurse.resolve_conflict(appeared.conflict.id, "Ringte Per: dosen ble gitt én gang.", None)
        self.assertIsNotNone(resolution)
        self.assertEqual(resolution.kind, om.EntryKind.CONFLICT_RESOLVED)
        self.assertEqual(await s.nurse.conflicts(), [])
        await second.shutdown()

    async def test_two_nurses_claiming_a_physical_visit_offline_are_both_told(self):
        s = self.s
        s.base.cli("staff", "add", "--id", "S2", "--name", "Per Hansen")
        s.base.cli("team", "--patient", s.patient, "--add", "S2")
        second, _, _ = await enrolled(
            s.base, s.root.name, "nurse2",
            om.NodeSetup(role=om.NodeRole.NURSE, name="Per Hansen", staff_id="S2", patient=None, zone=ZONE),
        )
        # Three unanswered calls: the video visit becomes a physical visit for the zone.
        for hhmm in ("08:00", "08:05", "08:10"):
            await s.nurse.visit_missed(s.visit, om.MissedReason.NO_ANSWER, None, ms(at_today(hhmm)))
        [task] = await s.nurse.tasks()
        self.assertEqual(task.kind, "physical-visit")
        self.assertEqual(task.patient_name, "Turid Nilsen")
        self.assertEqual(task.owner, ["zone"])
        self.assertEqual(task.priority, om.TaskPriority.HIGH)
        await s.nurse.sync_now(s.base_ticket)
        await second.sync_now(s.base_ticket)
        self.assertEqual([t.id for t in await second.tasks()], [task.id])
        # Both claim while apart.
        mine = await s.nurse.claim_task(task.id)
        self.assertEqual(mine.also_claimed_by, [])
        await second.claim_task(task.id)
        events = Events(asyncio.get_running_loop())
        s.nurse.set_listener(events)
        second_ticket = await second.start_sync(om.SyncOptions(listen="127.0.0.1:0", relay=None, peers=[], local_discovery=False))
        await s.nurse.sync_now(second_ticket)
        told = await events.wait_for(lambda e: e.is_TASK_CHANGED() and e.task.also_claimed_by, "also claimed")
        self.assertEqual([a.name for a in told.task.also_claimed_by], ["Per Hansen"])
        [theirs] = await second.tasks()
        self.assertEqual([a.name for a in theirs.also_claimed_by], ["Kari Nordmann"])
        self.assertEqual(len(theirs.claimed_by), 2)
        await s.nurse.complete_task(task.id, "Var der 08:40, alt vel.")
        self.assertEqual(await s.nurse.tasks(), [])
        with self.assertRaises(om.OmsynError.InvalidInput):
            await s.nurse.claim_task("not-a-task")
        await second.shutdown()

    async def test_a_picture_from_the_home_reaches_the_nurse_and_bad_pictures_are_refused(self):
        s = self.s
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
        picture = om.MessagePicture(content_type="image/png", name="saar.png", data=png)
        sent = await s.home.send_message(s.patient, om.MessageRecipient.CARE_TEAM, "", None, [picture])
        await s.home.sync_now(s.base_ticket)
        await s.nurse.sync_now(s.base_ticket)
        [got] = [m for m in await s.nurse.messages(s.patient) if m.id == sent.id]
        self.assertEqual(got.pictures, [picture])
        not_png = om.MessagePicture(content_type="image/png", name=None, data=b"GIF89a....")
        too_big = om.MessagePicture(content_type="image/jpeg", name=None, data=b"\xff\xd8\xff" + bytes(600 * 1024))
        for bad in (not_png, too_big):
            with self.assertRaises(om.OmsynError.InvalidInput):
                await s.home.send_message(s.patient, om.MessageRecipient.CARE_TEAM, "se bildet", None, [bad])

    async def test_corrections_keep_the_original(self):
        s = self.s
        note = await s.nurse.add_note(s.patient, None, "Sår på venstre legg.", None)
        amended = await s.nurse.correct_entry(s.patient, note.id, om.CorrectionKind.AMEND(text="Sår på høyre legg."))
        self.assertEqual(amended.kind, om.EntryKind.CORRECTION)
        self.assertEqual(amended.corrects, note.id)
        record = await s.nurse.patient_record(s.patient)
        ids = [e.id for e in record.journal]
        self.assertIn(note.id, ids)
        self.assertIn(amended.id, ids)

    async def test_a_missed_visit_and_a_dose_not_given_are_documented(self):
        s = self.s
        missed = await s.nurse.visit_missed(s.visit, om.MissedReason.NO_ANSWER, "Svarte ikke på video.", None)
        self.assertEqual(missed.kind, om.EntryKind.VISIT_NOT_PERFORMED)
        self.assertEqual(missed.visit, s.visit)
        not_given = await s.nurse.medication_not_given(s.patient, s.medication, "08:00", "Pasienten sov", None, None)
        self.assertEqual(not_given.kind, om.EntryKind.MEDICATION_NOT_GIVEN)
        work = await s.nurse.work_list(today())
        self.assertEqual(work[0].state, om.VisitState.MISSED)

    async def test_calls_from_many_threads_at_once_all_land(self):
        s = self.s
        results, errors = [], []

        def worker(i):
            try:
                entry = asyncio.run(s.nurse.add_note(s.patient, None, f"Notat {i}", None))
                results.append(entry.id)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        record = await s.nurse.patient_record(s.patient)
        self.assertTrue(set(results) <= {e.id for e in record.journal})
        self.assertEqual(len(set(results)), 8)

    async def test_a_revoked_device_is_wiped_and_told(self):
        s = self.s
        events = Events(asyncio.get_running_loop())
        s.home.set_listener(events)
        s.base.cli("revoke", s.home.id(), "--reason", "nettbrettet er stjålet")
        with self.assertRaises(om.OmsynError.Revoked):
            await s.home.sync_now(s.base_ticket)
        revoked = await events.wait_for(lambda e: e.is_REVOKED(), "revoked event")
        self.assertIn("stjålet", revoked.reason)
        self.assertFalse(os.path.exists(os.path.join(s.home_dir, "store.redb")))
        with self.assertRaises(om.OmsynError.Revoked):
            await s.home.work_list(today())


class Errors(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.root = temp_root()
        self.dir = os.path.join(self.root.name, "phone")
        self.key = new_key()
        self.node = await om.OmsynNode.create(
            self.dir, self.key,
            om.NodeSetup(role=om.NodeRole.NURSE, name="Kari Nordmann", staff_id="S1", patient=None, zone=ZONE),
        )

    async def asyncTearDown(self):
        self.root.cleanup()

    async def test_bad_input_gets_a_clear_error_of_its_kind(self):
        n = self.node
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "patient"):
            await n.add_note("not a patient id!", None, "x", None)
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "day"):
            await n.work_list("22.11.2026")
        with self.assertRaises(om.OmsynError.InvalidInput):
            await n.sync_now("omsyn1:nonsense")
        with self.assertRaisesRegex(om.OmsynError.NotFound, "visit"):
            await n.visit_done("v-" + "0" * 16, None, None, None)
        with self.assertRaisesRegex(om.OmsynError.SyncState, "not running"):
            await n.stop_sync()
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "certificate|cert"):
            await n.install_certificate("omsyn-cert1:garbage")
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "32 bytes"):
            await om.OmsynNode.open(self.dir, b"short")
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "staff id"):
            await om.OmsynNode.create(
                os.path.join(self.root.name, "other"), new_key(),
                om.NodeSetup(role=om.NodeRole.NURSE, name="Uten id", staff_id=None, patient=None, zone=None),
            )

    async def test_reading_a_patient_without_a_need_is_refused(self):
        with self.assertRaises(om.OmsynError.AccessDenied):
            await self.node.patient_record("p-" + "1" * 16)

    async def test_a_second_open_of_the_same_directory_is_refused_while_open(self):
        with self.assertRaises(om.OmsynError.InUse):
            await om.OmsynNode.open(self.dir, self.key)

    async def test_reopening_with_a_wrong_key_is_refused_and_the_right_key_still_works(self):
        node_id = self.node.id()
        del self.node
        import gc

        gc.collect()
        with self.assertRaisesRegex(om.OmsynError.WrongKey, "key"):
            await om.OmsynNode.open(self.dir, new_key())
        reopened = await om.OmsynNode.open(self.dir, self.key)
        self.assertEqual(reopened.id(), node_id)
        info = await reopened.info()
        self.assertEqual(info.role, om.NodeRole.NURSE)
        self.assertIsNone(info.certificate_valid_until_ms)

    async def test_creating_over_an_existing_node_is_refused(self):
        with self.assertRaisesRegex(om.OmsynError.InvalidInput, "already"):
            await om.OmsynNode.create(
                self.dir, new_key(),
                om.NodeSetup(role=om.NodeRole.NURSE, name="Kari", staff_id="S1", patient=None, zone=None),
            )


if __name__ == "__main__":
    unittest.main()
