//! The staff a base's work lists name (`staff_name`, `staff_role`), kept beside the store in
//! `DIR/staff.json`: names for staff ids no certificate names yet (staff whose phones are not
//! enrolled). Not patient data, and not synced: each base keeps what its own lists said (a file,
//! because it is no document anybody signs). Certificates win where both name someone.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Repo;

/// The file in the data directory.
pub const STAFF_FILE: &str = "staff.json";

/// A staff member as a work list names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedStaff {
    /// The name.
    pub name: String,
    /// The role the list gives (`sykepleier`, `helsefagarbeider`...), empty if none.
    pub role: String,
    /// The zone of the rows naming them.
    pub zone: Option<String>,
}

/// What `DIR/staff.json` holds (nobody, when it is missing or unreadable).
pub(super) fn load(dir: &Path) -> BTreeMap<String, ListedStaff> {
    super::side_files::load(dir, STAFF_FILE)
}

impl Repo {
    /// The staff this base's work lists named, by staff id.
    pub fn listed_staff(&self) -> BTreeMap<String, ListedStaff> {
        self.listed_staff
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Adds (or renames) work-list staff, and writes the file. What is held here changes only
    /// once the file is written: a write that failed (a full disk) leaves both as they were,
    /// so asking again writes again instead of finding nothing to do.
    pub(crate) fn remember_listed_staff(
        &self,
        staff: BTreeMap<String, ListedStaff>,
    ) -> std::io::Result<()> {
        let mut held = self
            .listed_staff
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut after = held.clone();
        after.extend(staff);
        if after == *held {
            return Ok(());
        }
        super::side_files::write(&self.dir, STAFF_FILE, &after)?;
        *held = after;
        Ok(())
    }
}

/// Staff as people read them, by the names `names` knows (ids for the rest): `Kari Nordmann +
/// S2`, or `(unassigned)`.
pub fn staff_list(staff: &[crate::ids::StaffId], names: &BTreeMap<String, String>) -> String {
    if staff.is_empty() {
        "(unassigned)".into()
    } else {
        (staff.iter())
            .map(|s| names.get(s.as_str()).map_or(s.as_str(), String::as_str))
            .collect::<Vec<_>>()
            .join(" + ")
    }
}
