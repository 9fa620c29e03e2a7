//! The visit plan: one patient's visits in one month.
//!
//! Plans merge (domain.md §6, cases 2 and 5): each visit field is a last-writer-wins register,
//! the set of visits is add-wins, and every plan change appends a revision record under its own key.
//! A journal entry that documents a visit records the revisions its author had seen, which is how a
//! visit "performed against a plan changed after the performer last saw it" is detected.

use std::collections::BTreeMap;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Author, ChangeContext, DocError, Document};
use crate::ids::{EntryId, PatientId, StaffId, TiltakId, VisitId};
use crate::time::{Day, Timestamp};

/// Physical (nurse in the home) or digital (video) visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VisitKind {
    /// The nurse is in the home (FHIR Encounter class HH).
    Physical,
    /// Scheduled video visit (FHIR Encounter class VR).
    Digital,
}

impl VisitKind {
    /// Name on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            VisitKind::Physical => "physical",
            VisitKind::Digital => "digital",
        }
    }
}

/// The plan status of a visit. Whether it happened is a fact in the journal, not a plan status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum PlanStatus {
    /// Planned.
    Planned,
    /// Cancelled, with the reason (admitted to hospital, declined...).
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// One plan change, kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Revision id.
    pub id: EntryId,
    /// The visit changed.
    pub visit: VisitId,
    /// Who changed it.
    pub by: Author,
    /// When it was entered.
    pub at: Timestamp,
    /// What changed, for people ("planned", "moved to 10:00-10:30", "assigned to Kari Berg
    /// (S00012)"...): staff by the name the writing node knew them by, beside their id.
    pub what: String,
}

/// A planned visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Id.
    pub id: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// Start of the time window.
    pub start: Timestamp,
    /// End of the time window.
    pub end: Timestamp,
    /// Physical or digital.
    pub kind: VisitKind,
    /// The tiltak this visit serves.
    pub tiltak: Vec<TiltakId>,
    /// Assigned staff (none = unassigned, "ufordelt"; two = dobbeltbemanning).
    pub staff: Vec<StaffId>,
    /// Plan status.
    pub status: PlanStatus,
    /// Every plan change, oldest first.
    pub revisions: Vec<Revision>,
}

impl Visit {
    /// The local day the visit is planned for.
    pub fn day(&self) -> Day {
        self.start.day()
    }

    /// The visit as a line for people names it: by its planned time ("visit of 08:00-08:30").
    pub fn for_people(&self) -> String {
        format!("visit of {}-{}", self.start.hhmm(), self.end.hhmm())
    }
}

/// What a new visit looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    /// The patient.
    pub patient: PatientId,
    /// Window start.
    pub start: Timestamp,
    /// Window end.
    pub end: Timestamp,
    /// Physical or digital.
    pub kind: VisitKind,
    /// Tiltak served.
    pub tiltak: Vec<TiltakId>,
    /// Assigned staff, at most two.
    pub staff: Vec<StaffId>,
}

/// The read model of a visit plan document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitPlan {
    /// Visits, by id.
    pub visits: Vec<Visit>,
    /// Keys this build could not decode.
    pub unreadable: Vec<String>,
}

impl VisitPlan {
    /// Looks up a visit.
    pub fn visit(&self, id: &VisitId) -> Option<&Visit> {
        self.visits.iter().find(|v| &v.id == id)
    }
}

/// Maximum staff on one visit (dobbeltbemanning).
pub const MAX_STAFF_PER_VISIT: usize = 2;

fn visit_key(id: &VisitId) -> String {
    format!("visit/{id}")
}

/// Adds a visit; returns its id.
pub fn add(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    visit: &NewVisit,
) -> Result<VisitId, DocError> {
    validate_window(&visit.start, &visit.end)?;
    validate_staff(&visit.staff)?;
    let id = VisitId::random(rng);
    let key = visit_key(&id);
    let what = format!(
        "planned {} {}-{}",
        visit.kind.as_str(),
        visit.start,
        visit.end.hhmm()
    );
    doc.change(ctx, |ed| {
        ed.put_in(&key, "patient", visit.patient.as_str())?;
        ed.put_in(&key, "start", &visit.start.to_string())?;
        ed.put_in(&key, "end", &visit.end.to_string())?;
        ed.put_in(&key, "kind", visit.kind.as_str())?;
        ed.put_in(&key, "tiltak", &to_json(&visit.tiltak)?)?;
        ed.put_in(&key, "staff", &to_json(&visit.staff)?)?;
        ed.put_in(&key, "status", &to_json(&PlanStatus::Planned)?)?;
        put_revision(ed, rng, ctx, &id, &what)
    })?;
    Ok(id)
}

