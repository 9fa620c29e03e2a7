//! The store's part of Trust: change signatures, certificates, revocations, the relations index
//! that need-based sharing reads, encryption-key checks, the format-3 migration, and removing a
//! patient's documents when a device's need ends.

use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::schema::{
    CERTS, CHUNKS, CONFLICTS, DAY_INDEX, DAY_INDEX_OWNERS, DOCS, META, OPEN_TASKS, PATIENT_NAMES,
    PEER_DOCS, RELATIONS, REVOCATIONS, TASKS, VISITS, WITHHELD,
};
use super::{
    DocMeta, OpenError, Store, StoreError, WriteBatch, doc_ids_with_prefix, patient_prefixes,
    patient_rows,
};
use crate::docs::{Document, DocumentId};
use crate::identity::NodeId;
use crate::ids::PatientId;
use crate::trust::{Certificate, Revocation};

/// One relation of a patient to a staff member or zone (see the `RELATIONS` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `zone:…`, `team:…`, `block:…`, `explicit:…` or `visit:<staff>:<day>`.
    pub name: String,
    /// For explicit accesses: until when (ms); 0 otherwise.
    pub value: i64,
}

/// The relation marking a patient a base withdrew from this device (value: when, ms).
pub const WITHDRAWN: &str = "withdrawn";
/// Like [`WITHDRAWN`], because the patient blocks this device's user (sperring).
pub const WITHDRAWN_BLOCKED: &str = "withdrawn:blocked";

pub(super) fn sealed_value_error(place: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{place} does not decrypt with the store key: it was altered, or written with another key"
    ))
}

