//! What each visit's row said when a work list last planned or changed it, kept beside the store
//! in `DIR/worklist-rows.json` (a side file: see `side_files`). A list imported again is compared
//! with this, not with the plan as it stands: what the list changed since is applied, and a
//! coordinator's own move of a visit whose row did not change stays.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Repo;
use crate::Timestamp;
use crate::docs::plan::VisitKind;
use crate::ids::{StaffId, VisitId};

/// The file in the data directory.
pub const WORKLIST_ROWS_FILE: &str = "worklist-rows.json";

/// How long after a visit's end its row is kept.
pub(super) const KEPT_DAYS: i64 = 62;

/// A visit's row as the work list last gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedRow {
    /// Its start.
    pub start: Timestamp,
    /// Its end.
    pub end: Timestamp,
    /// Physical or digital.
    pub kind: VisitKind,
    /// The staff member it named, if any.
    pub staff: Option<StaffId>,
}

impl Repo {
    /// Each visit's row as the work lists imported here last gave it (none for a visit planned
    /// otherwise, or imported before this was kept).
    pub(crate) fn imported_rows(&self) -> BTreeMap<VisitId, ImportedRow> {
        super::side_files::load(&self.dir, WORKLIST_ROWS_FILE)
    }

    /// Keeps what an import's rows said of their visits, beside what earlier imports said (the
    /// import calls it under the lock it holds from reading the rows to writing them) —
    /// except of visits that ended more than [`KEPT_DAYS`] before `now` (a list gives today and
    /// the days ahead: the file stays the size of a few months of visits).
    pub(crate) fn remember_imported_rows(
        &self,
        rows: BTreeMap<VisitId, ImportedRow>,
        now: Timestamp,
    ) -> std::io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut held = self.imported_rows();
        held.extend(rows);
        let oldest = now.unix_millis() - KEPT_DAYS * 24 * 3600 * 1000;
        held.retain(|_, row| row.end.unix_millis() >= oldest);
        super::side_files::write(&self.dir, WORKLIST_ROWS_FILE, &held)
    }
}
