//! The one error type apps see: a flat enum (Kotlin sealed class, Swift enum, Python exception
//! classes) whose message says what went wrong and what to do.

use omsyn_core::RepoError;
use omsyn_core::identity::IdentityError;
use omsyn_core::repo::OpenRepoError;
use omsyn_core::store::OpenError;

/// Why a call failed. Nothing was written when a call fails.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum OmsynError {
    /// An argument was malformed or out of range (an id, a day, a time, a key's length...).
    #[error("{0}")]
    InvalidInput(String),
    /// The named patient, visit, entry or conflict is not on this device.
    #[error("{0}")]
    NotFound(String),
    /// No work-related need for the patient, or the patient blocked this user (sperring). The
    /// refusal is logged.
    #[error("{0}")]
    AccessDenied(String),
    /// This device's role may not make the change (e.g. a nurse editing the plan).
    #[error("{0}")]
    NotPermitted(String),
    /// The store key is not the one the store was encrypted with, or no store key was found.
    #[error("{0}")]
    WrongKey(String),
    /// The data directory holds no node, or one this build cannot read.
    #[error("{0}")]
    NoNode(String),
    /// Another process (or another open node) has the data directory open.
    #[error("{0}")]
    InUse(String),
    /// The store failed (disk full, damaged file).
    #[error("{0}")]
    Storage(String),
    /// The network could not be set up or the peer could not be reached.
    #[error("{0}")]
    Network(String),
    /// The call needs sync to be running (or stopped) and it is not.
    #[error("{0}")]
    SyncState(String),
    /// This device was revoked: its data is destroyed. Delete the keystore key.
    #[error("{0}")]
    Revoked(String),
}

impl From<RepoError> for OmsynError {
    fn from(e: RepoError) -> Self {
        let message = e.to_string();
        match e {
            RepoError::NotFound(_) => OmsynError::NotFound(message),
            RepoError::NotPermitted { .. } | RepoError::Unauthorized(_) => {
                OmsynError::NotPermitted(message)
            }
            RepoError::AccessDenied(_) => OmsynError::AccessDenied(message),
            RepoError::Store(_) => OmsynError::Storage(message),
            _ => OmsynError::InvalidInput(message),
        }
    }
}

impl From<OpenRepoError> for OmsynError {
    fn from(e: OpenRepoError) -> Self {
        let message = e.to_string();
        match e {
            OpenRepoError::Store(OpenError::WrongKey(_)) | OpenRepoError::Key(_) => {
                OmsynError::WrongKey(message)
            }
            OpenRepoError::Store(OpenError::Locked(_)) => OmsynError::InUse(message),
            OpenRepoError::Identity(IdentityError::AlreadyInitialised(_)) => {
                OmsynError::InvalidInput(message)
            }
            OpenRepoError::Identity(_)
            | OpenRepoError::Store(OpenError::Foreign { .. })
            | OpenRepoError::Store(OpenError::UnsupportedVersion { .. }) => {
                OmsynError::NoNode(message)
            }
            _ => OmsynError::Storage(message),
        }
    }
}

impl From<omsyn_core::trust::TrustError> for OmsynError {
    fn from(e: omsyn_core::trust::TrustError) -> Self {
        OmsynError::InvalidInput(e.to_string())
    }
}

/// A malformed argument, named.
pub(crate) fn invalid(what: &str, error: impl std::fmt::Display) -> OmsynError {
    OmsynError::InvalidInput(format!("{what}: {error}"))
}

impl From<omsyn_core::service::ServiceError> for OmsynError {
    fn from(e: omsyn_core::service::ServiceError) -> Self {
        match e {
            omsyn_core::service::ServiceError::Repo(e) => e.into(),
            e @ omsyn_core::service::ServiceError::Invalid { .. } => {
                OmsynError::InvalidInput(e.to_string())
            }
        }
    }
}
