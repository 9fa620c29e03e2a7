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
use crate::docs::plan::{PlanStatus, Revision, Visit, VisitPlan};
use crate::docs::record::{PatientField, RecordFields};
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
    /// Who wrote each entry involved, in the entries' order: the staff id, or `device …` for a
    /// device acting alone.
    #[serde(default)]
    pub by: Vec<String>,
    /// The same people by name, as each entry's author was named when writing.
    #[serde(default)]
    pub by_names: Vec<String>,
    /// The patient's name, where the record is held: filled when read ([`Conflict::name`]), so a
    /// renamed patient needs no derivation again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// The dose's medication by name, from the patient's medication list (dose conflicts):
    /// filled when read, like `patient_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medication_name: Option<String>,
    /// One line for people: names, not ids, wherever the documents know them.
    pub summary: String,
}

impl ConflictKind {
    /// Medication and integrity need clinical review now; the rest, the base's review.
    pub fn severity(&self) -> Severity {
        match self {
            ConflictKind::DoseGivenTwice { .. }
            | ConflictKind::DoseGivenAndNotGiven { .. }
            | ConflictKind::EntryWrittenTwice { .. } => Severity::High,
            ConflictKind::VisitPerformedByTwo { .. }
            | ConflictKind::VisitPerformedButCancelled { .. }
            | ConflictKind::VisitPerformedAgainstChangedPlan { .. }
            | ConflictKind::ConcurrentFieldEdit { .. } => Severity::Review,
        }
    }
}

impl Conflict {
    /// Adds what the patient's record names — the patient, and a dose's medication — and says the
    /// summary again with them (derivation sees only the plan and the journal).
    pub fn name(&mut self, patient_name: Option<String>, medication_name: Option<String>) {
        if let (
            ConflictKind::DoseGivenTwice { dose } | ConflictKind::DoseGivenAndNotGiven { dose },
            Some(medication),
        ) = (&self.kind, &medication_name)
        {
            self.summary = dose_summary(
                &self.kind,
                &dose_label(dose, Some(medication)),
                &self.by_names,
            );
        }
        self.patient_name = patient_name;
        self.medication_name = medication_name;
    }

    /// The patient as people know her: her name where the record is held, else her id.
    pub fn patient_label(&self) -> &str {
        self.patient_name
            .as_deref()
            .unwrap_or(self.patient.as_str())
    }

    /// The dose a dose conflict is about.
    pub fn dose(&self) -> Option<&DoseRef> {
        match &self.kind {
            ConflictKind::DoseGivenTwice { dose } | ConflictKind::DoseGivenAndNotGiven { dose } => {
                Some(dose)
            }
            _ => None,
        }
    }
}

/// A dose as people read it: the medication's name where known (else its id), slot and day.
fn dose_label(dose: &DoseRef, medication: Option<&str>) -> String {
    let medication = medication.map_or_else(|| dose.medication.to_string(), str::to_owned);
    format!("{medication} at {} on {}", dose.slot, dose.day)
}

/// The summary of a dose conflict, `by` naming who wrote each entry involved.
fn dose_summary(kind: &ConflictKind, dose: &str, by: &[String]) -> String {
    match kind {
        ConflictKind::DoseGivenAndNotGiven { .. } => {
            format!(
                "{dose} recorded both as given and as not given ({})",
                by.join(", ")
            )
        }
        _ => format!(
            "{dose} recorded as given {} times, by {}",
            by.len(),
            by.join(", ")
        ),
    }
}

/// A planned visit as people read it: its day and time.
fn visit_label(start: &crate::time::Timestamp) -> String {
    format!("the {} visit on {}", start.hhmm(), start.day())
}

