//! The day index: what a day holds, derived at commit, and the report read from it.
//!
//! For every patient-month the change pipeline derives, with the conflicts and tasks, one row
//! per planned visit — its window, kind, staff and outcome — keyed by the day it is planned on,
//! and, keyed by the day they happened, one per visit performed (who was there, for continuity)
//! and one per journal deviation; each day log gives its deviations. A report then reads the
//! day's rows (and, for continuity, the week's performer rows of the patients it shows): time in
//! proportion to the day, not to the months of journals behind it. The patient (or staff
//! member) in each key lets a zone's report skip other zones' rows unopened.

use std::collections::{BTreeMap, BTreeSet};

use super::row_bytes::{decode_deviation, decode_performer, decode_visit};
use super::{Counts, DayReport, PatientDay, monday_of, tally};
use crate::ids::PatientId;
use crate::repo::{Disclosure, Repo, RepoError};
use crate::time::Day;

/// The patient (or staff member) a day-index key names.
fn subject(key: &str) -> &str {
    key.split('/').nth(1).unwrap_or_default()
}

/// Builds the day report from the day index, for one zone's patients (by the zone in their
/// record) or for every patient held — those the need gate admits (`disclosure`, which the
/// caller finishes to log the patients shown).
pub fn day_report(
    repo: &Repo,
    day: Day,
    zone: Option<&str>,
    disclosure: &mut Disclosure<'_>,
) -> Result<DayReport, RepoError> {
    let store = repo.store();
    // Read once: the names here, and what tells two of one name apart in `finish`.
    let names = repo.names_and_hints()?;
    let mut shown = Shown::new(repo, zone);
    let mut report = DayReport::empty(day, zone);
    let mut patients: BTreeMap<PatientId, PatientDay> = BTreeMap::new();
    let mut staff_seen = BTreeSet::new();
    for (key, bytes) in store.day_rows(day, "v/", |key| shown.zone_holds(subject(key)))? {
        let Ok(patient) = PatientId::parse(subject(&key)) else {
            continue;
        };
        if !disclosure.admits(&patient)? {
            continue;
        }
        let super::row_bytes::VisitRow {
            mut line,
            performers,
        } = decode_visit(&bytes)?;
        line.performers = performers;
        let name = (names.get(&patient))
            .map_or_else(|| "(record not held)".into(), |(name, _)| name.clone());
        line.patient_name = name.clone();
        line.zone = shown.zone_of(subject(&key));
        let patient_day = patients
            .entry(patient.clone())
            .or_insert_with(|| PatientDay {
                patient: patient.clone(),
                name,
                counts: Counts::default(),
                staff_this_week: Vec::new(),
            });
        tally(&mut report, &mut patient_day.counts, &line, &mut staff_seen);
        report.visits.push(line);
    }
    let week = staff_this_week(repo, day, &patients)?;
    for (patient, mut patient_day) in patients {
        patient_day.staff_this_week = week.get(&patient).cloned().unwrap_or_default();
        report.per_patient.push(patient_day);
    }
    let shown_patients: BTreeSet<String> = report
        .per_patient
        .iter()
        .map(|p| p.patient.to_string())
        .collect();
    let deviations = store.day_rows(day, "d/", |key| {
        let who = subject(key);
        // A patient's deviation with the patient's visits; a day log's with its staff member's,
        // or (no zone) everyone's.
        shown_patients.contains(who)
            || (PatientId::parse(who).is_err() && (zone.is_none() || staff_seen.contains(who)))
    })?;
    for (_, bytes) in deviations {
        report.deviations.push(decode_deviation(&bytes)?);
    }
    report.finish(repo, zone, &names)?;
    Ok(report)
}

/// The staff who performed each shown patient's visits from Monday up to `day`, by when they
/// were there: the week's performer rows of those patients only.
fn staff_this_week(
    repo: &Repo,
    day: Day,
    patients: &BTreeMap<PatientId, PatientDay>,
) -> Result<BTreeMap<PatientId, Vec<String>>, RepoError> {
    let mut staff: BTreeMap<PatientId, BTreeSet<String>> = BTreeMap::new();
    let shown: BTreeSet<String> = patients.keys().map(ToString::to_string).collect();
    let (mut d, last) = (monday_of(day), day.to_days());
    while d.to_days() <= last {
        for (key, bytes) in repo
            .store()
            .day_rows(d, "p/", |key| shown.contains(subject(key)))?
        {
            if let Ok(patient) = PatientId::parse(subject(&key)) {
                staff
                    .entry(patient)
                    .or_default()
                    .insert(decode_performer(&bytes)?);
            }
        }
        let Some(next) = d.next() else { break };
        d = next;
    }
    Ok(staff
        .into_iter()
        .map(|(p, s)| (p, s.into_iter().collect()))
        .collect())
}

/// Each patient's zone, by the zone relation the need index keeps (one lookup per patient,
/// remembered), and whether a zone's report shows them.
struct Shown<'a> {
    repo: &'a Repo,
    zone: Option<&'a str>,
    known: BTreeMap<String, Option<String>>,
}

impl<'a> Shown<'a> {
    fn new(repo: &'a Repo, zone: Option<&'a str>) -> Self {
        Shown {
            repo,
            zone,
            known: BTreeMap::new(),
        }
    }

    /// The zone of `patient`, if the record held here names one.
    fn zone_of(&mut self, patient: &str) -> Option<String> {
        if let Some(zone) = self.known.get(patient) {
            return zone.clone();
        }
        let zone = PatientId::parse(patient).ok().and_then(|p| {
            let relations = self.repo.store().relations(&p, "zone:").ok()?;
            let first = relations.into_iter().next()?;
            first.name.strip_prefix("zone:").map(str::to_owned)
        });
        self.known.insert(patient.to_owned(), zone.clone());
        zone
    }

    fn zone_holds(&mut self, patient: &str) -> bool {
        match self.zone {
            None => true,
            Some(zone) => self.zone_of(patient).as_deref() == Some(zone),
        }
    }
}
