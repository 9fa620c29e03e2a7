//! The day report's figures against a scenario counted by hand.

use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::docs::journal::MissedReason;
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{PatientId, StaffId, VisitId};
use omsyn_core::report::{
    Counts, ReadModels, VisitOutcome, day_report, day_report_with, visits_csv,
};
use omsyn_core::sync::ShareAll;
use omsyn_core::{Day, Timestamp};
use omsyn_tests::{Link, TestNode, at, push};

/// Wednesday 25 November 2026 (the report's day), at `hhmm`.
fn wed(hhmm: &str) -> Timestamp {
    Timestamp::parse(&format!("2026-11-25T{hhmm}:00+01:00")).unwrap()
}

fn counts(planned: usize, done: usize, missed: usize, cancelled: usize, open: usize) -> Counts {
    Counts {
        planned,
        done,
        missed,
        cancelled,
        open,
    }
}

struct Week {
    base: TestNode,
    s1: TestNode,
    s2: TestNode,
}

impl Week {
    fn patient(&mut self, name: &str, zone: &str) -> PatientId {
        let b = &mut self.base;
        b.repo
            .add_patient(
                at("07:00"),
                &mut b.rng,
                &[
                    (PatientField::Name, name.into()),
                    (PatientField::Zone, zone.into()),
                ],
            )
            .unwrap()
    }

    fn visit(
        &mut self,
        patient: &PatientId,
        start: Timestamp,
        kind: VisitKind,
        staff: &[&str],
    ) -> VisitId {
        let b = &mut self.base;
        let end = Timestamp::parse(&start.to_string().replace(":00+", ":30+")).unwrap();
        b.repo
            .plan_visit(
                at("07:00"),
                &mut b.rng,
                &NewVisit {
                    patient: patient.clone(),
                    start,
                    end,
                    kind,
                    tiltak: vec![],
                    staff: staff.iter().map(|s| StaffId::parse(s).unwrap()).collect(),
                },
            )
            .unwrap()
    }
}

fn done(node: &mut TestNode, visit: &VisitId, at: Timestamp) {
    node.repo
        .visit_performed(at, &mut node.rng, visit, at, None, None)
        .unwrap();
}

