//! Nodes whose clocks disagree (issue #13): a phone hours fast, a base a month behind, a device
//! clock set back. Each node judges by its own clock, and no writer's clock stretches what a
//! receiver grants.

use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::trust::audit::{AccessEvent, AuditAction};
use omsyn_core::{Day, Repo, RepoError, Timestamp};
use omsyn_tests::{Link, NOW_MS, TestNode};

const HOUR_MS: i64 = 3600 * 1000;

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms).unwrap()
}

fn today(hhmm: &str) -> Timestamp {
    Timestamp::from_day_hhmm(Day::from_unix_millis(NOW_MS).unwrap(), hhmm, 3600).unwrap()
}

/// One need-based session between `a` at `a_ms` and `b` at `b_ms` (each its own clock).
fn sync_skewed(a: &Repo, a_ms: i64, b: &Repo, b_ms: i64) -> (Option<String>, Option<String>) {
    let mut link = Link::open(a, b);
    let (pa, pb) = (
        a.need_policy().expect("own grant"),
        b.need_policy().expect("own grant"),
    );
    let (mut ea, mut eb) = (None, None);
    for _ in 0..50 {
        let _ = link.a.handle_local_change(a.store(), &pa, a_ms);
        let _ = link.b.handle_local_change(b.store(), &pb, b_ms);
        let mut moved = false;
        while let Some(bytes) = link.a.poll_transmit() {
            moved = true;
            if let Err(e) = link.b.handle_bytes(b.store(), &pb, b_ms, &bytes) {
                eb.get_or_insert(e.to_string());
            }
        }
        while let Some(bytes) = link.b.poll_transmit() {
            moved = true;
            if let Err(e) = link.a.handle_bytes(a.store(), &pa, a_ms, &bytes) {
                ea.get_or_insert(e.to_string());
            }
        }
        if !moved {
            return (ea, eb);
        }
    }
    panic!("the sessions did not settle");
}

fn patient(base: &mut TestNode, name: &str) -> PatientId {
    let rng = &mut base.rng;
    base.repo
        .add_patient(
            today("07:00"),
            rng,
            &[
                (PatientField::Name, name.into()),
                (PatientField::Zone, "Sone 1".into()),
            ],
        )
        .unwrap()
}

#[test]
fn a_clock_set_back_a_month_continues_the_access_log_chain() {
    let node = TestNode::nurse(41, "N1");
    let later = at_ms(NOW_MS + 40 * 24 * HOUR_MS);
    let event = |what: &str| AccessEvent::new(None, AuditAction::Read, what.into(), "work".into());
    node.repo.log_access(later, event("next month")).unwrap();
    // The clock is set back: the next entries land in the earlier month's document.
    node.repo.log_access(today("10:00"), event("back")).unwrap();
    node.repo
        .transaction(|tx| {
            tx.log_access(today("10:01"), event("two at once"))?;
            tx.log_access(today("10:01"), event("in one write"))
        })
        .unwrap();
    let reports = node.repo.verify_audit().unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].entries, 4);
    assert!(reports[0].problems.is_empty(), "{:?}", reports[0].problems);
}

#[test]
fn an_explicit_access_from_a_fast_phone_lasts_the_cap_from_the_bases_clock() {
    let mut base = TestNode::base(42);
    let egil = patient(&mut base, "Egil Haugen");
    let mut nurse = TestNode::nurse(43, "N1");
    // The nurse's phone runs five hours fast.
    let fast = NOW_MS + 5 * HOUR_MS;
    let rng = &mut nurse.rng;
    nurse
        .repo
        .transaction(|tx| tx.explicit_access(at_ms(fast), rng, &egil, "akutt tilsyn"))
        .unwrap();
    assert_eq!(
        sync_skewed(&nurse.repo, fast, &base.repo, NOW_MS),
        (None, None)
    );
    let until: Vec<i64> = base
        .repo
        .store()
        .relations(&egil, "explicit:N1:")
        .unwrap()
        .iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(
        until,
        vec![NOW_MS + omsyn_core::trust::DEFAULT_EXPLICIT_ACCESS_MAX_MS],
        "twelve hours from the base's clock, not the phone's"
    );
}

#[test]
fn peers_hours_apart_sync_and_each_judges_need_by_its_own_clock() {
    let mut base = TestNode::base(44);
    let turid = patient(&mut base, "Turid Nilsen");
    // A visit for N1 tomorrow evening, by the base's clock.
    let tomorrow = Day::from_days(Day::from_unix_millis(NOW_MS).unwrap().to_days() + 1).unwrap();
    base.repo
        .plan_visit(
            today("07:00"),
            &mut base.rng,
            &NewVisit {
                patient: turid.clone(),
                start: Timestamp::from_day_hhmm(tomorrow, "20:00", 3600).unwrap(),
                end: Timestamp::from_day_hhmm(tomorrow, "20:30", 3600).unwrap(),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![StaffId::parse("N1").unwrap()],
            },
        )
        .unwrap();
    let nurse = TestNode::nurse(45, "N1");
    // The nurse's phone is nine hours behind: certificates hold for both, and the base, by its
    // own clock, shares tomorrow's work list.
    let behind = NOW_MS - 9 * HOUR_MS;
    assert_eq!(
        sync_skewed(&base.repo, NOW_MS, &nurse.repo, behind),
        (None, None)
    );
    assert!(
        nurse
            .repo
            .patients()
            .unwrap()
            .iter()
            .any(|(p, _)| *p == turid)
    );
    // The phone judges its own reads by its own clock: tomorrow's visit is two days ahead of
    // it, off its work list — until its clock is right.
    let refused = nurse
        .repo
        .open_patient(at_ms(behind - 24 * HOUR_MS), &turid, "view");
    assert!(
        matches!(refused, Err(RepoError::AccessDenied(_))),
        "{refused:?}"
    );
    assert!(
        nurse
            .repo
            .open_patient(at_ms(NOW_MS), &turid, "view")
            .is_ok()
    );
}
