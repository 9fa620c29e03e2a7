//! Hand-built days for the planning assistant's tests: staff with shifts and competences,
//! patients at positions, visits at times, and both planners run on them with every
//! suggestion checked against the hard rules from what it shows.

use omsyn_core::docs::plan::VisitKind;
use omsyn_core::ids::{PatientId, StaffId, VisitId};
use omsyn_core::planning::check::suggestion_violations;
use omsyn_core::planning::{
    Disruption, PastVisit, PlanInput, PlanPatient, PlanStaff, PlanVisit, Policy, Position,
    Suggestion, replan, suggest_greedy, suggest_replan,
};
use omsyn_core::{Day, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::at;

/// The day every hand-built day is on (a Monday).
pub const DAY: &str = "2026-11-23";

/// A day being built.
#[derive(Debug)]
pub struct HandDay {
    /// What the planners get.
    pub input: PlanInput,
    rng: StdRng,
}

impl Default for HandDay {
    fn default() -> Self {
        Self::new()
    }
}

impl HandDay {
    /// An empty day with the default policy, searching briefly (tests need no best plan).
    pub fn new() -> HandDay {
        HandDay {
            input: PlanInput {
                day: Day::parse(DAY).expect("valid day"),
                zone: None,
                patients: Default::default(),
                visits: Vec::new(),
                staff: Vec::new(),
                history: Vec::new(),
                not_before: None,
                policy: Policy {
                    generations: 30,
                    ..Policy::default()
                },
            },
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// A staff member on shift `from`–`to` (`HH:MM`).
    pub fn staff(&mut self, id: &str, competence: &str, from: &str, to: &str) -> StaffId {
        let staff = StaffId::parse(id).expect("valid staff id");
        self.input.staff.push(PlanStaff {
            id: staff.clone(),
            name: format!("Staff {id}"),
            competence: competence.into(),
            zone: None,
            shift_start: at(from),
            shift_end: at(to),
            base: None,
        });
        staff
    }

    /// A patient at `lat,lon` (None: position unknown).
    pub fn patient(&mut self, position: Option<(f64, f64)>) -> PatientId {
        let id = PatientId::random(&mut self.rng);
        let position = position.map(|(lat, lon)| Position::new(lat, lon).expect("on the globe"));
        self.input.patients.insert(
            id.clone(),
            PlanPatient {
                position,
                ..PlanPatient::default()
            },
        );
        id
    }

    /// A physical visit to `patient` at `start` (`HH:MM`) lasting `minutes`, for one staff
    /// member, unassigned.
    pub fn visit(&mut self, patient: &PatientId, start: &str, minutes: i64) -> VisitId {
        let id = VisitId::random(&mut self.rng);
        let start = at(start);
        self.input.visits.push(PlanVisit {
            id: id.clone(),
            patient: patient.clone(),
            start,
            end: start.plus_minutes(minutes),
            kind: VisitKind::Physical,
            needs_authorised: false,
            staff_needed: 1,
            current: Vec::new(),
            fixed: false,
        });
        id
    }

    /// Changes a visit.
    pub fn with(&mut self, visit: &VisitId, f: impl FnOnce(&mut PlanVisit)) {
        let v = self
            .input
            .visits
            .iter_mut()
            .find(|v| &v.id == visit)
            .expect("the visit is in the day");
        f(v);
    }

    /// Changes a patient.
    pub fn patient_with(&mut self, patient: &PatientId, f: impl FnOnce(&mut PlanPatient)) {
        f(self
            .input
            .patients
            .get_mut(patient)
            .expect("the patient is in the day"));
    }

    /// `staff` visited `patient` `times` times in the last days (before this week).
    pub fn history(&mut self, patient: &PatientId, staff: &StaffId, times: usize) {
        let before = Day::from_days(self.input.day.to_days() - 7).expect("valid day");
        for _ in 0..times {
            self.input.history.push(PastVisit {
                patient: patient.clone(),
                staff: staff.clone(),
                day: before,
            });
        }
    }

    /// The solver's and the greedy planner's suggestions, each checked: no hard rule broken,
    /// every visit routed or listed as unplaced.
    pub fn both(&self) -> [Suggestion; 2] {
        let solver = omsyn_planner::suggest(self.input.clone()).expect("the solver suggests");
        assert_eq!(
            solver.notes,
            Vec::<String>::new(),
            "the solver did not fail"
        );
        let greedy = suggest_greedy(self.input.clone()).expect("the greedy planner suggests");
        for s in [&solver, &greedy] {
            assert_eq!(
                suggestion_violations(&self.input, s).expect("a consistent suggestion"),
                vec![],
                "a suggestion breaks a hard rule"
            );
        }
        [solver, greedy]
    }

    /// The replan after `disruption`, checked against the day as the disruption left it.
    pub fn replan(&self, disruption: &Disruption) -> Suggestion {
        let s = suggest_replan(self.input.clone(), disruption).expect("the replan");
        let (after, _) = replan::disrupted(self.input.clone(), disruption).expect("disrupted");
        assert_eq!(
            suggestion_violations(&after, &s).expect("a consistent replan"),
            vec![],
            "a replan breaks a hard rule"
        );
        s
    }
}

/// The staff a suggestion routes `visit` to, and its start there.
pub fn routed(s: &Suggestion, visit: &VisitId) -> (Vec<StaffId>, Option<Timestamp>) {
    let mut staff = Vec::new();
    let mut start = None;
    for route in &s.routes {
        for stop in route.stops.iter().filter(|stop| &stop.visit == visit) {
            staff.push(route.staff.clone());
            start = Some(stop.start);
        }
    }
    staff.sort();
    (staff, start)
}
