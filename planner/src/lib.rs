//! # omsyn-planner
//!
//! The solver behind the coordinator's planning assistant. `omsyn-core`'s
//! [`planning`](omsyn_core::planning) module holds the model, the hard rules, the greedy
//! baseline, replanning and the suggestion with its reasons, all as pure functions; this crate
//! searches for the best day with [vrp-core](https://docs.rs/vrp-core) (a vehicle routing solver
//! with time windows, shifts and multiple tours) and hands its routes back to core, which repairs
//! and checks them like any other plan before anyone sees them.
//!
//! **Boundary:** only this crate knows vrp-core; its types never leave `vrp.rs`. It is a crate of
//! its own because vrp-core runs its search on rayon threads and reads the clock for its
//! telemetry, which `omsyn-core` never does. The search runs on a dedicated single-thread pool
//! with a seeded random source and without the operators that stop by the clock, so the machine's
//! load does not change the plan (vrp-core's address-keyed hash maps still let two runs differ
//! slightly). A panic inside vrp-core is contained: the greedy plan stands in, and the suggestion
//! says so.

#![deny(missing_docs)]

mod random;
mod vrp;

use std::collections::BTreeMap;

use omsyn_core::planning::{
    Plan, PlanError, PlanInput, Planner, Problem, Suggestion, greedy, outcome,
};

/// The day's suggestion: the solver's routes, repaired, checked and explained by core. Should
/// the solver fail, the greedy plan's, with a note saying why.
pub fn suggest(input: PlanInput) -> Result<Suggestion, PlanError> {
    let p = Problem::new(input)?;
    match solve(&p) {
        Ok(plan) => Ok(outcome::suggestion(
            &p,
            plan,
            &BTreeMap::new(),
            Planner::Solver,
        )),
        Err(e) => {
            let mut s =
                outcome::suggestion(&p, greedy::plan(&p), &BTreeMap::new(), Planner::Greedy);
            s.notes.push(format!(
                "{e}; the greedy planner's suggestion is shown instead"
            ));
            Ok(s)
        }
    }
}

/// The solver's routes for a problem, before core's repair: vrp-core's best solution within the
/// policy's generations, then every visit it left out offered to the greedy planner once more
/// (a double-staffed visit the search placed with one staff member only is taken off first).
pub fn solve(p: &Problem) -> Result<Plan, PlanError> {
    let movable = p.visits.iter().any(|v| !v.fixed);
    let mut plan = if movable && !p.staff.is_empty() {
        // vrp-core asserts its invariants with panics; one must not take the node down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vrp::solve(p))).map_err(
            |panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                PlanError::Solver(format!("vrp-core stopped: {what}"))
            },
        )??
    } else {
        Plan::empty(p)
    };
    greedy::keep_fixed(p, &mut plan);
    plan.repair(p);
    for v in plan.unplaced(p) {
        if !p.visits[v].fixed {
            greedy::place(p, &mut plan, v, &[]);
        }
    }
    Ok(plan)
}
