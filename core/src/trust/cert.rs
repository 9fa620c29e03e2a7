//! The organisation key, device certificates, enrolment requests and revocations.
//!
//! Every one of them is a [`Sealed`] value: a JSON body, the key that signed it and the signature
//! over the body's exact bytes (with a domain-separation tag per kind, so a signature on one kind
//! can never pass as another). The body is kept as received, so a future version may add fields
//! without breaking the signatures of old ones. Text forms (`omsyn-cert1:…`) are the sealed JSON in
//! URL-safe base64, short enough for a file, a QR code or a chat message.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::identity::{self, NodeId, NodeKey, NodeProfile, Role};
use crate::ids::{PatientId, StaffId};

/// File name of the organisation's secret key inside the admin base's data directory.
pub const ORG_KEY_FILE: &str = "org.key";

/// Default validity of a device certificate: a 12-hour shift plus a margin.
pub const DEFAULT_VALIDITY_MS: i64 = 16 * 3600 * 1000;

/// Errors decoding, verifying or issuing trust objects.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The text is not the expected kind of object.
    #[error("not {expected}: {reason}")]
    Malformed {
        /// What was expected.
        expected: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The signature does not verify.
    #[error("the signature on this {0} does not verify: it was altered or forged")]
    BadSignature(&'static str),
    /// An enrolment request does not suit the profile rules.
    #[error("invalid enrolment request: {0}")]
    InvalidRequest(String),
    /// File error on the organisation key.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
}

/// Why a peer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer presented no certificate.
    #[error("node {0} is not enrolled: it presented no certificate")]
    NotEnrolled(String),
    /// The certificate does not verify or is malformed.
    #[error("node {node} presented an invalid certificate: {reason}")]
    InvalidCertificate {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// The certificate was issued by another organisation.
    #[error("node {node} is enrolled in another organisation ({org})")]
    OtherOrganisation {
        /// The node.
        node: String,
        /// Its organisation key.
        org: String,
    },
    /// The certificate names another node.
    #[error("node {node} presented the certificate of node {named}")]
    NotItsCertificate {
        /// The connecting node.
        node: String,
        /// The node the certificate names.
        named: String,
    },
    /// The certificate has expired.
    #[error(
        "the certificate of node {node} expired at {expired_ms} (now {now_ms}); it must be renewed at a base"
    )]
    Expired {
        /// The node.
        node: String,
        /// When it expired (ms since the epoch).
        expired_ms: i64,
        /// Now (ms since the epoch).
        now_ms: i64,
    },
    /// The certificate is not valid yet.
    #[error("the certificate of node {node} is not valid before {from_ms}")]
    NotYetValid {
        /// The node.
        node: String,
        /// When it starts.
        from_ms: i64,
    },
    /// The node was revoked.
    #[error("node {node} was revoked: {reason}")]
    Revoked {
        /// The node.
        node: String,
        /// The stated reason.
        reason: String,
    },
    /// This node itself is not enrolled, so it cannot tell whom to trust.
    #[error(
        "this node is not enrolled in an organisation: `omsyn enroll request`, approved at a base, then `omsyn enroll install`"
    )]
    SelfNotEnrolled,
}

/// A signed JSON body: the body's exact bytes, the signer and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    body: String,
    signer: NodeId,
    #[serde(with = "hex_signature")]
    signature: [u8; 64],
}

mod hex_signature {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(sig: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(sig))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 64];
        hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// The kinds of sealed objects, with their domain-separation tags and text prefixes.
#[derive(Debug, Clone, Copy)]
struct Kind {
    name: &'static str,
    tag: &'static [u8],
    prefix: &'static str,
}

const CERT: Kind = Kind {
    name: "device certificate",
    tag: b"omsyn/certificate/v1\n",
    prefix: "omsyn-cert1:",
};
const REQUEST: Kind = Kind {
    name: "enrolment request",
    tag: b"omsyn/enrolment-request/v1\n",
    prefix: "omsyn-enroll1:",
};
const REVOCATION: Kind = Kind {
    name: "revocation",
    tag: b"omsyn/revocation/v1\n",
    prefix: "omsyn-revoke1:",
};

