//! The day report: what this node knows of one day's visits, derived from plans and journals.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::conflict::Conflict;
use crate::docs::journal::{self, EntryBody};
use crate::docs::plan::{self, PlanStatus, VisitKind};
use crate::docs::{DocKind, DocumentId};
use crate::ids::{PatientId, VisitId};
use crate::repo::{Repo, RepoError};
use crate::store::kind_prefix;
use crate::time::{Day, Timestamp};

/// The outcome of a visit, derived from plan status and journal facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VisitOutcome {
    /// Documented as performed.
    Done,
    /// Attempted and documented as not performed.
    Missed,
    /// Cancelled in the plan (and not performed).
    Cancelled,
    /// Cancelled in the plan but documented as performed (a review conflict).
    CancelledButPerformed,
    /// Planned, nothing documented yet.
    Open,
}

/// One visit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitLine {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// The patient's name, if the record is held here.
    pub patient_name: String,
    /// Window start.
    pub start: Timestamp,
    /// Window end.
    pub end: Timestamp,
    /// Planned kind.
    pub kind: VisitKind,
    /// Assigned staff.
    pub staff: Vec<String>,
    /// Outcome.
    pub outcome: VisitOutcome,
    /// Who documented it as performed.
    pub performed_by: Vec<String>,
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Visits planned (including those later cancelled).
    pub planned: usize,
    /// Performed.
    pub done: usize,
    /// Not performed.
    pub missed: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Nothing documented yet.
    pub open: usize,
}

impl Counts {
    fn add(&mut self, outcome: VisitOutcome) {
        self.planned += 1;
        match outcome {
            VisitOutcome::Done | VisitOutcome::CancelledButPerformed => self.done += 1,
            VisitOutcome::Missed => self.missed += 1,
            VisitOutcome::Cancelled => self.cancelled += 1,
            VisitOutcome::Open => self.open += 1,
        }
    }
}

/// The day report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayReport {
    /// The day.
    pub day: Day,
    /// All visits.
    pub totals: Counts,
    /// Physical visits.
    pub physical: Counts,
    /// Digital visits.
    pub digital: Counts,
    /// Per assigned staff member ("(unassigned)" for ufordelte visits).
    pub per_staff: BTreeMap<String, Counts>,
    /// Every visit.
    pub visits: Vec<VisitLine>,
    /// Open conflicts concerning the patients visited that day.
    pub conflicts: Vec<Conflict>,
}

/// Builds the day report from the documents this node holds.
pub fn day_report(repo: &Repo, day: Day) -> Result<DayReport, RepoError> {
    let store = repo.store();
    let month = day.month();
    let mut names: BTreeMap<PatientId, String> = repo.patients()?.into_iter().collect();
    let mut report = DayReport {
        day,
        totals: Counts::default(),
        physical: Counts::default(),
        digital: Counts::default(),
        per_staff: BTreeMap::new(),
        visits: Vec::new(),
        conflicts: Vec::new(),
    };
    let mut patients_seen = Vec::new();
    for plan_id in store.doc_ids(kind_prefix(DocKind::VisitPlan))? {
        let DocumentId::VisitPlan(patient, m) = &plan_id else {
            continue;
        };
        if *m != month {
            continue;
        }
        let Some(planned) = store.with_doc(&plan_id, plan::read)? else {
            continue;
        };
        let todays: Vec<_> = planned
            .visits
            .into_iter()
            .filter(|v| v.day() == day)
            .collect();
        if todays.is_empty() {
            continue;
        }
        patients_seen.push(patient.clone());
        let journal = store
            .with_doc(&DocumentId::Journal(patient.clone(), month), journal::read)?
            .unwrap_or_default();
        let name = names
            .entry(patient.clone())
            .or_insert_with(|| "(record not held)".into())
            .clone();
        for visit in todays {
            let line = visit_line(visit, name.clone(), &journal);
            let outcome = line.outcome;
            report.totals.add(outcome);
            match line.kind {
                VisitKind::Physical => report.physical.add(outcome),
                VisitKind::Digital => report.digital.add(outcome),
            }
            if line.staff.is_empty() {
                report
                    .per_staff
                    .entry("(unassigned)".into())
                    .or_default()
                    .add(outcome);
            }
            for s in &line.staff {
                report.per_staff.entry(s.clone()).or_default().add(outcome);
            }
            report.visits.push(line);
        }
    }
    report
        .visits
        .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.visit.cmp(&b.visit)));
    for patient in &patients_seen {
        report.conflicts.extend(repo.conflicts(Some(patient))?);
    }
    Ok(report)
}

/// A visit with its outcome, from the plan and the patient's journal: performed or not performed
/// as documented (entries marked entered-in-error do not count), cancelled as planned.
pub fn visit_line(
    visit: plan::Visit,
    patient_name: String,
    journal: &journal::Journal,
) -> VisitLine {
    let withdrawn: Vec<_> = journal.entered_in_error().cloned().collect();
    let mut performed_by = Vec::new();
    let mut missed = false;
    for entry in journal
        .entries
        .iter()
        .filter(|e| !withdrawn.contains(&e.id))
    {
        match &entry.body {
            EntryBody::VisitPerformed { visit: v, .. } if *v == visit.id => {
                performed_by.push(entry.author.name.clone())
            }
            EntryBody::VisitNotPerformed { visit: v, .. } if *v == visit.id => missed = true,
            _ => {}
        }
    }
    let cancelled = matches!(visit.status, PlanStatus::Cancelled { .. });
    let outcome = match (cancelled, !performed_by.is_empty(), missed) {
        (true, true, _) => VisitOutcome::CancelledButPerformed,
        (true, false, _) => VisitOutcome::Cancelled,
        (false, true, _) => VisitOutcome::Done,
        (false, false, true) => VisitOutcome::Missed,
        (false, false, false) => VisitOutcome::Open,
    };
    VisitLine {
        patient_name,
        visit: visit.id,
        patient: visit.patient,
        start: visit.start,
        end: visit.end,
        kind: visit.kind,
        staff: visit.staff.iter().map(|s| s.to_string()).collect(),
        outcome,
        performed_by,
    }
}
