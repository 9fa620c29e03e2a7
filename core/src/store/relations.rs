//! The relations index that need-based sharing reads: a patient's zone, care team, blocks,
//! explicit accesses and visit assignments, derived by the change pipeline from records and
//! plans; and a base's withdrawal of a patient from this device.

use redb::{ReadOnlyTable, ReadableTable};

use super::batch::WriteBatch;
use super::error::StoreError;
use super::handle::Store;
use super::schema::RELATIONS;
use crate::ids::PatientId;

/// One relation of a patient to a staff member or zone (see the `RELATIONS` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// `zone:…`, `team:…`, `block:…`, `explicit:…` or `visit:<staff>:<day>`.
    pub name: String,
    /// For explicit accesses: until when (ms); 0 otherwise.
    pub value: i64,
}

/// The relation marking a patient a base withdrew from this device (value: when, ms).
pub const WITHDRAWN: &str = "withdrawn";

/// Like [`WITHDRAWN`], because the patient blocks this device's user (sperring).
pub const WITHDRAWN_BLOCKED: &str = "withdrawn:blocked";

impl Store {
    /// The patient's relations whose names start with `prefix` (see [`Relation`]).
    pub fn relations(
        &self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        self.relations_view()?.relations(patient, prefix)
    }

    /// Whether the patient has relation `name`; its value if so.
    pub fn relation(&self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        self.relations_view()?.relation(patient, name)
    }

    /// The relations index as one read transaction sees it. A question about one document
    /// looks up as many as six relations, and a device's purge asks it of every patient held:
    /// one snapshot for all of them instead of a read transaction per lookup.
    pub fn relations_view(&self) -> Result<RelationsView<'_>, StoreError> {
        let table = self.contain(|| Ok(self.db.begin_read()?.open_table(RELATIONS)?))?;
        Ok(RelationsView { store: self, table })
    }
}

/// The relations index at one point in time (see [`Store::relations_view`]): later commits
/// are not seen through it.
pub struct RelationsView<'s> {
    store: &'s Store,
    table: ReadOnlyTable<(&'static str, &'static str), i64>,
}

impl std::fmt::Debug for RelationsView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationsView").finish_non_exhaustive()
    }
}

impl RelationsView<'_> {
    /// The patient's relations whose names start with `prefix` (see [`Relation`]).
    pub fn relations(
        &self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        self.store
            .contain(|| relations_in(&self.table, patient, prefix))
    }

    /// Whether the patient has relation `name`; its value if so.
    pub fn relation(&self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        self.store
            .contain(|| relation_in(&self.table, patient, name))
    }

    /// Whether a base withdrew the patient from this device: `Some(true)` because the patient
    /// blocks its user, `Some(false)` for another reason.
    pub fn withdrawal(&self, patient: &PatientId) -> Result<Option<bool>, StoreError> {
        self.store.contain(|| withdrawal_in(&self.table, patient))
    }
}

impl WriteBatch<'_> {
    /// A patient's relations whose names start with `prefix`, as of this write.
    pub fn relations(
        &mut self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        let store = self.store;
        store.contain(|| relations_in(&self.tx.open_table(RELATIONS)?, patient, prefix))
    }

    /// The value of a patient's relation `name` as of this write.
    pub fn relation(&mut self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        let store = self.store;
        store.contain(|| relation_in(&self.tx.open_table(RELATIONS)?, patient, name))
    }

    /// [`RelationsView::withdrawal`], as of this write.
    pub fn withdrawal(&mut self, patient: &PatientId) -> Result<Option<bool>, StoreError> {
        let store = self.store;
        store.contain(|| withdrawal_in(&self.tx.open_table(RELATIONS)?, patient))
    }

    /// Marks `patient` as withdrawn from this device by a base (`Some((when, blocked))`), or as
    /// needed again (`None`).
    pub fn set_withdrawn(
        &mut self,
        patient: &PatientId,
        withdrawn: Option<(i64, bool)>,
    ) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let mut table = self.tx.open_table(RELATIONS)?;
            let p = patient.as_str();
            table.remove((p, WITHDRAWN))?;
            table.remove((p, WITHDRAWN_BLOCKED))?;
            if let Some((at, blocked)) = withdrawn {
                let name = if blocked {
                    WITHDRAWN_BLOCKED
                } else {
                    WITHDRAWN
                };
                table.insert((p, name), at)?;
            }
            // Listeners act on it: a durable commit that tells them (see `CommitHook`).
            self.durable = true;
            self.notify = true;
            Ok(())
        })
    }
}

/// The value of the patient's relation `name`, from `table` as a read or a write transaction
/// sees it.
fn relation_in(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    patient: &PatientId,
    name: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(table.get((patient.as_str(), name))?.map(|v| v.value()))
}

/// Whether a base withdrew the patient (see [`RelationsView::withdrawal`]), from `table`.
fn withdrawal_in(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    patient: &PatientId,
) -> Result<Option<bool>, StoreError> {
    if relation_in(table, patient, WITHDRAWN_BLOCKED)?.is_some() {
        return Ok(Some(true));
    }
    Ok(relation_in(table, patient, WITHDRAWN)?.map(|_| false))
}

/// The patient's relations whose names start with `prefix`, from `table` as a read or a write
/// transaction sees it.
pub(super) fn relations_in(
    table: &impl ReadableTable<(&'static str, &'static str), i64>,
    patient: &PatientId,
    prefix: &str,
) -> Result<Vec<Relation>, StoreError> {
    let p = patient.as_str();
    let end = format!("{prefix}\u{10FFFF}");
    table
        .range((p, prefix)..(p, end.as_str()))?
        .map(|item| {
            let (k, v) = item?;
            Ok(Relation {
                name: k.value().1.to_owned(),
                value: v.value(),
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::identity::NodeKey;
    use crate::store::{StoreKey, StoreKeys};

    #[test]
    fn a_relations_view_shows_the_index_as_it_was_when_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let keys = StoreKeys {
            signer: NodeKey::generate(&mut rng),
            data: StoreKey::generate(&mut rng),
        };
        let store = Store::open(&dir.path().join("store.redb"), &keys, [7; 16]).unwrap();
        let patient = PatientId::parse("p-0123456789abcdef").unwrap();
        let before = store.relations_view().unwrap();

        let mut batch = store.write().unwrap();
        batch.set_withdrawn(&patient, Some((5, true))).unwrap();
        batch.commit().unwrap();

        assert_eq!(before.withdrawal(&patient).unwrap(), None);
        let after = store.relations_view().unwrap();
        assert_eq!(after.withdrawal(&patient).unwrap(), Some(true));
        assert_eq!(
            after.relation(&patient, WITHDRAWN_BLOCKED).unwrap(),
            Some(5)
        );
        assert_eq!(
            after.relations(&patient, "withdrawn").unwrap(),
            vec![Relation {
                name: WITHDRAWN_BLOCKED.into(),
                value: 5
            }]
        );
    }
}
