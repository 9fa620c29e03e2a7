//! What a front end is given at `init`, before the node (and so its [`Service`](super::Service))
//! exists: the new node's profile as typed.

use crate::Role;
use crate::identity::{NodeProfile, PROFILE_VERSION};
use crate::ids::PatientId;

use super::{ServiceError, staff_id};

/// A new node's profile as a front end received it: the ids as typed.
#[derive(Debug, Clone)]
pub struct NewNode {
    /// What the node is.
    pub role: Role,
    /// The nurse's name, the base office, or the home.
    pub name: String,
    /// The staff member the node serves.
    pub staff_id: Option<String>,
    /// The patient a home unit serves.
    pub patient: Option<String>,
    /// The zone or team.
    pub zone: Option<String>,
}

impl NewNode {
    /// The profile with its ids parsed; what a role requires is checked when the identity is
    /// created.
    pub fn profile(self) -> Result<NodeProfile, ServiceError> {
        let staff_id = self
            .staff_id
            .as_deref()
            .map(|s| staff_id("staff_id", s))
            .transpose()?;
        let patient = self
            .patient
            .as_deref()
            .map(|p| PatientId::parse(p.trim()).map_err(|e| ServiceError::invalid("patient", e)))
            .transpose()?;
        Ok(NodeProfile {
            version: PROFILE_VERSION,
            role: self.role,
            name: self.name,
            staff_id,
            patient,
            zone: self.zone,
        })
    }
}
