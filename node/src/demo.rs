//! `omsyn demo`: a small zone lives through a day, on real nodes.
//!
//! Eight nodes — a base, three nurses' phones, four home units — each with its own encrypted redb
//! store in a temporary directory and its own iroh endpoint on loopback, plus a relay server. The
//! base creates the organisation and enrols every device; each device holds only the patients it
//! has a need for. The base plans the day; the network fails; the nurses document offline (one
//! dose is given twice, one visit is reassigned while its nurse is offline); one nurse's notes
//! reach the base only through a home unit; one home unit reaches the base only through the relay.
//! An alarm nobody on the list can take reaches the base; a video visit nobody answers becomes a
//! physical visit for the zone.
//! Then everything converges and the base prints the merged day report, the open conflicts and
//! its access log.

use std::collections::BTreeMap;
use std::future::pending;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::repo::DeviceReport;
use omsyn_core::trust::OrgKey;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, DocumentId, NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::net::NetOptions;
use crate::net::daemon::{self, Shared};
use crate::net::driver::Mode;
use crate::net::ticket::Ticket;

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

/// The demo's day is today: need-based sharing follows the real clock (today's work list).
fn today() -> Day {
    omsyn_node::clock::now().day()
}

fn t(hhmm: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_day_hhmm(today(), hhmm, 3600)?)
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

/// Who a demo node is: its role, and the staff member or patient it serves.
struct Serves<'a> {
    role: Role,
    staff: Option<&'a str>,
    patient: Option<PatientId>,
}

