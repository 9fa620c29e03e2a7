//! `omsyn staff add|list`: the staff a base plans visits for — enrolled devices, imported work
//! lists, and staff registered here before their phones are enrolled.

use anyhow::Result;
use omsyn_core::planning::PlanStaff;
use omsyn_core::service::{Registered, StaffMember};
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
            let (member, registered) = cx
                .svc
                .add_staff(&id, &name, role.as_deref(), zone.as_deref())
                .flagged()?;
            emit(cx.json, &member, || added_text(&member, &registered));
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

/// What `staff add` did, for people: added, already so, or what changed; and whether the
/// planner counts her as an authorised nurse.
fn added_text(member: &StaffMember, registered: &Registered) -> String {
    let who = format!("{} ({})", member.name, member.id);
    let done = match registered {
        Registered::New => format!("{who} added: visits may be planned for them"),
        Registered::Unchanged => format!("{who} is in the staff directory already, as given"),
        Registered::Changed(before) => {
            let what = |m: &StaffMember| {
                let competence = m.competence.as_deref().unwrap_or("no competence");
                let zone = m.zone.as_deref().unwrap_or("no zone");
                format!("{} ({competence}, {zone})", m.name)
            };
            format!("{who} updated: {} → {}", what(before), what(member))
        }
    };
    let planner = match &member.competence {
        Some(c) if PlanStaff::is_authorised(c) => format!("{c}: an authorised nurse"),
        Some(c) => format!("{c}: not an authorised nurse"),
        None => "no competence given: not an authorised nurse".to_owned(),
    };
    format!("{done}\nthe planner reads {planner}")
}
