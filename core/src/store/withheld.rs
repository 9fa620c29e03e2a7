//! Documents withheld from a peer (it had no need of them when they were due), remembered so they
//! are reconsidered at every session start and whenever the patient's record or plan changes.

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use super::schema::WITHHELD;
use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::ids::PatientId;

impl Store {
    /// Documents withheld from `peer`: all of them, or only those of `patient`.
    pub fn withheld(
        &self,
        peer: &NodeId,
        patient: Option<&PatientId>,
    ) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(WITHHELD)?;
            let p = peer.as_bytes().as_slice();
            let range = match patient {
                Some(patient) => {
                    table.range((p, patient.as_str(), "")..=(p, patient.as_str(), "\u{10FFFF}"))?
                }
                None => table.range((p, "", "")..=(p, "\u{10FFFF}", "\u{10FFFF}"))?,
            };
            range
                .map(|item| {
                    let (k, _) = item?;
                    DocumentId::parse(k.value().2)
                        .map_err(|e| StoreError::Corrupt(format!("withheld document id: {e}")))
                })
                .collect()
        })
    }
}

impl WriteBatch<'_> {
    /// Marks `doc` as withheld from `peer` (`true`) or no longer withheld (`false`).
    pub fn set_withheld(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
        withheld: bool,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let patient = doc.patient().map_or("", |p| p.as_str());
            let key = doc.to_string();
            let mut table = self.tx.open_table(WITHHELD)?;
            let k = (peer.as_bytes().as_slice(), patient, key.as_str());
            if withheld {
                if table.insert(k, 1)?.is_none() {
                    // Listeners act on it: a durable commit that tells them (see `CommitHook`).
                    self.durable = true;
                    self.notify = true;
                }
            } else if table.remove(k)?.is_some() {
                // Listeners act on it: a durable commit that tells them (see `CommitHook`).
                self.durable = true;
                self.notify = true;
            }
            Ok(())
        })
    }
}
