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
use omsyn_core::conflict::{Conflict, Severity};
use omsyn_core::docs::plan::{NewVisit, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::escalation::Task;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{MedicationId, PatientId, StaffId, VisitId};
use omsyn_core::repo::DeviceReport;
use omsyn_core::report::DayReport;
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
    let outcome = daemon::dial_once(&from.shared, id, ticket.node, Mode::ONCE)
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
    let grant = node.grant()?;
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

/// What the scenes of the day share: the zone's nodes, what the base planned, and every sync so
/// far (the JSON summary lists them).
struct DemoZone {
    p: Progress,
    base: DemoNode,
    /// Kari's, Ola's and Anne's phones, in that order.
    nurses: Vec<DemoNode>,
    /// Turid's, Egil's, Tor's and Liv's home units, in the order of `patients`.
    homes: Vec<DemoNode>,
    patients: Patients,
    /// Each patient's morning and 13:00 visit, in the order of `patients`.
    visits: Vec<VisitId>,
    paths: Vec<Value>,
}

/// Each patient with her medication, in the order the base planned them.
type Patients = Vec<(PatientId, MedicationId)>;

const KARI: usize = 0;
const OLA: usize = 1;
const ANNE: usize = 2;

/// What the nodes hold once the day is over, against the base's copy.
struct Convergence {
    converged: bool,
    documents: usize,
    per_node: Vec<Value>,
}

async fn day(json: bool, dir: &std::path::Path) -> Result<()> {
    let p = Progress { json };
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
    let serves = Serves {
        role: Role::Base,
        staff: Some("K0001"),
        patient: None,
    };
    let (mut base, org) = node(dir, "base", serves, None, 1, with_relay).await?;
    let org = org.context("the base created the organisation")?;

    p.say("== 07:00 The base plans the day");
    let (patients, visits) = plan_day(&mut base)?;
    p.say("   4 patients, 8 visits (4 physical, 4 digital), assigned to Kari, Anne and Ola;");
    p.say("   Ola is in Turid's care team");
    let nurses = start_nurses(dir, &org, &direct).await?;
    let homes = start_homes(dir, &org, &direct, &relay_url, &patients).await?;
    p.say(&format!(
        "   relay at {relay_url}; home-liv can reach the base only through it"
    ));
    let mut zone = DemoZone {
        p,
        base,
        nurses,
        homes,
        patients,
        visits,
        paths: Vec::new(),
    };
    zone.live_through_the_day().await?;
    let convergence = zone.convergence()?;
    if json {
        zone.print_json(&convergence)?;
    } else {
        zone.print_text()?;
    }
    zone.close().await;
    let _ = relay.shutdown().await;
    if !convergence.converged {
        bail!("the nodes did not converge");
    }
    Ok(())
}

/// The base's morning planning, in one transaction: the patients with their medication and
/// their morning and 13:00 visits. Returns the patients and their visits, in order.
fn plan_day(base: &mut DemoNode) -> Result<(Patients, Vec<VisitId>)> {
    let patients = ["Turid Nilsen", "Egil Haugen", "Tor Lund", "Liv Dahl"];
    let assigned = ["S00010", "S00010", "S00011", "S00009"];
    let now = t("07:00")?;
    let rng = &mut base.rng;
    let planned = base.shared.repo.transaction(|tx| {
        let mut ids = Vec::new();
        let mut visits = Vec::new();
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
                tx.set_team_member(now, &patient, &invalid(StaffId::parse("S00009"))?, true)?;
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
                let visit = NewVisit {
                    patient: patient.clone(),
                    start: invalid(t(start))?,
                    end: invalid(t(end))?,
                    kind,
                    tiltak: vec![],
                    staff: vec![invalid(StaffId::parse(assigned[i]))?],
                };
                visits.push(tx.plan_visit(now, rng, &visit)?);
            }
            ids.push((patient, med));
        }
        Ok::<_, omsyn_core::RepoError>((ids, visits))
    })?;
    Ok(planned)
}

/// A value the demo's own constants make, inside a transaction that speaks `RepoError`.
fn invalid<T, E: std::fmt::Display>(value: Result<T, E>) -> Result<T, omsyn_core::RepoError> {
    value.map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))
}

