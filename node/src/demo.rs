//! `omsyn demo`: a small zone lives through a day, on real nodes.
//!
//! Eight nodes — a base, three nurses' phones, four home units — each with its own redb store in a
//! temporary directory and its own iroh endpoint on loopback, plus a relay server. The base plans
//! the day; the network fails; the nurses document offline (one dose is given twice, one visit is
//! reassigned while its nurse is offline); one nurse's notes reach the base only through a home
//! unit; one home unit reaches the base only through the relay. Then everything converges and the
//! base prints the merged day report and the open conflicts.

use std::collections::BTreeMap;
use std::future::pending;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::{Day, NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::net::NetOptions;
use crate::net::daemon::{self, Shared};
use crate::net::driver::Mode;
use crate::net::ticket::Ticket;

const DAY: &str = "2026-11-23";

struct DemoNode {
    name: &'static str,
    /// Reachable only through the relay (no direct address in its ticket).
    relay_only: bool,
    shared: Shared,
    ticket: Ticket,
    rng: StdRng,
}

impl DemoNode {
    fn repo(&self) -> &Repo {
        &self.shared.repo
    }
}

fn t(hhmm: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_day_hhmm(Day::parse(DAY)?, hhmm, 3600)?)
}

struct Progress {
    json: bool,
}

impl Progress {
    fn say(&self, line: &str) {
        if !self.json {
            outln!("{line}");
        }
    }
}

pub(crate) fn run(json: bool, keep: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile_dir(keep)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(day(json, &tmp.0));
    if tmp.1 {
        let _ = std::fs::remove_dir_all(&tmp.0);
    }
    result
}

