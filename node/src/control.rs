//! One data directory, one truth: while `omsyn run` serves a data directory it holds the store's
//! lock, so every other `omsyn` command for that directory is forwarded to the daemon over a Unix
//! socket in the directory (`omsyn.sock`, mode 0600: only the owner may connect) and run there,
//! against the same open store. The user sees the same output and exit code either way.
//!
//! The command runs in the daemon's process, so what it reads from the user's side travels with
//! it: the client's working directory (relative paths are the user's, see [`user_path`]) and,
//! when an argument is `-`, its standard input.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use omsyn_core::service::Service;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tracing::warn;

use crate::cli::{Cli, Command};
use crate::net::daemon::Shared;
use crate::output::{self, Captured};

const SOCKET: &str = "omsyn.sock";
/// Largest forwarded request accepted: the command line plus standard input (an export file piped
/// in; the socket is the owner's alone).
const MAX_REQUEST_BYTES: u64 = 128 * 1024 * 1024;
/// Largest standard input forwarded (base64 makes it 4/3 of this in the request).
const MAX_STDIN_BYTES: u64 = MAX_REQUEST_BYTES / 4 * 3 - 1024 * 1024;
/// Largest answer read back: text output plus an export written to stdout (an export file is at
/// most `omsyn_core::exchange::MAX_DOCUMENT_BYTES` per document; whole-store exports to stdout
/// larger than this need a FILE).
const MAX_REPLY_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Request {
    args: Vec<String>,
    /// The client's working directory.
    #[serde(default)]
    cwd: Option<PathBuf>,
    /// The client's standard input, base64, when an argument is `-`.
    #[serde(default)]
    stdin: Option<String>,
    /// Whether the client's standard output is a terminal.
    #[serde(default)]
    stdout_terminal: bool,
}

/// What a forwarded command sees of its client (set for the thread running it).
#[derive(Debug, Clone, Default)]
struct Client {
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    stdout_terminal: bool,
}

thread_local! {
    static CLIENT: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
}

/// The forwarded client of the command running on this thread, for as long as the scope lives.
/// Blocking-pool threads are reused: dropping the scope (a panic included) clears it, so the next
/// job never sees this client's directory or stdin.
struct ClientScope;

impl ClientScope {
    fn enter(client: Client) -> ClientScope {
        CLIENT.with(|c| *c.borrow_mut() = Some(client));
        ClientScope
    }
}

impl Drop for ClientScope {
    fn drop(&mut self) {
        CLIENT.with(|c| *c.borrow_mut() = None);
    }
}

/// A path the user typed: relative to the client's working directory when the command was
/// forwarded to the daemon (whose own working directory is unrelated), as given otherwise.
pub(crate) fn user_path(path: &Path) -> PathBuf {
    CLIENT.with(|c| match c.borrow().as_ref().and_then(|c| c.cwd.as_ref()) {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_owned(),
    })
}

/// Whether the user's standard output is a terminal (the forwarded client's, if forwarded).
pub(crate) fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal;
    CLIENT.with(|c| match c.borrow().as_ref() {
        Some(client) => client.stdout_terminal,
        None => std::io::stdout().is_terminal(),
    })
}

/// The forwarded client's standard input, if the command was forwarded (`None` otherwise: read
/// this process's own).
pub(crate) fn forwarded_stdin() -> Option<Vec<u8>> {
    CLIENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|c| c.stdin.clone().unwrap_or_default())
    })
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Response {
    output: Captured,
    code: i32,
}

pub(crate) fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET)
}

/// Client side: forwards this process's command line to the daemon serving `data`, prints what it
/// printed, and exits with its exit code.
pub(crate) fn forward(data: &Path) -> Result<()> {
    let path = socket_path(data);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).with_context(|| {
        format!(
            "{} is in use by another omsyn process, which does not answer on {}",
            data.display(),
            path.display()
        )
    })?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Only a piped stdin is sent along: `--text -` typed at a terminal must not wait for input.
    let piped = !std::io::IsTerminal::is_terminal(&std::io::stdin());
    let stdin = if piped && args.iter().any(|a| a == "-") {
        use base64::Engine;
        let mut buf = Vec::new();
        std::io::stdin()
            .take(MAX_STDIN_BYTES + 1)
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        if buf.len() as u64 > MAX_STDIN_BYTES {
            anyhow::bail!(
                "stdin is over {} MiB: while `omsyn run` serves {}, give a file instead of -",
                MAX_STDIN_BYTES >> 20,
                data.display()
            );
        }
        Some(base64::engine::general_purpose::STANDARD.encode(buf))
    } else {
        None
    };
    let request = Request {
        args,
        cwd: std::env::current_dir().ok(),
        stdin,
        stdout_terminal: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    stream
        .write_all(&line)
        .context("sending the command to the daemon")?;
    let mut reply = String::new();
    BufReader::new(stream.take(MAX_REPLY_BYTES))
        .read_line(&mut reply)
        .context("reading the daemon's answer")?;
    let response: Response =
        serde_json::from_str(&reply).context("the daemon's answer is malformed")?;
    print!("{}", response.output.stdout);
    eprint!("{}", response.output.stderr);
    if let Some(binary) = &response.output.binary {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(binary)
            .context("the daemon's answer is malformed")?;
        std::io::stdout()
            .write_all(&bytes)
            .context("writing to stdout")?;
    }
    let _ = std::io::stdout().flush();
    std::process::exit(response.code);
}

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
) -> Result<()> {
    let mut clients = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = listener.accept().await?;
        while clients.try_join_next().is_some() {}
        let (shared, service) = (shared.clone(), service.clone());
        clients.spawn(async move {
            if let Err(e) = answer(stream, shared, service).await {
                warn!(error = format!("{e:#}"), "control client failed");
            }
        });
    }
}

async fn answer(
    stream: tokio::net::UnixStream,
    shared: Shared,
    service: Arc<Service>,
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
        run_forwarded(request.args, &shared, &service)
    })
    .await?;
    let mut bytes = serde_json::to_vec(&response)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    Ok(())
}

fn run_forwarded(args: Vec<String>, shared: &Shared, service: &Arc<Service>) -> Response {
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
    let style = crate::cmd::Style::of(&cli);
    let (result, output) = output::capture(|| {
        let result = match cli.command {
            Command::Node(command) => crate::cmd::run_node(service, style, command, Some(shared)),
            Command::Check { repair } => crate::check::check_open(&shared.repo, json, repair),
            _ => Err(anyhow::anyhow!("this command cannot run inside the daemon")),
        };
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
