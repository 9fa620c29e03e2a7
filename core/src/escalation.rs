//! Escalation: the tasks that facts in a patient's journal call for, and who must act on them now.
//!
//! "Run by the nodes that hold the data": nobody writes a task document. A task is derived, like a
//! safety conflict, from one month of a patient's plan and journal, so every node holding them (the
//! home unit that took the dispenser's report, the nurses with the patient on their list, the base)
//! derives the same tasks with the same ids, offline included. Its stage — whose it is now, whether
//! it has reached the base — is a pure function of those facts, the clock and the
//! [`EscalationPolicy`]: two nodes that agree on the facts and the time agree on who must act.
//!
//! What people write are facts in the journal: a claim ([`EntryBody::TaskClaimed`]: "I take it",
//! which is also the acknowledgement that stops escalation), a completion ([`EntryBody::TaskDone`])
//! and, for a video visit, each unanswered call ([`EntryBody::VisitNotPerformed`] with
//! [`MissedReason::NoAnswer`]). Two nurses who claim the same task offline both keep their claims,
//! and each sees the other's once they sync: nobody is unassigned, because two arriving beats nobody
//! arriving (domain.md §6, case 7).
//!
//! | trigger | task | owner | reaches the base |
//! |---|---|---|---|
//! | alarm button | respond to the alarm (urgent) | the assigned nurse | unclaimed after `alarm_ack_minutes` |
//! | missed dose | follow up the dose (high) | the assigned nurse | unclaimed after `alert_ack_minutes` |
//! | device error, power failure | check the device | the assigned nurse | unclaimed after `alert_ack_minutes` |
//! | video visit, fewer than `call_attempts` unanswered calls | call again, `call_retry_minutes` after the last | the visit's staff | unclaimed `alert_ack_minutes` after the call was due |
//! | video visit, `call_attempts` unanswered calls | physical visit (high) | the patient's zone (the base sees it as every task) | — |
//!
//! The assigned nurse is the staff the plan assigns to the patient's visit under way or next on
//! the day of the alert (else that day's last visit); with nobody assigned, the base owns the task
//! at once. A task closes with a completion, or with the fact that settles it: the visit documented
//! as performed, the missed dose documented as given, taken or not given (before the alert or
//! after).
//!
//! Evidence counts at its event time but never later than it was entered, so a device whose clock
//! runs fast cannot put a deadline off. A call task's id names how many calls went unanswered: a
//! claim or completion covers the call it answered, a further unanswered call raises a task of its
//! own, and nodes whose policies differ (one calls it "call again", another "physical visit")
//! still agree on who claimed what. Policies should nevertheless be the same on a zone's nodes:
//! each node decides by its own when a task reaches the base.

use serde::{Deserialize, Serialize};

use crate::docs::Author;
use crate::docs::journal::{DeviceEvent, DoseRef, Entry, EntryBody, Journal, MissedReason};
use crate::docs::plan::{PlanStatus, Visit, VisitKind, VisitPlan};
use crate::identity::Role;
pub use crate::ids::TaskId;
use crate::ids::{EntryId, PatientId, StaffId, VisitId};
use crate::time::{Month, Timestamp};

/// How long each step waits. Every node derives escalation with its own policy: set it on the base
/// (it decides when the base is told) and on the devices that should show the same stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EscalationPolicy {
    /// Minutes an alarm may stay unclaimed before it reaches the base.
    pub alarm_ack_minutes: u32,
    /// Minutes any other alert (missed dose, device error, power failure) or an overdue call may
    /// stay unclaimed before it reaches the base.
    pub alert_ack_minutes: u32,
    /// Minutes between an unanswered video call and the next try.
    pub call_retry_minutes: u32,
    /// Unanswered calls after which a video visit becomes a physical visit for the zone.
    pub call_attempts: u32,
}

impl Default for EscalationPolicy {
    /// domain.md §3: retry at +5 and +10 minutes, then send someone.
    fn default() -> Self {
        EscalationPolicy {
            alarm_ack_minutes: 5,
            alert_ack_minutes: 15,
            call_retry_minutes: 5,
            call_attempts: 3,
        }
    }
}

