//! The access log (domain.md R3-R5): every read, write and export of a patient's data, on the
//! device where it happened, offline included.
//!
//! Each node appends to its own chain, one document per month (`audit/<node>/<YYYY-MM>`), so the
//! log syncs to the bases like any document and nobody else can write to it (see
//! [`super::rules`]). An entry holds its sequence number, the hash of the entry before it, and the
//! node's signature of its own hash: an altered entry breaks its hash, a removed one leaves a gap
//! in the numbers and a broken link, a forged one fails the signature. [`verify`] checks every
//! chain a store holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::docs::{Author, ChangeContext, DocError, Document, DocumentId, decode_appended};
use crate::identity::{NodeId, NodeKey};
use crate::ids::PatientId;
use crate::time::{Month, Timestamp};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// Patient data was shown.
    Read,
    /// Patient data was written.
    Write,
    /// Patient data left the system (export file, FHIR).
    Export,
    /// Access to a patient not on the user's list, with a stated reason (break-glass).
    ExplicitAccess,
    /// Access was refused (no need, or blocked).
    Refused,
    /// The device removed a patient's documents (need ended, block).
    Purge,
    /// The device rebuilt a damaged document, making some of its own changes again.
    Repair,
    /// A base received another node's access log up to an entry (see [`Anchor`]).
    Receipt,
    /// A base received a write to a patient by a node it knows no need of (kept: documentation
    /// is never refused; flagged for review).
    WriteWithoutNeed,
    /// A node sent a change numbered like one it had made before, unlike it: refused, and
    /// recorded against that node (see [`Anchor`]: the node, the number, the refused change).
    Equivocation,
}

impl AuditAction {
    /// Name for people.
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditAction::Read => "read",
            AuditAction::Write => "write",
            AuditAction::Export => "export",
            AuditAction::ExplicitAccess => "explicit-access",
            AuditAction::Refused => "refused",
            AuditAction::Purge => "purge",
            AuditAction::Repair => "repair",
            AuditAction::Receipt => "receipt",
            AuditAction::WriteWithoutNeed => "write-without-need",
            AuditAction::Equivocation => "equivocation",
        }
    }
}

/// What to log (the chain fields are added by [`append`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    /// The patient, if the access concerns one.
    pub patient: Option<PatientId>,
    /// Every patient a read of many showed at once (a work list, a board, a report).
    pub patients: Vec<PatientId>,
    /// What was done.
    pub action: AuditAction,
    /// What was accessed ("record", "journal 2026-11", "work list 2026-11-23").
    pub what: String,
    /// Why: the purpose (work list, care team, explicit access reason...).
    pub purpose: String,
    /// For a base's receipt of another node's log: what it received.
    pub anchor: Option<Anchor>,
}

impl AccessEvent {
    /// An event about one patient (or none).
    pub fn new(
        patient: Option<PatientId>,
        action: AuditAction,
        what: String,
        purpose: String,
    ) -> AccessEvent {
        AccessEvent {
            patient,
            patients: Vec::new(),
            action,
            what,
            purpose,
            anchor: None,
        }
    }
}

/// A base's receipt of another node's access log: the entry it had received last, by number
/// and hash. Kept in the base's own signed chain, so a later rewrite, truncation or rollback of
/// anything up to that entry is detected by [`verify_anchors`] wherever both logs are held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The node whose log was received.
    pub node: NodeId,
    /// Its last entry received.
    pub seq: u64,
    /// That entry's hash (hex).
    pub hash: String,
}

/// One signed link of a node's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the node's chain, from 0.
    pub seq: u64,
    /// Hash of the previous entry (hex); empty for the first.
    pub prev: String,
    /// Who: staff member, name, role, device.
    pub author: Author,
    /// The org unit (zone) of the device.
    pub zone: Option<String>,
    /// When (device clock).
    pub at: Timestamp,
    /// The patient.
    pub patient: Option<PatientId>,
    /// What was done.
    pub action: AuditAction,
    /// What was accessed.
    pub what: String,
    /// Why.
    pub purpose: String,
    /// Flagged for review at the base (explicit accesses, refusals).
    pub flagged: bool,
    /// Every patient a read of many showed (absent in entries of one patient or none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patients: Vec<PatientId>,
    /// A base's receipt of another node's log (absent in every other entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

