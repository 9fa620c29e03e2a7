//! From a [`Plan`] to the [`Suggestion`] the coordinator sees: routes in order, the moves
//! against the plan as it stands with their reasons, the unplaced visits with why, and the
//! figures before and after.

use std::collections::{BTreeMap, BTreeSet};

use super::check::{self, Assigned};
use super::greedy;
use super::model::{Move, Planner, Reason, Route, Stop, Suggestion, Unplaced, Violation};
use super::problem::Problem;
use super::route::{legs, schedule};
use super::solution::{Plan, why_unplaced};
use crate::docs::plan::VisitKind;
use crate::ids::StaffId;

/// The suggestion `plan` makes, after repairing it so that no hard rule is broken. `extra`
/// holds reasons the caller knows for moving a visit (a sick call, an overrun).
pub fn suggestion(
    p: &Problem,
    mut plan: Plan,
    extra: &BTreeMap<usize, Vec<Reason>>,
    planner: Planner,
) -> Suggestion {
    plan.repair(p);
    let after = plan.assignments(p);
    let before = check::current_plan(p);
    let current_violations = check::violations(p, &before);
    let context = Context::new(p, &plan, &before, &current_violations);
    let mut moves: Vec<Move> = (0..p.visits.len())
        .filter(|&v| !p.visits[v].fixed && differs(p, &after[v]))
        .map(|v| context.move_of(&after[v], extra.get(&v)))
        .collect();
    moves.sort_by(|a, b| {
        a.start_before
            .cmp(&b.start_before)
            .then_with(|| a.visit.cmp(&b.visit))
    });
    let unplaced = plan
        .unplaced(p)
        .into_iter()
        .map(|v| unplaced(p, &plan, v))
        .collect();
    Suggestion {
        day: p.input.day,
        zone: p.input.zone.clone(),
        planner,
        notes: Vec::new(),
        objectives: p.input.policy.objectives.clone(),
        routes: routes(p, &plan),
        moves,
        unplaced,
        current_violations,
        before: check::figures(p, &before),
        after: check::figures(p, &after),
        homes_without_position: p
            .input
            .visits
            .iter()
            .zip(&p.visits)
            .filter(|(v, spec)| v.kind == VisitKind::Physical && spec.location.is_none())
            .count(),
        kept: p.visits.iter().filter(|v| v.fixed).count(),
    }
}

/// The plan as it stands, as a suggestion that changes nothing: its routes (each staff
/// member's visits by planned start, off-shift staff included), the visits nobody is assigned
/// to, the rules it breaks, its figures. What the work list's own assignment is measured by.
pub fn as_it_stands(p: &Problem) -> Suggestion {
    let before = check::current_plan(p);
    let figures = check::figures(p, &before);
    let mut by_staff: BTreeMap<&StaffId, Vec<usize>> = BTreeMap::new();
    for a in &before {
        for s in &a.staff {
            by_staff.entry(s).or_default().push(a.visit);
        }
    }
    let routes = by_staff
        .into_iter()
        .map(|(id, mut visits)| {
            visits.sort_by_key(|&v| (p.visits[v].planned, v));
            let stops = visits
                .iter()
                .map(|&v| stop(p, v, p.visits[v].planned, 0))
                .collect();
            Route {
                staff: id.clone(),
                name: p
                    .staff_index(id)
                    .map_or_else(|| id.to_string(), |s| p.input.staff[s].name.clone()),
                stops,
                work_min: minutes_u32(visits.iter().map(|&v| p.visits[v].duration).sum()),
                travel_min: 0,
            }
        })
        .collect();
    let routed = greedy::current_routes(p);
    let unplaced = before
        .iter()
        .filter(|a| a.staff.is_empty() && !p.visits[a.visit].fixed)
        .map(|a| unplaced(p, &routed, a.visit))
        .collect();
    Suggestion {
        day: p.input.day,
        zone: p.input.zone.clone(),
        planner: Planner::AsItStands,
        notes: Vec::new(),
        objectives: p.input.policy.objectives.clone(),
        routes,
        moves: Vec::new(),
        unplaced,
        current_violations: check::violations(p, &before),
        before: figures.clone(),
        after: figures,
        homes_without_position: 0,
        kept: p.visits.iter().filter(|v| v.fixed).count(),
    }
}

