//! Escalation, on simulated time: device alerts become tasks for the assigned nurse and reach the
//! base when nobody claims them in time; unanswered video visits are retried, then become a
//! physical visit for the zone; two nurses claiming offline both keep their claims and each is told.

use omsyn_core::RepoError;
use omsyn_core::docs::journal::{DeviceEvent, MissedReason};
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::escalation::{EscalationPolicy, Owner, Priority, Task, TaskKind};
use omsyn_core::ids::{MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::repo::{DeviceReport, DoseEventKind};
use omsyn_core::{Repo, Timestamp};
use omsyn_tests::{TestNode, at, push, sync};

const DISPENSER: &str = "Evondos E300 #4711";

/// A patient with a morning visit (08:00–09:00, S100), a video visit (11:00–11:30, S100) and an
/// afternoon visit (14:00–15:00, S200); her home unit, both nurses and the base hold everything.
struct Zone {
    base: TestNode,
    home: TestNode,
    n1: TestNode,
    n2: TestNode,
    patient: PatientId,
    med: MedicationId,
    video: VisitId,
}

fn staff(id: &str) -> StaffId {
    StaffId::parse(id).unwrap()
}

fn zone() -> Zone {
    let mut base = TestNode::base(1);
    let patient = base.add_patient("Turid Nilsen");
    let med = base.add_medication(&patient, "Metformin 500 mg", "08:00");
    let mut plan = |start: &str, end: &str, kind: VisitKind, who: &str| {
        base.repo
            .plan_visit(
                at("07:00"),
                &mut base.rng,
                &NewVisit {
                    patient: patient.clone(),
                    start: at(start),
                    end: at(end),
                    kind,
                    tiltak: vec![],
                    staff: vec![staff(who)],
                },
            )
            .unwrap()
    };
    plan("08:00", "09:00", VisitKind::Physical, "S100");
    let video = plan("11:00", "11:30", VisitKind::Digital, "S100");
    plan("14:00", "15:00", VisitKind::Physical, "S200");
    let z = Zone {
        home: TestNode::home_unit(5, &patient),
        n1: TestNode::nurse(2, "S100"),
        n2: TestNode::nurse(3, "S200"),
        base,
        patient,
        med,
        video,
    };
    for node in [&z.home, &z.n1, &z.n2] {
        push(&z.base.repo, &node.repo);
    }
    z
}

impl Zone {
    /// The home unit reports `report` at `time` and it reaches both nurses and the base.
    fn device(&mut self, event_id: &str, time: Timestamp, report: DeviceReport) {
        self.home
            .repo
            .device_report(time, &mut self.home.rng, DISPENSER, event_id, time, &report)
            .unwrap();
        self.spread(0);
    }

    fn dose(&self, kind: DoseEventKind) -> DeviceReport {
        DeviceReport::Dose {
            kind,
            medication: self.med.clone(),
            slot: "08:00".into(),
        }
    }

    /// Brings every node up to date with node `from` (0 home, 1 n1, 2 n2, 3 base).
    fn spread(&self, from: usize) {
        let nodes = [
            &self.home.repo,
            &self.n1.repo,
            &self.n2.repo,
            &self.base.repo,
        ];
        for to in [3, 1, 2, 0] {
            if to != from {
                push(nodes[from], &self.base.repo);
                push(&self.base.repo, nodes[to]);
            }
        }
    }

    fn no_answer(&mut self, time: &str) {
        self.n1
            .repo
            .visit_missed(
                at(time),
                &mut self.n1.rng,
                &self.video,
                MissedReason::NoAnswer,
                None,
                at(time),
            )
            .unwrap();
        self.spread(1);
    }
}

fn only(tasks: Vec<Task>) -> Task {
    assert_eq!(tasks.len(), 1, "expected exactly one task: {tasks:#?}");
    tasks.into_iter().next().unwrap()
}

fn open_tasks(repo: &Repo, now: Timestamp) -> Vec<Task> {
    repo.tasks(now, None)
        .unwrap()
        .into_iter()
        .filter(Task::is_open)
        .collect()
}

#[test]
fn missed_dose_is_a_task_for_the_assigned_nurse_and_reaches_the_base_when_nobody_claims_it() {
    let mut z = zone();
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));

    let on_nurse = only(z.n1.repo.my_tasks(at("08:41")).unwrap());
    assert_eq!(on_nurse.owner, Owner::Nurses(vec![staff("S100")]));
    assert_eq!(on_nurse.priority, Priority::High);
    assert!(!on_nurse.escalated);
    assert_eq!(on_nurse.escalates_at, Some(at("08:55")));
    assert_eq!(on_nurse.next_change(at("08:41")), Some(at("08:55")));
    assert!(
        z.n2.repo.my_tasks(at("08:41")).unwrap().is_empty(),
        "the nurse of the afternoon visit is not asked"
    );

    let before = only(z.base.repo.tasks(at("08:54"), None).unwrap());
    assert!(!before.escalated);
    let after = only(z.base.repo.tasks(at("08:55"), None).unwrap());
    assert!(
        after.escalated,
        "unclaimed at the deadline: the base is told"
    );
    assert_eq!(after.id, on_nurse.id, "every node derives the same task");
    assert_eq!(after.next_change(at("08:55")), None);
    // Read for people, the alert names the medication and the patient, not their ids.
    let mut named = open_tasks(&z.base.repo, at("08:55"));
    z.base.repo.name_tasks(&mut named).unwrap();
    let named = only(named);
    assert!(
        named.summary.contains("ALERT Metformin 500 mg 08:00 on ")
            && named.summary.contains("MISSED"),
        "{}",
        named.summary
    );
    assert!(!named.summary.contains(z.med.as_str()), "{}", named.summary);
    assert_eq!(named.patient_name.as_deref(), Some("Turid Nilsen"));
}

