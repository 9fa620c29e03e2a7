//! `omsyn bench sync`: Omsyn's reconnect against per-document Automerge sync with every document
//! already in memory and saved sync states (as samod/automerge-repo keep them), pipelined, and
//! against the bytes of the missing changes themselves (the physical floor) — in one run, over the
//! same transport (iroh QUIC on loopback), repeated, at several sizes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use iroh::endpoint::presets;
use iroh::{Endpoint, EndpointAddr};
use omsyn_core::docs::DocumentId;
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::repo::NewTiltak;
use omsyn_core::sync::baseline::{InMemoryPerDocumentSync, PerDocumentSync};
use omsyn_core::{NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::net::NetOptions;
use crate::net::daemon::{self, Shared};
use crate::net::driver::Mode;

pub(crate) const NAIVE_ALPN: &[u8] = b"omsyn/bench/per-document-automerge";

fn options() -> NetOptions {
    NetOptions {
        listen: Some(([127, 0, 0, 1], 0).into()),
        relay: None,
        mdns: false,
        relay_only: false,
        relay_ca: None,
    }
}

fn profile(role: Role, name: &str) -> NodeProfile {
    NodeProfile {
        version: PROFILE_VERSION,
        role,
        name: name.into(),
        staff_id: Some(StaffId::parse("K1").expect("valid")),
        patient: None,
        zone: Some("Sone 1".into()),
    }
}

/// Enrols both nodes in one organisation made for the run.
fn enroll(repos: [&Repo; 2], rng: &mut StdRng) -> Result<()> {
    let org = omsyn_core::trust::OrgKey::generate("Benchmark", rng);
    for repo in repos {
        let cert = org.approve(
            &repo.enrollment_request(),
            omsyn_node::clock::now().unix_millis(),
            omsyn_core::trust::DEFAULT_VALIDITY_MS,
        )?;
        repo.install_certificate(&cert)?;
    }
    Ok(())
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T07:00:00+01:00").expect("valid")
}

/// Runs the reconnect at each size, `runs` times, and the live-latency measurement.
pub(crate) fn run(json: bool, sizes: &[usize], runs: usize, percent: f64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("omsyn-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let mut reports = Vec::new();
        for &n in sizes {
            let report = scenario(&dir.join(format!("n{n}")), n, runs.max(1), percent).await?;
            print_scenario(json, &report);
            reports.push(report);
        }
        let live = live_latency(&dir.join("live")).await?;
        if !json {
            outln!(
                "live push, loopback: a committed change reached the connected peer's store in median {:.2} ms (p90 {:.2} ms, {} samples)",
                live["median_ms"].as_f64().unwrap_or(f64::NAN),
                live["p90_ms"].as_f64().unwrap_or(f64::NAN),
                live["samples"]
            );
        }
        Ok::<_, anyhow::Error>(json!({ "scenarios": reports, "live_latency": live }))
    });
    crate::bench::conclude(json, &dir, result)
}

/// Median, least and greatest of `samples`.
fn spread(samples: &[f64]) -> Value {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    json!({
        "median": median,
        "min": sorted.first().copied().unwrap_or(f64::NAN),
        "max": sorted.last().copied().unwrap_or(f64::NAN),
    })
}

