//! A staff member's day log: shift, visit timings, travel and deviations.
//!
//! It holds no patient data, only opaque visit ids, so it can be shared with the base without
//! widening anyone's access to a patient. Clinical detail goes to the patient's journal.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Appended, Author, ChangeContext, DocError, Document, decode_appended};
use crate::ids::{EntryId, VisitId};
use crate::time::Timestamp;

/// What a day-log entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum DayLogBody {
    /// The shift started.
    ShiftStart,
    /// The shift ended.
    ShiftEnd,
    /// Work on a visit started.
    VisitStart {
        /// The visit.
        visit: VisitId,
    },
    /// Work on a visit ended.
    VisitEnd {
        /// The visit.
        visit: VisitId,
    },
    /// Travel between visits.
    Travel {
        /// Minutes travelled.
        minutes: u32,
        /// Kilometres, if known.
        km: Option<f64>,
    },
    /// An operational deviation (avvik) with no patient data: car broke down, late start...
    Deviation {
        /// What happened.
        text: String,
    },
}

/// A day-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayLogEntry {
    /// Id.
    pub id: EntryId,
    /// Who.
    pub author: Author,
    /// When it happened.
    pub event_time: Timestamp,
    /// When it was entered.
    pub entered_at: Timestamp,
    /// What.
    pub body: DayLogBody,
}

/// Appends a day-log entry.
pub fn append(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    event_time: Timestamp,
    body: DayLogBody,
) -> Result<DayLogEntry, DocError> {
    if let DayLogBody::Deviation { text } = &body
        && (text.trim().is_empty() || text.len() > super::journal::MAX_TEXT_BYTES)
    {
        return Err(DocError::Rejected("a deviation needs a description".into()));
    }
    let entry = DayLogEntry {
        id: EntryId::random(rng),
        author: ctx.author.clone(),
        event_time,
        entered_at: ctx.entered_at,
        body,
    };
    doc.change(ctx, |ed| ed.put_json(&format!("e/{}", entry.id), &entry))?;
    Ok(entry)
}

/// Reads the day log, ordered by event time.
pub fn read(doc: &Document) -> Appended<DayLogEntry> {
    let mut read = decode_appended::<DayLogEntry>(doc.reader(), "e/");
    read.items.sort_by(|a, b| {
        a.event_time
            .cmp(&b.event_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    read
}