#[test]
fn a_claim_before_the_deadline_keeps_the_task_from_the_base() {
    let mut z = zone();
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));
    let task = only(z.n1.repo.my_tasks(at("08:41")).unwrap());
    z.n1.repo
        .claim_task(at("08:45"), &mut z.n1.rng, &task.id)
        .unwrap();
    z.spread(1);

    let on_base = only(z.base.repo.tasks(at("10:00"), None).unwrap());
    assert!(!on_base.escalated);
    assert_eq!(on_base.claims.len(), 1);
    assert_eq!(on_base.claims[0].by.staff, Some(staff("S100")));
    assert_eq!(on_base.next_change(at("10:00")), None);
    assert!(on_base.is_open(), "claimed is not done");
}

#[test]
fn a_claim_after_the_deadline_does_not_untell_the_base() {
    let mut z = zone();
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));
    let task = only(z.base.repo.tasks(at("09:00"), None).unwrap());
    assert!(task.escalated);
    z.base
        .repo
        .claim_task(at("09:01"), &mut z.base.rng, &task.id)
        .unwrap();
    let claimed = only(z.base.repo.tasks(at("09:02"), None).unwrap());
    assert!(claimed.escalated, "it did reach the base");
    assert_eq!(claimed.claims[0].by.staff, Some(staff("K001")));
}

#[test]
fn alarm_button_is_urgent_and_reaches_the_base_sooner() {
    let mut z = zone();
    z.device("alarm-1", at("12:00"), DeviceReport::Alarm);
    let task = only(z.base.repo.tasks(at("12:01"), None).unwrap());
    assert_eq!(task.priority, Priority::Urgent);
    assert_eq!(
        task.owner,
        Owner::Nurses(vec![staff("S200")]),
        "the nurse of the next visit"
    );
    assert_eq!(task.escalates_at, Some(at("12:05")));
    assert!(!task.escalated);
    assert!(only(z.base.repo.tasks(at("12:05"), None).unwrap()).escalated);
    assert_eq!(only(z.n2.repo.my_tasks(at("12:01")).unwrap()).id, task.id);
}

