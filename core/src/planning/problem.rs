//! [`Problem`]: a [`PlanInput`] checked and indexed for solving. Times are whole minutes since
//! the Unix epoch; visits, staff and patients are indexes into their vectors.

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use super::model::{PlanInput, PlanVisit, Position};
use crate::docs::plan::VisitKind;
use crate::ids::{PatientId, StaffId, VisitId};
use crate::time::Timestamp;

/// Most visits in one suggestion (a large municipality's day is ~35,000).
pub const MAX_VISITS: usize = 50_000;
/// Most staff in one suggestion.
pub const MAX_STAFF: usize = 5_000;
/// Most minutes a visit may move from its planned start.
pub const MAX_TOLERANCE_MIN: u32 = 240;

/// A visit, indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitSpec {
    /// Index into [`Problem::patients`].
    pub patient: usize,
    /// Planned start (minutes since the epoch).
    pub planned: i64,
    /// Minutes the visit lasts.
    pub duration: i64,
    /// Earliest start allowed.
    pub earliest: i64,
    /// Latest start allowed.
    pub latest: i64,
    /// Where it happens: `None` for a video visit or a home without a position (no travel).
    pub location: Option<usize>,
    /// Needs an authorised nurse.
    pub needs_authorised: bool,
    /// 1 or 2.
    pub staff_needed: usize,
    /// Staff assigned now who are on shift (indexes); see [`Problem::current_staff`] for all.
    pub current: Vec<usize>,
    /// Kept as it is.
    pub fixed: bool,
}

/// A staff member on shift, indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffSpec {
    /// Shift start (minutes since the epoch).
    pub shift_start: i64,
    /// Shift end.
    pub shift_end: i64,
    /// An authorised nurse.
    pub authorised: bool,
    /// Index of the base office's location, if known.
    pub base: Option<usize>,
}

/// A patient, indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSpec {
    /// Index of the home's location, if known.
    pub location: Option<usize>,
    /// Staff (indexes) who may not go: blocked, or of another zone.
    pub excluded: BTreeSet<usize>,
    /// Care team members on shift (indexes).
    pub care_team: BTreeSet<usize>,
    /// Visits by each staff member (index) in the history, and staff seen this week.
    pub usual: BTreeMap<usize, u32>,
    /// Staff (indexes) who visited the patient earlier this week: no new face.
    pub this_week: BTreeSet<usize>,
}

/// A checked, indexed planning problem.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The input, as given.
    pub input: PlanInput,
    /// Visits, in the input's order.
    pub visits: Vec<VisitSpec>,
    /// Staff, in the input's order.
    pub staff: Vec<StaffSpec>,
    /// Patients, in id order.
    pub patients: Vec<PatientSpec>,
    /// Patient ids, by index.
    pub patient_ids: Vec<PatientId>,
    /// Travel minutes between locations, row-major.
    travel: Vec<u16>,
    locations: usize,
    staff_index: BTreeMap<StaffId, usize>,
    visit_index: BTreeMap<VisitId, usize>,
}