/// Conflicts in a patient record's identity fields.
pub fn record_conflicts(record: &RecordFields) -> Vec<Conflict> {
    record
        .field_conflicts
        .iter()
        .map(|fc| {
            // The patient too: the same two values of one field can meet on two patients'
            // records (a shared phone), and each is its own conflict, resolved alone.
            let mut parts = vec!["field", record.id.as_str(), fc.field.as_str()];
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
                by: Vec::new(),
                by_names: Vec::new(),
                patient_name: None,
                medication_name: None,
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
            writers(&entries),
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
/// `authors` gives the entries under a key and who wrote them ([`writers`]).
pub fn written_twice(
    patient: &PatientId,
    doc: &crate::docs::DocumentId,
    keys: &[String],
    authors: impl Fn(&str) -> (Vec<EntryId>, Writers),
) -> Vec<Conflict> {
    let document = doc.to_string();
    keys.iter()
        .map(|key| {
            let (entries, (who, names)) = authors(key);
            let subject = format!("{document}/{key}");
            new_conflict(
                patient,
                ConflictKind::EntryWrittenTwice {
                    document: document.clone(),
                    key: key.clone(),
                    authors: who.clone(),
                },
                "entry-written-twice",
                &subject,
                entries,
                (who.clone(), names.clone()),
                format!(
                    "integrity alert: {key} in {} holds {} values, written by {}; both are kept, and a base must review how",
                    doc.for_people(),
                    names.len().max(2),
                    names.join(" and ")
                ),
            )
        })
        .collect()
}

/// Who wrote a conflict's entries: ids (see [`Conflict::by`]) and names.
pub type Writers = (Vec<String>, Vec<String>);

fn writers(entries: &[&Entry]) -> Writers {
    authors_writers(entries.iter().map(|e| &e.author))
}

/// The ids and names of these authors: the staff id, or `device …` for a device acting alone.
pub fn authors_writers<'a>(authors: impl Iterator<Item = &'a crate::docs::Author>) -> Writers {
    authors
        .map(|a| {
            let id = a
                .staff
                .as_ref()
                .map_or_else(|| format!("device {}", a.device.short()), |s| s.to_string());
            (id, a.name.clone())
        })
        .unzip()
}

fn new_conflict(
    patient: &PatientId,
    kind: ConflictKind,
    tag: &str,
    subject: &str,
    mut entries: Vec<EntryId>,
    (by, by_names): Writers,
    summary: String,
) -> Conflict {
    entries.sort();
    entries.dedup();
    let mut parts = vec![tag, subject];
    parts.extend(entries.iter().map(EntryId::as_str));
    Conflict {
        id: ConflictId::derive(&parts),
        patient: patient.clone(),
        severity: kind.severity(),
        kind,
        entries,
        by,
        by_names,
        patient_name: None,
        medication_name: None,
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
        let label = dose_label(dose, None);
        if entries.len() > 1 {
            let kind = ConflictKind::DoseGivenTwice {
                dose: (*dose).clone(),
            };
            let who = writers(entries);
            let summary = dose_summary(&kind, &label, &who.1);
            found.push(new_conflict(
                patient,
                kind,
                "dose-given-twice",
                &dose.to_string(),
                entries.iter().map(|e| e.id.clone()).collect(),
                who,
                summary,
            ));
        }
        if let Some(refusals) = not_given.get(dose) {
            let both: Vec<&Entry> = entries.iter().chain(refusals.iter()).copied().collect();
            let kind = ConflictKind::DoseGivenAndNotGiven {
                dose: (*dose).clone(),
            };
            let who = writers(&both);
            let summary = dose_summary(&kind, &label, &who.1);
            found.push(new_conflict(
                patient,
                kind,
                "dose-given-and-not-given",
                &dose.to_string(),
                both.iter().map(|e| e.id.clone()).collect(),
                who,
                summary,
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
        found.extend(performed_by_two(patient, visit, &entries));
        found.extend(performed_but_cancelled(patient, visit, &entries));
        found.extend(
            entries
                .iter()
                .filter_map(|entry| performed_against_changed_plan(patient, visit, entry)),
        );
    }
}

/// A visit documented as performed by more people than its plan explains.
fn performed_by_two(patient: &PatientId, visit: &Visit, entries: &[&Entry]) -> Option<Conflict> {
    let (who, names) = writers(entries);
    let distinct: BTreeSet<&String> = who.iter().collect();
    let planned: BTreeSet<String> = visit.staff.iter().map(|s| s.to_string()).collect();
    let explained_by_double_staffing =
        planned.len() >= distinct.len() && distinct.iter().all(|p| planned.contains(*p));
    if distinct.len() <= 1 || explained_by_double_staffing {
        return None;
    }
    let kind = ConflictKind::VisitPerformedByTwo {
        visit: visit.id.clone(),
        performers: distinct.iter().map(|s| (*s).clone()).collect(),
    };
    let summary = format!(
        "{} documented as performed by {}",
        visit_label(&visit.start),
        names.join(" and ")
    );
    Some(new_conflict(
        patient,
        kind,
        "visit-performed-by-two",
        visit.id.as_str(),
        entries.iter().map(|e| e.id.clone()).collect(),
        (who, names),
        summary,
    ))
}

/// A cancelled visit documented as performed.
fn performed_but_cancelled(
    patient: &PatientId,
    visit: &Visit,
    entries: &[&Entry],
) -> Option<Conflict> {
    let PlanStatus::Cancelled { reason } = &visit.status else {
        return None;
    };
    let (who, names) = writers(entries);
    let summary = format!(
        "{} was cancelled ({reason}) but documented as performed by {}",
        visit_label(&visit.start),
        names.join(", ")
    );
    Some(new_conflict(
        patient,
        ConflictKind::VisitPerformedButCancelled {
            visit: visit.id.clone(),
            reason: reason.clone(),
        },
        "visit-performed-but-cancelled",
        visit.id.as_str(),
        entries.iter().map(|e| e.id.clone()).collect(),
        (who, names),
        summary,
    ))
}

/// A visit performed by someone who had not seen every change of its plan made before she
/// documented it.
fn performed_against_changed_plan(
    patient: &PatientId,
    visit: &Visit,
    entry: &Entry,
) -> Option<Conflict> {
    let EntryBody::VisitPerformed {
        plan_revisions_seen,
        ..
    } = &entry.body
    else {
        return None;
    };
    let seen: BTreeSet<&EntryId> = plan_revisions_seen.iter().collect();
    // A revision entered after the performer documented the visit is a later plan edit,
    // not one she acted against.
    let unseen: Vec<&Revision> = visit
        .revisions
        .iter()
        .filter(|r| !seen.contains(&r.id) && r.at <= entry.entered_at)
        .collect();
    if unseen.is_empty() {
        return None;
    }
    let what: Vec<&str> = unseen.iter().map(|r| r.what.as_str()).collect();
    let summary = format!(
        "{} performed by {} against an outdated plan: {}",
        visit_label(&visit.start),
        entry.author.name,
        what.join("; ")
    );
    Some(new_conflict(
        patient,
        ConflictKind::VisitPerformedAgainstChangedPlan {
            visit: visit.id.clone(),
            unseen_changes: unseen
                .iter()
                .map(|r| format!("{} by {} at {}", r.what, r.by.name, r.at))
                .collect(),
        },
        "visit-performed-against-changed-plan",
        visit.id.as_str(),
        std::iter::once(entry.id.clone())
            .chain(unseen.iter().map(|r| r.id.clone()))
            .collect(),
        writers(&[entry]),
        summary,
    ))
}
