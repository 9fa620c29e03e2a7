//! One data directory, one truth: while `omsyn run` serves a data directory it holds the store's
//! lock, so every other `omsyn` command for that directory is forwarded to the daemon over a Unix
//! socket in the directory (`omsyn.sock`, mode 0600: only the owner may connect) and run there,
//! against the same open store. The user sees the same output and exit code either way.
//!
//! The command runs in the daemon's process, so what it reads from the user's side travels with
//! it: the client's working directory (relative paths are the user's, see [`user_path`]) and,
//! when an argument is `-`, its standard input.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use omsyn_core::service::Service;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::warn;

use crate::cli::Cli;
use crate::client::{Client, ClientScope, MAX_REQUEST_BYTES, Request, Response, socket_path};
use crate::net::daemon::Shared;
use crate::output::{self, Captured};

/// Runs a forwarded command line in the daemon: the CLI's dispatch, handed in by the command
/// that starts the daemon (so this module, which `omsyn run` needs, needs no command).
pub(crate) type Dispatch = fn(Cli, &Shared, &Arc<Service>) -> Result<()>;

/// Daemon side, first half: binds the socket. Done before the daemon announces itself, so a
/// command run right after `omsyn run` printed its ticket always finds the daemon answering.
pub(crate) fn bind(data: &Path) -> Result<tokio::net::UnixListener> {
    let path = socket_path(data);
    // We hold the store's lock, so a socket file left here is from a process that died.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)
        .with_context(|| format!("listening on {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(listener)
}

/// Daemon side, second half: answers forwarded commands until the task is dropped.
pub(crate) async fn serve(
    listener: tokio::net::UnixListener,
    shared: Shared,
    service: Arc<Service>,
    dispatch: Dispatch,
) -> Result<()> {
    let mut clients = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await?;
        while clients.try_join_next().is_some() {}
        let (shared, service) = (shared.clone(), service.clone());
        clients.spawn(async move {
            if let Err(e) = answer(stream, shared, service, dispatch).await {
                warn!(error = format!("{e:#}"), "control client failed");
            }
        });
    }
}

async fn answer(
    stream: tokio::net::UnixStream,
    shared: Shared,
    service: Arc<Service>,
    dispatch: Dispatch,
) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await?;
    let request: Request = serde_json::from_str(&line).context("malformed control request")?;
    let stdin = match request.stdin {
        Some(text) => {
            use base64::Engine;
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .context("malformed control request: stdin is not base64")?,
            )
        }
        None => None,
    };
    let client = Client {
        cwd: request.cwd,
        stdin,
        stdout_terminal: request.stdout_terminal,
    };
    let response = tokio::task::spawn_blocking(move || {
        let _client = ClientScope::enter(client);
        run_forwarded(request.args, &shared, &service, dispatch)
    })
    .await?;
    let mut bytes = serde_json::to_vec(&response)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    Ok(())
}

fn run_forwarded(
    args: Vec<String>,
    shared: &Shared,
    service: &Arc<Service>,
    dispatch: Dispatch,
) -> Response {
    let cli = match Cli::try_parse_from(std::iter::once("omsyn".to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            return Response {
                output: Captured {
                    stderr: e.render().to_string(),
                    ..Captured::default()
                },
                code: e.exit_code(),
            };
        }
    };
    let json = cli.json;
    let (result, output) = output::capture(|| {
        let result = dispatch(cli, shared, service);
        if let Err(e) = &result {
            output::error(json, e);
        }
        result
    });
    Response {
        output,
        code: if result.is_ok() { 0 } else { 1 },
    }
}
