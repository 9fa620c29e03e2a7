//! The day report's figures against a scenario counted by hand.

use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::docs::journal::MissedReason;
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{PatientId, StaffId, VisitId};
use omsyn_core::report::{Counts, VisitOutcome, day_report, day_report_from_documents, visits_csv};
use omsyn_core::sync::ShareAll;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, Timestamp};
use omsyn_tests::{Link, NOW_MS, TestNode, at, push};

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

fn not_home(node: &mut TestNode, visit: &VisitId, at: Timestamp) {
    node.repo
        .visit_missed(at, &mut node.rng, visit, MissedReason::NotHome, None, at)
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

    // The day index gives what deriving the report from the documents gives, before and after
    // a change arrives.
    let from_documents = |zone| {
        day_report_from_documents(
            &w.base.repo,
            day,
            zone,
            &mut omsyn_tests::gate(&w.base.repo),
        )
        .unwrap()
    };
    assert_eq!(from_documents(Some("Sone 1")), r);
    let b16 = r
        .visits
        .iter()
        .find(|v| v.outcome == VisitOutcome::Open)
        .unwrap()
        .visit
        .clone();
    done(&mut w.s1, &b16, wed("16:05"));
    push(&w.s1.repo, &w.base.repo);
    let after = day_report(
        &w.base.repo,
        day,
        Some("Sone 1"),
        &mut omsyn_tests::gate(&w.base.repo),
    )
    .unwrap();
    assert_eq!(from_documents(Some("Sone 1")), after);
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
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.starts_with("2026-11-25;Sone 1;")),
        "every patient here has a zone: {csv}"
    );
    assert!(lines[1].contains(";Astrid Berg;") && lines[1].ends_with(";physical;S1;done;Nurse S1"));
}

/// A visit planned for S1 and cancelled, which S2 went to and documented anyway: once the
/// cancelled-but-performed conflict is resolved, the report still credits S2, who was there —
/// not S1, who was planned — in the index and in the documents alike.
#[test]
fn a_resolved_cancelled_but_performed_visit_is_credited_to_who_performed_it() {
    let mut w = Week {
        base: TestNode::base(11),
        s1: TestNode::nurse(12, "S1"),
        s2: TestNode::nurse(13, "S2"),
    };
    let astrid = w.patient("Astrid Berg", "Sone 1");
    let a08 = w.visit(&astrid, wed("08:00"), VisitKind::Physical, &["S1"]);
    push(&w.base.repo, &w.s2.repo);
    {
        let b = &mut w.base;
        b.repo
            .change_visit(
                wed("07:00"),
                &mut b.rng,
                &a08,
                &VisitChange::Cancel("innlagt".into()),
            )
            .unwrap();
    }
    done(&mut w.s2, &a08, wed("08:05"));
    push(&w.s2.repo, &w.base.repo);
    let open = w.base.repo.conflicts(None).unwrap();
    assert!(
        !open.is_empty(),
        "the cancelled visit performed is a conflict"
    );
    for conflict in open {
        let b = &mut w.base;
        b.repo
            .resolve_conflict(
                wed("09:00"),
                &mut b.rng,
                &conflict.id,
                "S2 was there; the cancellation had not reached her",
                None,
            )
            .unwrap();
    }
    assert!(w.base.repo.conflicts(None).unwrap().is_empty());
    // The base meets S1's phone (its Hello carries her certificate): it knows her name, which
    // the report gives for the visit planned for her.
    let (s1, base) = (&w.s1.repo, &w.base.repo);
    let (p1, pb) = (s1.need_policy().unwrap(), base.need_policy().unwrap());
    let errors = Link::open(s1, base).exchange((s1, &p1), (base, &pb), NOW_MS);
    assert_eq!(errors, (None, None));

    let day = Day::parse("2026-11-25").unwrap();
    let r = day_report(
        &w.base.repo,
        day,
        Some("Sone 1"),
        &mut omsyn_tests::gate(&w.base.repo),
    )
    .unwrap();
    assert_eq!(r.visits.len(), 1);
    assert_eq!(r.visits[0].outcome, VisitOutcome::CancelledButPerformed);
    assert_eq!(r.visits[0].staff, vec!["S1".to_owned()]);
    assert_eq!(r.visits[0].performers, vec!["S2".to_owned()]);
    assert_eq!(r.totals, counts(1, 1, 0, 0, 0));
    assert_eq!(r.per_staff["S2"], counts(1, 1, 0, 0, 0));
    assert!(!r.per_staff.contains_key("S1"), "{:?}", r.per_staff);
    assert!(
        r.staff_names.contains_key("S1") && r.staff_names.contains_key("S2"),
        "the planned nurse is named too: {:?}",
        r.staff_names
    );
    assert_eq!(
        day_report_from_documents(
            &w.base.repo,
            day,
            Some("Sone 1"),
            &mut omsyn_tests::gate(&w.base.repo),
        )
        .unwrap(),
        r
    );
}

