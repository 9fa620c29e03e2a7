//! FHIR R4 (4.0.1) export: one `collection` Bundle per patient, so the municipality's record
//! system (the legal system of record) can take what was documented offline.
//!
//! Mapping (domain.md §2): the record → Patient (fødselsnummer as `urn:oid:2.16.578.1.12.4.1.4.1`)
//! and Flag; each planned visit → Appointment (status from plan and journal: booked, fulfilled,
//! noshow, cancelled); each "visit performed" → Encounter (class HH in the home, VR for video);
//! observations → Observation; doses → MedicationAdministration (completed / not-done); notes →
//! DocumentReference; messages → Communication; open safety conflicts and deviations (avvik) →
//! DetectedIssue (DUPTHPY for a dose given twice); device alerts → DetectedIssue, escalation tasks → Task
//! (requested, accepted when claimed, completed); the access log → AuditEvent. Corrections are
//! not lost: an amended resource carries status `amended` (or `entered-in-error`) and the
//! correction as a note. Staff are referenced by HPR/employee identifier and name; the writing
//! device is the AuditEvent's observer.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::conflict::{Conflict, ConflictKind, Severity};
use crate::docs::Author;
use crate::docs::journal::{DeviceEvent, DoseRef, Entry, EntryBody, Journal, Marks};
use crate::docs::messages::{Message, Recipient};
use crate::docs::plan::{Visit, VisitKind};
use crate::docs::record::{Flag, PatientField, PatientRecord};
use crate::escalation::{Priority, Task, TaskKind};
use crate::identity::NodeId;
use crate::ids::{EntryId, PatientId, VisitId};
use crate::repo::{Repo, RepoError};
use crate::report::{VisitOutcome, visit_line};
use crate::time::Timestamp;
use crate::trust::audit::{AuditAction, AuditEntry};

const FNR: &str = "urn:oid:2.16.578.1.12.4.1.4.1";
const HPR: &str = "urn:oid:2.16.578.1.12.4.1.4.4";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const LOINC: &str = "http://loinc.org";
/// The base of the Bundle entries' fullUrls.
const BUNDLE_BASE: &str = "https://omsyn.invalid/fhir/";

/// One patient's export.
#[derive(Debug, Clone)]
pub struct PatientBundle {
    /// The patient.
    pub patient: PatientId,
    /// The Bundle (a JSON object).
    pub bundle: Value,
    /// Resources by type.
    pub counts: BTreeMap<String, usize>,
}

/// The FHIR export of the patients this node holds (or the one named), through the need gate:
/// a transfer to the municipality's record system, so a base's act only (a device's data
/// reaches the record system through its base); each patient exported is logged.
pub fn export(
    repo: &Repo,
    now: Timestamp,
    patient: Option<&PatientId>,
) -> Result<Vec<(PatientId, PatientBundle)>, RepoError> {
    if repo.profile().role != crate::Role::Base {
        return Err(RepoError::NotPermitted {
            role: repo.profile().role,
            action: "export FHIR for the record system (a base does that)",
        });
    }
    let held: Vec<PatientId> = match patient {
        Some(p) => vec![p.clone()],
        None => repo.patients()?.into_iter().map(|(p, _)| p).collect(),
    };
    let what = "FHIR export to the record system";
    let gate = repo.open_patients(now, crate::trust::audit::AuditAction::Export, what, held)?;
    if let Some(denied) = patient.and_then(|p| gate.refused.get(p)) {
        return Err(denied.clone().into());
    }
    let task_names = repo.task_names()?;
    gate.shown
        .into_iter()
        .map(|p| patient_bundle(repo, &p, now, &task_names).map(|b| (p, b)))
        .collect()
}

