//! What the planner takes and what it gives back: plain data, no store and no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::docs::plan::VisitKind;
pub use crate::geo::{InvalidPosition, Position};
use crate::ids::{PatientId, StaffId, VisitId};
use crate::time::{Day, Timestamp};

/// What the coordinator wants most, in the order they set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// The fewest different staff per patient over the week, favouring the care team and the
    /// staff who usually visit.
    Continuity,
    /// The least travel.
    Travel,
    /// Work spread evenly over the staff on shift.
    Balance,
    /// The fewest changes to the plan as it stands (already sent out to the nurses).
    Changes,
}

impl Objective {
    /// Every objective, in the default order.
    pub const ALL: [Objective; 4] = [
        Objective::Continuity,
        Objective::Travel,
        Objective::Balance,
        Objective::Changes,
    ];

    /// The name on the command line and in JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Objective::Continuity => "continuity",
            Objective::Travel => "travel",
            Objective::Balance => "balance",
            Objective::Changes => "changes",
        }
    }

    /// Parses a comma-separated order such as `changes,continuity`. Objectives left out follow
    /// in the default order; a name given twice or unknown is refused.
    pub fn parse_order(value: &str) -> Result<Vec<Objective>, String> {
        let mut order = Vec::new();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let objective = Self::ALL
                .into_iter()
                .find(|o| o.as_str() == name)
                .ok_or_else(|| {
                    format!("unknown objective {name:?}: expected continuity, travel, balance or changes")
                })?;
            if order.contains(&objective) {
                return Err(format!("objective {name:?} is given twice"));
            }
            order.push(objective);
        }
        let rest: Vec<Objective> = Self::ALL
            .into_iter()
            .filter(|o| !order.contains(o))
            .collect();
        order.extend(rest);
        Ok(order)
    }
}

/// Travel minutes between two homes, by road, where the municipality has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoadMatrix {
    /// Minutes from one patient's home to another's (the same both ways).
    #[serde(with = "road_pairs")]
    pub minutes: BTreeMap<(PatientId, PatientId), u32>,
}

/// Most minutes one trip in a road matrix may take.
pub const MAX_TRIP_MIN: u32 = 600;

impl RoadMatrix {
    /// Parses `from;to;minutes` lines (header first; patient ids; whole minutes). Every bad line
    /// is named.
    pub fn parse(text: &str) -> Result<RoadMatrix, String> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines
            .next()
            .unwrap_or("")
            .trim_start_matches('\u{feff}')
            .trim();
        if header != "from;to;minutes" {
            return Err("a road matrix starts with the header from;to;minutes".into());
        }
        let mut minutes = BTreeMap::new();
        let mut errors = Vec::new();
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split(';').map(str::trim).collect();
            let parsed = match fields.as_slice() {
                [from, to, m] => PatientId::parse(from)
                    .and_then(|f| PatientId::parse(to).map(|t| (f, t)))
                    .map_err(|e| e.to_string())
                    .and_then(|(f, t)| match m.parse::<u32>() {
                        Ok(m) if m <= MAX_TRIP_MIN => Ok((f, t, m)),
                        _ => Err(format!("minutes must be 0 to {MAX_TRIP_MIN}, not {m:?}")),
                    }),
                _ => Err(format!("{} fields, expected 3", fields.len())),
            };
            match parsed {
                Ok((from, to, m)) => {
                    minutes.insert((from, to), m);
                }
                Err(e) => errors.push(format!("line {}: {e}", i + 2)),
            }
        }
        if errors.is_empty() {
            Ok(RoadMatrix { minutes })
        } else {
            Err(format!("bad road matrix: {}", errors.join("; ")))
        }
    }
}

/// A road matrix in JSON: a list of `[from, to, minutes]` (a map's keys must be strings).
mod road_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::ids::PatientId;

    type Pairs = BTreeMap<(PatientId, PatientId), u32>;

    pub(super) fn serialize<S: Serializer>(pairs: &Pairs, s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<(&PatientId, &PatientId, &u32)> =
            pairs.iter().map(|((a, b), m)| (a, b, m)).collect();
        list.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        let list: Vec<(PatientId, PatientId, u32)> = Vec::deserialize(d)?;
        Ok(list.into_iter().map(|(a, b, m)| ((a, b), m)).collect())
    }
}

