//! The home-care documents, on Automerge, behind typed APIs.
//!
//! Callers never see Automerge paths, values or types: each document kind has a module with typed
//! writes (taking a [`ChangeContext`]: who writes, from which device, at what time) and a typed
//! read model. All of them share [`Document`], which owns the Automerge value.
//!
//! # Layout rule: no shared containers
//! Every document is a flat root map whose keys are created by exactly one writer: `e/<entry-id>`
//! for an entry, `visit/<visit-id>` for a visit, `field/<name>` for a register. Two nodes that
//! create the same document independently (the March journal of one patient, say) therefore never
//! race to create the same nested object, which in Automerge would hide one side's contents behind
//! a conflict. Immutable facts are one JSON string under a key written once.

pub mod access_facts;
pub mod daylog;
pub mod journal;
pub mod messages;
pub mod outline;
pub mod plan;
pub mod record;
pub mod salvage;

use std::fmt;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{Automerge, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde::{Deserialize, Serialize};

use crate::identity::{NodeId, Role};
use crate::ids::{InvalidId, PatientId, StaffId};
use crate::time::{Day, InvalidTime, Month, Timestamp};

/// What kind of document an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocKind {
    /// A patient's record: identity, contacts, flags, care plan, medication list.
    PatientRecord,
    /// One patient's visits in one month.
    VisitPlan,
    /// One patient's journal entries for one month.
    Journal,
    /// Messages about one patient in one month.
    Messages,
    /// One staff member's day log.
    DayLog,
    /// One node's access log for one month (see [`crate::trust::audit`]).
    Audit,
}

/// The identity of a document. Its text form is the store key and travels on the wire.
///
/// Every variant but `DayLog` names exactly one patient: document boundaries are access
/// boundaries, so a patient's data can be shared, protected and purged by document id alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocumentId {
    /// `patient/<patient>`
    PatientRecord(PatientId),
    /// `plan/<patient>/<YYYY-MM>`
    VisitPlan(PatientId, Month),
    /// `journal/<patient>/<YYYY-MM>`
    Journal(PatientId, Month),
    /// `messages/<patient>/<YYYY-MM>`
    Messages(PatientId, Month),
    /// `daylog/<staff>/<YYYY-MM-DD>`: holds no patient data, only opaque visit ids.
    DayLog(StaffId, Day),
    /// `audit/<node>/<YYYY-MM>`: one node's hash-chained access log. It names patients, but is
    /// held only by its writer and the bases (who review it), never by other devices.
    Audit(NodeId, Month),
}

/// A document id string was malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDocumentId {
    /// Wrong shape.
    #[error(
        "invalid document id {0:?}: expected e.g. patient/p-…, journal/p-…/2026-11 or daylog/STAFF/2026-11-23"
    )]
    Shape(String),
    /// A component id was invalid.
    #[error(transparent)]
    Id(#[from] InvalidId),
    /// A component time was invalid.
    #[error(transparent)]
    Time(#[from] InvalidTime),
}

impl DocumentId {
    /// The kind of document.
    pub fn kind(&self) -> DocKind {
        match self {
            DocumentId::PatientRecord(_) => DocKind::PatientRecord,
            DocumentId::VisitPlan(..) => DocKind::VisitPlan,
            DocumentId::Journal(..) => DocKind::Journal,
            DocumentId::Messages(..) => DocKind::Messages,
            DocumentId::DayLog(..) => DocKind::DayLog,
            DocumentId::Audit(..) => DocKind::Audit,
        }
    }

    /// The patient this document is about, if any.
    pub fn patient(&self) -> Option<&PatientId> {
        match self {
            DocumentId::PatientRecord(p)
            | DocumentId::VisitPlan(p, _)
            | DocumentId::Journal(p, _)
            | DocumentId::Messages(p, _) => Some(p),
            DocumentId::DayLog(..) | DocumentId::Audit(..) => None,
        }
    }

    /// The month of a monthly patient document.
    pub fn month(&self) -> Option<Month> {
        match self {
            DocumentId::VisitPlan(_, m)
            | DocumentId::Journal(_, m)
            | DocumentId::Messages(_, m)
            | DocumentId::Audit(_, m) => Some(*m),
            _ => None,
        }
    }

    /// Whether the document's month or day lies in [`crate::time::SUPPORTED_YEARS`] (a record
    /// has none).
    pub fn is_dated_supported(&self) -> bool {
        match self {
            DocumentId::DayLog(_, day) => day.is_supported(),
            other => other.month().is_none_or(|m| m.is_supported()),
        }
    }

    /// Parses the text form, validating every component (ids arrive from files and peers).
    pub fn parse(value: &str) -> Result<Self, InvalidDocumentId> {
        let shape = || InvalidDocumentId::Shape(value.chars().take(100).collect());
        let parts: Vec<&str> = value.split('/').collect();
        Ok(match parts.as_slice() {
            ["patient", p] => DocumentId::PatientRecord(PatientId::parse(p)?),
            ["plan", p, m] => DocumentId::VisitPlan(PatientId::parse(p)?, Month::parse(m)?),
            ["journal", p, m] => DocumentId::Journal(PatientId::parse(p)?, Month::parse(m)?),
            ["messages", p, m] => DocumentId::Messages(PatientId::parse(p)?, Month::parse(m)?),
            ["daylog", s, d] => {
                let day = Day::parse(d)?;
                if !day.is_supported() {
                    return Err(shape());
                }
                DocumentId::DayLog(StaffId::parse(s)?, day)
            }
            ["audit", n, m] => DocumentId::Audit(NodeId::parse(n)?, Month::parse(m)?),
            _ => return Err(shape()),
        })
    }

    /// The document as people name it, without the patient (whose name a view gives beside
    /// it): "the journal of 2026-11".
    pub fn for_people(&self) -> String {
        match self {
            DocumentId::PatientRecord(_) => "the record".into(),
            DocumentId::VisitPlan(_, m) => format!("the visit plan of {m}"),
            DocumentId::Journal(_, m) => format!("the journal of {m}"),
            DocumentId::Messages(_, m) => format!("the messages of {m}"),
            DocumentId::DayLog(s, d) => format!("the day log of {s} on {d}"),
            DocumentId::Audit(n, m) => format!("the access log of {} in {m}", n.short()),
        }
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentId::PatientRecord(p) => write!(f, "patient/{p}"),
            DocumentId::VisitPlan(p, m) => write!(f, "plan/{p}/{m}"),
            DocumentId::Journal(p, m) => write!(f, "journal/{p}/{m}"),
            DocumentId::Messages(p, m) => write!(f, "messages/{p}/{m}"),
            DocumentId::DayLog(s, d) => write!(f, "daylog/{s}/{d}"),
            DocumentId::Audit(n, m) => write!(f, "audit/{n}/{m}"),
        }
    }
}

