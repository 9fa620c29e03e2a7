//! [`Transaction`]: every write operation of a node, applied atomically and durably.
//!
//! One transaction is one redb write transaction: any number of operations, committed together
//! (and fsynced) or not at all. Reads inside a transaction see its own uncommitted writes, so a
//! work list can register a patient, plan her visits and document them in one all-or-nothing step.

use std::collections::HashMap;

use rand::RngCore;

use super::{Correction, NewTiltak, Repo, RepoError, may_edit_plans};
use crate::conflict::{Conflict, ConflictId, ConflictKind};
use crate::docs::daylog::{self, DayLogBody, DayLogEntry};
use crate::docs::journal::{self, DoseRef, Entry, EntryBody, MissedReason};
use crate::docs::messages::{self, Attachment, Message, Recipient};
use crate::docs::plan::{self, NewVisit, Visit, VisitChange, VisitKind};
use crate::docs::record::{self, Medication, PatientField, PatientRecord, Tiltak, Vedtak};
use crate::docs::{ChangeContext, DocError, Document, DocumentId};
use crate::ids::{
    ContactId, EntryId, FlagId, MedicationId, PatientId, TiltakId, VedtakId, VisitId,
};
use crate::store::WriteBatch;
use crate::time::{Day, Month, Timestamp};

/// An open write transaction on a [`Repo`]. Created by [`Repo::transaction`].
#[derive(Debug)]
pub struct Transaction<'a> {
    pub(super) repo: &'a Repo,
    pub(super) batch: WriteBatch<'a>,
    /// Visits planned in this transaction, not yet in the store's visit index.
    pub(super) new_visits: HashMap<VisitId, DocumentId>,
    /// The latest clock reading any write of this transaction was given.
    pub(super) now_ms: Option<i64>,
    /// Staff names by id, read at the first reassignment (a work list reassigns hundreds).
    pub(super) staff_names: Option<std::sync::Arc<std::collections::BTreeMap<String, String>>>,
}

