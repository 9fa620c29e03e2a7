//! `omsyn staff add|list`: the staff a base plans visits for — enrolled devices, imported work
//! lists, and staff registered here before their phones are enrolled.

use anyhow::Result;
use serde_json::json;

use super::{Ctx, Flagged};
use crate::cli::StaffCmd;
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: StaffCmd) -> Result<()> {
    match cmd {
        StaffCmd::Add {
            id,
            name,
            role,
            zone,
        } => {
            let member = cx
                .svc
                .add_staff(&id, &name, role.as_deref(), zone.as_deref())
                .flagged()?;
            emit(cx.json, &member, || {
                format!(
                    "{} ({}) added: visits may be planned for them",
                    member.name, member.id
                )
            });
        }
        StaffCmd::List { zone } => {
            let staff = cx.svc.staff_directory(zone.as_deref()).flagged()?;
            emit(cx.json, &json!({ "staff": staff }), || {
                if staff.is_empty() {
                    return "no staff known: enrol their devices, import a work list, or `omsyn staff add`".into();
                }
                staff
                    .iter()
                    .map(|m| {
                        let what = m.competence.as_deref().unwrap_or(m.role.as_str());
                        let zone = m.zone.as_deref().unwrap_or("");
                        format!("{:<24} {:<8} {what:<18} {zone}\n", m.name, m.id)
                    })
                    .collect()
            });
        }
    }
    Ok(())
}
