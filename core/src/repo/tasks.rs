//! Escalation tasks: listing them as they stand now, claiming and completing them (see
//! [`crate::escalation`]). A claim or completion is a journal entry in the month of the task's
//! evidence, so it merges, syncs and is attributed like any other fact.

use rand::RngCore;

use super::{Repo, RepoError, Transaction};
use crate::docs::DocumentId;
use crate::docs::journal::{Entry, EntryBody};
use crate::escalation::{EscalationPolicy, Task, TaskId, Trigger};
use crate::identity::Role;
use crate::ids::PatientId;
use crate::store::StoreError;
use crate::time::Timestamp;

impl Repo {
    /// This node's escalation policy.
    pub fn escalation_policy(&self) -> Result<EscalationPolicy, RepoError> {
        let Some(json) = self.store.escalation_policy_json()? else {
            return Ok(EscalationPolicy::default());
        };
        serde_json::from_slice(&json)
            .map_err(|e| StoreError::Corrupt(format!("escalation policy: {e}")).into())
    }

    /// Sets this node's escalation policy, after checking its bounds.
    pub fn set_escalation_policy(&self, policy: &EscalationPolicy) -> Result<(), RepoError> {
        policy.validate().map_err(RepoError::Invalid)?;
        let json = serde_json::to_vec(policy)
            .map_err(|e| StoreError::Corrupt(format!("encoding escalation policy: {e}")))?;
        Ok(self.store.set_escalation_policy_json(&json)?)
    }

    /// Changes this node's escalation policy where `change` does, and returns it: the read and
    /// the write are one step, so two changes made at once (two forwarded `tasks policy`
    /// commands) each keep the other's.
    pub fn update_escalation_policy(
        &self,
        change: impl FnOnce(&mut EscalationPolicy),
    ) -> Result<EscalationPolicy, RepoError> {
        static UPDATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = UPDATING.lock().unwrap_or_else(|p| p.into_inner());
        let mut policy = self.escalation_policy()?;
        change(&mut policy);
        self.set_escalation_policy(&policy)?;
        Ok(policy)
    }

    /// Every task this node's documents call for, closed ones too, as it stands at `now`: open
    /// ones first, by priority and time; optionally for one patient.
    pub fn tasks(
        &self,
        now: Timestamp,
        patient: Option<&PatientId>,
    ) -> Result<Vec<Task>, RepoError> {
        self.tasks_from(now, patient, false)
    }

    /// The tasks nobody has closed, as [`Repo::tasks`] orders them.
    pub fn open_tasks(
        &self,
        now: Timestamp,
        patient: Option<&PatientId>,
    ) -> Result<Vec<Task>, RepoError> {
        self.tasks_from(now, patient, true)
    }

