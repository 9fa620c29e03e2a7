//! The derived indexes' rows, as the change pipeline hands them to a write
//! ([`crate::pipeline`] derives them from the documents; the store only keeps them, sealed where
//! they hold patient data, in the same transaction as the documents they come from), and reading
//! them back: patients, where a visit is planned, open conflicts, a day's rows.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::batch::WriteBatch;
use super::crypt::{Cipher, conflict_place, day_place, name_place, tasks_place};
use super::error::StoreError;
use super::handle::Store;
use super::schema::{
    CONFLICTS, DAY_INDEX, DAY_INDEX_OWNERS, OPEN_TASKS, PATIENT_NAMES, RELATIONS, TASKS, VISITS,
};
use crate::docs::DocumentId;
use crate::ids::{PatientId, VisitId};
use crate::time::{Day, Month};

/// One derived row set, replacing what the index held for the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Row {
    /// A patient's display name.
    PatientName {
        /// The patient.
        patient: PatientId,
        /// The name.
        name: String,
        /// What tells her apart from another of the name (her date of birth or address).
        hint: Option<String>,
    },
    /// The visits a plan document holds (visit → document).
    Visits {
        /// The plan document.
        plan: DocumentId,
        /// Its visits.
        visits: Vec<VisitId>,
    },
    /// A patient's open conflicts in one scope (`record`, `YYYY-MM`, `messages/YYYY-MM`), as
    /// JSON; `None` when there are none.
    Conflicts {
        /// The patient.
        patient: PatientId,
        /// The scope.
        scope: String,
        /// The list, as JSON.
        json: Option<Vec<u8>>,
    },
    /// A patient-month's escalation triggers, as JSON (`None`: none), and whether any is open.
    Triggers {
        /// The patient.
        patient: PatientId,
        /// The month.
        month: Month,
        /// The list, as JSON.
        json: Option<Vec<u8>>,
        /// Whether any trigger is open.
        open: bool,
    },
    /// The day-index rows one source derives (a patient-month: `<patient>/<YYYY-MM>`; a day
    /// log: its document id), replacing the ones it derived before: `(day, key, row)`, each row
    /// as the pipeline encoded it.
    Days {
        /// The source.
        owner: String,
        /// Its rows.
        rows: Vec<(Day, String, Vec<u8>)>,
    },
    /// A patient's relations derived from one document (see [`RelationScope`]), replacing the
    /// ones it derived before.
    Relations {
        /// The patient.
        patient: PatientId,
        /// Which relations these replace.
        scope: RelationScope,
        /// Name and value of each.
        rows: Vec<(String, i64)>,
    },
}

/// Which of a patient's relations a document derives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationScope {
    /// The record's: `zone:`, `team:`, `block:` and `explicit:` relations.
    Record,
    /// One month's plan's: `visit:<staff>:<day>` relations of days in that month.
    Plan(Month),
}

impl RelationScope {
    fn covers(&self, name: &str) -> bool {
        match self {
            RelationScope::Record => ["zone:", "team:", "block:", "explicit:"]
                .iter()
                .any(|p| name.starts_with(p)),
            RelationScope::Plan(month) => {
                name.starts_with("visit:") && name.contains(&format!(":{month}-"))
            }
        }
    }
}

