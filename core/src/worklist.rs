//! Importing a work list of the kind municipal record systems export (Gerica, CosDoc...): one
//! row per planned visit, semicolon-separated, header first. Every row is validated before
//! anything is written; a file with any bad row is refused whole, with every bad row named.
//! Importing the same list twice plans nothing twice.
//!
//! A list imported again after its rows changed: a row is the same visit as one planned when it
//! names the same patient (by national id), day and tiltak (code, one or two staff) — the n-th
//! such row by start is the n-th such visit. What the row says differently (time, kind, the
//! staff member it names) — and differently from what the list said of the visit when it last
//! gave it (`repo::worklist_rows`), so that a coordinator's own move of a visit whose row did not
//! change stays — is applied as plan changes in the same transaction, and each change is
//! reported with its line; a visit already documented (performed or not) is left as it is, and
//! reported. A new patient with the name of a patient already held (another national id) is
//! registered, and reported: it may be the same person under a wrong number.
//!
//! Columns: `date;zone;route;staff_id;staff_name;staff_role;patient_id;patient_name;national_id;
//! address;access_note;tiltak_code;tiltak;start;end;kind;needs_authorised;double_staffed`, and
//! optionally `lat;lon`: the home's position, which goes into the patient record's `location`.
//! A double-staffed row's tiltak is kept apart from the same code done by one (a tiltak says
//! whether it needs two staff).

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde::Serialize;

use crate::docs::plan::{NewVisit, Visit, VisitChange, VisitKind};
use crate::docs::record::PatientField;
use crate::geo::Position;
use crate::ids::{PatientId, StaffId, TiltakId, VisitId};
use crate::repo::{ImportedRow, ListedStaff, NewTiltak, Repo, RepoError, Transaction};
use crate::time::{Day, Timestamp, Zone};

const COLUMNS: [&str; 18] = [
    "date",
    "zone",
    "route",
    "staff_id",
    "staff_name",
    "staff_role",
    "patient_id",
    "patient_name",
    "national_id",
    "address",
    "access_note",
    "tiltak_code",
    "tiltak",
    "start",
    "end",
    "kind",
    "needs_authorised",
    "double_staffed",
];

/// The optional columns after [`COLUMNS`]: the home's position.
const POSITION_COLUMNS: [&str; 2] = ["lat", "lon"];

/// Most rows accepted in one file (a large municipality's day is ~35,000 visits).
pub const MAX_ROWS: usize = 200_000;

/// How a work list's local times (`date` with `start` and `end`) become instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTimes {
    /// Local time in a zone, with the offset in force on each row's day and time (summer and
    /// winter). A time the clocks skip is a bad row; one they pass twice is the first.
    Zone(Zone),
    /// One fixed UTC offset for every row, in seconds east of UTC (an explicit override).
    Offset(i32),
}

impl ListTimes {
    fn at(&self, day: Day, hhmm: &str) -> Result<Timestamp, String> {
        match self {
            ListTimes::Zone(zone) => zone.local(day, hhmm).map_err(|e| e.to_string()),
            ListTimes::Offset(secs) => {
                Timestamp::from_day_hhmm(day, hhmm, *secs).map_err(|e| e.to_string())
            }
        }
    }
}

/// One bad row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Why a work list was refused. Nothing was imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorklistError {
    /// The header is not the expected one.
    #[error("not a work list: {0}")]
    Header(String),
    /// Some rows are invalid; every one is listed.
    #[error("{} invalid row(s), nothing imported: {}", .0.len(), .0.iter().take(5).map(|e| format!("line {}: {}", e.line, e.message)).collect::<Vec<_>>().join("; "))]
    Rows(Vec<RowError>),
    /// Writing failed; nothing was imported.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The staff names could not be kept (`DIR/staff.json`); nothing was imported.
    #[error("keeping the work list's staff names: {0}")]
    StaffNames(String),
}

/// A row whose visit was planned before with other values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowChange {
    /// 1-based line number in the file.
    pub line: usize,
    /// The visit.
    pub visit: VisitId,
    /// The patient's name, as the list gives it.
    pub patient_name: String,
    /// What the list says differently, as people read it ("08:00-08:30 → 09:00-09:30",
    /// "staff S00010 → S00011", "physical → digital").
    pub changes: Vec<String>,
    /// Whether the changes were made; if not, `reason` says why.
    pub applied: bool,
    /// Why not.
    pub reason: Option<String>,
}

