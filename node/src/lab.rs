//! Machines for tests and field benchmarks: network namespaces (root, iproute2) with real,
//! non-loopback addresses on veth links, and long-running `omsyn` processes inside them whose
//! output is read by threads of their own, so every wait on a process has a timeout.
//!
//! Shared by `omsyn bench field` and the integration tests (which include this file by path, so
//! it uses nothing but std and serde_json).

#![allow(dead_code)] // Each includer uses its own part.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Makes every namespace and interface name unique among the hosts of this process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A network namespace: a machine of its own, with only loopback until it is wired. Removed when
/// dropped.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    /// The `omsyn` binary started inside it.
    program: PathBuf,
}

impl Host {
    pub(crate) fn new(tag: &str, program: &Path) -> Result<Host, String> {
        let host = Host {
            name: format!("{tag}-{}-{}", std::process::id(), unique()),
            program: program.to_owned(),
        };
        ip(&["netns", "add", &host.name])?;
        host.ip(&["link", "set", "lo", "up"])?;
        Ok(host)
    }

    /// Runs `ip` inside this host.
    pub(crate) fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// `omsyn ARGS` inside this host.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(&self.program)
            .args(args);
        command
    }

    /// Starts a long-running `omsyn` inside this host; see [`Process`].
    pub(crate) fn start(&self, args: &[&str], log: &str) -> Result<Process, String> {
        let mut command = self.command(args);
        command.env("OMSYN_LOG", log);
        Process::start(command)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects two hosts with a veth pair and gives each end its addresses (CIDR, IPv4 or IPv6;
/// IPv6 ones skip duplicate detection, which would keep them unusable for a second or two).
pub(crate) fn wire(a: &Host, a_addrs: &[&str], b: &Host, b_addrs: &[&str]) -> Result<(), String> {
    let n = unique();
    let (a_if, b_if) = (format!("va{n}"), format!("vb{n}"));
    ip(&[
        "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
        &b.name,
    ])?;
    for (host, iface, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                host.ip(&["-6", "addr", "add", addr, "dev", iface, "nodad"])?;
            } else {
                host.ip(&["addr", "add", addr, "dev", iface])?;
            }
        }
        host.ip(&["link", "set", iface, "up"])?;
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<(), String> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .map_err(|e| format!("running iproute2's `ip`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("ip {args:?} failed (network namespaces need root)"))
    }
}

/// A long-running process (`omsyn run`, `relay`, `bench link`) whose first stdout line is JSON.
/// Killed with SIGKILL when dropped.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) first_line: Value,
    stdin: Option<ChildStdin>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<(Instant, String)>,
    /// Every line of its log read so far, for a report when something goes wrong.
    pub(crate) log: Vec<(Instant, String)>,
    /// Longest any wait on the process lasts.
    pub(crate) patience: Duration,
}

/// Sends every line `stream` yields into a channel, from a thread of its own.
fn lines_of<T: Send + 'static>(
    stream: impl Read + Send + 'static,
    wrap: impl Fn(String) -> T + Send + 'static,
) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(wrap(line)).is_err() {
                return;
            }
        }
    });
    rx
}

impl Process {
    /// Longest any wait lasts by default: far beyond what the slowest step takes on a loaded
    /// machine, so that reaching it means the awaited thing is not going to happen.
    pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

    /// Starts `command` and waits for its first line of output, which must be JSON.
    pub(crate) fn start(command: Command) -> Result<Process, String> {
        let mut process = Process::spawn(command)?;
        process.first_line = process.next_json()?;
        Ok(process)
    }

    /// Starts `command`.
    pub(crate) fn spawn(mut command: Command) -> Result<Process, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {command:?}: {e}"))?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err("no pipes to the process".into());
        };
        Ok(Process {
            stdin: child.stdin.take(),
            child,
            first_line: Value::Null,
            stdout: lines_of(out, |l| l),
            stderr: lines_of(err, |l| (Instant::now(), l)),
            log: Vec::new(),
            patience: Process::PATIENCE,
        })
    }

    /// Everything the process logged so far.
    pub(crate) fn drain_log(&mut self) -> &[(Instant, String)] {
        self.log.extend(self.stderr.try_iter());
        &self.log
    }

    /// Everything the process prints on stdout until it closes it (it ends).
    pub(crate) fn rest_of_stdout(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + self.patience;
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(out),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the process did not end within {:?}",
                        self.patience
                    ));
                }
            }
        }
    }

    /// The next line the process prints on stdout, as JSON.
    pub(crate) fn next_json(&mut self) -> Result<Value, String> {
        let line = self.stdout.recv_timeout(self.patience).map_err(|e| {
            let log: Vec<String> = self.stderr.try_iter().map(|(_, l)| l).collect();
            let log = [self.log.iter().map(|(_, l)| l.clone()).collect(), log].concat();
            format!("no output from the process ({e}); its log: {log:#?}")
        })?;
        serde_json::from_str(&line).map_err(|e| format!("it printed {line:?} ({e})"))
    }

    /// Writes one line to the process's standard input (the link proxy's commands).
    pub(crate) fn say(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to the process: {e}"))
    }

    /// Waits until the process logs a line containing `needle` (an event, not a timer), at most
    /// [`Process::patience`]; returns the line and when it was read.
    pub(crate) fn wait_for_log(&mut self, needle: &str) -> Result<(Instant, String), String> {
        self.wait_for(|line| line.contains(needle))
            .map_err(|e| format!("{e} ({needle:?})"))
    }

    /// Waits until the process logs a line `wanted` accepts, at most [`Process::patience`].
    pub(crate) fn wait_for(
        &mut self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(Instant, String), String> {
        let deadline = Instant::now() + self.patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok((at, line)) => {
                    self.log.push((at, line.clone()));
                    if wanted(&line) {
                        return Ok((at, line));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the line awaited was not logged within {:?}",
                        self.patience
                    ));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the process exited before logging the line awaited".into());
                }
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to its end, killing it if that takes longer than `limit`.
pub(crate) fn output_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {command:?}: {e}"))?;
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| format!("{command:?}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            Err(format!("{command:?} did not finish within {limit:?}"))
        }
    }
}

/// The number a log line gives `field` (`field=123`).
pub(crate) fn logged(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!("{field}="))?;
    line[at + field.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