fn signed_bytes(kind: Kind, body: &str) -> Vec<u8> {
    let mut bytes = kind.tag.to_vec();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

impl Sealed {
    fn seal(kind: Kind, key: &NodeKey, body: &impl Serialize) -> Sealed {
        // Serialising plain structs of strings and numbers cannot fail.
        let body = serde_json::to_string(body).unwrap_or_default();
        Sealed {
            signature: key.sign(&signed_bytes(kind, &body)),
            signer: key.id(),
            body,
        }
    }

    fn open<T: DeserializeOwned>(&self, kind: Kind) -> Result<T, TrustError> {
        if !self
            .signer
            .verify(&signed_bytes(kind, &self.body), &self.signature)
        {
            return Err(TrustError::BadSignature(kind.name));
        }
        serde_json::from_str(&self.body).map_err(|e| TrustError::Malformed {
            expected: kind.name,
            reason: e.to_string(),
        })
    }

    /// The body, parsed without checking the signature: only for what this node verified before
    /// it stored it (see [`Revocation::from_stored_bytes`]).
    fn open_verified_before<T: DeserializeOwned>(&self, kind: Kind) -> Result<T, TrustError> {
        serde_json::from_str(&self.body).map_err(|e| TrustError::Malformed {
            expected: kind.name,
            reason: e.to_string(),
        })
    }

    /// Compact binary form for the wire and the store: body length (u16 LE), body, signer,
    /// signature. About 400 bytes for a certificate.
    fn to_bytes(&self) -> Vec<u8> {
        let body = self.body.as_bytes();
        let mut out = Vec::with_capacity(2 + body.len() + 96);
        out.extend_from_slice(&(body.len().min(u16::MAX as usize) as u16).to_le_bytes());
        out.extend_from_slice(&body[..body.len().min(u16::MAX as usize)]);
        out.extend_from_slice(self.signer.as_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    fn from_bytes(kind: Kind, bytes: &[u8]) -> Result<Sealed, TrustError> {
        let malformed = |reason: &str| TrustError::Malformed {
            expected: kind.name,
            reason: reason.to_owned(),
        };
        let mut r = crate::codec::ByteReader::new(bytes, 0);
        let len = usize::from(r.u16_le().map_err(|_| malformed("truncated"))?);
        let body = std::str::from_utf8(r.take(len).map_err(|_| malformed("truncated"))?)
            .map_err(|_| malformed("the body is not UTF-8"))?
            .to_owned();
        let mut signer = [0u8; 32];
        signer.copy_from_slice(r.take(32).map_err(|_| malformed("truncated"))?);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(r.take(64).map_err(|_| malformed("truncated"))?);
        if r.position() != bytes.len() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Sealed {
            body,
            signer: NodeId::from_bytes(signer).map_err(|_| malformed("bad signer key"))?,
            signature,
        })
    }

    fn to_text(&self, kind: Kind) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{}{}", kind.prefix, URL_SAFE_NO_PAD.encode(json))
    }

    fn from_text(kind: Kind, text: &str) -> Result<Sealed, TrustError> {
        let malformed = |reason: String| TrustError::Malformed {
            expected: kind.name,
            reason,
        };
        let text = text.trim();
        let payload = text.strip_prefix(kind.prefix).ok_or_else(|| {
            malformed(format!(
                "expected text starting with {:?}, got {:?}",
                kind.prefix,
                text.chars().take(20).collect::<String>()
            ))
        })?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|e| malformed(format!("bad base64: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| malformed(e.to_string()))
    }
}

/// What a certificate grants: a node key bound to a role, a person or patient, a zone and a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The organisation's public key (the trust anchor).
    pub org: NodeId,
    /// The organisation's name.
    pub org_name: String,
    /// The enrolled node.
    pub node: NodeId,
    /// Its role.
    pub role: Role,
    /// The staff member's, base's or home's display name.
    pub name: String,
    /// The staff member (HPR or employee number).
    pub staff_id: Option<StaffId>,
    /// The patient a home unit serves.
    pub patient: Option<PatientId>,
    /// The zone or team.
    pub zone: Option<String>,
    /// Start of validity (ms since the epoch).
    pub not_before_ms: i64,
    /// End of validity (ms since the epoch).
    pub not_after_ms: i64,
    /// How long each renewal extends the certificate.
    pub validity_ms: i64,
    /// The staff member's competence as the base recorded it at enrolment ("sykepleier",
    /// "helsefagarbeider", "assistent"...): shown to coordinators assigning visits. Absent in
    /// certificates issued before it existed (their signed bodies stay as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competence: Option<String>,
    /// The organisation's cap on how long an explicit ("break-glass") access lasts, in ms;
    /// absent: [`DEFAULT_EXPLICIT_ACCESS_MAX_MS`]. Every node applies its own certificate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_access_max_ms: Option<i64>,
    /// For a renewal: when the run of certificates it renews began (the `not_before` of the
    /// run's first, which an enrolment issued); absent for that first, and in certificates
    /// issued before it existed. Certificates are ordered by it before their own dates, so a
    /// base that has not yet heard of a device's re-enrolment, renewing what it knew, does not
    /// undo it (see [`Certificate::supersedes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_from_ms: Option<i64>,
}

/// How long an explicit access lasts at most unless the organisation says otherwise: a shift.
pub const DEFAULT_EXPLICIT_ACCESS_MAX_MS: i64 = 12 * 3600 * 1000;

/// The longest cap an organisation may set: a week.
pub const LONGEST_EXPLICIT_ACCESS_MAX_MS: i64 = 7 * 24 * 3600 * 1000;

impl Grant {
    /// When the run of certificates granting this began: an enrolment's own start, or the
    /// start a renewal carries.
    pub fn run_start_ms(&self) -> i64 {
        self.run_from_ms.unwrap_or(self.not_before_ms)
    }

    /// The organisation's cap on an explicit access's duration, in ms.
    pub fn explicit_access_cap_ms(&self) -> i64 {
        self.explicit_access_max_ms
            .unwrap_or(DEFAULT_EXPLICIT_ACCESS_MAX_MS)
            .clamp(0, LONGEST_EXPLICIT_ACCESS_MAX_MS)
    }

    /// The profile this grant describes (what the node's own `node.json` must agree with).
    pub fn profile(&self) -> NodeProfile {
        NodeProfile {
            version: identity::PROFILE_VERSION,
            role: self.role,
            name: self.name.clone(),
            staff_id: self.staff_id.clone(),
            patient: self.patient.clone(),
            zone: self.zone.clone(),
        }
    }
}

/// A device certificate: a [`Grant`] signed by the organisation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    sealed: Sealed,
    grant: Grant,
}

impl Certificate {
    /// Decodes and verifies the signature of a certificate (not its validity period: see
    /// [`Certificate::check`]).
    pub fn from_sealed(sealed: Sealed) -> Result<Certificate, TrustError> {
        let grant: Grant = sealed.open(CERT)?;
        if grant.org != sealed.signer {
            return Err(TrustError::BadSignature(CERT.name));
        }
        Ok(Certificate { sealed, grant })
    }

    /// Parses the text form (`omsyn-cert1:…`).
    pub fn from_text(text: &str) -> Result<Certificate, TrustError> {
        Self::from_sealed(Sealed::from_text(CERT, text)?)
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        self.sealed.to_text(CERT)
    }

    /// Compact bytes for the wire and the store.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sealed.to_bytes()
    }

    /// Decodes [`Certificate::to_bytes`] and verifies the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, TrustError> {
        Self::from_sealed(Sealed::from_bytes(CERT, bytes)?)
    }

    /// What it grants.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }

    /// The certified node.
    pub fn node(&self) -> NodeId {
        self.grant.node
    }

    /// Whether this certificate replaces `held`, a certificate of the same node: the one of the
    /// run the organisation began last wins (a re-enrolment for another patient, zone, role or
    /// name, even one valid for less time, over any renewal of an earlier run, whenever issued),
    /// then the one issued last (a renewal), then the one valid longer, then the greater bytes.
    /// A total order, so that every node keeps the same certificate whatever order it heard them
    /// in, and a device cannot keep an older, wider grant in force by presenting it again.
    pub fn supersedes(&self, held: &Certificate) -> bool {
        self.issue_order(held).is_gt()
    }

    /// The order [`Certificate::supersedes`] judges by: its run begun later first, then issued
    /// later, then valid longer, then the bytes.
    pub(crate) fn issue_order(&self, other: &Certificate) -> std::cmp::Ordering {
        let rank = |c: &Certificate| {
            let g = &c.grant;
            (g.run_start_ms(), g.not_before_ms, g.not_after_ms)
        };
        rank(self)
            .cmp(&rank(other))
            .then_with(|| self.to_bytes().cmp(&other.to_bytes()))
    }

    /// The certificate of one node, among `certs`, in force at `at_ms`: of those whose run had
    /// begun by then, the one that supersedes the others ([`Certificate::supersedes`]: its run
    /// begun last, then issued last; a re-enrolment ends its predecessor's force from its own
    /// `not_before`, where its run begins); for a time before all of them, the newest. A renewal
    /// stands for its run from the run's start, though it is itself dated later: a node that
    /// never held the run's first (a base that had not heard of a re-enrolment) learns from it
    /// that the run had begun. Whether it had expired by then
    /// is the caller's to ask: a session refuses a peer whose certificate in force has expired,
    /// a change made by then is judged by it all the same (the device wrote offline).
    ///
    /// Changes are judged by the certificate in force when they were made, so a device
    /// re-enrolled for another patient, zone or role keeps what it wrote before, at nodes that
    /// first hear of it afterwards. A change's time is its author's to state: a device can
    /// reach an earlier grant only by dating its change within the time it really held it, and
    /// a time before every certificate gets the newest, not the first. A peer is judged by the
    /// one in force now, so a renewal dated ahead does not end the current one early. `None`
    /// only for no certificates.
    pub fn in_force(certs: &[Certificate], at_ms: i64) -> Option<&Certificate> {
        certs
            .iter()
            .filter(|c| c.grant.run_start_ms() <= at_ms)
            .max_by(|a, b| a.issue_order(b))
            .or_else(|| Self::newest(certs))
    }

    /// The newest of one node's `certs`: the one that supersedes the others. `None` for none.
    pub fn newest(certs: &[Certificate]) -> Option<&Certificate> {
        certs.iter().max_by(|a, b| a.issue_order(b))
    }

    /// Whether `self` and `other` grant what a change is judged by alike — the same subject
    /// ([`crate::trust::same_subject`]) under the same name — whatever their periods and the
    /// issuing base's policy: a renewal's run.
    pub fn same_grant(&self, other: &Certificate) -> bool {
        crate::trust::same_subject(&self.grant, &other.grant) && self.grant.name == other.grant.name
    }

    /// Checks that this certificate lets `node` in to an organisation with key `org` at `now_ms`.
    /// Revocation is checked by the caller, who holds the revocation list.
    pub fn check(&self, org: &NodeId, node: &NodeId, now_ms: i64) -> Result<(), Refusal> {
        let g = &self.grant;
        self.check_until(org, node, now_ms, (g.not_before_ms, g.not_after_ms))
    }

    /// [`Certificate::check`] of this certificate among all of its node's held (`certs`): valid
    /// from its run's start ([`Grant::run_start_ms`]) to the run's end
    /// ([`Certificate::run_until`]): a renewal dated ahead of this node's clock stands for its
    /// run, which began earlier.
    pub fn check_in_run(
        &self,
        certs: &[Certificate],
        org: &NodeId,
        node: &NodeId,
        now_ms: i64,
    ) -> Result<(), Refusal> {
        let from_ms = self.grant.run_start_ms();
        self.check_until(org, node, now_ms, (from_ms, Self::run_until(certs, self)))
    }

    /// The end of `cert`'s run among `certs`: the latest `not_after` of it and of the
    /// certificates issued after it that grant the same ([`Certificate::same_grant`]), up to the
    /// first that grants otherwise — and no later than that one's run's start, where it takes
    /// force (a session held to the run ends when the device's re-enrolment begins, though this
    /// node holds only a later renewal of it).
    pub fn run_until(certs: &[Certificate], cert: &Certificate) -> i64 {
        let mut later: Vec<&Certificate> = certs
            .iter()
            .filter(|c| c.issue_order(cert).is_gt())
            .collect();
        later.sort_by(|a, b| a.issue_order(b));
        let end = later
            .iter()
            .take_while(|c| c.same_grant(cert))
            .map(|c| c.grant.not_after_ms)
            .fold(cert.grant.not_after_ms, i64::max);
        match later.iter().find(|c| !c.same_grant(cert)) {
            Some(other) => end.min(other.grant.run_start_ms()),
            None => end,
        }
    }

    /// Checks the names, and that `now_ms` falls within `[from_ms, until_ms)`.
    fn check_until(
        &self,
        org: &NodeId,
        node: &NodeId,
        now_ms: i64,
        (from_ms, until_ms): (i64, i64),
    ) -> Result<(), Refusal> {
        self.check_names(org, node)?;
        if now_ms < from_ms {
            return Err(Refusal::NotYetValid {
                node: node.to_string(),
                from_ms,
            });
        }
        if now_ms >= until_ms {
            return Err(Refusal::Expired {
                node: node.to_string(),
                expired_ms: until_ms,
                now_ms,
            });
        }
        Ok(())
    }

    /// Checks that this certificate is one of organisation `org`'s for `node`, whenever valid.
    pub fn check_names(&self, org: &NodeId, node: &NodeId) -> Result<(), Refusal> {
        let g = &self.grant;
        if &g.org != org {
            return Err(Refusal::OtherOrganisation {
                node: node.to_string(),
                org: g.org.to_string(),
            });
        }
        if &g.node != node {
            return Err(Refusal::NotItsCertificate {
                node: node.to_string(),
                named: g.node.to_string(),
            });
        }
        Ok(())
    }
}

