//! Revocations: one per revoked node, kept as the signed bytes received.

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::certs::{all_credentials, get_credential};
use super::error::StoreError;
use super::handle::Store;
use super::schema::REVOCATIONS;
use crate::identity::NodeId;
use crate::trust::Revocation;

impl Store {
    /// Every revocation known (verified when stored, not again: see
    /// [`Revocation::from_stored_bytes`]).
    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            all_credentials(
                &read.open_table(REVOCATIONS)?,
                Revocation::from_stored_bytes,
            )
        })
    }

    /// Every revocation known, as stored: the revoked node and the signed bytes. Not verified
    /// again — each was verified before it was stored, and whoever it is sent to verifies it —
    /// so a session forwards revocations without a signature check per revocation per session.
    pub fn revocation_bytes(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            read.open_table(REVOCATIONS)?
                .iter()?
                .map(|item| {
                    let (k, v) = item?;
                    let node = <[u8; 32]>::try_from(k.value())
                        .ok()
                        .and_then(|b| NodeId::from_bytes(b).ok())
                        .ok_or_else(|| StoreError::Corrupt("revoked node id".into()))?;
                    Ok((node, v.value().to_vec()))
                })
                .collect()
        })
    }

    /// The revocation of `node`, if any (verified when stored, not again).
    pub fn revocation(&self, node: &NodeId) -> Result<Option<Revocation>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            get_credential(
                &read.open_table(REVOCATIONS)?,
                node,
                Revocation::from_stored_bytes,
            )
        })
    }
}

impl WriteBatch<'_> {
    /// Whether `node` is revoked as of this batch.
    pub fn revoked(&mut self, node: &NodeId) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let table = self.tx.open_table(REVOCATIONS)?;
            Ok(table.get(node.as_bytes().as_slice())?.is_some())
        })
    }

    /// The revocation of `node` as of this batch, if any.
    pub fn revocation(&mut self, node: &NodeId) -> Result<Option<Revocation>, StoreError> {
        let store = self.store;
        store.contain(|| {
            get_credential(
                &self.tx.open_table(REVOCATIONS)?,
                node,
                Revocation::from_stored_bytes,
            )
        })
    }

    /// Keeps a verified revocation. Returns whether it was new.
    pub fn put_revocation(&mut self, revocation: &Revocation) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let mut table = self.tx.open_table(REVOCATIONS)?;
            let node = revocation.body().node;
            if table.get(node.as_bytes().as_slice())?.is_some() {
                return Ok(false);
            }
            table.insert(node.as_bytes().as_slice(), revocation.to_bytes().as_slice())?;
            self.durable = true;
            self.revocations_stored = true;
            Ok(true)
        })
    }
}
