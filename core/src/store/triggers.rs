//! The escalation index: per patient and month, the triggers ([`crate::escalation::Trigger`]) its
//! plan and journal hold, re-derived in the same transaction as every change to either (like the
//! conflict index), so listing a base's tasks reads one small table instead of every journal.
//! Also the node's escalation policy, which decides when a trigger becomes a task for whom.

use redb::ReadableDatabase;

use super::crypt::tasks_place;
use super::error::StoreError;
use super::handle::Store;
use super::rows::patient_rows;
use super::schema::{META, OPEN_TASKS, TASKS};
use crate::escalation::{EscalationPolicy, Trigger};
use crate::ids::PatientId;

impl Store {
    /// The escalation triggers the store holds, optionally for one patient; with `open_only`,
    /// only those nobody has closed (read through [`OPEN_TASKS`], so closed months cost nothing).
    pub fn triggers(
        &self,
        patient: Option<&PatientId>,
        open_only: bool,
    ) -> Result<Vec<Trigger>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let patient = patient.map(PatientId::as_str);
            let table = read.open_table(TASKS)?;
            let mut out = Vec::new();
            let mut decode = |patient: &str, month: &str, sealed: &[u8]| {
                let json = self.open_value(&tasks_place(patient, month), sealed)?;
                let list: Vec<Trigger> = serde_json::from_slice(&json)
                    .map_err(|e| StoreError::Corrupt(format!("task index: {e}")))?;
                out.extend(list.into_iter().filter(|t| !open_only || t.is_open()));
                Ok::<_, StoreError>(())
            };
            if open_only {
                let open = read.open_table(OPEN_TASKS)?;
                for item in patient_rows(&open, patient)? {
                    let (k, _) = item?;
                    let (patient, month) = k.value();
                    if let Some(v) = table.get((patient, month))? {
                        decode(patient, month, v.value())?;
                    }
                }
            } else {
                for item in patient_rows(&table, patient)? {
                    let (k, v) = item?;
                    let (patient, month) = k.value();
                    decode(patient, month, v.value())?;
                }
            }
            Ok(out)
        })
    }
}

/// The `META` key of the node's escalation policy (JSON; absent: the defaults).
const POLICY_KEY: &str = "escalation_policy";

impl Store {
    /// This node's escalation policy.
    pub fn escalation_policy(&self) -> Result<EscalationPolicy, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let meta = read.open_table(META)?;
            match meta.get(POLICY_KEY)? {
                Some(v) => serde_json::from_slice(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("escalation policy: {e}"))),
                None => Ok(EscalationPolicy::default()),
            }
        })
    }

    /// Replaces this node's escalation policy (durably).
    pub fn set_escalation_policy(&self, policy: &EscalationPolicy) -> Result<(), StoreError> {
        self.contain(|| {
            let json = serde_json::to_vec(policy)
                .map_err(|e| StoreError::Corrupt(format!("encoding escalation policy: {e}")))?;
            let tx = self.db.begin_write()?;
            tx.open_table(META)?.insert(POLICY_KEY, json.as_slice())?;
            tx.commit()?;
            Ok(())
        })
    }
}
