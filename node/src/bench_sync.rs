//! `omsyn bench sync`: Omsyn's collection sync against per-document Automerge sync with saved sync
//! states (what samod/automerge-repo do) and against the bytes of the missing changes themselves
//! (the physical floor) — in one run, over the same transport (iroh QUIC on loopback), on copies
//! of the same two stores.

use std::path::{Path, PathBuf};
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
use omsyn_core::sync::baseline::PerDocumentSync;
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
            crate::commands::now().unix_millis(),
            omsyn_core::trust::DEFAULT_VALIDITY_MS,
        )?;
        repo.install_certificate(&cert)?;
    }
    Ok(())
}

fn now() -> Timestamp {
    Timestamp::parse("2026-11-23T07:00:00+01:00").expect("valid")
}

/// Runs both scenarios and the live-latency measurement.
pub(crate) fn run(json: bool, shift_docs: usize, base_docs: usize, percent: f64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("omsyn-bench-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let shift = scenario(&dir.join("shift"), "reconnect after a shift (base ↔ nurse)", shift_docs, percent, Role::Nurse).await?;
        print_scenario(json, &shift);
        let bases = scenario(&dir.join("bases"), "base to base", base_docs, percent, Role::Base).await?;
        print_scenario(json, &bases);
        let live = live_latency(&dir.join("live")).await?;
        if !json {
            outln!(
                "live push, loopback: a committed change reached the connected peer's store in median {:.2} ms (p90 {:.2} ms, {} samples)",
                live["median_ms"].as_f64().unwrap_or(f64::NAN),
                live["p90_ms"].as_f64().unwrap_or(f64::NAN),
                live["samples"]
            );
        }
        Ok::<_, anyhow::Error>(json!({ "scenarios": [shift, bases], "live_latency": live }))
    });
    crate::bench::conclude(json, &dir, result)
}

