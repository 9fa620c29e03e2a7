//! Safety conflicts and escalation tasks: listing them through the need gate, resolving,
//! claiming and completing them.

use std::collections::{BTreeMap, BTreeSet};

use crate::conflict::{Conflict, ConflictId};
use crate::docs::journal::Entry;
use crate::escalation::{Task, TaskId};
use crate::ids::PatientId;

use super::{Service, ServiceError, required};

/// Which tasks a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskScope {
    /// The open tasks this device's user must see.
    Mine,
    /// Every task this node derives, open or done.
    All,
}

impl Service {
    /// Open conflicts (of one patient, or all this node holds), named, through the need gate.
    pub fn conflicts(&self, patient: Option<&str>) -> Result<Vec<Conflict>, ServiceError> {
        let patient = patient.map(|p| self.patient(p)).transpose()?;
        if let Some(p) = &patient {
            self.open(p, "conflicts")?;
        }
        let list = self.repo.named_conflicts(patient.as_ref())?;
        let mut shown = self.shown("open conflicts", list, |c| &c.patient)?;
        self.tell_conflicts_apart(&mut shown)?;
        Ok(shown)
    }

    /// Names the patients of conflicts a list shows (they passed the gate) as lists do: two of
    /// one name told apart among them (see [`crate::repo::tell_apart`]).
    pub fn tell_conflicts_apart(&self, conflicts: &mut [Conflict]) -> Result<(), ServiceError> {
        let names = self.repo.names_and_hints()?;
        let labels = crate::repo::tell_apart(&names, conflicts.iter().map(|c| &c.patient));
        crate::repo::label_conflicts(conflicts, &labels);
        Ok(())
    }

    /// The open conflicts (of one patient, or all) an app has not been told of (`told`: their
    /// ids), through the need gate ("conflict alerts", logged when it shows any): what a
    /// notification may show. Those shown join `told`; one the gate keeps back (a block not
    /// yet purged) is not told, and is not marked told.
    pub fn conflicts_to_tell(
        &self,
        patient: Option<&PatientId>,
        told: &mut BTreeSet<String>,
    ) -> Result<Vec<Conflict>, ServiceError> {
        let new: Vec<Conflict> = (self.repo.named_conflicts(patient)?.into_iter())
            .filter(|c| !told.contains(&c.id.to_string()))
            .collect();
        if new.is_empty() {
            return Ok(new);
        }
        let mut shown = self.alerted("conflict alerts", new, |c| &c.patient)?;
        told.extend(shown.iter().map(|c| c.id.to_string()));
        self.tell_conflicts_apart(&mut shown)?;
        Ok(shown)
    }

    /// This device's user's open tasks (of one patient, or all) that are new to `told` or
    /// changed since (`told`: each task's id and `describe` of it as told; closed ones are
    /// forgotten), through the need gate ("task alerts"): what a notification may show.
    pub fn tasks_to_tell(
        &self,
        patient: Option<&PatientId>,
        told: &mut BTreeMap<String, String>,
        describe: impl Fn(&Task) -> String,
    ) -> Result<Vec<Task>, ServiceError> {
        let open = self.repo.my_tasks(self.now())?;
        let ids: BTreeSet<String> = open.iter().map(|t| t.id.to_string()).collect();
        told.retain(|id, _| ids.contains(id));
        let changed: Vec<Task> = (open.into_iter())
            .filter(|t| patient.is_none_or(|p| &t.patient == p))
            .filter(|t| told.get(&t.id.to_string()) != Some(&describe(t)))
            .collect();
        if changed.is_empty() {
            return Ok(changed);
        }
        let mut shown = self.alerted("task alerts", changed, |t| &t.patient)?;
        // Named once through the gate (a notification shows the patient and the nurses by
        // name), before any is marked told: a failure tells them next time.
        self.repo.name_tasks(&mut shown)?;
        for task in &shown {
            told.insert(task.id.to_string(), describe(task));
        }
        Ok(shown)
    }

    /// The access log this node holds (its own and, on a base, every synced device's), or one
    /// patient's: then with every write to her documents from their signed history, if this
    /// user may see her (the read logged as "access log"), and only this device's own entries
    /// about her otherwise — who wrote what in a blocked or unknown patient's record is hers to
    /// keep from a user without a need, but a user's own actions are hers to see.
    pub fn access_log(
        &self,
        patient: Option<&str>,
    ) -> Result<Vec<crate::trust::audit::AuditEntry>, ServiceError> {
        let Some(patient) = patient else {
            return self.whole_access_log();
        };
        let me = self.repo.id();
        let patient = self.patient(patient)?;
        let mut verdict = self.disclose(crate::trust::audit::AuditAction::Read, "access log");
        if verdict.admits(&patient)? {
            self.open(&patient, "access log")?;
            return Ok(self.repo.audit_entries(Some(&patient))?);
        }
        let mut entries = self.repo.audit_entries(Some(&patient))?;
        entries.retain(|e| e.author.device == me);
        Ok(entries)
    }

