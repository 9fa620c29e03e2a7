//! `omsyn note add|correct`: a journal note, and corrections of any entry.

use anyhow::{Result, bail};
use omsyn_core::repo::Correction;
use omsyn_core::service::{NewEntry, When};

use super::{Ctx, Flagged, written};
use crate::cli::NoteCmd;

pub(crate) fn run(cx: Ctx<'_>, cmd: NoteCmd) -> Result<()> {
    let patient = match &cmd {
        NoteCmd::Add { patient, .. } | NoteCmd::Correct { patient, .. } => patient.clone(),
    };
    let entry = match cmd {
        NoteCmd::Add {
            patient,
            visit,
            text,
            at,
        } => cx.svc.add_note(NewEntry {
            patient,
            visit,
            text,
            at: When::text(at.as_deref()),
        }),
        NoteCmd::Correct {
            patient,
            entry,
            text,
            entered_in_error,
        } => {
            let correction = match (text, entered_in_error) {
                (Some(text), None) => Correction::Amend(text),
                (None, Some(reason)) => Correction::EnteredInError(reason),
                _ => bail!("give either --text or --entered-in-error"),
            };
            cx.svc.correct_entry(&patient, &entry, correction)
        }
    }
    .flagged()?;
    written(cx, Some(&patient), &entry);
    Ok(())
}