impl Store {
    /// Whether the store at `path` is not encrypted yet: missing, or written before format 3 (it
    /// is encrypted when opened, with a key the caller then creates).
    pub fn is_unencrypted(path: &Path) -> Result<bool, OpenError> {
        if !path.exists() {
            return Ok(true);
        }
        super::refuse_empty(path)?;
        let db = redb::Database::open(path).map_err(|e| super::open_error(path, e))?;
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

    pub(super) fn create_trust_tables(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        tx.open_table(PATIENT_NAMES)?;
        tx.open_table(CERTS)?;
        tx.open_table(REVOCATIONS)?;
        tx.open_table(RELATIONS)?;
        tx.open_table(WITHHELD)?;
        tx.open_table(META)?
            .insert("key_check", self.cipher.key_check().as_slice())?;
        Ok(())
    }

    pub(super) fn key_matches(&self) -> Result<bool, StoreError> {
        let read = self.db.begin_read()?;
        let meta = read.open_table(META)?;
        let check = meta.get("key_check")?;
        Ok(check.is_some_and(|v| self.cipher.matches(v.value())))
    }

    pub(super) fn open_value(&self, place: &[u8], sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.cipher
            .open(place, sealed)
            .ok_or_else(|| sealed_value_error(&String::from_utf8_lossy(place)))
    }

    /// Signs the local node's new changes in `doc` (called by commit before they are stored, so
    /// the signatures go into the same chunk). Returns the hashes of every unsaved change.
    pub(super) fn sign_own_changes(&self, doc: &mut Document) -> Vec<[u8; 32]> {
        let mut new = Vec::new();
        for (hash, actor) in doc.unsaved_change_authors() {
            if actor.as_slice() == self.actor.as_bytes() && doc.signature(&hash).is_none() {
                doc.add_signature(hash, self.sign_change(&hash));
            }
            new.push(hash);
        }
        new
    }

    pub(super) fn sign_change(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.signer.sign(&crate::trust::change_signing_bytes(hash))
    }

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

    /// Every revocation known.
    pub fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            all_credentials(&read.open_table(REVOCATIONS)?, Revocation::from_bytes)
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

    /// The revocation of `node`, if any.
    pub fn revocation(&self, node: &NodeId) -> Result<Option<Revocation>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            get_credential(&read.open_table(REVOCATIONS)?, node, Revocation::from_bytes)
        })
    }

    /// The patient's relations whose names start with `prefix` (see [`Relation`]).
    pub fn relations(
        &self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            relations_in(&read.open_table(RELATIONS)?, patient, prefix)
        })
    }

    /// Documents withheld from `peer`: all of them, or only those of `patient`.
    pub fn withheld(
        &self,
        peer: &NodeId,
        patient: Option<&PatientId>,
    ) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(WITHHELD)?;
            let p = peer.as_bytes().as_slice();
            let range = match patient {
                Some(patient) => {
                    table.range((p, patient.as_str(), "")..=(p, patient.as_str(), "\u{10FFFF}"))?
                }
                None => table.range((p, "", "")..=(p, "\u{10FFFF}", "\u{10FFFF}"))?,
            };
            range
                .map(|item| {
                    let (k, _) = item?;
                    DocumentId::parse(k.value().2)
                        .map_err(|e| StoreError::Corrupt(format!("withheld document id: {e}")))
                })
                .collect()
        })
    }

    /// Ids of every document about `patient` held here.
    pub fn patient_doc_ids(&self, patient: &PatientId) -> Result<Vec<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let docs = read.open_table(DOCS)?;
            let mut out = Vec::new();
            for prefix in patient_prefixes(patient) {
                out.extend(doc_ids_with_prefix(&docs, &prefix)?);
            }
            Ok(out)
        })
    }

    /// Whether the patient has relation `name`; its value if so.
    pub fn relation(&self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(RELATIONS)?;
            Ok(table.get((patient.as_str(), name))?.map(|v| v.value()))
        })
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

    /// Whether `node` is revoked as of this batch.
    pub fn revoked(&mut self, node: &NodeId) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let table = self.tx.open_table(REVOCATIONS)?;
            Ok(table.get(node.as_bytes().as_slice())?.is_some())
        })
    }

    /// Marks `doc` as withheld from `peer` (`true`) or no longer withheld (`false`).
    pub fn set_withheld(
        &mut self,
        peer: &NodeId,
        doc: &DocumentId,
        withheld: bool,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let patient = doc.patient().map_or("", |p| p.as_str());
            let key = doc.to_string();
            let mut table = self.tx.open_table(WITHHELD)?;
            let k = (peer.as_bytes().as_slice(), patient, key.as_str());
            if withheld {
                if table.insert(k, 1)?.is_none() {
                    self.durable = true;
                }
            } else if table.remove(k)?.is_some() {
                self.durable = true;
            }
            Ok(())
        })
    }

    /// Marks `patient` as withdrawn from this device by a base (`Some((when, blocked))`), or as
    /// needed again (`None`).
    pub fn set_withdrawn(
        &mut self,
        patient: &PatientId,
        withdrawn: Option<(i64, bool)>,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let mut table = self.tx.open_table(RELATIONS)?;
            let p = patient.as_str();
            table.remove((p, WITHDRAWN))?;
            table.remove((p, WITHDRAWN_BLOCKED))?;
            if let Some((at, blocked)) = withdrawn {
                let name = if blocked {
                    WITHDRAWN_BLOCKED
                } else {
                    WITHDRAWN
                };
                table.insert((p, name), at)?;
            }
            self.durable = true;
            Ok(())
        })
    }

    /// Forgets what `peer` is known to hold of `doc`.
    pub fn forget_peer_doc(&mut self, peer: &NodeId, doc: &DocumentId) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let key = doc.to_string();
            self.tx
                .open_table(PEER_DOCS)?
                .remove((peer.as_bytes().as_slice(), key.as_str()))?;
            Ok(())
        })
    }

    /// Keeps a verified certificate if it is newer than the one held. Returns whether it was kept.
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
                    .map(|held| held.grant().not_after_ms < cert.grant().not_after_ms)
                    .unwrap_or(true),
                None => true,
            };
            if newer {
                table.insert(node.as_bytes().as_slice(), bytes.as_slice())?;
                self.certificates.insert(node, Some(cert.clone()));
                self.durable = true;
                self.own_cert_changed |= node == store.actor;
            }
            Ok(newer)
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
            Ok(true)
        })
    }

    /// Removes every document about `patient` and everything derived from them (the device's
    /// need ended, or a block names its user). The caller decides that nothing is lost.
    pub fn remove_patient(&mut self, patient: &PatientId) -> Result<Vec<DocumentId>, StoreError> {
        let store = self.store;
        store.contain(|| {
            let tx = &self.tx;
            let mut removed = Vec::new();
            {
                let docs = tx.open_table(DOCS)?;
                for prefix in patient_prefixes(patient) {
                    removed.extend(doc_ids_with_prefix(&docs, &prefix)?);
                }
            }
            let keys: Vec<String> = removed.iter().map(ToString::to_string).collect();
            for key in &keys {
                let k = key.as_str();
                let seqs: Vec<u64> = tx
                    .open_table(CHUNKS)?
                    .range((k, 0)..=(k, u64::MAX))?
                    .map(|item| item.map(|(key, _)| key.value().1))
                    .collect::<Result<_, _>>()?;
                let mut chunks = tx.open_table(CHUNKS)?;
                for s in seqs {
                    chunks.remove((k, s))?;
                }
                let meta = match tx.open_table(DOCS)?.remove(k)? {
                    Some(v) => DocMeta::decode(v.value())?,
                    None => DocMeta::default(),
                };
                super::leave_log(tx, k, &meta)?;
                let peer_keys: Vec<Vec<u8>> = tx
                    .open_table(PEER_DOCS)?
                    .iter()?
                    .filter_map(|item| {
                        item.map(|(key, _)| {
                            let (peer, doc) = key.value();
                            (doc == k).then(|| peer.to_vec())
                        })
                        .transpose()
                    })
                    .collect::<Result<_, _>>()?;
                let mut peer_docs = tx.open_table(PEER_DOCS)?;
                for peer in peer_keys {
                    peer_docs.remove((peer.as_slice(), k))?;
                }
            }
            let p = patient.as_str();
            let withheld: Vec<(Vec<u8>, String)> = tx
                .open_table(WITHHELD)?
                .iter()?
                .filter_map(|item| {
                    item.map(|(k, _)| {
                        let (peer, pat, doc) = k.value();
                        (pat == p).then(|| (peer.to_vec(), doc.to_owned()))
                    })
                    .transpose()
                })
                .collect::<Result<_, _>>()?;
            let mut table = tx.open_table(WITHHELD)?;
            for (peer, doc) in withheld {
                table.remove((peer.as_slice(), p, doc.as_str()))?;
            }
            drop(table);
            tx.open_table(PATIENT_NAMES)?.remove(p)?;
            remove_day_rows(tx, p)?;
            remove_range(&mut tx.open_table(CONFLICTS)?, p)?;
            remove_range(&mut tx.open_table(TASKS)?, p)?;
            remove_range(&mut tx.open_table(OPEN_TASKS)?, p)?;
            remove_range(&mut tx.open_table(RELATIONS)?, p)?;
            let visits: Vec<String> = tx
                .open_table(VISITS)?
                .iter()?
                .filter_map(|item| {
                    item.map(|(v, loc)| {
                        keys.iter()
                            .any(|k| k == loc.value())
                            .then(|| v.value().to_owned())
                    })
                    .transpose()
                })
                .collect::<Result<_, _>>()?;
            let mut table = tx.open_table(VISITS)?;
            for v in visits {
                table.remove(v.as_str())?;
            }
            drop(table);
            let mut cache = store.lock_cache();
            for id in &removed {
                cache.remove(id);
                self.docs.remove(id);
            }
            self.durable = true;
            Ok(removed)
        })
    }
}

