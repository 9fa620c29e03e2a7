//! `omsyn show --patient P`: a patient's record and all this node holds about her — a read
//! through the need gate, logged.

use std::fmt::Write as _;

use anyhow::Result;
use omsyn_core::docs::journal::EntryBody;
use omsyn_core::docs::plan::PlanStatus;
use omsyn_core::docs::record::PatientField;

use super::{Ctx, Flagged};
use crate::output::emit;
use crate::output::staff_list;

pub(crate) fn run(cx: Ctx<'_>, patient: &str) -> Result<()> {
    let view = cx.svc.record(patient, "patient view").flagged()?.view;
    // Ids only with --ids: people read names, commands take ids.
    let id = |id: &dyn std::fmt::Display| {
        if cx.ids {
            format!(" [{id}]")
        } else {
            String::new()
        }
    };
    emit(cx.json, &view_json(&view), || {
        let r = &view.record;
        let mut s = format!("{}{}\n", r.name(), id(&r.id));
        for (field, value) in &r.fields {
            if *field != PatientField::Name {
                let _ = writeln!(s, "  {:<12} {value}", field.as_str());
            }
        }
        for c in &r.contacts {
            let _ = writeln!(
                s,
                "  contact      {} ({}) {}",
                c.name,
                c.relation,
                c.phone.as_deref().unwrap_or("")
            );
        }
        for f in r.flags.iter().filter(|f| f.deactivated.is_none()) {
            let _ = writeln!(
                s,
                "  FLAG         {} {}{}",
                f.kind,
                f.note.as_deref().unwrap_or(""),
                id(&f.id)
            );
        }
        let team: Vec<&str> = view
            .access
            .team
            .iter()
            .filter(|m| m.active)
            .map(|m| m.staff.as_str())
            .collect();
        if !team.is_empty() {
            let _ = writeln!(s, "  care team    {}", team.join(", "));
        }
        for b in view.access.blocks.iter().filter(|b| b.lifted.is_none()) {
            let _ = writeln!(s, "  BLOCKED      {} (sperring){}", b.staff, id(&b.id));
        }
        if !r.tiltak.is_empty() {
            s.push_str("care plan:\n");
        }
        for t in &r.tiltak {
            let _ = writeln!(
                s,
                "  {} {} at {}{}{}{}",
                t.code.as_deref().unwrap_or("-"),
                t.description,
                t.times.join(", "),
                if t.health_care {
                    ""
                } else {
                    " (practical help)"
                },
                if t.requires_authorised_nurse {
                    " (authorised nurse)"
                } else {
                    ""
                },
                id(&t.id)
            );
        }
        if !r.medications.is_empty() {
            s.push_str("medications (dose slots for `omsyn med give --slot`):\n");
        }
        for m in &r.medications {
            let slots: Vec<String> = m.slots.iter().map(|t| format!("{}@{t}", m.id)).collect();
            let _ = writeln!(s, "  {} {}: {}", m.name, m.dose, slots.join("  "));
        }
        if !view.visits.is_empty() {
            s.push_str("visits:\n");
        }
        for v in &view.visits {
            let status = match &v.status {
                PlanStatus::Planned => String::new(),
                PlanStatus::Cancelled { reason } => format!(" CANCELLED ({reason})"),
            };
            let _ = writeln!(
                s,
                "  {} {}-{} {:<8} {}{}{}",
                v.start.day(),
                v.start.hhmm(),
                v.end.hhmm(),
                v.kind.as_str(),
                staff_list(&v.staff),
                status,
                id(&v.id)
            );
        }
        if !view.journal.is_empty() {
            s.push_str("journal:\n");
        }
        for e in &view.journal {
            let _ = writeln!(
                s,
                "  {} {} ({}) {}{}",
                e.event_time,
                e.author.name,
                e.author.role,
                EntryBody::describe(&e.body),
                id(&e.id)
            );
        }
        if !view.messages.is_empty() {
            s.push_str("messages:\n");
        }
        for m in &view.messages {
            let _ = writeln!(s, "  {} {}: {}", m.sent_at, m.author.name, m.text);
        }
        for c in &view.conflicts {
            let _ = writeln!(s, "CONFLICT {}{}", c.summary, id(&c.id));
        }
        for k in &view.unreadable {
            let _ = writeln!(
                s,
                "UNREADABLE (kept, written by a newer version or a faulty peer): {k}"
            );
        }
        s
    });
    Ok(())
}

/// The view as JSON prints it: blocks and explicit accesses are stored in older shapes (a lifting
/// as a pair, an end in milliseconds) and shown in the one shape.
fn view_json(view: &omsyn_core::repo::PatientView) -> serde_json::Value {
    let mut value = serde_json::to_value(view).unwrap_or_default();
    let patient = &view.record.id;
    let access = &view.access;
    value["access"]["blocks"] = access
        .blocks
        .iter()
        .map(|b| crate::output::block_json(patient, b))
        .collect();
    value["access"]["explicit"] = access
        .explicit
        .iter()
        .map(|a| crate::output::access_json(patient, a))
        .collect();
    value
}
