//! Enrolment and what this node knows of its organisation: its own certificate and grant, the
//! certificates and revocations it holds, the peers it has met.

use super::{Repo, RepoError};
use crate::identity::NodeId;
use crate::trust::{
    Certificate, EnrollmentRequest, Grant, NeedPolicy, Revocation, TrustError, same_subject,
};

impl Repo {
    /// This node's certificate, once enrolled.
    pub fn certificate(&self) -> Result<Option<Certificate>, RepoError> {
        Ok(self.store.own_certificate()?)
    }

    /// Every certificate this node holds: its organisation's devices it has approved or met.
    pub fn known_certificates(&self) -> Result<Vec<Certificate>, RepoError> {
        Ok(self.store.certificates()?)
    }

    /// Every revocation this node holds.
    pub fn revocations(&self) -> Result<Vec<crate::trust::Revocation>, RepoError> {
        Ok(self.store.revocations()?)
    }

    /// Whether this node holds a revocation of `node`.
    pub fn is_revoked(&self, node: &NodeId) -> Result<bool, RepoError> {
        Ok(self.store.revocation(node)?.is_some())
    }

    /// The peers this node has met, with what it knows of each.
    pub fn peers(&self) -> Result<Vec<(NodeId, crate::store::PeerRecord)>, RepoError> {
        Ok(self.store.peers()?)
    }

    /// What this node is granted: its newest certificate's grant, or, before enrolment, what its
    /// profile claims (valid for local rules only; no peer accepts it). A store that cannot say
    /// is an error, not the profile's claims: a need policy or an import judged by them would
    /// share or take what the certificate does not grant.
    pub fn grant(&self) -> Result<Grant, RepoError> {
        Ok(match self.store.own_certificate()? {
            Some(cert) => cert.grant().clone(),
            None => self.profile_grant(),
        })
    }

    /// What this node was granted at `at_ms` (a change's time, whole seconds): the certificate
    /// in force then ([`Certificate::in_force`]), which every receiver judges its changes of
    /// then by; before enrolment, what its profile claims. A store that cannot say is an error,
    /// not the profile's claims: a write under them would be refused by every peer.
    pub fn grant_at(&self, at_ms: i64) -> Result<Grant, RepoError> {
        Ok(match self.store.own_grant_at(at_ms)? {
            Some(grant) => grant,
            None => self.profile_grant(),
        })
    }

    fn profile_grant(&self) -> Grant {
        let p = self.profile();
        Grant {
            org: self.id(),
            org_name: String::new(),
            node: self.id(),
            role: p.role,
            name: p.name.clone(),
            staff_id: p.staff_id.clone(),
            patient: p.patient.clone(),
            zone: p.zone.clone(),
            not_before_ms: i64::MIN,
            not_after_ms: i64::MIN,
            validity_ms: 0,
            competence: None,
            explicit_access_max_ms: None,
            run_from_ms: None,
        }
    }

    /// The need-based sharing policy of this node.
    pub fn need_policy(&self) -> Result<NeedPolicy, RepoError> {
        Ok(NeedPolicy::new(self.grant()?))
    }

    /// A request to be enrolled, to take to (or send to) the base.
    pub fn enrollment_request(&self) -> EnrollmentRequest {
        EnrollmentRequest::new(&self.identity.key, self.profile())
    }

    /// Installs this node's certificate (from `omsyn enroll`), checking that it names this node
    /// and its profile.
    pub fn install_certificate(&self, cert: &Certificate) -> Result<(), RepoError> {
        let g = cert.grant();
        if g.node != self.id() {
            return Err(RepoError::Invalid(format!(
                "this certificate is for node {}, not this node ({})",
                g.node.short(),
                self.id().short()
            )));
        }
        let p = self.profile();
        if g.role != p.role
            || g.staff_id != p.staff_id
            || g.patient != p.patient
            || g.zone != p.zone
        {
            return Err(RepoError::Invalid(
                "the certificate's role, staff, patient or zone differ from this node's profile"
                    .into(),
            ));
        }
        if let Some(own) = self.certificate()?
            && !same_subject(own.grant(), g)
        {
            return Err(RepoError::Invalid(format!(
                "this node is already enrolled in {} ({}); a node joins one organisation",
                own.grant().org_name,
                own.grant().org.short()
            )));
        }
        self.keep_certificate(cert)
    }

