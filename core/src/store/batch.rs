//! [`WriteBatch`], the unit of durable commit: documents loaded or created for editing, the rows
//! the change pipeline hands it, and one redb transaction committed with `Durability::Immediate`
//! (only a commit of peer knowledge alone may skip the fsync).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};

use super::cache::Version;
use super::chunks::{DocMeta, append_chunk, has_chunks, load_doc};
use super::error::StoreError;
use super::handle::Store;
use super::log::{doc_version, place_at, read_seq};
use super::read::doc_ids_with_prefix;
use super::schema::{CHUNKS, DOCS, LOG, META, NEW_DOC_ROW, REDERIVE_KEY};
use crate::docs::{ChangeSummary, DocError, Document, DocumentId, HashedChange, UnsavedChanges};
use crate::identity::{NodeId, NodeKey};

impl Store {
    /// Starts a write. Only one write runs at a time; a second waits for the first.
    pub fn write(&self) -> Result<WriteBatch<'_>, StoreError> {
        self.contain(|| {
            Ok(WriteBatch {
                store: self,
                tx: self.db.begin_write()?,
                docs: BTreeMap::new(),
                neutral_only: BTreeSet::new(),
                durable: true,
                notify: false,
                revocations_stored: false,
                own_cert_changed: false,
                derived: false,
                rederive: BTreeSet::new(),
                clear_rederive_flag: false,
                set_aside: BTreeSet::new(),
                certificates: BTreeMap::new(),
                histories: BTreeMap::new(),
                unsaved: BTreeMap::new(),
            })
        })
    }
}