/// A stored certificate or revocation of `node`, decoded (and its signature verified again).
fn get_credential<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    node: &NodeId,
    decode: impl Fn(&[u8]) -> Result<T, crate::trust::TrustError>,
) -> Result<Option<T>, StoreError> {
    table
        .get(node.as_bytes().as_slice())?
        .map(|v| decode(v.value()).map_err(|e| StoreError::Corrupt(format!("stored {e}"))))
        .transpose()
}

/// The patient's relations whose names start with `prefix`, from `table` as a read or a write
/// transaction sees it.
pub(super) fn relations_in(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    patient: &PatientId,
    prefix: &str,
) -> Result<Vec<Relation>, StoreError> {
    let p = patient.as_str();
    let end = format!("{prefix}\u{10FFFF}");
    table
        .range((p, prefix)..(p, end.as_str()))?
        .map(|item| {
            let (k, v) = item?;
            Ok(Relation {
                name: k.value().1.to_owned(),
                value: v.value(),
            })
        })
        .collect()
}

/// Every stored certificate or revocation of a table, decoded.
fn all_credentials<T>(
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

/// Removes the day-index rows every month of `patient` derived.
fn remove_day_rows(tx: &WriteTransaction, patient: &str) -> Result<(), StoreError> {
    let mut owners = tx.open_table(DAY_INDEX_OWNERS)?;
    let mut index = tx.open_table(DAY_INDEX)?;
    let prefix = format!("{patient}/");
    let end = format!("{prefix}\u{10FFFF}");
    let mine: Vec<(String, Vec<super::rows::OwnedRow>)> = owners
        .range(prefix.as_str()..end.as_str())?
        .map(|item| {
            let (k, v) = item?;
            Ok((k.value().to_owned(), super::rows::decode_owned(v.value())?))
        })
        .collect::<Result<_, StoreError>>()?;
    for (owner, keys) in mine {
        for (day, key, _) in keys {
            index.remove((day.as_str(), key.as_str()))?;
        }
        owners.remove(owner.as_str())?;
    }
    Ok(())
}

fn remove_range<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, (&'static str, &'static str), V>,
    patient: &str,
) -> Result<(), StoreError> {
    let keys: Vec<String> = patient_rows(&*table, Some(patient))?
        .map(|item| item.map(|(k, _)| k.value().1.to_owned()))
        .collect::<Result<_, _>>()?;
    for k in keys {
        table.remove((patient, k.as_str()))?;
    }
    Ok(())
}
