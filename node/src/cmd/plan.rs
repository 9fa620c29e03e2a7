//! `omsyn plan add` (a tiltak in the care plan) and `omsyn plan suggest` (the planning
//! assistant, in `plan_suggest`).

use anyhow::Result;
use omsyn_core::repo::NewTiltak;
use serde_json::json;

use super::{Ctx, Flagged};
use crate::cli::PlanCmd;
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: PlanCmd) -> Result<()> {
    let PlanCmd::Add {
        patient,
        description,
        code,
        times,
        weekdays,
        vedtak,
        practical_help,
        requires_nurse,
        double_staffed,
    } = cmd
    else {
        let PlanCmd::Suggest(args) = cmd else {
            unreachable!("PlanCmd has two commands")
        };
        return crate::plan_suggest::run(cx.svc, cx.json, &args);
    };
    let spec = NewTiltak {
        vedtak_title: vedtak,
        code,
        description,
        times,
        weekdays,
        health_care: !practical_help,
        requires_authorised_nurse: requires_nurse,
        double_staffed,
    };
    let patient = cx.svc.patient(&patient).flagged()?;
    let id = cx
        .svc
        .act(|repo, now, rng| repo.add_tiltak(now, rng, &patient, &spec))?;
    emit(cx.json, &json!({ "id": id, "patient": patient }), || {
        id.to_string()
    });
    Ok(())
}
