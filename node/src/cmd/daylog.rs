//! `omsyn daylog …`: the nurse's own day log (shift, visits started and ended, travel,
//! deviations). It holds no patient data; a visit it names must be one this node holds.

use anyhow::Result;
use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::service::When;

use super::{Ctx, Flagged};
use crate::cli::DaylogCmd;
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: DaylogCmd) -> Result<()> {
    let svc = cx.svc;
    let (at, body) = match cmd {
        DaylogCmd::ShiftStart(at) => (at, DayLogBody::ShiftStart),
        DaylogCmd::ShiftEnd(at) => (at, DayLogBody::ShiftEnd),
        DaylogCmd::VisitStart { visit, at } => (
            at,
            DayLogBody::VisitStart {
                visit: svc.visit(&visit).flagged()?,
            },
        ),
        DaylogCmd::VisitEnd { visit, at } => (
            at,
            DayLogBody::VisitEnd {
                visit: svc.visit(&visit).flagged()?,
            },
        ),
        DaylogCmd::Travel { minutes, km, at } => (at, DayLogBody::Travel { minutes, km }),
        DaylogCmd::Deviation { text, at } => (at, DayLogBody::Deviation { text }),
    };
    let entry = svc.day_log(&When::text(at.at.as_deref()), body).flagged()?;
    emit(cx.json, &entry, || entry.id.to_string());
    Ok(())
}