impl Problem {
    /// Checks and indexes `input`. Every inconsistency is an error naming what is wrong.
    pub fn new(input: PlanInput) -> Result<Problem, PlanError> {
        validate(&input)?;
        let staff_index = index_of(input.staff.iter().map(|s| s.id.clone()), "staff")?;
        let visit_index = index_of(input.visits.iter().map(|v| v.id.clone()), "visit")?;
        let mut positions: Vec<Position> = Vec::new();
        let mut locate = |p: Option<Position>| {
            p.map(|p| {
                positions.push(p);
                positions.len() - 1
            })
        };
        let patient_ids: Vec<PatientId> = input.patients.keys().cloned().collect();
        let homes: Vec<Option<usize>> = input
            .patients
            .values()
            .map(|p| locate(p.position))
            .collect();
        let staff: Vec<StaffSpec> = input
            .staff
            .iter()
            .map(|s| StaffSpec {
                shift_start: minutes(&s.shift_start),
                shift_end: minutes(&s.shift_end),
                authorised: s.authorised(),
                base: locate(s.base),
            })
            .collect();
        let travel = travel_matrix(&input, &positions, &patient_ids, &homes);
        let patient_index: BTreeMap<&PatientId, usize> = patient_ids
            .iter()
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect();
        let patients = patient_specs(&input, &patient_ids, &homes, &staff_index);
        let visits = input
            .visits
            .iter()
            .map(|v| {
                let patient = *patient_index.get(&v.patient).ok_or_else(|| {
                    PlanError::Invalid(format!(
                        "visit {} names patient {} with no record",
                        v.id, v.patient
                    ))
                })?;
                Ok(visit_spec(&input, v, patient, &patients, &staff_index))
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        Ok(Problem {
            locations: positions.len(),
            input,
            visits,
            staff,
            patients,
            patient_ids,
            travel,
            staff_index,
            visit_index,
        })
    }

    /// Minutes of travel between two locations (`None`: no travel, e.g. a video visit).
    pub fn travel(&self, from: Option<usize>, to: Option<usize>) -> i64 {
        match (from, to) {
            (Some(a), Some(b)) if a != b => i64::from(self.travel[a * self.locations + b]),
            _ => 0,
        }
    }

    /// The staff index of an id, if on shift.
    pub fn staff_index(&self, id: &StaffId) -> Option<usize> {
        self.staff_index.get(id).copied()
    }

    /// The visit index of an id.
    pub fn visit_index(&self, id: &VisitId) -> Option<usize> {
        self.visit_index.get(id).copied()
    }

    /// Whether staff member `s` may do visit `v`: competence, no block, same zone.
    pub fn eligible(&self, v: usize, s: usize) -> bool {
        let visit = &self.visits[v];
        (!visit.needs_authorised || self.staff[s].authorised)
            && !self.patients[visit.patient].excluded.contains(&s)
    }

    /// The staff assigned to visit `v` in the plan as it stands, on shift or not.
    pub fn current_staff(&self, v: usize) -> &[StaffId] {
        &self.input.visits[v].current
    }

    /// A time in minutes as a timestamp in the offset of visit `v`'s planned start.
    pub fn timestamp(&self, v: usize, minute: i64) -> Timestamp {
        self.input.visits[v]
            .start
            .plus_minutes(minute - self.visits[v].planned)
    }

    /// What a new pairing of staff `s` with visit `v`'s patient costs for continuity: nothing if
    /// they met this week, less for the care team and usual staff than for a stranger.
    pub fn continuity_cost(&self, v: usize, s: usize) -> u32 {
        let patient = &self.patients[self.visits[v].patient];
        if patient.this_week.contains(&s) {
            0
        } else if patient.care_team.contains(&s) {
            6
        } else if patient.usual.contains_key(&s) {
            8
        } else {
            10
        }
    }
}

/// Visit `v` (of patient index `patient`), indexed: its window, location and staff.
fn visit_spec(
    input: &PlanInput,
    v: &PlanVisit,
    patient: usize,
    patients: &[PatientSpec],
    staff_index: &BTreeMap<StaffId, usize>,
) -> VisitSpec {
    let planned = minutes(&v.start);
    // Two staff assigned by the coordinator are a double-staffed visit, whatever its tiltak say
    // (as the day's plan would show it).
    let staff_needed = if v.fixed {
        v.staff_needed
    } else {
        v.staff_needed
            .max(u8::try_from(v.current.len()).unwrap_or(2))
    };
    let tolerance = if v.fixed || staff_needed == 2 {
        0
    } else {
        i64::from(input.policy.tolerance_min)
    };
    // A planned visit never moves into the time already gone.
    let not_before = match (&input.not_before, v.fixed) {
        (Some(t), false) => minutes(t),
        _ => i64::MIN,
    };
    VisitSpec {
        patient,
        planned,
        duration: minutes(&v.end) - planned,
        earliest: (planned - tolerance).max(not_before),
        latest: planned + tolerance,
        location: match v.kind {
            VisitKind::Physical => patients[patient].location,
            VisitKind::Digital => None,
        },
        needs_authorised: v.needs_authorised,
        staff_needed: usize::from(staff_needed),
        current: v
            .current
            .iter()
            .filter_map(|s| staff_index.get(s).copied())
            .collect(),
        fixed: v.fixed,
    }
}

/// Minutes since the epoch (floored).
pub fn minutes(t: &Timestamp) -> i64 {
    t.unix_millis().div_euclid(60_000)
}

fn validate(input: &PlanInput) -> Result<(), PlanError> {
    let p = &input.policy;
    if !(p.speed_kmh.is_finite() && p.speed_kmh >= 1.0 && p.speed_kmh <= 200.0) {
        return Err(PlanError::Invalid(format!(
            "the travel speed must be 1 to 200 km/h, not {}",
            p.speed_kmh
        )));
    }
    if p.tolerance_min > MAX_TOLERANCE_MIN {
        return Err(PlanError::Invalid(format!(
            "the tolerance must be at most {MAX_TOLERANCE_MIN} minutes, not {}",
            p.tolerance_min
        )));
    }
    if input.visits.len() > MAX_VISITS || input.staff.len() > MAX_STAFF {
        return Err(PlanError::Invalid(format!(
            "at most {MAX_VISITS} visits and {MAX_STAFF} staff in one suggestion"
        )));
    }
    for s in &input.staff {
        let length = s.shift_start.minutes_until(&s.shift_end);
        if !(1..=24 * 60).contains(&length) {
            return Err(PlanError::Invalid(format!(
                "the shift of {} must end after it starts and last at most 24 hours ({} to {})",
                s.id, s.shift_start, s.shift_end
            )));
        }
    }
    for v in &input.visits {
        if v.start.day() != input.day {
            return Err(PlanError::Invalid(format!(
                "visit {} is on {}, not on {}",
                v.id,
                v.start.day(),
                input.day
            )));
        }
        if !(1..=24 * 60).contains(&v.start.minutes_until(&v.end)) {
            return Err(PlanError::Invalid(format!(
                "visit {} must end after it starts, within 24 hours",
                v.id
            )));
        }
        if !(1..=2).contains(&v.staff_needed) || v.current.len() > 2 {
            return Err(PlanError::Invalid(format!(
                "visit {} needs 1 or 2 staff and has at most 2",
                v.id
            )));
        }
    }
    Ok(())
}

fn index_of<T: Ord + Clone + std::fmt::Display>(
    ids: impl Iterator<Item = T>,
    what: &str,
) -> Result<BTreeMap<T, usize>, PlanError> {
    let mut index = BTreeMap::new();
    for (i, id) in ids.enumerate() {
        if index.insert(id.clone(), i).is_some() {
            return Err(PlanError::Invalid(format!("{what} {id} is given twice")));
        }
    }
    Ok(index)
}

/// Minutes between every pair of locations: the road matrix where it has the pair of homes,
/// else straight-line distance at the policy's speed, rounded up (a trip is at least a minute).
fn travel_matrix(
    input: &PlanInput,
    positions: &[Position],
    patient_ids: &[PatientId],
    homes: &[Option<usize>],
) -> Vec<u16> {
    let n = positions.len();
    let mut travel = vec![0u16; n * n];
    for a in 0..n {
        for b in (a + 1)..n {
            let hours = positions[a].km_to(&positions[b]) / input.policy.speed_kmh;
            let minutes = (hours * 60.0).ceil().clamp(1.0, f64::from(u16::MAX)) as u16;
            travel[a * n + b] = minutes;
            travel[b * n + a] = minutes;
        }
    }
    let location_of: BTreeMap<&PatientId, usize> = patient_ids
        .iter()
        .zip(homes)
        .filter_map(|(p, h)| h.map(|h| (p, h)))
        .collect();
    for ((from, to), minutes) in &input.policy.road.minutes {
        if let (Some(&a), Some(&b)) = (location_of.get(from), location_of.get(to)) {
            let m = u16::try_from(*minutes).unwrap_or(u16::MAX);
            travel[a * n + b] = m;
            travel[b * n + a] = m;
        }
    }
    travel
}

fn patient_specs(
    input: &PlanInput,
    patient_ids: &[PatientId],
    homes: &[Option<usize>],
    staff_index: &BTreeMap<StaffId, usize>,
) -> Vec<PatientSpec> {
    let week_start = input.day.to_days() - (input.day.to_days() + 3).rem_euclid(7);
    let mut usual: BTreeMap<&PatientId, BTreeMap<usize, u32>> = BTreeMap::new();
    let mut this_week: BTreeMap<&PatientId, BTreeSet<usize>> = BTreeMap::new();
    for past in &input.history {
        let Some(&s) = staff_index.get(&past.staff) else {
            continue;
        };
        *usual
            .entry(&past.patient)
            .or_default()
            .entry(s)
            .or_default() += 1;
        if (week_start..input.day.to_days()).contains(&past.day.to_days()) {
            this_week.entry(&past.patient).or_default().insert(s);
        }
    }
    patient_ids
        .iter()
        .zip(homes)
        .map(|(id, home)| {
            let p = &input.patients[id];
            let index = |ids: &[StaffId]| -> BTreeSet<usize> {
                ids.iter()
                    .filter_map(|s| staff_index.get(s).copied())
                    .collect()
            };
            let mut excluded = index(&p.blocked);
            for (s, staff) in input.staff.iter().enumerate() {
                if let (Some(a), Some(b)) = (&p.zone, &staff.zone)
                    && a != b
                {
                    excluded.insert(s);
                }
            }
            PatientSpec {
                location: *home,
                excluded,
                care_team: index(&p.care_team),
                usual: usual.remove(id).unwrap_or_default(),
                this_week: this_week.remove(id).unwrap_or_default(),
            }
        })
        .collect()
}