/// One atomic, durable write: any number of document edits plus the derived index updates.
pub struct WriteBatch<'a> {
    pub(super) store: &'a Store,
    pub(super) tx: WriteTransaction,
    /// Documents loaded or created by this batch, with the version each was loaded at.
    pub(super) docs: BTreeMap<DocumentId, (Document, Version)>,
    /// Documents touched only through [`WriteBatch::doc_for_neutral_append`]: their changes cannot
    /// alter the conflict or task lists, so commit skips re-deriving them (the costliest part of a
    /// note).
    pub(super) neutral_only: BTreeSet<DocumentId>,
    /// Whether commit must fsync. Only knowledge about peers may skip it: losing such a write
    /// understates what a peer holds, which costs a resend, never data.
    pub(super) durable: bool,
    /// This batch changed something the commit hook's listeners act on besides documents
    /// (certificates, what is withheld or withdrawn, a removed patient): see [`super::CommitHook`].
    pub(super) notify: bool,
    /// This batch stored a revocation.
    pub(super) revocations_stored: bool,
    /// This batch stores a new certificate of the local node: the cached one goes at commit.
    pub(super) own_cert_changed: bool,
    /// The change pipeline handed this write the rows derived from its documents.
    pub(super) derived: bool,
    /// Documents to derive again though unchanged (see [`WriteBatch::rederive`]).
    pub(super) rederive: BTreeSet<DocumentId>,
    /// Clear the store's request to derive everything again when this write commits.
    pub(super) clear_rederive_flag: bool,
    /// Documents that do not load, which this write treats as absent (see
    /// [`WriteBatch::set_aside`]).
    pub(super) set_aside: BTreeSet<DocumentId>,
    /// Certificates read (and their signatures verified) in this batch, by node: a batch of
    /// received changes asks for its authors' certificates once per change, and verifying each
    /// again would cost a signature check per change.
    pub(super) certificates: BTreeMap<NodeId, Option<crate::trust::Certificate>>,
    /// Every certificate of a node read in this batch (see [`WriteBatch::certificate_history`]),
    /// for the same reason.
    pub(super) histories: BTreeMap<NodeId, Vec<crate::trust::Certificate>>,
    /// Documents' unsaved changes as last taken out (see [`WriteBatch::unsaved_changes`]); one
    /// is used again only while its document says it is current.
    unsaved: BTreeMap<DocumentId, UnsavedChanges>,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("docs", &self.docs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> WriteBatch<'a> {
    /// The document to edit, loaded or created empty.
    pub fn doc(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        let store = self.store;
        store.contain(|| {
            self.neutral_only.remove(id);
            self.load_or_create(id)
        })
    }

    /// The document to edit, for a caller that promises its edits cannot change the derived
    /// conflict and task lists (appending a note, an observation, a message). If the batch touches
    /// the same document any other way, the promise lapses and both are re-derived as usual.
    pub fn doc_for_neutral_append(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        let store = self.store;
        store.contain(|| {
            if !self.docs.contains_key(id) {
                self.neutral_only.insert(id.clone());
            }
            self.load_or_create(id)
        })
    }

    fn load_or_create(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        if !self.docs.contains_key(id) {
            let loaded = match self.load(id)? {
                Some(loaded) => loaded,
                None => (Document::new(id.clone(), self.store.actor), None),
            };
            self.docs.insert(id.clone(), loaded);
        }
        self.docs
            .get_mut(id)
            .map(|(doc, _)| doc)
            .ok_or_else(|| StoreError::Corrupt("batch lost a document".into()))
    }

    /// A document this batch already loaded or created, without touching the store or what the
    /// batch promised about it (see [`WriteBatch::doc_for_neutral_append`]).
    pub fn loaded(&mut self, id: &DocumentId) -> Option<&mut Document> {
        self.docs.get_mut(id).map(|(doc, _)| doc)
    }

    /// Treats `id` as absent in this write: a damaged document (it does not load) that deriving
    /// everything again must step around; `omsyn check` reports it.
    pub fn set_aside(&mut self, id: &DocumentId) {
        self.set_aside.insert(id.clone());
    }

    /// The document to edit, only if the store holds it.
    pub fn existing(&mut self, id: &DocumentId) -> Result<Option<&mut Document>, StoreError> {
        let store = self.store;
        store.contain(|| {
            if self.set_aside.contains(id) {
                return Ok(None);
            }
            self.neutral_only.remove(id);
            if !self.docs.contains_key(id) {
                let Some(loaded) = self.load(id)? else {
                    return Ok(None);
                };
                self.docs.insert(id.clone(), loaded);
            }
            Ok(self.docs.get_mut(id).map(|(doc, _)| doc))
        })
    }

    /// Whether [`WriteBatch::existing`] would find `id`, without loading it: a document this
    /// batch loaded or created, or one the store holds.
    pub fn holds(&mut self, id: &DocumentId) -> Result<bool, StoreError> {
        if self.set_aside.contains(id) {
            return Ok(false);
        }
        if self.docs.contains_key(id) {
            return Ok(true);
        }
        let store = self.store;
        store.contain(|| {
            let docs = self.tx.open_table(DOCS)?;
            Ok(docs.get(id.to_string().as_str())?.is_some())
        })
    }

    /// Commit without fsync (see the `durable` field: peer knowledge only).
    pub fn set_non_durable(&mut self) {
        self.durable = false;
    }

    /// Commit with fsync after all: peer knowledge a write had made non-durable is due to be kept.
    pub fn set_durable(&mut self) {
        self.durable = true;
    }

    /// Ids of the documents this batch has loaded or created so far.
    pub fn touched(&self) -> impl Iterator<Item = &DocumentId> {
        self.docs.keys()
    }

    /// The store this write goes to.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The local node's key, which signs what this write appends in its name.
    pub(crate) fn signer(&self) -> &NodeKey {
        &self.store.signer
    }

    /// Ids of every stored document whose text form starts with `prefix`, as this write sees
    /// them (documents it created but has not committed are among [`WriteBatch::touched`]).
    pub fn doc_ids(&mut self, prefix: &str) -> Result<Vec<DocumentId>, StoreError> {
        let store = self.store;
        store.contain(|| doc_ids_with_prefix(&self.tx.open_table(DOCS)?, prefix))
    }

    /// The document as committed, from the cache only if the cached version is the one this
    /// write transaction sees (see [`Cache`]'s invariant), with its version.
    fn load(&mut self, id: &DocumentId) -> Result<Option<(Document, Version)>, StoreError> {
        let chunks = self.tx.open_table(CHUNKS)?;
        let version = doc_version(&chunks, &id.to_string())?;
        if let Some(doc) = self.store.lock_cache().take_at(id, version) {
            return Ok(Some((doc, version)));
        }
        let doc = load_doc(&chunks, &self.store.cipher, id, self.store.actor)?;
        Ok(doc.map(|doc| (doc, version)))
    }

    /// The documents this write changed (or was asked to derive again), which the change
    /// pipeline derives index rows for before it commits.
    pub fn changed_documents(&self) -> Vec<DocumentId> {
        self.docs
            .iter()
            .filter(|(id, (doc, _))| doc.has_unsaved_changes() || self.rederive.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The changes of `id` (a document this batch loaded) not yet stored, in causal order, with
    /// their hashes and authors (empty if it holds none or the batch has not loaded it). Taken
    /// out once per state of the document and kept: the pipeline's review at a base and the
    /// commit (signing, the chunk) then share one extraction.
    pub(crate) fn unsaved_changes(&mut self, id: &DocumentId) -> &[HashedChange] {
        self.unsaved(id).map_or(&[], |u| u.changes.as_slice())
    }

    /// What each of [`WriteBatch::unsaved_changes`] does, for the rules: read from the same
    /// extraction, so a local write's changes are not parsed again to be checked.
    pub(crate) fn unsaved_summaries(
        &mut self,
        id: &DocumentId,
    ) -> Result<Vec<ChangeSummary>, DocError> {
        self.unsaved(id).map_or(Ok(Vec::new()), |u| u.summaries())
    }

    /// `id`'s unsaved changes as last taken out, taken out again if the document changed since.
    fn unsaved(&mut self, id: &DocumentId) -> Option<&UnsavedChanges> {
        let (doc, _) = self.docs.get_mut(id)?;
        let current = self.unsaved.get(id).is_some_and(|u| doc.still_unsaved(u));
        if !current {
            self.unsaved.insert(id.clone(), doc.take_unsaved_changes());
        }
        self.unsaved.get(id)
    }

    /// Like [`WriteBatch::unsaved_changes`], handing the changes over (commit stores them).
    fn take_unsaved_changes(&mut self, id: &DocumentId) -> Vec<HashedChange> {
        let kept = self.unsaved.remove(id);
        let Some((doc, _)) = self.docs.get_mut(id) else {
            return Vec::new();
        };
        match kept {
            Some(unsaved) if doc.still_unsaved(&unsaved) => unsaved.changes,
            _ => doc.take_unsaved_changes().changes,
        }
    }

    /// Whether `id` was touched only through [`WriteBatch::doc_for_neutral_append`].
    pub fn is_neutral_append(&self, id: &DocumentId) -> bool {
        self.neutral_only.contains(id)
    }

    /// Records that the rows derived from this write's documents were handed to it
    /// ([`WriteBatch::put_row`]); [`WriteBatch::commit`] refuses a write that changed documents
    /// without.
    pub fn mark_derived(&mut self) {
        self.derived = true;
    }

    /// Writes every changed document (signing the local node's new changes) and commits durably,
    /// with the index rows the change pipeline handed it.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let changed = self.changed_documents();
            if !changed.is_empty() && !self.derived {
                // Invariant: every path that changes documents goes through the change pipeline,
                // which derives before committing; an index left behind would disagree with the
                // documents for good.
                return Err(StoreError::Corrupt(
                    "a write changed documents without deriving their indexes (a bug)".into(),
                ));
            }
            let mut to_store = Vec::new();
            for id in &changed {
                let changes = self.take_unsaved_changes(id);
                if !changes.is_empty() {
                    to_store.push((id.clone(), changes));
                }
            }
            let logged_at = self.store_changes(to_store)?;
            let logged: Vec<DocumentId> = logged_at.iter().map(|(id, _)| id.clone()).collect();
            // A document change is never left to a non-durable commit.
            self.durable |= !logged.is_empty();
            if self.clear_rederive_flag {
                self.tx.open_table(META)?.remove(REDERIVE_KEY)?;
            }
            let durability = if self.durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            };
            self.tx.set_durability(durability)?;
            let seq = match logged_at.last() {
                Some((_, seq)) => *seq,
                None => read_seq(&self.tx.open_table(META)?, &self.tx.open_table(LOG)?)?,
            };
            // A change to this node's own certificates commits with their cache held, and
            // empties it before letting go: a write that begins right after the commit (redb's
            // lock is free then) must not be judged by the grant before it. Readers of the cache
            // wait out this one commit; they take no lock a commit waits for.
            let own_certs = (self.own_cert_changed)
                .then(|| store.own_certs.lock().unwrap_or_else(|p| p.into_inner()));
            let committed = self.tx.commit();
            if let Some(mut cached) = own_certs {
                // Emptied whatever the commit's outcome: reading them again is always right.
                *cached = None;
            }
            committed?;
            // Only a durable commit that changed something wakes the listeners: a session woken
            // by every commit of peer knowledge would read the log for nothing.
            if self.durable && (!logged.is_empty() || self.notify || self.revocations_stored) {
                store.tell(seq, logged, self.revocations_stored);
            }
            let mut evicted = Vec::new();
            let mut cache = self.store.lock_cache();
            for (_, (mut doc, version)) in std::mem::take(&mut self.docs) {
                doc.mark_saved();
                evicted.extend(cache.put(Arc::new(doc), version));
            }
            drop(cache);
            store.dispose(evicted);
            Ok(())
        })
    }

    /// Stores each document's new changes (signing the local node's) as a chunk, gives it the
    /// log's next position and writes its tail record once, beside the chunk. Returns the
    /// documents with their positions, in order. Opens each table once and reads the log's
    /// position once for the whole commit: a table opened again is a lookup in redb's table of
    /// tables each time. `DOCS` is written only for a new document (a page it would dirty
    /// otherwise is the reason the bookkeeping moved beside the chunks).
    fn store_changes(
        &mut self,
        to_store: Vec<(DocumentId, Vec<HashedChange>)>,
    ) -> Result<Vec<(DocumentId, u64)>, StoreError> {
        let mut logged = Vec::new();
        if to_store.is_empty() {
            return Ok(logged);
        }
        let store = self.store;
        let mut chunks = self.tx.open_table(CHUNKS)?;
        let mut log = self.tx.open_table(LOG)?;
        let mut seq = read_seq(&self.tx.open_table(META)?, &log)?;
        for (id, changes) in to_store {
            let Some((doc, version)) = self.docs.get_mut(&id) else {
                continue;
            };
            store.sign_own_changes(doc, &changes);
            let key = id.to_string();
            let mut meta = match DocMeta::read_tail(&chunks, &key)? {
                Some(meta) => meta,
                None => {
                    let mut docs = self.tx.open_table(DOCS)?;
                    // A held document without its record (damage): numbering its chunks from
                    // 0 again would overwrite the stored ones.
                    if docs.get(key.as_str())?.is_some() || has_chunks(&chunks, &key)? {
                        return Err(StoreError::Corrupt(format!(
                            "{key} has no bookkeeping record beside its chunks: `omsyn check` \
                             lists it; restore the document from a peer"
                        )));
                    }
                    docs.insert(key.as_str(), NEW_DOC_ROW)?;
                    DocMeta::default()
                }
            };
            append_chunk(&mut chunks, &store.cipher, doc, &changes, &mut meta)?;
            seq += 1;
            place_at(&mut log, seq, &key, &mut meta)?;
            *version = Some(seq);
            meta.put_tail(&mut chunks, &key)?;
            logged.push((id, seq));
        }
        Ok(logged)
    }

    /// Asks for `ids` to be derived again at this write's commit though unchanged (a store
    /// whose derived indexes predate this build). `last`: they are the last of the store's
    /// documents to be, and the store's request is cleared when this write commits.
    pub fn rederive(&mut self, ids: &[DocumentId], last: bool) {
        self.rederive.extend(ids.iter().cloned());
        self.clear_rederive_flag |= last;
    }
}
