//! Trust, rule by rule, on real stores with the real sync sessions (simulated time): enrolment,
//! expiry, revocation, forged and unauthorised changes, need-based sharing, explicit access,
//! sperring, the access log and encryption at rest.

use omsyn_core::docs::journal::{self, EntryBody};
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::{self, PatientField, Tiltak};
use omsyn_core::docs::{ChangeContext, Document};
use omsyn_core::ids::{PatientId, StaffId, TiltakId};
use omsyn_core::repo::OpenRepoError;
use omsyn_core::store::{KeyError, OpenError, StoreKey};
use omsyn_core::sync::wire::{self, Message, SignedChange};
use omsyn_core::sync::{Inbox, Session, SyncEvent, Unpacked};
use omsyn_core::trust::audit::{self, AuditAction};
use omsyn_core::trust::{EnrollmentRequest, OrgKey, change_signing_bytes};
use omsyn_core::{Day, DocumentId, NodeKey, Repo, RepoError, Role, Timestamp};
use omsyn_tests::{CERT_VALIDITY_MS, DAY_MS, Link, NOW_MS, TestNode, enroll, snapshot, test_org};
use rand::SeedableRng;
use rand::rngs::StdRng;

const HOUR_MS: i64 = 3600 * 1000;

/// A time on the day of [`NOW_MS`] (so visits then are on the current work list).
fn today(hhmm: &str) -> Timestamp {
    let day = Day::from_unix_millis(NOW_MS).unwrap();
    Timestamp::from_day_hhmm(day, hhmm, 3600).unwrap()
}

/// A base with two patients in its zone: `mine`, visited today by N1, and `other`, by N2.
struct Zone {
    base: TestNode,
    mine: PatientId,
    other: PatientId,
}

fn zone() -> Zone {
    let mut base = TestNode::base(71);
    let rng = &mut base.rng;
    let (mine, other) = base
        .repo
        .transaction(|tx| {
            let mut ids = Vec::new();
            for (name, nurse) in [("Turid Nilsen", "N1"), ("Egil Haugen", "N2")] {
                let p = tx.add_patient(
                    today("07:00"),
                    rng,
                    &[
                        (PatientField::Name, name.into()),
                        (PatientField::Zone, "Sone 1".into()),
                    ],
                )?;
                tx.plan_visit(
                    today("07:00"),
                    rng,
                    &NewVisit {
                        patient: p.clone(),
                        start: today("09:00"),
                        end: today("09:30"),
                        kind: VisitKind::Physical,
                        tiltak: vec![],
                        staff: vec![StaffId::parse(nurse).unwrap()],
                    },
                )?;
                ids.push(p);
            }
            Ok::<_, RepoError>((ids[0].clone(), ids[1].clone()))
        })
        .unwrap();
    Zone { base, mine, other }
}

/// One session between `a` and `b`, each with its own need-based policy, at `now_ms`.
fn sync_at(a: &Repo, b: &Repo, now_ms: i64) -> (Link, (Option<String>, Option<String>)) {
    let mut link = Link::open(a, b);
    let (pa, pb) = (
        a.need_policy().expect("own grant"),
        b.need_policy().expect("own grant"),
    );
    let errors = link.exchange((a, &pa), (b, &pb), now_ms);
    (link, errors)
}

fn events(session: &mut Session) -> Vec<SyncEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn holds(repo: &Repo, patient: &PatientId) -> bool {
    repo.patients().unwrap().iter().any(|(p, _)| p == patient)
}

/// Feeds `frames` to `to`'s session with `from` after both Hellos, and returns `to`'s events.
fn inject(from: &Repo, to: &Repo, frames: Vec<Vec<u8>>) -> Vec<SyncEvent> {
    let mut link = Link::open(from, to);
    let (pf, pt) = (
        from.need_policy().expect("own grant"),
        to.need_policy().expect("own grant"),
    );
    link.exchange((from, &pf), (to, &pt), NOW_MS);
    for frame in frames {
        link.b
            .handle_bytes(to.store(), &pt, NOW_MS, &frame)
            .expect("a refused change ends no session");
    }
    events(&mut link.b)
}

fn signed(key: &NodeKey, doc: &mut Document) -> Vec<SignedChange> {
    doc.hashed_changes_since(&[])
        .into_iter()
        .map(|c| SignedChange {
            signature: key.sign(&change_signing_bytes(&c.hash)),
            bytes: c.bytes,
        })
        .collect()
}

/// A `Changes` frame with a journal note that claims `author` wrote it, signed by `signer`.
fn forged_note(author: &Repo, signer: &Repo, patient: &PatientId, rng: &mut StdRng) -> Vec<u8> {
    let id = DocumentId::Journal(patient.clone(), today("10:00").day().month());
    let mut forged = Document::new(id.clone(), author.id());
    let ctx = ChangeContext {
        author: author.author().expect("own author"),
        entered_at: today("10:00"),
    };
    let body = EntryBody::Note {
        visit: None,
        text: format!("forged in the name of {}", author.profile().name),
    };
    journal::append(&mut forged, &ctx, rng, today("10:00"), body).unwrap();
    wire::encode(&Message::Changes {
        doc: id,
        changes: signed(&signer.identity().key, &mut forged),
    })
}

/// The grants a session verified its peer by.
fn verified(session: &mut Session) -> Vec<omsyn_core::trust::Grant> {
    events(session)
        .into_iter()
        .filter_map(|e| match e {
            SyncEvent::PeerVerified(grant) => Some(*grant),
            _ => None,
        })
        .collect()
}

/// The patients `base` served `unit` as serving, in a session between them at `at_ms` that both
/// sides took without an error.
fn served_as(base: &Repo, unit: &Repo, at_ms: i64) -> Vec<Option<PatientId>> {
    let (mut link, errors) = sync_at(base, unit, at_ms);
    assert_eq!(errors, (None, None));
    verified(&mut link.a)
        .into_iter()
        .map(|grant| grant.patient)
        .collect()
}

/// The grant of the certificate in force at `at_ms` among `held` (some are held).
fn grant_in_force(held: &[omsyn_core::trust::Certificate], at_ms: i64) -> omsyn_core::trust::Grant {
    omsyn_core::trust::Certificate::in_force(held, at_ms)
        .expect("certificates are held")
        .grant()
        .clone()
}

