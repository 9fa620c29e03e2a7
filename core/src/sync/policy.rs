//! Which documents may be shared with which peer.
//!
//! One interface, [`SharePolicy`], consulted by the sync session in both directions: what we send
//! or offer, and what we accept. The Trust work replaces the simple policies here with need-based
//! sharing behind the same interface.

use std::collections::{BTreeMap, BTreeSet};

use crate::docs::DocumentId;
use crate::identity::NodeId;
use crate::ids::PatientId;

/// Decides, per peer and document, whether the two may exchange it.
pub trait SharePolicy: Send + Sync + std::fmt::Debug {
    /// Whether `doc` may be sent to and accepted from `peer`.
    fn may_share(&self, peer: &NodeId, doc: &DocumentId) -> bool;
}

/// Shares every document with every peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShareAll;

impl SharePolicy for ShareAll {
    fn may_share(&self, _peer: &NodeId, _doc: &DocumentId) -> bool {
        true
    }
}

/// Shares with each listed peer only the listed patients' documents (and day logs, which hold no
/// patient data). Peers not listed get nothing.
#[derive(Debug, Clone, Default)]
pub struct SharePatients {
    grants: BTreeMap<NodeId, BTreeSet<PatientId>>,
}

impl SharePatients {
    /// An empty policy: shares nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets `peer` hold `patient`'s documents.
    pub fn grant(&mut self, peer: NodeId, patient: PatientId) -> &mut Self {
        self.grants.entry(peer).or_default().insert(patient);
        self
    }
}

impl SharePolicy for SharePatients {
    fn may_share(&self, peer: &NodeId, doc: &DocumentId) -> bool {
        let Some(patients) = self.grants.get(peer) else {
            return false;
        };
        match doc.patient() {
            Some(p) => patients.contains(p),
            None => true,
        }
    }
}