    /// Refuses an enrolment request this base must not approve: a revoked node's, or one from a
    /// key the organisation certified (as far as this base knows) for another role, staff
    /// member, patient or zone. A device that is to serve another patient, person, role or zone
    /// is given a new identity and enrolled again: one key, one subject, so nothing it wrote
    /// under one grant is ever judged under another's, and its app (which refuses to install a
    /// certificate for another subject) stays as it is.
    pub fn check_enrollment_request(&self, request: &EnrollmentRequest) -> Result<(), RepoError> {
        let held = self.store.certificate_history(&request.node())?;
        self.check_request_against(request, &held)
    }

    /// [`Repo::check_enrollment_request`] against `known`, the key's certificates held here.
    fn check_request_against(
        &self,
        request: &EnrollmentRequest,
        known: &[Certificate],
    ) -> Result<(), RepoError> {
        let node = request.node();
        if self.is_revoked(&node)? {
            return Err(RepoError::Invalid(format!(
                "node {node} was revoked; it cannot be enrolled again"
            )));
        }
        let asked = request.profile();
        for held in known {
            let g = held.grant();
            if g.role != asked.role
                || g.staff_id != asked.staff_id
                || g.patient != asked.patient
                || g.zone != asked.zone
            {
                return Err(RepoError::Invalid(format!(
                    "node {} is enrolled as {} \"{}\"; a device that is to serve another \
                     patient, person, role or zone is given a new identity (`omsyn init` in a \
                     new data directory) and enrolled again",
                    node.short(),
                    g.role,
                    g.name
                )));
            }
        }
        Ok(())
    }

    /// When a certificate for `request`, approved at `now_ms`, is to begin: now, or just after
    /// the latest run this base knows of for the key (one a base with a clock ahead began), so
    /// that the new run is ordered after it ([`Certificate::supersedes`]) and a rename approved
    /// here is not outranked for good by an enrolment dated ahead of it. Checks the request
    /// first ([`Repo::check_enrollment_request`]).
    pub fn enrolment_begins(
        &self,
        request: &EnrollmentRequest,
        now_ms: i64,
    ) -> Result<i64, RepoError> {
        let known = self.store.certificate_history(&request.node())?;
        self.check_request_against(request, &known)?;
        let latest = known
            .iter()
            .map(|c| c.grant().run_start_ms().saturating_add(1))
            .max();
        Ok(latest.map_or(now_ms, |after| after.max(now_ms)))
    }

    /// Keeps a certificate this base has just issued (`omsyn enroll approve`), so that its staff
    /// member is known here — planned for, named in reports, listed among devices not yet seen —
    /// before the device first syncs. It must be of this node's organisation.
    pub fn remember_issued(&self, cert: &Certificate) -> Result<(), RepoError> {
        if cert.node() == self.id() {
            return Err(RepoError::Invalid(
                "a base does not approve its own enrolment request".into(),
            ));
        }
        let org = self.certificate()?.map(|c| c.grant().org);
        if org != Some(cert.grant().org) {
            return Err(RepoError::Invalid(
                "the certificate is not of this node's organisation".into(),
            ));
        }
        self.keep_certificate(cert)
    }

    /// Stores a verified certificate, in one durable commit through the pipeline — unless its
    /// node is revoked, checked in the same write: a revocation committed while a base was
    /// approving the device's request (`enrolment_begins` checked before) wins.
    fn keep_certificate(&self, cert: &Certificate) -> Result<(), RepoError> {
        let mut batch = self.store.write()?;
        if batch.revoked(&cert.node())? {
            return Err(RepoError::Invalid(format!(
                "node {} is revoked: a revoked device is not enrolled again",
                cert.node().short()
            )));
        }
        batch.put_certificate(cert)?;
        crate::pipeline::commit(
            batch,
            &crate::pipeline::DeriveContext::of(&self.store, None),
        )?;
        Ok(())
    }

    /// Keeps a revocation (from `omsyn revoke`, or a file). Returns whether it was new.
    pub fn add_revocation(&self, revocation: &Revocation) -> Result<bool, RepoError> {
        let own = self.certificate()?.ok_or_else(|| {
            RepoError::Invalid("this node is not enrolled: it cannot judge revocations".into())
        })?;
        if revocation.body().org != own.grant().org {
            return Err(RepoError::Trust(TrustError::BadSignature("revocation")));
        }
        let mut batch = self.store.write()?;
        let new = batch.put_revocation(revocation)?;
        crate::pipeline::commit(
            batch,
            &crate::pipeline::DeriveContext::of(&self.store, None),
        )?;
        Ok(new)
    }
}
