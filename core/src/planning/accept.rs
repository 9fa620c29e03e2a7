//! The coordinator's act: accepting a suggestion's moves, all or some. Nothing is assigned
//! without it. The moves are checked against the plan as it stands now (a visit changed since
//! the suggestion was made is refused, as is a subset of moves that would break a hard rule the
//! plan does not already break), then written as ordinary visit-plan changes — signed, synced
//! and kept in each visit's revisions — with one access-log entry saying what was accepted, in
//! one transaction.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde::Serialize;

use super::PlanError;
use super::check;
use super::gather::{GatherOptions, History, gather_with};
use super::model::{Move, PlanInput, Violation};
use super::problem::Problem;
use crate::docs::plan::VisitChange;
use crate::ids::{StaffId, VisitId};
use crate::repo::Repo;
use crate::time::Timestamp;
use crate::trust::audit::{AccessEvent, AuditAction};

/// What an acceptance wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Visits reassigned.
    pub reassigned: usize,
    /// Visits moved in time.
    pub rescheduled: usize,
    /// The visits changed.
    pub visits: Vec<VisitId>,
}

/// Accepts `moves` (from a suggestion for `options`' day and zone): checks them against the plan
/// as it stands now, then writes them and logs the acceptance, all in one transaction.
pub fn accept(
    repo: &Repo,
    now: Timestamp,
    rng: &mut impl RngCore,
    options: &GatherOptions,
    moves: &[Move],
) -> Result<Accepted, PlanError> {
    prepare(repo, now, options, moves)?.write(repo, now, rng)
}

/// An acceptance checked against the plan as it stood when read, not yet written.
#[derive(Debug)]
pub struct Prepared {
    /// The moves, each with its visit's end as the check read it.
    moves: Vec<(Move, Timestamp)>,
    changes: Vec<(VisitId, VisitChange)>,
    accepted: Accepted,
    what: String,
    /// What the check read, and the store's log position before it read: a write that finds
    /// the log moved on checks the moves again.
    options: GatherOptions,
    read_at_seq: u64,
}

/// Checks `moves` against the plan as it stands (every rule, over the day's whole plan).
pub fn prepare(
    repo: &Repo,
    now: Timestamp,
    options: &GatherOptions,
    moves: &[Move],
) -> Result<Prepared, PlanError> {
    if moves.is_empty() {
        return Err(PlanError::Invalid("no moves to accept".into()));
    }
    let read_at_seq = repo.store().seq().map_err(crate::RepoError::from)?;
    let (input, changes) = check_against_the_day(repo, now, options, moves, History::Read)?;
    let end_of = |m: &Move| {
        let visit = input.visits.iter().find(|v| v.id == m.visit);
        visit.map_or(m.start_before, |v| v.end)
    };
    let accepted = Accepted {
        reassigned: moves.iter().filter(|m| m.reassigns()).count(),
        rescheduled: moves.iter().filter(|m| m.reschedules()).count(),
        visits: moves.iter().map(|m| m.visit.clone()).collect(),
    };
    let what = format!(
        "planning suggestion for {}{} accepted: {} visit(s) reassigned, {} moved in time",
        options.day,
        options
            .zone
            .as_deref()
            .map(|z| format!(" in {z}"))
            .unwrap_or_default(),
        accepted.reassigned,
        accepted.rescheduled
    );
    Ok(Prepared {
        moves: moves.iter().map(|m| (m.clone(), end_of(m))).collect(),
        changes,
        accepted,
        what,
        options: options.clone(),
        read_at_seq,
    })
}