/// Who made an entry or change: the staff member and the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Author {
    /// The staff member (absent for a device acting alone, e.g. a home unit's dispenser feed).
    pub staff: Option<StaffId>,
    /// The staff member's or device's display name at the time of writing.
    pub name: String,
    /// The role of the writing node.
    pub role: Role,
    /// The writing device.
    pub device: NodeId,
}

impl From<&crate::trust::Grant> for Author {
    /// The author a certificate's grant names: its staff member, name, role and device.
    fn from(grant: &crate::trust::Grant) -> Author {
        Author {
            staff: grant.staff_id.clone(),
            name: grant.name.clone(),
            role: grant.role,
            device: grant.node,
        }
    }
}

impl Author {
    /// Whether this author's entered-in-error mark withdraws an entry `written` by that author:
    /// a staff member's entry only by herself (from any of her devices); a home unit's own
    /// report (a dispenser's, an alarm's: no staff member) by the unit, or by any staff member,
    /// who judges it (a test of the dispenser); any other entry without a staff member (a base
    /// enrolled without one) by its device only. The role is the writer's, checked against its
    /// certificate by every receiver, so a phone cannot pass its entries off as a device's report.
    pub fn may_withdraw(&self, written: &Author) -> bool {
        match (&self.staff, &written.staff) {
            (Some(me), Some(them)) => me == them,
            (None, Some(_)) => false,
            (Some(_), None) if written.role == Role::HomeUnit => true,
            (_, None) => self.device == written.device,
        }
    }
}

/// The context of one write: who, and when it was entered (the device clock, passed in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeContext {
    /// The author.
    pub author: Author,
    /// When the write is entered (distinct from when the documented event happened).
    pub entered_at: Timestamp,
}

/// A document's heads: the hashes of its latest changes. Equal heads mean equal documents.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Heads(Vec<String>);

impl Heads {
    fn from_hashes(mut hashes: Vec<ChangeHash>) -> Self {
        hashes.sort();
        Heads(hashes.iter().map(|h| h.to_string()).collect())
    }
}

/// Errors reading or changing a document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The bytes are not a valid Automerge document.
    #[error("document {doc} is not a valid Automerge document: {reason}")]
    Corrupt {
        /// The document.
        doc: String,
        /// Automerge's explanation.
        reason: String,
    },
    /// The operation's target does not exist in the document.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation is not allowed by the document's rules.
    #[error("{0}")]
    Rejected(String),
}

/// An Automerge document with its id and the point up to which it has been persisted.
///
/// Invariant: `saved` is the heads of the last state written to durable storage (or empty for a
/// document never stored), so `unsaved_changes` yields exactly what the store must append.
///
/// Every read takes `&self` (the document is a plain [`Automerge`], edited only inside
/// [`Document::change`]'s closed transactions), so the store can hand one committed version to
/// any number of readers at once while a writer edits its own copy.
#[derive(Debug, Clone)]
pub struct Document {
    id: DocumentId,
    am: Automerge,
    saved: Vec<ChangeHash>,
    /// Each change's author's signature, by change hash (stored beside the changes).
    signatures: std::collections::BTreeMap<[u8; 32], [u8; 64]>,
    /// The changes applied since `saved` as they came (their bytes, in causal order), while
    /// they are all this document holds unsaved: the write then stores them as they are instead
    /// of taking them out of Automerge again, which decodes and re-encodes every one (a new
    /// base's first sync stores 290,000 received changes). `None` when not known.
    received: Option<UnsavedChanges>,
}

impl Document {
    /// A new, empty document written by `actor`.
    pub fn new(id: DocumentId, actor: NodeId) -> Self {
        let am = Automerge::new().with_actor(automerge::ActorId::from(&actor.as_bytes()[..]));
        Document {
            id,
            am,
            saved: Vec::new(),
            signatures: Default::default(),
            received: None,
        }
    }

    /// Loads a document from stored bytes (a snapshot followed by incremental chunks).
    pub fn load(id: DocumentId, bytes: &[u8], actor: NodeId) -> Result<Self, DocError> {
        let mut am = Automerge::load(bytes).map_err(|e| DocError::Corrupt {
            doc: id.to_string(),
            reason: e.to_string(),
        })?;
        am.set_actor(automerge::ActorId::from(&actor.as_bytes()[..]));
        let saved = am.get_heads();
        Ok(Document {
            id,
            am,
            saved,
            signatures: Default::default(),
            received: None,
        })
    }

    /// The document's id.
    pub fn id(&self) -> &DocumentId {
        &self.id
    }

    /// The current heads.
    pub fn heads(&self) -> Heads {
        Heads::from_hashes(self.am.get_heads())
    }

    /// Whether the document has no changes at all.
    pub fn is_empty(&self) -> bool {
        self.am.is_empty()
    }

    /// The changes not yet persisted, in causal order, each with its hash and author: taken out
    /// of Automerge once (every extraction decodes and re-encodes them), so one serves the
    /// write's every step while [`Document::still_unsaved`] says it is current. Their bytes in
    /// order are an incremental save (`save_after` the saved heads); changes applied from a
    /// peer since the save, if they are all there is, come as they were received, in the order
    /// they were applied, with no extraction at all.
    pub(crate) fn unsaved_changes(&self) -> UnsavedChanges {
        if let Some(received) = &self.received
            && self.still_unsaved(received)
        {
            return received.clone();
        }
        let parsed = self.am.get_changes(&self.saved);
        UnsavedChanges {
            saved: self.saved.clone(),
            heads: self.am.get_heads(),
            changes: self.hashed_of(&parsed),
            parsed,
        }
    }