/// How the planner works: the coordinator's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// What to optimise, most important first (every hard rule and placing every visit always
    /// come before these).
    pub objectives: Vec<Objective>,
    /// Travel speed over straight-line distance, km/h (a road detour is part of it).
    pub speed_kmh: f64,
    /// Minutes a visit may start before or after its planned start. Double-staffed visits keep
    /// their planned time, so both staff arrive together.
    pub tolerance_min: u32,
    /// Road travel times, used instead of straight lines where given.
    pub road: RoadMatrix,
    /// Seed for the solver's random choices.
    pub seed: u64,
    /// How long the solver searches, in generations (more: better, slower).
    pub generations: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            objectives: Objective::ALL.to_vec(),
            speed_kmh: DEFAULT_SPEED_KMH,
            tolerance_min: DEFAULT_TOLERANCE_MIN,
            road: RoadMatrix::default(),
            seed: 1,
            generations: DEFAULT_GENERATIONS,
        }
    }
}

/// Default travel speed over straight-line distance: about 40 km/h on roads with a 1.3 detour.
pub const DEFAULT_SPEED_KMH: f64 = 30.0;
/// Default minutes a visit may move from its planned start.
pub const DEFAULT_TOLERANCE_MIN: u32 = 30;
/// Default search effort.
pub const DEFAULT_GENERATIONS: u32 = 300;

/// A patient as the planner needs them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanPatient {
    /// The patient's zone.
    pub zone: Option<String>,
    /// The home, if known (travel to a home without one is not counted).
    pub position: Option<Position>,
    /// The care team (primary and contact nurses).
    pub care_team: Vec<StaffId>,
    /// Staff the patient has blocked (sperring): never assigned.
    pub blocked: Vec<StaffId>,
}

/// A visit to place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanVisit {
    /// The visit.
    pub id: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// Planned start.
    pub start: Timestamp,
    /// Planned end: the visit lasts `end − start`.
    pub end: Timestamp,
    /// In the home or by video (no travel).
    pub kind: VisitKind,
    /// A tiltak of the visit needs an authorised nurse.
    pub needs_authorised: bool,
    /// Staff needed: 1, or 2 for a double-staffed visit (dobbeltbemanning).
    pub staff_needed: u8,
    /// Who is assigned now (the plan as it stands).
    pub current: Vec<StaffId>,
    /// Under way, documented or in the past: kept as it is, and its staff's time is taken.
    pub fixed: bool,
}

/// A staff member on shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStaff {
    /// Staff id.
    pub id: StaffId,
    /// Name, for people.
    pub name: String,
    /// Competence as enrolled (sykepleier, helsefagarbeider, assistent...).
    pub competence: String,
    /// The staff member's zone.
    pub zone: Option<String>,
    /// Shift start: the first visit starts no earlier (travel from `base` included).
    pub shift_start: Timestamp,
    /// Shift end: the last visit (and the way back to `base`) ends no later.
    pub shift_end: Timestamp,
    /// Where the shift starts and ends (the base office), if known.
    pub base: Option<Position>,
}

impl PlanStaff {
    /// Whether the competence makes an authorised nurse (sykepleier, vernepleier and their
    /// specialisations, such as "spesialsykepleier").
    pub fn authorised(&self) -> bool {
        Self::is_authorised(&self.competence)
    }

    /// Whether `competence` makes an authorised nurse.
    pub fn is_authorised(competence: &str) -> bool {
        let c = competence.trim().to_lowercase();
        AUTHORISED.iter().any(|a| c.ends_with(a))
    }
}

/// Competences (as suffixes) that make an authorised nurse for tiltak that need one.
pub const AUTHORISED: [&str; 2] = ["sykepleier", "vernepleier"];

