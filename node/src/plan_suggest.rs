//! `omsyn plan suggest` and the dashboard's Suggest: one request, resolved the same way for
//! both into the planner's input; the suggestion as a diff of the plan as it stands; and the
//! coordinator's acceptance (all moves here with `--accept`, some on the dashboard).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, anyhow, bail};
use omsyn_core::ids::{PatientId, StaffId, VisitId};
use omsyn_core::planning::accept::{Accepted, accept, what_is_planned};
use omsyn_core::planning::gather::{GatherOptions, gather, parse_shifts};
use omsyn_core::planning::{
    Disruption, Move, Objective, PlanStaff, Policy, RoadMatrix, Suggestion, suggest_greedy,
    suggest_replan,
};
use omsyn_core::repo::staff_list;
use omsyn_core::service::Service;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, Repo, Role, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::cli::SuggestArgs;
use crate::client::read_input;
use crate::output::emit;

/// What the coordinator asks for; files already read. The dashboard posts it as JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuggestRequest {
    /// `YYYY-MM-DD` [default: today].
    pub(crate) date: Option<String>,
    /// The zone [default: every zone].
    pub(crate) zone: Option<String>,
    /// `HH:MM-HH:MM`: the shift of enrolled staff without a day log.
    pub(crate) shift: Option<String>,
    /// A shift list's text.
    pub(crate) shifts: Option<String>,
    /// The objectives' order, comma-separated.
    pub(crate) priorities: Option<String>,
    pub(crate) speed_kmh: Option<f64>,
    pub(crate) tolerance_min: Option<u32>,
    /// A road matrix's text.
    pub(crate) road_matrix: Option<String>,
    pub(crate) generations: Option<u32>,
    pub(crate) seed: Option<u64>,
    #[serde(default)]
    pub(crate) greedy: bool,
    /// A staff member who called in sick, from `from` (`HH:MM` or RFC 3339; default now).
    pub(crate) sick: Option<String>,
    pub(crate) from: Option<String>,
    /// A visit running `minutes` long.
    pub(crate) overrun: Option<String>,
    pub(crate) minutes: Option<u32>,
}

/// The default shift of enrolled staff without a day log.
const DEFAULT_SHIFT: &str = "07:00-15:00";

impl SuggestRequest {
    fn from_args(args: &SuggestArgs) -> Result<SuggestRequest> {
        let text = |file: &Option<std::path::PathBuf>, what: &str| -> Result<Option<String>> {
            file.as_ref()
                .map(|f| {
                    String::from_utf8(read_input(f)?)
                        .map_err(|_| anyhow!("--{what} {} is not UTF-8 text", f.display()))
                })
                .transpose()
        };
        Ok(SuggestRequest {
            date: args.date.clone(),
            zone: args.zone.clone(),
            shift: Some(args.shift.clone()),
            shifts: text(&args.shifts, "shifts")?,
            priorities: Some(args.priorities.clone()),
            speed_kmh: Some(args.speed),
            tolerance_min: Some(args.tolerance),
            road_matrix: text(&args.road_matrix, "road-matrix")?,
            generations: Some(args.generations),
            seed: Some(args.seed),
            greedy: args.greedy,
            sick: args.sick.clone(),
            from: args.from.clone(),
            overrun: args.overrun.clone(),
            minutes: args.minutes,
        })
    }

    fn day(&self, now: Timestamp) -> Result<Day> {
        match self.date.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => Day::parse(d).context("date"),
            None => Ok(now.day()),
        }
    }

    /// The planner's settings and what to read, with every value checked. Shift times are
    /// read in the offset the day's visits were planned in (the host's time zone if none).
    pub(crate) fn options(&self, repo: &Repo, now: Timestamp) -> Result<GatherOptions> {
        let day = self.day(now)?;
        let offset = day_offset(repo, day)?;
        let objectives = match self.priorities.as_deref() {
            Some(order) => Objective::parse_order(order).map_err(|e| anyhow!("priorities: {e}"))?,
            None => Objective::ALL.to_vec(),
        };
        let defaults = Policy::default();
        let road = match self.road_matrix.as_deref() {
            Some(text) => RoadMatrix::parse(text).map_err(|e| anyhow!("road matrix: {e}"))?,
            None => RoadMatrix::default(),
        };
        let policy = Policy {
            objectives,
            speed_kmh: self.speed_kmh.unwrap_or(defaults.speed_kmh),
            tolerance_min: self.tolerance_min.unwrap_or(defaults.tolerance_min),
            road,
            seed: self.seed.unwrap_or(defaults.seed),
            generations: self
                .generations
                .unwrap_or(defaults.generations)
                .clamp(1, 100_000),
        };
        let shifts = self
            .shifts
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|text| parse_shifts(text, day, offset))
            .transpose()?;
        Ok(GatherOptions {
            day,
            zone: self.zone.clone().filter(|z| !z.is_empty()),
            shifts,
            default_shift: shift_range(
                self.shift.as_deref().unwrap_or(DEFAULT_SHIFT),
                day,
                offset,
            )?,
            frozen_before: Some(now),
            policy,
        })
    }

    fn disruption(&self, day: Day, offset: i32, now: Timestamp) -> Result<Option<Disruption>> {
        if let Some(staff) = self.sick.as_deref().filter(|s| !s.is_empty()) {
            let from = match self.from.as_deref().filter(|f| !f.is_empty()) {
                None => now,
                Some(f) if f.contains('T') => Timestamp::parse(f).context("from")?,
                Some(f) => Timestamp::from_day_hhmm(day, f, offset).context("from")?,
            };
            return Ok(Some(Disruption::Sick {
                staff: StaffId::parse(staff).context("sick")?,
                from,
            }));
        }
        if let Some(visit) = self.overrun.as_deref().filter(|v| !v.is_empty()) {
            let minutes = self
                .minutes
                .ok_or_else(|| anyhow!("an overrun needs its minutes"))?;
            return Ok(Some(Disruption::Overrun {
                visit: VisitId::parse(visit).context("overrun")?,
                minutes,
            }));
        }
        Ok(None)
    }
}

