//! Hosts for tests where addressing matters: network namespaces (root, iproute2) with real,
//! non-loopback addresses on veth links, `omsyn` processes started inside them, and the bad-link
//! proxy (`omsyn bench link`) between them. A namespace is removed when its `Host` is dropped.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::cli::Node;
use super::network::{Daemon, WAIT};

/// Makes every namespace and interface name unique among the tests running at once.
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A network namespace: a machine of its own, with only loopback until it is wired.
pub(crate) struct Host {
    pub(crate) name: String,
}

impl Host {
    pub(crate) fn new(tag: &str) -> Host {
        let host = Host {
            name: format!("{tag}-{}-{}", std::process::id(), unique()),
        };
        ip(&["netns", "add", &host.name]);
        host.ip(&["link", "set", "lo", "up"]);
        host
    }

    /// Runs `ip` inside this host.
    pub(crate) fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `omsyn ARGS` inside this host.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_omsyn")])
            .args(args);
        command
    }

    /// `omsyn --json --data NODE ARGS` inside this host; asserts success within [`WAIT`].
    pub(crate) fn ok(&self, node: &Node, args: &[&str]) -> Value {
        let out = self.run(node, args);
        assert!(
            out.status.success(),
            "omsyn {args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "omsyn {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `omsyn --json --data NODE ARGS` inside this host, whatever its outcome, within [`WAIT`].
    pub(crate) fn run(&self, node: &Node, args: &[&str]) -> Output {
        let mut all = vec!["--json", "--data", node.path().to_str().unwrap()];
        all.extend_from_slice(args);
        output_within(self.command(&all), WAIT)
    }

    /// Starts a long-running `omsyn` inside this host.
    pub(crate) fn daemon(&self, args: &[&str]) -> Daemon {
        Daemon::start(self.command(args))
    }

    /// `omsyn run` for `node` inside this host, listening on `listen`, with `extra` arguments.
    pub(crate) fn serve(&self, node: &Node, listen: &str, extra: &[&str]) -> Daemon {
        let data = node.path().to_str().unwrap();
        let mut args = vec![
            "--json",
            "--data",
            data,
            "run",
            "--no-mdns",
            "--listen",
            listen,
        ];
        args.extend_from_slice(extra);
        self.daemon(&args)
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
pub(crate) fn wire(a: &Host, a_addrs: &[&str], b: &Host, b_addrs: &[&str]) {
    let n = unique();
    let (a_if, b_if) = (format!("va{n}"), format!("vb{n}"));
    ip(&[
        "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
        &b.name,
    ]);
    for (host, iface, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
        for addr in addrs {
            if addr.contains(':') {
                host.ip(&["-6", "addr", "add", addr, "dev", iface, "nodad"]);
            } else {
                host.ip(&["addr", "add", addr, "dev", iface]);
            }
        }
        host.ip(&["link", "set", iface, "up"]);
    }
}

/// The bad link: `omsyn bench link` inside `host`, listening on `listen` and forwarding to `to`,
/// with `impairment` (its flags, e.g. `["--loss", "0.1"]`). Commands go to it with `say`.
pub(crate) fn link(host: &Host, listen: &str, to: &str, impairment: &[&str]) -> Daemon {
    let mut args = vec!["--json", "bench", "link", "--listen", listen, "--to", to];
    args.extend_from_slice(impairment);
    host.daemon(&args)
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 `ip` is installed");
    assert!(
        status.success(),
        "ip {args:?} failed (these tests need root)"
    );
}

/// Runs `command` to its end, killing it and failing the test if that takes longer than `limit`.
pub(crate) fn output_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{command:?} did not finish within {limit:?}");
        }
    }
}
