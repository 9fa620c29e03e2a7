//! The repo's side of Trust: enrolment, the need rule for local reads, the access log, explicit
//! access, blocks, purging documents whose need ended, and crypto-shredding.

use std::collections::BTreeSet;
use std::path::Path;

use rand::RngCore;
use serde::Serialize;

use super::{Repo, RepoError, STORE_FILE, Transaction};
use crate::docs::access::{self, Block, ExplicitAccess};
use crate::docs::{ChangeContext, DocumentId};
use crate::identity::{KEY_FILE, NodeId, Role};
use crate::ids::{EntryId, PatientId, StaffId};
use crate::store::{StoreKey, WITHDRAWN, WITHDRAWN_BLOCKED};
use crate::time::{Month, Timestamp};
use crate::trust::audit::{self, AccessEvent, AuditAction, AuditEntry, ChainReport};
use crate::trust::{
    Certificate, EnrollmentRequest, Grant, NeedPolicy, Revocation, TrustError, need, rules,
    same_subject,
};

/// A read refused: no work-related need, or the patient blocks this user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct AccessDenied {
    /// The patient.
    pub patient: PatientId,
    /// Why, for people.
    pub reason: String,
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

/// How long an explicit access lasts: the rest of a shift.
pub const EXPLICIT_ACCESS_MS: i64 = 12 * 3600 * 1000;

impl Repo {
    /// This node's certificate, once enrolled.
    pub fn certificate(&self) -> Result<Option<Certificate>, RepoError> {
        Ok(self.store.own_certificate()?)
    }