/// A device's request to be enrolled: its key and profile, signed by that key (proof that the
/// requester holds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRequest {
    sealed: Sealed,
    profile: NodeProfile,
}

impl EnrollmentRequest {
    /// Makes a request for the node with `key` and `profile`.
    pub fn new(key: &NodeKey, profile: &NodeProfile) -> EnrollmentRequest {
        EnrollmentRequest {
            sealed: Sealed::seal(REQUEST, key, profile),
            profile: profile.clone(),
        }
    }

    /// Parses and verifies the text form (`omsyn-enroll1:…`).
    pub fn from_text(text: &str) -> Result<EnrollmentRequest, TrustError> {
        let sealed = Sealed::from_text(REQUEST, text)?;
        let profile: NodeProfile = sealed.open(REQUEST)?;
        Ok(EnrollmentRequest { sealed, profile })
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        self.sealed.to_text(REQUEST)
    }

    /// The requesting node.
    pub fn node(&self) -> NodeId {
        self.sealed.signer
    }

    /// What it asks to be enrolled as.
    pub fn profile(&self) -> &NodeProfile {
        &self.profile
    }
}

/// What a revocation says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationBody {
    /// The organisation.
    pub org: NodeId,
    /// The revoked node.
    pub node: NodeId,
    /// When it was revoked (ms since the epoch).
    pub at_ms: i64,
    /// Why ("phone lost", "left the organisation").
    pub reason: String,
}

