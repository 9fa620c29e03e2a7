//! The chunk log: each document is stored as an Automerge snapshot followed by incremental
//! chunks, each sealed with the store key and carrying the signatures of the changes in it, and
//! compacted into one snapshot once the increments outgrow it. A write appends only its new
//! changes, so it costs O(change), not O(document).

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::crypt::{Cipher, chunk_place, sealed_value_error};
use super::error::StoreError;
use super::schema::ChunkKey;
use crate::docs::{Document, DocumentId, HashedChange};
use crate::identity::NodeId;

/// Compact a document after this many incremental chunks.
const MAX_CHUNKS_BEFORE_COMPACTION: u64 = 64;

/// Or once its increments exceed this many bytes and the snapshot's size.
const MIN_INCREMENTAL_BYTES_FOR_COMPACTION: u64 = 64 * 1024;

/// Bookkeeping for one document's chunk log, and its position in the change log. Since format 10
/// it is the document's tail record in `CHUNKS` (see [`TAIL_SEQ`]); formats 1–9 kept it as the
/// document's `DOCS` row, which the migrations up to 9 still read and write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct DocMeta {
    pub(super) next_seq: u64,
    pub(super) chunks: u64,
    pub(super) incremental_bytes: u64,
    pub(super) snapshot_bytes: u64,
    /// Its position in `LOG` (`None`: not entered yet, or a format-2–9 row written before the
    /// position moved here from the `doc_seq` table — see `log::log_position_v9`; format 10's
    /// migration folds those in). Kept in this record because a write rewrites it anyway: a
    /// table of its own cost every commit one more B-tree page.
    pub(super) log_pos: Option<u64>,
}