impl Transaction<'_> {
    pub(super) fn ctx(&mut self, now: Timestamp) -> Result<ChangeContext, RepoError> {
        self.now_ms = self.now_ms.max(Some(now.unix_millis()));
        Ok(ChangeContext {
            author: self.repo.author_at(now)?,
            entered_at: now,
        })
    }

    fn require_plan_authority(&self, action: &'static str) -> Result<(), RepoError> {
        let role = self.repo.profile().role;
        if may_edit_plans(role) {
            Ok(())
        } else {
            Err(RepoError::NotPermitted { role, action })
        }
    }

    fn edit<T>(
        &mut self,
        id: &DocumentId,
        must_exist: bool,
        f: impl FnOnce(&mut Document) -> Result<T, DocError>,
    ) -> Result<T, RepoError> {
        let doc = if must_exist {
            self.batch
                .existing(id)?
                .ok_or_else(|| RepoError::NotFound(id.to_string()))?
        } else {
            self.batch.doc(id)?
        };
        Ok(f(doc)?)
    }

    // ----- reads that see this transaction's writes --------------------------------------------

    /// A patient's record as of this transaction.
    pub fn record(&mut self, patient: &PatientId) -> Result<PatientRecord, RepoError> {
        let id = DocumentId::PatientRecord(patient.clone());
        let doc = self
            .batch
            .existing(&id)?
            .ok_or_else(|| RepoError::NotFound(format!("patient {patient}")))?;
        Ok(record::read(doc)?)
    }

    pub(super) fn require_patient(&mut self, patient: &PatientId) -> Result<(), RepoError> {
        let id = DocumentId::PatientRecord(patient.clone());
        match self.batch.existing(&id)? {
            Some(_) => Ok(()),
            None => Err(RepoError::NotFound(format!("patient {patient}"))),
        }
    }

    /// A visit and the plan document holding it, as of this transaction.
    pub fn visit(&mut self, visit: &VisitId) -> Result<(DocumentId, Visit), RepoError> {
        let not_found = || RepoError::NotFound(format!("visit {visit}"));
        let location = match self.new_visits.get(visit) {
            Some(l) => l.clone(),
            None => self
                .repo
                .store()
                .visit_location(visit)?
                .ok_or_else(not_found)?,
        };
        let doc = self.batch.existing(&location)?.ok_or_else(not_found)?;
        let found = plan::read_visit(doc, visit).ok_or_else(not_found)?;
        Ok((location, found))
    }

    /// The visits planned for `patient` in `month`, as of this transaction.
    pub fn visits_of(
        &mut self,
        patient: &PatientId,
        month: crate::time::Month,
    ) -> Result<Vec<Visit>, RepoError> {
        let id = DocumentId::VisitPlan(patient.clone(), month);
        Ok(match self.batch.existing(&id)? {
            Some(doc) => plan::read(doc).visits,
            None => Vec::new(),
        })
    }

    /// The patient's journal of `month`, as of this transaction (empty if none is held).
    pub fn journal_of(
        &mut self,
        patient: &PatientId,
        month: crate::time::Month,
    ) -> Result<crate::docs::journal::Journal, RepoError> {
        let id = DocumentId::Journal(patient.clone(), month);
        Ok(match self.batch.existing(&id)? {
            Some(doc) => crate::docs::journal::read(doc),
            None => crate::docs::journal::Journal::default(),
        })
    }

    // ----- patient record ------------------------------------------------------------------

    /// Registers a new patient; returns the id.
    pub fn add_patient(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        fields: &[(PatientField, String)],
    ) -> Result<PatientId, RepoError> {
        self.require_plan_authority("register patients")?;
        if !fields
            .iter()
            .any(|(f, v)| *f == PatientField::Name && !v.trim().is_empty())
        {
            return Err(RepoError::Invalid("a patient needs a name".into()));
        }
        let patient = PatientId::random(rng);
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), false, |doc| {
            record::create(doc, &ctx, &patient, fields)
        })?;
        Ok(patient)
    }

    /// Sets a record field (also how a concurrent-edit conflict on that field is resolved).
    pub fn set_patient_field(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        field: PatientField,
        value: &str,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::set_field(doc, &ctx, field, value)
        })
    }

    /// Adds a flag to a patient.
    pub fn add_flag(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        kind: &str,
        note: Option<&str>,
    ) -> Result<FlagId, RepoError> {
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::add_flag(doc, &ctx, rng, kind, note)
        })
    }

    /// Deactivates a flag (it stays in the record).
    pub fn deactivate_flag(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        flag: &FlagId,
        reason: &str,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::deactivate_flag(doc, &ctx, flag, reason)
        })
    }

    /// Adds a contact.
    pub fn add_contact(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        name: &str,
        relation: &str,
        phone: Option<&str>,
    ) -> Result<ContactId, RepoError> {
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::add_contact(doc, &ctx, rng, name, relation, phone)
        })
    }

    /// Adds a tiltak (and its vedtak, if named) to a patient's care plan.
    pub fn add_tiltak(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        spec: &NewTiltak,
    ) -> Result<TiltakId, RepoError> {
        self.require_plan_authority("edit care plans")?;
        for t in &spec.times {
            validate_hhmm(t)?;
        }
        if let Some(d) = spec.weekdays.iter().find(|d| !(1..=7).contains(*d)) {
            return Err(RepoError::Invalid(format!(
                "weekday {d} is not 1 (Monday) to 7 (Sunday)"
            )));
        }
        if spec.description.trim().is_empty() {
            return Err(RepoError::Invalid("a tiltak needs a description".into()));
        }
        let ctx = self.ctx(now)?;
        let vedtak = spec.vedtak_title.as_ref().map(|title| Vedtak {
            id: VedtakId::random(rng),
            title: title.clone(),
            valid_from: Some(now.day().to_string()),
            valid_to: None,
        });
        let tiltak = Tiltak {
            id: TiltakId::random(rng),
            vedtak: vedtak.as_ref().map(|v| v.id.clone()),
            code: spec.code.clone(),
            description: spec.description.clone(),
            times: spec.times.clone(),
            weekdays: spec.weekdays.clone(),
            health_care: spec.health_care,
            requires_authorised_nurse: spec.requires_authorised_nurse,
            double_staffed: spec.double_staffed,
            active: true,
        };
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            if let Some(v) = &vedtak {
                record::add_vedtak(doc, &ctx, v)?;
            }
            record::put_tiltak(doc, &ctx, &tiltak)
        })?;
        Ok(tiltak.id)
    }

    /// Adds a medication with its dose slots.
    pub fn add_medication(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        name: &str,
        dose: &str,
        slots: &[String],
    ) -> Result<MedicationId, RepoError> {
        self.require_plan_authority("edit medication lists")?;
        if slots.is_empty() {
            return Err(RepoError::Invalid(
                "a medication needs at least one dose slot (HH:MM)".into(),
            ));
        }
        for s in slots {
            validate_hhmm(s)?;
        }
        let medication = Medication {
            id: MedicationId::random(rng),
            name: name.to_owned(),
            dose: dose.to_owned(),
            slots: slots.to_vec(),
            active: true,
        };
        let ctx = self.ctx(now)?;
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::put_medication(doc, &ctx, &medication)
        })?;
        Ok(medication.id)
    }

    // ----- visit plan ----------------------------------------------------------------------

    /// Plans a visit; returns its id.
    pub fn plan_visit(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &NewVisit,
    ) -> Result<VisitId, RepoError> {
        self.require_plan_authority("plan visits")?;
        self.refuse_blocked(&visit.patient, &visit.staff)?;
        let rec = self.record(&visit.patient)?;
        for t in &visit.tiltak {
            if !rec.tiltak.iter().any(|x| &x.id == t) {
                return Err(RepoError::NotFound(format!(
                    "tiltak {t} of patient {}",
                    visit.patient
                )));
            }
        }
        let ctx = self.ctx(now)?;
        let location = DocumentId::VisitPlan(visit.patient.clone(), visit.start.day().month());
        let id = self.edit(&location, false, |doc| plan::add(doc, &ctx, rng, visit))?;
        self.new_visits.insert(id.clone(), location);
        Ok(id)
    }

    /// Whether `visit` was documented (performed or not), as this transaction sees its
    /// patient-month's journal.
    pub fn is_documented(&mut self, visit: &Visit) -> Result<bool, RepoError> {
        let journal = self.journal_of(&visit.patient, visit.start.day().month())?;
        Ok(journal.standing().iter().any(|e| match &e.body {
            EntryBody::VisitPerformed { visit: v, .. }
            | EntryBody::VisitNotPerformed { visit: v, .. } => *v == visit.id,
            _ => false,
        }))
    }

    /// Changes a planned visit (reschedule, reassign, cancel...).
    pub fn change_visit(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &VisitId,
        change: &VisitChange,
    ) -> Result<(), RepoError> {
        self.require_plan_authority("change visit plans")?;
        let (location, planned) = self.visit(visit)?;
        if let VisitChange::Assign(staff) = change {
            self.refuse_blocked(&planned.patient, staff)?;
        }
        if let (VisitChange::Reschedule { start, .. }, Some(month)) = (change, location.month())
            && start.day().month() != month
        {
            return Err(RepoError::Invalid(format!(
                "a visit cannot move to another month ({month} → {}); cancel it and plan a new one",
                start.day().month()
            )));
        }
        let ctx = self.ctx(now)?;
        if matches!(change, VisitChange::Assign(_)) && self.staff_names.is_none() {
            self.staff_names = Some(std::sync::Arc::new(self.repo.staff_names()?));
        }
        let names = self.staff_names.clone().unwrap_or_default();
        let name_of = |id: &crate::ids::StaffId| names.get(id.as_str()).cloned();
        self.edit(&location, true, |doc| {
            plan::change(doc, &ctx, rng, visit, change, &name_of)
        })
    }

    // ----- journal -------------------------------------------------------------------------

    pub(super) fn append_entry(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        doc_id: DocumentId,
        event_time: Timestamp,
        body: EntryBody,
    ) -> Result<Entry, RepoError> {
        let ctx = self.ctx(now)?;
        if body.is_conflict_neutral() {
            let doc = self.batch.doc_for_neutral_append(&doc_id)?;
            return Ok(journal::append(doc, &ctx, rng, event_time, body)?);
        }
        self.edit(&doc_id, false, |doc| {
            journal::append(doc, &ctx, rng, event_time, body)
        })
    }

    /// Documents that a visit was performed. The plan revisions this node has seen are recorded,
    /// so the base can tell whether the visit was done against a plan changed meanwhile.
    pub fn visit_performed(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &VisitId,
        arrival: Timestamp,
        departure: Option<Timestamp>,
        mode: Option<VisitKind>,
    ) -> Result<Entry, RepoError> {
        let (location, planned) = self.visit(visit)?;
        let body = EntryBody::VisitPerformed {
            visit: visit.clone(),
            mode: mode.unwrap_or(planned.kind),
            arrival,
            departure,
            plan_revisions_seen: planned.revisions.iter().map(|r| r.id.clone()).collect(),
        };
        let doc = journal_for_visit(&location, &planned)?;
        self.append_entry(now, rng, doc, arrival, body)
    }

    /// Documents that a visit was attempted but not performed.
    pub fn visit_missed(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &VisitId,
        reason: MissedReason,
        note: Option<String>,
        event_time: Timestamp,
    ) -> Result<Entry, RepoError> {
        let (location, planned) = self.visit(visit)?;
        let body = EntryBody::VisitNotPerformed {
            visit: visit.clone(),
            reason,
            note,
        };
        let doc = journal_for_visit(&location, &planned)?;
        self.append_entry(now, rng, doc, event_time, body)
    }

    /// Adds a free-text note (to a visit's journal month if a visit is given).
    pub fn add_note(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        visit: Option<&VisitId>,
        event_time: Timestamp,
        text: &str,
    ) -> Result<Entry, RepoError> {
        let doc_id = self.journal_doc(patient, visit, event_time.day())?;
        let body = EntryBody::Note {
            visit: visit.cloned(),
            text: text.to_owned(),
        };
        self.append_entry(now, rng, doc_id, event_time, body)
    }

    /// Records an observation (vital sign).
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        visit: Option<&VisitId>,
        event_time: Timestamp,
        kind: &str,
        value: &str,
        unit: Option<&str>,
    ) -> Result<Entry, RepoError> {
        let doc_id = self.journal_doc(patient, visit, event_time.day())?;
        let body = EntryBody::Observation {
            visit: visit.cloned(),
            kind: kind.to_owned(),
            value: value.to_owned(),
            unit: unit.map(str::to_owned),
            device_reading: None,
        };
        self.append_entry(now, rng, doc_id, event_time, body)
    }

    /// The dose of `medication` at `slot` on `at`'s day, if the patient's medication list has it.
    pub(super) fn dose(
        &mut self,
        patient: &PatientId,
        medication: &MedicationId,
        slot: &str,
        at: Timestamp,
    ) -> Result<DoseRef, RepoError> {
        let rec = self.record(patient)?;
        let med = rec.medication(medication).ok_or_else(|| {
            RepoError::NotFound(format!("medication {medication} of patient {patient}"))
        })?;
        if !med.slots.iter().any(|s| s == slot) {
            return Err(RepoError::Invalid(format!(
                "{} has no dose slot {slot}; its slots are {}",
                med.name,
                med.slots.join(", ")
            )));
        }
        Ok(DoseRef {
            medication: medication.clone(),
            slot: slot.to_owned(),
            day: at.day(),
        })
    }

    /// Records a dose as given (`not_given_reason: None`) or not given (`Some(reason)`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_dose(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        medication: &MedicationId,
        slot: &str,
        event_time: Timestamp,
        visit: Option<&VisitId>,
        not_given_reason: Option<String>,
    ) -> Result<Entry, RepoError> {
        let dose = self.dose(patient, medication, slot, event_time)?;
        let doc_id = DocumentId::Journal(patient.clone(), dose.day.month());
        let body = match not_given_reason {
            None => EntryBody::MedicationGiven {
                dose,
                visit: visit.cloned(),
            },
            Some(reason) => EntryBody::MedicationNotGiven {
                dose,
                reason,
                visit: visit.cloned(),
            },
        };
        self.append_entry(now, rng, doc_id, event_time, body)
    }

    /// Corrects an entry or marks it entered in error. The original stays readable.
    pub fn correct_entry(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        target: &EntryId,
        correction: Correction,
    ) -> Result<Entry, RepoError> {
        let doc_id = self
            .find_entry(patient, target)?
            .ok_or_else(|| RepoError::NotFound(format!("entry {target} of patient {patient}")))?;
        if let Correction::EnteredInError(_) = &correction {
            self.require_own_entry(&doc_id, target)?;
        }
        let body = match correction {
            Correction::Amend(text) => EntryBody::Correction {
                corrects: target.clone(),
                text,
            },
            Correction::EnteredInError(reason) => EntryBody::EnteredInError {
                target: target.clone(),
                reason,
            },
        };
        self.append_entry(now, rng, doc_id, now, body)
    }

    /// Refuses to mark another staff member's entry entered in error: every reader would ignore
    /// the mark (see [`journal::Marks::withdrawal`]). Where a modified device wrote a second entry
    /// under the same id, the mark is made when either is the caller's to withdraw.
    fn require_own_entry(
        &mut self,
        doc_id: &DocumentId,
        target: &EntryId,
    ) -> Result<(), RepoError> {
        let me = self.repo.author()?;
        let Some(doc) = self.batch.existing(doc_id)? else {
            return Ok(());
        };
        let journal = journal::read(doc);
        let mut named = journal.entries.iter().filter(|e| &e.id == target);
        let Some(first) = named.next() else {
            return Ok(());
        };
        if me.may_withdraw(&first.author) || named.any(|e| me.may_withdraw(&e.author)) {
            return Ok(());
        }
        Err(RepoError::Unauthorized(format!(
            "entry {target} was written by {}: only its author marks it entered in error; \
             a correction, or a note, says what is wrong with it",
            first.author.name
        )))
    }

    fn find_entry(
        &mut self,
        patient: &PatientId,
        target: &EntryId,
    ) -> Result<Option<DocumentId>, RepoError> {
        let mut candidates = self.repo.store().doc_ids(&format!("journal/{patient}/"))?;
        candidates.extend(
            self.batch
                .touched()
                .filter(|id| matches!(id, DocumentId::Journal(p, _) if p == patient))
                .cloned(),
        );
        candidates.sort();
        candidates.dedup();
        // A modified device can file a copy of an entry, under its id, in another month: the
        // correction goes beside the copy that is the caller's to correct, wherever that is.
        let me = self.repo.author()?;
        let mut first = None;
        for id in candidates {
            let Some(doc) = self.batch.existing(&id)? else {
                continue;
            };
            let journal = journal::read(doc);
            let mut copies = journal
                .entries
                .iter()
                .filter(|e| &e.id == target)
                .peekable();
            if copies.peek().is_none() {
                continue;
            }
            if copies.any(|e| me.may_withdraw(&e.author)) {
                return Ok(Some(id));
            }
            first.get_or_insert(id);
        }
        Ok(first)
    }

    fn journal_doc(
        &mut self,
        patient: &PatientId,
        visit: Option<&VisitId>,
        day: Day,
    ) -> Result<DocumentId, RepoError> {
        match visit {
            Some(v) => {
                let (location, planned) = self.visit(v)?;
                if &planned.patient != patient {
                    return Err(RepoError::Invalid(format!(
                        "visit {v} belongs to another patient"
                    )));
                }
                journal_for_visit(&location, &planned)
            }
            None => {
                self.require_patient(patient)?;
                Ok(DocumentId::Journal(patient.clone(), day.month()))
            }
        }
    }

    // ----- messages and day logs -----------------------------------------------------------

    /// Sends a message about a patient.
    #[allow(clippy::too_many_arguments)]
    pub fn send_message(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        to: Recipient,
        text: &str,
        in_reply_to: Option<EntryId>,
        attachments: Vec<Attachment>,
    ) -> Result<Message, RepoError> {
        self.require_patient(patient)?;
        let ctx = self.ctx(now)?;
        let id = DocumentId::Messages(patient.clone(), now.day().month());
        self.edit(&id, false, |doc| {
            messages::send(doc, &ctx, rng, to, text, in_reply_to, attachments)
        })
    }

    /// Appends to this node's staff member's day log.
    pub fn day_log(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        event_time: Timestamp,
        body: DayLogBody,
    ) -> Result<DayLogEntry, RepoError> {
        let staff = self.repo.profile().staff_id.clone().ok_or_else(|| {
            RepoError::Invalid("this node serves no staff member, so it keeps no day log".into())
        })?;
        let ctx = self.ctx(now)?;
        let id = DocumentId::DayLog(staff, event_time.day());
        self.edit(&id, false, |doc| {
            daylog::append(doc, &ctx, rng, event_time, body)
        })
    }

    // ----- conflicts -----------------------------------------------------------------------

    /// Resolves a conflict with an attributable entry. A record-field conflict needs the value
    /// to keep (`value`) and is resolved by writing it (returns `None`); a safety conflict needs a
    /// note saying what was found and done, and returns the resolution entry.
    pub fn resolve_conflict(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        conflict: &ConflictId,
        note: &str,
        value: Option<&str>,
    ) -> Result<Option<Entry>, RepoError> {
        let found = self
            .repo
            .conflicts(None)?
            .into_iter()
            .find(|c| &c.id == conflict)
            .ok_or_else(|| RepoError::NotFound(format!("open conflict {conflict}")))?;
        if let ConflictKind::ConcurrentFieldEdit { field, .. } = &found.kind {
            let value = value.ok_or_else(|| {
                RepoError::Invalid(format!(
                    "{conflict} is a concurrent edit of {}; give the value to keep (`--value` on the command line, `value` in the request)",
                    field.as_str()
                ))
            })?;
            return self
                .set_patient_field(now, &found.patient, *field, value)
                .map(|()| None);
        }
        let month = self.conflict_month(&found)?;
        let body = EntryBody::ConflictResolved {
            conflict: conflict.clone(),
            note: note.to_owned(),
        };
        let doc = DocumentId::Journal(found.patient.clone(), month);
        self.append_entry(now, rng, doc, now, body).map(Some)
    }

    fn conflict_month(&mut self, conflict: &Conflict) -> Result<Month, RepoError> {
        match &conflict.kind {
            ConflictKind::DoseGivenTwice { dose } | ConflictKind::DoseGivenAndNotGiven { dose } => {
                Ok(dose.day.month())
            }
            ConflictKind::VisitPerformedByTwo { visit, .. }
            | ConflictKind::VisitPerformedButCancelled { visit, .. }
            | ConflictKind::VisitPerformedAgainstChangedPlan { visit, .. } => {
                let (location, v) = self.visit(visit)?;
                Ok(location.month().unwrap_or_else(|| v.day().month()))
            }
            ConflictKind::ConcurrentFieldEdit { .. } => Err(RepoError::Invalid(
                "record-field conflicts are resolved by writing the field".into(),
            )),
            // Resolved in the journal of the document's month (a message's too).
            ConflictKind::EntryWrittenTwice { document, .. } => DocumentId::parse(document)
                .ok()
                .and_then(|d| d.month())
                .ok_or_else(|| RepoError::Invalid(format!("{document} has no month"))),
        }
    }
}

