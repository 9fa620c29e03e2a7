//! `omsyn`: the command-line front end of an Omsyn node.
//!
//! **Boundary:** this binary owns the clock, the OS random number generator, the terminal and (with
//! the Sync work) the network. It converts user input to omsyn-core types at the edge and never
//! touches Automerge or redb directly.

#[macro_use]
mod output;

mod bench;
mod bench_base;
mod bench_copy;
mod bench_field;
mod bench_plan;
mod bench_report;
mod bench_sync;
mod bench_tables;
mod check;
mod cli;
mod client;
mod cmd;
mod commands;
mod control;
mod demo;
mod http;
mod lab;
mod link;
mod open;
mod plan_suggest;
mod quic_wire;
mod serve;

use std::process::ExitCode;

use omsyn_node::net;

use clap::Parser;

fn main() -> ExitCode {
    quiet_storage_panics();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(&e),
    };
    // The daemon logs what it does; the demo tells its own story and keeps the log quiet.
    // Automerge logs every document it refuses to load; our errors say so, with the remedy.
    let default_filter = match cli.command {
        cli::Command::Demo { .. } | cli::Command::Bench(_) => "off",
        _ => "warn,omsyn=info,automerge=off",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OMSYN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let json = cli.json;
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(json, &err);
            ExitCode::FAILURE
        }
    }
}

/// Arguments clap refused (or `--help`/`--version`, which clap reports the same way): its
/// message on stderr, and — with `--json` anywhere on the line — the JSON error document on
/// stdout that every other failure gives.
fn argument_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !informational && std::env::args_os().any(|a| a == "--json") {
        // The message up to clap's usage lines, on one line.
        let rendered = e.render().to_string();
        let message: Vec<&str> = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        let message = message.join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        output::print_line(&serde_json::json!({ "error": message }).to_string());
    }
    let _ = e.print();
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// omsyn-core contains panics that redb raises on store pages damaged outside redb and reports
/// them as errors; the default hook would still print a backtrace-style message first. Keep one
/// short line for those, and the default report for anything else (a real bug).
fn quiet_storage_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info.location().is_some_and(|l| l.file().contains("/redb-"));
        // omsyn-planner contains the solver's panics too: the greedy plan stands in, and the
        // suggestion says so.
        let in_solver = info
            .location()
            .is_some_and(|l| l.file().contains("/vrp-core-") || l.file().contains("/rosomaxa-"));
        if in_redb {
            eprintln!("note: the store file is damaged (detected inside redb); details follow");
        } else if in_solver {
            eprintln!("note: the planning solver stopped ({info}); the greedy planner stands in");
        } else {
            default(info);
        }
    }));
}