/// Builds the Bundle of everything this node holds about `patient`. `now` stamps the Bundle.
fn patient_bundle(
    repo: &Repo,
    patient: &PatientId,
    now: Timestamp,
    task_names: &crate::repo::TaskNames,
) -> Result<PatientBundle, RepoError> {
    let view = repo.patient_view(patient)?;
    let audit = repo.audit_entries(Some(patient))?;
    let mut out = Resources::default();
    let pref = format!("Patient/{patient}");
    out.push(patient_resource(&view.record));
    for flag in &view.record.flags {
        out.push(flag_resource(flag, &pref));
    }
    let journal = Journal {
        entries: view.journal.clone(),
        ..Journal::default()
    };
    let corrections = Corrections::of(&journal);
    let names = EntryNames::of(&journal);
    let encounters = Encounters::of(&journal, &names, &view.visits);
    for visit in view.visits {
        out.push(appointment(visit, &journal, &pref));
    }
    for (entry, id) in journal.entries.iter().zip(names.copies.iter().cloned()) {
        let cx = EntryCx {
            entry,
            id,
            when: entry.event_time.to_string(),
            pref: &pref,
            record: &view.record,
            corrections: &corrections,
            encounters: &encounters,
        };
        if let Some(resource) = entry_resource(&cx) {
            out.push(resource);
        }
    }
    for message in &view.messages {
        out.push(communication(message, &pref));
    }
    for conflict in &view.conflicts {
        out.push(detected_issue(conflict, &pref, &names));
    }
    let mut tasks = repo.tasks(now, Some(patient))?;
    task_names.apply(repo, &mut tasks);
    for task in &tasks {
        out.push(task_resource(task, &pref, &names));
    }
    for (n, entry) in audit.iter().enumerate() {
        out.push(audit_event(n, entry, &pref));
    }
    Ok(PatientBundle {
        patient: patient.clone(),
        counts: out.counts,
        bundle: json!({
            "resourceType": "Bundle",
            "id": format!("omsyn-{patient}"),
            "type": "collection",
            "timestamp": now.to_string(),
            "entry": out.entries,
        }),
    })
}

/// The resource id of each journal entry, and of each copy of an id written twice (an integrity
/// alert, with its DetectedIssue): such a copy is named by its writer's device too, so neither
/// takes the id the record system may hold already (a system that upserts by id would keep
/// whichever came last), and every export names them alike; one device's second copy gets `-2`
/// after that. References to an entry name every copy, or the first, so none dangles.
struct EntryNames<'a> {
    /// By entry position in the journal.
    copies: Vec<String>,
    /// Every copy's name, by entry id.
    by_id: BTreeMap<&'a EntryId, Vec<String>>,
}

impl<'a> EntryNames<'a> {
    fn of(journal: &'a Journal) -> Self {
        let mut count = BTreeMap::<&EntryId, usize>::new();
        for entry in &journal.entries {
            *count.entry(&entry.id).or_default() += 1;
        }
        let mut names = EntryNames {
            copies: Vec::with_capacity(journal.entries.len()),
            by_id: BTreeMap::new(),
        };
        let mut by_device = BTreeMap::<(&EntryId, &NodeId), usize>::new();
        for entry in &journal.entries {
            let device = &entry.author.device;
            let nth = by_device.entry((&entry.id, device)).or_default();
            *nth += 1;
            let name = match (count.get(&entry.id), *nth) {
                (Some(1), _) => entry.id.to_string(),
                (_, 1) => format!("{}-{}", entry.id, &device.to_string()[..16]),
                // One device's copies (filed in two months) are told apart by their order.
                (_, n) => format!("{}-{}-{n}", entry.id, &device.to_string()[..16]),
            };
            names.copies.push(name.clone());
            names.by_id.entry(&entry.id).or_default().push(name);
        }
        names
    }

    /// The names of every copy of `id` (the id itself when the journal lacks it: the reference
    /// then says what it refers to all the same).
    fn of_id(&self, id: &EntryId) -> Vec<String> {
        self.by_id
            .get(id)
            .cloned()
            .unwrap_or_else(|| vec![id.to_string()])
    }

