//! `omsyn conflicts [--patient P] [resolve …]`: open safety conflicts, and resolving one with an
//! attributable entry.

use anyhow::Result;
use omsyn_core::conflict::Severity;
use serde_json::json;

use super::{Ctx, Flagged};
use crate::cli::{ConflictAction, ConflictsArgs};
use crate::output::emit;

pub(crate) fn run(cx: Ctx<'_>, args: ConflictsArgs) -> Result<()> {
    if let Some(ConflictAction::Resolve {
        conflict,
        note,
        value,
    }) = args.action
    {
        cx.svc
            .resolve_conflict(&conflict, &note, value.as_deref())
            .flagged()?;
        let id = conflict.trim();
        emit(cx.json, &json!({ "resolved": id }), || {
            format!("resolved {id}")
        });
        return Ok(());
    }
    let list = cx.svc.conflicts(args.patient.as_deref()).flagged()?;
    emit(cx.json, &list, || {
        if list.is_empty() {
            return "no open conflicts".into();
        }
        list.iter()
            .map(|c| {
                let severity = match c.severity {
                    Severity::High => "HIGH",
                    Severity::Review => "review",
                };
                let patient = c.patient_label();
                format!("{} {severity:<6} {patient}: {}\n", c.id, c.summary)
            })
            .collect()
    });
    Ok(())
}
