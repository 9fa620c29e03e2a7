//! The day report: what this node knows of one day's visits, derived from plans and journals.
//!
//! Reports read the day index ([`index`]): rows the change pipeline derives, in the same write as
//! every change, from each patient-month's plan and journal and from the day logs — so a report
//! reads one day's rows, not months of documents. [`documents`] derives the same report from the
//! documents themselves: the reference the index is tested against.

mod documents;
mod index;
mod lines;
mod row_bytes;
mod rows;

pub use documents::day_report_from_documents;
pub use index::day_report;
use lines::performer;
pub use lines::{DeviationLine, VisitLine, VisitOutcome, visit_line};
pub(crate) use rows::{day_log_rows, month_rows};

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::conflict::Conflict;
use crate::docs::plan::VisitKind;
use crate::ids::PatientId;
use crate::repo::{Repo, RepoError};
use crate::time::Day;
use crate::{NodeId, Role};

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
    fn finish(
        &mut self,
        repo: &Repo,
        zone: Option<&str>,
        names: &crate::repo::NamesAndHints,
    ) -> Result<(), RepoError> {
        for patient in &self.per_patient {
            self.conflicts
                .extend(repo.named_conflicts(Some(&patient.patient))?);
        }
        self.tell_patients_apart(names);
        self.devices = devices(repo, zone)?;
        let known = repo.staff_names()?;
        // Every staff id the report shows: a visit's planned staff too (one cancelled but
        // performed is credited to its performer, not them).
        let shown = (self.per_staff.keys())
            .chain(
                self.per_patient
                    .iter()
                    .flat_map(|p| p.staff_this_week.iter()),
            )
            .chain(self.visits.iter().flat_map(|v| v.staff.iter()));
        for id in shown {
            if let Some(name) = known.get(id) {
                self.staff_names.insert(id.clone(), name.clone());
            }
        }
        self.sort();
        Ok(())
    }

    /// Names the report's patients as its lists show them: two of one name it shows told apart
    /// (see [`crate::repo::tell_apart`]), in visits, patients and conflicts alike, whichever
    /// derivation made the report.
    fn tell_patients_apart(&mut self, names: &crate::repo::NamesAndHints) {
        let labels = crate::repo::tell_apart(names, self.per_patient.iter().map(|p| &p.patient));
        for p in &mut self.per_patient {
            if let Some(label) = labels.get(&p.patient) {
                p.name.clone_from(label);
            }
        }
        for v in &mut self.visits {
            if let Some(label) = labels.get(&v.patient) {
                v.patient_name.clone_from(label);
            }
        }
        crate::repo::label_conflicts(&mut self.conflicts, &labels);
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
