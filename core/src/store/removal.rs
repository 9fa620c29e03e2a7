//! Removing a patient's documents and everything derived from them, when a device's need ends
//! (or a block names its user). The caller decides that nothing is lost.

use redb::{ReadableTable, WriteTransaction};

use super::batch::WriteBatch;
use super::chunks::{TAIL_SEQ, remove_chunks};
use super::error::StoreError;
use super::log::{leave_log, take_tail_or_rescan};
use super::read::{doc_ids_with_prefix, patient_prefixes};
use super::rows::{OwnedRow, decode_owned, patient_rows};
use super::schema::{
    CHUNKS, CONFLICTS, DAY_INDEX, DAY_INDEX_OWNERS, DOCS, OPEN_TASKS, PATIENT_NAMES, PEER_DOCS,
    RELATIONS, TASKS, VISITS, WITHHELD,
};
use crate::docs::DocumentId;
use crate::ids::PatientId;

impl WriteBatch<'_> {
    /// Removes every document about `patient` and everything derived from them (the device's
    /// need ended, or a block names its user). The caller decides that nothing is lost.
    pub fn remove_patient(&mut self, patient: &PatientId) -> Result<Vec<DocumentId>, StoreError> {
        let store = self.store;
        store.contain(|| {
            let tx = &self.tx;
            let mut removed = Vec::new();
            {
                let docs = tx.open_table(DOCS)?;
                for prefix in patient_prefixes(patient) {
                    removed.extend(doc_ids_with_prefix(&docs, &prefix)?);
                }
            }
            let keys: Vec<String> = removed.iter().map(ToString::to_string).collect();
            for key in &keys {
                remove_document(tx, key)?;
            }
            let p = patient.as_str();
            remove_withheld(tx, p)?;
            tx.open_table(PATIENT_NAMES)?.remove(p)?;
            remove_day_rows(tx, p)?;
            remove_range(&mut tx.open_table(CONFLICTS)?, p)?;
            remove_range(&mut tx.open_table(TASKS)?, p)?;
            remove_range(&mut tx.open_table(OPEN_TASKS)?, p)?;
            remove_range(&mut tx.open_table(RELATIONS)?, p)?;
            remove_visits(tx, &keys)?;
            let mut cache = store.lock_cache();
            for id in &removed {
                cache.remove(id);
                self.docs.remove(id);
            }
            // Listeners act on it: a durable commit that tells them (see `CommitHook`).
            self.durable = true;
            self.notify = true;
            Ok(removed)
        })
    }
}

/// Removes one document: its chunks and tail record, its row, its place in the change log, and
/// what any peer was known to hold of it.
fn remove_document(tx: &WriteTransaction, key: &str) -> Result<(), StoreError> {
    let mut chunks = tx.open_table(CHUNKS)?;
    remove_chunks(&mut chunks, key, 0..TAIL_SEQ)?;
    let meta = take_tail_or_rescan(tx, &mut chunks, key)?;
    drop(chunks);
    tx.open_table(DOCS)?.remove(key)?;
    leave_log(tx, &meta)?;
    remove_every_peers_row(tx, PEER_DOCS, key)?;
    remove_every_peers_row(tx, super::refused::REFUSED, key)
}

/// Removes every peer's row of the document `key` from a table keyed by (peer, document): what
/// a peer was known to hold of it, or had refused of it.
fn remove_every_peers_row<V: redb::Value + 'static>(
    tx: &WriteTransaction,
    table: redb::TableDefinition<(&[u8], &str), V>,
    key: &str,
) -> Result<(), StoreError> {
    let mut table = tx.open_table(table)?;
    let peers: Vec<Vec<u8>> = table
        .iter()?
        .filter_map(|item| {
            item.map(|(k, _)| {
                let (peer, doc) = k.value();
                (doc == key).then(|| peer.to_vec())
            })
            .transpose()
        })
        .collect::<Result<_, _>>()?;
    for peer in peers {
        table.remove((peer.as_slice(), key))?;
    }
    Ok(())
}

/// Forgets that any of `patient`'s documents are withheld from any peer.
fn remove_withheld(tx: &WriteTransaction, patient: &str) -> Result<(), StoreError> {
    let withheld: Vec<(Vec<u8>, String)> = tx
        .open_table(WITHHELD)?
        .iter()?
        .filter_map(|item| {
            item.map(|(k, _)| {
                let (peer, pat, doc) = k.value();
                (pat == patient).then(|| (peer.to_vec(), doc.to_owned()))
            })
            .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut table = tx.open_table(WITHHELD)?;
    for (peer, doc) in withheld {
        table.remove((peer.as_slice(), patient, doc.as_str()))?;
    }
    Ok(())
}

/// Removes the visits the removed plans (`keys`) held from the visit index.
fn remove_visits(tx: &WriteTransaction, keys: &[String]) -> Result<(), StoreError> {
    let visits: Vec<String> = tx
        .open_table(VISITS)?
        .iter()?
        .filter_map(|item| {
            item.map(|(v, loc)| {
                keys.iter()
                    .any(|k| k == loc.value())
                    .then(|| v.value().to_owned())
            })
            .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut table = tx.open_table(VISITS)?;
    for v in visits {
        table.remove(v.as_str())?;
    }
    Ok(())
}

/// Removes the day-index rows every month of `patient` derived.
fn remove_day_rows(tx: &WriteTransaction, patient: &str) -> Result<(), StoreError> {
    let mut owners = tx.open_table(DAY_INDEX_OWNERS)?;
    let mut index = tx.open_table(DAY_INDEX)?;
    let prefix = format!("{patient}/");
    let end = format!("{prefix}\u{10FFFF}");
    let mine: Vec<(String, Vec<OwnedRow>)> = owners
        .range(prefix.as_str()..end.as_str())?
        .map(|item| {
            let (k, v) = item?;
            Ok((k.value().to_owned(), decode_owned(v.value())?))
        })
        .collect::<Result<_, StoreError>>()?;
    for (owner, rows) in mine {
        for row in rows {
            index.remove((row.day.to_string().as_str(), row.key.as_str()))?;
        }
        owners.remove(owner.as_str())?;
    }
    Ok(())
}

fn remove_range<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, (&'static str, &'static str), V>,
    patient: &str,
) -> Result<(), StoreError> {
    let keys: Vec<String> = patient_rows(&*table, Some(patient))?
        .map(|item| item.map(|(k, _)| k.value().1.to_owned()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        table.remove((patient, k.as_str()))?;
    }
    Ok(())
}
