//! The durable document store on redb.
//!
//! Documents are kept as an append-only chunk log per document (an Automerge snapshot followed by
//! incremental changes), compacted into one snapshot once the increments outgrow it. Documents are
//! loaded on demand into a bounded cache, so memory does not grow with the number of documents held.
//!
//! **Invariant:** when [`WriteBatch::commit`] returns `Ok`, every change made through the batch is on
//! disk (redb `Durability::Immediate`, i.e. fsynced): it survives kill -9 and power loss. Derived
//! indexes (patients, visits, open conflicts) are updated in the same transaction, so they never
//! disagree with the documents they are derived from.
//!
//! **Invariant:** a cached document equals its stored state. A batch takes documents *out* of the
//! cache and puts them back only after its commit succeeded; a failed or dropped batch leaves the
//! cache without them, and they are reloaded from disk.

mod crypt;
mod migrate;
mod repair;
mod rows;
mod schema;
mod tasks;
mod trust;

pub use crypt::{KeyError, STORE_KEY_FILE, StoreKey};
pub use repair::Damage;
pub use rows::{RelationScope, Row};
use tasks::tasks_place;
use trust::sealed_value_error;
pub use trust::{Relation, WITHDRAWN, WITHDRAWN_BLOCKED};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use crypt::{Cipher, chunk_place};
pub use schema::FORMAT_VERSION;
use schema::{
    CHUNKS, CONFLICTS, DAY_INDEX, DAY_INDEX_OWNERS, DOC_SEQ, DOCS, LOG, MAGIC, META, OPEN_TASKS,
    PATIENT_NAMES, PEER_DOCS, PEERS, TASKS, VISITS,
};

use crate::conflict::Conflict;
use crate::docs::{DocError, DocKind, Document, DocumentId};
use crate::identity::{NodeId, NodeKey};
use crate::ids::{PatientId, VisitId};

/// How many documents the cache keeps. A base's working set for one report is larger, but those
/// documents are streamed through; the cache only has to hold what is being edited.
pub const CACHE_DOCUMENTS: usize = 256;
/// Compact a document after this many incremental chunks.
const MAX_CHUNKS_BEFORE_COMPACTION: u64 = 64;
/// Or once its increments exceed this many bytes and the snapshot's size.
const MIN_INCREMENTAL_BYTES_FOR_COMPACTION: u64 = 64 * 1024;
/// redb's page cache.
const REDB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Failure to open a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process has the store open.
    #[error("{0} is in use by another omsyn process")]
    Locked(PathBuf),
    /// The file is not an Omsyn store (another redb file, or not redb at all).
    #[error("{path} is not an Omsyn store: {reason}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The store was written in a format this build does not read.
    #[error("{path} has store format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build supports.
        supported: u32,
    },
    /// The store key does not open this store. Nothing was read or written.
    #[error(
        "{0}: the store key does not match this store (wrong key file or host key); nothing was changed"
    )]
    WrongKey(PathBuf),
    /// The file is damaged.
    #[error("{path} is corrupted: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        reason: String,
    },
    /// I/O error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Failure of a read or write on an open store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk or file system failed (full disk, I/O error). Nothing of the failed write is kept.
    #[error("storage failed: {0}")]
    Io(String),
    /// Stored data is damaged.
    #[error("stored data is corrupted: {0}")]
    Corrupt(String),
    /// A stored document could not be decoded.
    #[error(transparent)]
    Doc(#[from] DocError),
}

macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                let text = e.to_string();
                if text.to_lowercase().contains("corrupt") {
                    StoreError::Corrupt(text)
                } else {
                    StoreError::Io(text)
                }
            }
        }
    )*};
}
storage_error_from!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);

/// Bookkeeping for one document's chunk log, and its position in the change log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct DocMeta {
    next_seq: u64,
    chunks: u64,
    incremental_bytes: u64,
    snapshot_bytes: u64,
    /// Its position in `LOG` (`None`: not entered yet, or a row written before the position
    /// moved here from the `doc_seq` table — see [`log_position`]). Kept in this row because a
    /// write rewrites it anyway: a table of its own cost every commit one more B-tree page.
    log_pos: Option<u64>,
}

