//! [`Repo`]: a node's documents and identity behind one typed API.
//!
//! This is what the CLI, the daemon and the mobile bindings call. Every operation that writes takes
//! the current time and an RNG as arguments (core never reads a clock or the OS RNG), writes through
//! one durable [`WriteBatch`](crate::store::WriteBatch), and returns only after the change is on disk.

mod access;
mod audit;
pub(crate) mod devices;
mod enrolment;
mod gate;
mod purge;
mod repair;
mod side_files;
mod staff;
mod tasks;
mod tx;
mod worklist_rows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::Serialize;

pub use access::EXPLICIT_ACCESS_MS;
pub use devices::{DeviceReport, DoseEventKind};
pub use gate::{AccessDenied, Disclosure, Gate};
pub use purge::PurgeReport;
pub use repair::{RepairReport, RepairedDocument};
pub use staff::{ListedStaff, STAFF_FILE, staff_list};
pub use tasks::TaskNames;
pub use tx::Transaction;
pub use worklist_rows::{ImportedRow, WORKLIST_ROWS_FILE};

use crate::conflict::{Conflict, ConflictId};
use crate::escalation::TaskId;

use crate::docs::daylog::{DayLogBody, DayLogEntry};
use crate::docs::journal::{self, Entry, MissedReason};
use crate::docs::messages::{self, Attachment, Message, Recipient};
use crate::docs::plan::{self, NewVisit, Visit, VisitChange, VisitKind};
use crate::docs::record::{self, PatientField, PatientRecord};
use crate::docs::{Author, DocError, DocKind, DocumentId};
use crate::exchange::{self, ExchangeError};
use crate::identity::{Identity, IdentityError, NodeId, NodeProfile, Role};
use crate::ids::{ContactId, EntryId, FlagId, MedicationId, PatientId, TiltakId, VisitId};
use crate::pipeline;
use crate::store::{
    KeyError, OpenError, Store, StoreError, StoreKey, StoreKeys, WriteBatch, kind_prefix,
};
use crate::sync::wire::SignedChange;
use crate::time::{Day, Timestamp};
use crate::trust::audit::AuditAction;

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

