//! The repo's side of Trust: enrolment, the need rule for local reads, the access log, explicit
//! access, blocks, purging documents whose need ended, and crypto-shredding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rand::RngCore;
use serde::Serialize;

use super::{Repo, RepoError, STORE_FILE, Transaction};
use crate::docs::DocumentId;
use crate::docs::access_facts::{self, Block, ExplicitAccess};
use crate::identity::{KEY_FILE, NodeId, PROFILE_FILE, Role};
use crate::ids::{EntryId, PatientId, StaffId};
use crate::store::{StoreKey, WITHDRAWN, WITHDRAWN_BLOCKED};
use crate::time::Timestamp;
use crate::trust::audit::{self, AccessEvent, AuditAction, AuditEntry, ChainReport};
use crate::trust::{
    Certificate, EnrollmentRequest, Grant, NeedPolicy, OrgKey, Revocation, TrustError, need,
    same_subject,
};

/// What the need gate let through ([`Repo::open_patients`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// The patients this node may show.
    pub shown: BTreeSet<PatientId>,
    /// The patients held back, and why.
    pub refused: BTreeMap<PatientId, String>,
}

impl Gate {
    /// Whether `patient` may be shown.
    pub fn shows(&self, patient: &PatientId) -> bool {
        self.shown.contains(patient)
    }
}

/// A read of patient data through the need gate, as it goes: [`Disclosure::admits`] answers
/// per patient whether it may be shown (the same check as [`Repo::open_patient`]), and
/// [`Disclosure::finish`] logs one entry naming every patient shown and one naming those held
/// back. A report or a board asks as it meets each patient, so the log names exactly those it
/// showed.
#[derive(Debug)]
pub struct Disclosure<'a> {
    repo: &'a Repo,
    now: Timestamp,
    action: AuditAction,
    what: String,
    gate: Gate,
    purposes: BTreeSet<String>,
}

