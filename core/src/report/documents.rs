//! The day report derived from the documents themselves — every plan, every journal and day log
//! held, whatever month — with no index: the reference the index-backed report is tested
//! against. It costs what the store holds, so nothing but the tests calls it.

use std::collections::{BTreeMap, BTreeSet};

use super::{Counts, DayReport, DeviationLine, PatientDay, tally, visit_line};
use crate::docs::daylog::{self, DayLogBody};
use crate::docs::journal::{self, EntryBody, Journal};
use crate::docs::record::{self, PatientField};
use crate::docs::{DocKind, DocumentId, plan};
use crate::ids::PatientId;
use crate::repo::{Disclosure, Repo, RepoError};
use crate::store::kind_prefix;
use crate::time::{Day, Month};

/// [`super::day_report`], derived from every plan, journal and day log held.
pub fn day_report_from_documents(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    disclosure: &mut Disclosure<'_>,
) -> Result<DayReport, RepoError> {
    let store = repo.store();
    // Read once: the names here, and what tells two of one name apart in `finish`.
    let names = repo.names_and_hints()?;
    let journals = all_journals(repo)?;
    let no_journal = Journal::default();
    let mut report = DayReport::empty(day, zone);
    let mut staff_seen = BTreeSet::new();
    let mut patients: BTreeMap<PatientId, PatientDay> = BTreeMap::new();
    for plan_id in store.doc_ids(kind_prefix(DocKind::VisitPlan))? {
        let DocumentId::VisitPlan(patient, month) = &plan_id else {
            continue;
        };
        let Some(planned) = store.with_doc(&plan_id, plan::read)? else {
            continue;
        };
        let todays: Vec<_> = planned
            .visits
            .into_iter()
            .filter(|v| v.day() == day)
            .collect();
        let patient_zone = zone_of(repo, patient)?;
        let shown = zone.is_none() || patient_zone.as_deref() == zone;
        if todays.is_empty() || !shown || !disclosure.admits(patient)? {
            continue;
        }
        // A visit's outcome is documented in the journal of its plan's month.
        let journal = journals
            .get(&(patient.clone(), *month))
            .unwrap_or(&no_journal);
        let name = (names.get(patient))
            .map_or_else(|| "(record not held)".into(), |(name, _)| name.clone());
        let patient_day = patients
            .entry(patient.clone())
            .or_insert_with(|| PatientDay {
                patient: patient.clone(),
                name: name.clone(),
                counts: Counts::default(),
                staff_this_week: Vec::new(),
            });
        for visit in todays {
            let mut line = visit_line(visit, name.clone(), journal);
            line.zone = patient_zone.clone();
            tally(&mut report, &mut patient_day.counts, &line, &mut staff_seen);
            report.visits.push(line);
        }
    }
    add_patient_days(&mut report, patients, &journals, day);
    report
        .deviations
        .extend(day_log_deviations(repo, day, zone, &staff_seen)?);
    report.finish(repo, zone, &names)?;
    Ok(report)
}

/// Each patient's day, with who saw her this week and the deviations her journals show.
fn add_patient_days(
    report: &mut DayReport,
    patients: BTreeMap<PatientId, PatientDay>,
    journals: &BTreeMap<(PatientId, Month), Journal>,
    day: Day,
) {
    for (patient, mut patient_day) in patients {
        let theirs: Vec<&Journal> = journals
            .iter()
            .filter(|((p, _), _)| *p == patient)
            .map(|(_, j)| j)
            .collect();
        patient_day.staff_this_week = staff_this_week(&theirs, day);
        report
            .deviations
            .extend(journal_deviations(&patient, day, &theirs));
        report.per_patient.push(patient_day);
    }
}

/// Every journal held, by patient and month.
fn all_journals(repo: &Repo) -> Result<BTreeMap<(PatientId, Month), Journal>, RepoError> {
    let store = repo.store();
    let mut out = BTreeMap::new();
    for id in store.doc_ids(kind_prefix(DocKind::Journal))? {
        let DocumentId::Journal(patient, month) = &id else {
            continue;
        };
        if let Some(journal) = store.with_doc(&id, journal::read)? {
            out.insert((patient.clone(), *month), journal);
        }
    }
    Ok(out)
}

/// The zone the patient's record names, if it is held.
fn zone_of(repo: &Repo, patient: &PatientId) -> Result<Option<String>, RepoError> {
    let id = DocumentId::PatientRecord(patient.clone());
    let held = repo.store().with_doc(&id, |d| {
        record::read(d)
            .ok()
            .and_then(|r| r.field(PatientField::Zone).map(str::to_owned))
    })?;
    Ok(held.flatten())
}

/// The patient's deviations (avvik) that happened on `day`, in any of their journals.
fn journal_deviations(patient: &PatientId, day: Day, journals: &[&Journal]) -> Vec<DeviationLine> {
    journals
        .iter()
        .flat_map(|j| j.standing())
        .filter(|e| e.event_time.day() == day)
        .filter_map(|e| match &e.body {
            EntryBody::Deviation { text } => Some(DeviationLine {
                at: e.event_time,
                by: e.author.name.clone(),
                patient: Some(patient.clone()),
                text: text.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The staff who performed the patient's visits from Monday of `day`'s week up to `day`, by
/// when they were there, in whichever journal it is documented.
fn staff_this_week(journals: &[&Journal], day: Day) -> Vec<String> {
    let monday = super::monday_of(day);
    let mut staff = BTreeSet::new();
    for journal in journals {
        for e in journal.standing() {
            let d = e.event_time.day();
            if d < monday || d > day {
                continue;
            }
            if let EntryBody::VisitPerformed { .. } = e.body {
                staff.insert(super::performer(&e.author));
            }
        }
    }
    staff.into_iter().collect()
}

/// Deviations in staff day logs that happened on `day`: of the staff on the report's visits, or
/// (no zone) of everyone.
fn day_log_deviations(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    staff_seen: &BTreeSet<String>,
) -> Result<Vec<DeviationLine>, RepoError> {
    let store = repo.store();
    let mut out = Vec::new();
    for id in store.doc_ids(kind_prefix(DocKind::DayLog))? {
        let DocumentId::DayLog(staff, _) = &id else {
            continue;
        };
        if zone.is_some() && !staff_seen.contains(staff.as_str()) {
            continue;
        }
        let Some(read) = store.with_doc(&id, daylog::read)? else {
            continue;
        };
        out.extend(read.items.into_iter().filter_map(|e| match e.body {
            DayLogBody::Deviation { text } if e.event_time.day() == day => Some(DeviationLine {
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