/// A revocation, signed by the organisation key. Revocations are permanent and beat any grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    sealed: Sealed,
    body: RevocationBody,
}

impl Revocation {
    /// Parses and verifies the text form (`omsyn-revoke1:…`).
    pub fn from_text(text: &str) -> Result<Revocation, TrustError> {
        Self::from_sealed(Sealed::from_text(REVOCATION, text)?)
    }

    fn from_sealed(sealed: Sealed) -> Result<Revocation, TrustError> {
        let body: RevocationBody = sealed.open(REVOCATION)?;
        if body.org != sealed.signer {
            return Err(TrustError::BadSignature(REVOCATION.name));
        }
        Ok(Revocation { sealed, body })
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        self.sealed.to_text(REVOCATION)
    }

    /// Compact bytes for the wire and the store.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sealed.to_bytes()
    }

    /// Decodes [`Revocation::to_bytes`] and verifies the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Revocation, TrustError> {
        Self::from_sealed(Sealed::from_bytes(REVOCATION, bytes)?)
    }

    /// Decodes a revocation as the store keeps it. Its signature was verified once, before it
    /// was stored (a `Revocation` is only made by verifying), and is not verified again on every
    /// read: a revocation planted in the file by whoever can write it only revokes, which that
    /// writer could do by deleting the store. Whoever it is sent to verifies it again.
    pub(crate) fn from_stored_bytes(bytes: &[u8]) -> Result<Revocation, TrustError> {
        let sealed = Sealed::from_bytes(REVOCATION, bytes)?;
        let body: RevocationBody = sealed.open_verified_before(REVOCATION)?;
        if body.org != sealed.signer {
            return Err(TrustError::BadSignature(REVOCATION.name));
        }
        Ok(Revocation { sealed, body })
    }

    /// What it says.
    pub fn body(&self) -> &RevocationBody {
        &self.body
    }
}