/// Starts a node enrolled in `org`; `None` makes this node the organisation's admin base, which
/// creates the organisation key in its data directory. Returns the node and the org key.
async fn node(
    dir: &std::path::Path,
    name: &'static str,
    serves: Serves<'_>,
    org: Option<&OrgKey>,
    seed: u64,
    options: NetOptions,
) -> Result<(DemoNode, Option<OrgKey>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let profile = NodeProfile {
        version: PROFILE_VERSION,
        role: serves.role,
        name: name.to_owned(),
        staff_id: serves.staff.map(StaffId::parse).transpose()?,
        patient: serves.patient,
        zone: Some("Sone 1".into()),
    };
    let data = dir.join(name);
    let repo = Repo::init(&data, profile, None, &mut rng)?;
    let created = match org {
        Some(_) => None,
        None => Some(OrgKey::create(
            &data,
            "Hjemmesykepleien Demokommune",
            omsyn_core::trust::OrgPolicy::default(),
            &mut rng,
        )?),
    };
    let issuer = org.or(created.as_ref()).context("an organisation key")?;
    let cert = issuer.approve(
        &repo.enrollment_request(),
        omsyn_node::clock::now().unix_millis(),
        omsyn_core::trust::DEFAULT_VALIDITY_MS,
    )?;
    repo.install_certificate(&cert)?;
    let shared = crate::serve::shared(Arc::new(repo), &options).await?;
    let ticket = shared.net.ticket()?;
    // Serve incoming sessions for the whole demo.
    let serving = shared.clone();
    tokio::spawn(async move { daemon::run(serving, Vec::new(), pending()).await });
    Ok((
        DemoNode {
            name,
            relay_only: options.relay_only,
            shared,
            ticket,
            rng,
        },
        created,
    ))
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

fn heads_of(repo: &Repo) -> Result<BTreeMap<DocumentId, Vec<[u8; 32]>>> {
    let store = repo.store();
    let mut out = BTreeMap::new();
    for id in store.doc_ids("")? {
        if let Some(h) = store.with_doc(&id, |d| d.clone().head_hashes())? {
            out.insert(id, h);
        }
    }
    Ok(out)
}

/// What `node` holds that differs from the base's copy, or lacks though it needs it: empty when
/// it holds exactly what it needs, identical to the base's copy. Also returns how many it holds.
fn differences(base: &Repo, node: &Repo) -> Result<(Vec<String>, usize)> {
    let reference = heads_of(base)?;
    let held = heads_of(node)?;
    let grant = node.grant();
    let now = omsyn_node::clock::now().unix_millis();
    let mut out: Vec<String> = held
        .iter()
        .filter(|(id, h)| reference.get(*id) != Some(*h))
        .map(|(id, _)| format!("{id} differs"))
        .collect();
    for id in reference.keys() {
        if omsyn_core::trust::need::needs(base.store(), now, &grant, id)? && !held.contains_key(id)
        {
            out.push(format!("{id} missing"));
        }
    }
    Ok((out, held.len()))
}

async fn day(json: bool, dir: &std::path::Path) -> Result<()> {
    let p = Progress { json };
    let mut paths = Vec::new();
    p.say(&format!("Omsyn demo: Hjemmesykepleien Sone 1, {}", today()));
    p.say("== 06:30 Eight nodes start: a base, three nurses, four home units, and a relay");
    p.say("   the base creates the organisation and enrols every device (role, staff or patient, zone)");
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
    let (mut base, org) = node(
        dir,
        "base",
        Serves {
            role: Role::Base,
            staff: Some("K0001"),
            patient: None,
        },
        None,
        1,
        with_relay,
    )
    .await?;
    let org = org.context("the base created the organisation")?;

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
                let patient = tx.add_patient(
                    now,
                    rng,
                    &[
                        (PatientField::Name, (*name).into()),
                        (PatientField::Zone, "Sone 1".into()),
                    ],
                )?;
                if i == 0 {
                    // Ola is Turid's contact nurse: her phone holds Turid on days off her list.
                    let ola = staff("S00009")
                        .map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))?;
                    tx.set_team_member(now, &patient, &ola, true)?;
                }
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
    p.say("   4 patients, 8 visits (4 physical, 4 digital), assigned to Kari, Anne and Ola;");
    p.say("   Ola is in Turid's care team");
    let mut nurses = Vec::new();
    for (i, (name, staff)) in [("kari", "S00010"), ("ola", "S00009"), ("anne", "S00011")]
        .into_iter()
        .enumerate()
    {
        let serves = Serves {
            role: Role::Nurse,
            staff: Some(staff),
            patient: None,
        };
        let (n, _) = node(dir, name, serves, Some(&org), 10 + i as u64, direct.clone()).await?;
        nurses.push(n);
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
        let serves = Serves {
            role: Role::HomeUnit,
            staff: None,
            patient: Some(ids[i].0.clone()),
        };
        let (h, _) = node(dir, name, serves, Some(&org), 20 + i as u64, options).await?;
        homes.push(h);
    }
    p.say(&format!(
        "   relay at {relay_url}; home-liv can reach the base only through it"
    ));

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
        // She opens Turid's record first (she is in the care team): the read is logged.
        ola.shared
            .repo
            .open_patient(t("09:38")?, &turid, "patient view")?;
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

    p.say("== 11:20 Turid presses her alarm button; home-turid sends it over its own line");
    {
        let home = &mut homes[0];
        let r = &mut home.rng;
        home.shared.repo.device_report(
            t("11:20")?,
            r,
            "Safemate alarm button #3301",
            "alarm-0001",
            t("11:20")?,
            &DeviceReport::Alarm,
        )?;
    }
    paths.push(sync(&p, &homes[0], &base).await?);
    let alarm = base
        .repo()
        .tasks(t("11:21")?, Some(&turid))?
        .into_iter()
        .next()
        .context("the alarm raised a task at the base")?;
    p.say(&format!(
        "   base: {} — for Kari (her visit to Turid is next), urgent",
        alarm.summary
    ));
    if base.repo().task(t("11:26")?, &alarm.id)?.escalated {
        let r = &mut base.rng;
        base.shared.repo.claim_task(t("11:26")?, r, &alarm.id)?;
        base.shared.repo.complete_task(
            t("11:50")?,
            r,
            &alarm.id,
            "Kari offline; ringte datteren, som dro innom: Turid hadde sklidd, ikke skadet.",
        )?;
        p.say(
            "   11:25 unclaimed (Kari is offline): it reaches the base, which claims it at 11:26,",
        );
        p.say("         sends Turid's daughter and completes it at 11:50");
    }
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
    {
        let ola = &mut nurses[1];
        let r = &mut ola.rng;
        for retry in ["13:10", "13:15"] {
            ola.shared.repo.visit_missed(
                t(retry)?,
                r,
                &visits[7],
                omsyn_core::docs::journal::MissedReason::NoAnswer,
                None,
                t(retry)?,
            )?;
        }
    }
    p.say("   13:00 video visits run over the home units' own lines: kari sees Turid and Egil;");
    p.say("         Liv answers none of ola's three calls (13:05, 13:10, 13:15): a physical visit");
    p.say("         for the zone is raised on ola's phone at once, and at the base when it syncs");

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

    p.say("== 15:15 Anne is back at the office: her phone hands in its access log and day");
    paths.push(sync(&p, &nurses[2], &base).await?);

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
    let mut held = Vec::new();
    for n in nurses.iter().chain(homes.iter()) {
        let (differs, count) = differences(base.repo(), n.repo())?;
        converged &= differs.is_empty();
        held.push(format!("{} {count}", n.name));
        per_node.push(json!({ "node": n.name, "converged": differs.is_empty(), "documents": count, "differences": differs }));
    }
    p.say(&format!(
        "== Converged: {} (the base holds {} documents; each device holds exactly the ones it needs, identical to the base's: {})",
        if converged { "yes" } else { "NO" },
        reference.len(),
        held.join(", ")
    ));

    let mut disclosure = base.repo().disclose(
        t("16:30")?,
        omsyn_core::trust::audit::AuditAction::Read,
        "day report",
    );
    let report = omsyn_core::report::day_report(base.repo(), today(), None, &mut disclosure)?;
    disclosure.finish()?;
    let conflicts = base.repo().named_conflicts(None)?;
    let tasks = base.repo().tasks(t("16:00")?, None)?;
    if !json {
        outln!("\n== The base's merged day report, {}", today());
        let row = |name: &str, c: &omsyn_core::report::Counts| {
            format!(
                "  {name:<16} planned {:>2}  done {:>2}  missed {:>2}  cancelled {:>2}  open {:>2}",
                c.planned, c.done, c.missed, c.cancelled, c.open
            )
        };
        outln!("{}", row("all", &report.totals));
        outln!("{}", row("physical", &report.physical));
        outln!("{}", row("digital", &report.digital));
        for (staff, c) in &report.per_staff {
            let name = report.staff_names.get(staff).unwrap_or(staff);
            outln!("{}", row(&format!("{name} ({staff})"), c));
        }
        outln!("\n== Tasks ({})", tasks.len());
        for task in &tasks {
            let state = match (&task.done, task.claims.first()) {
                (Some(done), _) => format!("done by {}", done.who()),
                (None, Some(claim)) => format!("claimed by {}", claim.who()),
                (None, None) if task.escalated => "UNCLAIMED, at the base".into(),
                (None, None) => "open".into(),
            };
            outln!("  [{:?}] {} — {state}", task.priority, task.summary);
        }
        outln!("\n== Open conflicts for review ({})", conflicts.len());
        for c in &conflicts {
            let severity = match c.severity {
                omsyn_core::conflict::Severity::High => "HIGH  ",
                omsyn_core::conflict::Severity::Review => "review",
            };
            outln!("  [{severity}] {}", c.summary);
        }
        base.repo()
            .open_patient(t("16:00")?, &turid, "patient view")?;
        let log = base.repo().audit_entries(Some(&turid))?;
        outln!(
            "\n== Turid's access log at the base ({} entries from every device, each chain verified: {})",
            log.len(),
            if base
                .repo()
                .verify_audit()?
                .iter()
                .all(|r| r.problems.is_empty())
            {
                "intact"
            } else {
                "BROKEN"
            }
        );
        // The day's documentation and reads (the base's morning planning left out).
        for e in log
            .iter()
            .filter(|e| e.author.role != Role::Base || e.action != AuditAction::Write)
        {
            outln!(
                "  {} {:<6} {:<5} ({}) {:<40} {}",
                e.at.hhmm(),
                e.action.as_str(),
                e.author.name,
                e.author.role,
                e.what,
                e.purpose
            );
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
                "tasks": tasks,
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