#[test]
fn every_alerting_device_event_raises_a_task_and_records_of_care_do_not() {
    let mut z = zone();
    // The records of care are of another dose: a dose taken settles its own "missed".
    let noon = z.base.add_medication(&z.patient, "Paracet 500 mg", "12:00");
    z.spread(3);
    let noon_dose = |kind| DeviceReport::Dose {
        kind,
        medication: noon.clone(),
        slot: "12:00".into(),
    };
    let reports = [
        ("d1", "09:00", noon_dose(DoseEventKind::Dispensed), false),
        ("d2", "09:00", noon_dose(DoseEventKind::Taken), false),
        (
            "m1",
            "09:00",
            DeviceReport::Measurement {
                kind: "spo2".into(),
                value: "97".into(),
                unit: Some("%".into()),
            },
            false,
        ),
        ("d3", "10:00", z.dose(DoseEventKind::Missed), true),
        (
            "e1",
            "10:00",
            DeviceReport::Error {
                code: "E42 jam".into(),
            },
            true,
        ),
        ("p1", "10:00", DeviceReport::PowerFailure, true),
        ("a1", "10:00", DeviceReport::Alarm, true),
    ];
    let mut expected = 0;
    for (event_id, time, report, alerts) in reports {
        z.device(event_id, at(time), report);
        expected += usize::from(alerts);
        let tasks = open_tasks(&z.base.repo, at("10:01"));
        assert_eq!(tasks.len(), expected, "after {event_id}: {tasks:#?}");
    }
    let events: Vec<DeviceEvent> = open_tasks(&z.base.repo, at("10:01"))
        .into_iter()
        .map(|t| match t.kind {
            TaskKind::RespondToAlert { event, .. } => event,
            other => panic!("unexpected task {other:?}"),
        })
        .collect();
    assert!(
        matches!(events[0], DeviceEvent::AlarmPressed),
        "urgent first"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DeviceEvent::PowerFailure))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DeviceEvent::DeviceError { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, DeviceEvent::DoseMissed { .. }))
    );
}

#[test]
fn missed_dose_task_closes_when_a_nurse_documents_the_dose() {
    let mut z = zone();
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));
    let given =
        z.n1.repo
            .record_dose(
                at("08:50"),
                &mut z.n1.rng,
                &z.patient,
                &z.med,
                "08:00",
                at("08:50"),
                None,
                None,
            )
            .unwrap();
    z.spread(1);
    let task = only(z.base.repo.tasks(at("09:30"), None).unwrap());
    let done = task.done.expect("the documented dose closes the task");
    assert_eq!(done.entry, given.id);
    assert!(!task.escalated, "settled before its deadline");
    assert!(z.base.repo.my_tasks(at("09:30")).unwrap().is_empty());
}

#[test]
fn alert_on_a_day_nobody_is_planned_goes_to_the_base_at_once() {
    let mut z = zone();
    let sunday = Timestamp::parse("2026-11-29T03:10:00+01:00").unwrap();
    z.device("p-9", sunday, DeviceReport::PowerFailure);
    let task = only(z.base.repo.tasks(sunday, None).unwrap());
    assert_eq!(task.owner, Owner::Base);
    assert!(task.escalated);
    assert!(z.n1.repo.my_tasks(sunday).unwrap().is_empty());
}

