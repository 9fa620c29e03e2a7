//! The coordinator's planning assistant: who visits whom, in which order, for one day.
//!
//! Pure functions from a [`PlanInput`] (the day's visits, the staff on shift, the homes'
//! positions, recent visits, blocks, the coordinator's [`Policy`]) to a [`Suggestion`] (a route
//! per staff member, the moves against the plan as it stands with their reasons, the visits that
//! could not be placed and why). No store, no clock, no threads: [`gather`] reads the input from a
//! [`Repo`](crate::Repo), and the solver that searches for the best plan lives in the
//! `omsyn-planner` crate, which hands its routes back to [`outcome::suggestion`].
//!
//! **Invariant:** no suggestion breaks a hard rule. Whatever a planner proposes is repaired
//! ([`Plan::repair`]) against the same feasibility test ([`route::schedule`]) and checked by an
//! independent one ([`check::violations`]): an authorised nurse where a tiltak needs one, two
//! staff for a double-staffed visit, nobody in two places at once (travel included), nobody past
//! their shift, no blocked staff member (sperring), and every start within the tolerance of its
//! planned time. A visit that cannot be placed under them is listed with why.
//!
//! - [`problem`]: the input checked and indexed, the travel matrix.
//! - [`route`]: timing one route, inserting a visit.
//! - [`check`]: the hard rules and the figures plans are compared by.
//! - [`greedy`]: the greedy baseline (visits in time order to the best staff member free).
//! - [`replan`]: a sick call or an overrun answered with the fewest moves.
//! - [`outcome`]: routes, moves with reasons, unplaced visits.
//! - [`gather`]: the input read from a base's store; [`accept`]: the coordinator's acceptance
//!   written back as visit-plan changes, and logged.

pub mod accept;
pub mod check;
pub mod gather;
pub mod greedy;
pub mod model;
pub mod outcome;
pub mod problem;
pub mod replan;
pub mod route;
pub mod solution;

use std::collections::BTreeMap;

pub use model::*;
pub use problem::Problem;
pub use replan::disrupted;
pub use solution::Plan;

/// Why no suggestion could be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The input is inconsistent (a shift ending before it starts, a visit on another day, an
    /// unknown staff member...).
    #[error("{0}")]
    Invalid(String),
    /// Reading the input from the store failed.
    #[error(transparent)]
    Repo(#[from] crate::RepoError),
    /// The solver failed (the greedy planner could still be used).
    #[error("the solver failed: {0}")]
    Solver(String),
}

/// A suggestion by the greedy planner (the baseline; also what a node without the solver uses).
pub fn suggest_greedy(input: PlanInput) -> Result<Suggestion, PlanError> {
    let p = Problem::new(input)?;
    let plan = greedy::plan(&p);
    Ok(outcome::suggestion(
        &p,
        plan,
        &BTreeMap::new(),
        Planner::Greedy,
    ))
}

/// The smallest set of moves that answers `disruption` (see [`replan`]).
pub fn suggest_replan(input: PlanInput, disruption: &Disruption) -> Result<Suggestion, PlanError> {
    let replanned = replan::replan(input, disruption)?;
    Ok(outcome::suggestion(
        &replanned.problem,
        replanned.plan,
        &replanned.reasons,
        Planner::Replan,
    ))
}

/// The plan as it stands (the work list's own assignment) as a suggestion that moves nothing:
/// its routes, the hard rules it breaks and its figures.
pub fn as_it_stands(input: PlanInput) -> Result<Suggestion, PlanError> {
    let p = Problem::new(input)?;
    Ok(outcome::as_it_stands(&p))
}
