//! Need-based sharing ("tjenstlig behov", domain.md R1): which documents a node may hold.
//!
//! | holder | needs |
//! |---|---|
//! | base | every patient of its zone (and patients whose zone it does not know yet), all day logs, all access logs |
//! | nurse | patients with a visit assigned to the nurse yesterday, today or tomorrow (the current and next work list, plus a day's grace after the shift), its care-team patients, patients it asked explicit access to (until that ends); its own day logs and access log |
//! | home unit | its own patient only; its own access log |
//!
//! A block (sperring) of the holder's staff member beats every one of these. The rule reads the
//! relations index the store derives from records and plans ([`crate::store::Relation`]), so
//! each question is a few point lookups, not a document load.
//!
//! A node sends a peer only what the peer needs, and keeps only what it needs itself, or what a
//! base (which decides work lists) sends it.

use crate::docs::DocumentId;
use crate::identity::Role;
use crate::ids::PatientId;
use crate::store::{Relation, RelationsView, Store, StoreError, WriteBatch};
use crate::sync::policy::{SharePolicy, ShareQuery};
use crate::time::Day;
use crate::trust::Grant;

/// How many days around today a visit makes a patient needed: yesterday (the grace after the
/// shift), today and tomorrow (the next work list).
const VISIT_WINDOW_DAYS: [i32; 3] = [-1, 0, 1];

/// The days whose visits make a patient needed at `now_ms`: [`VISIT_WINDOW_DAYS`] around the
/// local day, whichever zone the visits were planned in. A plan's days are local dates and this
/// judgement has no zone, so "today" is every date it is somewhere now (UTC−12 to UTC+14): in
/// Norway just after midnight the UTC date is still yesterday, and tomorrow's work list must
/// already reach the phone.
fn visit_window(now_ms: i64) -> Vec<Day> {
    const HOUR_MS: i64 = 3600 * 1000;
    let mut days: Vec<Day> = Vec::new();
    for today in [now_ms - 12 * HOUR_MS, now_ms + 14 * HOUR_MS]
        .into_iter()
        .filter_map(Day::from_unix_millis)
    {
        for offset in VISIT_WINDOW_DAYS {
            if let Some(day) = Day::from_days(today.to_days() + offset)
                && !days.contains(&day)
            {
                days.push(day);
            }
        }
    }
    days
}

/// The need-based policy of a node enrolled with `own`.
#[derive(Debug, Clone)]
pub struct NeedPolicy {
    own: Grant,
}

impl NeedPolicy {
    /// The policy of the node certified by `own`.
    pub fn new(own: Grant) -> NeedPolicy {
        NeedPolicy { own }
    }

    /// The grant this policy decides for.
    pub fn own(&self) -> &Grant {
        &self.own
    }

    /// Whether this node itself needs `doc` now.
    pub fn self_needs(&self, store: &Store, now_ms: i64, doc: &DocumentId) -> bool {
        needs(store, now_ms, &self.own, doc).unwrap_or(false)
    }
}

impl SharePolicy for NeedPolicy {
    fn may_send(&self, q: &ShareQuery<'_>, doc: &DocumentId) -> bool {
        needs(q.store, q.now_ms, q.peer, doc).unwrap_or(false)
    }

    fn may_accept(&self, q: &ShareQuery<'_>, doc: &DocumentId) -> bool {
        // Whether the sender should have held it does not matter here: every change in it is
        // verified against its author's signature and role, and documentation must never be
        // refused because a visit was reassigned while its nurse was offline.
        if self.self_needs(q.store, q.now_ms, doc) {
            return true;
        }
        // A nurse's device learns its work list from the base: documents a base sends are
        // needed by definition, unless a block says otherwise.
        q.peer.role == Role::Base
            && self.own.role == Role::Nurse
            && doc.patient().is_some()
            && !blocked(q.store, &self.own, doc).unwrap_or(true)
    }
}

/// Where the relations need is read from: what is committed, or a write in progress (which sees
/// its own rows).
trait Relations {
    fn relation(&mut self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError>;
    fn relations(&mut self, patient: &PatientId, prefix: &str)
    -> Result<Vec<Relation>, StoreError>;
}

impl Relations for &RelationsView<'_> {
    fn relation(&mut self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        RelationsView::relation(self, patient, name)
    }

    fn relations(
        &mut self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        RelationsView::relations(self, patient, prefix)
    }
}

impl Relations for WriteBatch<'_> {
    fn relation(&mut self, patient: &PatientId, name: &str) -> Result<Option<i64>, StoreError> {
        WriteBatch::relation(self, patient, name)
    }

    fn relations(
        &mut self,
        patient: &PatientId,
        prefix: &str,
    ) -> Result<Vec<Relation>, StoreError> {
        WriteBatch::relations(self, patient, prefix)
    }
}