/// A change to an existing visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitChange {
    /// Move the time window.
    Reschedule {
        /// New start.
        start: Timestamp,
        /// New end.
        end: Timestamp,
    },
    /// Assign staff (replaces the assignment; empty = unassigned).
    Assign(Vec<StaffId>),
    /// Change between physical and digital.
    SetKind(VisitKind),
    /// Cancel with a reason.
    Cancel(String),
    /// Undo a cancellation.
    Reinstate,
}

/// Applies a plan change, recording a revision; `name_of` names the staff a reassignment names
/// (the revision is written once and read by people on every node, some of which know no
/// name for an id, so the name goes into the revision, not into each reader's rendering).
pub fn change(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    visit: &VisitId,
    change: &VisitChange,
    name_of: &dyn Fn(&StaffId) -> Option<String>,
) -> Result<(), DocError> {
    let key = visit_key(visit);
    if doc.reader().str_in(&key, "patient").is_none() {
        return Err(DocError::NotFound(format!("visit {visit}")));
    }
    let what = match change {
        VisitChange::Reschedule { start, end } => {
            validate_window(start, end)?;
            format!("moved to {start}-{}", end.hhmm())
        }
        VisitChange::Assign(staff) => {
            validate_staff(staff)?;
            if staff.is_empty() {
                "unassigned".to_owned()
            } else {
                format!("assigned to {}", join(staff, name_of))
            }
        }
        VisitChange::SetKind(kind) => format!("made {}", kind.as_str()),
        VisitChange::Cancel(reason) => format!("cancelled: {reason}"),
        VisitChange::Reinstate => "reinstated".to_owned(),
    };
    doc.change(ctx, |ed| {
        match change {
            VisitChange::Reschedule { start, end } => {
                ed.put_in(&key, "start", &start.to_string())?;
                ed.put_in(&key, "end", &end.to_string())?;
            }
            VisitChange::Assign(staff) => ed.put_in(&key, "staff", &to_json(staff)?)?,
            VisitChange::SetKind(kind) => ed.put_in(&key, "kind", kind.as_str())?,
            VisitChange::Cancel(reason) => ed.put_in(
                &key,
                "status",
                &to_json(&PlanStatus::Cancelled {
                    reason: reason.clone(),
                })?,
            )?,
            VisitChange::Reinstate => ed.put_in(&key, "status", &to_json(&PlanStatus::Planned)?)?,
        }
        put_revision(ed, rng, ctx, visit, &what)
    })
}

fn put_revision(
    ed: &mut super::Editor<'_, '_>,
    rng: &mut impl RngCore,
    ctx: &ChangeContext,
    visit: &VisitId,
    what: &str,
) -> Result<(), DocError> {
    let revision = Revision {
        id: EntryId::random(rng),
        visit: visit.clone(),
        by: ctx.author.clone(),
        at: ctx.entered_at,
        what: what.to_owned(),
    };
    ed.put_json(&format!("rev/{visit}/{}", revision.id), &revision)
}

fn validate_window(start: &Timestamp, end: &Timestamp) -> Result<(), DocError> {
    if end <= start {
        return Err(DocError::Rejected(format!(
            "the visit's end ({end}) must be after its start ({start})"
        )));
    }
    if start.minutes_until(end) > 24 * 60 {
        return Err(DocError::Rejected(
            "a visit window cannot be longer than 24 hours".into(),
        ));
    }
    Ok(())
}

