//! The front door (`omsyn_core::service`): what every front end gets from it — patients found by
//! name, values checked where they are typed, time from the injected clock, ids from the
//! injected seed, list views logged once a minute.

use std::sync::{Arc, Mutex};

use omsyn_core::service::{Clock, NewEntry, Observation, Service, ServiceError, When};
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Repo, Timestamp};
use omsyn_tests::{TestNode, at};

/// A clock a test moves by hand.
#[derive(Debug)]
struct HandClock(Mutex<Timestamp>);

impl HandClock {
    fn at(hhmm: &str) -> Arc<HandClock> {
        Arc::new(HandClock(Mutex::new(at(hhmm))))
    }

    fn advance_minutes(&self, minutes: i64) {
        let mut now = self.0.lock().unwrap();
        *now = now.plus_minutes(minutes);
    }
}

impl Clock for HandClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }

    fn at_millis(&self, ms: i64) -> Option<Timestamp> {
        Timestamp::from_unix_millis(ms)
    }
}

fn service(node: TestNode, clock: Arc<HandClock>) -> Service {
    Service::new(Arc::new(node.repo), clock, [7; 32])
}

fn base_with(patients: &[&str]) -> (TestNode, Vec<omsyn_core::ids::PatientId>) {
    let mut base = TestNode::base(11);
    let ids = patients.iter().map(|name| base.add_patient(name)).collect();
    (base, ids)
}

fn invalid_field(e: ServiceError) -> String {
    match e {
        ServiceError::Invalid { field, .. } => field,
        other => panic!("expected a refusal at the door, got {other}"),
    }
}

#[test]
fn a_patient_is_found_by_her_name_when_one_patient_has_it() {
    let (base, ids) = base_with(&["Turid Nilsen", "Per Hansen", "Kari Dahl", "Kari Dahl"]);
    let svc = service(base, HandClock::at("09:00"));
    assert_eq!(svc.patient("turid nilsen").unwrap(), ids[0]);
    assert_eq!(
        svc.patient(ids[1].as_str()).unwrap(),
        ids[1],
        "an id is an id"
    );
    let unknown = svc.patient("Turid Hansen").unwrap_err().to_string();
    assert!(unknown.contains("no patient"), "{unknown}");
    let twice = svc.patient("Kari Dahl").unwrap_err().to_string();
    assert!(
        twice.contains(ids[2].as_str()) && twice.contains(ids[3].as_str()),
        "an ambiguous name lists every patient it could mean: {twice}"
    );
}

#[test]
fn a_write_is_dated_by_the_injected_clock() {
    let (base, ids) = base_with(&["Turid Nilsen"]);
    let clock = HandClock::at("09:00");
    let svc = service(base, clock.clone());
    clock.advance_minutes(17);
    let entry = svc
        .add_note(NewEntry {
            patient: "Turid Nilsen".into(),
            text: "Sov godt".into(),
            ..NewEntry::default()
        })
        .unwrap();
    assert_eq!(entry.entered_at, at("09:17"));
    assert_eq!(entry.event_time, at("09:17"), "no time given means now");
    assert_eq!(svc.repo().journal(&ids[0]).unwrap().0.len(), 1);
}

#[test]
fn the_same_seed_makes_the_same_ids() {
    let note = |svc: &Service| {
        svc.add_note(NewEntry {
            patient: "Turid Nilsen".into(),
            text: "Sov godt".into(),
            ..NewEntry::default()
        })
        .unwrap()
        .id
    };
    let a = service(base_with(&["Turid Nilsen"]).0, HandClock::at("09:00"));
    let b = service(base_with(&["Turid Nilsen"]).0, HandClock::at("09:00"));
    assert_eq!(
        note(&a),
        note(&b),
        "a replay with the same seed writes the same ids"
    );
}

#[test]
fn a_measurement_no_device_could_make_is_refused_at_the_door_and_nothing_is_written() {
    let (base, ids) = base_with(&["Turid Nilsen"]);
    let svc = service(base, HandClock::at("09:00"));
    let observe = |kind: &str, value: &str| {
        svc.observe(Observation {
            patient: ids[0].to_string(),
            kind: kind.into(),
            value: value.into(),
            ..Observation::default()
        })
    };
    for (kind, value) in [
        ("spo2", "960"),
        ("blood-pressure", "88/142"),
        ("pulse", "x"),
    ] {
        let refused = observe(kind, value).unwrap_err();
        assert_eq!(invalid_field(refused), "value", "{kind} {value}");
    }
    assert!(
        svc.repo().journal(&ids[0]).unwrap().0.is_empty(),
        "nothing was written"
    );
    observe("spo2", "96").unwrap();
    observe("bowel movement", "normal").expect("a kind no rule covers is a nurse's own");
    assert_eq!(svc.repo().journal(&ids[0]).unwrap().0.len(), 2);
}

