//! What a nurse (or a home's device) documents: notes, measurements, doses, visits performed or
//! missed, corrections, the day log. Each request is checked here — ids, times, that a text says
//! something, that a measurement is one a device could make — before the repo judges the change.

use crate::docs::daylog::{DayLogBody, DayLogEntry};
use crate::docs::journal::{Entry, EntryBody, MissedReason, Referent};
use crate::docs::plan::{Visit, VisitKind};
use crate::ids::{MedicationId, PatientId};
use crate::remedy::Remedy;
use crate::repo::Correction;
use crate::repo::devices::check_measurement;
use crate::trust::audit::AuditAction;

use super::{Service, ServiceError, When, required};

/// A free-text journal note.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// The patient: an id, or a name naming one patient.
    pub patient: String,
    /// The visit the note belongs to, if any.
    pub visit: Option<String>,
    /// What happened.
    pub text: String,
    /// When it happened.
    pub at: When,
}

/// A measurement.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The patient: an id, or a name naming one patient.
    pub patient: String,
    /// The visit it was taken at, if any.
    pub visit: Option<String>,
    /// What was measured (`blood-pressure`, `spo2`, `weight`, `glucose`, `pulse`,
    /// `temperature`, or another kind a nurse names).
    pub kind: String,
    /// The value as read (`128/82`, `96`...).
    pub value: String,
    /// Its unit, if the kind does not imply one.
    pub unit: Option<String>,
    /// When it was taken.
    pub at: When,
}

/// A dose given, or not given with why.
#[derive(Debug, Clone, Default)]
pub struct Dose {
    /// The patient: an id, or a name naming one patient.
    pub patient: String,
    /// The medication: its id in the record (`m-…`), or its name as the record has it.
    pub medication: String,
    /// The dose's slot (`HH:MM`).
    pub slot: String,
    /// The visit it was given at, if any.
    pub visit: Option<String>,
    /// When.
    pub at: When,
    /// Why the dose was not given; `None` for a dose given.
    pub not_given: Option<String>,
}

/// A visit documented as performed.
#[derive(Debug, Clone, Default)]
pub struct VisitDone {
    /// The visit.
    pub visit: String,
    /// Arrival (now when not given).
    pub arrival: When,
    /// Departure, if known.
    pub departure: Option<When>,
    /// How it was performed, when not as planned.
    pub mode: Option<VisitKind>,
}

/// A visit documented as not performed.
#[derive(Debug, Clone)]
pub struct VisitMissed {
    /// The visit.
    pub visit: String,
    /// Why.
    pub reason: MissedReason,
    /// What the nurse adds.
    pub note: Option<String>,
    /// When it was found missed.
    pub at: When,
}

impl Service {
    /// Writes a journal note.
    pub fn add_note(&self, req: NewEntry) -> Result<Entry, ServiceError> {
        let patient = self.patient(&req.patient)?;
        let visit = self.optional_visit(req.visit.as_deref())?;
        let at = self.event_time("at", &req.at)?;
        required("text", &req.text, "the note")?;
        self.write(|repo, now, rng| {
            repo.add_note(now, rng, &patient, visit.as_ref(), at, &req.text)
        })
    }

    /// Records a measurement. A known kind's value must be one a device could have measured —
    /// the rule the home API applies to device reports.
    pub fn observe(&self, req: Observation) -> Result<Entry, ServiceError> {
        let patient = self.patient(&req.patient)?;
        let visit = self.optional_visit(req.visit.as_deref())?;
        let at = self.event_time("at", &req.at)?;
        required("kind", &req.kind, "the measurement's kind")?;
        required("value", &req.value, "the value")?;
        if let Err(why) = check_measurement(&req.kind, &req.value) {
            return Err(ServiceError::invalid("value", why));
        }
        self.write(|repo, now, rng| {
            repo.observe(
                now,
                rng,
                &patient,
                visit.as_ref(),
                at,
                &req.kind,
                &req.value,
                req.unit.as_deref(),
            )
        })
    }

    /// One line about an entry just written, as the patient's journal shows it — a dose by its
    /// medication (from `patient`'s record), a visit by its time — when this user may see the
    /// patient (the read logged as "written entry", not again within a minute); by ids
    /// otherwise: a write is kept without a need, a read is not.
    pub fn describe_written(&self, patient: Option<&str>, body: &EntryBody) -> String {
        // The visit read once: it names the patient, and is named by its time.
        let (patient, visit) = match body {
            EntryBody::VisitPerformed { visit, .. }
            | EntryBody::VisitNotPerformed { visit, .. } => match self.repo.visit(visit) {
                Ok((plan, visit)) => (plan.patient().cloned(), Some(visit)),
                Err(_) => (None, None),
            },
            EntryBody::MedicationGiven { .. }
            | EntryBody::MedicationNotGiven { .. }
            | EntryBody::DeviceEvent { .. } => (patient.and_then(|p| self.patient(p).ok()), None),
            // Nothing else names a dose or a visit.
            _ => (None, None),
        };
        let admitted = patient.filter(|p| self.may_show("written entry", p));
        let Some(patient) = admitted else {
            return body.describe();
        };
        let record = visit
            .is_none()
            .then(|| self.repo.record(&patient).ok())
            .flatten();
        body.describe_naming(&|referent| match referent {
            Referent::Visit(_) => visit.as_ref().map(Visit::for_people),
            _ => record.as_ref()?.name_referent(referent),
        })
    }

