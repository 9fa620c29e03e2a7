//! [`Repo`]: a node's documents and identity behind one typed API.
//!
//! This is what the CLI, the daemon and the mobile bindings call. Every operation that writes takes
//! the current time and an RNG as arguments (core never reads a clock or the OS RNG), writes through
//! one durable [`WriteBatch`](crate::store::WriteBatch), and returns only after the change is on disk.

use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::Serialize;

use crate::conflict::{Conflict, ConflictId, ConflictKind};
use crate::docs::daylog::{self, DayLogBody, DayLogEntry};
use crate::docs::journal::{self, DoseRef, Entry, EntryBody, MissedReason};
use crate::docs::messages::{self, Message, Recipient};
use crate::docs::plan::{self, NewVisit, Visit, VisitChange, VisitKind};
use crate::docs::record::{self, Medication, PatientField, PatientRecord, Tiltak, Vedtak};
use crate::docs::{Author, ChangeContext, DocError, DocKind, Document, DocumentId};
use crate::exchange::{self, ExchangeError};
use crate::identity::{Identity, IdentityError, NodeId, NodeProfile, Role};
use crate::ids::{EntryId, FlagId, MedicationId, PatientId, TiltakId, VedtakId, VisitId};
use crate::store::{kind_prefix, OpenError, Store, StoreError, WriteBatch};
use crate::time::{Day, Month, Timestamp};

/// File name of the store inside a data directory.
pub const STORE_FILE: &str = "store.redb";

/// Failure to open a node's data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenRepoError {
    /// The identity could not be loaded.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
}

/// Failure of an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// The named thing does not exist on this node.
    #[error("{0} not found on this node")]
    NotFound(String),
    /// This node's role may not make the change.
    #[error("a {role} node may not {action}")]
    NotPermitted {
        /// The node's role.
        role: Role,
        /// What was attempted.
        action: &'static str,
    },
    /// The request is invalid; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The document rejected the change; nothing was written.
    #[error(transparent)]
    Doc(#[from] DocError),
    /// The store failed; nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An import file was unreadable; nothing was imported.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

/// A tiltak to add to a patient's care plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTiltak {
    /// The vedtak it implements (registered first if given by title).
    pub vedtak_title: Option<String>,
    /// Code ("MED", "SAAR"...).
    pub code: Option<String>,
    /// What to do.
    pub description: String,
    /// Times of day, `HH:MM`.
    pub times: Vec<String>,
    /// Weekdays 1–7; empty = daily.
    pub weekdays: Vec<u8>,
    /// Health care (journal duty) or practical help.
    pub health_care: bool,
    /// Needs an authorised nurse.
    pub requires_authorised_nurse: bool,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Documents in the file.
    pub documents: usize,
    /// Documents this node did not hold before.
    pub new_documents: usize,
    /// Changes that were new to this node.
    pub new_changes: usize,
}

/// Everything this node holds about one patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientView {
    /// The record.
    pub record: PatientRecord,
    /// Visits, by start time.
    pub visits: Vec<Visit>,
    /// Journal entries, by event time.
    pub journal: Vec<Entry>,
    /// Messages, by time.
    pub messages: Vec<Message>,
    /// Open conflicts.
    pub conflicts: Vec<Conflict>,
    /// Stored keys this build could not decode (kept, never dropped).
    pub unreadable: Vec<String>,
}

/// A node's data: identity plus store.
#[derive(Debug)]
pub struct Repo {
    identity: Identity,
    store: Store,
}

impl Repo {
    /// Creates a node identity in `dir`.
    pub fn init(
        dir: &Path,
        profile: NodeProfile,
        rng: &mut impl RngCore,
    ) -> Result<Repo, OpenRepoError> {
        let identity = Identity::create(dir, profile, rng)?;
        let store = Store::open(&dir.join(STORE_FILE), identity.id())?;
        Ok(Repo { identity, store })
    }

    /// Opens the node in `dir`.
    pub fn open(dir: &Path) -> Result<Repo, OpenRepoError> {
        let identity = Identity::load(dir)?;
        let store = Store::open(&dir.join(STORE_FILE), identity.id())?;
        Ok(Repo { identity, store })
    }

