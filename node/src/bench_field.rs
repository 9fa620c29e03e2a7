//! `omsyn bench field`: Omsyn on rural links, as in the field. Real nodes (processes, redb files,
//! iroh endpoints) run in network namespaces of their own; between the nurse's phone and the node
//! she syncs with sits `omsyn bench link` (delay, loss, rate limit); the base is reached through
//! the home unit and a relay. Every figure stands beside, from the same run and over the same
//! link, the per-document Automerge baseline and the floor: the bytes of the changes themselves.
//! Needs root and iproute2.
//!
//! ```text
//!   phone 10.91.2.2 ─ 10.91.2.1 [link host: the proxy on :7000] 10.91.1.2 ─ 10.91.1.1:4433 home
//!   home 10.91.3.2 ─ 10.91.3.1 town (relay on :3340; the base, reachable through the relay only)
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use omsyn_core::docs::DocumentId;
use omsyn_core::docs::plan::{NewVisit, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::identity::PROFILE_VERSION;
use omsyn_core::ids::{PatientId, StaffId};
use omsyn_core::sync::baseline::PerDocumentSync;
use omsyn_core::{NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use crate::cli::{BaselineArgs, FieldArgs};
use crate::lab::{Host, Process, output_within, wire};

/// IPv4 and UDP headers, counted on the wire for every datagram.
const HEADER_BYTES: u64 = 28;
const PROXY_PORT: u16 = 7000;
const NURSE: &str = "S1";

/// A scenario run in its own directory, returning its figures.
pub(crate) type Scenario = fn(bool, &Path, &FieldArgs) -> Result<Value>;

/// `omsyn bench field`. The base scenario (`bench_base`) is handed in: it builds on this
/// module's lab, so this module does not name it.
pub(crate) fn run(json: bool, args: &FieldArgs, base: Scenario) -> Result<()> {
    // The run's own directory, removed whole at its end (a subdirectory of it left it behind).
    let dir = crate::bench::tempfile_dir()?;
    let result = (|| -> Result<Value> {
        let (all, which) = (args.scenario == "all", args.scenario.as_str());
        if !matches!(which, "all" | "shift" | "first" | "base") {
            bail!("--scenario {which}: expected shift, first, all or base");
        }
        let mut scenarios = Vec::new();
        if all || which == "shift" {
            scenarios.push(shift(&dir.join("shift"), args)?);
            print_scenario(json, &scenarios[scenarios.len() - 1]);
        }
        if all || which == "first" {
            scenarios.push(phone_first_sync(&dir.join("first"), args)?);
            print_scenario(json, &scenarios[scenarios.len() - 1]);
        }
        // Not part of `all`: it takes a month of a base's data, and minutes.
        if which == "base" {
            scenarios.push(base(json, &dir.join("base"), args)?);
        }
        Ok(json!({ "scenarios": scenarios }))
    })();
    crate::bench::conclude(json, &dir, result)
}

fn print_scenario(json: bool, s: &Value) {
    if json {
        return;
    }
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    outln!(
        "{} — {}",
        s["name"].as_str().unwrap_or(""),
        s["link"].as_str().unwrap_or("")
    );
    outln!(
        "  floor (bytes of the changes): {} B for {} entries",
        s["floor_bytes"],
        s["entries"]
    );
    for key in ["omsyn", "per_document_automerge"] {
        let r = &s[key];
        outln!(
            "  {key:<24} {:>8.0} ms to the peer{}  {:>9} B on the wire ({:.2}× floor, {:.0} B per entry), {} datagrams, {} protocol rounds",
            f(&r["ms_to_peer"]),
            r["ms_to_base"]
                .as_f64()
                .map(|b| format!(", {b:>6.0} ms to the base"))
                .unwrap_or_default(),
            r["wire_bytes"],
            f(&r["wire_bytes"]) / f(&s["floor_bytes"]).max(1.0),
            f(&r["wire_bytes"]) / f(&s["entries"]).max(1.0),
            r["datagrams"],
            r["round_trips"],
        );
    }
}

/// What the link does: one-way delay, loss each way, rate.
pub(crate) struct LinkSpec {
    pub(crate) delay_ms: u64,
    pub(crate) loss: f64,
    pub(crate) rate_kbit: u64,
    /// Longest a datagram queues for the link (the router's buffer).
    pub(crate) queue_ms: u64,
    pub(crate) seed: u64,
}

/// The proxy's own default buffer, which the phone's scenarios were measured with.
const PHONE_QUEUE_MS: u64 = 500;

impl LinkSpec {
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ms round trip, {:.0} % loss each way, {} kbit/s",
            self.delay_ms * 2,
            self.loss * 100.0,
            self.rate_kbit
        )
    }

    pub(crate) fn proxy_args(&self, to: &str) -> Vec<String> {
        let listen = format!("10.91.2.1:{PROXY_PORT}");
        [
            "--json",
            "bench",
            "link",
            "--listen",
            &listen,
            "--to",
            to,
            "--delay-ms",
            &self.delay_ms.to_string(),
            "--loss",
            &self.loss.to_string(),
            "--rate-kbit",
            &self.rate_kbit.to_string(),
            "--queue-ms",
            &self.queue_ms.to_string(),
            "--seed",
            &self.seed.to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// The machines: the phone, the link between it and the home, the home, and the town (relay and
/// base).
pub(crate) struct Lab {
    pub(crate) phone: Host,
    pub(crate) link: Host,
    pub(crate) home: Host,
    town: Host,
    program: PathBuf,
}

pub(crate) fn lab_err(e: String) -> anyhow::Error {
    anyhow!(e)
}

/// A failed wait on `process`, with the end of its log to tell why.
pub(crate) fn waited(process: &mut Process) -> impl FnOnce(String) -> anyhow::Error + '_ {
    move |e| {
        let log = process.drain_log();
        let tail: Vec<&str> = log
            .iter()
            .rev()
            .take(40)
            .rev()
            .map(|(_, l)| l.as_str())
            .collect();
        anyhow!("{e}; its log ends:\n{}", tail.join("\n"))
    }
}

impl Lab {
    pub(crate) fn new() -> Result<Lab> {
        let program = std::env::current_exe().context("finding this program")?;
        let host = |tag: &str| Host::new(tag, &program).map_err(lab_err);
        let lab = Lab {
            phone: host("field-phone")?,
            link: host("field-link")?,
            home: host("field-home")?,
            town: host("field-town")?,
            program: program.clone(),
        };
        wire(&lab.phone, &["10.91.2.2/24"], &lab.link, &["10.91.2.1/24"]).map_err(lab_err)?;
        wire(&lab.link, &["10.91.1.2/24"], &lab.home, &["10.91.1.1/24"]).map_err(lab_err)?;
        wire(&lab.home, &["10.91.3.2/24"], &lab.town, &["10.91.3.1/24"]).map_err(lab_err)?;
        Ok(lab)
    }

    pub(crate) fn start(host: &Host, args: &[String]) -> Result<Process> {
        Lab::start_logging(host, args, "")
    }

    /// Like [`Lab::start`], logging also what `more` (tracing directives) asks for.
    fn start_logging(host: &Host, args: &[String], more: &str) -> Result<Process> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // The driver's debug lines say when changes from a peer were stored.
        let filter = format!("warn,omsyn=info,omsyn_node=info,omsyn_node::net::driver=debug{more}");
        host.start(&args, &filter).map_err(lab_err)
    }

    /// `omsyn --json --data DIR ARGS` in this process's own network (the data directory's
    /// daemon answers it over its socket).
    fn ask(&self, data: &Path, args: &[&str]) -> Result<Value> {
        let mut command = Command::new(&self.program);
        command.arg("--json").arg("--data").arg(data).args(args);
        let out = output_within(command, Process::PATIENCE).map_err(lab_err)?;
        if !out.status.success() {
            bail!("omsyn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `omsyn ARGS` on the phone, to its end; returns its JSON output.
    pub(crate) fn on_phone(&self, args: &[&str]) -> Result<Value> {
        let out = output_within(self.phone.command(args), Process::PATIENCE).map_err(lab_err)?;
        if !out.status.success() {
            bail!(
                "omsyn {args:?} on the phone: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }
}

/// `omsyn sync` for the phone with the peer `ticket`.
pub(crate) fn phone_sync_args(phone: &Path, ticket: &str) -> Vec<String> {
    [
        "--json",
        "--data",
        &s(phone),
        "sync",
        "--no-mdns",
        "--peer",
        ticket,
    ]
    .map(str::to_owned)
    .to_vec()
}

pub(crate) fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

pub(crate) fn profile(role: Role, name: &str, patient: Option<&PatientId>) -> Result<NodeProfile> {
    Ok(NodeProfile {
        version: PROFILE_VERSION,
        role,
        name: name.into(),
        staff_id: match role {
            Role::HomeUnit => None,
            Role::Base => Some(StaffId::parse("K1")?),
            _ => Some(StaffId::parse(NURSE)?),
        },
        patient: patient.cloned(),
        zone: Some("Sone 1".into()),
    })
}

/// A node in `dir`, enrolled by `org`.
pub(crate) fn node(
    dir: &Path,
    profile: NodeProfile,
    org: &omsyn_core::trust::OrgKey,
    rng: &mut StdRng,
) -> Result<Repo> {
    let repo = Repo::init(dir, profile, None, rng)?;
    enrol(&repo, org)?;
    Ok(repo)
}

/// Enrols `repo`'s node in `org`, as of now.
pub(crate) fn enrol(repo: &Repo, org: &omsyn_core::trust::OrgKey) -> Result<()> {
    let now = omsyn_node::clock::now().unix_millis();
    let cert = org.approve(
        &repo.enrollment_request(),
        now,
        omsyn_core::trust::DEFAULT_VALIDITY_MS,
    )?;
    repo.install_certificate(&cert)?;
    Ok(())
}

/// An organisation made for the run and its base in `dir`, with the run's random numbers.
fn organisation(dir: &Path, seed: u64) -> Result<(omsyn_core::trust::OrgKey, Repo, StdRng)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let org = omsyn_core::trust::OrgKey::generate("Felt", &mut rng);
    let base = node(dir, profile(Role::Base, "Base", None)?, &org, &mut rng)?;
    Ok((org, base, rng))
}

/// Today at `hhmm`, local time of the organisation (+01:00).
fn today(hhmm: &str) -> Result<Timestamp> {
    let day = omsyn_node::clock::now().day();
    Ok(Timestamp::from_day_hhmm(day, hhmm, 3600)?)
}

/// The base's patient for the shift: the nurse in her care team, a dose at 08:00 and today's visit.
struct Shift {
    patient: PatientId,
    visit: omsyn_core::ids::VisitId,
    medication: omsyn_core::ids::MedicationId,
}

fn plan_shift(base: &Repo, rng: &mut StdRng) -> Result<Shift> {
    let t = today("06:00")?;
    let nurse = StaffId::parse(NURSE)?;
    let patient = base.add_patient(t, rng, &[(PatientField::Name, "Turid Nilsen".into())])?;
    base.transaction(|tx| tx.set_team_member(t, &patient, &nurse, true))?;
    let medication = base.add_medication(
        t,
        rng,
        &patient,
        "Metformin 500 mg",
        "1 tablett",
        &["08:00".into()],
    )?;
    let visit = base.plan_visit(
        t,
        rng,
        &NewVisit {
            patient: patient.clone(),
            start: today("08:00")?,
            end: today("08:30")?,
            kind: VisitKind::Physical,
            tiltak: vec![],
            staff: vec![nurse],
        },
    )?;
    Ok(Shift {
        patient,
        visit,
        medication,
    })
}

/// The shift, documented offline: the visit, the dose and `notes` notes of about 110 characters,
/// one transaction each. Returns the number of entries.
fn document_shift(phone: &Repo, shift: &Shift, notes: usize, rng: &mut StdRng) -> Result<usize> {
    let at = today("08:05")?;
    phone.visit_performed(at, rng, &shift.visit, at, Some(today("08:25")?), None)?;
    phone.record_dose(
        at,
        rng,
        &shift.patient,
        &shift.medication,
        "08:00",
        at,
        Some(&shift.visit),
        None,
    )?;
    for i in 0..notes {
        let text = format!(
            "Notat {i:02}: Pasienten i god form, tatt medisiner, spist frokost. Sår på venstre legg stelt, ingen tegn til infeksjon."
        );
        phone.add_note(at, rng, &shift.patient, Some(&shift.visit), at, &text)?;
    }
    Ok(notes + 2)
}

/// `omsyn run` for the phone's app: dials no one by itself; the syncs are forwarded to it.
fn phone_app_args(phone: &Path) -> Vec<String> {
    [
        "--json",
        "--data",
        &s(phone),
        "run",
        "--no-mdns",
        "--listen",
        "10.91.2.2:0",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// [`document_shift`] through the phone's running app, as its nurse documents it: the CLI's
/// commands, forwarded to the app. Returns the number of entries.
fn document_shift_in_app(lab: &Lab, phone: &Path, shift: &Shift, notes: usize) -> Result<usize> {
    let (at, left) = (today("08:05")?.to_string(), today("08:25")?.to_string());
    let (patient, visit) = (shift.patient.to_string(), shift.visit.to_string());
    let slot = format!("{}@08:00", shift.medication);
    lab.ask(
        phone,
        &[
            "visit",
            "done",
            "--visit",
            &visit,
            "--arrival",
            &at,
            "--departure",
            &left,
        ],
    )?;
    lab.ask(
        phone,
        &[
            "med",
            "give",
            "--patient",
            &patient,
            "--slot",
            &slot,
            "--visit",
            &visit,
            "--at",
            &at,
        ],
    )?;
    for i in 0..notes {
        let text = format!(
            "Notat {i:02}: Pasienten i god form, tatt medisiner, spist frokost. Sår på venstre legg stelt, ingen tegn til infeksjon."
        );
        lab.ask(
            phone,
            &[
                "note",
                "add",
                "--patient",
                &patient,
                "--visit",
                &visit,
                "--text",
                &text,
                "--at",
                &at,
            ],
        )?;
    }
    Ok(notes + 2)
}

/// Everything `from` holds, exported and imported at `to` (neither is running).
fn hand_over(from: &Path, to: &Path) -> Result<()> {
    let file = from.join("hand-over.omsyn");
    let program = std::env::current_exe()?;
    for (data, args) in [(from, ["export", &s(&file)]), (to, ["import", &s(&file)])] {
        let mut command = Command::new(&program);
        command.arg("--data").arg(data).args(args);
        let out = output_within(command, Process::PATIENCE).map_err(lab_err)?;
        if !out.status.success() {
            bail!("omsyn {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

/// Every document's heads.
pub(crate) fn heads(repo: &Repo) -> Result<Vec<(DocumentId, Vec<[u8; 32]>)>> {
    let mut out = Vec::new();
    for id in repo.store().doc_ids("")? {
        let h = repo
            .store()
            .with_doc(&id, |d| d.clone().head_hashes())?
            .unwrap_or_default();
        out.push((id, h));
    }
    Ok(out)
}

/// The floor: the bytes of every change `repo` holds beyond `before`.
pub(crate) fn floor(repo: &Repo, before: &[(DocumentId, Vec<[u8; 32]>)]) -> Result<u64> {
    let mut total = 0;
    for id in repo.store().doc_ids("")? {
        let have = before
            .iter()
            .find(|(d, _)| *d == id)
            .map(|(_, h)| h.clone())
            .unwrap_or_default();
        total += repo
            .store()
            .with_doc(&id, |d| {
                d.clone()
                    .changes_since(&have)
                    .iter()
                    .map(|c| c.len() as u64)
                    .sum::<u64>()
            })?
            .unwrap_or(0);
    }
    Ok(total)
}

/// The proxy's counters as (wire bytes, datagrams) both ways so far.
pub(crate) fn link_traffic(proxy: &mut Process) -> Result<(u64, u64)> {
    proxy.say("stats").map_err(lab_err)?;
    let stats = proxy.next_json().map_err(lab_err)?;
    let mut bytes = 0;
    let mut datagrams = 0;
    for way in ["to_server", "to_client"] {
        let (b, p) = (
            stats[way]["bytes_in"].as_u64(),
            stats[way]["packets_in"].as_u64(),
        );
        let (b, p) = b.zip(p).context("the proxy's stats")?;
        bytes += b + p * HEADER_BYTES;
        datagrams += p;
    }
    Ok((bytes, datagrams))
}

pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() != "omsyn.sock" {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// The shift: 60 notes, a visit and a dose, documented offline, meet the home unit over the rural
/// link; the home passes them on to the base through the relay.
fn shift(dir: &Path, args: &FieldArgs) -> Result<Value> {
    let spec = LinkSpec {
        delay_ms: args.delay_ms,
        loss: args.loss,
        rate_kbit: args.rate_kbit,
        queue_ms: PHONE_QUEUE_MS,
        seed: args.seed,
    };
    let (base_dir, home_dir, phone_dir) = (dir.join("base"), dir.join("home"), dir.join("phone"));
    let (org, base, mut rng) = organisation(&base_dir, args.seed)?;
    let plan = plan_shift(&base, &mut rng)?;
    let base_id = base.id();
    drop(base);
    let home_id = node(
        &home_dir,
        profile(Role::HomeUnit, "Hjemme", Some(&plan.patient))?,
        &org,
        &mut rng,
    )?
    .id();
    let phone_id = node(
        &phone_dir,
        profile(Role::Nurse, "Kari", None)?,
        &org,
        &mut rng,
    )?
    .id();
    // In the morning, at the office, the phone took its work list from the base (a nurse's
    // phone learns its patients from a base, never from a home unit).
    hand_over(&base_dir, &phone_dir)?;

    let lab = Lab::new()?;
    let relay = Lab::start(
        &lab.town,
        &["--json", "relay", "--listen", "10.91.3.1:3340"].map(str::to_owned),
    )?;
    let url = relay.first_line["relay"]
        .as_str()
        .context("relay url")?
        .to_owned();
    let base_daemon = Lab::start(
        &lab.town,
        &[
            "--json",
            "--data",
            &s(&base_dir),
            "run",
            "--no-mdns",
            "--relay",
            &url,
            "--relay-only",
        ]
        .map(str::to_owned),
    )?;
    let base_ticket = base_daemon.first_line["ticket"]
        .as_str()
        .context("ticket")?
        .to_owned();
    let mut home_daemon = Lab::start_logging(
        &lab.home,
        &[
            "--json",
            "--data",
            &s(&home_dir),
            "run",
            "--no-mdns",
            "--listen",
            "10.91.1.1:4433",
            "--relay",
            &url,
            "--peer",
            &base_ticket,
        ]
        .map(str::to_owned),
        &timeline_filter(args.timeline),
    )?;
    home_daemon
        .wait_for_log("caught up")
        .map_err(waited(&mut home_daemon))?;
    let mut proxy = Lab::start_logging(
        &lab.link,
        &spec.proxy_args("10.91.1.1:4433"),
        if args.timeline {
            ",omsyn::link=debug"
        } else {
            ""
        },
    )?;
    let ticket = format!("omsyn1:{home_id}@10.91.2.1:{PROXY_PORT}");
    let phone_sync = phone_sync_args(&phone_dir, &ticket);
    let phone_sync: Vec<&str> = phone_sync.iter().map(String::as_str).collect();
    let mut app = match args.app {
        true => Some(Lab::start_logging(
            &lab.phone,
            &phone_app_args(&phone_dir),
            &timeline_filter(args.timeline),
        )?),
        false => None,
    };
    // The phone has met the home unit before (yesterday's visit): they know what each holds.
    lab.on_phone(&phone_sync)?;

    // Where the baseline starts from: the morning's documents on both sides, and the sync
    // states a previous per-document session left. A running app's store is read from a copy.
    let (b_home, b_phone) = (dir.join("baseline-home"), dir.join("baseline-phone"));
    copy_dir(&phone_dir, &b_home)?;
    let morning_dir = match app {
        Some(_) => {
            copy_dir(&phone_dir, &dir.join("phone-morning")).map(|()| dir.join("phone-morning"))?
        }
        None => phone_dir.clone(),
    };
    let phone = Repo::open(&morning_dir, None, &mut rng)?;
    warm_baseline(&phone, &b_home, dir, &mut rng)?;
    let before = heads(&phone)?;
    let (entries, floor_bytes) = match app {
        Some(_) => {
            drop(phone);
            let entries = document_shift_in_app(&lab, &phone_dir, &plan, args.notes)?;
            let evening = dir.join("phone-evening");
            copy_dir(&phone_dir, &evening)?;
            let floor_bytes = floor(&Repo::open(&evening, None, &mut rng)?, &before)?;
            (entries, floor_bytes)
        }
        None => {
            let entries = document_shift(&phone, &plan, args.notes, &mut rng)?;
            let floor_bytes = floor(&phone, &before)?;
            // Closed before the phone's `omsyn sync` opens the directory.
            drop(phone);
            (entries, floor_bytes)
        }
    };
    copy_dir(&phone_dir, &b_phone)?;

    let omsyn = measure_shift(
        &lab,
        &mut proxy,
        (&mut home_daemon, app.as_mut()),
        &phone_sync,
        (&home_dir, &base_dir),
        (&phone_id, &base_id),
        &plan,
        (entries, args.timeline),
    )?;
    drop(app);
    drop(home_daemon);
    let baseline = measure_baseline(&lab, &mut proxy, dir, &b_home, &b_phone)?;
    Ok(json!({
        "name": format!("a shift ({entries} entries) meets the home unit; the base through the home and a relay"),
        "link": spec.describe(),
        "entries": entries,
        "floor_bytes": floor_bytes,
        "omsyn": omsyn,
        "per_document_automerge": baseline,
    }))
}

/// Runs the phone's sync and times it: to the peer (the home unit logs that it stored changes from
/// the phone, and holds every entry), to the base (the home's session with the base caught up, and
/// the base holds every entry), and until the phone itself is caught up (the home's
/// acknowledgement came back over the link).
#[allow(clippy::too_many_arguments)]
fn measure_shift(
    lab: &Lab,
    proxy: &mut Process,
    (home, app): (&mut Process, Option<&mut Process>),
    phone_sync: &[&str],
    (home_dir, base_dir): (&Path, &Path),
    (phone_id, base_id): (&omsyn_core::NodeId, &omsyn_core::NodeId),
    plan: &Shift,
    (entries, timeline): (usize, bool),
) -> Result<Value> {
    let (bytes_before, datagrams_before) = link_traffic(proxy)?;
    let started = Instant::now();
    let mut phone = lab.phone.command(phone_sync);
    phone.env(
        "OMSYN_LOG",
        format!("warn,omsyn_node=debug{}", timeline_filter(timeline)),
    );
    let mut phone = Process::spawn(phone).map_err(lab_err)?;
    let holds_all = |data: &Path| -> Result<bool> {
        let view = lab.ask(data, &["show", "--patient", &plan.patient.to_string()])?;
        Ok(view["journal"].as_array().map_or(0, Vec::len) >= entries)
    };
    let (from_phone, to_base) = (
        format!("peer={}", phone_id.short()),
        format!("peer={}", base_id.short()),
    );
    let (mut at_peer, mut at_base) = (None, None);
    while at_base.is_none() {
        let (at, line) = match home.wait_for(|l| l.contains("received") || l.contains("caught up"))
        {
            Ok(found) => found,
            Err(e) => {
                let e = waited(home)(e);
                return Err(waited(&mut phone)(format!("{e:#}\nthe phone")));
            }
        };
        if at < started {
            continue;
        }
        if at_peer.is_none()
            && line.contains("received")
            && line.contains(&from_phone)
            && holds_all(home_dir)?
        {
            at_peer = Some(at);
        }
        if at_peer.is_some()
            && line.contains("caught up")
            && line.contains(&to_base)
            && holds_all(base_dir)?
        {
            at_base = Some(at);
        }
    }
    let summary = phone.rest_of_stdout().map_err(lab_err)?;
    // The phone's log: its app's (a forwarded sync logs there; the morning's lines came first),
    // or the `omsyn sync` process's own.
    let log = match app {
        Some(app) => app,
        None => &mut phone,
    };
    let caught_up = loop {
        let (at, _) = log.wait_for_log("caught up").map_err(waited(log))?;
        if at >= started {
            break at;
        }
    };
    let summary: Value = serde_json::from_str(&summary).context("the phone's summary")?;
    if summary["caught_up"] != true {
        bail!("the phone did not catch up: {summary}");
    }
    let (bytes, datagrams) = link_traffic(proxy)?;
    if timeline {
        print_timeline(started, [("phone", log), ("home", home), ("link", proxy)]);
    }
    let ms = |at: Option<Instant>| at.map(|at| (at - started).as_secs_f64() * 1000.0);
    Ok(json!({
        "ms_to_peer": ms(at_peer),
        "ms_to_base": ms(at_base),
        "ms_until_the_phone_is_caught_up": ms(Some(caught_up)),
        "wire_bytes": bytes - bytes_before,
        "datagrams": datagrams - datagrams_before,
        "round_trips": summary["stats"]["rounds_to_catch_up"],
        "session": summary["stats"],
    }))
}

/// `--timeline`: the directives added to the phone's and the home's log filters — the node's
/// own steps, and iroh's connection events — plus any in `OMSYN_FIELD_LOG`.
fn timeline_filter(timeline: bool) -> String {
    if !timeline {
        return String::new();
    }
    let more = std::env::var("OMSYN_FIELD_LOG").unwrap_or_default();
    format!(
        ",omsyn=debug,omsyn_node=debug,iroh::_events=debug{}{more}",
        if more.is_empty() { "" } else { "," }
    )
}

/// Every line the processes logged since `started`, merged in the order they were read, with
/// the milliseconds since then: where a sync's time goes (on stderr, beside the figures).
fn print_timeline<const N: usize>(started: Instant, processes: [(&str, &mut Process); N]) {
    let mut lines = Vec::new();
    for (name, process) in processes {
        for (at, line) in process.drain_log() {
            if *at >= started {
                lines.push((*at, name, line.clone()));
            }
        }
    }
    lines.sort_by_key(|(at, _, _)| *at);
    for (at, name, line) in lines {
        eprintln!(
            "{:>8.1} {name:<5} {line}",
            (at - started).as_secs_f64() * 1000.0
        );
    }
}

/// Per-document sync states as a previous session between the phone and `other` (a copy of the
/// phone's store: the same documents) leaves them, saved for the baseline's two processes.
fn warm_baseline(phone: &Repo, other: &Path, dir: &Path, rng: &mut StdRng) -> Result<()> {
    let other = Repo::open(other, None, rng)?;
    let docs = phone.store().doc_ids("")?;
    let (mut a, mut b) = (PerDocumentSync::new(), PerDocumentSync::new());
    crate::bench_sync::naive_round_trip_in_memory(phone, &other, &docs, &mut a, &mut b)?;
    std::fs::write(dir.join("states-phone"), a.encode())?;
    std::fs::write(dir.join("states-home"), b.encode())?;
    Ok(())
}

/// Per-document Automerge sync between copies of the two stores over the same link: the home's
/// side where the home unit listened, the phone's dialling through the proxy.
fn measure_baseline(
    lab: &Lab,
    proxy: &mut Process,
    dir: &Path,
    home: &Path,
    phone: &Path,
) -> Result<Value> {
    let docs = dir.join("baseline-docs");
    let mut ids: Vec<String> = Vec::new();
    for d in [home, phone] {
        let mut rng = StdRng::seed_from_u64(0);
        let repo = Repo::open(d, None, &mut rng)?;
        ids.extend(repo.store().doc_ids("")?.iter().map(ToString::to_string));
    }
    ids.sort();
    ids.dedup();
    std::fs::write(&docs, ids.join("\n"))?;
    let server = Lab::start(
        &lab.home,
        &[
            "--json",
            "bench",
            "baseline",
            "--data",
            &s(home),
            "--states",
            &s(&dir.join("states-home")),
            "--docs",
            &s(&docs),
            "--listen",
            "10.91.1.1:4433",
        ]
        .map(str::to_owned),
    )?;
    let peer = format!(
        "{}@10.91.2.1:{PROXY_PORT}",
        server.first_line["id"].as_str().context("baseline id")?
    );
    let (bytes_before, datagrams_before) = link_traffic(proxy)?;
    let started = Instant::now();
    let result = lab.on_phone(&[
        "--json",
        "bench",
        "baseline",
        "--data",
        &s(phone),
        "--states",
        &s(&dir.join("states-phone")),
        "--docs",
        &s(&docs),
        "--peer",
        &peer,
    ])?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (bytes, datagrams) = link_traffic(proxy)?;
    drop(server);
    Ok(json!({
        "ms_to_peer": ms,
        "wire_bytes": bytes - bytes_before,
        "datagrams": datagrams - datagrams_before,
        "round_trips": result["round_trips"],
    }))
}

/// A phone enrolled mid-month takes her caseload from the base: `--phone-patients` patients with
/// the month's plans and journals (a visit or two a day each, documented), over 1 Mbit/s with a
/// 150 ms round trip.
fn phone_first_sync(dir: &Path, args: &FieldArgs) -> Result<Value> {
    let spec = LinkSpec {
        delay_ms: 75,
        loss: 0.0,
        rate_kbit: 1000,
        queue_ms: PHONE_QUEUE_MS,
        seed: args.seed,
    };
    let (base_dir, phone_dir) = (dir.join("base"), dir.join("phone"));
    let (org, base, mut rng) = organisation(&base_dir, args.seed + 1)?;
    let entries = caseload_month(&base, args.phone_patients, &mut rng)?;
    let floor_bytes = floor(&base, &[])?;
    let base_id = base.id();
    drop(base);
    drop(node(
        &phone_dir,
        profile(Role::Nurse, "Kari", None)?,
        &org,
        &mut rng,
    )?);
    let (b_base, b_phone) = (dir.join("baseline-base"), dir.join("baseline-phone"));
    copy_dir(&base_dir, &b_base)?;
    copy_dir(&phone_dir, &b_phone)?;
    std::fs::write(dir.join("states-phone"), PerDocumentSync::new().encode())?;
    std::fs::write(dir.join("states-home"), PerDocumentSync::new().encode())?;

    let lab = Lab::new()?;
    // The base sits where the home unit sat: behind the link.
    let _base_daemon = Lab::start(
        &lab.home,
        &[
            "--json",
            "--data",
            &s(&base_dir),
            "run",
            "--no-mdns",
            "--listen",
            "10.91.1.1:4433",
        ]
        .map(str::to_owned),
    )?;
    let mut proxy = Lab::start(&lab.link, &spec.proxy_args("10.91.1.1:4433"))?;
    let ticket = format!("omsyn1:{base_id}@10.91.2.1:{PROXY_PORT}");
    let (bytes_before, datagrams_before) = link_traffic(&mut proxy)?;
    let started = Instant::now();
    let sync = phone_sync_args(&phone_dir, &ticket);
    let summary = lab.on_phone(&sync.iter().map(String::as_str).collect::<Vec<_>>())?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (bytes, datagrams) = link_traffic(&mut proxy)?;
    drop(_base_daemon);
    let omsyn = json!({
        "ms_to_peer": ms,
        "wire_bytes": bytes - bytes_before,
        "datagrams": datagrams - datagrams_before,
        "round_trips": summary["stats"]["rounds_to_catch_up"],
        "session": summary["stats"],
    });
    let baseline = measure_baseline(&lab, &mut proxy, dir, &b_base, &b_phone)?;
    Ok(json!({
        "name": format!("a new phone's first sync: {} patients, a month of plans and journals", args.phone_patients),
        "link": spec.describe(),
        "entries": entries,
        "floor_bytes": floor_bytes,
        "omsyn": omsyn,
        "per_document_automerge": baseline,
    }))
}

/// A month of `patients` patients in nurse S1's care team: the month's visits planned in one
/// go (as the coordinator does), each visit then documented as performed and with a note, one
/// transaction each (as nurses do). Returns the number of journal entries.
fn caseload_month(base: &Repo, patients: usize, rng: &mut StdRng) -> Result<usize> {
    let nurse = StaffId::parse(NURSE)?;
    // November 2026, whole: the nurse's care team gives her every month of her patients.
    let first = omsyn_core::Day::parse("2026-11-01")?;
    let mut entries = 0;
    for p in 0..patients {
        let t = Timestamp::from_day_hhmm(first, "06:00", 3600)?;
        let patient =
            base.add_patient(t, rng, &[(PatientField::Name, format!("Pasient {p:02}"))])?;
        base.transaction(|tx| tx.set_team_member(t, &patient, &nurse, true))?;
        let mut visits = Vec::new();
        base.transaction(|tx| -> Result<(), omsyn_core::RepoError> {
            let mut day = first;
            for d in 0..30 {
                for hour in if d % 4 == 0 {
                    &["08:00", "20:00"][..]
                } else {
                    &["09:00"][..]
                } {
                    let start = Timestamp::from_day_hhmm(day, hour, 3600)
                        .map_err(|e| omsyn_core::RepoError::Invalid(e.to_string()))?;
                    let new = NewVisit {
                        patient: patient.clone(),
                        start,
                        end: start.plus_minutes(30),
                        kind: VisitKind::Physical,
                        tiltak: vec![],
                        staff: vec![nurse.clone()],
                    };
                    visits.push((tx.plan_visit(t, rng, &new)?, start));
                }
                let Some(next) = day.next() else { break };
                day = next;
            }
            Ok(())
        })?;
        for (visit, start) in visits {
            base.visit_performed(start, rng, &visit, start, None, None)?;
            base.add_note(
                start,
                rng,
                &patient,
                Some(&visit),
                start,
                "Tilsyn utført, pasienten i god form. Spiste godt, blodtrykk som vanlig.",
            )?;
            entries += 2;
        }
    }
    Ok(entries)
}

/// `omsyn bench baseline`: one side of a per-document Automerge sync session over QUIC, for
/// `bench field` (each side in a namespace of its own). Prints `{"id", "listen"}` when serving,
/// then (both sides) `{"bytes", "round_trips", "ms"}` when the session ends.
pub(crate) fn baseline(args: &BaselineArgs) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0);
    let repo = Arc::new(Repo::open(&args.data, None, &mut rng)?);
    let states = std::fs::read(&args.states)
        .with_context(|| format!("--states {}", args.states.display()))?;
    let mut states = PerDocumentSync::decode(&states).context("--states: not saved sync states")?;
    let docs: Vec<DocumentId> = std::fs::read_to_string(&args.docs)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(DocumentId::parse)
        .collect::<Result<_, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listen = args.listen.unwrap_or_else(|| ([0, 0, 0, 0], 0).into());
        let endpoint = crate::bench_sync::naive_endpoint(listen).await?;
        let started = Instant::now();
        let (conn, (send, recv)) = match &args.peer {
            None => {
                outln!("{}", json!({ "id": endpoint.id().to_string(), "listen": endpoint.bound_sockets()[0] }));
                flush();
                let conn = endpoint.accept().await.context("no connection")?.await?;
                let streams = conn.accept_bi().await?;
                (conn, streams)
            }
            Some(peer) => {
                let (id, addr) = peer.split_once('@').context("--peer ID@ADDR")?;
                let addr = iroh::EndpointAddr::new(id.parse()?).with_ip_addr(addr.parse()?);
                let conn = endpoint.connect(addr, crate::bench_sync::NAIVE_ALPN).await?;
                let streams = conn.open_bi().await?;
                (conn, streams)
            }
        };
        let (rounds, bytes) = crate::bench_sync::naive_loop(&repo, &docs, &mut states, send, recv).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if args.peer.is_some() {
            conn.close(0u32.into(), b"done");
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
        }
        endpoint.close().await;
        outln!("{}", json!({ "bytes": bytes, "round_trips": rounds, "ms": ms }));
        Ok(())
    })
}

pub(crate) fn flush() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
