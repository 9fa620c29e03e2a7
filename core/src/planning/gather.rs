//! Gathering a [`PlanInput`] from what a base holds: the day's visits and their tiltak, the
//! patients' zones, homes, care teams and blocks, the staff on shift (a shift list the coordinator
//! gives, or the enrolled staff with their day logs), and who visited whom in the last 28 days.
//! Reads only, through the existing read APIs and the need gate: a patient the gate does not
//! admit is not planned (and the caller's [`Disclosure`] logs every patient it showed).

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use super::model::{
    PastVisit, PlanInput, PlanPatient, PlanStaff, PlanVisit, Policy, Position, USUAL_DAYS,
};
use crate::Role;
use crate::docs::daylog::{self, DayLogBody};
use crate::docs::journal::{self, EntryBody};
use crate::docs::plan::{self, PlanStatus, Visit};
use crate::docs::record::{PatientField, PatientRecord};
use crate::docs::{DocumentId, access_facts};
use crate::ids::{PatientId, StaffId, VisitId};
use crate::repo::{Disclosure, Repo};
use crate::time::{Day, Month, Timestamp};

/// A staff member's shift as the coordinator gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShiftLine {
    /// Who.
    pub staff: StaffId,
    /// Shift start.
    pub start: Timestamp,
    /// Shift end.
    pub end: Timestamp,
    /// Competence, when the staff member is not enrolled (or to override it).
    pub competence: Option<String>,
    /// Name, when not enrolled.
    pub name: Option<String>,
    /// Zone, when not enrolled.
    pub zone: Option<String>,
}

/// What to gather.
#[derive(Debug, Clone)]
pub struct GatherOptions {
    /// The day.
    pub day: Day,
    /// The zone (`None`: every patient held).
    pub zone: Option<String>,
    /// The shift list, if the coordinator gives one; otherwise the enrolled staff of the zone,
    /// with their day logs' shift start and end where they have them.
    pub shifts: Option<Vec<ShiftLine>>,
    /// The shift of enrolled staff without a day log (start, end).
    pub default_shift: (Timestamp, Timestamp),
    /// Visits starting before this are kept as they are (the part of the day already gone).
    pub frozen_before: Option<Timestamp>,
    /// The coordinator's settings.
    pub policy: Policy,
}

/// Reads the planning input for a day (and zone) from `repo`, for the patients `disclosure`
/// admits.
pub fn gather(
    repo: &Repo,
    options: &GatherOptions,
    disclosure: &mut Disclosure<'_>,
) -> Result<PlanInput, PlanError> {
    gather_with(repo, options, disclosure, History::Read)
}

/// Whether a gather reads who visited the patients before (four weeks of plans and journals):
/// the suggestion's continuity needs it, the hard rules do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Read it.
    Read,
    /// Leave it empty (checking moves against the hard rules only).
    Skip,
}

/// [`gather`], reading the history or not.
pub fn gather_with(
    repo: &Repo,
    options: &GatherOptions,
    disclosure: &mut Disclosure<'_>,
    history_read: History,
) -> Result<PlanInput, PlanError> {
    let day = options.day;
    let mut patients = BTreeMap::new();
    let mut visits = Vec::new();
    let mut records: BTreeMap<PatientId, Option<PatientRecord>> = BTreeMap::new();
    for visit in repo.visits_on(day)? {
        if matches!(visit.status, PlanStatus::Cancelled { .. }) {
            continue;
        }
        let record = match records.get(&visit.patient) {
            Some(r) => r.clone(),
            None => {
                let r = repo.record(&visit.patient).ok();
                records.insert(visit.patient.clone(), r.clone());
                r
            }
        };
        // Without the record there is no zone, competence or block to go by: not planned here.
        let Some(record) = record else { continue };
        let zone = record.field(PatientField::Zone).map(str::to_owned);
        if options.zone.is_some() && zone != options.zone || !disclosure.admits(&visit.patient)? {
            continue;
        }
        if !patients.contains_key(&visit.patient) {
            patients.insert(visit.patient.clone(), patient(repo, &record, zone)?);
        }
        visits.push(plan_visit(repo, &record, visit, options.frozen_before)?);
    }
    let staff = on_shift(repo, options, &visits)?;
    if let Some(zone) = &options.zone
        && visits.is_empty()
    {
        // No visits: an unknown zone (a typo) is an error, a quiet day in a known one is not.
        let held = zones_held(repo)?;
        if !held.contains(zone) {
            return Err(PlanError::Invalid(format!(
                "no patient of this node is in zone {zone:?}; zones held: {}",
                held.join(", ")
            )));
        }
    }
    let history = match history_read {
        History::Read => history(repo, day, patients.keys())?,
        History::Skip => Default::default(),
    };
    Ok(PlanInput {
        day,
        zone: options.zone.clone(),
        patients,
        visits,
        staff,
        history,
        not_before: options.frozen_before,
        policy: options.policy.clone(),
    })
}

