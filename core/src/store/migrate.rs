//! Store format migrations, one step per format version, each named by the version it produces.
//!
//! A store opened with an older format runs, in order, every step producing a version above the
//! one it has. Each step is one redb transaction that ends by writing the version it produces: a
//! crash between steps leaves a store of the version before, which the next open takes up from
//! there. Steps never read the clock or the network; what a step cannot do inside the store
//! (deriving the indexes again, which needs the change pipeline) it asks for with a flag
//! ([`Store::needs_rederive`]).
//!
//! Adding a format: bump [`super::FORMAT_VERSION`], add its step at the end of [`STEPS`], and a
//! golden store of the version before under `tests/fixtures/`.

use redb::ReadableTable;

use super::chunks::{DocMeta, encode_chunk, put_chunk};
use super::crypt::{chunk_place, conflict_place, name_place};
use super::error::StoreError;
use super::handle::Store;
use super::log::{enter_in_log_v9, log_position_v9};
use super::schema::{
    CERT_HISTORY, CERTS, CHUNKS, CHUNKS_NEXT, CHUNKS_V8, CONFLICTS, DAY_INDEX, DAY_INDEX_OWNERS,
    DOC_SEQ, DOCS, META, NEW_DOC_ROW, OPEN_TASKS, PATIENT_NAMES, PATIENTS_V2, REDERIVE_KEY, TASKS,
    create_sync_tables, create_trust_tables,
};
use crate::docs::{Document, DocumentId};
use crate::ids::PatientId;

/// One migration step: the store, and the epoch a store gets if it has none yet.
type Step = fn(&Store, [u8; 16]) -> Result<(), StoreError>;

/// Every step, by the version it produces, in order. Versions 5 and 6 have no step of their own:
/// they only asked for the indexes to be derived again, which [`to_v7`] asks for too.
const STEPS: &[(u32, Step)] = &[
    (2, to_v2),
    (3, to_v3),
    (4, to_v4),
    (7, to_v7),
    (8, to_v8),
    (9, to_v9),
    (10, to_v10),
    (11, to_v11),
    (12, to_v12),
    (13, to_v13),
];

/// Brings a store of format `found` to this build's format, step by step.
pub(super) fn upgrade(store: &Store, found: u32, fresh_epoch: [u8; 16]) -> Result<(), StoreError> {
    for (produces, step) in STEPS {
        if found < *produces {
            step(store, fresh_epoch)?;
        }
    }
    Ok(())
}

/// Writes the format version a step produces, in the step's transaction.
fn set_version(tx: &redb::WriteTransaction, version: u32) -> Result<(), StoreError> {
    tx.open_table(META)?
        .insert("format_version", version.to_le_bytes().as_slice())?;
    Ok(())
}

/// Format 2: sync. Adds the change log, the per-peer tables and the store epoch, and enters
/// every document in the log, so peers are offered everything the store holds.
fn to_v2(store: &Store, epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    create_sync_tables(&tx, epoch)?;
    let docs: Vec<String> = tx
        .open_table(DOCS)?
        .iter()?
        .map(|item| item.map(|(k, _)| k.value().to_owned()))
        .collect::<Result<_, _>>()?;
    for doc in &docs {
        enter_in_log_v9(&tx, doc)?;
    }
    set_version(&tx, 2)?;
    tx.commit()?;
    Ok(())
}

/// Format 3: trust at rest. Encrypts what was plain (chunks, patient names, conflict lists) with
/// the store key, signs the local node's own changes (every change must carry its author's
/// signature to be forwarded), and adds the certificate, revocation, relation and withheld
/// tables. One transaction: a crash leaves a version-2 store, migrated again on the next open.
fn to_v3(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    create_trust_tables(&tx, &store.cipher.key_check())?;
    let doc_ids: Vec<String> = tx
        .open_table(DOCS)?
        .iter()?
        .map(|item| item.map(|(k, _)| k.value().to_owned()))
        .collect::<Result<_, _>>()?;
    for key in &doc_ids {
        seal_document_v3(store, &tx, key)?;
    }
    let names: Vec<(String, String)> = tx
        .open_table(PATIENTS_V2)?
        .iter()?
        .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_owned())))
        .collect::<Result<_, _>>()?;
    for (patient, name) in names {
        let id = PatientId::parse(&patient)
            .map_err(|e| StoreError::Corrupt(format!("patient index: {e}")))?;
        let sealed = store.cipher.seal(&name_place(&id), name.as_bytes());
        tx.open_table(PATIENT_NAMES)?
            .insert(patient.as_str(), sealed.as_slice())?;
    }
    tx.delete_table(PATIENTS_V2)?;
    let conflicts: Vec<((String, String), Vec<u8>)> = tx
        .open_table(CONFLICTS)?
        .iter()?
        .map(|item| {
            item.map(|(k, v)| {
                let (p, s) = k.value();
                ((p.to_owned(), s.to_owned()), v.value().to_vec())
            })
        })
        .collect::<Result<_, _>>()?;
    let mut table = tx.open_table(CONFLICTS)?;
    for ((patient, scope), json) in conflicts {
        let sealed = store.cipher.seal(&conflict_place(&patient, &scope), &json);
        table.insert((patient.as_str(), scope.as_str()), sealed.as_slice())?;
    }
    drop(table);
    set_version(&tx, 3)?;
    tx.commit()?;
    Ok(())
}