fn journal_for_visit(location: &DocumentId, visit: &Visit) -> Result<DocumentId, RepoError> {
    let month = location
        .month()
        .ok_or_else(|| RepoError::Invalid(format!("{location} is not a visit plan")))?;
    Ok(DocumentId::Journal(visit.patient.clone(), month))
}

fn validate_hhmm(value: &str) -> Result<(), RepoError> {
    let ok = value.len() == 5 && chrono::NaiveTime::parse_from_str(value, "%H:%M").is_ok();
    if ok {
        Ok(())
    } else {
        Err(RepoError::Invalid(format!(
            "invalid time of day {value:?}: expected HH:MM"
        )))
    }
}

impl Transaction<'_> {
    /// Checks every change against the access rules peers apply, and commits. Nothing is written
    /// if a rule fails. (Writes are logged by the changes themselves: see `Repo::audit_entries`.)
    pub(super) fn finish(mut self) -> Result<(), RepoError> {
        let repo = self.repo;
        crate::pipeline::check_local(&mut self.batch, &|at_ms| {
            repo.grant_at(at_ms).map_err(|e| e.to_string())
        })
        .map_err(RepoError::Unauthorized)?;
        let derive = crate::pipeline::DeriveContext::of(&self.repo.store, self.now_ms);
        crate::pipeline::commit(self.batch, &derive)?;
        Ok(())
    }
}
