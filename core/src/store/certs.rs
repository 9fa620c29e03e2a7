//! Certificates: each node's newest verified certificate (what it is served by; see
//! [`Certificate::supersedes`]) and its history — the first and the last of each run of
//! certificates that grant the same — kept as the signed bytes received.

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use super::schema::{CERT_HISTORY, CERTS};
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

    /// The certificates kept for `node`: its history (the first and last of each run that grants
    /// the same, superseded ones included) and the newest; what [`Certificate::in_force`] chooses
    /// from to judge a change by when it was made.
    pub fn certificate_history(&self, node: &NodeId) -> Result<Vec<Certificate>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            history(
                &read.open_table(CERTS)?,
                &read.open_table(CERT_HISTORY)?,
                node,
            )
        })
    }

    /// This node's own certificate, once enrolled: the newest.
    pub fn own_certificate(&self) -> Result<Option<Certificate>, StoreError> {
        Ok(Certificate::newest(&self.own_certificates()?).cloned())
    }

    /// This node's own grant in force at `at_ms` ([`Certificate::in_force`] among its history):
    /// what a write it makes then is judged by at every receiver. `None` before enrolment.
    pub fn own_grant_at(&self, at_ms: i64) -> Result<Option<crate::trust::Grant>, StoreError> {
        Ok(grant_in_force(&self.own_certificates()?, at_ms))
    }

    /// This node's own certificates, its history and the newest (cached: every write asks).
    pub fn own_certificates(&self) -> Result<std::sync::Arc<Vec<Certificate>>, StoreError> {
        let mut cached = self.own_certs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(certs) = cached.as_ref() {
            return Ok(certs.clone());
        }
        let certs = std::sync::Arc::new(self.certificate_history(&self.actor)?);
        *cached = Some(certs.clone());
        Ok(certs)
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

    /// Every certificate of `node` as of this batch (see [`Store::certificate_history`]).
    pub fn certificate_history(&mut self, node: &NodeId) -> Result<Vec<Certificate>, StoreError> {
        if let Some(known) = self.histories.get(node) {
            return Ok(known.clone());
        }
        let store = self.store;
        let certs = store.contain(|| {
            history(
                &self.tx.open_table(CERTS)?,
                &self.tx.open_table(CERT_HISTORY)?,
                node,
            )
        })?;
        self.histories.insert(*node, certs.clone());
        Ok(certs)
    }

    /// Keeps a verified certificate in its node's history where it starts or ends a run
    /// (see `keep_in_history`), and as the newest if it supersedes the one held
    /// ([`Certificate::supersedes`]). Returns whether it became the newest in this call.
    pub fn put_certificate(&mut self, cert: &Certificate) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let mut table = self.tx.open_table(CERTS)?;
            let mut history = self.tx.open_table(CERT_HISTORY)?;
            let node = cert.node();
            let bytes = cert.to_bytes();
            let held = table
                .get(node.as_bytes().as_slice())?
                .map(|v| v.value().to_vec());
            let newer = match &held {
                // A peer's Hello brings the certificate held for it every session: the same
                // bytes are not newer, and need no signature check to tell.
                Some(held) if held == &bytes => return Ok(false),
                Some(held) => Certificate::from_bytes(held)
                    .map(|held| cert.supersedes(&held))
                    .unwrap_or(true),
                None => true,
            };
            let mut candidates = vec![cert.clone()];
            // A store of format 11 kept only the newest: the one superseded joins the history.
            if let (true, Some(held)) = (newer, &held)
                && let Ok(held) = Certificate::from_bytes(held)
            {
                candidates.push(held);
            }
            if keep_in_history(&mut history, &node, candidates)? {
                self.histories.remove(&node);
                self.durable = true;
                self.own_cert_changed |= node == store.actor;
            }
            if newer {
                table.insert(node.as_bytes().as_slice(), bytes.as_slice())?;
                self.certificates.insert(node, Some(cert.clone()));
                self.histories.remove(&node);
                // Listeners act on it: a durable commit that tells them (see `CommitHook`).
                self.durable = true;
                self.notify = true;
                self.own_cert_changed |= node == store.actor;
            }
            Ok(newer)
        })
    }
}