/// A visit a staff member made (or was planned for) recently: the continuity history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastVisit {
    /// The patient.
    pub patient: PatientId,
    /// Who visited.
    pub staff: StaffId,
    /// When.
    pub day: Day,
}

/// Everything the planner needs for one day (and zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// The day planned.
    pub day: Day,
    /// The zone planned (`None`: every zone held; staff serve their own zone's patients).
    pub zone: Option<String>,
    /// The patients with visits that day.
    pub patients: BTreeMap<PatientId, PlanPatient>,
    /// The day's visits (not cancelled).
    pub visits: Vec<PlanVisit>,
    /// Staff on shift.
    pub staff: Vec<PlanStaff>,
    /// Recent visits (28 days up to the day before), for continuity.
    pub history: Vec<PastVisit>,
    /// Nothing that is not fixed starts before this: the time planning starts from (now,
    /// when the day has begun; the sick call, when replanning).
    pub not_before: Option<Timestamp>,
    /// The coordinator's settings.
    pub policy: Policy,
}

/// Days of history that make someone a patient's "usual" staff.
pub const USUAL_DAYS: i32 = 28;

/// Something that happened during the day that the plan must answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Disruption {
    /// A staff member went home sick: nothing of theirs from `from` on.
    Sick {
        /// Who.
        staff: StaffId,
        /// From when.
        from: Timestamp,
    },
    /// A visit runs long: its staff member is held up `minutes` past its planned end.
    Overrun {
        /// The visit.
        visit: VisitId,
        /// Extra minutes.
        minutes: u32,
    },
}

/// Why a visit could not be placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Unplaceable {
    /// No staff member on shift has the competence (an authorised nurse).
    NoCompetentStaff,
    /// Every competent staff member is blocked by the patient or works in another zone.
    AllBlocked,
    /// Fewer staff than a double-staffed visit needs were free at its time.
    NotEnoughStaff {
        /// Staff free at the visit's time.
        free: usize,
    },
    /// Nobody able was free within the visit's time window (visits, travel and shifts full).
    NoTime,
    /// The visit lies outside every able staff member's shift.
    OutsideShifts,
}

impl Unplaceable {
    /// Why, for people.
    pub fn describe(&self) -> String {
        match self {
            Unplaceable::NoCompetentStaff => {
                "no authorised nurse on shift for a tiltak that needs one".into()
            }
            Unplaceable::AllBlocked => {
                "every able staff member is blocked by the patient (sperring) or in another zone"
                    .into()
            }
            Unplaceable::NotEnoughStaff { free } => {
                format!("needs two staff at the same time; only {free} could be free")
            }
            Unplaceable::NoTime => {
                "no able staff member has time for it (visits, travel and shift ends)".into()
            }
            Unplaceable::OutsideShifts => "outside every able staff member's shift".into(),
        }
    }
}

/// Why a move is suggested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reason {
    /// The visit had fewer staff than it needs (unassigned, or one of two).
    Unassigned,
    /// The staff planned lacks the competence (an authorised nurse is needed).
    Competence {
        /// The staff member who lacked it.
        staff: StaffId,
    },
    /// The patient has blocked the staff planned (sperring).
    Blocked {
        /// The blocked staff member.
        staff: StaffId,
    },
    /// The staff planned would be in two places at once (travel included).
    Overlap {
        /// The double-booked staff member.
        staff: StaffId,
    },
    /// The staff planned is not on shift then (or not at all that day).
    OffShift {
        /// Who.
        staff: StaffId,
    },
    /// Continuity: the new staff member knows the patient.
    Continuity {
        /// The new staff member.
        staff: StaffId,
        /// In the patient's care team.
        care_team: bool,
        /// Visits to the patient in the last 28 days, and planned today.
        visits: u32,
    },
    /// Travel: the drive into this visit is shorter than before.
    Travel {
        /// Minutes to get there as planned before.
        minutes_before: u32,
        /// Minutes to get there now.
        minutes_after: u32,
    },
    /// Balance: from a fuller day to an emptier one.
    Balance {
        /// Minutes of work the staff member had before.
        from_minutes: u32,
        /// Minutes of work of the staff member taking it.
        to_minutes: u32,
    },
    /// The staff member called in sick.
    Sick {
        /// Who.
        staff: StaffId,
    },
    /// An earlier visit runs long and the staff member cannot make this one.
    Overrun {
        /// The visit running long.
        visit: VisitId,
    },
    /// The time moves within the tolerance so the route works.
    Time,
    /// No gain for this visit itself: it makes room for another visit on someone's route.
    MakesRoom,
}