fn print_scenario(json: bool, s: &Value) {
    if json {
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let ms = |v: &Value| {
        format!(
            "{:.1} ms ({:.1}–{:.1})",
            f(&v["median"]),
            f(&v["min"]),
            f(&v["max"])
        )
    };
    outln!(
        "{} — {} documents (avg {:.0} B), {} changed on each side, {} runs (median, min–max)",
        s["name"].as_str().unwrap_or(""),
        s["documents"],
        f(&s["avg_document_bytes"]),
        s["changed_each_side"],
        s["runs"]
    );
    outln!(
        "  floor (bytes of the missing changes): {} B",
        f(&s["floor_bytes"]["median"])
    );
    for (key, label) in [("omsyn", "omsyn"), ("baseline", "per-document, in memory")] {
        let r = &s[key];
        outln!(
            "  {label:<24} {:>9.0} B ({:>5.2}× floor), {:>2} round trips, connect + sync {}",
            f(&r["bytes"]["median"]),
            f(&r["bytes"]["median"]) / f(&s["floor_bytes"]["median"]).max(1.0),
            r["round_trips"],
            ms(&r["ms"]),
        );
    }
    outln!(
        "  omsyn until its streams are closed too: {}; its session alone (from its stream opening; the connect took {}): {}",
        ms(&s["omsyn"]["returned_ms"]),
        ms(&s["omsyn"]["connect_ms"]),
        ms(&s["omsyn"]["session_ms"])
    );
    outln!(
        "  omsyn vs in-memory per-document: {:.1}× fewer bytes, {:.1}× less time (medians; slowest omsyn run vs fastest baseline run: {:.1}×)",
        f(&s["baseline"]["bytes"]["median"]) / f(&s["omsyn"]["bytes"]["median"]),
        f(&s["baseline"]["ms"]["median"]) / f(&s["omsyn"]["ms"]["median"]),
        f(&s["baseline"]["ms"]["min"]) / f(&s["omsyn"]["ms"]["max"]),
    );
}

/// Patient records of about 2.5 KB each, a thousand to a transaction (one transaction of 50,000
/// would hold them all in memory until it commits).
fn populate(repo: &Repo, n: usize, rng: &mut StdRng) -> Result<Vec<PatientId>> {
    let mut ids = Vec::with_capacity(n);
    for first in (0..n).step_by(1000) {
        ids.extend(populate_range(repo, first..n.min(first + 1000), rng)?);
    }
    Ok(ids)
}

fn populate_range(
    repo: &Repo,
    range: std::ops::Range<usize>,
    rng: &mut StdRng,
) -> Result<Vec<PatientId>> {
    let t = now();
    let nurse = StaffId::parse("K1")?;
    Ok(repo.transaction(|tx| {
        let mut ids = Vec::with_capacity(range.len());
        for i in range.clone() {
            // Free text that compresses little makes a record of about 2.5 KB, as in the brief.
            let note: String = (0..420)
                .map(|_| format!("{:04x}", rand::Rng::random::<u16>(rng)))
                .collect::<Vec<_>>()
                .join(" ");
            let p = tx.add_patient(
                t,
                rng,
                &[
                    (PatientField::Name, format!("Pasient nummer {i}")),
                    (
                        PatientField::Address,
                        format!("Storgata {} B, 3110 Tønsberg", i % 200),
                    ),
                    (PatientField::AccessNote, note.clone()),
                    (PatientField::Phone, format!("9{:07}", i)),
                ],
            )?;
            tx.add_contact(t, rng, &p, "Anne Nilsen", "datter", Some("911 22 333"))?;
            // The nurse of the shift scenario (staff K1) holds every patient.
            tx.set_team_member(t, &p, &nurse, true)?;
            tx.add_medication(
                t,
                rng,
                &p,
                "Metformin 500 mg",
                "1 tablett",
                &["08:00".into(), "20:00".into()],
            )?;
            tx.add_tiltak(
                t,
                rng,
                &p,
                &NewTiltak {
                    vedtak_title: Some("Helsetjenester i hjemmet".into()),
                    code: Some("MED".into()),
                    description: "Legemiddelhåndtering: utdeling av dosett, observere inntak"
                        .into(),
                    times: vec!["08:00".into(), "20:00".into()],
                    weekdays: vec![],
                    health_care: true,
                    requires_authorised_nurse: true,
                    double_staffed: false,
                },
            )?;
            ids.push(p);
        }
        Ok::<_, omsyn_core::RepoError>(ids)
    })?)
}

async fn serve(repo: Repo) -> Result<Shared> {
    let shared = crate::serve::shared(Arc::new(repo), &options()).await?;
    // For measuring what dropping evicted documents off the write's path saves: with
    // `OMSYN_BENCH_DROP_EVICTED=inline` a write drops them itself, as before.
    if std::env::var("OMSYN_BENCH_DROP_EVICTED").as_deref() == Ok("inline") {
        shared.repo.store().set_disposer(Box::new(drop));
    }
    let serving = shared.clone();
    tokio::spawn(async move { daemon::run(serving, Vec::new(), std::future::pending()).await });
    Ok(shared)
}

/// Longest a sync of the bench may take (the first, full sync of 50,000 documents included): a
/// stalled session ends the bench with an error instead of leaving it waiting.
const SYNC_LIMIT: Duration = Duration::from_secs(15 * 60);

/// `a` learns `b`'s ticket (as a node configured with its peer knows it before it dials).
fn learn(a: &Shared, b: &Shared) -> Result<(iroh::EndpointId, omsyn_core::NodeId)> {
    let ticket = b.net.ticket()?;
    Ok((a.net.learn(&ticket)?, ticket.node))
}

/// `a` dials the peer it learnt and syncs until both are caught up.
async fn omsyn_sync(
    a: &Shared,
    (id, node): (iroh::EndpointId, omsyn_core::NodeId),
) -> Result<crate::net::driver::Outcome> {
    tokio::time::timeout(SYNC_LIMIT, daemon::dial_once(a, id, node, Mode::ONCE))
        .await
        .context("omsyn's sync did not end within the bench's limit")?
}

fn all_docs(repo: &Repo) -> Result<Vec<DocumentId>> {
    Ok(repo.store().doc_ids("")?)
}

/// One size: both nodes hold `n` documents and have synced once (Omsyn, and the baseline's
/// first session, which leaves its sync states). Then, `runs` times: each side changes `percent`
/// of the documents (different ones each time), and both reconnect — Omsyn on the two stores,
/// the baseline on its documents in memory — each over a new QUIC connection on loopback.
async fn scenario(dir: &Path, n: usize, runs: usize, percent: f64) -> Result<Value> {
    // A nurse's phone holds at most a base's worth of patients; more is another base.
    let (peer_role, name) = if n <= 2000 {
        (Role::Nurse, "reconnect after a shift (base ↔ nurse)")
    } else {
        (Role::Base, "base to base")
    };
    let mut rng = StdRng::seed_from_u64(n as u64);
    let a = Repo::init(&dir.join("a"), profile(Role::Base, "a"), None, &mut rng)?;
    let b = Repo::init(&dir.join("b"), profile(peer_role, "b"), None, &mut rng)?;
    enroll([&a, &b], &mut rng)?;
    let patients = populate(&a, n, &mut rng)?;
    let (a, b) = (serve(a).await?, serve(b).await?);
    let peer = learn(&a, &b)?;
    let first = omsyn_sync(&a, peer).await?;
    if !first.caught_up {
        bail!("the initial sync did not finish");
    }
    let docs = all_docs(&a.repo)?;
    let docs_total_bytes: usize = docs
        .iter()
        .map(|id| {
            Ok(a.repo
                .store()
                .with_doc(id, |d| d.save().len())?
                .unwrap_or(0))
        })
        .sum::<Result<usize>>()?;
    // The baseline's previous session: every document loaded, the states it leaves.
    let mut mem_a = InMemoryPerDocumentSync::load(a.repo.store(), &docs)?;
    let mut mem_b = InMemoryPerDocumentSync::load(b.repo.store(), &all_docs(&b.repo)?)?;
    settle_in_memory(&mut mem_a, &mut mem_b)?;
    // Reading every document through the stores above left each store's last 256 in its
    // cache, so some documents Omsyn receives would be warm; a reconnect finds them cold.
    a.repo.store().clear_cache();
    b.repo.store().clear_cache();

    let k = ((n as f64) * percent / 100.0).ceil() as usize;
    // A profiler attaches from here on (see BENCHMARKS.md): the set-up above is not the reconnect.
    tracing::info!(
        documents = n,
        runs,
        "bench sync: set up; measuring the reconnects"
    );
    let mut samples: Vec<Value> = Vec::new();
    for run in 0..runs {
        let seqs = (a.repo.store().seq()?, b.repo.store().seq()?);
        // A shift apart: each side changes k documents, different ones, new ones each run.
        let t = Timestamp::parse("2026-11-23T15:00:00+01:00")?;
        for (side, repo) in [&a.repo, &b.repo].into_iter().enumerate() {
            for j in 0..k {
                let p = &patients[(run * 2 * k + side * k + j) % patients.len()];
                repo.set_patient_field(
                    t,
                    p,
                    PatientField::Phone,
                    &format!("9{run:03}{side}{j:04}"),
                )?;
            }
        }
        let (changed_a, changed_b) = (
            changed_since(&a.repo, seqs.0)?,
            changed_since(&b.repo, seqs.1)?,
        );
        // samod would have made these edits on its documents in memory: not timed.
        mem_a.refresh(a.repo.store(), &changed_a)?;
        mem_b.refresh(b.repo.store(), &changed_b)?;
        // From the baseline's copies: reading the receivers' stores would put the documents
        // Omsyn is about to receive into their caches, which a real reconnect finds cold.
        let sides = [(&*a.repo, &mem_a), (&*b.repo, &mem_b)];
        let floor = floor_bytes(sides, changed_a.iter().chain(&changed_b))?;
        mem_a.reconnect();
        mem_b.reconnect();

        // Timed from the dial, as the baseline is from its connect: the peer's address is known.
        let started = Instant::now();
        let outcome = omsyn_sync(&a, peer).await?;
        let returned_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Timed to where the baseline's clock stops: the dialer knows both sides hold
        // everything. Closing the streams after that is reported apart (`returned_ms`).
        let Some(caught_up_at) = outcome.caught_up_at.filter(|_| outcome.caught_up) else {
            bail!("omsyn's reconnect did not catch up");
        };
        let omsyn_ms = (caught_up_at - started).as_secs_f64() * 1000.0;
        let (mem, baseline) = in_memory_over_quic(mem_a, mem_b).await?;
        (mem_a, mem_b) = mem;
        for id in changed_a.iter().chain(&changed_b) {
            if mem_a.heads(id) != mem_b.heads(id) {
                bail!("the baseline did not converge on {id}");
            }
        }
        let s = outcome.stats;
        samples.push(json!({
            "floor_bytes": floor,
            "omsyn": {
                "bytes": s.bytes_sent + s.bytes_received,
                "round_trips": s.rounds_to_catch_up.max(1),
                "ms": omsyn_ms,
                "returned_ms": returned_ms,
                "session_ms": outcome.millis as f64,
            },
            "baseline": baseline,
        }));
    }
    for e in [a.net.endpoint.clone(), b.net.endpoint.clone()] {
        e.close().await;
    }
    let pick = |path: &[&str]| -> Vec<f64> {
        samples
            .iter()
            .map(|s| {
                path.iter()
                    .fold(s, |v, k| &v[*k])
                    .as_f64()
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };
    let returned_ms = pick(&["omsyn", "returned_ms"]);
    let session_ms = pick(&["omsyn", "session_ms"]);
    // What the connect took: the end-to-end time less the session's own, run by run.
    let connect_ms: Vec<f64> = returned_ms
        .iter()
        .zip(&session_ms)
        .map(|(e, s)| e - s)
        .collect();
    Ok(json!({
        "name": name,
        "documents": docs.len(),
        "avg_document_bytes": docs_total_bytes as f64 / docs.len().max(1) as f64,
        "changed_each_side": k,
        "runs": runs,
        "floor_bytes": spread(&pick(&["floor_bytes"])),
        "omsyn": {
            "bytes": spread(&pick(&["omsyn", "bytes"])),
            "round_trips": samples.last().map(|s| s["omsyn"]["round_trips"].clone()),
            "ms": spread(&pick(&["omsyn", "ms"])),
            "returned_ms": spread(&returned_ms),
            "session_ms": spread(&session_ms),
            "connect_ms": spread(&connect_ms),
        },
        "baseline": {
            "bytes": spread(&pick(&["baseline", "bytes"])),
            "round_trips": samples.last().map(|s| s["baseline"]["round_trips"].clone()),
            "ms": spread(&pick(&["baseline", "ms"])),
        },
        "samples": samples,
    }))
}

/// The documents `repo` committed after log position `seq`.
fn changed_since(repo: &Repo, seq: u64) -> Result<Vec<DocumentId>> {
    Ok(repo
        .store()
        .log_since(seq)?
        .changed
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// The bytes of the changes each side lacks of the documents `changed` (and that it may hold),
/// and nothing else; each side's documents as `sides` hold them in memory.
fn floor_bytes<'a>(
    sides: [(&Repo, &InMemoryPerDocumentSync); 2],
    changed: impl Iterator<Item = &'a DocumentId>,
) -> Result<usize> {
    let mut ids: Vec<&DocumentId> = changed.collect();
    ids.sort();
    ids.dedup();
    let now_ms = omsyn_node::clock::now().unix_millis();
    let [a, b] = sides;
    let mut floor = 0;
    for id in ids {
        for ((from, from_docs), (to, to_docs)) in [(a, b), (b, a)] {
            if !omsyn_core::trust::need::needs(from.store(), now_ms, &to.grant()?, id)? {
                continue;
            }
            let Some(doc) = from_docs.document(id) else {
                continue;
            };
            let held = to_docs.document(id);
            floor += doc
                .hashed_changes_since(&[])
                .iter()
                .filter(|c| !held.is_some_and(|h| h.has_change(&c.hash)))
                .map(|c| c.bytes.len())
                .sum::<usize>();
        }
    }
    Ok(floor)
}

/// The baseline's first session, in memory: leaves a sync state per document on both sides.
fn settle_in_memory(
    a: &mut InMemoryPerDocumentSync,
    b: &mut InMemoryPerDocumentSync,
) -> Result<()> {
    for _ in 0..20 {
        let (from_a, from_b) = (a.generate(), b.generate());
        if from_a.is_empty() && from_b.is_empty() {
            return Ok(());
        }
        b.receive(from_a)?;
        a.receive(from_b)?;
    }
    bail!("the baseline did not settle")
}

type Pair = (InMemoryPerDocumentSync, InMemoryPerDocumentSync);

/// Per-document Automerge sync of documents in memory over one QUIC stream, pipelined: each
/// round, both sides send every document's message at once, then read the other's. Timed from
/// the connect to the dialer's last round (it then knows both sides hold everything), as Omsyn's
/// reconnect is to its dialer's catching up; ending the streams is not timed for either.
async fn in_memory_over_quic(
    mut a: InMemoryPerDocumentSync,
    mut b: InMemoryPerDocumentSync,
) -> Result<(Pair, Value)> {
    let loopback = ([127, 0, 0, 1], 0).into();
    let (ea, eb) = (
        naive_endpoint(loopback).await?,
        naive_endpoint(loopback).await?,
    );
    let addr = EndpointAddr::new(eb.id()).with_ip_addr(eb.bound_sockets()[0]);
    // The responder hands its connection back rather than dropping it: the dialer closes only
    // once both sides have read everything (closing drops what the peer has not read yet).
    let responder = tokio::spawn(async move {
        let conn = eb.accept().await.context("no connection")?.await?;
        let (send, recv) = conn.accept_bi().await?;
        let result = pipelined_rounds(&mut b, send, recv).await;
        result.map(|_| (b, conn, eb))
    });
    let started = Instant::now();
    let conn = ea.connect(addr, NAIVE_ALPN).await?;
    let (send, recv) = conn.open_bi().await?;
    let (rounds, bytes, converged_at) =
        tokio::time::timeout(SYNC_LIMIT, pipelined_rounds(&mut a, send, recv))
            .await
            .context("the baseline's sync did not end within the bench's limit")??;
    let ms = (converged_at - started).as_secs_f64() * 1000.0;
    let (b, conn_b, eb) = tokio::time::timeout(Duration::from_secs(60), responder)
        .await
        .context("the baseline's responder did not finish")???;
    conn.close(0u32.into(), b"done");
    drop(conn_b);
    eb.close().await;
    ea.close().await;
    Ok((
        (a, b),
        json!({ "bytes": bytes, "round_trips": rounds, "ms": ms }),
    ))
}

type Messages = Vec<(DocumentId, Vec<u8>)>;

/// A side of the per-document baseline: its documents' messages, and applying the peer's.
trait PerDocument {
    fn generate(&mut self) -> Result<Messages>;
    fn receive(&mut self, messages: Messages) -> Result<()>;
}

impl PerDocument for InMemoryPerDocumentSync {
    fn generate(&mut self) -> Result<Messages> {
        Ok(InMemoryPerDocumentSync::generate(self))
    }
    fn receive(&mut self, messages: Messages) -> Result<()> {
        Ok(InMemoryPerDocumentSync::receive(self, messages)?)
    }
}

/// The store-backed baseline (`omsyn bench field`): each message reads its document through the
/// store, and what arrives is committed.
struct Stored<'a> {
    repo: &'a Repo,
    docs: &'a [DocumentId],
    state: &'a mut PerDocumentSync,
}

impl PerDocument for Stored<'_> {
    fn generate(&mut self) -> Result<Messages> {
        Ok(self.state.generate(self.repo.store(), self.docs)?)
    }
    fn receive(&mut self, messages: Messages) -> Result<()> {
        Ok(self.state.receive(self.repo.store(), messages)?)
    }
}

/// One side of the baseline: rounds until both sides sent nothing in the same one. Returns the
/// rounds and the bytes both ways.
/// Returns the rounds, the bytes, and when the last round showed both sides converged (before
/// the streams were ended).
async fn pipelined_rounds(
    side: &mut impl PerDocument,
    mut send: iroh::endpoint::SendStream,
    mut recv: iroh::endpoint::RecvStream,
) -> Result<(u64, u64, Instant)> {
    let mut rounds = 0u64;
    let mut bytes = 0u64;
    loop {
        let mine = tokio::task::block_in_place(|| side.generate())?;
        // Written while the peer's round is read: both sides send a whole round at once, and a
        // round larger than QUIC's flow-control windows (50,000 documents) would otherwise leave
        // each side blocked on a write the other is not reading.
        let (written, read) =
            tokio::join!(write_messages(&mut send, &mine), read_messages(&mut recv));
        let (theirs, read) = read?;
        bytes += written? + read;
        let done = mine.is_empty() && theirs.is_empty();
        tokio::task::block_in_place(|| side.receive(theirs))?;
        if done {
            let converged_at = Instant::now();
            // Both sides end their stream and wait for the other's end: the dialer closes the
            // connection after, and closing drops what the peer has not read yet.
            send.finish()?;
            tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
                .await
                .context("the peer did not end its stream")??;
            return Ok((rounds, bytes, converged_at));
        }
        rounds += 1;
    }
}

/// Writes one round of the baseline: length-prefixed (document id, Automerge message) frames,
/// then an empty frame. Returns the bytes written.
async fn write_messages(
    send: &mut iroh::endpoint::SendStream,
    messages: &[(DocumentId, Vec<u8>)],
) -> Result<u64> {
    let mut out = Vec::new();
    for (id, message) in messages {
        let id = id.to_string();
        out.extend_from_slice(&((id.len() + message.len() + 1) as u32).to_le_bytes());
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(message);
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    send.write_all(&out).await?;
    Ok(out.len() as u64)
}

/// Reads one round written by [`write_messages`]; returns it and the bytes read.
async fn read_messages(
    recv: &mut iroh::endpoint::RecvStream,
) -> Result<(Vec<(DocumentId, Vec<u8>)>, u64)> {
    let mut theirs = Vec::new();
    let mut bytes = 0u64;
    loop {
        let mut len = [0u8; 4];
        recv.read_exact(&mut len).await?;
        bytes += 4;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 {
            return Ok((theirs, bytes));
        }
        let mut frame = vec![0u8; len];
        recv.read_exact(&mut frame).await?;
        bytes += len as u64;
        let id_len = usize::from(frame[0]);
        let id = DocumentId::parse(std::str::from_utf8(&frame[1..1 + id_len])?)?;
        theirs.push((id, frame[1 + id_len..].to_vec()));
    }
}

/// Establishes per-document sync states (the "previous session" of the baseline).
pub(crate) fn naive_round_trip_in_memory(
    a: &Repo,
    b: &Repo,
    docs: &[DocumentId],
    sa: &mut PerDocumentSync,
    sb: &mut PerDocumentSync,
) -> Result<()> {
    for _ in 0..20 {
        let from_a = sa.generate(a.store(), docs)?;
        let from_b = sb.generate(b.store(), docs)?;
        if from_a.is_empty() && from_b.is_empty() {
            return Ok(());
        }
        sb.receive(b.store(), from_a)?;
        sa.receive(a.store(), from_b)?;
    }
    bail!("the baseline did not settle")
}

/// An endpoint for the baseline on `listen`, with the transport settings nodes use.
pub(crate) async fn naive_endpoint(listen: std::net::SocketAddr) -> Result<Endpoint> {
    endpoint(listen, NAIVE_ALPN).await
}

/// An endpoint for a baseline speaking `alpn` on `listen`, with the transport settings nodes use.
pub(crate) async fn endpoint(listen: std::net::SocketAddr, alpn: &[u8]) -> Result<Endpoint> {
    Ok(Endpoint::builder(presets::Minimal)
        .alpns(vec![alpn.to_vec()])
        .transport_config(crate::net::transport_config()?)
        .clear_ip_transports()
        .bind_addr(listen)?
        .bind()
        .await?)
}

/// One side of the store-backed baseline (`omsyn bench field`).
pub(crate) async fn naive_loop(
    repo: &Repo,
    docs: &[DocumentId],
    state: &mut PerDocumentSync,
    send: iroh::endpoint::SendStream,
    recv: iroh::endpoint::RecvStream,
) -> Result<(u64, u64)> {
    let mut side = Stored { repo, docs, state };
    let (rounds, bytes, _) = pipelined_rounds(&mut side, send, recv).await?;
    Ok((rounds, bytes))
}

/// How long a committed change takes to reach a connected peer's store, on loopback.
async fn live_latency(dir: &Path) -> Result<Value> {
    let mut rng = StdRng::seed_from_u64(7);
    let a = Repo::init(&dir.join("a"), profile(Role::Base, "a"), None, &mut rng)?;
    let b = Repo::init(&dir.join("b"), profile(Role::Nurse, "b"), None, &mut rng)?;
    enroll([&a, &b], &mut rng)?;
    let patient = a.add_patient(now(), &mut rng, &[(PatientField::Name, "Live".into())])?;
    let nurse = StaffId::parse("K1")?;
    a.transaction(|tx| tx.set_team_member(now(), &patient, &nurse, true))?;
    let (a, b) = (serve(a).await?, serve(b).await?);
    let ticket = b.net.ticket()?;
    let id = a.net.learn(&ticket)?;
    let dialer = a.clone();
    let session =
        tokio::spawn(async move { daemon::dial_once(&dialer, id, ticket.node, Mode::Live).await });
    let mut changed = b.changed.clone();
    // Wait until the record has arrived: the session is live.
    while b.repo.record(&patient).is_err() {
        changed.changed().await?;
    }
    let mut samples = Vec::new();
    for i in 0..30 {
        changed.borrow_and_update();
        let started = Instant::now();
        a.repo
            .set_patient_field(now(), &patient, PatientField::Phone, &format!("{i}"))?;
        loop {
            changed.changed().await?;
            let phone = b
                .repo
                .record(&patient)?
                .field(PatientField::Phone)
                .map(str::to_owned);
            if phone.as_deref() == Some(&i.to_string()) {
                break;
            }
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    session.abort();
    for e in [a.net.endpoint.clone(), b.net.endpoint.clone()] {
        e.close().await;
    }
    samples.sort_by(|x, y| x.total_cmp(y));
    Ok(json!({
        "samples": samples.len(),
        "median_ms": samples[samples.len() / 2],
        "p90_ms": samples[samples.len() * 9 / 10],
    }))
}