    /// [`Document::unsaved_changes`], handing over the changes kept as received rather than
    /// copying them (every received byte again, at a new base's first sync): the caller keeps
    /// what this returns while it is current. Changes applied after this are taken out of
    /// Automerge, as when none were kept.
    pub(crate) fn take_unsaved_changes(&mut self) -> UnsavedChanges {
        match self.received.take() {
            Some(received) if self.still_unsaved(&received) => received,
            _ => self.unsaved_changes(),
        }
    }

    /// Whether `unsaved` is still exactly what this document holds unsaved: neither written to
    /// nor stored since it was taken. The same heads are the same changes (a hash covers a
    /// change's contents and dependencies), so the same saved heads leave the same ones unsaved.
    pub(crate) fn still_unsaved(&self, unsaved: &UnsavedChanges) -> bool {
        unsaved.saved == self.saved && unsaved.heads == self.am.get_heads()
    }

    /// Whether the document holds changes not yet persisted.
    pub fn has_unsaved_changes(&self) -> bool {
        let mut heads = self.am.get_heads();
        let mut saved = self.saved.clone();
        heads.sort();
        saved.sort();
        heads != saved
    }

    /// Marks everything up to now as persisted; call after the store committed `unsaved_changes`.
    pub fn mark_saved(&mut self) {
        self.saved = self.am.get_heads();
        self.received = None;
    }

    /// The whole document, compacted.
    pub fn save(&self) -> Vec<u8> {
        self.am.save()
    }

    /// Merges another copy of this document. Returns the number of changes that were new here.
    pub fn merge(&mut self, other: &mut Document) -> Result<usize, DocError> {
        let before = self.am.get_heads();
        self.am
            .merge(&mut other.am)
            .map_err(|e| DocError::Corrupt {
                doc: self.id.to_string(),
                reason: e.to_string(),
            })?;
        self.signatures.append(&mut other.signatures);
        Ok(self.am.get_changes(&before).len())
    }

    /// The current heads as raw hashes.
    pub fn head_hashes(&self) -> Vec<[u8; 32]> {
        let mut heads: Vec<[u8; 32]> = self.am.get_heads().iter().map(|h| h.0).collect();
        heads.sort();
        heads
    }

    /// Whether this document contains the change with `hash`.
    pub fn has_change(&self, hash: &[u8; 32]) -> bool {
        // The metadata alone: the whole change would be encoded again from the op set.
        self.am
            .get_change_meta_by_hash(&ChangeHash(*hash))
            .is_some()
    }

    /// Raw bytes of every change not in the history of `have` (hashes unknown here are ignored:
    /// the peer holds them, and they cannot hide anything we hold from it), in causal order.
    pub fn changes_since(&self, have: &[[u8; 32]]) -> Vec<Vec<u8>> {
        self.hashed_changes_since(have)
            .into_iter()
            .map(|c| c.bytes)
            .collect()
    }

    /// The signature of the change with `hash`, if held.
    pub fn signature(&self, hash: &[u8; 32]) -> Option<[u8; 64]> {
        self.signatures.get(hash).copied()
    }

    /// Keeps a change's (verified) signature; stored with the change when the document is.
    pub(crate) fn add_signature(&mut self, hash: [u8; 32], signature: [u8; 64]) {
        self.signatures.insert(hash, signature);
    }

    /// The signatures of `hashes` that are held.
    pub(crate) fn signatures_of(&self, hashes: &[[u8; 32]]) -> Vec<([u8; 32], [u8; 64])> {
        hashes
            .iter()
            .filter_map(|h| self.signature(h).map(|s| (*h, s)))
            .collect()
    }

    /// Every signature held.
    pub(crate) fn all_signatures(&self) -> Vec<([u8; 32], [u8; 64])> {
        self.signatures.iter().map(|(h, s)| (*h, *s)).collect()
    }

    /// Like [`Document::changes_since`], with each change's hash, author and signature (to send
    /// them along with the author's certificate).
    pub fn hashed_changes_since(&self, have: &[[u8; 32]]) -> Vec<HashedChange> {
        let known: Vec<ChangeHash> = have
            .iter()
            .map(|h| ChangeHash(*h))
            .filter(|h| self.am.get_change_meta_by_hash(h).is_some())
            .collect();
        self.hashed(&known)
    }

    /// Every change not in the history of `known` (all held), with hash, author and signature.
    fn hashed(&self, known: &[ChangeHash]) -> Vec<HashedChange> {
        self.hashed_of(&self.am.get_changes(known))
    }

    /// `changes` (held here) with hash, author and signature.
    fn hashed_of(&self, changes: &[automerge::Change]) -> Vec<HashedChange> {
        changes
            .iter()
            .map(|c| HashedChange {
                hash: c.hash().0,
                actor: c.actor_id().to_bytes().to_vec(),
                bytes: c.raw_bytes().to_vec(),
                signature: self.signatures.get(&c.hash().0).copied(),
            })
            .collect()
    }

    /// Who wrote each change and when it was entered, from the context stamped on every change
    /// (changes without one, or with one this build cannot read, are skipped).
    pub fn authored_changes(&self) -> Vec<(Author, Timestamp)> {
        #[derive(Deserialize)]
        struct Stamp {
            author: Author,
            entered_at: Timestamp,
        }
        self.am
            .get_changes(&[])
            .iter()
            .filter_map(|c| serde_json::from_str::<Stamp>(c.message()?).ok())
            .map(|s| (s.author, s.entered_at))
            .collect()
    }

    /// Hashes and actors of every change in the document (store migration).
    pub(crate) fn all_change_authors(&self) -> Vec<([u8; 32], Vec<u8>)> {
        self.am
            .get_changes(&[])
            .iter()
            .map(|c| (c.hash().0, c.actor_id().to_bytes().to_vec()))
            .collect()
    }

