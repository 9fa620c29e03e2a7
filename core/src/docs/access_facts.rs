//! Who has a need for a patient's documents, as recorded in the patient record: the care team,
//! sperring (the patient's block of named staff) and explicit ("break-glass") accesses.
//!
//! These facts live in the record under their own keys (`team/<staff>`, `block/<id>`,
//! `access/<staff>/<id>`), so they merge like everything else and reach every node that holds the
//! record. [`crate::trust::need`] turns them, with the visit plans, into the sharing rule.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::record::PatientField;
use super::{Author, ChangeContext, DocError, Document, decode_entries};
use crate::identity::NodeId;
use crate::ids::{EntryId, StaffId};
use crate::time::Timestamp;

/// A member of the patient's care team (primary nurse, contact nurse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    /// The staff member.
    pub staff: StaffId,
    /// Whether the membership is current.
    pub active: bool,
    /// Who set it.
    pub by: Author,
    /// When.
    pub at: Timestamp,
}

/// A block (sperring): the patient refuses a named staff member access. Always wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Id.
    pub id: EntryId,
    /// The blocked staff member.
    pub staff: StaffId,
    /// Who registered the block.
    pub by: Author,
    /// When.
    pub at: Timestamp,
    /// Set when the patient lifted the block (the block stays in the record).
    pub lifted: Option<(Author, Timestamp)>,
}

/// An explicit access to a patient not on the user's list, with the stated reason. Always
/// logged and flagged for review at the base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplicitAccess {
    /// Id.
    pub id: EntryId,
    /// Who asked.
    pub staff: StaffId,
    /// From which device.
    pub device: NodeId,
    /// Why (beslutningsmal and free text).
    pub reason: String,
    /// When it was asked.
    pub at: Timestamp,
    /// Until when it lasts (ms since the epoch).
    pub until_ms: i64,
}

/// Everything in a record that decides who may hold the patient's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessFacts {
    /// The responsible zone.
    pub zone: Option<String>,
    /// Care team.
    pub team: Vec<TeamMember>,
    /// Blocks, lifted ones included.
    pub blocks: Vec<Block>,
    /// Explicit accesses.
    pub explicit: Vec<ExplicitAccess>,
}

/// Adds `staff` to (or, with `active = false`, removes them from) the care team.
pub fn set_team_member(
    doc: &mut Document,
    ctx: &ChangeContext,
    staff: &StaffId,
    active: bool,
) -> Result<(), DocError> {
    let member = TeamMember {
        staff: staff.clone(),
        active,
        by: ctx.author.clone(),
        at: ctx.entered_at,
    };
    doc.change(ctx, |ed| ed.put_json(&format!("team/{staff}"), &member))
}

/// Registers a block of `staff`.
pub fn block(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    staff: &StaffId,
) -> Result<Block, DocError> {
    let block = Block {
        id: EntryId::random(rng),
        staff: staff.clone(),
        by: ctx.author.clone(),
        at: ctx.entered_at,
        lifted: None,
    };
    doc.change(ctx, |ed| {
        ed.put_json(&format!("block/{}", block.id), &block)
    })?;
    Ok(block)
}

/// Lifts a block (it stays in the record as lifted).
pub fn lift_block(doc: &mut Document, ctx: &ChangeContext, id: &EntryId) -> Result<(), DocError> {
    let key = format!("block/{id}");
    doc.change(ctx, |ed| {
        let mut block: Block = ed
            .reader()
            .str(&key)
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| DocError::NotFound(format!("block {id}")))?;
        block.lifted = Some((ctx.author.clone(), ctx.entered_at));
        ed.put_json(&key, &block)
    })
}

/// Records an explicit access by the writing staff member, lasting until `until_ms`.
pub fn explicit_access(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    reason: &str,
    until_ms: i64,
) -> Result<ExplicitAccess, DocError> {
    let staff = ctx.author.staff.clone().ok_or_else(|| {
        DocError::Rejected("explicit access is asked by a staff member, not a device".into())
    })?;
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > super::journal::MAX_TEXT_BYTES {
        return Err(DocError::Rejected(
            "explicit access needs a stated reason (1 to 16384 bytes)".into(),
        ));
    }
    let access = ExplicitAccess {
        id: EntryId::random(rng),
        staff,
        device: ctx.author.device,
        reason: reason.to_owned(),
        at: ctx.entered_at,
        until_ms,
    };
    doc.change(ctx, |ed| {
        ed.put_json(&format!("access/{}/{}", access.staff, access.id), &access)
    })?;
    Ok(access)
}

/// Reads the access facts. Works on a partial record too (one holding only an access a nurse
/// asked for before the record itself arrived).
pub fn read(doc: &Document) -> AccessFacts {
    let r = doc.reader();
    let (team, _) = decode_entries(r, "team/");
    let (blocks, _) = decode_entries(r, "block/");
    let (explicit, _) = decode_entries(r, "access/");
    AccessFacts {
        zone: r.str(&format!("field/{}", PatientField::Zone.as_str())),
        team,
        blocks,
        explicit,
    }
}
