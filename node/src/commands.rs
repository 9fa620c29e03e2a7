//! Running each command against a node's data directory.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use omsyn_core::conflict::{ConflictId, Severity};
use omsyn_core::docs::daylog::DayLogBody;
use omsyn_core::docs::journal::{EntryBody, MissedReason};
use omsyn_core::docs::messages::{Attachment, Recipient, picture_type};
use omsyn_core::docs::plan::{NewVisit, PlanStatus, VisitChange, VisitKind};
use omsyn_core::docs::record::PatientField;
use omsyn_core::ids::{EntryId, FlagId, MedicationId, PatientId, StaffId, TiltakId, VisitId};
use omsyn_core::repo::OpenRepoError;
use omsyn_core::repo::{Correction, NewTiltak};
use omsyn_core::report::{self, VisitOutcome};
use omsyn_core::store::OpenError;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Day, NodeProfile, Repo, Role, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::cli::*;
use crate::control::user_path;
use crate::net::daemon::Shared;
use crate::output::emit;

/// The platform's data directory for Omsyn, used when neither `--data` nor `OMSYN_DATA` is given.
fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("no", "Omsyn", "omsyn")
        .map(|d| d.data_dir().to_owned())
        .ok_or_else(|| anyhow!("no home directory to put the data in; pass --data DIR"))
}

pub(crate) use omsyn_node::clock::now;

fn parse_time(value: Option<&str>, what: &str) -> Result<Timestamp> {
    match value {
        None => Ok(now()),
        Some(v) => Timestamp::parse(v).with_context(|| format!("--{what}")),
    }
}

fn parse_day(value: Option<&str>) -> Result<Day> {
    match value {
        None => Ok(now().day()),
        Some(v) => Day::parse(v).context("--date"),
    }
}

pub(crate) fn patient_id(value: &str) -> Result<PatientId> {
    PatientId::parse(value).context("--patient")
}

fn visit_id(value: &str) -> Result<VisitId> {
    VisitId::parse(value).context("--visit")
}

fn staff_ids(values: &[String]) -> Result<Vec<StaffId>> {
    values
        .iter()
        .map(|s| StaffId::parse(s).context("--staff"))
        .collect()
}

