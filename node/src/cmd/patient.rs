//! `omsyn patient add|list|set|flag|unflag|contact`: registering patients and editing their
//! record.

use anyhow::Result;
use omsyn_core::docs::record::PatientField;
use serde_json::json;

use super::{Ctx, Flagged};
use crate::cli::{PatientCmd, PatientFields};
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, cmd: PatientCmd) -> Result<()> {
    let (svc, json) = (cx.svc, cx.json);
    match cmd {
        PatientCmd::Add(f) => add(cx, f),
        PatientCmd::List => list(cx),
        PatientCmd::Set {
            patient,
            field,
            value,
        } => set(cx, &patient, &field, value),
        PatientCmd::Flag {
            patient,
            kind,
            note,
        } => {
            let id = svc.add_flag(&patient, &kind, note.as_deref()).flagged()?;
            emit(json, &json!({ "id": id }), || id.to_string());
            Ok(())
        }
        PatientCmd::Unflag {
            patient,
            flag,
            reason,
        } => {
            let (patient, flag) = svc.lift_flag(&patient, &flag, &reason).flagged()?;
            emit(json, &json!({ "id": flag, "patient": patient }), || {
                format!("flag {flag} lifted")
            });
            Ok(())
        }
        PatientCmd::Contact {
            patient,
            name,
            relation,
            phone,
        } => {
            let id = (svc.add_contact(&patient, &name, &relation, phone.as_deref())).flagged()?;
            emit(json, &json!({ "id": id }), || id.to_string());
            Ok(())
        }
    }
}

/// `omsyn patient add`: a new record with the fields given.
fn add(cx: Ctx<'_>, f: PatientFields) -> Result<()> {
    let mut fields = vec![(PatientField::Name, f.name)];
    for (field, value) in [
        (PatientField::NationalId, f.national_id),
        (PatientField::Address, f.address),
        (PatientField::AccessNote, f.access_note),
        (PatientField::Phone, f.phone),
        (PatientField::Zone, f.zone),
        (PatientField::GeneralPractitioner, f.gp),
    ] {
        if let Some(v) = value {
            fields.push((field, v));
        }
    }
    let id = cx.svc.add_patient(&fields).flagged()?;
    emit(cx.json, &json!({ "id": id }), || id.to_string());
    Ok(())
}

/// `omsyn patient list`: the patients this user may see, by name (ids with `--ids`), logged.
fn list(cx: Ctx<'_>) -> Result<()> {
    let svc = cx.svc;
    // Named for people (two of one name told apart); the JSON keeps the name as the record
    // has it, beside the id.
    let list = svc.shown_patients("patient list").flagged()?;
    let rows: Vec<_> = (list.iter())
        .map(|p| json!({ "id": p.id, "name": p.name }))
        .collect();
    emit(cx.json, &json!({ "patients": rows }), || {
        if list.is_empty() {
            return "no patients held on this node".into();
        }
        (list.iter())
            .map(|p| match cx.ids {
                true => format!("{}  [{}]\n", p.label, p.id),
                false => format!("{}\n", p.label),
            })
            .collect()
    });
    Ok(())
}

/// `omsyn patient set`: one field of the record.
fn set(cx: Ctx<'_>, patient: &str, field: &str, value: String) -> Result<()> {
    let svc = cx.svc;
    let field = svc.patient_field(field).flagged()?;
    let patient = svc.patient(patient).flagged()?;
    svc.act(|repo, now, _| repo.set_patient_field(now, &patient, field, &value))?;
    let changed = json!({ "id": patient, "field": field.as_str(), "value": value });
    emit(cx.json, &changed, || {
        format!("{} set to {value}", field.as_str())
    });
    Ok(())
}