    fn tasks_from(
        &self,
        now: Timestamp,
        patient: Option<&PatientId>,
        open_only: bool,
    ) -> Result<Vec<Task>, RepoError> {
        let policy = self.escalation_policy()?;
        let mut tasks = Vec::new();
        for json in self.store.trigger_rows(patient, open_only)? {
            let triggers = crate::pipeline::decode_list::<Trigger>(&json, "task index")?;
            tasks.extend(
                triggers
                    .iter()
                    .filter(|t| !open_only || t.is_open())
                    .map(|t| t.task(now, &policy)),
            );
        }
        tasks.sort_by(|a, b| {
            (b.is_open(), b.escalated)
                .cmp(&(a.is_open(), a.escalated))
                .then(a.priority.cmp(&b.priority))
                .then(a.raised_at.cmp(&b.raised_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(tasks)
    }

    /// Adds the patient's and the owning nurses' names to each task, and names the dose an
    /// alert is about by its medication (see [`TaskNames`]). For tasks that passed the need
    /// gate: it reads their patients' records.
    pub fn name_tasks(&self, tasks: &mut [Task]) -> Result<(), RepoError> {
        self.task_names()?.apply(self, tasks);
        Ok(())
    }

    /// The names tasks are read with, once for many lists (an export's every patient).
    pub fn task_names(&self) -> Result<TaskNames, RepoError> {
        Ok(TaskNames {
            patients: self.names_and_hints()?,
            staff: self.staff_names()?,
        })
    }

    /// The open tasks this node's user must see (see [`Task::concerns`]).
    pub fn my_tasks(&self, now: Timestamp) -> Result<Vec<Task>, RepoError> {
        let profile = self.profile();
        Ok(self
            .open_tasks(now, None)?
            .into_iter()
            .filter(|t| t.concerns(profile.role, profile.staff_id.as_ref()))
            .collect())
    }

    /// The task with this id, as it stands at `now` (looked for among the open ones first).
    pub fn task(&self, now: Timestamp, id: &TaskId) -> Result<Task, RepoError> {
        let find = |tasks: Vec<Task>| tasks.into_iter().find(|t| &t.id == id);
        match find(self.open_tasks(now, None)?) {
            Some(task) => Ok(task),
            None => find(self.tasks(now, None)?)
                .ok_or_else(|| RepoError::NotFound(format!("task {id}"))),
        }
    }
}

impl Transaction<'_> {
    /// Claims a task for this node's staff member ("I take it"). Claiming what a colleague
    /// already claimed is allowed: both claims are kept and both are told.
    pub fn claim_task(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        id: &TaskId,
    ) -> Result<Entry, RepoError> {
        let task = self.open_task(now, id, "claim tasks")?;
        let me = self.repo.author()?;
        if task.claims.iter().any(|c| c.is_by(&me)) {
            return Err(RepoError::Invalid(format!("you already claimed task {id}")));
        }
        let body = EntryBody::TaskClaimed { task: id.clone() };
        let doc = DocumentId::Journal(task.patient, task.month);
        self.append_entry(now, rng, doc, now, body)
    }

    /// Completes a task, saying what was done.
    pub fn complete_task(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        id: &TaskId,
        note: &str,
    ) -> Result<Entry, RepoError> {
        let task = self.open_task(now, id, "complete tasks")?;
        let body = EntryBody::TaskDone {
            task: id.clone(),
            note: note.to_owned(),
        };
        let doc = DocumentId::Journal(task.patient, task.month);
        self.append_entry(now, rng, doc, now, body)
    }

    fn open_task(
        &mut self,
        now: Timestamp,
        id: &TaskId,
        action: &'static str,
    ) -> Result<Task, RepoError> {
        let role = self.repo.profile().role;
        if role == Role::HomeUnit {
            return Err(RepoError::NotPermitted { role, action });
        }
        let task = self.repo.task(now, id)?;
        if let Some(done) = &task.done {
            return Err(RepoError::Invalid(format!(
                "task {id} was completed by {} at {}",
                done.who(),
                done.at
            )));
        }
        Ok(task)
    }
}

/// The patients' and staff's names tasks are read with ([`Repo::task_names`]).
#[derive(Debug, Clone, Default)]
pub struct TaskNames {
    patients: super::NamesAndHints,
    staff: std::collections::BTreeMap<String, String>,
}

impl TaskNames {
    /// Names each task's patient and owning nurses (a staff id where no name is known), and an
    /// alert's dose by the medication in its patient's record (by its id where the record is
    /// not held or not readable: one record does not fail the list).
    pub fn apply(&self, repo: &Repo, tasks: &mut [Task]) {
        let mut records = std::collections::BTreeMap::new();
        // Told apart among this list's patients only (they passed the gate).
        let shown: Vec<PatientId> = tasks.iter().map(|t| t.patient.clone()).collect();
        let labels = super::tell_apart(&self.patients, &shown);
        for task in tasks {
            task.patient_name = labels.get(&task.patient).cloned();
            if let crate::escalation::TaskKind::RespondToAlert { device, event, .. } = &task.kind
                && event.dose().is_some()
            {
                let record: &Option<_> = (records.entry(task.patient.clone()))
                    .or_insert_with(|| repo.record(&task.patient).ok());
                task.summary = crate::escalation::alert_summary(device, event, &|referent| {
                    record.as_ref()?.name_referent(referent)
                });
            }
            if let crate::escalation::Owner::Nurses(nurses) = &task.owner {
                task.owner_names = (nurses.iter())
                    .map(|n| super::staff_list(std::slice::from_ref(n), &self.staff))
                    .collect();
            }
        }
    }
}