/// Who is on shift: the shift list's staff, or without one the enrolled staff and the staff
/// the day's visits name. Nobody, while visits are still to come, is refused: every one would
/// be taken from whoever has it — a suggestion no one could want, one `--accept` away from an
/// empty day.
fn on_shift(
    repo: &Repo,
    options: &GatherOptions,
    visits: &[PlanVisit],
) -> Result<Vec<PlanStaff>, PlanError> {
    let staff = match &options.shifts {
        Some(lines) => listed_staff(repo, lines, options.zone.as_deref())?,
        None => {
            let enrolled = directory(repo)?;
            let mut staff = enrolled_staff(repo, options, &enrolled)?;
            staff.extend(listed_with_visits(repo, options, visits, &enrolled));
            staff
        }
    };
    if !staff.is_empty() || visits.iter().all(|v| v.fixed) {
        return Ok(staff);
    }
    let (day, zone) = (options.day, options.zone.as_deref());
    let zone = zone.map(|z| format!(" in {z}")).unwrap_or_default();
    Err(PlanError::Invalid(match options.shifts {
        Some(_) => format!("nobody on the shift list is on shift on {day}{zone}"),
        None => format!(
            "nobody is on shift on {day}{zone}: give a shift list (--shifts, or paste one on \
             the dashboard), or enrol the staff's phones with their competence (`omsyn \
             enroll approve --competence ...`)"
        ),
    }))
}

fn patient(
    repo: &Repo,
    record: &PatientRecord,
    zone: Option<String>,
) -> Result<PlanPatient, PlanError> {
    let facts = repo
        .store()
        .with_doc(
            &DocumentId::PatientRecord(record.id.clone()),
            access_facts::read,
        )
        .map_err(crate::RepoError::from)?
        .unwrap_or_default();
    // A malformed location (written by an older build or by hand) counts as unknown.
    let position = record
        .field(PatientField::Location)
        .and_then(|l| Position::parse(l).ok());
    Ok(PlanPatient {
        zone,
        position,
        care_team: facts
            .team
            .iter()
            .filter(|m| m.active)
            .map(|m| m.staff.clone())
            .collect(),
        blocked: facts
            .blocks
            .iter()
            .filter(|b| b.lifted.is_none())
            .map(|b| b.staff.clone())
            .collect(),
    })
}

fn plan_visit(
    repo: &Repo,
    record: &PatientRecord,
    visit: Visit,
    frozen_before: Option<Timestamp>,
) -> Result<PlanVisit, PlanError> {
    let tiltak: Vec<_> = record
        .tiltak
        .iter()
        .filter(|t| visit.tiltak.contains(&t.id))
        .collect();
    let double = tiltak.iter().any(|t| t.double_staffed) || visit.staff.len() == 2;
    let documented = documented(repo, &visit.patient, visit.day().month())?.contains(&visit.id);
    Ok(PlanVisit {
        needs_authorised: tiltak.iter().any(|t| t.requires_authorised_nurse),
        staff_needed: if double { 2 } else { 1 },
        fixed: documented || frozen_before.is_some_and(|t| visit.start < t),
        id: visit.id,
        patient: visit.patient,
        start: visit.start,
        end: visit.end,
        kind: visit.kind,
        current: visit.staff,
    })
}

/// The visits of a patient-month documented as performed or not performed.
fn documented(
    repo: &Repo,
    patient: &PatientId,
    month: Month,
) -> Result<BTreeSet<VisitId>, PlanError> {
    let journal = repo
        .store()
        .with_doc(&DocumentId::Journal(patient.clone(), month), journal::read)
        .map_err(crate::RepoError::from)?
        .unwrap_or_default();
    Ok(journal
        .standing()
        .into_iter()
        .filter_map(|e| match &e.body {
            EntryBody::VisitPerformed { visit, .. }
            | EntryBody::VisitNotPerformed { visit, .. } => Some(visit.clone()),
            _ => None,
        })
        .collect())
}

/// An enrolled staff member as the certificate has them.
#[derive(Debug, Clone)]
struct Enrolled {
    name: String,
    zone: Option<String>,
    competence: Option<String>,
}