    /// The name of the first copy of `id` (a single reference).
    fn first_of(&self, id: &EntryId) -> String {
        self.by_id
            .get(id)
            .and_then(|names| names.first())
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

/// A safety flag on the record as a FHIR Flag.
fn flag_resource(flag: &Flag, pref: &str) -> Value {
    json!({
        "resourceType": "Flag",
        "id": flag.id.to_string(),
        "status": if flag.deactivated.is_some() { "inactive" } else { "active" },
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "safety"}]}],
        "code": {"text": match &flag.note { Some(n) => format!("{}: {n}", flag.kind), None => flag.kind.clone() }},
        "subject": {"reference": pref},
        "period": {"start": flag.set_at.to_string()},
        "author": practitioner(&flag.set_by),
    })
}

/// A planned visit as a FHIR Appointment, its status the visit's outcome as the journal tells it.
fn appointment(visit: Visit, journal: &Journal, pref: &str) -> Value {
    let line = visit_line(visit.clone(), String::new(), journal);
    let status = match line.outcome {
        VisitOutcome::Open => "booked",
        VisitOutcome::Done | VisitOutcome::CancelledButPerformed => "fulfilled",
        VisitOutcome::Missed => "noshow",
        VisitOutcome::Cancelled => "cancelled",
    };
    let mut participants = vec![json!({"actor": {"reference": pref}, "status": "accepted"})];
    participants.extend(visit.staff.iter().map(
        |s| json!({"actor": {"identifier": staff_identifier(s.as_str())}, "status": "accepted"}),
    ));
    let mut appointment = json!({
        "resourceType": "Appointment",
        "id": visit.id.to_string(),
        "status": status,
        "serviceType": [service_type(visit.kind)],
        "start": visit.start.to_string(),
        "end": visit.end.to_string(),
        "participant": participants,
    });
    if let crate::docs::plan::PlanStatus::Cancelled { reason } = &visit.status {
        appointment["cancelationReason"] = json!({"text": reason});
    }
    appointment
}

#[derive(Default)]
struct Resources {
    entries: Vec<Value>,
    counts: BTreeMap<String, usize>,
}

impl Resources {
    fn push(&mut self, resource: Value) {
        let kind = resource["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // A RESTful-looking fullUrl, so the relative references between the resources
        // (`Patient/p-…`) resolve inside the Bundle; `.invalid` never resolves on the network.
        let url = format!(
            "{BUNDLE_BASE}{}/{}",
            kind,
            resource["id"].as_str().unwrap_or_default()
        );
        *self.counts.entry(kind).or_default() += 1;
        self.entries
            .push(json!({"fullUrl": url, "resource": resource}));
    }
}

/// What later entries say about earlier ones: amended text, or entered in error.
struct Corrections<'a> {
    amendments: BTreeMap<&'a EntryId, Vec<&'a Entry>>,
    marks: Marks<'a>,
}

impl<'a> Corrections<'a> {
    fn of(journal: &'a Journal) -> Self {
        let mut amendments = BTreeMap::<_, Vec<_>>::new();
        for e in &journal.entries {
            if let EntryBody::Correction { corrects, .. } = &e.body {
                amendments.entry(corrects).or_default().push(e);
            }
        }
        Corrections {
            amendments,
            marks: journal.marks(),
        }
    }

    /// The status to give `entry`'s resource (`normal` when uncorrected), and a note on why.
    /// A correction amends an entry as the entered-in-error mark withdraws one: made by whoever
    /// may withdraw it ([`crate::docs::Author::may_withdraw`]) and standing itself; anyone
    /// else's is kept as a comment, the entry's status unchanged. The last one counts.
    fn status(
        &self,
        entry: &Entry,
        normal: &'static str,
        amended: &'static str,
    ) -> (&'static str, Option<String>) {
        if let Some(reason) = self.marks.withdrawal(entry) {
            return (
                "entered-in-error",
                Some(format!("entered in error: {reason}")),
            );
        }
        let standing = self
            .amendments
            .get(&entry.id)
            .into_iter()
            .flatten()
            .filter(|c| self.marks.withdrawal(c).is_none());
        let (mut own, mut other) = (None, None);
        for correction in standing {
            match correction.author.may_withdraw(&entry.author) {
                true => own = Some(correction),
                false => other = Some(correction),
            }
        }
        let text = |c: &Entry| match &c.body {
            EntryBody::Correction { text, .. } => text.clone(),
            _ => String::new(),
        };
        match (own, other) {
            (Some(c), _) => (amended, Some(format!("corrected: {}", text(c)))),
            (None, Some(c)) => (
                normal,
                Some(format!("{} noted: {}", c.author.name, text(c))),
            ),
            (None, None) => (normal, None),
        }
    }
}

