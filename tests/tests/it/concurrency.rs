//! Issue #12: eight `note add` commands forwarded to one daemon at once corrupted the patient's
//! journal. Two writers built change number N of the node's actor on the same document state (a
//! reader had put an older version into the document cache between one writer's commit and its
//! putting the new version back), both committed, and Automerge refused the whole document.
//!
//! Here many threads write to the same patient's documents at once — journal entries,
//! observations, messages, record fields, the visit plan — while other threads read them and a
//! live sync session applies a nurse's changes to the same journal. Afterwards every acknowledged
//! write is present on both nodes, every stored document decodes from disk, and both nodes hold
//! the same documents. `OMSYN_STRESS_ITERATIONS` (default 8) sets how many times it runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use omsyn_core::docs::messages::Recipient;
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{EntryId, PatientId, StaffId, VisitId};
use omsyn_core::sync::ShareAll;
use omsyn_core::{Repo, Timestamp};
use omsyn_tests::{Link, TestNode, at, snapshot};
use rand::SeedableRng;
use rand::rngs::StdRng;

const WRITERS: usize = 6;
const WRITES_PER_WRITER: usize = 12;

fn iterations() -> u64 {
    std::env::var("OMSYN_STRESS_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[test]
fn concurrent_writers_readers_and_a_live_session_lose_nothing_and_keep_documents_valid() {
    for iteration in 0..iterations() {
        run_once(iteration);
    }
}

/// What the writers were told was stored.
#[derive(Default)]
struct Acknowledged {
    entries: Vec<EntryId>,
    messages: Vec<EntryId>,
}

fn run_once(iteration: u64) {
    let mut base = TestNode::base(1000 + iteration);
    let nurse = TestNode::nurse(2000 + iteration, "N1");
    let patient = base.add_patient("Turid Nilsen");
    let visit = base
        .repo
        .plan_visit(
            at("07:00"),
            &mut base.rng,
            &NewVisit {
                patient: patient.clone(),
                start: at("09:00"),
                end: at("09:30"),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![StaffId::parse("N1").unwrap()],
            },
        )
        .unwrap();
    let mut link = Link::open(&base.repo, &nurse.repo);
    link.pump(&base.repo, &nurse.repo, &ShareAll);

    let base = Arc::new(base.repo);
    let nurse_repo = Arc::new(nurse.repo);
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for writer in 0..WRITERS {
        let (base, patient, visit, acked) = (
            Arc::clone(&base),
            patient.clone(),
            visit.clone(),
            Arc::clone(&acked),
        );
        threads.push(thread::spawn(move || {
            write_a_lot(&base, &patient, &visit, writer, iteration, &acked)
        }));
    }
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (base, patient, stop) = (Arc::clone(&base), patient.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    base.patient_view(&patient).unwrap();
                }
            })
        })
        .collect();
    let session = {
        let (base, nurse, patient, acked, stop) = (
            Arc::clone(&base),
            Arc::clone(&nurse_repo),
            patient.clone(),
            Arc::clone(&acked),
            Arc::clone(&stop),
        );
        // A seed no writer uses: two generators with one seed make the same entry ids, and the
        // second entry under an id already held is refused (rightly: entries are written once).
        let mut rng = StdRng::seed_from_u64(iteration * 100 + 99);
        thread::spawn(move || {
            // The nurse documents in the same journal while the session carries her changes
            // into the base, concurrently with the base's own writers.
            while !stop.load(Ordering::Relaxed) {
                let entry = nurse
                    .add_note(
                        at("10:00"),
                        &mut rng,
                        &patient,
                        None,
                        at("09:45"),
                        "fra sykepleier",
                    )
                    .unwrap();
                acked.lock().unwrap().entries.push(entry.id);
                link.pump(&base, &nurse, &ShareAll);
            }
            link
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for t in readers {
        t.join().unwrap();
    }
    let mut link = session.join().unwrap();
    link.pump(&base, &nurse_repo, &ShareAll);

    let acked = acked.lock().unwrap();
    for (name, repo) in [("base", &*base), ("nurse", &*nurse_repo)] {
        let damaged = repo.damaged_documents().unwrap();
        assert!(
            damaged.is_empty(),
            "iteration {iteration}: {name}: {damaged:?}"
        );
        let view = repo.patient_view(&patient).unwrap();
        for id in &acked.entries {
            assert!(
                view.journal.iter().any(|e| &e.id == id),
                "iteration {iteration}: {name} lost acknowledged entry {id}"
            );
        }
        for id in &acked.messages {
            assert!(
                view.messages.iter().any(|m| &m.id == id),
                "iteration {iteration}: {name} lost acknowledged message {id}"
            );
        }
    }
    assert_eq!(
        snapshot(&base),
        snapshot(&nurse_repo),
        "iteration {iteration}"
    );
}

/// One writer: notes, observations, messages, record fields and visit moves, in turn, each its
/// own durable transaction.
fn write_a_lot(
    repo: &Repo,
    patient: &PatientId,
    visit: &VisitId,
    writer: usize,
    iteration: u64,
    acked: &Mutex<Acknowledged>,
) {
    let mut rng = StdRng::seed_from_u64(iteration * 100 + writer as u64);
    let t = at("09:10");
    for i in 0..WRITES_PER_WRITER {
        match (writer + i) % 5 {
            0 => {
                let e = repo
                    .add_note(
                        t,
                        &mut rng,
                        patient,
                        None,
                        t,
                        &format!("notat {writer}-{i}"),
                    )
                    .unwrap();
                acked.lock().unwrap().entries.push(e.id);
            }
            1 => {
                let e = repo
                    .observe(t, &mut rng, patient, None, t, "pulse", "72", None)
                    .unwrap();
                acked.lock().unwrap().entries.push(e.id);
            }
            2 => {
                let m = repo
                    .send_message(
                        t,
                        &mut rng,
                        patient,
                        Recipient::CareTeam,
                        "hei",
                        None,
                        vec![],
                    )
                    .unwrap();
                acked.lock().unwrap().messages.push(m.id);
            }
            3 => repo
                .set_patient_field(t, patient, PatientField::Phone, &format!("900{writer}{i}"))
                .unwrap(),
            _ => {
                let minute = 10 + (writer + i) % 40;
                let start =
                    Timestamp::parse(&format!("2026-11-23T09:{minute:02}:00+01:00")).unwrap();
                let end = Timestamp::parse(&format!("2026-11-23T10:{minute:02}:00+01:00")).unwrap();
                repo.change_visit(t, &mut rng, visit, &VisitChange::Reschedule { start, end })
                    .unwrap();
            }
        }
    }
}