/// Enrolled staff members (nurse certificates, not revoked), by staff id.
fn directory(repo: &Repo) -> Result<BTreeMap<StaffId, Enrolled>, PlanError> {
    let store = repo.store();
    let mut out = BTreeMap::new();
    for cert in store.certificates().map_err(crate::RepoError::from)? {
        let grant = cert.grant();
        let Some(id) = &grant.staff_id else { continue };
        if grant.role != Role::Nurse
            || store
                .revocation(&grant.node)
                .map_err(crate::RepoError::from)?
                .is_some()
        {
            continue;
        }
        out.insert(
            id.clone(),
            Enrolled {
                name: grant.name.clone(),
                zone: grant.zone.clone(),
                competence: grant.competence.clone(),
            },
        );
    }
    Ok(out)
}

fn listed_staff(
    repo: &Repo,
    lines: &[ShiftLine],
    zone: Option<&str>,
) -> Result<Vec<PlanStaff>, PlanError> {
    let known = directory(repo)?;
    let mut staff = Vec::new();
    for line in lines {
        let enrolled = known.get(&line.staff);
        let competence = line
            .competence
            .clone()
            .or_else(|| enrolled.and_then(|e| e.competence.clone()))
            .ok_or_else(|| {
                PlanError::Invalid(format!(
                    "no competence known for {}: enrol the staff member with --competence, or give a competence column in the shift list",
                    line.staff
                ))
            })?;
        let member_zone = line
            .zone
            .clone()
            .or_else(|| enrolled.and_then(|e| e.zone.clone()));
        if zone.is_some() && member_zone.is_some() && member_zone.as_deref() != zone {
            continue;
        }
        staff.push(PlanStaff {
            id: line.staff.clone(),
            name: line
                .name
                .clone()
                .or_else(|| enrolled.map(|e| e.name.clone()))
                .unwrap_or_else(|| line.staff.to_string()),
            competence,
            zone: member_zone,
            shift_start: line.start,
            shift_end: line.end,
            base: None,
        });
    }
    Ok(staff)
}

fn enrolled_staff(
    repo: &Repo,
    options: &GatherOptions,
    enrolled: &BTreeMap<StaffId, Enrolled>,
) -> Result<Vec<PlanStaff>, PlanError> {
    let mut staff = Vec::new();
    for (id, member) in enrolled {
        if options.zone.is_some() && member.zone != options.zone {
            continue;
        }
        let (mut start, mut end) = options.default_shift;
        let log = repo
            .store()
            .with_doc(&DocumentId::DayLog(id.clone(), options.day), daylog::read)
            .map_err(crate::RepoError::from)?;
        for entry in log.map(|log| log.items).unwrap_or_default() {
            match entry.body {
                DayLogBody::ShiftStart => start = entry.event_time,
                DayLogBody::ShiftEnd => end = entry.event_time,
                _ => {}
            }
        }
        if end <= start {
            // The day log says the shift is over (or ended before it began): not on shift.
            continue;
        }
        staff.push(PlanStaff {
            id: id.clone(),
            name: member.name.clone(),
            competence: member.competence.clone().unwrap_or_default(),
            zone: member.zone.clone(),
            shift_start: start,
            shift_end: end,
            base: None,
        });
    }
    Ok(staff)
}

/// Without a shift list: the staff the day's visits are planned for whose phones are not
/// enrolled (named by an imported work list or `staff add`). They are at work that day; leaving
/// them out would make every visit of theirs "not on shift" and move it. Each works the default
/// shift, stretched to cover the visits planned for her (an evening's visits are not off
/// shift), whichever zone her list named last (her visits here are what counts). Their
/// competence is the one the work list gives (none: not an authorised nurse). An enrolled
/// nurse is not one of them: her certificate, zone and day log decide (`enrolled_staff`).
fn listed_with_visits(
    repo: &Repo,
    options: &GatherOptions,
    visits: &[PlanVisit],
    enrolled: &BTreeMap<StaffId, Enrolled>,
) -> Vec<PlanStaff> {
    let mut staff = Vec::new();
    for (id, listed) in repo.listed_staff() {
        let Ok(id) = StaffId::parse(&id) else {
            continue;
        };
        let theirs: Vec<&PlanVisit> = (visits.iter())
            .filter(|v| v.current.contains(&id))
            .collect();
        if theirs.is_empty() || enrolled.contains_key(&id) {
            continue;
        }
        let (mut shift_start, mut shift_end) = options.default_shift;
        for v in theirs {
            shift_start = shift_start.min(v.start);
            shift_end = shift_end.max(v.end);
        }
        staff.push(PlanStaff {
            id,
            name: listed.name,
            competence: listed.role,
            zone: listed.zone,
            shift_start,
            shift_end,
            base: None,
        });
    }
    staff
}

