//! Removing what this device no longer needs (once a base holds its latest documentation), and
//! what a revoked node destroys (crypto-shredding).

use std::path::PathBuf;

use serde::Serialize;

use super::{Repo, RepoError, STORE_FILE};
use crate::docs::DocumentId;
use crate::identity::{KEY_FILE, NodeId, PROFILE_FILE, Role};
use crate::ids::PatientId;
use crate::store::{StoreKey, WriteBatch};
use crate::time::Timestamp;
use crate::trust::audit::{AccessEvent, AuditAction};
use crate::trust::{Grant, OrgKey, need};

/// Whether a patient's documents may be removed (see [`Repo::purge_unneeded`]).
enum Removable {
    Yes,
    NeededAgain,
    AwaitingUpload,
}

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Patients whose documents were removed from this device.
    pub purged: Vec<PatientId>,
    /// Patients no longer needed whose latest changes no base has acknowledged yet: kept until
    /// one has (purging them now would lose documentation).
    pub awaiting_upload: Vec<PatientId>,
}

impl Repo {
    /// Removes the documents of every patient this device no longer needs (the need ended, or a
    /// block names its user), once a base has acknowledged this device's latest version of each.
    /// Bases keep everything of their zone; this is for nurses' phones and home units.
    pub fn purge_unneeded(&self, now: Timestamp) -> Result<PurgeReport, RepoError> {
        let mut report = PurgeReport::default();
        let grant = self.grant_at(now.change_millis())?;
        if grant.role == Role::Base {
            return Ok(report);
        }
        let bases: Vec<NodeId> = self
            .store
            .certificates()?
            .into_iter()
            .filter(|c| c.grant().role == Role::Base && c.node() != self.id())
            .map(|c| c.node())
            .collect();
        let mut by_patient: std::collections::BTreeMap<PatientId, Vec<DocumentId>> =
            std::collections::BTreeMap::new();
        for id in self.store.doc_ids("")? {
            if let Some(p) = id.patient() {
                by_patient.entry(p.clone()).or_default().push(id.clone());
            }
        }
        let now_ms = now.unix_millis();
        // One snapshot of the relations for every patient held (thousands on a phone, after
        // every sync with a base), not a read transaction per lookup.
        let relations = self.store.relations_view()?;
        for (patient, docs) in by_patient {
            let record = DocumentId::PatientRecord(patient.clone());
            let withdrawn = relations.withdrawal(&patient)?.is_some();
            if !withdrawn
                && need::need_reason_in_view(&relations, now_ms, &grant, &record)?.is_some()
            {
                continue;
            }
            if !self.delivered_to_a_base(&bases, &docs)? {
                report.awaiting_upload.push(patient);
                continue;
            }
            report.purged.push(patient);
        }
        if report.purged.is_empty() {
            return Ok(report);
        }
        drop(relations);
        let scanned = std::mem::take(&mut report.purged);
        self.transaction(|tx| {
            for patient in scanned {
                // Checked again inside the removing write, which no commit can pass: a patient
                // shared again since the scan, or documented since (a note no base holds yet),
                // stays.
                match self.removable(&mut tx.batch, &bases, &grant, now_ms, &patient)? {
                    Removable::Yes => {}
                    Removable::NeededAgain => continue,
                    Removable::AwaitingUpload => {
                        report.awaiting_upload.push(patient);
                        continue;
                    }
                }
                tx.batch.remove_patient(&patient)?;
                tx.log_access(
                    now,
                    AccessEvent::new(
                        Some(patient.clone()),
                        AuditAction::Purge,
                        "all documents".into(),
                        "need ended or access blocked".into(),
                    ),
                )?;
                report.purged.push(patient);
            }
            Ok::<_, RepoError>(())
        })?;
        Ok(report)
    }

    /// Whether `patient`'s documents may go, by what `batch` sees.
    fn removable(
        &self,
        batch: &mut WriteBatch<'_>,
        bases: &[NodeId],
        grant: &Grant,
        now_ms: i64,
        patient: &PatientId,
    ) -> Result<Removable, RepoError> {
        let record = DocumentId::PatientRecord(patient.clone());
        let withdrawn = batch.withdrawal(patient)?.is_some();
        if !withdrawn && need::needs_in(batch, now_ms, grant, &record)? {
            return Ok(Removable::NeededAgain);
        }
        let docs = self.store.patient_doc_ids(patient)?;
        Ok(match self.delivered_to_a_base(bases, &docs)? {
            true => Removable::Yes,
            false => Removable::AwaitingUpload,
        })
    }

    /// Whether some base is known to hold this device's current version of every document.
    fn delivered_to_a_base(
        &self,
        bases: &[NodeId],
        docs: &[DocumentId],
    ) -> Result<bool, RepoError> {
        for doc in docs {
            let Some(mine) = self.store.with_doc(doc, |d| d.head_hashes())? else {
                continue;
            };
            let mut held = false;
            for base in bases {
                if let Some(state) = self.store.peer_doc(base, doc)?
                    && mine.iter().all(|h| state.heads.contains(h))
                {
                    held = true;
                    break;
                }
            }
            if !held {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Wipes this node (it was revoked): destroys everything that can decrypt its store or sign
    /// for it — the store key (in the data directory, or the file the host gave by path), the
    /// node key, the organisation key a base holds — by overwriting and removing each, then
    /// removes the store and the node's profile, so the directory is one `omsyn init` can start
    /// from. Safe while the store is still open in the process: without the key, nothing left
    /// on disk can be decrypted. A key the host keeps itself (the mobile keystore) the host must
    /// destroy: the bindings tell the app. Returns the files destroyed.
    #[allow(
        clippy::disallowed_methods,
        reason = "a revoked node destroys its key and store files: the one delete outside the store"
    )]
    pub fn wipe(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut secrets = vec![
            StoreKey::path(&self.dir),
            self.dir.join(KEY_FILE),
            OrgKey::path(&self.dir),
        ];
        secrets.extend(self.key_files.iter().cloned());
        let mut destroyed = Vec::new();
        for path in secrets {
            if path.exists() {
                StoreKey::shred_file(&path)?;
                destroyed.push(path);
            }
        }
        for name in [STORE_FILE, PROFILE_FILE] {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Ok(()) => destroyed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(destroyed)
    }

    /// Remembers a file outside the data directory that holds this node's store key (the host
    /// gave it by path), so a wipe destroys it too.
    pub fn add_key_file(&mut self, path: PathBuf) {
        self.key_files.push(path);
    }
}
