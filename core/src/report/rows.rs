//! The day index's rows, derived from a patient-month's plan and journal or from a day log: what
//! the change pipeline hands the store in the same write as the documents (see
//! [`crate::pipeline`]). Pure: no store and no repo, so the pipeline depends on nothing above it.

use super::lines::{DeviationLine, performer, visit_line};
use super::row_bytes::{VisitRow, encode_deviation, encode_performer, encode_visit};
use crate::docs::DocumentId;
use crate::docs::daylog::{self, DayLogBody};
use crate::docs::journal::{EntryBody, Journal};
use crate::docs::plan::VisitPlan;
use crate::ids::PatientId;
use crate::store::StoreError;
use crate::time::{Day, Month};

/// The day-index rows of one patient-month: its visits with their outcomes (from this month's
/// journal, where a visit's outcome is documented), and, by the day they happened, its journal
/// deviations and who performed a visit (for continuity).
///
/// Each key ends with the month that derived it (`v/<patient>/<visit>/<month>`), as a day log's
/// rows end with its day: a row belongs to one owner. Two months' documents can name the same
/// visit or entry — a late entry filed under the next month, or a change crafted to look like
/// another's — and each then keeps its own row; were the keys shared, one owner's row would
/// replace the other's, and withdrawing it would take the other's off the report.
pub(crate) fn month_rows(
    patient: &PatientId,
    month: Month,
    plan: &VisitPlan,
    journal: &Journal,
) -> Result<Vec<(Day, String, Vec<u8>)>, StoreError> {
    let mut rows = Vec::with_capacity(plan.visits.len() * 2);
    for visit in &plan.visits {
        // The patient's name and zone are looked up when read: a renamed patient would
        // otherwise need every month derived again.
        let line = visit_line(visit.clone(), String::new(), journal);
        let row = VisitRow {
            performers: line.performers.clone(),
            line,
        };
        rows.push((
            visit.day(),
            format!("v/{patient}/{}/{month}", visit.id),
            encode_visit(&row),
        ));
    }
    for entry in journal.standing() {
        if let EntryBody::VisitPerformed { .. } = &entry.body {
            let key = format!("p/{patient}/{}/{month}", entry.id);
            let who = performer(&entry.author);
            rows.push((entry.event_time.day(), key, encode_performer(&who)));
        }
    }
    // A deviation recorded in error (and withdrawn by a correction) is no deviation of the day.
    for entry in journal.standing() {
        if let EntryBody::Deviation { text } = &entry.body {
            let line = DeviationLine {
                at: entry.event_time,
                by: entry.author.name.clone(),
                patient: Some(patient.clone()),
                text: text.clone(),
            };
            let key = format!("d/{patient}/{}/{month}", entry.id);
            rows.push((entry.event_time.day(), key, encode_deviation(&line)));
        }
    }
    Ok(rows)
}

/// The day-index rows of a day log: its deviations, keyed by the staff member (and the day log's
/// own day, as [`month_rows`] keys by month).
pub(crate) fn day_log_rows(
    id: &DocumentId,
    doc: &crate::docs::Document,
) -> Result<Vec<(Day, String, Vec<u8>)>, StoreError> {
    let DocumentId::DayLog(staff, day) = id else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for entry in daylog::read(doc).items {
        if let DayLogBody::Deviation { text } = entry.body {
            let line = DeviationLine {
                at: entry.event_time,
                by: entry.author.name,
                patient: None,
                text,
            };
            let key = format!("d/{staff}/{}/{day}", entry.id);
            rows.push((entry.event_time.day(), key, encode_deviation(&line)));
        }
    }
    Ok(rows)
}
