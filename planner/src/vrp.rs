//! The day as a vehicle routing problem for vrp-core, and its solution back as a [`Plan`].
//!
//! - A staff member is a vehicle: it leaves its base (or nowhere, with no travel) at shift
//!   start and must be back (or done) by shift end.
//! - A visit is a job at the home (a video visit, or a home with no position, has no location:
//!   vrp-core serves it where the vehicle is, so it costs no travel and the next trip starts
//!   from the last home) with the visit's duration and a time window of planned start ± the
//!   tolerance.
//! - A double-staffed visit is two jobs with the same single start time that no route may hold
//!   both of; a visit the search places with one of two is taken off by core's repair.
//! - Competence, blocks (sperring), zones and fixed visits are one rule: the job's staff must be
//!   able to take it ([`Problem::eligible`]; a fixed visit only its own staff).
//! - Objectives, in the coordinator's order after placing every visit: continuity (a cost per
//!   new patient–staff pairing: nothing for staff the patient met this week, less for the care
//!   team and usual staff than for a stranger), travel (minutes, as distance), balance
//!   (vrp-core's duration balance) and changes (jobs away from their planned staff).

use std::sync::Arc;

use omsyn_core::planning::route::schedule;
use omsyn_core::planning::{Objective, Plan, PlanError, Problem, greedy};
use vrp_core::construction::features::create_duration_balanced_feature;
use vrp_core::construction::heuristics::UnassignmentInfo;
use vrp_core::models::common::{Location, Profile, Schedule, TimeWindow};
use vrp_core::models::problem::{JobPlaceBuilder, TravelTime};
use vrp_core::models::solution::{Activity, Place as ActivityPlace, Registry, Route, Tour};
use vrp_core::models::{Goal, Problem as VrpProblem};
use vrp_core::prelude::*;
use vrp_core::rosomaxa::evolution::TelemetryMode;
use vrp_core::rosomaxa::hyper::StaticSelective;
use vrp_core::rosomaxa::utils::Parallelism;
use vrp_core::solver::search::*;
use vrp_core::solver::{TargetHeuristic, TargetSearchOperator, create_scalar_operator_probability};

use crate::random::SeededRandom;

/// The location with no travel to or from it: where staff without a known base start and end.
const NOWHERE: Location = 0;

/// Key of a job's (visit index, half) dimension.
struct JobKey;
/// Key of a vehicle's staff index dimension.
struct StaffKey;

fn job_ref(job: &Job) -> Option<(usize, usize)> {
    job.dimens().get_value::<JobKey, (usize, usize)>().copied()
}

fn staff_of(route: &Route) -> Option<usize> {
    route
        .actor
        .vehicle
        .dimens
        .get_value::<StaffKey, usize>()
        .copied()
}

fn solver_error(e: impl std::fmt::Display) -> PlanError {
    PlanError::Solver(e.to_string())
}

/// Solves `p` with vrp-core on a fresh single-thread pool (repeatable for the policy's seed).
pub(crate) fn solve(p: &Problem) -> Result<Plan, PlanError> {
    let shared = Arc::new(p.clone());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(solver_error)?;
    pool.install(|| solve_on_this_thread(&shared))
}