async fn start_nurses(
    dir: &std::path::Path,
    org: &OrgKey,
    direct: &NetOptions,
) -> Result<Vec<DemoNode>> {
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
        let (n, _) = node(dir, name, serves, Some(org), 10 + i as u64, direct.clone()).await?;
        nurses.push(n);
    }
    Ok(nurses)
}

/// One home unit per patient; Liv's reaches the others only through the relay.
async fn start_homes(
    dir: &std::path::Path,
    org: &OrgKey,
    direct: &NetOptions,
    relay_url: &str,
    patients: &[(PatientId, MedicationId)],
) -> Result<Vec<DemoNode>> {
    let mut homes = Vec::new();
    for (i, name) in ["home-turid", "home-egil", "home-tor", "home-liv"]
        .into_iter()
        .enumerate()
    {
        let options = if i == 3 {
            NetOptions {
                relay: Some(relay_url.to_owned()),
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
            patient: Some(patients[i].0.clone()),
        };
        let (h, _) = node(dir, name, serves, Some(org), 20 + i as u64, options).await?;
        homes.push(h);
    }
    Ok(homes)
}

impl DemoNode {
    /// A visit done from `arrival` to `departure`, documented as the nurse leaves.
    fn visit_done(&mut self, visit: &VisitId, arrival: &str, departure: &str) -> Result<()> {
        self.shared.repo.visit_performed(
            t(departure)?,
            &mut self.rng,
            visit,
            t(arrival)?,
            Some(t(departure)?),
            None,
        )?;
        Ok(())
    }

    /// A video call nobody answered, documented at `now`.
    fn no_answer(
        &mut self,
        now: &str,
        visit: &VisitId,
        note: Option<&str>,
        called: &str,
    ) -> Result<()> {
        self.shared.repo.visit_missed(
            t(now)?,
            &mut self.rng,
            visit,
            omsyn_core::docs::journal::MissedReason::NoAnswer,
            note.map(str::to_owned),
            t(called)?,
        )?;
        Ok(())
    }
}

impl DemoZone {
    async fn live_through_the_day(&mut self) -> Result<()> {
        self.p
            .say("== 07:30 Everyone loads the day's plan at the base");
        for n in self.nurses.iter().chain(self.homes.iter()) {
            self.paths.push(sync(&self.p, n, &self.base).await?);
        }
        self.p
            .say("== 08:00 The mobile network fails. The nurses document offline.");
        self.kari_morning()?;
        self.ola_morning()?;
        self.base_reassigns()?;
        self.anne_offline()?;
        self.egil_oximeter()?;
        self.alarm().await?;
        self.video_visits()?;
        self.coverage_returns().await
    }

    fn turid(&self) -> (PatientId, MedicationId) {
        self.patients[0].clone()
    }

    fn kari_morning(&mut self) -> Result<()> {
        let (turid, turid_med) = self.turid();
        let visits = &self.visits;
        let kari = &mut self.nurses[KARI];
        kari.visit_done(&visits[0], "08:02", "08:25")?;
        let r = &mut kari.rng;
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
        kari.visit_done(&visits[2], "09:05", "09:30")?;
        self.p.say(
            "   kari: Turid's and Egil's morning visits done, Turid's 08:00 dose given, BP 142/88",
        );
        Ok(())
    }

    fn ola_morning(&mut self) -> Result<()> {
        let (turid, turid_med) = self.turid();
        let ola = &mut self.nurses[OLA];
        // She opens Turid's record first (she is in the care team): the read is logged.
        ola.shared
            .repo
            .open_patient(t("09:38")?, &turid, "patient view")?;
        ola.shared.repo.record_dose(
            t("09:40")?,
            &mut ola.rng,
            &turid,
            &turid_med,
            "08:00",
            t("09:40")?,
            None,
            None,
        )?;
        ola.visit_done(&self.visits[6], "08:15", "08:40")?;
        self.p.say("   ola: passing Turid's, gives the 08:00 dose again (not knowing Kari did); Liv's visit done");
        Ok(())
    }

    fn base_reassigns(&mut self) -> Result<()> {
        self.base.shared.repo.change_visit(
            t("09:50")?,
            &mut self.base.rng,
            &self.visits[5],
            &VisitChange::Assign(vec![StaffId::parse("S00010")?]),
        )?;
        self.p
            .say("   base: reassigns Tor's 13:00 video visit from Anne to Kari (Anne is offline)");
        Ok(())
    }

    fn anne_offline(&mut self) -> Result<()> {
        let (tor, _) = self.patients[2].clone();
        let visits = &self.visits;
        let anne = &mut self.nurses[ANNE];
        anne.visit_done(&visits[4], "08:05", "08:30")?;
        anne.visit_done(&visits[5], "13:00", "13:15")?;
        anne.shared.repo.add_note(
            t("13:16")?,
            &mut anne.rng,
            &tor,
            Some(&visits[5]),
            t("13:16")?,
            "Tor var svimmel i dag; ba datteren følge med.",
        )?;
        self.p
            .say("   anne: does both of Tor's visits as she planned, and notes that Tor was dizzy");
        Ok(())
    }

    fn egil_oximeter(&mut self) -> Result<()> {
        let (egil, _) = self.patients[1].clone();
        let home = &mut self.homes[1];
        home.shared.repo.observe(
            t("12:00")?,
            &mut home.rng,
            &egil,
            None,
            t("12:00")?,
            "spo2",
            "95",
            Some("%"),
        )?;
        self.p
            .say("   home-egil: the pulse oximeter reports SpO2 95 %");
        Ok(())
    }

    /// The alarm raises a task for the nurse due next; she is offline, so it escalates to the
    /// base, which answers it.
    async fn alarm(&mut self) -> Result<()> {
        self.p
            .say("== 11:20 Turid presses her alarm button; home-turid sends it over its own line");
        let home = &mut self.homes[0];
        home.shared.repo.device_report(
            t("11:20")?,
            &mut home.rng,
            "Safemate alarm button #3301",
            "alarm-0001",
            t("11:20")?,
            &DeviceReport::Alarm,
        )?;
        self.paths
            .push(sync(&self.p, &self.homes[0], &self.base).await?);
        let (turid, _) = self.turid();
        let base = &mut self.base;
        let alarm = base
            .repo()
            .tasks(t("11:21")?, Some(&turid))?
            .into_iter()
            .next()
            .context("the alarm raised a task at the base")?;
        self.p.say(&format!(
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
            self.p.say(
                "   11:25 unclaimed (Kari is offline): it reaches the base, which claims it at 11:26,",
            );
            self.p
                .say("         sends Turid's daughter and completes it at 11:50");
        }
        Ok(())
    }

    /// Liv answers none of Ola's calls: the third unanswered call turns the video visit into a
    /// physical visit for the zone.
    fn video_visits(&mut self) -> Result<()> {
        let visits = &self.visits;
        let kari = &mut self.nurses[KARI];
        kari.visit_done(&visits[1], "13:00", "13:10")?;
        kari.visit_done(&visits[3], "13:12", "13:25")?;
        let ola = &mut self.nurses[OLA];
        ola.no_answer(
            "13:10",
            &visits[7],
            Some("ingen svar på videoanrop; ringer datteren"),
            "13:05",
        )?;
        for retry in ["13:10", "13:15"] {
            ola.no_answer(retry, &visits[7], None, retry)?;
        }
        self.p.say(
            "   13:00 video visits run over the home units' own lines: kari sees Turid and Egil;",
        );
        self.p.say("         Liv answers none of ola's three calls (13:05, 13:10, 13:15): a physical visit");
        self.p.say(
            "         for the zone is raised on ola's phone at once, and at the base when it syncs",
        );
        Ok(())
    }

    /// The afternoon's syncs, in the order coverage returns; Anne's notes reach the base first
    /// through Tor's home unit.
    async fn coverage_returns(&mut self) -> Result<()> {
        let (p, base, nurses, homes) = (&self.p, &self.base, &self.nurses, &self.homes);
        let paths = &mut self.paths;
        p.say(
            "== 14:00 Anne never gets coverage, but Tor's home unit does: her notes travel through it",
        );
        paths.push(sync(p, &nurses[ANNE], &homes[2]).await?);
        paths.push(sync(p, &homes[2], base).await?);

        p.say("== 15:00 The network is back for Kari and Ola; the home units sync");
        paths.push(sync(p, &nurses[KARI], base).await?);
        paths.push(sync(p, &nurses[OLA], base).await?);
        for h in homes {
            paths.push(sync(p, h, base).await?);
        }

        p.say("== 15:15 Anne is back at the office: her phone hands in its access log and day");
        paths.push(sync(p, &nurses[ANNE], base).await?);

        p.say("== 15:30 A last round so every device holds the merged day");
        for n in nurses.iter().take(2) {
            paths.push(sync(p, n, base).await?);
        }
        paths.push(sync(p, &homes[2], base).await?);
        paths.push(sync(p, &nurses[ANNE], &homes[2]).await?);
        for h in homes.iter().filter(|h| h.name != "home-tor") {
            paths.push(sync(p, h, base).await?);
        }
        Ok(())
    }

    fn convergence(&self) -> Result<Convergence> {
        let documents = heads_of(self.base.repo())?.len();
        let mut converged = true;
        let mut per_node = Vec::new();
        let mut held = Vec::new();
        for n in self.nurses.iter().chain(self.homes.iter()) {
            let (differs, count) = differences(self.base.repo(), n.repo())?;
            converged &= differs.is_empty();
            held.push(format!("{} {count}", n.name));
            per_node.push(json!({ "node": n.name, "converged": differs.is_empty(), "documents": count, "differences": differs }));
        }
        self.p.say(&format!(
            "== Converged: {} (the base holds {} documents; each device holds exactly the ones it needs, identical to the base's: {})",
            if converged { "yes" } else { "NO" },
            documents,
            held.join(", ")
        ));
        Ok(Convergence {
            converged,
            documents,
            per_node,
        })
    }

    /// The base's merged view at the end of the day. Both outputs read it, so both log the same
    /// disclosure.
    fn evening(&self) -> Result<Evening> {
        let base = self.base.repo();
        let mut disclosure = base.disclose(t("16:30")?, AuditAction::Read, "day report");
        let report = omsyn_core::report::day_report(base, today(), None, &mut disclosure)?;
        disclosure.finish()?;
        Ok(Evening {
            report,
            conflicts: base.named_conflicts(None)?,
            tasks: base.tasks(t("16:00")?, None)?,
        })
    }

    fn print_json(&self, convergence: &Convergence) -> Result<()> {
        let evening = self.evening()?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "converged": convergence.converged,
                "documents": convergence.documents,
                "nodes": convergence.per_node,
                "paths": self.paths,
                "day_report": evening.report,
                "conflicts": evening.conflicts,
                "tasks": evening.tasks,
            }))?
        );
        Ok(())
    }

    fn print_text(&self) -> Result<()> {
        let evening = self.evening()?;
        print_day_report(&evening.report);
        print_tasks(&evening.tasks);
        print_conflicts(&evening.conflicts);
        self.print_access_log()
    }

    fn print_access_log(&self) -> Result<()> {
        let base = self.base.repo();
        let (turid, _) = self.turid();
        base.open_patient(t("16:00")?, &turid, "patient view")?;
        let log = base.audit_entries(Some(&turid))?;
        let intact = base.verify_audit()?.iter().all(|r| r.problems.is_empty());
        outln!(
            "\n== Turid's access log at the base ({} entries from every device, each chain verified: {})",
            log.len(),
            if intact { "intact" } else { "BROKEN" }
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
        Ok(())
    }

    async fn close(&self) {
        for n in self.nurses.iter().chain(self.homes.iter()) {
            n.shared.net.endpoint.close().await;
        }
        self.base.shared.net.endpoint.close().await;
    }
}

/// The base's merged view at the end of the day.
struct Evening {
    report: DayReport,
    conflicts: Vec<Conflict>,
    tasks: Vec<Task>,
}

fn print_day_report(report: &DayReport) {
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
}

fn print_tasks(tasks: &[Task]) {
    outln!("\n== Tasks ({})", tasks.len());
    for task in tasks {
        let state = match (&task.done, task.claims.first()) {
            (Some(done), _) => format!("done by {}", done.who()),
            (None, Some(claim)) => format!("claimed by {}", claim.who()),
            (None, None) if task.escalated => "UNCLAIMED, at the base".into(),
            (None, None) => "open".into(),
        };
        outln!("  [{:?}] {} — {state}", task.priority, task.summary);
    }
}

fn print_conflicts(conflicts: &[Conflict]) {
    outln!("\n== Open conflicts for review ({})", conflicts.len());
    for c in conflicts {
        let severity = match c.severity {
            Severity::High => "HIGH  ",
            Severity::Review => "review",
        };
        outln!("  [{severity}] {}", c.summary);
    }
}