    /// A node kept in memory (tests, simulation).
    pub fn in_memory(identity: Identity) -> Result<Repo, OpenRepoError> {
        let store = Store::in_memory(identity.id())?;
        Ok(Repo { identity, store })
    }

    /// The store path inside a data directory.
    pub fn store_path(dir: &Path) -> PathBuf {
        dir.join(STORE_FILE)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.identity.id()
    }

    /// This node's profile.
    pub fn profile(&self) -> &NodeProfile {
        &self.identity.profile
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The author of this node's writes.
    pub fn author(&self) -> Author {
        Author {
            staff: self.identity.profile.staff_id.clone(),
            name: self.identity.profile.name.clone(),
            role: self.identity.profile.role,
            device: self.id(),
        }
    }

    fn ctx(&self, now: Timestamp) -> ChangeContext {
        ChangeContext {
            author: self.author(),
            entered_at: now,
        }
    }

    fn require_plan_authority(&self, action: &'static str) -> Result<(), RepoError> {
        let role = self.identity.profile.role;
        if may_edit_plans(role) {
            Ok(())
        } else {
            Err(RepoError::NotPermitted { role, action })
        }
    }

    fn edit<T>(
        &self,
        id: &DocumentId,
        must_exist: bool,
        f: impl FnOnce(&mut Document) -> Result<T, DocError>,
    ) -> Result<T, RepoError> {
        let mut batch = self.store.write()?;
        let doc = if must_exist {
            batch
                .existing(id)?
                .ok_or_else(|| RepoError::NotFound(id.to_string()))?
        } else {
            batch.doc(id)?
        };
        let out = f(doc)?;
        batch.commit()?;
        Ok(out)
    }

    // ----- patient record -------------------------------------------------------------------

    /// Registers a new patient; returns the id.
    pub fn add_patient(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        fields: &[(PatientField, String)],
    ) -> Result<PatientId, RepoError> {
        self.require_plan_authority("register patients")?;
        if !fields.iter().any(|(f, v)| *f == PatientField::Name && !v.trim().is_empty()) {
            return Err(RepoError::Invalid("a patient needs a name".into()));
        }
        let patient = PatientId::random(rng);
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), false, |doc| {
            record::create(doc, &ctx, &patient, fields)
        })?;
        Ok(patient)
    }

    /// Sets a record field (also how a concurrent-edit conflict on that field is resolved).
    pub fn set_patient_field(
        &self,
        now: Timestamp,
        patient: &PatientId,
        field: PatientField,
        value: &str,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::set_field(doc, &ctx, field, value)
        })
    }

    /// Adds a flag to a patient.
    pub fn add_flag(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        kind: &str,
        note: Option<&str>,
    ) -> Result<FlagId, RepoError> {
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::add_flag(doc, &ctx, rng, kind, note)
        })
    }

    /// Deactivates a flag.
    pub fn deactivate_flag(
        &self,
        now: Timestamp,
        patient: &PatientId,
        flag: &FlagId,
        reason: &str,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::deactivate_flag(doc, &ctx, flag, reason)
        })
    }

    /// Adds a contact.
    pub fn add_contact(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        name: &str,
        relation: &str,
        phone: Option<&str>,
    ) -> Result<crate::ids::ContactId, RepoError> {
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::add_contact(doc, &ctx, rng, name, relation, phone)
        })
    }

    /// Adds a tiltak (and its vedtak, if named) to a patient's care plan.
    pub fn add_tiltak(
        &self,
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
        let ctx = self.ctx(now);
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
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        name: &str,
        dose: &str,
        slots: &[String],
    ) -> Result<MedicationId, RepoError> {
        self.require_plan_authority("edit medication lists")?;
        if slots.is_empty() {
            return Err(RepoError::Invalid("a medication needs at least one dose slot (HH:MM)".into()));
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
        let ctx = self.ctx(now);
        self.edit(&DocumentId::PatientRecord(patient.clone()), true, |doc| {
            record::put_medication(doc, &ctx, &medication)
        })?;
        Ok(medication.id)
    }

    /// A patient's record.
    pub fn record(&self, patient: &PatientId) -> Result<PatientRecord, RepoError> {
        self.store
            .with_doc(&DocumentId::PatientRecord(patient.clone()), record::read)?
            .ok_or_else(|| RepoError::NotFound(format!("patient {patient}")))?
            .map_err(RepoError::from)
    }

    /// Every patient this node holds.
    pub fn patients(&self) -> Result<Vec<(PatientId, String)>, RepoError> {
        Ok(self.store.patients()?)
    }

    // ----- visit plan -----------------------------------------------------------------------

    /// Plans a visit; returns its id.
    pub fn plan_visit(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &NewVisit,
    ) -> Result<VisitId, RepoError> {
        self.require_plan_authority("plan visits")?;
        let rec = self.record(&visit.patient)?;
        for t in &visit.tiltak {
            if !rec.tiltak.iter().any(|x| &x.id == t) {
                return Err(RepoError::NotFound(format!("tiltak {t} of patient {}", visit.patient)));
            }
        }
        let ctx = self.ctx(now);
        let id = DocumentId::VisitPlan(visit.patient.clone(), visit.start.day().month());
        self.edit(&id, false, |doc| plan::add(doc, &ctx, rng, visit))
    }

    /// Finds a visit.
    pub fn visit(&self, visit: &VisitId) -> Result<(DocumentId, Visit), RepoError> {
        let not_found = || RepoError::NotFound(format!("visit {visit}"));
        let location = self.store.visit_location(visit)?.ok_or_else(not_found)?;
        let found = self
            .store
            .with_doc(&location, |doc| plan::read(doc).visit(visit).cloned())?
            .flatten()
            .ok_or_else(not_found)?;
        Ok((location, found))
    }

    /// Changes a planned visit (reschedule, reassign, cancel...).
    pub fn change_visit(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        visit: &VisitId,
        change: &VisitChange,
    ) -> Result<(), RepoError> {
        self.require_plan_authority("change visit plans")?;
        let (location, _) = self.visit(visit)?;
        if let (VisitChange::Reschedule { start, .. }, Some(month)) = (change, location.month()) {
            if start.day().month() != month {
                return Err(RepoError::Invalid(format!(
                    "a visit cannot move to another month ({month} → {}); cancel it and plan a new one",
                    start.day().month()
                )));
            }
        }
        let ctx = self.ctx(now);
        self.edit(&location, true, |doc| plan::change(doc, &ctx, rng, visit, change))
    }

    /// Visits planned for `day` across every patient held, by start time.
    pub fn visits_on(&self, day: Day) -> Result<Vec<Visit>, RepoError> {
        let month = day.month().to_string();
        let mut out = Vec::new();
        for id in self.store.doc_ids(kind_prefix(DocKind::VisitPlan))? {
            if id.month().map(|m| m.to_string()) != Some(month.clone()) {
                continue;
            }
            if let Some(visits) = self.store.with_doc(&id, plan::read)? {
                out.extend(visits.visits.into_iter().filter(|v| v.day() == day));
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    // ----- journal --------------------------------------------------------------------------

    fn append_entry(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        doc_id: DocumentId,
        event_time: Timestamp,
        body: EntryBody,
    ) -> Result<Entry, RepoError> {
        let ctx = self.ctx(now);
        self.edit(&doc_id, false, |doc| journal::append(doc, &ctx, rng, event_time, body))
    }

    /// Documents that a visit was performed. The plan revisions this node has seen are recorded,
    /// so the base can tell whether the visit was done against a plan changed meanwhile.
    pub fn visit_performed(
        &self,
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
        self.append_entry(now, rng, journal_for_visit(&location, &planned)?, arrival, body)
    }

    /// Documents that a visit was attempted but not performed.
    pub fn visit_missed(
        &self,
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
        self.append_entry(now, rng, journal_for_visit(&location, &planned)?, event_time, body)
    }

    /// Adds a free-text note (to a visit's journal month if a visit is given).
    pub fn add_note(
        &self,
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
        &self,
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

    /// Records a dose as given (`reason: None`) or not given (`Some(reason)`).
    #[allow(clippy::too_many_arguments)]
    pub fn record_dose(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        medication: &MedicationId,
        slot: &str,
        event_time: Timestamp,
        visit: Option<&VisitId>,
        not_given_reason: Option<String>,
    ) -> Result<Entry, RepoError> {
        let rec = self.record(patient)?;
        let med = rec
            .medication(medication)
            .ok_or_else(|| RepoError::NotFound(format!("medication {medication} of patient {patient}")))?;
        if !med.slots.iter().any(|s| s == slot) {
            return Err(RepoError::Invalid(format!(
                "{} has no dose slot {slot}; its slots are {}",
                med.name,
                med.slots.join(", ")
            )));
        }
        let dose = DoseRef {
            medication: medication.clone(),
            slot: slot.to_owned(),
            day: event_time.day(),
        };
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

    /// Corrects an entry (`Some(text)`) or marks it entered in error (`None` text, with reason).
    /// The original stays in the journal, readable.
    pub fn correct_entry(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        target: &EntryId,
        correction: Correction,
    ) -> Result<Entry, RepoError> {
        let doc_id = self
            .find_entry(patient, target)?
            .ok_or_else(|| RepoError::NotFound(format!("entry {target} of patient {patient}")))?;
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

    fn find_entry(&self, patient: &PatientId, target: &EntryId) -> Result<Option<DocumentId>, RepoError> {
        for id in self.store.doc_ids(&format!("journal/{patient}/"))? {
            let found = self
                .store
                .with_doc(&id, |doc| journal::read(doc).entry(target).is_some())?;
            if found == Some(true) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    fn journal_doc(
        &self,
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
                self.record(patient)?;
                Ok(DocumentId::Journal(patient.clone(), day.month()))
            }
        }
    }

    /// Every journal entry of a patient held here, by event time.
    pub fn journal(&self, patient: &PatientId) -> Result<(Vec<Entry>, Vec<String>), RepoError> {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for id in self.store.doc_ids(&format!("journal/{patient}/"))? {
            if let Some(j) = self.store.with_doc(&id, journal::read)? {
                entries.extend(j.entries);
                unreadable.extend(j.unreadable.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        entries.sort_by(|a, b| a.event_time.cmp(&b.event_time).then_with(|| a.id.cmp(&b.id)));
        Ok((entries, unreadable))
    }

    // ----- messages and day logs ------------------------------------------------------------

    /// Sends a message about a patient.
    pub fn send_message(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        to: Recipient,
        text: &str,
        in_reply_to: Option<EntryId>,
    ) -> Result<Message, RepoError> {
        self.record(patient)?;
        let ctx = self.ctx(now);
        let id = DocumentId::Messages(patient.clone(), now.day().month());
        self.edit(&id, false, |doc| {
            messages::send(doc, &ctx, rng, to, text, in_reply_to)
        })
    }

    /// Appends to this node's staff member's day log.
    pub fn day_log(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        event_time: Timestamp,
        body: DayLogBody,
    ) -> Result<DayLogEntry, RepoError> {
        let staff = self.identity.profile.staff_id.clone().ok_or_else(|| {
            RepoError::Invalid("this node serves no staff member, so it keeps no day log".into())
        })?;
        let ctx = self.ctx(now);
        let id = DocumentId::DayLog(staff, event_time.day());
        self.edit(&id, false, |doc| daylog::append(doc, &ctx, rng, event_time, body))
    }

    // ----- views ----------------------------------------------------------------------------

    /// Everything held about a patient.
    pub fn patient_view(&self, patient: &PatientId) -> Result<PatientView, RepoError> {
        let record = self.record(patient)?;
        let mut unreadable = record.unreadable.clone();
        let mut visits = Vec::new();
        for id in self.store.doc_ids(&format!("plan/{patient}/"))? {
            if let Some(p) = self.store.with_doc(&id, plan::read)? {
                visits.extend(p.visits);
                unreadable.extend(p.unreadable.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        visits.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        let (journal, bad) = self.journal(patient)?;
        unreadable.extend(bad);
        let mut all_messages = Vec::new();
        for id in self.store.doc_ids(&format!("messages/{patient}/"))? {
            if let Some((m, bad)) = self.store.with_doc(&id, messages::read)? {
                all_messages.extend(m);
                unreadable.extend(bad.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        Ok(PatientView {
            record,
            visits,
            journal,
            messages: all_messages,
            conflicts: self.conflicts(Some(patient))?,
            unreadable,
        })
    }

    /// Open conflicts, optionally for one patient.
    pub fn conflicts(&self, patient: Option<&PatientId>) -> Result<Vec<Conflict>, RepoError> {
        Ok(self.store.conflicts(patient)?)
    }

    /// Resolves a conflict with an attributable entry. A record-field conflict needs the value
    /// to keep (`value`); a safety conflict needs a note saying what was found and done.
    pub fn resolve_conflict(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        conflict: &ConflictId,
        note: &str,
        value: Option<&str>,
    ) -> Result<(), RepoError> {
        let found = self
            .conflicts(None)?
            .into_iter()
            .find(|c| &c.id == conflict)
            .ok_or_else(|| RepoError::NotFound(format!("open conflict {conflict}")))?;
        if let ConflictKind::ConcurrentFieldEdit { field, .. } = &found.kind {
            let value = value.ok_or_else(|| {
                RepoError::Invalid(format!(
                    "{conflict} is a concurrent edit of {}; give the value to keep",
                    field.as_str()
                ))
            })?;
            return self.set_patient_field(now, &found.patient, *field, value);
        }
        let month = self.conflict_month(&found)?;
        let body = EntryBody::ConflictResolved {
            conflict: conflict.clone(),
            note: note.to_owned(),
        };
        self.append_entry(
            now,
            rng,
            DocumentId::Journal(found.patient.clone(), month),
            now,
            body,
        )
        .map(|_| ())
    }

    fn conflict_month(&self, conflict: &Conflict) -> Result<Month, RepoError> {
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
        }
    }

    // ----- export / import ------------------------------------------------------------------

    /// Every document (or one patient's), as a portable export file.
    pub fn export(&self, patient: Option<&PatientId>) -> Result<Vec<u8>, RepoError> {
        let mut docs = Vec::new();
        let ids = self.store.doc_ids("")?;
        for id in ids {
            if patient.is_some() && id.patient() != patient {
                continue;
            }
            if let Some(bytes) = self.store.with_doc(&id, |d| d.clone().save())? {
                docs.push((id, bytes));
            }
        }
        Ok(exchange::encode(&docs))
    }

    /// Merges an export file into this node, all or nothing.
    pub fn import(&self, bytes: &[u8]) -> Result<ImportSummary, RepoError> {
        let incoming = exchange::decode(bytes)?;
        // Validate every document before touching the store: nothing is half-imported.
        let mut loaded = Vec::with_capacity(incoming.len());
        for (id, data) in incoming {
            loaded.push(Document::load(id, &data, self.id())?);
        }
        let mut summary = ImportSummary {
            documents: loaded.len(),
            ..ImportSummary::default()
        };
        let mut batch: WriteBatch<'_> = self.store.write()?;
        for mut doc in loaded {
            let id = doc.id().clone();
            let existing = batch.existing(&id)?.is_some();
            if !existing {
                summary.new_documents += 1;
            }
            summary.new_changes += batch.doc(&id)?.merge(&mut doc)?;
        }
        batch.commit()?;
        Ok(summary)
    }
}

/// How to correct an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correction {
    /// New text superseding the original for reading.
    Amend(String),
    /// The entry should not have been written; the reason is kept.
    EnteredInError(String),
}

fn journal_for_visit(location: &DocumentId, visit: &Visit) -> Result<DocumentId, RepoError> {
    let month = location
        .month()
        .ok_or_else(|| RepoError::Invalid(format!("{location} is not a visit plan")))?;
    Ok(DocumentId::Journal(visit.patient.clone(), month))
}

fn validate_hhmm(value: &str) -> Result<(), RepoError> {
    let ok = value.len() == 5
        && chrono::NaiveTime::parse_from_str(value, "%H:%M").is_ok();
    if ok {
        Ok(())
    } else {
        Err(RepoError::Invalid(format!(
            "invalid time of day {value:?}: expected HH:MM"
        )))
    }
}

/// Whether a role may register patients and edit care plans and visit plans (domain.md §6 case 8:
/// only base roles write plans; nurses propose changes through messages). Received changes are
/// checked against the same rule once changes are signed.
pub fn may_edit_plans(role: Role) -> bool {
    role == Role::Base
}
