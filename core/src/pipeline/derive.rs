//! What follows from a change: the derived indexes, computed from the documents a write changed
//! and handed to the store to keep in the same transaction. Conflicts and integrity alerts,
//! escalation triggers, the relations need-based sharing reads, the visit index and patient
//! names are all pure functions of the documents (and, for explicit accesses, of the clock of
//! the node that first saw them), so every replica holding the same documents derives the same.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::conflict::{self, Conflict};
use crate::docs::record::{self, PatientField};
use crate::docs::{DocumentId, access_facts, journal, messages, plan};
use crate::escalation;
use crate::ids::PatientId;
use crate::store::{RelationScope, Row, StoreError, WriteBatch};
use crate::time::Month;

/// What deriving needs beyond the documents.
#[derive(Debug, Clone)]
pub struct DeriveContext {
    /// This node's clock when the write commits (`None` for a local write, whose explicit
    /// accesses carry this node's own clock already).
    pub now_ms: Option<i64>,
    /// The organisation's cap on an explicit access's duration.
    pub explicit_access_max_ms: i64,
}

/// Derives the rows of every document `batch` changed and hands them to it.
pub(super) fn derive(batch: &mut WriteBatch<'_>, ctx: &DeriveContext) -> Result<(), StoreError> {
    let mut months: BTreeSet<(PatientId, Month)> = BTreeSet::new();
    // A plan read for its own rows serves its month's rows too: reading a month's plan is most
    // of what deriving costs when a whole month arrives.
    let mut plans: BTreeMap<(PatientId, Month), plan::VisitPlan> = BTreeMap::new();
    for id in batch.changed_documents() {
        match &id {
            DocumentId::PatientRecord(patient) => record_rows(batch, patient, ctx)?,
            DocumentId::VisitPlan(patient, month) => {
                if let Some(read) = plan_rows(batch, &id, patient, *month)? {
                    plans.insert((patient.clone(), *month), read);
                }
                months.insert((patient.clone(), *month));
            }
            DocumentId::Journal(patient, month) => {
                if !batch.is_neutral_append(&id) {
                    months.insert((patient.clone(), *month));
                }
            }
            DocumentId::Messages(patient, month) => message_rows(batch, &id, patient, *month)?,
            DocumentId::DayLog(..) => day_log_rows(batch, &id)?,
            DocumentId::Audit(..) => {}
        }
    }
    for (patient, month) in months {
        let plan = plans.remove(&(patient.clone(), month));
        month_rows(batch, &patient, month, plan)?;
        // The month's journal closes its messages' integrity alerts too: an open one is derived
        // again, or it would stay open here until the messages next change, while a node that
        // took the journal after them shows it closed.
        if batch.has_conflicts(&patient, &format!("messages/{month}"))? {
            message_rows(
                batch,
                &DocumentId::Messages(patient.clone(), month),
                &patient,
                month,
            )?;
        }
    }
    batch.mark_derived();
    Ok(())
}

fn record_rows(
    batch: &mut WriteBatch<'_>,
    patient: &PatientId,
    ctx: &DeriveContext,
) -> Result<(), StoreError> {
    let id = DocumentId::PatientRecord(patient.clone());
    let Some(doc) = batch.existing(&id)? else {
        return Ok(());
    };
    let facts = access_facts::read(doc);
    let Ok(rec) = record::read_fields(doc) else {
        // A record without its patient key yet (a peer sent a partial document): only the
        // relations it holds are indexed.
        let rows = relation_rows(batch, patient, &facts, ctx)?;
        return put_relations(batch, patient, RelationScope::Record, rows);
    };
    let name = rec
        .field(PatientField::Name)
        .unwrap_or("(no name)")
        .to_owned();
    let conflicts = conflict::record_conflicts(&rec);
    batch.put_row(Row::PatientName {
        patient: patient.clone(),
        name,
        hint: rec.telling_apart(),
    })?;
    batch.put_row(conflicts_row(patient, "record".into(), &conflicts)?)?;
    let rows = relation_rows(batch, patient, &facts, ctx)?;
    put_relations(batch, patient, RelationScope::Record, rows)
}

/// The zone, care-team, block and explicit-access relations a record holds.
///
/// An explicit access lasts at most the organisation's cap from when it was asked, and no node
/// takes "when it was asked" to be later than its own clock when it first saw it (a writer's
/// clock could put it years ahead): the end this node derived the first time stays.
fn relation_rows(
    batch: &mut WriteBatch<'_>,
    patient: &PatientId,
    facts: &access_facts::AccessFacts,
    ctx: &DeriveContext,
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut rows = Vec::new();
    if let Some(zone) = &facts.zone {
        rows.push((format!("zone:{zone}"), 0));
    }
    for member in facts.team.iter().filter(|m| m.active) {
        rows.push((format!("team:{}", member.staff), 0));
    }
    for block in facts.blocks.iter().filter(|b| b.lifted.is_none()) {
        rows.push((format!("block:{}", block.staff), 0));
    }
    for explicit in &facts.explicit {
        let name = format!("explicit:{}:{}", explicit.staff, explicit.id);
        let until = match batch.relation(patient, &name)? {
            Some(first) => first,
            None => {
                let asked = explicit.at.unix_millis();
                let start = ctx.now_ms.map_or(asked, |now| asked.min(now));
                explicit
                    .until_ms
                    .min(start.saturating_add(ctx.explicit_access_max_ms))
            }
        };
        rows.push((name, until));
    }
    Ok(rows)
}

