//! `omsyn bench report`: the base's day report over a mid-size municipality's month (the store of
//! `omsyn bench store`: 2,000 patients, about 2,500 visits a day among 120 day-shift staff, a
//! quarter digital, every visit documented): from the day index, for every zone and for one, and
//! again after a change; beside, in the same run, the report derived from the documents (what it
//! was before the index) and the floor that derivation had: only reading the month's plans and
//! journals. Each is measured in a fresh process (time and peak resident memory), alternating,
//! three rounds, medians.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use omsyn_core::docs::DocumentId;
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::ids::StaffId;
use omsyn_core::{Day, Repo, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::bench::{generate_month, ms, open_in_child, tempfile_dir};
use crate::cli::BenchArgs;

const ROUNDS: usize = 3;

/// The day reported on: the middle of the generated days (which start on 1 November 2026).
fn report_day(args: &BenchArgs) -> Result<Day> {
    let first = Day::parse("2026-11-01")?;
    Day::from_days(first.to_days() + (args.days.max(1) as i32 - 1) / 2)
        .ok_or_else(|| anyhow::anyhow!("--days out of range"))
}

pub(crate) fn run(json: bool, args: &BenchArgs) -> Result<()> {
    let scratch = tempfile_dir()?;
    let result = measure(json, args, &scratch);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

fn measure(json: bool, args: &BenchArgs, scratch: &Path) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| scratch.join("month"));
    // A store generated earlier (`--dir` of a previous run) is reused: generating takes minutes.
    if !dir.join("node.json").exists() {
        let generated = generate_month(&dir, args)?;
        if !json {
            outln!(
                "generated {} patients, {} visits, {} journal entries in {:.1} s",
                generated.patients,
                generated.visits,
                generated.entries,
                generated.elapsed.as_secs_f64()
            );
        }
    }
    let day = report_day(args)?;
    let mut samples: [Vec<Value>; 5] = Default::default();
    for _ in 0..ROUNDS {
        for (i, mode) in MODES.iter().enumerate() {
            samples[i].push(open_in_child(&dir, &format!("{mode}@{day}"))?);
        }
    }
    let [read, documents, report, zone, refresh] = samples.map(|s| median_by(s, "ms"));
    let ratio =
        |v: &Value| v["ms"].as_f64().unwrap_or(f64::NAN) / read["ms"].as_f64().unwrap_or(f64::NAN);
    let summary = json!({
        "day": day,
        "read_only": read,
        "day_report_from_documents": documents,
        "day_report": report,
        "day_report_one_zone": zone,
        "day_report_after_a_change": refresh,
    });
    if json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let line = |name: &str, v: &Value| {
        format!(
            "{name:<44} {:>8.1} ms  peak RSS {:>6.1} MiB  ({} visits)  {:.3}x",
            v["ms"].as_f64().unwrap_or(f64::NAN),
            v["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            v["visits"],
            ratio(v)
        )
    };
    outln!(
        "day {day}, medians of {ROUNDS} fresh processes each (x: against reading the documents):"
    );
    outln!("{}", line("read the month's documents only", &read));
    outln!(
        "{}",
        line("day report derived from the documents", &documents)
    );
    outln!(
        "{}",
        line("day report from the day index, every zone", &report)
    );
    outln!("{}", line("day report from the day index, one zone", &zone));
    outln!(
        "{}",
        line("the report again after one visit was planned", &refresh)
    );
    Ok(())
}

/// What each child measures (see [`child`]).
const MODES: [&str; 5] = ["read", "documents", "report", "report-zone", "refresh"];

fn median_by(mut samples: Vec<Value>, key: &str) -> Value {
    samples.sort_by(|a, b| {
        a[key]
            .as_f64()
            .unwrap_or(f64::NAN)
            .total_cmp(&b[key].as_f64().unwrap_or(f64::NAN))
    });
    samples.swap_remove(samples.len() / 2)
}

/// The child side: one measured operation on an opened store, `WHAT@DAY` with WHAT one of
/// [`MODES`].
pub(crate) fn child(repo: &Repo, mode: &str) -> Result<Value> {
    let (what, day) = mode
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("mode {mode:?}: expected WHAT@DAY"))?;
    let day = Day::parse(day)?;
    let report = |zone| -> Result<usize> {
        let report = omsyn_core::report::day_report(repo, day, zone, &mut gate(repo))?;
        Ok(std::hint::black_box(&report).visits.len())
    };
    let started = Instant::now();
    let visits = match what {
        "read" => read_month(repo, day)?,
        "documents" => {
            let report =
                omsyn_core::report::day_report_from_documents(repo, day, None, &mut gate(repo))?;
            std::hint::black_box(&report).visits.len()
        }
        "report" => report(None)?,
        "report-zone" => report(Some("Sone 1"))?,
        "refresh" => {
            // The board's case: the report is shown, a sync brings a change to one patient's
            // plan, the report is read again. Only the second read is timed.
            report(None)?;
            plan_one_more_visit(repo, day)?;
            let started = Instant::now();
            let visits = report(None)?;
            return Ok(json!({ "ms": ms(started.elapsed()), "visits": visits }));
        }
        other => anyhow::bail!("unknown mode {other}"),
    };
    Ok(json!({ "ms": ms(started.elapsed()), "visits": visits }))
}

/// Plans one more visit on `day` for the first patient held, as a synced change would.
fn plan_one_more_visit(repo: &Repo, day: Day) -> Result<()> {
    let (patient, _) = repo
        .patients()?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the store holds no patient"))?;
    let start = Timestamp::parse(&format!("{day}T19:00:00+01:00"))?;
    let end = Timestamp::parse(&format!("{day}T19:20:00+01:00"))?;
    let new = NewVisit {
        patient,
        start,
        end,
        kind: VisitKind::Physical,
        tiltak: vec![],
        staff: vec![StaffId::parse("S00001")?],
    };
    repo.transaction(|tx| tx.plan_visit(start, &mut StdRng::seed_from_u64(9), &new))?;
    Ok(())
}

/// Loads every visit plan and journal of `day`'s month, doing nothing with them but counting
/// the day's visits.
fn read_month(repo: &Repo, day: Day) -> Result<usize> {
    let store = repo.store();
    let month = day.month();
    let mut visits = 0;
    for prefix in ["plan/", "journal/"] {
        for id in store.doc_ids(prefix)? {
            if id.month() != Some(month) {
                continue;
            }
            if let DocumentId::VisitPlan(..) = id {
                visits += store
                    .with_doc(&id, |d| {
                        omsyn_core::docs::plan::read(d)
                            .visits
                            .iter()
                            .filter(|v| v.day() == day)
                            .count()
                    })?
                    .unwrap_or(0);
            } else {
                store.with_doc(&id, |_| ())?;
            }
        }
    }
    Ok(visits)
}

/// The need gate a report passes (what it shows is logged once the report is done; a benchmark
/// measures the report, not the log, so it leaves the disclosure unfinished).
fn gate(repo: &omsyn_core::Repo) -> omsyn_core::repo::Disclosure<'_> {
    repo.disclose(
        omsyn_node::clock::now(),
        omsyn_core::trust::audit::AuditAction::Read,
        "day report (benchmark)",
    )
}
