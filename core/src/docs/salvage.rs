//! Rebuilding a stored document that no longer loads, keeping every change it held.
//!
//! Until issue #12 was fixed, two writers of one node could each build change number N of the
//! node's actor on the same state of a document and both commit it. Automerge then refuses the
//! whole document ("duplicate seq N"), and with it every entry it holds. [`salvage`] replays the
//! stored changes in the order they were committed: every change that fits is kept as it was
//! (hash and signature unchanged); a change of the local node's own that no longer fits — it
//! collides with an earlier change of the same number, or builds on one that did — is re-made
//! with the same operations, message and time as a new change, which the store then signs. A
//! change of another node that does not fit cannot be re-signed: it is set aside, raw, for the
//! caller to keep and report.

use std::collections::{BTreeMap, HashMap};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ObjId, ROOT, ReadDoc};

use super::{DocError, Document, DocumentId};
use crate::codec::leb128;
use crate::identity::NodeId;

/// What [`salvage`] made of a document's stored bytes.
#[derive(Debug)]
pub struct Salvaged {
    /// Every change that fitted, plus the re-made ones; nothing of it is marked saved (the store
    /// writes it whole).
    pub doc: Document,
    /// The local node's changes that were re-made.
    pub remade: Vec<Remade>,
    /// Other nodes' changes that do not fit, as raw bytes (they cannot be re-signed here).
    pub set_aside: Vec<Vec<u8>>,
}

/// One change made again: its old hash and the new one.
pub type Remade = ([u8; 32], [u8; 32]);

/// Rebuilds document `id` from its stored Automerge bytes (`parts`, in commit order: a
/// snapshot and incremental chunks), with the signatures stored beside them, for `actor` (the
/// local node). Fails only if the bytes are not Automerge at all.
pub fn salvage(
    id: DocumentId,
    parts: &[Vec<u8>],
    signatures: &BTreeMap<[u8; 32], [u8; 64]>,
    actor: NodeId,
) -> Result<Salvaged, DocError> {
    let corrupt = |reason: String| DocError::Corrupt {
        doc: id.to_string(),
        reason,
    };
    let mut stored = Vec::new();
    for part in parts {
        stored.extend(changes_of(part).map_err(corrupt)?);
    }
    let own = ActorId::from(&actor.as_bytes()[..]);
    let mut am = Automerge::new();
    let mut misfits = Vec::new();
    for change in stored {
        let hash = change.hash();
        // A change that collides or waits for a missing dependency is not applied here.
        let applied =
            am.apply_changes([change.clone()]).is_ok() && am.get_change_by_hash(&hash).is_some();
        if !applied {
            misfits.push(change);
        }
    }
    // A change queued for a dependency that a later one supplied did fit after all.
    misfits.retain(|change| am.get_change_by_hash(&change.hash()).is_none());
    // Start again from what fitted: nothing half-queued inside Automerge survives.
    let fitted = am.get_changes(&[]);
    let mut am = Automerge::new().with_actor(own.clone());
    am.apply_changes(fitted)
        .map_err(|e| corrupt(format!("replaying its changes: {e}")))?;
    let mut remade = Vec::new();
    let mut set_aside = Vec::new();
    let mut objects = HashMap::new();
    for change in misfits {
        if change.actor_id() != &own {
            set_aside.push(change.raw_bytes().to_vec());
            continue;
        }
        match remake(&mut am, &change, &mut objects) {
            Some(new) => remade.push((change.hash().0, new.0)),
            None => set_aside.push(change.raw_bytes().to_vec()),
        }
    }
    let mut doc = Document {
        id,
        am,
        saved: Vec::new(),
        signatures: BTreeMap::new(),
        received: None,
    };
    for (hash, signature) in signatures {
        if doc.has_change(hash) {
            doc.add_signature(*hash, *signature);
        }
    }
    Ok(Salvaged {
        doc,
        remade,
        set_aside,
    })
}

/// The changes in one stored part: a document chunk (a snapshot) or change chunks.
fn changes_of(part: &[u8]) -> Result<Vec<Change>, String> {
    let mut out = Vec::new();
    for chunk in split_chunks(part)? {
        if chunk.get(8) == Some(&0) {
            let doc = Automerge::load(chunk).map_err(|e| format!("a snapshot: {e}"))?;
            out.extend(doc.get_changes(&[]));
        } else {
            out.push(Change::from_bytes(chunk.to_vec()).map_err(|e| format!("a change: {e}"))?);
        }
    }
    Ok(out)
}

/// Splits concatenated Automerge chunks at their headers: 4 magic bytes, a 4-byte checksum, a
/// chunk type byte and the data's length as unsigned LEB128 (Automerge's binary format).
pub(super) fn split_chunks(mut bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.get(..4) != Some(&MAGIC[..]) {
            return Err("a stored chunk does not start with Automerge's magic bytes".into());
        }
        let (len, len_bytes) = leb128(bytes.get(9..).unwrap_or_default())
            .ok_or("a stored chunk's length is malformed")?;
        let end = 9usize
            .checked_add(len_bytes)
            .and_then(|n| n.checked_add(usize::try_from(len).ok()?))
            .filter(|end| *end <= bytes.len())
            .ok_or("a stored chunk is truncated")?;
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(out)
}

/// Makes `change`'s operations again as a new change of the document's actor, with the same
/// message and time. `objects` maps objects that re-made changes created (by their old id) to
/// their new ids. `None` if the change holds an operation this replay does not make (documents
/// are flat maps of strings and, in plans, maps in maps; nothing else is ever written).
fn remake(
    am: &mut Automerge,
    change: &Change,
    objects: &mut HashMap<String, ObjId>,
) -> Option<ChangeHash> {
    let expanded = change.decode();
    let mut options = CommitOptions::default().with_time(expanded.time);
    if let Some(message) = &expanded.message {
        options = options.with_message(message.clone());
    }
    let actor = expanded.actor_id.clone();
    let start = expanded.start_op.get();
    // Objects made by kept changes are found by their id; those made by re-made ones are mapped.
    for op in &expanded.operations {
        if let ObjectId::Id(id) = &op.obj {
            let text = id.to_string();
            if !objects.contains_key(&text)
                && let Ok(obj) = am.import_obj(&text)
            {
                objects.insert(text, obj);
            }
        }
    }
    let done = am.transact_with(
        |_| options,
        |tx| {
            for (i, op) in expanded.operations.iter().enumerate() {
                let old_id = format!("{}@{}", start + i as u64, actor);
                replay(tx, op, old_id, objects).ok_or(())?;
            }
            Ok::<_, ()>(())
        },
    );
    done.ok().and_then(|done| done.hash)
}

fn replay(
    tx: &mut Transaction<'_>,
    op: &automerge::legacy::Op,
    old_id: String,
    objects: &mut HashMap<String, ObjId>,
) -> Option<()> {
    let obj = match &op.obj {
        ObjectId::Root => ROOT,
        ObjectId::Id(id) => objects.get(&id.to_string())?.clone(),
    };
    let Key::Map(key) = &op.key else {
        return None;
    };
    match &op.action {
        OpType::Put(value) => tx.put(&obj, key.as_str(), value.clone()).ok(),
        OpType::Make(kind) => {
            let new = tx.put_object(&obj, key.as_str(), *kind).ok()?;
            objects.insert(old_id, new);
            Some(())
        }
        OpType::Delete => tx.delete(&obj, key.as_str()).ok(),
        _ => None,
    }
}
