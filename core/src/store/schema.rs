//! Every redb table of the store, in one place. See docs/design.md for the layout.
//!
//! Integers stored inside values are little-endian.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::error::StoreError;

/// Store-wide metadata: `magic` and `format_version`.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// A key of [`CHUNKS`]: (document id, sequence number, piece).
pub(crate) type ChunkKey = (&'static str, u64, u32);

/// Document chunks (format 9): (document id, sequence number, piece) → one piece of the sealed
/// chunk (signatures of the chunk's changes, Automerge bytes), cut so that a piece and its key
/// fill one page (see `chunks::piece_bytes`). A chunk is its pieces concatenated in order; a
/// document is the concatenation of its chunks' Automerge bytes in sequence order: a snapshot
/// followed by incremental changes. Since format 10, `(document id, u64::MAX, 0)` is the
/// document's tail record (`chunks::TAIL_SEQ`: its `DocMeta`, 5 × u64 LE, not sealed, as the
/// `DOCS` row was), after its chunks in key order.
pub(crate) const CHUNKS: TableDefinition<ChunkKey, &[u8]> = TableDefinition::new("chunks");

/// Format 1-8: the same table with each sealed chunk one value under (document id, sequence
/// number). redb gives a value larger than a page a run of pages rounded up to a power of two,
/// so a 36 KB snapshot took 64 KiB; format 9 cuts chunks into pieces (migrated and dropped).
pub(crate) const CHUNKS_V8: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("chunks");

/// Where format 9's migration builds [`CHUNKS`] before it takes the old table's name.
pub(crate) const CHUNKS_NEXT: TableDefinition<ChunkKey, &[u8]> =
    TableDefinition::new("chunk_pieces");

/// The documents held: document id → [`NEW_DOC_ROW`] (format 10), written when a document is
/// created and removed with it, so listing documents (by kind, by patient) reads no chunk. Its
/// bookkeeping, which every commit changes, is its tail record in [`CHUNKS`]
/// (`chunks::TAIL_SEQ`); formats 1–9 kept it here (`chunks::DocMeta`, 4 or 5 × u64 LE).
pub(crate) const DOCS: TableDefinition<&str, &[u8]> = TableDefinition::new("docs");

/// A `DOCS` row's value since format 10: the row says only that the document is held.
pub(crate) const NEW_DOC_ROW: &[u8] = &[];

/// Derived, format 1-2 only: patient id → display name in plain text (migrated to
/// [`PATIENT_NAMES`] and dropped).
pub(crate) const PATIENTS_V2: TableDefinition<&str, &str> = TableDefinition::new("patients");

/// Derived: patient id → display name, encrypted (for `patient list` without loading documents);
/// since format 13 the name, then a NUL and what tells her apart from another of the name (her
/// date of birth or address), where her record gives it.
pub(crate) const PATIENT_NAMES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("patient_names");

/// Derived: visit id → the id of the visit-plan document that holds it.
pub(crate) const VISITS: TableDefinition<&str, &str> = TableDefinition::new("visits");

/// Derived: (patient id, scope) → JSON list of open conflicts. Scope is `record` or `YYYY-MM`.
pub(crate) const CONFLICTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("conflicts");

/// Derived (format 4): (patient id, `YYYY-MM`) → sealed JSON list of the month's escalation
/// triggers, as the change pipeline derives them; rows only for months that have any.
pub(crate) const TASKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("tasks");

/// Derived (format 4): the [`TASKS`] rows holding a trigger nobody has closed, so listing open
/// tasks reads only those, however many months of closed ones the store keeps.
pub(crate) const OPEN_TASKS: TableDefinition<(&str, &str), ()> = TableDefinition::new("open_tasks");

/// Derived (format 6): what a day holds, for reports that read a day without loading months of
/// documents: `(YYYY-MM-DD, key)` → the sealed row as the pipeline encoded it (binary since
/// format 9: `report::rows`), with key `v/<patient>/<visit>/<YYYY-MM>` for a visit and its
/// outcome, `p/<patient>/<entry>/<YYYY-MM>` for a performance, `d/<patient>/<entry>/<YYYY-MM>`
/// for a patient's deviation (avvik) and `d/<staff>/<entry>/<YYYY-MM-DD>` for one in a staff
/// member's day log. The patient (or staff) in the key lets a report skip another zone's rows
/// without opening them; the last part names the month or day log that derived the row (format
/// 11), so rows two sources derive under one name never replace each other.
pub(crate) const DAY_INDEX: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("day_index");

/// Derived (format 6): the `DAY_INDEX` rows each source derived, `owner` (`<patient>/<YYYY-MM>`
/// for a patient-month, the document id for a day log) → the list of `(day, key, fingerprint)`
/// (binary since format 9: `rows::encode_owned`), so a source derived again removes what it no
/// longer derives and rewrites only changed rows.
pub(crate) const DAY_INDEX_OWNERS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("day_index_owners");

/// The local change log: sequence number → id of the document changed. Each document appears once,
/// at the number of its latest change; sync sessions read it from a peer's checkpoint onwards.
pub(crate) const LOG: TableDefinition<u64, &str> = TableDefinition::new("log");

/// Formats 2–9 only: document id → its current sequence number in [`LOG`], for rows written
/// before the position moved into the document's row (format 10's migration folds what is
/// left into the tail records and drops the table).
pub(crate) const DOC_SEQ: TableDefinition<&str, u64> = TableDefinition::new("doc_seq");

/// Peer node id (32 bytes) → JSON [`super::PeerRecord`].
pub(crate) const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// (peer node id, document id) → what the peer is known to hold: heads (n × 32 bytes) followed by
/// the time (`i64` LE, ms since the epoch) both sides were last known equal, or `i64::MIN`.
pub(crate) const PEER_DOCS: TableDefinition<(&[u8], &str), &[u8]> =
    TableDefinition::new("peer_docs");

/// Node id → the newest verified device certificate known for it (JSON, as signed).
pub(crate) const CERTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("certs");

/// Node id followed by a certificate's bytes (JSON, as signed) → nothing: a node's certificate
/// history (format 12), the first and last verified certificate of each run that grants the
/// same ([`crate::trust::Certificate::same_grant`]: renewals would grow it without end and
/// judge alike; the last serves a device until a re-enrolment dated ahead begins), superseded
/// ones included; the newest is in `certs`. A change is judged by the
/// certificate in force when it was made ([`crate::trust::Certificate::in_force`]), so a device
/// re-enrolled for another patient or role still has its earlier changes taken by nodes that
/// first hear of it afterwards.
pub(crate) const CERT_HISTORY: TableDefinition<&[u8], ()> = TableDefinition::new("cert_history");

/// Node id → its revocation (JSON, as signed by the organisation).
pub(crate) const REVOCATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("revocations");

/// Derived: (patient id, relation) → a number. Who has a need for a patient's documents:
/// `zone:<zone>`, `team:<staff>`, `block:<staff>` (sperring), `explicit:<staff>` (break-glass
/// access, value = until, ms) and `visit:<staff>:<YYYY-MM-DD>` (assigned visits).
pub(crate) const RELATIONS: TableDefinition<(&str, &str), i64> = TableDefinition::new("relations");

/// (peer node id, patient id or "", document id) → 1: documents not shared with the peer (it had
/// no need for them, or declined them). They are reconsidered when the peer's need may have grown:
/// at every session start, and whenever the patient's record or plan changes. Without this, a
/// document that did not change after a nurse was assigned to its patient would never reach her.
pub(crate) const WITHHELD: TableDefinition<(&[u8], &str, &str), u8> =
    TableDefinition::new("withheld");

/// Value of `META["magic"]`: tells an Omsyn store from any other redb file.
pub(crate) const MAGIC: &[u8] = b"omsyn-store";

/// The store format this build reads and writes. Bump it, with a migration and a golden fixture,
/// whenever a table's key or value layout changes.
///
/// Version log: 1 — documents, chunks and derived indexes. 2 — adds the change log, the store
/// epoch and per-peer knowledge for sync (a version-1 store is migrated on open). 3 — encrypts
/// chunks (each carrying its changes' signatures), names and conflicts with the store key; adds
/// certificates, revocations, withheld documents and the relations index (a version-2 store is
/// migrated on open, signing its own node's changes). 4 — adds the escalation index (`tasks`).
/// 5 — every derived index is derived by the change pipeline (`pipeline::derive`), with integrity
/// alerts among the conflicts and explicit accesses clamped; migrating sets `META["rederive"]`,
/// and the node derives everything again when it opens. 6 — adds the day index (`day_index`,
/// `day_index_owners`), derived the same way. 7 — conflicts carry who wrote their entries (ids
/// and names) and say so by name: derived again the same way. Migrations from 1–6 leave the
/// indexes to that step. 8 — a visit's day row keeps who performed it: derived again. 9 — bytes
/// on disk: a chunk is stored in page-sized pieces (`chunks` keyed by document, sequence and
/// piece) instead of one value that redb rounds up to a power of two of pages; day rows and
/// their owner lists are binary instead of JSON (derived again). 10 — a document's bookkeeping
/// (next chunk number, chunk count, incremental and snapshot bytes, log position) is its tail
/// record in `chunks`, beside its newest chunk, instead of its `docs` row: a commit writes
/// `chunks` and `log`, and `docs` only when a document is created or removed. 11 — each day-index
/// key ends with the month (or a day log's day) that derived it, so a row has one owner: both
/// tables emptied, derived again. 12 — every certificate of a node is kept (`cert_history`), not
/// only the newest, so a change is judged by the certificate in force when it was made. 13 — a
/// patient-name row keeps what tells her apart from another of the name (after a NUL): derived
/// again.
pub const FORMAT_VERSION: u32 = 13;

/// The `META` key set while the derived indexes must be derived again by the change pipeline
/// (see `migrate.rs`); cleared by the write that derives them.
pub(crate) const REDERIVE_KEY: &str = "rederive";

/// Creates every table of this format (a new store).
pub(super) fn create_tables(
    tx: &WriteTransaction,
    epoch: [u8; 16],
    key_check: &[u8],
) -> Result<(), StoreError> {
    tx.open_table(CHUNKS)?;
    tx.open_table(DOCS)?;
    tx.open_table(VISITS)?;
    tx.open_table(CONFLICTS)?;
    tx.open_table(TASKS)?;
    tx.open_table(OPEN_TASKS)?;
    tx.open_table(DAY_INDEX)?;
    tx.open_table(DAY_INDEX_OWNERS)?;
    create_sync_tables(tx, epoch)?;
    create_trust_tables(tx, key_check)
}

/// The tables format 2 added for sync, and the store's epoch (its log position starts at 0).
pub(super) fn create_sync_tables(tx: &WriteTransaction, epoch: [u8; 16]) -> Result<(), StoreError> {
    tx.open_table(LOG)?;
    tx.open_table(PEERS)?;
    tx.open_table(PEER_DOCS)?;
    let mut meta = tx.open_table(META)?;
    meta.insert("epoch", epoch.as_slice())?;
    if meta.get("seq")?.is_none() {
        meta.insert("seq", 0u64.to_le_bytes().as_slice())?;
    }
    Ok(())
}

/// The tables format 3 added for trust, and the check that tells a wrong store key.
pub(super) fn create_trust_tables(
    tx: &WriteTransaction,
    key_check: &[u8],
) -> Result<(), StoreError> {
    tx.open_table(PATIENT_NAMES)?;
    tx.open_table(CERTS)?;
    tx.open_table(CERT_HISTORY)?;
    tx.open_table(REVOCATIONS)?;
    tx.open_table(RELATIONS)?;
    tx.open_table(WITHHELD)?;
    tx.open_table(META)?.insert("key_check", key_check)?;
    Ok(())
}
