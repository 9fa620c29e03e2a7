//! `omsyn audit [--patient P]` and `omsyn audit verify`: the access log, and its chains.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, bail};
use omsyn_core::ids::PatientId;
use omsyn_core::service::Service;
use omsyn_core::trust::audit::AuditEntry;

use crate::cli::AuditCmd;
use crate::cmd::Flagged;
use crate::output::emit;

/// `omsyn audit [--patient P]` and `omsyn audit verify`.
pub(crate) fn audit(
    svc: &Service,
    json: bool,
    patient: Option<&str>,
    action: Option<AuditCmd>,
) -> Result<()> {
    if let Some(AuditCmd::Verify) = action {
        return verify(svc, json);
    }
    let entries = svc.access_log(patient).flagged()?;
    // Patients are named only where this user may see them (a read, logged); else by id.
    let names: BTreeMap<PatientId, String> = (svc.shown_patients("access log names").flagged()?)
        .into_iter()
        .map(|p| (p.id, p.label))
        .collect();
    emit(json, &serde_json::json!({ "entries": entries }), || {
        if entries.is_empty() {
            return "no access-log entries".into();
        }
        entries.iter().map(|e| line(e, &names)).collect()
    });
    Ok(())
}

/// One entry as people read it: when (in the node's zone), what, who, whose record, why.
fn line(e: &AuditEntry, names: &BTreeMap<PatientId, String>) -> String {
    let staff = (e.author.staff.as_ref())
        .map(|s| format!(", {s}"))
        .unwrap_or_default();
    let patient = (e.patient.as_ref())
        .map(|p| format!("{} ", names.get(p).map_or(p.as_str(), String::as_str)))
        .unwrap_or_default();
    let flagged = if e.flagged { "  [FLAGGED]" } else { "" };
    format!(
        "{}  {:<15} {} ({}{staff}) {patient}{}  {}{flagged}\n",
        crate::output::local(&e.at),
        e.action.as_str(),
        e.author.name,
        e.author.role,
        e.what,
        e.purpose,
    )
}

/// `omsyn audit verify`: every access-log chain held here, whole or where it breaks.
fn verify(svc: &Service, json: bool) -> Result<()> {
    let reports = svc.repo().verify_audit()?;
    let broken = reports.iter().filter(|r| !r.problems.is_empty()).count();
    emit(json, &serde_json::json!({ "logs": reports }), || {
        let mut s = String::new();
        for r in &reports {
            let (node, n) = (r.node.short(), r.entries);
            if r.problems.is_empty() {
                let _ = writeln!(s, "node {node}: {n} entries, chain intact");
            } else {
                let _ = writeln!(s, "node {node}: {n} entries, BROKEN");
                for p in &r.problems {
                    let _ = writeln!(s, "  {p}");
                }
            }
        }
        if reports.is_empty() {
            s.push_str("no access logs held\n");
        }
        s
    });
    if broken > 0 {
        bail!("{broken} access-log chain(s) are broken");
    }
    Ok(())
}
