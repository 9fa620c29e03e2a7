//! The redb database behind a store, opened again after a failed write. After an I/O error
//! (a full disk, a failed fsync) redb refuses every later operation on that database ("Previous
//! I/O error occurred. Please close and re-open the database"); opening the file again recovers
//! it to its last commit. A running node — a base's daemon, an app — must not stay broken once
//! the disk has room again, so the next operation after a failure opens it again first.
//!
//! What a reopen can lose is what the failed or non-durable commits held: only knowledge about
//! peers is ever committed without an fsync (see `batch.rs`), and the document cache holds only
//! what durable commits stored, so it stays true to the file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, TransactionError, WriteTransaction};

/// redb's own page cache for a store.
const REDB_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How every open of a store file is configured: the first, a verifying one, and the one after
/// a failure, alike.
pub(super) fn builder() -> redb::Builder {
    let mut builder = Database::builder();
    builder.set_cache_size(REDB_CACHE_BYTES);
    builder
}

/// The database, and how to open it again.
pub(super) struct DbHandle {
    /// `None` between closing a failed database and opening it again.
    current: RwLock<Option<Arc<Database>>>,
    /// The store's file; `None` for an in-memory store, which has no file to fail.
    path: Option<PathBuf>,
    /// An operation failed on an I/O error: the next one opens the database again first.
    failed: AtomicBool,
}

impl DbHandle {
    pub(super) fn new(db: Database, path: Option<PathBuf>) -> DbHandle {
        DbHandle {
            current: RwLock::new(Some(Arc::new(db))),
            path,
            failed: AtomicBool::new(false),
        }
    }

    pub(super) fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.database()?.begin_read()
    }

    pub(super) fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.database()?.begin_write()
    }

    /// The database, for an operation that needs it alone (compacting, at start): `None` while
    /// anything else holds it.
    pub(super) fn get_mut(&mut self) -> Option<&mut Database> {
        let current = self.current.get_mut().unwrap_or_else(|p| p.into_inner());
        current.as_mut().and_then(Arc::get_mut)
    }

    /// An operation failed on an I/O error: redb may refuse everything from now on.
    pub(super) fn note_failure(&self) {
        if self.path.is_some() {
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    /// The database to work on: opened again first if an operation failed since. While another
    /// thread's transaction of the failed one lives, redb keeps the file open (its close is
    /// deferred) and refuses to open it again: operations fail as the failed database made them,
    /// and a later one tries again. Opening after a failed commit may repair the file (redb
    /// walks it), so the first operation after the failure waits for that.
    fn database(&self) -> Result<Arc<Database>, TransactionError> {
        if self.failed.load(Ordering::SeqCst) {
            self.reopen()?;
        }
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| TransactionError::Storage(redb::StorageError::PreviousIo))
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the store file: the store's own file IO"
    )]
    fn reopen(&self) -> Result<(), TransactionError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(()); // another thread opened it again meanwhile
        }
        if let Some(failed) = current.take() {
            match Arc::try_unwrap(failed) {
                // Closed inside `catch_unwind`, as any close of a store.
                Ok(db) => {
                    let _ =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
                }
                Err(shared) => {
                    *current = Some(shared);
                    return Err(TransactionError::Storage(redb::StorageError::PreviousIo));
                }
            }
        }
        let opened =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| builder().open(path)))
                .unwrap_or_else(|_| {
                    Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(
                        "redb panicked opening the store again".into(),
                    )))
                });
        // Still held by a transaction of the failed one, or the disk still failing: operations
        // fail until a later one opens it.
        // (redb says "already open" while a transaction of the failed one lives: shown as the
        // failed database's own refusal, which tells the user to try again.)
        let db = opened.map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                TransactionError::Storage(redb::StorageError::PreviousIo)
            }
            other => TransactionError::Storage(database_error(other)),
        })?;
        *current = Some(Arc::new(db));
        self.failed.store(false, Ordering::SeqCst);
        Ok(())
    }
}

fn database_error(e: redb::DatabaseError) -> redb::StorageError {
    match e {
        redb::DatabaseError::Storage(s) => s,
        other => redb::StorageError::Io(std::io::Error::other(other.to_string())),
    }
}

impl Drop for DbHandle {
    /// Closed inside `catch_unwind`: closing a file whose pages were damaged outside redb may
    /// panic, and a damaged store must never crash its host.
    fn drop(&mut self) {
        let current = self.current.get_mut().unwrap_or_else(|p| p.into_inner());
        let db = current.take();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db)));
    }
}

impl std::fmt::Debug for DbHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Database")
    }
}
