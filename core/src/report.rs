//! The day report: what this node knows of one day's visits, derived from plans and journals.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::conflict::Conflict;
use crate::docs::journal::{self, EntryBody};
use crate::docs::plan::{self, PlanStatus, VisitKind};
use crate::docs::record::PatientField;
use crate::docs::{DocKind, DocumentId};
use crate::ids::{PatientId, VisitId};
use crate::repo::{Disclosure, Repo, RepoError};
use crate::store::kind_prefix;
use crate::time::{Day, Timestamp};
use crate::{NodeId, Role};

/// The outcome of a visit, derived from plan status and journal facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VisitLine {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// The patient's name, if the record is held here.
    pub patient_name: String,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Builds the day report from the documents this node holds, for one zone's patients (by the
/// zone in their record) or for every patient held — those the need gate admits
/// (`disclosure`, which the caller finishes to log the patients shown).
pub fn day_report(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    disclosure: &mut Disclosure<'_>,
) -> Result<DayReport, RepoError> {
    day_report_with(repo, day, zone, &ReadModels::none(), disclosure)
}

/// [`day_report`], keeping what it decodes in `models` for the next report: documents that did
/// not change since are not loaded again (a dashboard refreshing as devices sync).
pub fn day_report_with(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    models: &ReadModels,
    disclosure: &mut Disclosure<'_>,
) -> Result<DayReport, RepoError> {
    let mut view = models.view(repo)?;
    let month = day.month();
    let mut names: BTreeMap<PatientId, String> = repo.patients()?.into_iter().collect();
    let mut report = DayReport {
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
    };
    let mut staff_seen = BTreeSet::new();
    for plan_id in view.plan_ids(month) {
        let DocumentId::VisitPlan(patient, _) = &plan_id else {
            continue;
        };
        let Some(planned) = view.plan(&plan_id)? else {
            continue;
        };
        let todays: Vec<_> = planned
            .visits
            .iter()
            .filter(|v| v.day() == day)
            .cloned()
            .collect();
        if todays.is_empty() || !view.in_zone(patient, zone)? || !disclosure.admits(patient)? {
            continue;
        }
        let journal = view
            .journal(&DocumentId::Journal(patient.clone(), month))?
            .unwrap_or_default();
        let name = names
            .entry(patient.clone())
            .or_insert_with(|| "(record not held)".into())
            .clone();
        let mut patient_day = PatientDay {
            patient: patient.clone(),
            name: name.clone(),
            counts: Counts::default(),
            staff_this_week: staff_this_week(&mut view, patient, day, &journal)?,
        };
        for visit in todays {
            let line = visit_line(visit, name.clone(), &journal);
            let outcome = line.outcome;
            report.totals.add(outcome);
            patient_day.counts.add(outcome);
            match line.kind {
                VisitKind::Physical => report.physical.add(outcome),
                VisitKind::Digital => {
                    report.digital.add(outcome);
                    if outcome == VisitOutcome::Done {
                        report.trips_replaced += 1;
                    }
                }
            }
            if line.staff.is_empty() {
                report
                    .per_staff
                    .entry("(unassigned)".into())
                    .or_default()
                    .add(outcome);
            }
            for s in &line.staff {
                report.per_staff.entry(s.clone()).or_default().add(outcome);
                staff_seen.insert(s.clone());
            }
            report.visits.push(line);
        }
        report.deviations.extend(
            journal
                .entries
                .iter()
                .filter(|e| e.event_time.day() == day)
                .filter_map(|e| match &e.body {
                    EntryBody::Deviation { text } => Some(DeviationLine {
                        at: e.event_time,
                        by: e.author.name.clone(),
                        patient: Some(patient.clone()),
                        text: text.clone(),
                    }),
                    _ => None,
                }),
        );
        report.conflicts.extend(repo.conflicts(Some(patient))?);
        report.per_patient.push(patient_day);
    }
    report
        .visits
        .sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.visit.cmp(&b.visit)));
    report
        .per_patient
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.patient.cmp(&b.patient)));
    report
        .deviations
        .extend(day_log_deviations(repo, day, zone, &staff_seen)?);
    report.deviations.sort_by_key(|d| d.at);
    report.devices = devices(repo, zone)?;
    view.finish();
    Ok(report)
}