fn solve_on_this_thread(p: &Arc<Problem>) -> Result<Plan, PlanError> {
    let origin = origin(p);
    let transport: Arc<dyn TransportCost> = Arc::new(Travel { p: p.clone() });
    let (jobs, by_visit) = jobs(p, origin)?;
    let goal = goal(p, transport.clone(), by_visit.clone())?;
    let problem = Arc::new(
        ProblemBuilder::default()
            .add_jobs(jobs.into_iter())
            .add_vehicles(vehicles(p, origin)?.into_iter())
            .with_goal(goal)
            .with_transport_cost(transport)
            .with_logger(Arc::new(|_: &str| {}))
            .build()
            .map_err(solver_error)?,
    );
    let environment = Arc::new(Environment::new(
        Arc::new(SeededRandom::new(p.input.policy.seed)),
        None,
        Parallelism::new_with_cpus(1),
        Arc::new(|_: &str| {}),
        false,
    ));
    let heuristic = heuristic(&problem, &environment);
    // The search starts from the greedy plan: building vrp-core's own initial solutions over
    // a whole zone (hundreds of visits on routes of twenty-odd) costs more than the search.
    // When fewest changes come first (the plan was sent out), it starts from the plan as it
    // stands too, made valid, so what nothing is gained by changing stays as it is. (Otherwise
    // that start holds the search near a plan that may be far from the best.)
    let mut plans = vec![greedy::plan(p)];
    if p.input.policy.objectives.first() == Some(&Objective::Changes) {
        plans.insert(0, greedy::from_current(p));
    }
    let starts = plans
        .iter()
        .map(|plan| initial_solution(p, plan, &problem, &by_visit, &environment, origin))
        .collect::<Vec<_>>();
    let config = VrpConfigBuilder::new(problem.clone())
        .set_environment(environment)
        .set_telemetry_mode(TelemetryMode::None)
        .set_heuristic(heuristic)
        .prebuild()
        .map_err(solver_error)?
        .with_init_solutions(starts, Some(plans.len()))
        .with_max_generations(Some(p.input.policy.generations as usize))
        .build()
        .map_err(solver_error)?;
    let solution = Solver::new(problem, config).solve().map_err(solver_error)?;
    Ok(plan_of(p, &solution))
}

/// vrp-core's search, made repeatable: its ruin-and-recreate and local search operators, chosen
/// with fixed probabilities (its static heuristic). Left out are the operators that bound
/// themselves by the wall clock (the swap-star exchange, the decomposing search), and its
/// dynamic heuristic, which weighs operators by their measured time: with either, the machine's
/// load would change the suggestion. The weights follow vrp-core's own defaults.
fn heuristic(problem: &Arc<VrpProblem>, environment: &Arc<Environment>) -> TargetHeuristic {
    let random = environment.random.clone();
    let recreate = recreate(&random);
    let local = local_search();
    let ruin_recreate: TargetSearchOperator = Arc::new(WeightedHeuristicOperator::new(
        vec![
            Arc::new(RuinAndRecreate::new(ruin(problem), recreate.clone())),
            local.clone(),
        ],
        vec![100, 10],
    ));
    let diversify = Arc::new(WeightedHeuristicOperator::new(
        vec![Arc::new(RedistributeSearch::new(recreate)), local.clone()],
        vec![10, 2],
    ));
    Box::new(StaticSelective::new(
        vec![
            (
                ruin_recreate,
                create_scalar_operator_probability(1., random.clone()),
            ),
            (local, create_scalar_operator_probability(0.05, random)),
        ],
        vec![diversify],
    ))
}

/// What to take out of a plan before putting it back together: strings of neighbouring visits
/// mostly, with a few random ones besides.
fn ruin(problem: &Arc<VrpProblem>) -> Arc<dyn Ruin> {
    let limits = RemovalLimits::new(problem.as_ref());
    let few = RemovalLimits {
        removed_activities_range: 2..(limits.removed_activities_range.end / 3).max(8),
        affected_routes_range: 1..2,
    };
    let extra: (Arc<dyn Ruin>, Float) = (Arc::new(RandomJobRemoval::new(few)), 0.1);
    let with_extra = |ruin: Arc<dyn Ruin>| vec![(ruin, 1.), extra.clone()];
    Arc::new(WeightedRuin::new(vec![
        (
            with_extra(Arc::new(AdjustedStringRemoval::new_with_defaults(
                limits.clone(),
            ))),
            100,
        ),
        (
            with_extra(Arc::new(NeighbourRemoval::new(limits.clone()))),
            10,
        ),
        (
            with_extra(Arc::new(WorstJobRemoval::new(4, limits.clone()))),
            10,
        ),
        (
            with_extra(Arc::new(RandomRouteRemoval::new(limits.clone()))),
            1,
        ),
        (with_extra(Arc::new(RandomJobRemoval::new(limits))), 1),
    ]))
}

