//! Importing a work list of the kind municipal record systems export (Gerica, CosDoc...): one
//! row per planned visit, semicolon-separated, header first. Every row is validated before
//! anything is written; a file with any bad row is refused whole, with every bad row named.
//! Importing the same list twice plans nothing twice.
//!
//! Columns: `date;zone;route;staff_id;staff_name;staff_role;patient_id;patient_name;national_id;
//! address;access_note;tiltak_code;tiltak;start;end;kind;needs_authorised;double_staffed`.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde::Serialize;

use crate::docs::plan::{NewVisit, VisitKind};
use crate::docs::record::PatientField;
use crate::ids::{PatientId, StaffId, TiltakId};
use crate::repo::{NewTiltak, Repo, RepoError};
use crate::time::{Day, Timestamp};

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

/// Most rows accepted in one file (a large municipality's day is ~35,000 visits).
pub const MAX_ROWS: usize = 200_000;

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
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
}

#[derive(Debug, Clone)]
struct Row {
    zone: String,
    staff: Option<StaffId>,
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

fn parse_row(fields: &[String], offset_secs: i32) -> Result<Row, String> {
    if fields.len() != COLUMNS.len() {
        return Err(format!(
            "{} fields, expected {}",
            fields.len(),
            COLUMNS.len()
        ));
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
    let start = Timestamp::from_day_hhmm(day, f("start"), offset_secs)
        .map_err(|e| format!("start: {e}"))?;
    let end =
        Timestamp::from_day_hhmm(day, f("end"), offset_secs).map_err(|e| format!("end: {e}"))?;
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
    Ok(Row {
        zone: f("zone").to_owned(),
        staff,
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
    })
}

fn parse(text: &str, offset_secs: i32) -> Result<Vec<Row>, WorklistError> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").trim_start_matches('\u{feff}');
    if split(header)
        .iter()
        .map(|h| h.trim())
        .ne(COLUMNS.iter().copied())
    {
        return Err(WorklistError::Header(format!(
            "the header must be {}",
            COLUMNS.join(";")
        )));
    }
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
        match parse_row(&split(line), offset_secs) {
            Ok(row) => rows.push(row),
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
    /// patient's tiltak by code, and plans every visit — in one transaction, or not at all.
    /// `offset_secs` is the UTC offset of the list's local times.
    pub fn import_worklist(
        &self,
        now: Timestamp,
        rng: &mut impl RngCore,
        text: &str,
        offset_secs: i32,
    ) -> Result<WorklistSummary, WorklistError> {
        let rows = parse(text, offset_secs)?;
        let mut by_national_id: BTreeMap<String, PatientId> = BTreeMap::new();
        for (patient, _) in self.patients()? {
            if let Some(nid) = self.record(&patient)?.field(PatientField::NationalId) {
                by_national_id.insert(nid.to_owned(), patient);
            }
        }
        let mut summary = WorklistSummary {
            rows: rows.len(),
            ..WorklistSummary::default()
        };
        self.transaction(|tx| {
            let mut tiltak: BTreeMap<(PatientId, String), TiltakId> = BTreeMap::new();
            let mut planned: BTreeSet<(PatientId, Timestamp, Timestamp)> = BTreeSet::new();
            let mut loaded: BTreeSet<(PatientId, crate::time::Month)> = BTreeSet::new();
            for row in &rows {
                let patient = match by_national_id.get(&row.national_id) {
                    Some(p) => p.clone(),
                    None => {
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
                        let p = tx.add_patient(now, rng, &fields)?;
                        by_national_id.insert(row.national_id.clone(), p.clone());
                        summary.new_patients += 1;
                        p
                    }
                };
                let key = (patient.clone(), row.tiltak_code.clone());
                let tiltak_id = match tiltak.get(&key) {
                    Some(t) => t.clone(),
                    None => {
                        let record = tx.record(&patient)?;
                        let existing = record
                            .tiltak
                            .iter()
                            .find(|t| t.code.as_deref() == Some(row.tiltak_code.as_str()))
                            .map(|t| t.id.clone());
                        let id = match existing {
                            Some(id) => id,
                            None => tx.add_tiltak(
                                now,
                                rng,
                                &patient,
                                &NewTiltak {
                                    vedtak_title: None,
                                    code: Some(row.tiltak_code.clone()),
                                    description: row.tiltak.clone(),
                                    times: Vec::new(),
                                    weekdays: Vec::new(),
                                    health_care: true,
                                    requires_authorised_nurse: row.needs_authorised,
                                },
                            )?,
                        };
                        tiltak.insert(key, id.clone());
                        id
                    }
                };
                let month = row.start.day().month();
                if loaded.insert((patient.clone(), month)) {
                    for visit in tx.visits_of(&patient, month)? {
                        planned.insert((patient.clone(), visit.start, visit.end));
                    }
                }
                if !planned.insert((patient.clone(), row.start, row.end)) {
                    summary.already_planned += 1;
                    continue;
                }
                tx.plan_visit(
                    now,
                    rng,
                    &NewVisit {
                        patient,
                        start: row.start,
                        end: row.end,
                        kind: row.kind,
                        tiltak: vec![tiltak_id],
                        staff: row.staff.clone().into_iter().collect(),
                    },
                )?;
                summary.visits_planned += 1;
                if row.staff.is_none() {
                    summary.unassigned += 1;
                }
            }
            Ok::<_, RepoError>(())
        })?;
        Ok(summary)
    }
}
