//! `omsyn access`, `omsyn team`, `omsyn block`/`unblock`, `omsyn purge`: who may see a patient
//! (explicit access, the care team, blocks) and removing what this device no longer needs.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use omsyn_core::service::Service;
use serde_json::json;

use crate::cli::AccessCmd;
use crate::cmd::Flagged;
use crate::output::emit;
use crate::output::fmt_ms;

/// `omsyn access ask|list`.
pub(crate) fn access(svc: &Service, json: bool, cmd: AccessCmd) -> Result<()> {
    let repo = svc.repo();
    match cmd {
        AccessCmd::Ask { patient, reason } => {
            let patient = svc.patient(&patient).flagged()?;
            let granted = svc.act(|repo, now, rng| {
                repo.transaction(|tx| tx.explicit_access(now, rng, &patient, &reason))
            })?;
            emit(
                json,
                &crate::output::access_json(&patient, &granted),
                || {
                    format!(
                        "explicit access to {patient} until {} (logged and flagged for review at the base); the base shares the patient's documents at the next sync",
                        fmt_ms(granted.until_ms)
                    )
                },
            );
            Ok(())
        }
        AccessCmd::List => {
            let list = repo.explicit_accesses()?;
            let rows: Vec<_> = list
                .iter()
                .map(|(p, a)| crate::output::access_json(p, a))
                .collect();
            // Staff by name (a name is no patient data); the patient by id, as the list is
            // reviewed at the base, which may not hold (or need) her record.
            let names = repo.staff_names()?;
            emit(json, &json!({ "accesses": rows }), || {
                if list.is_empty() {
                    return "no explicit accesses recorded".into();
                }
                list.iter()
                    .map(|(p, a)| {
                        let who = names
                            .get(a.staff.as_str())
                            .unwrap_or(&a.staff.to_string())
                            .clone();
                        let device = a.device.short();
                        format!(
                            "{} {p} by {who} ({}, device {device}): {}\n",
                            crate::output::local(&a.at),
                            a.staff,
                            a.reason
                        )
                    })
                    .collect()
            });
            Ok(())
        }
    }
}

/// `omsyn team --patient P --add S | --remove S`.
pub(crate) fn team(
    svc: &Service,
    json: bool,
    patient: &str,
    add: Option<String>,
    remove: Option<String>,
) -> Result<()> {
    let (staff, join) = match (add, remove) {
        (Some(s), None) => (s, true),
        (None, Some(s)) => (s, false),
        _ => bail!("give --add STAFF or --remove STAFF"),
    };
    let (patient, staff) = svc.set_team_member(patient, &staff, join).flagged()?;
    // The answer names the patient: a read like any other.
    svc.open(&patient, "care team").flagged()?;
    let name = svc.repo().record(&patient)?.name().to_owned();
    let who = staff_label(svc, &staff)?;
    emit(
        json,
        &json!({ "patient": patient, "staff": staff, "member": join }),
        || {
            let change = if join { "joined" } else { "left" };
            format!("{who} {change} the care team of {name}")
        },
    );
    Ok(())
}

/// `omsyn block`.
pub(crate) fn block(svc: &Service, json: bool, patient: &str, staff: &str) -> Result<()> {
    let patient = &svc.patient(patient).flagged()?;
    let staff = svc.staff_member("staff", staff).flagged()?;
    let block =
        svc.act(|repo, now, rng| repo.transaction(|tx| tx.block_staff(now, rng, patient, &staff)))?;
    // The answer names the patient where this user may read her record (a read like any
    // other); the block is made either way.
    let patient_name = match svc.open(patient, "block") {
        Ok(_) => (svc.repo().record(patient).ok())
            .map_or_else(|| patient.to_string(), |r| r.name().to_owned()),
        // Refused (and the refusal logged): the block is made, the answer names her by id.
        Err(_) => patient.to_string(),
    };
    let staff_name = staff_label(svc, &staff)?;
    emit(json, &crate::output::block_json(patient, &block), || {
        format!(
            "block {}: {staff_name} may no longer see {patient_name}; every node applies it as soon as it learns of it, and the blocked staff member's devices remove the patient's documents",
            block.id
        )
    });
    Ok(())
}

/// `omsyn unblock`.
pub(crate) fn unblock(svc: &Service, json: bool, patient: &str, block: &str) -> Result<()> {
    let patient = &svc.patient(patient).flagged()?;
    let id = svc.entry("block", block).flagged()?;
    let (lifted, remaining) =
        svc.act(|repo, now, _| repo.transaction(|tx| tx.lift_block(now, patient, &id)))?;
    let staff_name = staff_label(svc, &lifted.staff)?;
    let still: Vec<String> = remaining.iter().map(|b| b.id.to_string()).collect();
    let value = json!({
        "id": id, "patient": patient, "staff": lifted.staff, "still_blocked_by": still,
    });
    emit(json, &value, || {
        let mut said = format!("lifted block {id} of {staff_name}");
        match still.as_slice() {
            [] => said.push_str(": the patient no longer blocks them"),
            [one] => {
                let _ = write!(said, "; they stay blocked by another block ({one})");
            }
            others => {
                let _ = write!(
                    said,
                    "; they stay blocked by other blocks ({})",
                    others.join(", ")
                );
            }
        }
        said
    });
    Ok(())
}

/// `omsyn purge`.
pub(crate) fn purge(svc: &Service, json: bool) -> Result<()> {
    let report = svc.repo().purge_unneeded(svc.now())?;
    let value = json!({
        "purged_patients": report.purged, "kept_patients": report.awaiting_upload,
    });
    emit(json, &value, || {
        let mut s = format!("removed {} patients' documents", report.purged.len());
        if !report.awaiting_upload.is_empty() {
            let _ = write!(
                s,
                "; kept {} until a base has their latest documentation",
                report.awaiting_upload.len()
            );
        }
        s
    });
    Ok(())
}

/// A staff member as people read her: `Name (id)`, or her id where no name is known.
fn staff_label(svc: &Service, staff: &omsyn_core::ids::StaffId) -> Result<String> {
    Ok(match svc.repo().staff_names()?.get(staff.as_str()) {
        Some(known) => format!("{known} ({staff})"),
        None => staff.to_string(),
    })
}