/// How to put visits back.
fn recreate(random: &Arc<dyn Random>) -> Arc<dyn Recreate> {
    Arc::new(WeightedRecreate::new(vec![
        (
            Arc::new(RecreateWithSkipBest::new(1, 2, random.clone())),
            50,
        ),
        (Arc::new(RecreateWithRegret::new(2, 3, random.clone())), 20),
        (Arc::new(RecreateWithCheapest::new(random.clone())), 20),
        (
            Arc::new(RecreateWithPerturbation::new_with_defaults(random.clone())),
            10,
        ),
        (Arc::new(RecreateWithGaps::new(2, 20, random.clone())), 5),
        (
            Arc::new(RecreateWithBlinks::new_with_defaults(random.clone())),
            5,
        ),
    ]))
}

/// Exchanges between and within routes (without the swap-star exchange, which stops by the
/// clock).
fn local_search() -> TargetSearchOperator {
    Arc::new(LocalSearch::new(Arc::new(CompositeLocalOperator::new(
        vec![
            (Arc::new(ExchangeInterRouteBest::default()), 100),
            (Arc::new(ExchangeSequence::default()), 100),
            (Arc::new(ExchangeInterRouteRandom::default()), 30),
            (Arc::new(ExchangeIntraRouteRandom::default()), 30),
        ],
        1,
        2,
    ))))
}

/// A plan as vrp-core's starting solution: each staff member's visits in route order, a
/// double-staffed visit's halves on its two routes, everything else unassigned.
fn initial_solution(
    p: &Arc<Problem>,
    plan: &Plan,
    problem: &Arc<VrpProblem>,
    by_visit: &[Vec<Job>],
    environment: &Arc<Environment>,
    origin: i64,
) -> InsertionContext {
    let mut registry = Registry::new(problem.fleet.as_ref(), environment.random.clone());
    let mut used = vec![0usize; p.visits.len()];
    let mut routes = Vec::new();
    for actor in &problem.fleet.actors {
        let Some(&s) = actor.vehicle.dimens.get_value::<StaffKey, usize>() else {
            continue;
        };
        let mut tour = Tour::new(actor);
        let mut at = actor
            .detail
            .start
            .as_ref()
            .map_or(NOWHERE, |start| start.location);
        for &v in &plan.routes[s] {
            let Some(job) = by_visit[v].get(used[v]) else {
                continue;
            };
            used[v] += 1;
            let visit = &p.visits[v];
            at = location(visit.location).unwrap_or(at);
            tour.insert_at(
                Activity {
                    place: ActivityPlace {
                        idx: 0,
                        location: at,
                        duration: visit.duration as Float,
                        time: TimeWindow::new(
                            at_minute(visit.earliest, origin),
                            at_minute(visit.latest, origin),
                        ),
                    },
                    schedule: Schedule::new(0.0, 0.0),
                    job: Some(job.to_single().clone()),
                    commute: None,
                },
                tour.job_activity_count() + 1,
            );
        }
        if tour.has_jobs() {
            registry.use_actor(actor);
            routes.push(Route {
                actor: actor.clone(),
                tour,
            });
        }
    }
    let unassigned = by_visit
        .iter()
        .enumerate()
        .flat_map(|(v, jobs)| jobs.iter().skip(used[v]))
        .map(|job| (job.clone(), UnassignmentInfo::Unknown))
        .collect();
    let solution = Solution {
        cost: 0.0,
        registry,
        routes,
        unassigned,
        telemetry: None,
    };
    InsertionContext::new_from_solution(problem.clone(), (solution, None), environment.clone())
}

/// The solver's time zero: the earliest shift start or visit window (keeps the numbers small).
fn origin(p: &Problem) -> i64 {
    let staff = p.staff.iter().map(|s| s.shift_start);
    let visits = p.visits.iter().map(|v| v.earliest);
    staff.chain(visits).min().unwrap_or(0)
}

