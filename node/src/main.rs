//! `omsyn`: the command-line front end of an Omsyn node.
//!
//! **Boundary:** this binary owns the clock, the OS random number generator, the terminal and (with
//! the Sync work) the network. It converts user input to omsyn-core types at the edge and never
//! touches Automerge or redb directly.

mod bench;
mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(json, &err);
            ExitCode::FAILURE
        }
    }
}