    /// Applies raw changes received from a peer. Changes whose dependencies are missing are held
    /// back by Automerge until those arrive; see [`Document::lacks_dependencies`].
    /// Returns the hashes and direct dependencies of the decoded changes.
    pub fn apply_raw_changes(&mut self, raw: Vec<Vec<u8>>) -> Result<Vec<RawChangeInfo>, DocError> {
        let corrupt = |reason: String| DocError::Corrupt {
            doc: self.id.to_string(),
            reason,
        };
        let changes = raw
            .into_iter()
            .map(|bytes| automerge::Change::from_bytes(bytes).map_err(|e| corrupt(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        self.apply_changes(changes)
    }

    /// [`Document::apply_raw_changes`] for changes parsed before ([`parse_change`]): a received
    /// change is parsed once, to judge it and to apply it. Hands each change's summary back
    /// with what was applied.
    pub fn apply_parsed(
        &mut self,
        parsed: Vec<ParsedChange>,
    ) -> Result<Vec<(ChangeSummary, RawChangeInfo)>, DocError> {
        let (summaries, changes): (Vec<_>, Vec<_>) =
            parsed.into_iter().map(|p| (p.summary, p.change)).unzip();
        let infos = self.apply_changes(changes)?;
        Ok(summaries.into_iter().zip(infos).collect())
    }

    fn apply_changes(
        &mut self,
        changes: Vec<automerge::Change>,
    ) -> Result<Vec<RawChangeInfo>, DocError> {
        let received = self.received_so_far();
        let received = received.filter(|_| self.in_causal_order(&changes));
        let corrupt = |reason: String| DocError::Corrupt {
            doc: self.id.to_string(),
            reason,
        };
        let info = changes
            .iter()
            .map(|change| RawChangeInfo {
                hash: change.hash().0,
                deps: change.deps().iter().map(|d| d.0).collect(),
                actor: change.actor_id().to_bytes().to_vec(),
            })
            .collect();
        let kept: Vec<HashedChange> = match received {
            Some(_) => changes.iter().map(as_received).collect(),
            None => Vec::new(),
        };
        // Bytes from a peer are hostile: a panic inside Automerge on a crafted change must end
        // this write, not the process. The document is dropped with the failed batch.
        let am = &mut self.am;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| am.apply_changes(changes)))
            .map_err(|_| corrupt("Automerge failed on a received change".into()))?
            .map_err(|e| corrupt(e.to_string()))?;
        // Changes held back for lack of their dependencies are not part of the document: what
        // it holds unsaved is then found the long way.
        if let Some(mut received) = received
            && !self.lacks_dependencies()
        {
            received.changes.extend(kept);
            received.heads = self.am.get_heads();
            self.received = Some(received);
        }
        Ok(info)
    }

    /// The changes applied as they came since the last save, if those are still all this
    /// document holds unsaved (none yet, right after a save). Taken: applying more puts them
    /// back with the new ones.
    fn received_so_far(&mut self) -> Option<UnsavedChanges> {
        match self.received.take() {
            Some(received) if self.still_unsaved(&received) => Some(received),
            _ if !self.has_unsaved_changes() => Some(UnsavedChanges {
                saved: self.saved.clone(),
                heads: self.am.get_heads(),
                changes: Vec::new(),
                parsed: Vec::new(),
            }),
            _ => None,
        }
    }

    /// Whether `changes`, appended to what this document holds, keep its changes in causal
    /// order: each depends only on changes held, or before it in the list, and none is held or
    /// listed twice (Automerge skips those, so they must not be stored again).
    fn in_causal_order(&self, changes: &[automerge::Change]) -> bool {
        let mut listed = std::collections::HashSet::with_capacity(changes.len());
        changes.iter().all(|change| {
            let deps_met = change
                .deps()
                .iter()
                .all(|d| listed.contains(&d.0) || self.has_change(&d.0));
            deps_met && !self.has_change(&change.hash().0) && listed.insert(change.hash().0)
        })
    }

    /// Whether received changes are held back waiting for dependencies this document lacks.
    pub fn lacks_dependencies(&self) -> bool {
        !self.am.get_missing_deps(&[]).is_empty()
    }

    /// Whether root key `key` held a value in the state made of the changes `deps` and their
    /// history (the state a change with those dependencies was built on). Cheap when the key
    /// holds one value or none now: it cannot have held another then.
    pub fn held_at(&self, key: &str, deps: &[[u8; 32]]) -> bool {
        if self.am.get_all(ROOT, key).map_or(0, |v| v.len()) <= 1 {
            return false;
        }
        let heads: Vec<ChangeHash> = deps.iter().map(|d| ChangeHash(*d)).collect();
        self.am
            .get_all_at(ROOT, key, &heads)
            .is_ok_and(|values| !values.is_empty())
    }

    /// Whether a change by `actor` numbered `seq` with first operation `start_op`, built on
    /// `deps`, continues its author's own chain here: its first change in this document, or
    /// one that depends directly on the author's previous one and numbers its operations after
    /// it (as Automerge makes every change). A change that skips its author's previous one could
    /// reuse its operation ids, or be a second version of it.
    pub fn continues_own_chain(
        &self,
        actor: &[u8],
        seq: u64,
        start_op: u64,
        deps: &[[u8; 32]],
    ) -> bool {
        if seq <= 1 {
            return true;
        }
        deps.iter().any(|d| {
            self.am
                .get_change_meta_by_hash(&ChangeHash(*d))
                .is_some_and(|c| {
                    c.actor.to_bytes() == actor && c.seq == seq - 1 && start_op > c.max_op
                })
        })
    }

    /// A held change of the same author and number as the change `bytes` but another hash:
    /// `(number, the held change's hash)`. Automerge can hold only one of two such changes.
    /// Reads the whole history: for explaining a refusal, not for every change.
    pub fn collision(&self, bytes: &[u8]) -> Option<(u64, [u8; 32])> {
        let change = automerge::Change::from_bytes(bytes.to_vec()).ok()?;
        if self.am.get_change_meta_by_hash(&change.hash()).is_some() {
            return None;
        }
        let (actor, seq) = (change.actor_id(), change.seq());
        let mine = self
            .am
            .get_changes(&[])
            .into_iter()
            .filter(|c| c.actor_id() == actor && c.seq() == seq)
            .map(|c| c.hash().0)
            .next()?;
        Some((seq, mine))
    }

    /// Drops every change after `heads` (and any held back for missing dependencies): how a
    /// refused message is undone in a write that goes on.
    pub fn revert_to(&mut self, heads: &[[u8; 32]]) -> Result<(), DocError> {
        let heads: Vec<ChangeHash> = heads.iter().map(|h| ChangeHash(*h)).collect();
        let actor = self.am.get_actor().clone();
        let kept = self.am.fork_at(&heads).map_err(|e| DocError::Corrupt {
            doc: self.id.to_string(),
            reason: e.to_string(),
        })?;
        self.am = kept.with_actor(actor);
        self.received = None;
        let am = &self.am;
        self.signatures
            .retain(|hash, _| am.get_change_meta_by_hash(&ChangeHash(*hash)).is_some());
        Ok(())
    }

    /// Automerge's next sync message for this document, if any (the per-document baseline of
    /// `sync::baseline`; nodes sync with `sync::Session`).
    pub(crate) fn sync_generate(&self, state: &mut automerge::sync::State) -> Option<Vec<u8>> {
        use automerge::sync::SyncDoc;
        self.am.generate_sync_message(state).map(|m| m.encode())
    }

    /// Applies an Automerge sync message (baseline only).
    pub(crate) fn sync_receive(
        &mut self,
        state: &mut automerge::sync::State,
        bytes: &[u8],
    ) -> Result<(), DocError> {
        use automerge::sync::SyncDoc;
        let message = automerge::sync::Message::decode(bytes).map_err(|e| DocError::Corrupt {
            doc: self.id.to_string(),
            reason: e.to_string(),
        })?;
        self.am
            .receive_sync_message(state, message)
            .map_err(|e| DocError::Corrupt {
                doc: self.id.to_string(),
                reason: e.to_string(),
            })
    }

    /// Applies `edit` as one attributable change: the change's message carries the author and
    /// entry time, and its actor is the writing device, so history shows who changed what.
    pub(crate) fn change<T>(
        &mut self,
        ctx: &ChangeContext,
        edit: impl FnOnce(&mut Editor<'_, '_>) -> Result<T, DocError>,
    ) -> Result<T, DocError> {
        let message = stamp(ctx).map_err(|e| DocError::Rejected(e.to_string()))?;
        let options = CommitOptions::default()
            .with_message(message)
            .with_time(ctx.entered_at.change_millis() / 1000);
        self.am
            .transact_with(|_| options, |tx| edit(&mut Editor { am: tx }))
            .map(|done| done.result)
            .map_err(|failed| failed.error)
    }

    /// Reads through the typed accessor.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader { am: &self.am }
    }
}