/// The staff who performed `patient`'s visits from Monday of `day`'s week up to `day`.
fn staff_this_week(
    view: &mut ModelView<'_>,
    patient: &PatientId,
    day: Day,
    this_month: &journal::Journal,
) -> Result<Vec<String>, RepoError> {
    let days = day.to_days();
    let monday = Day::from_days(days - (days + 3).rem_euclid(7)).unwrap_or(day);
    // The week may begin in the previous month: its journal too.
    let earlier = if monday.month() != day.month() {
        view.journal(&DocumentId::Journal(patient.clone(), monday.month()))?
    } else {
        None
    };
    let mut staff = BTreeSet::new();
    for journal in earlier.as_deref().into_iter().chain([this_month]) {
        for e in journal.standing() {
            let d = e.event_time.day();
            if d < monday || d > day {
                continue;
            }
            if let EntryBody::VisitPerformed { .. } = e.body {
                staff.insert(
                    e.author
                        .staff
                        .as_ref()
                        .map_or_else(|| e.author.name.clone(), |s| s.to_string()),
                );
            }
        }
    }
    Ok(staff.into_iter().collect())
}

/// Deviations in staff day logs of `day`: of the staff on the report's visits, or (no zone) of
/// everyone.
fn day_log_deviations(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    staff_seen: &BTreeSet<String>,
) -> Result<Vec<DeviationLine>, RepoError> {
    let store = repo.store();
    let mut out = Vec::new();
    for id in store.doc_ids(kind_prefix(DocKind::DayLog))? {
        let DocumentId::DayLog(staff, d) = &id else {
            continue;
        };
        if *d != day || (zone.is_some() && !staff_seen.contains(staff.as_str())) {
            continue;
        }
        let Some(crate::docs::Appended { items: entries, .. }) =
            store.with_doc(&id, crate::docs::daylog::read)?
        else {
            continue;
        };
        out.extend(entries.into_iter().filter_map(|e| match e.body {
            crate::docs::daylog::DayLogBody::Deviation { text } => Some(DeviationLine {
                at: e.event_time,
                by: e.author.name,
                patient: None,
                text,
            }),
            _ => None,
        }));
    }
    Ok(out)
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

/// What reports decoded from plans, journals and records, kept between reports and reused while
/// a document's position in the change log has not moved. After each report only what it used is
/// kept, so memory follows the working set (one day's plans and journals), not the store.
#[derive(Debug)]
pub struct ReadModels {
    inner: Mutex<Models>,
    /// Whether to keep anything: a one-shot report streams its documents through instead.
    keep: bool,
}

impl Default for ReadModels {
    fn default() -> Self {
        ReadModels {
            inner: Mutex::default(),
            keep: true,
        }
    }
}

#[derive(Debug, Default)]
struct Models {
    plans: HashMap<DocumentId, (u64, Arc<plan::VisitPlan>)>,
    journals: HashMap<DocumentId, (u64, Arc<journal::Journal>)>,
    zones: HashMap<DocumentId, (u64, Option<String>)>,
}

impl ReadModels {
    /// Read models that keep nothing: each report loads what it needs and lets it go.
    pub fn none() -> Self {
        ReadModels {
            inner: Mutex::default(),
            keep: false,
        }
    }

    fn view<'a>(&'a self, repo: &'a Repo) -> Result<ModelView<'a>, RepoError> {
        let store = repo.store();
        let versions = |prefix: &str| -> Result<HashMap<DocumentId, u64>, RepoError> {
            Ok(store.doc_versions(prefix)?.into_iter().collect())
        };
        Ok(ModelView {
            repo,
            models: self,
            plans: versions(kind_prefix(DocKind::VisitPlan))?,
            journals: versions(kind_prefix(DocKind::Journal))?,
            records: versions(kind_prefix(DocKind::PatientRecord))?,
            used: HashSet::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Models> {
        // Poisoned only by a panic mid-insert; the maps stay consistent entry by entry.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One report's use of [`ReadModels`]: the documents' current versions, and what it used.
struct ModelView<'a> {
    repo: &'a Repo,
    models: &'a ReadModels,
    plans: HashMap<DocumentId, u64>,
    journals: HashMap<DocumentId, u64>,
    records: HashMap<DocumentId, u64>,
    used: HashSet<DocumentId>,
}

impl ModelView<'_> {
    /// The visit plans of `month`, in id order.
    fn plan_ids(&self, month: crate::time::Month) -> Vec<DocumentId> {
        let mut ids: Vec<_> = self
            .plans
            .keys()
            .filter(|id| id.month() == Some(month))
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    fn plan(&mut self, id: &DocumentId) -> Result<Option<Arc<plan::VisitPlan>>, RepoError> {
        let Some(&seq) = self.plans.get(id) else {
            return Ok(None);
        };
        self.model(id, seq, |m| &mut m.plans, |d| Arc::new(plan::read(d)))
    }

    fn journal(&mut self, id: &DocumentId) -> Result<Option<Arc<journal::Journal>>, RepoError> {
        let Some(&seq) = self.journals.get(id) else {
            return Ok(None);
        };
        self.model(id, seq, |m| &mut m.journals, |d| Arc::new(journal::read(d)))
    }

    /// Whether `patient`'s record names `zone` (always, without a zone).
    fn in_zone(&mut self, patient: &PatientId, zone: Option<&str>) -> Result<bool, RepoError> {
        let Some(zone) = zone else {
            return Ok(true);
        };
        let id = DocumentId::PatientRecord(patient.clone());
        let Some(&seq) = self.records.get(&id) else {
            return Ok(false);
        };
        let held = self.model(
            &id,
            seq,
            |m| &mut m.zones,
            |d| {
                crate::docs::record::read(d)
                    .ok()
                    .and_then(|r| r.field(PatientField::Zone).map(str::to_owned))
            },
        )?;
        Ok(held.flatten().as_deref() == Some(zone))
    }

    /// What `derive` makes of document `id` at version `seq`: the kept value if it was derived
    /// from this version, else derived now (and kept, when the models keep anything).
    fn model<V: Clone>(
        &mut self,
        id: &DocumentId,
        seq: u64,
        kept: fn(&mut Models) -> &mut HashMap<DocumentId, (u64, V)>,
        derive: impl FnOnce(&crate::docs::Document) -> V,
    ) -> Result<Option<V>, RepoError> {
        self.used.insert(id.clone());
        if let Some((at, value)) = kept(&mut self.models.lock()).get(id)
            && *at == seq
        {
            return Ok(Some(value.clone()));
        }
        let Some(value) = self.repo.store().with_doc(id, derive)? else {
            return Ok(None);
        };
        if self.models.keep {
            kept(&mut self.models.lock()).insert(id.clone(), (seq, value.clone()));
        }
        Ok(Some(value))
    }

    /// Keeps only what this report used.
    fn finish(self) {
        let used = self.used;
        let mut models = self.models.lock();
        models.plans.retain(|id, _| used.contains(id));
        models.journals.retain(|id, _| used.contains(id));
        models.zones.retain(|id, _| used.contains(id));
    }
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
            report.zone.clone().unwrap_or_default(),
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
    let mut missed = false;
    for entry in journal.standing() {
        match &entry.body {
            EntryBody::VisitPerformed { visit: v, .. } if *v == visit.id => {
                performed_by.push(entry.author.name.clone())
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
        visit: visit.id,
        patient: visit.patient,
        start: visit.start,
        end: visit.end,
        kind: visit.kind,
        staff: visit.staff.iter().map(|s| s.to_string()).collect(),
        outcome,
        performed_by,
    }
}
