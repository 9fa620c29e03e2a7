//! The journal: one patient's append-only, attributable clinical entries for one month.
//!
//! Facts accumulate (domain.md §6): an entry is written once under its own key and never changed or
//! removed. A correction or an entered-in-error marking is a new entry pointing to the original,
//! which stays readable. Every entry carries its author (staff and device), the time of the event and
//! the time it was entered.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::plan::VisitKind;
use super::{Author, ChangeContext, DocError, Document, decode_appended};
use crate::ids::{ConflictId, EntryId, MedicationId, TaskId, VisitId};
use crate::time::{Day, Timestamp};

/// Why a visit was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissedReason {
    /// Nobody answered (door or video call).
    NoAnswer,
    /// The patient declined.
    Declined,
    /// The patient was not home.
    NotHome,
    /// Something else, explained in the note.
    Other,
}

impl MissedReason {
    /// Parses the command-line name.
    pub fn parse(value: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(value.to_owned())).ok()
    }

    /// The command-line name.
    pub fn as_str(&self) -> &'static str {
        match self {
            MissedReason::NoAnswer => "no-answer",
            MissedReason::Declined => "declined",
            MissedReason::NotHome => "not-home",
            MissedReason::Other => "other",
        }
    }
}

/// One dose of a medication: a slot on a given day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DoseRef {
    /// The medication.
    pub medication: MedicationId,
    /// The slot time (`HH:MM`).
    pub slot: String,
    /// The day of the dose.
    pub day: Day,
}

impl std::fmt::Display for DoseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{} on {}", self.medication, self.slot, self.day)
    }
}

/// What a welfare-technology device in the home reported (a medication dispenser, an alarm
/// button). Measurements from devices are observations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DeviceEvent {
    /// The dispenser released a dose.
    DoseDispensed {
        /// The dose.
        dose: DoseRef,
    },
    /// The dispenser registered the dose as taken (counts as given: a nurse giving it too is a
    /// double dose).
    DoseTaken {
        /// The dose.
        dose: DoseRef,
    },
    /// The dose was not taken from the dispenser in time.
    DoseMissed {
        /// The dose.
        dose: DoseRef,
    },
    /// The device reported an error.
    DeviceError {
        /// The device's error code or text.
        code: String,
    },
    /// The device lost mains power.
    PowerFailure,
    /// The patient pressed the alarm button.
    AlarmPressed,
}

impl DeviceEvent {
    /// Whether someone must act on it (an alert), rather than it being a record of care.
    pub fn is_alert(&self) -> bool {
        !matches!(
            self,
            DeviceEvent::DoseDispensed { .. } | DeviceEvent::DoseTaken { .. }
        )
    }

    /// The dose it is about, if one.
    pub fn dose(&self) -> Option<&DoseRef> {
        match self {
            DeviceEvent::DoseDispensed { dose }
            | DeviceEvent::DoseTaken { dose }
            | DeviceEvent::DoseMissed { dose } => Some(dose),
            _ => None,
        }
    }