#[test]
fn a_time_in_seconds_or_days_ahead_is_refused_naming_the_field() {
    let (base, _) = base_with(&["Turid Nilsen"]);
    let svc = service(base, HandClock::at("09:00"));
    let refused = svc
        .add_note(NewEntry {
            patient: "Turid Nilsen".into(),
            text: "Sov godt".into(),
            at: When::Millis(1_795_431_600),
            ..NewEntry::default()
        })
        .unwrap_err();
    assert_eq!(invalid_field(refused), "at");
    let refused = svc
        .add_note(NewEntry {
            patient: "Turid Nilsen".into(),
            text: "Sov godt".into(),
            at: When::Text("i går".into()),
            ..NewEntry::default()
        })
        .unwrap_err();
    assert_eq!(invalid_field(refused), "at");
    let four_days_ahead = svc
        .add_note(NewEntry {
            patient: "Turid Nilsen".into(),
            text: "Sov godt".into(),
            at: When::Text("2026-11-27T09:00:00+01:00".into()),
            ..NewEntry::default()
        })
        .unwrap_err();
    assert_eq!(
        invalid_field(four_days_ahead),
        "at",
        "documentation records what has happened"
    );
    assert!(
        svc.repo()
            .journal(&svc.patient("Turid Nilsen").unwrap())
            .unwrap()
            .0
            .is_empty()
    );
}

/// How many reads of `view` this node's access log holds.
fn reads_of(repo: &Repo, view: &str) -> usize {
    repo.audit_entries(None)
        .unwrap()
        .iter()
        .filter(|e| e.action == AuditAction::Read && e.what == view)
        .count()
}

#[test]
fn a_list_view_shown_again_within_a_minute_is_logged_once_and_again_after() {
    let (base, ids) = base_with(&["Turid Nilsen"]);
    let clock = HandClock::at("09:00");
    let svc = service(base, clock.clone());
    let show = || svc.shown("board", vec![ids[0].clone()], |p| p).unwrap();
    assert_eq!(show(), vec![ids[0].clone()]);
    show();
    assert_eq!(
        reads_of(svc.repo(), "board"),
        1,
        "a refresh is not a new read"
    );
    clock.advance_minutes(1);
    show();
    assert_eq!(reads_of(svc.repo(), "board"), 2, "a minute later it is");
}

#[test]
fn status_names_for_each_peer_only_the_patients_that_peer_needs() {
    let (base, ids) = base_with(&["Turid Nilsen", "Per Hansen"]);
    let home = TestNode::home_unit(12, &ids[0]);
    let mut link = omsyn_tests::Link::open(&base.repo, &home.repo);
    let (pb, ph) = (
        base.repo.need_policy().expect("own grant"),
        home.repo.need_policy().expect("own grant"),
    );
    link.exchange((&base.repo, &pb), (&home.repo, &ph), omsyn_tests::NOW_MS);
    let svc = service(base, HandClock::at("12:00"));
    let state = svc.sync_status().unwrap();
    assert_eq!(state.patients.len(), 2, "the base may see both");
    let [peer] = state.peers.as_slice() else {
        panic!("one peer met: {:?}", state.peers)
    };
    assert_eq!(peer.id, home.repo.id());
    let named: Vec<_> = peer.patients.iter().map(|f| &f.patient).collect();
    assert_eq!(
        named,
        vec![&ids[0]],
        "the home unit needs its own patient only"
    );
    assert!(
        peer.patients[0].synced_ms.is_some(),
        "and got her documents"
    );
}

