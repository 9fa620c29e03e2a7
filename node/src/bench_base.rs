//! `omsyn bench field --scenario base`: a new base takes a month of a 2,000-patient zone from a
//! peer base of the same organisation, against copying the peer's store file over the same link.
//!
//! The peer base holds a generated month (`bench::generate_month`, the M tier; or a month
//! generated before, copied from `--month` and never changed in place), compacted as `omsyn run`
//! keeps it. A second base, enrolled and empty, runs `omsyn sync` with it across `omsyn bench
//! link`; then, over the same proxy, the peer's store file is copied by `omsyn bench copy` (one
//! QUIC stream with the nodes' transport settings), raw and DEFLATE-compressed. Each rate of
//! `--base-rates` gets a new base of its own and both copies.
//!
//! ```text
//!   new base 10.91.2.2 ─ 10.91.2.1 [link host: the proxy on :7000] 10.91.1.2 ─ 10.91.1.1:4433 peer base
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use omsyn_core::docs::DocumentId;
use omsyn_core::trust::OrgKey;
use omsyn_core::{Repo, Role};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::bench_field::{
    Lab, LinkSpec, lab_err, link_traffic, node, phone_sync_args, profile, s, waited,
};
use crate::cli::{BenchArgs, FieldArgs};
use crate::lab::{Process, logged, output_within};

const PEER_LISTEN: &str = "10.91.1.1:4433";
const PROXY: &str = "10.91.2.1:7000";
/// A base office's router buffers about this long (two to three round trips of its link).
const QUEUE_MS: u64 = 100;
/// Longest a first sync or a copy may take: far beyond what either takes at the slowest rate
/// measured, so reaching it means it is stuck.
const LIMIT: Duration = Duration::from_secs(3600);

/// What the peer base holds before the first sync: each document's heads, and the floor.
struct Held {
    heads: Vec<(DocumentId, Vec<[u8; 32]>)>,
    changes: u64,
    floor_bytes: u64,
}

/// The scenario at every rate of `--base-rates`.
pub(crate) fn run(json: bool, dir: &Path, args: &FieldArgs) -> Result<Value> {
    let peer_dir = dir.join("peer");
    let month = place_month(&peer_dir, args)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let org = OrgKey::generate("Felt", &mut rng);
    let peer_id = enrol_and_compact(&peer_dir, &org, &mut rng)?;
    let held = held(&peer_dir)?;
    // The file as `omsyn run` keeps it, before serving a sync adds to it.
    let store_file = dir.join("peer-store.redb");
    std::fs::copy(Repo::store_path(&peer_dir), &store_file)?;
    let file_bytes = std::fs::metadata(&store_file)?.len();
    if !json {
        outln!(
            "a new base takes a month from a peer base: {month}; {} documents, {} changes, floor {} B; the peer's store file (compacted) {} B",
            held.heads.len(),
            held.changes,
            held.floor_bytes,
            file_bytes
        );
    }
    let lab = Lab::new()?;
    let mut runs = Vec::new();
    for &rate in &args.base_rates {
        let spec = LinkSpec {
            delay_ms: args.base_delay_ms,
            loss: 0.0,
            rate_kbit: rate,
            queue_ms: QUEUE_MS,
            seed: args.seed,
        };
        let new_dir = dir.join(format!("new-{rate}"));
        drop(node(
            &new_dir,
            profile(Role::Base, "Ny base", None)?,
            &org,
            &mut rng,
        )?);
        let mut proxy = Lab::start(&lab.link, &spec.proxy_args(PEER_LISTEN))?;
        let omsyn = first_sync(&lab, &mut proxy, (&peer_dir, &new_dir), &peer_id, &held)?;
        std::fs::remove_dir_all(&new_dir)?;
        let mut copies = Vec::new();
        for compress in [false, true] {
            let out = dir.join("copy.redb");
            copies.push(copy(&lab, &mut proxy, &store_file, &out, compress)?);
            let _ = std::fs::remove_file(&out);
        }
        let run = judged(spec.describe(), omsyn, copies);
        if !json {
            print_run(&run);
        }
        runs.push(run);
    }
    Ok(json!({
        "name": format!("a new base's first sync: {month}"),
        "documents": held.heads.len(),
        "changes": held.changes,
        "floor_bytes": held.floor_bytes,
        "store_file_bytes": file_bytes,
        "runs": runs,
    }))
}

/// The peer base's data directory: the month of `--month` copied, or one generated for the run.
/// Returns what it holds, in words.
fn place_month(peer_dir: &Path, args: &FieldArgs) -> Result<String> {
    match &args.month {
        Some(month) => {
            if !month.join("node.json").exists() {
                bail!(
                    "--month {}: no node there (generate one with `omsyn bench store --dir DIR --zones 1`)",
                    month.display()
                );
            }
            crate::bench_field::copy_dir(month, peer_dir)?;
            Ok(format!("the month of {}", month.display()))
        }
        None => {
            let generated = crate::bench::generate_month(
                peer_dir,
                &BenchArgs {
                    patients: args.base_patients,
                    days: 30,
                    // The M tier's 2,500 visits a day for 2,000 patients.
                    visits_per_day: args.base_patients * 5 / 4,
                    writes: 0,
                    zones: 1,
                    dir: None,
                    bytes_only: false,
                    table_pricing: None,
                },
            )?;
            Ok(format!(
                "{} patients, {} visits, {} journal entries (generated in {:.0} s)",
                generated.patients,
                generated.visits,
                generated.entries,
                generated.elapsed.as_secs_f64()
            ))
        }
    }
}

