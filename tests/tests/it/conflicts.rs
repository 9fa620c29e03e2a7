//! One test per safety-conflict kind, through the public API, with real merges between replicas.

use omsyn_core::RepoError;
use omsyn_core::conflict::{Conflict, ConflictKind};
use omsyn_core::docs::journal::Entry;
use omsyn_core::docs::journal::MissedReason;
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::repo::Correction;
use omsyn_core::sync::ShareAll;
use omsyn_tests::{Link, TestNode, at, push, sync};

/// A base, two nurses (N1, N2), one patient with a medication at 08:00 and a visit 08:00-08:30
/// assigned to N1, everything synced to everyone.
struct Zone {
    base: TestNode,
    n1: TestNode,
    n2: TestNode,
    patient: PatientId,
    med: MedicationId,
    visit: VisitId,
}

fn zone() -> Zone {
    let mut base = TestNode::base(1);
    let n1 = TestNode::nurse(2, "N1");
    let n2 = TestNode::nurse(3, "N2");
    let t = at("07:00");
    let patient = base
        .repo
        .add_patient(
            t,
            &mut base.rng,
            &[(PatientField::Name, "Turid Nilsen".into())],
        )
        .unwrap();
    let med = base
        .repo
        .add_medication(
            t,
            &mut base.rng,
            &patient,
            "Metformin 500 mg",
            "1 tablett",
            &["08:00".into()],
        )
        .unwrap();
    let visit = base
        .repo
        .plan_visit(
            t,
            &mut base.rng,
            &NewVisit {
                patient: patient.clone(),
                start: at("08:00"),
                end: at("08:30"),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![StaffId::parse("N1").unwrap()],
            },
        )
        .unwrap();
    push(&base.repo, &n1.repo);
    push(&base.repo, &n2.repo);
    Zone {
        base,
        n1,
        n2,
        patient,
        med,
        visit,
    }
}

/// The base changes the zone's visit at 07:30.
fn base_changes_the_visit(z: &mut Zone, change: &VisitChange) {
    z.base
        .repo
        .change_visit(at("07:30"), &mut z.base.rng, &z.visit, change)
        .unwrap();
}

/// `node` records the 08:00 dose as given at `hhmm`, or as not given with `refused`.
fn dose(
    node: &mut TestNode,
    patient: &PatientId,
    med: &MedicationId,
    hhmm: &str,
    refused: Option<&str>,
) -> Result<Entry, RepoError> {
    let t = at(hhmm);
    let reason = refused.map(str::to_owned);
    node.repo
        .record_dose(t, &mut node.rng, patient, med, "08:00", t, None, reason)
}

/// `node` documents `visit` as performed, arriving at `hhmm`.
fn performed(node: &mut TestNode, visit: &VisitId, hhmm: &str) -> Result<Entry, RepoError> {
    let t = at(hhmm);
    node.repo
        .visit_performed(t, &mut node.rng, visit, t, None, None)
}

fn merge_all(z: &Zone) {
    sync(&z.n1.repo, &z.base.repo);
    sync(&z.n2.repo, &z.base.repo);
    sync(&z.n1.repo, &z.base.repo);
}

fn only_conflict(z: &Zone) -> Conflict {
    let all = z.base.repo.conflicts(None).unwrap();
    assert_eq!(all.len(), 1, "expected exactly one conflict, got {all:#?}");
    for node in [&z.n1, &z.n2] {
        assert_eq!(
            node.repo.conflicts(None).unwrap(),
            all,
            "replicas derive the same conflicts"
        );
    }
    all.into_iter().next().unwrap()
}

#[test]
fn dose_given_by_two_nurses_offline_is_a_high_severity_conflict() {
    let mut z = zone();
    dose(&mut z.n1, &z.patient, &z.med, "08:10", None).unwrap();
    dose(&mut z.n2, &z.patient, &z.med, "08:20", None).unwrap();
    assert!(
        z.n1.repo.conflicts(None).unwrap().is_empty(),
        "no conflict before the merge"
    );
    merge_all(&z);
    let c = only_conflict(&z);
    assert!(matches!(c.kind, ConflictKind::DoseGivenTwice { .. }));
    assert_eq!(c.severity, omsyn_core::conflict::Severity::High);
    assert_eq!(
        c.entries.len(),
        2,
        "both administrations are kept and named"
    );
}