impl EscalationPolicy {
    /// Checks the bounds: every wait 1 minute to 24 hours, 1 to 10 call attempts.
    pub fn validate(&self) -> Result<(), String> {
        let waits = [
            ("alarm acknowledgement", self.alarm_ack_minutes),
            ("alert acknowledgement", self.alert_ack_minutes),
            ("call retry", self.call_retry_minutes),
        ];
        for (what, minutes) in waits {
            if !(1..=24 * 60).contains(&minutes) {
                return Err(format!(
                    "the {what} wait must be 1 to 1440 minutes, not {minutes}"
                ));
            }
        }
        if !(1..=10).contains(&self.call_attempts) {
            return Err(format!(
                "call attempts must be 1 to 10, not {}",
                self.call_attempts
            ));
        }
        Ok(())
    }
}

/// What raised a task: the evidence in one month of a patient's journal, as the store indexes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// The patient.
    pub patient: PatientId,
    /// The journal month holding the evidence (claims and completions go there too).
    pub month: Month,
    /// The evidence.
    pub source: Source,
    /// When the first evidence happened.
    pub raised_at: Timestamp,
    /// The staff the plan assigns (empty: nobody).
    pub nurses: Vec<StaffId>,
    /// Claims on any task this trigger raises.
    pub claims: Vec<Act>,
    /// What closed it (a completion, or the fact that settles it), earliest first.
    pub done: Vec<Act>,
}

/// The evidence behind a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Source {
    /// A device in the home raised an alert.
    DeviceAlert {
        /// The journal entry of the device event.
        entry: EntryId,
        /// The device.
        device: String,
        /// What it reported.
        event: DeviceEvent,
    },
    /// Calls for a video visit went unanswered.
    UnansweredCalls {
        /// The visit.
        visit: VisitId,
        /// When the visit was planned to start: how people know which visit (`None` in rows
        /// derived before it was kept).
        #[serde(default)]
        start: Option<Timestamp>,
        /// When each unanswered call was made, earliest first.
        calls: Vec<Timestamp>,
    },
}

/// A person's act on a task: a claim, a completion, or a settling fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Act {
    /// The task claimed or completed (`None`: a fact that settles every task of the trigger).
    pub task: Option<TaskId>,
    /// The journal entry.
    pub entry: EntryId,
    /// Who.
    pub by: Author,
    /// When.
    pub at: Timestamp,
    /// What was done, for a completion.
    pub note: Option<String>,
}

impl Act {
    fn of(entry: &Entry, task: Option<&TaskId>, note: Option<String>) -> Self {
        Act {
            task: task.cloned(),
            entry: entry.id.clone(),
            by: entry.author.clone(),
            at: entry.event_time,
            note,
        }
    }

    /// Whether `author` did this: the same staff member, or for a node serving no staff member
    /// (a base without a staff id), the same device.
    pub fn is_by(&self, author: &Author) -> bool {
        match (&self.by.staff, &author.staff) {
            (Some(a), Some(b)) => a == b,
            _ => self.by.device == author.device,
        }
    }

    /// A fact that settles every task of its trigger (the visit performed, the dose documented).
    fn settling(entry: &Entry) -> Self {
        Act::of(entry, None, Some(entry.body.describe()))
    }

    /// The staff member (or, for a device, the author's name) who acted.
    pub fn who(&self) -> String {
        match &self.by.staff {
            Some(staff) => format!("{} ({staff})", self.by.name),
            None => self.by.name.clone(),
        }
    }
}

/// How urgent a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Someone pressed the alarm button.
    Urgent,
    /// A missed dose; nobody reached on a video visit.
    High,
    /// A device to check; a call to make again.
    Normal,
}

/// What must be done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum TaskKind {
    /// Respond to a device's alert (alarm, missed dose, device error, power failure).
    RespondToAlert {
        /// The journal entry of the device's event.
        entry: EntryId,
        /// The device.
        device: String,
        /// What it reported.
        event: DeviceEvent,
    },
    /// Call the patient again for a video visit.
    CallAgain {
        /// The visit.
        visit: VisitId,
        /// Calls unanswered so far.
        unanswered: u32,
    },
    /// Nobody answered the video visit's calls: someone must go.
    PhysicalVisit {
        /// The video visit that went unanswered.
        visit: VisitId,
        /// Calls unanswered.
        unanswered: u32,
    },
}