#[test]
fn a_refresh_that_shows_a_patient_the_last_logged_read_did_not_name_is_logged_again() {
    let (base, ids) = base_with(&["Turid Nilsen", "Per Hansen"]);
    let svc = service(base, HandClock::at("09:00"));
    svc.shown("open conflicts", vec![ids[0].clone()], |p| p)
        .unwrap();
    svc.shown("open conflicts", vec![ids[0].clone()], |p| p)
        .unwrap();
    assert_eq!(
        reads_of(svc.repo(), "open conflicts"),
        1,
        "the same patients: a refresh"
    );
    // The same view, within the minute, now showing a second patient (a filtered list, then
    // the whole one): a new read, logged naming her.
    svc.shown("open conflicts", ids.clone(), |p| p).unwrap();
    assert_eq!(reads_of(svc.repo(), "open conflicts"), 2);
    let last = svc.repo().audit_entries(None).unwrap();
    let named: Vec<_> = last
        .iter()
        .filter(|e| e.what == "open conflicts")
        .flat_map(|e| e.patients.clone())
        .collect();
    assert!(
        named.contains(&ids[1]),
        "the second patient is named: {named:?}"
    );
}

#[test]
fn an_app_is_told_of_a_new_conflict_through_the_need_gate_once_and_not_of_a_blocked_patients() {
    use omsyn_core::ids::StaffId;
    use omsyn_tests::sync;
    let mut base = TestNode::base(12);
    let turid = base.add_patient("Turid Nilsen");
    let med = base.add_medication(&turid, "Metformin 500 mg", "08:00");
    let repo = &base.repo;
    repo.transaction(|tx| {
        for staff in ["N1", "N2"] {
            tx.set_team_member(at("07:00"), &turid, &StaffId::parse(staff).unwrap(), true)?;
        }
        Ok::<_, omsyn_core::RepoError>(())
    })
    .unwrap();
    let (mut kari, mut per) = (TestNode::nurse(13, "N1"), TestNode::nurse(14, "N2"));
    for nurse in [&mut kari, &mut per] {
        sync(&base.repo, &nurse.repo);
        let t = at("08:10");
        (nurse.repo)
            .record_dose(t, &mut nurse.rng, &turid, &med, "08:00", t, None, None)
            .unwrap();
    }
    sync(&per.repo, &kari.repo);
    let kari = service(kari, HandClock::at("09:00"));
    let mut told = std::collections::BTreeSet::new();
    let first = kari.conflicts_to_tell(None, &mut told).unwrap();
    assert_eq!(first.len(), 1, "the dose given twice");
    assert_eq!(first[0].patient_name.as_deref(), Some("Turid Nilsen"));
    assert_eq!(
        reads_of(kari.repo(), "conflict alerts"),
        1,
        "told is logged"
    );
    assert!(kari.conflicts_to_tell(None, &mut told).unwrap().is_empty());
    // Turid blocks Kari (sperring); her phone holds the block, not yet purged: no alert shows
    // Turid's conflict, however new to the app.
    base.repo
        .transaction(|tx| {
            tx.block_staff(
                at("09:10"),
                &mut base.rng,
                &turid,
                &StaffId::parse("N1").unwrap(),
            )
        })
        .unwrap();
    omsyn_tests::push(&base.repo, kari.repo());
    let mut fresh_app = std::collections::BTreeSet::new();
    assert!(
        kari.conflicts_to_tell(None, &mut fresh_app)
            .unwrap()
            .is_empty()
    );
    assert!(
        fresh_app.is_empty(),
        "what was kept back is not marked told"
    );
    // Nor is it logged as a refused read: the app asked, not the nurse.
    let log = kari.repo().audit_entries(None).unwrap();
    assert!(
        !log.iter()
            .any(|e| e.action == AuditAction::Refused && e.what == "conflict alerts"),
        "{log:?}"
    );
    assert!(
        !kari.repo().conflicts(None).unwrap().is_empty(),
        "still held"
    );
}

#[test]
fn a_staff_member_whose_file_write_failed_is_written_when_asked_again() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let profile = TestNode::base(15).repo.profile().clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(15);
    let repo = Repo::init(dir.path(), profile, None, &mut rng).unwrap();
    let svc = Service::new(Arc::new(repo), HandClock::at("09:00"), [7; 32]);
    // The file cannot be written (a directory stands where its partial copy goes).
    let blocker = dir.path().join("staff.json.partial");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("x"), b"x").unwrap();
    assert!(
        svc.add_staff("S00042", "Kari Nordmann", None, None)
            .is_err()
    );
    std::fs::remove_dir_all(&blocker).unwrap();
    svc.add_staff("S00042", "Kari Nordmann", None, None)
        .unwrap();
    let written = std::fs::read_to_string(dir.path().join("staff.json")).unwrap();
    assert!(written.contains("Kari Nordmann"), "{written}");
}

