//! Finding the documents that no longer load, and rewriting one that was salvaged.

use std::fmt;

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::chunks::{DocMeta, TAIL_SEQ, load_doc, remove_chunks, stored_parts};
use super::error::StoreError;
use super::handle::Store;
use super::log::take_tail_or_rescan;
use super::read::doc_ids_with_prefix;
use super::schema::{CHUNKS, ChunkKey, DOCS};
use crate::docs::salvage::{self, Remade, Salvaged};
use crate::docs::{Document, DocumentId};

/// A stored document that does not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The document.
    pub doc: DocumentId,
    /// Why it does not load.
    pub reason: String,
    /// How many of this node's own changes a repair would make again (0: it cannot repair it).
    pub remade: usize,
    /// Other nodes' changes that do not fit (a repair would have to drop them, so it will not).
    pub foreign_misfits: usize,
}

impl Damage {
    /// Whether `omsyn check --repair` can rebuild the document keeping every change.
    pub fn repairable(&self) -> bool {
        self.remade > 0 && self.foreign_misfits == 0
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doc, self.reason)?;
        if self.repairable() {
            write!(
                f,
                " ({} of this node's own changes collide with earlier ones: `omsyn check --repair` makes them again and keeps every entry)",
                self.remade
            )
        } else if self.foreign_misfits > 0 {
            write!(
                f,
                " ({} changes of other nodes do not fit; not repaired here: restore it from a peer)",
                self.foreign_misfits
            )
        } else {
            Ok(())
        }
    }
}

impl Store {
    /// Every stored document that does not decode, read from disk (not from the cache, which may
    /// hold a version that decodes), with what a repair would do.
    pub fn damaged_documents(&self) -> Result<Vec<Damage>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let chunks = read.open_table(CHUNKS)?;
            let mut damage = Vec::new();
            for id in doc_ids_with_prefix(&read.open_table(DOCS)?, "")? {
                let Err(e) = load_checked(self, &chunks, &id) else {
                    continue;
                };
                let (remade, foreign_misfits) = match self.salvage(&id) {
                    Ok(s) => (s.remade.len(), s.set_aside.len()),
                    Err(_) => (0, 0),
                };
                damage.push(Damage {
                    doc: id,
                    reason: e.to_string(),
                    remade,
                    foreign_misfits,
                });
            }
            Ok(damage)
        })
    }

    /// Rebuilds a stored document from its changes (see [`salvage`]); nothing is written.
    fn salvage(&self, id: &DocumentId) -> Result<Salvaged, StoreError> {
        let read = self.db.begin_read()?;
        salvage_from(self, &read.open_table(CHUNKS)?, id)
    }
}

/// Loads `id` from `chunks` as a read would: its tail record (a commit and every load read it
/// first) and its chunks.
fn load_checked(
    store: &Store,
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    id: &DocumentId,
) -> Result<(), StoreError> {
    let key = id.to_string();
    if DocMeta::read_tail(chunks, &key)?.is_none() {
        return Err(StoreError::Corrupt(format!(
            "{key} has no bookkeeping record beside its chunks"
        )));
    }
    load_doc(chunks, &store.cipher, id, store.actor).map(drop)
}

fn salvage_from(
    store: &Store,
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    id: &DocumentId,
) -> Result<Salvaged, StoreError> {
    let stored = stored_parts(chunks, &store.cipher, id)?;
    Ok(salvage::salvage(
        id.clone(),
        &stored.parts,
        &stored.signatures,
        store.actor,
    )?)
}

impl WriteBatch<'_> {
    /// Rebuilds document `id` as this batch sees it (see [`salvage`]) and, if every change fits
    /// or is this node's own, replaces the stored document with it: at commit the whole document
    /// is written, the re-made changes signed, and everything derived from it derived again.
    /// Returns what was re-made; `None` (nothing changed) if other nodes' changes do not fit.
    pub fn repair_document(&mut self, id: &DocumentId) -> Result<Option<Vec<Remade>>, StoreError> {
        let store = self.store;
        let salvaged = store.contain(|| salvage_from(store, &self.tx.open_table(CHUNKS)?, id))?;
        if !salvaged.set_aside.is_empty() {
            return Ok(None);
        }
        self.replace_document(salvaged.doc)?;
        Ok(Some(salvaged.remade))
    }

    fn replace_document(&mut self, doc: Document) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.id().to_string();
            let mut chunks = self.tx.open_table(CHUNKS)?;
            remove_chunks(&mut chunks, &key, 0..TAIL_SEQ)?;
            // Rebuilt from its first chunk on; it keeps its place in the change log (found by
            // a scan when its record is the damage).
            let log_pos = take_tail_or_rescan(&self.tx, &mut chunks, &key)?.log_pos;
            let fresh = DocMeta {
                log_pos,
                ..Default::default()
            };
            fresh.put_tail(&mut chunks, &key)?;
            drop(chunks);
            store.lock_cache().remove(doc.id());
            self.neutral_only.remove(doc.id());
            self.docs.insert(doc.id().clone(), (doc, None));
            Ok(())
        })
    }
}
