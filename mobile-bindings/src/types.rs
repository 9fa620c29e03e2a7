//! The records and enums apps see, and their conversions from omsyn-core's types. Times cross
//! the boundary as milliseconds since the Unix epoch; ids as their text form.

use omsyn_core::conflict::{Conflict, Severity};
use omsyn_core::docs::Author;
use omsyn_core::docs::journal::{Entry, EntryBody};
use omsyn_core::docs::messages::{Message, Recipient};
use omsyn_core::docs::plan::VisitKind;
use omsyn_core::docs::record::PatientField;
use omsyn_core::escalation::{Owner, Priority, Task, TaskKind};
use omsyn_core::ids::StaffId;
use omsyn_core::report::{VisitLine, VisitOutcome};
use omsyn_core::{NodeProfile, Role};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NodeRole {
    /// A base office.
    Base,
    /// A nurse's phone.
    Nurse,
    /// The tablet in a patient's home.
    HomeUnit,
}

impl From<Role> for NodeRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Base => NodeRole::Base,
            Role::Nurse => NodeRole::Nurse,
            Role::HomeUnit => NodeRole::HomeUnit,
        }
    }
}

impl From<NodeRole> for Role {
    fn from(role: NodeRole) -> Self {
        match role {
            NodeRole::Base => Role::Base,
            NodeRole::Nurse => Role::Nurse,
            NodeRole::HomeUnit => Role::HomeUnit,
        }
    }
}

/// Who a new node is, given once when the app creates it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NodeSetup {
    /// What the device is.
    pub role: NodeRole,
    /// The nurse's name, or the home's.
    pub name: String,
    /// The staff member's HPR or employee number (a nurse's phone).
    pub staff_id: Option<String>,
    /// The patient a home unit serves.
    pub patient: Option<String>,
    /// Zone or team.
    pub zone: Option<String>,
}

/// This node's identity.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NodeInfo {
    /// The node's id (its public key).
    pub id: String,
    /// What it is.
    pub role: NodeRole,
    /// Whom it serves.
    pub name: String,
    /// Its staff member.
    pub staff_id: Option<String>,
    /// Its patient (home unit).
    pub patient: Option<String>,
    /// Its zone.
    pub zone: Option<String>,
    /// Until when its certificate is valid (ms); `None` while not enrolled.
    pub certificate_valid_until_ms: Option<i64>,
}

impl NodeInfo {
    pub(crate) fn new(id: String, profile: &NodeProfile, valid_until: Option<i64>) -> Self {
        NodeInfo {
            id,
            role: profile.role.into(),
            name: profile.name.clone(),
            staff_id: profile.staff_id.as_ref().map(|s| s.to_string()),
            patient: profile.patient.as_ref().map(|p| p.to_string()),
            zone: profile.zone.clone(),
            certificate_valid_until_ms: valid_until,
        }
    }
}

/// Physical or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VisitMode {
    /// The nurse is in the home.
    Physical,
    /// A scheduled video visit.
    Digital,
}

impl From<VisitKind> for VisitMode {
    fn from(kind: VisitKind) -> Self {
        match kind {
            VisitKind::Physical => VisitMode::Physical,
            VisitKind::Digital => VisitMode::Digital,
        }
    }
}

impl From<VisitMode> for VisitKind {
    fn from(mode: VisitMode) -> Self {
        match mode {
            VisitMode::Physical => VisitKind::Physical,
            VisitMode::Digital => VisitKind::Digital,
        }
    }
}

/// Where a visit stands, from the plan and the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum VisitState {
    /// Planned, nothing documented yet.
    Open,
    /// Documented as performed.
    Done,
    /// Documented as not performed.
    Missed,
    /// Cancelled in the plan.
    Cancelled,
    /// Cancelled in the plan but documented as performed: the base reviews it.
    CancelledButPerformed,
}