impl From<crate::pipeline::LogError> for RepoError {
    fn from(e: crate::pipeline::LogError) -> Self {
        match e {
            crate::pipeline::LogError::Store(e) => RepoError::Store(e),
            crate::pipeline::LogError::Doc(e) => RepoError::Doc(e),
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Documents in the file.
    pub documents: usize,
    /// Documents this node did not hold before.
    pub new_documents: usize,
    /// Changes that were new to this node.
    pub new_changes: usize,
    /// Why changes of the file were left out while the rest was imported: changes by revoked
    /// nodes that nothing else builds on, one line a document.
    pub left_out: Vec<String>,
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
    pub access: crate::docs::access_facts::AccessFacts,
    /// Stored keys this build could not decode (kept, never dropped).
    pub unreadable: Vec<String>,
}

impl PatientView {
    /// One line for people about `body`, naming what this view holds by name: a dose by its
    /// medication's name and slot, a visit by its planned time (what
    /// [`crate::docs::journal::EntryBody::describe`] names by id).
    pub fn describe(&self, body: &crate::docs::journal::EntryBody) -> String {
        use crate::docs::journal::Referent;
        body.describe_naming(&|referent| match referent {
            Referent::Entry(entry) => (self.journal.iter())
                .find(|e| &e.id == entry)
                .map(|e| self.entry_for_people(e)),
            other => self.name_dose_or_visit(other),
        })
    }

    /// A dose by its medication, a visit by its time; `None` for the rest.
    fn name_dose_or_visit(&self, referent: crate::docs::journal::Referent<'_>) -> Option<String> {
        use crate::docs::journal::Referent;
        match referent {
            Referent::Dose(dose) => self.record.dose_name(dose),
            Referent::Visit(visit) => (self.visits.iter())
                .find(|v| &v.id == visit)
                .map(Visit::for_people),
            Referent::Entry(_) => None,
        }
    }

    /// An entry as a correction names it: "the note of 08:10", with the start of its text
    /// where another entry of its kind has the same minute.
    fn entry_for_people(&self, e: &Entry) -> String {
        let at = e.event_time.hhmm();
        let named = format!("the {} of {at}", e.body.what());
        let minute = |t: &Timestamp| t.unix_millis().div_euclid(60_000);
        let twins = (self.journal.iter())
            .filter(|o| o.body.what() == e.body.what())
            .filter(|o| minute(&o.event_time) == minute(&e.event_time))
            .count();
        if twins < 2 {
            return named;
        }
        // The quoted entry's own references are not followed: corrections that name each
        // other (a crafted pair) must not recurse.
        let said = e
            .body
            .describe_naming(&|referent| self.name_dose_or_visit(referent));
        let text = said.split_once(": ").map_or(said.as_str(), |(_, t)| t);
        let start: String = text.chars().take(32).collect();
        let more = if text.chars().count() > 32 { "…" } else { "" };
        format!("{named} (\"{start}{more}\")")
    }

    /// How later entries mark each entry of the view, by the journal's own rule: entered in
    /// error where a standing mark of its author withdraws it (`journal::Marks`, as the
    /// report, FHIR and the planner count it), else corrected where a standing correction
    /// supersedes its text.
    pub fn marked(&self) -> std::collections::BTreeMap<&EntryId, &'static str> {
        use crate::docs::journal::{EntryBody, Marks};
        let marks = Marks::of(&self.journal);
        let mut marked = std::collections::BTreeMap::new();
        for e in &self.journal {
            if marks.withdrawal(e).is_some() {
                marked.insert(&e.id, "ENTERED IN ERROR");
            }
        }
        for e in &self.journal {
            if let EntryBody::Correction { corrects, .. } = &e.body
                && !marked.contains_key(&e.id)
            {
                marked.entry(corrects).or_insert("corrected");
            }
        }
        marked
    }
}

/// Each patient's name and what tells her apart from another of the name (her date of birth,
/// else her address), by id.
pub type NamesAndHints = std::collections::BTreeMap<PatientId, (String, Option<String>)>;

/// The names one list shows its patients by: her name, and where another patient *this list
/// shows* has the same name, what tells them apart — "Kari Dahl (f. 12.03.1941)", her address,
/// or her id where her record gives neither (or both give the same). Two patients of one name
/// must never be one line in a list a nurse gives medicine from; and only the list's own
/// patients count, for whom else the node holds is not this user's to learn (`shown` are the
/// patients the gate let through).
pub fn tell_apart<'a>(
    names: &NamesAndHints,
    shown: impl IntoIterator<Item = &'a PatientId>,
) -> std::collections::BTreeMap<PatientId, String> {
    let key = |text: &str| {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    // Each patient once, however many lines of the list are hers (a task each, a visit each):
    // she is no namesake of herself.
    let shown: std::collections::BTreeSet<&PatientId> = shown.into_iter().collect();
    let shown: Vec<(&PatientId, &String, Option<&String>)> = (shown.into_iter())
        .filter_map(|id| names.get(id).map(|(name, hint)| (id, name, hint.as_ref())))
        .collect();
    let mut same_name: HashMap<String, usize> = HashMap::new();
    let mut same_hint: HashMap<(String, String), usize> = HashMap::new();
    for (_, name, hint) in &shown {
        *same_name.entry(key(name)).or_default() += 1;
        if let Some(hint) = hint {
            *same_hint.entry((key(name), key(hint))).or_default() += 1;
        }
    }
    (shown.into_iter())
        .map(|(id, name, hint)| {
            let label = match hint {
                _ if same_name[&key(name)] < 2 => name.clone(),
                Some(hint) if same_hint[&(key(name), key(hint))] < 2 => format!("{name} ({hint})"),
                _ => format!("{name} ({id})"),
            };
            (id.clone(), label)
        })
        .collect()
}

/// Names each conflict's patient as a list's `labels` ([`tell_apart`]) name her.
pub fn label_conflicts(
    conflicts: &mut [Conflict],
    labels: &std::collections::BTreeMap<PatientId, String>,
) {
    for c in conflicts {
        if let Some(label) = labels.get(&c.patient) {
            c.patient_name = Some(label.clone());
        }
    }
}

/// A node's data: identity plus store.
#[derive(Debug)]
pub struct Repo {
    identity: Identity,
    store: Store,
    dir: PathBuf,
    /// Files outside `dir` that hold the store key (see [`Repo::wipe`]).
    key_files: Vec<PathBuf>,
    /// The staff the work lists named (`staff.rs`).
    listed_staff: std::sync::RwLock<std::collections::BTreeMap<String, ListedStaff>>,
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
        #[allow(
            clippy::disallowed_methods,
            reason = "whether the store key file exists decides if an old store is encrypted now"
        )]
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
        let path = dir.join(STORE_FILE);
        let store = Store::open(&path, &keys, random_epoch(rng))?;
        // After a migration, the change pipeline derives every index again from the documents.
        let rederived = store.needs_rederive().and_then(|needed| match needed {
            true => pipeline::rederive_all(&store, &pipeline::DeriveContext::of(&store, None)),
            false => Ok(()),
        });
        rederived.map_err(|e| OpenError::Corrupt {
            path,
            reason: format!("deriving its indexes again after a migration: {e}"),
        })?;
        Ok(Repo {
            identity,
            store,
            listed_staff: std::sync::RwLock::new(staff::load(dir)),
            dir: dir.to_owned(),
            key_files: Vec::new(),
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
            key_files: Vec::new(),
            listed_staff: std::sync::RwLock::default(),
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

    /// How many documents and patients the store holds, and its size.
    pub fn stats(&self) -> Result<crate::store::StoreStats, RepoError> {
        Ok(self.store.stats()?)
    }

    /// The store's change-log position: how many changes it has logged.
    pub fn log_position(&self) -> Result<u64, RepoError> {
        Ok(self.store.seq()?)
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Who this node is now: as its newest certificate names it once enrolled, as its profile
    /// does before (for telling its own entries and claims from others').
    pub fn author(&self) -> Result<Author, RepoError> {
        Ok(Author::from(&self.grant()?))
    }

    /// The author of a write this node makes at `at`: as the certificate in force then names it
    /// (what every receiver checks an item's author against, the name included, whatever
    /// `node.json` was edited to since; a renewal under a new name dated a moment ahead of this
    /// clock is not yet in force), as its profile does before enrolment.
    pub fn author_at(&self, at: Timestamp) -> Result<Author, RepoError> {
        Ok(Author::from(&self.grant_at(at.change_millis())?))
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
            now_ms: None,
            staff_names: None,
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

    /// Every patient held: her name and what tells her apart from another of the name (see
    /// [`tell_apart`]).
    pub fn names_and_hints(&self) -> Result<NamesAndHints, RepoError> {
        Ok((self.store.patient_names()?.into_iter())
            .map(|(id, name, hint)| (id, (name, hint)))
            .collect())
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
            if let Some(read) = self.store.with_doc(&id, messages::read)? {
                all_messages.extend(read.items);
                unreadable.extend(read.unreadable.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        Ok(PatientView {
            record,
            visits,
            journal,
            messages: all_messages,
            conflicts: self.named_conflicts(Some(patient))?,
            access: self
                .store
                .with_doc(
                    &DocumentId::PatientRecord(patient.clone()),
                    crate::docs::access_facts::read,
                )?
                .unwrap_or_default(),
            unreadable,
        })
    }

    /// Open conflicts, optionally for one patient.
    pub fn conflicts(&self, patient: Option<&PatientId>) -> Result<Vec<Conflict>, RepoError> {
        let mut out = Vec::new();
        for json in self.store.conflict_rows(patient)? {
            out.extend(pipeline::decode_list::<Conflict>(&json, "conflict index")?);
        }
        Ok(out)
    }

    /// Open conflicts as people read them: each with its patient's name and a dose's medication
    /// by name, from the records held ([`Conflict::name`]); the ids stay for machines.
    pub fn named_conflicts(&self, patient: Option<&PatientId>) -> Result<Vec<Conflict>, RepoError> {
        let mut conflicts = self.conflicts(patient)?;
        // One record read per patient, however many conflicts she has.
        let mut records: HashMap<PatientId, Option<PatientRecord>> = HashMap::new();
        for c in &mut conflicts {
            let record = match records.entry(c.patient.clone()) {
                std::collections::hash_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    let id = DocumentId::PatientRecord(c.patient.clone());
                    let read = self.store.with_doc(&id, record::read)?.and_then(Result::ok);
                    slot.insert(read)
                }
            };
            let patient_name = record.as_ref().map(|r| r.name().to_owned());
            let medication = c.dose().and_then(|dose| {
                let record = record.as_ref()?;
                Some(record.medication(&dose.medication)?.name.clone())
            });
            c.name(patient_name, medication);
        }
        Ok(conflicts)
    }

    /// The names of staff members, by staff id: from the certificates this node holds (revoked
    /// ones too: a name stays a name in yesterday's report), and for staff no certificate names,
    /// from the work lists imported here.
    pub fn staff_names(&self) -> Result<std::collections::BTreeMap<String, String>, RepoError> {
        let mut names: std::collections::BTreeMap<String, String> = self
            .listed_staff()
            .into_iter()
            .map(|(id, s)| (id, s.name))
            .collect();
        for cert in self.store.certificates()? {
            let grant = cert.grant();
            if let (Some(staff), false) = (&grant.staff_id, grant.role == Role::HomeUnit) {
                names.insert(staff.to_string(), grant.name.clone());
            }
        }
        Ok(names)
    }

    /// Keeps the `items` whose patient passes the need gate, logged as one read of `what`
    /// naming them (see [`Repo::open_patients`]): how a list leaves the node.
    pub fn shown<T>(
        &self,
        now: Timestamp,
        what: &str,
        items: Vec<T>,
        patient_of: impl Fn(&T) -> &PatientId,
    ) -> Result<Vec<T>, RepoError> {
        let gate = self.open_patients(
            now,
            AuditAction::Read,
            what,
            items.iter().map(|i| patient_of(i).clone()),
        )?;
        Ok(items
            .into_iter()
            .filter(|i| gate.shows(patient_of(i)))
            .collect())
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

    /// The documents this node may take out (all of them, or one patient's), as a portable
    /// export file: through the need gate ([`Repo::open_patients`]) — a patient without a need,
    /// or one who blocks this user, is left out — and logged as an export naming every patient
    /// in it. Each document travels as its changes with their authors' signatures, and the
    /// authors' certificates, so the importer verifies each one like a peer's.
    pub fn export(
        &self,
        now: Timestamp,
        patient: Option<&PatientId>,
    ) -> Result<Vec<u8>, RepoError> {
        let held: Vec<PatientId> = match patient {
            Some(p) => vec![p.clone()],
            None => self.patients()?.into_iter().map(|(p, _)| p).collect(),
        };
        let gate = self.open_patients(now, AuditAction::Export, "export file", held)?;
        if let Some(denied) = patient.and_then(|p| gate.refused.get(p)) {
            return Err(denied.clone().into());
        }
        // One patient's file holds that patient's documents; a whole export also the day logs
        // and access logs this node holds.
        self.export_documents(|id| match (id.patient(), patient) {
            (Some(p), _) => gate.shows(p),
            (None, named) => named.is_none(),
        })
    }

    /// Every document this node holds as an export file, with no need check and no access log:
    /// for the simulator and for tests of merging. Front ends call [`Repo::export`].
    pub fn export_unchecked(&self, patient: Option<&PatientId>) -> Result<Vec<u8>, RepoError> {
        self.export_documents(|id| patient.is_none() || id.patient() == patient)
    }

    fn export_documents(
        &self,
        include: impl Fn(&DocumentId) -> bool,
    ) -> Result<Vec<u8>, RepoError> {
        let mut out = exchange::Exchange::default();
        let mut authors = std::collections::BTreeSet::new();
        for id in self.store.doc_ids("")? {
            if !include(&id) {
                continue;
            }
            let Some(changes) = self.store.with_doc(&id, |d| d.hashed_changes_since(&[]))? else {
                continue;
            };
            let mut signed = Vec::with_capacity(changes.len());
            for change in changes {
                if let Ok(bytes) = <[u8; 32]>::try_from(change.actor.as_slice())
                    && let Ok(node) = NodeId::from_bytes(bytes)
                {
                    authors.insert(node);
                }
                // A change held without a signature (written by another node before format 3)
                // goes out unsigned: the importer refuses it, and says so.
                signed.push(SignedChange {
                    bytes: change.bytes,
                    signature: change.signature.unwrap_or([0; 64]),
                });
            }
            out.docs.push((id, signed));
        }
        // Every certificate of each: a change is judged by the one in force when it was made.
        for node in authors {
            for cert in self.store.certificate_history(&node)? {
                out.certificates.push(cert.to_bytes());
            }
        }
        out.revocations = (self.store.revocation_bytes()?.into_iter())
            .map(|(_, bytes)| bytes)
            .collect();
        Ok(exchange::encode(&out))
    }

    /// Records an author's two changes numbered alike in this node's own log, in a write of its
    /// own (the write that met them was refused whole).
    fn log_equivocation(
        &self,
        now: Timestamp,
        equivocation: &pipeline::Equivocation,
    ) -> Result<(), RepoError> {
        let mut batch = self.store.write()?;
        pipeline::log_equivocation(&mut batch, now, equivocation)?;
        let derive = pipeline::DeriveContext::of(&self.store, Some(now.unix_millis()));
        pipeline::commit(batch, &derive)?;
        Ok(())
    }

    /// Merges an export file into this node, all or nothing. Every change new to this node goes
    /// through the change pipeline like one received from a peer (signature, author's
    /// certificate, revocation, the rules against the document it lands in); one that fails
    /// refuses the whole file. `now` is this node's clock.
    pub fn import(&self, now: Timestamp, bytes: &[u8]) -> Result<ImportSummary, RepoError> {
        let incoming = exchange::decode(bytes)?;
        let org = self.certificate()?.map(|c| c.grant().org);
        let (mut carried, mut own_earlier) = (Vec::new(), Vec::new());
        for bytes in &incoming.certificates {
            let cert = crate::trust::Certificate::from_bytes(bytes)?;
            // This node's own is installed by enrolment or a base's renewal, which check it is
            // for what this node serves; a file is no way to change that. Its earlier ones judge
            // its own earlier changes in the file.
            match (Some(cert.grant().org) == org, cert.node() == self.id()) {
                (true, false) => carried.push(cert),
                (true, true) => own_earlier.push(cert),
                (false, _) => {}
            }
        }
        let own = self.grant()?;
        let mut summary = ImportSummary {
            documents: incoming.docs.len(),
            ..ImportSummary::default()
        };
        let mut batch: WriteBatch<'_> = self.store.write()?;
        // Revocations first, as a session sends them ahead of any data: the changes below are
        // judged knowing them. One of this node itself is left for a peer to tell (a session
        // then wipes the node); a file is no way to do that.
        for bytes in &incoming.revocations {
            let revocation = crate::trust::Revocation::from_bytes(bytes)?;
            if Some(revocation.body().org) == org && revocation.body().node != self.id() {
                batch.put_revocation(&revocation)?;
            }
        }
        // Each joins its node's history, and is the newest only if it supersedes what is held:
        // a change is judged by its author's certificate in force when it was made, whatever
        // older ones the file brings.
        for cert in &carried {
            batch.put_certificate(cert)?;
        }
        for cert in &own_earlier {
            batch.keep_own_earlier_certificate(cert)?;
        }
        for (id, changes) in incoming.docs {
            let existed = batch.existing(&id)?.is_some();
            let mut authors = pipeline::WriteAuthors {
                batch: &mut batch,
                own: &own,
            };
            let admitted = match pipeline::admit(&mut authors, &id, changes, now.unix_millis()) {
                Ok(admitted) => admitted,
                Err(refusal) => {
                    drop(batch);
                    if let Some(equivocation) = &refusal.equivocation {
                        self.log_equivocation(now, equivocation)?;
                    }
                    return Err(RepoError::Unauthorized(format!(
                        "{refusal}; nothing was imported"
                    )));
                }
            };
            // Changes built on a revoked device's changes that were left out wait for them, as
            // in a session; what the file lacks otherwise refuses it.
            if admitted.lacks_dependencies && admitted.left_out.is_none() {
                return Err(RepoError::Unauthorized(format!(
                    "{id}: the file lacks changes its changes build on; nothing was imported"
                )));
            }
            if !existed && !admitted.applied.is_empty() {
                summary.new_documents += 1;
            }
            summary.left_out.extend(admitted.left_out.map(|l| l.why));
            summary.new_changes += admitted.applied.len();
        }
        let derive = pipeline::DeriveContext::of(&self.store, Some(now.unix_millis()));
        pipeline::commit(batch, &derive)?;
        Ok(summary)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn names(rows: &[(&str, &str, Option<&str>)]) -> NamesAndHints {
        (rows.iter())
            .map(|(id, name, hint)| {
                let id = PatientId::parse(id).unwrap();
                (id, ((*name).to_owned(), hint.map(str::to_owned)))
            })
            .collect()
    }

    #[test]
    fn a_list_tells_apart_only_the_namesakes_it_shows_and_a_patient_is_no_namesake_of_herself() {
        let (a, b, c, d) = (
            "p-000000000000000a",
            "p-000000000000000b",
            "p-000000000000000c",
            "p-000000000000000d",
        );
        let held = names(&[
            (a, "Kari Dahl", Some("f. 12.03.1941")),
            (b, "kari  dahl", Some("f. 03.05.1952")),
            (c, "Kari Dahl", None),
            (d, "Turid Nilsen", Some("Parkveien 98")),
        ]);
        let id = |s: &str| PatientId::parse(s).unwrap();
        let label = |shown: &[&str], of: &str| {
            let shown: Vec<PatientId> = shown.iter().map(|s| id(s)).collect();
            tell_apart(&held, &shown)[&id(of)].clone()
        };
        // A list of one Kari Dahl (twice: two tasks of hers) and Turid: names alone.
        assert_eq!(label(&[a, a, d], a), "Kari Dahl");
        assert_eq!(label(&[a, a, d], d), "Turid Nilsen");
        // Two of the name in one list: each by what tells her apart, spacing and case aside.
        assert_eq!(label(&[a, b], a), "Kari Dahl (f. 12.03.1941)");
        assert_eq!(label(&[a, b], b), "kari  dahl (f. 03.05.1952)");
        // One with nothing to tell her by: her id.
        assert_eq!(label(&[a, c], c), format!("Kari Dahl ({c})"));
        assert_eq!(label(&[a, c], a), "Kari Dahl (f. 12.03.1941)");
    }
}