fn validate_staff(staff: &[StaffId]) -> Result<(), DocError> {
    if staff.len() > MAX_STAFF_PER_VISIT {
        return Err(DocError::Rejected(format!(
            "a visit has at most {MAX_STAFF_PER_VISIT} staff (dobbeltbemanning), got {}",
            staff.len()
        )));
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Result<String, DocError> {
    serde_json::to_string(value).map_err(|e| DocError::Rejected(e.to_string()))
}

fn join(staff: &[StaffId], name_of: &dyn Fn(&StaffId) -> Option<String>) -> String {
    staff
        .iter()
        .map(|id| match name_of(id) {
            Some(name) => format!("{name} ({id})"),
            None => id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Reads the plan: its visits' maps and their revisions each in one pass over their keys (a
/// lookup per visit seeks the document's root anew; reading a month's plans is most of
/// deriving a received month's rows).
pub fn read(doc: &Document) -> VisitPlan {
    let r = doc.reader();
    let mut revisions = revisions_by_visit(r);
    let mut visits = Vec::new();
    let mut unreadable = Vec::new();
    for (key, map) in r.maps_with_prefix("visit/") {
        let read = key
            .strip_prefix("visit/")
            .and_then(|s| VisitId::parse(s).ok())
            .and_then(|id| {
                let revisions = revisions.remove(id.as_str()).unwrap_or_default();
                read_one(id, r.strs_of(&map?), revisions)
            })
            .filter(|(visit, _)| belongs(doc, visit));
        match read {
            Some((visit, bad)) => {
                visits.push(visit);
                unreadable.extend(bad);
            }
            None => unreadable.push(key),
        }
    }
    VisitPlan { visits, unreadable }
}

/// Every revision key (`rev/<visit>/<revision>`) with its value, by visit.
fn revisions_by_visit(r: super::Reader<'_>) -> BTreeMap<String, Vec<super::RootEntry>> {
    let mut by_visit: BTreeMap<String, Vec<super::RootEntry>> = BTreeMap::new();
    for entry in r.entries_with_prefix("rev/") {
        let visit = entry
            .key
            .strip_prefix("rev/")
            .and_then(|rest| rest.split_once('/'));
        if let Some((visit, _)) = visit {
            by_visit.entry(visit.to_owned()).or_default().push(entry);
        }
    }
    by_visit
}

/// Reads one visit without decoding the rest of the plan.
pub fn read_visit(doc: &Document, id: &VisitId) -> Option<Visit> {
    let r = doc.reader();
    let fields = r.strs_in(&visit_key(id))?;
    let revisions = r.entries_with_prefix(&format!("rev/{id}/"));
    read_one(id.clone(), fields, revisions)
        .map(|(visit, _)| visit)
        .filter(|visit| belongs(doc, visit))
}

/// Whether a visit is one of this plan's: of its patient, in its month (a visit is planned in
/// its month's plan and cannot move out of it). A visit naming another patient or month — only
/// a modified base writes one — is no visit of any view, need or journal, and the plan lists
/// its key among the unreadable: documentation of it would be filed under another patient, or
/// a nurse's need for a day outside the month would outlast the plan's own rows.
fn belongs(doc: &Document, visit: &Visit) -> bool {
    match doc.id() {
        super::DocumentId::VisitPlan(patient, month) => {
            visit.patient == *patient && visit.day().month() == *month
        }
        _ => true,
    }
}

/// Decodes one visit from its map's strings and its revisions' keys; also returns revision
/// keys that failed to decode.
fn read_one(
    id: VisitId,
    fields: Vec<(String, String)>,
    revisions: Vec<super::RootEntry>,
) -> Option<(Visit, Vec<String>)> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let (mut revisions, bad) = super::decode_root_entries::<Revision>(revisions);
    revisions.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    let visit = Visit {
        id,
        patient: PatientId::parse(&field("patient")?).ok()?,
        start: Timestamp::parse(&field("start")?).ok()?,
        end: Timestamp::parse(&field("end")?).ok()?,
        kind: serde_json::from_value(serde_json::Value::String(field("kind")?)).ok()?,
        tiltak: serde_json::from_str(&field("tiltak")?).ok()?,
        staff: serde_json::from_str(&field("staff")?).ok()?,
        status: serde_json::from_str(&field("status")?).ok()?,
        revisions,
    };
    Some((visit, bad))
}
