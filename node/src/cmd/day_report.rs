//! `omsyn day-report [--date D] [--zone Z] [--csv]`: the team's day, read from the day index
//! through the need gate.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use omsyn_core::report::{self, VisitOutcome};

use super::{Ctx, Flagged};
use crate::output::{emit, moment};

pub(crate) fn run(cx: Ctx<'_>, date: Option<&str>, zone: Option<&str>, csv: bool) -> Result<()> {
    if cx.json && csv {
        bail!("give either --json or --csv");
    }
    let day = cx.svc.day("date", date).flagged()?;
    let r = cx.svc.day_report(day, zone).flagged()?;
    if csv {
        outln!("{}", report::visits_csv(&r).trim_end());
        return Ok(());
    }
    emit(cx.json, &report_json(&r), || day_report_text(&r));
    Ok(())
}

/// The report as JSON prints it: each device by its own `id`, its times in RFC 3339 (the report
/// keeps milliseconds, which the dashboard counts "minutes ago" from).
fn report_json(r: &report::DayReport) -> serde_json::Value {
    let mut value = serde_json::to_value(r).unwrap_or_default();
    value["devices"] = r
        .devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "id": d.node, "name": d.name, "role": d.role,
                "last_synced": d.last_synced_ms.and_then(moment),
                "last_seen": d.last_seen_ms.and_then(moment),
            })
        })
        .collect();
    value
}

fn day_report_text(r: &report::DayReport) -> String {
    let mut s = format!(
        "Day report {}{} (as known by this node)\n",
        r.day,
        r.zone
            .as_deref()
            .map(|z| format!(", {z}"))
            .unwrap_or_default()
    );
    counts_text(&mut s, r);
    people_text(&mut s, r);
    review_text(&mut s, r);
    s
}

fn count_row(name: &str, c: &report::Counts) -> String {
    format!(
        "  {name:<14} planned {:>4}  done {:>4}  missed {:>3}  cancelled {:>3}  open {:>4}\n",
        c.planned, c.done, c.missed, c.cancelled, c.open
    )
}

/// The day's figures: all visits, physical, digital, trips replaced, and per staff member.
fn counts_text(s: &mut String, r: &report::DayReport) {
    s.push_str(&count_row("all visits", &r.totals));
    s.push_str(&count_row("physical", &r.physical));
    s.push_str(&count_row("digital", &r.digital));
    let _ = writeln!(
        s,
        "  physical trips replaced by digital visits: {}",
        r.trips_replaced
    );
    s.push_str("per staff:\n");
    for (staff, c) in &r.per_staff {
        let named = r
            .staff_names
            .get(staff)
            .map_or_else(|| staff.clone(), |name| format!("{name} ({staff})"));
        s.push_str(&count_row(&named, c));
    }
}

/// Per patient, with continuity: how many different staff came this week, by name.
fn people_text(s: &mut String, r: &report::DayReport) {
    s.push_str("per patient (continuity: different staff this week):\n");
    for p in &r.per_patient {
        let c = &p.counts;
        let staff: Vec<&str> = (p.staff_this_week.iter())
            .map(|id| r.staff_names.get(id).unwrap_or(id).as_str())
            .collect();
        let _ = writeln!(
            s,
            "  {:<24} planned {:>2}  done {:>2}  missed {:>2}  staff this week {:>2} ({})",
            p.name,
            c.planned,
            c.done,
            c.missed,
            staff.len(),
            staff.join(", ")
        );
    }
}

/// What needs a look: visits not yet documented, deviations, open conflicts, devices by last sync.
fn review_text(s: &mut String, r: &report::DayReport) {
    let open = (r.visits.iter())
        .filter(|v| v.outcome == VisitOutcome::Open)
        .count();
    if open > 0 {
        let _ = writeln!(s, "not yet documented: {open}");
    }
    let _ = writeln!(s, "deviations: {}", r.deviations.len());
    for d in &r.deviations {
        let _ = writeln!(s, "  {} {}: {}", crate::output::hhmm(&d.at), d.by, d.text);
    }
    let _ = writeln!(s, "open conflicts to review: {}", r.conflicts.len());
    for c in &r.conflicts {
        let _ = writeln!(s, "  {}: {}", c.patient_label(), c.summary);
    }
    let _ = writeln!(s, "devices, least recently synced first:");
    for d in &r.devices {
        let synced =
            (d.last_synced_ms.map(crate::output::fmt_ms)).unwrap_or_else(|| "never".into());
        let role = d.role.to_string();
        let _ = writeln!(s, "  {:<24} {role:<9} last synced {synced}", d.name);
    }
}
