//! What a stored document says of itself in its chunks' headers, read without loading it: its
//! heads and its actors. Loading a document rebuilds every operation in its snapshot and applies
//! every change after it (a month's journal takes milliseconds); a first sync's offer needs only
//! the heads, and its answer — every change, for a peer that holds none — needs only the
//! snapshot loaded: the changes after it are sent as they are stored ([`Walked::changes`]).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::{DocError, Document, DocumentId, HashedChange};
use crate::codec::ByteReader;
use crate::identity::NodeId;

/// What a stored document's headers say: its heads, its actors, its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    /// Its heads, sorted (as [`super::Document::head_hashes`] gives them).
    pub heads: Vec<[u8; 32]>,
    /// The snapshot's actors (every one whose changes or operations it holds) and the authors
    /// of the changes after it (one may be listed twice).
    pub actors: Vec<Vec<u8>>,
    /// The stored Automerge bytes' size.
    pub bytes: usize,
}

/// Automerge's chunk types (its binary format).
const DOCUMENT_CHUNK: u8 = 0;
const CHANGE_CHUNK: u8 = 1;
const COMPRESSED_CHANGE_CHUNK: u8 = 2;

/// A compressed change inflating beyond this is not read here (the caller loads the document).
const MAX_CHANGE_BYTES: u64 = 16 * 1024 * 1024;

/// The outline of a document stored as `parts`: a snapshot (exactly one Automerge document
/// chunk; none before the document was first compacted), then incremental parts of change
/// chunks, as the store keeps them. Each chunk starts
/// with 4 magic bytes, a 4-byte checksum, its type and its data's length (unsigned LEB128); a
/// snapshot's data starts with its actors (a count, each a length and its bytes) and heads (a
/// count, 32 bytes each), a change's with its dependencies (the same) and its actor. The heads
/// are the snapshot's and the changes' hashes that no change depends on. `None` for anything
/// else (damage, a snapshot with more in its part, a change whose dependencies come later or
/// not at all): the caller loads the document then.
pub fn outline(parts: &[Vec<u8>]) -> Option<Outline> {
    walk(parts).map(|w| w.outline)
}

/// A stored document as its headers show it: its [`Outline`], and what [`Walked::changes`] needs
/// to give its every change with only the snapshot loaded.
#[derive(Debug)]
pub struct Walked<'a> {
    /// What the headers say.
    pub outline: Outline,
    snapshot: Option<&'a [u8]>,
    later: Vec<Later<'a>>,
}

/// A change stored after the snapshot: its hash and actor, and its chunk as stored.
#[derive(Debug)]
struct Later<'a> {
    hash: [u8; 32],
    actor: Vec<u8>,
    chunk: &'a [u8],
}

impl Later<'_> {
    /// Stored compressed (by Automerge's own incremental save, in stores written before changes
    /// were stored as they came): changes travel uncompressed, and a peer refuses a compressed
    /// one.
    fn compressed(&self) -> bool {
        self.chunk.get(8) == Some(&COMPRESSED_CHANGE_CHUNK)
    }
}

/// [`outline`], keeping the snapshot and the changes after it in the order they are stored.
pub fn walk(parts: &[Vec<u8>]) -> Option<Walked<'_>> {
    let (mut out, snapshot, increments) = match parts.split_first()? {
        (first, rest) if is_snapshot(first) => (snapshot_outline(first)?, Some(&first[..]), rest),
        // Not compacted yet: changes alone, from the first.
        _ => (Outline::default(), None, parts),
    };
    let mut later = Vec::new();
    let mut depended = BTreeSet::new();
    // The store appends changes in causal order, each once, none lacking a dependency; the
    // outline holds only where it can see that (a change built on the snapshot's heads or on a
    // change after it): otherwise it could name as a head a change Automerge would hold back,
    // and the peer would take us for holding what we lack. Anything else is loaded.
    let mut known: BTreeSet<[u8; 32]> = out.heads.iter().copied().collect();
    for part in increments {
        // The store keeps no empty part: one is damage.
        let chunks = super::salvage::split_chunks(part).ok()?;
        if chunks.is_empty() {
            return None;
        }
        for chunk in chunks {
            let change = change_header(chunk)?;
            if !change.deps.iter().all(|d| known.contains(d)) || !known.insert(change.hash) {
                return None;
            }
            depended.extend(change.deps);
            out.heads.push(change.hash);
            out.actors.push(change.actor.clone());
            later.push(Later {
                hash: change.hash,
                actor: change.actor,
                chunk,
            });
        }
        out.bytes += part.len();
    }
    out.heads.retain(|h| !depended.contains(h));
    out.heads.sort();
    out.heads.dedup();
    Some(Walked {
        outline: out,
        snapshot,
        later,
    })
}

