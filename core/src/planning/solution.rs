//! [`Plan`]: routes under construction, whichever planner builds them, and the repair that makes
//! any set of routes obey every hard rule before it becomes a suggestion.

use super::check::Assigned;
use super::model::Unplaceable;
use super::problem::Problem;
use super::route::{best_insertion, schedule};

/// Each staff member's visits in route order (indexes into [`Problem::visits`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Routes, by staff index.
    pub routes: Vec<Vec<usize>>,
}

impl Plan {
    /// No visit placed yet.
    pub fn empty(p: &Problem) -> Plan {
        Plan {
            routes: vec![Vec::new(); p.staff.len()],
        }
    }

    /// How many routes hold visit `v`.
    pub fn staff_count(&self, v: usize) -> usize {
        self.routes.iter().filter(|r| r.contains(&v)).count()
    }

    /// Makes every route obey the hard rules: a route that cannot be timed keeps its fixed
    /// visits (facts) and the planned ones that fit around them, by planned start; a planned
    /// visit on a staff member who may not do it is taken off; and a planned visit with fewer
    /// staff than it needs is taken off every route. What is taken off is unplaced.
    pub fn repair(&mut self, p: &Problem) {
        for (s, route) in self.routes.iter_mut().enumerate() {
            // A fact stays whoever it was with; a planned visit only with staff who may do it.
            route.retain(|&v| p.visits[v].fixed || p.eligible(v, s));
            if schedule(p, s, route).is_some() {
                continue;
            }
            let mut planned = route.clone();
            planned.retain(|&v| !p.visits[v].fixed);
            planned.sort_by_key(|&v| (p.visits[v].planned, v));
            route.retain(|&v| p.visits[v].fixed);
            route.sort_by_key(|&v| (p.visits[v].planned, v));
            for v in planned {
                if let Some((position, _)) = best_insertion(p, s, route, v) {
                    route.insert(position, v);
                }
            }
        }
        loop {
            let short: Vec<usize> = (0..p.visits.len())
                .filter(|&v| {
                    let n = self.staff_count(v);
                    !p.visits[v].fixed && n > 0 && n < p.visits[v].staff_needed
                })
                .collect();
            if short.is_empty() {
                break;
            }
            for route in &mut self.routes {
                route.retain(|v| !short.contains(v));
            }
        }
    }

    /// Every visit with its staff and start; visits on no route have no staff. The plan must
    /// have been repaired (every route can be timed).
    pub fn assignments(&self, p: &Problem) -> Vec<Assigned> {
        let mut out = super::check::unstaffed(p);
        for (s, route) in self.routes.iter().enumerate() {
            // A repaired route always has a schedule; an empty one stands for a broken route.
            let starts = schedule(p, s, route).unwrap_or_default();
            for (&v, start) in route.iter().zip(starts) {
                out[v].staff.push(p.input.staff[s].id.clone());
                out[v].start = start;
            }
        }
        out
    }

    /// Visits on fewer routes than they need (fixed ones are facts, never unplaced).
    pub fn unplaced(&self, p: &Problem) -> Vec<usize> {
        let mut count = vec![0usize; p.visits.len()];
        for route in &self.routes {
            for &v in route {
                count[v] += 1;
            }
        }
        (0..p.visits.len())
            .filter(|&v| !p.visits[v].fixed && count[v] < p.visits[v].staff_needed)
            .collect()
    }
}

/// Why visit `v` is not in `plan`: the first of competence, blocks, shifts, staff for a double
/// visit, and time that explains it.
pub fn why_unplaced(p: &Problem, plan: &Plan, v: usize) -> Unplaceable {
    let visit = &p.visits[v];
    let competent: Vec<usize> = (0..p.staff.len())
        .filter(|&s| !visit.needs_authorised || p.staff[s].authorised)
        .collect();
    if competent.is_empty() {
        return Unplaceable::NoCompetentStaff;
    }
    let able: Vec<usize> = competent
        .into_iter()
        .filter(|&s| p.eligible(v, s))
        .collect();
    if able.is_empty() {
        return Unplaceable::AllBlocked;
    }
    let in_shift = able.iter().any(|&s| {
        let staff = &p.staff[s];
        staff.shift_start <= visit.latest && visit.earliest + visit.duration <= staff.shift_end
    });
    if !in_shift {
        return Unplaceable::OutsideShifts;
    }
    let free = able
        .iter()
        .filter(|&&s| {
            plan.routes[s].contains(&v) || best_insertion(p, s, &plan.routes[s], v).is_some()
        })
        .count();
    if visit.staff_needed == 2 && free < 2 {
        Unplaceable::NotEnoughStaff { free }
    } else {
        Unplaceable::NoTime
    }
}