/// The UTC offset of the first visit planned on `day`, or of the host's time zone then.
fn day_offset(repo: &Repo, day: Day) -> Result<i32> {
    // Visits are read to learn the day's offset, not shown: no patient data leaves here.
    Ok(repo
        .visits_on(day)?
        .first()
        .map_or_else(|| local_offset(day), |v| v.start.offset_secs()))
}

/// The UTC offset of local time at noon on `day` (the node's zone).
fn local_offset(day: Day) -> i32 {
    omsyn_node::clock::zone()
        .local(day, "12:00")
        .map_or(0, |t| t.offset_secs())
}

/// `HH:MM-HH:MM` on `day`; an end before the start is the next morning (a night shift).
fn shift_range(value: &str, day: Day, offset: i32) -> Result<(Timestamp, Timestamp)> {
    let (start, end) = value
        .split_once('-')
        .ok_or_else(|| anyhow!("shift: expected HH:MM-HH:MM, got {value:?}"))?;
    let at = |t: &str| Timestamp::from_day_hhmm(day, t.trim(), offset).context("shift");
    let (start, mut end) = (at(start)?, at(end)?);
    if end <= start {
        end = end.plus_minutes(24 * 60);
    }
    Ok((start, end))
}

/// The suggestion for a request, and the options it was made with (for accepting it). The
/// read is logged: a suggestion shows the day's patients.
pub(crate) fn suggest(
    svc: &Service,
    request: &SuggestRequest,
) -> Result<(Suggestion, GatherOptions)> {
    let (repo, now) = (svc.repo(), svc.now());
    let role = repo.profile().role;
    if role != Role::Base {
        bail!("the planning assistant runs at a base: a {role} node holds only its own work list");
    }
    let options = request.options(repo, now)?;
    let disruption = request.disruption(options.day, day_offset(repo, options.day)?, now)?;
    let mut disclosure = svc.disclose(AuditAction::Read, &what_is_planned(&options));
    let input = gather(repo, &options, &mut disclosure)?;
    disclosure.finish()?;
    let on_shift = options
        .shifts
        .is_none()
        .then(|| on_shift_note(&input.staff, disruption.as_ref()));
    let mut suggestion = match (disruption, request.greedy) {
        (Some(d), _) => suggest_replan(input, &d)?,
        (None, true) => suggest_greedy(input)?,
        (None, false) => omsyn_planner::suggest(input)?,
    };
    suggestion.notes.splice(0..0, on_shift);
    Ok((suggestion, options))
}

/// Who was taken as on shift when no shift list was given, by name: a coordinator must see
/// that a colleague the base knows nothing of is not planned with.
fn on_shift_note(staff: &[PlanStaff], disruption: Option<&Disruption>) -> String {
    const SHOWN: usize = 12;
    let sick = match disruption {
        Some(Disruption::Sick { staff, from }) => Some((staff, from)),
        _ => None,
    };
    let mut named: Vec<String> = (staff.iter().take(SHOWN))
        .map(|s| {
            let went = (sick.filter(|(id, _)| **id == s.id))
                .map_or_else(String::new, |(_, from)| {
                    format!(", sick from {}", from.hhmm())
                });
            format!(
                "{} {}–{}{went}",
                s.name,
                s.shift_start.hhmm(),
                s.shift_end.hhmm()
            )
        })
        .collect();
    if staff.len() > SHOWN {
        named.push(format!("and {} more", staff.len() - SHOWN));
    }
    format!(
        "no shift list given: on shift are the enrolled staff (by their day logs, else the \
         default shift) and the staff the day's visits are planned for — {}; give a shift list \
         (--shifts) to plan with anyone else",
        named.join(", ")
    )
}

