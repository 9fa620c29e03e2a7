//! Hosts for tests where addressing matters (see `lab`, shared with `omsyn bench field`): these
//! wrappers fail the test on any error.

use std::process::Output;

use serde_json::Value;

use super::cli::Node;
use super::lab;
use super::network::Daemon;

/// A network namespace; removed when dropped.
pub(crate) struct Host(lab::Host);

impl Host {
    pub(crate) fn new(tag: &str) -> Host {
        let program = std::path::Path::new(env!("CARGO_BIN_EXE_omsyn"));
        Host(lab::Host::new(tag, program).unwrap())
    }

    /// Runs `ip` inside this host.
    pub(crate) fn ip(&self, args: &[&str]) {
        self.0.ip(args).unwrap();
    }

    /// `omsyn ARGS` inside this host.
    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        self.0.command(args)
    }

    /// `omsyn --json --data NODE ARGS` inside this host; asserts success.
    pub(crate) fn ok(&self, node: &Node, args: &[&str]) -> Value {
        let out = self.run(node, args);
        assert!(
            out.status.success(),
            "omsyn {args:?} in {} failed: {}",
            self.0.name,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "omsyn {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `omsyn --json --data NODE ARGS` inside this host, whatever its outcome.
    pub(crate) fn run(&self, node: &Node, args: &[&str]) -> Output {
        let mut all = vec!["--json", "--data", node.path().to_str().unwrap()];
        all.extend_from_slice(args);
        lab::output_within(self.command(&all), lab::Process::PATIENCE).unwrap()
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

/// Connects two hosts with a veth pair and gives each end its addresses (CIDR).
pub(crate) fn wire(a: &Host, a_addrs: &[&str], b: &Host, b_addrs: &[&str]) {
    lab::wire(&a.0, a_addrs, &b.0, b_addrs).unwrap();
}

/// The bad link: `omsyn bench link` inside `host`, listening on `listen` and forwarding to `to`,
/// with `impairment` (its flags, e.g. `["--loss", "0.1"]`). Commands go to it with `say`.
pub(crate) fn link(host: &Host, listen: &str, to: &str, impairment: &[&str]) -> Daemon {
    Daemon::start(host.command(&link_args(listen, to, impairment)))
}

/// [`link`], logging every datagram it is given (its way, size and fate): see [`Datagram`].
pub(crate) fn link_logging_datagrams(
    host: &Host,
    listen: &str,
    to: &str,
    impairment: &[&str],
) -> Daemon {
    let command = host.command(&link_args(listen, to, impairment));
    Daemon::start_logging(command, "info,omsyn::link=debug")
}

fn link_args<'a>(listen: &'a str, to: &'a str, impairment: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "bench", "link", "--listen", listen, "--to", to];
    args.extend_from_slice(impairment);
    args
}

/// A datagram as the link logged it when it came in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Datagram {
    /// Seconds into the day by the link's log clock.
    pub(crate) at: f64,
    /// From the dialling side (the client) to the side it dials.
    pub(crate) to_server: bool,
    pub(crate) bytes: u64,
    /// Bytes of the datagram in 0-RTT packets: data the client sent before the server could
    /// answer, as the packets' clear-text headers say (the link logs each datagram's packets).
    pub(crate) zero_rtt: u64,
}

impl Datagram {
    /// The datagram a line of [`link_logging_datagrams`]'s log tells of, if it tells of one.
    pub(crate) fn parse(line: &str) -> Option<Datagram> {
        if !line.contains(" datagram ") {
            return None;
        }
        // `2026-12-02T06:19:43.253180Z DEBUG omsyn::link: datagram way="to_server" bytes=1200 …`
        let clock = line.split_once('T')?.1.split_once('Z')?.0;
        let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(Datagram {
            at: h * 3600.0 + m * 60.0 + s,
            to_server: line.contains("way=\"to_server\""),
            bytes: lab::logged(line, "bytes")?,
            zero_rtt: packets_of(line, "0rtt"),
        })
    }
}

/// The bytes of the packets of `kind` in a datagram's logged `packets="initial:1162,0rtt:38"`.
fn packets_of(line: &str, kind: &str) -> u64 {
    let Some((_, rest)) = line.split_once("packets=\"") else {
        return 0;
    };
    let list = rest.split('"').next().unwrap_or_default();
    list.split(',')
        .filter_map(|p| p.split_once(':'))
        .filter(|(k, _)| *k == kind)
        .filter_map(|(_, n)| n.parse::<u64>().ok())
        .sum()
}