/// One document of a version-2 store, whose chunks are plain Automerge bytes: loaded, this
/// node's own changes signed, and stored as one sealed snapshot with its signatures.
fn seal_document_v3(
    store: &Store,
    tx: &redb::WriteTransaction,
    key: &str,
) -> Result<(), StoreError> {
    let plain: Vec<(u64, Vec<u8>)> = tx
        .open_table(CHUNKS_V8)?
        .range((key, 0)..=(key, u64::MAX))?
        .map(|item| item.map(|(k, v)| (k.value().1, v.value().to_vec())))
        .collect::<Result<_, _>>()?;
    if plain.is_empty() {
        return Ok(());
    }
    let id = DocumentId::parse(key)
        .map_err(|e| StoreError::Corrupt(format!("stored document id: {e}")))?;
    let bytes: Vec<u8> = plain.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let mut doc = Document::load(id, &bytes, store.actor)?;
    for (hash, actor) in doc.all_change_authors() {
        if actor.as_slice() == store.actor.as_bytes() {
            doc.add_signature(hash, store.sign_change(&hash));
        }
    }
    let snapshot = doc.save();
    let mut chunks = tx.open_table(CHUNKS_V8)?;
    for (seq, _) in &plain {
        chunks.remove((key, *seq))?;
    }
    let sealed = store.cipher.seal(
        &chunk_place(key, 0),
        &encode_chunk(&doc.all_signatures(), &snapshot),
    );
    chunks.insert((key, 0), sealed.as_slice())?;
    drop(chunks);
    let log_pos = match tx.open_table(DOCS)?.get(key)? {
        Some(v) => DocMeta::decode(v.value())?.log_pos,
        None => None,
    };
    let meta = DocMeta {
        next_seq: 1,
        chunks: 1,
        incremental_bytes: 0,
        snapshot_bytes: snapshot.len() as u64,
        log_pos,
    };
    tx.open_table(DOCS)?.insert(key, meta.encode().as_slice())?;
    Ok(())
}

/// Format 4: escalation. Adds the escalation index's tables (`tasks`, `open_tasks`), filled when
/// the indexes are derived again ([`to_v7`] asks for that).
fn to_v4(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    tx.open_table(TASKS)?;
    tx.open_table(OPEN_TASKS)?;
    set_version(&tx, 4)?;
    tx.commit()?;
    Ok(())
}

/// Format 7 (and the 5 and 6 it subsumes): every derived index comes from the change pipeline.
/// Adds the day index's tables and asks for every index to be derived again the next time the
/// node opens ([`Store::needs_rederive`]): integrity alerts among the conflicts, explicit
/// accesses clamped by the receiver's clock (5), the day's visits and outcomes (6), conflicts
/// naming who wrote their entries (7). The store cannot derive them itself: deriving is the
/// pipeline's, which the store does not know.
fn to_v7(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    tx.open_table(DAY_INDEX)?;
    tx.open_table(DAY_INDEX_OWNERS)?;
    commit_asking_to_rederive(tx, 7)
}

/// Format 8: a visit's day-index row keeps who performed it (staff ids), so the report credits
/// the performer of a cancelled-but-performed visit. Rows derived before lack them: every index
/// is derived again the next time the node opens.
fn to_v8(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    commit_asking_to_rederive(store.db.begin_write()?, 8)
}