impl Walked<'_> {
    /// Every change of the document, with its signature from `signatures`: what a peer that
    /// holds none of it is sent (its heads are the outline's). Only the snapshot is loaded (its
    /// changes live in its columns and must be rebuilt); the changes stored after it go out as
    /// their chunks are stored, where loading the whole document would apply each to the
    /// snapshot only to take it out again (on a peer base giving a new base its month, half of
    /// its processor time). `None` where a change after the snapshot is also in it (loading
    /// would drop it) or is stored compressed: the caller loads the document then. An error if
    /// the snapshot does not load.
    pub fn changes(
        self,
        id: &DocumentId,
        signatures: &BTreeMap<[u8; 32], [u8; 64]>,
        actor: NodeId,
    ) -> Result<Option<Vec<HashedChange>>, DocError> {
        if self.later.iter().any(Later::compressed) {
            return Ok(None);
        }
        let mut changes = match self.snapshot {
            Some(bytes) => {
                let mut snapshot = Document::load(id.clone(), bytes, actor)?;
                if self.later.iter().any(|c| snapshot.has_change(&c.hash)) {
                    return Ok(None);
                }
                for (hash, signature) in signatures {
                    snapshot.add_signature(*hash, *signature);
                }
                snapshot.hashed_changes_since(&[])
            }
            None => Vec::new(),
        };
        changes.extend(self.later.into_iter().map(|c| HashedChange {
            hash: c.hash,
            actor: c.actor,
            bytes: c.chunk.to_vec(),
            signature: signatures.get(&c.hash).copied(),
        }));
        Ok(Some(changes))
    }
}

/// Whether a stored part starts with a document chunk (its type follows the magic bytes and the
/// checksum).
fn is_snapshot(part: &[u8]) -> bool {
    part.get(8) == Some(&DOCUMENT_CHUNK)
}

/// The heads and actors of one document chunk.
fn snapshot_outline(bytes: &[u8]) -> Option<Outline> {
    let chunks = super::salvage::split_chunks(bytes).ok()?;
    let [chunk] = chunks.as_slice() else {
        return None;
    };
    let mut r = ByteReader::new(chunk, 8);
    if r.u8().ok()? != DOCUMENT_CHUNK {
        return None;
    }
    r.varint().ok()??;
    let actors = (0..count(&mut r)?)
        .map(|_| actor(&mut r))
        .collect::<Option<Vec<_>>>()?;
    let heads = hashes(&mut r)?;
    Some(Outline {
        heads,
        actors,
        bytes: bytes.len(),
    })
}

/// What a change chunk's header says.
struct ChangeHeader {
    hash: [u8; 32],
    deps: Vec<[u8; 32]>,
    actor: Vec<u8>,
}

/// A change chunk's hash (SHA-256 of its type, its data's length and its data, the data
/// inflated first if compressed — Automerge's change hash), dependencies and actor.
fn change_header(chunk: &[u8]) -> Option<ChangeHeader> {
    let mut r = ByteReader::new(chunk, 8);
    let kind = r.u8().ok()?;
    r.varint().ok()??;
    let stored = &chunk[r.position()..];
    let data = match kind {
        CHANGE_CHUNK => std::borrow::Cow::Borrowed(stored),
        COMPRESSED_CHANGE_CHUNK => std::borrow::Cow::Owned(inflate(stored)?),
        _ => return None,
    };
    let mut header = vec![CHANGE_CHUNK];
    crate::codec::put_varint(&mut header, data.len() as u64);
    let hash: [u8; 32] = Sha256::new()
        .chain_update(&header)
        .chain_update(&data)
        .finalize()
        .into();
    // The chunk's checksum is its hash's first bytes: a chunk that does not match is damage the
    // peer would refuse; loading refuses it too, with the document named.
    if chunk.get(4..8) != Some(&hash[..4]) {
        return None;
    }
    let mut r = ByteReader::new(&data, 0);
    let deps = hashes(&mut r)?;
    let actor = actor(&mut r)?;
    Some(ChangeHeader { hash, deps, actor })
}

fn inflate(compressed: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(compressed)
        .take(MAX_CHANGE_BYTES + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_CHANGE_BYTES).then_some(out)
}

/// A count, then that many 32-byte hashes.
fn hashes(r: &mut ByteReader<'_>) -> Option<Vec<[u8; 32]>> {
    (0..count(r)?)
        .map(|_| r.take(32).ok()?.try_into().ok())
        .collect()
}

/// An actor: its length, then its bytes.
fn actor(r: &mut ByteReader<'_>) -> Option<Vec<u8>> {
    let len = usize::try_from(r.varint().ok()??).ok()?;
    Some(r.take(len).ok()?.to_vec())
}