impl DocMeta {
    pub(super) fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        for (i, v) in [
            self.next_seq,
            self.chunks,
            self.incremental_bytes,
            self.snapshot_bytes,
            // Log positions start at 1: 0 is "none".
            self.log_pos.unwrap_or(0),
        ]
        .iter()
        .enumerate()
        {
            out[i * 8..(i + 1) * 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes a row of 5 words, or of the first 4 (rows written before the log position moved
    /// here).
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let word = |i: usize| -> Result<u64, StoreError> {
            bytes
                .get(i * 8..(i + 1) * 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| StoreError::Corrupt("document metadata is truncated".into()))
        };
        Ok(DocMeta {
            next_seq: word(0)?,
            chunks: word(1)?,
            incremental_bytes: word(2)?,
            snapshot_bytes: word(3)?,
            log_pos: if bytes.len() >= 40 {
                Some(word(4)?).filter(|p| *p != 0)
            } else {
                None
            },
        })
    }
}

/// redb's page size (its default; the store never sets another).
const PAGE_BYTES: usize = 4096;

/// What a leaf page holding one pair spends besides the key and value: its 4-byte header, and
/// the pair's key end and value end (4 bytes each, for variable-width keys and values).
const LEAF_OVERHEAD: usize = 4 + 4 + 4;

/// The smallest piece, should a document id ever be long enough to leave less of a page.
const MIN_PIECE_BYTES: usize = 1024;

/// How many bytes of a sealed chunk go in one piece: as many as fill a leaf page beside the
/// piece's key. redb stores a value larger than a page alone on a run of pages rounded up to a
/// power of two (a 36 KB snapshot took 64 KiB); pieces of exactly a page fill their pages, and
/// only a chunk's last piece shares a leaf with others.
pub(super) fn piece_bytes(doc: &str, seq: u64) -> usize {
    use redb::Value;
    let key = <ChunkKey as Value>::as_bytes(&(doc, seq, 0));
    PAGE_BYTES
        .saturating_sub(LEAF_OVERHEAD + AsRef::<[u8]>::as_ref(&key).len())
        .max(MIN_PIECE_BYTES)
}

/// Stores the sealed chunk `seq` of `doc` as its pieces.
pub(super) fn put_chunk(
    chunks: &mut redb::Table<'_, ChunkKey, &'static [u8]>,
    doc: &str,
    seq: u64,
    sealed: &[u8],
) -> Result<(), StoreError> {
    if seq == TAIL_SEQ {
        return Err(StoreError::Corrupt(format!(
            "{doc} has used every chunk number"
        )));
    }
    for (piece, bytes) in sealed.chunks(piece_bytes(doc, seq)).enumerate() {
        let piece = u32::try_from(piece)
            .map_err(|_| StoreError::Corrupt(format!("a chunk of {doc} is too large")))?;
        chunks.insert((doc, seq, piece), bytes)?;
    }
    Ok(())
}

/// Removes every piece of `doc`'s chunks numbered in `seqs` (a compaction's superseded chunks,
/// a removed or rebuilt document's all). Its tail record is no chunk: `0..TAIL_SEQ` keeps it.
pub(super) fn remove_chunks(
    chunks: &mut redb::Table<'_, ChunkKey, &'static [u8]>,
    doc: &str,
    seqs: std::ops::Range<u64>,
) -> Result<(), StoreError> {
    let (first, end) = ((doc, seqs.start, 0u32), (doc, seqs.end, 0u32));
    let pieces: Vec<(u64, u32)> = chunks
        .range(first..end)?
        .map(|item| item.map(|(k, _)| (k.value().1, k.value().2)))
        .collect::<Result<_, _>>()?;
    for (seq, piece) in pieces {
        chunks.remove((doc, seq, piece))?;
    }
    Ok(())
}

/// Whether any chunk of `doc` is stored.
pub(super) fn has_chunks(
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    doc: &str,
) -> Result<bool, StoreError> {
    Ok(chunks
        .range((doc, 0, 0)..(doc, TAIL_SEQ, 0))?
        .next()
        .is_some())
}

/// Every chunk of `doc`, sealed as stored (its pieces joined), by sequence number.
fn sealed_chunks(
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    doc: &str,
) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    for item in chunks.range((doc, 0, 0)..(doc, TAIL_SEQ, 0))? {
        let (k, v) = item?;
        let (_, seq, piece) = k.value();
        match out.last_mut() {
            Some((last, bytes)) if *last == seq => bytes.extend_from_slice(v.value()),
            // A chunk whose first piece is missing would not open either: its tag covers
            // every byte.
            _ if piece != 0 => return Err(sealed_value_error(doc)),
            _ => out.push((seq, v.value().to_vec())),
        }
    }
    Ok(out)
}

pub(super) fn load_doc(
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    cipher: &Cipher,
    id: &DocumentId,
    actor: NodeId,
) -> Result<Option<Document>, StoreError> {
    let stored = stored_parts(chunks, cipher, id)?;
    if stored.parts.is_empty() {
        return Ok(None);
    }
    let mut doc = Document::load(id.clone(), &stored.parts.concat(), actor)?;
    for (hash, signature) in stored.signatures {
        doc.add_signature(hash, signature);
    }
    Ok(Some(doc))
}

/// A document's chunks as stored: each chunk's Automerge bytes, in order, and the signatures
/// kept beside them.
pub(crate) struct StoredParts {
    pub(crate) parts: Vec<Vec<u8>>,
    pub(crate) signatures: BTreeMap<[u8; 32], [u8; 64]>,
}

pub(super) fn stored_parts(
    chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
    cipher: &Cipher,
    id: &DocumentId,
) -> Result<StoredParts, StoreError> {
    let key = id.to_string();
    let mut stored = StoredParts {
        parts: Vec::new(),
        signatures: BTreeMap::new(),
    };
    for (seq, sealed) in sealed_chunks(chunks, &key)? {
        let plain = cipher
            .open(&chunk_place(&key, seq), &sealed)
            .ok_or_else(|| sealed_value_error(&key))?;
        let (sigs, automerge) = decode_chunk(&plain)?;
        stored.signatures.extend(sigs);
        if !automerge.is_empty() {
            stored.parts.push(automerge.to_vec());
        }
    }
    Ok(stored)
}

/// A chunk's plaintext: the signatures of the changes in it (`u32` LE count, then 32-byte hash
/// and 64-byte signature each), then the Automerge bytes. Keeping signatures in the row that is
/// written anyway costs no extra B-tree page per commit.
pub(super) fn encode_chunk(signatures: &[([u8; 32], [u8; 64])], automerge: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + signatures.len() * 96 + automerge.len());
    out.extend_from_slice(&(signatures.len() as u32).to_le_bytes());
    for (hash, signature) in signatures {
        out.extend_from_slice(hash);
        out.extend_from_slice(signature);
    }
    out.extend_from_slice(automerge);
    out
}

type ChunkSignatures = Vec<([u8; 32], [u8; 64])>;