impl From<VisitOutcome> for VisitState {
    fn from(outcome: VisitOutcome) -> Self {
        match outcome {
            VisitOutcome::Open => VisitState::Open,
            VisitOutcome::Done => VisitState::Done,
            VisitOutcome::Missed => VisitState::Missed,
            VisitOutcome::Cancelled => VisitState::Cancelled,
            VisitOutcome::CancelledButPerformed => VisitState::CancelledButPerformed,
        }
    }
}

/// One visit on a work list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct WorkItem {
    /// The visit.
    pub visit: String,
    /// The patient.
    pub patient: String,
    /// The patient's name.
    pub patient_name: String,
    /// Window start (ms).
    pub start_ms: i64,
    /// Window end (ms).
    pub end_ms: i64,
    /// Physical or video.
    pub mode: VisitMode,
    /// Assigned staff ids (two for double staffing).
    pub staff: Vec<String>,
    /// Their names, in `staff`'s order: the id where this device knows no name (a colleague
    /// who has written nothing it holds yet).
    pub staff_names: Vec<String>,
    /// Where it stands.
    pub state: VisitState,
}

impl WorkItem {
    /// A visit of the work list, its staff named by `names`.
    pub(crate) fn new(line: VisitLine, names: &std::collections::BTreeMap<String, String>) -> Self {
        WorkItem {
            staff_names: (line.staff.iter())
                .map(|s| names.get(s).unwrap_or(s).clone())
                .collect(),
            visit: line.visit.to_string(),
            patient: line.patient.to_string(),
            patient_name: line.patient_name,
            start_ms: line.start.unix_millis(),
            end_ms: line.end.unix_millis(),
            mode: line.kind.into(),
            staff: line.staff,
            state: line.outcome.into(),
        }
    }
}

/// Who wrote something.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthorInfo {
    /// The staff member.
    pub staff_id: Option<String>,
    /// Name at the time of writing.
    pub name: String,
    /// The writing node's role.
    pub role: NodeRole,
    /// The writing device.
    pub device: String,
}

impl From<&Author> for AuthorInfo {
    fn from(a: &Author) -> Self {
        AuthorInfo {
            staff_id: a.staff.as_ref().map(|s| s.to_string()),
            name: a.name.clone(),
            role: a.role.into(),
            device: a.device.to_string(),
        }
    }
}

/// What kind of journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EntryKind {
    /// A visit was performed.
    VisitPerformed,
    /// A visit was not performed.
    VisitNotPerformed,
    /// A free-text note.
    Note,
    /// A measurement.
    Observation,
    /// A dose was given.
    MedicationGiven,
    /// A dose was not given.
    MedicationNotGiven,
    /// An amendment of an earlier entry (which stays).
    Correction,
    /// An earlier entry marked as entered in error (it stays).
    EnteredInError,
    /// A conflict was resolved.
    ConflictResolved,
    /// A deviation (avvik).
    Deviation,
    /// A device in the home reported a dose dispensed or taken.
    DeviceRecord,
    /// A device in the home raised an alert (dose missed, device error, power failure, alarm
    /// button).
    DeviceAlert,
    /// Someone claimed an escalation task.
    TaskClaimed,
    /// Someone completed an escalation task.
    TaskDone,
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct JournalEntry {
    /// The entry.
    pub id: String,
    /// What kind.
    pub kind: EntryKind,
    /// One line for people.
    pub summary: String,
    /// The visit it belongs to.
    pub visit: Option<String>,
    /// The entry it corrects or marks, for corrections.
    pub corrects: Option<String>,
    /// Who wrote it.
    pub author: AuthorInfo,
    /// When the event happened (ms).
    pub event_time_ms: i64,
    /// When it was entered (ms).
    pub entered_at_ms: i64,
}