impl AuditEntry {
    /// Whether the entry concerns `patient` (alone, or among the patients a list showed).
    pub fn concerns(&self, patient: &PatientId) -> bool {
        self.patient.as_ref() == Some(patient) || self.patients.contains(patient)
    }
}

/// An entry as stored: the entry, its hash and the node's signature of the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuditEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// `sha256(tag ‖ entry JSON)` in hex.
    pub hash: String,
    /// The node's ed25519 signature of the hash, hex.
    pub sig: String,
}

impl AuditEntry {
    /// The entry's hash.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"omsyn/audit/v1\n");
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.finalize().into()
    }
}

fn key(seq: u64) -> String {
    format!("a/{seq:012}")
}

/// The last entry of a node's chain held in `docs` (its months, any order). Reads one entry per
/// document (keys sort by sequence number), so appending stays cheap as the log grows.
pub fn chain_head(docs: &[&Document]) -> Option<AuditEntry> {
    docs.iter()
        .filter_map(|d| last_entry(d))
        .max_by_key(|e| e.seq)
}

/// The entry with the highest number in one document, found with O(log n) lookups: the node
/// writes each month's numbers contiguously from the first one in it.
fn last_entry(doc: &Document) -> Option<AuditEntry> {
    let r = doc.reader();
    let first: u64 = r
        .first_key_with_prefix("a/")?
        .strip_prefix("a/")?
        .parse()
        .ok()?;
    let has = |n: u64| r.str(&key(n)).is_some();
    let (mut lo, mut step) = (first, 1u64);
    while has(lo.saturating_add(step)) {
        lo = lo.saturating_add(step);
        step = step.saturating_mul(2);
    }
    let mut hi = lo.saturating_add(step);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if has(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let json = r.str(&key(lo))?;
    serde_json::from_str::<SignedAuditEntry>(&json)
        .ok()
        .map(|s| s.entry)
}

/// Appends an event to the node's chain in `doc` (the current month's audit document), after
/// `head` (the chain's last entry, from any month). Returns the entry.
pub fn append(
    doc: &mut Document,
    ctx: &ChangeContext,
    key_pair: &NodeKey,
    zone: Option<String>,
    head: Option<&AuditEntry>,
    event: AccessEvent,
) -> Result<AuditEntry, DocError> {
    let entry = AuditEntry {
        seq: head.map_or(0, |h| h.seq + 1),
        prev: head.map(|h| hex::encode(h.hash())).unwrap_or_default(),
        author: ctx.author.clone(),
        zone,
        at: ctx.entered_at,
        patient: event.patient,
        flagged: matches!(
            event.action,
            AuditAction::ExplicitAccess
                | AuditAction::Refused
                | AuditAction::Repair
                | AuditAction::WriteWithoutNeed
                | AuditAction::Equivocation
        ),
        action: event.action,
        what: event.what,
        purpose: event.purpose,
        patients: event.patients,
        anchor: event.anchor,
    };
    let hash = entry.hash();
    let signed = SignedAuditEntry {
        sig: hex::encode(key_pair.sign(&hash)),
        hash: hex::encode(hash),
        entry: entry.clone(),
    };
    doc.change(ctx, |ed| ed.put_json(&key(entry.seq), &signed))?;
    Ok(entry)
}

/// The entries of one audit document, by sequence number (every value of a number written
/// twice: [`verify_chain`] reports it), and undecodable keys.
pub fn read(doc: &Document) -> (Vec<SignedAuditEntry>, Vec<String>) {
    let read = decode_appended::<SignedAuditEntry>(doc.reader(), "a/");
    let mut entries = read.items;
    entries.sort_by_key(|e| e.entry.seq);
    (entries, read.unreadable)
}

/// The document id of a node's log for a month.
pub fn doc_id(node: NodeId, month: Month) -> DocumentId {
    DocumentId::Audit(node, month)
}

/// The result of checking one node's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The node whose log this is (a `device`, as every JSON Omsyn prints names a node).
    #[serde(rename = "device")]
    pub node: NodeId,
    /// Entries checked.
    pub entries: u64,
    /// Every break found; empty if the chain is whole.
    pub problems: Vec<String>,
}

