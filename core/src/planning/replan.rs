//! Replanning during the day: a staff member goes home sick, or a visit runs long. Starting from
//! the plan as it stands, only what the disruption breaks is moved: every visit keeps its staff
//! and its time if it still can; the visits displaced go to the best staff member free (by the
//! coordinator's objectives, fewest changes first), within the tolerance of their time; and a
//! visit nobody has room for may push one other visit to a third staff member.

use std::collections::BTreeMap;

use super::PlanError;
use super::greedy::{current_routes, place};
use super::model::{Disruption, Objective, PlanInput, Reason};
use super::problem::Problem;
use super::route::best_insertion;
use super::solution::Plan;
use crate::ids::StaffId;
use crate::time::Timestamp;

/// A replanned day: the problem after the disruption, the plan, and why each displaced visit
/// moves.
#[derive(Debug)]
pub struct Replanned {
    /// The problem after the disruption (shifts cut, visits fixed, windows as replanned).
    pub problem: Problem,
    /// The plan: the one as it stands with the displaced visits placed anew.
    pub plan: Plan,
    /// Why each displaced visit moves (visit index).
    pub reasons: BTreeMap<usize, Vec<Reason>>,
}

/// The plan as it stands repaired around `disruption`, with the fewest moves.
pub fn replan(input: PlanInput, disruption: &Disruption) -> Result<Replanned, PlanError> {
    let (mut input, reason) = disrupted(input, disruption)?;
    let touched = touched_staff(&input, &reason);
    // Fewest changes first: the rest of the day stays as it was sent out.
    input.policy.objectives.retain(|o| *o != Objective::Changes);
    input.policy.objectives.insert(0, Objective::Changes);
    let mut p = Problem::new(input)?;
    // Everything that still works stays exactly as sent out: at first every visit keeps its
    // time, and only the visits the disruption displaces may move within the tolerance.
    let windows: Vec<(i64, i64)> = p.visits.iter().map(|v| (v.earliest, v.latest)).collect();
    for visit in &mut p.visits {
        (visit.earliest, visit.latest) = (visit.planned, visit.planned);
    }
    let mut plan = current_routes(&p);
    let staffed_before: Vec<usize> = (0..p.visits.len()).map(|v| plan.staff_count(v)).collect();
    plan.repair(&p);
    // Short of staff now: what the disruption took, and anything unassigned before.
    let mut displaced: Vec<usize> = (0..p.visits.len())
        .filter(|&v| !p.visits[v].fixed && plan.staff_count(v) < p.visits[v].staff_needed)
        .collect();
    displaced.sort_by_key(|&v| (p.visits[v].planned, v));
    for &v in &displaced {
        (p.visits[v].earliest, p.visits[v].latest) = windows[v];
    }
    let mut reasons = BTreeMap::new();
    for &v in &displaced {
        // The disruption is the reason only where it took the visit's staff: a visit that
        // lost its staff to what the plan already broke is told by that (its violation).
        let hit = p.current_staff(v).iter().any(|s| touched.contains(s));
        if hit && plan.staff_count(v) < staffed_before[v] {
            reasons.insert(v, vec![reason.clone()]);
        }
        for route in &mut plan.routes {
            route.retain(|&w| w != v);
        }
        // The greedy choice puts fewest changes first, so a remaining staff member of a
        // double-staffed visit is chosen again when free.
        if !place(&p, &mut plan, v, &[])
            && let Some(w) = make_room(&mut p, &mut plan, v, &windows)
        {
            reasons.entry(w).or_insert_with(|| vec![Reason::MakesRoom]);
        }
    }
    Ok(Replanned {
        problem: p,
        plan,
        reasons,
    })
}

/// Whose day the disruption changes: the sick staff member, or the staff of the visit that
/// runs long.
fn touched_staff(input: &PlanInput, reason: &Reason) -> Vec<StaffId> {
    match reason {
        Reason::Sick { staff } => vec![staff.clone()],
        Reason::Overrun { visit } => (input.visits.iter())
            .find(|v| &v.id == visit)
            .map(|v| v.current.clone())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The day after `disruption`: the sick staff member's shift cut (or gone), the overrunning visit
/// longer, and every visit before the disruption kept as it is; and why a visit it displaces
/// moves.
pub fn disrupted(
    mut input: PlanInput,
    disruption: &Disruption,
) -> Result<(PlanInput, Reason), PlanError> {
    let (from, reason) = apply(&mut input, disruption)?;
    for v in &mut input.visits {
        v.fixed |= v.start < from;
    }
    input.not_before = Some(input.not_before.map_or(from, |t| t.max(from)));
    Ok((input, reason))
}

/// Applies the disruption to the input; returns from when the day is replanned, and the reason
/// every displaced visit moves.
fn apply(input: &mut PlanInput, disruption: &Disruption) -> Result<(Timestamp, Reason), PlanError> {
    match disruption {
        Disruption::Sick { staff, from } => {
            let member = input
                .staff
                .iter_mut()
                .find(|s| &s.id == staff)
                .ok_or_else(|| PlanError::Invalid(format!("{staff} is not on shift that day")))?;
            if *from < member.shift_end {
                member.shift_end = (*from).max(member.shift_start);
            }
            if member.shift_end <= member.shift_start {
                input.staff.retain(|s| &s.id != staff);
            }
            Ok((
                *from,
                Reason::Sick {
                    staff: staff.clone(),
                },
            ))
        }
        Disruption::Overrun { visit, minutes } => {
            let v = input
                .visits
                .iter_mut()
                .find(|v| &v.id == visit)
                .ok_or_else(|| {
                    PlanError::Invalid(format!("visit {visit} is not planned that day"))
                })?;
            if *minutes == 0 || *minutes > 12 * 60 {
                return Err(PlanError::Invalid(format!(
                    "an overrun is 1 to 720 minutes, not {minutes}"
                )));
            }
            v.end = v.end.plus_minutes(i64::from(*minutes));
            v.fixed = true;
            Ok((
                v.start,
                Reason::Overrun {
                    visit: visit.clone(),
                },
            ))
        }
    }
}

/// Places visit `v` by moving one other (planned, single-staffed) visit out of its way: later
/// on the same route within its tolerance, or to another staff member; returns the visit moved
/// if it worked. The visit moved may move in time, so its window is its own again.
fn make_room(p: &mut Problem, plan: &mut Plan, v: usize, windows: &[(i64, i64)]) -> Option<usize> {
    if p.visits[v].staff_needed != 1 {
        return None;
    }
    let able: Vec<usize> = (0..p.staff.len()).filter(|&s| p.eligible(v, s)).collect();
    for s in able {
        for i in 0..plan.routes[s].len() {
            let w = plan.routes[s][i];
            if p.visits[w].fixed || p.visits[w].staff_needed != 1 {
                continue;
            }
            let mut without = plan.routes[s].clone();
            without.remove(i);
            let Some((position, _)) = best_insertion(p, s, &without, v) else {
                continue;
            };
            let mut trial = plan.clone();
            trial.routes[s] = without;
            trial.routes[s].insert(position, v);
            let pinned = (p.visits[w].earliest, p.visits[w].latest);
            (p.visits[w].earliest, p.visits[w].latest) = windows[w];
            if place(p, &mut trial, w, &[]) {
                *plan = trial;
                return Some(w);
            }
            (p.visits[w].earliest, p.visits[w].latest) = pinned;
        }
    }
    None
}