impl From<&Entry> for JournalEntry {
    fn from(e: &Entry) -> Self {
        let (kind, visit, corrects) = match &e.body {
            EntryBody::VisitPerformed { visit, .. } => {
                (EntryKind::VisitPerformed, Some(visit.clone()), None)
            }
            EntryBody::VisitNotPerformed { visit, .. } => {
                (EntryKind::VisitNotPerformed, Some(visit.clone()), None)
            }
            EntryBody::Note { visit, .. } => (EntryKind::Note, visit.clone(), None),
            EntryBody::Observation { visit, .. } => (EntryKind::Observation, visit.clone(), None),
            EntryBody::MedicationGiven { visit, .. } => {
                (EntryKind::MedicationGiven, visit.clone(), None)
            }
            EntryBody::MedicationNotGiven { visit, .. } => {
                (EntryKind::MedicationNotGiven, visit.clone(), None)
            }
            EntryBody::Correction { corrects, .. } => {
                (EntryKind::Correction, None, Some(corrects.to_string()))
            }
            EntryBody::EnteredInError { target, .. } => {
                (EntryKind::EnteredInError, None, Some(target.to_string()))
            }
            EntryBody::ConflictResolved { .. } => (EntryKind::ConflictResolved, None, None),
            EntryBody::Deviation { .. } => (EntryKind::Deviation, None, None),
            EntryBody::DeviceEvent { event, .. } if event.is_alert() => {
                (EntryKind::DeviceAlert, None, None)
            }
            EntryBody::DeviceEvent { .. } => (EntryKind::DeviceRecord, None, None),
            EntryBody::TaskClaimed { .. } => (EntryKind::TaskClaimed, None, None),
            EntryBody::TaskDone { .. } => (EntryKind::TaskDone, None, None),
        };
        JournalEntry {
            id: e.id.to_string(),
            kind,
            summary: e.body.describe(),
            visit: visit.map(|v| v.to_string()),
            corrects,
            author: (&e.author).into(),
            event_time_ms: e.event_time.unix_millis(),
            entered_at_ms: e.entered_at.unix_millis(),
        }
    }
}

/// Whom a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageRecipient {
    /// The patient's home (the home unit).
    Home,
    /// Every nurse on the patient.
    CareTeam,
    /// The base office.
    Base,
}

impl From<Recipient> for MessageRecipient {
    fn from(r: Recipient) -> Self {
        match r {
            Recipient::Home => MessageRecipient::Home,
            Recipient::CareTeam => MessageRecipient::CareTeam,
            Recipient::Base => MessageRecipient::Base,
        }
    }
}

impl From<MessageRecipient> for Recipient {
    fn from(r: MessageRecipient) -> Self {
        match r {
            MessageRecipient::Home => Recipient::Home,
            MessageRecipient::CareTeam => Recipient::CareTeam,
            MessageRecipient::Base => Recipient::Base,
        }
    }
}

/// A message about a patient.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientMessage {
    /// The message.
    pub id: String,
    /// Who sent it.
    pub author: AuthorInfo,
    /// For whom.
    pub to: MessageRecipient,
    /// When (ms).
    pub sent_at_ms: i64,
    /// The message it answers.
    pub in_reply_to: Option<String>,
    /// The text (may be empty when it carries pictures).
    pub text: String,
    /// Its pictures.
    pub pictures: Vec<MessagePicture>,
}

/// A picture on a message: JPEG, PNG or WebP, at most 512 KiB, up to 4 per message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MessagePicture {
    /// `image/jpeg`, `image/png` or `image/webp` (checked against the bytes when sending).
    pub content_type: String,
    /// A file name, if any.
    pub name: Option<String>,
    /// The picture.
    pub data: Vec<u8>,
}

