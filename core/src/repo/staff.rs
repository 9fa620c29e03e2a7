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

/// What `DIR/staff.json` holds. A missing or unreadable file holds nobody: names are a
/// convenience, and the next import writes the file anew.
#[allow(
    clippy::disallowed_methods,
    reason = "the base's staff file lives beside its profile in the data directory"
)]
pub(super) fn load(dir: &Path) -> BTreeMap<String, ListedStaff> {
    if dir.as_os_str().is_empty() {
        return BTreeMap::new();
    }
    std::fs::read(dir.join(STAFF_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl Repo {
    /// The staff this base's work lists named, by staff id.
    pub fn listed_staff(&self) -> BTreeMap<String, ListedStaff> {
        self.listed_staff
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Adds (or renames) work-list staff, and writes the file (whole, then renamed into place,
    /// so a crash leaves the old file or the new one).
    #[allow(
        clippy::disallowed_methods,
        reason = "the base's staff file lives beside its profile in the data directory"
    )]
    pub(crate) fn remember_listed_staff(
        &self,
        staff: BTreeMap<String, ListedStaff>,
    ) -> std::io::Result<()> {
        let mut held = self
            .listed_staff
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = held.clone();
        held.extend(staff);
        if *held == before || self.dir.as_os_str().is_empty() {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&*held).map_err(std::io::Error::other)?;
        let path = self.dir.join(STAFF_FILE);
        let partial = self.dir.join(format!("{STAFF_FILE}.partial"));
        // Owner-only, like everything else in the directory; a partial file a crash left is
        // written anew.
        let _ = std::fs::remove_file(&partial);
        crate::identity::write_new_file(&partial, &json, 0o600)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::rename(&partial, &path)
    }
}