/// Reads the day's plan (for the patients the user may see) and checks `moves` against it:
/// every hard rule, over the whole day.
fn check_against_the_day(
    repo: &Repo,
    now: Timestamp,
    options: &GatherOptions,
    moves: &[Move],
    history: History,
) -> Result<(PlanInput, Vec<(VisitId, VisitChange)>), PlanError> {
    let mut disclosure = repo.disclose(now, AuditAction::Read, &what_is_planned(options));
    let input = gather_with(repo, options, &mut disclosure, history)?;
    // Read only to check the moves: what it shows is a refusal, or the acceptance's own entry,
    // which names every patient it moved. A refused acceptance leaves no trace.
    disclosure.finish_logging(false)?;
    let changes = validate(&input, moves)?;
    Ok((input, changes))
}

impl Prepared {
    /// Writes the moves and logs the acceptance in one transaction, after checking again,
    /// inside it, that each moved visit is as the suggestion found it and still undocumented:
    /// the day's plan was read before the transaction, and a session may have committed a
    /// peer's reassignment or a nurse's visit in between — written over, it would be lost
    /// without a conflict.
    pub fn write(
        self,
        repo: &Repo,
        now: Timestamp,
        rng: &mut impl RngCore,
    ) -> Result<Accepted, PlanError> {
        let Prepared {
            moves,
            changes,
            accepted,
            what,
            options,
            read_at_seq,
        } = self;
        repo.transaction(|tx| {
            for (m, end) in &moves {
                still_as_suggested(tx, m, *end)?;
            }
            // Inside the write nothing else commits: a log that moved since the check (another
            // visit given to the same nurse, a block) is read again as it stands, and every rule
            // checked again over the day — without the weeks of history, which no hard rule
            // reads, since every other write waits meanwhile.
            if repo.store().seq().map_err(crate::RepoError::from)? != read_at_seq {
                let only: Vec<Move> = moves.iter().map(|(m, _)| m.clone()).collect();
                check_against_the_day(repo, now, &options, &only, History::Skip).map_err(
                    |e| match e {
                        PlanError::Invalid(why) => PlanError::Invalid(format!(
                            "the plan changed since the suggestion was made: {why}; ask for a new suggestion"
                        )),
                        other => other,
                    },
                )?;
            }
            for (visit, change) in &changes {
                tx.change_visit(now, rng, visit, change)?;
            }
            let mut event = AccessEvent::new(
                None,
                AuditAction::Write,
                what,
                "coordinator's planning (the coordinator accepted the moves)".into(),
            );
            // The log names every patient whose visits the acceptance moved.
            event.patients = moves
                .iter()
                .map(|(m, _)| m.patient.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            tx.log_access(now, event)?;
            Ok::<_, PlanError>(())
        })?;
        Ok(accepted)
    }
}

/// Refuses a move whose visit changed since the suggestion read it (staff, window, cancelled)
/// or was documented since, as the write's own transaction sees it.
fn still_as_suggested(
    tx: &mut crate::repo::Transaction<'_>,
    m: &Move,
    end_before: Timestamp,
) -> Result<(), PlanError> {
    let (_, visit) = tx.visit(&m.visit)?;
    let staff: BTreeSet<&StaffId> = visit.staff.iter().collect();
    let planned = visit.status == crate::docs::plan::PlanStatus::Planned;
    if staff != m.from.iter().collect()
        || (visit.start, visit.end) != (m.start_before, end_before)
        || !planned
    {
        return Err(PlanError::Invalid(format!(
            "visit {} changed since the suggestion was made; ask for a new suggestion",
            m.visit
        )));
    }
    if tx.is_documented(&visit)? {
        return Err(PlanError::Invalid(format!(
            "visit {} is under way or documented and cannot be moved",
            m.visit
        )));
    }
    Ok(())
}

/// What a planning read names in the access log: "plan suggestion 2026-11-23 for Sone 1".
pub fn what_is_planned(options: &GatherOptions) -> String {
    let zone = options.zone.as_deref().map(|z| format!(" for {z}"));
    format!(
        "plan suggestion {}{}",
        options.day,
        zone.unwrap_or_default()
    )
}

/// The plan changes `moves` make, once each move is found to start from the plan as it stands
/// and the moves together break no hard rule the plan does not already break.
fn validate(input: &PlanInput, moves: &[Move]) -> Result<Vec<(VisitId, VisitChange)>, PlanError> {
    let mut after = input.clone();
    let mut changes = Vec::new();
    let mut seen = BTreeSet::new();
    for m in moves {
        if !seen.insert(&m.visit) {
            return Err(PlanError::Invalid(format!(
                "visit {} is moved twice",
                m.visit
            )));
        }
        let Some(visit) = after.visits.iter_mut().find(|v| v.id == m.visit) else {
            return Err(PlanError::Invalid(format!(
                "visit {} is not planned on {} (cancelled, or another day or zone)",
                m.visit, input.day
            )));
        };
        let now: BTreeSet<&StaffId> = visit.current.iter().collect();
        if now != m.from.iter().collect() || visit.start != m.start_before {
            return Err(PlanError::Invalid(format!(
                "visit {} changed since the suggestion was made; ask for a new suggestion",
                m.visit
            )));
        }
        if visit.fixed {
            return Err(PlanError::Invalid(format!(
                "visit {} is under way or documented and cannot be moved",
                m.visit
            )));
        }
        if m.reassigns() {
            changes.push((m.visit.clone(), VisitChange::Assign(m.to.clone())));
            visit.current = m.to.clone();
        }
        if m.reschedules() {
            let end = m
                .start_after
                .plus_minutes(visit.start.minutes_until(&visit.end));
            changes.push((
                m.visit.clone(),
                VisitChange::Reschedule {
                    start: m.start_after,
                    end,
                },
            ));
            (visit.start, visit.end) = (m.start_after, end);
        }
    }
    let broken = new_violations(input, &after)?;
    if !broken.is_empty() {
        return Err(PlanError::Invalid(format!(
            "these moves alone would break hard rules the plan does not break now ({}); accept the moves they depend on too",
            describe(&broken)
        )));
    }
    Ok(changes)
}

/// Violations of `after` that `before` does not have. Compared by rule, visit and staff, not by
/// position in a route, since moving one visit changes which visit follows which.
fn new_violations(before: &PlanInput, after: &PlanInput) -> Result<Vec<Violation>, PlanError> {
    let key = |v: &Violation| -> (String, String, String) {
        match v {
            Violation::Competence { visit, staff } | Violation::Blocked { visit, staff } => {
                (v.rule().into(), visit.to_string(), staff.to_string())
            }
            Violation::OffShift { staff, visit } => {
                (v.rule().into(), visit.to_string(), staff.to_string())
            }
            Violation::Overlap { staff, second, .. } => {
                (v.rule().into(), second.to_string(), staff.to_string())
            }
            Violation::DoubleStaffing { visit } | Violation::Window { visit } => {
                (v.rule().into(), visit.to_string(), String::new())
            }
        }
    };
    let of =
        |input: &PlanInput| -> Result<BTreeMap<(String, String, String), Violation>, PlanError> {
            let p = Problem::new(input.clone())?;
            Ok(check::violations(&p, &check::current_plan(&p))
                .into_iter()
                .map(|v| (key(&v), v))
                .collect())
        };
    let was = of(before)?;
    Ok(of(after)?
        .into_iter()
        .filter(|(k, _)| !was.contains_key(k))
        .map(|(_, v)| v)
        .collect())
}

fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .take(5)
        .map(|v| match v {
            Violation::Competence { visit, staff } => {
                format!("{staff} is not authorised for {visit}")
            }
            Violation::Blocked { visit, staff } => format!("{staff} is blocked for {visit}"),
            Violation::OffShift { visit, staff } => format!("{staff} is off shift for {visit}"),
            Violation::Overlap {
                staff,
                first,
                second,
            } => {
                format!("{staff} cannot get from {first} to {second} in time")
            }
            Violation::DoubleStaffing { visit } => format!("{visit} lacks its second staff member"),
            Violation::Window { visit } => format!("{visit} leaves its time window"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
