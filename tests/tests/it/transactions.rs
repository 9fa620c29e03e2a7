//! Transactions are all or nothing, and see their own writes.

use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::RepoError;
use omsyn_tests::{at, snapshot, TestNode};

#[test]
fn a_transaction_that_fails_midway_writes_nothing() {
    let mut base = TestNode::base(21);
    let before = snapshot(&base.repo);
    let rng = &mut base.rng;
    let result = base.repo.transaction(|tx| {
        let patient = tx.add_patient(at("07:00"), rng, &[(PatientField::Name, "Aud Moen".into())])?;
        tx.add_note(at("07:01"), rng, &patient, None, at("07:01"), "written, then rolled back")?;
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
            let patient = tx.add_patient(at("07:00"), rng, &[(PatientField::Name, "Liv Dahl".into())])?;
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
            Ok((patient, visit))
        })
        .unwrap();
    let view = base.repo.patient_view(&patient).unwrap();
    assert_eq!(view.visits[0].id, visit);
    assert_eq!(view.journal.len(), 1);
    assert_eq!(base.repo.visit(&visit).unwrap().1.id, visit, "indexed on commit");
}