impl Reason {
    /// Why, for people: staff and a visit as `staff` and `visit` name them (a name, a time).
    pub fn describe_naming(
        &self,
        staff: &dyn Fn(&StaffId) -> String,
        visit: &dyn Fn(&VisitId) -> String,
    ) -> String {
        let who = self.staff().map(staff).unwrap_or_default();
        match self {
            Reason::Unassigned => "had fewer staff than it needs".into(),
            Reason::Competence { .. } => format!("{who} is not an authorised nurse"),
            Reason::Blocked { .. } => format!("the patient has blocked {who} (sperring)"),
            Reason::Overlap { .. } => format!("{who} would be in two places at once"),
            Reason::OffShift { .. } => format!("{who} is not on shift then"),
            Reason::Continuity {
                care_team, visits, ..
            } => match (care_team, visits) {
                (true, _) => format!("continuity: {who} is in the care team"),
                (false, n) => format!("continuity: {who} visits the patient ({n} visits)"),
            },
            Reason::Travel {
                minutes_before,
                minutes_after,
            } => format!("travel: {minutes_after} min to get there instead of {minutes_before}"),
            Reason::Balance {
                from_minutes,
                to_minutes,
            } => format!("balance: from a {from_minutes}-minute day to a {to_minutes}-minute one"),
            Reason::Sick { .. } => format!("{who} called in sick"),
            Reason::Overrun { visit: v } => format!("{} runs long", visit(v)),
            Reason::Time => "the time moves within the tolerance".into(),
            Reason::MakesRoom => "makes room for another visit".into(),
        }
    }

    /// The staff member the reason is about, if one.
    fn staff(&self) -> Option<&StaffId> {
        match self {
            Reason::Competence { staff }
            | Reason::Blocked { staff }
            | Reason::Overlap { staff }
            | Reason::OffShift { staff }
            | Reason::Continuity { staff, .. }
            | Reason::Sick { staff } => Some(staff),
            _ => None,
        }
    }
}

/// One stop on a staff member's route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stop {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// When the visit starts on this route.
    pub start: Timestamp,
    /// When it ends.
    pub end: Timestamp,
    /// In the home or by video.
    pub kind: VisitKind,
    /// Minutes of travel to get there from the previous stop (or the base).
    pub travel_min: u32,
}

/// A staff member's day in the suggestion, in route order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// Who.
    pub staff: StaffId,
    /// Name.
    pub name: String,
    /// The stops, in order.
    pub stops: Vec<Stop>,
    /// Minutes of visits.
    pub work_min: u32,
    /// Minutes of travel.
    pub travel_min: u32,
}

/// A change to the plan as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Move {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// Staff before.
    pub from: Vec<StaffId>,
    /// Staff after.
    pub to: Vec<StaffId>,
    /// Start before.
    pub start_before: Timestamp,
    /// Start after (equal when only the staff change).
    pub start_after: Timestamp,
    /// Why, most important first.
    #[serde(default)]
    pub reasons: Vec<Reason>,
}

impl Move {
    /// Whether the move changes who goes (the same two staff in another order do not).
    pub fn reassigns(&self) -> bool {
        self.from.len() != self.to.len() || self.from.iter().any(|s| !self.to.contains(s))
    }

    /// Whether the move changes the time.
    pub fn reschedules(&self) -> bool {
        self.start_before != self.start_after
    }
}

