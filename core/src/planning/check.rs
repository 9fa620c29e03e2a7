//! The hard rules, checked on any plan — the plan as it stands, a baseline's, the solver's — and
//! the figures plans are compared by. Independent of how a plan was made: the solver's answer is
//! checked here before anyone sees it.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use super::model::{Figures, PlanInput, Suggestion, Violation};
use super::problem::{Problem, minutes};
use crate::ids::StaffId;

/// A visit as a plan has it: who goes, and when it starts (minutes since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// Visit index.
    pub visit: usize,
    /// Staff, on shift or not.
    pub staff: Vec<StaffId>,
    /// Start.
    pub start: i64,
}

/// Every visit at its planned time with nobody assigned: where plans are built up from.
pub fn unstaffed(p: &Problem) -> Vec<Assigned> {
    (0..p.visits.len())
        .map(|v| Assigned {
            visit: v,
            staff: Vec::new(),
            start: p.visits[v].planned,
        })
        .collect()
}

/// The plan as it stands: every visit with its current staff at its planned time.
pub fn current_plan(p: &Problem) -> Vec<Assigned> {
    let mut plan = unstaffed(p);
    for a in &mut plan {
        a.staff = p.current_staff(a.visit).to_vec();
    }
    plan
}

/// Every hard rule `plan` breaks, sorted. Fixed visits (under way or documented) are facts, not
/// plans: nothing is reported about them alone, but the planned visits around them must leave
/// their staff the time and the travel they take.
pub fn violations(p: &Problem, plan: &[Assigned]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut routes: BTreeMap<&StaffId, Vec<(i64, usize)>> = BTreeMap::new();
    for a in plan.iter().filter(|a| !a.staff.is_empty()) {
        if !p.visits[a.visit].fixed {
            visit_rules(p, a, &mut out);
        }
        for s in &a.staff {
            routes.entry(s).or_default().push((a.start, a.visit));
        }
    }
    for (staff, mut route) in routes {
        route.sort();
        route_rules(p, staff, &route, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Competence, blocks, double staffing and the time window of one assigned visit.
fn visit_rules(p: &Problem, a: &Assigned, out: &mut Vec<Violation>) {
    let visit = &p.visits[a.visit];
    let id = &p.input.visits[a.visit].id;
    let distinct: BTreeSet<&StaffId> = a.staff.iter().collect();
    if distinct.len() < visit.staff_needed || distinct.len() < a.staff.len() {
        out.push(Violation::DoubleStaffing { visit: id.clone() });
    }
    let patient = &p.input.patients[&p.patient_ids[visit.patient]];
    for staff in &a.staff {
        let authorised = p.staff_index(staff).is_some_and(|s| p.staff[s].authorised);
        if visit.needs_authorised && !authorised && p.staff_index(staff).is_some() {
            out.push(Violation::Competence {
                visit: id.clone(),
                staff: staff.clone(),
            });
        }
        if patient.blocked.contains(staff) {
            out.push(Violation::Blocked {
                visit: id.clone(),
                staff: staff.clone(),
            });
        }
    }
    if a.start < visit.earliest || a.start > visit.latest {
        out.push(Violation::Window { visit: id.clone() });
    }
}

/// Shift and overlap rules along one staff member's day (visits by start).
fn route_rules(p: &Problem, staff: &StaffId, route: &[(i64, usize)], out: &mut Vec<Violation>) {
    let s = p.staff_index(staff);
    let (base, shift) = match s {
        Some(s) => (
            p.staff[s].base,
            Some((p.staff[s].shift_start, p.staff[s].shift_end)),
        ),
        None => (None, None),
    };
    let mut at = base;
    let mut free_from = shift.map_or(i64::MIN, |(start, _)| start);
    let mut previous: Option<usize> = None;
    for &(start, v) in route {
        let visit = &p.visits[v];
        let id = &p.input.visits[v].id;
        let arrival = free_from.saturating_add(p.travel(at, visit.location));
        let fact = visit.fixed && previous.is_none_or(|b| p.visits[b].fixed);
        // Not on shift at all, or starting before the shift (and the trip from the base) does.
        if !visit.fixed && (shift.is_none() || (previous.is_none() && start < arrival)) {
            out.push(Violation::OffShift {
                staff: staff.clone(),
                visit: id.clone(),
            });
        }
        if let Some(before) = previous
            && start < arrival
            && !fact
        {
            out.push(Violation::Overlap {
                staff: staff.clone(),
                first: p.input.visits[before].id.clone(),
                second: id.clone(),
            });
        }
        free_from = free_from.max(start + visit.duration);
        if visit.location.is_some() {
            at = visit.location;
        }
        previous = Some(v);
    }
    if let (Some((_, end)), Some(last)) = (shift, previous)
        && free_from + p.travel(at, base) > end
        && !p.visits[last].fixed
    {
        out.push(Violation::OffShift {
            staff: staff.clone(),
            visit: p.input.visits[last].id.clone(),
        });
    }
}

/// The figures of `plan`, compared with the plan as it stands.
pub fn figures(p: &Problem, plan: &[Assigned]) -> Figures {
    let mut violations = BTreeMap::new();
    for v in self::violations(p, plan) {
        *violations.entry(v.rule().to_owned()).or_default() += 1;
    }
    let placed = plan
        .iter()
        .filter(|a| !a.staff.is_empty() && a.staff.len() >= p.visits[a.visit].staff_needed)
        .count();
    let mut routes: BTreeMap<&StaffId, Vec<(i64, usize)>> = BTreeMap::new();
    let mut per_patient: BTreeMap<usize, BTreeSet<&StaffId>> = BTreeMap::new();
    for a in plan {
        for s in &a.staff {
            routes.entry(s).or_default().push((a.start, a.visit));
            per_patient
                .entry(p.visits[a.visit].patient)
                .or_default()
                .insert(s);
        }
    }
    let mut travel_min = 0u64;
    let mut loads: Vec<u32> = vec![0; p.staff.len()];
    for (staff, route) in &mut routes {
        route.sort();
        let (travel, work) = route_minutes(p, p.staff_index(staff), route);
        travel_min += travel;
        if let Some(s) = p.staff_index(staff) {
            loads[s] = u32::try_from(travel + work).unwrap_or(u32::MAX);
        }
    }
    let distinct: usize = per_patient.values().map(BTreeSet::len).sum();
    Figures {
        placed,
        unplaced: p.visits.len() - placed,
        violations,
        travel_min,
        staff_per_patient: distinct as f64 / per_patient.len().max(1) as f64,
        load_min: (
            loads.iter().copied().max().unwrap_or(0),
            loads.iter().copied().min().unwrap_or(0),
        ),
        changes: changes(p, plan),
    }
}

/// (travel, visit) minutes of one staff member's day, visits by start.
fn route_minutes(p: &Problem, s: Option<usize>, route: &[(i64, usize)]) -> (u64, u64) {
    let base = s.and_then(|s| p.staff[s].base);
    let mut at = base;
    let (mut travel, mut work) = (0i64, 0i64);
    for &(_, v) in route {
        let location = p.visits[v].location;
        travel += p.travel(at, location);
        work += p.visits[v].duration;
        if location.is_some() {
            at = location;
        }
    }
    travel += p.travel(at, base);
    (
        u64::try_from(travel).unwrap_or(0),
        u64::try_from(work).unwrap_or(0),
    )
}

/// Visits whose staff (as a set) or start differ from the plan as it stands.
pub fn changes(p: &Problem, plan: &[Assigned]) -> usize {
    plan.iter()
        .filter(|a| {
            let now: BTreeSet<&StaffId> = a.staff.iter().collect();
            let before: BTreeSet<&StaffId> = p.current_staff(a.visit).iter().collect();
            now != before || a.start != p.visits[a.visit].planned
        })
        .count()
}

/// Every hard rule a suggestion breaks, checked from what it shows the coordinator (its routes
/// and its unplaced list) against `input`, independently of how it was made. A suggestion that
/// loses a visit, places one twice, or lists a placed visit as unplaced is an error.
pub fn suggestion_violations(
    input: &PlanInput,
    suggestion: &Suggestion,
) -> Result<Vec<Violation>, PlanError> {
    let p = Problem::new(input.clone())?;
    let mut plan = unstaffed(&p);
    let mut starts: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
    for route in &suggestion.routes {
        for stop in &route.stops {
            let v = p.visit_index(&stop.visit).ok_or_else(|| {
                PlanError::Invalid(format!(
                    "the suggestion routes unknown visit {}",
                    stop.visit
                ))
            })?;
            plan[v].staff.push(route.staff.clone());
            plan[v].start = minutes(&stop.start);
            starts.entry(v).or_default().insert(plan[v].start);
        }
    }
    let mut out = violations(&p, &plan);
    for (v, at) in starts {
        if at.len() > 1 {
            // The two staff of a double-staffed visit would not arrive together.
            out.push(Violation::DoubleStaffing {
                visit: p.input.visits[v].id.clone(),
            });
        }
    }
    let unplaced: BTreeSet<_> = suggestion.unplaced.iter().map(|u| &u.visit).collect();
    for (a, visit) in plan.iter().zip(&p.input.visits) {
        if visit.fixed {
            // A fact: routed with whoever of its staff is on shift, never unplaced.
            continue;
        }
        let listed = unplaced.contains(&visit.id);
        match (a.staff.is_empty(), listed) {
            (true, false) => {
                return Err(PlanError::Invalid(format!(
                    "visit {} is neither routed nor listed as unplaced",
                    visit.id
                )));
            }
            (false, true) => {
                return Err(PlanError::Invalid(format!(
                    "visit {} is routed and listed as unplaced",
                    visit.id
                )));
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