/// Whether the node certified by `holder` needs `doc` at `now_ms`, by what `store` knows.
pub fn needs(
    store: &Store,
    now_ms: i64,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<bool, StoreError> {
    Ok(need_reason(store, now_ms, holder, doc)?.is_some())
}

/// [`needs`], by what a write in progress knows (its own relations included).
pub fn needs_in(
    batch: &mut WriteBatch<'_>,
    now_ms: i64,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<bool, StoreError> {
    Ok(reason(batch, now_ms, holder, doc)?.is_some())
}

/// Why the node certified by `holder` needs `doc` ("work list 2026-11-23", "care team", "zone
/// Sone 1", "explicit access"...), or `None` if it has no need.
pub fn need_reason(
    store: &Store,
    now_ms: i64,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<Option<String>, StoreError> {
    need_reason_in_view(&store.relations_view()?, now_ms, holder, doc)
}

/// [`need_reason`], by what `view` shows: for many questions asked of one snapshot.
pub fn need_reason_in_view(
    view: &RelationsView<'_>,
    now_ms: i64,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<Option<String>, StoreError> {
    reason(&mut &*view, now_ms, holder, doc)
}

fn reason(
    store: &mut impl Relations,
    now_ms: i64,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<Option<String>, StoreError> {
    let patient = match doc {
        DocumentId::Audit(node, _) => {
            return Ok((holder.role == Role::Base || &holder.node == node)
                .then(|| "access-log review".to_owned()));
        }
        DocumentId::DayLog(staff, _) => {
            return Ok(
                (holder.role == Role::Base || holder.staff_id.as_ref() == Some(staff))
                    .then(|| "day log".to_owned()),
            );
        }
        other => match other.patient() {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    if is_blocked(store, holder, doc)? {
        return Ok(None);
    }
    match holder.role {
        Role::HomeUnit => {
            Ok((holder.patient.as_ref() == Some(patient)).then(|| "own patient".to_owned()))
        }
        Role::Base => {
            let zones = store.relations(patient, "zone:")?;
            if zones.is_empty() {
                return Ok(Some("zone not yet known".to_owned()));
            }
            Ok(holder.zone.as_ref().and_then(|z| {
                zones
                    .iter()
                    .any(|r| r.name == format!("zone:{z}"))
                    .then(|| format!("zone {z}"))
            }))
        }
        Role::Nurse => {
            let Some(staff) = &holder.staff_id else {
                return Ok(None);
            };
            if store.relation(patient, &format!("team:{staff}"))?.is_some() {
                return Ok(Some("care team".to_owned()));
            }
            if store
                .relations(patient, &format!("explicit:{staff}:"))?
                .iter()
                .any(|r| r.value > now_ms)
            {
                return Ok(Some("explicit access".to_owned()));
            }
            for day in visit_window(now_ms) {
                if store
                    .relation(patient, &format!("visit:{staff}:{day}"))?
                    .is_some()
                {
                    return Ok(Some(format!("work list {day}")));
                }
            }
            Ok(None)
        }
    }
}

/// Whether `holder`'s staff member is blocked from the document's patient (sperring).
pub fn blocked(store: &Store, holder: &Grant, doc: &DocumentId) -> Result<bool, StoreError> {
    blocked_in_view(&store.relations_view()?, holder, doc)
}

/// [`blocked`], by what `view` shows.
pub fn blocked_in_view(
    view: &RelationsView<'_>,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<bool, StoreError> {
    is_blocked(&mut &*view, holder, doc)
}

fn is_blocked(
    store: &mut impl Relations,
    holder: &Grant,
    doc: &DocumentId,
) -> Result<bool, StoreError> {
    match (doc.patient(), &holder.staff_id) {
        (Some(p), Some(staff)) => Ok(store.relation(p, &format!("block:{staff}"))?.is_some()),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::visit_window;
    use crate::Day;
    use crate::time::Timestamp;

    #[test]
    fn just_after_midnight_in_norway_tomorrows_visits_make_a_patient_needed() {
        // 00:30 on 2 December in Oslo is still 1 December in UTC.
        let now = Timestamp::parse("2026-12-02T00:30:00+01:00")
            .expect("a valid time")
            .unix_millis();
        let window = visit_window(now);
        let day = |d: &str| Day::parse(d).expect("a valid day");
        assert!(
            window.contains(&day("2026-12-03")),
            "Oslo's tomorrow: {window:?}"
        );
        assert!(
            window.contains(&day("2026-12-01")),
            "Oslo's yesterday: {window:?}"
        );
        assert!(
            !window.contains(&day("2026-12-05")),
            "not days ahead: {window:?}"
        );
    }
}
