//! `omsyn bench plan`: the planning assistant on generated work lists (`gen_worklist.py --coords`,
//! one day and a week), against two baselines in the same run: the work list's own assignment
//! (naive: a random able staff member per visit) and the greedy planner. Each list is imported
//! into a fresh base store and every zone-day is gathered from it as `omsyn plan suggest` would.
//! Over a week each planner carries its own earlier days as continuity history. Reported per
//! planner: hard-rule violations by rule, unplaced visits, travel minutes, different staff per
//! patient (per day and over the whole list), and time to plan; then a sick call at 10:00 (the
//! staff member with the most visits left) answered on the solver's accepted plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::planning::accept::what_is_planned;
use omsyn_core::planning::gather::{GatherOptions, ShiftLine, gather};
use omsyn_core::planning::{
    Disruption, Figures, PastVisit, PlanInput, Policy, Suggestion, as_it_stands, suggest_greedy,
    suggest_replan,
};
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use serde_json::json;

use crate::bench::{ms, tempfile_dir};
use crate::cli::BenchPlanArgs;

/// The planners compared, in report order.
const PLANNERS: [&str; 3] = ["naive", "greedy", "solver"];

/// What one planner did over one work list.
#[derive(Debug, Default, Serialize)]
struct Totals {
    visits: usize,
    unplaced: usize,
    violations: BTreeMap<String, usize>,
    travel_min: u64,
    /// Mean over zone-days of the mean different staff per patient that day.
    staff_per_patient_day: f64,
    /// Different staff per patient over the whole list (mean over patients).
    staff_per_patient_list: f64,
    /// Time to plan the slowest day (all zones), and the mean day; and the processor time of
    /// the slowest day (the machine is shared: wall time includes others' load).
    slowest_day_ms: f64,
    mean_day_ms: f64,
    slowest_day_cpu_ms: f64,
    #[serde(skip)]
    zone_days: usize,
    #[serde(skip)]
    seen: BTreeMap<PatientId, BTreeSet<StaffId>>,
    #[serde(skip)]
    history: Vec<PastVisit>,
    #[serde(skip)]
    day_times: Vec<Duration>,
    #[serde(skip)]
    day_cpu: Vec<Duration>,
}

impl Totals {
    fn add(&mut self, figures: &Figures, visits: usize) {
        self.visits += visits;
        self.unplaced += figures.unplaced;
        for (rule, n) in &figures.violations {
            *self.violations.entry(rule.clone()).or_default() += n;
        }
        self.travel_min += figures.travel_min;
        self.staff_per_patient_day += figures.staff_per_patient;
        self.zone_days += 1;
    }

    fn finish(&mut self) {
        self.staff_per_patient_day /= self.zone_days.max(1) as f64;
        let distinct: usize = self.seen.values().map(BTreeSet::len).sum();
        self.staff_per_patient_list = distinct as f64 / self.seen.len().max(1) as f64;
        self.slowest_day_ms = self.day_times.iter().map(|d| ms(*d)).fold(0.0, f64::max);
        self.slowest_day_cpu_ms = self.day_cpu.iter().map(|d| ms(*d)).fold(0.0, f64::max);
        self.mean_day_ms =
            self.day_times.iter().map(|d| ms(*d)).sum::<f64>() / self.day_times.len().max(1) as f64;
    }
}

