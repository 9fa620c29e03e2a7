//! The change log: a position per document change, which sessions read to learn what to push
//! to a peer since the position it acknowledged. A commit's documents take the positions right
//! after the one before it, and the position never goes back.

use redb::{ReadableTable, Table, WriteTransaction};

use super::cache::Version;
use super::chunks::DocMeta;
use super::error::StoreError;
use super::handle::Store;
use super::schema::{ChunkKey, DOC_SEQ, DOCS, LOG, META};
use crate::docs::DocumentId;

/// What [`Store::log_since`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSince {
    /// Each document changed after the position asked for, with its position.
    pub changed: Vec<(u64, DocumentId)>,
    /// The log position as of the same read.
    pub position: u64,
}

impl Store {
    /// The current log position.
    pub fn seq(&self) -> Result<u64, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            read_seq(&read.open_table(META)?, &read.open_table(LOG)?)
        })
    }

    /// Documents changed after log position `seq`, in log order, and the log position they
    /// bring it to — read in one transaction, so a commit landing meanwhile is either among them
    /// or after the position (a position read apart could pass over it, and a session would
    /// never push it).
    pub fn log_since(&self, seq: u64) -> Result<LogSince, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let log = read.open_table(LOG)?;
            let mut changed = Vec::new();
            for item in log.range(seq.saturating_add(1)..)? {
                let (k, v) = item?;
                if v.value().is_empty() {
                    // A removed document's place, kept as the highest position (see
                    // [`leave_log`]).
                    continue;
                }
                let id = DocumentId::parse(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("change log: {e}")))?;
                changed.push((k.value(), id));
            }
            let position = read_seq(&read.open_table(META)?, &log)?.max(seq);
            Ok(LogSince { changed, position })
        })
    }
}

/// The current log position: the highest position in `LOG`, or the `seq` a store kept in `META`
/// before the position was read from the log (never written since; it only matters for a store
/// whose highest entry was removed before that).
pub(super) fn read_seq(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    log: &impl ReadableTable<u64, &'static str>,
) -> Result<u64, StoreError> {
    let legacy = match meta.get("seq")? {
        Some(v) => v
            .value()
            .try_into()
            .map(u64::from_le_bytes)
            .map_err(|_| StoreError::Corrupt("the store's log position is malformed".into()))?,
        None => 0,
    };
    let last = log.last()?.map_or(0, |(k, _)| k.value());
    Ok(legacy.max(last))
}

/// A document's position in the change log, from its tail record in `chunks` (`None`: the store
/// does not hold it).
pub(super) fn doc_version(
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    doc: &str,
) -> Result<Version, StoreError> {
    Ok(DocMeta::read_tail(chunks, doc)?.and_then(|meta| meta.log_pos))
}

/// Format 2's migration: gives `doc` (whose `DOCS` row exists, as formats 1–9 kept it) the next
/// position in the change log, dropping its previous one, and records it in its row.
pub(super) fn enter_in_log_v9(tx: &WriteTransaction, doc: &str) -> Result<u64, StoreError> {
    let mut docs = tx.open_table(DOCS)?;
    let mut meta = DocMeta::read_row_v9(&docs, doc)?;
    meta.log_pos = log_position_v9(tx, doc, &meta)?;
    let mut log = tx.open_table(LOG)?;
    let seq = read_seq(&tx.open_table(META)?, &log)? + 1;
    place_at(&mut log, seq, doc, &mut meta)?;
    docs.insert(doc, meta.encode().as_slice())?;
    Ok(seq)
}

/// Moves `doc` to log position `seq` (the log's next, which the caller read), leaving its old
/// one, and notes it in `meta`. Takes the open `LOG`, so a commit of several documents opens
/// it and reads the log's position once.
pub(super) fn place_at(
    log: &mut Table<'_, u64, &'static str>,
    seq: u64,
    doc: &str,
    meta: &mut DocMeta,
) -> Result<(), StoreError> {
    if let Some(old) = meta.log_pos {
        log.remove(old)?;
    }
    log.insert(seq, doc)?;
    meta.log_pos = Some(seq);
    Ok(())
}

/// Where `doc` (with `DOCS` row `meta`, as formats 1–9 kept it) stands in the log, taking it out
/// of the `DOC_SEQ` table where a store written before positions moved into `DOCS` kept it
/// (format 10's migration folds every such position into the document's tail record).
pub(super) fn log_position_v9(
    tx: &WriteTransaction,
    doc: &str,
    meta: &DocMeta,
) -> Result<Option<u64>, StoreError> {
    if let Some(pos) = meta.log_pos {
        return Ok(Some(pos));
    }
    Ok(tx.open_table(DOC_SEQ)?.remove(doc)?.map(|v| v.value()))
}

/// Takes a removed document out of the change log. Its position stays taken when it was the
/// highest (an empty entry, skipped by readers): the log position never goes back, or a peer's
/// acknowledged position would cover changes made after it.
pub(super) fn leave_log(tx: &WriteTransaction, meta: &DocMeta) -> Result<(), StoreError> {
    let Some(pos) = meta.log_pos else {
        return Ok(());
    };
    let mut log = tx.open_table(LOG)?;
    log.remove(pos)?;
    if log.last()?.is_none_or(|(k, _)| k.value() < pos) {
        log.insert(pos, "")?;
    }
    Ok(())
}

/// `doc`'s tail record, removed (a document removed or rebuilt). Where the record is missing or
/// damaged — a document `omsyn check` lists — what it held is lost, so its log position is found
/// by scanning the log: removing or rebuilding a document must not be stopped by the very damage
/// it clears, nor leave its old log entry behind.
pub(super) fn take_tail_or_rescan(
    tx: &WriteTransaction,
    chunks: &mut Table<'_, ChunkKey, &'static [u8]>,
    doc: &str,
) -> Result<DocMeta, StoreError> {
    match DocMeta::take_tail(chunks, doc) {
        Ok(Some(meta)) => Ok(meta),
        Ok(None) | Err(StoreError::Corrupt(_)) => Ok(DocMeta {
            log_pos: logged_at(tx, doc)?,
            ..DocMeta::default()
        }),
        Err(other) => Err(other),
    }
}

/// `doc`'s position in the log, found by reading the whole log (damage only).
fn logged_at(tx: &WriteTransaction, doc: &str) -> Result<Option<u64>, StoreError> {
    let mut found = None;
    for item in tx.open_table(LOG)?.iter()? {
        let (pos, logged) = item?;
        if logged.value() == doc {
            found = Some(pos.value());
        }
    }
    Ok(found)
}