/// A visit left unplaced, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unplaced {
    /// The visit.
    pub visit: VisitId,
    /// The patient.
    pub patient: PatientId,
    /// Planned start.
    pub start: Timestamp,
    /// Why.
    pub why: Unplaceable,
}

/// A broken hard rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Violation {
    /// An authorised nurse is needed and the staff member is not one.
    Competence {
        /// The visit.
        visit: VisitId,
        /// The staff member.
        staff: StaffId,
    },
    /// A double-staffed visit has one staff member (or a visit is assigned to the same person
    /// twice).
    DoubleStaffing {
        /// The visit.
        visit: VisitId,
    },
    /// A staff member cannot get from one visit to the next in time.
    Overlap {
        /// The staff member.
        staff: StaffId,
        /// The visit before.
        first: VisitId,
        /// The visit they cannot reach in time.
        second: VisitId,
    },
    /// A visit (or the way back to the base) lies outside the staff member's shift, or the
    /// staff member is not on shift at all.
    OffShift {
        /// The staff member.
        staff: StaffId,
        /// The visit.
        visit: VisitId,
    },
    /// The patient has blocked the staff member (sperring).
    Blocked {
        /// The visit.
        visit: VisitId,
        /// The blocked staff member.
        staff: StaffId,
    },
    /// A visit starts further from its planned time than the tolerance allows.
    Window {
        /// The visit.
        visit: VisitId,
    },
}

impl Violation {
    /// The rule's name, for counting.
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::Competence { .. } => "competence",
            Violation::DoubleStaffing { .. } => "double-staffing",
            Violation::Overlap { .. } => "overlap",
            Violation::OffShift { .. } => "off-shift",
            Violation::Blocked { .. } => "blocked",
            Violation::Window { .. } => "window",
        }
    }
}

/// Figures of a plan, for comparing plans.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Visits placed (with all the staff they need).
    pub placed: usize,
    /// Visits left unplaced (or short of staff).
    pub unplaced: usize,
    /// Hard-rule violations, by rule.
    pub violations: BTreeMap<String, usize>,
    /// Minutes of travel.
    pub travel_min: u64,
    /// Mean different staff per patient today.
    pub staff_per_patient: f64,
    /// Work minutes (visits and travel) of the busiest and the least busy staff member.
    pub load_min: (u32, u32),
    /// Visits whose staff or time differ from the plan as it stands.
    pub changes: usize,
}

impl Figures {
    /// Hard-rule violations, all rules together.
    pub fn violation_count(&self) -> usize {
        self.violations.values().sum()
    }
}

/// Which planner made a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Planner {
    /// The solver (vrp-core), searching from the greedy plan.
    Solver,
    /// The greedy planner.
    Greedy,
    /// Replanning after a sick call or an overrun: the fewest moves.
    Replan,
    /// Nobody: the plan as it stands.
    AsItStands,
}

/// The planner's answer: a suggestion the coordinator accepts, in part or whole, or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// The day.
    pub day: Day,
    /// The zone.
    pub zone: Option<String>,
    /// Who made it.
    pub planner: Planner,
    /// What the coordinator should know about how it was made (a solver that failed and the
    /// greedy planner standing in for it).
    pub notes: Vec<String>,
    /// The objectives in the order used.
    pub objectives: Vec<Objective>,
    /// One route per staff member on shift, in route order.
    pub routes: Vec<Route>,
    /// Changes to the plan as it stands, by start time.
    pub moves: Vec<Move>,
    /// Visits that could not be placed, with why.
    pub unplaced: Vec<Unplaced>,
    /// Hard rules the plan as it stands breaks (which the moves mend).
    pub current_violations: Vec<Violation>,
    /// Figures of the plan as it stands.
    pub before: Figures,
    /// Figures of the suggestion.
    pub after: Figures,
    /// Physical visits to homes without a known position (travel to them is not counted).
    pub homes_without_position: usize,
    /// Visits kept as they are: under way, documented, or before the time planning starts from.
    pub kept: usize,
}