pub(crate) fn run(json: bool, args: &BenchPlanArgs) -> Result<()> {
    if args.worklist.is_empty() {
        anyhow::bail!(
            "give one or more work lists: --worklist FILE (python3 gen_worklist.py --tier M --coords [--days 7] > FILE)"
        );
    }
    let scratch = tempfile_dir()?;
    let mut results = Vec::new();
    for (i, file) in args.worklist.iter().enumerate() {
        let result = bench_list(&scratch.join(format!("list{i}")), file, args);
        results.push(result.with_context(|| format!("benchmarking {}", file.display()))?);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if json {
        outln!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for r in &results {
            outln!("{}", text(r));
        }
    }
    Ok(())
}

fn bench_list(dir: &Path, file: &Path, args: &BenchPlanArgs) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let repo = Repo::init(dir, profile(), None, &mut rng)?;
    let started = Instant::now();
    let imported = repo.import_worklist(
        omsyn_node::clock::now(),
        &mut rng,
        &text,
        omsyn_core::worklist::ListTimes::Zone(omsyn_node::clock::zone()),
    )?;
    let import_time = started.elapsed();
    let list = ListFacts::read(&text)?;
    let policy = Policy {
        seed: args.seed,
        generations: args.generations,
        ..Policy::default()
    };
    let mut totals: BTreeMap<&str, Totals> =
        PLANNERS.iter().map(|p| (*p, Totals::default())).collect();
    let mut sick = Vec::new();
    let mut gather_time = Duration::ZERO;
    for (d, day) in list.days.iter().enumerate() {
        let mut day_times = [Duration::ZERO; 3];
        let mut day_cpu = [Duration::ZERO; 3];
        for zone in &list.zones {
            let started = Instant::now();
            let options = list.options(*day, zone, &policy)?;
            let mut disclosure = repo.disclose(
                omsyn_node::clock::now(),
                AuditAction::Read,
                &what_is_planned(&options),
            );
            let input = gather(&repo, &options, &mut disclosure)?;
            disclosure.finish()?;
            gather_time += started.elapsed();
            for (i, planner) in PLANNERS.iter().enumerate() {
                let total = totals.get_mut(planner).ok_or_else(|| anyhow!("planner"))?;
                let cpu = cpu_time();
                let (suggestion, took) = plan_with(planner, &input, &total.history)?;
                day_times[i] += took;
                day_cpu[i] += cpu_time().saturating_sub(cpu);
                total.add(&suggestion.after, input.visits.len());
                record(total, &suggestion, *day);
                if *planner == "solver" && d == 0 {
                    sick.push(sick_call(&input, &suggestion)?);
                }
            }
        }
        for (i, planner) in PLANNERS.iter().enumerate() {
            if let Some(t) = totals.get_mut(planner) {
                t.day_times.push(day_times[i]);
                t.day_cpu.push(day_cpu[i]);
            }
        }
    }
    for t in totals.values_mut() {
        t.finish();
    }
    Ok(json!({
        "worklist": file,
        "days": list.days.len(),
        "zones": list.zones.len(),
        "visits": imported.visits_planned,
        "staff": list.staff.len(),
        "import_ms": ms(import_time),
        "gather_ms": ms(gather_time),
        "policy": policy,
        "planners": totals,
        "sick_call": sick,
    }))
}

/// Processor time this process has used (user and system, every thread), from
/// `/proc/self/stat` in clock ticks of 1/100 s (Linux's fixed USER_HZ); zero elsewhere.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) start at `) `.
            let rest = stat.rsplit_once(") ")?.1.to_owned();
            let fields: Vec<u64> = rest
                .split(' ')
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Plans `input` with one planner; the naive one is the plan as it stands.
fn plan_with(
    planner: &str,
    input: &PlanInput,
    history: &[PastVisit],
) -> Result<(Suggestion, Duration)> {
    let mut input = input.clone();
    if planner != "naive" {
        // Each planner's week builds on its own earlier days.
        input.history = history.to_vec();
    }
    let started = Instant::now();
    let suggestion = match planner {
        "naive" => as_it_stands(input)?,
        "greedy" => suggest_greedy(input)?,
        _ => omsyn_planner::suggest(input)?,
    };
    Ok((suggestion, started.elapsed()))
}

/// Adds a day's assignment to a planner's continuity record and history.
fn record(total: &mut Totals, suggestion: &Suggestion, day: Day) {
    for route in &suggestion.routes {
        for stop in &route.stops {
            total
                .seen
                .entry(stop.patient.clone())
                .or_default()
                .insert(route.staff.clone());
            total.history.push(PastVisit {
                patient: stop.patient.clone(),
                staff: route.staff.clone(),
                day,
            });
        }
    }
}

/// The solver's plan taken as accepted, then the staff member with the most visits from 10:00
/// calls in sick at 10:00: how long the replan takes and what it moves.
fn sick_call(input: &PlanInput, suggestion: &Suggestion) -> Result<serde_json::Value> {
    let mut accepted = input.clone();
    let mut stops: BTreeMap<&omsyn_core::ids::VisitId, (Vec<StaffId>, Timestamp, Timestamp)> =
        BTreeMap::new();
    for route in &suggestion.routes {
        for stop in &route.stops {
            let e = stops
                .entry(&stop.visit)
                .or_insert_with(|| (Vec::new(), stop.start, stop.end));
            e.0.push(route.staff.clone());
        }
    }
    for v in &mut accepted.visits {
        let (staff, start, end) = stops
            .get(&v.id)
            .cloned()
            .unwrap_or((Vec::new(), v.start, v.end));
        v.current = staff;
        v.start = start;
        v.end = end;
    }
    let ten = Timestamp::from_day_hhmm(input.day, "10:00", 3600)?;
    let busiest = suggestion
        .routes
        .iter()
        .max_by_key(|r| r.stops.iter().filter(|s| s.start >= ten).count())
        .map(|r| r.staff.clone())
        .ok_or_else(|| anyhow!("nobody on shift"))?;
    let started = Instant::now();
    let replan = suggest_replan(
        accepted,
        &Disruption::Sick {
            staff: busiest.clone(),
            from: ten,
        },
    )?;
    let took = started.elapsed();
    Ok(json!({
        "zone": input.zone,
        "staff": busiest,
        "visits_freed": suggestion.routes.iter().find(|r| r.staff == busiest)
            .map_or(0, |r| r.stops.iter().filter(|s| s.start >= ten).count()),
        "moves": replan.moves.len(),
        "unplaced": replan.unplaced.len(),
        "violations": replan.after.violation_count(),
        "ms": ms(took),
    }))
}