/// The context stamped on every change (its message): the author and the entry time, as JSON
/// with its keys in sorted order — the bytes it always had, when it was built as a JSON object
/// first and then printed — written directly.
fn stamp(ctx: &ChangeContext) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Stamp<'a> {
        author: StampAuthor<'a>,
        entered_at: Timestamp,
    }
    #[derive(Serialize)]
    struct StampAuthor<'a> {
        device: NodeId,
        name: &'a str,
        role: Role,
        staff: Option<&'a StaffId>,
    }
    let a = &ctx.author;
    let stamp = Stamp {
        author: StampAuthor {
            device: a.device,
            name: &a.name,
            role: a.role,
            staff: a.staff.as_ref(),
        },
        entered_at: ctx.entered_at,
    };
    serde_json::to_string(&stamp)
}

/// A change with its hash and author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedChange {
    /// The change's hash.
    pub hash: [u8; 32],
    /// Its actor (the author's node key bytes).
    pub actor: Vec<u8>,
    /// The raw change.
    pub bytes: Vec<u8>,
    /// Its author's signature, if held (every change but those stored before format 3 by
    /// another node).
    pub signature: Option<[u8; 64]>,
}

/// A document's changes not yet persisted, as [`Document::unsaved_changes`] took them, with the
/// state they were taken in (see [`Document::still_unsaved`]).
#[derive(Debug, Clone)]
pub(crate) struct UnsavedChanges {
    saved: Vec<ChangeHash>,
    heads: Vec<ChangeHash>,
    /// The changes, in causal order. A signature is as held when they were taken: the store
    /// reads the document's own when it signs.
    pub(crate) changes: Vec<HashedChange>,
    /// The same changes as Automerge handed them over, already parsed: the rules read them
    /// without parsing (and hashing) their bytes again. Empty for changes kept as received
    /// (see [`Document::unsaved_changes`]).
    parsed: Vec<automerge::Change>,
}

impl UnsavedChanges {
    /// What each change does, for the rules, in the order of [`UnsavedChanges::changes`].
    pub(crate) fn summaries(&self) -> Result<Vec<ChangeSummary>, DocError> {
        if self.parsed.len() == self.changes.len() {
            return self.parsed.iter().map(summarize).collect();
        }
        // Changes kept as they were received are parsed again here, where needed: only a local
        // write's rules read them, and a local write takes its changes out of Automerge.
        self.changes
            .iter()
            .map(|c| parse_change(c.bytes.clone()).map(|p| p.summary))
            .collect()
    }
}

/// What a change does, as far as the access rules need to know (see [`crate::pipeline::rules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSummary {
    /// The change's hash.
    pub hash: [u8; 32],
    /// The actor (device key bytes) that made it.
    pub actor: Vec<u8>,
    /// The changes it was built on.
    pub deps: Vec<[u8; 32]>,
    /// Its number among its author's changes to this document (from 1).
    pub seq: u64,
    /// When its author says it was made (the entry time of its write, to the second, in Unix
    /// milliseconds): which of the author's certificates judges it ([`crate::trust::Certificate::in_force`]).
    pub time_ms: i64,
    /// Its message: the stamp a write puts on its change (its author and entry time), which the
    /// access log and the FHIR export read as who wrote the change and when.
    pub stamp: Option<String>,
    /// The counter of its first operation.
    pub start_op: u64,
    /// The counter of its last operation (`start_op - 1` for a change without any).
    pub max_op: u64,
    /// Its operations.
    pub ops: Vec<OpSummary>,
}

/// One operation of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSummary {
    /// The key in the document's root map; `None` for an operation inside a nested object.
    pub root_key: Option<String>,
    /// Whether it replaces or deletes a value that existed (it has predecessors).
    pub overwrites: bool,
    /// What it does.
    pub action: OpAction,
}

/// The action of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpAction {
    /// Puts a string.
    PutStr(String),
    /// Puts another scalar.
    PutOther,
    /// Creates a nested object.
    MakeObject,
    /// Deletes.
    Delete,
    /// Anything else (counters, marks).
    Other,
}