fn tempfile_dir(keep: Option<PathBuf>) -> Result<(PathBuf, bool)> {
    match keep {
        Some(dir) => {
            if dir.exists() && std::fs::read_dir(&dir)?.next().is_some() {
                bail!("--keep {}: the directory is not empty", dir.display());
            }
            std::fs::create_dir_all(&dir)?;
            Ok((dir, false))
        }
        None => {
            let dir = std::env::temp_dir().join(format!("omsyn-demo-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            Ok((dir, true))
        }
    }
}

async fn node(
    dir: &std::path::Path,
    name: &'static str,
    role: Role,
    staff: Option<&str>,
    seed: u64,
    options: NetOptions,
) -> Result<DemoNode> {
    let mut rng = StdRng::seed_from_u64(seed);
    let profile = NodeProfile {
        version: PROFILE_VERSION,
        role,
        name: name.to_owned(),
        staff_id: staff.map(StaffId::parse).transpose()?,
        patient: None,
        zone: Some("Sone 1".into()),
    };
    let repo = Repo::init(&dir.join(name), profile, &mut rng)?;
    let shared = crate::serve::shared(Arc::new(repo), &options).await?;
    let ticket = shared.net.ticket()?;
    // Serve incoming sessions for the whole demo.
    let serving = shared.clone();
    tokio::spawn(async move { daemon::run(serving, Vec::new(), pending()).await });
    Ok(DemoNode {
        name,
        relay_only: options.relay_only,
        shared,
        ticket,
        rng,
    })
}

/// One sync between two nodes (through the relay if either can only be reached that way);
/// returns the figures for the summary.
async fn sync(p: &Progress, from: &DemoNode, to: &DemoNode) -> Result<Value> {
    let via = if from.relay_only || to.relay_only {
        "relay"
    } else {
        "direct"
    };
    let mut ticket = to.ticket.clone();
    if via == "relay" {
        ticket.addrs.clear();
    }
    let id = from.shared.net.learn(&ticket)?;
    let outcome = daemon::dial_once(&from.shared, id, ticket.node, Mode::UntilCaughtUp)
        .await
        .with_context(|| format!("syncing {} with {}", from.name, to.name))?;
    let s = outcome.stats;
    p.say(&format!(
        "  sync {:<9} ↔ {:<9} ({via:<6}) sent {:>2} docs, got {:>2}; {:>6} bytes on the wire; {} round trip(s); {} ms",
        from.name,
        to.name,
        s.docs_sent,
        s.docs_received,
        s.bytes_sent + s.bytes_received,
        s.rounds_to_catch_up.max(1),
        outcome.millis
    ));
    Ok(json!({
        "from": from.name, "to": to.name, "via": via,
        "docs_sent": s.docs_sent, "docs_received": s.docs_received,
        "bytes": s.bytes_sent + s.bytes_received,
        "change_bytes": s.change_bytes_sent + s.change_bytes_received,
        "round_trips": s.rounds_to_catch_up.max(1), "ms": outcome.millis,
    }))
}

fn heads_of(repo: &Repo) -> Result<BTreeMap<String, Vec<[u8; 32]>>> {
    let store = repo.store();
    let mut out = BTreeMap::new();
    for id in store.doc_ids("")? {
        if let Some(h) = store.with_doc(&id, |d| d.clone().head_hashes())? {
            out.insert(id.to_string(), h);
        }
    }
    Ok(out)
}

async fn day(json: bool, dir: &std::path::Path) -> Result<()> {
    let p = Progress { json };
    let mut paths = Vec::new();
    p.say("Omsyn demo: Hjemmesykepleien Sone 1, 23 November 2026");
    p.say("== 06:30 Eight nodes start: a base, three nurses, four home units, and a relay");
    let (relay, relay_url) = crate::net::relay::start("127.0.0.1:0".parse()?, None).await?;
    let direct = NetOptions {
        listen: Some("127.0.0.1:0".parse()?),
        relay: None,
        mdns: false,
        relay_only: false,
        relay_ca: None,
    };
    let with_relay = NetOptions {
        relay: Some(relay_url.clone()),
        ..direct.clone()
    };
    let mut base = node(dir, "base", Role::Base, Some("K0001"), 1, with_relay).await?;
    let mut nurses = Vec::new();
    for (i, (name, staff)) in [("kari", "S00010"), ("ola", "S00009"), ("anne", "S00011")]
        .into_iter()
        .enumerate()
    {
        nurses.push(
            node(
                dir,
                name,
                Role::Nurse,
                Some(staff),
                10 + i as u64,
                direct.clone(),
            )
            .await?,
        );
    }
    let mut homes = Vec::new();
    for (i, name) in ["home-turid", "home-egil", "home-tor", "home-liv"]
        .into_iter()
        .enumerate()
    {
        let options = if i == 3 {
            NetOptions {
                relay: Some(relay_url.clone()),
                relay_only: true,
                listen: None,
                mdns: false,
                relay_ca: None,
            }
        } else {
            direct.clone()
        };
        homes.push(node(dir, name, Role::HomeUnit, None, 20 + i as u64, options).await?);
    }
    p.say(&format!(
        "   relay at {relay_url}; home-liv can reach the base only through it"
    ));

    p.say("== 07:00 The base plans the day");
    let staff = |s: &str| StaffId::parse(s);
    let patients = ["Turid Nilsen", "Egil Haugen", "Tor Lund", "Liv Dahl"];
    let now = t("07:00")?;
    let mut ids: Vec<(PatientId, MedicationId)> = Vec::new();
    let mut visits: Vec<VisitId> = Vec::new();
    let assigned = ["S00010", "S00010", "S00011", "S00009"];
    {
        let rng = &mut base.rng;
        base.shared.repo.transaction(|tx| {
            for (i, name) in patients.iter().enumerate() {
                let patient = tx.add_patient(now, rng, &[(PatientField::Name, (*name).into())])?;
                let med = tx.add_medication(
                    now,
                    rng,
                    &patient,
                    "Metformin 500 mg",
                    "1 tablett",
                    &["08:00".into()],
                )?;
                for (start, end, kind) in [
                    ("08:00", "08:30", VisitKind::Physical),
                    ("13:00", "13:15", VisitKind::Digital),
                ] {
                    let visit = tx.plan_visit(
                        now,
                        rng,
                        &NewVisit {
                            patient: patient.clone(),
                            start: t(start)
                                .map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))?,
                            end: t(end)
                                .map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))?,
                            kind,
                            tiltak: vec![],
                            staff: vec![
                                staff(assigned[i])
                                    .map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))?,
                            ],
                        },
                    )?;
                    visits.push(visit);
                }
                ids.push((patient, med));
            }
            Ok::<_, omsyn_core::RepoError>(())
        })?;
    }
    p.say("   4 patients, 8 visits (4 physical, 4 digital), assigned to Kari, Anne and Ola");

    p.say("== 07:30 Everyone loads the day's plan at the base");
    for n in nurses.iter().chain(homes.iter()) {
        paths.push(sync(&p, n, &base).await?);
    }

    p.say("== 08:00 The mobile network fails. The nurses document offline.");
    let (turid, turid_med) = ids[0].clone();
    {
        let kari = &mut nurses[0];
        let r = &mut kari.rng;
        kari.shared.repo.visit_performed(
            t("08:25")?,
            r,
            &visits[0],
            t("08:02")?,
            Some(t("08:25")?),
            None,
        )?;
        kari.shared.repo.record_dose(
            t("08:10")?,
            r,
            &turid,
            &turid_med,
            "08:00",
            t("08:10")?,
            Some(&visits[0]),
            None,
        )?;
        kari.shared.repo.observe(
            t("08:12")?,
            r,
            &turid,
            Some(&visits[0]),
            t("08:12")?,
            "blood-pressure",
            "142/88",
            Some("mmHg"),
        )?;
        kari.shared.repo.visit_performed(
            t("09:30")?,
            r,
            &visits[2],
            t("09:05")?,
            Some(t("09:30")?),
            None,
        )?;
    }
    p.say("   kari: Turid's and Egil's morning visits done, Turid's 08:00 dose given, BP 142/88");
    {
        let ola = &mut nurses[1];
        let r = &mut ola.rng;
        ola.shared.repo.record_dose(
            t("09:40")?,
            r,
            &turid,
            &turid_med,
            "08:00",
            t("09:40")?,
            None,
            None,
        )?;
        ola.shared.repo.visit_performed(
            t("08:40")?,
            r,
            &visits[6],
            t("08:15")?,
            Some(t("08:40")?),
            None,
        )?;
    }
    p.say("   ola: passing Turid's, gives the 08:00 dose again (not knowing Kari did); Liv's visit done");
    {
        let r = &mut base.rng;
        base.shared.repo.change_visit(
            t("09:50")?,
            r,
            &visits[5],
            &VisitChange::Assign(vec![staff("S00010")?]),
        )?;
    }
    p.say("   base: reassigns Tor's 13:00 video visit from Anne to Kari (Anne is offline)");
    {
        let anne = &mut nurses[2];
        let (tor, _) = ids[2].clone();
        let r = &mut anne.rng;
        anne.shared.repo.visit_performed(
            t("08:30")?,
            r,
            &visits[4],
            t("08:05")?,
            Some(t("08:30")?),
            None,
        )?;
        anne.shared.repo.visit_performed(
            t("13:15")?,
            r,
            &visits[5],
            t("13:00")?,
            Some(t("13:15")?),
            None,
        )?;
        anne.shared.repo.add_note(
            t("13:16")?,
            r,
            &tor,
            Some(&visits[5]),
            t("13:16")?,
            "Tor var svimmel i dag; ba datteren følge med.",
        )?;
    }
    p.say("   anne: does both of Tor's visits as she planned, and notes that Tor was dizzy");
    {
        let (egil, _) = ids[1].clone();
        let home = &mut homes[1];
        let r = &mut home.rng;
        home.shared.repo.observe(
            t("12:00")?,
            r,
            &egil,
            None,
            t("12:00")?,
            "spo2",
            "95",
            Some("%"),
        )?;
    }
    p.say("   home-egil: the pulse oximeter reports SpO2 95 %");
    {
        let kari = &mut nurses[0];
        let r = &mut kari.rng;
        kari.shared.repo.visit_performed(
            t("13:10")?,
            r,
            &visits[1],
            t("13:00")?,
            Some(t("13:10")?),
            None,
        )?;
        kari.shared.repo.visit_performed(
            t("13:25")?,
            r,
            &visits[3],
            t("13:12")?,
            Some(t("13:25")?),
            None,
        )?;
        let ola = &mut nurses[1];
        let r = &mut ola.rng;
        ola.shared.repo.visit_missed(
            t("13:10")?,
            r,
            &visits[7],
            omsyn_core::docs::journal::MissedReason::NoAnswer,
            Some("ingen svar på videoanrop; ringer datteren".into()),
            t("13:05")?,
        )?;
    }
    p.say("   13:00 video visits run over the home units' own lines: kari sees Turid and Egil;");
    p.say("         Liv does not answer ola's call (documented as missed: no answer)");

    p.say(
        "== 14:00 Anne never gets coverage, but Tor's home unit does: her notes travel through it",
    );
    paths.push(sync(&p, &nurses[2], &homes[2]).await?);
    paths.push(sync(&p, &homes[2], &base).await?);

    p.say("== 15:00 The network is back for Kari and Ola; the home units sync");
    paths.push(sync(&p, &nurses[0], &base).await?);
    paths.push(sync(&p, &nurses[1], &base).await?);
    for h in &homes {
        paths.push(sync(&p, h, &base).await?);
    }

    p.say("== 15:30 A last round so every device holds the merged day");
    for n in nurses.iter().take(2) {
        paths.push(sync(&p, n, &base).await?);
    }
    paths.push(sync(&p, &homes[2], &base).await?);
    paths.push(sync(&p, &nurses[2], &homes[2]).await?);
    for h in homes.iter().filter(|h| h.name != "home-tor") {
        paths.push(sync(&p, h, &base).await?);
    }

    let reference = heads_of(base.repo())?;
    let mut converged = true;
    let mut per_node = Vec::new();
    for n in nurses.iter().chain(homes.iter()) {
        let same = heads_of(n.repo())? == reference;
        converged &= same;
        per_node.push(json!({ "node": n.name, "converged": same }));
    }
    p.say(&format!(
        "== Converged: {} ({} documents, heads identical on all 8 nodes)",
        if converged { "yes" } else { "NO" },
        reference.len()
    ));

    let report = omsyn_core::report::day_report(base.repo(), Day::parse(DAY)?)?;
    let conflicts = base.repo().conflicts(None)?;
    if !json {
        outln!("\n== The base's merged day report, {DAY}");
        let row = |name: &str, c: &omsyn_core::report::Counts| {
            format!(
                "  {name:<16} planned {:>2}  done {:>2}  missed {:>2}  cancelled {:>2}  open {:>2}",
                c.planned, c.done, c.missed, c.cancelled, c.open
            )
        };
        outln!("{}", row("all", &report.totals));
        outln!("{}", row("physical", &report.physical));
        outln!("{}", row("digital", &report.digital));
        let names = [("S00010", "kari"), ("S00009", "ola"), ("S00011", "anne")];
        for (staff, c) in &report.per_staff {
            let name = names
                .iter()
                .find(|(id, _)| id == staff)
                .map_or(staff.as_str(), |(_, n)| n);
            outln!("{}", row(&format!("{name} ({staff})"), c));
        }
        outln!("\n== Open conflicts for review ({})", conflicts.len());
        for c in &conflicts {
            let severity = match c.severity {
                omsyn_core::conflict::Severity::High => "HIGH  ",
                omsyn_core::conflict::Severity::Review => "review",
            };
            outln!("  [{severity}] {}", c.summary);
        }
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "converged": converged,
                "documents": reference.len(),
                "nodes": per_node,
                "paths": paths,
                "day_report": report,
                "conflicts": conflicts,
            }))?
        );
    }
    for n in nurses
        .iter()
        .chain(homes.iter())
        .chain(std::iter::once(&base))
    {
        n.shared.net.endpoint.close().await;
    }
    let _ = relay.shutdown().await;
    if !converged {
        bail!("the nodes did not converge");
    }
    Ok(())
}