impl From<&Message> for PatientMessage {
    fn from(m: &Message) -> Self {
        PatientMessage {
            id: m.id.to_string(),
            author: (&m.author).into(),
            to: m.to.clone().into(),
            sent_at_ms: m.sent_at.unix_millis(),
            in_reply_to: m.in_reply_to.as_ref().map(|r| r.to_string()),
            text: m.text.clone(),
            pictures: m
                .attachments
                .iter()
                .map(|a| MessagePicture {
                    content_type: a.content_type.clone(),
                    name: a.name.clone(),
                    // A peer's undecodable picture shows as empty rather than failing the list.
                    data: a.bytes().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// A conflict the merge kept open for people to review.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OpenConflict {
    /// The conflict.
    pub id: String,
    /// The patient.
    pub patient: String,
    /// The patient's name, where this device holds her record: what the app shows.
    pub patient_name: Option<String>,
    /// Safety-critical (medication) or for review.
    pub high_severity: bool,
    /// The journal entries involved.
    pub entries: Vec<String>,
    /// Who wrote them, by name.
    pub by_names: Vec<String>,
    /// The medication's name, for a dose conflict.
    pub medication_name: Option<String>,
    /// One line for people.
    pub summary: String,
}

impl From<&Conflict> for OpenConflict {
    fn from(c: &Conflict) -> Self {
        OpenConflict {
            id: c.id.to_string(),
            patient: c.patient.to_string(),
            patient_name: c.patient_name.clone(),
            high_severity: c.severity == Severity::High,
            entries: c.entries.iter().map(|e| e.to_string()).collect(),
            by_names: c.by_names.clone(),
            medication_name: c.medication_name.clone(),
            summary: c.summary.clone(),
        }
    }
}

/// A medication on the patient's list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MedicationInfo {
    /// The medication.
    pub id: String,
    /// Name and strength.
    pub name: String,
    /// Dose per slot.
    pub dose: String,
    /// Slot times (`HH:MM`).
    pub slots: Vec<String>,
    /// Whether it is active.
    pub active: bool,
}

/// A care-plan measure (tiltak).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TiltakInfo {
    /// The tiltak.
    pub id: String,
    /// What to do.
    pub description: String,
    /// Times of day.
    pub times: Vec<String>,
    /// Whether it is active.
    pub active: bool,
}

/// A flag on the record (fall risk, key at neighbour...).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FlagInfo {
    /// The flag.
    pub id: String,
    /// Its kind.
    pub kind: String,
    /// Detail.
    pub note: Option<String>,
    /// Whether it is still active.
    pub active: bool,
}

/// Everything this device holds about a patient (each read is logged in the access log).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientRecord {
    /// The patient.
    pub id: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: Option<String>,
    /// How to get in.
    pub access_note: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Flags, active and deactivated.
    pub flags: Vec<FlagInfo>,
    /// The care plan.
    pub tiltak: Vec<TiltakInfo>,
    /// The medication list.
    pub medications: Vec<MedicationInfo>,
    /// Visits held here, by start.
    pub visits: Vec<WorkItem>,
    /// The journal, by event time.
    pub journal: Vec<JournalEntry>,
    /// Messages, by time.
    pub messages: Vec<PatientMessage>,
    /// Open conflicts.
    pub conflicts: Vec<OpenConflict>,
    /// Why this device may read the record (the need, as logged).
    pub purpose: String,
}

pub(crate) fn record_fields(
    record: &omsyn_core::docs::record::PatientRecord,
) -> (String, Option<String>, Option<String>, Option<String>) {
    let field = |f| record.field(f).map(str::to_owned);
    (
        record.name().to_owned(),
        field(PatientField::Address),
        field(PatientField::AccessNote),
        field(PatientField::Phone),
    )
}

/// How a correction changes an entry (the original always stays).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum CorrectionKind {
    /// New text supersedes the original for reading.
    Amend {
        /// The corrected text.
        text: String,
    },
    /// The entry should not have been written.
    EnteredInError {
        /// Why.
        reason: String,
    },
}

/// Why a visit was not performed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MissedReason {
    /// Nobody answered the door or the video call.
    NoAnswer,
    /// The patient declined.
    Declined,
    /// The patient was not home.
    NotHome,
    /// Something else (say what in the note).
    Other,
}

