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
        let entry = cx
            .svc
            .resolve_conflict(&conflict, &note, value.as_deref())
            .flagged()?;
        let id = conflict.trim();
        let entry = entry.map(|e| e.id);
        emit(cx.json, &json!({ "id": id, "entry": entry }), || {
            format!("resolved {id}")
        });
        return Ok(());
    }
    let list = cx.svc.conflicts(args.patient.as_deref()).flagged()?;
    emit(cx.json, &json!({ "conflicts": list }), || {
        if list.is_empty() {
            return "no open conflicts".into();
        }
        let mut text: String = list
            .iter()
            .map(|c| {
                let severity = match c.severity {
                    Severity::High => "HIGH",
                    Severity::Review => "review",
                };
                let patient = c.patient_label();
                let id = if cx.ids {
                    format!("  [{}]", c.id)
                } else {
                    String::new()
                };
                format!("{severity:<6} {patient}: {}{id}\n", c.summary)
            })
            .collect();
        if !cx.ids {
            text.push_str(
                "(`omsyn conflicts --ids` shows each conflict's id for `omsyn conflicts resolve --conflict ID --note ...`)\n",
            );
        }
        text
    });
    Ok(())
}
