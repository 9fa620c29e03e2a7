//! The planning assistant at a base: the input gathered from what the base holds, the
//! coordinator's acceptance written as visit-plan changes, logged, checked against the plan as
//! it stands, and synced to the nurse it concerns.

use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{PatientId, StaffId, TiltakId, VisitId};
use omsyn_core::planning::accept::{Accepted, accept, prepare, what_is_planned};
use omsyn_core::planning::gather::{GatherOptions, ShiftLine, gather};
use omsyn_core::planning::{Move, PlanError, PlanInput, Policy, Reason, suggest_greedy};
use omsyn_core::repo::NewTiltak;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, Repo, Timestamp};
use omsyn_tests::{TestNode, at, push, snapshot};

fn staff(id: &str) -> StaffId {
    StaffId::parse(id).unwrap()
}

/// A base with one patient in Sone 1 at a known home, an insulin tiltak that needs an
/// authorised nurse, and a visit for it planned at 09:00 for `assigned`.
struct Base {
    node: TestNode,
    patient: PatientId,
    insulin: TiltakId,
    visit: VisitId,
}

fn base(assigned: &str) -> Base {
    let mut node = TestNode::base(91);
    let patient = node
        .repo
        .add_patient(
            at("06:00"),
            &mut node.rng,
            &[
                (PatientField::Name, "Turid Nilsen".into()),
                (PatientField::Zone, "Sone 1".into()),
                (PatientField::Location, "59.27,10.40".into()),
            ],
        )
        .unwrap();
    let insulin = node
        .repo
        .add_tiltak(
            at("06:00"),
            &mut node.rng,
            &patient,
            &NewTiltak {
                vedtak_title: None,
                code: Some("INJ".into()),
                description: "Insulin".into(),
                times: vec![],
                weekdays: vec![],
                health_care: true,
                requires_authorised_nurse: true,
                double_staffed: false,
            },
        )
        .unwrap();
    let visit = plan(&mut node, &patient, &insulin, "09:00", &[assigned]);
    Base {
        node,
        patient,
        insulin,
        visit,
    }
}

fn plan(
    node: &mut TestNode,
    patient: &PatientId,
    tiltak: &TiltakId,
    start: &str,
    staff_ids: &[&str],
) -> VisitId {
    node.repo
        .plan_visit(
            at("06:00"),
            &mut node.rng,
            &NewVisit {
                patient: patient.clone(),
                start: at(start),
                end: at(start).plus_minutes(20),
                kind: VisitKind::Physical,
                tiltak: vec![tiltak.clone()],
                staff: staff_ids.iter().map(|s| staff(s)).collect(),
            },
        )
        .unwrap()
}

/// Sone 1's shift list: a nurse and a health worker, 07:00–15:00.
fn options() -> GatherOptions {
    let shift = |id: &str, competence: &str| ShiftLine {
        staff: staff(id),
        start: at("07:00"),
        end: at("15:00"),
        competence: Some(competence.into()),
        name: None,
        zone: Some("Sone 1".into()),
    };
    GatherOptions {
        day: Day::parse("2026-11-23").unwrap(),
        zone: Some("Sone 1".into()),
        shifts: Some(vec![
            shift("N1", "sykepleier"),
            shift("H1", "helsefagarbeider"),
        ]),
        default_shift: (at("07:00"), at("15:00")),
        frozen_before: None,
        policy: Policy::default(),
    }
}

