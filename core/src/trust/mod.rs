//! Trust: who is in the organisation, what each node may write and hold, and the access log.
//!
//! - [`cert`]: the organisation key, device certificates (enrolment), revocations.
//! - [`need`]: need-based sharing ("tjenstlig behov"): which documents each peer may hold.
//! - [`audit`]: the hash-chained, signed access log of every read, write and export.
//!
//! Every change a node makes is signed with its node key (the store does it at commit, see
//! [`change_signing_bytes`]); every receiver verifies the signature and the rules before it
//! stores or forwards anything (see [`crate::pipeline`]).

pub mod audit;
pub mod cert;
pub mod need;

pub use cert::{
    Certificate, DEFAULT_EXPLICIT_ACCESS_MAX_MS, DEFAULT_VALIDITY_MS, EnrollmentRequest, Grant,
    OrgKey, OrgPolicy, Refusal, Revocation, RevocationBody, TrustError,
};
pub use need::NeedPolicy;

/// The bytes a change's author signs: a domain-separation tag and the change hash (which
/// Automerge computes over the change's whole content, dependencies included).
pub fn change_signing_bytes(hash: &[u8; 32]) -> Vec<u8> {
    let mut bytes = b"omsyn/change/v1\n".to_vec();
    bytes.extend_from_slice(hash);
    bytes
}

/// Whether two grants certify the same node for the same role, person, patient and zone (a
/// renewal may change only the validity period).
pub fn same_subject(a: &Grant, b: &Grant) -> bool {
    a.org == b.org
        && a.node == b.node
        && a.role == b.role
        && a.staff_id == b.staff_id
        && a.patient == b.patient
        && a.zone == b.zone
}