/// Checks a node's chain given all its entries (from all months): numbering from 0 without gaps
/// or duplicates, each link to the previous hash, each hash, each signature by `node`.
pub fn verify_chain(
    node: NodeId,
    entries: &[SignedAuditEntry],
    unreadable: &[String],
) -> ChainReport {
    let mut problems: Vec<String> = unreadable
        .iter()
        .map(|k| format!("entry {k} cannot be decoded"))
        .collect();
    let mut by_seq: BTreeMap<u64, Vec<&SignedAuditEntry>> = BTreeMap::new();
    for e in entries {
        by_seq.entry(e.entry.seq).or_default().push(e);
    }
    let mut expected = 0u64;
    let mut prev_hash: Option<[u8; 32]> = None;
    for (seq, list) in &by_seq {
        if *seq != expected {
            problems.push(if expected == 0 {
                format!(
                    "truncated: the chain starts at entry {seq}, entries 0-{} are missing",
                    seq - 1
                )
            } else {
                format!("gap: entries {expected}-{} are missing", seq - 1)
            });
            prev_hash = None;
        }
        if list.len() > 1 {
            problems.push(format!(
                "{} different entries claim number {seq}",
                list.len()
            ));
        }
        let e = list[0];
        let computed = e.entry.hash();
        if hex::encode(computed) != e.hash {
            problems.push(format!(
                "entry {seq} was altered: its content does not match its hash"
            ));
        }
        let mut sig = [0u8; 64];
        let sig_ok = hex::decode_to_slice(&e.sig, &mut sig).is_ok() && node.verify(&computed, &sig);
        if !sig_ok {
            problems.push(format!(
                "entry {seq} is not signed by node {}",
                node.short()
            ));
        }
        if e.entry.author.device != node {
            problems.push(format!("entry {seq} names another device as its author"));
        }
        match (prev_hash, *seq) {
            (_, 0) if !e.entry.prev.is_empty() => {
                problems.push("entry 0 links to a predecessor".into())
            }
            (Some(p), _) if e.entry.prev != hex::encode(p) => problems.push(format!(
                "entry {seq} does not link to entry {}: an entry before it was altered or replaced",
                seq - 1
            )),
            _ => {}
        }
        prev_hash = Some(computed);
        expected = seq + 1;
    }
    ChainReport {
        node,
        entries: entries.len() as u64,
        problems,
    }
}

/// Checks the receipts bases wrote (`receipts`, from every base log held) against the logs held
/// (`chains`: every node's entries): an entry a base received must still be there, once, with
/// the hash the base saw. A problem is reported against the node whose log changed.
pub fn verify_anchors(
    receipts: &[AuditEntry],
    chains: &BTreeMap<NodeId, Vec<SignedAuditEntry>>,
) -> BTreeMap<NodeId, Vec<String>> {
    let mut problems: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for receipt in receipts {
        let Some(anchor) = &receipt.anchor else {
            continue;
        };
        if receipt.action == AuditAction::Equivocation {
            problems.entry(anchor.node).or_default().push(format!(
                "{} ({}) refused at {} a second, different change numbered {} of {}: the node rewrote what it had written, or was restored from an old copy",
                receipt.author.name,
                receipt.author.device.short(),
                receipt.at,
                anchor.seq,
                receipt.what
            ));
            continue;
        }
        let Some(entries) = chains.get(&anchor.node) else {
            continue;
        };
        let at: Vec<&SignedAuditEntry> = entries
            .iter()
            .filter(|e| e.entry.seq == anchor.seq)
            .collect();
        let base = format!(
            "base {} ({}) received it at {}",
            receipt.author.name,
            receipt.author.device.short(),
            receipt.at
        );
        let problem = match at.as_slice() {
            [] => Some(format!(
                "entry {} is gone though {base}: the log was truncated or rolled back after it left the device",
                anchor.seq
            )),
            [one] if one.hash == anchor.hash => None,
            [_] => Some(format!(
                "entry {} differs from what {base}: the log was rewritten after it left the device",
                anchor.seq
            )),
            _ => Some(format!(
                "entry {} has {} versions though {base}: the log was rewritten after it left the device",
                anchor.seq,
                at.len()
            )),
        };
        if let Some(p) = problem {
            problems.entry(anchor.node).or_default().push(p);
        }
    }
    problems
}