/// A received change parsed once: what it does, for the rules, and the change itself, for
/// Automerge to apply. Parsing needs no document, so a driver may do it ahead of the write the
/// change goes into (on another thread).
#[derive(Debug, Clone)]
pub struct ParsedChange {
    change: automerge::Change,
    /// What it does.
    pub summary: ChangeSummary,
}

/// Parses a raw change and decodes what it does. Fails on bytes that are not a valid change.
pub fn parse_change(bytes: Vec<u8>) -> Result<ParsedChange, DocError> {
    let corrupt = |reason: String| DocError::Corrupt {
        doc: "(received change)".into(),
        reason,
    };
    // Hostile bytes: a panic in Automerge's parser must not take the process down.
    let change = std::panic::catch_unwind(|| automerge::Change::from_bytes(bytes))
        .map_err(|_| corrupt("Automerge failed to parse a received change".into()))?
        .map_err(|e| corrupt(e.to_string()))?;
    let summary = summarize(&change)?;
    Ok(ParsedChange { change, summary })
}

/// What a parsed change does: its operations expanded, with its hash, author and place.
/// A change as received, kept for the store: its signature is added to the document once the
/// change is judged, and the store reads it there.
fn as_received(change: &automerge::Change) -> HashedChange {
    HashedChange {
        hash: change.hash().0,
        actor: change.actor_id().to_bytes().to_vec(),
        bytes: change.raw_bytes().to_vec(),
        signature: None,
    }
}

fn summarize(change: &automerge::Change) -> Result<ChangeSummary, DocError> {
    use automerge::legacy::{Key, ObjectId, OpType};
    // Hostile bytes: a panic while expanding a crafted change must not take the process down.
    let expanded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change.decode()))
        .map_err(|_| DocError::Corrupt {
            // Local and received changes both come here.
            doc: "(a change)".into(),
            reason: "Automerge failed to decode a change".into(),
        })?;
    let ops = expanded
        .operations
        .iter()
        .map(|op| OpSummary {
            root_key: match (&op.obj, &op.key) {
                (ObjectId::Root, Key::Map(k)) => Some(k.to_string()),
                _ => None,
            },
            overwrites: !op.pred.is_empty(),
            action: match &op.action {
                OpType::Put(ScalarValue::Str(s)) => OpAction::PutStr(s.to_string()),
                OpType::Put(_) => OpAction::PutOther,
                OpType::Make(_) => OpAction::MakeObject,
                OpType::Delete => OpAction::Delete,
                _ => OpAction::Other,
            },
        })
        .collect();
    Ok(ChangeSummary {
        hash: change.hash().0,
        actor: change.actor_id().to_bytes().to_vec(),
        deps: change.deps().iter().map(|d| d.0).collect(),
        seq: change.seq(),
        time_ms: change.timestamp().saturating_mul(1000),
        stamp: change.message().map(str::to_owned),
        start_op: change.start_op().get(),
        max_op: change.max_op(),
        ops,
    })
}

/// What a received change claims about itself (verified by Automerge's own hash check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChangeInfo {
    /// The change's hash.
    pub hash: [u8; 32],
    /// Its direct dependencies.
    pub deps: Vec<[u8; 32]>,
    /// The actor (device key bytes) that made it.
    pub actor: Vec<u8>,
}

/// Typed write access to a document's root map, used by the per-kind modules.
pub(crate) struct Editor<'a, 'doc> {
    am: &'a mut Transaction<'doc>,
}

impl Editor<'_, '_> {
    pub(crate) fn put_str(&mut self, key: &str, value: &str) -> Result<(), DocError> {
        self.am
            .put(ROOT, key, value)
            .map_err(|e| DocError::Rejected(e.to_string()))
    }

    pub(crate) fn put_json<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), DocError> {
        let text = serde_json::to_string(value).map_err(|e| DocError::Rejected(e.to_string()))?;
        self.put_str(key, &text)
    }

    /// Puts a value into a nested map `outer` (creating it in this change if absent).
    /// Only used for maps whose key is written by a single creator (a visit), see the module docs.
    pub(crate) fn put_in(&mut self, outer: &str, key: &str, value: &str) -> Result<(), DocError> {
        let obj = match self.am.get(ROOT, outer) {
            Ok(Some((Value::Object(ObjType::Map), id))) => id,
            _ => self
                .am
                .put_object(ROOT, outer, ObjType::Map)
                .map_err(|e| DocError::Rejected(e.to_string()))?,
        };
        self.am
            .put(&obj, key, ScalarValue::Str(value.into()))
            .map_err(|e| DocError::Rejected(e.to_string()))
    }

    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader { am: &*self.am }
    }
}

/// Typed read access to a document's root map: a committed document, or a change being made.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    am: &'a dyn RootMap,
}

/// The reads [`Reader`] needs, for both a document and an open transaction (Automerge's own
/// `ReadDoc` is not object-safe).
trait RootMap {
    fn get_value(&self, key: &str) -> Option<(Value<'_>, automerge::ObjId)>;
    fn all_values(&self, key: &str) -> Vec<(Value<'_>, automerge::ObjId)>;
    fn keys_between(&self, start: String, end: String, limit: usize) -> Vec<String>;
    fn entries_between(&self, start: String, end: String) -> Vec<RootEntry>;
    fn maps_between(&self, start: String, end: String) -> Vec<(String, Option<automerge::ObjId>)>;
    fn nested_value(&self, obj: &automerge::ObjId, key: &str) -> Option<Value<'_>>;
    fn nested_strs(&self, obj: &automerge::ObjId) -> Vec<(String, String)>;
}

/// One root key as a range read sees it: its winning value if that is a string, and whether
/// concurrent values are kept beside it.
pub(crate) struct RootEntry {
    key: String,
    winner: Option<String>,
    conflict: bool,
}

impl<T: ReadDoc> RootMap for T {
    fn get_value(&self, key: &str) -> Option<(Value<'_>, automerge::ObjId)> {
        self.get(ROOT, key).ok().flatten()
    }

    fn all_values(&self, key: &str) -> Vec<(Value<'_>, automerge::ObjId)> {
        self.get_all(ROOT, key).unwrap_or_default()
    }

    fn keys_between(&self, start: String, end: String, limit: usize) -> Vec<String> {
        self.map_range(ROOT, start..end)
            .take(limit)
            .map(|item| item.key.into_owned())
            .collect()
    }

    fn entries_between(&self, start: String, end: String) -> Vec<RootEntry> {
        use automerge::{ScalarValueRef, ValueRef};
        self.map_range(ROOT, start..end)
            .map(|item| RootEntry {
                winner: match item.value {
                    ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.into_owned()),
                    _ => None,
                },
                conflict: item.conflict,
                key: item.key.into_owned(),
            })
            .collect()
    }

    fn maps_between(&self, start: String, end: String) -> Vec<(String, Option<automerge::ObjId>)> {
        self.map_range(ROOT, start..end)
            .map(|item| {
                let map = matches!(item.value, automerge::ValueRef::Object(ObjType::Map));
                let obj = map.then(|| item.id());
                (item.key.into_owned(), obj)
            })
            .collect()
    }

    fn nested_value(&self, obj: &automerge::ObjId, key: &str) -> Option<Value<'_>> {
        self.get(obj, key).ok().flatten().map(|(value, _)| value)
    }

