//! Transactions are all or nothing, and see their own writes.

use omsyn_core::RepoError;
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_tests::{TestNode, at, snapshot};

#[test]
fn a_transaction_that_fails_midway_writes_nothing() {
    let mut base = TestNode::base(21);
    let before = snapshot(&base.repo);
    let rng = &mut base.rng;
    let result = base.repo.transaction(|tx| {
        let patient =
            tx.add_patient(at("07:00"), rng, &[(PatientField::Name, "Aud Moen".into())])?;
        tx.add_note(
            at("07:01"),
            rng,
            &patient,
            None,
            at("07:01"),
            "written, then rolled back",
        )?;
        // Invalid: the window ends before it starts. The whole transaction must be discarded.
        tx.plan_visit(
            at("07:02"),
            rng,
            &NewVisit {
                patient,
                start: at("09:00"),
                end: at("08:00"),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![],
            },
        )
    });
    assert!(matches!(result, Err(RepoError::Doc(_))), "{result:?}");
    assert_eq!(snapshot(&base.repo), before);
    assert!(base.repo.patients().unwrap().is_empty());
}

#[test]
fn a_transaction_can_register_plan_and_document_in_one_step() {
    let mut base = TestNode::base(22);
    let rng = &mut base.rng;
    let (patient, visit) = base
        .repo
        .transaction(|tx| {
            let patient =
                tx.add_patient(at("07:00"), rng, &[(PatientField::Name, "Liv Dahl".into())])?;
            let visit = tx.plan_visit(
                at("07:00"),
                rng,
                &NewVisit {
                    patient: patient.clone(),
                    start: at("08:00"),
                    end: at("08:20"),
                    kind: VisitKind::Digital,
                    tiltak: vec![],
                    staff: vec![],
                },
            )?;
            tx.visit_performed(at("08:05"), rng, &visit, at("08:01"), None, None)?;
            Ok::<_, RepoError>((patient, visit))
        })
        .unwrap();
    let view = base.repo.patient_view(&patient).unwrap();
    assert_eq!(view.visits[0].id, visit);
    assert_eq!(view.journal.len(), 1);
    assert_eq!(
        base.repo.visit(&visit).unwrap().1.id,
        visit,
        "indexed on commit"
    );
}

#[test]
fn a_note_and_a_second_dose_in_one_transaction_still_open_the_dose_conflict() {
    use omsyn_core::conflict::ConflictKind;
    let mut base = TestNode::base(23);
    let mut nurse = TestNode::nurse(25, "N1");
    let t = at("08:00");
    let patient = base
        .repo
        .add_patient(
            t,
            &mut base.rng,
            &[(PatientField::Name, "Knut Berg".into())],
        )
        .unwrap();
    let med = base
        .repo
        .add_medication(
            t,
            &mut base.rng,
            &patient,
            "Albyl-E",
            "75 mg",
            &["08:00".into()],
        )
        .unwrap();
    omsyn_tests::push(&base.repo, &nurse.repo);
    let rng = &mut nurse.rng;
    nurse
        .repo
        .record_dose(t, rng, &patient, &med, "08:00", t, None, None)
        .unwrap();
    // The note comes first in the batch: the conflict-neutral fast path must not survive the dose.
    nurse
        .repo
        .transaction(|tx| {
            tx.add_note(t, rng, &patient, None, t, "ga morgendosen")?;
            tx.record_dose(t, rng, &patient, &med, "08:00", t, None, None)
        })
        .unwrap();
    let conflicts = nurse.repo.conflicts(None).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert!(matches!(
        conflicts[0].kind,
        ConflictKind::DoseGivenTwice { .. }
    ));
}