#[test]
fn a_dose_conflict_read_for_people_names_the_patient_the_medication_and_the_nurses() {
    let mut z = zone();
    dose(&mut z.n1, &z.patient, &z.med, "08:10", None).unwrap();
    dose(&mut z.n2, &z.patient, &z.med, "08:20", None).unwrap();
    merge_all(&z);
    let [c] = &z.base.repo.named_conflicts(None).unwrap()[..] else {
        panic!("one conflict expected");
    };
    assert_eq!(c.patient_name.as_deref(), Some("Turid Nilsen"));
    assert_eq!(c.medication_name.as_deref(), Some("Metformin 500 mg"));
    // The ids stay beside the names, for machines.
    let mut by: Vec<_> = c.by.iter().zip(&c.by_names).collect();
    by.sort();
    assert_eq!(
        by,
        [
            (&"N1".to_owned(), &"Nurse N1".to_owned()),
            (&"N2".to_owned(), &"Nurse N2".to_owned())
        ]
    );
    assert!(
        c.summary.starts_with("Metformin 500 mg at 08:00 on ")
            && c.summary.contains("recorded as given 2 times")
            && c.summary.contains("Nurse N1")
            && c.summary.contains("Nurse N2"),
        "{}",
        c.summary
    );
    assert!(!c.summary.contains(z.med.as_str()), "{}", c.summary);
}

#[test]
fn dose_given_and_not_given_is_a_conflict() {
    let mut z = zone();
    dose(&mut z.n1, &z.patient, &z.med, "08:10", None).unwrap();
    dose(
        &mut z.n2,
        &z.patient,
        &z.med,
        "08:20",
        Some("patient refused"),
    )
    .unwrap();
    merge_all(&z);
    let c = only_conflict(&z);
    assert!(matches!(c.kind, ConflictKind::DoseGivenAndNotGiven { .. }));
}

#[test]
fn visit_performed_by_two_staff_is_a_conflict() {
    let mut z = zone();
    performed(&mut z.n1, &z.visit, "08:05").unwrap();
    performed(&mut z.n2, &z.visit, "08:07").unwrap();
    merge_all(&z);
    let c = only_conflict(&z);
    let ConflictKind::VisitPerformedByTwo { performers, .. } = &c.kind else {
        panic!("wrong kind: {c:?}");
    };
    assert_eq!(performers, &vec!["N1".to_string(), "N2".to_string()]);
}

#[test]
fn double_staffed_visit_performed_by_both_planned_staff_is_not_a_conflict() {
    let mut z = zone();
    let staff = vec![StaffId::parse("N1").unwrap(), StaffId::parse("N2").unwrap()];
    z.base
        .repo
        .change_visit(
            at("07:10"),
            &mut z.base.rng,
            &z.visit,
            &VisitChange::Assign(staff),
        )
        .unwrap();
    merge_all(&z);
    performed(&mut z.n1, &z.visit, "08:05").unwrap();
    performed(&mut z.n2, &z.visit, "08:05").unwrap();
    merge_all(&z);
    assert_eq!(z.base.repo.conflicts(None).unwrap(), vec![]);
}

#[test]
fn cancelled_visit_performed_offline_is_a_conflict() {
    let mut z = zone();
    base_changes_the_visit(&mut z, &VisitChange::Cancel("admitted to hospital".into()));
    // N1 never saw the cancellation: she performs the visit offline.
    performed(&mut z.n1, &z.visit, "08:05").unwrap();
    merge_all(&z);
    let all = z.base.repo.conflicts(None).unwrap();
    assert!(
        all.iter()
            .any(|c| matches!(c.kind, ConflictKind::VisitPerformedButCancelled { .. })),
        "{all:#?}"
    );
}

