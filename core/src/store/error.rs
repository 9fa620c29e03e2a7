//! The store's errors: [`OpenError`] (opening a file) and [`StoreError`] (a read or write on an
//! open store), with redb's errors mapped into them so no redb type shows in the store's API.

use std::path::PathBuf;

use crate::docs::DocError;

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
    /// redb refused the operation (a transaction or table error it reports as text).
    #[error("storage failed: {0}")]
    Io(String),
    /// The disk or file system failed (a full disk, a failing device): the write was not
    /// acknowledged. The store is opened again at its next operation (see `db.rs`).
    #[error("storage failed: {0}")]
    Disk(String),
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
                } else if is_disk_failure(&text) {
                    StoreError::Disk(explain_disk(text))
                } else {
                    StoreError::Io(text)
                }
            }
        }
    )*};
}
/// Whether redb's error is the file system failing (its `StorageError::Io`, shown as "I/O
/// error: …", and `PreviousIo`, which it returns for everything after one) rather than a
/// refusal of the operation itself.
fn is_disk_failure(text: &str) -> bool {
    text.starts_with("I/O error") || text.contains("Previous I/O error")
}

/// A full disk said so, with what became of the write: the one message a user can act on.
fn explain_disk(text: String) -> String {
    if text.contains("No space left on device") || text.contains("os error 28") {
        format!(
            "the disk is full ({text}): this write failed and was not acknowledged (reading a patient's data writes to the access log too); free space and try again"
        )
    } else if text.contains("Previous I/O error") {
        format!(
            "an earlier write failed (a full disk, a failing device) and the store is being opened again ({text}): try again"
        )
    } else {
        text
    }
}

storage_error_from!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);