fn patient_resource(record: &PatientRecord) -> Value {
    let mut patient = json!({
        "resourceType": "Patient",
        "id": record.id.to_string(),
        "active": true,
    });
    if let Some(name) = record.field(PatientField::Name) {
        let mut parts: Vec<&str> = name.split_whitespace().collect();
        let family = parts.pop().unwrap_or_default();
        patient["name"] = json!([{"text": name, "family": family, "given": parts}]);
    }
    if let Some(fnr) = record.field(PatientField::NationalId) {
        patient["identifier"] = json!([{"system": FNR, "value": fnr}]);
    }
    if let Some(address) = record.field(PatientField::Address) {
        let mut a = json!({"use": "home", "text": address});
        if let Some(note) = record.field(PatientField::AccessNote) {
            a["extension"] = json!([{"url": "urn:omsyn:fhir:access-note", "valueString": note}]);
        }
        patient["address"] = json!([a]);
    }
    if let Some(phone) = record.field(PatientField::Phone) {
        patient["telecom"] = json!([{"system": "phone", "value": phone}]);
    }
    if let Some(gp) = record.field(PatientField::GeneralPractitioner) {
        patient["generalPractitioner"] = json!([{"display": gp}]);
    }
    if !record.contacts.is_empty() {
        patient["contact"] = record
            .contacts
            .iter()
            .map(|c| {
                let mut contact = json!({
                    "relationship": [{"text": c.relation}],
                    "name": {"text": c.name},
                });
                if let Some(phone) = &c.phone {
                    contact["telecom"] = json!([{"system": "phone", "value": phone}]);
                }
                contact
            })
            .collect();
    }
    patient
}

/// A staff id as an identifier: an HPR number (digits only) under its OID, anything else (an
/// employee number) under the municipality's local system.
fn staff_identifier(staff: &str) -> Value {
    if !staff.is_empty() && staff.bytes().all(|b| b.is_ascii_digit()) {
        json!({"system": HPR, "value": staff})
    } else {
        json!({"system": "urn:omsyn:staff-id", "value": staff})
    }
}

fn service_type(kind: VisitKind) -> Value {
    match kind {
        VisitKind::Physical => json!({"text": "home visit"}),
        VisitKind::Digital => json!({"text": "video visit"}),
    }
}

/// A staff member (or a device acting alone) as a Reference.
fn practitioner(author: &Author) -> Value {
    match &author.staff {
        Some(staff) => json!({
            "identifier": staff_identifier(staff.as_str()),
            "display": author.name,
        }),
        None => json!({"display": format!("{} (device {})", author.name, author.device.short())}),
    }
}

fn notes(extra: Option<String>, more: Option<String>) -> Option<Value> {
    let texts: Vec<Value> = extra
        .into_iter()
        .chain(more)
        .map(|t| json!({"text": t}))
        .collect();
    (!texts.is_empty()).then_some(Value::Array(texts))
}