/// Whose a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "staff")]
pub enum Owner {
    /// The nurses the plan assigns.
    Nurses(Vec<StaffId>),
    /// The base.
    Base,
    /// Anyone in the patient's zone.
    Zone,
}

impl std::fmt::Display for Owner {
    /// `S100 + S200`, `the base` or `the zone`, as people read it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Nurses(staff) => {
                for (i, s) in staff.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" + ")?;
                    }
                    write!(f, "{s}")?;
                }
                Ok(())
            }
            Owner::Base => f.write_str("the base"),
            Owner::Zone => f.write_str("the zone"),
        }
    }
}

/// A task as it stands at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Stable id (the same on every node).
    pub id: TaskId,
    /// The patient.
    pub patient: PatientId,
    /// The journal month its claims and completion go to.
    pub month: Month,
    /// What must be done.
    #[serde(flatten)]
    pub kind: TaskKind,
    /// How urgent.
    pub priority: Priority,
    /// When the evidence first appeared.
    pub raised_at: Timestamp,
    /// Whose it is.
    pub owner: Owner,
    /// When it reaches (or reached) the base if nobody claims it; `None` when it never does.
    pub escalates_at: Option<Timestamp>,
    /// Whether it has reached the base (its deadline passed before anyone claimed or settled it;
    /// it stays so once claimed).
    pub escalated: bool,
    /// When to act (a call to make again), if it is for a set time.
    pub due: Option<Timestamp>,
    /// Everyone who claimed it, earliest first (two is not an error: both are told).
    pub claims: Vec<Act>,
    /// What closed it.
    pub done: Option<Act>,
    /// The patient's name, where the record is held: filled when read (`Repo::name_tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_name: Option<String>,
    /// The owning nurses by name, in `owner`'s order (a staff id where no name is known):
    /// filled when read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_names: Vec<String>,
    /// One line for people.
    pub summary: String,
}

impl Task {
    /// Whose it is, as people read it: the nurses by name where they were named
    /// ([`Task::owner_names`]), else as [`Owner`] says it.
    pub fn owner_label(&self) -> String {
        if self.owner_names.is_empty() {
            self.owner.to_string()
        } else {
            self.owner_names.join(" + ")
        }
    }

    /// Whether nobody has closed it.
    pub fn is_open(&self) -> bool {
        self.done.is_none()
    }

    /// The next moment this task's stage changes by the clock alone (it reaches the base, or a
    /// call falls due), if one is ahead of `now`. A node sets its timer by it.
    pub fn next_change(&self, now: Timestamp) -> Option<Timestamp> {
        if !self.is_open() {
            return None;
        }
        let unclaimed = self.claims.is_empty();
        [self.escalates_at.filter(|_| unclaimed), self.due]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min()
    }

    /// Whether the task is one `viewer` must see: a base sees every task; a nurse sees those she
    /// owns or claimed and those for the zone (she holds the patient, so she may go).
    pub fn concerns(&self, role: Role, staff: Option<&StaffId>) -> bool {
        match role {
            Role::Base => true,
            Role::HomeUnit => false,
            Role::Nurse => {
                let Some(staff) = staff else { return false };
                matches!(&self.owner, Owner::Nurses(n) if n.contains(staff))
                    || self.owner == Owner::Zone
                    || self.claimed_by(staff)
            }
        }
    }

    /// Whether `staff` claimed it.
    pub fn claimed_by(&self, staff: &StaffId) -> bool {
        self.claims
            .iter()
            .any(|c| c.by.staff.as_ref() == Some(staff))
    }

    /// The others who claimed it too, if `staff` claimed it ("also claimed by X").
    pub fn also_claimed_by(&self, staff: &StaffId) -> Vec<&Act> {
        if !self.claimed_by(staff) {
            return Vec::new();
        }
        self.claims
            .iter()
            .filter(|c| c.by.staff.as_ref() != Some(staff))
            .collect()
    }
}

