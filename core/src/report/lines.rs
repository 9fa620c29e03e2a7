//! A visit's outcome and the lines a report lists, derived from a plan and a journal alone (no
//! store, no repo): the change pipeline derives the day index's rows from them, the report and
//! the apps' work lists show them.

use serde::Serialize;

use crate::docs::journal::{self, EntryBody};
use crate::docs::plan::{self, PlanStatus, VisitKind};
use crate::ids::{PatientId, VisitId};
use crate::time::Timestamp;

/// The outcome of a visit, derived from plan status and journal facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
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

impl VisitOutcome {
    /// The outcome's name in reports (as in JSON).
    pub fn as_str(&self) -> &'static str {
        match self {
            VisitOutcome::Done => "done",
            VisitOutcome::Missed => "missed",
            VisitOutcome::Cancelled => "cancelled",
            VisitOutcome::CancelledButPerformed => "cancelled-but-performed",
            VisitOutcome::Open => "open",
        }
    }
}

/// One visit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VisitLine {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// The patient's name, if the record is held here.
    pub patient_name: String,
    /// The patient's zone, if the record held here names one.
    #[serde(default)]
    pub zone: Option<String>,
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
    /// The same performers as the report counts them: staff ids (a device acting alone by its
    /// name). Kept in the day index beside the line (see `rows::VisitRow`), not in its JSON.
    #[serde(skip)]
    pub performers: Vec<String>,
}

impl VisitLine {
    /// Whom the report credits with this visit: who was planned — except for a cancelled visit
    /// documented as performed, whose plan names nobody who went (the cancellation told them
    /// not to): it is counted for who performed it, before and after the conflict is resolved.
    pub(super) fn credited(&self) -> &[String] {
        if self.outcome == VisitOutcome::CancelledButPerformed && !self.performers.is_empty() {
            &self.performers
        } else {
            &self.staff
        }
    }
}

/// A deviation (avvik).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeviationLine {
    /// When.
    pub at: Timestamp,
    /// Who recorded it.
    pub by: String,
    /// The patient, for a journal deviation.
    pub patient: Option<PatientId>,
    /// What.
    pub text: String,
}

/// How continuity counts a performer: the staff id, or the name of a device acting alone.
pub(super) fn performer(author: &crate::docs::Author) -> String {
    author
        .staff
        .as_ref()
        .map_or_else(|| author.name.clone(), |s| s.to_string())
}

/// A visit with its outcome, from the plan and the patient's journal: performed or not performed
/// as documented (entries marked entered-in-error do not count), cancelled as planned.
pub fn visit_line(
    visit: plan::Visit,
    patient_name: String,
    journal: &journal::Journal,
) -> VisitLine {
    let mut performed_by = Vec::new();
    let mut performers = Vec::new();
    let mut missed = false;
    for entry in journal.standing() {
        match &entry.body {
            EntryBody::VisitPerformed { visit: v, .. } if *v == visit.id => {
                performed_by.push(entry.author.name.clone());
                let who = performer(&entry.author);
                if !performers.contains(&who) {
                    performers.push(who);
                }
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
        zone: None,
        visit: visit.id,
        patient: visit.patient,
        start: visit.start,
        end: visit.end,
        kind: visit.kind,
        staff: visit.staff.iter().map(|s| s.to_string()).collect(),
        outcome,
        performed_by,
        performers,
    }
}