fn entry_resource(cx: &EntryCx<'_>) -> Option<Value> {
    let (entry, pref, corrections) = (cx.entry, cx.pref, cx.corrections);
    let mut resource = match &entry.body {
        EntryBody::VisitPerformed {
            visit,
            mode,
            arrival,
            departure,
            ..
        } => return Some(encounter(cx, visit, *mode, *arrival, *departure)),
        EntryBody::Observation {
            visit,
            kind,
            value,
            unit,
            device_reading,
        } => {
            let unit = unit.as_deref();
            let reading = device_reading.as_deref();
            return Some(observation(cx, visit.as_ref(), kind, value, unit, reading));
        }
        EntryBody::MedicationGiven { dose, .. } | EntryBody::MedicationNotGiven { dose, .. } => {
            return Some(administration(cx, dose));
        }
        EntryBody::Note { text, .. } => note_reference(cx, text),
        EntryBody::DeviceEvent { device, event, .. } => device_resource(cx, device, event),
        EntryBody::Deviation { text } => json!({
            "resourceType": "DetectedIssue",
            "id": cx.id,
            "status": corrections.status(entry, "final", "amended").0,
            "code": {"text": "deviation (avvik)"},
            "patient": {"reference": pref},
            "identifiedDateTime": cx.when,
            "author": practitioner(&entry.author),
            "detail": text,
        }),
        // Corrections and resolutions are carried by the resources they concern.
        EntryBody::VisitNotPerformed { .. }
        | EntryBody::Correction { .. }
        | EntryBody::EnteredInError { .. }
        | EntryBody::ConflictResolved { .. } => return None,
        // Claims and completions are carried by the Task resources of the tasks they concern.
        EntryBody::TaskClaimed { .. } | EntryBody::TaskDone { .. } => return None,
    };
    resource["meta"] = json!({"lastUpdated": entry.entered_at.to_string()});
    Some(resource)
}

/// What every resource made from one journal entry shares.
struct EntryCx<'a> {
    entry: &'a Entry,
    id: String,
    when: String,
    pref: &'a str,
    record: &'a PatientRecord,
    corrections: &'a Corrections<'a>,
    encounters: &'a Encounters,
}

/// What an entry made during a visit names as its encounter: the visit's `Encounter` where one
/// is exported (the visit was documented as performed), else the visit by its time.
struct Encounters(BTreeMap<VisitId, Value>);

impl Encounters {
    fn of(journal: &Journal, names: &EntryNames<'_>, visits: &[Visit]) -> Encounters {
        let mut of = BTreeMap::new();
        for (entry, id) in journal.entries.iter().zip(&names.copies) {
            if let EntryBody::VisitPerformed { visit, .. } = &entry.body {
                of.entry(visit.clone())
                    .or_insert_with(|| json!({"reference": format!("Encounter/{id}")}));
            }
        }
        for visit in visits {
            of.entry(visit.id.clone())
                .or_insert_with(|| json!({ "display": visit.for_people() }));
        }
        Encounters(of)
    }

    fn of_visit(&self, visit: &VisitId) -> Value {
        (self.0.get(visit).cloned()).unwrap_or_else(|| json!({"display": format!("visit {visit}")}))
    }
}

/// A visit performed: an Encounter.
fn encounter(
    cx: &EntryCx<'_>,
    visit: &VisitId,
    mode: VisitKind,
    arrival: Timestamp,
    departure: Option<Timestamp>,
) -> Value {
    let (status, note) = cx.corrections.status(cx.entry, "finished", "finished");
    let (code, display) = match mode {
        VisitKind::Physical => ("HH", "home health"),
        VisitKind::Digital => ("VR", "virtual"),
    };
    let mut period = json!({"start": arrival.to_string()});
    if let Some(d) = departure {
        period["end"] = json!(d.to_string());
    }
    let mut e = json!({
        "resourceType": "Encounter",
        "id": cx.id,
        "status": if status == "entered-in-error" { status } else { "finished" },
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "subject": {"reference": cx.pref},
        "participant": [{"individual": practitioner(&cx.entry.author)}],
        "appointment": [{"reference": format!("Appointment/{visit}")}],
        "period": period,
    });
    if let Some(note) = note {
        e["reasonCode"] = json!([{"text": note}]);
    }
    e
}

