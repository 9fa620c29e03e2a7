//! `omsyn show --patient P`: a patient's record and all this node holds about her — a read
//! through the need gate, logged.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use omsyn_core::docs::plan::PlanStatus;
use omsyn_core::docs::record::{PatientField, PatientRecord};
use omsyn_core::ids::StaffId;
use omsyn_core::repo::PatientView;

use super::{Ctx, Flagged};
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, patient: &str) -> Result<()> {
    let view = cx.svc.record(patient, "patient view").flagged()?.view;
    let names = cx.svc.repo().staff_names()?;
    let text = Text {
        ids: cx.ids,
        names: &names,
    };
    emit(cx.json, &view_json(&view), || {
        let mut s = String::new();
        text.record(&mut s, &view);
        text.plan(&mut s, &view.record);
        text.visits(&mut s, &view);
        text.journal(&mut s, &view);
        s
    });
    Ok(())
}

/// How the view reads as text: names first, ids only with `--ids` (people read names, commands
/// take ids).
struct Text<'a> {
    ids: bool,
    names: &'a BTreeMap<String, String>,
}

impl Text<'_> {
    fn id(&self, id: &dyn std::fmt::Display) -> String {
        if self.ids {
            format!(" [{id}]")
        } else {
            String::new()
        }
    }

    /// A staff member by name, with the id beside it only when asked for.
    fn staff(&self, staff: &StaffId) -> String {
        match self.names.get(staff.as_str()) {
            Some(name) if self.ids => format!("{name} ({staff})"),
            Some(name) => name.clone(),
            None => staff.to_string(),
        }
    }

    /// The record's fields, contacts, flags, care team and blocks.
    fn record(&self, s: &mut String, view: &PatientView) {
        let r = &view.record;
        let _ = writeln!(s, "{}{}", r.name(), self.id(&r.id));
        for (field, value) in r.fields.iter().filter(|(f, _)| *f != PatientField::Name) {
            let _ = writeln!(s, "  {:<12} {value}", field.as_str());
        }
        for c in &r.contacts {
            let phone = c.phone.as_deref().unwrap_or("");
            let _ = writeln!(s, "  contact      {} ({}) {phone}", c.name, c.relation);
        }
        for f in r.flags.iter().filter(|f| f.deactivated.is_none()) {
            let note = f.note.as_deref().unwrap_or("");
            let _ = writeln!(s, "  FLAG         {} {note}{}", f.kind, self.id(&f.id));
        }
        let team: Vec<String> = (view.access.team.iter())
            .filter(|m| m.active)
            .map(|m| self.staff(&m.staff))
            .collect();
        if !team.is_empty() {
            let _ = writeln!(s, "  care team    {}", team.join(", "));
        }
        for b in view.access.blocks.iter().filter(|b| b.lifted.is_none()) {
            let who = self.staff(&b.staff);
            let _ = writeln!(s, "  BLOCKED      {who} (sperring){}", self.id(&b.id));
        }
    }

    /// The care plan's tiltak and the medication list with its dose slots.
    fn plan(&self, s: &mut String, r: &PatientRecord) {
        if !r.tiltak.is_empty() {
            s.push_str("care plan:\n");
        }
        for t in &r.tiltak {
            let practical = if t.health_care {
                ""
            } else {
                " (practical help)"
            };
            let nurse = if t.requires_authorised_nurse {
                " (authorised nurse)"
            } else {
                ""
            };
            let code = t.code.as_deref().unwrap_or("-");
            let times = t.times.join(", ");
            let id = self.id(&t.id);
            let _ = writeln!(
                s,
                "  {code} {} at {times}{practical}{nurse}{id}",
                t.description
            );
        }
        if !r.medications.is_empty() {
            s.push_str("medications (dose slots for `omsyn med give --slot`):\n");
        }
        for m in &r.medications {
            let slots: Vec<String> = m.slots.iter().map(|t| format!("{}@{t}", m.id)).collect();
            let _ = writeln!(s, "  {} {}: {}", m.name, m.dose, slots.join("  "));
        }
    }

    fn visits(&self, s: &mut String, view: &PatientView) {
        if !view.visits.is_empty() {
            s.push_str("visits:\n");
        }
        for v in &view.visits {
            let status = match &v.status {
                PlanStatus::Planned => String::new(),
                PlanStatus::Cancelled { reason } => format!(" CANCELLED ({reason})"),
            };
            let staff: Vec<String> = v.staff.iter().map(|m| self.staff(m)).collect();
            let staff = if staff.is_empty() {
                "(unassigned)".to_owned()
            } else {
                staff.join(" + ")
            };
            let (day, from, to) = (
                crate::output::local(&v.start).day(),
                crate::output::hhmm(&v.start),
                crate::output::hhmm(&v.end),
            );
            let (kind, id) = (v.kind.as_str(), self.id(&v.id));
            let _ = writeln!(s, "  {day} {from}-{to} {kind:<8} {staff}{status}{id}");
        }
    }

    /// The journal, messages, open conflicts, and keys this build could not read.
    fn journal(&self, s: &mut String, view: &PatientView) {
        if !view.journal.is_empty() {
            s.push_str("journal:\n");
        }
        let marked = view.marked();
        for e in &view.journal {
            let (what, id) = (view.describe(&e.body), self.id(&e.id));
            let (who, role) = (&e.author.name, &e.author.role);
            let at = crate::output::local(&e.event_time);
            // The original stays, marked: a reader sees that a later entry supersedes it.
            let mark = (marked.get(&e.id)).map_or_else(String::new, |m| format!(" [{m}]"));
            let _ = writeln!(s, "  {at} {who} ({role}) {what}{mark}{id}");
        }
        if !view.messages.is_empty() {
            s.push_str("messages:\n");
        }
        for m in &view.messages {
            let at = crate::output::local(&m.sent_at);
            let _ = writeln!(s, "  {at} {}: {}", m.author.name, m.text);
        }
        for c in &view.conflicts {
            let _ = writeln!(s, "CONFLICT {}{}", c.summary, self.id(&c.id));
        }
        for k in &view.unreadable {
            let _ = writeln!(
                s,
                "UNREADABLE (kept, written by a newer version or a faulty peer): {k}"
            );
        }
    }
}

/// The view as JSON prints it: blocks and explicit accesses are stored in older shapes (a lifting
/// as a pair, an end in milliseconds) and shown in the one shape.
fn view_json(view: &PatientView) -> serde_json::Value {
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