fn rejections(events: &[SyncEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::RejectedChanges { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unenrolled_node_is_refused_and_both_sides_say_why() {
    let z = zone();
    let stranger = TestNode::unenrolled(72, TestNode::nurse(72, "N1").repo.profile().clone());
    let (_, (base_err, stranger_err)) = sync_at(&z.base.repo, &stranger.repo, NOW_MS);
    let base_err = base_err.unwrap();
    assert!(base_err.contains("not enrolled"), "{base_err}");
    let stranger_err = stranger_err.unwrap();
    assert!(stranger_err.contains("not enrolled"), "{stranger_err}");
    assert!(!holds(&stranger.repo, &z.mine));
}

#[test]
fn a_node_of_another_organisation_is_refused() {
    let z = zone();
    let outsider = TestNode::unenrolled(73, TestNode::nurse(73, "N1").repo.profile().clone());
    let other_org = OrgKey::generate("Nabokommune", &mut StdRng::seed_from_u64(5));
    enroll(&outsider.repo, &other_org, CERT_VALIDITY_MS);
    let (_, (base_err, _)) = sync_at(&z.base.repo, &outsider.repo, NOW_MS);
    assert!(base_err.unwrap().contains("another organisation"));
    assert!(!holds(&outsider.repo, &z.mine));
}

#[test]
fn an_expired_certificate_is_refused_until_renewed() {
    let z = zone();
    let nurse = TestNode::unenrolled(74, TestNode::nurse(74, "N1").repo.profile().clone());
    // Valid for 16 hours from a day before now: expired now.
    enroll(&nurse.repo, &test_org(), 16 * HOUR_MS);
    let (_, (base_err, nurse_err)) = sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let base_err = base_err.unwrap();
    assert!(base_err.contains("expired"), "{base_err}");
    assert!(nurse_err.unwrap().contains("expired"));
    assert!(!holds(&nurse.repo, &z.mine));
    // A base renews it; then the same device syncs.
    let renewed = test_org().renew(&nurse.repo.certificate().unwrap().unwrap(), NOW_MS);
    nurse.repo.install_certificate(&renewed).unwrap();
    let (_, errors) = sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(holds(&nurse.repo, &z.mine));
}

#[test]
fn a_base_renews_a_certificate_in_session_and_the_device_keeps_it() {
    let z = zone();
    let nurse = TestNode::nurse(75, "N1");
    let valid_until = |repo: &Repo| repo.certificate().unwrap().unwrap().grant().not_after_ms;
    let before = valid_until(&nurse.repo);
    let mut link = Link::open(&z.base.repo, &nurse.repo);
    let (pa, pb) = (
        z.base.repo.need_policy().expect("own grant"),
        nurse.repo.need_policy().expect("own grant"),
    );
    link.exchange((&z.base.repo, &pa), (&nurse.repo, &pb), NOW_MS);
    let cert = z
        .base
        .repo
        .store()
        .certificate(&nurse.repo.id())
        .unwrap()
        .unwrap();
    link.a
        .send_certificates(&[test_org().renew(&cert, NOW_MS + DAY_MS)]);
    link.exchange((&z.base.repo, &pa), (&nurse.repo, &pb), NOW_MS);
    assert!(events(&mut link.b).contains(&SyncEvent::CertificateRenewed));
    let after = valid_until(&nurse.repo);
    assert!(after > before, "{after} > {before}");
}

/// The home unit of `mine`, moved to `other`'s home: a certificate issued after its first one
/// and valid for less time (a week), which the base holds.
fn moved_home_unit(z: &Zone, seed: u64) -> (TestNode, omsyn_core::trust::Certificate) {
    let home = TestNode::home_unit(seed, &z.mine);
    let mut profile = home.repo.profile().clone();
    profile.patient = Some(z.other.clone());
    let request = EnrollmentRequest::new(&home.repo.identity().key, &profile);
    let moved = test_org()
        .approve(&request, NOW_MS - HOUR_MS, 7 * DAY_MS)
        .unwrap();
    let first = home.repo.certificate().unwrap().unwrap();
    assert!(moved.grant().not_before_ms > first.grant().not_before_ms);
    assert!(moved.grant().not_after_ms < first.grant().not_after_ms);
    (home, moved)
}

/// [`moved_home_unit`], after a first session with the base (which so holds its first
/// certificate, and the home it serves its documents).
fn moved_home_unit_met(z: &Zone, seed: u64) -> (TestNode, omsyn_core::trust::Certificate) {
    let (home, moved) = moved_home_unit(z, seed);
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    (home, moved)
}

#[test]
fn a_device_presenting_its_superseded_certificate_is_served_by_the_newer_one() {
    let mut z = zone();
    let (home, moved) = moved_home_unit_met(&z, 86);
    assert!(holds(&home.repo, &z.mine));
    z.base.repo.remember_issued(&moved).unwrap();
    let held = |repo: &Repo| repo.store().certificate(&home.repo.id()).unwrap();
    assert_eq!(held(&z.base.repo), Some(moved.clone()), "issued last, kept");
    z.base
        .repo
        .add_note(
            today("10:00"),
            &mut z.base.rng,
            &z.mine,
            None,
            today("10:00"),
            "etter flyttingen",
        )
        .unwrap();
    // The unit still holds its first certificate, unexpired, and presents it in its Hello (as a
    // modified app would keep doing): the base serves it as the newer certificate says.
    assert_eq!(
        served_as(&z.base.repo, &home.repo, NOW_MS),
        vec![Some(z.other.clone())]
    );
    assert_eq!(
        held(&z.base.repo),
        Some(moved),
        "the older one did not replace it"
    );
    let month = today("10:00").day().month();
    let notes = home
        .repo
        .store()
        .with_doc(&DocumentId::Journal(z.mine.clone(), month), journal::read)
        .unwrap()
        .map(|j| j.standing().len())
        .unwrap_or(0);
    assert_eq!(
        notes, 0,
        "nothing of the patient it left was sent after the move"
    );
}

/// The unit's alarm in the home it served, entered at `at` by its own clock.
fn alarm(home: &TestNode, at: &str, id: &str, seed: u64) {
    let t = today(at);
    let alarm = omsyn_core::repo::DeviceReport::Alarm;
    home.repo
        .device_report(
            t,
            &mut StdRng::seed_from_u64(seed),
            "Trygghetsalarm",
            id,
            t,
            &alarm,
        )
        .unwrap();
}

/// The entries of `patient`'s journal at `repo` whose body `is` picks.
fn counted(repo: &Repo, patient: &PatientId, is: fn(&EntryBody) -> bool) -> usize {
    let (entries, _) = repo.journal(patient).unwrap();
    entries.iter().filter(|e| is(&e.body)).count()
}

/// The alarms `repo` holds in `patient`'s journal.
fn alarms(repo: &Repo, patient: &PatientId) -> usize {
    counted(repo, patient, |b| {
        matches!(b, EntryBody::DeviceEvent { .. })
    })
}

/// The pulses `repo` holds in `patient`'s journal.
fn pulses(repo: &Repo, patient: &PatientId) -> usize {
    counted(repo, patient, |b| {
        matches!(b, EntryBody::Observation { .. })
    })
}

#[test]
fn an_import_judges_each_change_by_the_certificate_in_force_when_it_was_made() {
    let z = zone();
    let (home, moved) = moved_home_unit_met(&z, 88);
    z.base.repo.remember_issued(&moved).unwrap();
    // The unit, still on its first certificate, records an alarm in its home before the move
    // (11:00): taken, as that certificate allowed it then.
    alarm(&home, "10:30", "a-1", 88);
    let file = home.repo.export_unchecked(None).unwrap();
    z.base.repo.import(today("12:00"), &file).unwrap();
    assert_eq!(alarms(&z.base.repo, &z.mine), 1);
    // Its export file carries the first certificate; an alarm it records there after the move
    // is judged as the unit of the other patient, whatever the file brings.
    alarm(&home, "11:30", "a-2", 89);
    let file = home.repo.export_unchecked(None).unwrap();
    let refused = z.base.repo.import(today("12:00"), &file).unwrap_err();
    assert!(
        refused.to_string().contains("its own patient's documents"),
        "judged as the unit of {}: {refused}",
        z.other
    );
    assert_eq!(alarms(&z.base.repo, &z.mine), 1);
    assert_eq!(
        z.base.repo.store().certificate(&home.repo.id()).unwrap(),
        Some(moved),
        "the older certificate the file carried did not replace it"
    );
}

#[test]
fn a_moved_home_units_earlier_entries_reach_nodes_that_first_hear_of_it_after_the_move() {
    let z = zone();
    let (home, moved) = moved_home_unit_met(&z, 84);
    alarm(&home, "10:00", "a-1", 84);
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(alarms(&z.base.repo, &z.mine), 1);
    z.base.repo.remember_issued(&moved).unwrap();
    // Two bases that never met the unit take the month from the first after the move: one in a
    // session, one from its export file. Each is given both certificates and judges the alarm
    // by the one in force at 10:00.
    for (seed, by_file) in [(72, false), (73, true)] {
        let fresh = TestNode::base(seed);
        if by_file {
            let file = z.base.repo.export_unchecked(None).unwrap();
            fresh.repo.import(today("12:00"), &file).unwrap();
        } else {
            let (_, errors) = sync_at(&z.base.repo, &fresh.repo, NOW_MS);
            assert_eq!(errors, (None, None));
        }
        assert_eq!(alarms(&fresh.repo, &z.mine), 1, "by file: {by_file}");
        // Written while the unit served this home: a write with a need, not one to review.
        let flagged = omsyn_tests::writes_without_need(&fresh.repo, &z.mine);
        assert_eq!(flagged, Vec::new(), "by file: {by_file}");
        let store = fresh.repo.store();
        assert_eq!(
            store.certificate(&home.repo.id()).unwrap(),
            Some(moved.clone())
        );
        assert_eq!(store.certificate_history(&home.repo.id()).unwrap().len(), 2);
    }
    // The unit itself, importing the base's file (which carries its re-enrolment), keeps the
    // certificate it has: its own is installed by enrolment or a base's renewal, which check
    // it is for what the unit serves.
    let first = home.repo.certificate().unwrap();
    let file = z.base.repo.export_unchecked(None).unwrap();
    home.repo.import(today("12:00"), &file).unwrap();
    assert_eq!(home.repo.certificate().unwrap(), first);
    assert_ne!(first, Some(moved));
}

/// The moved unit's patched app writes a pulse into the journal of the home it left, its change
/// dated `at` (as are the entry's times), planted in its own store.
fn pulse_dated(home: &TestNode, patient: &PatientId, at: Timestamp, id: &str) {
    let journal = DocumentId::Journal(patient.clone(), today("10:00").day().month());
    let entry = journal::Entry {
        id: omsyn_core::ids::EntryId::parse(id).unwrap(),
        author: home.repo.author().expect("own author"),
        event_time: at,
        entered_at: at,
        body: EntryBody::Observation {
            visit: None,
            kind: "pulse".into(),
            value: "80".into(),
            unit: None,
            device_reading: None,
        },
    };
    let put =
        omsyn_tests::craft::Put::fresh(&format!("e/{id}"), &serde_json::to_string(&entry).unwrap());
    let crafted = omsyn_tests::craft::change(&home.repo, &journal, &home.repo, &[put], None, at);
    omsyn_tests::craft::plant(&home.repo, &journal, &crafted);
}

/// What the base makes of a pulse the moved unit's patched app dates `at` in the home it left:
/// the refusal, if any, and the pulses the base then holds. It comes in an export file, or in a
/// session with a nurse of that home who took it from the unit (she knows nothing of the move;
/// the base, which serves the unit as the other home's, would not take it from the unit itself).
fn moved_unit_dates_a_pulse(at: Timestamp, by_file: bool) -> (Option<String>, usize) {
    let z = zone();
    let (home, moved) = moved_home_unit(&z, 82);
    let nurse = TestNode::nurse(83, "N1");
    for node in [&home, &nurse] {
        let (_, errors) = sync_at(&z.base.repo, &node.repo, NOW_MS);
        assert_eq!(errors, (None, None));
    }
    z.base.repo.remember_issued(&moved).unwrap();
    pulse_dated(&home, &z.mine, at, "e-00000000000000d1");
    let refused = match by_file {
        true => {
            let file = home.repo.export_unchecked(None).unwrap();
            let imported = z.base.repo.import(today("12:00"), &file);
            imported.err().map(|e| e.to_string())
        }
        false => {
            let (_, errors) = sync_at(&nurse.repo, &home.repo, NOW_MS);
            assert_eq!(
                errors,
                (None, None),
                "the nurse judges by the one she knows"
            );
            assert_eq!(pulses(&nurse.repo, &z.mine), 1);
            let (mut link, errors) = sync_at(&z.base.repo, &nurse.repo, NOW_MS);
            assert_eq!(errors, (None, None));
            rejections(&events(&mut link.a)).pop()
        }
    };
    (refused, pulses(&z.base.repo, &z.mine))
}

#[test]
fn a_moved_home_units_change_reaches_its_earlier_grant_only_dated_when_it_held_it() {
    for by_file in [false, true] {
        // Dated before every certificate it has had: judged by its newest, the other
        // patient's unit's, not by its first (as though it had served this home then).
        let long_ago = Timestamp::parse("2001-01-01T10:00:00+01:00").unwrap();
        let (refused, held) = moved_unit_dates_a_pulse(long_ago, by_file);
        let refused = refused.expect("refused");
        assert!(refused.contains("its own patient's documents"), "{refused}");
        assert_eq!(held, 0, "by file: {by_file}");
        // After its move (11:00): refused the same way.
        let (refused, held) = moved_unit_dates_a_pulse(today("11:30"), by_file);
        assert!(
            refused
                .expect("refused")
                .contains("its own patient's documents")
        );
        assert_eq!(held, 0, "by file: {by_file}");
        // Within the time it served this home: taken, as an honest unit's late entry is. That
        // is as far as its first grant reaches.
        let (refused, held) = moved_unit_dates_a_pulse(today("10:30"), by_file);
        assert_eq!((refused, held), (None, 1), "by file: {by_file}");
    }
}

#[test]
fn renewals_do_not_grow_a_devices_certificate_history_and_each_change_of_grant_does() {
    let z = zone();
    let (home, moved) = moved_home_unit_met(&z, 81);
    let first = home.repo.certificate().unwrap().unwrap();
    let (org, store) = (test_org(), z.base.repo.store());
    let history = || store.certificate_history(&home.repo.id()).unwrap();
    let renewed = |cert: &omsyn_core::trust::Certificate, n: i64| {
        let renewal = org.renew(cert, cert.grant().not_before_ms + n * 10 * 60 * 1000);
        z.base.repo.remember_issued(&renewal).unwrap();
        renewal
    };
    // Renewed sixty times in the home it served first: the history keeps the run's first.
    let mut last = first.clone();
    for n in 1..=60 {
        last = renewed(&first, n);
    }
    assert_eq!(history().len(), 2, "the run's first, and the newest");
    assert!(history().contains(&first) && history().contains(&last));
    // Moved to another home, then renewed there thirty times: that run's first and last.
    let first_run_last = last;
    z.base.repo.remember_issued(&moved).unwrap();
    let mut last = moved.clone();
    for n in 1..=30 {
        last = renewed(&moved, n);
    }
    let now_held = history();
    assert_eq!(now_held.len(), 4, "each run's first and last (the newest)");
    for cert in [&first, &first_run_last, &moved, &last] {
        assert!(now_held.contains(cert));
    }
    // Each change is still judged by its run: the first home's before the move, the other's after.
    let in_force = |at: i64| grant_in_force(&now_held, at).patient;
    assert_eq!(in_force(NOW_MS - 2 * HOUR_MS), Some(z.mine.clone()));
    assert_eq!(in_force(NOW_MS), Some(z.other.clone()));
}

/// A home unit the base met, whose first certificate (returned) ends on day 29, renewed on day
/// 20: the unit installs the renewal, the base remembers it, and the base's own certificate is
/// renewed to run past day 30.
fn unit_renewed_on_day_20(seed: u64) -> (Zone, TestNode, omsyn_core::trust::Certificate) {
    let z = zone();
    let home = TestNode::home_unit(seed, &z.mine);
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    let org = test_org();
    let base_cert = z.base.repo.certificate().unwrap().unwrap();
    z.base
        .repo
        .install_certificate(&org.renew(&base_cert, NOW_MS + 10 * DAY_MS))
        .unwrap();
    let first = home.repo.certificate().unwrap().unwrap();
    let renewal = org.renew(&first, NOW_MS + 20 * DAY_MS);
    home.repo.install_certificate(&renewal).unwrap();
    z.base.repo.remember_issued(&renewal).unwrap();
    let day_30 = NOW_MS + 30 * DAY_MS;
    assert!(first.grant().not_after_ms < day_30 && renewal.grant().not_after_ms > day_30);
    (z, home, first)
}

#[test]
fn a_renewal_dated_ahead_of_this_nodes_clock_leaves_its_run_in_force() {
    // Renewed again, after day 20, by a base whose clock runs an hour ahead of this one's: the
    // newest, not yet begun on day 30 (this base keeps the run's first and last, not the
    // renewal of day 20 the unit presents).
    let (z, home, first) = unit_renewed_on_day_20(80);
    let day_30 = NOW_MS + 30 * DAY_MS;
    let ahead = test_org().renew(&first, day_30 + HOUR_MS);
    z.base.repo.remember_issued(&ahead).unwrap();
    let held = z
        .base
        .repo
        .store()
        .certificate_history(&home.repo.id())
        .unwrap();
    assert_eq!(held.len(), 2, "the run's first and the newest");
    assert!(held.contains(&first) && held.contains(&ahead));
    // On day 30 the unit, presenting the renewal it holds, is served: the run runs on.
    let (mut link, errors) = sync_at(&z.base.repo, &home.repo, day_30);
    assert_eq!(errors, (None, None));
    let until: Vec<_> = verified(&mut link.a)
        .into_iter()
        .map(|grant| grant.not_after_ms)
        .collect();
    assert_eq!(until, vec![ahead.grant().not_after_ms], "to the run's end");
}

#[test]
fn a_device_re_enrolled_from_a_later_time_is_served_by_its_last_renewal_until_then() {
    // Then a coordinator moves it to another patient from an hour into day 30 (or a base whose
    // clock runs ahead does).
    let (z, home, _) = unit_renewed_on_day_20(74);
    let day_30 = NOW_MS + 30 * DAY_MS;
    let mut elsewhere = home.repo.profile().clone();
    elsewhere.patient = Some(z.other.clone());
    let request = EnrollmentRequest::new(&home.repo.identity().key, &elsewhere);
    let moved = test_org()
        .approve(&request, day_30 + HOUR_MS, 7 * DAY_MS)
        .unwrap();
    z.base.repo.remember_issued(&moved).unwrap();
    // On day 30, before the move: served in its first home, as its renewal grants, until the
    // move begins (then it meets the base again as the other patient's unit).
    let (mut link, errors) = sync_at(&z.base.repo, &home.repo, day_30);
    assert_eq!(errors, (None, None));
    let served: Vec<_> = verified(&mut link.a)
        .into_iter()
        .map(|grant| (grant.patient, grant.not_after_ms))
        .collect();
    assert_eq!(served, vec![(Some(z.mine.clone()), day_30 + HOUR_MS)]);
}

#[test]
fn a_renewal_by_a_base_that_had_not_heard_of_a_re_enrolment_does_not_undo_it() {
    let z = zone();
    // Moved to the other patient's home at 11:00; at 12:00 another base, which has not heard of
    // the move, renews the certificate it knows: the first home's, issued after the move.
    let (home, moved) = moved_home_unit(&z, 68);
    let first = home.repo.certificate().unwrap().unwrap();
    let stale = test_org().renew(&first, NOW_MS);
    assert!(stale.grant().not_before_ms > moved.grant().not_before_ms);
    assert!(moved.supersedes(&stale) && !stale.supersedes(&moved));
    // Whichever order a base hears them in, the move stands, and the unit (presenting the first
    // home's certificate: it has not yet installed the move) is served as the other patient's.
    for stale_first in [true, false] {
        let base = TestNode::base(if stale_first { 67 } else { 66 });
        let (_, errors) = sync_at(&z.base.repo, &base.repo, NOW_MS);
        assert_eq!(errors, (None, None));
        let heard = match stale_first {
            true => [&stale, &moved],
            false => [&moved, &stale],
        };
        for cert in heard {
            base.repo.remember_issued(cert).unwrap();
        }
        let store = base.repo.store();
        assert_eq!(
            store.certificate(&home.repo.id()).unwrap(),
            Some(moved.clone())
        );
        assert_eq!(
            served_as(&base.repo, &home.repo, NOW_MS + HOUR_MS),
            vec![Some(z.other.clone())],
            "stale first: {stale_first}"
        );
        assert!(!holds(&home.repo, &z.mine));
    }
}

#[test]
fn a_base_that_never_heard_of_a_move_serves_the_unit_by_its_renewal_dated_ahead() {
    let z = zone();
    // The unit serves the other patient since yesterday (its enrolment); before that it served
    // this one. A base whose clock runs ten minutes ahead renews it now; another base, which
    // has heard only of the first home (and of a renewal of it an unaware base issued after the
    // move), meets it.
    let home = TestNode::home_unit(65, &z.other);
    let moved = home.repo.certificate().unwrap().unwrap();
    let mut earlier = home.repo.profile().clone();
    earlier.patient = Some(z.mine.clone());
    let request = EnrollmentRequest::new(&home.repo.identity().key, &earlier);
    let org = test_org();
    let first = org
        .approve(&request, NOW_MS - 3 * DAY_MS, 7 * DAY_MS)
        .unwrap();
    let stale = org.renew(&first, NOW_MS - HOUR_MS);
    let ahead = org.renew(&moved, NOW_MS + 10 * 60 * 1000);
    home.repo.install_certificate(&ahead).unwrap();
    let base = TestNode::base(64);
    let (_, errors) = sync_at(&z.base.repo, &base.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    for cert in [&first, &stale] {
        base.repo.remember_issued(cert).unwrap();
    }
    // The renewal it presents says its run began yesterday: it is served as the other
    // patient's unit, not the first home's.
    assert_eq!(
        served_as(&base.repo, &home.repo, NOW_MS),
        vec![Some(z.other.clone())]
    );
    assert!(!holds(&home.repo, &z.mine));
    // A session held to the first home's run would have ended where the move's run began, not
    // at the renewal's later date.
    let held = [first.clone(), stale.clone(), ahead.clone()];
    assert_eq!(
        omsyn_core::trust::Certificate::run_until(&held, &stale),
        moved.grant().not_before_ms
    );
}

#[test]
fn a_rename_approved_after_an_enrolment_dated_ahead_begins_after_it_and_supersedes_it() {
    let z = zone();
    // A base whose clock runs ten minutes ahead enrolled the nurse's phone; this base, which
    // has heard of it, approves her rename five minutes later by the real clock.
    let nurse = TestNode::unenrolled(
        63,
        omsyn_core::NodeProfile {
            version: omsyn_core::identity::PROFILE_VERSION,
            role: Role::Nurse,
            name: "Nurse N1".into(),
            staff_id: Some(StaffId::parse("N1").unwrap()),
            patient: None,
            zone: Some("Sone 1".into()),
        },
    );
    let org = test_org();
    let ahead = org
        .approve(
            &nurse.repo.enrollment_request(),
            NOW_MS + 10 * 60 * 1000,
            7 * DAY_MS,
        )
        .unwrap();
    z.base.repo.remember_issued(&ahead).unwrap();
    let mut profile = nurse.repo.profile().clone();
    profile.name = "Kari Nordmann".into();
    let request = EnrollmentRequest::new(&nurse.repo.identity().key, &profile);
    let now = NOW_MS + 5 * 60 * 1000;
    let begins = z.base.repo.enrolment_begins(&request, now).unwrap();
    assert_eq!(
        begins,
        NOW_MS + 10 * 60 * 1000 + 1,
        "just after the run it knows"
    );
    let rename = org.approve(&request, begins, 7 * DAY_MS).unwrap();
    assert!(rename.supersedes(&ahead));
    let held = [ahead.clone(), rename.clone()];
    assert_eq!(
        grant_in_force(&held, NOW_MS + HOUR_MS).name,
        "Kari Nordmann"
    );
    // With nothing known of the key, or only runs begun earlier, it begins now.
    let fresh = TestNode::base(62);
    assert_eq!(fresh.repo.enrolment_begins(&request, now).unwrap(), now);
}

#[test]
fn a_base_refuses_to_enrol_a_key_it_knows_for_another_patient_person_role_or_zone() {
    let z = zone();
    let home = TestNode::home_unit(79, &z.mine);
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    let key = &home.repo.identity().key;
    // Renewing what it is: approved.
    let same = EnrollmentRequest::new(key, home.repo.profile());
    z.base.repo.check_enrollment_request(&same).unwrap();
    // The same key for another patient: a new identity is the way.
    let mut moved = home.repo.profile().clone();
    moved.patient = Some(z.other.clone());
    let refused = z
        .base
        .repo
        .check_enrollment_request(&EnrollmentRequest::new(key, &moved))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is given a new identity"), "{refused}");
}

/// Nurse N1's node (`seed`), met by the base at `met_ms`, and the note she wrote at `hhmm`.
fn nurse_wrote_before(z: &Zone, seed: u64, met_ms: i64, hhmm: &str) -> (TestNode, journal::Entry) {
    let mut nurse = TestNode::nurse(seed, "N1");
    let (_, errors) = sync_at(&z.base.repo, &nurse.repo, met_ms);
    assert_eq!(errors, (None, None));
    let at = today(hhmm);
    let note = nurse
        .repo
        .add_note(at, &mut nurse.rng, &z.mine, None, at, "før")
        .unwrap();
    (nurse, note)
}

/// The nurse's certificate under her new name, Kari Nordmann (same staff member, zone and
/// role), valid from `from_ms` for a week.
fn renamed(nurse: &TestNode, from_ms: i64) -> omsyn_core::trust::Certificate {
    let mut renamed = nurse.repo.profile().clone();
    renamed.name = "Kari Nordmann".into();
    let request = EnrollmentRequest::new(&nurse.repo.identity().key, &renamed);
    test_org().approve(&request, from_ms, 7 * DAY_MS).unwrap()
}

#[test]
fn a_renamed_nurses_earlier_entries_reach_a_base_that_never_held_her_earlier_certificate() {
    let z = zone();
    let (mut nurse, before) = nurse_wrote_before(&z, 78, NOW_MS, "08:00");
    // Enrolled again under her new name (same staff member, zone, role: her app installs it;
    // its profile file still says the old name).
    let cert = renamed(&nurse, NOW_MS - HOUR_MS);
    nurse.repo.install_certificate(&cert).unwrap();
    let after = nurse
        .repo
        .add_note(
            today("11:30"),
            &mut nurse.rng,
            &z.mine,
            None,
            today("11:30"),
            "etter",
        )
        .unwrap();
    assert_eq!(
        after.author.name, "Kari Nordmann",
        "written under her certificate's name"
    );
    // A base that has the patients but never met her takes both, each under the name she
    // wrote it under: her Hello brings the new certificate, the session her earlier one.
    let fresh = TestNode::base(77);
    let (_, errors) = sync_at(&z.base.repo, &fresh.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    let (mut link, errors) = sync_at(&fresh.repo, &nurse.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(rejections(&events(&mut link.a)), Vec::<String>::new());
    let (journal, _) = fresh.repo.journal(&z.mine).unwrap();
    for note in [&before, &after] {
        assert!(
            journal.contains(note),
            "{} is at the base",
            note.author.name
        );
    }
}

#[test]
fn a_nurses_writes_before_her_new_name_takes_force_go_under_the_old_one_and_reach_every_peer() {
    let z = zone();
    let mut nurse = TestNode::nurse(76, "N1");
    let (_, errors) = sync_at(&z.base.repo, &nurse.repo, NOW_MS - HOUR_MS);
    assert_eq!(errors, (None, None));
    let old_name = nurse.repo.author().expect("own author").name;
    // Renamed by a base whose clock runs ahead: her new certificate takes force at 12:00:00.5,
    // and her app installs it at once.
    let takes_force = NOW_MS + 500;
    let cert = renamed(&nurse, takes_force);
    nurse.repo.install_certificate(&cert).unwrap();
    assert_eq!(
        nurse.repo.author().expect("own author").name,
        "Kari Nordmann"
    );
    let at = |ms: i64| Timestamp::from_unix_millis(ms).unwrap();
    // Before it, and in its second though after it to the millisecond (a change keeps whole
    // seconds: every receiver
    // dates it 12:00:00), she writes under the name in force; after, under the new one.
    let mut notes = Vec::new();
    for (when, name) in [
        (at(NOW_MS - HOUR_MS / 2), old_name.as_str()),
        (at(takes_force + 200), old_name.as_str()),
        (at(NOW_MS + HOUR_MS / 2), "Kari Nordmann"),
    ] {
        let note = nurse
            .repo
            .add_note(when, &mut nurse.rng, &z.mine, None, when, "notat")
            .unwrap();
        assert_eq!(note.author.name, name, "written at {when}");
        notes.push(note);
    }
    // A base that never met her takes all three.
    let fresh = TestNode::base(75);
    let (_, errors) = sync_at(&z.base.repo, &fresh.repo, NOW_MS + HOUR_MS);
    assert_eq!(errors, (None, None));
    let (mut link, errors) = sync_at(&fresh.repo, &nurse.repo, NOW_MS + HOUR_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(rejections(&events(&mut link.a)), Vec::<String>::new());
    let (journal, _) = fresh.repo.journal(&z.mine).unwrap();
    for note in &notes {
        assert!(journal.contains(note), "{note:?} is at the base");
    }
}

#[test]
fn a_renamed_nurses_phone_restored_empty_takes_back_what_she_wrote_under_each_name() {
    for by_file in [false, true] {
        let z = zone();
        let seed = if by_file { 69 } else { 70 };
        let (mut nurse, before) = nurse_wrote_before(&z, seed, NOW_MS - 2 * HOUR_MS, "09:00");
        // Renamed from 10:00, she writes under her new name at 10:30; renewed from 11:00.
        let cert = renamed(&nurse, NOW_MS - 2 * HOUR_MS);
        nurse.repo.install_certificate(&cert).unwrap();
        let at = today("10:30");
        let during = nurse
            .repo
            .add_note(at, &mut nurse.rng, &z.mine, None, at, "under")
            .unwrap();
        let renewal = test_org().renew(&cert, NOW_MS - HOUR_MS);
        nurse.repo.install_certificate(&renewal).unwrap();
        let (_, errors) = sync_at(&z.base.repo, &nurse.repo, NOW_MS - HOUR_MS / 2);
        assert_eq!(errors, (None, None));
        // Then her phone's data is lost, and the same phone (its key kept in the device's
        // keystore) starts empty with her newest certificate, and takes the base's month back
        // in a session or from the base's export file.
        let identity = omsyn_core::identity::Identity {
            key: nurse.repo.identity().key.clone(),
            profile: nurse.repo.profile().clone(),
        };
        drop(nurse);
        let restored = Repo::in_memory(identity, &mut StdRng::seed_from_u64(7070)).unwrap();
        restored.install_certificate(&renewal).unwrap();
        if by_file {
            let file = z.base.repo.export_unchecked(None).unwrap();
            restored.import(today("12:00"), &file).unwrap();
        } else {
            let (mut link, errors) = sync_at(&z.base.repo, &restored, NOW_MS);
            assert_eq!(errors, (None, None));
            assert_eq!(rejections(&events(&mut link.b)), Vec::<String>::new());
        }
        // Her own notes come back, each under the name she wrote it under; her certificate
        // stays the one she holds.
        let (journal, _) = restored.journal(&z.mine).unwrap();
        for note in [&before, &during] {
            assert!(journal.contains(note), "by file {by_file}: {note:?}");
        }
        assert_eq!(restored.certificate().unwrap(), Some(renewal));
    }
}

#[test]
fn a_renewal_dated_ahead_leaves_the_running_certificate_in_force() {
    let z = zone();
    let home = TestNode::home_unit(83, &z.mine);
    let first = home.repo.certificate().unwrap().unwrap();
    let request = EnrollmentRequest::new(&home.repo.identity().key, home.repo.profile());
    let ahead = test_org()
        .approve(&request, NOW_MS + HOUR_MS, 7 * DAY_MS)
        .unwrap();
    assert!(ahead.supersedes(&first));
    z.base.repo.remember_issued(&ahead).unwrap();
    // Served now by the certificate it holds, and given the renewal, which it keeps.
    let (mut link, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(holds(&home.repo, &z.mine));
    let served_as: Vec<_> = verified(&mut link.a)
        .into_iter()
        .map(|grant| grant.not_before_ms)
        .collect();
    assert_eq!(served_as, vec![first.grant().not_before_ms]);
    assert_eq!(home.repo.certificate().unwrap(), Some(ahead.clone()));
    // Presenting the renewal before it begins is no refusal either; after it begins, it is the
    // one in force.
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS + HOUR_MS / 2);
    assert_eq!(errors, (None, None));
    let (mut link, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS + 2 * HOUR_MS);
    assert_eq!(errors, (None, None));
    let served_as: Vec<_> = verified(&mut link.a)
        .into_iter()
        .map(|grant| grant.not_before_ms)
        .collect();
    assert_eq!(served_as, vec![ahead.grant().not_before_ms]);
}

#[test]
fn a_device_whose_newer_certificate_has_expired_is_refused_though_its_older_one_has_not() {
    let z = zone();
    let (home, moved) = moved_home_unit(&z, 87);
    z.base.repo.remember_issued(&moved).unwrap();
    let (_, (base_err, _)) = sync_at(&z.base.repo, &home.repo, NOW_MS + 8 * DAY_MS);
    let base_err = base_err.expect("refused");
    assert!(base_err.contains("expired"), "{base_err}");
}

#[test]
fn a_visit_a_modified_base_files_under_another_patient_or_month_is_no_visit() {
    let z = zone();
    // Another base of the organisation, running modified software, writes Turid's (`mine`) plan
    // with one visit naming Egil (`other`) and one dated next month.
    let rogue = TestNode::base(79);
    let month = today("07:00").day().month();
    let plan_id = DocumentId::VisitPlan(z.mine.clone(), month);
    let mut doc = Document::new(plan_id.clone(), rogue.repo.id());
    let ctx = ChangeContext {
        author: rogue.repo.author().expect("own author"),
        entered_at: today("07:00"),
    };
    let mut rng = StdRng::seed_from_u64(79);
    let next_month = today("13:00").unix_millis() + 31 * DAY_MS;
    let next_month = Timestamp::from_unix_millis(next_month).unwrap();
    let mut planted = Vec::new();
    for (patient, start) in [(&z.other, today("13:00")), (&z.mine, next_month)] {
        let visit = NewVisit {
            patient: patient.clone(),
            start,
            end: Timestamp::from_unix_millis(start.unix_millis() + HOUR_MS).unwrap(),
            kind: VisitKind::Physical,
            tiltak: vec![],
            staff: vec![StaffId::parse("N2").unwrap()],
        };
        planted.push(omsyn_core::docs::plan::add(&mut doc, &ctx, &mut rng, &visit).unwrap());
    }
    let changes = signed(&rogue.repo.identity().key, &mut doc);
    let frame = wire::encode(&Message::Changes {
        doc: plan_id.clone(),
        changes,
    });
    let events = inject(&rogue.repo, &z.base.repo, vec![frame]);
    assert_eq!(
        rejections(&events),
        Vec::<String>::new(),
        "a base's plan change is kept"
    );
    // Kept, and no visit of any view: the plan lists them as unreadable, no lookup finds them
    // (so no documentation is filed under Egil's journal through them), no need follows.
    let plan = z
        .base
        .repo
        .store()
        .with_doc(&plan_id, omsyn_core::docs::plan::read)
        .unwrap()
        .unwrap();
    for visit in &planted {
        assert!(plan.visits.iter().all(|v| &v.id != visit));
        assert!(
            plan.unreadable.contains(&format!("visit/{visit}")),
            "{:?}",
            plan.unreadable
        );
        let found = z.base.repo.visit(visit);
        assert!(matches!(found, Err(RepoError::NotFound(_))), "{found:?}");
    }
    assert_eq!(plan.visits.len(), 1, "the honest visit stands");
}

#[test]
fn a_device_revoked_while_online_is_cut_off_and_learns_it() {
    let z = zone();
    let nurse = TestNode::nurse(76, "N1");
    let mut link = Link::open(&z.base.repo, &nurse.repo);
    let (pa, pb) = (
        z.base.repo.need_policy().expect("own grant"),
        nurse.repo.need_policy().expect("own grant"),
    );
    assert_eq!(
        link.exchange((&z.base.repo, &pa), (&nurse.repo, &pb), NOW_MS),
        (None, None)
    );
    let revocation = test_org().revoke(nurse.repo.id(), "phone lost", NOW_MS);
    assert!(z.base.repo.add_revocation(&revocation).unwrap());
    let (base_err, nurse_err) = link.exchange((&z.base.repo, &pa), (&nurse.repo, &pb), NOW_MS);
    assert!(base_err.unwrap().contains("phone lost"));
    assert!(nurse_err.unwrap().contains("revoked"));
    // The revocation travelled ahead of the refusal: the device knows, and wipes itself.
    assert!(events(&mut link.b).contains(&SyncEvent::SelfRevoked("phone lost".into())));
    // A new session is refused from the start.
    let (_, (base_err, _)) = sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert!(base_err.unwrap().contains("revoked"));
}

#[test]
fn a_revocation_spreads_ahead_of_data_and_the_revoked_device_is_refused_everywhere() {
    let mut z = zone();
    let lost = TestNode::unenrolled(77, TestNode::nurse(77, "N1").repo.profile().clone());
    enroll(&lost.repo, &test_org(), 2 * DAY_MS); // valid until a day after now
    let colleague = TestNode::nurse(78, "N1");
    let (_, errors) = sync_at(&z.base.repo, &lost.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    // The phone is lost; the base revokes it; a colleague's phone learns it from the base.
    let revocation = test_org().revoke(lost.repo.id(), "phone lost", NOW_MS);
    z.base.repo.add_revocation(&revocation).unwrap();
    z.base
        .repo
        .add_note(
            today("10:00"),
            &mut z.base.rng,
            &z.mine,
            None,
            today("10:00"),
            "ny",
        )
        .unwrap();
    let (mut link, _) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    let learned = events(&mut link.b);
    let revoked_at = learned
        .iter()
        .position(|e| matches!(e, SyncEvent::RevocationLearned(n) if *n == lost.repo.id()))
        .expect("the colleague learned the revocation");
    let first_data = learned
        .iter()
        .position(|e| matches!(e, SyncEvent::DocumentChanged(_)))
        .expect("data arrived");
    assert!(
        revoked_at < first_data,
        "the revocation came first: {learned:?}"
    );
    // The colleague refuses the lost phone (and tells it, so a phone that still runs wipes itself).
    let (mut link, (colleague_err, _)) = sync_at(&colleague.repo, &lost.repo, NOW_MS);
    assert!(colleague_err.unwrap().contains("revoked"));
    assert!(events(&mut link.b).contains(&SyncEvent::SelfRevoked("phone lost".into())));
}

#[test]
fn a_revocation_committed_just_before_a_note_reaches_a_live_peer_woken_once_for_both() {
    //! The commit hook wakes a live session once for commits close together, and the session
    //! reads only the last: a revocation stored by the one before must still go out.
    let mut z = zone();
    let colleague = TestNode::nurse(101, "N1");
    let lost = TestNode::nurse(102, "N1");
    let (mut link, errors) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    let revocation = test_org().revoke(lost.repo.id(), "phone lost", NOW_MS);
    z.base.repo.add_revocation(&revocation).unwrap();
    let at = today("10:00");
    z.base
        .repo
        .add_note(at, &mut z.base.rng, &z.mine, None, at, "ny")
        .unwrap();
    let store = z.base.repo.store();
    let last = store.last_commit().expect("the note's commit was told");
    let journal = DocumentId::Journal(z.mine.clone(), at.day().month());
    assert_eq!(
        last.documents,
        vec![journal],
        "the session is woken by the note's commit"
    );
    let policy = z.base.repo.need_policy().expect("own grant");
    link.a
        .handle_commit(store, &policy, NOW_MS, Some(&last))
        .unwrap();
    let mut frames = wire::FrameDecoder::default();
    while let Some(bytes) = link.a.poll_transmit() {
        frames.push(&bytes).unwrap();
    }
    let sent: Vec<Message> = std::iter::from_fn(|| frames.next_frame())
        .map(|frame| wire::decode(&frame).unwrap())
        .collect();
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Revocations { .. })),
        "{sent:?}"
    );
}

/// The organisation revokes `phone` ("phone lost") as of `at` today, at `base`.
fn revoke_at(base: &Repo, phone: &TestNode, at: &str) -> omsyn_core::trust::Revocation {
    let revocation = test_org().revoke(phone.repo.id(), "phone lost", today(at).unix_millis());
    base.add_revocation(&revocation).unwrap();
    revocation
}

/// `node` writes a note in `patient`'s journal at `at` today.
fn write_note(node: &mut TestNode, patient: &PatientId, at: &str, text: &str) {
    let t = today(at);
    (node.repo.add_note(t, &mut node.rng, patient, None, t, text)).unwrap();
}

/// The note texts of `patient`'s journal at `repo`.
fn note_texts(repo: &Repo, patient: &PatientId) -> Vec<String> {
    let (entries, _) = repo.journal(patient).unwrap();
    (entries.into_iter())
        .filter_map(|e| match e.body {
            EntryBody::Note { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

#[test]
fn a_revoked_phones_notes_that_others_built_on_reach_a_node_that_meets_the_record_after_the_revocation()
 {
    let mut z = zone();
    let mut lost = TestNode::nurse(103, "N1");
    sync_at(&z.base.repo, &lost.repo, NOW_MS);
    // Before the phone is lost, its nurse writes a note the base builds on, then one nobody does.
    write_note(&mut lost, &z.mine, "10:00", "Før tapet");
    sync_at(&lost.repo, &z.base.repo, NOW_MS);
    write_note(&mut z.base, &z.mine, "10:30", "Basens notat");
    write_note(&mut lost, &z.mine, "10:45", "Siste fra telefonen");
    let (_, errors) = sync_at(&lost.repo, &z.base.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(note_texts(&z.base.repo, &z.mine).len(), 3);
    // A colleague's phone that will not hear of the revocation for a while.
    let mut unaware = TestNode::nurse(105, "N1");
    sync_at(&z.base.repo, &unaware.repo, NOW_MS);
    let revoked_at = today("11:00").unix_millis();
    let revocation = test_org().revoke(lost.repo.id(), "phone lost", revoked_at);
    z.base.repo.add_revocation(&revocation).unwrap();
    // A phone enrolled since and a new base (by session, and from the base's export file) take
    // the journal: the note the base built on with it; the phone's last, nobody's, is left out
    // and said to be.
    let expected = vec!["Før tapet".to_owned(), "Basens notat".to_owned()];
    let colleague = TestNode::nurse(104, "N1");
    let (mut link, errors) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(note_texts(&colleague.repo, &z.mine), expected);
    let told = events(&mut link.b);
    assert!(
        told.iter()
            .any(|e| matches!(e, SyncEvent::RejectedChanges { reason, .. }
            if reason.contains("1 change(s)") && reason.contains(&lost.repo.id().short()))),
        "{told:?}"
    );
    // The file carries the revocation: the new base had not heard of it.
    let fresh = TestNode::base(74);
    let file = z.base.repo.export_unchecked(None).unwrap();
    let summary = fresh.repo.import(today("12:00"), &file).unwrap();
    assert_eq!(note_texts(&fresh.repo, &z.mine), expected);
    assert_eq!(summary.left_out.len(), 1, "{summary:?}");
    let store = fresh.repo.store();
    assert!(store.revocation(&lost.repo.id()).unwrap().is_some());
    // Twice changes nothing, and is no error: the change left out is left out again.
    let again = fresh.repo.import(today("12:00"), &file).unwrap();
    assert_eq!(
        (again.new_changes, again.left_out.len()),
        (0, 1),
        "{again:?}"
    );
    // What the stolen phone writes now, dated before the revocation as it likes, is refused by
    // a node that knows; one that has not heard takes it, and builds on it — which vouches for
    // nothing where the revocation is known: its own note waits for the thief's.
    write_note(&mut lost, &z.mine, "09:00", "Tilbakedatert");
    let (_, errors) = sync_at(&lost.repo, &unaware.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(note_texts(&unaware.repo, &z.mine).contains(&"Tilbakedatert".to_owned()));
    write_note(&mut unaware, &z.mine, "11:30", "Skrevet etter tyveriet");
    let (_, errors) = sync_at(&unaware.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None), "no round of asking again and again");
    assert_eq!(note_texts(&colleague.repo, &z.mine), expected);
    let (_, (_, refused)) = sync_at(&lost.repo, &colleague.repo, NOW_MS);
    assert!(refused.is_some_and(|e| e.contains("revoked")));
    assert_eq!(note_texts(&colleague.repo, &z.mine), expected);
}

#[test]
fn a_revoked_phones_pictures_sent_in_parts_reach_a_new_phone_with_the_reply_built_on_them() {
    //! A document larger than a message goes in parts: the stolen phone's pictures in the first,
    //! the base's reply that builds on them in the next. The new phone takes them all, and is
    //! told of nothing left out but the phone's message nobody answered.
    use omsyn_core::docs::messages::{Attachment, MAX_PICTURE_BYTES, Recipient};
    use rand::RngCore;
    let mut z = zone();
    let mut lost = TestNode::nurse(110, "N1");
    sync_at(&z.base.repo, &lost.repo, NOW_MS);
    let send = |node: &mut TestNode, at: &str, text: &str, pictures: usize| {
        let pictures = (0..pictures)
            .map(|_| {
                // Incompressible, as photographs are.
                let mut photo = vec![0x42; MAX_PICTURE_BYTES];
                node.rng.fill_bytes(&mut photo);
                photo[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
                Attachment::picture("image/jpeg", None, &photo).unwrap()
            })
            .collect();
        let t = today(at);
        let patient = z.mine.clone();
        let to = Recipient::CareTeam;
        (node
            .repo
            .send_message(t, &mut node.rng, &patient, to, text, None, pictures))
        .unwrap();
    };
    let sent = [
        ("10:00", "Såret"),
        ("10:05", "Hælen"),
        ("10:10", "Tåa"),
        ("10:15", "Leggen"),
        ("10:20", "Armen"),
    ];
    for (at, text) in sent {
        send(&mut lost, at, text, 2);
    }
    let (_, errors) = sync_at(&lost.repo, &z.base.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    send(&mut z.base, "10:30", "Takk, vi ser på det", 0);
    send(&mut lost, "10:45", "Ubesvart", 0);
    sync_at(&lost.repo, &z.base.repo, NOW_MS);
    revoke_at(&z.base.repo, &lost, "11:00");
    let messages = DocumentId::Messages(z.mine.clone(), today("10:00").day().month());
    let bytes: usize = (omsyn_tests::craft::history(&z.base.repo, &messages).iter_mut())
        .map(|c| c.bytes().len())
        .sum();
    assert!(bytes > wire::MAX_FRAME_BYTES / 2, "{bytes} B: one message");
    let colleague = TestNode::nurse(111, "N1");
    let (mut link, errors) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    let view = colleague.repo.patient_view(&z.mine).unwrap();
    let mut texts: Vec<&str> = view.messages.iter().map(|m| m.text.as_str()).collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "Armen",
            "Hælen",
            "Leggen",
            "Såret",
            "Takk, vi ser på det",
            "Tåa"
        ],
        "the pictures and the reply built on them are taken, the unanswered one left out"
    );
    let pictures: usize = view.messages.iter().map(|m| m.attachments.len()).sum();
    assert_eq!(pictures, 10);
    let told = rejections(&events(&mut link.b));
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("1 change(s)"), "{told:?}");
    // The base heard (before the round's Ack, which would have settled the document): it sends
    // the document again at the next session, which takes nothing more and settles.
    let heard = events(&mut link.a);
    assert!(
        heard
            .iter()
            .any(|e| matches!(e, SyncEvent::RejectedByPeer { doc, .. } if *doc == messages)),
        "{heard:?}"
    );
    let (_, errors) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(
        colleague.repo.patient_view(&z.mine).unwrap().messages.len(),
        6
    );
}

#[test]
fn a_change_made_after_one_phones_revocation_still_vouches_for_another_phone_revoked_later() {
    //! Each revoked device's changes are vouched for by what was made before its own
    //! revocation: the base's reply to X, written after Y was revoked, keeps X's note on a new
    //! node, though Y's unanswered note (dated earlier, synced later) came in the same message.
    let mut z = zone();
    let mut x = TestNode::nurse(112, "N1");
    let mut y = TestNode::nurse(113, "N1");
    sync_at(&z.base.repo, &x.repo, NOW_MS);
    sync_at(&z.base.repo, &y.repo, NOW_MS);
    write_note(&mut x, &z.mine, "10:05", "Fra X");
    sync_at(&x.repo, &z.base.repo, NOW_MS);
    write_note(&mut z.base, &z.mine, "10:30", "Basens svar");
    write_note(&mut y, &z.mine, "10:00", "Fra Y");
    let (_, errors) = sync_at(&y.repo, &z.base.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    for (phone, at) in [(&y, "10:28"), (&x, "11:00")] {
        revoke_at(&z.base.repo, phone, at);
    }
    let colleague = TestNode::nurse(114, "N1");
    let (mut link, errors) = sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(
        note_texts(&colleague.repo, &z.mine),
        ["Fra X", "Basens svar"]
    );
    let told = events(&mut link.b);
    assert!(
        told.iter()
            .any(|e| matches!(e, SyncEvent::RejectedChanges { reason, .. }
            if reason.contains("1 change(s)") && reason.contains(&y.repo.id().short()))),
        "{told:?}"
    );
}

#[test]
fn a_change_that_cannot_be_taken_or_holds_nothing_does_not_carry_a_revoked_phones_change_in() {
    //! An insider signs, with its own real key, a change built on the stolen phone's backdated
    //! one, dated before the revocation: one that also builds on a change nobody holds
    //! (Automerge would hold it back, unjudged), and one with no operations (nothing in the
    //! record would show it). Neither vouches: the phone's change is left out, and said to be;
    //! nothing else of the message is refused.
    let z = zone();
    let mut lost = TestNode::nurse(106, "N1");
    let insider = TestNode::nurse(107, "N1");
    sync_at(&z.base.repo, &lost.repo, NOW_MS);
    sync_at(&z.base.repo, &insider.repo, NOW_MS);
    let revoked_at = today("11:00").unix_millis();
    z.base
        .repo
        .add_revocation(&test_org().revoke(lost.repo.id(), "phone lost", revoked_at))
        .unwrap();
    let t = today("09:00");
    lost.repo
        .add_note(t, &mut lost.rng, &z.mine, None, t, "Tilbakedatert")
        .unwrap();
    let journal = DocumentId::Journal(z.mine.clone(), t.day().month());
    let backdated = omsyn_tests::craft::signed_history(&lost.repo, &journal);
    let stolen = omsyn_tests::craft::heads(&omsyn_tests::craft::history(&lost.repo, &journal))[0];
    let unheld = vec![omsyn_tests::craft::Put::fresh("x", "y")];
    for (puts, deps) in [(unheld, vec![stolen, [9; 32]]), (vec![], vec![stolen])] {
        let crafted = omsyn_tests::craft::change(
            &lost.repo,
            &journal,
            &insider.repo,
            &puts,
            Some(deps),
            today("10:00"),
        );
        let vouch = SignedChange {
            signature: (insider.repo.identity().key).sign(&change_signing_bytes(&crafted.hash)),
            bytes: crafted.bytes,
        };
        let frame = wire::encode(&Message::Changes {
            doc: journal.clone(),
            changes: [backdated.clone(), vec![vouch]].concat(),
        });
        // The round's end, where what stays left out is told.
        let done = wire::encode(&Message::PushDone { round: 99, seq: 0 });
        let reasons = rejections(&inject(&insider.repo, &z.base.repo, vec![frame, done]));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("1 change(s)"), "{}", reasons[0]);
        assert!(!note_texts(&z.base.repo, &z.mine).contains(&"Tilbakedatert".to_owned()));
    }
}

#[test]
fn a_revoked_phones_change_sent_twice_in_one_message_is_judged_once() {
    //! A hostile sender repeats a revoked phone's change that the base's note vouches for:
    //! the copy is the same change, taken with the original, not left out apart and then found
    //! applied without a voucher (which refused the whole message).
    let mut z = zone();
    let mut lost = TestNode::nurse(119, "N1");
    let (colleague, insider) = (TestNode::nurse(120, "N1"), TestNode::nurse(121, "N1"));
    // The colleague knows the base and the phone (their certificates), not yet the journal.
    sync_at(&z.base.repo, &lost.repo, NOW_MS);
    sync_at(&z.base.repo, &colleague.repo, NOW_MS);
    sync_at(&lost.repo, &colleague.repo, NOW_MS);
    write_note(&mut lost, &z.mine, "10:00", "Før tapet");
    sync_at(&lost.repo, &z.base.repo, NOW_MS);
    write_note(&mut z.base, &z.mine, "10:30", "Basens notat");
    let revocation = revoke_at(&z.base.repo, &lost, "11:00");
    let journal = DocumentId::Journal(z.mine.clone(), today("10:00").day().month());
    // The phone's journal holds its note alone; the base's, both.
    let phones = omsyn_tests::craft::signed_history(&lost.repo, &journal);
    assert_eq!(phones.len(), 1);
    let mut changes = omsyn_tests::craft::signed_history(&z.base.repo, &journal);
    changes.insert(0, phones[0].clone());
    let frames = vec![
        wire::encode(&Message::Revocations {
            revocations: vec![revocation.to_bytes()],
        }),
        wire::encode(&Message::Changes {
            doc: journal,
            changes,
        }),
        wire::encode(&Message::PushDone { round: 99, seq: 0 }),
    ];
    let reasons = rejections(&inject(&insider.repo, &colleague.repo, frames));
    assert_eq!(reasons, Vec::<String>::new());
    assert_eq!(
        note_texts(&colleague.repo, &z.mine),
        ["Før tapet", "Basens notat"]
    );
}

#[test]
fn a_colleague_unaware_of_one_revocation_does_not_make_a_new_node_refuse_the_journal() {
    //! B's note, then the stolen A's note on it, then colleague C's note on A's — written after
    //! A's revocation, which C had not heard of, and before B's. C's note vouches for nothing
    //! (it cannot be taken without A's): B's note is not carried in through it, and the rest of
    //! the journal C sends is taken, not refused whole.
    let z = zone();
    let (mut b, mut a) = (TestNode::nurse(115, "N1"), TestNode::nurse(116, "N1"));
    let mut c = TestNode::nurse(117, "N1");
    for phone in [&b, &a, &c] {
        sync_at(&z.base.repo, &phone.repo, NOW_MS);
    }
    write_note(&mut c, &z.mine, "09:20", "C først");
    write_note(&mut b, &z.mine, "09:30", "Fra B");
    sync_at(&b.repo, &z.base.repo, NOW_MS);
    sync_at(&z.base.repo, &a.repo, NOW_MS);
    write_note(&mut a, &z.mine, "10:00", "Fra A");
    sync_at(&a.repo, &c.repo, NOW_MS);
    write_note(&mut c, &z.mine, "10:30", "Fra C");
    for (phone, at) in [(&a, "10:15"), (&b, "11:00")] {
        revoke_at(&z.base.repo, phone, at);
    }
    let d = TestNode::nurse(118, "N1");
    sync_at(&z.base.repo, &d.repo, NOW_MS);
    let (mut link, errors) = sync_at(&c.repo, &d.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert_eq!(note_texts(&d.repo, &z.mine), ["C først"]);
    let told = rejections(&events(&mut link.b));
    assert!(
        told.iter().all(|r| r.contains("were left out")),
        "nothing refused whole: {told:?}"
    );
}

#[test]
fn a_certificate_approved_for_a_device_revoked_meanwhile_is_not_kept() {
    //! `enroll approve` checks the request, then signs, then keeps the certificate: a revocation
    //! committed in between (a forwarded `omsyn revoke`) wins at the keeping.
    let z = zone();
    let phone = TestNode::unenrolled(109, TestNode::nurse(109, "N1").repo.profile().clone());
    let cert = test_org()
        .approve(
            &phone.repo.enrollment_request(),
            NOW_MS - HOUR_MS,
            7 * DAY_MS,
        )
        .unwrap();
    (z.base.repo)
        .add_revocation(&test_org().revoke(phone.repo.id(), "phone lost", NOW_MS))
        .unwrap();
    let err = z.base.repo.remember_issued(&cert).unwrap_err().to_string();
    assert!(err.contains("is revoked"), "{err}");
    assert_eq!(
        z.base.repo.store().certificate(&phone.repo.id()).unwrap(),
        None
    );
}

#[test]
fn a_device_revoked_while_offline_stops_syncing_when_its_certificate_expires() {
    let z = zone();
    let lost = TestNode::unenrolled(92, TestNode::nurse(92, "N1").repo.profile().clone());
    enroll(&lost.repo, &test_org(), 2 * DAY_MS); // valid until a day after now
    sync_at(&z.base.repo, &lost.repo, NOW_MS);
    // Revoked at the base while the phone is away; it only ever meets a node that never heard.
    let revocation = test_org().revoke(lost.repo.id(), "phone lost", NOW_MS);
    z.base.repo.add_revocation(&revocation).unwrap();
    let unaware = TestNode::nurse(93, "N1");
    let (_, errors) = sync_at(&unaware.repo, &lost.repo, NOW_MS);
    assert_eq!(
        errors,
        (None, None),
        "within its validity an unaware node still syncs"
    );
    let (_, (unaware_err, lost_err)) = sync_at(&unaware.repo, &lost.repo, NOW_MS + 2 * DAY_MS);
    assert!(unaware_err.unwrap().contains("expired"));
    assert!(lost_err.unwrap().contains("expired"));
}

#[test]
fn a_forged_signature_is_rejected_with_the_reason_and_nothing_is_stored() {
    let z = zone();
    let mut nurse = TestNode::nurse(80, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let before = snapshot(&z.base.repo);
    // A note claiming the base as its author, signed with the nurse's key.
    let frame = forged_note(&z.base.repo, &nurse.repo, &z.mine, &mut nurse.rng);
    let events = inject(&nurse.repo, &z.base.repo, vec![frame]);
    let reasons = rejections(&events);
    assert_eq!(reasons.len(), 1, "{events:?}");
    assert!(reasons[0].contains("no valid signature"), "{}", reasons[0]);
    assert_eq!(snapshot(&z.base.repo), before, "nothing stored");
}

/// What `repo` holds of `doc`, each change with its signature, as a sender sends it.
fn held_changes(repo: &Repo, doc: &DocumentId) -> Vec<SignedChange> {
    repo.store()
        .with_doc(doc, |d| d.hashed_changes_since(&[]))
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .map(|c| SignedChange {
            bytes: c.bytes,
            signature: c.signature.expect("stored changes are signed"),
        })
        .collect()
}

#[test]
fn a_forged_signature_amid_changes_checked_ahead_of_the_session_refuses_its_message_whole() {
    forged_signature_amid_a_batch(Unchecked::InTheInbox);
}

#[test]
fn a_forged_signature_amid_changes_unpacked_before_the_hello_was_verified_is_refused_by_the_session()
 {
    forged_signature_amid_a_batch(Unchecked::InTheSession);
}

/// Where a batch's changes are checked: ahead of the session, by an inbox told the peer is
/// verified; or, unpacked before that, by the session.
#[derive(PartialEq)]
enum Unchecked {
    InTheInbox,
    InTheSession,
}

/// A message with one forged signature among a batch of two is refused whole, and the other
/// message is stored, wherever the changes are checked.
fn forged_signature_amid_a_batch(checked: Unchecked) {
    let z = zone();
    let mut nurse = TestNode::nurse(82, "N1");
    // A session past its Hellos, caught up; what the nurse writes next goes only as crafted below.
    let mut link = Link::open(&nurse.repo, &z.base.repo);
    let (pn, pb) = (
        nurse.repo.need_policy().expect("own grant"),
        z.base.repo.need_policy().expect("own grant"),
    );
    link.exchange((&nurse.repo, &pn), (&z.base.repo, &pb), NOW_MS);
    for i in 0..3 {
        let at = today("10:00");
        let text = format!("Notat {i}");
        nurse
            .repo
            .add_note(at, &mut nurse.rng, &z.mine, None, at, &text)
            .unwrap();
    }
    // A note on a visit of the month before, in that month's journal.
    let earlier = Timestamp::from_unix_millis(NOW_MS - 35 * DAY_MS).unwrap();
    nurse
        .repo
        .add_note(earlier, &mut nurse.rng, &z.mine, None, earlier, "Notat")
        .unwrap();
    let journal = DocumentId::Journal(z.mine.clone(), today("10:00").day().month());
    let mut notes = held_changes(&nurse.repo, &journal);
    assert!(notes.len() >= 3, "{}", notes.len());
    let middle = notes.len() / 2;
    notes[middle].signature[0] ^= 1;
    let log = DocumentId::Journal(z.mine.clone(), earlier.day().month());
    let entries = held_changes(&nurse.repo, &log);
    assert!(!entries.is_empty());
    // The bytes as a driver's inbox takes them apart, in one batch: the month before's
    // journal, then this month's with the middle note's signature broken.
    let held = |repo: &Repo, doc: &DocumentId| repo.store().with_doc(doc, |d| d.head_hashes());
    let before = held(&z.base.repo, &journal).unwrap();
    let mut inbox = Inbox::default();
    if checked == Unchecked::InTheInbox {
        inbox.peer_verified();
    }
    let mut unpacked = Unpacked::default();
    for (doc, changes) in [(log.clone(), entries), (journal.clone(), notes)] {
        unpacked.append(inbox.unpack(&wire::encode(&Message::Changes { doc, changes })));
    }
    link.b
        .handle_unpacked(z.base.repo.store(), &pb, NOW_MS, unpacked)
        .expect("a refused change ends no session");
    let reasons = rejections(&events(&mut link.b));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("no valid signature"), "{}", reasons[0]);
    assert_eq!(
        held(&z.base.repo, &journal).unwrap(),
        before,
        "nothing of the notes"
    );
    assert_eq!(
        held(&z.base.repo, &log).unwrap(),
        held(&nurse.repo, &log).unwrap(),
        "the journal that came with them is stored"
    );
}

#[test]
fn a_nurse_editing_a_care_plan_is_refused_locally_and_by_every_peer() {
    let z = zone();
    let mut nurse = TestNode::nurse(81, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let spec = omsyn_core::repo::NewTiltak {
        vedtak_title: None,
        code: None,
        description: "Sårstell".into(),
        times: vec!["10:00".into()],
        weekdays: vec![],
        health_care: true,
        requires_authorised_nurse: false,
        double_staffed: false,
    };
    let local = nurse
        .repo
        .add_tiltak(today("10:00"), &mut nurse.rng, &z.mine, &spec);
    assert!(
        matches!(local, Err(RepoError::NotPermitted { .. })),
        "{local:?}"
    );
    // A modified client that skips the local check: the base refuses the signed change.
    let id = DocumentId::PatientRecord(z.mine.clone());
    let mut doc = Document::new(id.clone(), nurse.repo.id());
    let ctx = ChangeContext {
        author: nurse.repo.author().expect("own author"),
        entered_at: today("10:00"),
    };
    let tiltak = Tiltak {
        id: TiltakId::random(&mut nurse.rng),
        vedtak: None,
        code: None,
        description: "Sårstell".into(),
        times: vec!["10:00".into()],
        weekdays: vec![],
        health_care: true,
        requires_authorised_nurse: false,
        double_staffed: false,
        active: true,
    };
    record::put_tiltak(&mut doc, &ctx, &tiltak).unwrap();
    let before = snapshot(&z.base.repo);
    let frame = wire::encode(&Message::Changes {
        doc: id,
        changes: signed(&nurse.repo.identity().key, &mut doc),
    });
    let reasons = rejections(&inject(&nurse.repo, &z.base.repo, vec![frame]));
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("a nurse may not"), "{}", reasons[0]);
    assert_eq!(snapshot(&z.base.repo), before);
}

/// A peer's message carrying `picture` as written, bypassing the sender's own checks (a modified
/// build writing Automerge directly): only the receiver's rule stands between it and every replica.
fn message_with_picture_from_a_peer_is_refused(picture: serde_json::Value, reason: &str) {
    use automerge::transaction::Transactable;
    let z = zone();
    let nurse = TestNode::nurse(81, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let before = snapshot(&z.base.repo);
    let id = DocumentId::Messages(z.mine.clone(), today("10:00").day().month());
    let message = serde_json::json!({
        "id": "e-00000000000000aa",
        "author": nurse.repo.author().expect("own author"),
        "to": {"to": "base"},
        "sent_at": today("10:00"),
        "in_reply_to": null,
        "text": "se bildet",
        "attachments": [picture],
    });
    let mut am = automerge::AutoCommit::new()
        .with_actor(automerge::ActorId::from(&nurse.repo.id().as_bytes()[..]));
    am.put(automerge::ROOT, "m/e-00000000000000aa", message.to_string())
        .unwrap();
    let sent_at = today("10:00").unix_millis() / 1000;
    am.commit_with(automerge::transaction::CommitOptions::default().with_time(sent_at));
    let mut doc = Document::load(id.clone(), &am.save(), nurse.repo.id()).unwrap();
    let frame = wire::encode(&Message::Changes {
        doc: id,
        changes: signed(&nurse.repo.identity().key, &mut doc),
    });
    let reasons = rejections(&inject(&nurse.repo, &z.base.repo, vec![frame]));
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains(reason), "{}", reasons[0]);
    assert_eq!(snapshot(&z.base.repo), before, "nothing stored");
}

#[test]
fn an_oversized_message_from_a_peer_is_refused_and_nothing_is_stored() {
    // A picture claiming to be small, carrying 2 MiB.
    let data = "A".repeat(2 * 1024 * 1024);
    let picture =
        serde_json::json!({"content_type": "image/jpeg", "name": null, "size": 10, "data": data});
    message_with_picture_from_a_peer_is_refused(picture, "at most");
}

#[test]
fn a_script_disguised_as_a_picture_from_a_peer_is_refused_and_nothing_is_stored() {
    // "<script>fetch('/api')</script>" in base64, served as a page if anyone stored it.
    let picture = serde_json::json!({
        "content_type": "text/html", "name": null, "size": 30,
        "data": "PHNjcmlwdD5mZXRjaCgnL2FwaScpPC9zY3JpcHQ+",
    });
    message_with_picture_from_a_peer_is_refused(picture, "image/jpeg, image/png or image/webp");
}

#[test]
fn only_nurses_record_medication_given() {
    let mut z = zone();
    let med = z
        .base
        .repo
        .add_medication(
            today("07:00"),
            &mut z.base.rng,
            &z.mine,
            "Paracet",
            "1 g",
            &["08:00".into()],
        )
        .unwrap();
    let given = z.base.repo.record_dose(
        today("08:00"),
        &mut z.base.rng,
        &z.mine,
        &med,
        "08:00",
        today("08:00"),
        None,
        None,
    );
    let Err(RepoError::Unauthorized(reason)) = given else {
        panic!("a base recorded medication: {given:?}");
    };
    assert!(reason.contains("only nurses"), "{reason}");
}

#[test]
fn a_home_unit_holds_only_its_patient_and_asking_for_another_gets_nothing() {
    let z = zone();
    let home = TestNode::home_unit(82, &z.mine);
    let (_, errors) = sync_at(&z.base.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(holds(&home.repo, &z.mine));
    assert!(!holds(&home.repo, &z.other));
    // Asking outright for the other patient's record and plan.
    let month = today("07:00").day().month();
    let mut link = Link::open(&home.repo, &z.base.repo);
    let (ph, pb) = (
        home.repo.need_policy().expect("own grant"),
        z.base.repo.need_policy().expect("own grant"),
    );
    link.exchange((&home.repo, &ph), (&z.base.repo, &pb), NOW_MS);
    for doc in [
        DocumentId::PatientRecord(z.other.clone()),
        DocumentId::VisitPlan(z.other.clone(), month),
    ] {
        let ask = wire::encode(&Message::Need { doc, heads: vec![] });
        link.b
            .handle_bytes(z.base.repo.store(), &pb, NOW_MS, &ask)
            .unwrap();
    }
    let mut answer = Vec::new();
    while let Some(frame) = link.b.poll_transmit() {
        answer.extend(frame);
    }
    link.a
        .handle_bytes(home.repo.store(), &ph, NOW_MS, &answer)
        .unwrap();
    assert!(!holds(&home.repo, &z.other));
    assert!(
        home.repo
            .store()
            .doc_ids("")
            .unwrap()
            .iter()
            .all(|d| d.patient().is_none_or(|p| p == &z.mine)),
        "only its own patient's documents"
    );
}

#[test]
fn a_nurse_holds_her_work_list_and_a_reassigned_patient_leaves_her_phone() {
    let mut z = zone();
    let nurse = TestNode::nurse(83, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert!(holds(&nurse.repo, &z.mine));
    assert!(!holds(&nurse.repo, &z.other), "not on her list");
    // The base moves her visit to N2: the phone is told, and purges the patient.
    let (visit, _) = z
        .base
        .repo
        .visits_on(today("07:00").day())
        .unwrap()
        .into_iter()
        .find(|v| v.patient == z.mine)
        .map(|v| (v.id.clone(), v))
        .unwrap();
    z.base
        .repo
        .change_visit(
            today("08:00"),
            &mut z.base.rng,
            &visit,
            &omsyn_core::docs::plan::VisitChange::Assign(vec![StaffId::parse("N2").unwrap()]),
        )
        .unwrap();
    let (mut link, _) = sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert!(
        events(&mut link.b)
            .iter()
            .any(|e| matches!(e, SyncEvent::Withdrawn(_)))
    );
    let store = nurse.repo.store();
    let seq_before = store.seq().unwrap();
    let report = nurse.repo.purge_unneeded(today("12:00")).unwrap();
    assert_eq!(report.purged, vec![z.mine.clone()]);
    assert!(!holds(&nurse.repo, &z.mine));
    assert!(store.doc_ids("journal/").unwrap().is_empty());
    // The change log names every document held once, none of the purged, and its position
    // never goes back (a peer's acknowledged position must not cover later changes).
    let log: Vec<_> = store
        .log_since(0)
        .unwrap()
        .changed
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let held = store.doc_ids("").unwrap();
    let mut sorted = log.clone();
    sorted.sort();
    assert_eq!(sorted, held, "the log lists each held document once");
    assert!(log.iter().all(|id| id.patient() != Some(&z.mine)));
    assert!(store.seq().unwrap() > seq_before);
}

#[test]
fn explicit_access_is_refused_without_a_reason_then_logged_flagged_and_shared_by_the_base() {
    let z = zone();
    let mut nurse = TestNode::nurse(84, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    // Not on her list: reading is refused, and the refusal is logged.
    let refused = nurse
        .repo
        .open_patient(today("10:00"), &z.other, "patient view");
    assert!(
        matches!(refused, Err(RepoError::AccessDenied(_))),
        "{refused:?}"
    );
    // She states a reason; the base learns of it and shares the patient.
    let rng = &mut nurse.rng;
    nurse
        .repo
        .transaction(|tx| {
            tx.explicit_access(today("10:01"), rng, &z.other, "akutt tilsyn, kollega syk")
        })
        .unwrap();
    sync_at(&z.base.repo, &nurse.repo, NOW_MS + HOUR_MS);
    sync_at(&z.base.repo, &nurse.repo, NOW_MS + HOUR_MS);
    assert!(holds(&nurse.repo, &z.other), "the base shared the patient");
    let purpose = nurse
        .repo
        .open_patient(today("10:05"), &z.other, "patient view")
        .unwrap();
    assert_eq!(purpose, "explicit access");
    // Reviewable at the base: the recorded access, and the flagged log entries.
    let accesses = z.base.repo.explicit_accesses().unwrap();
    assert_eq!(accesses.len(), 1);
    assert_eq!(accesses[0].1.reason, "akutt tilsyn, kollega syk");
    let log = z.base.repo.audit_entries(Some(&z.other)).unwrap();
    let flagged: Vec<_> = log.iter().filter(|e| e.flagged).map(|e| e.action).collect();
    assert_eq!(
        flagged,
        vec![AuditAction::Refused, AuditAction::ExplicitAccess]
    );
}

/// A session between `a` and `b` as the daemon runs one with a peer met before: each side
/// builds its first push with its Hello, by the certificate it holds for the other; then bytes
/// move until quiet, without errors.
fn reconnect_early(a: &Repo, b: &Repo) -> Link {
    let (pa, pb) = (
        a.need_policy().expect("own grant"),
        b.need_policy().expect("own grant"),
    );
    let mut link = Link::open(a, b);
    link.a.push_early(a.store(), &pa, NOW_MS).unwrap();
    link.b.push_early(b.store(), &pb, NOW_MS).unwrap();
    let errors = link.exchange((a, &pa), (b, &pb), NOW_MS);
    assert_eq!(errors, (None, None));
    link
}

/// The base blocks staff N1 (sperring) from the zone's own patient, at 10:30.
fn block_n1(z: &mut Zone) {
    z.base
        .repo
        .transaction(|tx| {
            tx.block_staff(
                today("10:30"),
                &mut z.base.rng,
                &z.mine,
                &StaffId::parse("N1").unwrap(),
            )
        })
        .unwrap();
}

#[test]
fn a_block_made_while_the_phone_was_away_is_told_at_a_reconnect_whose_push_went_with_the_hello() {
    //! Both sides of a daemon's session build their first push before the peer's `Hello` (sent
    //! with their own, by the certificate held for the peer). A base's push then withholds the
    //! patient the phone may no longer see; the phone must still be told to remove it.
    let mut z = zone();
    let nurse = TestNode::nurse(100, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert!(holds(&nurse.repo, &z.mine));
    block_n1(&mut z);
    let mut link = reconnect_early(&z.base.repo, &nurse.repo);
    assert!(
        events(&mut link.b)
            .iter()
            .any(|e| matches!(e, SyncEvent::Withdrawn(d) if d.patient() == Some(&z.mine))),
        "the phone was not told"
    );
    let report = nurse.repo.purge_unneeded(today("11:00")).unwrap();
    assert_eq!(report.purged, vec![z.mine.clone()]);
}

#[test]
fn a_phone_re_enrolled_since_the_base_last_met_it_is_judged_again_after_the_push_sent_with_the_hello()
 {
    //! The base's push sent with its Hello is judged by the certificate it holds for the phone.
    //! A phone re-enrolled since (another staff id) brings a newer one: what the first judged
    //! withdrawn is judged again by it, and sent if it is needed after all.
    let mut z = zone();
    let before = TestNode::nurse(108, "N1");
    sync_at(&z.base.repo, &before.repo, NOW_MS);
    assert!(holds(&before.repo, &z.mine));
    // The visit goes to N2; the same phone (its key) is enrolled again as N2, a certificate
    // the base has not seen.
    let visit = (z
        .base
        .repo
        .visits_on(today("07:00").day())
        .unwrap()
        .into_iter())
    .find(|v| v.patient == z.mine)
    .unwrap()
    .id;
    let to_n2 = omsyn_core::docs::plan::VisitChange::Assign(vec![StaffId::parse("N2").unwrap()]);
    (z.base.repo)
        .change_visit(today("08:00"), &mut z.base.rng, &visit, &to_n2)
        .unwrap();
    let mut profile = before.repo.profile().clone();
    profile.staff_id = Some(StaffId::parse("N2").unwrap());
    let phone = TestNode::unenrolled(108, profile);
    assert_eq!(phone.repo.id(), before.repo.id());
    let cert = test_org()
        .approve(
            &phone.repo.enrollment_request(),
            NOW_MS - HOUR_MS,
            7 * DAY_MS,
        )
        .unwrap();
    phone.repo.install_certificate(&cert).unwrap();
    reconnect_early(&z.base.repo, &phone.repo);
    assert!(
        holds(&phone.repo, &z.mine),
        "N2's patient reached N2's phone"
    );
    let report = phone.repo.purge_unneeded(today("11:00")).unwrap();
    assert!(report.purged.is_empty(), "{:?}", report.purged);
}

#[test]
fn sperring_stops_reads_and_sharing_at_once_and_purges_the_blocked_device() {
    let mut z = zone();
    let nurse = TestNode::nurse(85, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    nurse
        .repo
        .open_patient(today("10:00"), &z.mine, "patient view")
        .unwrap();
    block_n1(&mut z);
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let read = nurse
        .repo
        .open_patient(today("11:00"), &z.mine, "patient view");
    let Err(RepoError::AccessDenied(denied)) = read else {
        panic!("a blocked nurse read the patient: {read:?}");
    };
    assert!(denied.reason.contains("sperring"), "{}", denied.reason);
    let report = nurse.repo.purge_unneeded(today("11:00")).unwrap();
    assert_eq!(report.purged, vec![z.mine.clone()]);
    assert!(!holds(&nurse.repo, &z.mine));
    // And the base shares nothing of the patient with her any more.
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    assert!(!holds(&nurse.repo, &z.mine));
}

#[test]
fn the_access_log_records_reads_writes_and_exports_with_who_and_why() {
    let z = zone();
    let mut nurse = TestNode::nurse(86, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    nurse
        .repo
        .open_patient(today("09:00"), &z.mine, "patient view")
        .unwrap();
    nurse
        .repo
        .add_note(
            today("09:10"),
            &mut nurse.rng,
            &z.mine,
            None,
            today("09:10"),
            "ok",
        )
        .unwrap();
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let log = z.base.repo.audit_entries(Some(&z.mine)).unwrap();
    let by_nurse: Vec<_> = log
        .iter()
        .filter(|e| e.author.device == nurse.repo.id())
        .collect();
    assert_eq!(by_nurse.len(), 2, "{by_nurse:?}");
    assert_eq!(by_nurse[0].action, AuditAction::Read);
    assert_eq!(
        by_nurse[0].purpose,
        format!("work list {}", today("09:00").day())
    );
    assert_eq!(by_nurse[0].author.staff.as_ref().unwrap().as_str(), "N1");
    assert_eq!(by_nurse[0].author.role, Role::Nurse);
    assert_eq!(by_nurse[1].action, AuditAction::Write);
    // The write comes from the journal's own signed history; the read from the nurse's log,
    // whose chain the base verifies.
    assert_eq!(
        by_nurse[1].what,
        format!("journal/{}/{}", z.mine, today("09:10").day().month())
    );
    let reports = z.base.repo.verify_audit().unwrap();
    assert!(
        reports.iter().any(|r| r.node == nurse.repo.id()),
        "{reports:?}"
    );
    assert!(reports.iter().all(|r| r.problems.is_empty()), "{reports:?}");
}

#[test]
fn a_tampered_or_truncated_audit_chain_is_detected() {
    let mut node = TestNode::nurse(87, "N1");
    for i in 0..5 {
        node.repo
            .log_access(
                today("09:00"),
                audit::AccessEvent::new(
                    None,
                    AuditAction::Read,
                    format!("work list {i}"),
                    "test".into(),
                ),
            )
            .unwrap();
    }
    let _ = &mut node.rng;
    let id = audit::doc_id(node.repo.id(), today("09:00").day().month());
    let (entries, _) = node
        .repo
        .store()
        .with_doc(&id, audit::read)
        .unwrap()
        .unwrap();
    let me = node.repo.id();
    assert!(audit::verify_chain(me, &entries, &[]).problems.is_empty());

    let mut altered = entries.clone();
    altered[2].entry.what = "something else".into();
    let problems = audit::verify_chain(me, &altered, &[]).problems;
    assert!(
        problems.iter().any(|p| p.contains("entry 2 was altered")),
        "{problems:?}"
    );

    // Altered and re-signed by the node itself: the next link breaks.
    let key = &node.repo.identity().key;
    let mut resigned = entries.clone();
    resigned[2].entry.what = "something else".into();
    let hash = resigned[2].entry.hash();
    resigned[2].hash = hex(&hash);
    resigned[2].sig = hex(&key.sign(&hash));
    let problems = audit::verify_chain(me, &resigned, &[]).problems;
    assert!(
        problems.iter().any(|p| p.contains("entry 3 does not link")),
        "{problems:?}"
    );

    let mut gap = entries.clone();
    gap.remove(3);
    let problems = audit::verify_chain(me, &gap, &[]).problems;
    assert!(
        problems.iter().any(|p| p.contains("gap: entries 3-3")),
        "{problems:?}"
    );

    let truncated = entries[2..].to_vec();
    let problems = audit::verify_chain(me, &truncated, &[]).problems;
    assert!(
        problems.iter().any(|p| p.contains("truncated")),
        "{problems:?}"
    );

    let other = NodeKey::generate(&mut StdRng::seed_from_u64(3)).id();
    let problems = audit::verify_chain(other, &entries, &[]).problems;
    assert!(
        problems.iter().any(|p| p.contains("not signed by")),
        "{problems:?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_change_relayed_through_a_home_unit_keeps_its_author_and_is_verified_at_each_hop() {
    let z = zone();
    let mut nurse = TestNode::nurse(88, "N1");
    let mut home = TestNode::home_unit(89, &z.mine);
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    sync_at(&z.base.repo, &home.repo, NOW_MS);
    let note = nurse
        .repo
        .add_note(
            today("12:00"),
            &mut nurse.rng,
            &z.mine,
            None,
            today("12:00"),
            "svimmel",
        )
        .unwrap();
    // The nurse meets only the home unit; the home unit meets the base.
    let (mut link, errors) = sync_at(&nurse.repo, &home.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(rejections(&events(&mut link.b)).is_empty());
    let (mut link, errors) = sync_at(&home.repo, &z.base.repo, NOW_MS);
    assert_eq!(errors, (None, None));
    assert!(rejections(&events(&mut link.b)).is_empty());
    let (journal, _) = z.base.repo.journal(&z.mine).unwrap();
    let arrived = journal.iter().find(|e| e.id == note.id).expect("relayed");
    assert_eq!(
        arrived.author.device,
        nurse.repo.id(),
        "the original author"
    );
    // A relay that tampers: the home unit passes on a note in the nurse's name, signed by itself.
    let frame = forged_note(&nurse.repo, &home.repo, &z.mine, &mut home.rng);
    let reasons = rejections(&inject(&home.repo, &z.base.repo, vec![frame]));
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("no valid signature"));
}

#[test]
fn a_wrong_or_missing_store_key_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(90);
    let profile = TestNode::nurse(90, "N1").repo.profile().clone();
    let repo = Repo::init(
        dir.path(),
        profile,
        Some(StoreKey::from_bytes([1; 32])),
        &mut rng,
    )
    .unwrap();
    repo.log_access(
        today("09:00"),
        audit::AccessEvent::new(None, AuditAction::Read, "x".into(), "y".into()),
    )
    .unwrap();
    let before = snapshot(&repo);
    drop(repo);
    let wrong = Repo::open(dir.path(), Some(StoreKey::from_bytes([2; 32])), &mut rng);
    assert!(
        matches!(wrong, Err(OpenRepoError::Store(OpenError::WrongKey(_)))),
        "{wrong:?}"
    );
    let text = wrong.unwrap_err().to_string();
    assert!(text.contains("does not match"), "{text}");
    let missing = Repo::open(dir.path(), None, &mut rng);
    assert!(
        matches!(missing, Err(OpenRepoError::Key(KeyError::Missing(_)))),
        "{missing:?}"
    );
    let right = Repo::open(dir.path(), Some(StoreKey::from_bytes([1; 32])), &mut rng).unwrap();
    assert_eq!(
        snapshot(&right),
        before,
        "nothing was changed by the refused opens"
    );
    assert_eq!(right.audit_entries(None).unwrap().len(), 1);
}

#[test]
fn patient_data_is_not_readable_in_the_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(91);
    let profile = TestNode::base(91).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, None, &mut rng).unwrap();
    let p = repo
        .add_patient(
            today("07:00"),
            &mut rng,
            &[(PatientField::Name, "Ingrid Særnavn".into())],
        )
        .unwrap();
    repo.add_note(
        today("08:00"),
        &mut rng,
        &p,
        None,
        today("08:00"),
        "hemmelig diagnose",
    )
    .unwrap();
    drop(repo);
    let bytes = std::fs::read(Repo::store_path(dir.path())).unwrap();
    for secret in ["Særnavn", "hemmelig diagnose"] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is readable in the store file"
        );
    }
}

/// A change whose columns hold one run of `n` equal operations, by the nurse of seed `seed`
/// (her real key, as a patched app on her phone signs).
fn run_of_operations(seed: u64, n: u64) -> SignedChange {
    let key = NodeKey::generate(&mut StdRng::seed_from_u64(seed));
    omsyn_tests::craft::run_of_operations(&key, n)
}

#[test]
fn the_crafted_run_of_operations_is_a_change_automerge_expands_to_its_length() {
    // The shape the attacks below use, at a size Automerge may expand: valid, three operations,
    // and passed by the count.
    let change = run_of_operations(94, 3);
    let parsed = automerge::Change::from_bytes(change.bytes.clone()).unwrap();
    assert_eq!(parsed.len(), 3);
    omsyn_core::pipeline::vouch(change.bytes, change.signature).unwrap();
    let most = run_of_operations(94, omsyn_core::pipeline::MAX_OPERATIONS);
    omsyn_core::pipeline::vouch(most.bytes, most.signature).unwrap();
    let more = run_of_operations(94, omsyn_core::pipeline::MAX_OPERATIONS + 1);
    let reason = omsyn_core::pipeline::vouch(more.bytes, more.signature).unwrap_err();
    assert!(reason.contains("at most 100000"), "{reason}");
}

#[test]
fn a_change_of_a_few_bytes_standing_for_a_trillion_operations_is_refused_unexpanded_in_a_session_and_a_file()
 {
    let limit = std::time::Duration::from_secs(30);
    let refused = omsyn_tests::within(limit, "a session given a run of 2^40 operations", || {
        let z = zone();
        let nurse = TestNode::nurse(94, "N1");
        sync_at(&z.base.repo, &nurse.repo, NOW_MS);
        let before = snapshot(&z.base.repo);
        let journal = DocumentId::Journal(z.mine.clone(), today("10:00").day().month());
        let bomb = run_of_operations(94, 1 << 40);
        assert!(bomb.bytes.len() < 200, "{} bytes", bomb.bytes.len());
        let frame = wire::encode(&Message::Changes {
            doc: journal.clone(),
            changes: vec![bomb.clone()],
        });
        let reasons = rejections(&inject(&nurse.repo, &z.base.repo, vec![frame]));
        assert_eq!(snapshot(&z.base.repo), before, "nothing stored");
        // The same change in an export file.
        let file = omsyn_core::exchange::encode(&omsyn_core::exchange::Exchange {
            docs: vec![(journal, vec![bomb])],
            certificates: vec![],
            revocations: vec![],
        });
        let imported = z.base.repo.import(today("12:00"), &file);
        assert_eq!(snapshot(&z.base.repo), before, "nothing stored");
        (reasons, imported.map_err(|e| e.to_string()))
    });
    let (reasons, imported) = refused;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("operations; at most 100000"),
        "{}",
        reasons[0]
    );
    let err = imported.unwrap_err();
    assert!(err.contains("operations; at most 100000"), "{err}");
}

#[test]
fn a_change_a_peer_refused_for_now_is_sent_again_once_it_would_take_it() {
    let z = zone();
    let mut nurse = TestNode::nurse(95, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    // The phone's clock ran two days ahead: the base refuses the note as dated ahead of it.
    let ahead = Timestamp::from_unix_millis(NOW_MS + 2 * DAY_MS).unwrap();
    nurse
        .repo
        .add_note(
            ahead,
            &mut nurse.rng,
            &z.mine,
            None,
            ahead,
            "Skrevet med klokka foran",
        )
        .unwrap();
    let (mut link, _) = sync_at(&nurse.repo, &z.base.repo, NOW_MS);
    let refused: Vec<_> = events(&mut link.a)
        .into_iter()
        .filter(|e| matches!(e, SyncEvent::RejectedByPeer { .. }))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let journal = DocumentId::Journal(z.mine.clone(), ahead.day().month());
    let held = |repo: &Repo| {
        repo.store()
            .with_doc(&journal, |d| d.head_hashes())
            .unwrap()
    };
    assert_ne!(held(&z.base.repo), held(&nurse.repo));
    let refused = || nurse.repo.store().refused(&z.base.repo.id()).unwrap();
    assert_eq!(refused(), vec![journal.clone()]);
    // A session before the base's clock reaches the note's date is refused again.
    let (mut link, errors) = sync_at(&nurse.repo, &z.base.repo, NOW_MS + HOUR_MS);
    assert_eq!(errors, (None, None));
    let again = events(&mut link.a);
    assert!(
        again
            .iter()
            .any(|e| matches!(e, SyncEvent::RejectedByPeer { .. })),
        "{again:?}"
    );
    assert_eq!(refused(), vec![journal.clone()]);
    // Once it has, the next session sends it again (nothing else changed since), the base
    // takes it, and the phone forgets the refusal.
    let later = NOW_MS + 2 * DAY_MS + 3_600_000;
    let (_, errors) = sync_at(&nurse.repo, &z.base.repo, later);
    assert_eq!(errors, (None, None));
    assert_eq!(
        held(&z.base.repo),
        held(&nurse.repo),
        "the base holds the note"
    );
    assert!(refused().is_empty());
}

#[test]
fn a_peer_that_asks_for_a_document_as_it_acknowledges_the_round_that_sent_it_gets_what_it_lacks() {
    let z = zone();
    let mut nurse = TestNode::nurse(96, "N1");
    let (mut link, _) = sync_at(&nurse.repo, &z.base.repo, NOW_MS);
    let at = today("10:00");
    nurse
        .repo
        .add_note(at, &mut nurse.rng, &z.mine, None, at, "Notat")
        .unwrap();
    let policy = nurse.repo.need_policy().expect("own grant");
    link.a
        .handle_local_change(nurse.repo.store(), &policy, NOW_MS)
        .unwrap();
    // The round goes out; the base (as if it had lost what it held: restored from a copy) says
    // in one batch what it holds of the journal, and acknowledges the round.
    let mut frames = wire::FrameDecoder::default();
    while let Some(bytes) = link.a.poll_transmit() {
        frames.push(&bytes).unwrap();
    }
    let mut round = None;
    while let Some(frame) = frames.next_frame() {
        if let Message::PushDone { round: r, .. } = wire::decode(&frame).unwrap() {
            round = Some(r);
        }
    }
    let journal = DocumentId::Journal(z.mine.clone(), at.day().month());
    let reply = [
        wire::encode(&Message::Need {
            doc: journal.clone(),
            heads: vec![],
        }),
        wire::encode(&Message::Ack {
            round: round.expect("a round was pushed"),
        }),
    ]
    .concat();
    link.a
        .handle_bytes(nurse.repo.store(), &policy, NOW_MS, &reply)
        .unwrap();
    // The answer sends the journal's changes again.
    let mut frames = wire::FrameDecoder::default();
    while let Some(bytes) = link.a.poll_transmit() {
        frames.push(&bytes).unwrap();
    }
    let mut sent = 0;
    while let Some(frame) = frames.next_frame() {
        if let Message::Changes { doc, changes } = wire::decode(&frame).unwrap()
            && doc == journal
        {
            sent += changes.len();
        }
    }
    assert!(sent > 0, "the journal's changes were not sent again");
}

#[test]
fn a_peer_naming_ten_thousand_made_up_documents_leaves_no_rows_behind() {
    let z = zone();
    let nurse = TestNode::nurse(97, "N1");
    let mut link = Link::open(&nurse.repo, &z.base.repo);
    let (pn, pb) = (
        nurse.repo.need_policy().expect("own grant"),
        z.base.repo.need_policy().expect("own grant"),
    );
    link.exchange((&nurse.repo, &pn), (&z.base.repo, &pb), NOW_MS);
    let made_up: Vec<DocumentId> = (0..10_000u32)
        .map(|i| {
            let mut bytes = [0xee; 8];
            bytes[..4].copy_from_slice(&i.to_le_bytes());
            DocumentId::PatientRecord(PatientId::from_bytes(bytes))
        })
        .collect();
    // A patched app declines, asks for, says it holds, and refuses each of them.
    let frames: Vec<u8> = made_up
        .iter()
        .flat_map(|doc| {
            [
                wire::encode(&Message::Decline { doc: doc.clone() }),
                wire::encode(&Message::Need {
                    doc: doc.clone(),
                    heads: vec![[7; 32]],
                }),
                wire::encode(&Message::Have {
                    doc: doc.clone(),
                    heads: vec![[7; 32]],
                }),
                wire::encode(&Message::Reject {
                    doc: doc.clone(),
                    reason: "refused".into(),
                }),
            ]
            .concat()
        })
        .collect();
    link.b
        .handle_bytes(z.base.repo.store(), &pb, NOW_MS, &frames)
        .unwrap();
    while link.b.poll_transmit().is_some() {}
    let store = z.base.repo.store();
    let peer = nurse.repo.id();
    let withheld = store.withheld(&peer, None).unwrap();
    assert!(
        withheld.iter().all(|d| !made_up.contains(d)),
        "{} made-up documents withheld",
        withheld.iter().filter(|d| made_up.contains(d)).count()
    );
    assert!(store.refused(&peer).unwrap().is_empty());
    for doc in made_up.iter().step_by(997) {
        assert_eq!(store.peer_doc(&peer, doc).unwrap(), None, "{doc}");
    }
}

#[test]
fn a_need_for_a_made_up_document_that_comes_with_the_peers_hello_is_answered_by_an_empty_round() {
    //! A reconnect whose push went with our `Hello` (0-RTT): the peer's `Hello` arrives with a
    //! `Need` of a document we do not hold. Nothing is pushed for it and no row kept, but the
    //! asker waits for an answer: a round, empty though it is.
    let z = zone();
    let nurse = TestNode::nurse(99, "N1");
    sync_at(&nurse.repo, &z.base.repo, NOW_MS);
    let (pn, pb) = (
        nurse.repo.need_policy().expect("own grant"),
        z.base.repo.need_policy().expect("own grant"),
    );
    let mut a = Session::new(z.base.repo.id(), nurse.repo.store());
    let mut b = Session::new(nurse.repo.id(), z.base.repo.store());
    a.push_early(nurse.repo.store(), &pn, NOW_MS).unwrap();
    b.push_early(z.base.repo.store(), &pb, NOW_MS).unwrap();
    while a.poll_transmit().is_some() {}
    let made_up = DocumentId::PatientRecord(PatientId::from_bytes([0xee; 8]));
    let mut hello_and_need: Vec<u8> = std::iter::from_fn(|| b.poll_transmit()).flatten().collect();
    hello_and_need.extend(wire::encode(&Message::Need {
        doc: made_up.clone(),
        heads: vec![[7; 32]],
    }));
    a.handle_bytes(nurse.repo.store(), &pn, NOW_MS, &hello_and_need)
        .unwrap();
    let mut frames = wire::FrameDecoder::default();
    while let Some(bytes) = a.poll_transmit() {
        frames.push(&bytes).unwrap();
    }
    let answered: Vec<Message> = std::iter::from_fn(|| frames.next_frame())
        .map(|frame| wire::decode(&frame).unwrap())
        .collect();
    assert!(
        answered
            .iter()
            .any(|m| matches!(m, Message::PushDone { .. })),
        "no round answered the Need: {answered:?}"
    );
    assert!(
        !answered
            .iter()
            .any(|m| matches!(m, Message::Changes { .. })),
        "{answered:?}"
    );
    let store = nurse.repo.store();
    assert_eq!(store.peer_doc(&z.base.repo.id(), &made_up).unwrap(), None);
}

#[test]
fn a_removed_patients_refused_documents_are_not_sent_again() {
    let z = zone();
    let mut nurse = TestNode::nurse(98, "N1");
    sync_at(&z.base.repo, &nurse.repo, NOW_MS);
    let ahead = Timestamp::from_unix_millis(NOW_MS + 2 * DAY_MS).unwrap();
    nurse
        .repo
        .add_note(ahead, &mut nurse.rng, &z.mine, None, ahead, "Foran")
        .unwrap();
    sync_at(&nurse.repo, &z.base.repo, NOW_MS);
    let store = nurse.repo.store();
    assert_eq!(store.refused(&z.base.repo.id()).unwrap().len(), 1);
    let mut batch = store.write().unwrap();
    batch.remove_patient(&z.mine).unwrap();
    omsyn_core::pipeline::commit(batch, &omsyn_core::pipeline::DeriveContext::of(store, None))
        .unwrap();
    assert!(store.refused(&z.base.repo.id()).unwrap().is_empty());
}

#[test]
fn a_block_made_at_two_bases_at_once_stays_in_force_until_both_are_lifted_and_lifting_says_so() {
    //! Two bases that have not met each block N1 (one base refuses a second block of its own);
    //! merged, the record holds both. Lifting one says the other still holds.
    let mut z = zone();
    let mut west = TestNode::new(122, Role::Base, "Base Vest", Some("K002"));
    omsyn_tests::sync(&z.base.repo, &west.repo);
    let n1 = StaffId::parse("N1").unwrap();
    let east = (z.base.repo)
        .transaction(|tx| tx.block_staff(today("10:30"), &mut z.base.rng, &z.mine, &n1))
        .unwrap();
    let twice = (z.base.repo)
        .transaction(|tx| tx.block_staff(today("10:31"), &mut z.base.rng, &z.mine, &n1))
        .unwrap_err()
        .to_string();
    assert!(
        twice.contains(&format!("blocked N1 already (block {}", east.id)),
        "{twice}"
    );
    let other = (west.repo)
        .transaction(|tx| tx.block_staff(today("10:32"), &mut west.rng, &z.mine, &n1))
        .unwrap();
    omsyn_tests::sync(&z.base.repo, &west.repo);
    let (lifted, remaining) = (z.base.repo)
        .transaction(|tx| tx.lift_block(today("10:40"), &z.mine, &east.id))
        .unwrap();
    assert_eq!(lifted.id, east.id);
    assert_eq!(
        remaining.iter().map(|b| &b.id).collect::<Vec<_>>(),
        [&other.id]
    );
    let again = (z.base.repo)
        .transaction(|tx| tx.lift_block(today("10:41"), &z.mine, &east.id))
        .unwrap_err()
        .to_string();
    assert!(again.contains("was lifted already"), "{again}");
    let (_, none) = (z.base.repo)
        .transaction(|tx| tx.lift_block(today("10:42"), &z.mine, &other.id))
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn a_visit_is_neither_planned_nor_assigned_for_a_staff_member_the_patient_blocked() {
    //! A block beats every other access, a planned visit's need included: the nurse could not
    //! even read the visit. Refused by name, whichever front door asks; lifted, allowed again.
    let mut z = zone();
    let n1 = StaffId::parse("N1").unwrap();
    let block = z
        .base
        .repo
        .transaction(|tx| tx.block_staff(today("10:30"), &mut z.base.rng, &z.mine, &n1))
        .unwrap();
    let visit = NewVisit {
        patient: z.mine.clone(),
        start: today("14:00"),
        end: today("14:30"),
        kind: VisitKind::Physical,
        tiltak: vec![],
        staff: vec![n1.clone()],
    };
    let at = today("10:40");
    let refused = (z.base.repo.plan_visit(at, &mut z.base.rng, &visit))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("has blocked N1 (sperring)"), "{refused}");
    let unassigned = NewVisit {
        staff: vec![],
        ..visit.clone()
    };
    let planned = (z.base.repo.plan_visit(at, &mut z.base.rng, &unassigned)).unwrap();
    let assign = VisitChange::Assign(vec![n1.clone()]);
    let refused = (z
        .base
        .repo
        .change_visit(at, &mut z.base.rng, &planned, &assign))
    .unwrap_err()
    .to_string();
    assert!(refused.contains("has blocked N1 (sperring)"), "{refused}");
    (z.base.repo)
        .transaction(|tx| tx.lift_block(today("10:50"), &z.mine, &block.id))
        .unwrap();
    let at = today("10:55");
    (z.base
        .repo
        .change_visit(at, &mut z.base.rng, &planned, &assign))
    .unwrap();
    (z.base.repo.plan_visit(at, &mut z.base.rng, &visit)).unwrap();
}
