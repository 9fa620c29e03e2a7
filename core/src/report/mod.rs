//! The day report: what this node knows of one day's visits, derived from plans and journals.
//!
//! Reports read the day index ([`index`]): rows the change pipeline derives, in the same write as
//! every change, from each patient-month's plan and journal and from the day logs — so a report
//! reads one day's rows, not months of documents. [`documents`] derives the same report from the
//! documents themselves: the reference the index is tested against.

mod documents;
mod index;

pub use documents::day_report_from_documents;
pub use index::day_report;
pub(crate) use index::{day_log_rows, month_rows};

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::conflict::Conflict;
use crate::docs::journal::{self, EntryBody};
use crate::docs::plan::{self, PlanStatus, VisitKind};
use crate::ids::{PatientId, VisitId};
use crate::repo::{Repo, RepoError};
use crate::time::{Day, Timestamp};
use crate::{NodeId, Role};

/// The outcome of a visit, derived from plan status and journal facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VisitOutcome {
    /// Documented as performed.
    Done,
    /// Attempted and documented as not performed.
    Missed,
    /// Cancelled in the plan (and not performed).
    Cancelled,
    /// Cancelled in the plan but documented as performed (a review conflict).
    CancelledButPerformed,
    /// Planned, nothing documented yet.
    Open,
}

/// One visit in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VisitLine {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// The patient's name, if the record is held here.
    pub patient_name: String,
    /// The patient's zone, if the record held here names one.
    #[serde(default)]
    pub zone: Option<String>,
    /// Window start.
    pub start: Timestamp,
    /// Window end.
    pub end: Timestamp,
    /// Planned kind.
    pub kind: VisitKind,
    /// Assigned staff.
    pub staff: Vec<String>,
    /// Outcome.
    pub outcome: VisitOutcome,
    /// Who documented it as performed.
    pub performed_by: Vec<String>,
    /// The same performers as the report counts them: staff ids (a device acting alone by its
    /// name). Kept in the day index beside the line (see `index::VisitRow`), not in its JSON.
    #[serde(skip)]
    pub performers: Vec<String>,
}

impl VisitLine {
    /// Whom the report credits with this visit: who was planned — except for a cancelled visit
    /// documented as performed, whose plan names nobody who went (the cancellation told them
    /// not to): it is counted for who performed it, before and after the conflict is resolved.
    fn credited(&self) -> &[String] {
        if self.outcome == VisitOutcome::CancelledButPerformed && !self.performers.is_empty() {
            &self.performers
        } else {
            &self.staff
        }
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Visits planned (including those later cancelled).
    pub planned: usize,
    /// Performed.
    pub done: usize,
    /// Not performed.
    pub missed: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Nothing documented yet.
    pub open: usize,
}

impl VisitOutcome {
    /// The outcome's name in reports (as in JSON).
    pub fn as_str(&self) -> &'static str {
        match self {
            VisitOutcome::Done => "done",
            VisitOutcome::Missed => "missed",
            VisitOutcome::Cancelled => "cancelled",
            VisitOutcome::CancelledButPerformed => "cancelled-but-performed",
            VisitOutcome::Open => "open",
        }
    }
}

impl Counts {
    fn add(&mut self, outcome: VisitOutcome) {
        self.planned += 1;
        match outcome {
            VisitOutcome::Done | VisitOutcome::CancelledButPerformed => self.done += 1,
            VisitOutcome::Missed => self.missed += 1,
            VisitOutcome::Cancelled => self.cancelled += 1,
            VisitOutcome::Open => self.open += 1,
        }
    }
}