/// Format 9: bytes on disk. Each chunk moves, sealed as it is, into page-sized pieces under
/// (document, sequence, piece): no document byte changes, and the pieces, written in key order
/// into a new table, fill their pages. The day index's rows and owner lists are binary now:
/// both tables are emptied and every index is derived again the next time the node opens.
fn to_v9(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    {
        let old = tx.open_table(CHUNKS_V8)?;
        let mut pieces = tx.open_table(CHUNKS_NEXT)?;
        for item in old.iter()? {
            let (k, v) = item?;
            let (doc, seq) = k.value();
            put_chunk(&mut pieces, doc, seq, v.value())?;
        }
    }
    tx.delete_table(CHUNKS_V8)?;
    tx.rename_table(CHUNKS_NEXT, CHUNKS)?;
    empty_day_index(&tx)?;
    commit_asking_to_rederive(tx, 9)
}

/// Format 10: pages per commit. Each document's bookkeeping moves from its `docs` row to its
/// tail record in `chunks` (`chunks::TAIL_SEQ`), with its log position — from the row, or from
/// the `doc_seq` table where rows written before format 8 left it, which is then dropped; the
/// `docs` row stays, empty, as the list of documents held. No chunk, log entry or derived row
/// changes. One transaction: a crash leaves the format-9 store, migrated again on the next open.
fn to_v10(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    let rows: Vec<(String, Vec<u8>)> = tx
        .open_table(DOCS)?
        .iter()?
        .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
        .collect::<Result<_, _>>()?;
    {
        let mut docs = tx.open_table(DOCS)?;
        let mut chunks = tx.open_table(CHUNKS)?;
        for (doc, row) in &rows {
            let mut meta = DocMeta::decode(row)
                .map_err(|e| StoreError::Corrupt(format!("the row of {doc}: {e}")))?;
            meta.log_pos = log_position_v9(&tx, doc, &meta)?;
            meta.put_tail(&mut chunks, doc)?;
            docs.insert(doc.as_str(), NEW_DOC_ROW)?;
        }
    }
    tx.delete_table(DOC_SEQ)?;
    set_version(&tx, 10)?;
    tx.commit()?;
    Ok(())
}

/// Format 11: a day-index row has one owner. Each key ends with the month (or a day log's day)
/// whose documents derived it, where two months' documents naming one visit or entry shared a
/// key, each replacing the other's row. Both tables are emptied, and the index is derived again
/// the next time the node opens; no document, chunk or log entry changes.
fn to_v11(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    empty_day_index(&tx)?;
    commit_asking_to_rederive(tx, 11)
}

/// Format 12: a node's certificates are kept, not only its newest, so each change is judged by
/// the certificate in force when it was made. Every certificate held (the newest of each node)
/// starts its node's history, and the indexes are derived again; no document, chunk or log
/// entry changes.
fn to_v12(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    let tx = store.db.begin_write()?;
    {
        let certs = tx.open_table(CERTS)?;
        let mut history = tx.open_table(CERT_HISTORY)?;
        for row in certs.iter()? {
            let (node, bytes) = row?;
            history.insert([node.value(), bytes.value()].concat().as_slice(), ())?;
        }
    }
    // Derived again too: this build judges withdrawals entry by entry and names a record-field
    // conflict by its patient, which the stored rows of an older build do not.
    commit_asking_to_rederive(tx, 12)
}

/// Format 13: each patient-name row keeps, after her name, what tells her apart from another of
/// the name (her date of birth from her national id, else her address), so lists tell two
/// patients of one name apart. The indexes are derived again; no document, chunk or log entry
/// changes.
fn to_v13(store: &Store, _epoch: [u8; 16]) -> Result<(), StoreError> {
    commit_asking_to_rederive(store.db.begin_write()?, 13)
}

/// Drops the day index and its owner lists and creates them empty (formats 9 and 11).
fn empty_day_index(tx: &redb::WriteTransaction) -> Result<(), StoreError> {
    tx.delete_table(DAY_INDEX)?;
    tx.delete_table(DAY_INDEX_OWNERS)?;
    tx.open_table(DAY_INDEX)?;
    tx.open_table(DAY_INDEX_OWNERS)?;
    Ok(())
}

/// Ends a step whose indexes the change pipeline must derive again: sets the mark the node
/// reads when it opens ([`Store::needs_rederive`]) and the version the step produces, in the
/// step's transaction.
fn commit_asking_to_rederive(tx: redb::WriteTransaction, version: u32) -> Result<(), StoreError> {
    tx.open_table(META)?
        .insert(REDERIVE_KEY, [1u8].as_slice())?;
    set_version(&tx, version)?;
    tx.commit()?;
    Ok(())
}

impl Store {
    /// Whether the derived indexes must be derived again from the documents (after a migration),
    /// which the change pipeline does when the node opens.
    pub fn needs_rederive(&self) -> Result<bool, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            Ok(read.open_table(META)?.get(REDERIVE_KEY)?.is_some())
        })
    }
}