fn at_minute(minute: i64, origin: i64) -> Float {
    (minute - origin) as Float
}

fn location(l: Option<usize>) -> Option<Location> {
    l.map(|l| l + 1)
}

/// One job per staff member a visit needs; returns them with each visit's jobs (for the rule
/// that the two halves of a double-staffed visit go to different staff).
fn jobs(p: &Problem, origin: i64) -> Result<(Vec<Job>, Vec<Vec<Job>>), PlanError> {
    let mut all = Vec::new();
    let mut by_visit = Vec::with_capacity(p.visits.len());
    for (v, visit) in p.visits.iter().enumerate() {
        let mut halves = Vec::new();
        // A fixed visit takes the time of each of its staff on shift, whatever it needed.
        let staff = if visit.fixed {
            visit.current.len()
        } else {
            visit.staff_needed
        };
        for half in 0..staff {
            let place = JobPlaceBuilder::default()
                .location(location(visit.location))
                .duration(visit.duration as Float)
                .times(vec![TimeWindow::new(
                    at_minute(visit.earliest, origin),
                    at_minute(visit.latest, origin),
                )])
                .build()
                .map_err(solver_error)?;
            let job = SingleBuilder::default()
                .id(&format!("{v}/{half}"))
                .dimension(|d| d.set_value::<JobKey, _>((v, half)))
                .add_place(place)
                .build_as_job()
                .map_err(solver_error)?;
            halves.push(job.clone());
            all.push(job);
        }
        by_visit.push(halves);
    }
    Ok((all, by_visit))
}

fn vehicles(p: &Problem, origin: i64) -> Result<Vec<Vehicle>, PlanError> {
    p.staff
        .iter()
        .enumerate()
        .map(|(s, staff)| {
            let base = location(staff.base).unwrap_or(NOWHERE);
            let detail = VehicleDetailBuilder::default()
                .set_start_location(base)
                .set_start_time(at_minute(staff.shift_start, origin))
                .set_end_location(base)
                .set_end_time(at_minute(staff.shift_end, origin))
                .build()
                .map_err(solver_error)?;
            VehicleBuilder::default()
                .id(&format!("staff-{s}"))
                .dimension(|d| d.set_value::<StaffKey, _>(s))
                .set_distance_cost(1.0)
                .add_detail(detail)
                .build()
                .map_err(solver_error)
        })
        .collect()
}

fn goal(
    p: &Arc<Problem>,
    transport: Arc<dyn TransportCost>,
    twins: Vec<Vec<Job>>,
) -> Result<GoalContext, PlanError> {
    let features = vec![
        MinimizeUnassignedBuilder::new("placed")
            .build()
            .map_err(solver_error)?,
        TransportFeatureBuilder::new("travel")
            .set_transport_cost(transport)
            .set_time_constrained(true)
            .build_minimize_distance()
            .map_err(solver_error)?,
        FeatureBuilder::default()
            .with_name("rules")
            .with_constraint(Rules {
                p: p.clone(),
                twins,
            })
            .build()
            .map_err(solver_error)?,
        FeatureBuilder::default()
            .with_name("continuity")
            .with_objective(Continuity { p: p.clone() })
            .with_state(PairingsState { p: p.clone() })
            .build()
            .map_err(solver_error)?,
        create_duration_balanced_feature("balance").map_err(solver_error)?,
        FeatureBuilder::default()
            .with_name("changes")
            .with_objective(Changes {
                p: p.clone(),
                with_times: p.input.policy.objectives.first() == Some(&Objective::Changes),
            })
            .build()
            .map_err(solver_error)?,
    ];
    let mut order = vec!["placed"];
    order.extend(p.input.policy.objectives.iter().map(|o| match o {
        Objective::Continuity => "continuity",
        Objective::Travel => "travel",
        Objective::Balance => "balance",
        Objective::Changes => "changes",
    }));
    let main = Goal::subset_of(&features, &order).map_err(solver_error)?;
    GoalContextBuilder::with_features(&features)
        .map_err(solver_error)?
        .set_main_goal(main)
        .build()
        .map_err(solver_error)
}