/// Enrols the peer base in the run's organisation and compacts its store as `omsyn run` would;
/// returns its id.
fn enrol_and_compact(
    peer_dir: &Path,
    org: &OrgKey,
    rng: &mut StdRng,
) -> Result<omsyn_core::NodeId> {
    let repo = Repo::open(peer_dir, None, rng)?;
    crate::bench_field::enrol(&repo, org)?;
    let id = repo.id();
    drop(repo);
    crate::check::compact(peer_dir, crate::check::verify_pages(peer_dir, None)?)?;
    Ok(id)
}

/// Every document's heads and the bytes of all its changes, in one pass.
fn held(dir: &Path) -> Result<Held> {
    let repo = Repo::open(dir, None, &mut StdRng::seed_from_u64(0))?;
    let mut held = Held {
        heads: Vec::new(),
        changes: 0,
        floor_bytes: 0,
    };
    for id in repo.store().doc_ids("")? {
        let Some((heads, changes, bytes)) = repo.store().with_doc(&id, |d| {
            let changes = d.hashed_changes_since(&[]);
            let bytes: usize = changes.iter().map(|c| c.bytes.len()).sum();
            (d.head_hashes(), changes.len() as u64, bytes as u64)
        })?
        else {
            continue;
        };
        held.heads.push((id, heads));
        held.changes += changes;
        held.floor_bytes += bytes;
    }
    Ok(held)
}

/// The documents of `held` that the base in `dir` lacks (any of their heads missing).
fn missing(dir: &Path, held: &Held) -> Result<Vec<DocumentId>> {
    let repo = Repo::open(dir, None, &mut StdRng::seed_from_u64(0))?;
    let mut missing = Vec::new();
    for (id, heads) in &held.heads {
        let has_all = repo
            .store()
            .with_doc(id, |d| heads.iter().all(|h| d.has_change(h)))?;
        if has_all != Some(true) {
            missing.push(id.clone());
        }
    }
    Ok(missing)
}

/// Runs the new base's `omsyn sync` with the peer base (served for this run) and times it, from
/// starting the process to its end; checks that it holds everything the peer held.
fn first_sync(
    lab: &Lab,
    proxy: &mut Process,
    (peer_dir, new_dir): (&Path, &Path),
    peer_id: &omsyn_core::NodeId,
    held: &Held,
) -> Result<Value> {
    let mut peer = Lab::start(
        &lab.home,
        &[
            "--json",
            "--data",
            &s(peer_dir),
            "run",
            "--no-mdns",
            "--listen",
            PEER_LISTEN,
        ]
        .map(str::to_owned),
    )?;
    peer.patience = LIMIT;
    let ticket = format!("omsyn1:{peer_id}@{PROXY}");
    let (bytes_before, datagrams_before) = link_traffic(proxy)?;
    let sender_cpu_before = cpu_of(peer.child.id());
    let receiver_cpu_before = children_cpu();
    let started = Instant::now();
    let sync = phone_sync_args(new_dir, &ticket);
    let mut command = lab
        .phone
        .command(&sync.iter().map(String::as_str).collect::<Vec<_>>());
    command.env("OMSYN_LOG", "warn,omsyn_node::net::driver=info");
    let out = finished(command)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (bytes, datagrams) = link_traffic(proxy)?;
    let summary: Value = serde_json::from_slice(&out.stdout).context("the sync's summary")?;
    if summary["caught_up"] != true {
        bail!("the new base did not catch up: {summary}");
    }
    let (_, ended) = peer
        .wait_for_log("session over")
        .map_err(waited(&mut peer))?;
    let sender_busy_ms = logged(&ended, "busy_ms");
    let sender_cpu_ms = cpu_of(peer.child.id())
        .zip(sender_cpu_before)
        .map(|(after, before)| (after - before).as_millis());
    // The sync has ended and been waited for: the children's time grew by its time alone.
    let receiver_cpu_ms = children_cpu()
        .saturating_sub(receiver_cpu_before)
        .as_millis();
    drop(peer);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let receiver_ended = stderr.lines().find(|l| l.contains("session over"));
    let receiver_busy_ms = receiver_ended.and_then(|l| logged(l, "busy_ms"));
    // Checking the changes' signatures and parsing them, on a thread of its own.
    let receiver_unpack_ms = receiver_ended.and_then(|l| logged(l, "unpack_ms"));
    let lacking = missing(new_dir, held)?;
    if !lacking.is_empty() {
        bail!(
            "the new base lacks {} documents after its sync, e.g. {}",
            lacking.len(),
            lacking[0]
        );
    }
    Ok(json!({
        "ms": ms,
        "wire_bytes": bytes - bytes_before,
        "datagrams": datagrams - datagrams_before,
        "session": summary["stats"],
        "receiver_busy_ms": receiver_busy_ms,
        "receiver_unpack_ms": receiver_unpack_ms,
        "sender_busy_ms": sender_busy_ms,
        "receiver_cpu_ms": receiver_cpu_ms,
        "sender_cpu_ms": sender_cpu_ms,
    }))
}