fn kind(arg: KindArg) -> VisitKind {
    match arg {
        KindArg::Physical => VisitKind::Physical,
        KindArg::Digital => VisitKind::Digital,
    }
}

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<()> {
    let data = match cli.data {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let json = cli.json;
    let mut rng = StdRng::from_os_rng();
    let key_file = cli.store_key_file.clone();
    // Commands that need no open node first; everything else runs against the node's store.
    let command = match cli.command {
        Command::Init(args) => return init(&data, json, &args, key_file.as_deref(), &mut rng),
        Command::Bench(BenchCmd::Store(args)) => return crate::bench::run(json, &args),
        Command::Bench(BenchCmd::Report(args)) => return crate::bench_report::run(json, &args),
        Command::Bench(BenchCmd::Plan(args)) => return crate::bench_plan::run(json, &args),
        Command::Bench(BenchCmd::Sync {
            docs,
            runs,
            percent,
        }) => return crate::bench_sync::run(json, &docs, runs, percent),
        Command::Bench(BenchCmd::Link(args)) => return crate::link::run_args(&args),
        Command::Bench(BenchCmd::Field(args)) => return crate::bench_field::run(json, &args),
        Command::Bench(BenchCmd::Baseline(args)) => return crate::bench_field::baseline(&args),
        Command::BenchOpen { mode, dir } => return crate::bench::open_child(&dir, &mode),
        Command::Check { repair } => {
            return crate::check::check(&data, key_file.as_deref(), json, repair);
        }
        Command::Demo { keep } => return crate::demo::run(json, keep),
        Command::Relay {
            listen,
            tls_cert,
            tls_key,
        } => return crate::serve::relay(json, listen, tls_cert.zip(tls_key)),
        Command::Node(command) => command,
    };
    if let NodeCommand::Run { .. } = &command {
        // The daemon runs for days: verify every page once at start, while we may read it all.
        crate::check::at_start(&data, key_file.as_deref())
            .context("the store failed its start-up check")?;
    }
    let repo = match open_repo(&data, key_file.as_deref()) {
        Ok(repo) => Arc::new(repo),
        // `omsyn run` holds this directory: the daemon answers for it.
        Err(e) if is_locked(&e) => return crate::control::forward(&data),
        Err(e) => return Err(e),
    };
    run_node(&repo, json, command, None)
}

/// Opens the node in `data` (with the host's store key file, if given).
pub(crate) fn open_repo(data: &Path, key_file: Option<&Path>) -> Result<Repo> {
    let key = host_key(key_file)?;
    match Repo::open(data, key, &mut StdRng::from_os_rng()) {
        Ok(mut repo) => {
            if let Some(file) = key_file {
                repo.add_key_file(file.to_owned());
            }
            Ok(repo)
        }
        Err(OpenRepoError::Store(e @ OpenError::Locked(_))) => Err(e.into()),
        Err(e) => Err(e).with_context(|| format!("opening the node in {}", data.display())),
    }
}

/// Runs a command against an open node: in this process, or inside the daemon for a forwarding
/// client (`daemon` is then the daemon's network state).
pub(crate) fn run_node(
    repo: &Arc<Repo>,
    json: bool,
    command: NodeCommand,
    daemon: Option<&Shared>,
) -> Result<()> {
    let mut rng = StdRng::from_os_rng();
    let rng = &mut rng;
    match command {
        NodeCommand::Id => id(repo, json),
        NodeCommand::Run {
            net,
            peers,
            http,
            http_public,
        } => match daemon {
            Some(_) => bail!("omsyn run is already serving this data directory"),
            None => {
                if let Some(addr) = http
                    && !addr.ip().is_loopback()
                    && !http_public
                {
                    bail!(
                        "--http {addr} is not a loopback address: the dashboard shows patient data; add --http-public to serve it there anyway"
                    );
                }
                crate::serve::run(repo.clone(), json, net_options(&net), &peers, http)
            }
        },
        NodeCommand::Sync {
            net,
            peer,
            progress,
        } => crate::serve::sync_once(
            repo.clone(),
            json,
            net_options(&net),
            (&peer, progress),
            daemon,
        ),
        NodeCommand::Ticket { listen, relay } => {
            crate::serve::ticket(repo, json, listen, relay.as_deref(), daemon)
        }
        NodeCommand::Status => crate::serve::status(repo, json),
        NodeCommand::Org(cmd) => crate::trust::org(repo, json, cmd, rng),
        NodeCommand::Enroll(cmd) => crate::trust::enroll(repo, json, cmd),
        NodeCommand::Revoke {
            target,
            reason,
            out,
        } => crate::trust::revoke(repo, json, &target, reason.as_deref(), out.as_deref()),
        NodeCommand::Access(cmd) => crate::trust::access(repo, json, rng, cmd),
        NodeCommand::Team {
            patient,
            add,
            remove,
        } => crate::trust::team(repo, json, &patient_id(&patient)?, add, remove),
        NodeCommand::Block { patient, staff } => {
            crate::trust::block(repo, json, rng, &patient_id(&patient)?, &staff)
        }
        NodeCommand::Unblock { patient, block } => {
            crate::trust::unblock(repo, json, &patient_id(&patient)?, &block)
        }
        NodeCommand::Purge => crate::trust::purge(repo, json),
        NodeCommand::Audit { patient, action } => {
            let patient = patient.as_deref().map(patient_id).transpose()?;
            crate::trust::audit(repo, json, patient.as_ref(), action)
        }
        NodeCommand::Patient(cmd) => patient(repo, json, rng, cmd),
        NodeCommand::Show { patient } => show(repo, json, &patient_id(&patient)?),
        NodeCommand::Plan(PlanCmd::Suggest(args)) => {
            crate::plan_suggest::run(repo, json, rng, &args)
        }
        NodeCommand::Plan(PlanCmd::Add {
            patient,
            description,
            code,
            times,
            weekdays,
            vedtak,
            practical_help,
            requires_nurse,
            double_staffed,
        }) => {
            let spec = NewTiltak {
                vedtak_title: vedtak,
                code,
                description,
                times,
                weekdays,
                health_care: !practical_help,
                requires_authorised_nurse: requires_nurse,
                double_staffed,
            };
            let id = repo.add_tiltak(now(), rng, &patient_id(&patient)?, &spec)?;
            emit(json, &json!({ "tiltak": id }), || id.to_string());
            Ok(())
        }
        NodeCommand::Visit(cmd) => visit(repo, json, rng, cmd),
        NodeCommand::Note(cmd) => note(repo, json, rng, cmd),
        NodeCommand::Med(cmd) => med(repo, json, rng, cmd),
        NodeCommand::Observe(a) => {
            let visit = a.visit.as_deref().map(visit_id).transpose()?;
            let entry = repo.observe(
                now(),
                rng,
                &patient_id(&a.patient)?,
                visit.as_ref(),
                parse_time(a.at.as_deref(), "at")?,
                &a.kind,
                &a.value,
                a.unit.as_deref(),
            )?;
            emit(json, &entry, || entry.id.to_string());
            Ok(())
        }
        NodeCommand::Message(MessageCmd::Send {
            patient,
            to,
            text,
            reply_to,
            picture,
        }) => {
            let to = match to {
                RecipientArg::Home => Recipient::Home,
                RecipientArg::CareTeam => Recipient::CareTeam,
                RecipientArg::Base => Recipient::Base,
            };
            let reply_to = reply_to
                .as_deref()
                .map(|r| EntryId::parse(r).context("--reply-to"))
                .transpose()?;
            let pictures = picture
                .iter()
                .map(|path| {
                    let bytes = read_input(path)?;
                    let kind = picture_type(&bytes).ok_or_else(|| {
                        anyhow!("{} is not a JPEG, PNG or WebP picture", path.display())
                    })?;
                    let name = path.file_name().and_then(|n| n.to_str());
                    Attachment::picture(kind, name, &bytes)
                        .with_context(|| format!("--picture {}", path.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            let patient = patient_id(&patient)?;
            let message = repo.send_message(now(), rng, &patient, to, &text, reply_to, pictures)?;
            emit(json, &message, || message.id.to_string());
            Ok(())
        }
        NodeCommand::Daylog(cmd) => daylog(repo, json, rng, cmd),
        NodeCommand::Conflicts(args) => conflicts(repo, json, rng, args),
        NodeCommand::Tasks(args) => crate::tasks::run(repo, json, rng, args),
        NodeCommand::DayReport { date, zone, csv } => {
            let format = match (json, csv) {
                (true, true) => bail!("give either --json or --csv"),
                (_, true) => ReportFormat::Csv,
                _ => ReportFormat::Summary,
            };
            day_report(
                repo,
                json,
                parse_day(date.as_deref())?,
                zone.as_deref(),
                format,
            )
        }
        NodeCommand::Export {
            fhir: Some(dir),
            patient,
            ..
        } => export_fhir(repo, json, &dir, patient),
        NodeCommand::Export { file, patient, .. } => export(repo, json, file, patient),
        NodeCommand::ImportWorklist { file, offset } => {
            let offset_secs = parse_offset(&offset)?;
            let bytes = read_input(&file)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow!("{} is not UTF-8 text", file.display()))?;
            let summary = repo
                .import_worklist(now(), rng, &text, offset_secs)
                .with_context(|| format!("importing {}", file.display()))?;
            emit(json, &summary, || {
                format!(
                    "{} rows: {} visits planned ({} unassigned), {} already planned, {} new patients",
                    summary.rows,
                    summary.visits_planned,
                    summary.unassigned,
                    summary.already_planned,
                    summary.new_patients
                )
            });
            Ok(())
        }
        NodeCommand::Import { file } => {
            let bytes = read_input(&file)?;
            let summary = repo
                .import(now(), &bytes)
                .with_context(|| format!("importing {}", file.display()))?;
            emit(json, &summary, || {
                format!(
                    "imported {} documents ({} new), {} new changes",
                    summary.documents, summary.new_documents, summary.new_changes
                )
            });
            Ok(())
        }
    }
}

fn net_options(args: &NetArgs) -> crate::net::NetOptions {
    crate::net::NetOptions {
        listen: args.listen,
        relay: args.relay.clone(),
        mdns: !args.no_mdns,
        relay_only: args.relay_only,
        relay_ca: args.relay_ca.clone(),
    }
}

/// The store key from `--store-key-file`, if the host keeps it outside the data directory.
pub(crate) fn host_key(file: Option<&Path>) -> Result<Option<omsyn_core::store::StoreKey>> {
    file.map(|f| {
        omsyn_core::store::StoreKey::load_file(f)
            .with_context(|| format!("--store-key-file {}", f.display()))
    })
    .transpose()
}

fn init(
    data: &Path,
    json: bool,
    args: &InitArgs,
    key_file: Option<&Path>,
    rng: &mut StdRng,
) -> Result<()> {
    let role = match args.role {
        RoleArg::Base => Role::Base,
        RoleArg::Nurse => Role::Nurse,
        RoleArg::HomeUnit => Role::HomeUnit,
    };
    let profile = NodeProfile {
        version: omsyn_core::identity::PROFILE_VERSION,
        role,
        name: args.name.clone(),
        staff_id: args
            .staff_id
            .as_deref()
            .map(|s| StaffId::parse(s).context("--staff-id"))
            .transpose()?,
        patient: args.patient.as_deref().map(patient_id).transpose()?,
        zone: args.zone.clone(),
    };
    // A host-kept key file is used if it exists, and created (owner-only) if not.
    let key = match key_file {
        Some(f) if !f.exists() => Some(
            omsyn_core::store::StoreKey::create_file(f, rng)
                .with_context(|| format!("creating {}", f.display()))?,
        ),
        other => host_key(other)?,
    };
    let repo = Repo::init(data, profile, key, rng)
        .with_context(|| format!("creating a node in {}", data.display()))?;
    emit(
        json,
        &json!({ "id": repo.id(), "role": role, "name": args.name, "data": data }),
        || {
            format!(
                "created {} node \"{}\"\nid:   {}\ndata: {}",
                role,
                args.name,
                repo.id(),
                data.display()
            )
        },
    );
    Ok(())
}

pub(crate) fn is_locked(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<OpenError>(), Some(OpenError::Locked(_)))
}

fn id(repo: &Repo, json: bool) -> Result<()> {
    let profile = repo.profile();
    let stats = repo.store().stats()?;
    emit(
        json,
        &json!({ "id": repo.id(), "profile": profile, "store": stats }),
        || {
            let mut s = format!(
                "id:        {}\nrole:      {}\nname:      {}\n",
                repo.id(),
                profile.role,
                profile.name
            );
            if let Some(staff) = &profile.staff_id {
                let _ = writeln!(s, "staff id:  {staff}");
            }
            if let Some(p) = &profile.patient {
                let _ = writeln!(s, "serves:    {p}");
            }
            let _ = write!(
                s,
                "store:     {} documents, {} patients",
                stats.documents, stats.patients
            );
            s
        },
    );
    Ok(())
}

fn patient(repo: &Repo, json: bool, rng: &mut StdRng, cmd: PatientCmd) -> Result<()> {
    match cmd {
        PatientCmd::Add(f) => {
            let mut fields = vec![(PatientField::Name, f.name)];
            for (field, value) in [
                (PatientField::NationalId, f.national_id),
                (PatientField::Address, f.address),
                (PatientField::AccessNote, f.access_note),
                (PatientField::Phone, f.phone),
                (PatientField::Zone, f.zone),
                (PatientField::GeneralPractitioner, f.gp),
            ] {
                if let Some(v) = value {
                    fields.push((field, v));
                }
            }
            let id = repo.add_patient(now(), rng, &fields)?;
            emit(json, &json!({ "patient": id }), || id.to_string());
        }
        PatientCmd::List => {
            let list = repo.shown(now(), "patient list", repo.patients()?, |(p, _)| p)?;
            let rows: Vec<_> = list
                .iter()
                .map(|(id, name)| json!({ "patient": id, "name": name }))
                .collect();
            emit(json, &rows, || {
                list.iter()
                    .map(|(id, name)| format!("{id}  {name}\n"))
                    .collect()
            });
        }
        PatientCmd::Set {
            patient,
            field,
            value,
        } => {
            let field = PatientField::parse(&field).ok_or_else(|| {
                anyhow!(
                    "--field: unknown field {field:?}; expected one of {}",
                    PatientField::ALL.map(|f| f.as_str()).join(", ")
                )
            })?;
            repo.set_patient_field(now(), &patient_id(&patient)?, field, &value)?;
            emit(json, &json!({ "ok": true }), String::new);
        }
        PatientCmd::Flag {
            patient,
            kind,
            note,
        } => {
            let id = repo.add_flag(now(), rng, &patient_id(&patient)?, &kind, note.as_deref())?;
            emit(json, &json!({ "flag": id }), || id.to_string());
        }
        PatientCmd::Unflag {
            patient,
            flag,
            reason,
        } => {
            let flag = FlagId::parse(&flag).context("--flag")?;
            repo.deactivate_flag(now(), &patient_id(&patient)?, &flag, &reason)?;
            emit(json, &json!({ "ok": true }), String::new);
        }
        PatientCmd::Contact {
            patient,
            name,
            relation,
            phone,
        } => {
            let id = repo.add_contact(
                now(),
                rng,
                &patient_id(&patient)?,
                &name,
                &relation,
                phone.as_deref(),
            )?;
            emit(json, &json!({ "contact": id }), || id.to_string());
        }
    }
    Ok(())
}

fn show(repo: &Repo, json: bool, patient: &PatientId) -> Result<()> {
    repo.open_patient(now(), patient, "patient view")?;
    let view = repo.patient_view(patient)?;
    emit(json, &view, || {
        let r = &view.record;
        let mut s = format!("{}  ({})\n", r.name(), r.id);
        for (field, value) in &r.fields {
            if *field != PatientField::Name {
                let _ = writeln!(s, "  {:<12} {value}", field.as_str());
            }
        }
        for c in &r.contacts {
            let _ = writeln!(
                s,
                "  contact      {} ({}) {}",
                c.name,
                c.relation,
                c.phone.as_deref().unwrap_or("")
            );
        }
        for f in r.flags.iter().filter(|f| f.deactivated.is_none()) {
            let _ = writeln!(
                s,
                "  FLAG         {} {} [{}]",
                f.kind,
                f.note.as_deref().unwrap_or(""),
                f.id
            );
        }
        let team: Vec<&str> = view
            .access
            .team
            .iter()
            .filter(|m| m.active)
            .map(|m| m.staff.as_str())
            .collect();
        if !team.is_empty() {
            let _ = writeln!(s, "  care team    {}", team.join(", "));
        }
        for b in view.access.blocks.iter().filter(|b| b.lifted.is_none()) {
            let _ = writeln!(s, "  BLOCKED      {} (sperring) [{}]", b.staff, b.id);
        }
        if !r.tiltak.is_empty() {
            s.push_str("care plan:\n");
        }
        for t in &r.tiltak {
            let _ = writeln!(
                s,
                "  {} {} at {}{}{} [{}]",
                t.code.as_deref().unwrap_or("-"),
                t.description,
                t.times.join(", "),
                if t.health_care {
                    ""
                } else {
                    " (practical help)"
                },
                if t.requires_authorised_nurse {
                    " (authorised nurse)"
                } else {
                    ""
                },
                t.id
            );
        }
        if !r.medications.is_empty() {
            s.push_str("medications (dose slots for `omsyn med give --slot`):\n");
        }
        for m in &r.medications {
            let slots: Vec<String> = m.slots.iter().map(|t| format!("{}@{t}", m.id)).collect();
            let _ = writeln!(s, "  {} {}: {}", m.name, m.dose, slots.join("  "));
        }
        if !view.visits.is_empty() {
            s.push_str("visits:\n");
        }
        for v in &view.visits {
            let status = match &v.status {
                PlanStatus::Planned => String::new(),
                PlanStatus::Cancelled { reason } => format!(" CANCELLED ({reason})"),
            };
            let _ = writeln!(
                s,
                "  {} {}-{} {:<8} {}{} [{}]",
                v.start.day(),
                v.start.hhmm(),
                v.end.hhmm(),
                v.kind.as_str(),
                staff_list(&v.staff),
                status,
                v.id
            );
        }
        if !view.journal.is_empty() {
            s.push_str("journal:\n");
        }
        for e in &view.journal {
            let _ = writeln!(
                s,
                "  {} {} ({}) {} [{}]",
                e.event_time,
                e.author.name,
                e.author.role,
                EntryBody::describe(&e.body),
                e.id
            );
        }
        if !view.messages.is_empty() {
            s.push_str("messages:\n");
        }
        for m in &view.messages {
            let _ = writeln!(s, "  {} {}: {}", m.sent_at, m.author.name, m.text);
        }
        for c in &view.conflicts {
            let _ = writeln!(s, "CONFLICT {} {}", c.id, c.summary);
        }
        for k in &view.unreadable {
            let _ = writeln!(
                s,
                "UNREADABLE (kept, written by a newer version or a faulty peer): {k}"
            );
        }
        s
    });
    Ok(())
}

pub(crate) fn staff_list(staff: &[StaffId]) -> String {
    if staff.is_empty() {
        "(unassigned)".into()
    } else {
        staff
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

fn visit(repo: &Repo, json: bool, rng: &mut StdRng, cmd: VisitCmd) -> Result<()> {
    let t = now();
    match cmd {
        VisitCmd::Plan {
            patient,
            start,
            end,
            kind: k,
            staff,
            tiltak,
        } => {
            let new = NewVisit {
                patient: patient_id(&patient)?,
                start: Timestamp::parse(&start).context("--start")?,
                end: Timestamp::parse(&end).context("--end")?,
                kind: kind(k),
                tiltak: tiltak
                    .iter()
                    .map(|x| TiltakId::parse(x).context("--tiltak"))
                    .collect::<Result<_>>()?,
                staff: staff_ids(&staff)?,
            };
            let id = repo.plan_visit(t, rng, &new)?;
            emit(json, &json!({ "visit": id }), || id.to_string());
            return Ok(());
        }
        VisitCmd::List { date } => {
            let day = parse_day(date.as_deref())?;
            let visits = repo.shown(
                now(),
                &format!("work list {day}"),
                repo.visits_on(day)?,
                |v| &v.patient,
            )?;
            emit(json, &visits, || {
                visits
                    .iter()
                    .map(|v| {
                        format!(
                            "{}-{} {:<8} {} {} [{}]\n",
                            v.start.hhmm(),
                            v.end.hhmm(),
                            v.kind.as_str(),
                            v.patient,
                            staff_list(&v.staff),
                            v.id
                        )
                    })
                    .collect()
            });
            return Ok(());
        }
        VisitCmd::Move { visit, start, end } => {
            let change = VisitChange::Reschedule {
                start: Timestamp::parse(&start).context("--start")?,
                end: Timestamp::parse(&end).context("--end")?,
            };
            repo.change_visit(t, rng, &visit_id(&visit)?, &change)?;
        }
        VisitCmd::Assign { visit, staff } => {
            repo.change_visit(
                t,
                rng,
                &visit_id(&visit)?,
                &VisitChange::Assign(staff_ids(&staff)?),
            )?;
        }
        VisitCmd::Cancel { visit, reason } => {
            repo.change_visit(t, rng, &visit_id(&visit)?, &VisitChange::Cancel(reason))?;
        }
        VisitCmd::Done {
            visit,
            arrival,
            departure,
            mode,
        } => {
            let arrival = parse_time(arrival.as_deref(), "arrival")?;
            let departure = departure
                .as_deref()
                .map(|d| Timestamp::parse(d).context("--departure"))
                .transpose()?;
            let entry = repo.visit_performed(
                t,
                rng,
                &visit_id(&visit)?,
                arrival,
                departure,
                mode.map(kind),
            )?;
            emit(json, &entry, || entry.id.to_string());
            return Ok(());
        }
        VisitCmd::Missed {
            visit,
            reason,
            note,
            at,
        } => {
            let reason = match reason {
                MissedArg::NoAnswer => MissedReason::NoAnswer,
                MissedArg::Declined => MissedReason::Declined,
                MissedArg::NotHome => MissedReason::NotHome,
                MissedArg::Other => MissedReason::Other,
            };
            let entry = repo.visit_missed(
                t,
                rng,
                &visit_id(&visit)?,
                reason,
                note,
                parse_time(at.as_deref(), "at")?,
            )?;
            emit(json, &entry, || entry.id.to_string());
            return Ok(());
        }
    }
    emit(json, &json!({ "ok": true }), String::new);
    Ok(())
}

fn note(repo: &Repo, json: bool, rng: &mut StdRng, cmd: NoteCmd) -> Result<()> {
    let entry = match cmd {
        NoteCmd::Add {
            patient,
            visit,
            text,
            at,
        } => {
            let visit = visit.as_deref().map(visit_id).transpose()?;
            repo.add_note(
                now(),
                rng,
                &patient_id(&patient)?,
                visit.as_ref(),
                parse_time(at.as_deref(), "at")?,
                &text,
            )?
        }
        NoteCmd::Correct {
            patient,
            entry,
            text,
            entered_in_error,
        } => {
            let correction = match (text, entered_in_error) {
                (Some(text), None) => Correction::Amend(text),
                (None, Some(reason)) => Correction::EnteredInError(reason),
                _ => bail!("give either --text or --entered-in-error"),
            };
            repo.correct_entry(
                now(),
                rng,
                &patient_id(&patient)?,
                &EntryId::parse(&entry).context("--entry")?,
                correction,
            )?
        }
    };
    emit(json, &entry, || entry.id.to_string());
    Ok(())
}

fn parse_slot(slot: &str) -> Result<(MedicationId, String)> {
    let (med, time) = slot
        .split_once('@')
        .ok_or_else(|| anyhow!("--slot: expected MEDICATION-ID@HH:MM, got {slot:?}"))?;
    Ok((MedicationId::parse(med).context("--slot")?, time.to_owned()))
}

fn med(repo: &Repo, json: bool, rng: &mut StdRng, cmd: MedCmd) -> Result<()> {
    let (args, reason) = match cmd {
        MedCmd::Add {
            patient,
            name,
            dose,
            slots,
        } => {
            let id =
                repo.add_medication(now(), rng, &patient_id(&patient)?, &name, &dose, &slots)?;
            emit(json, &json!({ "medication": id, "slots": slots }), || {
                slots.iter().map(|s| format!("{id}@{s}\n")).collect()
            });
            return Ok(());
        }
        MedCmd::Give(args) => (args, None),
        MedCmd::NotGiven { dose, reason } => (dose, Some(reason)),
    };
    let (medication, slot) = parse_slot(&args.slot)?;
    let visit = args.visit.as_deref().map(visit_id).transpose()?;
    let entry = repo.record_dose(
        now(),
        rng,
        &patient_id(&args.patient)?,
        &medication,
        &slot,
        parse_time(args.at.as_deref(), "at")?,
        visit.as_ref(),
        reason,
    )?;
    emit(json, &entry, || entry.id.to_string());
    Ok(())
}

fn daylog(repo: &Repo, json: bool, rng: &mut StdRng, cmd: DaylogCmd) -> Result<()> {
    let (at, body) = match cmd {
        DaylogCmd::ShiftStart(at) => (at, DayLogBody::ShiftStart),
        DaylogCmd::ShiftEnd(at) => (at, DayLogBody::ShiftEnd),
        DaylogCmd::VisitStart { visit, at } => (
            at,
            DayLogBody::VisitStart {
                visit: visit_id(&visit)?,
            },
        ),
        DaylogCmd::VisitEnd { visit, at } => (
            at,
            DayLogBody::VisitEnd {
                visit: visit_id(&visit)?,
            },
        ),
        DaylogCmd::Travel { minutes, km, at } => (at, DayLogBody::Travel { minutes, km }),
        DaylogCmd::Deviation { text, at } => (at, DayLogBody::Deviation { text }),
    };
    let entry = repo.day_log(now(), rng, parse_time(at.at.as_deref(), "at")?, body)?;
    emit(json, &entry, || entry.id.to_string());
    Ok(())
}

fn conflicts(repo: &Repo, json: bool, rng: &mut StdRng, args: ConflictsArgs) -> Result<()> {
    if let Some(ConflictAction::Resolve {
        conflict,
        note,
        value,
    }) = args.action
    {
        let id = ConflictId::parse(&conflict).context("--conflict")?;
        repo.resolve_conflict(now(), rng, &id, &note, value.as_deref())?;
        emit(json, &json!({ "resolved": id }), || {
            format!("resolved {id}")
        });
        return Ok(());
    }
    let patient = args.patient.as_deref().map(patient_id).transpose()?;
    if let Some(p) = &patient {
        repo.open_patient(now(), p, "conflicts")?;
    }
    let list = repo.shown(
        now(),
        "open conflicts",
        repo.named_conflicts(patient.as_ref())?,
        |c| &c.patient,
    )?;
    emit(json, &list, || {
        if list.is_empty() {
            return "no open conflicts".into();
        }
        list.iter()
            .map(|c| {
                let severity = match c.severity {
                    Severity::High => "HIGH",
                    Severity::Review => "review",
                };
                let patient = c.patient_label();
                format!("{} {severity:<6} {patient}: {}\n", c.id, c.summary)
            })
            .collect()
    });
    Ok(())
}

/// How `omsyn day-report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportFormat {
    /// Text, or JSON with `--json`.
    Summary,
    /// One CSV row per visit.
    Csv,
}

fn day_report(
    repo: &Repo,
    json: bool,
    day: Day,
    zone: Option<&str>,
    format: ReportFormat,
) -> Result<()> {
    let what = match zone {
        Some(z) => format!("day report {day} for {z}"),
        None => format!("day report {day}"),
    };
    let mut disclosure = repo.disclose(now(), AuditAction::Read, &what);
    let r = report::day_report(repo, day, zone, &mut disclosure)?;
    disclosure.finish()?;
    if format == ReportFormat::Csv {
        outln!("{}", report::visits_csv(&r).trim_end());
        return Ok(());
    }
    emit(json, &r, || day_report_text(&r));
    Ok(())
}

fn day_report_text(r: &report::DayReport) -> String {
    let mut s = format!(
        "Day report {}{} (as known by this node)\n",
        r.day,
        r.zone
            .as_deref()
            .map(|z| format!(", {z}"))
            .unwrap_or_default()
    );
    let row = |name: &str, c: &report::Counts| {
        format!(
            "  {name:<14} planned {:>4}  done {:>4}  missed {:>3}  cancelled {:>3}  open {:>4}\n",
            c.planned, c.done, c.missed, c.cancelled, c.open
        )
    };
    s.push_str(&row("all visits", &r.totals));
    s.push_str(&row("physical", &r.physical));
    s.push_str(&row("digital", &r.digital));
    let _ = writeln!(
        s,
        "  physical trips replaced by digital visits: {}",
        r.trips_replaced
    );
    s.push_str("per staff:\n");
    let named = |id: &String| {
        r.staff_names
            .get(id)
            .map_or_else(|| id.clone(), |name| format!("{name} ({id})"))
    };
    for (staff, c) in &r.per_staff {
        s.push_str(&row(&named(staff), c));
    }
    s.push_str("per patient (continuity: different staff this week):\n");
    for p in &r.per_patient {
        let _ = writeln!(
            s,
            "  {:<24} planned {:>2}  done {:>2}  missed {:>2}  staff this week {:>2} ({})",
            p.name,
            p.counts.planned,
            p.counts.done,
            p.counts.missed,
            p.staff_this_week.len(),
            p.staff_this_week
                .iter()
                .map(|id| r.staff_names.get(id).unwrap_or(id).as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let open = r
        .visits
        .iter()
        .filter(|v| v.outcome == VisitOutcome::Open)
        .count();
    if open > 0 {
        let _ = writeln!(s, "not yet documented: {open}");
    }
    let _ = writeln!(s, "deviations: {}", r.deviations.len());
    for d in &r.deviations {
        let _ = writeln!(s, "  {} {}: {}", d.at.hhmm(), d.by, d.text);
    }
    let _ = writeln!(s, "open conflicts to review: {}", r.conflicts.len());
    for c in &r.conflicts {
        let _ = writeln!(s, "  {} {}: {}", c.id, c.patient_label(), c.summary);
    }
    let _ = writeln!(s, "devices, least recently synced first:");
    for d in &r.devices {
        let _ = writeln!(
            s,
            "  {:<24} {:<9} last synced {}",
            d.name,
            d.role.to_string(),
            d.last_synced_ms
                .map(crate::serve::fmt_ms)
                .unwrap_or_else(|| "never".into())
        );
    }
    s
}

fn export(repo: &Repo, json: bool, file: Option<PathBuf>, patient: Option<String>) -> Result<()> {
    let patient = patient.as_deref().map(patient_id).transpose()?;
    // The need gate decides which patients leave, and logs the export naming each.
    let bytes = repo.export(now(), patient.as_ref())?;
    match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => {
            // Patient data: readable by the owner only. Written beside the target and renamed,
            // so a failure never leaves a half-written file under the real name.
            write_private_atomically(&path, &bytes)?;
            emit(json, &json!({ "file": path, "bytes": bytes.len() }), || {
                format!("wrote {} bytes to {}", bytes.len(), path.display())
            });
        }
        None => {
            if json {
                bail!("--json prints a summary on stdout; give a FILE for the export itself");
            }
            if crate::control::stdout_is_terminal() {
                bail!(
                    "refusing to write a binary export to a terminal; give a FILE or redirect stdout"
                );
            }
            crate::output::write_binary(&bytes).context("writing to stdout")?;
        }
    }
    Ok(())
}

/// `omsyn export --fhir DIR`: one FHIR R4 Bundle per patient held (or the one named), each
/// export logged in the access log.
fn export_fhir(repo: &Repo, json: bool, dir: &Path, patient: Option<String>) -> Result<()> {
    let patient = patient.as_deref().map(patient_id).transpose()?;
    let dir = &user_path(dir);
    // A base's act, through the need gate; every patient exported is logged.
    let patients = omsyn_core::fhir::export(repo, now(), patient.as_ref())?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut totals = std::collections::BTreeMap::<String, usize>::new();
    for (patient, export) in &patients {
        let path = dir.join(format!("{patient}.json"));
        write_private_atomically(&path, &serde_json::to_vec_pretty(&export.bundle)?)?;
        for (kind, n) in &export.counts {
            *totals.entry(kind.clone()).or_default() += n;
        }
    }
    emit(
        json,
        &json!({ "dir": dir, "patients": patients.len(), "resources": totals }),
        || {
            let list: Vec<String> = totals.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!(
                "wrote {} FHIR R4 bundle(s) to {}: {}",
                patients.len(),
                dir.display(),
                list.join(", ")
            )
        },
    );
    Ok(())
}

/// Patient data: readable by the owner only, written beside the target and renamed, so a
/// failure never leaves a half-written file under the real name.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = &user_path(path);
    let tmp = path.with_extension("partial");
    write_private(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Parses `+01:00` / `-03:30` into seconds east of UTC.
fn parse_offset(value: &str) -> Result<i32> {
    let bad = || anyhow!("--offset: expected +HH:MM or -HH:MM, got {value:?}");
    let (sign, rest) = match value.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(sign * (h * 3600 + m * 60))
}

/// Reads a file the user named (relative to the user's directory), or standard input for `-`.
pub(crate) fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        if let Some(forwarded) = crate::control::forwarded_stdin() {
            return Ok(forwarded);
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(user_path(file)).with_context(|| format!("reading {}", file.display()))
    }
}
