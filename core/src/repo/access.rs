//! Who may see a patient, as the record says: the care team, blocks (sperring) and explicit
//! accesses.

use rand::RngCore;

use super::{Repo, RepoError, Transaction};
use crate::docs::DocumentId;
use crate::docs::access_facts::{self, Block, ExplicitAccess};
use crate::identity::Role;
use crate::ids::{EntryId, PatientId, StaffId};
use crate::time::Timestamp;
use crate::trust::audit::{AccessEvent, AuditAction};

/// How long an explicit access lasts: the rest of a shift.
pub const EXPLICIT_ACCESS_MS: i64 = 12 * 3600 * 1000;

impl Repo {
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
}

impl Transaction<'_> {
    /// Adds or removes a staff member from the patient's care team (base only).
    pub fn set_team_member(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        staff: &StaffId,
        active: bool,
    ) -> Result<(), RepoError> {
        let ctx = self.ctx(now)?;
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
        self.base_only("block a staff member")?;
        let ctx = self.ctx(now)?;
        let doc = self.record_doc(patient)?;
        // Read under the write's lock: a second block of one staff member would need lifting
        // twice, and lifting one would seem to end it.
        if let Some(held) = (access_facts::read(doc).blocks.into_iter())
            .find(|b| b.lifted.is_none() && &b.staff == staff)
        {
            return Err(RepoError::Invalid(format!(
                "the patient has blocked {} already (block {}, {}): nothing to add",
                self.staff_named(staff),
                held.id,
                held.at.day()
            )));
        }
        Ok(access_facts::block(doc, &ctx, rng, staff)?)
    }

    /// Refuses a node that is not a base before anything of the record is said: the rule every
    /// peer applies at commit would refuse it too, but only after the checks that read it.
    fn base_only(&self, action: &'static str) -> Result<(), RepoError> {
        match self.repo.profile().role {
            Role::Base => Ok(()),
            role => Err(RepoError::NotPermitted { role, action }),
        }
    }

    /// A staff member by name where this node knows one, else by id.
    fn staff_named(&self, staff: &StaffId) -> String {
        let names = self.repo.staff_names().unwrap_or_default();
        super::staff_list(std::slice::from_ref(staff), &names)
    }

    /// Refuses a visit to `patient` for `staff` she has blocked (sperring): a block beats every
    /// other access, a planned visit's need included, so such a visit could not even be read by
    /// the one it is planned for. Read in the write, so a block committed meanwhile counts.
    pub(super) fn refuse_blocked(
        &mut self,
        patient: &PatientId,
        staff: &[StaffId],
    ) -> Result<(), RepoError> {
        let facts = access_facts::read(self.record_doc(patient)?);
        let blocked = (facts.blocks.iter())
            .find(|b| b.lifted.is_none() && staff.contains(&b.staff))
            .map(|b| b.staff.clone());
        let Some(blocked) = blocked else {
            return Ok(());
        };
        Err(RepoError::Invalid(format!(
            "the patient has blocked {} (sperring): plan the visit for someone else",
            self.staff_named(&blocked)
        )))
    }

    /// Lifts a block (base only); returns it, and the blocks of the same staff member still in
    /// force (two bases may each have made one before they met).
    pub fn lift_block(
        &mut self,
        now: Timestamp,
        patient: &PatientId,
        block: &EntryId,
    ) -> Result<(Block, Vec<Block>), RepoError> {
        self.base_only("lift a block")?;
        let ctx = self.ctx(now)?;
        let doc = self.record_doc(patient)?;
        let blocks = access_facts::read(doc).blocks;
        let lifted = (blocks.iter().find(|b| &b.id == block))
            .ok_or_else(|| RepoError::NotFound(format!("block {block} of this patient")))?
            .clone();
        if let Some((by, at)) = &lifted.lifted {
            return Err(RepoError::Invalid(format!(
                "block {block} was lifted already, by {} at {at}",
                by.name
            )));
        }
        access_facts::lift_block(doc, &ctx, block)?;
        let remaining = (blocks.into_iter())
            .filter(|b| b.lifted.is_none() && b.staff == lifted.staff && &b.id != block)
            .collect();
        Ok((lifted, remaining))
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
        let ctx = self.ctx(now)?;
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
}