#[test]
fn the_input_is_gathered_from_what_the_base_holds() {
    let mut b = base("H1");
    let double = plan(&mut b.node, &b.patient, &b.insulin, "11:00", &["H1", "N1"]);
    let TestNode { repo, rng } = &mut b.node;
    repo.transaction(|tx| tx.block_staff(at("06:00"), rng, &b.patient, &staff("H1")))
        .unwrap();
    b.node
        .repo
        .visit_performed(
            at("06:30"),
            &mut b.node.rng,
            &double,
            at("06:30"),
            None,
            None,
        )
        .ok();
    let input = gathered(&b.node.repo, &options()).unwrap();
    let patient = &input.patients[&b.patient];
    assert_eq!(
        patient.position.map(|p| p.to_string()).as_deref(),
        Some("59.27000,10.40000")
    );
    assert_eq!(patient.blocked, vec![staff("H1")]);
    let visit = input.visits.iter().find(|v| v.id == b.visit).unwrap();
    assert!(visit.needs_authorised && !visit.fixed && visit.staff_needed == 1);
    let two = input.visits.iter().find(|v| v.id == double).unwrap();
    assert_eq!(two.staff_needed, 2, "two staff assigned: double-staffed");
    assert!(two.fixed, "documented: a fact");
    assert_eq!(input.staff.len(), 2);
    // Another zone with nothing in it is refused, naming the zones held.
    let err = gathered(
        &b.node.repo,
        &GatherOptions {
            zone: Some("Sone 9".into()),
            shifts: None,
            ..options()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("Sone 1"), "{err}");
}

/// The planning input through the need gate, logged as `omsyn plan suggest` logs it.
fn gathered(repo: &Repo, options: &GatherOptions) -> Result<PlanInput, PlanError> {
    let mut disclosure = repo.disclose(at("06:40"), AuditAction::Read, &what_is_planned(options));
    let input = gather(repo, options, &mut disclosure)?;
    disclosure.finish()?;
    Ok(input)
}

#[test]
fn an_accepted_suggestion_is_written_signed_logged_and_reaches_the_nurse() {
    let mut b = base("H1");
    let input = gathered(&b.node.repo, &options()).unwrap();
    let suggestion = suggest_greedy(input).unwrap();
    let m = suggestion
        .moves
        .iter()
        .find(|m| m.visit == b.visit)
        .unwrap();
    assert_eq!(
        (m.from.clone(), m.to.clone()),
        (vec![staff("H1")], vec![staff("N1")])
    );
    assert!(
        m.reasons
            .contains(&Reason::Competence { staff: staff("H1") })
    );
    // Nothing is assigned until the coordinator accepts.
    assert_eq!(
        b.node.repo.visit(&b.visit).unwrap().1.staff,
        vec![staff("H1")]
    );
    let accepted = accept_at_0640(&mut b, &suggestion.moves).unwrap();
    assert_eq!(accepted.reassigned, 1);
    let (_, visit) = b.node.repo.visit(&b.visit).unwrap();
    assert_eq!(visit.staff, vec![staff("N1")]);
    assert_eq!(visit.revisions.last().unwrap().what, "assigned to N1");
    let log = b.node.repo.audit_entries(None).unwrap();
    let entry = log
        .iter()
        .find(|e| e.action == AuditAction::Write && e.what.contains("accepted"))
        .expect("the acceptance is in the access log");
    assert_eq!(
        entry.patients,
        vec![b.patient.clone()],
        "it names whose visit moved"
    );
    let read = log
        .iter()
        .find(|e| {
            e.action == AuditAction::Read && e.what == "plan suggestion 2026-11-23 for Sone 1"
        })
        .expect("the planning read is in the access log");
    assert_eq!(
        read.patients,
        vec![b.patient.clone()],
        "it names whom it showed"
    );
    assert!(
        entry
            .what
            .contains("2026-11-23 in Sone 1 accepted: 1 visit(s) reassigned"),
        "{}",
        entry.what
    );
    // The nurse's node takes the base's signed change like any other.
    let nurse = TestNode::nurse(92, "N1");
    push(&b.node.repo, &nurse.repo);
    assert_eq!(
        nurse.repo.visit(&b.visit).unwrap().1.staff,
        vec![staff("N1")]
    );
}

#[test]
fn a_move_made_stale_by_a_later_change_is_refused_and_nothing_is_written() {
    let mut b = base("H1");
    let suggestion = suggest_greedy(gathered(&b.node.repo, &options()).unwrap()).unwrap();
    b.node
        .repo
        .change_visit(
            at("06:35"),
            &mut b.node.rng,
            &b.visit,
            &VisitChange::Assign(vec![staff("N2")]),
        )
        .unwrap();
    let before = snapshot(&b.node.repo);
    let err = accept_at_0640(&mut b, &suggestion.moves).unwrap_err();
    assert!(
        matches!(&err, PlanError::Invalid(m) if m.contains("changed since the suggestion")),
        "{err}"
    );
    assert_eq!(
        snapshot(&b.node.repo),
        before,
        "nothing written, nothing logged"
    );
}

#[test]
fn a_change_committed_between_the_check_and_the_write_is_not_written_over() {
    // What a session commits meanwhile: another base's reassignment or cancellation, or a
    // nurse's visit.
    for meanwhile in ["reassigned", "cancelled", "documented"] {
        let mut b = base("H1");
        let suggestion = suggest_greedy(gathered(&b.node.repo, &options()).unwrap()).unwrap();
        let prepared = prepare(&b.node.repo, at("06:40"), &options(), &suggestion.moves).unwrap();
        let mut other = TestNode::base(93);
        push(&b.node.repo, &other.repo);
        let change = match meanwhile {
            "reassigned" => Some(VisitChange::Assign(vec![staff("N2")])),
            "cancelled" => Some(VisitChange::Cancel("innlagt på sykehus".into())),
            _ => None,
        };
        if let Some(change) = change {
            (other.repo)
                .change_visit(at("06:38"), &mut other.rng, &b.visit, &change)
                .unwrap();
            push(&other.repo, &b.node.repo);
        } else {
            let mut nurse = TestNode::nurse(94, "H1");
            push(&b.node.repo, &nurse.repo);
            (nurse.repo)
                .visit_performed(
                    at("06:38"),
                    &mut nurse.rng,
                    &b.visit,
                    at("06:38"),
                    None,
                    None,
                )
                .unwrap();
            push(&nurse.repo, &b.node.repo);
        }
        let before = snapshot(&b.node.repo);
        let err = prepared
            .write(&b.node.repo, at("06:40"), &mut b.node.rng)
            .unwrap_err();
        let expected = match meanwhile {
            "documented" => "documented",
            _ => "changed since the suggestion",
        };
        assert!(err.to_string().contains(expected), "{meanwhile}: {err}");
        assert_eq!(
            snapshot(&b.node.repo),
            before,
            "{meanwhile}: nothing written"
        );
        let kept = if meanwhile == "reassigned" {
            "N2"
        } else {
            "H1"
        };
        let (_, visit) = b.node.repo.visit(&b.visit).unwrap();
        assert_eq!(visit.staff, vec![staff(kept)], "{meanwhile}");
    }
}

#[test]
fn a_visit_given_to_the_same_nurse_between_the_check_and_the_write_is_not_double_booked() {
    //! The moves are checked over the whole day before the write; another front end (the
    //! dashboard's assign, a forwarded `visit assign`, a session) can give the nurse they move a
    //! visit to another visit at the same time meanwhile. The write checks the day again.
    let mut b = base("H1");
    let suggestion = suggest_greedy(gathered(&b.node.repo, &options()).unwrap()).unwrap();
    assert!(
        (suggestion.moves.iter()).any(|m| m.visit == b.visit && m.to == vec![staff("N1")]),
        "{:?}",
        suggestion.moves
    );
    let prepared = prepare(&b.node.repo, at("06:40"), &options(), &suggestion.moves).unwrap();
    let (patient, insulin) = (b.patient.clone(), b.insulin.clone());
    let meanwhile = plan(&mut b.node, &patient, &insulin, "09:00", &["N1"]);
    let before = snapshot(&b.node.repo);
    let err = prepared
        .write(&b.node.repo, at("06:40"), &mut b.node.rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the plan changed since"), "{err}");
    assert!(err.contains("N1"), "names the nurse: {err}");
    assert_eq!(snapshot(&b.node.repo), before, "nothing written");
    let (_, visit) = b.node.repo.visit(&b.visit).unwrap();
    assert_eq!(visit.staff, vec![staff("H1")]);
    let (_, other) = b.node.repo.visit(&meanwhile).unwrap();
    assert_eq!(other.staff, vec![staff("N1")]);
}

/// Accepts `moves` at the base at 06:40, with Sone 1's shift list.
fn accept_at_0640(b: &mut Base, moves: &[Move]) -> Result<Accepted, PlanError> {
    accept(
        &b.node.repo,
        at("06:40"),
        &mut b.node.rng,
        &options(),
        moves,
    )
}

/// Visit `visit` of `patient`, unassigned at 09:05, to N1 at 09:05.
fn to_n1_at_0905(visit: &VisitId, patient: &PatientId) -> Move {
    Move {
        visit: visit.clone(),
        patient: patient.clone(),
        from: vec![],
        to: vec![staff("N1")],
        start_before: at("09:05"),
        start_after: at("09:05"),
        reasons: vec![],
    }
}

#[test]
fn accepting_a_move_that_needs_another_is_refused_with_the_rule_it_would_break() {
    let mut b = base("N1");
    let second = plan(&mut b.node, &b.patient, &b.insulin, "09:05", &[]);
    // Giving the 09:05 visit to N1 alone puts N1 in two visits at once.
    let lone = to_n1_at_0905(&second, &b.patient);
    let before = snapshot(&b.node.repo);
    let err = accept_at_0640(&mut b, &[lone]).unwrap_err();
    assert!(err.to_string().contains("cannot get from"), "{err}");
    assert_eq!(snapshot(&b.node.repo), before);
    // A move into another day, or of a visit twice, is refused too.
    let elsewhere = Move {
        start_before: Timestamp::parse("2026-11-24T09:05:00+01:00").unwrap(),
        visit: VisitId::parse("v-0000000000000000").unwrap(),
        ..to_n1_at_0905(&second, &b.patient)
    };
    let err = accept_at_0640(&mut b, &[elsewhere]).unwrap_err();
    assert!(
        err.to_string().contains("not planned on 2026-11-23"),
        "{err}"
    );
}
