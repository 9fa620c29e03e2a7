//! [`Repo`]: a node's documents and identity behind one typed API.
//!
//! This is what the CLI, the daemon and the mobile bindings call. Every operation that writes takes
//! the current time and an RNG as arguments (core never reads a clock or the OS RNG), writes through
//! one durable [`WriteBatch`](crate::store::WriteBatch), and returns only after the change is on disk.

mod access;
mod devices;
mod tasks;
mod tx;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::Serialize;

pub use access::{AccessDenied, EXPLICIT_ACCESS_MS, PurgeReport, shred_data_dir};
pub use devices::{DeviceReport, DoseEventKind};
pub use tx::Transaction;

use crate::conflict::{Conflict, ConflictId};
use crate::escalation::TaskId;

use crate::docs::daylog::{DayLogBody, DayLogEntry};
use crate::docs::journal::{self, Entry, MissedReason};
use crate::docs::messages::{self, Attachment, Message, Recipient};
use crate::docs::plan::{self, NewVisit, Visit, VisitChange, VisitKind};
use crate::docs::record::{self, PatientField, PatientRecord};
use crate::docs::{Author, DocError, DocKind, Document, DocumentId};
use crate::exchange::{self, ExchangeError};
use crate::identity::{Identity, IdentityError, NodeId, NodeProfile, Role};
use crate::ids::{ContactId, EntryId, FlagId, MedicationId, PatientId, TiltakId, VisitId};
use crate::store::{
    KeyError, OpenError, Store, StoreError, StoreKey, StoreKeys, WriteBatch, kind_prefix,
};
use crate::time::{Day, Timestamp};