impl Trigger {
    /// Counts the claims and completions of this trigger's tasks among `facts`, completions in
    /// the order they happened.
    fn add_acts(&mut self, facts: &[&Entry]) {
        let ids = self.task_ids();
        for entry in facts {
            match &entry.body {
                EntryBody::TaskClaimed { task } if ids.contains(task) => {
                    self.claims.push(Act::of(entry, Some(task), None));
                }
                EntryBody::TaskDone { task, note } if ids.contains(task) => {
                    self.done
                        .push(Act::of(entry, Some(task), Some(note.clone())));
                }
                _ => {}
            }
        }
        self.done
            .sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.entry.cmp(&b.entry)));
    }

    /// The ids of every task this trigger has raised so far, oldest first (claims and
    /// completions name one of them).
    pub fn task_ids(&self) -> Vec<TaskId> {
        match &self.source {
            Source::DeviceAlert { entry, .. } => vec![alert_task(entry)],
            Source::UnansweredCalls { visit, calls, .. } => {
                (1..=calls.len()).map(|n| calls_task(visit, n)).collect()
            }
        }
    }

    /// The id of the task as the evidence stands now. A call task's id names how many calls went
    /// unanswered, not what the policy makes of them: a claim made after the third call covers
    /// the third call's task on every node, whatever each node's policy calls it ("call again"
    /// or "physical visit"), and not the fourth's.
    pub fn current_id(&self) -> TaskId {
        match &self.source {
            Source::DeviceAlert { entry, .. } => alert_task(entry),
            Source::UnansweredCalls { visit, calls, .. } => calls_task(visit, calls.len()),
        }
    }

    /// Whether nobody has closed it: no fact settled it, and nobody completed the task the
    /// evidence stands for now (a further unanswered call reopens a completed call task).
    pub fn is_open(&self) -> bool {
        self.closing().is_none()
    }

    fn closing(&self) -> Option<&Act> {
        let current = self.current_id();
        self.done
            .iter()
            .find(|d| d.task.as_ref().is_none_or(|t| *t == current))
    }

    /// The task this trigger stands for at `now` under `policy`.
    pub fn task(&self, now: Timestamp, policy: &EscalationPolicy) -> Task {
        let stage = self.stage(policy);
        let claims: Vec<Act> = self
            .claims
            .iter()
            .filter(|c| c.task.as_ref() == Some(&stage.id))
            .cloned()
            .collect();
        let done = self.closing().cloned();
        // It reached the base if its deadline came before anyone claimed or settled it: a claim
        // made after the base was told does not untell it.
        let settled = claims
            .iter()
            .map(|c| c.at)
            .chain(done.as_ref().map(|d| d.at))
            .min();
        let until = settled.map_or(now, |at| at.min(now));
        let escalated =
            stage.owner == Owner::Base || stage.escalates_at.is_some_and(|t| t <= until);
        Task {
            id: stage.id,
            patient: self.patient.clone(),
            month: self.month,
            kind: stage.kind,
            priority: stage.priority,
            raised_at: self.raised_at,
            owner: stage.owner,
            escalates_at: stage.escalates_at,
            escalated,
            due: stage.due,
            claims,
            done,
            patient_name: None,
            owner_names: Vec::new(),
            summary: stage.summary,
        }
    }

    /// What the evidence calls for under `policy`, before anyone's acts are counted.
    fn stage(&self, policy: &EscalationPolicy) -> Stage {
        // With nobody planned, the base owns the task from the start.
        let assigned = (!self.nurses.is_empty()).then(|| Owner::Nurses(self.nurses.clone()));
        match &self.source {
            Source::DeviceAlert {
                entry,
                device,
                event,
            } => self.alert_stage(policy, assigned, entry, device, event),
            Source::UnansweredCalls {
                visit,
                start,
                calls,
            } => self.calls_stage(policy, assigned, visit, *start, calls),
        }
    }

    /// A device alert waits for its nurses as long as its kind allows, then goes to the base.
    fn alert_stage(
        &self,
        policy: &EscalationPolicy,
        assigned: Option<Owner>,
        entry: &EntryId,
        device: &str,
        event: &DeviceEvent,
    ) -> Stage {
        let (priority, wait) = match event {
            DeviceEvent::AlarmPressed => (Priority::Urgent, policy.alarm_ack_minutes),
            DeviceEvent::DoseMissed { .. } => (Priority::High, policy.alert_ack_minutes),
            _ => (Priority::Normal, policy.alert_ack_minutes),
        };
        let escalates_at = match assigned {
            Some(_) => after(self.raised_at, wait),
            None => self.raised_at,
        };
        Stage {
            id: self.current_id(),
            kind: TaskKind::RespondToAlert {
                entry: entry.clone(),
                device: device.to_owned(),
                event: event.clone(),
            },
            priority,
            owner: assigned.unwrap_or(Owner::Base),
            escalates_at: Some(escalates_at),
            due: None,
            summary: alert_summary(device, event, &|_| None),
        }
    }

    /// Unanswered calls ask for another call until the policy's attempts are spent; then the
    /// zone owes the patient a physical visit.
    fn calls_stage(
        &self,
        policy: &EscalationPolicy,
        assigned: Option<Owner>,
        visit: &VisitId,
        start: Option<Timestamp>,
        calls: &[Timestamp],
    ) -> Stage {
        // The visit as people know it: by its time; its id only if that is all there is.
        let which = start.map_or_else(
            || format!("video visit {visit}"),
            |t| format!("the {} video visit", t.hhmm()),
        );
        let unanswered = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        if unanswered >= policy.call_attempts {
            return Stage {
                id: self.current_id(),
                kind: TaskKind::PhysicalVisit {
                    visit: visit.clone(),
                    unanswered,
                },
                priority: Priority::High,
                owner: Owner::Zone,
                escalates_at: None,
                due: None,
                summary: format!("physical visit: {which} unanswered after {unanswered} calls"),
            };
        }
        let last = calls.last().copied().unwrap_or(self.raised_at);
        let due = after(last, policy.call_retry_minutes);
        Stage {
            id: self.current_id(),
            kind: TaskKind::CallAgain {
                visit: visit.clone(),
                unanswered,
            },
            priority: Priority::Normal,
            owner: assigned.unwrap_or(Owner::Base),
            escalates_at: Some(after(due, policy.alert_ack_minutes)),
            due: Some(due),
            summary: format!(
                "call again at {}: {which}, {unanswered} unanswered",
                due.hhmm()
            ),
        }
    }
}

