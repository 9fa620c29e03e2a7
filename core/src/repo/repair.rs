//! `omsyn check --repair`: rebuilding documents damaged by concurrent writes (issue #12).

use serde::Serialize;

use super::{Repo, RepoError};
use crate::store::Damage;
use crate::time::Timestamp;
use crate::trust::audit::{AccessEvent, AuditAction};

/// One document a repair rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairedDocument {
    /// The document.
    pub doc: String,
    /// This node's changes made again: the old change hash and the new one (hex); in JSON, each
    /// `{"old": …, "new": …}`.
    #[serde(serialize_with = "old_and_new")]
    pub remade: Vec<(String, String)>,
}

fn old_and_new<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(pairs.len()))?;
    for (old, new) in pairs {
        seq.serialize_element(&serde_json::json!({ "old": old, "new": new }))?;
    }
    seq.end()
}

/// What [`Repo::repair`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Documents rebuilt, every change kept.
    pub repaired: Vec<RepairedDocument>,
    /// Damaged documents left as they were (a repair would lose other nodes' changes).
    pub left: Vec<String>,
}

impl Repo {
    /// Every stored document that does not load, as read from disk.
    pub fn damaged_documents(&self) -> Result<Vec<Damage>, RepoError> {
        Ok(self.store.damaged_documents()?)
    }

    /// Rebuilds every damaged document that can be rebuilt without losing a change: the node's
    /// own changes that collide with earlier ones (two writers gave them one number) are made
    /// again with the same content, signed anew, and each rebuilt document is recorded in the
    /// access log (flagged for review at the base). One transaction: all or nothing.
    pub fn repair(&self, now: Timestamp) -> Result<RepairReport, RepoError> {
        let damage = self.store.damaged_documents()?;
        self.transaction(|tx| {
            let mut report = RepairReport::default();
            for found in damage {
                let Some(remade) = tx.batch.repair_document(&found.doc)? else {
                    report.left.push(found.to_string());
                    continue;
                };
                let remade: Vec<(String, String)> = remade
                    .into_iter()
                    .map(|(old, new)| (hex::encode(old), hex::encode(new)))
                    .collect();
                tx.log_access(now, repair_event(&found, &remade))?;
                report.repaired.push(RepairedDocument {
                    doc: found.doc.to_string(),
                    remade,
                });
            }
            Ok(report)
        })
    }
}

fn repair_event(found: &Damage, remade: &[(String, String)]) -> AccessEvent {
    let changes: Vec<String> = remade
        .iter()
        .map(|(old, new)| format!("{} as {}", &old[..12], &new[..12]))
        .collect();
    AccessEvent::new(
        found.doc.patient().cloned(),
        AuditAction::Repair,
        format!("{}: made again {}", found.doc, changes.join(", ")),
        "store repair: two writes had been given one change number".into(),
    )
}