/// A patient registered with the name of a patient held already, under another national id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SameName {
    /// The first line naming the new patient.
    pub line: usize,
    /// The name.
    pub patient_name: String,
    /// The patient registered.
    pub patient: PatientId,
    /// The patients held before with that name.
    #[serde(rename = "other_patients")]
    pub others: Vec<PatientId>,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorklistSummary {
    /// Rows in the file.
    pub rows: usize,
    /// Patients registered by this import.
    pub new_patients: usize,
    /// Visits planned by this import.
    pub visits_planned: usize,
    /// Rows whose visit was already planned (an earlier import of the same list).
    pub already_planned: usize,
    /// Visits with no staff assigned ("ufordelt").
    pub unassigned: usize,
    /// Rows whose visit was planned with other values: changed, or why not.
    pub changed: Vec<RowChange>,
    /// New patients with the name of another.
    pub same_name: Vec<SameName>,
    /// Set when the plan was imported but what its rows said could not be kept for the next
    /// import of the list (`DIR/worklist-rows.json`), which then compares with the plan as it
    /// stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

#[derive(Debug, Clone)]
struct Row {
    line: usize,
    zone: String,
    staff: Option<StaffId>,
    staff_name: String,
    staff_role: String,
    patient_name: String,
    national_id: String,
    address: String,
    access_note: String,
    tiltak_code: String,
    tiltak: String,
    start: Timestamp,
    end: Timestamp,
    kind: VisitKind,
    needs_authorised: bool,
    double_staffed: bool,
    position: Option<Position>,
}

impl Row {
    /// What the row says of its visit, to compare the next import with.
    fn imported(&self) -> ImportedRow {
        ImportedRow {
            start: self.start,
            end: self.end,
            kind: self.kind,
            staff: self.staff.clone(),
        }
    }
}

/// Splits one line on `;`, honouring double-quoted fields (`""` is a quote inside one).
fn split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (';', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

fn parse_row(fields: &[String], times: ListTimes, columns: usize) -> Result<Row, String> {
    if fields.len() != columns {
        return Err(format!("{} fields, expected {columns}", fields.len()));
    }
    let f = |name: &str| -> &str {
        let i = COLUMNS.iter().position(|c| *c == name).unwrap_or(0);
        fields[i].trim()
    };
    let required = |name: &str| -> Result<String, String> {
        let v = f(name);
        if v.is_empty() {
            Err(format!("{name} is empty"))
        } else {
            Ok(v.to_owned())
        }
    };
    let yes_no = |name: &str| match f(name) {
        "ja" | "yes" | "true" => Ok(true),
        "nei" | "no" | "false" | "" => Ok(false),
        other => Err(format!("{name} must be ja or nei, not {other:?}")),
    };
    let day = Day::parse(f("date")).map_err(|e| e.to_string())?;
    let start = times
        .at(day, f("start"))
        .map_err(|e| format!("start: {e}"))?;
    let end = times.at(day, f("end")).map_err(|e| format!("end: {e}"))?;
    if end <= start {
        return Err(format!(
            "end {} is not after start {}",
            f("end"),
            f("start")
        ));
    }
    let kind = match f("kind") {
        "physical" | "fysisk" => VisitKind::Physical,
        "digital" | "video" => VisitKind::Digital,
        other => return Err(format!("kind must be physical or digital, not {other:?}")),
    };
    let staff = match f("staff_id") {
        "" => None,
        s => Some(StaffId::parse(s).map_err(|e| e.to_string())?),
    };
    let position = position(fields.get(COLUMNS.len()..).unwrap_or_default())?;
    Ok(Row {
        line: 0,
        zone: f("zone").to_owned(),
        staff,
        staff_name: f("staff_name").to_owned(),
        staff_role: f("staff_role").to_owned(),
        patient_name: required("patient_name")?,
        national_id: required("national_id")?,
        address: f("address").to_owned(),
        access_note: f("access_note").to_owned(),
        tiltak_code: required("tiltak_code")?,
        tiltak: required("tiltak")?,
        start,
        end,
        kind,
        needs_authorised: yes_no("needs_authorised")?,
        double_staffed: yes_no("double_staffed")?,
        position,
    })
}

/// The home's position from the optional `lat;lon` fields (both empty: none).
fn position(fields: &[String]) -> Result<Option<Position>, String> {
    let [lat, lon] = fields else {
        return Ok(None);
    };
    if lat.trim().is_empty() && lon.trim().is_empty() {
        return Ok(None);
    }
    let degrees = |name: &str, v: &str| {
        v.trim()
            .parse::<f64>()
            .map_err(|_| format!("{name} must be decimal degrees, not {v:?}"))
    };
    Position::new(degrees("lat", lat)?, degrees("lon", lon)?)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn parse(text: &str, times: ListTimes) -> Result<Vec<Row>, WorklistError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").trim_start_matches('\u{feff}');
    let names: Vec<String> = split(header).iter().map(|h| h.trim().to_owned()).collect();
    let with_position = COLUMNS.iter().chain(&POSITION_COLUMNS);
    let columns = if names.iter().map(String::as_str).eq(COLUMNS.iter().copied()) {
        COLUMNS.len()
    } else if names.iter().map(String::as_str).eq(with_position.copied()) {
        COLUMNS.len() + POSITION_COLUMNS.len()
    } else {
        return Err(WorklistError::Header(format!(
            "the header must be {}, optionally followed by ;lat;lon",
            COLUMNS.join(";")
        )));
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        if rows.len() + errors.len() >= MAX_ROWS {
            errors.push(RowError {
                line: line_no,
                message: format!("more than {MAX_ROWS} rows"),
            });
            break;
        }
        match parse_row(&split(line), times, columns) {
            Ok(row) => rows.push(Row {
                line: line_no,
                ..row
            }),
            Err(message) => errors.push(RowError {
                line: line_no,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(WorklistError::Rows(errors))
    }
}

impl Repo {
    /// Imports a work list: registers patients not yet held (matched by national id), adds each
    /// patient's tiltak by code, records the homes' positions when the list has them, and plans
    /// every visit — in one transaction, or not at all. `times` says how the list's local times
    /// are read: in the node's zone (summer and winter), or at one fixed offset.
    pub fn import_worklist(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        text: &str,
        times: ListTimes,
    ) -> Result<WorklistSummary, WorklistError> {
        let rows = parse(text, times)?;
        // One import at a time: each reads what the last one's rows said, and keeps its own.
        static IMPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = IMPORTING.lock().unwrap_or_else(|p| p.into_inner());
        // The names first: harmless if the import then fails, and the plan never names staff
        // the base cannot name.
        self.remember_listed_staff(listed_staff(&rows))
            .map_err(|e| WorklistError::StaffNames(e.to_string()))?;
        let mut import = Import {
            now,
            last_rows: self.imported_rows(),
            rows_now: BTreeMap::new(),
            // For what the import says only: without them it names staff by id.
            staff_names: self.staff_names().unwrap_or_default(),
            by_national_id: BTreeMap::new(),
            by_name: BTreeMap::new(),
            tiltak: BTreeMap::new(),
            planned: BTreeSet::new(),
            located: BTreeSet::new(),
            summary: WorklistSummary {
                rows: rows.len(),
                ..WorklistSummary::default()
            },
        };
        self.transaction(|tx| {
            // The patients this node holds, read under the write's lock: one a session stores
            // while the list is read is matched, not registered a second time.
            for (patient, name) in self.patients()? {
                (import.by_name.entry(name.to_lowercase()).or_default()).push(patient.clone());
                if let Some(nid) = self.record(&patient)?.field(PatientField::NationalId) {
                    import.by_national_id.insert(nid.to_owned(), patient);
                }
            }
            // Patients and tiltak in the file's order; then each patient-day-tiltak's rows
            // against the visits planned for it, in order of time.
            let mut groups: BTreeMap<(PatientId, Day, TiltakId), Vec<&Row>> = BTreeMap::new();
            for row in &rows {
                let patient = import.patient(tx, rng, row)?;
                let tiltak = import.tiltak(tx, rng, &patient, row)?;
                groups
                    .entry((patient, row.start.day(), tiltak))
                    .or_default()
                    .push(row);
            }
            for ((patient, day, tiltak), mut group) in groups {
                group.sort_by_key(|r| (r.start, r.end, r.line));
                import.group(tx, rng, &patient, day, &tiltak, &group)?;
            }
            Ok::<_, RepoError>(())
        })?;
        if let Err(e) = self.remember_imported_rows(import.rows_now, now) {
            import.summary.warning = Some(format!(
                "the plan was imported, but its rows could not be kept for the next import of this list (which will compare with the plan as it stands): {e}"
            ));
        }
        Ok(import.summary)
    }
}

/// Whether the visit is documented (performed or not), as of this transaction.
/// The staff the rows name, with the name and role the list gives them.
fn listed_staff(rows: &[Row]) -> BTreeMap<String, ListedStaff> {
    rows.iter()
        .filter(|r| !r.staff_name.is_empty())
        .filter_map(|r| {
            let id = r.staff.as_ref()?;
            let listed = ListedStaff {
                name: r.staff_name.clone(),
                role: r.staff_role.clone(),
                zone: (!r.zone.is_empty()).then(|| r.zone.clone()),
            };
            Some((id.to_string(), listed))
        })
        .collect()
}

/// One import's bookkeeping: what it found or made so far, so each patient, tiltak and visit
/// is looked up once.
struct Import {
    now: Timestamp,
    /// What earlier imports' rows said of their visits.
    last_rows: BTreeMap<VisitId, ImportedRow>,
    /// What this import's rows say, kept for the next once this one is committed.
    rows_now: BTreeMap<VisitId, ImportedRow>,
    /// Staff names (this list's included), for what the import says it changed.
    staff_names: BTreeMap<String, String>,
    by_national_id: BTreeMap<String, PatientId>,
    /// Patients held before the import, by name in lower case.
    by_name: BTreeMap<String, Vec<PatientId>>,
    /// (patient, code, double-staffed) → tiltak.
    tiltak: BTreeMap<(PatientId, String, bool), TiltakId>,
    planned: BTreeSet<(PatientId, Timestamp, Timestamp)>,
    /// Patients whose position this import has checked.
    located: BTreeSet<PatientId>,
    summary: WorklistSummary,
}

impl Import {
    /// One patient-day-tiltak's rows (by time) against the visits planned for it (by time): the
    /// n-th row is the n-th visit; rows beyond them are new visits.
    fn group(
        &mut self,
        tx: &mut Transaction<'_>,
        rng: &mut impl RngCore,
        patient: &PatientId,
        day: Day,
        tiltak: &TiltakId,
        rows: &[&Row],
    ) -> Result<(), RepoError> {
        let month = day.month();
        let mut planned: Vec<Visit> = tx
            .visits_of(patient, month)?
            .into_iter()
            .filter(|v| v.day() == day && v.tiltak.contains(tiltak))
            .collect();
        planned.sort_by_key(|v| (v.start, v.end));
        // A row the list gave a visit last time is that visit again, wherever a coordinator
        // has moved it since; the rest pair by position (the n-th row, the n-th visit).
        let mut rows: Vec<(&Row, Option<Visit>)> = rows.iter().map(|r| (*r, None)).collect();
        for (row, paired) in &mut rows {
            let same = |v: &Visit| self.last_rows.get(&v.id) == Some(&row.imported());
            if let Some(at) = planned.iter().position(same) {
                *paired = Some(planned.remove(at));
            }
        }
        let mut planned = planned.into_iter();
        for (row, paired) in rows {
            // A row repeating another's patient and time (a double-staffed visit listed once
            // per route) is one visit.
            if !self.planned.insert((patient.clone(), row.start, row.end)) {
                self.summary.already_planned += 1;
                continue;
            }
            let Some(visit) = paired.or_else(|| planned.next()) else {
                self.plan(tx, rng, patient, tiltak, row)?;
                continue;
            };
            self.summary.already_planned += 1;
            self.update(tx, rng, &visit, row)?;
        }
        Ok(())
    }

    fn plan(
        &mut self,
        tx: &mut Transaction<'_>,
        rng: &mut impl RngCore,
        patient: &PatientId,
        tiltak: &TiltakId,
        row: &Row,
    ) -> Result<(), RepoError> {
        let id = tx.plan_visit(
            self.now,
            rng,
            &NewVisit {
                patient: patient.clone(),
                start: row.start,
                end: row.end,
                kind: row.kind,
                tiltak: vec![tiltak.clone()],
                staff: row.staff.clone().into_iter().collect(),
            },
        )?;
        self.rows_now.insert(id, row.imported());
        self.summary.visits_planned += 1;
        if row.staff.is_none() {
            self.summary.unassigned += 1;
        }
        Ok(())
    }

    /// What `row` says differently from `visit` as planned, made as plan changes — unless the
    /// visit is documented, and only what the list changed since it last gave the visit: a
    /// value the list still says as before is not put back over a coordinator's own change of
    /// it. A row names one staff member: it changes the assignment only when the visit does not
    /// have that member (a second one added for a double-staffed visit stays), and a row with
    /// nobody leaves the assignment as it is.
    fn update(
        &mut self,
        tx: &mut Transaction<'_>,
        rng: &mut impl RngCore,
        visit: &Visit,
        row: &Row,
    ) -> Result<(), RepoError> {
        let last = self.last_rows.get(&visit.id).cloned();
        self.rows_now.insert(visit.id.clone(), row.imported());
        // What the list says as it said last time is no change of the list's.
        let listed_again = |same: &dyn Fn(&ImportedRow) -> bool| last.as_ref().is_some_and(same);
        let mut changes = Vec::new();
        let mut said = Vec::new();
        if (visit.start, visit.end) != (row.start, row.end)
            && !listed_again(&|l| (l.start, l.end) == (row.start, row.end))
        {
            changes.push(VisitChange::Reschedule {
                start: row.start,
                end: row.end,
            });
            said.push(format!(
                "{}-{} → {}-{}",
                visit.start.hhmm(),
                visit.end.hhmm(),
                row.start.hhmm(),
                row.end.hhmm()
            ));
        }
        if let Some(staff) = &row.staff
            && !visit.staff.contains(staff)
            && !listed_again(&|l| l.staff == row.staff)
        {
            changes.push(VisitChange::Assign(vec![staff.clone()]));
            let before = crate::repo::staff_list(&visit.staff, &self.staff_names);
            let after = crate::repo::staff_list(std::slice::from_ref(staff), &self.staff_names);
            said.push(format!("staff {before} → {after}"));
        }
        if visit.kind != row.kind && !listed_again(&|l| l.kind == row.kind) {
            changes.push(VisitChange::SetKind(row.kind));
            said.push(format!("{} → {}", visit.kind.as_str(), row.kind.as_str()));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let documented = tx.is_documented(visit)?;
        let reason = documented.then(|| {
            "the visit is documented already (performed or not): the plan is left as it was"
                .to_owned()
        });
        if !documented {
            for change in &changes {
                tx.change_visit(self.now, rng, &visit.id, change)?;
            }
        }
        self.summary.changed.push(RowChange {
            line: row.line,
            visit: visit.id.clone(),
            patient_name: row.patient_name.clone(),
            changes: said,
            applied: !documented,
            reason,
        });
        Ok(())
    }

    /// The row's patient, registered if not held; a position the record lacks (or has
    /// otherwise) is written.
    fn patient(
        &mut self,
        tx: &mut Transaction<'_>,
        rng: &mut impl RngCore,
        row: &Row,
    ) -> Result<PatientId, RepoError> {
        if let Some(p) = self.by_national_id.get(&row.national_id) {
            let p = p.clone();
            if let Some(position) = row.position
                && self.located.insert(p.clone())
            {
                let location = position.to_string();
                if tx.record(&p)?.field(PatientField::Location) != Some(location.as_str()) {
                    tx.set_patient_field(self.now, &p, PatientField::Location, &location)?;
                }
            }
            return Ok(p);
        }
        let mut fields = vec![
            (PatientField::Name, row.patient_name.clone()),
            (PatientField::NationalId, row.national_id.clone()),
            (PatientField::Zone, row.zone.clone()),
        ];
        if !row.address.is_empty() {
            fields.push((PatientField::Address, row.address.clone()));
        }
        if !row.access_note.is_empty() {
            fields.push((PatientField::AccessNote, row.access_note.clone()));
        }
        if let Some(position) = row.position {
            fields.push((PatientField::Location, position.to_string()));
        }
        let p = tx.add_patient(self.now, rng, &fields)?;
        if let Some(others) = self.by_name.get(&row.patient_name.to_lowercase()) {
            self.summary.same_name.push(SameName {
                line: row.line,
                patient_name: row.patient_name.clone(),
                patient: p.clone(),
                others: others.clone(),
            });
        }
        self.by_national_id
            .insert(row.national_id.clone(), p.clone());
        self.located.insert(p.clone());
        self.summary.new_patients += 1;
        Ok(p)
    }

    /// The patient's tiltak with the row's code (and one or two staff), added if missing.
    fn tiltak(
        &mut self,
        tx: &mut Transaction<'_>,
        rng: &mut impl RngCore,
        patient: &PatientId,
        row: &Row,
    ) -> Result<TiltakId, RepoError> {
        let key = (patient.clone(), row.tiltak_code.clone(), row.double_staffed);
        if let Some(t) = self.tiltak.get(&key) {
            return Ok(t.clone());
        }
        let existing = tx
            .record(patient)?
            .tiltak
            .iter()
            .find(|t| {
                t.code.as_deref() == Some(row.tiltak_code.as_str())
                    && t.double_staffed == row.double_staffed
            })
            .map(|t| t.id.clone());
        let id = match existing {
            Some(id) => id,
            None => tx.add_tiltak(
                self.now,
                rng,
                patient,
                &NewTiltak {
                    vedtak_title: None,
                    code: Some(row.tiltak_code.clone()),
                    description: row.tiltak.clone(),
                    times: Vec::new(),
                    weekdays: Vec::new(),
                    health_care: true,
                    requires_authorised_nurse: row.needs_authorised,
                    double_staffed: row.double_staffed,
                },
            )?,
        };
        self.tiltak.insert(key, id.clone());
        Ok(id)
    }
}