/// The routes of vrp-core's solution, in tour order.
fn plan_of(p: &Problem, solution: &Solution) -> Plan {
    let mut plan = Plan::empty(p);
    for route in &solution.routes {
        let Some(s) = staff_of(route) else { continue };
        for activity in route.tour.all_activities() {
            let visit = activity
                .job
                .as_ref()
                .and_then(|single| single.dimens.get_value::<JobKey, (usize, usize)>());
            if let Some(&(v, _)) = visit {
                plan.routes[s].push(v);
            }
        }
    }
    plan
}

/// Travel minutes from core's matrix; `NOWHERE` is no travel.
struct Travel {
    p: Arc<Problem>,
}

impl Travel {
    fn minutes(&self, from: Location, to: Location) -> Float {
        let index = |l: Location| l.checked_sub(1);
        self.p.travel(index(from), index(to)) as Float
    }
}

impl TransportCost for Travel {
    fn duration_approx(&self, _: &Profile, from: Location, to: Location) -> Float {
        self.minutes(from, to)
    }

    fn distance_approx(&self, _: &Profile, from: Location, to: Location) -> Float {
        self.minutes(from, to)
    }

    fn duration(&self, _: &Route, from: Location, to: Location, _: TravelTime) -> Float {
        self.minutes(from, to)
    }

    fn distance(&self, _: &Route, from: Location, to: Location, _: TravelTime) -> Float {
        self.minutes(from, to)
    }
}

/// Who may take a job: competence, blocks, zone, a fixed visit's own staff, and never both
/// halves of a double-staffed visit.
struct Rules {
    p: Arc<Problem>,
    twins: Vec<Vec<Job>>,
}

impl FeatureConstraint for Rules {
    fn evaluate(&self, move_ctx: &MoveContext<'_>) -> Option<ConstraintViolation> {
        let MoveContext::Route { route_ctx, job, .. } = move_ctx else {
            return None;
        };
        let (Some((v, _)), Some(s)) = (job_ref(job), staff_of(route_ctx.route())) else {
            return None;
        };
        let visit = &self.p.visits[v];
        let allowed = if visit.fixed {
            visit.current.contains(&s)
        } else {
            self.p.eligible(v, s)
        };
        let tour = &route_ctx.route().tour;
        let twin_here = self.twins[v].iter().any(|t| t != *job && tour.contains(t));
        if allowed && !twin_here {
            None
        } else {
            ConstraintViolation::fail(ViolationCode(1))
        }
    }
}

/// Key of a route's [`Pairings`] state.
struct PairingsKey;

/// The patients a route visits (sorted) and what its patient–staff pairings cost: kept per
/// route and refreshed when the route changes, so estimating an insertion is a lookup.
struct Pairings {
    patients: Vec<usize>,
    cost: Float,
}

impl Pairings {
    fn of(p: &Problem, route: &Route) -> Pairings {
        let mut patients: Vec<(usize, usize)> = route
            .tour
            .jobs()
            .filter_map(job_ref)
            .map(|(v, _)| (p.visits[v].patient, v))
            .collect();
        patients.sort_unstable();
        patients.dedup_by_key(|(patient, _)| *patient);
        let cost = match staff_of(route) {
            Some(s) => patients
                .iter()
                .map(|&(_, v)| Float::from(p.continuity_cost(v, s)))
                .sum(),
            None => 0.0,
        };
        Pairings {
            patients: patients.into_iter().map(|(patient, _)| patient).collect(),
            cost,
        }
    }
}

struct Continuity {
    p: Arc<Problem>,
}

impl Continuity {
    fn with_pairings<T>(&self, route_ctx: &RouteContext, f: impl FnOnce(&Pairings) -> T) -> T {
        match route_ctx.state().get_tour_state::<PairingsKey, Pairings>() {
            Some(kept) => f(kept),
            None => f(&Pairings::of(&self.p, route_ctx.route())),
        }
    }
}