/// Zone "Sone 1": Astrid and Bjørn; zone "Sone 2": Cecilie. On Wednesday:
///
/// | patient | time | kind | staff | outcome |
/// |---|---|---|---|---|
/// | Astrid | 08:00 | physical | S1 | done by S1 |
/// | Astrid | 12:00 | digital | S1 | done by S1 (a trip replaced) |
/// | Astrid | 20:00 | digital | S2 | missed (no answer) |
/// | Bjørn | 09:00 | physical | S2 | done by S2 |
/// | Bjørn | 14:00 | physical | S1 | cancelled |
/// | Bjørn | 16:00 | physical | — | open |
/// | Cecilie | 10:00 | physical | S1 | done by S1 (Sone 2) |
///
/// Monday, S2 visited Astrid too: Astrid saw two staff this week, Bjørn one. S2 logged a
/// deviation on Wednesday. The base synced with S1 in a session, never with S2.
#[test]
fn the_day_report_matches_a_hand_counted_day() {
    let mut w = Week {
        base: TestNode::base(1),
        s1: TestNode::nurse(2, "S1"),
        s2: TestNode::nurse(3, "S2"),
    };
    let astrid = w.patient("Astrid Berg", "Sone 1");
    let bjorn = w.patient("Bjørn Dahl", "Sone 1");
    let cecilie = w.patient("Cecilie Eng", "Sone 2");
    let monday = w.visit(&astrid, at("08:00"), VisitKind::Physical, &["S2"]);
    let a08 = w.visit(&astrid, wed("08:00"), VisitKind::Physical, &["S1"]);
    let a12 = w.visit(&astrid, wed("12:00"), VisitKind::Digital, &["S1"]);
    let a20 = w.visit(&astrid, wed("20:00"), VisitKind::Digital, &["S2"]);
    let b09 = w.visit(&bjorn, wed("09:00"), VisitKind::Physical, &["S2"]);
    let b14 = w.visit(&bjorn, wed("14:00"), VisitKind::Physical, &["S1"]);
    w.visit(&bjorn, wed("16:00"), VisitKind::Physical, &[]);
    let c10 = w.visit(&cecilie, wed("10:00"), VisitKind::Physical, &["S1"]);
    {
        let b = &mut w.base;
        b.repo
            .change_visit(
                at("07:00"),
                &mut b.rng,
                &b14,
                &VisitChange::Cancel("innlagt".into()),
            )
            .unwrap();
    }
    push(&w.base.repo, &w.s1.repo);
    push(&w.base.repo, &w.s2.repo);
    done(&mut w.s2, &monday, at("08:10"));
    done(&mut w.s1, &a08, wed("08:05"));
    done(&mut w.s1, &a12, wed("12:01"));
    done(&mut w.s1, &c10, wed("10:02"));
    done(&mut w.s2, &b09, wed("09:03"));
    w.s2.repo
        .visit_missed(
            wed("20:10"),
            &mut w.s2.rng,
            &a20,
            MissedReason::NoAnswer,
            None,
            wed("20:05"),
        )
        .unwrap();
    w.s2.repo
        .day_log(
            wed("21:00"),
            &mut w.s2.rng,
            wed("21:00"),
            DayLogBody::Deviation {
                text: "bilen startet ikke".into(),
            },
        )
        .unwrap();
    push(&w.s2.repo, &w.base.repo);
    // The session runs that evening: a node takes nothing entered more than a day ahead of it.
    let (a, b) = Link::open(&w.base.repo, &w.s1.repo).exchange(
        (&w.base.repo, &ShareAll),
        (&w.s1.repo, &ShareAll),
        wed("22:00").unix_millis(),
    );
    assert_eq!((a, b), (None, None));

    let day = Day::parse("2026-11-25").unwrap();
    let r = day_report(
        &w.base.repo,
        day,
        Some("Sone 1"),
        &mut omsyn_tests::gate(&w.base.repo),
    )
    .unwrap();
    assert_eq!(r.totals, counts(6, 3, 1, 1, 1));
    assert_eq!(r.physical, counts(4, 2, 0, 1, 1));
    assert_eq!(r.digital, counts(2, 1, 1, 0, 0));
    assert_eq!(r.trips_replaced, 1);
    assert_eq!(r.per_staff["S1"], counts(3, 2, 0, 1, 0));
    assert_eq!(r.per_staff["S2"], counts(2, 1, 1, 0, 0));
    assert_eq!(r.per_staff["(unassigned)"], counts(1, 0, 0, 0, 1));
    let per_patient: Vec<_> = r
        .per_patient
        .iter()
        .map(|p| (p.name.as_str(), p.counts, p.staff_this_week.clone()))
        .collect();
    assert_eq!(
        per_patient,
        vec![
            (
                "Astrid Berg",
                counts(3, 2, 1, 0, 0),
                vec!["S1".to_owned(), "S2".to_owned()]
            ),
            ("Bjørn Dahl", counts(3, 1, 0, 1, 1), vec!["S2".to_owned()]),
        ]
    );
    assert_eq!(r.deviations.len(), 1);
    assert_eq!(r.deviations[0].text, "bilen startet ikke");
    assert_eq!(r.deviations[0].by, "Nurse S2");
    let devices: Vec<_> = r
        .devices
        .iter()
        .map(|d| (d.name.as_str(), d.last_synced_ms.is_some()))
        .collect();
    assert_eq!(devices, vec![("Nurse S2", false), ("Nurse S1", true)]);
    let outcomes: Vec<_> = r.visits.iter().map(|v| v.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            VisitOutcome::Done,
            VisitOutcome::Done,
            VisitOutcome::Done,
            VisitOutcome::Cancelled,
            VisitOutcome::Open,
            VisitOutcome::Missed
        ]
    );

    // Kept read models give the same report, and see a change that arrives afterwards.
    let models = ReadModels::default();
    assert_eq!(
        day_report_with(
            &w.base.repo,
            day,
            Some("Sone 1"),
            &models,
            &mut omsyn_tests::gate(&w.base.repo)
        )
        .unwrap(),
        r
    );
    let b16 = r
        .visits
        .iter()
        .find(|v| v.outcome == VisitOutcome::Open)
        .unwrap()
        .visit
        .clone();
    done(&mut w.s1, &b16, wed("16:05"));
    push(&w.s1.repo, &w.base.repo);
    let after = day_report_with(
        &w.base.repo,
        day,
        Some("Sone 1"),
        &models,
        &mut omsyn_tests::gate(&w.base.repo),
    )
    .unwrap();
    assert_eq!(after.totals, counts(6, 4, 1, 1, 0));
    assert_eq!(
        after.per_patient[1].staff_this_week,
        vec!["S1".to_owned(), "S2".to_owned()]
    );

    // Without the zone, Cecilie of Sone 2 is still left out: this base (Sone 1) has no need for
    // her, and the need gate says so.
    let mut gate = omsyn_tests::gate(&w.base.repo);
    let all = day_report(&w.base.repo, day, None, &mut gate).unwrap();
    assert_eq!(all.totals, counts(6, 4, 1, 1, 0));
    let verdicts = gate.finish().unwrap();
    assert_eq!(verdicts.refused.len(), 1, "Cecilie: {verdicts:?}");

    let csv = visits_csv(&r);
    let lines: Vec<_> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date;zone;visit;patient;patient_name;start;end;kind;staff;outcome;performed_by"
    );
    assert_eq!(lines.len(), 7);
    assert!(lines[6].ends_with(";digital;S2;missed;"), "{}", lines[6]);
    assert!(lines[1].contains(";Astrid Berg;") && lines[1].ends_with(";physical;S1;done;Nurse S1"));
}
