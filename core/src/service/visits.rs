//! The visit plan: planning a visit and changing one (moving, assigning, cancelling). Only base
//! roles write plans; the repo refuses anyone else with the rule every peer applies.

use crate::docs::plan::{NewVisit, PlanStatus, VisitChange, VisitKind};
use crate::ids::{TiltakId, VisitId};

use super::{Service, ServiceError, When, required};

/// A visit to plan, as typed.
#[derive(Debug, Clone)]
pub struct PlanVisit {
    /// The patient: an id, or a name naming one patient.
    pub patient: String,
    /// The window's start.
    pub start: When,
    /// The window's end.
    pub end: When,
    /// Physical or by video.
    pub kind: VisitKind,
    /// The tiltak it serves (`t-…`).
    pub tiltak: Vec<String>,
    /// Assigned staff (at most two).
    pub staff: Vec<String>,
}

/// A change to a planned visit, as typed.
#[derive(Debug, Clone)]
pub enum ChangeVisit {
    /// A new window.
    Move {
        /// The new start.
        start: When,
        /// The new end.
        end: When,
    },
    /// New staff (none: unassigned).
    Assign(Vec<String>),
    /// Physical or by video.
    SetKind(VisitKind),
    /// Cancelled, with why.
    Cancel(String),
}

impl Service {
    /// Plans a visit.
    pub fn plan_visit(&self, req: PlanVisit) -> Result<VisitId, ServiceError> {
        let (start, end) = self.window(&req.start, &req.end)?;
        let new = NewVisit {
            patient: self.patient(&req.patient)?,
            start,
            end,
            kind: req.kind,
            tiltak: req
                .tiltak
                .iter()
                .map(|t| TiltakId::parse(t.trim()).map_err(|e| ServiceError::invalid("tiltak", e)))
                .collect::<Result<_, _>>()?,
            staff: self.known_staff("staff", &req.staff)?,
        };
        self.write(|repo, now, rng| repo.plan_visit(now, rng, &new))
    }

    /// Changes a planned visit; returns which.
    pub fn change_visit(&self, visit: &str, change: ChangeVisit) -> Result<VisitId, ServiceError> {
        let visit = self.visit(visit)?;
        let change = match change {
            ChangeVisit::Move { start, end } => {
                let (start, end) = self.window(&start, &end)?;
                VisitChange::Reschedule { start, end }
            }
            ChangeVisit::Assign(staff) => VisitChange::Assign(self.known_staff("staff", &staff)?),
            ChangeVisit::SetKind(kind) => VisitChange::SetKind(kind),
            ChangeVisit::Cancel(reason) => {
                required("reason", &reason, "why the visit is cancelled")?;
                VisitChange::Cancel(reason)
            }
        };
        self.write(|repo, now, rng| repo.change_visit(now, rng, &visit, &change))?;
        Ok(visit)
    }

    /// A visit as its planner reads it back after a write: the patient's name, its kind, day
    /// and window, its staff by name, and whether it is cancelled — "Turid Nilsen: physical
    /// visit 2026-11-24 10:00-10:30, Kari Berg". Plans are patient data: for a user without a
    /// need for the patient (the gate decides, and logs the read), the visit's id alone.
    pub fn describe_visit(&self, visit: &VisitId) -> String {
        let Ok((_, v)) = self.repo.visit(visit) else {
            return format!("visit {visit}");
        };
        let Some(record) = (self.may_show("changed visit", &v.patient))
            .then(|| self.repo.record(&v.patient).ok())
            .flatten()
        else {
            return format!("visit {visit}");
        };
        let names = self.repo.staff_names().unwrap_or_default();
        let state = match &v.status {
            PlanStatus::Planned => crate::repo::staff_list(&v.staff, &names),
            PlanStatus::Cancelled { reason } => format!("CANCELLED ({reason})"),
        };
        format!(
            "{}: {} visit {} {}-{}, {state}",
            record.name(),
            v.kind.as_str(),
            v.day(),
            v.start.hhmm(),
            v.end.hhmm()
        )
    }

    /// A visit's window as typed (the plan's own rule refuses an end before the start).
    fn window(
        &self,
        start: &When,
        end: &When,
    ) -> Result<(crate::Timestamp, crate::Timestamp), ServiceError> {
        Ok((self.time("start", start)?, self.time("end", end)?))
    }
}