    fn nested_strs(&self, obj: &automerge::ObjId) -> Vec<(String, String)> {
        self.map_range(obj, ..)
            .filter_map(|item| match item.value {
                automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s)) => {
                    Some((item.key.into_owned(), s.into_owned()))
                }
                _ => None,
            })
            .collect()
    }
}

impl Reader<'_> {
    /// The winning string at `key` (Automerge picks the same winner on every replica).
    pub(crate) fn str(&self, key: &str) -> Option<String> {
        let (value, _) = self.am.get_value(key)?;
        value.as_str().map(str::to_owned)
    }

    /// All concurrent string values at `key`, in Automerge's deterministic order.
    pub(crate) fn all_str(&self, key: &str) -> Vec<String> {
        self.str_and_all(key).1
    }

    /// The winning string at `key` (as [`Reader::str`]) and all concurrent string values there,
    /// in Automerge's deterministic order: from one lookup, Automerge's winner being the last
    /// of the concurrent values.
    pub(crate) fn str_and_all(&self, key: &str) -> (Option<String>, Vec<String>) {
        let values = self.am.all_values(key);
        let winner = values
            .last()
            .and_then(|(v, _)| v.as_str())
            .map(str::to_owned);
        let all = values
            .iter()
            .filter_map(|(v, _)| v.as_str().map(str::to_owned))
            .collect();
        (winner, all)
    }

    /// Root keys beginning with `prefix`, in order, with their values: one pass over the range
    /// instead of a lookup per key.
    pub(crate) fn entries_with_prefix(&self, prefix: &str) -> Vec<RootEntry> {
        self.am
            .entries_between(prefix.to_owned(), format!("{prefix}\u{10FFFF}"))
    }

    /// Root keys beginning with `prefix`, in order, each with the nested map it holds (`None`
    /// when its value is anything else): one pass over the range instead of a lookup per key.
    pub(crate) fn maps_with_prefix(&self, prefix: &str) -> Vec<(String, Option<automerge::ObjId>)> {
        self.am
            .maps_between(prefix.to_owned(), format!("{prefix}\u{10FFFF}"))
    }

    /// Every key of nested map `obj` that holds a string, with its winning value, in key order.
    pub(crate) fn strs_of(&self, obj: &automerge::ObjId) -> Vec<(String, String)> {
        self.am.nested_strs(obj)
    }

    /// The first root key beginning with `prefix`.
    pub(crate) fn first_key_with_prefix(&self, prefix: &str) -> Option<String> {
        self.am
            .keys_between(prefix.to_owned(), format!("{prefix}\u{10FFFF}"), 1)
            .pop()
    }

    /// Every key of nested map `outer` that holds a string, with its winning value, in key
    /// order: one pass over the map, where reading its keys one by one seeks each anew.
    pub(crate) fn strs_in(&self, outer: &str) -> Option<Vec<(String, String)>> {
        let Some((Value::Object(ObjType::Map), obj)) = self.am.get_value(outer) else {
            return None;
        };
        Some(self.strs_of(&obj))
    }

    /// The winning string in nested map `outer` at `key`.
    pub(crate) fn str_in(&self, outer: &str, key: &str) -> Option<String> {
        let Some((Value::Object(ObjType::Map), obj)) = self.am.get_value(outer) else {
            return None;
        };
        self.am
            .nested_value(&obj, key)
            .and_then(|value| value.as_str().map(str::to_owned))
    }
}

/// Items written once under their own keys (journal entries, messages, day-log and access-log
/// entries), every value of every key: a key that holds two values (two changes wrote it
/// without seeing each other — an equivocating or modified node) yields both, and is named in
/// `written_twice`, so no reader silently shows one and hides the other.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended<T> {
    /// Every decoded item, both values of a key written twice included.
    pub items: Vec<T>,
    /// Keys whose value this build cannot decode (shown, never dropped).
    pub unreadable: Vec<String>,
    /// Keys holding more than one value: an integrity alert.
    pub written_twice: Vec<String>,
}

/// Decodes every value under `prefix` keys (see [`Appended`]).
pub(crate) fn decode_appended<T: for<'de> Deserialize<'de>>(
    reader: Reader<'_>,
    prefix: &str,
) -> Appended<T> {
    let mut out = Appended {
        items: Vec::new(),
        unreadable: Vec::new(),
        written_twice: Vec::new(),
    };
    for RootEntry {
        key,
        winner,
        conflict,
    } in reader.entries_with_prefix(prefix)
    {
        // Concurrent values are rare (a key is written once): only then is the key looked up.
        let values = match conflict {
            true => reader.all_str(&key),
            false => winner.into_iter().collect(),
        };
        if values.len() > 1 {
            out.written_twice.push(key.clone());
        }
        let mut bad = values.is_empty();
        for value in values {
            match serde_json::from_str::<T>(&value) {
                Ok(item) => out.items.push(item),
                Err(_) => bad = true,
            }
        }
        if bad {
            out.unreadable.push(key);
        }
    }
    out
}

/// Decodes JSON values stored under `prefix` keys, collecting the keys that fail to decode
/// (a peer or a future version wrote something this build cannot read: shown, never dropped).
pub(crate) fn decode_entries<T: for<'de> Deserialize<'de>>(
    reader: Reader<'_>,
    prefix: &str,
) -> (Vec<T>, Vec<String>) {
    decode_root_entries(reader.entries_with_prefix(prefix))
}