/// Generates a [`Repo`] method per [`Transaction`] method that runs it as a transaction of its own,
/// so a single write needs no closure while batches use [`Repo::transaction`].
macro_rules! single_writes {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty; )*) => {$(
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        pub fn $name(&self, $($arg: $ty),*) -> Result<$ret, RepoError> {
            self.transaction(|tx| tx.$name($($arg),*))
        }
    )*};
}

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
    /// The store key is missing or unreadable.
    #[error(transparent)]
    Key(#[from] KeyError),
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
    /// The change breaks an access rule (the same rule every peer checks); nothing was written.
    #[error("not permitted: {0}")]
    Unauthorized(String),
    /// No work-related need for the patient (or a block); nothing was shown.
    #[error(transparent)]
    AccessDenied(#[from] AccessDenied),
    /// A certificate, request or revocation was invalid.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
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
    /// Needs two staff at once (dobbeltbemanning).
    pub double_staffed: bool,
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
    /// Care team, blocks (sperring) and explicit accesses.
    pub access: crate::docs::access::AccessFacts,
    /// Stored keys this build could not decode (kept, never dropped).
    pub unreadable: Vec<String>,
}

/// A node's data: identity plus store.
#[derive(Debug)]
pub struct Repo {
    identity: Identity,
    store: Store,
    dir: PathBuf,
}

impl Repo {
    /// Creates a node identity in `dir`, with its store encrypted by `key`, or by a new key file
    /// (`store.key`, owner-only) when the host supplies none.
    pub fn init(
        dir: &Path,
        profile: NodeProfile,
        key: Option<StoreKey>,
        rng: &mut impl RngCore,
    ) -> Result<Repo, OpenRepoError> {
        let identity = Identity::create(dir, profile, rng)?;
        let key = match key {
            Some(key) => key,
            None => StoreKey::create_file(&StoreKey::path(dir), rng)?,
        };
        Self::open_store(dir, identity, &key, rng)
    }

    /// Opens the node in `dir` with the store key the host supplies, or (`None`) the key file.
    /// A wrong or missing key is refused before the store is read or written.
    /// `rng` is used only if the store must be created or migrated.
    pub fn open(
        dir: &Path,
        key: Option<StoreKey>,
        rng: &mut impl RngCore,
    ) -> Result<Repo, OpenRepoError> {
        let identity = Identity::load(dir)?;
        let key_path = StoreKey::path(dir);
        let key = match key {
            Some(key) => key,
            // A store from before encryption at rest gets its key now, and is encrypted on open.
            None if !key_path.exists() && Store::is_unencrypted(&dir.join(STORE_FILE))? => {
                StoreKey::create_file(&key_path, rng)?
            }
            None => StoreKey::load_file(&key_path)?,
        };
        Self::open_store(dir, identity, &key, rng)
    }

    fn open_store(
        dir: &Path,
        identity: Identity,
        key: &StoreKey,
        rng: &mut impl RngCore,
    ) -> Result<Repo, OpenRepoError> {
        let keys = StoreKeys {
            signer: identity.key.clone(),
            data: key.clone(),
        };
        let store = Store::open(&dir.join(STORE_FILE), &keys, random_epoch(rng))?;
        Ok(Repo {
            identity,
            store,
            dir: dir.to_owned(),
        })
    }

    /// A node kept in memory (tests, simulation).
    pub fn in_memory(identity: Identity, rng: &mut impl RngCore) -> Result<Repo, OpenRepoError> {
        let keys = StoreKeys {
            signer: identity.key.clone(),
            data: StoreKey::generate(rng),
        };
        let store = Store::in_memory(&keys, random_epoch(rng))?;
        Ok(Repo {
            identity,
            store,
            dir: PathBuf::new(),
        })
    }

    /// The data directory (empty for an in-memory node).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
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

    /// Runs `f` in one atomic, durable transaction: everything it writes is committed together
    /// (and fsynced) when it returns `Ok`, or nothing is written when it returns `Err`.
    ///
    /// The closure may use its own error type, as long as a [`RepoError`] converts into it.
    pub fn transaction<T, E: From<RepoError>>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let batch = self.store.write().map_err(RepoError::from)?;
        let mut tx = Transaction {
            repo: self,
            batch,
            new_visits: HashMap::new(),
        };
        let out = f(&mut tx)?;
        tx.finish()?;
        Ok(out)
    }

    single_writes! {
        /// Registers a new patient; returns the id.
        fn add_patient(now: Timestamp, rng: &mut impl RngCore, fields: &[(PatientField, String)]) -> PatientId;
        /// Sets a record field (also how a concurrent-edit conflict on that field is resolved).
        fn set_patient_field(now: Timestamp, patient: &PatientId, field: PatientField, value: &str) -> ();
        /// Adds a flag to a patient.
        fn add_flag(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, kind: &str, note: Option<&str>) -> FlagId;
        /// Deactivates a flag (it stays in the record).
        fn deactivate_flag(now: Timestamp, patient: &PatientId, flag: &FlagId, reason: &str) -> ();
        /// Adds a contact.
        fn add_contact(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, name: &str, relation: &str, phone: Option<&str>) -> ContactId;
        /// Adds a tiltak (and its vedtak, if named) to a patient's care plan.
        fn add_tiltak(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, spec: &NewTiltak) -> TiltakId;
        /// Adds a medication with its dose slots.
        fn add_medication(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, name: &str, dose: &str, slots: &[String]) -> MedicationId;
        /// Plans a visit; returns its id.
        fn plan_visit(now: Timestamp, rng: &mut impl RngCore, visit: &NewVisit) -> VisitId;
        /// Changes a planned visit (reschedule, reassign, cancel...).
        fn change_visit(now: Timestamp, rng: &mut impl RngCore, visit: &VisitId, change: &VisitChange) -> ();
        /// Documents that a visit was performed.
        fn visit_performed(now: Timestamp, rng: &mut impl RngCore, visit: &VisitId, arrival: Timestamp, departure: Option<Timestamp>, mode: Option<VisitKind>) -> Entry;
        /// Documents that a visit was attempted but not performed.
        fn visit_missed(now: Timestamp, rng: &mut impl RngCore, visit: &VisitId, reason: MissedReason, note: Option<String>, event_time: Timestamp) -> Entry;
        /// Adds a free-text note.
        fn add_note(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, visit: Option<&VisitId>, event_time: Timestamp, text: &str) -> Entry;
        /// Records an observation (vital sign).
        fn observe(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, visit: Option<&VisitId>, event_time: Timestamp, kind: &str, value: &str, unit: Option<&str>) -> Entry;
        /// Records what a device in the home reported (see [`Transaction::device_report`]).
        fn device_report(now: Timestamp, rng: &mut impl RngCore, device: &str, event_id: &str, event_time: Timestamp, report: &DeviceReport) -> Option<Entry>;
        /// Records a dose as given (`None`) or not given (`Some(reason)`).
        fn record_dose(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, medication: &MedicationId, slot: &str, event_time: Timestamp, visit: Option<&VisitId>, not_given_reason: Option<String>) -> Entry;
        /// Corrects an entry or marks it entered in error. The original stays readable.
        fn correct_entry(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, target: &EntryId, correction: Correction) -> Entry;
        /// Sends a message about a patient.
        fn send_message(now: Timestamp, rng: &mut impl RngCore, patient: &PatientId, to: Recipient, text: &str, in_reply_to: Option<EntryId>, attachments: Vec<Attachment>) -> Message;
        /// Appends to this node's staff member's day log.
        fn day_log(now: Timestamp, rng: &mut impl RngCore, event_time: Timestamp, body: DayLogBody) -> DayLogEntry;
        /// Claims an escalation task (see [`Transaction::claim_task`]).
        fn claim_task(now: Timestamp, rng: &mut impl RngCore, task: &TaskId) -> Entry;
        /// Completes an escalation task, saying what was done.
        fn complete_task(now: Timestamp, rng: &mut impl RngCore, task: &TaskId, note: &str) -> Entry;
        /// Resolves a conflict with an attributable entry (see [`Transaction::resolve_conflict`]).
        fn resolve_conflict(now: Timestamp, rng: &mut impl RngCore, conflict: &ConflictId, note: &str, value: Option<&str>) -> Option<Entry>;
    }

    // ----- reads ------------------------------------------------------------------------------

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

    /// Finds a visit and the plan document holding it.
    pub fn visit(&self, visit: &VisitId) -> Result<(DocumentId, Visit), RepoError> {
        let not_found = || RepoError::NotFound(format!("visit {visit}"));
        let location = self.store.visit_location(visit)?.ok_or_else(not_found)?;
        let found = self
            .store
            .with_doc(&location, |doc| plan::read_visit(doc, visit))?
            .flatten()
            .ok_or_else(not_found)?;
        Ok((location, found))
    }

    /// Visits planned for `day` across every patient held, by start time.
    pub fn visits_on(&self, day: Day) -> Result<Vec<Visit>, RepoError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids(kind_prefix(DocKind::VisitPlan))? {
            if id.month() != Some(day.month()) {
                continue;
            }
            if let Some(visits) = self.store.with_doc(&id, plan::read)? {
                out.extend(visits.visits.into_iter().filter(|v| v.day() == day));
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Every journal entry of a patient held here, by event time, plus keys that could not be
    /// decoded (kept, never dropped).
    pub fn journal(&self, patient: &PatientId) -> Result<(Vec<Entry>, Vec<String>), RepoError> {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for id in self.store.doc_ids(&format!("journal/{patient}/"))? {
            if let Some(j) = self.store.with_doc(&id, journal::read)? {
                entries.extend(j.entries);
                unreadable.extend(j.unreadable.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        entries.sort_by(|a, b| {
            a.event_time
                .cmp(&b.event_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok((entries, unreadable))
    }

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
            access: self
                .store
                .with_doc(
                    &DocumentId::PatientRecord(patient.clone()),
                    crate::docs::access::read,
                )?
                .unwrap_or_default(),
            unreadable,
        })
    }

    /// Open conflicts, optionally for one patient.
    pub fn conflicts(&self, patient: Option<&PatientId>) -> Result<Vec<Conflict>, RepoError> {
        Ok(self.store.conflicts(patient)?)
    }

    /// When all of `patient`'s documents were last known identical on both sides: per document, the
    /// time both were last seen equal, or the last catch-up if the heads still match; the oldest wins.
    pub fn patient_synced_at(
        &self,
        peer: &NodeId,
        caught_up_ms: Option<i64>,
        patient: &PatientId,
    ) -> Result<Option<i64>, RepoError> {
        let store = &self.store;
        let mut oldest: Option<i64> = None;
        for prefix in ["patient/", "plan/", "journal/", "messages/"] {
            let ids = store.doc_ids(&format!("{prefix}{patient}"))?;
            for id in ids {
                let Some(state) = store.peer_doc(peer, &id)? else {
                    return Ok(None);
                };
                let mine = store
                    .with_doc(&id, |d| d.clone().head_hashes())?
                    .unwrap_or_default();
                let at = if state.heads == mine {
                    state.equal_at_ms.max(caught_up_ms)
                } else {
                    state.equal_at_ms
                };
                let Some(at) = at else {
                    return Ok(None);
                };
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        Ok(oldest)
    }

    // ----- export / import ------------------------------------------------------------------

    /// Every document (or one patient's), as a portable export file, with every change's
    /// signature and its authors' certificates, so the importer can verify each one.
    pub fn export(&self, patient: Option<&PatientId>) -> Result<Vec<u8>, RepoError> {
        let mut out = exchange::Exchange::default();
        let mut authors = std::collections::BTreeSet::new();
        for id in self.store.doc_ids("")? {
            if patient.is_some() && id.patient() != patient {
                continue;
            }
            let Some((bytes, changes)) = self.store.with_doc(&id, |d| {
                (d.clone().save(), d.clone().hashed_changes_since(&[]))
            })?
            else {
                continue;
            };
            for change in &changes {
                if let Some(signature) = change.signature {
                    out.signatures.push((change.hash, signature));
                }
                if let Ok(bytes) = <[u8; 32]>::try_from(change.actor.as_slice())
                    && let Ok(node) = NodeId::from_bytes(bytes)
                {
                    authors.insert(node);
                }
            }
            out.docs.push((id, bytes));
        }
        for node in authors {
            if let Some(cert) = self.store.certificate(&node)? {
                out.certificates.push(cert.to_bytes());
            }
        }
        Ok(exchange::encode(&out))
    }

    /// Merges an export file into this node, all or nothing. Every change new to this node is
    /// verified like one received from a peer (signature, author's certificate, revocation,
    /// role rules); one that fails refuses the whole file.
    pub fn import(&self, bytes: &[u8]) -> Result<ImportSummary, RepoError> {
        let incoming = exchange::decode(bytes)?;
        let org = self.certificate()?.map(|c| c.grant().org);
        let mut certificates = std::collections::BTreeMap::new();
        for bytes in &incoming.certificates {
            let cert = crate::trust::Certificate::from_bytes(bytes)?;
            if Some(cert.grant().org) == org {
                certificates.insert(cert.node(), cert);
            }
        }
        let signatures: std::collections::BTreeMap<[u8; 32], [u8; 64]> =
            incoming.signatures.iter().copied().collect();
        // Validate every document and change before touching the store: nothing is half-imported.
        let mut loaded = Vec::with_capacity(incoming.docs.len());
        for (id, data) in incoming.docs {
            let mut doc = Document::load(id.clone(), &data, self.id())?;
            let held: Vec<[u8; 32]> = self
                .store
                .with_doc_mut(&id, |d| d.head_hashes())?
                .unwrap_or_default();
            for change in doc.hashed_changes_since(&held) {
                if self
                    .store
                    .with_doc_mut(&id, |d| d.has_change(&change.hash))?
                    .unwrap_or(false)
                {
                    continue;
                }
                let signature = signatures.get(&change.hash).ok_or_else(|| {
                    RepoError::Unauthorized(format!(
                        "a change of {id} in the file carries no signature; nothing was imported"
                    ))
                })?;
                let mut authors = ImportAuthors {
                    repo: self,
                    certificates: &certificates,
                };
                let hash = crate::trust::verify_change(&id, &change.bytes, signature, &mut authors)
                    .map_err(|reason| {
                        RepoError::Unauthorized(format!("{reason}; nothing was imported"))
                    })?;
                doc.add_signature(hash, *signature);
            }
            loaded.push(doc);
        }
        let mut summary = ImportSummary {
            documents: loaded.len(),
            ..ImportSummary::default()
        };
        let mut batch: WriteBatch<'_> = self.store.write()?;
        for cert in certificates.values() {
            batch.put_certificate(cert)?;
        }
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

/// Change authors for an import: certificates from the file (already checked to be of this
/// node's organisation) and from the store, revocations from the store.
struct ImportAuthors<'a> {
    repo: &'a Repo,
    certificates: &'a std::collections::BTreeMap<NodeId, crate::trust::Certificate>,
}

impl crate::trust::Authors for ImportAuthors<'_> {
    fn grant(&mut self, node: &NodeId) -> Result<Option<crate::trust::Grant>, String> {
        if let Some(cert) = self.certificates.get(node) {
            return Ok(Some(cert.grant().clone()));
        }
        if *node == self.repo.id() {
            // Its own changes: this node's grant, enrolled or not.
            return Ok(Some(self.repo.grant()));
        }
        let cert = self
            .repo
            .store
            .certificate(node)
            .map_err(|e| e.to_string())?;
        Ok(cert.map(|c| c.grant().clone()))
    }

    fn revoked(&mut self, node: &NodeId) -> Result<bool, String> {
        Ok(self
            .repo
            .store
            .revocation(node)
            .map_err(|e| e.to_string())?
            .is_some())
    }
}

fn random_epoch(rng: &mut impl RngCore) -> [u8; 16] {
    let mut epoch = [0u8; 16];
    rng.fill_bytes(&mut epoch);
    epoch
}

/// How to correct an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Correction {
    /// New text superseding the original for reading.
    Amend(String),
    /// The entry should not have been written; the reason is kept.
    EnteredInError(String),
}

/// Whether a role may register patients and edit care plans and visit plans (domain.md §6 case 8:
/// only base roles write plans; nurses propose changes through messages). Received changes are
/// checked against the same rule once changes are signed.
pub fn may_edit_plans(role: Role) -> bool {
    role == Role::Base
}