/// The day report of a base: what it knows of one day in its zone, merged from every device's
/// documents as they synced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayReport {
    /// The day.
    pub day: Day,
    /// The zone reported on (`None`: every patient held).
    pub zone: Option<String>,
    /// All visits.
    pub totals: Counts,
    /// Physical visits.
    pub physical: Counts,
    /// Digital visits.
    pub digital: Counts,
    /// Physical trips replaced by digital visits: digital visits performed.
    pub trips_replaced: usize,
    /// Per assigned staff member ("(unassigned)" for ufordelte visits).
    pub per_staff: BTreeMap<String, Counts>,
    /// Per patient visited that day, by name.
    pub per_patient: Vec<PatientDay>,
    /// Every visit.
    pub visits: Vec<VisitLine>,
    /// Deviations (avvik) recorded that day, in journals and staff day logs.
    pub deviations: Vec<DeviationLine>,
    /// Open conflicts concerning the patients visited that day.
    pub conflicts: Vec<Conflict>,
    /// The zone's enrolled devices, least recently synced first.
    pub devices: Vec<DeviceSync>,
    /// The names of the staff the report names by id (assigned, per staff, this week's
    /// performers), from the certificates held; an id with no known name is left out.
    pub staff_names: BTreeMap<String, String>,
}

/// One patient's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientDay {
    /// The patient.
    pub patient: PatientId,
    /// Name.
    pub name: String,
    /// The day's visits.
    pub counts: Counts,
    /// Continuity: the different staff who performed the patient's visits this week (Monday up
    /// to the report's day).
    pub staff_this_week: Vec<String>,
}

/// A deviation (avvik).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeviationLine {
    /// When.
    pub at: Timestamp,
    /// Who recorded it.
    pub by: String,
    /// The patient, for a journal deviation.
    pub patient: Option<PatientId>,
    /// What.
    pub text: String,
}

/// How recently this node synced with a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSync {
    /// The device.
    pub node: NodeId,
    /// Its staff member's, base's or home's name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The last time both sides were caught up (ms since the epoch); `None`: never.
    pub last_synced_ms: Option<i64>,
    /// The last time a session with it was open.
    pub last_seen_ms: Option<i64>,
}

impl DayReport {
    fn empty(day: Day, zone: Option<&str>) -> DayReport {
        DayReport {
            day,
            zone: zone.map(str::to_owned),
            totals: Counts::default(),
            physical: Counts::default(),
            digital: Counts::default(),
            trips_replaced: 0,
            per_staff: BTreeMap::new(),
            per_patient: Vec::new(),
            visits: Vec::new(),
            deviations: Vec::new(),
            conflicts: Vec::new(),
            devices: Vec::new(),
            staff_names: BTreeMap::new(),
        }
    }

    /// What both derivations end with: the conflicts as people read them, the devices, names
    /// for the staff ids shown, and the order.
    fn finish(&mut self, repo: &Repo, zone: Option<&str>) -> Result<(), RepoError> {
        for patient in &self.per_patient {
            self.conflicts
                .extend(repo.named_conflicts(Some(&patient.patient))?);
        }
        self.devices = devices(repo, zone)?;
        let known = repo.staff_names()?;
        let shown = self.per_staff.keys().chain(
            self.per_patient
                .iter()
                .flat_map(|p| p.staff_this_week.iter()),
        );
        for id in shown {
            if let Some(name) = known.get(id) {
                self.staff_names.insert(id.clone(), name.clone());
            }
        }
        self.sort();
        Ok(())
    }

    /// Visits by start, patients by name, deviations by time: the same order however derived.
    fn sort(&mut self) {
        self.visits
            .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.visit.cmp(&b.visit)));
        self.per_patient
            .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.patient.cmp(&b.patient)));
        self.deviations
            .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.text.cmp(&b.text)));
        self.conflicts.sort_by(|a, b| a.id.cmp(&b.id));
    }
}

/// Counts one visit into the report's figures and its patient's, noting its staff.
fn tally(
    report: &mut DayReport,
    patient: &mut Counts,
    line: &VisitLine,
    staff_seen: &mut BTreeSet<String>,
) {
    let outcome = line.outcome;
    report.totals.add(outcome);
    patient.add(outcome);
    match line.kind {
        VisitKind::Physical => report.physical.add(outcome),
        VisitKind::Digital => {
            report.digital.add(outcome);
            if outcome == VisitOutcome::Done {
                report.trips_replaced += 1;
            }
        }
    }
    let credited = line.credited();
    if credited.is_empty() {
        report
            .per_staff
            .entry("(unassigned)".into())
            .or_default()
            .add(outcome);
    }
    for s in credited {
        report.per_staff.entry(s.clone()).or_default().add(outcome);
    }
    // Whoever was planned or was there: their day logs' deviations belong to the day.
    staff_seen.extend(line.staff.iter().chain(credited).cloned());
}