/// [`decode_entries`] for entries read already.
pub(crate) fn decode_root_entries<T: for<'de> Deserialize<'de>>(
    entries: Vec<RootEntry>,
) -> (Vec<T>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for entry in entries {
        match entry.winner.map(|s| serde_json::from_str::<T>(&s)) {
            Some(Ok(value)) => good.push(value),
            _ => bad.push(entry.key),
        }
    }
    (good, bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::identity::NodeKey;

    #[test]
    fn an_entry_is_withdrawn_by_its_staff_member_and_a_home_units_report_by_any_staff_member() {
        let rng = &mut rand::rngs::StdRng::seed_from_u64(2);
        let mut author = |staff: Option<&str>, role| Author {
            staff: staff.map(|s| StaffId::parse(s).unwrap()),
            name: "x".into(),
            role,
            device: NodeKey::generate(rng).id(),
        };
        let kari = author(Some("N1"), Role::Nurse);
        let kari_at_base = author(Some("N1"), Role::Base);
        let mons = author(Some("N2"), Role::Nurse);
        let home = author(None, Role::HomeUnit);
        let other_home = author(None, Role::HomeUnit);
        let base = author(None, Role::Base);
        let cases = [
            (&kari, &kari, true),
            (&kari_at_base, &kari, true),
            (&mons, &kari, false),
            (&home, &kari, false),
            (&mons, &home, true),
            (&home, &home, true),
            (&other_home, &home, false),
            // A staff-less entry from a base is not a device's report: only that base withdraws it.
            (&mons, &base, false),
            (&base, &base, true),
            (&home, &base, false),
        ];
        for (by, written, may) in cases {
            assert_eq!(
                by.may_withdraw(written),
                may,
                "{:?} {:?} withdrawing {:?} {:?}",
                by.role,
                by.staff,
                written.role,
                written.staff
            );
        }
    }

    #[test]
    fn a_changes_stamp_keeps_the_bytes_it_always_had() {
        let device = NodeKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1)).id();
        for staff in [Some(StaffId::parse("S00010").unwrap()), None] {
            let ctx = ChangeContext {
                author: Author {
                    staff,
                    name: "Kari \"K\" Nordmann".into(),
                    role: Role::Nurse,
                    device,
                },
                entered_at: Timestamp::parse("2026-11-23T08:00:00+01:00").unwrap(),
            };
            // How the stamp was written before: a JSON object built, then printed.
            let before = serde_json::json!({
                "author": ctx.author,
                "entered_at": ctx.entered_at,
            })
            .to_string();
            assert_eq!(stamp(&ctx).unwrap(), before);
        }
    }

    /// `n` changes of one author, each building on the one before, as raw bytes.
    fn chain(n: usize) -> Vec<Vec<u8>> {
        let mut am = Automerge::new().with_actor(automerge::ActorId::from(&[7u8; 32][..]));
        for i in 0..n {
            let mut tx = am.transaction();
            tx.put(ROOT, format!("k{i}"), i as i64).unwrap();
            tx.commit();
        }
        am.get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }

    fn receiver() -> Document {
        let id = DocumentId::parse("patient/p-00000000000000a1").unwrap();
        Document::new(
            id,
            NodeKey::generate(&mut rand::rngs::StdRng::seed_from_u64(2)).id(),
        )
    }

    fn parsed(raw: &[Vec<u8>]) -> Vec<ParsedChange> {
        raw.iter()
            .map(|b| parse_change(b.clone()).unwrap())
            .collect()
    }

    /// What the store would append, against what Automerge itself takes out as unsaved.
    fn assert_unsaved_as_automerge_has_them(doc: &Document) {
        let unsaved = doc.unsaved_changes();
        let extracted = doc.am.get_changes(&doc.saved);
        let mut ours: Vec<_> = unsaved.changes.iter().map(|c| c.bytes.clone()).collect();
        let mut theirs: Vec<_> = extracted.iter().map(|c| c.raw_bytes().to_vec()).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "the same changes, each once");
        let listed: std::collections::HashSet<[u8; 32]> =
            unsaved.changes.iter().map(|c| c.hash).collect();
        let mut before = std::collections::HashSet::new();
        for change in &unsaved.changes {
            let change = automerge::Change::from_bytes(change.bytes.clone()).unwrap();
            assert!(
                change
                    .deps()
                    .iter()
                    .all(|d| !listed.contains(&d.0) || before.contains(&d.0)),
                "a change comes after its dependencies"
            );
            before.insert(change.hash().0);
        }
        assert_eq!(
            unsaved.summaries().unwrap().len(),
            unsaved.changes.len(),
            "the rules can read every one"
        );
    }

    #[test]
    fn received_changes_are_stored_as_they_came_in_causal_order() {
        let raw = chain(6);
        let mut doc = receiver();
        doc.apply_parsed(parsed(&raw[..2])).unwrap();
        doc.apply_parsed(parsed(&raw[2..4])).unwrap();
        assert_eq!(
            doc.unsaved_changes().parsed.len(),
            0,
            "kept as received, not taken out of Automerge"
        );
        assert_unsaved_as_automerge_has_them(&doc);
        doc.mark_saved();
        assert!(doc.unsaved_changes().changes.is_empty());
        // Out of order within one message, a duplicate, and a change whose dependency is
        // missing: each still stores exactly what Automerge holds, in causal order.
        doc.apply_parsed(parsed(&[raw[5].clone(), raw[4].clone()]))
            .unwrap();
        assert_unsaved_as_automerge_has_them(&doc);
        let mut other = receiver();
        other.apply_parsed(parsed(&raw[..3])).unwrap();
        other.apply_parsed(parsed(&raw[2..4])).unwrap();
        assert_unsaved_as_automerge_has_them(&other);
        let mut gap = receiver();
        gap.apply_parsed(parsed(&raw[..2])).unwrap();
        gap.apply_parsed(parsed(&raw[3..4])).unwrap();
        assert!(gap.lacks_dependencies());
        gap.apply_parsed(parsed(&raw[2..3])).unwrap();
        assert_unsaved_as_automerge_has_them(&gap);
    }
}