#[test]
fn a_note_is_written_while_another_front_ends_long_request_is_under_way() {
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let (base, _) = base_with(&["Turid Nilsen"]);
    let svc = Arc::new(service(base, HandClock::at("09:00")));
    let (started, is_started) = channel();
    let (release, released) = channel::<()>();
    let long = {
        let svc = svc.clone();
        std::thread::spawn(move || {
            // A request that takes its time inside the service (a day's plan being checked).
            svc.act(|_, _, _| {
                started.send(()).unwrap();
                released.recv_timeout(Duration::from_secs(30))
            })
        })
    };
    is_started.recv_timeout(Duration::from_secs(30)).unwrap();
    let (done, is_done) = channel();
    let note = {
        let svc = svc.clone();
        std::thread::spawn(move || {
            let entry = svc.add_note(NewEntry {
                patient: "Turid Nilsen".into(),
                text: "Skrevet mens planen sjekkes".into(),
                ..NewEntry::default()
            });
            done.send(entry.is_ok()).unwrap();
        })
    };
    let written = is_done.recv_timeout(Duration::from_secs(10));
    release.send(()).unwrap();
    assert_eq!(written, Ok(true), "the note waited for the other request");
    long.join().unwrap().unwrap();
    note.join().unwrap();
}

#[test]
fn two_coordinators_adding_one_nurse_at_once_make_one_addition_and_one_refusal() {
    //! The care team is checked under the write's lock: were it read before, both would see
    //! her missing and both add her. Each round starts both requests together; a removal
    //! follows each addition the same way.
    use std::sync::Barrier;
    let (base, ids) = base_with(&["Turid Nilsen"]);
    let svc = Arc::new(service(base, HandClock::at("09:00")));
    svc.add_staff("N2", "Nina Berg", Some("sykepleier"), None)
        .unwrap();
    let patient = ids[0].to_string();
    for round in 0..40 {
        let join = round % 2 == 0;
        let start = Arc::new(Barrier::new(2));
        let coordinators: Vec<_> = (0..2)
            .map(|_| {
                let (svc, start, patient) = (svc.clone(), start.clone(), patient.clone());
                std::thread::spawn(move || {
                    start.wait();
                    svc.set_team_member(&patient, "N2", join)
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        let results: Vec<Result<_, String>> = coordinators
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect();
        let refused: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        let said = if join { "already on" } else { "not on" };
        assert!(
            refused.len() == 1 && refused[0].contains(said),
            "round {round}: {results:?}"
        );
        let record = omsyn_core::DocumentId::PatientRecord(ids[0].clone());
        let facts = (svc.repo().store())
            .with_doc(&record, omsyn_core::docs::access_facts::read)
            .unwrap()
            .unwrap();
        let on_team = facts.team.iter().filter(|m| m.active).count();
        assert_eq!(on_team, usize::from(join), "round {round}: {facts:?}");
    }
}

#[test]
fn what_a_dose_written_says_back_names_the_medication_only_to_a_user_who_may_see_the_patient() {
    //! A write without a known need is kept (and flagged); what it says back is a read, so
    //! it names the medication only through the gate.
    use omsyn_core::ids::StaffId;
    use omsyn_core::service::Dose;
    let mut base = TestNode::base(15);
    let turid = base.add_patient("Turid Nilsen");
    let med = base.add_medication(&turid, "Metformin 500 mg", "08:00");
    let n1 = StaffId::parse("N1").unwrap();
    (base.repo)
        .transaction(|tx| tx.set_team_member(at("07:00"), &turid, &n1, true))
        .unwrap();
    let (kari, per) = (TestNode::nurse(16, "N1"), TestNode::nurse(17, "N2"));
    for (nurse, may_see) in [(kari, true), (per, false)] {
        omsyn_tests::push(&base.repo, &nurse.repo);
        let svc = service(nurse, HandClock::at("09:00"));
        let entry = svc
            .record_dose(Dose {
                patient: turid.to_string(),
                medication: med.to_string(),
                slot: "08:00".into(),
                ..Dose::default()
            })
            .unwrap();
        let said = svc.describe_written(Some(turid.as_str()), &entry.body);
        assert_eq!(
            said.contains("GIVEN Metformin 500 mg 08:00 on "),
            may_see,
            "{said}"
        );
        assert_eq!(said.contains(med.as_str()), !may_see, "{said}");
    }
}
