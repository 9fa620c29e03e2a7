//! The bounded cache of committed documents, each shared read-only with its log position.

use std::collections::HashMap;
use std::sync::Arc;

use crate::docs::{Document, DocumentId};

/// How many documents the cache keeps. A base's working set for one report is larger, but those
/// documents are streamed through; the cache only has to hold what is being edited.
pub const CACHE_DOCUMENTS: usize = 256;

/// A document as committed, with the log position it reflects (`None`: never logged, which
/// only a store that was never written since format 2 can hold).
pub(super) type Version = Option<u64>;

/// A small LRU cache of committed documents, each shared read-only with its log position.
///
/// **Invariant:** a writer edits a cached document only if its position equals the document's
/// position in the writer's own redb write transaction ([`Cache::take_at`]): the state a change
/// is built on is the state it is committed onto. Only one write transaction exists at a time, so
/// no two writers can build on one state (issue #12: two writers each made change number N of
/// the node's actor and both committed, and the document no longer loaded).
#[derive(Debug, Default)]
pub(super) struct Cache {
    docs: HashMap<DocumentId, CachedDoc>,
    tick: u64,
}

#[derive(Debug)]
pub(super) struct CachedDoc {
    doc: Arc<Document>,
    version: Version,
    used: u64,
}

impl Cache {
    /// The cached `id` for a reader, only if it is the version at `version`: the one the
    /// reader's own read transaction sees. (Between a writer's commit and its putting the new
    /// version back, the cache may still hold the one before — or a version a reader loaded
    /// while the write was under way. A reader served that after the commit had returned would
    /// miss a change the log already shows: a session then never pushed it.)
    pub(super) fn get_at(&mut self, id: &DocumentId, version: Version) -> Option<Arc<Document>> {
        self.tick += 1;
        let entry = self.docs.get_mut(id)?;
        if entry.version != version {
            return None;
        }
        entry.used = self.tick;
        Some(Arc::clone(&entry.doc))
    }

    /// Takes `id` out for a writer, only if it is the version at `version`; a stale entry is
    /// dropped. A reader still holding the taken version keeps its own copy alive (the writer
    /// then edits a clone), so a writer never waits for a reader.
    pub(super) fn take_at(&mut self, id: &DocumentId, version: Version) -> Option<Document> {
        let entry = self.docs.remove(id)?;
        (entry.version == version).then(|| Arc::unwrap_or_clone(entry.doc))
    }

    pub(super) fn remove(&mut self, id: &DocumentId) {
        self.docs.remove(id);
    }

    /// Keeps `doc` as of `version` unless a later version is cached already (a reader that
    /// loaded before a commit must not replace what the writer put back after it). Returns the
    /// documents it no longer keeps, for the caller to drop outside the cache's lock (see
    /// [`Evicted`]).
    #[must_use = "evicted documents are handed to the store's disposer"]
    pub(super) fn put(&mut self, doc: Arc<Document>, version: Version) -> Evicted {
        self.tick += 1;
        let id = doc.id().clone();
        if self
            .docs
            .get(&id)
            .is_some_and(|held| held.version > version)
        {
            return vec![doc];
        }
        let used = self.tick;
        let mut evicted = Vec::new();
        if let Some(replaced) = self.docs.insert(id, CachedDoc { doc, version, used }) {
            evicted.push(replaced.doc);
        }
        while self.docs.len() > CACHE_DOCUMENTS {
            let oldest = self
                .docs
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| k.clone());
            match oldest.and_then(|k| self.docs.remove(&k)) {
                Some(entry) => evicted.push(entry.doc),
                None => break,
            }
        }
        evicted
    }

    /// Empties the cache; returns what it held, for the caller to drop outside its lock.
    pub(super) fn clear(&mut self) -> Evicted {
        self.docs.drain().map(|(_, entry)| entry.doc).collect()
    }
}

/// Documents the cache let go of. Dropping an Automerge document frees every column of its op
/// set, 40–60 µs for a patient record: after a write that is paid once per document evicted,
/// so the store hands them to its disposer ([`super::Store::set_disposer`]) instead of dropping
/// them under the cache's lock, on the write's path.
pub(super) type Evicted = Vec<Arc<Document>>;
