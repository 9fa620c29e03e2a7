//! How fresh this node's data is towards each peer: the peers met, and per peer the patients
//! that peer needs with when their documents were last known equal on both sides.

use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::ids::PatientId;
use crate::store::PeerRecord;
use crate::trust::Certificate;
use crate::trust::need;

use super::{Service, ServiceError};

/// The peers met, and the patients this user may see.
#[derive(Debug, Clone, Default)]
pub struct SyncState {
    /// The patients held that this user may see, with their names.
    pub patients: Vec<(PatientId, String)>,
    /// The peers met.
    pub peers: Vec<PeerState>,
}

/// A peer this node has met.
#[derive(Debug, Clone)]
pub struct PeerState {
    /// The peer's node id.
    pub id: NodeId,
    /// Its certificate, if this node holds it (name, role, zone).
    pub certificate: Option<Certificate>,
    /// What this node knows of it: last seen, last caught up, acknowledged position.
    pub record: PeerRecord,
    /// The patients it needs that this user may see, with when each was last known in sync
    /// with it (ms since the Unix epoch; `None`: never).
    pub patients: Vec<PatientFreshness>,
}

/// One patient's freshness towards one peer.
#[derive(Debug, Clone)]
pub struct PatientFreshness {
    /// The patient.
    pub patient: PatientId,
    /// Her name, as the record has it.
    pub name: String,
    /// When all her documents were last known identical on both sides.
    pub synced_ms: Option<i64>,
}

impl Service {
    /// The peers met and, per peer, the patients it needs (through the need gate: only the
    /// patients this user may see are named, and the read is logged).
    pub fn sync_status(&self) -> Result<SyncState, ServiceError> {
        let store = self.repo.store();
        let now_ms = self.now().unix_millis();
        let held: Vec<(PatientId, String)> = (self.shown_patients("sync status")?.into_iter())
            .map(|p| (p.id, p.label))
            .collect();
        let mut peers = Vec::new();
        for (id, record) in store.peers().map_err(crate::RepoError::from)? {
            let certificate = store.certificate(&id).map_err(crate::RepoError::from)?;
            let mut patients = Vec::new();
            for (patient, name) in &held {
                let doc = DocumentId::PatientRecord(patient.clone());
                let needed = match &certificate {
                    Some(cert) => need::needs(store, now_ms, cert.grant(), &doc)
                        .map_err(crate::RepoError::from)?,
                    None => false,
                };
                if needed {
                    patients.push(PatientFreshness {
                        patient: patient.clone(),
                        name: name.clone(),
                        synced_ms: self.repo.patient_synced_at(
                            &id,
                            record.caught_up_ms,
                            patient,
                        )?,
                    });
                }
            }
            peers.push(PeerState {
                id,
                certificate,
                record,
                patients,
            });
        }
        Ok(SyncState {
            patients: held,
            peers,
        })
    }
}