/// What the bench reads from the list itself: its days, zones and staff (for the shift list).
struct ListFacts {
    days: Vec<Day>,
    zones: Vec<String>,
    /// (id, name, role, zone).
    staff: Vec<(String, String, String, String)>,
}

impl ListFacts {
    /// Reads the generator's columns (it writes no quoted fields).
    fn read(text: &str) -> Result<ListFacts> {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| anyhow!("no {name} column"))
        };
        let (date, zone, id, name, role) = (
            col("date")?,
            col("zone")?,
            col("staff_id")?,
            col("staff_name")?,
            col("staff_role")?,
        );
        let mut days = BTreeSet::new();
        let mut zones = BTreeSet::new();
        let mut staff = BTreeMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.split(';').collect();
            days.insert(Day::parse(f[date])?);
            zones.insert(f[zone].to_owned());
            if !f[id].is_empty() {
                staff.insert(
                    f[id].to_owned(),
                    (f[name].to_owned(), f[role].to_owned(), f[zone].to_owned()),
                );
            }
        }
        Ok(ListFacts {
            days: days.into_iter().collect(),
            zones: zones.into_iter().collect(),
            staff: staff
                .into_iter()
                .map(|(id, (name, role, zone))| (id, name, role, zone))
                .collect(),
        })
    }

    /// Every staff member of the list on shift 07:00–23:00 (the list's own working day: its
    /// staff take visits from 07:30 to past 22:00), in their zone.
    fn options(&self, day: Day, zone: &str, policy: &Policy) -> Result<GatherOptions> {
        let at = |hhmm: &str| Timestamp::from_day_hhmm(day, hhmm, 3600);
        let (start, end) = (at("07:00")?, at("23:00")?);
        let shifts = self
            .staff
            .iter()
            .filter(|s| s.3 == zone)
            .map(|(id, name, role, zone)| {
                Ok(ShiftLine {
                    staff: StaffId::parse(id)?,
                    start,
                    end,
                    competence: Some(role.clone()),
                    name: Some(name.clone()),
                    zone: Some(zone.clone()),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GatherOptions {
            day,
            zone: Some(zone.to_owned()),
            shifts: Some(shifts),
            default_shift: (start, end),
            frozen_before: None,
            policy: policy.clone(),
        })
    }
}

fn profile() -> NodeProfile {
    NodeProfile {
        version: PROFILE_VERSION,
        role: Role::Base,
        name: "Bench base".into(),
        staff_id: StaffId::parse("K0001").ok(),
        patient: None,
        zone: None,
    }
}

fn text(r: &serde_json::Value) -> String {
    let mut s = format!(
        "{}: {} days, {} zones, {} visits, {} staff (import {:.1} s, gathering {:.1} s)\n",
        r["worklist"].as_str().unwrap_or(""),
        r["days"],
        r["zones"],
        r["visits"],
        r["staff"],
        r["import_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        r["gather_ms"].as_f64().unwrap_or(0.0) / 1000.0,
    );
    s.push_str("  planner  violations (by rule)                      unplaced  travel min  staff/patient day  over the list  slowest day (cpu)      mean day\n");
    for planner in PLANNERS {
        let t = &r["planners"][planner];
        let violations: Vec<String> = t["violations"]
            .as_object()
            .map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        let total: u64 = t["violations"]
            .as_object()
            .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
            .unwrap_or(0);
        s.push_str(&format!(
            "  {planner:<7}  {total:>5} {:<36} {:>8}  {:>10}  {:>17.2}  {:>13.2}  {:>7.0} ms ({:>5.0} ms)  {:>5.0} ms\n",
            format!("({})", violations.join(", ")),
            t["unplaced"],
            t["travel_min"],
            t["staff_per_patient_day"].as_f64().unwrap_or(0.0),
            t["staff_per_patient_list"].as_f64().unwrap_or(0.0),
            t["slowest_day_ms"].as_f64().unwrap_or(0.0),
            t["slowest_day_cpu_ms"].as_f64().unwrap_or(0.0),
            t["mean_day_ms"].as_f64().unwrap_or(0.0),
        ));
    }
    for sick in r["sick_call"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "  sick call 10:00 in {}: {} visits freed, {} moves, {} unplaced, {} violations, {:.0} ms\n",
            sick["zone"].as_str().unwrap_or(""),
            sick["visits_freed"],
            sick["moves"],
            sick["unplaced"],
            sick["violations"],
            sick["ms"].as_f64().unwrap_or(0.0),
        ));
    }
    s
}
