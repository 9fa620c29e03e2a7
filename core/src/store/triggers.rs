//! The escalation index: per patient and month, the triggers its plan and journal hold (as the
//! change pipeline derives them, [`super::Row::Triggers`]), re-derived in the same transaction as
//! every change to either (like the conflict index), so listing a base's tasks reads one small
//! table instead of every journal. Also the node's escalation policy, which decides when a
//! trigger becomes a task for whom. The store keeps both as bytes; the repo reads them.

use super::crypt::tasks_place;
use super::error::StoreError;
use super::handle::Store;
use super::rows::patient_rows;
use super::schema::{META, OPEN_TASKS, TASKS};
use crate::ids::PatientId;

impl Store {
    /// The escalation index's rows, optionally for one patient, opened: each the JSON list of
    /// one patient-month's triggers as the pipeline wrote it, in key order. With `open_only`,
    /// only the months holding a trigger nobody has closed (read through [`OPEN_TASKS`], so
    /// closed months cost nothing); their closed triggers are the reader's to leave out.
    pub fn trigger_rows(
        &self,
        patient: Option<&PatientId>,
        open_only: bool,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let patient = patient.map(PatientId::as_str);
            let table = read.open_table(TASKS)?;
            let mut out = Vec::new();
            let mut push = |patient: &str, month: &str, sealed: &[u8]| {
                out.push(self.open_value(&tasks_place(patient, month), sealed)?);
                Ok::<_, StoreError>(())
            };
            if open_only {
                let open = read.open_table(OPEN_TASKS)?;
                for item in patient_rows(&open, patient)? {
                    let (k, _) = item?;
                    let (patient, month) = k.value();
                    if let Some(v) = table.get((patient, month))? {
                        push(patient, month, v.value())?;
                    }
                }
            } else {
                for item in patient_rows(&table, patient)? {
                    let (k, v) = item?;
                    let (patient, month) = k.value();
                    push(patient, month, v.value())?;
                }
            }
            Ok(out)
        })
    }
}

/// The `META` key of the node's escalation policy (JSON; absent: the defaults).
const POLICY_KEY: &str = "escalation_policy";

impl Store {
    /// This node's escalation policy as stored (JSON), if one was set.
    pub fn escalation_policy_json(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let meta = read.open_table(META)?;
            Ok(meta.get(POLICY_KEY)?.map(|v| v.value().to_vec()))
        })
    }

    /// Replaces this node's escalation policy (JSON), durably.
    pub fn set_escalation_policy_json(&self, json: &[u8]) -> Result<(), StoreError> {
        self.contain(|| {
            let tx = self.db.begin_write()?;
            tx.open_table(META)?.insert(POLICY_KEY, json)?;
            tx.commit()?;
            Ok(())
        })
    }
}
