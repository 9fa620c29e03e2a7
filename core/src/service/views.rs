//! What people look at: a patient's record, the day's report, a work list, the visits of a day.
//! Each goes through the need gate and is logged naming the patients it shows.

use crate::docs::plan::Visit;
use crate::ids::PatientId;
use crate::repo::PatientView;
use crate::report::{self, DayReport, VisitLine};
use crate::trust::audit::AuditAction;
use crate::{Day, Role};

use super::{Service, ServiceError};

/// A patient's record and everything about her this node holds, with the purpose the read was
/// logged under.
#[derive(Debug, Clone)]
pub struct RecordView {
    /// The record, plan, journal, messages, conflicts and care team.
    pub view: PatientView,
    /// The need the read was allowed under (care team, zone, explicit access...).
    pub purpose: String,
}

/// A work list: the day's visits this device's user works on, by start time.
#[derive(Debug, Clone)]
pub struct WorkList {
    /// The day.
    pub day: Day,
    /// A nurse's assigned visits; a home unit's patient's visits; a base's every visit.
    pub visits: Vec<VisitLine>,
    /// Names for the staff ids the visits name, where this node knows them (a certificate it
    /// holds — every author of what it holds sends one — or a work list's name).
    pub staff_names: std::collections::BTreeMap<String, String>,
}

impl Service {
    /// A patient's record and all this node holds about her (`what` names the view in the
    /// access log).
    pub fn record(&self, patient: &str, what: &str) -> Result<RecordView, ServiceError> {
        let patient = self.patient(patient)?;
        let purpose = self.open(&patient, what)?;
        let view = self.repo.patient_view(&patient)?;
        Ok(RecordView { view, purpose })
    }

    /// The day report for `day` (of one zone, or every patient held), through the need gate.
    pub fn day_report(&self, day: Day, zone: Option<&str>) -> Result<DayReport, ServiceError> {
        let zone = zone.map(str::trim).filter(|z| !z.is_empty());
        let view = match zone {
            Some(z) => format!("day report {day} for {z}"),
            None => format!("day report {day}"),
        };
        self.report_as(&view, day, zone)
    }

    /// The day report read as `view` (the board, a home's "today"...): logged under that name.
    pub fn report_as(
        &self,
        view: &str,
        day: Day,
        zone: Option<&str>,
    ) -> Result<DayReport, ServiceError> {
        let mut disclosure = self.disclose(AuditAction::Read, view);
        let report = report::day_report(&self.repo, day, zone, &mut disclosure)?;
        self.disclosed(disclosure, view)?;
        Ok(report)
    }

    /// The patients this user may see, for `view` (the read logged), each with her name as her
    /// record has it and the label a list shows her by: two of one name told apart among them.
    /// The name rows are read once.
    pub fn shown_patients(&self, view: &str) -> Result<Vec<ShownPatient>, ServiceError> {
        let names = self.repo.names_and_hints()?;
        let held: Vec<PatientId> = names.keys().cloned().collect();
        let shown = self.shown(view, held, |p| p)?;
        let labels = crate::repo::tell_apart(&names, &shown);
        Ok((shown.into_iter())
            .map(|id| {
                let name = names
                    .get(&id)
                    .map(|(name, _)| name.clone())
                    .unwrap_or_default();
                let label = labels.get(&id).cloned().unwrap_or_else(|| name.clone());
                ShownPatient { id, name, label }
            })
            .collect())
    }

    /// The work list of `day` for this device's user.
    pub fn work_list(&self, day: Day) -> Result<WorkList, ServiceError> {
        let report = self.report_as(&format!("work list {day}"), day, None)?;
        let profile = self.repo.profile();
        let staff_names = report.staff_names;
        let visits = report
            .visits
            .into_iter()
            .filter(|v| match profile.role {
                Role::Base => true,
                Role::HomeUnit => Some(&v.patient) == profile.patient.as_ref(),
                Role::Nurse => profile
                    .staff_id
                    .as_ref()
                    .is_some_and(|s| v.staff.iter().any(|x| x == s.as_str())),
            })
            .collect();
        Ok(WorkList {
            day,
            visits,
            staff_names,
        })
    }

    /// The visits planned on `day`, by start time, through the need gate.
    pub fn visits_on(&self, day: Day) -> Result<Vec<Visit>, ServiceError> {
        let visits = self.repo.visits_on(day)?;
        self.shown(&format!("work list {day}"), visits, |v| &v.patient)
    }
}

/// A patient a list shows: her id, her name as her record has it, and the label the list shows
/// her by (her name, told apart from another of it the list shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownPatient {
    /// The patient.
    pub id: PatientId,
    /// Her name, as the record has it.
    pub name: String,
    /// How the list names her.
    pub label: String,
}