impl WriteBatch<'_> {
    /// Whether the patient has open conflicts under `scope` (`messages/<month>`...), as of this
    /// write: a row is kept only for a list that is not empty.
    pub fn has_conflicts(&mut self, patient: &PatientId, scope: &str) -> Result<bool, StoreError> {
        let store = self.store;
        store.contain(|| {
            let table = self.tx.open_table(CONFLICTS)?;
            Ok(table.get((patient.as_str(), scope))?.is_some())
        })
    }

    /// Writes a derived row set in this write.
    pub fn put_row(&mut self, row: Row) -> Result<(), StoreError> {
        let store = self.store;
        store.contain(|| {
            let tx = &self.tx;
            match row {
                Row::PatientName {
                    patient,
                    name,
                    hint,
                } => {
                    // The hint after a NUL (no name holds one); rows written before it was kept
                    // are the name alone.
                    // A NUL in a name (a peer's or a work list's) is not kept: it would end the
                    // name and start a forged hint.
                    let mut plain: Vec<u8> = name.bytes().filter(|b| *b != 0).collect();
                    let hint: Vec<u8> = (hint.iter().flat_map(|h| h.bytes()))
                        .filter(|b| *b != 0)
                        .collect();
                    if !hint.is_empty() {
                        plain.push(0);
                        plain.extend(hint);
                    }
                    let sealed = store.cipher.seal(&name_place(&patient), &plain);
                    upsert(
                        &mut tx.open_table(PATIENT_NAMES)?,
                        patient.as_str(),
                        &sealed,
                    )?;
                }
                Row::Visits { plan, visits } => put_visits(tx, &plan, visits)?,
                Row::Conflicts {
                    patient,
                    scope,
                    json,
                } => {
                    let place = conflict_place(patient.as_str(), &scope);
                    let key = (patient.as_str(), scope.as_str());
                    let sealed = json.map(|json| store.cipher.seal(&place, &json));
                    put_or_remove(&mut tx.open_table(CONFLICTS)?, key, sealed)?;
                }
                Row::Triggers {
                    patient,
                    month,
                    json,
                    open,
                } => {
                    let month = month.to_string();
                    let key = (patient.as_str(), month.as_str());
                    let mut open_table = tx.open_table(OPEN_TASKS)?;
                    if !open {
                        open_table.remove(key)?;
                    } else if open_table.get(key)?.is_none() {
                        open_table.insert(key, ())?;
                    }
                    let place = tasks_place(patient.as_str(), &month);
                    let sealed = json.map(|json| store.cipher.seal(&place, &json));
                    put_or_remove(&mut tx.open_table(TASKS)?, key, sealed)?;
                }
                Row::Days { owner, rows } => put_days(tx, &store.cipher, &owner, rows)?,
                Row::Relations {
                    patient,
                    scope,
                    rows,
                } => put_relations(tx, &patient, scope, rows)?,
            }
            Ok(())
        })
    }
}

impl Store {
    /// Every patient held, with display name, ordered by id.
    pub fn patients(&self) -> Result<Vec<(PatientId, String)>, StoreError> {
        Ok((self.patient_names()?.into_iter())
            .map(|(id, name, _)| (id, name))
            .collect())
    }

    /// Every patient held with her name and what tells her apart from another of the name
    /// (`None` where her record gives nothing, or its row was written before hints were kept).
    pub fn patient_names(&self) -> Result<Vec<(PatientId, String, Option<String>)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(PATIENT_NAMES)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let id = PatientId::parse(k.value())
                    .map_err(|e| StoreError::Corrupt(format!("patient index: {e}")))?;
                let plain = self.open_value(&name_place(&id), v.value())?;
                let text = String::from_utf8_lossy(&plain);
                let (name, hint) = match text.split_once('\0') {
                    Some((name, hint)) => (name.to_owned(), Some(hint.to_owned())),
                    None => (text.into_owned(), None),
                };
                out.push((id, name, hint));
            }
            Ok(out)
        })
    }

    /// The visit-plan document holding `visit`, if known.
    pub fn visit_location(&self, visit: &VisitId) -> Result<Option<DocumentId>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(VISITS)?;
            let Some(value) = table.get(visit.as_str())? else {
                return Ok(None);
            };
            DocumentId::parse(value.value())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("visit index: {e}")))
        })
    }

    /// The conflict index's rows, optionally for one patient, opened: each the JSON list of
    /// one patient-scope's open conflicts as the pipeline wrote it ([`Row::Conflicts`]), in key
    /// order.
    pub fn conflict_rows(&self, patient: Option<&PatientId>) -> Result<Vec<Vec<u8>>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(CONFLICTS)?;
            let mut out = Vec::new();
            for item in patient_rows(&table, patient.map(PatientId::as_str))? {
                let (k, v) = item?;
                let (patient, scope) = k.value();
                out.push(self.open_value(&conflict_place(patient, scope), v.value())?);
            }
            Ok(out)
        })
    }

    /// The day-index rows of `day` (see `DAY_INDEX`) whose key starts with `prefix`, opened:
    /// `(key, row)`. `keep` sees each key first; a row it declines is never decrypted.
    pub fn day_rows(
        &self,
        day: crate::time::Day,
        prefix: &str,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.contain(|| {
            let read = self.db.begin_read()?;
            let table = read.open_table(DAY_INDEX)?;
            let day = day.to_string();
            let end = format!("{prefix}\u{10FFFF}");
            let mut out = Vec::new();
            for item in table.range((day.as_str(), prefix)..(day.as_str(), end.as_str()))? {
                let (k, v) = item?;
                let key = k.value().1;
                if !keep(key) {
                    continue;
                }
                let json = self.open_value(&day_place(&day, key), v.value())?;
                out.push((key.to_owned(), json));
            }
            Ok(out)
        })
    }
}

