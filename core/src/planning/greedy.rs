//! The greedy planner: visits in time order, each to the able staff member who is best by the
//! coordinator's objectives at that moment. It is the baseline the solver is measured against,
//! and the way replanning places the visits a disruption frees.

use super::model::Objective;
use super::problem::Problem;
use super::route::best_insertion;
use super::solution::Plan;

/// A day planned greedily: fixed visits stay with their staff, then every other visit, earliest
/// first (double-staffed ones first at equal times), goes to the best able staff member free.
pub fn plan(p: &Problem) -> Plan {
    let (mut plan, mut order) = facts_and_the_rest(p);
    order.sort_by_key(|&v| {
        let visit = &p.visits[v];
        (visit.earliest, std::cmp::Reverse(visit.staff_needed), v)
    });
    for v in order {
        place(p, &mut plan, v, &[]);
    }
    plan
}

/// A plan holding the fixed visits with their staff, and the other visits (in index order).
fn facts_and_the_rest(p: &Problem) -> (Plan, Vec<usize>) {
    let mut plan = Plan::empty(p);
    keep_fixed(p, &mut plan);
    let rest = (0..p.visits.len())
        .filter(|&v| !p.visits[v].fixed)
        .collect();
    (plan, rest)
}

/// The plan as it stands as routes: each on-shift staff member's visits by planned start.
pub fn current_routes(p: &Problem) -> Plan {
    let (mut plan, mut order) = facts_and_the_rest(p);
    order.sort_by_key(|&v| (p.visits[v].planned, v));
    for v in order {
        for &s in &p.visits[v].current {
            plan.routes[s].push(v);
        }
    }
    for route in &mut plan.routes {
        route.sort_by_key(|&v| (p.visits[v].planned, v));
    }
    plan
}

/// The plan as it stands made valid: what breaks a rule is taken off (see [`Plan::repair`]),
/// then everything short of staff is placed greedily. Where the plan was sent out already,
/// the closest valid plan to it.
pub fn from_current(p: &Problem) -> Plan {
    let mut plan = current_routes(p);
    plan.repair(p);
    let mut short = plan.unplaced(p);
    short.sort_by_key(|&v| (p.visits[v].planned, v));
    for v in short {
        if !p.visits[v].fixed {
            for route in &mut plan.routes {
                route.retain(|&w| w != v);
            }
            place(p, &mut plan, v, &[]);
        }
    }
    plan
}

/// Puts every fixed visit on the routes of its staff on shift, in time order (where a route
/// does not hold it already).
pub fn keep_fixed(p: &Problem, plan: &mut Plan) {
    for (v, visit) in p.visits.iter().enumerate().filter(|(_, v)| v.fixed) {
        for &s in &visit.current {
            let route = &mut plan.routes[s];
            if route.contains(&v) {
                continue;
            }
            let at = route.partition_point(|&w| p.visits[w].planned <= visit.planned);
            route.insert(at, v);
        }
    }
}

/// Places visit `v` with as many staff as it needs, none of them in `avoid`, choosing by the
/// coordinator's objectives; returns whether it was placed. A visit that cannot get all the
/// staff it needs is not placed at all.
pub fn place(p: &Problem, plan: &mut Plan, v: usize, avoid: &[usize]) -> bool {
    let mut options: Vec<(Vec<i64>, usize, usize)> = (0..p.staff.len())
        .filter(|s| !avoid.contains(s))
        .filter_map(|s| {
            let (position, added) = best_insertion(p, s, &plan.routes[s], v)?;
            Some((score(p, plan, v, s, added), s, position))
        })
        .collect();
    let needed = p.visits[v].staff_needed;
    if options.len() < needed {
        return false;
    }
    options.sort();
    for (_, s, position) in options.into_iter().take(needed) {
        plan.routes[s].insert(position, v);
    }
    true
}

/// How good giving visit `v` to staff member `s` is, one number per objective in the
/// coordinator's order (smaller is better); `added` is the travel it adds.
pub fn score(p: &Problem, plan: &Plan, v: usize, s: usize, added: i64) -> Vec<i64> {
    let patient = p.visits[v].patient;
    p.input
        .policy
        .objectives
        .iter()
        .map(|objective| match objective {
            Objective::Continuity => {
                let met_today = plan.routes[s]
                    .iter()
                    .any(|&w| p.visits[w].patient == patient);
                if met_today {
                    0
                } else {
                    i64::from(p.continuity_cost(v, s))
                }
            }
            Objective::Travel => added,
            Objective::Balance => plan.routes[s].iter().map(|&w| p.visits[w].duration).sum(),
            Objective::Changes => i64::from(!p.visits[v].current.contains(&s)),
        })
        .collect()
}
