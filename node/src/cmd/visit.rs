//! `omsyn visit plan|list|move|assign|cancel|done|missed`: the visit plan (a base's), and a
//! visit documented as performed or not (a nurse's).

use anyhow::Result;
use omsyn_core::docs::journal::MissedReason;
use omsyn_core::docs::plan::VisitKind;
use omsyn_core::report::VisitOutcome;
use omsyn_core::service::{ChangeVisit, PlanVisit, VisitDone, VisitMissed, When};
use serde_json::json;

use super::{Ctx, Flagged, written};
use crate::cli::{KindArg, MissedArg, VisitCmd};
use crate::output::{emit, emit_written};

pub(crate) fn kind(arg: KindArg) -> VisitKind {
    match arg {
        KindArg::Physical => VisitKind::Physical,
        KindArg::Digital => VisitKind::Digital,
    }
}

pub(crate) fn run(cx: Ctx<'_>, cmd: VisitCmd) -> Result<()> {
    let svc = cx.svc;
    let change = match cmd {
        VisitCmd::Plan {
            patient,
            start,
            end,
            kind: k,
            staff,
            tiltak,
        } => {
            let request = PlanVisit {
                patient,
                start: When::Text(start),
                end: When::Text(end),
                kind: kind(k),
                tiltak,
                staff,
            };
            let id = svc.plan_visit(request).flagged()?;
            emit_written(cx.json, &json!({ "id": id }), id.as_str(), || {
                format!("planned: {}", svc.describe_visit(&id))
            });
            return Ok(());
        }
        VisitCmd::List { date } => return list(cx, date.as_deref()),
        VisitCmd::Done {
            visit,
            arrival,
            departure,
            mode,
        } => {
            let entry = svc
                .visit_done(VisitDone {
                    visit,
                    arrival: When::text(arrival.as_deref()),
                    departure: departure.map(When::Text),
                    mode: mode.map(kind),
                })
                .flagged()?;
            written(cx, None, &entry);
            return Ok(());
        }
        VisitCmd::Missed {
            visit,
            reason,
            note,
            at,
        } => return missed(cx, visit, reason, note, at),
        VisitCmd::Move { visit, start, end } => (
            visit,
            ChangeVisit::Move {
                start: When::Text(start),
                end: When::Text(end),
            },
            "moved",
        ),
        VisitCmd::Assign { visit, staff } => (visit, ChangeVisit::Assign(staff), "assigned"),
        VisitCmd::Cancel { visit, reason } => (visit, ChangeVisit::Cancel(reason), "cancelled"),
    };
    let (visit, change, done) = change;
    let visit = svc.change_visit(&visit, change).flagged()?;
    emit(cx.json, &json!({ "id": visit }), || {
        format!("{done}: {}", svc.describe_visit(&visit))
    });
    Ok(())
}

/// `omsyn visit missed`: a visit documented as not performed, and why.
fn missed(
    cx: Ctx<'_>,
    visit: String,
    reason: MissedArg,
    note: Option<String>,
    at: Option<String>,
) -> Result<()> {
    let reason = match reason {
        MissedArg::NoAnswer => MissedReason::NoAnswer,
        MissedArg::Declined => MissedReason::Declined,
        MissedArg::NotHome => MissedReason::NotHome,
        MissedArg::Other => MissedReason::Other,
    };
    let entry = cx
        .svc
        .visit_missed(VisitMissed {
            visit,
            reason,
            note,
            at: When::text(at.as_deref()),
        })
        .flagged()?;
    written(cx, None, &entry);
    Ok(())
}

/// The day's visits by time: when, how, whom, who goes, and how it stands (planned, done,
/// missed, cancelled) — names first; `--ids` adds the ids commands take.
fn list(cx: Ctx<'_>, date: Option<&str>) -> Result<()> {
    let day = cx.svc.day("date", date).flagged()?;
    if cx.json {
        // The plan's visits as they are stored (ids, window, kind, staff, status).
        let visits = cx.svc.visits_on(day).flagged()?;
        emit(true, &json!({ "date": day, "visits": visits }), String::new);
        return Ok(());
    }
    let report = cx
        .svc
        .report_as(&format!("work list {day}"), day, None)
        .flagged()?;
    let visits = &report.visits;
    emit(false, visits, || {
        if visits.is_empty() {
            return format!("no visits on {day}");
        }
        let staff = |ids: &[String]| {
            if ids.is_empty() {
                return "(unassigned)".to_owned();
            }
            let name = |id: &String| report.staff_names.get(id).unwrap_or(id).clone();
            ids.iter().map(name).collect::<Vec<_>>().join(" + ")
        };
        visits
            .iter()
            .map(|v| {
                let state = match v.outcome {
                    VisitOutcome::Open => String::new(),
                    VisitOutcome::Done if !v.performed_by.is_empty() => {
                        format!("  done by {}", v.performed_by.join(" + "))
                    }
                    VisitOutcome::CancelledButPerformed => "  CANCELLED BUT PERFORMED".to_owned(),
                    other => format!("  {}", other.as_str()),
                };
                let ids = if cx.ids {
                    format!("  [{} {}]", v.visit, v.patient)
                } else {
                    String::new()
                };
                format!(
                    "{}-{} {:<8} {:<24} {}{state}{ids}\n",
                    crate::output::hhmm(&v.start),
                    crate::output::hhmm(&v.end),
                    v.kind.as_str(),
                    v.patient_name,
                    staff(&v.staff),
                )
            })
            .collect()
    });
    Ok(())
}