/// The rows of an index keyed by (patient, scope): one patient's, or (`None`) every row.
pub(super) fn patient_rows<'t, V: redb::Value + 'static>(
    table: &'t impl ReadableTable<(&'static str, &'static str), V>,
    patient: Option<&str>,
) -> Result<redb::Range<'t, (&'static str, &'static str), V>, StoreError> {
    Ok(match patient {
        Some(p) => table.range((p, "")..=(p, "\u{10FFFF}"))?,
        None => table.range::<(&str, &str)>(..)?,
    })
}

/// Replaces the day-index rows `owner` derived (see [`Row::Days`]), writing only the rows whose
/// content changed: a journal entry changes one visit's row, not the month's. The owner list keeps
/// each row's keyed fingerprint to compare with.
fn put_days(
    tx: &redb::WriteTransaction,
    cipher: &Cipher,
    owner: &str,
    rows: Vec<(Day, String, Vec<u8>)>,
) -> Result<(), StoreError> {
    let mut owners = tx.open_table(DAY_INDEX_OWNERS)?;
    let mut index = tx.open_table(DAY_INDEX)?;
    let mut before: BTreeMap<(Day, String), Fingerprint> = match owners.get(owner)? {
        Some(v) => decode_owned(v.value())?
            .into_iter()
            .map(|row| ((row.day, row.key), row.fingerprint))
            .collect(),
        None => BTreeMap::new(),
    };
    let mut kept = Vec::with_capacity(rows.len());
    let mut changed = false;
    for (day, key, row) in rows {
        let day_text = day.to_string();
        let place = day_place(&day_text, &key);
        let digest = fingerprint(cipher, &place, &row);
        if before.remove(&(day, key.clone())) != Some(digest) {
            let sealed = cipher.seal(&place, &row);
            index.insert((day_text.as_str(), key.as_str()), sealed.as_slice())?;
            changed = true;
        }
        kept.push(OwnedRow {
            day,
            key,
            fingerprint: digest,
        });
    }
    for (day, key) in before.keys() {
        index.remove((day.to_string().as_str(), key.as_str()))?;
        changed = true;
    }
    if !changed {
        // The same rows as before (a note beside a visit changes none): the owner list stays,
        // and the commit writes no page of either table.
        return Ok(());
    }
    if kept.is_empty() {
        owners.remove(owner)?;
    } else {
        owners.insert(owner, encode_owned(kept).as_slice())?;
    }
    Ok(())
}

/// 128 bits of a row's keyed fingerprint: enough to tell a changed row.
type Fingerprint = [u8; 16];

/// One row an owner derived.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OwnedRow {
    pub(super) day: Day,
    pub(super) key: String,
    fingerprint: Fingerprint,
}

/// Records the visits a plan holds (visit → plan), writing only what is new.
fn put_visits(
    tx: &redb::WriteTransaction,
    plan: &DocumentId,
    visits: Vec<VisitId>,
) -> Result<(), StoreError> {
    let mut table = tx.open_table(VISITS)?;
    let location = plan.to_string();
    for visit in visits {
        let known = table
            .get(visit.as_str())?
            .is_some_and(|v| v.value() == location);
        if !known {
            table.insert(visit.as_str(), location.as_str())?;
        }
    }
    Ok(())
}