fn after(at: Timestamp, minutes: u32) -> Timestamp {
    at.plus_minutes(i64::from(minutes))
}

/// A task's stage as the evidence and the policy make it (see [`Trigger::task`]).
struct Stage {
    id: TaskId,
    kind: TaskKind,
    priority: Priority,
    owner: Owner,
    escalates_at: Option<Timestamp>,
    due: Option<Timestamp>,
    summary: String,
}

fn alert_task(entry: &EntryId) -> TaskId {
    TaskId::derive(&["alert", entry.as_str()])
}

fn calls_task(visit: &VisitId, unanswered: usize) -> TaskId {
    TaskId::derive(&["unanswered-calls", visit.as_str(), &unanswered.to_string()])
}

/// Every trigger in one month of `patient`'s plan and journal: device alerts, and video visits
/// with unanswered calls, with their claims and what closed them. Pure: every replica holding the
/// same documents derives the same list.
pub fn month_triggers(
    patient: &PatientId,
    month: Month,
    plan: &VisitPlan,
    journal: &Journal,
) -> Vec<Trigger> {
    let facts = journal.standing();
    let alerts = facts.iter().filter_map(|entry| {
        let (source, done) = alert_source(entry, &facts)?;
        let raised_at = clock(entry);
        Some(Evidence {
            source,
            raised_at,
            nurses: assigned_nurses(plan, raised_at),
            done,
        })
    });
    let calls = plan
        .visits
        .iter()
        .filter(|v| {
            v.kind == VisitKind::Digital && !matches!(v.status, PlanStatus::Cancelled { .. })
        })
        .filter_map(|visit| unanswered_calls(visit, &facts));
    let mut found: Vec<Trigger> = alerts
        .chain(calls)
        .map(|evidence| Trigger {
            patient: patient.clone(),
            month,
            source: evidence.source,
            raised_at: evidence.raised_at,
            nurses: evidence.nurses,
            claims: Vec::new(),
            done: evidence.done,
        })
        .collect();
    for trigger in &mut found {
        trigger.add_acts(&facts);
    }
    found
}