/// Four days of a mid-size municipality's work list (a twelfth of tier M's patients, four
/// zones, Sunday 29 November to Wednesday 2 December 2026: a week that begins in another
/// month), made by `../shared/data/gen_worklist.py --tier M --days 4 --start 2026-11-29
/// --seed 7`, keeping the patients whose id's CRC-32 is divisible by 12.
const FOUR_DAYS: &str = include_str!("../../fixtures/worklist-M-sample-4days.csv");

/// The report read from the day index equals the report derived from the documents, for every
/// day and zone of a generated work list whose visits were documented in every way — performed,
/// missed, cancelled, performed by two nurses concurrently, deviations in day logs — on a base
/// and on the nurses' phones, merged in both directions.
#[test]
fn the_day_index_gives_what_the_documents_give_over_generated_days() {
    use rand::{Rng, SeedableRng};
    let mut base = TestNode::with_profile(
        61,
        omsyn_core::NodeProfile {
            version: omsyn_core::identity::PROFILE_VERSION,
            role: omsyn_core::Role::Base,
            name: "Base Sone 2".into(),
            staff_id: Some(StaffId::parse("K002").unwrap()),
            patient: None,
            zone: Some("Sone 2".into()),
        },
    );
    let planned_at = Timestamp::parse("2026-11-28T06:00:00+01:00").unwrap();
    base.repo
        .import_worklist(
            planned_at,
            &mut base.rng,
            FOUR_DAYS,
            omsyn_core::worklist::ListTimes::Offset(3600),
        )
        .unwrap();
    let days: Vec<Day> = ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]
        .iter()
        .map(|d| Day::parse(d).unwrap())
        .collect();
    let mut nurses = [TestNode::nurse(62, "S00006"), TestNode::nurse(63, "S00066")];
    for nurse in &nurses {
        push(&base.repo, &nurse.repo);
    }
    let mut pick = rand::rngs::StdRng::seed_from_u64(64);
    for day in &days {
        for visit in base.repo.visits_on(*day).unwrap() {
            let at = visit.start.plus_minutes(5);
            let mine = nurses.iter().position(|n| {
                visit
                    .staff
                    .contains(n.repo.profile().staff_id.as_ref().unwrap())
            });
            match (pick.random_range(0..10), mine) {
                (0..=4, Some(n)) => done(&mut nurses[n], &visit.id, at),
                (0..=4, None) => done(&mut base, &visit.id, at),
                (5, _) => not_home(&mut base, &visit.id, at),
                (6, _) => {
                    base.repo
                        .change_visit(
                            at,
                            &mut base.rng,
                            &visit.id,
                            &VisitChange::Cancel("innlagt".into()),
                        )
                        .unwrap();
                }
                (7, Some(n)) => {
                    // Performed by the nurse and, unaware, recorded by the base as missed.
                    done(&mut nurses[n], &visit.id, at);
                    not_home(&mut base, &visit.id, at);
                }
                _ => {}
            }
        }
        for nurse in &mut nurses {
            let at = Timestamp::from_day_hhmm(*day, "15:00", 3600).unwrap();
            let body = DayLogBody::Deviation {
                text: format!("avvik {day}"),
            };
            let rng = &mut nurse.rng;
            nurse
                .repo
                .transaction(|tx| tx.day_log(at, rng, at, body))
                .unwrap();
        }
    }
    for nurse in &nurses {
        push(&nurse.repo, &base.repo);
        push(&base.repo, &nurse.repo);
    }
    let mut shown = 0;
    for node in [&base, &nurses[0], &nurses[1]] {
        let repo = &node.repo;
        for day in &days {
            // The need gate as of that day (a nurse's work list is needed around its day).
            let gate = || {
                let noon = Timestamp::from_day_hhmm(*day, "12:00", 3600).unwrap();
                repo.disclose(noon, AuditAction::Read, "test report")
            };
            for zone in [None, Some("Sone 1"), Some("Sone 2"), Some("Sone 3")] {
                let indexed = day_report(repo, *day, zone, &mut gate()).unwrap();
                let derived = day_report_from_documents(repo, *day, zone, &mut gate()).unwrap();
                assert_eq!(
                    indexed,
                    derived,
                    "{} on {day}, zone {zone:?}",
                    repo.profile().name
                );
                shown += indexed.visits.len();
            }
        }
    }
    // The base shows its zone's visits (twice: every zone, then its own); each nurse the visits
    // of its work list.
    let sone_2 = FOUR_DAYS.lines().filter(|l| l.contains(";Sone 2;")).count();
    assert!(
        shown > 2 * sone_2,
        "{shown} visits shown, {sone_2} in Sone 2"
    );
}