    /// What this node is granted: its certificate's grant, or, before enrolment, what its
    /// profile claims (valid for local rules only; no peer accepts it).
    pub fn grant(&self) -> Grant {
        if let Ok(Some(cert)) = self.store.own_certificate() {
            return cert.grant().clone();
        }
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
        }
    }

    /// The need-based sharing policy of this node.
    pub fn need_policy(&self) -> NeedPolicy {
        NeedPolicy::new(self.grant())
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
        let mut batch = self.store.write()?;
        batch.put_certificate(cert)?;
        batch.commit()?;
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
        batch.commit()?;
        Ok(new)
    }

    /// Opens a patient's data for reading: checks this node's need (refusing, and logging the
    /// refusal, when there is none or a block names its user) and logs the read with its purpose.
    pub fn open_patient(
        &self,
        now: Timestamp,
        patient: &PatientId,
        what: &str,
    ) -> Result<String, RepoError> {
        let grant = self.grant();
        let doc = DocumentId::PatientRecord(patient.clone());
        let reason = need::need_reason(&self.store, now.unix_millis(), &grant, &doc)?;
        let withdrawal = self.withdrawal(patient)?;
        let refusal = if need::blocked(&self.store, &grant, &doc)? || withdrawal == Some(true) {
            Some(format!(
                "patient {patient} has blocked access for {} (sperring)",
                grant
                    .staff_id
                    .as_ref()
                    .map_or("this device", |s| s.as_str())
            ))
        } else if withdrawal == Some(false) {
            Some(format!(
                "patient {patient} is no longer on this device's work list (the base withdrew it); ask for explicit access with a reason if you must"
            ))
        } else if reason.is_none() {
            Some(format!(
                "no work-related need for patient {patient}: not on this user's work list, care team or zone. To proceed, ask for explicit access with a reason (`omsyn access {patient} --reason …`); it is logged and reviewed"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.log_access(
                now,
                AccessEvent {
                    patient: Some(patient.clone()),
                    action: AuditAction::Refused,
                    what: what.to_owned(),
                    purpose: reason.clone(),
                },
            )?;
            return Err(AccessDenied {
                patient: patient.clone(),
                reason,
            }
            .into());
        }
        let purpose = reason.unwrap_or_default();
        self.log_access(
            now,
            AccessEvent {
                patient: Some(patient.clone()),
                action: AuditAction::Read,
                what: what.to_owned(),
                purpose: purpose.clone(),
            },
        )?;
        Ok(purpose)
    }

    /// Whether a base withdrew `patient` from this device: `Some(true)` for a block.
    fn withdrawal(&self, patient: &PatientId) -> Result<Option<bool>, RepoError> {
        if self.store.relation(patient, WITHDRAWN_BLOCKED)?.is_some() {
            return Ok(Some(true));
        }
        Ok(self.store.relation(patient, WITHDRAWN)?.map(|_| false))
    }

    /// Logs a read that concerns no single patient (a work list, a report, a status), with this
    /// node's role's work as its purpose.
    pub fn log_read(
        &self,
        now: Timestamp,
        what: impl Into<String>,
    ) -> Result<AuditEntry, RepoError> {
        self.log_access(
            now,
            AccessEvent {
                patient: None,
                action: AuditAction::Read,
                what: what.into(),
                purpose: format!("{} work", self.profile().role),
            },
        )
    }

    /// Appends an event to this node's access log, durably.
    pub fn log_access(&self, now: Timestamp, event: AccessEvent) -> Result<AuditEntry, RepoError> {
        self.transaction(|tx| tx.log_access(now, event))
    }

    /// Every access-log entry this node holds (its own and, on a base, every synced device's),
    /// optionally about one patient, by time. For one patient, every write to the patient's
    /// documents is included too, from the documents' own signed change history: each change
    /// carries its author and entry time, so writes need no second log (which would double the
    /// cost of every write and could disagree with the data).
    pub fn audit_entries(&self, patient: Option<&PatientId>) -> Result<Vec<AuditEntry>, RepoError> {
        let mut out = Vec::new();
        if let Some(p) = patient {
            out.extend(self.writes_to(p)?);
        }
        for id in self.store.doc_ids("audit/")? {
            if let Some((entries, _)) = self.store.with_doc(&id, audit::read)? {
                out.extend(
                    entries
                        .into_iter()
                        .map(|e| e.entry)
                        .filter(|e| patient.is_none() || e.patient.as_ref() == patient),
                );
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.seq.cmp(&b.seq)));
        Ok(out)
    }

    /// Every write to `patient`'s documents held here, as access-log entries.
    fn writes_to(&self, patient: &PatientId) -> Result<Vec<AuditEntry>, RepoError> {
        let mut out = Vec::new();
        for id in self.store.patient_doc_ids(patient)? {
            let changes = self
                .store
                .with_doc(&id, |d| d.authored_changes())?
                .unwrap_or_default();
            for (author, at) in changes {
                out.push(AuditEntry {
                    seq: 0,
                    prev: String::new(),
                    zone: None,
                    at,
                    patient: Some(patient.clone()),
                    action: AuditAction::Write,
                    what: id.to_string(),
                    purpose: "documentation".into(),
                    flagged: false,
                    author,
                });
            }
        }
        Ok(out)
    }

    /// Checks every node's access-log chain held here.
    pub fn verify_audit(&self) -> Result<Vec<ChainReport>, RepoError> {
        let mut reports = Vec::new();
        let mut nodes: BTreeSet<NodeId> = BTreeSet::new();
        let ids = self.store.doc_ids("audit/")?;
        for id in &ids {
            if let DocumentId::Audit(node, _) = id {
                nodes.insert(*node);
            }
        }
        for node in nodes {
            let mut entries = Vec::new();
            let mut unreadable = Vec::new();
            for id in ids
                .iter()
                .filter(|id| matches!(id, DocumentId::Audit(n, _) if *n == node))
            {
                if let Some((e, bad)) = self.store.with_doc(id, audit::read)? {
                    entries.extend(e);
                    unreadable.extend(bad.into_iter().map(|k| format!("{id}:{k}")));
                }
            }
            reports.push(audit::verify_chain(node, &entries, &unreadable));
        }
        Ok(reports)
    }

    /// Explicit accesses recorded in the records held here (at a base: for review).
    pub fn explicit_accesses(&self) -> Result<Vec<(PatientId, ExplicitAccess)>, RepoError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids("patient/")? {
            if let (DocumentId::PatientRecord(p), Some(facts)) =
                (&id, self.store.with_doc(&id, access::read)?)
            {
                out.extend(facts.explicit.into_iter().map(|a| (p.clone(), a)));
            }
        }
        out.sort_by_key(|(_, access)| access.at);
        Ok(out)
    }

    /// Removes the documents of every patient this device no longer needs (the need ended, or a
    /// block names its user), once a base has acknowledged this device's latest version of each.
    /// Bases keep everything of their zone; this is for nurses' phones and home units.
    pub fn purge_unneeded(&self, now: Timestamp) -> Result<PurgeReport, RepoError> {
        let mut report = PurgeReport::default();
        let grant = self.grant();
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
        for (patient, docs) in by_patient {
            let record = DocumentId::PatientRecord(patient.clone());
            let withdrawn = self.withdrawal(&patient)?.is_some();
            if !withdrawn && need::needs(&self.store, now_ms, &grant, &record)? {
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
        let purged = report.purged.clone();
        self.transaction(|tx| {
            for patient in &purged {
                tx.batch.remove_patient(patient)?;
                tx.log_access(
                    now,
                    AccessEvent {
                        patient: Some(patient.clone()),
                        action: AuditAction::Purge,
                        what: "all documents".into(),
                        purpose: "need ended or access blocked".into(),
                    },
                )?;
            }
            Ok::<_, RepoError>(())
        })?;
        Ok(report)
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

    /// Crypto-shreds this node (it was revoked): destroys the store key file, so the store can
    /// never be decrypted, then removes the store and the node key. With a host-supplied key the
    /// host must destroy its copy too (the mobile bindings tell the app).
    pub fn shred(self) -> std::io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        shred_data_dir(&dir)
    }
}

/// Crypto-shreds the node in `dir`: overwrites and removes the store key file, then removes the
/// store and the node key. Safe while the store is still open elsewhere in the process: without
/// the key, nothing left on disk can be decrypted.
pub fn shred_data_dir(dir: &Path) -> std::io::Result<()> {
    StoreKey::shred_file(&StoreKey::path(dir))?;
    for name in [STORE_FILE, KEY_FILE] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

impl Transaction<'_> {
    /// Appends an event to this node's access log in this transaction.
    pub fn log_access(
        &mut self,
        now: Timestamp,
        event: AccessEvent,
    ) -> Result<AuditEntry, RepoError> {
        let me = self.repo.id();
        let head = self.audit_head()?;
        let ctx = ChangeContext {
            author: self.repo.author(),
            entered_at: now,
        };
        let zone = self.repo.profile().zone.clone();
        let doc = self.batch.doc(&audit::doc_id(me, now.day().month()))?;
        Ok(audit::append(
            doc,
            &ctx,
            &self.repo.identity.key,
            zone,
            head.as_ref(),
            event,
        )?)
    }

    fn audit_head(&mut self) -> Result<Option<AuditEntry>, RepoError> {
        let me = self.repo.id();
        let mut months: BTreeSet<Month> = self
            .repo
            .store
            .doc_ids(&format!("audit/{me}/"))?
            .iter()
            .filter_map(DocumentId::month)
            .collect();
        months.extend(
            self.batch
                .touched()
                .filter(|id| matches!(id, DocumentId::Audit(n, _) if *n == me))
                .filter_map(DocumentId::month),
        );
        for month in months.into_iter().rev() {
            if let Some(doc) = self.batch.existing(&audit::doc_id(me, month))?
                && let Some(head) = audit::chain_head(&[doc])
            {
                return Ok(Some(head));
            }
        }
        Ok(None)
    }

    /// Adds or removes a staff member from the patient's care team (base only).
    pub fn set_team_member(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        staff: &StaffId,
        active: bool,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now);
        let doc = self.record_doc(patient)?;
        Ok(access::set_team_member(doc, &ctx, staff, active)?)
    }

    /// Registers the patient's block (sperring) of a staff member (base only).
    pub fn block_staff(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        staff: &StaffId,
    ) -> Result<Block, RepoError> {
        let ctx = self.ctx(now);
        let doc = self.record_doc(patient)?;
        Ok(access::block(doc, &ctx, rng, staff)?)
    }

    /// Lifts a block (base only).
    pub fn lift_block(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        block: &EntryId,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now);
        let doc = self.record_doc(patient)?;
        Ok(access::lift_block(doc, &ctx, block)?)
    }

    /// Asks explicit ("break-glass") access to a patient, with a stated reason: recorded in the
    /// patient's record (so the base shares the patient's documents with this device and reviews
    /// the access) and in the access log, flagged.
    pub fn explicit_access(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        patient: &PatientId,
        reason: &str,
    ) -> Result<ExplicitAccess, RepoError> {
        if self.repo.profile().role == Role::HomeUnit {
            return Err(RepoError::NotPermitted {
                role: Role::HomeUnit,
                action: "ask for explicit access",
            });
        }
        let ctx = self.ctx(now);
        let until = now.unix_millis().saturating_add(EXPLICIT_ACCESS_MS);
        let doc = self
            .batch
            .doc(&DocumentId::PatientRecord(patient.clone()))?;
        let access = access::explicit_access(doc, &ctx, rng, reason, until)?;
        self.log_access(
            now,
            AccessEvent {
                patient: Some(patient.clone()),
                action: AuditAction::ExplicitAccess,
                what: "explicit access".into(),
                purpose: reason.to_owned(),
            },
        )?;
        Ok(access)
    }

    fn record_doc(&mut self, patient: &PatientId) -> Result<&mut crate::docs::Document, RepoError> {
        self.batch
            .existing(&DocumentId::PatientRecord(patient.clone()))?
            .ok_or_else(|| RepoError::NotFound(format!("patient {patient}")))
    }

    /// Checks every change against the access rules peers apply, and commits. Nothing is written
    /// if a rule fails. (Writes are logged by the changes themselves: see `Repo::audit_entries`.)
    pub(super) fn finish(mut self) -> Result<(), RepoError> {
        let grant = self.repo.grant();
        let touched: Vec<DocumentId> = self.batch.touched().cloned().collect();
        for id in &touched {
            let Some(doc) = self.batch.loaded(id) else {
                continue;
            };
            for change in doc.unsaved_raw_changes() {
                let summary = crate::docs::inspect_change(&change)?;
                rules::authorize(id, &summary, &grant).map_err(RepoError::Unauthorized)?;
            }
        }
        self.batch.commit()?;
        Ok(())
    }
}
