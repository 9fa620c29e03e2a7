//! What the store file holds and where its bytes are: counts, the pages in use, per-table space,
//! and compacting the file (as opposed to a document's chunk log, see `chunks.rs`).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::chunks::DocMeta;
use super::error::StoreError;
use super::handle::{Store, panic_text};
use super::schema::{CHUNKS, ChunkKey, DAY_INDEX, DOCS, PATIENT_NAMES, RELATIONS, VISITS};

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
                chunks: chunk_count(&read.open_table(DOCS)?, &read.open_table(CHUNKS)?)?,
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
        let Some(db) = self.db.get_mut() else {
            return Ok(false);
        };
        // A panic inside redb (a page damaged outside it) is contained as everywhere else.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            repack_derived(db)?;
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

/// Rewrites, in one transaction, the derived tables whose rows arrive in no order of their
/// keys — a day's rows come patient by patient, a patient's relations and visits as their plans
/// are written — so their leaves split half full and stay so (a third of the day index's pages
/// were empty in the M month). redb fills a leaf before it starts the next when keys arrive in
/// order, and compacting only moves pages, so the rows are copied in key order into a new table
/// that takes the old one's name. Rows of past months are not written again: they stay packed.
fn repack_derived(db: &redb::Database) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    repack(&tx, DAY_INDEX)?;
    repack(&tx, RELATIONS)?;
    repack(&tx, VISITS)?;
    tx.commit()?;
    Ok(())
}

/// Copies `table` in key order into a new table and gives it `table`'s name.
fn repack<K: redb::Key + 'static, V: redb::Value + 'static>(
    tx: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let packed = TableDefinition::<K, V>::new("repacking");
    {
        let old = tx.open_table(table)?;
        let mut new = tx.open_table(packed)?;
        for item in old.iter()? {
            let (k, v) = item?;
            new.insert(k.value(), v.value())?;
        }
    }
    tx.delete_table(table)?;
    tx.rename_table(packed, table)?;
    Ok(())
}

/// How many chunks the documents have, as each document's tail record counts them: counting
/// the chunks' pieces would read every page of every document.
fn chunk_count(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
) -> Result<u64, StoreError> {
    let mut count = 0;
    for item in docs.iter()? {
        let (doc, _) = item?;
        // A damaged record (which `omsyn check` lists) counts none: these are figures to show.
        count += match DocMeta::read_tail(chunks, doc.value()) {
            Ok(meta) => meta.map_or(0, |meta| meta.chunks),
            Err(StoreError::Corrupt(_)) => 0,
            Err(other) => return Err(other),
        };
    }
    Ok(count)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    /// Rows in an order unrelated to their keys, as a day's rows arrive patient by patient.
    fn shuffled_rows() -> Vec<(String, String, Vec<u8>)> {
        (0..3000u64)
            .map(|i| {
                let scrambled = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
                let value = vec![(i % 251) as u8; 60 + (i % 90) as usize];
                (
                    format!("2026-11-{:02}", i % 30 + 1),
                    format!("v/{scrambled:016x}"),
                    value,
                )
            })
            .collect()
    }

    #[test]
    fn repacking_keeps_every_row_and_fills_the_pages_random_inserts_left_half_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("repack.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut table = tx.open_table(DAY_INDEX).unwrap();
            for (day, key, value) in shuffled_rows() {
                table
                    .insert((day.as_str(), key.as_str()), value.as_slice())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        let rows_and_use = |db: &redb::Database| {
            let read = redb::ReadableDatabase::begin_read(db).unwrap();
            let table = read.open_table(DAY_INDEX).unwrap();
            let rows: Vec<(String, String, Vec<u8>)> = table
                .iter()
                .unwrap()
                .map(|item| {
                    let (k, v) = item.unwrap();
                    let (day, key) = k.value();
                    (day.to_owned(), key.to_owned(), v.value().to_vec())
                })
                .collect();
            (rows, table.stats().unwrap())
        };
        let (before, loose) = rows_and_use(&db);
        repack_derived(&db).unwrap();
        let (after, packed) = rows_and_use(&db);
        assert_eq!(after, before);
        assert_eq!(after.len(), 3000);
        assert!(
            packed.leaf_pages() * 4 < loose.leaf_pages() * 3,
            "{loose:?} against {packed:?}"
        );
        assert!(
            packed.fragmented_bytes() * 4 < loose.fragmented_bytes(),
            "{packed:?}"
        );
    }
}