impl From<MissedReason> for omsyn_core::docs::journal::MissedReason {
    fn from(r: MissedReason) -> Self {
        use omsyn_core::docs::journal::MissedReason as M;
        match r {
            MissedReason::NoAnswer => M::NoAnswer,
            MissedReason::Declined => M::Declined,
            MissedReason::NotHome => M::NotHome,
            MissedReason::Other => M::Other,
        }
    }
}

/// How to sync.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct SyncOptions {
    /// UDP address to listen on (`"0.0.0.0:0"` when absent).
    pub listen: Option<String>,
    /// A relay URL, for peers that cannot be reached directly.
    pub relay: Option<String>,
    /// Peers to keep in sync with: their tickets.
    pub peers: Vec<String>,
    /// Find peers on the local network (mDNS).
    pub local_discovery: bool,
}

/// What one "sync now" did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    /// The peer.
    pub peer: String,
    /// Whether both sides ended caught up.
    pub caught_up: bool,
    /// Documents sent changes of.
    pub docs_sent: u64,
    /// Documents received changes of.
    pub docs_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// How long it took.
    pub millis: u64,
}

/// A peer this node has met.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PeerStatus {
    /// The peer.
    pub id: String,
    /// Its name, from its certificate.
    pub name: Option<String>,
    /// Its role, from its certificate.
    pub role: Option<NodeRole>,
    /// Connected right now.
    pub connected: bool,
    /// Last seen (ms).
    pub last_seen_ms: Option<i64>,
    /// Last time both sides were caught up (ms).
    pub caught_up_ms: Option<i64>,
}

/// How fresh a patient's documents are here.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientStaleness {
    /// The patient.
    pub patient: String,
    /// Name.
    pub name: String,
    /// The latest time all of the patient's documents were known identical with some peer
    /// (ms); `None` when never.
    pub last_synced_ms: Option<i64>,
    /// That peer.
    pub synced_with: Option<String>,
}

/// Sync status: running or not, peers, staleness per patient.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// Whether sync is running.
    pub running: bool,
    /// This node's ticket while running (share it as text or QR code).
    pub ticket: Option<String>,
    /// Peers met.
    pub peers: Vec<PeerStatus>,
    /// Per patient.
    pub patients: Vec<PatientStaleness>,
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TaskPriority {
    /// The alarm button was pressed.
    Urgent,
    /// A missed dose; nobody answered a video visit.
    High,
    /// A device to check; a call to make again.
    Normal,
}

/// An escalation task: a device alert to respond to, a video call to make again, or a physical
/// visit because nobody answered. Derived on every node holding the patient's documents.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CareTask {
    /// The task (the same id on every device).
    pub id: String,
    /// The patient.
    pub patient: String,
    /// The patient's name, where this device holds her record: what the app shows.
    pub patient_name: Option<String>,
    /// `respond-to-alert`, `call-again` or `physical-visit`.
    pub kind: String,
    /// The visit, for `call-again` and `physical-visit`.
    pub visit: Option<String>,
    /// How urgent.
    pub priority: TaskPriority,
    /// One line for people.
    pub summary: String,
    /// When it was raised (ms).
    pub raised_at_ms: i64,
    /// When to act, for a call to make again (ms): the app schedules its reminder by it.
    pub due_ms: Option<i64>,
    /// When it reaches the base if nobody claims it (ms).
    pub escalates_at_ms: Option<i64>,
    /// Whether it has reached the base.
    pub escalated: bool,
    /// Whose it is: staff ids, or `base`, or `zone`.
    pub owner: Vec<String>,
    /// The owning nurses by name, in `owner`'s order (empty for the base or the zone).
    pub owner_names: Vec<String>,
    /// Everyone who claimed it.
    pub claimed_by: Vec<AuthorInfo>,
    /// Others who claimed it too, when this device's user did ("also claimed by").
    pub also_claimed_by: Vec<AuthorInfo>,
    /// Who completed it, if anyone.
    pub done_by: Option<AuthorInfo>,
}

