//! Safety conflicts, derived after every merge: "plans merge, facts accumulate, safety conflicts alert".
//!
//! Conflicts are never stored as truth; they are a pure function of a patient's record, one month's
//! visit plan and that month's journal, so every replica holding the same documents derives the same
//! list (checked by the property tests). A conflict is closed only by a new attributable entry — a
//! [`EntryBody::ConflictResolved`] in the journal, or, for a patient-record field, a new value
//! written over the concurrent ones — never by deleting anything.
//!
//! A conflict's id is a hash of its kind and the ids of the facts involved. If a further fact joins
//! (a third "given" for the same dose), the id changes and the conflict reopens: a resolution covers
//! exactly the evidence its author saw.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::docs::journal::DeviceEvent;
use crate::docs::journal::{DoseRef, Entry, EntryBody, Journal};
use crate::docs::plan::{PlanStatus, VisitPlan};
use crate::docs::record::{PatientField, PatientRecord};
pub use crate::ids::ConflictId;
use crate::ids::{EntryId, PatientId, VisitId};

/// How urgent a conflict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Needs clinical review now (medication).
    High,
    /// Needs review by the base.
    Review,
}

/// What kind of conflict, with its specifics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ConflictKind {
    /// The same dose recorded as given more than once (two nurses, nurse and dispenser, double tap).
    DoseGivenTwice {
        /// The dose.
        dose: DoseRef,
    },
    /// The same dose recorded both as given and as not given.
    DoseGivenAndNotGiven {
        /// The dose.
        dose: DoseRef,
    },
    /// A visit documented as performed by more staff than were planned for it.
    VisitPerformedByTwo {
        /// The visit.
        visit: VisitId,
        /// Everyone who documented it.
        performers: Vec<String>,
    },
    /// A cancelled visit documented as performed.
    VisitPerformedButCancelled {
        /// The visit.
        visit: VisitId,
        /// The cancellation reason.
        reason: String,
    },
    /// A visit performed against a plan that had changed in ways the performer had not seen.
    VisitPerformedAgainstChangedPlan {
        /// The visit.
        visit: VisitId,
        /// The plan changes the performer had not seen.
        unseen_changes: Vec<String>,
    },
    /// A patient-record field edited concurrently; every value is shown.
    ConcurrentFieldEdit {
        /// The field.
        field: PatientField,
        /// All concurrent values.
        values: Vec<String>,
    },
    /// An integrity alert: an entry that is written once holds two values (a node wrote its key
    /// again without seeing the first value — a modified or equivocating node). Both stay
    /// readable; nobody's entry is hidden.
    EntryWrittenTwice {
        /// The document.
        document: String,
        /// The entry's key.
        key: String,
        /// Who wrote each value.
        authors: Vec<String>,
    },
}

/// An open conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// Stable id.
    pub id: ConflictId,
    /// The patient.
    pub patient: PatientId,
    /// Severity.
    pub severity: Severity,
    /// The specifics.
    #[serde(flatten)]
    pub kind: ConflictKind,
    /// The journal entries involved (empty for record-field conflicts).
    pub entries: Vec<EntryId>,
    /// One line for people.
    pub summary: String,
}

/// Conflicts in a patient record's identity fields.
pub fn record_conflicts(record: &PatientRecord) -> Vec<Conflict> {
    record
        .field_conflicts
        .iter()
        .map(|fc| {
            let mut parts = vec!["field", fc.field.as_str()];
            parts.extend(fc.values.iter().map(String::as_str));
            Conflict {
                id: ConflictId::derive(&parts),
                patient: record.id.clone(),
                severity: Severity::Review,
                summary: format!(
                    "{} was edited concurrently: {}",
                    fc.field.as_str(),
                    fc.values
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(" vs ")
                ),
                kind: ConflictKind::ConcurrentFieldEdit {
                    field: fc.field,
                    values: fc.values.clone(),
                },
                entries: Vec::new(),
            }
        })
        .collect()
}