/// A count in a header, bounded by what the bytes left could hold (a damaged header must not
/// make a huge allocation).
fn count(r: &mut ByteReader<'_>) -> Option<usize> {
    usize::try_from(r.varint().ok()??)
        .ok()
        .filter(|n| *n <= r.remaining())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT};

    use super::*;

    fn writer(byte: u8) -> Automerge {
        Automerge::new().with_actor(ActorId::from(&[byte; 32][..]))
    }

    fn write(am: &mut Automerge, key: &str, len: usize) {
        let mut tx = am.transaction();
        tx.put(ROOT, key, "x".repeat(len)).unwrap();
        tx.commit();
    }

    /// A document two actors wrote apart (two heads).
    fn two_writers() -> Automerge {
        let (mut a, mut b) = (writer(1), writer(2));
        write(&mut a, "from-a", 300);
        write(&mut b, "from-b", 300);
        a.merge(&mut b).unwrap();
        a
    }

    fn sorted_heads(am: &Automerge) -> Vec<[u8; 32]> {
        let mut heads: Vec<[u8; 32]> = am.get_heads().iter().map(|h| h.0).collect();
        heads.sort();
        heads
    }

    /// The changes made since `heads`, as the store appends them: raw bytes in causal order
    /// (`compressed`: as Automerge sends them, a large change compressed — a peer may).
    fn increment(am: &Automerge, heads: &[automerge::ChangeHash], compressed: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for mut change in am.get_changes(heads) {
            match compressed {
                true => out.extend_from_slice(&change.bytes()),
                false => out.extend_from_slice(change.raw_bytes()),
            }
        }
        out
    }

    #[test]
    fn a_snapshots_outline_names_the_heads_and_actors_loading_it_finds() {
        let am = two_writers();
        let saved = am.save();
        let outline = outline(std::slice::from_ref(&saved)).expect("a snapshot");
        assert_eq!(sorted_heads(&am).len(), 2);
        assert_eq!(outline.heads, sorted_heads(&am));
        assert_eq!(outline.actors, vec![vec![1u8; 32], vec![2u8; 32]]);
        assert_eq!(outline.bytes, saved.len());
    }

    #[test]
    fn changes_stored_after_the_snapshot_move_the_heads_as_loading_them_does() {
        let mut am = two_writers();
        let snapshot = am.save();
        let at_snapshot = am.get_heads();
        // One actor goes on from both heads (small: stored plain; large: compressed), another
        // from an older state: two heads again, one of them the snapshot's own.
        let mut other = writer(3);
        other.merge(&mut am.clone()).unwrap();
        write(&mut am, "small", 10);
        write(&mut am, "large", 2000);
        let first = increment(&am, &at_snapshot, true);
        let kinds: Vec<u8> = crate::docs::salvage::split_chunks(&first)
            .unwrap()
            .iter()
            .map(|c| c[8])
            .collect();
        assert_eq!(kinds, [CHANGE_CHUNK, COMPRESSED_CHANGE_CHUNK]);
        let before_merge = am.get_heads();
        write(&mut other, "apart", 10);
        am.merge(&mut other).unwrap();
        let second = increment(&am, &before_merge, false);
        let parts = vec![snapshot, first, second];
        let outline = outline(&parts).expect("a snapshot and changes");
        assert_eq!(outline.heads, sorted_heads(&am));
        assert_eq!(outline.heads.len(), 2);
        assert!(outline.actors.contains(&vec![3u8; 32]));
        let loaded = Automerge::load(&parts.concat()).unwrap();
        assert_eq!(outline.heads, sorted_heads(&loaded));
    }

    #[test]
    fn damaged_bytes_or_changes_missing_what_they_build_on_have_no_outline() {
        let mut am = two_writers();
        let saved = am.save();
        let heads = am.get_heads();
        write(&mut am, "later", 10);
        let change = increment(&am, &heads, false);
        for damaged in [
            &saved[..saved.len() - 1],
            &saved[..20],
            &saved[1..],
            &[][..],
        ] {
            assert_eq!(outline(&[damaged.to_vec()]), None);
        }
        assert_eq!(
            outline(std::slice::from_ref(&change)),
            None,
            "a change without the snapshot it builds on"
        );
        assert_eq!(outline(&[]), None);
        let torn = change[..change.len() - 3].to_vec();
        assert_eq!(outline(&[saved.clone(), torn]), None, "a torn change");
        let mut miscounted = change.clone();
        miscounted[4] ^= 1;
        assert_eq!(
            outline(&[saved.clone(), miscounted]),
            None,
            "a checksum that is not its hash's"
        );
        assert!(outline(&[saved.clone(), change.clone()]).is_some());
        // A change stored without the one it builds on, or twice: Automerge would hold the first
        // back, and a duplicate says nothing of the heads the outline can trust.
        let after_change = am.get_heads();
        write(&mut am, "latest", 10);
        let orphan = increment(&am, &after_change, false);
        assert_eq!(
            outline(&[saved.clone(), orphan]),
            None,
            "a dependency missing"
        );
        assert_eq!(
            outline(&[saved, change.clone(), change]),
            None,
            "a change twice"
        );
    }

    #[test]
    fn a_change_built_on_an_older_state_than_the_snapshots_heads_is_left_to_loading() {
        let mut am = two_writers();
        let mut older = am.clone();
        write(&mut am, "newer", 10);
        let snapshot = am.save();
        let heads = older.get_heads();
        write(&mut older, "apart", 10);
        let apart = increment(&older, &heads, false);
        assert_eq!(outline(&[snapshot, apart]), None);
    }

    /// The heads and every change of a document stored as `parts` (see [`Walked::changes`]), with
    /// a made-up signature for each change.
    fn all_of(parts: &[Vec<u8>]) -> Option<(Vec<[u8; 32]>, Vec<HashedChange>)> {
        let loaded = Automerge::load(&parts.concat()).unwrap();
        let signatures = signatures_of(&loaded);
        let id = DocumentId::parse("journal/p-00000000000000a1/2026-11").unwrap();
        let me = crate::identity::NodeKey::from_secret_bytes([9; 32]).id();
        let walked = walk(parts)?;
        let heads = walked.outline.heads.clone();
        walked
            .changes(&id, &signatures, me)
            .unwrap()
            .map(|c| (heads, c))
    }

    fn signatures_of(am: &Automerge) -> BTreeMap<[u8; 32], [u8; 64]> {
        am.get_changes(&[])
            .iter()
            .enumerate()
            .map(|(i, c)| (c.hash().0, [i as u8; 64]))
            .collect()
    }

    /// What a peer that holds nothing has once it applies `changes` as they came.
    fn applied(changes: &[HashedChange]) -> Automerge {
        let mut peer = Automerge::new();
        for change in changes {
            let parsed = automerge::Change::from_bytes(change.bytes.clone()).unwrap();
            assert_eq!(
                parsed.hash().0,
                change.hash,
                "a change's bytes are its hash's"
            );
            peer.apply_changes([parsed]).unwrap();
        }
        peer
    }

    #[test]
    fn every_change_of_a_stored_document_is_what_loading_it_gives_with_the_later_ones_as_stored() {
        let mut am = two_writers();
        let snapshot = am.save();
        let at_snapshot = am.get_heads();
        write(&mut am, "small", 10);
        write(&mut am, "large", 2000);
        // Stored compressed (Automerge compresses a large change), the changes would not travel
        // as stored: a peer refuses a compressed change. The document is loaded then.
        let compressed = increment(&am, &at_snapshot, true);
        assert_eq!(all_of(&[snapshot.clone(), compressed]), None);
        let later = increment(&am, &at_snapshot, false);
        let parts = vec![snapshot, later.clone()];
        let (heads, changes) = all_of(&parts).expect("a snapshot and changes");
        assert_eq!(heads, sorted_heads(&am));
        let loaded = Automerge::load(&parts.concat()).unwrap();
        let want: BTreeSet<[u8; 32]> = loaded.get_changes(&[]).iter().map(|c| c.hash().0).collect();
        let got: BTreeSet<[u8; 32]> = changes.iter().map(|c| c.hash).collect();
        assert_eq!(got, want);
        assert_eq!(changes.len(), want.len(), "each change once");
        let signatures = signatures_of(&loaded);
        for change in &changes {
            assert_eq!(change.signature, signatures.get(&change.hash).copied());
        }
        // The changes after the snapshot go as stored.
        let tail: Vec<u8> = changes[changes.len() - 2..]
            .iter()
            .flat_map(|c| c.bytes.clone())
            .collect();
        assert_eq!(tail, later);
        assert_eq!(sorted_heads(&applied(&changes)), sorted_heads(&am));
    }

    #[test]
    fn a_document_not_yet_compacted_is_sent_as_its_changes_are_stored() {
        let mut am = two_writers();
        write(&mut am, "later", 10);
        let parts = vec![increment(&am, &[], false)];
        let (heads, changes) = all_of(&parts).expect("changes alone");
        assert_eq!(heads, sorted_heads(&am));
        assert_eq!(changes.len(), 3);
        assert_eq!(sorted_heads(&applied(&changes)), sorted_heads(&am));
        assert_eq!(outline(&parts).map(|o| o.heads), Some(sorted_heads(&am)));
    }

    #[test]
    fn a_change_stored_again_after_a_snapshot_that_holds_it_is_left_to_loading() {
        let mut am = writer(1);
        write(&mut am, "first", 10);
        let root = increment(&am, &[], false);
        write(&mut am, "second", 10);
        // The root change again after the snapshot: its dependencies (none) are met, so only
        // the loaded snapshot shows it is held already.
        assert_eq!(all_of(&[am.save(), root]), None);
    }
}
