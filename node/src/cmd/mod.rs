//! One file per command that runs against a node. Each translates its arguments into a request
//! to the node's [`Service`] (the front door the dashboard and the apps use too: parsing,
//! validation, the clock and RNG, the need gate and the access log all live there) and renders
//! the answer as text or JSON. A new command is one file here plus one line in [`run_node`].

mod access;
mod audit;
mod conflicts;
mod day_report;
mod daylog;
mod export;
mod id;
mod import;
mod med;
mod message;
mod note;
mod observe;
mod org;
mod patient;
mod plan;
mod show;
mod staff;
mod tasks;
mod visit;

use std::sync::Arc;

use anyhow::{Result, bail};
use omsyn_core::docs::journal::Entry;
use omsyn_core::service::Service;

use crate::cli::NodeCommand;
use crate::net::daemon::Shared;
use crate::output::emit_written;

/// What every command gets: the front door and how to print.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) svc: &'a Arc<Service>,
    pub(crate) json: bool,
    /// Text output shows ids beside names (`--ids`); JSON always has them.
    pub(crate) ids: bool,
}

/// A journal entry's answer: its id on stdout (what a script keeps) and, for people, the
/// entry as the journal shows it on stderr — a dose by its medication, a visit by its time
/// (`Service::describe_written`, through the need gate).
pub(crate) fn written(cx: Ctx<'_>, patient: Option<&str>, entry: &Entry) {
    emit_written(cx.json, entry, &entry.id.to_string(), || {
        format!("written: {}", cx.svc.describe_written(patient, &entry.body))
    });
}

/// How the command line asked to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub(crate) json: bool,
    pub(crate) ids: bool,
}

impl Style {
    pub(crate) fn of(cli: &crate::cli::Cli) -> Style {
        Style {
            json: cli.json,
            ids: cli.ids,
        }
    }
}

/// Runs a command against an open node: in this process, or inside the daemon for a forwarding
/// client (`daemon` is then the daemon's network state).
pub(crate) fn run_node(
    svc: &Arc<Service>,
    style: Style,
    command: NodeCommand,
    daemon: Option<&Shared>,
) -> Result<()> {
    let json = style.json;
    let cx = Ctx {
        svc,
        json,
        ids: style.ids,
    };
    let repo = svc.repo();
    match command {
        NodeCommand::Id => id::run(cx),
        NodeCommand::Run {
            net,
            peers,
            http,
            http_public,
        } => {
            if daemon.is_some() {
                bail!("omsyn run is already serving this data directory");
            }
            crate::serve::run_command(
                svc.clone(),
                json,
                &net,
                &peers,
                (http, http_public),
                forwarded,
            )
        }
        NodeCommand::Sync {
            net,
            peer,
            progress,
            idle_timeout,
        } => crate::serve::sync_once(
            repo.clone(),
            json,
            crate::serve::net_options(&net),
            crate::serve::SyncRequest {
                peer: &peer,
                progress,
                idle_limit: std::time::Duration::from_secs(idle_timeout),
            },
            daemon,
        ),
        NodeCommand::Ticket { listen, relay } => {
            crate::serve::ticket(repo, json, listen, relay.as_deref(), daemon)
        }
        NodeCommand::Status => crate::serve::status(svc, json),
        NodeCommand::Org(cmd) => org::org(svc, json, cmd),
        NodeCommand::Enroll(cmd) => org::enroll(svc, json, cmd),
        NodeCommand::Revoke {
            target,
            reason,
            out,
        } => org::revoke(svc, json, &target, reason.as_deref(), out.as_deref()),
        NodeCommand::Access(cmd) => access::access(svc, json, cmd),
        NodeCommand::Staff(cmd) => staff::run(cx, cmd),
        NodeCommand::Team {
            patient,
            add,
            remove,
        } => access::team(svc, json, &patient, add, remove),
        NodeCommand::Block { patient, staff } => access::block(svc, json, &patient, &staff),
        NodeCommand::Unblock { patient, block } => access::unblock(svc, json, &patient, &block),
        NodeCommand::Purge => access::purge(svc, json),
        NodeCommand::Audit { patient, action } => {
            audit::audit(svc, json, patient.as_deref(), action)
        }
        NodeCommand::Patient(cmd) => patient::run(cx, cmd),
        NodeCommand::Show { patient } => show::run(cx, &patient),
        NodeCommand::Plan(cmd) => plan::run(cx, cmd),
        NodeCommand::Visit(cmd) => visit::run(cx, cmd),
        NodeCommand::Note(cmd) => note::run(cx, cmd),
        NodeCommand::Med(cmd) => med::run(cx, cmd),
        NodeCommand::Observe(args) => observe::run(cx, args),
        NodeCommand::Message(cmd) => message::run(cx, cmd),
        NodeCommand::Daylog(cmd) => daylog::run(cx, cmd),
        NodeCommand::Conflicts(args) => conflicts::run(cx, args),
        NodeCommand::Tasks(args) => tasks::run(cx, args),
        NodeCommand::DayReport { date, zone, csv } => {
            day_report::run(cx, date.as_deref(), zone.as_deref(), csv)
        }
        NodeCommand::Export {
            fhir: Some(dir),
            patient,
            ..
        } => export::fhir(cx, &dir, patient.as_deref()),
        NodeCommand::Export { file, patient, .. } => export::file(cx, file, patient.as_deref()),
        NodeCommand::ImportWorklist { file, offset } => {
            import::worklist(cx, &file, offset.as_deref())
        }
        NodeCommand::Import { file } => import::file(cx, &file),
    }
}

/// Runs a command line forwarded to the daemon serving this directory (`control::Dispatch`).
pub(crate) fn forwarded(cli: crate::cli::Cli, shared: &Shared, svc: &Arc<Service>) -> Result<()> {
    let style = Style::of(&cli);
    match cli.command {
        crate::cli::Command::Node(command) => run_node(svc, style, command, Some(shared)),
        crate::cli::Command::Check { repair } => {
            crate::check::check_open(&shared.repo, style.json, repair)
        }
        _ => bail!("this command cannot run inside the daemon"),
    }
}

/// A service answer as the CLI reports it: a refusal names the flag to fix.
pub(crate) trait Flagged<T> {
    fn flagged(self) -> Result<T>;
}

impl<T> Flagged<T> for Result<T, omsyn_core::service::ServiceError> {
    fn flagged(self) -> Result<T> {
        self.map_err(flag_error)
    }
}

/// A service refusal as the CLI reports it: `--FIELD: reason` names the flag to fix.
pub(crate) fn flag_error(e: omsyn_core::service::ServiceError) -> anyhow::Error {
    match e {
        omsyn_core::service::ServiceError::Invalid {
            field,
            reason,
            remedy,
        } => crate::output::FlagRefused {
            flag: field.replace('_', "-"),
            reason,
            remedy,
        }
        .into(),
        omsyn_core::service::ServiceError::Repo(e) => e.into(),
    }
}