fn print_scenario(json: bool, s: &Value) {
    if json {
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    outln!(
        "{} — {} documents (avg {:.0} B), {} changed on each side",
        s["name"].as_str().unwrap_or(""),
        s["documents"],
        f(&s["avg_document_bytes"]),
        s["changed_each_side"]
    );
    outln!(
        "  floor (bytes of the missing changes): {} B",
        s["floor_bytes"]
    );
    for key in ["omsyn", "per_document_automerge"] {
        let r = &s[key];
        outln!(
            "  {key:<24} {:>9} B on the wire ({:>5.2}× floor), {:>3} round trips, {:>8.1} ms",
            r["bytes"],
            f(&r["bytes"]) / f(&s["floor_bytes"]).max(1.0),
            r["round_trips"],
            f(&r["ms"])
        );
    }
    outln!(
        "  omsyn vs per-document: {:.1}× fewer bytes, {:.1}× less time",
        f(&s["per_document_automerge"]["bytes"]) / f(&s["omsyn"]["bytes"]),
        f(&s["per_document_automerge"]["ms"]) / f(&s["omsyn"]["ms"])
    );
}

/// Patient records of about 2.5 KB each, in one transaction.
fn populate(repo: &Repo, n: usize, rng: &mut StdRng) -> Result<Vec<PatientId>> {
    let t = now();
    let nurse = StaffId::parse("K1")?;
    Ok(repo.transaction(|tx| {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
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
    let serving = shared.clone();
    tokio::spawn(async move { daemon::run(serving, Vec::new(), std::future::pending()).await });
    Ok(shared)
}

async fn omsyn_sync(a: &Shared, b: &Shared) -> Result<crate::net::driver::Outcome> {
    let ticket = b.net.ticket()?;
    let id = a.net.learn(&ticket)?;
    daemon::dial_once(a, id, ticket.node, Mode::UntilCaughtUp).await
}

fn all_docs(repo: &Repo) -> Result<Vec<DocumentId>> {
    Ok(repo.store().doc_ids("")?)
}

async fn scenario(
    dir: &Path,
    name: &str,
    n: usize,
    percent: f64,
    peer_role: Role,
) -> Result<Value> {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a = Repo::init(&a_dir, profile(Role::Base, "a"), None, &mut rng)?;
    let b = Repo::init(&b_dir, profile(peer_role, "b"), None, &mut rng)?;
    enroll([&a, &b], &mut rng)?;
    let patients = populate(&a, n, &mut rng)?;
    let docs_total_bytes: usize = {
        let ids = all_docs(&a)?;
        let mut total = 0;
        for id in &ids {
            total += a
                .store()
                .with_doc(id, |d| d.clone().save().len())?
                .unwrap_or(0);
        }
        total
    };
    // Both hold everything; both have per-document sync states from a previous session.
    let (a, b) = (serve(a).await?, serve(b).await?);
    let first = omsyn_sync(&a, &b).await?;
    if !first.caught_up {
        bail!("the initial sync did not finish");
    }
    let docs = all_docs(&a.repo)?;
    let mut naive_a = PerDocumentSync::new();
    let mut naive_b = PerDocumentSync::new();
    naive_round_trip_in_memory(&a.repo, &b.repo, &docs, &mut naive_a, &mut naive_b)?;
    let (mut naive_a, mut naive_b) = (naive_a.saved_and_restored(), naive_b.saved_and_restored());
    let before: Vec<Vec<[u8; 32]>> = heads(&a.repo, &docs)?;

    // A shift apart: each side changes `percent` of the documents, different ones.
    let k = ((n as f64) * percent / 100.0).ceil() as usize;
    let t = Timestamp::parse("2026-11-23T15:00:00+01:00")?;
    for p in &patients[..k] {
        a.repo
            .set_patient_field(t, p, PatientField::Phone, "900 00 001")?;
    }
    for p in &patients[k..2 * k] {
        b.repo
            .set_patient_field(t, p, PatientField::Phone, "900 00 002")?;
    }
    // The floor: the changes each side lacks of the documents it may hold, including documents
    // created since (each side's access log of these writes; unknown before means all missing).
    let mut now_docs = all_docs(&a.repo)?;
    now_docs.extend(all_docs(&b.repo)?);
    now_docs.sort();
    now_docs.dedup();
    let now_ms = crate::commands::now().unix_millis();
    let mut floor = 0usize;
    for id in &now_docs {
        let h = docs
            .iter()
            .position(|d| d == id)
            .map(|i| before[i].clone())
            .unwrap_or_default();
        for (repo, other) in [(&a.repo, &b.repo), (&b.repo, &a.repo)] {
            if !omsyn_core::trust::need::needs(repo.store(), now_ms, &other.grant(), id)? {
                continue;
            }
            floor += repo
                .store()
                .with_doc(id, |d| {
                    d.clone()
                        .changes_since(&h)
                        .iter()
                        .map(Vec::len)
                        .sum::<usize>()
                })?
                .unwrap_or(0);
        }
    }

    // The same starting point for both measurements: copy both stores for the baseline.
    let (ca, cb) = (dir.join("copy-a"), dir.join("copy-b"));
    let endpoints = [a.net.endpoint.clone(), b.net.endpoint.clone()];
    drop((a, b));
    for e in endpoints {
        e.close().await;
    }
    copy_dir(&a_dir, &ca)?;
    copy_dir(&b_dir, &cb)?;

    let (a, b) = (
        serve(Repo::open(&a_dir, None, &mut rng)?).await?,
        serve(Repo::open(&b_dir, None, &mut rng)?).await?,
    );
    let outcome = omsyn_sync(&a, &b).await?;
    let s = outcome.stats;
    let omsyn = json!({
        "bytes": s.bytes_sent + s.bytes_received,
        "round_trips": s.rounds_to_catch_up.max(1),
        "ms": outcome.millis as f64,
        "change_bytes": s.change_bytes_sent + s.change_bytes_received,
    });
    for e in [a.net.endpoint.clone(), b.net.endpoint.clone()] {
        e.close().await;
    }
    drop((a, b));

    let copy_a = Arc::new(Repo::open(&ca, None, &mut rng)?);
    let copy_b = Arc::new(Repo::open(&cb, None, &mut rng)?);
    let naive = naive_over_quic(copy_a, copy_b, &docs, &mut naive_a, &mut naive_b).await?;
    Ok(json!({
        "name": name,
        "documents": docs.len(),
        "avg_document_bytes": docs_total_bytes as f64 / docs.len().max(1) as f64,
        "changed_each_side": k,
        "floor_bytes": floor,
        "omsyn": omsyn,
        "per_document_automerge": naive,
    }))
}

fn heads(repo: &Repo, docs: &[DocumentId]) -> Result<Vec<Vec<[u8; 32]>>> {
    docs.iter()
        .map(|id| {
            Ok(repo
                .store()
                .with_doc(id, |d| d.clone().head_hashes())?
                .unwrap_or_default())
        })
        .collect()
}

fn copy_dir(from: &Path, to: &PathBuf) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == "omsyn.sock" {
            continue;
        }
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
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
    Ok(Endpoint::builder(presets::Minimal)
        .alpns(vec![NAIVE_ALPN.to_vec()])
        .transport_config(crate::net::transport_config()?)
        .clear_ip_transports()
        .bind_addr(listen)?
        .bind()
        .await?)
}

/// Per-document Automerge sync over one QUIC stream: each round, both sides send every message
/// they have (pipelined: all documents at once, not one per round trip), then read the other's.
async fn naive_over_quic(
    a: Arc<Repo>,
    b: Arc<Repo>,
    docs: &[DocumentId],
    sa: &mut PerDocumentSync,
    sb: &mut PerDocumentSync,
) -> Result<Value> {
    let loopback = ([127, 0, 0, 1], 0).into();
    let (ea, eb) = (
        naive_endpoint(loopback).await?,
        naive_endpoint(loopback).await?,
    );
    let addr = EndpointAddr::new(eb.id()).with_ip_addr(eb.bound_sockets()[0]);
    let mut sb_owned = std::mem::take(sb);
    let docs_b = docs.to_vec();
    let responder = tokio::spawn(async move {
        let conn = eb.accept().await.context("no connection")?.await?;
        let (send, recv) = conn.accept_bi().await?;
        let result = naive_loop(&b, &docs_b, &mut sb_owned, send, recv).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        eb.close().await;
        result.map(|r| (r, sb_owned))
    });
    let started = Instant::now();
    let conn = ea.connect(addr, NAIVE_ALPN).await?;
    let (send, recv) = conn.open_bi().await?;
    let (rounds, bytes) = naive_loop(&a, docs, sa, send, recv).await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    conn.close(0u32.into(), b"done");
    let (_, restored) = responder.await??;
    *sb = restored;
    ea.close().await;
    Ok(json!({ "bytes": bytes, "round_trips": rounds, "ms": ms }))
}

pub(crate) async fn naive_loop(
    repo: &Repo,
    docs: &[DocumentId],
    state: &mut PerDocumentSync,
    mut send: iroh::endpoint::SendStream,
    mut recv: iroh::endpoint::RecvStream,
) -> Result<(u64, u64)> {
    let mut rounds = 0u64;
    let mut bytes = 0u64;
    loop {
        let mine = tokio::task::block_in_place(|| state.generate(repo.store(), docs))?;
        let mut out = Vec::new();
        for (id, message) in &mine {
            let id = id.to_string();
            out.extend_from_slice(&((id.len() + message.len() + 1) as u32).to_le_bytes());
            out.push(id.len() as u8);
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(message);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        bytes += out.len() as u64;
        send.write_all(&out).await?;
        let mut theirs = Vec::new();
        loop {
            let mut len = [0u8; 4];
            recv.read_exact(&mut len).await?;
            bytes += 4;
            let len = u32::from_le_bytes(len) as usize;
            if len == 0 {
                break;
            }
            let mut frame = vec![0u8; len];
            recv.read_exact(&mut frame).await?;
            bytes += len as u64;
            let id_len = usize::from(frame[0]);
            let id = DocumentId::parse(std::str::from_utf8(&frame[1..1 + id_len])?)?;
            theirs.push((id, frame[1 + id_len..].to_vec()));
        }
        let done = mine.is_empty() && theirs.is_empty();
        tokio::task::block_in_place(|| state.receive(repo.store(), theirs))?;
        if done {
            let _ = send.finish();
            // Bytes were counted on both directions from this side's view.
            return Ok((rounds, bytes));
        }
        rounds += 1;
    }
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
