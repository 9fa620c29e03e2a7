//! `omsyn audit [--patient P]` and `omsyn audit verify`: the access log, and its chains.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use omsyn_core::service::Service;

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
    let repo = svc.repo();
    let patient = patient.map(|p| svc.patient(p)).transpose().flagged()?;
    let patient = patient.as_ref();
    if let Some(AuditCmd::Verify) = action {
        let reports = repo.verify_audit()?;
        let broken = reports.iter().filter(|r| !r.problems.is_empty()).count();
        emit(json, &serde_json::json!({ "logs": reports }), || {
            let mut s = String::new();
            for r in &reports {
                if r.problems.is_empty() {
                    let _ = writeln!(
                        s,
                        "node {}: {} entries, chain intact",
                        r.node.short(),
                        r.entries
                    );
                } else {
                    let _ = writeln!(s, "node {}: {} entries, BROKEN", r.node.short(), r.entries);
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
        return Ok(());
    }
    let entries = repo.audit_entries(patient)?;
    // Patients are named only where this user may see them (a read, logged); else by id.
    let names: std::collections::BTreeMap<_, _> = svc
        .shown("access log names", repo.patients()?, |(p, _)| p)
        .flagged()?
        .into_iter()
        .collect();
    emit(json, &serde_json::json!({ "entries": entries }), || {
        if entries.is_empty() {
            return "no access-log entries".into();
        }
        entries
            .iter()
            .map(|e| {
                format!(
                    "{}  {:<15} {} ({}{}) {}{}  {}{}\n",
                    e.at,
                    e.action.as_str(),
                    e.author.name,
                    e.author.role,
                    e.author
                        .staff
                        .as_ref()
                        .map(|s| format!(", {s}"))
                        .unwrap_or_default(),
                    e.patient
                        .as_ref()
                        .map(|p| format!("{} ", names.get(p).map_or(p.as_str(), String::as_str)))
                        .unwrap_or_default(),
                    e.what,
                    e.purpose,
                    if e.flagged { "  [FLAGGED]" } else { "" }
                )
            })
            .collect()
    });
    Ok(())
}
