//! Timing one staff member's route, and inserting a visit into it: the feasibility test every
//! planner here shares (the greedy baseline, replanning, and the check of the solver's answer).

use super::problem::Problem;

/// Start minutes of each visit of `route` (staff member `s`, visits in order), or `None` if the
/// route breaks a rule: a window missed (travel included), or the shift overrun.
///
/// Starts are as close to the planned times as the route allows: the earliest feasible starts
/// forward, the latest feasible starts backward (so later visits stay reachable), then each
/// start is the planned one clamped between the two. A fixed visit (under way or documented)
/// is a fact: it keeps its time whatever came before it, and only the visits around it must
/// make room.
pub fn schedule(p: &Problem, s: usize, route: &[usize]) -> Option<Vec<i64>> {
    let staff = &p.staff[s];
    let (into, back) = legs(p, s, route);
    let mut t = staff.shift_start;
    for (i, &v) in route.iter().enumerate() {
        let visit = &p.visits[v];
        let arrival = t + into[i];
        let after_plan = i > 0 && !p.visits[route[i - 1]].fixed;
        let start = if visit.fixed {
            // Only a planned visit before it can make a fact late; facts may overlap facts.
            if after_plan && arrival > visit.planned {
                return None;
            }
            visit.planned
        } else {
            arrival.max(visit.earliest)
        };
        if start > visit.latest {
            return None;
        }
        t = t.max(start + visit.duration);
    }
    let ends_with_fact = route.last().is_some_and(|&v| p.visits[v].fixed);
    if t + back > staff.shift_end && !ends_with_fact {
        return None;
    }
    let mut latest = vec![0; route.len()];
    let mut limit = staff.shift_end - back;
    for (i, &v) in route.iter().enumerate().rev() {
        let visit = &p.visits[v];
        latest[i] = if visit.fixed {
            visit.planned
        } else {
            visit.latest.min(limit - visit.duration)
        };
        limit = latest[i] - into[i];
    }
    let mut starts = Vec::with_capacity(route.len());
    let mut t = staff.shift_start;
    for (i, &v) in route.iter().enumerate() {
        let visit = &p.visits[v];
        let start = if visit.fixed {
            visit.planned
        } else {
            (t + into[i])
                .max(visit.earliest)
                .max(visit.planned.min(latest[i]))
        };
        starts.push(start);
        t = t.max(start + visit.duration);
    }
    Some(starts)
}

/// Minutes of travel into each visit of `route`, and back to the base after the last. A video
/// visit is made where the staff member is, so the next trip starts from the last home visited.
pub fn legs(p: &Problem, s: usize, route: &[usize]) -> (Vec<i64>, i64) {
    let base = p.staff[s].base;
    let mut at = base;
    let mut into = Vec::with_capacity(route.len());
    for &v in route {
        let location = p.visits[v].location;
        into.push(p.travel(at, location));
        if location.is_some() {
            at = location;
        }
    }
    (into, p.travel(at, base))
}

/// Minutes of travel of a whole route.
pub fn travel(p: &Problem, s: usize, route: &[usize]) -> i64 {
    let (into, back) = legs(p, s, route);
    into.iter().sum::<i64>() + back
}

/// Where visit `v` fits best into `route` (staff member `s`): the position with the least
/// added travel whose route stays feasible, and that added travel.
pub fn best_insertion(p: &Problem, s: usize, route: &[usize], v: usize) -> Option<(usize, i64)> {
    if !p.eligible(v, s) || route.contains(&v) {
        return None;
    }
    let before = travel(p, s, route);
    let mut best: Option<(usize, i64)> = None;
    let mut candidate = Vec::with_capacity(route.len() + 1);
    for position in insertion_positions(p, route, v) {
        candidate.clear();
        candidate.extend_from_slice(&route[..position]);
        candidate.push(v);
        candidate.extend_from_slice(&route[position..]);
        if schedule(p, s, &candidate).is_none() {
            continue;
        }
        let added = travel(p, s, &candidate) - before;
        if best.is_none_or(|(_, b)| added < b) {
            best = Some((position, added));
        }
    }
    best
}

/// Positions worth trying: those whose neighbours' windows do not exclude `v` by time alone.
fn insertion_positions(p: &Problem, route: &[usize], v: usize) -> std::ops::RangeInclusive<usize> {
    let visit = &p.visits[v];
    // Visits that must start before `v` could end come first; those that cannot start
    // before `v`'s latest start come after it.
    let first = route
        .iter()
        .take_while(|&&w| p.visits[w].latest + p.visits[w].duration <= visit.earliest)
        .count();
    let last = route
        .iter()
        .rposition(|&w| p.visits[w].earliest < visit.latest + visit.duration)
        .map_or(0, |i| i + 1);
    first..=last.max(first)
}