/// A measurement: an Observation (a quantity when the value is a number with a unit).
fn observation(
    cx: &EntryCx<'_>,
    visit: Option<&VisitId>,
    kind: &str,
    value: &str,
    unit: Option<&str>,
    device_reading: Option<&str>,
) -> Value {
    let (status, note) = cx.corrections.status(cx.entry, "final", "amended");
    let mut code = json!({"text": kind});
    if let Some(loinc) = loinc(kind) {
        code["coding"] = json!([{"system": LOINC, "code": loinc.0, "display": loinc.1}]);
    }
    let mut o = json!({
        "resourceType": "Observation",
        "id": cx.id,
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": code,
        "subject": {"reference": cx.pref},
        "effectiveDateTime": cx.when,
        "performer": [practitioner(&cx.entry.author)],
    });
    match (value.parse::<f64>(), unit) {
        (Ok(number), Some(unit)) if number.is_finite() => {
            o["valueQuantity"] = json!({"value": number, "unit": unit});
        }
        _ => {
            o["valueString"] = json!(match unit {
                Some(u) => format!("{value} {u}"),
                None => value.to_owned(),
            })
        }
    }
    if let Some(visit) = visit {
        o["encounter"] = cx.encounters.of_visit(visit);
    }
    if let Some(reading) = device_reading {
        o["identifier"] = json!([{"system": "urn:omsyn:device-reading", "value": reading}]);
    }
    if let Some(n) = notes(note, None) {
        o["note"] = n;
    }
    o
}

/// A dose given or not given: a MedicationAdministration.
fn administration(cx: &EntryCx<'_>, dose: &DoseRef) -> Value {
    let not_given = match &cx.entry.body {
        EntryBody::MedicationNotGiven { reason, .. } => Some(reason.clone()),
        _ => None,
    };
    let normal = if not_given.is_some() {
        "not-done"
    } else {
        "completed"
    };
    let (status, note) = cx.corrections.status(cx.entry, normal, normal);
    let medication = cx.record.medication(&dose.medication);
    let mut m = json!({
        "resourceType": "MedicationAdministration",
        "id": cx.id,
        "status": status,
        "medicationCodeableConcept": {"text": medication_name(cx.record, dose)},
        "subject": {"reference": cx.pref},
        "effectiveDateTime": cx.when,
        "performer": [{"actor": practitioner(&cx.entry.author)}],
    });
    if let Some(med) = medication {
        m["dosage"] = json!({"text": format!("{} at {}", med.dose, dose.slot)});
    }
    if let Some(reason) = not_given {
        m["statusReason"] = json!([{"text": reason}]);
    }
    if let Some(n) = notes(
        Some(format!("dose slot {} on {}", dose.slot, dose.day)),
        note,
    ) {
        m["note"] = n;
    }
    m
}

/// A nursing note: a DocumentReference with the text attached.
fn note_reference(cx: &EntryCx<'_>, text: &str) -> Value {
    let (status, note) = cx.corrections.status(cx.entry, "current", "current");
    json!({
        "resourceType": "DocumentReference",
        "id": cx.id,
        "status": status,
        "type": {"text": "nursing note"},
        "subject": {"reference": cx.pref},
        "date": cx.entry.entered_at.to_string(),
        "author": [practitioner(&cx.entry.author)],
        "description": note.unwrap_or_else(|| format!("note of {}", cx.when)),
        "content": [{"attachment": {
            "contentType": "text/plain; charset=utf-8",
            "data": base64_text(text),
            "creation": cx.when,
        }}],
    })
}

