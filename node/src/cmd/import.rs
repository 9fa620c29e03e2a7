//! `omsyn import FILE` (an export file from another node: every change checked as a peer's)
//! and `omsyn import-worklist FILE` (a record system's CSV work list).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use omsyn_core::worklist::ListTimes;

use super::Ctx;
use crate::client::read_input;
use crate::output::emit;

/// `omsyn import-worklist FILE [--offset +HH:MM]`: patients, tiltak and visits in one
/// transaction, every row validated first; the list's local times in the node's zone (summer
/// and winter) unless `--offset` fixes one offset for all.
pub(crate) fn worklist(cx: Ctx<'_>, file: &Path, offset: Option<&str>) -> Result<()> {
    let times = match offset {
        Some(offset) => ListTimes::Offset(parse_offset(offset)?),
        None => ListTimes::Zone(omsyn_node::clock::zone()),
    };
    let bytes = read_input(file)?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow!("{} is not UTF-8 text", file.display()))?;
    let summary = cx
        .svc
        .act(|repo, now, rng| repo.import_worklist(now, rng, &text, times))
        .with_context(|| format!("importing {}", file.display()))?;
    emit(cx.json, &summary, || {
        let mut text = format!(
            "{} rows: {} visits planned ({} unassigned), {} already planned, {} new patients",
            summary.rows,
            summary.visits_planned,
            summary.unassigned,
            summary.already_planned,
            summary.new_patients
        );
        // Row by row, what a list imported again changed in the plan, or why it did not.
        for c in &summary.changed {
            let outcome = match &c.reason {
                None => "changed".to_owned(),
                Some(reason) => format!("NOT changed: {reason}"),
            };
            text.push_str(&format!(
                "\nline {}: {} ({}): {} — {outcome}",
                c.line,
                c.patient_name,
                c.visit,
                c.changes.join(", ")
            ));
        }
        for twin in &summary.same_name {
            let others: Vec<String> = twin.others.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "\nline {}: {} registered as a new patient ({}), but {} has that name under \
                 another national id: check it is not the same person",
                twin.line,
                twin.patient_name,
                twin.patient,
                others.join(", ")
            ));
        }
        text
    });
    Ok(())
}

/// `omsyn import FILE`: every change judged by the rules a live session applies.
pub(crate) fn file(cx: Ctx<'_>, file: &Path) -> Result<()> {
    let bytes = read_input(file)?;
    let summary = cx
        .svc
        .act(|repo, now, _| repo.import(now, &bytes))
        .with_context(|| format!("importing {}", file.display()))?;
    emit(cx.json, &summary, || {
        let mut text = format!(
            "imported {} documents ({} new), {} new changes",
            summary.documents, summary.new_documents, summary.new_changes
        );
        for why in &summary.left_out {
            text.push_str(&format!("\nnot imported: {why}"));
        }
        text
    });
    Ok(())
}

/// Parses `+01:00` / `-03:30` into seconds east of UTC.
fn parse_offset(value: &str) -> Result<i32> {
    let bad = || anyhow!("--offset: expected +HH:MM or -HH:MM, got {value:?}");
    let (sign, rest) = match value.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}
