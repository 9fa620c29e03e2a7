//! Opening a node's data directory: its store, with the host's key file if given; and telling
//! "another process holds it" (then a command is forwarded to the daemon) from a real failure.

use std::path::Path;

use anyhow::{Context, Result};
use omsyn_core::Repo;
use omsyn_core::repo::OpenRepoError;
use omsyn_core::store::OpenError;

/// Opens the node in `data` (with the host's store key file, if given).
pub(crate) fn open_repo(data: &Path, key_file: Option<&Path>) -> Result<Repo> {
    let key = host_key(key_file)?;
    match Repo::open(data, key, &mut omsyn_node::clock::rng()) {
        Ok(mut repo) => {
            if let Some(file) = key_file {
                repo.add_key_file(file.to_owned());
            }
            Ok(repo)
        }
        Err(OpenRepoError::Store(e @ OpenError::Locked(_))) => Err(e.into()),
        Err(e) => Err(e).with_context(|| format!("opening the node in {}", data.display())),
    }
}

/// The store key from `--store-key-file`, if the host keeps it outside the data directory.
pub(crate) fn host_key(file: Option<&Path>) -> Result<Option<omsyn_core::store::StoreKey>> {
    file.map(|f| {
        omsyn_core::store::StoreKey::load_file(f)
            .with_context(|| format!("--store-key-file {}", f.display()))
    })
    .transpose()
}

/// Whether opening failed because another process (an `omsyn run`) holds the store.
pub(crate) fn is_locked(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<OpenError>(), Some(OpenError::Locked(_)))
}
