//! `omsyn visit plan|list|move|assign|cancel|done|missed`: the visit plan (a base's), and a
//! visit documented as performed or not (a nurse's).

use anyhow::Result;
use omsyn_core::docs::journal::MissedReason;
use omsyn_core::docs::plan::VisitKind;
use omsyn_core::service::{ChangeVisit, PlanVisit, VisitDone, VisitMissed, When};
use serde_json::json;

use super::{Ctx, Flagged, staff_list};
use crate::cli::{KindArg, MissedArg, VisitCmd};
use crate::output::emit;

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
            let id = svc
                .plan_visit(PlanVisit {
                    patient,
                    start: When::Text(start),
                    end: When::Text(end),
                    kind: kind(k),
                    tiltak,
                    staff,
                })
                .flagged()?;
            emit(cx.json, &json!({ "visit": id }), || id.to_string());
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
            emit(cx.json, &entry, || entry.id.to_string());
            return Ok(());
        }
        VisitCmd::Missed {
            visit,
            reason,
            note,
            at,
        } => {
            let reason = match reason {
                MissedArg::NoAnswer => MissedReason::NoAnswer,
                MissedArg::Declined => MissedReason::Declined,
                MissedArg::NotHome => MissedReason::NotHome,
                MissedArg::Other => MissedReason::Other,
            };
            let entry = svc
                .visit_missed(VisitMissed {
                    visit,
                    reason,
                    note,
                    at: When::text(at.as_deref()),
                })
                .flagged()?;
            emit(cx.json, &entry, || entry.id.to_string());
            return Ok(());
        }
        VisitCmd::Move { visit, start, end } => (
            visit,
            ChangeVisit::Move {
                start: When::Text(start),
                end: When::Text(end),
            },
        ),
        VisitCmd::Assign { visit, staff } => (visit, ChangeVisit::Assign(staff)),
        VisitCmd::Cancel { visit, reason } => (visit, ChangeVisit::Cancel(reason)),
    };
    svc.change_visit(&change.0, change.1).flagged()?;
    emit(cx.json, &json!({ "ok": true }), String::new);
    Ok(())
}

fn list(cx: Ctx<'_>, date: Option<&str>) -> Result<()> {
    let day = cx.svc.day("date", date).flagged()?;
    let visits = cx.svc.visits_on(day).flagged()?;
    emit(cx.json, &visits, || {
        visits
            .iter()
            .map(|v| {
                format!(
                    "{}-{} {:<8} {} {} [{}]\n",
                    v.start.hhmm(),
                    v.end.hhmm(),
                    v.kind.as_str(),
                    v.patient,
                    staff_list(&v.staff),
                    v.id
                )
            })
            .collect()
    });
    Ok(())
}