    /// One line for people, a dose as `name` names it (see [`EntryBody::describe_naming`]).
    pub fn describe_naming(&self, name: &dyn Fn(Referent<'_>) -> Option<String>) -> String {
        let dose_of =
            |dose: &DoseRef| name(Referent::Dose(dose)).unwrap_or_else(|| format!("dose {dose}"));
        match self {
            DeviceEvent::DoseDispensed { dose } => format!("{} dispensed", dose_of(dose)),
            DeviceEvent::DoseTaken { dose } => format!("{} TAKEN", dose_of(dose)),
            DeviceEvent::DoseMissed { dose } => format!("ALERT {} MISSED", dose_of(dose)),
            DeviceEvent::DeviceError { code } => format!("ALERT device error: {code}"),
            DeviceEvent::PowerFailure => "ALERT power failure".into(),
            DeviceEvent::AlarmPressed => "ALERT alarm button pressed".into(),
        }
    }
}

/// What an entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum EntryBody {
    /// The visit took place.
    VisitPerformed {
        /// The visit.
        visit: VisitId,
        /// Physical or digital, as actually done.
        mode: VisitKind,
        /// Arrival (or call start).
        arrival: Timestamp,
        /// Departure (or call end).
        departure: Option<Timestamp>,
        /// The plan revisions the performer had seen when documenting.
        plan_revisions_seen: Vec<EntryId>,
    },
    /// The visit was attempted but not performed.
    VisitNotPerformed {
        /// The visit.
        visit: VisitId,
        /// Why.
        reason: MissedReason,
        /// Detail.
        note: Option<String>,
    },
    /// A free-text note.
    Note {
        /// The visit it belongs to, if any.
        visit: Option<VisitId>,
        /// Text.
        text: String,
    },
    /// A measurement (vital sign).
    Observation {
        /// The visit it belongs to, if any.
        visit: Option<VisitId>,
        /// What was measured ("blood-pressure", "pulse", "spo2", "temperature", "weight", "glucose"...).
        kind: String,
        /// The value as measured ("142/88", "36.8").
        value: String,
        /// The unit ("mmHg", "%", "°C").
        unit: Option<String>,
        /// A measuring device's own reading id, if any (the only basis for deduplication).
        device_reading: Option<String>,
    },
    /// A dose was given.
    MedicationGiven {
        /// The dose.
        dose: DoseRef,
        /// The visit, if any.
        visit: Option<VisitId>,
    },
    /// A dose was not given, with the reason.
    MedicationNotGiven {
        /// The dose.
        dose: DoseRef,
        /// Why (refused, not at home, vomited...).
        reason: String,
        /// The visit, if any.
        visit: Option<VisitId>,
    },
    /// An amendment: new text that supersedes the original for reading; the original stays.
    Correction {
        /// The corrected entry.
        corrects: EntryId,
        /// The corrected text.
        text: String,
    },
    /// Marks an entry as entered in error (wrong patient, wrong dose slot...). It stays readable.
    EnteredInError {
        /// The entry.
        target: EntryId,
        /// Why.
        reason: String,
    },
    /// Closes a safety conflict, attributably. Conflicts are never closed by deleting anything.
    ConflictResolved {
        /// The conflict.
        conflict: ConflictId,
        /// What was found and done.
        note: String,
    },
    /// A deviation (avvik) concerning this patient.
    Deviation {
        /// What happened.
        text: String,
    },
    /// A device in the home reported something; the device is the performer (the home unit
    /// signs the change).
    DeviceEvent {
        /// The device: its make and serial number, as the home unit knows it.
        device: String,
        /// The device's own id of the event: the same event delivered twice is stored once.
        event_id: String,
        /// What it reported.
        event: DeviceEvent,
    },
    /// "I take it": the author claims a task (see [`crate::escalation`]), which also stops it
    /// escalating. Two claims on one task are both kept.
    TaskClaimed {
        /// The task.
        task: TaskId,
    },
    /// The author completed a task, saying what was done.
    TaskDone {
        /// The task.
        task: TaskId,
        /// What was found and done.
        note: String,
    },
}

impl EntryBody {
    /// The device event in this entry, if it is one.
    pub fn device_event(&self) -> Option<&DeviceEvent> {
        match self {
            EntryBody::DeviceEvent { event, .. } => Some(event),
            _ => None,
        }
    }

    /// Whether appending this entry can never open or close a conflict or a task (see
    /// [`crate::conflict`], [`crate::escalation`]): notes, observations, amendments and
    /// deviations. Doses, visit facts, device events, entered-in-error markings, resolutions,
    /// claims and completions can.
    pub fn is_conflict_neutral(&self) -> bool {
        // A deviation is not: the day's report lists it, from the derived day index.
        matches!(
            self,
            EntryBody::Note { .. } | EntryBody::Observation { .. } | EntryBody::Correction { .. }
        )
    }
}

/// A journal entry with its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Id.
    pub id: EntryId,
    /// Who wrote it.
    pub author: Author,
    /// When the documented event happened.
    pub event_time: Timestamp,
    /// When it was entered.
    pub entered_at: Timestamp,
    /// What it records.
    pub body: EntryBody,
}