/// What raised a trigger, before its claims and completions are counted.
struct Evidence {
    source: Source,
    raised_at: Timestamp,
    /// Whose the task is first.
    nurses: Vec<StaffId>,
    /// The facts that settled it.
    done: Vec<Act>,
}

/// A device alert's source and whatever has settled it, or `None` if `entry` is no alert.
fn alert_source(entry: &Entry, facts: &[&Entry]) -> Option<(Source, Vec<Act>)> {
    let EntryBody::DeviceEvent { device, event, .. } = &entry.body else {
        return None;
    };
    if !event.is_alert() {
        return None;
    }
    // Whatever became of the dose settles it, documented before the alert or after
    // (a nurse who gave it by hand before the dispenser gave up).
    let done = match event {
        DeviceEvent::DoseMissed { dose } => facts
            .iter()
            .filter(|f| settles_dose(f, dose))
            .map(|f| Act::settling(f))
            .collect(),
        _ => Vec::new(),
    };
    let source = Source::DeviceAlert {
        entry: entry.id.clone(),
        device: device.clone(),
        event: event.clone(),
    };
    Some((source, done))
}

/// What a video visit's unanswered calls raise: `None` while no call went unanswered.
fn unanswered_calls(visit: &Visit, facts: &[&Entry]) -> Option<Evidence> {
    let mut calls: Vec<Timestamp> = facts
        .iter()
        .filter_map(|f| match &f.body {
            EntryBody::VisitNotPerformed {
                visit: v,
                reason: MissedReason::NoAnswer,
                ..
            } if v == &visit.id => Some(clock(f)),
            _ => None,
        })
        .collect();
    calls.sort();
    let first = calls.first().copied()?;
    let done = facts
        .iter()
        .filter(|f| matches!(&f.body, EntryBody::VisitPerformed { visit: v, .. } if v == &visit.id))
        .map(|f| Act::settling(f))
        .collect();
    let mut nurses = visit.staff.clone();
    if nurses.is_empty() {
        // Whoever made the calls is whose the retry is.
        nurses.extend(facts.iter().rev().find_map(|f| match &f.body {
            EntryBody::VisitNotPerformed { visit: v, .. } if v == &visit.id => {
                f.author.staff.clone()
            }
            _ => None,
        }));
    }
    let source = Source::UnansweredCalls {
        visit: visit.id.clone(),
        start: Some(visit.start),
        calls,
    };
    Some(Evidence {
        source,
        raised_at: first,
        nurses,
        done,
    })
}

/// When evidence counts as having happened for escalation: its event time, but never later than
/// it was entered, so a device whose clock runs fast cannot put the deadline off.
fn clock(entry: &Entry) -> Timestamp {
    entry.event_time.min(entry.entered_at)
}

/// Whether `fact` documents what became of a missed dose: given, taken, or not given.
fn settles_dose(fact: &Entry, dose: &DoseRef) -> bool {
    match &fact.body {
        EntryBody::MedicationGiven { dose: d, .. }
        | EntryBody::MedicationNotGiven { dose: d, .. } => d == dose,
        EntryBody::DeviceEvent {
            event: DeviceEvent::DoseTaken { dose: d },
            ..
        } => d == dose,
        _ => false,
    }
}

/// The staff of the patient's visit under way or next at `at` on that day, else of the day's last.
fn assigned_nurses(plan: &VisitPlan, at: Timestamp) -> Vec<StaffId> {
    let mut today: Vec<_> = plan
        .visits
        .iter()
        .filter(|v| {
            v.day() == at.day()
                && !v.staff.is_empty()
                && !matches!(v.status, PlanStatus::Cancelled { .. })
        })
        .collect();
    today.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.id.cmp(&b.id)));
    today
        .iter()
        .find(|v| v.end >= at)
        .or(today.last())
        .map(|v| v.staff.clone())
        .unwrap_or_default()
}

/// What a task to answer a device's alert says: the dose as `name` names it (see
/// [`crate::repo::Repo::name_tasks`]).
pub fn alert_summary(
    device: &str,
    event: &DeviceEvent,
    name: &dyn Fn(crate::docs::journal::Referent<'_>) -> Option<String>,
) -> String {
    format!("respond: {device}: {}", event.describe_naming(name))
}