pub(super) fn decode_chunk(plain: &[u8]) -> Result<(ChunkSignatures, &[u8]), StoreError> {
    let bad = || StoreError::Corrupt("a document chunk's signature list is truncated".into());
    let mut r = crate::codec::ByteReader::new(plain, 0);
    let count = r.u32_le().map_err(|_| bad())? as usize;
    let mut signatures = Vec::with_capacity(count.min(plain.len() / 96));
    for _ in 0..count {
        let hash: [u8; 32] = r
            .take(32)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        let signature: [u8; 64] = r
            .take(64)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        signatures.push((hash, signature));
    }
    Ok((signatures, &plain[r.position()..]))
}

/// The sequence number of a document's tail record in `CHUNKS` (format 10): its [`DocMeta`] under
/// `(document, TAIL_SEQ, 0)`, which sorts after every chunk of the document and before the next
/// document's. A commit appends its chunk right before it, so the record it rewrites usually sits
/// in the leaf the chunk dirtied anyway: the bookkeeping costs no table and no page of its own
/// (in `DOCS` it cost the row's leaf and branch, about 3 pages at 6,000 documents). No chunk
/// takes this number ([`put_chunk`] refuses it).
pub(super) const TAIL_SEQ: u64 = u64::MAX;

/// A tail record's length: [`DocMeta::encode`]'s five words.
const TAIL_BYTES: usize = 40;

impl DocMeta {
    /// `doc`'s row in `DOCS` as formats 1–9 kept it, or a new document's (migrations only).
    pub(super) fn read_row_v9(
        docs: &impl ReadableTable<&'static str, &'static [u8]>,
        doc: &str,
    ) -> Result<Self, StoreError> {
        match docs.get(doc)? {
            Some(v) => DocMeta::decode(v.value()),
            None => Ok(DocMeta::default()),
        }
    }

    /// `doc`'s tail record in `chunks`: `None` for a document the store does not hold, an error
    /// naming the document for a record that is not one (a damaged row never reads as a new
    /// document: its next chunk would overwrite a stored one).
    pub(super) fn read_tail(
        chunks: &impl ReadableTable<ChunkKey, &'static [u8]>,
        doc: &str,
    ) -> Result<Option<Self>, StoreError> {
        let Some(v) = chunks.get((doc, TAIL_SEQ, 0))? else {
            return Ok(None);
        };
        let bytes = v.value();
        let damaged = |why: &str| {
            StoreError::Corrupt(format!(
                "the bookkeeping record of {doc} is damaged ({why}): `omsyn check` lists it; \
                 restore the document from a peer"
            ))
        };
        if bytes.len() != TAIL_BYTES {
            return Err(damaged(&format!(
                "{} bytes where {TAIL_BYTES} belong",
                bytes.len()
            )));
        }
        let meta = DocMeta::decode(bytes)?;
        if meta.chunks > meta.next_seq || meta.next_seq == TAIL_SEQ {
            return Err(damaged("its chunk count exceeds its chunk numbers"));
        }
        Ok(Some(meta))
    }

    /// Writes `doc`'s tail record.
    pub(super) fn put_tail(
        &self,
        chunks: &mut redb::Table<'_, ChunkKey, &'static [u8]>,
        doc: &str,
    ) -> Result<(), StoreError> {
        chunks.insert((doc, TAIL_SEQ, 0), self.encode().as_slice())?;
        Ok(())
    }

    /// Removes `doc`'s tail record, returning what it held (a removed or rebuilt document).
    pub(super) fn take_tail(
        chunks: &mut redb::Table<'_, ChunkKey, &'static [u8]>,
        doc: &str,
    ) -> Result<Option<Self>, StoreError> {
        let meta = DocMeta::read_tail(&*chunks, doc);
        chunks.remove((doc, TAIL_SEQ, 0))?;
        meta
    }
}

