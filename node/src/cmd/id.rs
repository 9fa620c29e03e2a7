//! `omsyn id`: this node's id, role and store statistics.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::json;

use super::Ctx;
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>) -> Result<()> {
    let (repo, json) = (cx.svc.repo(), cx.json);
    let profile = repo.profile();
    let stats = repo.stats()?;
    emit(
        json,
        &crate::output::node_json(&repo.id(), profile, json!({ "store": stats })),
        || {
            let mut s = format!(
                "id:        {}\nrole:      {}\nname:      {}\n",
                repo.id(),
                profile.role,
                profile.name
            );
            if let Some(staff) = &profile.staff_id {
                let _ = writeln!(s, "staff id:  {staff}");
            }
            if let Some(p) = &profile.patient {
                let _ = writeln!(s, "serves:    {p}");
            }
            let _ = write!(
                s,
                "store:     {} documents, {} patients",
                stats.documents, stats.patients
            );
            s
        },
    );
    Ok(())
}