impl Disclosure<'_> {
    /// Whether `patient` may be shown.
    pub fn admits(&mut self, patient: &PatientId) -> Result<bool, RepoError> {
        if self.gate.shows(patient) {
            return Ok(true);
        }
        if self.gate.refused.contains_key(patient) {
            return Ok(false);
        }
        match self.repo.verdict(self.now, patient)? {
            Ok(purpose) => {
                self.purposes.insert(purpose);
                self.gate.shown.insert(patient.clone());
                Ok(true)
            }
            Err(reason) => {
                self.gate.refused.insert(patient.clone(), reason);
                Ok(false)
            }
        }
    }

    /// Logs what was shown and held back; returns the verdicts.
    pub fn finish(self) -> Result<Gate, RepoError> {
        self.finish_logging(true)
    }

    /// [`Disclosure::finish`], logging only if `log` (a view refreshed within a minute of the
    /// same view's last logged read: the dashboard logs a view once a minute, not per refresh).
    pub fn finish_logging(self, log: bool) -> Result<Gate, RepoError> {
        if !log {
            return Ok(self.gate);
        }
        let purpose = self.purposes.into_iter().collect::<Vec<_>>().join("; ");
        let mut event = AccessEvent::new(None, self.action, self.what.clone(), purpose);
        event.patients = self.gate.shown.iter().cloned().collect();
        let gate = self.gate;
        let (now, what) = (self.now, self.what);
        self.repo.transaction(|tx| {
            tx.log_access(now, event)?;
            if !gate.refused.is_empty() {
                let mut refusal = AccessEvent::new(
                    None,
                    AuditAction::Refused,
                    what,
                    "no work-related need, or the patient blocks this user".into(),
                );
                refusal.patients = gate.refused.keys().cloned().collect();
                tx.log_access(now, refusal)?;
            }
            Ok::<_, RepoError>(())
        })?;
        Ok(gate)
    }
}

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
            explicit_access_max_ms: None,
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

    /// Opens a patient's data for reading: checks this node's need (refusing, and logging the
    /// refusal, when there is none or a block names its user) and logs the read with its purpose.
    pub fn open_patient(
        &self,
        now: Timestamp,
        patient: &PatientId,
        what: &str,
    ) -> Result<String, RepoError> {
        let (action, text) = match self.verdict(now, patient)? {
            Ok(purpose) => (AuditAction::Read, purpose),
            Err(reason) => (AuditAction::Refused, reason),
        };
        self.log_access(
            now,
            AccessEvent::new(Some(patient.clone()), action, what.to_owned(), text.clone()),
        )?;
        match action {
            AuditAction::Read => Ok(text),
            _ => Err(AccessDenied {
                patient: patient.clone(),
                reason: text,
            }
            .into()),
        }
    }

    /// The need gate for patient data leaving in bulk (a list, a board, a report, an export):
    /// which of `patients` this node may show now — the same check as [`Repo::open_patient`] —
    /// logged as one entry of `action` naming every patient shown, and one refusal naming those
    /// held back. Every way patient data leaves a node passes here, through [`Disclosure`], or
    /// through `open_patient`.
    pub fn open_patients(
        &self,
        now: Timestamp,
        action: AuditAction,
        what: &str,
        patients: impl IntoIterator<Item = PatientId>,
    ) -> Result<Gate, RepoError> {
        let mut disclosure = self.disclose(now, action, what);
        for patient in patients {
            disclosure.admits(&patient)?;
        }
        disclosure.finish()
    }

    /// Starts a read of many patients through the need gate (see [`Disclosure`]).
    pub fn disclose(&self, now: Timestamp, action: AuditAction, what: &str) -> Disclosure<'_> {
        Disclosure {
            repo: self,
            now,
            action,
            what: what.to_owned(),
            gate: Gate::default(),
            purposes: BTreeSet::new(),
        }
    }

    /// Whether this node may read `patient` now: `Ok(purpose)` (the need: "care team", "work
    /// list 2026-11-23", "zone Sone 1"...) or `Err(why not)`.
    fn verdict(
        &self,
        now: Timestamp,
        patient: &PatientId,
    ) -> Result<Result<String, String>, RepoError> {
        let grant = self.grant();
        let doc = DocumentId::PatientRecord(patient.clone());
        let reason = need::need_reason(&self.store, now.unix_millis(), &grant, &doc)?;
        let withdrawal = self.withdrawal(patient)?;
        Ok(
            if need::blocked(&self.store, &grant, &doc)? || withdrawal == Some(true) {
                Err(format!(
                    "patient {patient} has blocked access for {} (sperring)",
                    grant
                        .staff_id
                        .as_ref()
                        .map_or("this device", |s| s.as_str())
                ))
            } else if withdrawal == Some(false) {
                Err(format!(
                    "patient {patient} is no longer on this device's work list (the base withdrew it); ask for explicit access with a reason (`omsyn access ask --patient {patient} --reason …`) if you must"
                ))
            } else if let Some(reason) = reason {
                Ok(reason)
            } else {
                Err(format!(
                    "no work-related need for patient {patient}: not on this user's work list, care team or zone. To proceed, ask for explicit access with a reason (`omsyn access ask --patient {patient} --reason …`); it is logged and reviewed"
                ))
            },
        )
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
            AccessEvent::new(
                None,
                AuditAction::Read,
                what.into(),
                format!("{} work", self.profile().role),
            ),
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
                        .filter(|e| patient.is_none_or(|p| e.concerns(p))),
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
                    patients: Vec::new(),
                    anchor: None,
                });
            }
        }
        Ok(out)
    }

    /// Checks every node's access-log chain held here, and every base's receipts of the logs
    /// it received against those logs (a rewrite, truncation or rollback after a base saw it).
    pub fn verify_audit(&self) -> Result<Vec<ChainReport>, RepoError> {
        let mut chains: BTreeMap<NodeId, (Vec<audit::SignedAuditEntry>, Vec<String>)> =
            BTreeMap::new();
        for id in self.store.doc_ids("audit/")? {
            let DocumentId::Audit(node, _) = &id else {
                continue;
            };
            if let Some((entries, bad)) = self.store.with_doc(&id, audit::read)? {
                let chain = chains.entry(*node).or_default();
                chain.0.extend(entries);
                chain.1.extend(bad.into_iter().map(|k| format!("{id}:{k}")));
            }
        }
        let receipts: Vec<AuditEntry> = chains
            .values()
            .flat_map(|(entries, _)| entries.iter().map(|e| e.entry.clone()))
            .filter(|e| e.anchor.is_some())
            .collect();
        let entries: BTreeMap<NodeId, Vec<audit::SignedAuditEntry>> = chains
            .iter()
            .map(|(node, (entries, _))| (*node, entries.clone()))
            .collect();
        let mut anchored = audit::verify_anchors(&receipts, &entries);
        Ok(chains
            .into_iter()
            .map(|(node, (entries, unreadable))| {
                let mut report = audit::verify_chain(node, &entries, &unreadable);
                report
                    .problems
                    .extend(anchored.remove(&node).unwrap_or_default());
                report
            })
            .collect())
    }

    /// Explicit accesses recorded in the records held here (at a base: for review).
    pub fn explicit_accesses(&self) -> Result<Vec<(PatientId, ExplicitAccess)>, RepoError> {
        let mut out = Vec::new();
        for id in self.store.doc_ids("patient/")? {
            if let (DocumentId::PatientRecord(p), Some(facts)) =
                (&id, self.store.with_doc(&id, access_facts::read)?)
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
                    AccessEvent::new(
                        Some(patient.clone()),
                        AuditAction::Purge,
                        "all documents".into(),
                        "need ended or access blocked".into(),
                    ),
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

    /// Who appends to this node's access log, and with which key.
    pub(crate) fn logger(&self) -> crate::pipeline::Logger<'_> {
        crate::pipeline::Logger {
            author: self.author(),
            zone: self.profile().zone.clone(),
            key: &self.identity.key,
        }
    }

    /// Remembers a file outside the data directory that holds this node's store key (the host
    /// gave it by path), so a wipe destroys it too.
    pub fn add_key_file(&mut self, path: PathBuf) {
        self.key_files.push(path);
    }
}

impl Transaction<'_> {
    /// Appends an event to this node's access log in this transaction.
    pub fn log_access(
        &mut self,
        now: Timestamp,
        event: AccessEvent,
    ) -> Result<AuditEntry, RepoError> {
        Ok(self.repo.logger().append(&mut self.batch, now, event)?)
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
        Ok(access_facts::set_team_member(doc, &ctx, staff, active)?)
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
        Ok(access_facts::block(doc, &ctx, rng, staff)?)
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
        Ok(access_facts::lift_block(doc, &ctx, block)?)
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
        let access = access_facts::explicit_access(doc, &ctx, rng, reason, until)?;
        self.log_access(
            now,
            AccessEvent::new(
                Some(patient.clone()),
                AuditAction::ExplicitAccess,
                "explicit access".into(),
                reason.to_owned(),
            ),
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
        crate::pipeline::check_local(&mut self.batch, &grant).map_err(RepoError::Unauthorized)?;
        let derive = crate::pipeline::DeriveContext::of(&self.repo.store, self.now_ms);
        crate::pipeline::commit(self.batch, &derive)?;
        Ok(())
    }
}