/// What a home's device reported: a dose taken from the dispenser is an administration with
/// the device as performer; alerts and dispensing are issues the device detected.
fn device_resource(cx: &EntryCx<'_>, device: &str, event: &DeviceEvent) -> Value {
    match event {
        DeviceEvent::DoseTaken { dose } => json!({
            "resourceType": "MedicationAdministration",
            "id": cx.id,
            "status": cx.corrections.status(cx.entry, "completed", "completed").0,
            "medicationCodeableConcept": {"text": medication_name(cx.record, dose)},
            "subject": {"reference": cx.pref},
            "effectiveDateTime": cx.when,
            "performer": [{"actor": {"display": format!("medication dispenser {device}")}}],
            "note": [{"text": format!("dose slot {} on {}, registered by the dispenser", dose.slot, dose.day)}],
        }),
        other => json!({
            "resourceType": "DetectedIssue",
            "id": cx.id,
            "status": cx.corrections.status(cx.entry, "final", "amended").0,
            "code": {"text": cx.entry.body.describe_naming(&|r| cx.record.name_referent(r))},
            "severity": if other.is_alert() { "high" } else { "low" },
            "patient": {"reference": cx.pref},
            "identifiedDateTime": cx.when,
            "author": {"display": format!("device {device}")},
        }),
    }
}

/// An escalation task as it stands at export: requested, accepted (claimed) or completed; who
/// claimed it and what closed it are notes, the alert or visit it concerns its focus.
fn task_resource(task: &Task, pref: &str, names: &EntryNames<'_>) -> Value {
    let status = if task.done.is_some() {
        "completed"
    } else if task.claims.is_empty() {
        "requested"
    } else {
        "accepted"
    };
    let (code, focus) = match &task.kind {
        // Alerts are exported as DetectedIssues under their entry's id.
        TaskKind::RespondToAlert { entry, .. } => (
            "respond to a device alert",
            format!("DetectedIssue/{}", names.first_of(entry)),
        ),
        TaskKind::CallAgain { visit, .. } => {
            ("call again (video visit)", format!("Appointment/{visit}"))
        }
        TaskKind::PhysicalVisit { visit, .. } => ("physical visit", format!("Appointment/{visit}")),
    };
    let mut notes: Vec<Value> = task
        .claims
        .iter()
        .map(|c| json!({"text": format!("claimed by {}", c.who()), "time": c.at.to_string()}))
        .collect();
    if let Some(done) = &task.done {
        let what = done.note.clone().unwrap_or_default();
        notes.push(json!({"text": format!("completed by {}: {what}", done.who()), "time": done.at.to_string()}));
    }
    let mut t = json!({
        "resourceType": "Task",
        "id": task.id.to_string(),
        "status": status,
        "intent": "order",
        "priority": match task.priority {
            Priority::Urgent => "stat",
            Priority::High => "urgent",
            Priority::Normal => "routine",
        },
        "code": {"text": code},
        "description": task.summary,
        "focus": {"reference": focus},
        "for": {"reference": pref},
        "authoredOn": task.raised_at.to_string(),
        "owner": {"display": task.owner_label()},
    });
    if task.escalated && task.done.is_none() {
        t["businessStatus"] = json!({"text": "escalated to the base"});
    }
    if !notes.is_empty() {
        t["note"] = Value::Array(notes);
    }
    t
}

/// The medication's name from the record, or its id when the record no longer lists it.
fn medication_name(record: &PatientRecord, dose: &crate::docs::journal::DoseRef) -> String {
    record
        .medication(&dose.medication)
        .map_or_else(|| dose.medication.to_string(), |m| m.name.clone())
}

fn base64_text(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// LOINC codes of the vital signs nurses and home devices measure.
fn loinc(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind.to_ascii_lowercase().as_str() {
        "blood-pressure" | "bp" | "blodtrykk" => ("85354-9", "Blood pressure panel"),
        "pulse" | "puls" | "heart-rate" => ("8867-4", "Heart rate"),
        "spo2" | "oxygen-saturation" => ("59408-5", "Oxygen saturation by pulse oximetry"),
        "temperature" | "temp" => ("8310-5", "Body temperature"),
        "weight" | "vekt" => ("29463-7", "Body weight"),
        "glucose" | "blodsukker" => ("2339-0", "Glucose [Mass/volume] in Blood"),
        _ => return None,
    })
}

