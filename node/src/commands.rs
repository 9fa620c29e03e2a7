//! The CLI's entry: commands that need no open node (`init`, `demo`, `relay`, the benchmarks,
//! `check`), opening the node's store, and handing every other command to [`crate::cmd`] — in
//! this process, or forwarded to the `omsyn run` that holds the data directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use omsyn_core::service::NewNode;
use omsyn_core::{Repo, Role};
use serde_json::json;

use crate::cli::*;
use crate::cmd::Flagged;
use crate::open::{host_key, is_locked, open_repo};
use crate::output::emit;

/// The platform's data directory for Omsyn, used when neither `--data` nor `OMSYN_DATA` is given.
fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("no", "Omsyn", "omsyn")
        .map(|d| d.data_dir().to_owned())
        .ok_or_else(|| anyhow!("no home directory to put the data in; pass --data DIR"))
}

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<()> {
    let style = crate::cmd::Style::of(&cli);
    // A misspelt zone would otherwise put every time an hour off without a word.
    omsyn_node::clock::zone_from_env().map_err(|e| {
        anyhow::anyhow!("{e} (unset it for Europe/Oslo, or name a zone such as Europe/Oslo)")
    })?;
    let data = match cli.data {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let json = cli.json;
    let key_file = cli.store_key_file.clone();
    // Commands that need no open node first; everything else runs against the node's store.
    let command = match cli.command {
        Command::Init(args) => return init(&data, json, &args, key_file.as_deref()),
        Command::Bench(BenchCmd::Store(args)) => {
            return match args.table_pricing {
                Some(documents) => crate::bench_tables::run(json, documents, args.writes),
                None => crate::bench::run(json, &args),
            };
        }
        Command::Bench(BenchCmd::Report(args)) => return crate::bench_report::run(json, &args),
        Command::Bench(BenchCmd::Plan(args)) => return crate::bench_plan::run(json, &args),
        Command::Bench(BenchCmd::Sync {
            docs,
            runs,
            percent,
        }) => return crate::bench_sync::run(json, &docs, runs, percent),
        Command::Bench(BenchCmd::Link(args)) => return crate::link::run_args(&args),
        Command::Bench(BenchCmd::Field(args)) => {
            return crate::bench_field::run(json, &args, crate::bench_base::run);
        }
        Command::Bench(BenchCmd::Baseline(args)) => return crate::bench_field::baseline(&args),
        Command::Bench(BenchCmd::Copy(args)) => return crate::bench_copy::run(&args),
        Command::BenchOpen { mode, dir } => {
            return crate::bench::open_child(&dir, &mode, crate::bench_report::child);
        }
        Command::Check { repair } => {
            return crate::check::check(&data, key_file.as_deref(), json, repair);
        }
        Command::Demo { keep } => return crate::demo::run(json, keep),
        Command::Completions { shell } => return completions(shell),
        Command::Man => return man_page(),
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
        Ok(repo) => {
            tracing::debug!("store opened");
            Arc::new(repo)
        }
        // `omsyn run` holds this directory: the daemon answers for it.
        Err(e) if is_locked(&e) => return crate::client::forward(&data),
        Err(e) => return Err(e),
    };
    crate::cmd::run_node(&omsyn_node::clock::service(repo), style, command, None)
}

/// `omsyn completions SHELL`: the completion script clap_complete makes from the definitions.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    // Into memory first: clap_complete panics on a failed write (`| head` closing the pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "omsyn", &mut script);
    std::io::Write::write_all(&mut std::io::stdout(), &script).context("writing the script")
}

/// `omsyn man`: the manual page clap_mangen renders from the definitions (the commands with
/// their one-line help; `omsyn COMMAND --help` says the rest).
fn man_page() -> Result<()> {
    let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
    let mut out = Vec::new();
    page.render(&mut out).context("rendering the man page")?;
    std::io::Write::write_all(&mut std::io::stdout(), &out).context("writing the man page")
}

fn init(data: &Path, json: bool, args: &InitArgs, key_file: Option<&Path>) -> Result<()> {
    let rng = &mut omsyn_node::clock::rng();
    let role = match args.role {
        RoleArg::Base => Role::Base,
        RoleArg::Nurse => Role::Nurse,
        RoleArg::HomeUnit => Role::HomeUnit,
    };
    let profile = NewNode {
        role,
        name: args.name.clone(),
        staff_id: args.staff_id.clone(),
        patient: args.patient.clone(),
        zone: args.zone.clone(),
    }
    .profile()
    .flagged()?;
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
        &crate::output::node_json(&repo.id(), repo.profile(), json!({ "data": data })),
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