#[test]
fn visit_performed_against_a_plan_changed_while_offline_is_a_conflict() {
    let mut z = zone();
    base_changes_the_visit(
        &mut z,
        &VisitChange::Reschedule {
            start: at("09:00"),
            end: at("09:30"),
        },
    );
    performed(&mut z.n1, &z.visit, "08:05").unwrap();
    merge_all(&z);
    let c = only_conflict(&z);
    let ConflictKind::VisitPerformedAgainstChangedPlan { unseen_changes, .. } = &c.kind else {
        panic!("wrong kind: {c:?}");
    };
    assert_eq!(unseen_changes.len(), 1);
    assert!(unseen_changes[0].contains("moved to"), "{unseen_changes:?}");
}

#[test]
fn a_reassignment_a_nurse_acted_against_is_read_with_the_new_nurses_name() {
    let mut z = zone();
    // The base has met N2 in a session (holds her certificate); N1 has not.
    Link::open(&z.base.repo, &z.n2.repo).pump(&z.base.repo, &z.n2.repo, &ShareAll);
    base_changes_the_visit(
        &mut z,
        &VisitChange::Assign(vec![StaffId::parse("N2").unwrap()]),
    );
    performed(&mut z.n1, &z.visit, "08:05").unwrap();
    merge_all(&z);
    // Every node reads the same words, whichever names it knows: the revision carries them.
    for node in [&z.base, &z.n1, &z.n2] {
        let [c] = &node.repo.named_conflicts(None).unwrap()[..] else {
            panic!("one conflict expected");
        };
        assert!(
            c.summary
                .ends_with("against an outdated plan: assigned to Nurse N2 (N2)"),
            "{}",
            c.summary
        );
    }
}

#[test]
fn plan_change_seen_before_documenting_is_not_a_conflict() {
    let mut z = zone();
    base_changes_the_visit(
        &mut z,
        &VisitChange::Reschedule {
            start: at("09:00"),
            end: at("09:30"),
        },
    );
    merge_all(&z);
    performed(&mut z.n1, &z.visit, "09:05").unwrap();
    merge_all(&z);
    assert_eq!(z.base.repo.conflicts(None).unwrap(), vec![]);
}

#[test]
fn concurrent_record_field_edits_show_both_values_and_resolve_with_a_new_value() {
    let mut z = zone();
    z.n1.repo
        .set_patient_field(at("08:00"), &z.patient, PatientField::Phone, "111 11 111")
        .unwrap();
    z.n2.repo
        .set_patient_field(at("08:01"), &z.patient, PatientField::Phone, "222 22 222")
        .unwrap();
    merge_all(&z);
    let c = only_conflict(&z);
    let ConflictKind::ConcurrentFieldEdit { field, values } = &c.kind else {
        panic!("wrong kind: {c:?}");
    };
    assert_eq!(*field, PatientField::Phone);
    assert_eq!(
        values,
        &vec!["111 11 111".to_string(), "222 22 222".to_string()]
    );

    z.base
        .repo
        .resolve_conflict(
            at("09:00"),
            &mut z.base.rng,
            &c.id,
            "called the daughter",
            Some("222 22 222"),
        )
        .unwrap();
    merge_all(&z);
    for node in [&z.base, &z.n1, &z.n2] {
        assert_eq!(node.repo.conflicts(None).unwrap(), vec![]);
        let rec = node.repo.record(&z.patient).unwrap();
        assert_eq!(rec.field(PatientField::Phone), Some("222 22 222"));
    }
}