fn unplaced(p: &Problem, plan: &Plan, v: usize) -> Unplaced {
    Unplaced {
        visit: p.input.visits[v].id.clone(),
        patient: p.input.visits[v].patient.clone(),
        start: p.input.visits[v].start,
        why: why_unplaced(p, plan, v),
    }
}

fn stop(p: &Problem, v: usize, start: i64, travel: i64) -> Stop {
    Stop {
        visit: p.input.visits[v].id.clone(),
        patient: p.input.visits[v].patient.clone(),
        start: p.timestamp(v, start),
        end: p.timestamp(v, start + p.visits[v].duration),
        kind: p.input.visits[v].kind,
        travel_min: minutes_u32(travel),
    }
}

/// Whether a visit's staff (as a set) or start differ from the plan as it stands.
fn differs(p: &Problem, a: &Assigned) -> bool {
    let now: BTreeSet<&StaffId> = a.staff.iter().collect();
    let before: BTreeSet<&StaffId> = p.current_staff(a.visit).iter().collect();
    now != before || a.start != p.visits[a.visit].planned
}

fn routes(p: &Problem, plan: &Plan) -> Vec<Route> {
    plan.routes
        .iter()
        .enumerate()
        .map(|(s, route)| {
            let starts = schedule(p, s, route).unwrap_or_default();
            let (into, back) = legs(p, s, route);
            let stops: Vec<Stop> = route
                .iter()
                .zip(starts)
                .zip(&into)
                .map(|((&v, start), &travel)| stop(p, v, start, travel))
                .collect();
            Route {
                staff: p.input.staff[s].id.clone(),
                name: p.input.staff[s].name.clone(),
                work_min: minutes_u32(route.iter().map(|&v| p.visits[v].duration).sum()),
                travel_min: minutes_u32(into.iter().sum::<i64>() + back),
                stops,
            }
        })
        .collect()
}

fn minutes_u32(m: i64) -> u32 {
    u32::try_from(m.max(0)).unwrap_or(u32::MAX)
}

/// What reasons are derived from: the plan before and after, per staff.
struct Context<'a> {
    p: &'a Problem,
    plan: &'a Plan,
    /// The plan as it stands, as routes by staff index (on-shift staff only).
    before_routes: Vec<Vec<usize>>,
    /// Work and travel minutes per staff index, before and after.
    load_before: Vec<u32>,
    load_after: Vec<u32>,
    violations: &'a [Violation],
}

