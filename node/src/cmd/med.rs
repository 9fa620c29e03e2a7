//! `omsyn med add|give|not-given`: the medication list, and doses given or not.

use anyhow::{Result, anyhow};
use omsyn_core::service::{Dose, When};
use serde_json::json;

use super::{Ctx, Flagged, written};
use crate::cli::{DoseArgs, MedCmd};
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: MedCmd) -> Result<()> {
    let (args, reason) = match cmd {
        MedCmd::Add {
            patient,
            name,
            dose,
            slots,
        } => return add(cx, &patient, &name, &dose, &slots),
        MedCmd::Give(args) => (args, None),
        MedCmd::NotGiven { dose, reason } => (dose, Some(reason)),
    };
    give(cx, args, reason)
}

fn add(cx: Ctx<'_>, patient: &str, name: &str, dose: &str, slots: &[String]) -> Result<()> {
    let (patient, id) = cx
        .svc
        .add_medication(patient, name, dose, slots)
        .flagged()?;
    emit(
        cx.json,
        &json!({ "id": id, "patient": patient, "slots": slots }),
        || slots.iter().map(|s| format!("{id}@{s}\n")).collect(),
    );
    Ok(())
}

fn give(cx: Ctx<'_>, args: DoseArgs, not_given: Option<String>) -> Result<()> {
    let patient = args.patient.clone();
    let (medication, slot) = args.slot.rsplit_once('@').ok_or_else(|| {
        anyhow!(
            "--slot: expected MEDICATION@HH:MM (the medication's name or id), got {:?}",
            args.slot
        )
    })?;
    let entry = cx
        .svc
        .record_dose(Dose {
            patient: args.patient,
            medication: medication.to_owned(),
            slot: slot.to_owned(),
            visit: args.visit,
            at: When::text(args.at.as_deref()),
            not_given,
        })
        .flagged()?;
    written(cx, Some(&patient), &entry);
    Ok(())
}