fn communication(message: &Message, pref: &str) -> Value {
    let recipient = match message.to {
        Recipient::Home => "the patient's home",
        Recipient::CareTeam => "the care team",
        Recipient::Base => "the base office",
    };
    let mut c = json!({
        "resourceType": "Communication",
        "id": message.id.to_string(),
        "status": "completed",
        "subject": {"reference": pref},
        "sent": message.sent_at.to_string(),
        "sender": practitioner(&message.author),
        "recipient": [{"display": recipient}],
    });
    // The text (if any), then each picture as an attachment (the data is already base64).
    let mut payload: Vec<Value> = Vec::new();
    if !message.text.trim().is_empty() {
        payload.push(json!({"contentString": message.text}));
    }
    for picture in &message.attachments {
        let mut attachment = json!({
            "contentType": picture.content_type,
            "data": picture.data,
            "size": picture.size,
        });
        if let Some(name) = &picture.name {
            attachment["title"] = json!(name);
        }
        payload.push(json!({"contentAttachment": attachment}));
    }
    if !payload.is_empty() {
        c["payload"] = Value::Array(payload);
    }
    if let Some(reply) = &message.in_reply_to {
        c["inResponseTo"] = json!([{"reference": format!("Communication/{reply}")}]);
    }
    c
}

fn detected_issue(conflict: &Conflict, pref: &str, names: &EntryNames<'_>) -> Value {
    let code = match &conflict.kind {
        ConflictKind::DoseGivenTwice { .. } => {
            json!({"coding": [{"system": ACT_CODE, "code": "DUPTHPY", "display": "Duplicate Therapy Alert"}], "text": conflict.summary})
        }
        _ => json!({"text": conflict.summary}),
    };
    let mut implicated: Vec<Value> = Vec::new();
    for name in conflict.entries.iter().flat_map(|e| names.of_id(e)) {
        let reference = json!({"reference": format!("MedicationAdministration/{name}")});
        // Two copies of one id are both implicated once, however often the conflict names it.
        if !implicated.contains(&reference) {
            implicated.push(reference);
        }
    }
    let mut issue = json!({
        "resourceType": "DetectedIssue",
        "id": conflict.id.to_string(),
        "status": "preliminary",
        "code": code,
        "severity": match conflict.severity { Severity::High => "high", Severity::Review => "moderate" },
        "patient": {"reference": pref},
        "detail": conflict.summary,
    });
    if matches!(
        conflict.kind,
        ConflictKind::DoseGivenTwice { .. } | ConflictKind::DoseGivenAndNotGiven { .. }
    ) && !implicated.is_empty()
    {
        issue["implicated"] = Value::Array(implicated);
    }
    issue
}

fn audit_event(n: usize, entry: &AuditEntry, pref: &str) -> Value {
    let action = match entry.action {
        AuditAction::Read | AuditAction::ExplicitAccess | AuditAction::Refused => "R",
        AuditAction::Write => "C",
        AuditAction::Repair | AuditAction::Receipt => "U",
        AuditAction::WriteWithoutNeed | AuditAction::Equivocation => "C",
        AuditAction::Export => "E",
        AuditAction::Purge => "D",
    };
    json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}-{}-{n}", entry.author.device.short(), entry.seq),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": "urn:omsyn:audit-action", "code": entry.action.as_str()}],
        "action": action,
        "recorded": entry.at.to_string(),
        "outcome": if entry.action == AuditAction::Refused { "4" } else { "0" },
        "purposeOfEvent": [{"text": if entry.purpose.is_empty() { "(none given)".to_owned() } else { entry.purpose.clone() }}],
        "agent": [{
            "who": practitioner(&entry.author),
            "requestor": true,
            "role": [{"text": entry.author.role.to_string()}],
        }],
        "source": {"observer": {"display": format!("omsyn node {}", entry.author.device)}},
        "entity": [{"what": {"reference": pref}, "description": entry.what}],
    })
}