impl<'a> Context<'a> {
    fn new(
        p: &'a Problem,
        plan: &'a Plan,
        before: &[Assigned],
        violations: &'a [Violation],
    ) -> Context<'a> {
        let mut before_routes = vec![Vec::new(); p.staff.len()];
        let mut by_start: Vec<&Assigned> = before.iter().collect();
        by_start.sort_by_key(|a| (a.start, a.visit));
        for a in by_start {
            for s in a.staff.iter().filter_map(|s| p.staff_index(s)) {
                before_routes[s].push(a.visit);
            }
        }
        let load = |routes: &[Vec<usize>]| -> Vec<u32> {
            routes
                .iter()
                .enumerate()
                .map(|(s, r)| {
                    let (into, back) = legs(p, s, r);
                    let work: i64 = r.iter().map(|&v| p.visits[v].duration).sum();
                    minutes_u32(work + into.iter().sum::<i64>() + back)
                })
                .collect()
        };
        Context {
            load_before: load(&before_routes),
            load_after: load(&plan.routes),
            p,
            plan,
            before_routes,
            violations,
        }
    }

    fn move_of(&self, a: &Assigned, extra: Option<&Vec<Reason>>) -> Move {
        let p = self.p;
        let v = a.visit;
        let from = p.current_staff(v).to_vec();
        let mut reasons: Vec<Reason> = extra.cloned().unwrap_or_default();
        reasons.extend(self.problems_before(v));
        let added: Vec<usize> = a
            .staff
            .iter()
            .filter(|s| !from.contains(s))
            .filter_map(|s| p.staff_index(s))
            .collect();
        reasons.extend(added.iter().filter_map(|&s| self.continuity(v, s)));
        reasons.extend(self.travel(v, &from, &added));
        if reasons.is_empty() {
            reasons.extend(self.balance(&from, &added));
        }
        if a.start != p.visits[v].planned {
            reasons.push(Reason::Time);
        }
        if reasons.is_empty() {
            reasons.push(Reason::MakesRoom);
        }
        Move {
            visit: p.input.visits[v].id.clone(),
            patient: p.input.visits[v].patient.clone(),
            from,
            to: a.staff.clone(),
            start_before: p.input.visits[v].start,
            start_after: p.timestamp(v, a.start),
            reasons,
        }
    }

    /// What was wrong with visit `v` as planned: missing staff, competence, a block, overlaps,
    /// staff off shift.
    fn problems_before(&self, v: usize) -> Vec<Reason> {
        let p = self.p;
        let id = &p.input.visits[v].id;
        let current = p.current_staff(v);
        let mut out = Vec::new();
        if current.len() < p.visits[v].staff_needed {
            out.push(Reason::Unassigned);
        }
        for violation in self.violations {
            let reason = match violation {
                Violation::Competence { visit, staff } if visit == id => Reason::Competence {
                    staff: staff.clone(),
                },
                Violation::Blocked { visit, staff } if visit == id => Reason::Blocked {
                    staff: staff.clone(),
                },
                Violation::OffShift { visit, staff } if visit == id => Reason::OffShift {
                    staff: staff.clone(),
                },
                Violation::Overlap {
                    staff,
                    first,
                    second,
                } if first == id || second == id => Reason::Overlap {
                    staff: staff.clone(),
                },
                _ => continue,
            };
            if !out.contains(&reason) {
                out.push(reason);
            }
        }
        out
    }

    /// Continuity gained by giving visit `v` to staff member `s`, if they know the patient.
    fn continuity(&self, v: usize, s: usize) -> Option<Reason> {
        let p = self.p;
        let patient = p.visits[v].patient;
        let spec = &p.patients[patient];
        let today = self.plan.routes[s]
            .iter()
            .filter(|&&w| w != v && p.visits[w].patient == patient)
            .count();
        let visits =
            spec.usual.get(&s).copied().unwrap_or(0) + u32::try_from(today).unwrap_or(u32::MAX);
        let care_team = spec.care_team.contains(&s);
        (care_team || visits > 0).then(|| Reason::Continuity {
            staff: p.input.staff[s].id.clone(),
            care_team,
            visits,
        })
    }

    /// Travel saved getting to visit `v`: the drive in on the new route against the old one.
    fn travel(&self, v: usize, from: &[StaffId], added: &[usize]) -> Option<Reason> {
        let p = self.p;
        // A video visit (or a home without a position) takes no travel to get to.
        p.visits[v].location?;
        let old = from.iter().find_map(|s| p.staff_index(s))?;
        let new = *added.first()?;
        let leg = |routes: &[Vec<usize>], s: usize| -> Option<i64> {
            let route = &routes[s];
            let i = route.iter().position(|&w| w == v)?;
            Some(legs(p, s, route).0[i])
        };
        let before = leg(&self.before_routes, old)?;
        let after = leg(&self.plan.routes, new)?;
        (after < before).then(|| Reason::Travel {
            minutes_before: minutes_u32(before),
            minutes_after: minutes_u32(after),
        })
    }

    /// Balance: the visit goes from a longer day (as planned) to a shorter one (as suggested).
    fn balance(&self, from: &[StaffId], added: &[usize]) -> Option<Reason> {
        let old = from.iter().find_map(|s| self.p.staff_index(s))?;
        let new = *added.first()?;
        (self.load_before[old] > self.load_after[new]).then(|| Reason::Balance {
            from_minutes: self.load_before[old],
            to_minutes: self.load_after[new],
        })
    }
}