impl WriteBatch<'_> {
    /// This node's own grant in force at `at_ms` as of this batch (its own certificates received
    /// in it included; see [`Store::own_grant_at`]). From the store's cache unless this batch
    /// changed them: every write asks, and reading them anew verifies each signature.
    pub fn own_grant_at(&mut self, at_ms: i64) -> Result<Option<crate::trust::Grant>, StoreError> {
        if !self.own_cert_changed {
            return self.store.own_grant_at(at_ms);
        }
        let certs = self.certificate_history(&self.store.actor)?;
        Ok(grant_in_force(&certs, at_ms))
    }

    /// Keeps one of this node's own certificates in its history only, where it judges this
    /// node's own earlier changes coming back to it (a phone restored empty, its own export read
    /// in), as its peers judge them; never as its newest: this node's certificate changes only
    /// by enrolment or a base's renewal, which check it is for what this node serves. One
    /// issued after the newest held is not kept (it would be the newest). Returns whether the
    /// history changed.
    pub fn keep_own_earlier_certificate(&mut self, cert: &Certificate) -> Result<bool, StoreError> {
        let store = self.store;
        let node = store.actor;
        if cert.node() != node {
            return Ok(false);
        }
        match self.certificate(&node)? {
            Some(newest) if newest.supersedes(cert) => {}
            _ => return Ok(false),
        }
        let changed = store.contain(|| {
            let mut history = self.tx.open_table(CERT_HISTORY)?;
            keep_in_history(&mut history, &node, vec![cert.clone()])
        })?;
        if changed {
            self.histories.remove(&node);
            self.durable = true;
            self.own_cert_changed = true;
        }
        Ok(changed)
    }
}

/// The grant of the certificate in force at `at_ms` among one node's `certs`.
fn grant_in_force(certs: &[Certificate], at_ms: i64) -> Option<crate::trust::Grant> {
    Certificate::in_force(certs, at_ms).map(|c| c.grant().clone())
}

/// Adds `candidates` to `node`'s history, which keeps the first and the last certificate of each
/// run that grants the same ([`Certificate::same_grant`]) in issue order: a renewal every half
/// shift would grow it without end, and the renewals between judge a change as the run's first
/// does (see [`Certificate::in_force`]). The last is kept for a device re-enrolled with a start
/// ahead of this node's clock: until then it is served by its last renewal, which may have
/// outlived the first. Returns whether a row changed. A certificate already a row, or one
/// between a run's first and last (a device presenting an older renewal every session),
/// changes nothing and writes nothing.
fn keep_in_history(
    history: &mut redb::Table<&'static [u8], ()>,
    node: &NodeId,
    candidates: Vec<Certificate>,
) -> Result<bool, StoreError> {
    let rows = history_rows(history, node)?;
    if candidates
        .iter()
        .all(|c| rows.iter().any(|row| row == &c.to_bytes()))
    {
        return Ok(false);
    }
    let mut all = candidates;
    for row in &rows {
        all.push(
            Certificate::from_bytes(row).map_err(|e| StoreError::Corrupt(format!("stored {e}")))?,
        );
    }
    all.sort_by(|a, b| a.issue_order(b));
    all.dedup();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for run in all.chunk_by(|a, b| a.same_grant(b)) {
        for end in [run.first(), run.last()].into_iter().flatten() {
            if !kept.contains(&end.to_bytes()) {
                kept.push(end.to_bytes());
            }
        }
    }
    let (mut now_kept, mut were) = (kept.clone(), rows.clone());
    now_kept.sort();
    were.sort();
    if now_kept == were {
        return Ok(false);
    }
    for row in rows.iter().filter(|r| !kept.contains(r)) {
        history.remove(history_key(node, row).as_slice())?;
    }
    for row in kept.iter().filter(|k| !rows.contains(k)) {
        history.insert(history_key(node, row).as_slice(), ())?;
    }
    Ok(true)
}

/// The certificates' bytes in `node`'s history rows, in key order.
fn history_rows(
    history: &impl ReadableTable<&'static [u8], ()>,
    node: &NodeId,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let prefix = node.as_bytes().as_slice();
    let mut rows = Vec::new();
    for row in history.range(prefix..)? {
        let (key, _) = row?;
        let Some(bytes) = key.value().strip_prefix(prefix) else {
            break;
        };
        rows.push(bytes.to_vec());
    }
    Ok(rows)
}

/// A history row's key: the node, then the certificate's bytes.
fn history_key(node: &NodeId, bytes: &[u8]) -> Vec<u8> {
    [node.as_bytes().as_slice(), bytes].concat()
}

/// Every certificate of `node`: its history and the newest (which a store of format 11, or one
/// stored before, may hold only in `certs`), each verified once.
fn history(
    newest: &impl ReadableTable<&'static [u8], &'static [u8]>,
    history: &impl ReadableTable<&'static [u8], ()>,
    node: &NodeId,
) -> Result<Vec<Certificate>, StoreError> {
    let mut held: Vec<Vec<u8>> = newest
        .get(node.as_bytes().as_slice())?
        .map(|v| v.value().to_vec())
        .into_iter()
        .collect();
    for row in history_rows(history, node)? {
        if !held.contains(&row) {
            held.push(row);
        }
    }
    held.iter()
        .map(|bytes| {
            Certificate::from_bytes(bytes).map_err(|e| StoreError::Corrupt(format!("stored {e}")))
        })
        .collect()
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