#[test]
fn a_document_written_many_times_is_compacted_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(24);
    let profile = TestNode::base(24).repo.profile().clone();
    let patient = {
        let repo = omsyn_core::Repo::init(dir.path(), profile, None, &mut rng).unwrap();
        let patient = repo
            .add_patient(
                at("07:00"),
                &mut rng,
                &[(PatientField::Name, "Gerd Moen".into())],
            )
            .unwrap();
        for i in 0..150 {
            repo.add_note(
                at("08:00"),
                &mut rng,
                &patient,
                None,
                at("08:00"),
                &format!("note {i}"),
            )
            .unwrap();
        }
        let stats = repo.store().stats().unwrap();
        // One chunk per write would be 151; compaction folds them into snapshots.
        assert!(stats.chunks < 100, "{stats:?}");
        patient
    };
    let repo = omsyn_core::Repo::open(dir.path(), None, &mut rng).unwrap();
    let (journal, _) = repo.journal(&patient).unwrap();
    assert_eq!(journal.len(), 150);
}

#[test]
fn a_commit_of_several_documents_logs_each_once_at_consecutive_positions() {
    let mut base = TestNode::base(23);
    let rng = &mut base.rng;
    let t = at("07:00");
    let a = base
        .repo
        .add_patient(t, rng, &[(PatientField::Name, "Aud Moen".into())])
        .unwrap();
    let b = base
        .repo
        .add_patient(t, rng, &[(PatientField::Name, "Liv Dahl".into())])
        .unwrap();
    let store = base.repo.store();
    let before = store.seq().unwrap();
    base.repo
        .transaction(|tx| {
            tx.add_note(t, rng, &a, None, t, "første")?;
            tx.add_note(t, rng, &b, None, t, "andre")?;
            tx.set_patient_field(t, &a, PatientField::Name, "Aud Moen Dahl")
        })
        .unwrap();
    let logged = store.log_since(before).unwrap();
    let positions: Vec<u64> = logged.changed.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(positions, vec![before + 1, before + 2, before + 3]);
    assert_eq!(logged.position, before + 3);
    assert_eq!(store.seq().unwrap(), before + 3);
    let mut docs: Vec<String> = logged.changed.iter().map(|(_, d)| d.to_string()).collect();
    docs.sort();
    docs.dedup();
    assert_eq!(docs.len(), 3, "each document once: {docs:?}");

    // One of them changed again moves to the next position and leaves its old one.
    let journal_a = logged
        .changed
        .iter()
        .map(|(_, d)| d.clone())
        .find(|d| d.to_string().starts_with(&format!("journal/{a}")))
        .unwrap();
    base.repo
        .add_note(t, &mut base.rng, &a, None, t, "tredje")
        .unwrap();
    let store = base.repo.store();
    assert_eq!(
        store.log_since(before + 3).unwrap().changed,
        vec![(before + 4, journal_a.clone())]
    );
    let everything = store.log_since(0).unwrap().changed;
    assert_eq!(
        everything.iter().filter(|(_, d)| *d == journal_a).count(),
        1
    );
    assert_eq!(everything.last(), Some(&(before + 4, journal_a)));
}

/// Documents the cache lets go of after a write reach the store's disposer, which drops them
/// off the write's path (the node gives it a thread); clearing the cache hands over the rest.
#[test]
fn documents_the_cache_lets_go_of_are_handed_to_the_disposer() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let mut base = TestNode::base(22);
    let handed = Arc::new(AtomicUsize::new(0));
    let held_elsewhere = Arc::new(Mutex::new(Vec::new()));
    let (count, keep) = (handed.clone(), held_elsewhere.clone());
    base.repo.store().set_disposer(Box::new(move |evicted| {
        count.fetch_add(evicted.len(), Ordering::SeqCst);
        keep.lock().unwrap().extend(evicted);
    }));
    let patients = omsyn_core::store::CACHE_DOCUMENTS + 20;
    for i in 0..patients {
        base.add_patient(&format!("Pasient {i}"));
    }
    let after_writes = handed.load(Ordering::SeqCst);
    assert!(
        after_writes >= 20,
        "{after_writes} documents handed over after {patients} patients written"
    );
    // The disposer, not the cache, holds the last reference to what it was given.
    assert!(
        held_elsewhere
            .lock()
            .unwrap()
            .iter()
            .all(|doc| Arc::strong_count(doc) == 1)
    );
    base.repo.store().clear_cache();
    assert!(handed.load(Ordering::SeqCst) > after_writes);
}