/// The suggestion's patients (those the gate let into the planner) by name, for people: two
/// of one name told apart among them.
pub(crate) fn names(repo: &Repo, s: &Suggestion) -> Result<BTreeMap<PatientId, String>> {
    let patients = (s
        .routes
        .iter()
        .flat_map(|r| r.stops.iter().map(|s| &s.patient)))
    .chain(s.moves.iter().map(|m| &m.patient))
    .chain(s.unplaced.iter().map(|u| &u.patient));
    Ok(omsyn_core::repo::tell_apart(
        &repo.names_and_hints()?,
        patients,
    ))
}

/// `omsyn plan suggest`.
pub(crate) fn run(svc: &Service, json: bool, args: &SuggestArgs) -> Result<()> {
    let request = SuggestRequest::from_args(args)?;
    let (suggestion, options) = suggest(svc, &request)?;
    let accepted = match (args.accept, suggestion.moves.is_empty()) {
        (false, _) | (true, true) => None,
        (true, false) => {
            Some(svc.act(|repo, now, rng| accept(repo, now, rng, &options, &suggestion.moves))?)
        }
    };
    let repo = svc.repo();
    if args.accept && suggestion.unplaced.len() + suggestion.moves.len() == 0 && !json {
        bail!("nothing to accept: the plan as it stands is what the planner suggests");
    }
    let names = names(repo, &suggestion)?;
    let staff_names = repo.staff_names()?;
    emit(
        json,
        &json!({ "suggestion": suggestion, "accepted": accepted }),
        || {
            text(
                &suggestion,
                (&names, &staff_names),
                args.routes,
                accepted.as_ref(),
            )
        },
    );
    Ok(())
}

/// The suggestion as a diff for the terminal.
fn text(
    s: &Suggestion,
    (names, staff_names): (&BTreeMap<PatientId, String>, &BTreeMap<String, String>),
    routes: bool,
    accepted: Option<&Accepted>,
) -> String {
    let name = |p: &PatientId| names.get(p).map_or_else(|| p.to_string(), Clone::clone);
    let mut out = figures_text(s);
    moves_text(&mut out, s, &name, staff_names);
    if s.kept > 0 {
        let _ = writeln!(
            out,
            "{} visit(s) kept as they are (under way, documented, or before now)",
            s.kept
        );
    }
    if s.homes_without_position > 0 {
        let _ = writeln!(
            out,
            "{} visit(s) to homes without a position: travel to them is not counted (omsyn patient set --field location)",
            s.homes_without_position
        );
    }
    if routes {
        route_text(&mut out, s, &name);
    }
    match accepted {
        Some(a) => {
            let _ = writeln!(
                out,
                "accepted: {} visit(s) reassigned, {} moved in time (signed, logged, synced to the nurses)",
                a.reassigned, a.rescheduled
            );
        }
        None if !s.moves.is_empty() => out.push_str(
            "nothing is changed until you accept: --accept (all moves), or some on the dashboard\n",
        ),
        None => {}
    }
    out
}

/// The heading, the figures before and after, and what the plan as it stands breaks.
fn figures_text(s: &Suggestion) -> String {
    let objectives: Vec<&str> = s.objectives.iter().map(Objective::as_str).collect();
    let zone = s.zone.as_deref().map(|z| format!(", {z}"));
    let mut out = format!(
        "Plan suggestion for {}{} — priorities: {}\n",
        s.day,
        zone.unwrap_or_default(),
        objectives.join(" > ")
    );
    out.push_str(
        "                violations  unplaced  travel min  staff/patient  longest/shortest day\n",
    );
    for (label, f) in [("as it stands", &s.before), ("suggested", &s.after)] {
        let _ = writeln!(
            out,
            "  {label:<13} {:>10}  {:>8}  {:>10}  {:>13.2}  {:>8}/{} min",
            f.violation_count(),
            f.unplaced,
            f.travel_min,
            f.staff_per_patient,
            f.load_min.0,
            f.load_min.1
        );
    }
    for note in &s.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if !s.before.violations.is_empty() {
        let rules: Vec<String> = s
            .before
            .violations
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(out, "the plan as it stands breaks: {}", rules.join(", "));
    }
    out
}