/// Open conflicts among one month's plan and journal of `patient`, integrity alerts included.
pub fn month_conflicts(
    patient: &PatientId,
    month: crate::time::Month,
    plan: &VisitPlan,
    journal: &Journal,
) -> Vec<Conflict> {
    let resolved = journal.resolved();
    let facts = journal.standing();

    let mut found = Vec::new();
    dose_conflicts(patient, &facts, &mut found);
    visit_conflicts(patient, plan, &facts, &mut found);
    let doc = crate::docs::DocumentId::Journal(patient.clone(), month);
    let authors = |key: &str| {
        let id = key.trim_start_matches("e/");
        let entries: Vec<&Entry> = journal
            .entries
            .iter()
            .filter(|e| e.id.as_str() == id)
            .collect();
        (
            entries.iter().map(|e| e.id.clone()).collect(),
            performers(&entries),
        )
    };
    found.extend(written_twice(
        patient,
        &doc,
        &journal.written_twice,
        authors,
    ));
    found.retain(|c| !resolved.contains(&c.id));
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

/// Integrity alerts for the keys of an append-only document (`doc`) that hold two values;
/// `authors` gives the entries under a key and who wrote them.
pub fn written_twice(
    patient: &PatientId,
    doc: &crate::docs::DocumentId,
    keys: &[String],
    authors: impl Fn(&str) -> (Vec<EntryId>, Vec<String>),
) -> Vec<Conflict> {
    let document = doc.to_string();
    keys.iter()
        .map(|key| {
            let (entries, who) = authors(key);
            let subject = format!("{document}/{key}");
            new_conflict(
                patient,
                Severity::High,
                ConflictKind::EntryWrittenTwice {
                    document: document.clone(),
                    key: key.clone(),
                    authors: who.clone(),
                },
                "entry-written-twice",
                &subject,
                entries,
                format!(
                    "integrity alert: {key} in {document} holds {} values, written by {}; both are kept, and a base must review how",
                    who.len().max(2),
                    who.join(" and ")
                ),
            )
        })
        .collect()
}

fn new_conflict(
    patient: &PatientId,
    severity: Severity,
    kind: ConflictKind,
    tag: &str,
    subject: &str,
    mut entries: Vec<EntryId>,
    summary: String,
) -> Conflict {
    entries.sort();
    entries.dedup();
    let mut parts = vec![tag, subject];
    parts.extend(entries.iter().map(EntryId::as_str));
    Conflict {
        id: ConflictId::derive(&parts),
        patient: patient.clone(),
        severity,
        kind,
        entries,
        summary,
    }
}

fn dose_conflicts(patient: &PatientId, facts: &[&Entry], found: &mut Vec<Conflict>) {
    let mut given: BTreeMap<&DoseRef, Vec<&Entry>> = BTreeMap::new();
    let mut not_given: BTreeMap<&DoseRef, Vec<&Entry>> = BTreeMap::new();
    for entry in facts {
        match &entry.body {
            EntryBody::MedicationGiven { dose, .. }
            | EntryBody::DeviceEvent {
                event: DeviceEvent::DoseTaken { dose },
                ..
            } => given.entry(dose).or_default().push(entry),
            EntryBody::MedicationNotGiven { dose, .. } => {
                not_given.entry(dose).or_default().push(entry)
            }
            _ => {}
        }
    }
    for (dose, entries) in &given {
        if entries.len() > 1 {
            found.push(new_conflict(
                patient,
                Severity::High,
                ConflictKind::DoseGivenTwice {
                    dose: (*dose).clone(),
                },
                "dose-given-twice",
                &dose.to_string(),
                entries.iter().map(|e| e.id.clone()).collect(),
                format!(
                    "dose {dose} recorded as given {} times, by {}",
                    entries.len(),
                    performers(entries).join(", ")
                ),
            ));
        }
        if let Some(refusals) = not_given.get(dose) {
            let both: Vec<&Entry> = entries.iter().chain(refusals.iter()).copied().collect();
            found.push(new_conflict(
                patient,
                Severity::High,
                ConflictKind::DoseGivenAndNotGiven {
                    dose: (*dose).clone(),
                },
                "dose-given-and-not-given",
                &dose.to_string(),
                both.iter().map(|e| e.id.clone()).collect(),
                format!(
                    "dose {dose} recorded both as given and as not given ({})",
                    performers(&both).join(", ")
                ),
            ));
        }
    }
}

fn visit_conflicts(
    patient: &PatientId,
    plan: &VisitPlan,
    facts: &[&Entry],
    found: &mut Vec<Conflict>,
) {
    let mut performed: BTreeMap<&VisitId, Vec<&Entry>> = BTreeMap::new();
    for entry in facts {
        if let EntryBody::VisitPerformed { visit, .. } = &entry.body {
            performed.entry(visit).or_default().push(entry);
        }
    }
    for (visit_id, entries) in performed {
        let Some(visit) = plan.visit(visit_id) else {
            continue;
        };
        let who = performers(&entries);
        let distinct: BTreeSet<&String> = who.iter().collect();
        let planned: BTreeSet<String> = visit.staff.iter().map(|s| s.to_string()).collect();
        let explained_by_double_staffing =
            planned.len() >= distinct.len() && distinct.iter().all(|p| planned.contains(*p));
        if distinct.len() > 1 && !explained_by_double_staffing {
            found.push(new_conflict(
                patient,
                Severity::Review,
                ConflictKind::VisitPerformedByTwo {
                    visit: visit_id.clone(),
                    performers: distinct.iter().map(|s| (*s).clone()).collect(),
                },
                "visit-performed-by-two",
                visit_id.as_str(),
                entries.iter().map(|e| e.id.clone()).collect(),
                format!(
                    "visit {visit_id} at {} documented as performed by {}",
                    visit.start,
                    who.join(" and ")
                ),
            ));
        }
        if let PlanStatus::Cancelled { reason } = &visit.status {
            found.push(new_conflict(
                patient,
                Severity::Review,
                ConflictKind::VisitPerformedButCancelled {
                    visit: visit_id.clone(),
                    reason: reason.clone(),
                },
                "visit-performed-but-cancelled",
                visit_id.as_str(),
                entries.iter().map(|e| e.id.clone()).collect(),
                format!(
                    "visit {visit_id} was cancelled ({reason}) but documented as performed by {}",
                    who.join(", ")
                ),
            ));
        }
        for entry in &entries {
            let EntryBody::VisitPerformed {
                plan_revisions_seen,
                ..
            } = &entry.body
            else {
                continue;
            };
            let seen: BTreeSet<&EntryId> = plan_revisions_seen.iter().collect();
            // A revision entered after the performer documented the visit is a later plan edit,
            // not one she acted against.
            let unseen: Vec<&crate::docs::plan::Revision> = visit
                .revisions
                .iter()
                .filter(|r| !seen.contains(&r.id) && r.at <= entry.entered_at)
                .collect();
            if !unseen.is_empty() {
                found.push(new_conflict(
                    patient,
                    Severity::Review,
                    ConflictKind::VisitPerformedAgainstChangedPlan {
                        visit: visit_id.clone(),
                        unseen_changes: unseen
                            .iter()
                            .map(|r| format!("{} by {} at {}", r.what, r.by.name, r.at))
                            .collect(),
                    },
                    "visit-performed-against-changed-plan",
                    visit_id.as_str(),
                    std::iter::once(entry.id.clone())
                        .chain(unseen.iter().map(|r| r.id.clone()))
                        .collect(),
                    format!(
                        "visit {visit_id} performed by {} against an outdated plan: {}",
                        entry.author.name,
                        unseen
                            .iter()
                            .map(|r| r.what.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ));
            }
        }
    }
}

/// Who documented each entry: the staff id, or the device for device-only entries.
fn performers(entries: &[&Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            e.author
                .staff
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("device {}", e.author.device.short()))
        })
        .collect()
}
