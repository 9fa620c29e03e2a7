//! The command-line client's side of "one data directory, one truth": forwarding a command to
//! the `omsyn run` that holds the directory ([`forward`]), the request and answer on the socket,
//! and what a command sees of the user who typed it — working directory, standard input,
//! terminal — whether it runs in this process or was forwarded to the daemon (the daemon side is
//! `control`).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::output::Captured;

const SOCKET: &str = "omsyn.sock";
/// Largest forwarded request accepted: the command line plus standard input (an export file piped
/// in; the socket is the owner's alone).
pub(crate) const MAX_REQUEST_BYTES: u64 = 128 * 1024 * 1024;
/// Largest standard input forwarded (base64 makes it 4/3 of this in the request).
const MAX_STDIN_BYTES: u64 = MAX_REQUEST_BYTES / 4 * 3 - 1024 * 1024;
/// Largest answer read back: text output plus an export written to stdout (an export file is at
/// most `omsyn_core::exchange::MAX_DOCUMENT_BYTES` per document; whole-store exports to stdout
/// larger than this need a FILE).
const MAX_REPLY_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Request {
    pub(crate) args: Vec<String>,
    /// The client's working directory.
    #[serde(default)]
    pub(crate) cwd: Option<PathBuf>,
    /// The client's standard input, base64, when an argument is `-`.
    #[serde(default)]
    pub(crate) stdin: Option<String>,
    /// Whether the client's standard output is a terminal.
    #[serde(default)]
    pub(crate) stdout_terminal: bool,
}

/// What a forwarded command sees of its client (set for the thread running it).
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Option<Vec<u8>>,
    pub(crate) stdout_terminal: bool,
}

thread_local! {
    static CLIENT: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
}

/// The forwarded client of the command running on this thread, for as long as the scope lives.
/// Blocking-pool threads are reused: dropping the scope (a panic included) clears it, so the next
/// job never sees this client's directory or stdin.
pub(crate) struct ClientScope;

impl ClientScope {
    pub(crate) fn enter(client: Client) -> ClientScope {
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

/// Reads a file the user named (relative to the user's directory), or standard input for `-`.
pub(crate) fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        if let Some(forwarded) = forwarded_stdin() {
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

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Response {
    pub(crate) output: Captured,
    pub(crate) code: i32,
}

pub(crate) fn socket_path(data: &Path) -> PathBuf {
    data.join(SOCKET)
}

/// This process's arguments as text, as they travel to the daemon: a path that is no UTF-8
/// (legal on Linux) is refused with a reason instead of a panic.
fn command_line(data: &Path) -> Result<Vec<String>> {
    std::env::args_os()
        .skip(1)
        .map(|a| {
            a.into_string().map_err(|a| {
                anyhow::anyhow!(
                    "argument {a:?} is not UTF-8 text: while `omsyn run` serves {}, give it in UTF-8",
                    data.display()
                )
            })
        })
        .collect()
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
    let args = command_line(data)?;
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