/// Each move's reasons in words, in the moves' order (the terminal's and the board's): staff by
/// name, a visit by its time on the suggested routes.
pub(crate) fn reasons_said(s: &Suggestion, staff_names: &BTreeMap<String, String>) -> Vec<String> {
    let staff = |id: &StaffId| staff_list(std::slice::from_ref(id), staff_names);
    let starts: BTreeMap<&VisitId, String> = (s.routes.iter().flat_map(|r| &r.stops))
        .map(|stop| (&stop.visit, stop.start.hhmm()))
        .collect();
    let visit = |v: &VisitId| {
        (starts.get(v)).map_or_else(|| format!("visit {v}"), |at| format!("the visit of {at}"))
    };
    (s.moves.iter())
        .map(|m| {
            let said: Vec<String> = (m.reasons.iter())
                .map(|r| r.describe_naming(&staff, &visit))
                .collect();
            said.join("; ")
        })
        .collect()
}

/// Every move with its reasons, and the visits that could not be placed with why.
fn moves_text(
    out: &mut String,
    s: &Suggestion,
    name: &dyn Fn(&PatientId) -> String,
    staff_names: &BTreeMap<String, String>,
) {
    let _ = writeln!(out, "{} move(s):", s.moves.len());
    for (m, reasons) in s.moves.iter().zip(reasons_said(s, staff_names)) {
        let _ = writeln!(
            out,
            "{}",
            move_line(m, &name(&m.patient), staff_names, &reasons)
        );
    }
    if !s.unplaced.is_empty() {
        let _ = writeln!(out, "could not be placed ({}):", s.unplaced.len());
        for u in &s.unplaced {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                u.start.hhmm(),
                name(&u.patient),
                u.why.describe()
            );
        }
    }
}

/// One move for the terminal: when, whom, who goes before and after, and why. A move in time
/// alone keeps its staff and says so, not "Kari → Kari".
fn move_line(
    m: &Move,
    patient: &str,
    staff_names: &BTreeMap<String, String>,
    reasons: &str,
) -> String {
    let time = if m.reschedules() {
        format!("{}→{}", m.start_before.hhmm(), m.start_after.hhmm())
    } else {
        m.start_before.hhmm()
    };
    let (from, to) = (
        staff_list(&m.from, staff_names),
        staff_list(&m.to, staff_names),
    );
    let who = if m.reassigns() {
        format!("{from:>15} → {to:<15}")
    } else {
        format!("{from:>15}   {:<15}", "(same staff)")
    };
    format!("  {time:<11} {patient:<22} {who} {reasons}")
}

fn route_text(out: &mut String, s: &Suggestion, name: &dyn Fn(&PatientId) -> String) {
    out.push_str("routes:\n");
    for r in &s.routes {
        let _ = writeln!(
            out,
            "  {} {} — {} visit(s), {} min of visits, {} min travel",
            r.staff,
            r.name,
            r.stops.len(),
            r.work_min,
            r.travel_min
        );
        for stop in &r.stops {
            let how = match stop.kind {
                omsyn_core::docs::plan::VisitKind::Physical => {
                    format!("in the home, {} min drive", stop.travel_min)
                }
                omsyn_core::docs::plan::VisitKind::Digital => "video".into(),
            };
            let _ = writeln!(
                out,
                "    {}–{} {} ({how})",
                stop.start.hhmm(),
                stop.end.hhmm(),
                name(&stop.patient)
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_move_in_time_alone_says_its_staff_stay_and_a_reassignment_says_who_takes_it() {
        let at = |t: &str| Timestamp::parse(&format!("2030-01-07T{t}:00+01:00")).unwrap();
        let staff = |ids: &[&str]| -> Vec<StaffId> {
            ids.iter().map(|s| StaffId::parse(s).unwrap()).collect()
        };
        let names = BTreeMap::from([
            ("A1".to_owned(), "Kari Nordmann".to_owned()),
            ("B2".to_owned(), "Ola Hansen".to_owned()),
        ]);
        let mut m = Move {
            visit: VisitId::parse("v-0000000000000001").unwrap(),
            patient: PatientId::parse("p-0000000000000001").unwrap(),
            from: staff(&["A1", "B2"]),
            to: staff(&["B2", "A1"]),
            start_before: at("08:00"),
            start_after: at("08:20"),
            reasons: Vec::new(),
        };
        let line = move_line(&m, "Turid Nilsen", &names, "the time moves");
        assert!(line.contains("08:00→08:20"), "{line}");
        assert!(
            line.contains("Kari Nordmann + Ola Hansen   (same staff)"),
            "{line}"
        );
        assert!(!line.contains("→ Ola"), "{line}");
        m.to = staff(&["B2"]);
        let line = move_line(&m, "Turid Nilsen", &names, "");
        assert!(
            line.contains("Kari Nordmann + Ola Hansen → Ola Hansen"),
            "{line}"
        );
    }
}
