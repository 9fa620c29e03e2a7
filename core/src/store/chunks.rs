//! The chunk log: each document is stored as an Automerge snapshot followed by incremental
//! chunks, each sealed with the store key and carrying the signatures of the changes in it, and
//! compacted into one snapshot once the increments outgrow it. A write appends only its new
//! changes, so it costs O(change), not O(document).

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};

use super::crypt::{Cipher, chunk_place, sealed_value_error};
use super::error::StoreError;
use super::schema::{CHUNKS, DOCS};
use crate::docs::{Document, DocumentId, HashedChange};
use crate::identity::NodeId;

/// Compact a document after this many incremental chunks.
const MAX_CHUNKS_BEFORE_COMPACTION: u64 = 64;

/// Or once its increments exceed this many bytes and the snapshot's size.
const MIN_INCREMENTAL_BYTES_FOR_COMPACTION: u64 = 64 * 1024;

/// Bookkeeping for one document's chunk log, and its position in the change log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct DocMeta {
    pub(super) next_seq: u64,
    pub(super) chunks: u64,
    pub(super) incremental_bytes: u64,
    pub(super) snapshot_bytes: u64,
    /// Its position in `LOG` (`None`: not entered yet, or a row written before the position
    /// moved here from the `doc_seq` table — see [`log_position`]). Kept in this row because a
    /// write rewrites it anyway: a table of its own cost every commit one more B-tree page.
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

pub(super) fn load_doc(
    chunks: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
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
pub(super) struct StoredParts {
    pub(super) parts: Vec<Vec<u8>>,
    pub(super) signatures: BTreeMap<[u8; 32], [u8; 64]>,
}

pub(super) fn stored_parts(
    chunks: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    cipher: &Cipher,
    id: &DocumentId,
) -> Result<StoredParts, StoreError> {
    let key = id.to_string();
    let mut stored = StoredParts {
        parts: Vec::new(),
        signatures: BTreeMap::new(),
    };
    for item in chunks.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))? {
        let (k, v) = item?;
        let plain = cipher
            .open(&chunk_place(&key, k.value().1), v.value())
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

/// Appends the document's unsaved `changes` as a chunk, or a snapshot of the whole document when
/// it is time to compact; signatures go along either way. A chunk's Automerge bytes are the
/// changes' raw bytes in causal order, as Automerge's incremental save writes them.
pub(super) fn append_chunk(
    tx: &WriteTransaction,
    cipher: &Cipher,
    doc: &mut Document,
    unsaved: &[HashedChange],
) -> Result<(), StoreError> {
    let changes: Vec<u8> = unsaved
        .iter()
        .flat_map(|c| c.bytes.iter().copied())
        .collect();
    let new: Vec<[u8; 32]> = unsaved.iter().map(|c| c.hash).collect();
    let key = doc.id().to_string();
    let mut docs = tx.open_table(DOCS)?;
    let mut chunks = tx.open_table(CHUNKS)?;
    let mut meta = match docs.get(key.as_str())? {
        Some(v) => DocMeta::decode(v.value())?,
        None => DocMeta::default(),
    };
    let incremental = meta.incremental_bytes + changes.len() as u64;
    let compact = meta.chunks + 1 > MAX_CHUNKS_BEFORE_COMPACTION
        || (incremental > MIN_INCREMENTAL_BYTES_FOR_COMPACTION
            && incremental > meta.snapshot_bytes);
    if compact {
        let snapshot = doc.save();
        let seq = meta.next_seq;
        let plain = encode_chunk(&doc.all_signatures(), &snapshot);
        let sealed = cipher.seal(&chunk_place(&key, seq), &plain);
        chunks.insert((key.as_str(), seq), sealed.as_slice())?;
        // Delete the superseded chunks in the same transaction: readers see either the old
        // chunk log or the new snapshot, never a mix.
        let old: Vec<u64> = chunks
            .range((key.as_str(), 0)..(key.as_str(), seq))?
            .map(|item| item.map(|(k, _)| k.value().1))
            .collect::<Result<_, _>>()?;
        for s in old {
            chunks.remove((key.as_str(), s))?;
        }
        meta = DocMeta {
            next_seq: seq + 1,
            chunks: 1,
            incremental_bytes: 0,
            snapshot_bytes: snapshot.len() as u64,
            log_pos: meta.log_pos,
        };
    } else {
        let plain = encode_chunk(&doc.signatures_of(&new), &changes);
        let sealed = cipher.seal(&chunk_place(&key, meta.next_seq), &plain);
        chunks.insert((key.as_str(), meta.next_seq), sealed.as_slice())?;
        meta.next_seq += 1;
        meta.chunks += 1;
        meta.incremental_bytes = incremental;
    }
    docs.insert(key.as_str(), meta.encode().as_slice())?;
    Ok(())
}
