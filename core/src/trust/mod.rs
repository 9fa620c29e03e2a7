//! Trust: who is in the organisation, what each node may write and hold, and the access log.
//!
//! - [`cert`]: the organisation key, device certificates (enrolment), revocations.
//! - [`rules`]: what a signed change may do, by the signer's role and the document kind.
//! - [`need`]: need-based sharing ("tjenstlig behov"): which documents each peer may hold.
//! - [`audit`]: the hash-chained, signed access log of every read, write and export.
//!
//! Every change a node makes is signed with its node key (the store does it at commit, see
//! [`change_signing_bytes`]); every receiver verifies the signature and the rules before it
//! stores or forwards anything.

pub mod audit;
pub mod cert;
pub mod need;
pub mod rules;

pub use cert::{
    Certificate, DEFAULT_VALIDITY_MS, EnrollmentRequest, Grant, OrgKey, Refusal, Revocation,
    RevocationBody, TrustError,
};
pub use need::NeedPolicy;

use crate::docs::{self, DocumentId};
use crate::identity::NodeId;

/// What verifying changes needs to know about their authors.
pub trait Authors {
    /// What the verified certificate of `node` grants, if known.
    fn grant(&mut self, node: &NodeId) -> Result<Option<Grant>, String>;
    /// Whether `node` is revoked.
    fn revoked(&mut self, node: &NodeId) -> Result<bool, String>;
}

/// Verifies one change of `doc` as received from a peer or read from an export file: a valid
/// signature by its author, who is a certified node of the organisation, not revoked, and whose
/// role may make this change ([`rules`]). Returns the change's hash; the error says why not.
pub fn verify_change(
    doc: &DocumentId,
    bytes: &[u8],
    signature: &[u8; 64],
    authors: &mut impl Authors,
) -> Result<[u8; 32], String> {
    let summary = docs::inspect_change(bytes).map_err(|e| e.to_string())?;
    let signer = <[u8; 32]>::try_from(summary.actor.as_slice())
        .ok()
        .and_then(|b| NodeId::from_bytes(b).ok())
        .ok_or("a change's author is not a node key")?;
    if !signer.verify(&change_signing_bytes(&summary.hash), signature) {
        return Err(format!(
            "a change of {doc} carries no valid signature of its author {}: forged or altered",
            signer.short()
        ));
    }
    let grant = authors.grant(&signer)?.ok_or_else(|| {
        format!(
            "the author {} of a change of {doc} is not a known enrolled node",
            signer.short()
        )
    })?;
    if authors.revoked(&signer)? {
        return Err(format!(
            "the author {} of a change of {doc} is revoked",
            signer.short()
        ));
    }
    rules::authorize(doc, &summary, &grant).map_err(|reason| format!("{doc}: {reason}"))?;
    Ok(summary.hash)
}

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
