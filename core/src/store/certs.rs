//! Certificates: the newest verified certificate per node, kept as the signed bytes received.

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use super::schema::CERTS;
use crate::identity::NodeId;
use crate::trust::Certificate;

impl Store {
    /// The newest verified certificate known for `node`.
    pub fn certificate(&self, node: &NodeId) -> Result<Option<Certificate>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            get_credential(&read.open_table(CERTS)?, node, Certificate::from_bytes)
        })
    }

    /// Every certificate known.
    pub fn certificates(&self) -> Result<Vec<Certificate>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            all_credentials(&read.open_table(CERTS)?, Certificate::from_bytes)
        })
    }

    /// This node's own certificate, once enrolled (cached: every write asks for it).
    pub fn own_certificate(&self) -> Result<Option<Certificate>, StoreError> {
        let mut cached = self.own_cert.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cert) = cached.as_ref() {
            return Ok(cert.clone());
        }
        let cert = self.certificate(&self.actor)?;
        *cached = Some(cert.clone());
        Ok(cert)
    }
}

impl WriteBatch<'_> {
    /// The certificate of `node` as of this batch (including ones received in it).
    pub fn certificate(&mut self, node: &NodeId) -> Result<Option<Certificate>, StoreError> {
        if let Some(known) = self.certificates.get(node) {
            return Ok(known.clone());
        }
        let store = self.store;
        let cert = store.contain(|| {
            get_credential(&self.tx.open_table(CERTS)?, node, Certificate::from_bytes)
        })?;
        self.certificates.insert(*node, cert.clone());
        Ok(cert)
    }

    /// Keeps a verified certificate if it supersedes the one held ([`Certificate::supersedes`]).
    /// Returns whether it was kept.
    pub fn put_certificate(&mut self, cert: &Certificate) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let mut table = self.tx.open_table(CERTS)?;
            let node = cert.node();
            let bytes = cert.to_bytes();
            let newer = match table.get(node.as_bytes().as_slice())? {
                // A peer's Hello brings the certificate held for it every session: the same
                // bytes are not newer, and need no signature check to tell.
                Some(v) if v.value() == bytes.as_slice() => false,
                Some(v) => Certificate::from_bytes(v.value())
                    .map(|held| cert.supersedes(&held))
                    .unwrap_or(true),
                None => true,
            };
            if newer {
                table.insert(node.as_bytes().as_slice(), bytes.as_slice())?;
                self.certificates.insert(node, Some(cert.clone()));
                // Listeners act on it: a durable commit that tells them (see `CommitHook`).
                self.durable = true;
                self.notify = true;
                self.own_cert_changed |= node == store.actor;
            }
            Ok(newer)
        })
    }
}

/// A stored certificate or revocation of `node`, decoded by `decode` (a certificate's signature is
/// verified again: a certificate grants, so one planted in the file must not pass).
pub(super) fn get_credential<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    node: &NodeId,
    decode: impl Fn(&[u8]) -> Result<T, crate::trust::TrustError>,
) -> Result<Option<T>, StoreError> {
    table
        .get(node.as_bytes().as_slice())?
        .map(|v| decode(v.value()).map_err(|e| StoreError::Corrupt(format!("stored {e}"))))
        .transpose()
}

/// Every stored certificate or revocation of a table, decoded.
pub(super) fn all_credentials<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    decode: impl Fn(&[u8]) -> Result<T, crate::trust::TrustError>,
) -> Result<Vec<T>, StoreError> {
    table
        .iter()?
        .map(|item| {
            let (_, v) = item?;
            decode(v.value()).map_err(|e| StoreError::Corrupt(format!("stored {e}")))
        })
        .collect()
}
