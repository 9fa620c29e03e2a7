//! Property: no suggestion ever breaks a hard rule. Random small days — staff with random
//! competences, shifts and bases; patients at random positions (or none) with care teams and
//! blocks; visits at random times, physical or video, needing a nurse or two staff, assigned at
//! random (the naive list's way), some already documented — are planned by the solver and the
//! greedy planner and replanned after a random sick call or overrun. Every suggestion is checked
//! from what it shows against the hard rules, and accepting all of it must leave a plan that
//! breaks none (but what was documented before).
//!
//! `PROPTEST_CASES=2000 cargo test -p omsyn-tests planning_properties` runs a wider sweep; a
//! failure prints a minimal day that replays it.

use omsyn_core::Timestamp;
use omsyn_core::docs::plan::VisitKind;
use omsyn_core::planning::{Disruption, Objective, PlanInput, Position, Suggestion, as_it_stands};
use omsyn_tests::planday::HandDay;
use proptest::prelude::*;

const COMPETENCES: [&str; 3] = ["sykepleier", "helsefagarbeider", "assistent"];

#[derive(Debug, Clone)]
struct Staff {
    competence: usize,
    start: u16,
    hours: u16,
    base: Option<(u8, u8)>,
}

#[derive(Debug, Clone)]
struct Patient {
    position: Option<(u8, u8)>,
    team: u8,
    blocked: u8,
}

#[derive(Debug, Clone)]
struct Visit {
    patient: usize,
    start: u16,
    minutes: u8,
    video: bool,
    needs_nurse: bool,
    double: bool,
    current: u8,
    fixed: bool,
}

#[derive(Debug, Clone)]
struct Day {
    staff: Vec<Staff>,
    patients: Vec<Patient>,
    visits: Vec<Visit>,
    tolerance: u8,
    speed: u8,
    order: Vec<usize>,
    seed: u64,
}

fn position() -> impl Strategy<Value = Option<(u8, u8)>> {
    prop_oneof![1 => Just(None), 6 => (0u8..40, 0u8..40).prop_map(Some)]
}

fn day() -> impl Strategy<Value = Day> {
    let staff = (
        0..3usize,
        360u16..660,
        3u16..11,
        prop_oneof![3 => Just(None), 1 => position()],
    )
        .prop_map(|(competence, start, hours, base)| Staff {
            competence,
            start,
            hours,
            base,
        });
    let patient =
        (position(), any::<u8>(), any::<u8>()).prop_map(|(position, team, blocked)| Patient {
            position,
            team,
            blocked: blocked & blocked >> 4,
        });
    let visit = (
        0..8usize,
        420u16..1260,
        5u8..60,
        any::<[bool; 4]>(),
        any::<u8>(),
        0u8..10,
    )
        .prop_map(
            |(patient, start, minutes, [video, needs_nurse, double, _], current, fixed)| Visit {
                patient,
                start,
                minutes,
                video: video && minutes % 3 == 0,
                needs_nurse,
                double: double && minutes % 4 == 0,
                current,
                fixed: fixed == 0,
            },
        );
    (
        prop::collection::vec(staff, 1..6),
        prop::collection::vec(patient, 1..8),
        prop::collection::vec(visit, 0..22),
        0u8..61,
        10u8..61,
        Just((0..4).collect::<Vec<usize>>()).prop_shuffle(),
        any::<u64>(),
    )
        .prop_map(
            |(staff, patients, visits, tolerance, speed, order, seed)| Day {
                staff,
                patients,
                visits,
                tolerance,
                speed,
                order,
                seed,
            },
        )
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", (minute / 60).min(23), minute % 60)
}

fn place((a, b): (u8, u8)) -> Position {
    Position::new(59.25 + 0.002 * f64::from(a), 10.35 + 0.004 * f64::from(b)).unwrap()
}

/// The day as the planners get it. A visit's staff are those of its `current` bits (at most
/// two), so the plan as it stands is as careless as the naive list.
fn build(spec: &Day) -> HandDay {
    let mut day = HandDay::new();
    let staff: Vec<_> = spec
        .staff
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = day.staff(
                &format!("S{i}"),
                COMPETENCES[s.competence],
                &hhmm(s.start),
                &hhmm(s.start + 60 * s.hours),
            );
            day.input.staff[i].base = s.base.map(place);
            id
        })
        .collect();
    let pick = |bits: u8| -> Vec<_> {
        staff
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, s)| s.clone())
            .collect()
    };
    let patients: Vec<_> = spec
        .patients
        .iter()
        .map(|p| {
            let id = day.patient(None);
            day.patient_with(&id, |patient| {
                patient.position = p.position.map(place);
                patient.care_team = pick(p.team);
                patient.blocked = pick(p.blocked);
            });
            id
        })
        .collect();
    for v in &spec.visits {
        let id = day.visit(
            &patients[v.patient % patients.len()],
            &hhmm(v.start),
            i64::from(v.minutes),
        );
        day.with(&id, |visit| {
            visit.kind = if v.video {
                VisitKind::Digital
            } else {
                VisitKind::Physical
            };
            visit.needs_authorised = v.needs_nurse;
            visit.staff_needed = if v.double { 2 } else { 1 };
            visit.current = pick(v.current).into_iter().take(2).collect();
            visit.fixed = v.fixed && !visit.current.is_empty();
        });
    }
    day.input.policy.tolerance_min = u32::from(spec.tolerance);
    day.input.policy.speed_kmh = f64::from(spec.speed);
    day.input.policy.objectives = spec.order.iter().map(|&i| Objective::ALL[i]).collect();
    day.input.policy.seed = spec.seed;
    day.input.policy.generations = 10;
    day
}

/// The plan after accepting every move of `s`: each moved visit with its new staff and time.
fn accepted(input: &PlanInput, s: &Suggestion) -> PlanInput {
    let mut after = input.clone();
    for m in &s.moves {
        let v = after.visits.iter_mut().find(|v| v.id == m.visit).unwrap();
        let length = v.start.minutes_until(&v.end);
        v.current = m.to.clone();
        v.start = m.start_after;
        v.end = m.start_after.plus_minutes(length);
    }
    after
}

proptest! {
    #[test]
    fn no_suggestion_ever_breaks_a_hard_rule(spec in day()) {
        let day = build(&spec);
        // `both` checks each suggestion from its routes and unplaced list.
        for s in day.both() {
            let accepted = accepted(&day.input, &s);
            let after = as_it_stands(accepted).unwrap();
            prop_assert_eq!(&after.current_violations, &vec![], "accepting it all breaks a rule: {:?}", s);
            prop_assert_eq!(after.unplaced.len(), s.unplaced.len());
        }
    }

    #[test]
    fn no_replan_ever_breaks_a_hard_rule(spec in day(), sick in any::<bool>(), who in any::<usize>(), from in 420u16..1260, minutes in 1u32..120) {
        let day = build(&spec);
        let disruption = if sick || day.input.visits.is_empty() {
            Disruption::Sick {
                staff: day.input.staff[who % day.input.staff.len()].id.clone(),
                from: Timestamp::parse(&format!("2026-11-23T{}:00+01:00", hhmm(from))).unwrap(),
            }
        } else {
            Disruption::Overrun { visit: day.input.visits[who % day.input.visits.len()].id.clone(), minutes }
        };
        // `replan` checks the suggestion against the day as the disruption left it.
        day.replan(&disruption);
    }
}