/// Who visited the patients in the `USUAL_DAYS` before `day`: the performers where a visit was
/// documented, else the staff it was planned for.
fn history<'a>(
    repo: &Repo,
    day: Day,
    patients: impl Iterator<Item = &'a PatientId>,
) -> Result<Vec<PastVisit>, PlanError> {
    let first = Day::from_days(day.to_days() - USUAL_DAYS).unwrap_or(day);
    let months: BTreeSet<Month> = [first.month(), day.month()].into_iter().collect();
    let store = repo.store();
    let mut out = Vec::new();
    for patient in patients {
        for month in &months {
            let Some(planned) = store
                .with_doc(&DocumentId::VisitPlan(patient.clone(), *month), plan::read)
                .map_err(crate::RepoError::from)?
            else {
                continue;
            };
            let journal = store
                .with_doc(&DocumentId::Journal(patient.clone(), *month), journal::read)
                .map_err(crate::RepoError::from)?
                .unwrap_or_default();
            let mut performers: BTreeMap<&VisitId, Vec<StaffId>> = BTreeMap::new();
            for e in journal.standing() {
                if let (EntryBody::VisitPerformed { visit, .. }, Some(s)) =
                    (&e.body, &e.author.staff)
                {
                    performers.entry(visit).or_default().push(s.clone());
                }
            }
            for v in planned
                .visits
                .iter()
                .filter(|v| v.day() >= first && v.day() < day)
            {
                if matches!(v.status, PlanStatus::Cancelled { .. })
                    && !performers.contains_key(&v.id)
                {
                    continue;
                }
                let staff = performers
                    .get(&v.id)
                    .cloned()
                    .unwrap_or_else(|| v.staff.clone());
                out.extend(staff.into_iter().map(|staff| PastVisit {
                    patient: patient.clone(),
                    staff,
                    day: v.day(),
                }));
            }
        }
    }
    Ok(out)
}

fn zones_held(repo: &Repo) -> Result<Vec<String>, PlanError> {
    let mut zones = BTreeSet::new();
    for (patient, _) in repo.patients()? {
        if let Ok(record) = repo.record(&patient)
            && let Some(zone) = record.field(PatientField::Zone)
        {
            zones.insert(zone.to_owned());
        }
    }
    Ok(zones.into_iter().collect())
}

/// Parses a shift list: semicolon-separated, header first, columns `staff_id;start;end` and
/// optionally `competence`, `name` and `zone` (in any order after the first three); times are
/// `HH:MM` on `day` at UTC offset `offset_secs` (an end before the start is the next morning,
/// for a night shift). Every bad line is named.
pub fn parse_shifts(text: &str, day: Day, offset_secs: i32) -> Result<Vec<ShiftLine>, PlanError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches('\u{feff}')
        .split(';')
        .map(|h| h.trim().to_lowercase())
        .collect();
    if header.len() < 3 || header[..3] != ["staff_id", "start", "end"] {
        return Err(PlanError::Invalid(
            "a shift list starts with the header staff_id;start;end (then optionally competence;name;zone)"
                .into(),
        ));
    }
    let optional = |name: &str| header.iter().position(|h| h == name);
    if let Some(unknown) = header[3..]
        .iter()
        .find(|h| !["competence", "name", "zone"].contains(&h.as_str()))
    {
        return Err(PlanError::Invalid(format!(
            "unknown shift list column {unknown:?}"
        )));
    }
    let mut out: Vec<ShiftLine> = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        let parsed = shift_line(&fields, header.len(), day, offset_secs, &optional);
        match parsed {
            Ok(l) if out.iter().any(|o| o.staff == l.staff) => {
                errors.push(format!("line {}: {} is listed twice", i + 2, l.staff))
            }
            Ok(l) => out.push(l),
            Err(e) => errors.push(format!("line {}: {e}", i + 2)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(PlanError::Invalid(format!(
            "bad shift list: {}",
            errors.join("; ")
        )))
    }
}

fn shift_line(
    fields: &[&str],
    columns: usize,
    day: Day,
    offset_secs: i32,
    optional: &dyn Fn(&str) -> Option<usize>,
) -> Result<ShiftLine, String> {
    if fields.len() != columns {
        return Err(format!("{} fields, expected {columns}", fields.len()));
    }
    let staff = StaffId::parse(fields[0]).map_err(|e| e.to_string())?;
    let time = |s: &str| Timestamp::from_day_hhmm(day, s, offset_secs).map_err(|e| e.to_string());
    let start = time(fields[1])?;
    let mut end = time(fields[2])?;
    if end <= start {
        end = end.plus_minutes(24 * 60);
    }
    let text = |name: &str| {
        optional(name)
            .map(|i| fields[i].to_owned())
            .filter(|v| !v.is_empty())
    };
    Ok(ShiftLine {
        staff,
        start,
        end,
        competence: text("competence"),
        name: text("name"),
        zone: text("zone"),
    })
}
