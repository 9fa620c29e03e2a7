//! Opening a store file: the magic and format version checked (and older formats migrated, see
//! `migrate.rs`), the key checked before anything is read or written, a new store's tables
//! created; and the full integrity check `omsyn check` runs.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};

use super::db;
use super::error::{OpenError, StoreError};
use super::handle::{Store, StoreKeys, panic_text};
use super::migrate;
use super::schema::{FORMAT_VERSION, MAGIC, META, create_tables};

impl Store {
    /// Opens the store at `path`, creating it if missing. `keys.signer` is the local node, which
    /// authors (and signs) every change made through this store; `keys.data` encrypts it.
    /// `fresh_epoch` (random bytes from the caller) becomes the store's epoch if the store is
    /// created or migrated now. A wrong key is refused before anything is read or written.
    #[allow(
        clippy::disallowed_methods,
        reason = "the store file: the store's own file IO"
    )]
    pub fn open(path: &Path, keys: &StoreKeys, fresh_epoch: [u8; 16]) -> Result<Store, OpenError> {
        let existed = path.exists();
        refuse_empty(path)?;
        let builder = db::builder();
        // A plain open trusts the file: it is fast and independent of the store's size, but redb
        // may panic on pages altered outside redb (bit rot, a bad copy, tampering). Such panics
        // are contained by `contain` and surface as `Corrupt`; `Store::verify` checks every page.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = builder.create(path).map_err(|e| open_error(path, e))?;
            let mut store = Store::from_db(db, Some(path), keys);
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
        let mut builder = db::builder();
        builder.set_check_integrity_on_open(true);
        let db = builder.open(path).map_err(|e| open_error(path, e))?;
        let mut store = Store::from_db(db, Some(path), keys);
        store.check_or_init_meta(path, true, fresh_epoch)?;
        Ok(store)
    }

    /// An in-memory store (for tests and simulations).
    pub fn in_memory(keys: &StoreKeys, fresh_epoch: [u8; 16]) -> Result<Store, OpenError> {
        let path = PathBuf::from(":memory:");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| open_error(&path, e))?;
        let mut store = Store::from_db(db, None, keys);
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
        // Every table up front, so readers never meet a missing table.
        create_tables(&tx, epoch, &self.cipher.key_check())?;
        tx.commit()?;
        Ok(())
    }

    /// Whether the store at `path` is not encrypted yet: missing, or written before format 3 (it
    /// is encrypted when opened, with a key the caller then creates).
    #[allow(
        clippy::disallowed_methods,
        reason = "the store file: the store's own file IO"
    )]
    pub fn is_unencrypted(path: &Path) -> Result<bool, OpenError> {
        if !path.exists() {
            return Ok(true);
        }
        refuse_empty(path)?;
        let db = redb::Database::open(path).map_err(|e| open_error(path, e))?;
        let corrupt = |e: &dyn std::fmt::Display| OpenError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let read = db.begin_read().map_err(|e| corrupt(&e))?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(true),
            Err(e) => return Err(corrupt(&e)),
        };
        let version = meta
            .get("format_version")
            .map_err(|e| corrupt(&e))?
            .and_then(|v| v.value().try_into().ok().map(u32::from_le_bytes));
        Ok(version.is_none_or(|v| v < 3))
    }

    fn key_matches(&self) -> Result<bool, StoreError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        let check = meta.get("key_check")?;
        Ok(check.is_some_and(|v| self.cipher.matches(v.value())))
    }
}

/// An existing store file of 0 bytes was truncated (a full disk, a bad copy): it is refused,
/// never taken for a new store, which would silently lose every patient it held.
#[allow(
    clippy::disallowed_methods,
    reason = "the store file: the store's own file IO"
)]
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