impl DocMeta {
    fn encode(&self) -> [u8; 40] {
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
    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
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

/// A document as committed, with the log position it reflects (`None`: never logged, which
/// only a store that was never written since format 2 can hold).
type Version = Option<u64>;

/// A small LRU cache of committed documents, each shared read-only with its log position.
///
/// **Invariant:** a writer edits a cached document only if its position equals the document's
/// position in the writer's own redb write transaction ([`Cache::take_at`]): the state a change
/// is built on is the state it is committed onto. Only one write transaction exists at a time, so
/// no two writers can build on one state (issue #12: two writers each made change number N of
/// the node's actor and both committed, and the document no longer loaded).
#[derive(Debug, Default)]
struct Cache {
    docs: HashMap<DocumentId, CachedDoc>,
    tick: u64,
}

#[derive(Debug)]
struct CachedDoc {
    doc: Arc<Document>,
    version: Version,
    used: u64,
}

impl Cache {
    /// The cached `id` for a reader, only if it is the version at `version`: the one the
    /// reader's own read transaction sees. (Between a writer's commit and its putting the new
    /// version back, the cache may still hold the one before — or a version a reader loaded
    /// while the write was under way. A reader served that after the commit had returned would
    /// miss a change the log already shows: a session then never pushed it.)
    fn get_at(&mut self, id: &DocumentId, version: Version) -> Option<Arc<Document>> {
        self.tick += 1;
        let entry = self.docs.get_mut(id)?;
        if entry.version != version {
            return None;
        }
        entry.used = self.tick;
        Some(Arc::clone(&entry.doc))
    }

    /// Takes `id` out for a writer, only if it is the version at `version`; a stale entry is
    /// dropped. A reader still holding the taken version keeps its own copy alive (the writer
    /// then edits a clone), so a writer never waits for a reader.
    fn take_at(&mut self, id: &DocumentId, version: Version) -> Option<Document> {
        let entry = self.docs.remove(id)?;
        (entry.version == version).then(|| Arc::unwrap_or_clone(entry.doc))
    }

    fn remove(&mut self, id: &DocumentId) {
        self.docs.remove(id);
    }

    /// Keeps `doc` as of `version` unless a later version is cached already (a reader that
    /// loaded before a commit must not replace what the writer put back after it).
    fn put(&mut self, doc: Arc<Document>, version: Version) {
        self.tick += 1;
        let id = doc.id().clone();
        if self
            .docs
            .get(&id)
            .is_some_and(|held| held.version > version)
        {
            return;
        }
        let used = self.tick;
        self.docs.insert(id, CachedDoc { doc, version, used });
        while self.docs.len() > CACHE_DOCUMENTS {
            let oldest = self
                .docs
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.docs.remove(&k),
                None => break,
            };
        }
    }
}

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

/// What [`Store::log_since`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSince {
    /// Each document changed after the position asked for, with its position.
    pub changed: Vec<(u64, DocumentId)>,
    /// The log position as of the same read.
    pub position: u64,
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

/// The store. Safe to share between threads; writes are serialised by redb.
pub struct Store {
    db: DbHandle,
    actor: NodeId,
    signer: NodeKey,
    cipher: Cipher,
    cache: Mutex<Cache>,
    poisoned: std::sync::atomic::AtomicBool,
    epoch: [u8; 16],
    commit_hook: Mutex<Option<CommitHook>>,
    /// This node's own certificate, once read (every write asks for it): `None` until read.
    own_cert: Mutex<Option<Option<crate::trust::Certificate>>>,
}

/// What a store needs to be opened: the local node's signing key (every change it makes is
/// signed with it) and the key its contents are encrypted with.
#[derive(Debug, Clone)]
pub struct StoreKeys {
    /// The local node's key.
    pub signer: NodeKey,
    /// The encryption key.
    pub data: StoreKey,
}

/// Called after every durable commit (documents, certificates, revocations, what is withheld;
/// not a commit of peer knowledge alone) with the store's new log position and the documents
/// the commit changed.
pub type CommitHook = Box<dyn Fn(u64, &[DocumentId]) + Send + Sync>;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("actor", &self.actor)
            .field("epoch", &hex::encode(self.epoch))
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path`, creating it if missing. `keys.signer` is the local node, which
    /// authors (and signs) every change made through this store; `keys.data` encrypts it.
    /// `fresh_epoch` (random bytes from the caller) becomes the store's epoch if the store is
    /// created or migrated now. A wrong key is refused before anything is read or written.
    pub fn open(path: &Path, keys: &StoreKeys, fresh_epoch: [u8; 16]) -> Result<Store, OpenError> {
        let existed = path.exists();
        refuse_empty(path)?;
        let mut builder = Database::builder();
        builder.set_cache_size(REDB_CACHE_BYTES);
        // A plain open trusts the file: it is fast and independent of the store's size, but redb
        // may panic on pages altered outside redb (bit rot, a bad copy, tampering). Such panics
        // are contained by `contain` and surface as `Corrupt`; `Store::verify` checks every page.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = builder.create(path).map_err(|e| open_error(path, e))?;
            let mut store = Store::from_db(db, keys);
            store.check_or_init_meta(path, existed, fresh_epoch)?;
            Ok(store)
        }));
        opened.unwrap_or_else(|panic| {
            Err(OpenError::Corrupt {
                path: path.to_owned(),
                reason: panic_text(&panic),
            })
        })
    }

    /// Verifies every page checksum of the store at `path` (redb's integrity check) and that
    /// every document decodes. Reads the whole file: for `omsyn check`, not for every open.
    pub fn verify(
        path: &Path,
        keys: &StoreKeys,
        fresh_epoch: [u8; 16],
    ) -> Result<Store, OpenError> {
        let store = Store::verify_pages(path, keys, fresh_epoch)?;
        let corrupt = |reason: String| OpenError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let damage = store
            .damaged_documents()
            .map_err(|e| corrupt(e.to_string()))?;
        if damage.is_empty() {
            Ok(store)
        } else {
            Err(corrupt(
                damage
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ))
        }
    }

    /// Opens the store at `path` after verifying every page checksum (redb's integrity check),
    /// without decoding documents: the caller lists the damaged ones
    /// ([`Store::damaged_documents`]) to report or repair them.
    pub fn verify_pages(
        path: &Path,
        keys: &StoreKeys,
        fresh_epoch: [u8; 16],
    ) -> Result<Store, OpenError> {
        let mut builder = Database::builder();
        builder.set_cache_size(REDB_CACHE_BYTES);
        builder.set_check_integrity_on_open(true);
        let db = builder.open(path).map_err(|e| open_error(path, e))?;
        let mut store = Store::from_db(db, keys);
        store.check_or_init_meta(path, true, fresh_epoch)?;
        Ok(store)
    }

    fn from_db(db: Database, keys: &StoreKeys) -> Store {
        Store {
            db: DbHandle(Some(db)),
            actor: keys.signer.id(),
            signer: keys.signer.clone(),
            cipher: Cipher::new(&keys.data),
            cache: Mutex::new(Cache::default()),
            poisoned: std::sync::atomic::AtomicBool::new(false),
            epoch: [0; 16],
            commit_hook: Mutex::new(None),
            own_cert: Mutex::new(None),
        }
    }

    /// Runs a store operation, turning a panic inside redb (which a plain open allows on pages
    /// damaged outside redb) into a `Corrupt` error. After one, the store refuses further work:
    /// redb's in-memory state may be inconsistent, and nothing more should be written.
    fn contain<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(
                "an earlier operation found this store damaged; run `omsyn check`".into(),
            ));
        }
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
            self.poisoned.store(true, Ordering::SeqCst);
            Err(StoreError::Corrupt(panic_text(&panic)))
        })
    }

    /// An in-memory store (for tests and simulations).
    pub fn in_memory(keys: &StoreKeys, fresh_epoch: [u8; 16]) -> Result<Store, OpenError> {
        let path = PathBuf::from(":memory:");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| open_error(&path, e))?;
        let mut store = Store::from_db(db, keys);
        store.check_or_init_meta(&path, false, fresh_epoch)?;
        Ok(store)
    }

    fn check_or_init_meta(
        &mut self,
        path: &Path,
        existed: bool,
        fresh_epoch: [u8; 16],
    ) -> Result<(), OpenError> {
        let corrupt = |e: &dyn std::fmt::Display| OpenError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let read = self.db.begin_read().map_err(|e| corrupt(&e))?;
        let found = match read.open_table(META) {
            Ok(table) => {
                let magic = table.get("magic").map_err(|e| corrupt(&e))?;
                let version = table.get("format_version").map_err(|e| corrupt(&e))?;
                Some((
                    magic.map(|m| m.value().to_vec()),
                    version.map(|v| v.value().to_vec()),
                ))
            }
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(corrupt(&e)),
        };
        drop(read);
        match found {
            Some((Some(magic), Some(version))) if magic == MAGIC => {
                let found = version
                    .as_slice()
                    .try_into()
                    .map(u32::from_le_bytes)
                    .map_err(|_| corrupt(&"format version is malformed"))?;
                if found > FORMAT_VERSION || found == 0 {
                    return Err(OpenError::UnsupportedVersion {
                        path: path.to_owned(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                // From format 3 on, the store is encrypted: a wrong key is refused before any
                // migration writes (formats 1 and 2 are plain; `migrate::to_v3` seals them).
                if found >= 3 && !self.key_matches().map_err(|e| corrupt(&e))? {
                    return Err(OpenError::WrongKey(path.to_owned()));
                }
                migrate::upgrade(self, found, fresh_epoch).map_err(|e| corrupt(&e))?;
                self.epoch = self.read_epoch().map_err(|e| corrupt(&e))?;
                Ok(())
            }
            Some(_) => Err(OpenError::Foreign {
                path: path.to_owned(),
                reason: "its metadata table is not Omsyn's".into(),
            }),
            None if existed && self.has_any_table().map_err(|e| corrupt(&e))? => {
                Err(OpenError::Foreign {
                    path: path.to_owned(),
                    reason: "it is a redb database with other tables".into(),
                })
            }
            None => {
                self.init_meta(fresh_epoch).map_err(|e| corrupt(&e))?;
                self.epoch = fresh_epoch;
                Ok(())
            }
        }
    }

    fn read_epoch(&self) -> Result<[u8; 16], StoreError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        let value = meta
            .get("epoch")?
            .ok_or_else(|| StoreError::Corrupt("the store has no epoch".into()))?;
        value
            .value()
            .try_into()
            .map_err(|_| StoreError::Corrupt("the store's epoch is malformed".into()))
    }

    fn has_any_table(&self) -> Result<bool, StoreError> {
        let read = self.db.begin_read()?;
        Ok(read
            .list_tables()
            .map_err(StoreError::from)?
            .next()
            .is_some())
    }

    fn init_meta(&self, epoch: [u8; 16]) -> Result<(), StoreError> {
        let tx = self.db.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            meta.insert("magic", MAGIC)?;
            meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())?;
        }
        {
            // Create every table up front so readers never meet a missing table.
            tx.open_table(CHUNKS)?;
            tx.open_table(DOCS)?;
            tx.open_table(VISITS)?;
            tx.open_table(CONFLICTS)?;
            tx.open_table(TASKS)?;
            tx.open_table(OPEN_TASKS)?;
            tx.open_table(DAY_INDEX)?;
            tx.open_table(DAY_INDEX_OWNERS)?;
            create_sync_tables(&tx, epoch)?;
            self.create_trust_tables(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The node that authors changes made through this store.
    pub fn actor(&self) -> NodeId {
        self.actor
    }

    /// Runs `f` on a document, loading it if needed. `Ok(None)` if the store does not hold it.
    ///
    /// Readers share the cached version when it is the one their own read transaction sees, and
    /// hold the cache's lock only to look it up: a reader never waits for a writer (redb gives it
    /// a snapshot), nor for another reader.
    pub fn with_doc<T>(
        &self,
        id: &DocumentId,
        f: impl FnOnce(&Document) -> T,
    ) -> Result<Option<T>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let version = doc_version(
                &read.open_table(DOCS)?,
                &read.open_table(DOC_SEQ)?,
                &id.to_string(),
            )?;
            let cached = self.lock_cache().get_at(id, version);
            if let Some(doc) = cached {
                return Ok(Some(f(&doc)));
            }
            let chunks = read.open_table(CHUNKS)?;
            let Some(doc) = load_doc(&chunks, &self.cipher, id, self.actor)? else {
                return Ok(None);
            };
            let doc = Arc::new(doc);
            let out = f(&doc);
            self.lock_cache().put(doc, version);
            Ok(Some(out))
        })
    }

    /// A copy of a document (for export and sync).
    pub fn load(&self, id: &DocumentId) -> Result<Option<Document>, StoreError> {
        self.with_doc(id, Document::clone)
    }

    /// Ids of every stored document whose text form starts with `prefix`, in order.
    pub fn doc_ids(&self, prefix: &str) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            doc_ids_with_prefix(&read.open_table(DOCS)?, prefix)
        })
    }

    /// Every patient held, with display name, ordered by id.
    pub fn patients(&self) -> Result<Vec<(PatientId, String)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PATIENT_NAMES)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let id = PatientId::parse(k.value())
                    .map_err(|e| StoreError::Corrupt(format!("patient index: {e}")))?;
                let name = self.open_value(&name_place(&id), v.value())?;
                out.push((id, String::from_utf8_lossy(&name).into_owned()));
            }
            Ok(out)
        })
    }

    /// The visit-plan document holding `visit`, if known.
    pub fn visit_location(&self, visit: &VisitId) -> Result<Option<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(VISITS)?;
            let Some(value) = table.get(visit.as_str())? else {
                return Ok(None);
            };
            DocumentId::parse(value.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("visit index: {e}")))
        })
    }

    /// Every open conflict, optionally for one patient.
    pub fn conflicts(&self, patient: Option<&PatientId>) -> Result<Vec<Conflict>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(CONFLICTS)?;
            let mut out = Vec::new();
            for item in patient_rows(&table, patient.map(PatientId::as_str))? {
                let (k, v) = item?;
                let (patient, scope) = k.value();
                let json = self.open_value(&conflict_place(patient, scope), v.value())?;
                let list: Vec<Conflict> = serde_json::from_slice(&json)
                    .map_err(|e| StoreError::Corrupt(format!("conflict index: {e}")))?;
                out.extend(list);
            }
            Ok(out)
        })
    }

    /// The day-index rows of `day` (see `DAY_INDEX`) whose key starts with `prefix`, opened:
    /// `(key, JSON)`. `keep` sees each key first; a row it declines is never decrypted.
    pub fn day_rows(
        &self,
        day: crate::time::Day,
        prefix: &str,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(DAY_INDEX)?;
            let day = day.to_string();
            let end = format!("{prefix}\u{10FFFF}");
            let mut out = Vec::new();
            for item in table.range((day.as_str(), prefix)..(day.as_str(), end.as_str()))? {
                let (k, v) = item?;
                let key = k.value().1;
                if !keep(key) {
                    continue;
                }
                let json = self.open_value(&rows::day_place(&day, key), v.value())?;
                out.push((key.to_owned(), json));
            }
            Ok(out)
        })
    }

    /// Counts of what the store holds.
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            Ok(StoreStats {
                documents: read.open_table(DOCS)?.len()?,
                chunks: read.open_table(CHUNKS)?.len()?,
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

    /// The store's epoch: random, fixed when the store was created.
    pub fn epoch(&self) -> [u8; 16] {
        self.epoch
    }

    /// Registers the function called after every durable commit (the daemon wakes its sync
    /// sessions with it). Replaces any earlier one.
    pub fn set_commit_hook(&self, hook: CommitHook) {
        *self.commit_hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

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

    /// What we remember of `peer`.
    pub fn peer(&self, peer: &NodeId) -> Result<Option<PeerRecord>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEERS)?;
            let Some(v) = table.get(peer.as_bytes().as_slice())? else {
                return Ok(None);
            };
            serde_json::from_slice(v.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("peer record: {e}")))
        })
    }

    /// Every peer we remember.
    pub fn peers(&self) -> Result<Vec<(NodeId, PeerRecord)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEERS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let id = k
                    .value()
                    .try_into()
                    .ok()
                    .and_then(|b: [u8; 32]| NodeId::from_bytes(b).ok())
                    .ok_or_else(|| StoreError::Corrupt("peer id".into()))?;
                let record = serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("peer record: {e}")))?;
                out.push((id, record));
            }
            Ok(out)
        })
    }

    /// What `peer` is known to hold of `doc`.
    pub fn peer_doc(
        &self,
        peer: &NodeId,
        doc: &DocumentId,
    ) -> Result<Option<PeerDocState>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEER_DOCS)?;
            let key = doc.to_string();
            match table.get((peer.as_bytes().as_slice(), key.as_str()))? {
                Some(v) => PeerDocState::decode(v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    /// Everything known about what `peer` holds, by document.
    pub fn peer_docs(&self, peer: &NodeId) -> Result<Vec<(DocumentId, PeerDocState)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PEER_DOCS)?;
            let p = peer.as_bytes().as_slice();
            let mut out = Vec::new();
            for item in table.range((p, "")..=(p, "\u{10FFFF}"))? {
                let (k, v) = item?;
                let id = DocumentId::parse(k.value().1)
                    .map_err(|e| StoreError::Corrupt(format!("peer knowledge: {e}")))?;
                out.push((id, PeerDocState::decode(v.value())?));
            }
            Ok(out)
        })
    }

    /// Starts a write. Only one write runs at a time; a second waits for the first.
    pub fn write(&self) -> Result<WriteBatch<'_>, StoreError> {
        self.contain(|| {
            Ok(WriteBatch {
                store: self,
                tx: self.db.begin_write()?,
                docs: BTreeMap::new(),
                neutral_only: BTreeSet::new(),
                durable: true,
                own_cert_changed: false,
                derived: false,
                rederive: BTreeSet::new(),
                clear_rederive_flag: false,
                set_aside: BTreeSet::new(),
                certificates: BTreeMap::new(),
            })
        })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A poisoned cache only means a panic elsewhere mid-operation; its contents are still
        // consistent with disk (see the module invariant), so keep using it.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The redb database, dropped inside `catch_unwind`: closing a file whose pages were damaged
/// outside redb may panic too, and a damaged store must never crash its host.
struct DbHandle(Option<Database>);

impl std::ops::Deref for DbHandle {
    type Target = Database;
    fn deref(&self) -> &Database {
        // Invariant: `Some` from construction until `drop`, which is the only place taking it.
        self.0
            .as_ref()
            .expect("database is present until the store is dropped")
    }
}

impl Drop for DbHandle {
    fn drop(&mut self) {
        let db = self.0.take();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
    }
}

impl std::fmt::Debug for DbHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown failure".into());
    format!("damaged store file (redb: {detail})")
}

/// An existing store file of 0 bytes was truncated (a full disk, a bad copy): it is refused,
/// never taken for a new store, which would silently lose every patient it held.
pub(super) fn refuse_empty(path: &Path) -> Result<(), OpenError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() == 0 => Err(OpenError::Corrupt {
            path: path.to_owned(),
            reason: "the store file is empty (0 bytes): it was truncated. It is not re-created; restore it from a backup, or let the node take its documents from a peer after `omsyn init` in a new directory".into(),
        }),
        _ => Ok(()),
    }
}

pub(super) fn open_error(path: &Path, e: redb::DatabaseError) -> OpenError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => OpenError::Locked(path.to_owned()),
        redb::DatabaseError::UpgradeRequired(v) => OpenError::Foreign {
            path: path.to_owned(),
            reason: format!("it is a redb database in old file format {v}"),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            OpenError::Foreign {
                path: path.to_owned(),
                reason: io.to_string(),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => OpenError::Io {
            path: path.to_owned(),
            source: io,
        },
        other => OpenError::Corrupt {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

fn load_doc(
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
struct StoredParts {
    parts: Vec<Vec<u8>>,
    signatures: BTreeMap<[u8; 32], [u8; 64]>,
}

fn stored_parts(
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

/// The rows of an index keyed by (patient, scope): one patient's, or (`None`) every row.
fn patient_rows<'t, V: redb::Value + 'static>(
    table: &'t impl ReadableTable<(&'static str, &'static str), V>,
    patient: Option<&str>,
) -> Result<redb::Range<'t, (&'static str, &'static str), V>, StoreError> {
    Ok(match patient {
        Some(p) => table.range((p, "")..=(p, "\u{10FFFF}"))?,
        None => table.range::<(&str, &str)>(..)?,
    })
}

/// Ids of the documents in `docs` whose text form starts with `prefix`, in order.
fn doc_ids_with_prefix(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<DocumentId>, StoreError> {
    let mut out = Vec::new();
    for item in docs.range(prefix..)? {
        let (key, _) = item?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(
            DocumentId::parse(key)
                .map_err(|e| StoreError::Corrupt(format!("stored document id: {e}")))?,
        );
    }
    Ok(out)
}

/// The id prefixes under which a patient's documents are stored.
fn patient_prefixes(patient: &PatientId) -> [String; 4] {
    [
        format!("patient/{patient}"),
        format!("plan/{patient}/"),
        format!("journal/{patient}/"),
        format!("messages/{patient}/"),
    ]
}

/// A chunk's plaintext: the signatures of the changes in it (`u32` LE count, then 32-byte hash
/// and 64-byte signature each), then the Automerge bytes. Keeping signatures in the row that is
/// written anyway costs no extra B-tree page per commit.
fn encode_chunk(signatures: &[([u8; 32], [u8; 64])], automerge: &[u8]) -> Vec<u8> {
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

fn decode_chunk(plain: &[u8]) -> Result<(ChunkSignatures, &[u8]), StoreError> {
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

/// One atomic, durable write: any number of document edits plus the derived index updates.
pub struct WriteBatch<'a> {
    store: &'a Store,
    tx: WriteTransaction,
    /// Documents loaded or created by this batch, with the version each was loaded at.
    docs: BTreeMap<DocumentId, (Document, Version)>,
    /// Documents touched only through [`WriteBatch::doc_for_neutral_append`]: their changes cannot
    /// alter the conflict or task lists, so commit skips re-deriving them (the costliest part of a
    /// note).
    neutral_only: BTreeSet<DocumentId>,
    /// Whether commit must fsync. Only knowledge about peers may skip it: losing such a write
    /// understates what a peer holds, which costs a resend, never data.
    durable: bool,
    /// This batch stores a new certificate of the local node: the cached one goes at commit.
    own_cert_changed: bool,
    /// The change pipeline handed this write the rows derived from its documents.
    derived: bool,
    /// Documents to derive again though unchanged (see [`WriteBatch::rederive_all`]).
    rederive: BTreeSet<DocumentId>,
    /// Clear the store's request to derive everything again when this write commits.
    clear_rederive_flag: bool,
    /// Documents that do not load, which this write treats as absent (see
    /// [`WriteBatch::set_aside`]).
    set_aside: BTreeSet<DocumentId>,
    /// Certificates read (and their signatures verified) in this batch, by node: a batch of
    /// received changes asks for its authors' certificates once per change, and verifying each
    /// again would cost a signature check per change.
    certificates: BTreeMap<NodeId, Option<crate::trust::Certificate>>,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("docs", &self.docs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> WriteBatch<'a> {
    /// The document to edit, loaded or created empty.
    pub fn doc(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        let store = self.store;
        store.contain(|| {
            self.neutral_only.remove(id);
            self.load_or_create(id)
        })
    }

    /// The document to edit, for a caller that promises its edits cannot change the derived
    /// conflict and task lists (appending a note, an observation, a message). If the batch touches
    /// the same document any other way, the promise lapses and both are re-derived as usual.
    pub fn doc_for_neutral_append(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        let store = self.store;
        store.contain(|| {
            if !self.docs.contains_key(id) {
                self.neutral_only.insert(id.clone());
            }
            self.load_or_create(id)
        })
    }

    fn load_or_create(&mut self, id: &DocumentId) -> Result<&mut Document, StoreError> {
        if !self.docs.contains_key(id) {
            let loaded = match self.load(id)? {
                Some(loaded) => loaded,
                None => (Document::new(id.clone(), self.store.actor), None),
            };
            self.docs.insert(id.clone(), loaded);
        }
        self.docs
            .get_mut(id)
            .map(|(doc, _)| doc)
            .ok_or_else(|| StoreError::Corrupt("batch lost a document".into()))
    }

    /// A document this batch already loaded or created, without touching the store or what the
    /// batch promised about it (see [`WriteBatch::doc_for_neutral_append`]).
    pub fn loaded(&mut self, id: &DocumentId) -> Option<&mut Document> {
        self.docs.get_mut(id).map(|(doc, _)| doc)
    }

    /// Treats `id` as absent in this write: a damaged document (it does not load) that deriving
    /// everything again must step around; `omsyn check` reports it.
    pub fn set_aside(&mut self, id: &DocumentId) {
        self.set_aside.insert(id.clone());
    }

    /// The document to edit, only if the store holds it.
    pub fn existing(&mut self, id: &DocumentId) -> Result<Option<&mut Document>, StoreError> {
        let store = self.store;
        store.contain(|| {
            if self.set_aside.contains(id) {
                return Ok(None);
            }
            self.neutral_only.remove(id);
            if !self.docs.contains_key(id) {
                let Some(loaded) = self.load(id)? else {
                    return Ok(None);
                };
                self.docs.insert(id.clone(), loaded);
            }
            Ok(self.docs.get_mut(id).map(|(doc, _)| doc))
        })
    }

    /// Records what `peer` is known to hold of `doc`.
    pub fn put_peer_doc(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
        state: &PeerDocState,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            self.tx.open_table(PEER_DOCS)?.insert(
                (peer.as_bytes().as_slice(), key.as_str()),
                state.encode().as_slice(),
            )?;
            Ok(())
        })
    }

    /// What `peer` is known to hold of `doc`, as of this batch.
    pub fn peer_doc(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
    ) -> Result<Option<PeerDocState>, StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            let table = self.tx.open_table(PEER_DOCS)?;
            let value = table.get((peer.as_bytes().as_slice(), key.as_str()))?;
            value.map(|v| PeerDocState::decode(v.value())).transpose()
        })
    }

    /// Replaces what we remember of `peer`; `forget_docs` also drops all knowledge of its documents
    /// (its store was recreated: what we knew no longer holds).
    pub fn put_peer(
        &mut self,
        peer: &NodeId,
        record: &PeerRecord,
        forget_docs: bool,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let json = serde_json::to_vec(record)
                .map_err(|e| StoreError::Corrupt(format!("encoding peer record: {e}")))?;
            self.tx
                .open_table(PEERS)?
                .insert(peer.as_bytes().as_slice(), json.as_slice())?;
            if forget_docs {
                let p = peer.as_bytes().as_slice();
                let mut table = self.tx.open_table(PEER_DOCS)?;
                let keys: Vec<String> = table
                    .range((p, "")..=(p, "\u{10FFFF}"))?
                    .map(|item| item.map(|(k, _)| k.value().1.to_owned()))
                    .collect::<Result<_, _>>()?;
                for k in keys {
                    table.remove((p, k.as_str()))?;
                }
            }
            Ok(())
        })
    }

    /// Commit without fsync (see the `durable` field: peer knowledge only).
    pub fn set_non_durable(&mut self) {
        self.durable = false;
    }

    /// Ids of the documents this batch has loaded or created so far.
    pub fn touched(&self) -> impl Iterator<Item = &DocumentId> {
        self.docs.keys()
    }

    /// The store this write goes to.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// The local node's key, which signs what this write appends in its name.
    pub(crate) fn signer(&self) -> &NodeKey {
        &self.store.signer
    }

    /// Ids of every stored document whose text form starts with `prefix`, as this write sees
    /// them (documents it created but has not committed are among [`WriteBatch::touched`]).
    pub fn doc_ids(&mut self, prefix: &str) -> Result<Vec<DocumentId>, StoreError> {
        let store = self.store;
        store.contain(|| doc_ids_with_prefix(&self.tx.open_table(DOCS)?, prefix))
    }

    /// The document as committed, from the cache only if the cached version is the one this
    /// write transaction sees (see [`Cache`]'s invariant), with its version.
    fn load(&mut self, id: &DocumentId) -> Result<Option<(Document, Version)>, StoreError> {
        let version = doc_version(
            &self.tx.open_table(DOCS)?,
            &self.tx.open_table(DOC_SEQ)?,
            &id.to_string(),
        )?;
        if let Some(doc) = self.store.lock_cache().take_at(id, version) {
            return Ok(Some((doc, version)));
        }
        let chunks = self.tx.open_table(CHUNKS)?;
        let doc = load_doc(&chunks, &self.store.cipher, id, self.store.actor)?;
        Ok(doc.map(|doc| (doc, version)))
    }

    /// The documents this write changed (or was asked to derive again), which the change
    /// pipeline derives index rows for before it commits.
    pub fn changed_documents(&self) -> Vec<DocumentId> {
        self.docs
            .iter()
            .filter(|(id, (doc, _))| doc.has_unsaved_changes() || self.rederive.contains(*id))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether `id` was touched only through [`WriteBatch::doc_for_neutral_append`].
    pub fn is_neutral_append(&self, id: &DocumentId) -> bool {
        self.neutral_only.contains(id)
    }

    /// Records that the rows derived from this write's documents were handed to it
    /// ([`WriteBatch::put_row`]); [`WriteBatch::commit`] refuses a write that changed documents
    /// without.
    pub fn mark_derived(&mut self) {
        self.derived = true;
    }

    /// Writes every changed document (signing the local node's new changes) and commits durably,
    /// with the index rows the change pipeline handed it.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let changed = self.changed_documents();
            if !changed.is_empty() && !self.derived {
                // Invariant: every path that changes documents goes through the change pipeline,
                // which derives before committing; an index left behind would disagree with the
                // documents for good.
                return Err(StoreError::Corrupt(
                    "a write changed documents without deriving their indexes (a bug)".into(),
                ));
            }
            for id in &changed {
                let Some((doc, version)) = self.docs.get_mut(id) else {
                    continue;
                };
                let changes = doc.unsaved_changes();
                if changes.is_empty() {
                    continue;
                }
                let new = store.sign_own_changes(doc);
                append_chunk(&self.tx, &store.cipher, doc, &new, &changes)?;
                *version = Some(enter_in_log(&self.tx, &id.to_string())?);
                // A document change is never left to a non-durable commit.
                self.durable = true;
            }
            if self.clear_rederive_flag {
                self.tx.open_table(META)?.remove(REDERIVE_KEY)?;
            }
            let durability = if self.durable {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            };
            self.tx.set_durability(durability)?;
            let seq = read_seq(&self.tx.open_table(META)?, &self.tx.open_table(LOG)?)?;
            self.tx.commit()?;
            if self.own_cert_changed {
                *store.own_cert.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            if self.durable
                && let Some(hook) = store
                    .commit_hook
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
            {
                hook(seq, &changed);
            }
            let mut cache = self.store.lock_cache();
            for (_, (mut doc, version)) in std::mem::take(&mut self.docs) {
                doc.mark_saved();
                cache.put(Arc::new(doc), version);
            }
            Ok(())
        })
    }

    /// Asks for every stored document to be derived again at this write's commit (a store
    /// whose derived indexes predate this build); the request is cleared when it commits.
    pub fn rederive_all(&mut self) -> Result<Vec<DocumentId>, StoreError> {
        let store = self.store;
        let ids = store.contain(|| doc_ids_with_prefix(&self.tx.open_table(DOCS)?, ""))?;
        self.rederive.extend(ids.iter().cloned());
        self.clear_rederive_flag = true;
        Ok(ids)
    }
}

/// The `META` key set while the derived indexes must be derived again by the change pipeline.
const REDERIVE_KEY: &str = "rederive";

/// Appends the document's unsaved `changes` (whose hashes are `new`) as a chunk, or a snapshot
/// of the whole document when it is time to compact; signatures go along either way.
fn append_chunk(
    tx: &WriteTransaction,
    cipher: &Cipher,
    doc: &mut Document,
    new: &[[u8; 32]],
    changes: &[u8],
) -> Result<(), StoreError> {
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
        let plain = encode_chunk(&doc.signatures_of(new), changes);
        let sealed = cipher.seal(&chunk_place(&key, meta.next_seq), &plain);
        chunks.insert((key.as_str(), meta.next_seq), sealed.as_slice())?;
        meta.next_seq += 1;
        meta.chunks += 1;
        meta.incremental_bytes = incremental;
    }
    docs.insert(key.as_str(), meta.encode().as_slice())?;
    Ok(())
}

fn name_place(patient: &PatientId) -> Vec<u8> {
    format!("name/{patient}").into_bytes()
}

fn conflict_place(patient: &str, scope: &str) -> Vec<u8> {
    format!("conflicts/{patient}/{scope}").into_bytes()
}

/// Kinds of documents, for store statistics and export filters.
pub fn kind_prefix(kind: DocKind) -> &'static str {
    match kind {
        DocKind::PatientRecord => "patient/",
        DocKind::VisitPlan => "plan/",
        DocKind::Journal => "journal/",
        DocKind::Messages => "messages/",
        DocKind::DayLog => "daylog/",
        DocKind::Audit => "audit/",
    }
}

fn create_sync_tables(tx: &WriteTransaction, epoch: [u8; 16]) -> Result<(), StoreError> {
    tx.open_table(LOG)?;
    tx.open_table(DOC_SEQ)?;
    tx.open_table(PEERS)?;
    tx.open_table(PEER_DOCS)?;
    let mut meta = tx.open_table(META)?;
    meta.insert("epoch", epoch.as_slice())?;
    if meta.get("seq")?.is_none() {
        meta.insert("seq", 0u64.to_le_bytes().as_slice())?;
    }
    Ok(())
}

/// The current log position: the highest position in `LOG`, or the `seq` a store kept in `META`
/// before the position was read from the log (never written since; it only matters for a store
/// whose highest entry was removed before that).
fn read_seq(
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

/// A document's position in the change log: from its `DOCS` row, or from the `DOC_SEQ` table
/// where a store written before kept it.
fn doc_version(
    docs: &impl ReadableTable<&'static str, &'static [u8]>,
    legacy: &impl ReadableTable<&'static str, u64>,
    doc: &str,
) -> Result<Version, StoreError> {
    let meta = match docs.get(doc)? {
        Some(v) => DocMeta::decode(v.value())?,
        None => return Ok(None),
    };
    match meta.log_pos {
        Some(pos) => Ok(Some(pos)),
        None => Ok(legacy.get(doc)?.map(|v| v.value())),
    }
}

/// Gives `doc` (whose `DOCS` row exists) the next position in the change log, dropping its
/// previous one, and records it in its row. Returns it. Writes `LOG` and `DOCS` only: a
/// commit's pages are the tables it touches.
fn enter_in_log(tx: &WriteTransaction, doc: &str) -> Result<u64, StoreError> {
    let mut docs = tx.open_table(DOCS)?;
    let mut meta = match docs.get(doc)? {
        Some(v) => DocMeta::decode(v.value())?,
        None => DocMeta::default(),
    };
    let mut log = tx.open_table(LOG)?;
    let seq = read_seq(&tx.open_table(META)?, &log)? + 1;
    if let Some(old) = log_position(tx, doc, &meta)? {
        log.remove(old)?;
    }
    log.insert(seq, doc)?;
    meta.log_pos = Some(seq);
    docs.insert(doc, meta.encode().as_slice())?;
    Ok(seq)
}

/// Where `doc` (with row `meta`) stands in the log, taking it out of the `DOC_SEQ` table of a
/// store written before positions moved into `DOCS` (a lookup that finds nothing writes no
/// page).
fn log_position(
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
fn leave_log(tx: &WriteTransaction, doc: &str, meta: &DocMeta) -> Result<(), StoreError> {
    let Some(pos) = log_position(tx, doc, meta)? else {
        return Ok(());
    };
    let mut log = tx.open_table(LOG)?;
    log.remove(pos)?;
    if log.last()?.is_none_or(|(k, _)| k.value() < pos) {
        log.insert(pos, "")?;
    }
    Ok(())
}

/// What this node remembers of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerRecord {
    /// The peer's store epoch when last seen (hex); a different epoch voids what we knew.
    pub epoch: String,
    /// Our log position up to which the peer has acknowledged everything we pushed.
    pub acked_seq: u64,
    /// When a session with the peer was last open (ms since the Unix epoch).
    pub last_seen_ms: Option<i64>,
    /// When the peer and we were last fully caught up (ms since the Unix epoch).
    pub caught_up_ms: Option<i64>,
}

/// What a peer is known to hold of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDocState {
    /// Heads the peer is known to have (it holds all their history).
    pub heads: Vec<[u8; 32]>,
    /// When both sides were last known to be equal (ms since the Unix epoch).
    pub equal_at_ms: Option<i64>,
}

impl PeerDocState {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.heads.len() * 32 + 8);
        for h in &self.heads {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&self.equal_at_ms.unwrap_or(i64::MIN).to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt("peer knowledge is malformed".into());
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(32) {
            return Err(bad());
        }
        let (heads, at) = bytes.split_at(bytes.len() - 8);
        let at = i64::from_le_bytes(at.try_into().map_err(|_| bad())?);
        Ok(PeerDocState {
            heads: heads
                .chunks_exact(32)
                .map(|c| c.try_into().map_err(|_| bad()))
                .collect::<Result<_, _>>()?,
            equal_at_ms: (at != i64::MIN).then_some(at),
        })
    }
}
