//! Small files a base keeps beside its store in the data directory: not patient data, not
//! synced, no document anybody signs — what its own work lists said (`staff.json`,
//! `worklist-rows.json`). Read whole; written whole, then renamed into place, so a crash leaves
//! the old file or the new one, never half of one.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What `dir/name` holds; a missing or unreadable file holds nothing (these files are a
/// convenience, and the next import writes them anew).
#[allow(
    clippy::disallowed_methods,
    reason = "a base's side files live beside its profile in the data directory"
)]
pub(super) fn load<T: DeserializeOwned + Default>(dir: &Path, name: &str) -> T {
    if dir.as_os_str().is_empty() {
        return T::default();
    }
    std::fs::read(dir.join(name))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes `value` to `dir/name`, owner-only, atomically. A directory-less repo (in memory, in
/// tests) keeps nothing.
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a base's side files live beside its profile in the data directory"
)]
pub(super) fn write(dir: &Path, name: &str, value: &impl Serialize) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let path = dir.join(name);
    let partial = dir.join(format!("{name}.partial"));
    // A partial file a crash left is written anew.
    let _ = std::fs::remove_file(&partial);
    crate::identity::write_new_file(&partial, &json, 0o600)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::rename(&partial, &path)?;
    // The rename is durable only once the directory is: what was acknowledged survives a crash.
    std::fs::File::open(dir)?.sync_all()
}
