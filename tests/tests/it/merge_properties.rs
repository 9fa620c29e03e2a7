//! Property: random concurrent edits on three replicas (a base and two nurses), exchanged in
//! random partial merges and finally merged in a random order, always give identical documents and
//! identical conflict lists, and no journal entry is ever lost or altered.
//!
//! `PROPTEST_CASES=2000 cargo test -p omsyn-tests merge_properties` runs a wider sweep; a failure
//! prints a minimal op sequence that replays it.

use std::collections::BTreeMap;

use omsyn_core::conflict::ConflictKind;
use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::docs::journal::{Entry, MissedReason};
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{EntryId, MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::repo::Correction;
use omsyn_core::report::{day_report, day_report_from_documents};
use omsyn_core::{Day, Repo, Timestamp};
use omsyn_tests::{TestNode, push, snapshot};
use proptest::prelude::*;

const NODES: usize = 3;
const VISITS: usize = 3;
const FIELDS: [PatientField; 3] = [
    PatientField::Phone,
    PatientField::AccessNote,
    PatientField::Address,
];
const SLOTS: [&str; 2] = ["08:00", "20:00"];
const STAFF: [&str; 3] = ["N1", "N2", "N3"];

#[derive(Debug, Clone)]
enum Op {
    SetField {
        node: usize,
        field: usize,
        value: u8,
    },
    Note {
        node: usize,
    },
    Dose {
        node: usize,
        slot: usize,
        given: bool,
    },
    Performed {
        node: usize,
        visit: usize,
    },
    Missed {
        node: usize,
        visit: usize,
    },
    Cancel {
        visit: usize,
    },
    Reassign {
        visit: usize,
        staff: usize,
    },
    /// To `hour` o'clock (from 24: on the next day).
    Reschedule {
        visit: usize,
        hour: u32,
    },
    /// A nurse notes a deviation (avvik) in the day log.
    Deviation {
        nurse: usize,
    },
    Push {
        from: usize,
        to: usize,
    },
    Resolve {
        node: usize,
        pick: usize,
    },
    EnteredInError {
        node: usize,
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES;
    prop_oneof![
        (node.clone(), 0..FIELDS.len(), any::<u8>())
            .prop_map(|(node, field, value)| Op::SetField { node, field, value }),
        node.clone().prop_map(|node| Op::Note { node }),
        (node.clone(), 0..SLOTS.len(), any::<bool>()).prop_map(|(node, slot, given)| Op::Dose {
            node,
            slot,
            given
        }),
        (node.clone(), 0..VISITS).prop_map(|(node, visit)| Op::Performed { node, visit }),
        (node.clone(), 0..VISITS).prop_map(|(node, visit)| Op::Missed { node, visit }),
        (0..VISITS).prop_map(|visit| Op::Cancel { visit }),
        (0..VISITS, 0..STAFF.len()).prop_map(|(visit, staff)| Op::Reassign { visit, staff }),
        (0..VISITS, 10u32..34).prop_map(|(visit, hour)| Op::Reschedule { visit, hour }),
        (1..NODES).prop_map(|nurse| Op::Deviation { nurse }),
        (node.clone(), 0..NODES).prop_map(|(from, to)| Op::Push { from, to }),
        (node.clone(), any::<usize>()).prop_map(|(node, pick)| Op::Resolve { node, pick }),
        (node, any::<usize>()).prop_map(|(node, pick)| Op::EnteredInError { node, pick }),
    ]
}

struct World {
    nodes: Vec<TestNode>,
    patient: PatientId,
    med: MedicationId,
    visits: Vec<VisitId>,
    /// Every entry any replica ever wrote, as written.
    written: BTreeMap<EntryId, Entry>,
    clock: u32,
}

/// `n` minutes after 07:00 on Monday 23 November 2026.
fn minute(n: u32) -> Timestamp {
    Timestamp::parse("2026-11-23T07:00:00+01:00")
        .expect("valid test time")
        .plus_minutes(i64::from(n))
}

impl World {
    fn new() -> World {
        let mut nodes = vec![
            TestNode::base(10),
            TestNode::nurse(11, "N1"),
            TestNode::nurse(12, "N2"),
        ];
        let t = minute(0);
        let base = &mut nodes[0];
        let patient = base
            .repo
            .add_patient(
                t,
                &mut base.rng,
                &[(PatientField::Name, "Egil Haugen".into())],
            )
            .unwrap();
        let med = base
            .repo
            .add_medication(
                t,
                &mut base.rng,
                &patient,
                "Paracet 500 mg",
                "2 tabletter",
                &SLOTS.map(String::from),
            )
            .unwrap();
        let visits = (0..VISITS)
            .map(|i| {
                base.repo
                    .plan_visit(
                        t,
                        &mut base.rng,
                        &NewVisit {
                            patient: patient.clone(),
                            start: minute(60 + 60 * i as u32),
                            end: minute(90 + 60 * i as u32),
                            kind: if i == 0 {
                                VisitKind::Digital
                            } else {
                                VisitKind::Physical
                            },
                            tiltak: vec![],
                            staff: vec![StaffId::parse(STAFF[i % STAFF.len()]).unwrap()],
                        },
                    )
                    .unwrap()
            })
            .collect();
        for i in 1..NODES {
            push(&nodes[0].repo, &nodes[i].repo);
        }
        World {
            nodes,
            patient,
            med,
            visits,
            written: BTreeMap::new(),
            clock: 1,
        }
    }

    fn apply(&mut self, op: &Op) {
        self.clock += 1;
        let now = minute(self.clock);
        let (patient, med) = (self.patient.clone(), self.med.clone());
        let written = &mut self.written;
        let mut keep = |r: Result<Entry, omsyn_core::RepoError>| {
            // Rejections (a correction of an entry this replica has not seen) are fine; what was
            // accepted must survive every merge.
            if let Ok(e) = r {
                written.insert(e.id.clone(), e);
            }
        };
        match *op {
            Op::SetField { node, field, value } => {
                let n = &self.nodes[node];
                n.repo
                    .set_patient_field(now, &patient, FIELDS[field], &format!("value {value}"))
                    .unwrap();
            }
            Op::Note { node } => {
                let n = &mut self.nodes[node];
                keep(
                    n.repo
                        .add_note(now, &mut n.rng, &patient, None, now, "observed, all well"),
                );
            }
            Op::Dose { node, slot, given } => {
                let n = &mut self.nodes[node];
                let reason = (!given).then(|| "refused".to_string());
                keep(n.repo.record_dose(
                    now,
                    &mut n.rng,
                    &patient,
                    &med,
                    SLOTS[slot],
                    now,
                    None,
                    reason,
                ));
            }
            Op::Performed { node, visit } => {
                let n = &mut self.nodes[node];
                keep(
                    n.repo
                        .visit_performed(now, &mut n.rng, &self.visits[visit], now, None, None),
                );
            }
            Op::Missed { node, visit } => {
                let n = &mut self.nodes[node];
                keep(n.repo.visit_missed(
                    now,
                    &mut n.rng,
                    &self.visits[visit],
                    MissedReason::NotHome,
                    None,
                    now,
                ));
            }
            Op::Cancel { visit } => {
                let n = &mut self.nodes[0];
                n.repo
                    .change_visit(
                        now,
                        &mut n.rng,
                        &self.visits[visit],
                        &VisitChange::Cancel("hospital".into()),
                    )
                    .unwrap();
            }
            Op::Reassign { visit, staff } => {
                let n = &mut self.nodes[0];
                let staff = vec![StaffId::parse(STAFF[staff]).unwrap()];
                n.repo
                    .change_visit(
                        now,
                        &mut n.rng,
                        &self.visits[visit],
                        &VisitChange::Assign(staff),
                    )
                    .unwrap();
            }
            Op::Reschedule { visit, hour } => {
                let n = &mut self.nodes[0];
                let start = minute((hour - 7) * 60);
                let end = minute((hour - 7) * 60 + 30);
                n.repo
                    .change_visit(
                        now,
                        &mut n.rng,
                        &self.visits[visit],
                        &VisitChange::Reschedule { start, end },
                    )
                    .unwrap();
            }
            Op::Deviation { nurse } => {
                let n = &mut self.nodes[nurse];
                let body = DayLogBody::Deviation {
                    text: format!("avvik {now}"),
                };
                n.repo
                    .transaction(|tx| tx.day_log(now, &mut n.rng, now, body))
                    .unwrap();
            }
            Op::Push { from, to } => {
                if from != to {
                    push(&self.nodes[from].repo, &self.nodes[to].repo);
                }
            }
            Op::Resolve { node, pick } => {
                let n = &mut self.nodes[node];
                let open = n.repo.conflicts(None).unwrap();
                if let Some(c) = open.get(pick % open.len().max(1)) {
                    let value = match &c.kind {
                        ConflictKind::ConcurrentFieldEdit { values, .. } => values.first().cloned(),
                        _ => None,
                    };
                    let resolution = n
                        .repo
                        .resolve_conflict(now, &mut n.rng, &c.id, "reviewed", value.as_deref())
                        .unwrap();
                    if let Some(entry) = resolution {
                        written.insert(entry.id.clone(), entry);
                    }
                }
            }
            Op::EnteredInError { node, pick } => {
                let n = &mut self.nodes[node];
                let (journal, _) = n.repo.journal(&patient).unwrap();
                if let Some(target) = journal.get(pick % journal.len().max(1)) {
                    keep(n.repo.correct_entry(
                        now,
                        &mut n.rng,
                        &patient,
                        &target.id,
                        Correction::EnteredInError("wrong slot".into()),
                    ));
                }
            }
        }
    }
}

/// The day report read from the day index equals the one derived from the documents, on both
/// days the visits can fall on.
fn assert_index_matches_documents(repo: &Repo) -> Result<(), TestCaseError> {
    for day in ["2026-11-23", "2026-11-24"] {
        let day = Day::parse(day).unwrap();
        let indexed = day_report(repo, day, None, &mut omsyn_tests::gate(repo)).unwrap();
        let derived =
            day_report_from_documents(repo, day, None, &mut omsyn_tests::gate(repo)).unwrap();
        prop_assert_eq!(indexed, derived, "day {}", day);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_to_identical_documents_and_conflicts_in_any_merge_order(
        ops in prop::collection::vec(op(), 1..40),
        order in Just((0..NODES).flat_map(|a| (0..NODES).map(move |b| (a, b))).filter(|(a, b)| a != b).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
            // Every replica's day index agrees with its documents after every step.
            if let Op::Push { to, .. } = op {
                assert_index_matches_documents(&world.nodes[*to].repo)?;
            }
        }
        // Final heal: every directed pair once, in a random order, twice over.
        for _ in 0..2 {
            for &(from, to) in &order {
                push(&world.nodes[from].repo, &world.nodes[to].repo);
            }
        }
        let reference = &world.nodes[0].repo;
        let docs = snapshot(reference);
        let conflicts = reference.conflicts(None).unwrap();
        let view = serde_json::to_value(reference.patient_view(&world.patient).unwrap()).unwrap();
        for node in &world.nodes[1..] {
            prop_assert_eq!(&snapshot(&node.repo), &docs);
            prop_assert_eq!(&node.repo.conflicts(None).unwrap(), &conflicts);
            let other = serde_json::to_value(node.repo.patient_view(&world.patient).unwrap()).unwrap();
            prop_assert_eq!(&other, &view);
        }
        for node in &world.nodes {
            assert_index_matches_documents(&node.repo)?;
            let (journal, unreadable) = node.repo.journal(&world.patient).unwrap();
            prop_assert!(unreadable.is_empty());
            let held: BTreeMap<&EntryId, &Entry> = journal.iter().map(|e| (&e.id, e)).collect();
            prop_assert_eq!(held.len(), world.written.len(), "no entry lost, none invented");
            for (id, original) in &world.written {
                prop_assert_eq!(held.get(id).copied(), Some(original), "entry {} altered or lost", id);
            }
        }
    }
}