/// The Monday of `day`'s week.
fn monday_of(day: Day) -> Day {
    let days = day.to_days();
    Day::from_days(days - (days + 3).rem_euclid(7)).unwrap_or(day)
}

/// How continuity counts a performer: the staff id, or the name of a device acting alone.
fn performer(author: &crate::docs::Author) -> String {
    author
        .staff
        .as_ref()
        .map_or_else(|| author.name.clone(), |s| s.to_string())
}

/// The zone's enrolled devices (not revoked) and when this node last synced with each.
fn devices(repo: &Repo, zone: Option<&str>) -> Result<Vec<DeviceSync>, RepoError> {
    let store = repo.store();
    let peers: BTreeMap<NodeId, crate::store::PeerRecord> = store.peers()?.into_iter().collect();
    let mut out = Vec::new();
    for cert in store.certificates()? {
        let grant = cert.grant();
        if grant.node == repo.id()
            || (zone.is_some() && grant.zone.as_deref() != zone)
            || store.revocation(&grant.node)?.is_some()
        {
            continue;
        }
        let peer = peers.get(&grant.node);
        out.push(DeviceSync {
            node: grant.node,
            name: grant.name.clone(),
            role: grant.role,
            last_synced_ms: peer.and_then(|p| p.caught_up_ms),
            last_seen_ms: peer.and_then(|p| p.last_seen_ms),
        });
    }
    out.sort_by(|a, b| {
        a.last_synced_ms
            .cmp(&b.last_synced_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// The report's visits as CSV (semicolon-separated, header first, fields quoted when needed),
/// for spreadsheets and the municipality's statistics.
pub fn visits_csv(report: &DayReport) -> String {
    let mut out = String::from(
        "date;zone;visit;patient;patient_name;start;end;kind;staff;outcome;performed_by\n",
    );
    for v in &report.visits {
        let fields = [
            report.day.to_string(),
            v.zone.clone().unwrap_or_default(),
            v.visit.to_string(),
            v.patient.to_string(),
            v.patient_name.clone(),
            v.start.to_string(),
            v.end.to_string(),
            v.kind.as_str().to_owned(),
            v.staff.join(" + "),
            v.outcome.as_str().to_owned(),
            v.performed_by.join(" + "),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&row.join(";"));
        out.push('\n');
    }
    out
}

/// Quotes a field when needed; a field a spreadsheet would take for a formula (a name starting
/// with `=`, `+`, `-` or `@`) gets a leading apostrophe, so opening the file runs nothing.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// A visit with its outcome, from the plan and the patient's journal: performed or not performed
/// as documented (entries marked entered-in-error do not count), cancelled as planned.
pub fn visit_line(
    visit: plan::Visit,
    patient_name: String,
    journal: &journal::Journal,
) -> VisitLine {
    let mut performed_by = Vec::new();
    let mut performers = Vec::new();
    let mut missed = false;
    for entry in journal.standing() {
        match &entry.body {
            EntryBody::VisitPerformed { visit: v, .. } if *v == visit.id => {
                performed_by.push(entry.author.name.clone());
                let who = performer(&entry.author);
                if !performers.contains(&who) {
                    performers.push(who);
                }
            }
            EntryBody::VisitNotPerformed { visit: v, .. } if *v == visit.id => missed = true,
            _ => {}
        }
    }
    let cancelled = matches!(visit.status, PlanStatus::Cancelled { .. });
    let outcome = match (cancelled, !performed_by.is_empty(), missed) {
        (true, true, _) => VisitOutcome::CancelledButPerformed,
        (true, false, _) => VisitOutcome::Cancelled,
        (false, true, _) => VisitOutcome::Done,
        (false, false, true) => VisitOutcome::Missed,
        (false, false, false) => VisitOutcome::Open,
    };
    VisitLine {
        patient_name,
        zone: None,
        visit: visit.id,
        patient: visit.patient,
        start: visit.start,
        end: visit.end,
        kind: visit.kind,
        staff: visit.staff.iter().map(|s| s.to_string()).collect(),
        outcome,
        performed_by,
        performers,
    }
}
