//! What the store file holds and where its bytes are: counts, the pages in use, per-table space,
//! and compacting the file (as opposed to a document's chunk log, see `chunks.rs`).

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::chunks::DocMeta;
use super::error::StoreError;
use super::handle::{Store, panic_text};
use super::schema::{DOCS, PATIENT_NAMES};

/// Counts of what a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Documents.
    pub documents: u64,
    /// Chunks across all documents.
    pub chunks: u64,
    /// Patients.
    pub patients: u64,
}

/// How much of the store file its pages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileUse {
    /// Bytes of the pages allocated.
    pub used_bytes: u64,
}

/// Where one table's bytes are (redb's own accounting of its B-tree).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSpace {
    /// The table.
    pub name: String,
    /// Its rows.
    pub rows: u64,
    /// Keys and values, as stored.
    pub stored_bytes: u64,
    /// The B-tree's own bytes (page headers, offsets).
    pub metadata_bytes: u64,
    /// Bytes of its pages holding nothing (pages are filled partly).
    pub fragmented_bytes: u64,
    /// Its leaf and branch pages.
    pub pages: u64,
}

impl Store {
    /// Counts of what the store holds.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            Ok(StoreStats {
                documents: read.open_table(DOCS)?.len()?,
                chunks: chunk_count(&read.open_table(DOCS)?)?,
                patients: read.open_table(PATIENT_NAMES)?.len()?,
            })
        })
    }

    /// The store file's size and the bytes its pages hold (the rest is free: pages freed by
    /// copy-on-write commits that redb reuses but never returns to the file system).
    pub fn file_use(&self) -> Result<FileUse, StoreError> {
        self.contain(|| {
            let tx = self.db.begin_write()?;
            let stats = tx.stats()?;
            // Dropped without commit: only read.
            drop(tx);
            Ok(FileUse {
                used_bytes: stats.allocated_pages() * stats.page_size() as u64,
            })
        })
    }

    /// Compacts the file when a quarter of it (and at least `min_free` bytes) is free, moving
    /// pages down and truncating. Needs the store alone (no transaction open): `omsyn run` does
    /// it at start, before anything else opens it. Returns whether it compacted.
    pub fn compact_if_worthwhile(
        &mut self,
        file_bytes: u64,
        min_free: u64,
    ) -> Result<bool, StoreError> {
        let used = self.file_use()?.used_bytes;
        let free = file_bytes.saturating_sub(used);
        if free < min_free || free < file_bytes / 4 {
            return Ok(false);
        }
        let Some(db) = self.db.0.as_mut() else {
            return Ok(false);
        };
        // A panic inside redb (a page damaged outside it) is contained as everywhere else.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut any = false;
            while db.compact()? {
                any = true;
            }
            Ok(any)
        }))
        .unwrap_or_else(|panic| Err(StoreError::Corrupt(panic_text(&panic))))
    }

    /// Where the store's bytes are, per table (for `omsyn bench store` and operators asking
    /// what a month costs).
    pub fn space(&self) -> Result<Vec<TableSpace>, StoreError> {
        use redb::{ReadableTableMetadata, TableHandle};
        self.contain(|| {
            let read = self.db.begin_read()?;
            let mut out = Vec::new();
            for handle in read.list_tables()? {
                let name = handle.name().to_owned();
                let table = read.open_untyped_table(handle)?;
                let stats = table.stats()?;
                out.push(TableSpace {
                    name,
                    rows: table.len()?,
                    stored_bytes: stats.stored_bytes(),
                    metadata_bytes: stats.metadata_bytes(),
                    fragmented_bytes: stats.fragmented_bytes(),
                    pages: stats.leaf_pages() + stats.branch_pages(),
                });
            }
            Ok(out)
        })
    }
}

/// How many chunks the documents have, as each document's row counts them: counting the
/// chunks' pieces would read every page of every document.
fn chunk_count(docs: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64, StoreError> {
    let mut count = 0;
    for item in docs.iter()? {
        count += DocMeta::decode(item?.1.value())?.chunks;
    }
    Ok(count)
}