    /// Every access-log entry held, but other devices' entries about a patient this user may
    /// not see: they stay out of the whole log as they do out of hers (the verdicts only, never
    /// logged; the caller names the patients where shown).
    fn whole_access_log(&self) -> Result<Vec<crate::trust::audit::AuditEntry>, ServiceError> {
        let me = self.repo.id();
        let mut verdicts = self.disclose(crate::trust::audit::AuditAction::Read, "access log");
        let mut kept = Vec::new();
        for entry in self.repo.audit_entries(None)? {
            let mut seen = true;
            if entry.author.device != me {
                for p in entry.patient.iter().chain(&entry.patients) {
                    seen &= verdicts.admits(p)?;
                }
            }
            if seen {
                kept.push(entry);
            }
        }
        Ok(kept)
    }

    /// The `items` an alert may show, logged as a read of `view` when it shows any. A patient
    /// the gate keeps back is left out without a refusal in the log: an alert the app raises by
    /// itself (at every write, every document received) is no attempt of the user's to read.
    fn alerted<T>(
        &self,
        view: &str,
        items: Vec<T>,
        patient_of: impl Fn(&T) -> &PatientId,
    ) -> Result<Vec<T>, ServiceError> {
        // The verdicts only: this disclosure is never finished, so it logs nothing.
        let mut verdicts = self.disclose(crate::trust::audit::AuditAction::Read, view);
        let mut kept = Vec::new();
        for item in items {
            if verdicts.admits(patient_of(&item))? {
                kept.push(item);
            }
        }
        if kept.is_empty() {
            return Ok(kept);
        }
        self.shown(view, kept, patient_of)
    }

    /// Resolves a conflict with a note (and, for a record field, the value to keep): an
    /// attributable journal entry; `None` when the conflict needed none.
    pub fn resolve_conflict(
        &self,
        conflict: &str,
        note: &str,
        value: Option<&str>,
    ) -> Result<Option<Entry>, ServiceError> {
        let id =
            ConflictId::parse(conflict.trim()).map_err(|e| ServiceError::invalid("conflict", e))?;
        required("note", note, "how the conflict was resolved")?;
        self.write(|repo, now, rng| repo.resolve_conflict(now, rng, &id, note, value))
    }

    /// Tasks (of one patient, or all), named, through the need gate.
    pub fn tasks(
        &self,
        scope: TaskScope,
        patient: Option<&str>,
    ) -> Result<Vec<Task>, ServiceError> {
        let now = self.now();
        let patient = patient.map(|p| self.patient(p)).transpose()?;
        if let Some(p) = &patient {
            self.open(p, "tasks")?;
        }
        let tasks: Vec<Task> = match scope {
            TaskScope::All => self.repo.tasks(now, patient.as_ref())?,
            TaskScope::Mine => self
                .repo
                .my_tasks(now)?
                .into_iter()
                .filter(|t| patient.as_ref().is_none_or(|p| &t.patient == p))
                .collect(),
        };
        let mut tasks = self.shown("escalation tasks", tasks, |t| &t.patient)?;
        self.repo.name_tasks(&mut tasks)?;
        Ok(tasks)
    }

    /// Claims a task ("I take it"), which stops it escalating. Returns the claim and the task as
    /// it stands after it (a colleague's claim too, if she also took it).
    pub fn claim_task(&self, task: &str) -> Result<(Entry, Task), ServiceError> {
        let id = self.task_id(task)?;
        let entry = self.write(|repo, now, rng| repo.claim_task(now, rng, &id))?;
        let mut task = self.repo.task(self.now(), &id)?;
        // What it answers names the patient: a read like any other.
        self.open(&task.patient, "escalation task")?;
        self.repo.name_tasks(std::slice::from_mut(&mut task))?;
        Ok((entry, task))
    }

    /// Completes a task, saying what was done.
    pub fn complete_task(&self, task: &str, note: &str) -> Result<Entry, ServiceError> {
        let id = self.task_id(task)?;
        required("note", note, "what was done")?;
        self.write(|repo, now, rng| repo.complete_task(now, rng, &id, note))
    }

    fn task_id(&self, task: &str) -> Result<TaskId, ServiceError> {
        TaskId::parse(task.trim()).map_err(|e| ServiceError::invalid("task", e))
    }
}