/// What an entry refers to by id, for a reader that can name it ([`EntryBody::describe_naming`]).
#[derive(Debug, Clone, Copy)]
pub enum Referent<'a> {
    /// A visit.
    Visit(&'a VisitId),
    /// A dose.
    Dose(&'a DoseRef),
    /// Another entry of the journal (one a correction corrects).
    Entry(&'a EntryId),
}

impl EntryBody {
    /// What kind of entry it is, in a word or two ("the note of 08:10").
    pub fn what(&self) -> &'static str {
        match self {
            EntryBody::VisitPerformed { .. } => "visit record",
            EntryBody::VisitNotPerformed { .. } => "missed visit",
            EntryBody::Note { .. } => "note",
            EntryBody::Observation { .. } => "measurement",
            EntryBody::MedicationGiven { .. } => "dose given",
            EntryBody::MedicationNotGiven { .. } => "dose not given",
            EntryBody::Correction { .. } => "correction",
            EntryBody::EnteredInError { .. } => "entered-in-error mark",
            EntryBody::ConflictResolved { .. } => "conflict resolution",
            EntryBody::Deviation { .. } => "deviation",
            EntryBody::DeviceEvent { .. } => "device event",
            EntryBody::TaskClaimed { .. } => "task claim",
            EntryBody::TaskDone { .. } => "task completion",
        }
    }

    /// One line for people, naming visits and doses by their ids.
    pub fn describe(&self) -> String {
        self.describe_naming(&|_| None)
    }

    /// One line for people, as the CLI and the apps show an entry: visits, doses and other
    /// entries as `name` names them (a medication's name, a visit's time, an entry's kind and
    /// time), by their ids where it does not.
    pub fn describe_naming(&self, name: &dyn Fn(Referent<'_>) -> Option<String>) -> String {
        let visit_of = |visit: &VisitId| {
            name(Referent::Visit(visit)).unwrap_or_else(|| format!("visit {visit}"))
        };
        let dose_of =
            |dose: &DoseRef| name(Referent::Dose(dose)).unwrap_or_else(|| dose.to_string());
        let entry_of =
            |entry: &EntryId| name(Referent::Entry(entry)).unwrap_or_else(|| entry.to_string());
        match self {
            EntryBody::VisitPerformed {
                visit,
                mode,
                arrival,
                departure,
                ..
            } => format!(
                "{} performed ({}) {}-{}",
                visit_of(visit),
                mode.as_str(),
                arrival.hhmm(),
                departure.map(|d| d.hhmm()).unwrap_or_default()
            ),
            EntryBody::VisitNotPerformed {
                visit,
                reason,
                note,
            } => format!(
                "{} NOT performed: {} {}",
                visit_of(visit),
                reason.as_str(),
                note.as_deref().unwrap_or("")
            ),
            EntryBody::Note { text, .. } => format!("note: {text}"),
            EntryBody::Observation {
                kind, value, unit, ..
            } => format!("{kind} {value} {}", unit.as_deref().unwrap_or("")),
            EntryBody::MedicationGiven { dose, .. } => format!("GIVEN {}", dose_of(dose)),
            EntryBody::MedicationNotGiven { dose, reason, .. } => {
                format!("NOT GIVEN {}: {reason}", dose_of(dose))
            }
            EntryBody::Correction { corrects, text } => {
                format!("correction of {}: {text}", entry_of(corrects))
            }
            EntryBody::EnteredInError { target, reason } => {
                format!("entered in error: {} ({reason})", entry_of(target))
            }
            EntryBody::ConflictResolved { conflict, note } => {
                format!("resolved conflict {conflict}: {note}")
            }
            EntryBody::Deviation { text } => format!("AVVIK: {text}"),
            EntryBody::DeviceEvent { device, event, .. } => {
                format!("{device}: {}", event.describe_naming(name))
            }
            EntryBody::TaskClaimed { task } => format!("claimed task {task}"),
            EntryBody::TaskDone { task, note } => format!("completed task {task}: {note}"),
        }
    }
}

/// The read model of a journal document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Entries ordered by event time, then id.
    pub entries: Vec<Entry>,
    /// Keys this build could not decode (shown, never dropped).
    pub unreadable: Vec<String>,
    /// Entry keys holding two values (an integrity alert; both entries are in `entries`).
    #[serde(default)]
    pub written_twice: Vec<String>,
}

impl Journal {
    /// The conflicts resolved in this journal.
    pub fn resolved(&self) -> std::collections::BTreeSet<ConflictId> {
        self.entries
            .iter()
            .filter_map(|e| match &e.body {
                EntryBody::ConflictResolved { conflict, .. } => Some(conflict.clone()),
                _ => None,
            })
            .collect()
    }

    /// Looks up an entry.
    pub fn entry(&self, id: &EntryId) -> Option<&Entry> {
        self.entries.iter().find(|e| &e.id == id)
    }

    /// The entries that stand: all but those withdrawn by an entered-in-error mark
    /// ([`Marks::withdrawal`]); what derived views count. The withdrawn stay readable in `entries`.
    pub fn standing(&self) -> Vec<&Entry> {
        let marks = self.marks();
        self.entries
            .iter()
            .filter(|e| marks.withdrawal(e).is_none())
            .collect()
    }

    /// The journal's entered-in-error marks, by the entry id each names.
    pub fn marks(&self) -> Marks<'_> {
        Marks::of(&self.entries)
    }
}

/// Entered-in-error marks by the entry id they name; [`Marks::withdrawal`] judges an entry by them.
#[derive(Debug)]
pub struct Marks<'a>(std::collections::BTreeMap<&'a EntryId, Vec<&'a Entry>>);

/// How deep marks on marks are followed (a mark withdrawn by its author, that withdrawal
/// withdrawn...): far beyond any honest undoing, and a bound on a crafted cycle of marks.
const MARK_DEPTH: usize = 8;

