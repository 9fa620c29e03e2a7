//! The access log: appending to this node's own hash-chained log, reading the logs held, and
//! verifying their chains.

use std::collections::BTreeMap;

use super::{Repo, RepoError, Transaction};
use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::ids::PatientId;
use crate::time::Timestamp;
use crate::trust::audit::{self, AccessEvent, AuditAction, AuditEntry, ChainReport};

impl Repo {
    /// Appends an event to this node's access log, durably.
    pub fn log_access(&self, now: Timestamp, event: AccessEvent) -> Result<AuditEntry, RepoError> {
        self.transaction(|tx| tx.log_access(now, event))
    }

    /// Every access-log entry this node holds (its own and, on a base, every synced device's),
    /// optionally about one patient, by time. For one patient, every write to the patient's
    /// documents is included too, from the documents' own signed change history: each change
    /// carries its author and entry time, so writes need no second log (which would double the
    /// cost of every write and could disagree with the data).
    pub fn audit_entries(&self, patient: Option<&PatientId>) -> Result<Vec<AuditEntry>, RepoError> {
        let mut out = Vec::new();
        if let Some(p) = patient {
            out.extend(self.writes_to(p)?);
        }
        for id in self.store.doc_ids("audit/")? {
            if let Some((entries, _)) = self.store.with_doc(&id, audit::read)? {
                out.extend(
                    entries
                        .into_iter()
                        .map(|e| e.entry)
                        .filter(|e| patient.is_none_or(|p| e.concerns(p))),
                );
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.seq.cmp(&b.seq)));
        Ok(out)
    }

    /// Every write to `patient`'s documents held here, as access-log entries.
    fn writes_to(&self, patient: &PatientId) -> Result<Vec<AuditEntry>, RepoError> {
        let mut out = Vec::new();
        for id in self.store.patient_doc_ids(patient)? {
            let changes = self
                .store
                .with_doc(&id, |d| d.authored_changes())?
                .unwrap_or_default();
            for (author, at) in changes {
                out.push(AuditEntry {
                    seq: 0,
                    prev: String::new(),
                    zone: None,
                    at,
                    patient: Some(patient.clone()),
                    action: AuditAction::Write,
                    what: id.to_string(),
                    purpose: "documentation".into(),
                    flagged: false,
                    author,
                    patients: Vec::new(),
                    anchor: None,
                });
            }
        }
        Ok(out)
    }

    /// Checks every node's access-log chain held here, and every base's receipts of the logs
    /// it received against those logs (a rewrite, truncation or rollback after a base saw it).
    pub fn verify_audit(&self) -> Result<Vec<ChainReport>, RepoError> {
        let mut chains: BTreeMap<NodeId, (Vec<audit::SignedAuditEntry>, Vec<String>)> =
            BTreeMap::new();
        for id in self.store.doc_ids("audit/")? {
            let DocumentId::Audit(node, _) = &id else {
                continue;
            };
            if let Some((entries, bad)) = self.store.with_doc(&id, audit::read)? {
                let chain = chains.entry(*node).or_default();
                chain.0.extend(entries);
                chain.1.extend(bad.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        let receipts: Vec<AuditEntry> = chains
            .values()
            .flat_map(|(entries, _)| entries.iter().map(|e| e.entry.clone()))
            .filter(|e| e.anchor.is_some())
            .collect();
        let entries: BTreeMap<NodeId, Vec<audit::SignedAuditEntry>> = chains
            .iter()
            .map(|(node, (entries, _))| (*node, entries.clone()))
            .collect();
        let mut anchored = audit::verify_anchors(&receipts, &entries);
        Ok(chains
            .into_iter()
            .map(|(node, (entries, unreadable))| {
                let mut report = audit::verify_chain(node, &entries, &unreadable);
                report
                    .problems
                    .extend(anchored.remove(&node).unwrap_or_default());
                report
            })
            .collect())
    }

    /// Who appends to this node's access log at `now`, and with which key.
    pub(crate) fn logger_at(
        &self,
        now: Timestamp,
    ) -> Result<crate::pipeline::Logger<'_>, RepoError> {
        let grant = self.grant_at(now.change_millis())?;
        Ok(crate::pipeline::Logger::of(&grant, &self.identity.key))
    }
}

impl Transaction<'_> {
    /// Appends an event to this node's access log in this transaction.
    pub fn log_access(
        &mut self,
        now: Timestamp,
        event: AccessEvent,
    ) -> Result<AuditEntry, RepoError> {
        Ok(self
            .repo
            .logger_at(now)?
            .append(&mut self.batch, now, event)?)
    }
}
