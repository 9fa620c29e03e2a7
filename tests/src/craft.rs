//! A modified client: Automerge changes made by hand with a real enrolled node's key, as a
//! patched app on a stolen phone or a compromised home tablet would make them — with whatever
//! predecessors, dependencies and content the attacker likes — and planted in the attacker's own
//! store past its own checks, so its honest sync code (or its export) delivers them.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;

use automerge::legacy::{self, Key, ObjectId, OpType, SortedVec};
use automerge::{ActorId, Change, ChangeHash, ScalarValue};
use omsyn_core::docs::DocumentId;
use omsyn_core::pipeline::{self, DeriveContext};
use omsyn_core::{Repo, Timestamp};

/// A crafted change: its hash and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crafted {
    /// The change hash.
    pub hash: [u8; 32],
    /// The change chunk.
    pub bytes: Vec<u8>,
}

/// What a crafted change puts at the document's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The root key.
    pub key: String,
    /// The string value.
    pub value: String,
    /// The operations it claims to overwrite (`counter@actor`); empty: none.
    pub pred: Vec<String>,
}

impl Put {
    /// A put that claims to overwrite nothing.
    pub fn fresh(key: &str, value: &str) -> Put {
        Put {
            key: key.into(),
            value: value.into(),
            pred: Vec::new(),
        }
    }
}

/// A change by `author` to `doc` as `holder` holds it, made of `puts`, built on `deps` (the
/// heads the attacker claims to have seen; `None`: everything `holder` holds), stamped as
/// entered `at`.
pub fn change(
    holder: &Repo,
    doc: &DocumentId,
    author: &Repo,
    puts: &[Put],
    deps: Option<Vec<[u8; 32]>>,
    at: Timestamp,
) -> Crafted {
    let held = history(holder, doc);
    let mut deps = deps.unwrap_or_else(|| heads(&held));
    let actor = ActorId::from(&author.id().as_bytes()[..]);
    // The author's own chain, as every receiver demands: the next number, built on its last.
    let last_own = held
        .iter()
        .filter(|c| c.actor_id() == &actor)
        .max_by_key(|c| c.seq());
    if let Some(last) = last_own
        && !deps.contains(&last.hash().0)
    {
        deps.push(last.hash().0);
    }
    let seq = last_own.map_or(0, |c| c.seq()) + 1;
    let past = ancestors(&held, &deps);
    let start_op = past.iter().map(|c| c.max_op()).max().unwrap_or(0) + 1;
    let message =
        serde_json::json!({ "author": author.author().expect("own author"), "entered_at": at })
            .to_string();
    let expanded = legacy::Change {
        operations: puts.iter().map(op).collect(),
        actor_id: actor,
        hash: None,
        seq,
        start_op: NonZeroU64::new(start_op).expect("start_op is at least 1"),
        time: at.unix_millis() / 1000,
        message: Some(message),
        deps: deps.iter().map(|d| ChangeHash(*d)).collect(),
        extra_bytes: Vec::new(),
        author: None,
    };
    let change = Change::from(expanded);
    Crafted {
        hash: change.hash().0,
        bytes: change.raw_bytes().to_vec(),
    }
}

fn op(put: &Put) -> legacy::Op {
    let pred: Vec<legacy::OpId> = put
        .pred
        .iter()
        .map(|p| {
            let (counter, actor) = p.split_once('@').expect("pred is counter@actor");
            legacy::OpId(
                counter.parse().expect("pred counter"),
                ActorId::from(hex::decode(actor).expect("pred actor")),
            )
        })
        .collect();
    legacy::Op {
        action: OpType::Put(ScalarValue::Str(put.value.as_str().into())),
        obj: ObjectId::Root,
        key: Key::Map(put.key.as_str().into()),
        pred: SortedVec::from(pred),
        insert: false,
    }
}

/// Every change `holder` holds of `doc`.
pub fn history(holder: &Repo, doc: &DocumentId) -> Vec<Change> {
    holder
        .store()
        .with_doc(doc, |d| d.hashed_changes_since(&[]))
        .expect("the document loads")
        .unwrap_or_default()
        .into_iter()
        .map(|c| Change::from_bytes(c.bytes).expect("a held change parses"))
        .collect()
}

/// Every change `holder` holds of `doc`, with its author's signature: what a peer holding
/// them sends.
pub fn signed_history(
    holder: &Repo,
    doc: &DocumentId,
) -> Vec<omsyn_core::sync::wire::SignedChange> {
    holder
        .store()
        .with_doc(doc, |d| d.hashed_changes_since(&[]))
        .expect("the document reads")
        .unwrap_or_default()
        .into_iter()
        .map(|c| omsyn_core::sync::wire::SignedChange {
            signature: c.signature.expect("a held change is signed"),
            bytes: c.bytes,
        })
        .collect()
}

/// The heads of `changes`.
pub fn heads(changes: &[Change]) -> Vec<[u8; 32]> {
    let depended: BTreeSet<[u8; 32]> = changes
        .iter()
        .flat_map(|c| c.deps().iter().map(|d| d.0))
        .collect();
    changes
        .iter()
        .map(|c| c.hash().0)
        .filter(|h| !depended.contains(h))
        .collect()
}