impl FeatureObjective for Continuity {
    fn fitness(&self, solution: &InsertionContext) -> Cost {
        let routes = solution.solution.routes.iter();
        routes.map(|r| self.with_pairings(r, |k| k.cost)).sum()
    }

    fn estimate(&self, move_ctx: &MoveContext<'_>) -> Cost {
        let MoveContext::Route { route_ctx, job, .. } = move_ctx else {
            return 0.0;
        };
        let (Some((v, _)), Some(s)) = (job_ref(job), staff_of(route_ctx.route())) else {
            return 0.0;
        };
        let patient = self.p.visits[v].patient;
        if self.with_pairings(route_ctx, |k| k.patients.binary_search(&patient).is_ok()) {
            0.0
        } else {
            Float::from(self.p.continuity_cost(v, s))
        }
    }
}

/// Keeps each route's [`Pairings`] up to date.
struct PairingsState {
    p: Arc<Problem>,
}

impl FeatureState for PairingsState {
    fn accept_insertion(&self, solution_ctx: &mut SolutionContext, route_index: usize, _: &Job) {
        if let Some(route_ctx) = solution_ctx.routes.get_mut(route_index) {
            self.accept_route_state(route_ctx);
        }
    }

    fn accept_route_state(&self, route_ctx: &mut RouteContext) {
        let pairings = Pairings::of(&self.p, route_ctx.route());
        route_ctx
            .state_mut()
            .set_tour_state::<PairingsKey, _>(pairings);
    }

    fn accept_solution_state(&self, solution_ctx: &mut SolutionContext) {
        for route_ctx in solution_ctx.routes.iter_mut().filter(|r| r.is_stale()) {
            self.accept_route_state(route_ctx);
        }
    }
}

struct Changes {
    p: Arc<Problem>,
    /// Whether time changes count too: when fewest changes come first (timing every route in
    /// every fitness costs a tenth of the search, wasted when changes only break ties).
    with_times: bool,
}

impl Changes {
    fn cost(&self, job: &Job, s: usize) -> Cost {
        match job_ref(job) {
            Some((v, _)) if !self.p.visits[v].current.is_empty() => {
                Float::from(u8::from(!self.p.visits[v].current.contains(&s)))
            }
            _ => 0.0,
        }
    }
}

impl Changes {
    /// Visits of a route that core's timing would move from their planned start.
    fn moved_in_time(&self, route: &Route, s: usize) -> Cost {
        let visits: Vec<usize> = route
            .tour
            .all_activities()
            .filter_map(|a| a.job.as_ref())
            .filter_map(|single| single.dimens.get_value::<JobKey, (usize, usize)>())
            .map(|&(v, _)| v)
            .collect();
        let starts = schedule(&self.p, s, &visits).unwrap_or_default();
        let moved = visits
            .iter()
            .zip(starts)
            .filter(|&(&v, start)| start != self.p.visits[v].planned)
            .count();
        moved as Cost
    }
}

impl FeatureObjective for Changes {
    /// Staff changes plus time changes: a plan sent out changes least when neither moves.
    /// (Estimates see staff changes only; times settle when the whole route is known.)
    fn fitness(&self, solution: &InsertionContext) -> Cost {
        solution
            .solution
            .routes
            .iter()
            .filter_map(|r| staff_of(r.route()).map(|s| (r.route(), s)))
            .map(|(route, s)| {
                let staff: Cost = route.tour.jobs().map(|j| self.cost(j, s)).sum();
                let times = if self.with_times {
                    self.moved_in_time(route, s)
                } else {
                    0.0
                };
                staff + times
            })
            .sum()
    }

    fn estimate(&self, move_ctx: &MoveContext<'_>) -> Cost {
        match move_ctx {
            MoveContext::Route { route_ctx, job, .. } => {
                staff_of(route_ctx.route()).map_or(0.0, |s| self.cost(job, s))
            }
            MoveContext::Activity { .. } => 0.0,
        }
    }
}