impl CareTask {
    pub(crate) fn new(task: &Task, me: Option<&StaffId>) -> Self {
        let (kind, visit) = match &task.kind {
            TaskKind::RespondToAlert { .. } => ("respond-to-alert", None),
            TaskKind::CallAgain { visit, .. } => ("call-again", Some(visit.to_string())),
            TaskKind::PhysicalVisit { visit, .. } => ("physical-visit", Some(visit.to_string())),
        };
        CareTask {
            id: task.id.to_string(),
            patient: task.patient.to_string(),
            patient_name: task.patient_name.clone(),
            kind: kind.into(),
            visit,
            priority: match task.priority {
                Priority::Urgent => TaskPriority::Urgent,
                Priority::High => TaskPriority::High,
                Priority::Normal => TaskPriority::Normal,
            },
            summary: task.summary.clone(),
            raised_at_ms: task.raised_at.unix_millis(),
            due_ms: task.due.map(|t| t.unix_millis()),
            escalates_at_ms: task.escalates_at.map(|t| t.unix_millis()),
            escalated: task.escalated,
            owner: match &task.owner {
                Owner::Nurses(staff) => staff.iter().map(|s| s.to_string()).collect(),
                Owner::Base => vec!["base".into()],
                Owner::Zone => vec!["zone".into()],
            },
            owner_names: task.owner_names.clone(),
            claimed_by: task.claims.iter().map(|c| (&c.by).into()).collect(),
            also_claimed_by: me
                .map(|me| {
                    task.also_claimed_by(me)
                        .iter()
                        .map(|c| (&c.by).into())
                        .collect()
                })
                .unwrap_or_default(),
            done_by: task.done.as_ref().map(|d| (&d.by).into()),
        }
    }
}

impl PatientRecord {
    /// The record as the app shows it, from what the service read (`purpose`: the need the read
    /// was logged under).
    pub(crate) fn new(
        view: omsyn_core::repo::PatientView,
        purpose: String,
        staff_names: &std::collections::BTreeMap<String, String>,
    ) -> PatientRecord {
        let (name, address, access_note, phone) = record_fields(&view.record);
        let journal = omsyn_core::docs::journal::Journal {
            entries: view.journal.clone(),
            ..omsyn_core::docs::journal::Journal::default()
        };
        // Named as the record and the plan name them: read before the visits are taken below.
        let entries: Vec<JournalEntry> = (view.journal.iter())
            .map(|e| JournalEntry {
                summary: view.describe(&e.body),
                ..JournalEntry::from(e)
            })
            .collect();
        PatientRecord {
            id: view.record.id.to_string(),
            flags: view
                .record
                .flags
                .iter()
                .map(|f| FlagInfo {
                    id: f.id.to_string(),
                    kind: f.kind.clone(),
                    note: f.note.clone(),
                    active: f.deactivated.is_none(),
                })
                .collect(),
            tiltak: view
                .record
                .tiltak
                .iter()
                .map(|t| TiltakInfo {
                    id: t.id.to_string(),
                    description: t.description.clone(),
                    times: t.times.clone(),
                    active: t.active,
                })
                .collect(),
            medications: view
                .record
                .medications
                .iter()
                .map(|m| MedicationInfo {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    dose: m.dose.clone(),
                    slots: m.slots.clone(),
                    active: m.active,
                })
                .collect(),
            visits: view
                .visits
                .into_iter()
                .map(|v| {
                    let line = omsyn_core::report::visit_line(v, name.clone(), &journal);
                    WorkItem::new(line, staff_names)
                })
                .collect(),
            journal: entries,
            messages: view.messages.iter().map(PatientMessage::from).collect(),
            conflicts: view.conflicts.iter().map(OpenConflict::from).collect(),
            name,
            address,
            access_note,
            phone,
            purpose,
        }
    }
}