    /// A medication of `patient` as typed: its id (`m-…`), or its name as her list has it (any
    /// case; "Metformin" for "Metformin 500 mg" where no other name starts so). Names are
    /// looked up only for a user who may see her: the lookup must not read a record the user
    /// could not open (nothing is shown, so nothing is logged).
    fn medication_of(
        &self,
        patient: &PatientId,
        typed: &str,
    ) -> Result<MedicationId, ServiceError> {
        let typed = typed.trim();
        if let Ok(id) = self.medication(typed) {
            return Ok(id);
        }
        let refused = |why: String| Err(ServiceError::invalid("medication", why));
        let mut gate = self.disclose(AuditAction::Read, "medication lookup");
        if !gate.admits(patient)? {
            return refused(
                "give the medication's id (m-…): names are looked up only for patients you may see"
                    .into(),
            );
        }
        let record = self.repo.record(patient)?;
        let lower = typed.to_lowercase();
        let active = || (record.medications.iter()).filter(|m| m.active);
        let mut named: Vec<&MedicationId> = active()
            .filter(|m| m.name.trim().to_lowercase() == lower)
            .map(|m| &m.id)
            .collect();
        if named.is_empty() {
            // The name's first words, as a nurse says it: "Metformin" for "Metformin 500 mg".
            let start = format!("{lower} ");
            named = (active().filter(|m| m.name.trim().to_lowercase().starts_with(&start)))
                .map(|m| &m.id)
                .collect();
        }
        match named.as_slice() {
            [one] => Ok((*one).clone()),
            [] => refused(format!(
                "no medication on this patient's list is named {typed:?}: give its name as the \
                 list has it, or its id (m-…, `omsyn show --patient …`)"
            )),
            many => refused(format!(
                "{} medications on this patient's list are named {typed:?}: give the whole name \
                 or the id (m-…, `omsyn show --patient …`)",
                many.len()
            )),
        }
    }

    /// Documents a dose as given, or not given with why.
    pub fn record_dose(&self, req: Dose) -> Result<Entry, ServiceError> {
        let patient = self.patient(&req.patient)?;
        let medication = self.medication_of(&patient, &req.medication)?;
        let visit = self.optional_visit(req.visit.as_deref())?;
        let at = self.event_time("at", &req.at)?;
        if let Some(reason) = &req.not_given {
            required("reason", reason, "why the dose was not given")?;
        }
        self.write(|repo, now, rng| {
            repo.record_dose(
                now,
                rng,
                &patient,
                &medication,
                req.slot.trim(),
                at,
                visit.as_ref(),
                req.not_given,
            )
        })
    }

    /// Documents a visit as performed.
    pub fn visit_done(&self, req: VisitDone) -> Result<Entry, ServiceError> {
        let visit = self.visit(&req.visit)?;
        let arrival = self.event_time("arrival", &req.arrival)?;
        let departure = req
            .departure
            .as_ref()
            .map(|d| self.event_time("departure", d))
            .transpose()?;
        if departure
            .as_ref()
            .is_some_and(|d| d.unix_millis() < arrival.unix_millis())
        {
            return Err(ServiceError::invalid(
                "departure",
                "the departure is before the arrival",
            ));
        }
        self.write(|repo, now, rng| {
            repo.visit_performed(now, rng, &visit, arrival, departure, req.mode)
        })
    }

    /// Documents a visit as not performed, with why.
    pub fn visit_missed(&self, req: VisitMissed) -> Result<Entry, ServiceError> {
        let visit = self.visit(&req.visit)?;
        let at = self.event_time("at", &req.at)?;
        self.write(|repo, now, rng| repo.visit_missed(now, rng, &visit, req.reason, req.note, at))
    }

    /// Corrects an entry: amends its text, or marks it entered in error. The original stays.
    pub fn correct_entry(
        &self,
        patient: &str,
        entry: &str,
        correction: Correction,
    ) -> Result<Entry, ServiceError> {
        let patient = self.patient(patient)?;
        let entry = self.entry("entry", entry)?;
        match &correction {
            Correction::Amend(text) => required("text", text, "the amended text")?,
            Correction::EnteredInError(reason) => {
                required("reason", reason, "why the entry was entered in error")?;
            }
        }
        self.write(|repo, now, rng| repo.correct_entry(now, rng, &patient, &entry, correction))
    }

    /// Appends to this nurse's day log. A visit it names must be one this node holds.
    pub fn day_log(&self, at: &When, body: DayLogBody) -> Result<DayLogEntry, ServiceError> {
        let at = self.event_time("at", at)?;
        if let DayLogBody::VisitStart { visit } | DayLogBody::VisitEnd { visit } = &body {
            self.repo.visit(visit).map_err(|e| match e {
                crate::RepoError::NotFound(_) => {
                    ServiceError::invalid("visit", format!("no visit {visit} on this node"))
                        .with_remedy(Remedy::ListVisits)
                }
                e => e.into(),
            })?;
        }
        if let DayLogBody::Deviation { text } = &body {
            required("text", text, "the deviation")?;
        }
        self.write(|repo, now, rng| repo.day_log(now, rng, at, body))
    }
}
