//! Reading documents: one through the cache ([`Store::with_doc`]), and the ids stored under a
//! prefix (a kind, a patient).

use std::sync::Arc;

use redb::ReadableTable;

use super::cache::Version;
use super::chunks::{StoredParts, load_doc, stored_parts};
use super::error::StoreError;
use super::handle::Store;
use super::log::doc_version;
use super::schema::{CHUNKS, ChunkKey, DOCS};
use crate::docs::{DocKind, Document, DocumentId};
use crate::ids::PatientId;

impl Store {
    /// Runs `f` on a document, loading it if needed. `Ok(None)` if the store does not hold it.
    ///
    /// Readers share the cached version when it is the one their own read transaction sees, and
    /// hold the cache's lock only to look it up: a reader never waits for a writer (redb gives it
    /// a snapshot), nor for another reader.
    pub fn with_doc<T>(
        &self,
        id: &DocumentId,
        f: impl FnOnce(&Document) -> T,
    ) -> Result<Option<T>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let chunks = read.open_table(CHUNKS)?;
            let (version, cached) = self.cached(&chunks, id)?;
            if let Some(doc) = cached {
                return Ok(Some(f(&doc)));
            }
            let Some(doc) = load_doc(&chunks, &self.cipher, id, self.actor)? else {
                return Ok(None);
            };
            let doc = Arc::new(doc);
            let out = f(&doc);
            let evicted = self.lock_cache().put(doc, version);
            self.dispose(evicted);
            Ok(Some(out))
        })
    }

    /// A stored document's chunks, opened but not loaded (what [`crate::docs::outline`] reads
    /// its heads and changes from), unless the cache holds the version a read sees: `None` then
    /// (the cached copy costs less than reading the chunks again), or when the store does not
    /// hold it. The caller loads it when the chunks do not tell.
    pub(crate) fn unloaded(&self, id: &DocumentId) -> Result<Option<StoredParts>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let chunks = read.open_table(CHUNKS)?;
            if self.cached(&chunks, id)?.1.is_some() {
                return Ok(None);
            }
            let stored = stored_parts(&chunks, &self.cipher, id)?;
            Ok((!stored.parts.is_empty()).then_some(stored))
        })
    }

    /// The document's version as `chunks` (a read transaction's) sees it, and the cache's copy
    /// of that version.
    fn cached(
        &self,
        chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
        id: &DocumentId,
    ) -> Result<(Version, Option<Arc<Document>>), StoreError> {
        let version = doc_version(chunks, &id.to_string())?;
        Ok((version, self.lock_cache().get_at(id, version)))
    }

    /// A copy of a document (for export and sync).
    pub fn load(&self, id: &DocumentId) -> Result<Option<Document>, StoreError> {
        self.with_doc(id, Document::clone)
    }

    /// Ids of every stored document whose text form starts with `prefix`, in order.
    pub fn doc_ids(&self, prefix: &str) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            doc_ids_with_prefix(&read.open_table(DOCS)?, prefix)
        })
    }

    /// Ids of every document about `patient` held here.
    pub fn patient_doc_ids(&self, patient: &PatientId) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let docs = read.open_table(DOCS)?;
            let mut out = Vec::new();
            for prefix in patient_prefixes(patient) {
                out.extend(doc_ids_with_prefix(&docs, &prefix)?);
            }
            Ok(out)
        })
    }
}

/// Ids of the documents in `docs` whose text form starts with `prefix`, in order.
pub(super) fn doc_ids_with_prefix(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<DocumentId>, StoreError> {
    let mut out = Vec::new();
    for item in docs.range(prefix..)? {
        let (key, _) = item?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(
            DocumentId::parse(key)
                .map_err(|e| StoreError::Corrupt(format!("stored document id: {e}")))?,
        );
    }
    Ok(out)
}

/// The id prefixes under which a patient's documents are stored.
pub(super) fn patient_prefixes(patient: &PatientId) -> [String; 4] {
    [
        format!("patient/{patient}"),
        format!("plan/{patient}/"),
        format!("journal/{patient}/"),
        format!("messages/{patient}/"),
    ]
}

/// Kinds of documents, for store statistics and export filters.
pub fn kind_prefix(kind: DocKind) -> &'static str {
    match kind {
        DocKind::PatientRecord => "patient/",
        DocKind::VisitPlan => "plan/",
        DocKind::Journal => "journal/",
        DocKind::Messages => "messages/",
        DocKind::DayLog => "daylog/",
        DocKind::Audit => "audit/",
    }
}
