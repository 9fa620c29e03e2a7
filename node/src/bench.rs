//! `omsyn bench store`: measured, not timed in tests. Every figure is reported beside a baseline
//! measured in the same run on the same disk.
//!
//! 1. Durable write of one journal entry through the whole stack (Automerge change, chunk append,
//!    derived indexes, fsynced redb commit) against a raw redb commit of the entry's bytes.
//!    The two are interleaved so disk noise hits both alike.
//! 2. Opening a store holding a month of one base's data (generated): time and resident memory
//!    of a fresh process, against a plain redb open of the same file (no integrity check).
//! 3. Where that month's bytes are, per table, against the JSON of its journal entries.
//!
//! This is the one place outside omsyn-core that touches redb: for the baseline only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsyn_core::docs::journal;
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::{Day, NodeProfile, Repo, Role, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::cli::BenchArgs;

const STAFF_ON_DAY_SHIFT: usize = 120;

pub(crate) fn run(json: bool, args: &BenchArgs) -> Result<()> {
    let scratch = tempfile_dir()?;
    let result = measure(json, args, &scratch);
    // The generated stores are large: remove them whether or not the run succeeded.
    let _ = std::fs::remove_dir_all(scratch.join("write"));
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

fn measure(json: bool, args: &BenchArgs, scratch: &Path) -> Result<()> {
    if args.bytes_only {
        return bytes_only(json, args);
    }
    let write = bench_write(&scratch.join("write"), args.writes)?;
    if !json {
        outln!(
            "durable journal write: median {:.2} ms, raw redb commit of the same bytes: median {:.2} ms, ratio {:.2}x ({} writes each, entry {} bytes)",
            ms(write.omsyn_median),
            ms(write.raw_median),
            write.ratio(),
            args.writes,
            write.entry_bytes
        );
        outln!(
            "processor time per write (median): omsyn {:.3} ms, raw redb commit {:.3} ms",
            ms(write.omsyn_cpu_median),
            ms(write.raw_cpu_median)
        );
        outln!(
            "written to disk per commit: omsyn {:.0} bytes, raw redb {:.0} bytes ({:.2}x)",
            write.omsyn_disk_bytes,
            write.raw_disk_bytes,
            write.omsyn_disk_bytes / write.raw_disk_bytes
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| scratch.join("month"));
    let generated = generate_month(&dir, args)?;
    if !json {
        outln!(
            "generated {} patients, {} visits, {} journal entries in {:.1} s; store file {:.1} MiB",
            generated.patients,
            generated.visits,
            generated.entries,
            generated.elapsed.as_secs_f64(),
            generated.file_bytes as f64 / (1024.0 * 1024.0)
        );
    }
    let (loose, compacted) = space_before_and_after_compaction(json, &dir)?;
    let omsyn_open = open_in_child(&dir, "omsyn")?;
    let raw_open = open_in_child(&dir, "raw")?;
    let summary = json!({
        "write": {
            "writes": args.writes,
            "entry_bytes": write.entry_bytes,
            "omsyn_median_ms": ms(write.omsyn_median),
            "omsyn_mean_ms": ms(write.omsyn_mean),
            "raw_redb_median_ms": ms(write.raw_median),
            "raw_redb_mean_ms": ms(write.raw_mean),
            "ratio_median": write.ratio(),
            "omsyn_cpu_median_ms": ms(write.omsyn_cpu_median),
            "raw_redb_cpu_median_ms": ms(write.raw_cpu_median),
            "omsyn_disk_bytes_per_commit": write.omsyn_disk_bytes,
            "raw_redb_disk_bytes_per_commit": write.raw_disk_bytes,
        },
        "open": {
            "patients": generated.patients,
            "visits": generated.visits,
            "journal_entries": generated.entries,
            "store_bytes": generated.file_bytes,
            "generate_seconds": generated.elapsed.as_secs_f64(),
            "omsyn": omsyn_open,
            "raw_redb_open_no_integrity_check": raw_open,
        },
        "space": loose,
        "space_compacted": compacted,
    });
    if json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        outln!(
            "open (fresh process): omsyn {:.0} ms, peak RSS {:.1} MiB; plain redb open of the same file {:.0} ms, peak RSS {:.1} MiB",
            omsyn_open["open_ms"].as_f64().unwrap_or(f64::NAN),
            omsyn_open["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            raw_open["open_ms"].as_f64().unwrap_or(f64::NAN),
            raw_open["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
        );
    }
    Ok(())
}

/// `bench store --bytes-only`: the month in `--dir` (generated there if it holds no node; an
/// older store migrates as it opens), as it is and compacted. What an old month costs.
fn bytes_only(json: bool, args: &BenchArgs) -> Result<()> {
    let dir = args.dir.clone().context("--bytes-only needs --dir")?;
    if !dir.join("node.json").exists() {
        generate_month(&dir, args)?;
    }
    let (loose, compacted) = space_before_and_after_compaction(json, &dir)?;
    if json {
        let summary = json!({ "space": loose, "space_compacted": compacted });
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// Where the month's bytes are as written, then after the compaction `omsyn run` does at start
/// with a file this loose (the free pages given back); printed unless `json`.
fn space_before_and_after_compaction(
    json: bool,
    dir: &Path,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let loose = space(dir)?;
    if !json {
        print_space(&loose);
    }
    crate::check::compact(dir, crate::check::verify_pages(dir, None)?)?;
    let compacted = space(dir)?;
    if !json {
        outln!("after compaction (as `omsyn run` does at start):");
        print_space(&compacted);
    }
    Ok((loose, compacted))
}

/// Where the month's bytes are: per table, and per journal entry against the entry's JSON.
fn space(dir: &Path) -> Result<serde_json::Value> {
    let repo = repo_at(dir)?;
    let store = repo.store();
    let (mut entries, mut json_bytes) = (0u64, 0u64);
    for id in store.doc_ids("journal/")? {
        let sizes = store.with_doc(&id, |d| {
            journal::read(d)
                .entries
                .iter()
                .map(|e| serde_json::to_vec(e).map_or(0, |j| j.len() as u64))
                .collect::<Vec<_>>()
        })?;
        for size in sizes.unwrap_or_default() {
            entries += 1;
            json_bytes += size;
        }
    }
    let file_bytes = std::fs::metadata(Repo::store_path(dir))?.len();
    Ok(json!({
        "file_bytes": file_bytes,
        "journal_entries": entries,
        "journal_entry_json_bytes": json_bytes,
        "tables": store.space()?,
    }))
}

fn print_space(space: &serde_json::Value) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let (file, entries) = (n(&space["file_bytes"]), n(&space["journal_entries"]).max(1));
    let json_per_entry = n(&space["journal_entry_json_bytes"]) as f64 / entries as f64;
    outln!(
        "store file {:.1} MiB: {:.0} bytes per journal entry, {:.2}x the entry's JSON ({:.0} bytes)",
        file as f64 / (1024.0 * 1024.0),
        file as f64 / entries as f64,
        file as f64 / entries as f64 / json_per_entry,
        json_per_entry
    );
    outln!(
        "{:<20} {:>9} {:>12} {:>11} {:>12} {:>8}",
        "table",
        "rows",
        "stored B",
        "tree B",
        "unused B",
        "pages"
    );
    for t in space["tables"].as_array().into_iter().flatten() {
        outln!(
            "{:<20} {:>9} {:>12} {:>11} {:>12} {:>8}",
            t["name"].as_str().unwrap_or_default(),
            n(&t["rows"]),
            n(&t["stored_bytes"]),
            n(&t["metadata_bytes"]),
            n(&t["fragmented_bytes"]),
            n(&t["pages"])
        );
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Ends a benchmark that worked in `dir`: removes it, then prints the summary as JSON (with
/// `--json`; the text was printed as the run went).
pub(crate) fn conclude(json: bool, dir: &Path, result: Result<serde_json::Value>) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let summary = result?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

pub(crate) fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("omsyn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn profile() -> NodeProfile {
    NodeProfile {
        version: PROFILE_VERSION,
        role: Role::Base,
        name: "Bench base".into(),
        staff_id: Some(StaffId::parse("K0001").expect("valid")),
        patient: None,
        zone: Some("Sone 1".into()),
    }
}

fn fixed_time(day: Day, hhmm: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_day_hhmm(day, hhmm, 3600)?)
}

struct WriteResult {
    omsyn_median: Duration,
    omsyn_mean: Duration,
    raw_median: Duration,
    raw_mean: Duration,
    /// Median processor time of one write (this thread's, user and system): the part of a write
    /// that is not waiting for the disk.
    omsyn_cpu_median: Duration,
    raw_cpu_median: Duration,
    entry_bytes: usize,
    /// Bytes the process had written to the disk per commit (`/proc/self/io` `write_bytes`:
    /// the pages each commit wrote and fsynced), Omsyn's and the raw commit's.
    omsyn_disk_bytes: f64,
    raw_disk_bytes: f64,
}

/// One kind of write, measured write by write.
#[derive(Default)]
pub(crate) struct Samples {
    pub(crate) wall: Vec<Duration>,
    pub(crate) cpu: Vec<Duration>,
    pub(crate) disk_bytes: u64,
}

impl Samples {
    /// Runs `write` once and records what it took. The counters are read outside the timed part
    /// (each read is a file read of its own).
    pub(crate) fn measure(&mut self, write: impl FnOnce() -> Result<()>) -> Result<()> {
        let (disk, cpu) = (disk_written(), thread_cpu());
        let start = Instant::now();
        write()?;
        self.wall.push(start.elapsed());
        self.cpu.push(thread_cpu().saturating_sub(cpu));
        self.disk_bytes += disk_written().saturating_sub(disk);
        Ok(())
    }
}

impl WriteResult {
    fn ratio(&self) -> f64 {
        self.omsyn_median.as_secs_f64() / self.raw_median.as_secs_f64()
    }
}

pub(crate) fn median_and_mean(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
    (samples[samples.len() / 2], mean)
}

fn bench_write(dir: &Path, writes: usize) -> Result<WriteResult> {
    if writes == 0 {
        bail!("--writes must be at least 1");
    }
    let mut rng = StdRng::seed_from_u64(1);
    let repo = Repo::init(&dir.join("node"), profile(), None, &mut rng)?;
    let day = Day::parse("2026-11-23")?;
    let t = fixed_time(day, "08:00")?;
    let patient = repo.add_patient(t, &mut rng, &[(PatientField::Name, "Bench Patient".into())])?;
    let text = "Pasienten var i god form, tok medisinene sine og spiste frokost. Ingen smerter.";
    let warm = repo.add_note(t, &mut rng, &patient, None, t, text)?;
    let entry_bytes = serde_json::to_vec(&warm)?.len();
    let payload = vec![0x42u8; entry_bytes];

    let raw_db = redb::Database::create(dir.join("raw.redb"))?;
    const RAW: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");
    let (mut omsyn, mut raw) = (Samples::default(), Samples::default());
    for i in 0..writes {
        omsyn.measure(|| {
            repo.add_note(t, &mut rng, &patient, None, t, text)?;
            Ok(())
        })?;
        raw.measure(|| {
            let tx = raw_db.begin_write()?;
            {
                let mut table = tx.open_table(RAW)?;
                table.insert(i as u64, payload.as_slice())?;
            }
            tx.commit()?;
            Ok(())
        })?;
    }
    let (omsyn_median, omsyn_mean) = median_and_mean(omsyn.wall);
    let (raw_median, raw_mean) = median_and_mean(raw.wall);
    Ok(WriteResult {
        omsyn_median,
        omsyn_mean,
        raw_median,
        raw_mean,
        omsyn_cpu_median: median_and_mean(omsyn.cpu).0,
        raw_cpu_median: median_and_mean(raw.cpu).0,
        entry_bytes,
        omsyn_disk_bytes: omsyn.disk_bytes as f64 / writes as f64,
        raw_disk_bytes: raw.disk_bytes as f64 / writes as f64,
    })
}

/// This thread's time on a processor so far (`/proc/thread-self/schedstat`, in nanoseconds;
/// zero where the kernel does not say).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Bytes this process has caused to be written to the disk so far (0 where the kernel does not
/// say).
fn disk_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub(crate) struct Generated {
    pub(crate) patients: usize,
    pub(crate) visits: usize,
    pub(crate) entries: usize,
    pub(crate) elapsed: Duration,
    pub(crate) file_bytes: u64,
}

/// A month of one base: every patient's record with a medication, their visits (about
/// `visits_per_day` a day across all patients, assigned among 120 staff, a quarter digital), and
/// for each visit the facts a nurse documents: performed, a dose given, a note. One transaction
/// per patient.
pub(crate) fn generate_month(dir: &Path, args: &BenchArgs) -> Result<Generated> {
    if dir.join("node.json").exists() {
        bail!(
            "{} already holds a node; give an empty --dir",
            dir.display()
        );
    }
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(2);
    let repo = Repo::init(dir, profile(), None, &mut rng)?;
    let first = Day::parse("2026-11-01")?;
    let staff: Vec<StaffId> = (0..STAFF_ON_DAY_SHIFT)
        .map(|i| StaffId::parse(&format!("S{i:05}")))
        .collect::<Result<_, _>>()?;
    let mut visits = 0;
    let mut entries = 0;
    let per_patient_day = args.visits_per_day as f64 / args.patients.max(1) as f64;
    const HOURS: [&str; 7] = [
        "07:30", "09:00", "11:00", "13:00", "15:30", "18:00", "21:00",
    ];
    for p in 0..args.patients {
        let (v, e) = repo.transaction(|tx| -> Result<(usize, usize)> {
            let now = fixed_time(first, "06:00")?;
            let patient: PatientId = tx.add_patient(
                now,
                &mut rng,
                &[
                    (PatientField::Name, format!("Pasient {p:05}")),
                    (PatientField::Address, format!("Storgata {}", p % 120 + 1)),
                    (
                        PatientField::Zone,
                        format!("Sone {}", p % args.zones as usize + 1),
                    ),
                ],
            )?;
            tx.add_medication(
                now,
                &mut rng,
                &patient,
                "Paracet 500 mg",
                "2 tabletter",
                &["08:00".into()],
            )?;
            let (mut v, mut e) = (0, 0);
            let mut day = first;
            for _ in 0..args.days {
                let n = per_patient_day.floor() as usize
                    + usize::from(rng.random_bool(per_patient_day.fract()));
                for hour in HOURS.iter().take(n.min(HOURS.len())) {
                    let start = fixed_time(day, hour)?;
                    let end = fixed_time(day, &hour.replace(":00", ":20").replace(":30", ":50"))?;
                    let nurse = staff[rng.random_range(0..staff.len())].clone();
                    let kind = if rng.random_bool(0.25) {
                        VisitKind::Digital
                    } else {
                        VisitKind::Physical
                    };
                    let new = NewVisit {
                        patient: patient.clone(),
                        start,
                        end,
                        kind,
                        tiltak: vec![],
                        staff: vec![nurse],
                    };
                    let visit = tx.plan_visit(now, &mut rng, &new)?;
                    tx.visit_performed(start, &mut rng, &visit, start, Some(end), None)?;
                    tx.add_note(
                        start,
                        &mut rng,
                        &patient,
                        Some(&visit),
                        start,
                        "Tilsyn utført, pasienten i god form.",
                    )?;
                    if *hour == "07:30" {
                        // Written by the base node (doses are a nurse's to record): the
                        // morning visit's measurement.
                        tx.observe(
                            start,
                            &mut rng,
                            &patient,
                            Some(&visit),
                            start,
                            "blood-pressure",
                            "135/85",
                            Some("mmHg"),
                        )?;
                        e += 1;
                    }
                    v += 1;
                    e += 2;
                }
                day = day.next().context("date overflow")?;
            }
            Ok((v, e))
        })?;
        visits += v;
        entries += e;
    }
    drop(repo);
    let file_bytes = std::fs::metadata(Repo::store_path(dir))?.len();
    Ok(Generated {
        patients: args.patients,
        visits,
        entries,
        elapsed: started.elapsed(),
        file_bytes,
    })
}

/// Runs `omsyn bench-open` in a fresh process so its resident memory is the open's alone.
pub(crate) fn open_in_child(dir: &Path, mode: &str) -> Result<serde_json::Value> {
    let exe = std::env::current_exe().context("locating the omsyn binary")?;
    let out = Command::new(exe)
        .args(["bench-open", "--mode", mode])
        .arg(dir)
        .output()
        .context("running bench-open")?;
    if !out.status.success() {
        bail!(
            "bench-open failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// What a report child measures (`bench_report::child`), handed in by the command line so the
/// two benchmark modules do not import each other.
pub(crate) type ReportChild = fn(&Repo, &str) -> Result<serde_json::Value>;

/// The child side of the open benchmark: open, list patients, read one patient, report.
pub(crate) fn open_child(dir: &Path, mode: &str, report_child: ReportChild) -> Result<()> {
    let start = Instant::now();
    let detail = match mode {
        "omsyn" => {
            let repo = repo_at(dir)?;
            let opened = start.elapsed();
            let patients = repo.patients()?;
            if let Some((first, _)) = patients.first() {
                repo.patient_view(first)?;
            }
            json!({ "open_ms": ms(opened), "open_and_first_read_ms": ms(start.elapsed()), "patients": patients.len() })
        }
        m if m.contains('@') => report_child(&repo_at(dir)?, m)?,
        "raw" => {
            let db = redb::Database::open(Repo::store_path(dir))?;
            let opened = start.elapsed();
            drop(db);
            json!({ "open_ms": ms(opened) })
        }
        other => bail!("unknown mode {other}"),
    };
    let mut detail = detail;
    detail["peak_rss_kib"] = json!(proc_status_kib("VmHWM:"));
    detail["rss_kib"] = json!(proc_status_kib("VmRSS:"));
    outln!("{detail}");
    Ok(())
}

fn repo_at(dir: &Path) -> Result<Repo> {
    Ok(Repo::open(dir, None, &mut StdRng::seed_from_u64(3))?)
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