#[test]
fn unanswered_video_visit_is_retried_then_becomes_a_physical_visit_for_the_zone() {
    let mut z = zone();
    z.no_answer("11:00");
    let retry = only(z.n1.repo.my_tasks(at("11:01")).unwrap());
    assert!(matches!(
        retry.kind,
        TaskKind::CallAgain { unanswered: 1, .. }
    ));
    assert_eq!(retry.due, Some(at("11:05")));
    assert_eq!(retry.owner, Owner::Nurses(vec![staff("S100")]));
    assert!(z.n2.repo.my_tasks(at("11:01")).unwrap().is_empty());

    z.no_answer("11:05");
    let retry = only(z.n1.repo.my_tasks(at("11:06")).unwrap());
    assert!(matches!(
        retry.kind,
        TaskKind::CallAgain { unanswered: 2, .. }
    ));
    assert_eq!(retry.due, Some(at("11:10")));

    z.no_answer("11:10");
    let go = only(z.n2.repo.my_tasks(at("11:11")).unwrap());
    assert!(matches!(
        go.kind,
        TaskKind::PhysicalVisit { unanswered: 3, .. }
    ));
    assert_eq!(go.owner, Owner::Zone);
    assert_eq!(go.priority, Priority::High);
    assert_ne!(go.id, retry.id, "a physical visit is a task of its own");
    assert_eq!(only(z.n1.repo.my_tasks(at("11:11")).unwrap()).id, go.id);
}

#[test]
fn a_call_not_made_again_reaches_the_base() {
    let mut z = zone();
    z.no_answer("11:00");
    assert!(!only(z.base.repo.tasks(at("11:19"), None).unwrap()).escalated);
    let late = only(z.base.repo.tasks(at("11:20"), None).unwrap());
    assert!(late.escalated, "due 11:05, plus 15 minutes unclaimed");
}

#[test]
fn a_claim_covers_the_call_it_was_made_after_and_not_the_next() {
    let mut z = zone();
    z.no_answer("11:00");
    let first = only(z.n1.repo.my_tasks(at("11:01")).unwrap());
    z.n1.repo
        .claim_task(at("11:01"), &mut z.n1.rng, &first.id)
        .unwrap();
    z.spread(1);
    assert_eq!(
        only(z.base.repo.tasks(at("11:30"), None).unwrap())
            .claims
            .len(),
        1
    );
    z.no_answer("11:05");
    let second = only(z.base.repo.tasks(at("11:06"), None).unwrap());
    assert_ne!(second.id, first.id);
    assert!(
        second.claims.is_empty(),
        "the retry after the second call is nobody's yet"
    );
    assert_eq!(second.escalates_at, Some(at("11:25")));
    assert!(only(z.base.repo.tasks(at("11:25"), None).unwrap()).escalated);
}

#[test]
fn a_completed_call_task_reopens_when_another_call_goes_unanswered() {
    let mut z = zone();
    z.no_answer("11:00");
    let first = only(z.n1.repo.my_tasks(at("11:01")).unwrap());
    z.n1.repo
        .complete_task(at("11:02"), &mut z.n1.rng, &first.id, "ringte datteren")
        .unwrap();
    assert!(z.n1.repo.my_tasks(at("11:03")).unwrap().is_empty());
    z.spread(1);
    for time in ["11:05", "11:10"] {
        z.no_answer(time);
    }
    let go = only(z.n2.repo.my_tasks(at("11:11")).unwrap());
    assert!(
        matches!(go.kind, TaskKind::PhysicalVisit { unanswered: 3, .. }),
        "completing the first retry does not silence the later calls: {go:?}"
    );
}

#[test]
fn nodes_with_different_policies_agree_on_who_claimed_what() {
    let mut z = zone();
    let base_policy = EscalationPolicy {
        call_attempts: 4,
        ..EscalationPolicy::default()
    };
    z.base.repo.set_escalation_policy(&base_policy).unwrap();
    for time in ["11:00", "11:05", "11:10"] {
        z.no_answer(time);
    }
    // The nurse's node makes it a physical visit and she takes it; the base would call once more.
    let go = only(z.n1.repo.my_tasks(at("11:11")).unwrap());
    assert!(matches!(go.kind, TaskKind::PhysicalVisit { .. }));
    z.n1.repo
        .claim_task(at("11:11"), &mut z.n1.rng, &go.id)
        .unwrap();
    z.spread(1);
    let on_base = only(z.base.repo.tasks(at("12:00"), None).unwrap());
    assert!(matches!(
        on_base.kind,
        TaskKind::CallAgain { unanswered: 3, .. }
    ));
    assert_eq!(on_base.id, go.id, "the same evidence, the same task");
    assert_eq!(on_base.claims.len(), 1, "her claim counts at the base too");
    assert!(!on_base.escalated);
}