fn put_relations(
    batch: &mut WriteBatch<'_>,
    patient: &PatientId,
    scope: RelationScope,
    rows: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    batch.put_row(Row::Relations {
        patient: patient.clone(),
        scope,
        rows,
    })
}

/// A plan's visit index and need relations; returns the plan as read.
fn plan_rows(
    batch: &mut WriteBatch<'_>,
    id: &DocumentId,
    patient: &PatientId,
    month: Month,
) -> Result<Option<plan::VisitPlan>, StoreError> {
    let Some(doc) = batch.existing(id)? else {
        return Ok(None);
    };
    let read = plan::read(doc);
    let visits = &read.visits;
    let mut relations = Vec::new();
    for visit in visits.iter() {
        if matches!(visit.status, plan::PlanStatus::Cancelled { .. }) {
            continue;
        }
        for staff in &visit.staff {
            relations.push((format!("visit:{staff}:{}", visit.day()), 0));
        }
    }
    batch.put_row(Row::Visits {
        plan: id.clone(),
        visits: visits.iter().map(|v| v.id.clone()).collect(),
    })?;
    put_relations(batch, patient, RelationScope::Plan(month), relations)?;
    Ok(Some(read))
}

/// A month's conflicts (the journal's integrity alerts among them) and escalation triggers;
/// `plan` is the month's plan when this write read it already.
fn month_rows(
    batch: &mut WriteBatch<'_>,
    patient: &PatientId,
    month: Month,
    plan: Option<plan::VisitPlan>,
) -> Result<(), StoreError> {
    let plan = match plan {
        Some(plan) => plan,
        None => batch
            .existing(&DocumentId::VisitPlan(patient.clone(), month))?
            .map(|d| plan::read(d))
            .unwrap_or_default(),
    };
    let journal = batch
        .existing(&DocumentId::Journal(patient.clone(), month))?
        .map(|d| journal::read(d))
        .unwrap_or_default();
    let found = conflict::month_conflicts(patient, month, &plan, &journal);
    batch.put_row(conflicts_row(patient, month.to_string(), &found)?)?;
    let triggers = escalation::month_triggers(patient, month, &plan, &journal);
    batch.put_row(Row::Triggers {
        patient: patient.clone(),
        month,
        json: encode_list(&triggers)?,
        open: triggers.iter().any(escalation::Trigger::is_open),
    })?;
    batch.put_row(Row::Days {
        owner: format!("{patient}/{month}"),
        rows: crate::report::month_rows(patient, month, &plan, &journal)?,
    })
}

/// A day log's deviations, for the day report.
fn day_log_rows(batch: &mut WriteBatch<'_>, id: &DocumentId) -> Result<(), StoreError> {
    let Some(doc) = batch.existing(id)? else {
        return Ok(());
    };
    let rows = crate::report::day_log_rows(id, doc)?;
    batch.put_row(Row::Days {
        owner: id.to_string(),
        rows,
    })
}

/// A month's messages can hold integrity alerts too (a message written twice); they close in
/// the month's journal like every conflict.
fn message_rows(
    batch: &mut WriteBatch<'_>,
    id: &DocumentId,
    patient: &PatientId,
    month: Month,
) -> Result<(), StoreError> {
    let Some(doc) = batch.existing(id)? else {
        return Ok(());
    };
    let read = messages::read(doc);
    let authors = |key: &str| {
        let msg_id = key.trim_start_matches("m/");
        let found: Vec<&messages::Message> = read
            .items
            .iter()
            .filter(|m| m.id.as_str() == msg_id)
            .collect();
        (
            found.iter().map(|m| m.id.clone()).collect(),
            conflict::authors_writers(found.iter().map(|m| &m.author)),
        )
    };
    let mut alerts = conflict::written_twice(patient, id, &read.written_twice, authors);
    if !alerts.is_empty() {
        let resolved = batch
            .existing(&DocumentId::Journal(patient.clone(), month))?
            .map(|d| journal::read(d).resolved())
            .unwrap_or_default();
        alerts.retain(|a| !resolved.contains(&a.id));
    }
    batch.put_row(conflicts_row(
        patient,
        format!("messages/{month}"),
        &alerts,
    )?)
}

fn conflicts_row(
    patient: &PatientId,
    scope: String,
    found: &[Conflict],
) -> Result<Row, StoreError> {
    Ok(Row::Conflicts {
        patient: patient.clone(),
        scope,
        json: encode_list(found)?,
    })
}

/// A list an index row holds, as [`encode_list`] wrote it (`index` names the index in the error
/// a row that does not read gives).
pub(crate) fn decode_list<T: DeserializeOwned>(
    json: &[u8],
    index: &str,
) -> Result<Vec<T>, StoreError> {
    serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("{index}: {e}")))
}

/// A list as JSON, or `None` when empty (the store then removes the row).
fn encode_list<T: Serialize>(items: &[T]) -> Result<Option<Vec<u8>>, StoreError> {
    if items.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(items)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("encoding a derived index: {e}")))
}