#[test]
fn the_same_concurrent_edit_on_two_patients_is_two_conflicts_each_resolved_alone() {
    let mut z = zone();
    let (t, rng) = (at("07:00"), &mut z.base.rng);
    let name = [(PatientField::Name, "Egil Haugen".into())];
    let egil = z.base.repo.add_patient(t, rng, &name).unwrap();
    push(&z.base.repo, &z.n1.repo);
    push(&z.base.repo, &z.n2.repo);
    // Both nurses put the same two numbers on both patients (a family's shared phone).
    for patient in [&z.patient, &egil] {
        let phone = PatientField::Phone;
        z.n1.repo
            .set_patient_field(at("08:00"), patient, phone, "111 11 111")
            .unwrap();
        z.n2.repo
            .set_patient_field(at("08:01"), patient, phone, "222 22 222")
            .unwrap();
    }
    merge_all(&z);
    let conflicts = z.base.repo.conflicts(None).unwrap();
    assert_eq!(conflicts.len(), 2);
    assert_ne!(
        conflicts[0].id, conflicts[1].id,
        "one id per patient's conflict"
    );
    // Resolving Egil's leaves Turid's open.
    let egils = conflicts.iter().find(|c| c.patient == egil).unwrap();
    let (t, rng) = (at("09:00"), &mut z.base.rng);
    let kept = Some("222 22 222");
    z.base
        .repo
        .resolve_conflict(t, rng, &egils.id, "ringte", kept)
        .unwrap();
    let open: Vec<_> = z.base.repo.conflicts(None).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].patient, z.patient);
    assert!(
        matches!(&open[0].kind, ConflictKind::ConcurrentFieldEdit { values, .. } if values.len() == 2)
    );
}

#[test]
fn resolving_a_safety_conflict_adds_an_entry_and_keeps_both_facts() {
    let mut z = zone();
    for (node, t) in [(&mut z.n1, "08:10"), (&mut z.n2, "08:20")] {
        dose(node, &z.patient, &z.med, t, None).unwrap();
    }
    merge_all(&z);
    let c = only_conflict(&z);
    z.base
        .repo
        .resolve_conflict(
            at("09:00"),
            &mut z.base.rng,
            &c.id,
            "GP informed; avvik written",
            None,
        )
        .unwrap();
    merge_all(&z);
    for node in [&z.base, &z.n1, &z.n2] {
        assert_eq!(
            node.repo.conflicts(None).unwrap(),
            vec![],
            "resolved everywhere"
        );
        let (journal, _) = node.repo.journal(&z.patient).unwrap();
        let doses = journal.iter().filter(|e| c.entries.contains(&e.id)).count();
        assert_eq!(doses, 2, "both administrations are still in the journal");
    }
}

#[test]
fn a_third_administration_reopens_a_resolved_dose_conflict() {
    let mut z = zone();
    for (node, t) in [(&mut z.n1, "08:10"), (&mut z.n2, "08:20")] {
        dose(node, &z.patient, &z.med, t, None).unwrap();
    }
    merge_all(&z);
    let first = only_conflict(&z);
    z.base
        .repo
        .resolve_conflict(at("09:00"), &mut z.base.rng, &first.id, "checked", None)
        .unwrap();
    dose(&mut z.n1, &z.patient, &z.med, "08:30", None).unwrap();
    merge_all(&z);
    let reopened = z.base.repo.conflicts(None).unwrap();
    assert_eq!(reopened.len(), 1);
    assert_ne!(reopened[0].id, first.id, "new evidence, new conflict");
    assert_eq!(reopened[0].entries.len(), 3);
}

#[test]
fn a_double_tap_marked_entered_in_error_clears_the_conflict_but_stays_readable() {
    let mut z = zone();
    let first = dose(&mut z.n1, &z.patient, &z.med, "08:10", None).unwrap();
    dose(&mut z.n1, &z.patient, &z.med, "08:10", None).unwrap();
    assert_eq!(z.n1.repo.conflicts(None).unwrap().len(), 1);
    z.n1.repo
        .correct_entry(
            at("08:11"),
            &mut z.n1.rng,
            &z.patient,
            &first.id,
            Correction::EnteredInError("double tap".into()),
        )
        .unwrap();
    assert_eq!(z.n1.repo.conflicts(None).unwrap(), vec![]);
    let (journal, _) = z.n1.repo.journal(&z.patient).unwrap();
    assert!(
        journal.iter().any(|e| e.id == first.id),
        "the original stays readable"
    );
}

#[test]
fn missed_visit_is_a_fact_not_a_conflict() {
    let mut z = zone();
    z.n1.repo
        .visit_missed(
            at("08:05"),
            &mut z.n1.rng,
            &z.visit,
            MissedReason::NoAnswer,
            None,
            at("08:05"),
        )
        .unwrap();
    merge_all(&z);
    assert_eq!(z.base.repo.conflicts(None).unwrap(), vec![]);
}