/// Replaces a patient's relations in `scope` with `rows`, writing only what changed.
fn put_relations(
    tx: &redb::WriteTransaction,
    patient: &PatientId,
    scope: RelationScope,
    rows: Vec<(String, i64)>,
) -> Result<(), StoreError> {
    let mut table = tx.open_table(RELATIONS)?;
    let p = patient.as_str();
    let mut old: std::collections::BTreeMap<String, i64> = table
        .range((p, "")..=(p, "\u{10FFFF}"))?
        .map(|item| item.map(|(k, v)| (k.value().1.to_owned(), v.value())))
        .filter(|r| r.as_ref().map_or(true, |(k, _)| scope.covers(k)))
        .collect::<Result<_, _>>()?;
    for (name, value) in rows {
        if old.remove(&name) != Some(value) {
            table.insert((p, name.as_str()), value)?;
        }
    }
    for k in old.keys() {
        table.remove((p, k.as_str()))?;
    }
    Ok(())
}

/// Keeps `value` under `key`, or removes the row when there is none (an empty list is no row).
fn put_or_remove<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<'_, K, &'static [u8]>,
    key: K::SelfType<'k>,
    value: Option<Vec<u8>>,
) -> Result<(), StoreError>
where
    K::SelfType<'k>: Copy,
{
    match value {
        Some(value) => upsert(table, key, &value),
        None => {
            table.remove(key)?;
            Ok(())
        }
    }
}

/// Inserts `value` under `key` unless it is there already. A row derived again unchanged (most
/// rows, at most writes) then costs a lookup instead of the copy of its B-tree path that the
/// commit would write and fsync. Sealing is deterministic, so equal content means equal bytes.
fn upsert<'k, K: redb::Key + 'static>(
    table: &mut redb::Table<'_, K, &'static [u8]>,
    key: K::SelfType<'k>,
    value: &[u8],
) -> Result<(), StoreError>
where
    K::SelfType<'k>: Copy,
{
    if table.get(key)?.is_some_and(|v| v.value() == value) {
        return Ok(());
    }
    table.insert(key, value)?;
    Ok(())
}

/// The version byte that starts an owner list (format 9; format 6-8 lists were JSON).
const OWNED_FORMAT: u8 = 1;

/// An owner list (`DAY_INDEX_OWNERS`): [`OWNED_FORMAT`], the row count, then each row in key
/// order: its key as the bytes it shares with the previous key and the rest (keys of one
/// patient-month share most of theirs), its day as the change from the previous row's, and its
/// fingerprint; lengths and counts are LEB128. About 36 bytes a row; the JSON was 92.
fn encode_owned(mut rows: Vec<OwnedRow>) -> Vec<u8> {
    use crate::codec::{put_varint, zigzag};
    rows.sort_by(|a, b| (&a.key, a.day).cmp(&(&b.key, b.day)));
    let mut out = Vec::with_capacity(4 + rows.len() * 40);
    out.push(OWNED_FORMAT);
    put_varint(&mut out, rows.len() as u64);
    let (mut previous_key, mut previous_day): (&[u8], i64) = (&[], 0);
    for row in &rows {
        let key = row.key.as_bytes();
        let shared = key
            .iter()
            .zip(previous_key)
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut out, shared as u64);
        put_varint(&mut out, (key.len() - shared) as u64);
        out.extend_from_slice(&key[shared..]);
        let day = i64::from(row.day.to_days());
        put_varint(&mut out, zigzag(day - previous_day));
        out.extend_from_slice(&row.fingerprint);
        (previous_key, previous_day) = (key, day);
    }
    out
}