/// The organisation's signing key, held by the admin base.
#[derive(Debug)]
pub struct OrgKey {
    key: NodeKey,
    name: String,
    policy: OrgPolicy,
}

/// What the organisation decides for every node, stamped into each certificate it issues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrgPolicy {
    /// The cap on an explicit access's duration, in ms (absent: a shift,
    /// [`DEFAULT_EXPLICIT_ACCESS_MAX_MS`]).
    pub explicit_access_max_ms: Option<i64>,
}

impl OrgPolicy {
    fn check(&self) -> Result<(), TrustError> {
        match self.explicit_access_max_ms {
            Some(ms) if !(60_000..=LONGEST_EXPLICIT_ACCESS_MAX_MS).contains(&ms) => {
                Err(TrustError::InvalidRequest(format!(
                    "an explicit access may be capped at 1 minute to {} hours",
                    LONGEST_EXPLICIT_ACCESS_MAX_MS / 3_600_000
                )))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OrgKeyFile {
    name: String,
    secret: String,
    /// The organisation's cap on explicit accesses (ms), stamped into every certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explicit_access_max_ms: Option<i64>,
}

impl OrgKey {
    /// Creates a new organisation key in `dir` (owner-only file) with its `policy`; fails if
    /// one exists.
    #[allow(
        clippy::disallowed_methods,
        reason = "the organisation key file: core's file IO outside the store, like the node's key"
    )]
    pub fn create(
        dir: &Path,
        name: &str,
        policy: OrgPolicy,
        rng: &mut impl RngCore,
    ) -> Result<OrgKey, TrustError> {
        let name = name.trim();
        policy.check()?;
        if name.is_empty() || name.len() > 200 {
            return Err(TrustError::InvalidRequest(
                "the organisation name must be 1-200 characters".into(),
            ));
        }
        let key = NodeKey::generate(rng);
        let file = OrgKeyFile {
            name: name.to_owned(),
            secret: hex::encode(key.secret_bytes()),
            explicit_access_max_ms: policy.explicit_access_max_ms,
        };
        let path = Self::path(dir);
        if path.exists() {
            return Err(identity::IdentityError::AlreadyInitialised(path).into());
        }
        let json = serde_json::to_vec_pretty(&file).unwrap_or_default();
        identity::write_new_file(&path, &json, 0o600)?;
        Ok(OrgKey {
            key,
            name: name.to_owned(),
            policy,
        })
    }

    /// A new organisation key kept in memory only (tests, simulations).
    pub fn generate(name: &str, rng: &mut impl RngCore) -> OrgKey {
        OrgKey {
            key: NodeKey::generate(rng),
            name: name.to_owned(),
            policy: OrgPolicy::default(),
        }
    }

    /// Loads the organisation key from `dir`, if this node holds it.
    #[allow(
        clippy::disallowed_methods,
        reason = "the organisation key file: core's file IO outside the store, like the node's key"
    )]
    pub fn load(dir: &Path) -> Result<Option<OrgKey>, TrustError> {
        let path = Self::path(dir);
        if !path.exists() {
            return Ok(None);
        }
        identity::check_owner_only(&path)?;
        let malformed = |reason: String| {
            TrustError::Identity(identity::IdentityError::Malformed {
                path: path.clone(),
                reason,
            })
        };
        let bytes = fs::read(&path).map_err(|e| malformed(e.to_string()))?;
        let file: OrgKeyFile =
            serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()))?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(file.secret.trim(), &mut secret)
            .map_err(|_| malformed("expected 64 hex digits".into()))?;
        Ok(Some(OrgKey {
            key: NodeKey::from_secret_bytes(secret),
            name: file.name,
            policy: OrgPolicy {
                explicit_access_max_ms: file.explicit_access_max_ms,
            },
        }))
    }

    /// Where the key lives in a data directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(ORG_KEY_FILE)
    }

    /// The organisation's public key: every node's trust anchor.
    pub fn id(&self) -> NodeId {
        self.key.id()
    }

    /// The organisation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Approves an enrolment request: a certificate valid from `now_ms` for `validity_ms`.
    pub fn approve(
        &self,
        request: &EnrollmentRequest,
        now_ms: i64,
        validity_ms: i64,
    ) -> Result<Certificate, TrustError> {
        self.approve_with_competence(request, now_ms, validity_ms, None)
    }

    /// [`OrgKey::approve`], recording the staff member's competence in the certificate.
    pub fn approve_with_competence(
        &self,
        request: &EnrollmentRequest,
        now_ms: i64,
        validity_ms: i64,
        competence: Option<&str>,
    ) -> Result<Certificate, TrustError> {
        let p = request.profile();
        if competence.is_some_and(|c| c.trim().is_empty() || c.len() > 100) {
            return Err(TrustError::InvalidRequest(
                "the competence must be a short, non-empty text".into(),
            ));
        }
        if validity_ms <= 0 {
            return Err(TrustError::InvalidRequest(
                "the validity must be positive".into(),
            ));
        }
        match p.role {
            Role::Nurse if p.staff_id.is_none() => {
                return Err(TrustError::InvalidRequest(
                    "a nurse node must name its staff member".into(),
                ));
            }
            Role::HomeUnit if p.patient.is_none() => {
                return Err(TrustError::InvalidRequest(
                    "a home unit must name the patient it serves".into(),
                ));
            }
            Role::Base if p.zone.is_none() => {
                return Err(TrustError::InvalidRequest(
                    "a base must name its zone".into(),
                ));
            }
            _ => {}
        }
        Ok(self.sign(Grant {
            org: self.id(),
            org_name: self.name.clone(),
            node: request.node(),
            role: p.role,
            name: p.name.clone(),
            staff_id: p.staff_id.clone(),
            patient: p.patient.clone(),
            zone: p.zone.clone(),
            not_before_ms: now_ms,
            not_after_ms: now_ms.saturating_add(validity_ms),
            validity_ms,
            competence: competence.map(|c| c.trim().to_owned()),
            explicit_access_max_ms: self.policy.explicit_access_max_ms,
            run_from_ms: None,
        }))
    }

    /// Renews a certificate: the same grant, valid for another period from `now_ms`, under the
    /// organisation's current policy.
    pub fn renew(&self, cert: &Certificate, now_ms: i64) -> Certificate {
        self.renew_grant(&cert.grant, now_ms)
    }

    /// [`OrgKey::renew`] of the certificate granting `grant` (a session's peer, judged by the
    /// certificate in force: not a newer one dated ahead, which must not begin early).
    pub fn renew_grant(&self, grant: &Grant, now_ms: i64) -> Certificate {
        let mut grant = grant.clone();
        grant.explicit_access_max_ms = self.policy.explicit_access_max_ms;
        grant.run_from_ms = Some(grant.run_start_ms());
        grant.not_before_ms = now_ms;
        grant.not_after_ms = now_ms.saturating_add(grant.validity_ms);
        self.sign(grant)
    }

    /// Revokes `node`.
    pub fn revoke(&self, node: NodeId, reason: &str, now_ms: i64) -> Revocation {
        let body = RevocationBody {
            org: self.id(),
            node,
            at_ms: now_ms,
            reason: reason.to_owned(),
        };
        Revocation {
            sealed: Sealed::seal(REVOCATION, &self.key, &body),
            body,
        }
    }

    fn sign(&self, grant: Grant) -> Certificate {
        Certificate {
            sealed: Sealed::seal(CERT, &self.key, &grant),
            grant,
        }
    }
}