impl<'a> Marks<'a> {
    /// The marks among `entries`.
    pub fn of(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut marks = std::collections::BTreeMap::<_, Vec<_>>::new();
        for mark in entries {
            if let EntryBody::EnteredInError { target, .. } = &mark.body {
                marks.entry(target).or_default().push(mark);
            }
        }
        Marks(marks)
    }

    /// Why `entry` is withdrawn: the reason of the first standing mark on it by someone who
    /// may withdraw it ([`crate::docs::Author::may_withdraw`]: a staff member's entry by herself
    /// only); `None` while it stands. A mark by anyone else stays in the journal, readable, and
    /// withdraws nothing, so the evidence of care — a dose given, a visit performed — cannot be
    /// taken out of every view, conflict and task by another device. Each entry is judged by its
    /// own author: a second entry a modified device writes under the same id (an integrity
    /// alert, `written_twice`) lends its author's power over the mark to neither entry. A mark
    /// its author withdrew in turn (a mark made by mistake) withdraws nothing.
    pub fn withdrawal(&self, entry: &Entry) -> Option<&'a str> {
        self.withdrawal_within(entry, MARK_DEPTH)
    }

    fn withdrawal_within(&self, entry: &Entry, depth: usize) -> Option<&'a str> {
        let depth = depth.checked_sub(1)?;
        self.0
            .get(&entry.id)?
            .iter()
            .find_map(|mark| match &mark.body {
                EntryBody::EnteredInError { reason, .. }
                    if mark.author.may_withdraw(&entry.author)
                        && self.withdrawal_within(mark, depth).is_none() =>
                {
                    Some(reason.as_str())
                }
                _ => None,
            })
    }
}

/// Maximum size of free text in one entry, so a single entry cannot bloat every replica.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Appends an entry; returns it.
pub fn append(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    event_time: Timestamp,
    body: EntryBody,
) -> Result<Entry, DocError> {
    validate(&body)?;
    if let EntryBody::Correction {
        corrects: target, ..
    }
    | EntryBody::EnteredInError { target, .. } = &body
        && read(doc).entry(target).is_none()
    {
        return Err(DocError::NotFound(format!(
            "entry {target} in {}",
            doc.id()
        )));
    }
    let entry = Entry {
        id: EntryId::random(rng),
        author: ctx.author.clone(),
        event_time,
        entered_at: ctx.entered_at,
        body,
    };
    doc.change(ctx, |ed| ed.put_json(&format!("e/{}", entry.id), &entry))?;
    Ok(entry)
}

fn validate(body: &EntryBody) -> Result<(), DocError> {
    let texts: Vec<&str> = match body {
        EntryBody::Note { text, .. }
        | EntryBody::Correction { text, .. }
        | EntryBody::Deviation { text } => vec![text],
        EntryBody::EnteredInError { reason, .. } | EntryBody::MedicationNotGiven { reason, .. } => {
            vec![reason]
        }
        EntryBody::ConflictResolved { note, .. } | EntryBody::TaskDone { note, .. } => vec![note],
        EntryBody::Observation { kind, value, .. } => vec![kind, value],
        EntryBody::VisitNotPerformed { note, .. } => note.as_deref().into_iter().collect(),
        EntryBody::VisitPerformed { .. }
        | EntryBody::MedicationGiven { .. }
        | EntryBody::TaskClaimed { .. } => vec![],
        EntryBody::DeviceEvent {
            device,
            event_id,
            event,
        } => {
            let mut texts = vec![device.as_str(), event_id.as_str()];
            if let DeviceEvent::DeviceError { code } = event {
                texts.push(code);
            }
            texts
        }
    };
    for text in texts {
        if text.trim().is_empty() {
            return Err(DocError::Rejected("text must not be empty".into()));
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(DocError::Rejected(format!(
                "text is {} bytes; at most {MAX_TEXT_BYTES} are allowed",
                text.len()
            )));
        }
    }
    if let EntryBody::VisitPerformed {
        arrival,
        departure: Some(departure),
        ..
    } = body
        && departure < arrival
    {
        return Err(DocError::Rejected(
            "departure must not be before arrival".into(),
        ));
    }
    Ok(())
}

/// Reads the journal.
pub fn read(doc: &Document) -> Journal {
    let read = decode_appended::<Entry>(doc.reader(), "e/");
    let mut entries = read.items;
    entries.sort_by(|a, b| {
        a.event_time
            .cmp(&b.event_time)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.entered_at.cmp(&b.entered_at))
    });
    Journal {
        entries,
        unreadable: read.unreadable,
        written_twice: read.written_twice,
    }
}