/// Processor time (user and system) the running process `pid` has used. Busy times count a
/// thread's wall time while it works, which on a loaded machine includes waiting for a
/// processor; this does not.
fn cpu_of(pid: u32) -> Option<Duration> {
    proc_stat_time(&format!("/proc/{pid}/stat"), 0)
}

/// Processor time of this process's children that ended and were waited for.
fn children_cpu() -> Duration {
    proc_stat_time("/proc/self/stat", 2).unwrap_or_default()
}

/// Two consecutive times of a `/proc/…/stat` file from its 14th field on (`skip` 0: the
/// process's user and system time; 2: its waited-for children's), in USER_HZ ticks — 100 a
/// second on every Linux platform Omsyn runs on.
fn proc_stat_time(path: &str, skip: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces: count the fields after its closing bracket.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11 + skip);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Runs `command` to its end within [`LIMIT`]; fails with its error output if it failed.
fn finished(command: Command) -> Result<std::process::Output> {
    let out = output_within(command, LIMIT).map_err(lab_err)?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Copies the peer's store file over the link with `omsyn bench copy`, timed like the sync: from
/// starting the receiving process to its end (the copy written and fsynced).
fn copy(lab: &Lab, proxy: &mut Process, file: &Path, out: &Path, compress: bool) -> Result<Value> {
    let mut serve = vec!["--json", "bench", "copy", "--listen", PEER_LISTEN];
    let file = s(file);
    serve.extend(["--file", &file]);
    if compress {
        serve.push("--compress");
    }
    let server = Lab::start(
        &lab.home,
        &serve.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    )?;
    let peer = format!(
        "{}@{PROXY}",
        server.first_line["id"].as_str().context("the copy's id")?
    );
    let out_path = s(out);
    let mut receive = vec![
        "--json", "bench", "copy", "--peer", &peer, "--out", &out_path,
    ];
    if compress {
        receive.push("--compress");
    }
    let (bytes_before, datagrams_before) = link_traffic(proxy)?;
    let started = Instant::now();
    let done = finished(lab.phone.command(&receive))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (bytes, datagrams) = link_traffic(proxy)?;
    drop(server);
    let result: Value = serde_json::from_slice(&done.stdout).context("the copy's result")?;
    Ok(json!({
        "compressed": compress,
        "ms": ms,
        "wire_bytes": bytes - bytes_before,
        "datagrams": datagrams - datagrams_before,
        "file_bytes": result["file_bytes"],
        "stream_bytes": result["stream_bytes"],
    }))
}

/// One rate's figures, with the ratio of Omsyn's time to the faster copy's.
fn judged(link: String, omsyn: Value, copies: Vec<Value>) -> Value {
    let ms = |v: &Value| v["ms"].as_f64().unwrap_or(f64::NAN);
    let fastest = copies.iter().map(ms).fold(f64::INFINITY, f64::min);
    json!({
        "link": link,
        "omsyn": omsyn,
        "copies": copies,
        "ratio_to_the_faster_copy": ms(&omsyn) / fastest,
    })
}

fn print_run(run: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mb = |v: &Value| f(v) / 1e6;
    let o = &run["omsyn"];
    outln!("  {}", run["link"].as_str().unwrap_or(""));
    outln!(
        "    omsyn sync      {:>8.1} s  {:>7.1} MB on the wire, {:>7.1} MB received by the session; busy: new base {:.1} s (and unpacking {:.1} s), peer {:.1} s; processor time: new base {:.1} s, peer {:.1} s",
        f(&o["ms"]) / 1000.0,
        mb(&o["wire_bytes"]),
        mb(&o["session"]["bytes_received"]),
        f(&o["receiver_busy_ms"]) / 1000.0,
        f(&o["receiver_unpack_ms"]) / 1000.0,
        f(&o["sender_busy_ms"]) / 1000.0,
        f(&o["receiver_cpu_ms"]) / 1000.0,
        f(&o["sender_cpu_ms"]) / 1000.0,
    );
    for c in run["copies"].as_array().into_iter().flatten() {
        outln!(
            "    copy{:<11} {:>8.1} s  {:>7.1} MB on the wire ({:.1} MB file)",
            if c["compressed"] == true {
                ", deflate"
            } else {
                ""
            },
            f(&c["ms"]) / 1000.0,
            mb(&c["wire_bytes"]),
            mb(&c["file_bytes"]),
        );
    }
    outln!(
        "    ratio to the faster copy: {:.2}×",
        f(&run["ratio_to_the_faster_copy"])
    );
}