/// What a `DAY_INDEX_OWNERS` value lists (see [`encode_owned`]).
pub(super) fn decode_owned(bytes: &[u8]) -> Result<Vec<OwnedRow>, StoreError> {
    use crate::codec::{ByteReader, unzigzag};
    if bytes.first() != Some(&OWNED_FORMAT) {
        return Err(owned_error("an unknown encoding"));
    }
    let mut r = ByteReader::new(bytes, 1);
    let count = owned_varint(&mut r)?;
    // Each row takes at least 19 bytes: no hostile count makes a large allocation.
    let mut rows = Vec::with_capacity(count.min(bytes.len() as u64 / 19) as usize);
    let (mut key, mut day) = (Vec::new(), 0i64);
    for _ in 0..count {
        let shared = owned_varint(&mut r)? as usize;
        let rest = owned_varint(&mut r)? as usize;
        if shared > key.len() {
            return Err(owned_error("a key shares more than the previous key holds"));
        }
        key.truncate(shared);
        key.extend_from_slice(r.take(rest).map_err(|_| owned_error("truncated"))?);
        day = day
            .checked_add(unzigzag(owned_varint(&mut r)?))
            .ok_or_else(|| owned_error("a day out of range"))?;
        let fingerprint: Fingerprint = r
            .take(16)
            .ok()
            .and_then(|f| f.try_into().ok())
            .ok_or_else(|| owned_error("truncated"))?;
        rows.push(OwnedRow {
            day: i32::try_from(day)
                .ok()
                .and_then(Day::from_days)
                .ok_or_else(|| owned_error("a day out of range"))?,
            key: String::from_utf8(key.clone()).map_err(|_| owned_error("a key is not UTF-8"))?,
            fingerprint,
        });
    }
    Ok(rows)
}

fn owned_varint(r: &mut crate::codec::ByteReader<'_>) -> Result<u64, StoreError> {
    r.varint()
        .ok()
        .flatten()
        .ok_or_else(|| owned_error("truncated"))
}

fn owned_error(what: &str) -> StoreError {
    StoreError::Corrupt(format!("day index owners: {what}"))
}

/// 128 bits of a row's keyed fingerprint.
fn fingerprint(cipher: &Cipher, place: &[u8], row: &[u8]) -> Fingerprint {
    let digest = cipher.fingerprint(place, row);
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn row(day: &str, key: &str, seed: u8) -> OwnedRow {
        OwnedRow {
            day: Day::parse(day).unwrap(),
            key: key.into(),
            fingerprint: [seed; 16],
        }
    }

    #[test]
    fn an_owner_list_decodes_to_its_rows_in_key_order() {
        let p = "p-0123456789abcdef";
        let rows = vec![
            row("2026-11-30", &format!("v/{p}/v-00000000000000ff"), 1),
            row("2026-11-01", &format!("v/{p}/v-0000000000000001"), 2),
            row("2026-12-01", &format!("p/{p}/e-0000000000000001"), 3),
            // A day far from the others, and keys sharing nothing or all but their end.
            row("1999-01-01", "d/S00010/e-0000000000000002", 4),
            row("2026-11-02", &format!("v/{p}/v-0000000000000001x"), 5),
            row("2026-11-02", "ø", 6),
        ];
        let bytes = encode_owned(rows.clone());
        let mut sorted = rows;
        sorted.sort_by(|a, b| (&a.key, a.day).cmp(&(&b.key, b.day)));
        assert_eq!(decode_owned(&bytes).unwrap(), sorted);
        assert_eq!(decode_owned(&encode_owned(Vec::new())).unwrap(), Vec::new());
    }

    #[test]
    fn a_month_of_rows_takes_under_half_the_bytes_of_its_json() {
        let p = "p-0123456789abcdef";
        let rows: Vec<OwnedRow> = (0..75u8)
            .map(|i| {
                let day = format!("2026-11-{:02}", i % 30 + 1);
                row(&day, &format!("v/{p}/v-{:016x}", u64::from(i) * 7919), i)
            })
            .collect();
        let json = serde_json::to_vec(
            &rows
                .iter()
                .map(|r| (r.day.to_string(), &r.key, hex::encode(r.fingerprint)))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let bytes = encode_owned(rows);
        assert!(
            bytes.len() * 2 < json.len(),
            "{} against {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn an_owner_list_cut_short_or_of_another_encoding_is_corrupt() {
        let bytes = encode_owned(vec![
            row("2026-11-01", "v/p/v", 1),
            row("2026-11-02", "v/p/w", 2),
        ]);
        for len in 0..bytes.len() {
            assert!(decode_owned(&bytes[..len]).is_err(), "cut to {len}");
        }
        assert!(
            decode_owned(br#"[["2026-11-01","v/p/v","00"]]"#).is_err(),
            "format 8's JSON"
        );
        let mut sharing_too_much = bytes.clone();
        sharing_too_much[2] = 9;
        assert!(decode_owned(&sharing_too_much).is_err());
    }
}