/// The heads `holder` would have of `doc` had it never received the change `hash` (nor any
/// built on it): what a node that did not see that change would build on.
pub fn heads_without(holder: &Repo, doc: &DocumentId, hash: [u8; 32]) -> Vec<[u8; 32]> {
    let all = history(holder, doc);
    let mut excluded = BTreeSet::from([hash]);
    // History is in causal order: a change built on an excluded one comes after it.
    let kept: Vec<Change> = all
        .into_iter()
        .filter(|c| {
            let tainted =
                excluded.contains(&c.hash().0) || c.deps().iter().any(|d| excluded.contains(&d.0));
            if tainted {
                excluded.insert(c.hash().0);
            }
            !tainted
        })
        .collect();
    heads(&kept)
}

/// The hash of the change that put root `key` of `doc` first, as `holder` holds it.
pub fn change_putting(holder: &Repo, doc: &DocumentId, key: &str) -> Option<[u8; 32]> {
    history(holder, doc)
        .into_iter()
        .find(|c| {
            c.decode()
                .operations
                .iter()
                .any(|op| op.key == Key::Map(key.into()))
        })
        .map(|c| c.hash().0)
}

/// The changes in the history of `deps` (themselves included).
fn ancestors<'a>(changes: &'a [Change], deps: &[[u8; 32]]) -> Vec<&'a Change> {
    let by_hash: BTreeMap<[u8; 32], &Change> = changes.iter().map(|c| (c.hash().0, c)).collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<[u8; 32]> = deps.to_vec();
    while let Some(h) = todo.pop() {
        if !seen.insert(h) {
            continue;
        }
        if let Some(c) = by_hash.get(&h) {
            todo.extend(c.deps().iter().map(|d| d.0));
        }
    }
    seen.iter()
        .filter_map(|h| by_hash.get(h).copied())
        .collect()
}

/// The op id (`counter@actor`) of the value `holder` has at root `key` of `doc`: what an honest
/// overwrite would name as its predecessor.
pub fn value_op(holder: &Repo, doc: &DocumentId, key: &str) -> Option<String> {
    for change in history(holder, doc) {
        for (i, op) in change.decode().operations.iter().enumerate() {
            if op.key == Key::Map(key.into()) {
                return Some(format!(
                    "{}@{}",
                    change.start_op().get() + i as u64,
                    change.actor_id()
                ));
            }
        }
    }
    None
}

/// Stores `change` in the attacker's own node past its own checks (a patched app): its store
/// signs it at commit like any change of its own, so its sync and its export carry it signed.
pub fn plant(attacker: &Repo, doc: &DocumentId, change: &Crafted) {
    let store = attacker.store();
    let mut batch = store.write().expect("write");
    batch
        .doc(doc)
        .expect("document")
        .apply_raw_changes(vec![change.bytes.clone()])
        .expect("the attacker's own store takes anything");
    pipeline::commit(batch, &DeriveContext::of(store, None)).expect("commit");
}

/// A change chunk by `author` whose columns hold one run of `n` equal operations (a put of
/// null at root key `a`): a few dozen bytes however large `n`, which Automerge's parser
/// expands one operation at a time. Signed by `author`'s key, as a patched app would.
pub fn run_of_operations(
    author: &omsyn_core::NodeKey,
    n: u64,
) -> omsyn_core::sync::wire::SignedChange {
    use sha2::{Digest, Sha256};
    let run = |value: &[u8]| [sleb(n), value.to_vec()].concat();
    // (spec, data): key string, insert flags, action, value metadata and bytes, predecessors.
    let columns: [(u64, Vec<u8>); 8] = [
        (21, run(&[1, b'a'])),
        (52, uleb(n)),
        (66, run(&[1])),
        (86, run(&[0])),
        (87, vec![]),
        (112, run(&[0])),
        (113, vec![]),
        (115, vec![]),
    ];
    let mut data = [uleb(0), uleb(32), author.id().as_bytes().to_vec()].concat();
    data.extend([uleb(1), uleb(1), sleb(0), uleb(0), uleb(0)].concat());
    data.extend(uleb(columns.len() as u64));
    for (spec, column) in &columns {
        data.extend([uleb(*spec), uleb(column.len() as u64)].concat());
    }
    for (_, column) in &columns {
        data.extend(column);
    }
    let length = uleb(data.len() as u64);
    let hash: [u8; 32] = Sha256::new()
        .chain_update([1u8])
        .chain_update(&length)
        .chain_update(&data)
        .finalize()
        .into();
    let bytes = [
        &[0x85, 0x6f, 0x4a, 0x83][..],
        &hash[..4],
        &[1],
        &length,
        &data,
    ]
    .concat();
    omsyn_core::sync::wire::SignedChange {
        bytes,
        signature: author.sign(&omsyn_core::trust::change_signing_bytes(&hash)),
    }
}

fn uleb(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn sleb(n: u64) -> Vec<u8> {
    // Positive only: the sign bit of the last group must be clear.
    let mut out = uleb(n);
    if out.last().is_some_and(|b| b & 0x40 != 0) {
        if let Some(last) = out.last_mut() {
            *last |= 0x80;
        }
        out.push(0);
    }
    out
}