#[test]
fn a_device_clock_running_fast_does_not_put_the_deadline_off() {
    let mut z = zone();
    // Entered at 08:40 by the home unit, dated 08:44 by the dispenser's fast clock.
    let missed = z.dose(DoseEventKind::Missed);
    z.home
        .repo
        .device_report(
            at("08:40"),
            &mut z.home.rng,
            DISPENSER,
            "fast-1",
            at("08:44"),
            &missed,
        )
        .unwrap();
    z.spread(0);
    let task = only(z.base.repo.tasks(at("08:41"), None).unwrap());
    assert_eq!(task.raised_at, at("08:40"));
    assert_eq!(task.escalates_at, Some(at("08:55")));
}

#[test]
fn video_visit_answered_on_a_retry_closes_the_task() {
    let mut z = zone();
    z.no_answer("11:00");
    z.n1.repo
        .visit_performed(
            at("11:06"),
            &mut z.n1.rng,
            &z.video,
            at("11:05"),
            Some(at("11:15")),
            None,
        )
        .unwrap();
    z.spread(1);
    assert!(open_tasks(&z.base.repo, at("12:00")).is_empty());
    assert!(z.n1.repo.my_tasks(at("12:00")).unwrap().is_empty());
}

#[test]
fn two_nurses_claiming_offline_both_keep_their_claims_and_each_is_told() {
    let mut z = zone();
    for time in ["11:00", "11:05", "11:10"] {
        z.no_answer(time);
    }
    let task = only(z.n2.repo.my_tasks(at("11:11")).unwrap());
    // Both offline: each claims on her own phone.
    z.n1.repo
        .claim_task(at("11:12"), &mut z.n1.rng, &task.id)
        .unwrap();
    z.n2.repo
        .claim_task(at("11:13"), &mut z.n2.rng, &task.id)
        .unwrap();
    let alone = only(z.n1.repo.my_tasks(at("11:14")).unwrap());
    assert!(alone.also_claimed_by(&staff("S100")).is_empty());

    sync(&z.n1.repo, &z.n2.repo);
    sync(&z.n2.repo, &z.base.repo);
    for (node, me, other) in [(&z.n1, "S100", "S200"), (&z.n2, "S200", "S100")] {
        let seen = only(node.repo.my_tasks(at("11:20")).unwrap());
        assert_eq!(seen.claims.len(), 2, "both claims kept");
        let others = seen.also_claimed_by(&staff(me));
        assert_eq!(others.len(), 1);
        assert_eq!(others[0].by.staff, Some(staff(other)), "{me} is told");
    }
    assert_eq!(
        only(z.base.repo.tasks(at("11:20"), None).unwrap())
            .claims
            .len(),
        2
    );

    z.n1.repo
        .complete_task(at("11:40"), &mut z.n1.rng, &task.id, "patient asleep, fine")
        .unwrap();
    sync(&z.n1.repo, &z.n2.repo);
    let done = only(z.n2.repo.tasks(at("11:41"), None).unwrap());
    assert_eq!(done.done.unwrap().by.staff, Some(staff("S100")));
    assert!(z.n2.repo.open_tasks(at("11:41"), None).unwrap().is_empty());
    assert!(z.n2.repo.my_tasks(at("11:41")).unwrap().is_empty());
    let again =
        z.n2.repo
            .complete_task(at("11:42"), &mut z.n2.rng, &task.id, "also there");
    assert!(
        matches!(&again, Err(RepoError::Invalid(m)) if m.contains("completed by")),
        "{again:?}"
    );
}