/// Appends the document's unsaved `changes` as a chunk, or a snapshot of the whole document when
/// it is time to compact; signatures go along either way. A chunk's Automerge bytes are the
/// changes' raw bytes in causal order, as Automerge's incremental save writes them. `meta` is
/// the document's row, updated here; the caller writes it (once, with its log position).
pub(super) fn append_chunk(
    chunks: &mut redb::Table<'_, ChunkKey, &'static [u8]>,
    cipher: &Cipher,
    doc: &mut Document,
    unsaved: &[HashedChange],
    meta: &mut DocMeta,
) -> Result<(), StoreError> {
    // Joined slice by slice (collecting a byte iterator copied byte by byte: 1.4 % of a new
    // base's session thread).
    let changes: Vec<u8> = unsaved
        .iter()
        .map(|c| c.bytes.as_slice())
        .collect::<Vec<_>>()
        .concat();
    let new: Vec<[u8; 32]> = unsaved.iter().map(|c| c.hash).collect();
    let key = doc.id().to_string();
    let incremental = meta.incremental_bytes + changes.len() as u64;
    let compact = meta.chunks + 1 > MAX_CHUNKS_BEFORE_COMPACTION
        || (incremental > MIN_INCREMENTAL_BYTES_FOR_COMPACTION
            && incremental > meta.snapshot_bytes);
    if compact {
        let snapshot = doc.save();
        let seq = meta.next_seq;
        let plain = encode_chunk(&doc.all_signatures(), &snapshot);
        let sealed = cipher.seal(&chunk_place(&key, seq), &plain);
        put_chunk(chunks, &key, seq, &sealed)?;
        // Delete the superseded chunks in the same transaction: readers see either the old
        // chunk log or the new snapshot, never a mix.
        remove_chunks(chunks, &key, 0..seq)?;
        *meta = DocMeta {
            next_seq: seq + 1,
            chunks: 1,
            incremental_bytes: 0,
            snapshot_bytes: snapshot.len() as u64,
            log_pos: meta.log_pos,
        };
    } else {
        let plain = encode_chunk(&doc.signatures_of(&new), &changes);
        let sealed = cipher.seal(&chunk_place(&key, meta.next_seq), &plain);
        put_chunk(chunks, &key, meta.next_seq, &sealed)?;
        meta.next_seq += 1;
        meta.chunks += 1;
        meta.incremental_bytes = incremental;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;
    use crate::store::StoreKey;
    use crate::store::schema::CHUNKS;

    const DOC: &str = "journal/p-0123456789abcdef/2026-11";

    fn bytes(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + seed) as u8).collect()
    }

    fn database() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("chunks.redb")).unwrap();
        (dir, db)
    }

    fn write(db: &redb::Database, f: impl FnOnce(&mut redb::Table<'_, ChunkKey, &'static [u8]>)) {
        let tx = db.begin_write().unwrap();
        f(&mut tx.open_table(CHUNKS).unwrap());
        tx.commit().unwrap();
    }

    /// The numbers of `DOC`'s chunks as [`sealed_chunks`] reads them.
    fn chunk_numbers(table: &impl ReadableTable<ChunkKey, &'static [u8]>) -> Vec<u64> {
        let chunks = sealed_chunks(table, DOC).unwrap();
        chunks.iter().map(|c| c.0).collect()
    }

    #[test]
    fn chunks_of_every_size_around_a_piece_come_back_whole() {
        let (_dir, db) = database();
        let piece = piece_bytes(DOC, 0);
        let sizes: Vec<usize> = [1, 2, 3, 10]
            .iter()
            .flat_map(|n| [n * piece - 1, n * piece, n * piece + 1])
            .chain([1, 40])
            .collect();
        write(&db, |t| {
            for (seq, size) in sizes.iter().enumerate() {
                put_chunk(t, DOC, seq as u64, &bytes(*size, seq)).unwrap();
            }
            // Another document's chunks, on either side in key order, stay apart.
            put_chunk(
                t,
                "journal/p-0123456789abcdef/2026-10",
                0,
                &bytes(piece * 2, 99),
            )
            .unwrap();
            put_chunk(t, "journal/p-0123456789abcdef/2026-12", 0, &bytes(5, 98)).unwrap();
        });
        let read = db.begin_read().unwrap();
        let back = sealed_chunks(&read.open_table(CHUNKS).unwrap(), DOC).unwrap();
        let expected: Vec<(u64, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(seq, size)| (seq as u64, bytes(*size, seq)))
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn a_chunk_of_whole_pieces_fills_its_pages_to_the_byte() {
        let (_dir, db) = database();
        let piece = piece_bytes(DOC, 7);
        write(&db, |t| put_chunk(t, DOC, 7, &bytes(piece * 5, 0)).unwrap());
        let read = db.begin_read().unwrap();
        let stats = read.open_table(CHUNKS).unwrap().stats().unwrap();
        assert_eq!(stats.leaf_pages(), 5, "one page a piece");
        // Every leaf page full to the byte; what is unused is the branch page above them.
        assert_eq!(
            stats.stored_bytes() as usize + 5 * LEAF_OVERHEAD,
            5 * PAGE_BYTES,
            "{stats:?}"
        );
        assert!(
            stats.fragmented_bytes() < stats.branch_pages() * PAGE_BYTES as u64,
            "{stats:?}"
        );
    }

    #[test]
    fn a_tail_record_sits_after_its_documents_chunks_and_is_never_read_as_one() {
        let (_dir, db) = database();
        let next = "journal/p-0123456789abcdef/2026-12";
        let meta = DocMeta {
            next_seq: 3,
            chunks: 2,
            incremental_bytes: 10,
            snapshot_bytes: 7,
            log_pos: Some(9),
        };
        write(&db, |t| {
            put_chunk(t, DOC, 1, &bytes(5, 1)).unwrap();
            put_chunk(t, DOC, 2, &bytes(5, 2)).unwrap();
            meta.put_tail(t, DOC).unwrap();
            put_chunk(t, next, 0, &bytes(5, 3)).unwrap();
            assert!(put_chunk(t, DOC, TAIL_SEQ, &bytes(5, 4)).is_err());
        });
        let read = db.begin_read().unwrap();
        let table = read.open_table(CHUNKS).unwrap();
        let keys: Vec<(String, u64)> = table
            .iter()
            .unwrap()
            .map(|item| {
                let (k, _) = item.unwrap();
                (k.value().0.to_owned(), k.value().1)
            })
            .collect();
        let doc = DOC.to_owned();
        assert_eq!(
            keys,
            vec![
                (doc.clone(), 1),
                (doc.clone(), 2),
                (doc, TAIL_SEQ),
                (next.to_owned(), 0)
            ]
        );
        assert_eq!(chunk_numbers(&table), vec![1, 2]);
        assert_eq!(DocMeta::read_tail(&table, DOC).unwrap(), Some(meta));
        assert_eq!(DocMeta::read_tail(&table, next).unwrap(), None);
    }

    #[test]
    fn a_tail_record_that_is_not_one_is_an_error_naming_its_document() {
        let (_dir, db) = database();
        let impossible = DocMeta {
            next_seq: 1,
            chunks: 2,
            ..Default::default()
        };
        for bad in [vec![1u8; 39], vec![], impossible.encode().to_vec()] {
            write(&db, |t| {
                t.insert((DOC, TAIL_SEQ, 0), bad.as_slice()).unwrap();
            });
            let read = db.begin_read().unwrap();
            let err = DocMeta::read_tail(&read.open_table(CHUNKS).unwrap(), DOC)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("bookkeeping record of {DOC} is damaged")),
                "{err}"
            );
        }
    }

    #[test]
    fn removing_a_documents_chunks_leaves_no_piece_and_a_missing_piece_never_opens() {
        let (_dir, db) = database();
        let cipher = Cipher::new(&StoreKey::from_bytes([3; 32]));
        let piece = piece_bytes(DOC, 0);
        write(&db, |t| {
            for seq in 0..4 {
                let sealed = cipher.seal(
                    &chunk_place(DOC, seq),
                    &encode_chunk(&[], &bytes(piece * 2, 1)),
                );
                put_chunk(t, DOC, seq, &sealed).unwrap();
            }
            remove_chunks(t, DOC, 0..2).unwrap();
            // The middle piece of chunk 3: the chunk no longer opens.
            t.remove((DOC, 3u64, 1u32)).unwrap();
        });
        let id = DocumentId::parse(DOC).unwrap();
        let read = db.begin_read().unwrap();
        let table = read.open_table(CHUNKS).unwrap();
        assert_eq!(chunk_numbers(&table), vec![2, 3]);
        assert!(
            stored_parts(&table, &cipher, &id).is_err(),
            "chunk 3 lacks a piece"
        );
        drop((table, read));
        write(&db, |t| {
            t.remove((DOC, 3u64, 0u32)).unwrap();
            assert!(
                sealed_chunks(&*t, DOC).is_err(),
                "a chunk without its first piece"
            );
            remove_chunks(t, DOC, 0..u64::MAX).unwrap();
        });
        let read = db.begin_read().unwrap();
        assert!(read.open_table(CHUNKS).unwrap().is_empty().unwrap());
    }
}