#[test]
fn claiming_twice_and_claiming_from_a_home_unit_are_refused() {
    let mut z = zone();
    z.device("a-1", at("12:00"), DeviceReport::Alarm);
    let task = only(z.n2.repo.my_tasks(at("12:01")).unwrap());
    z.n2.repo
        .claim_task(at("12:02"), &mut z.n2.rng, &task.id)
        .unwrap();
    let twice = z.n2.repo.claim_task(at("12:03"), &mut z.n2.rng, &task.id);
    assert!(matches!(twice, Err(RepoError::Invalid(_))), "{twice:?}");
    let home = z
        .home
        .repo
        .claim_task(at("12:03"), &mut z.home.rng, &task.id);
    assert!(
        matches!(home, Err(RepoError::NotPermitted { .. })),
        "{home:?}"
    );
    let unknown = omsyn_core::escalation::TaskId::parse("o-0000000000000000").unwrap();
    let missing = z.n2.repo.claim_task(at("12:03"), &mut z.n2.rng, &unknown);
    assert!(
        matches!(missing, Err(RepoError::NotFound(_))),
        "{missing:?}"
    );
}

#[test]
fn escalation_waits_follow_the_nodes_policy_and_bad_policies_are_refused() {
    let mut z = zone();
    let policy = EscalationPolicy {
        alert_ack_minutes: 30,
        call_attempts: 2,
        ..EscalationPolicy::default()
    };
    z.base.repo.set_escalation_policy(&policy).unwrap();
    assert_eq!(z.base.repo.escalation_policy().unwrap(), policy);
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));
    let task = only(z.base.repo.tasks(at("08:56"), None).unwrap());
    assert_eq!(task.escalates_at, Some(at("09:10")));
    assert!(!task.escalated);
    z.no_answer("11:00");
    z.no_answer("11:05");
    let on_base: Vec<TaskKind> = open_tasks(&z.base.repo, at("11:06"))
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert!(
        on_base
            .iter()
            .any(|k| matches!(k, TaskKind::PhysicalVisit { unanswered: 2, .. })),
        "two attempts are enough under this policy: {on_base:?}"
    );

    for bad in [
        EscalationPolicy {
            alarm_ack_minutes: 0,
            ..EscalationPolicy::default()
        },
        EscalationPolicy {
            call_attempts: 11,
            ..EscalationPolicy::default()
        },
    ] {
        let refused = z.base.repo.set_escalation_policy(&bad);
        assert!(matches!(refused, Err(RepoError::Invalid(_))), "{refused:?}");
    }
    assert_eq!(
        z.base.repo.escalation_policy().unwrap(),
        policy,
        "unchanged"
    );
}

#[test]
fn a_withdrawn_alert_raises_no_task() {
    let mut z = zone();
    z.device("ev-1", at("08:40"), z.dose(DoseEventKind::Missed));
    let (entries, _) = z.base.repo.journal(&z.patient).unwrap();
    let alert = entries.last().unwrap().id.clone();
    z.n1.repo
        .correct_entry(
            at("08:45"),
            &mut z.n1.rng,
            &z.patient,
            &alert,
            omsyn_core::repo::Correction::EnteredInError("test of the dispenser".into()),
        )
        .unwrap();
    z.spread(1);
    assert!(z.base.repo.tasks(at("09:00"), None).unwrap().is_empty());
}

#[test]
fn two_policy_changes_made_at_once_each_keep_the_others() {
    let base = std::sync::Arc::new(TestNode::base(61).repo);
    for round in 0..50u32 {
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = [true, false]
            .into_iter()
            .map(|alarm| {
                let (base, start) = (base.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    base.update_escalation_policy(|p| match alarm {
                        true => p.alarm_ack_minutes = 10 + round % 5,
                        false => p.call_attempts = 2 + round % 3,
                    })
                    .unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let policy = base.escalation_policy().unwrap();
        assert_eq!(
            (policy.alarm_ack_minutes, policy.call_attempts),
            (10 + round % 5, 2 + round % 3),
            "round {round}"
        );
    }
}
