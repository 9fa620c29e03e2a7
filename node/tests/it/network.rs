//! Nodes syncing over real iroh endpoints on loopback: real processes, real redb files, a real
//! relay server, SIGKILL. Completion is observed through events (a process's output line, a
//! one-shot `omsyn sync` returning when both sides are caught up), never through sleeps.

use std::process::{Command, Stdio};

use serde_json::Value;

use super::cli::{Node, str_of};
use super::lab::Process;
use super::netlab::Host;

/// A running `omsyn run` (or `omsyn relay`, or `omsyn bench link`), killed with SIGKILL when
/// dropped. Every wait on it fails the test after [`Process::PATIENCE`].
pub(crate) struct Daemon(Process);

impl std::ops::Deref for Daemon {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Daemon {
    pub(crate) fn spawn(args: &[&str]) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_omsyn"));
        command.args(args);
        Daemon::start(command)
    }

    pub(crate) fn start(command: Command) -> Daemon {
        Daemon::start_logging(command, "info")
    }

    /// Starts `command` with the log filter `filter` (`OMSYN_LOG`).
    pub(crate) fn start_logging(mut command: Command, filter: &str) -> Daemon {
        command.env("OMSYN_LOG", filter);
        Daemon(Process::start(command).unwrap())
    }

    pub(crate) fn run(node: &Node, extra: &[&str]) -> Daemon {
        let mut args = vec![
            "--json",
            "--data",
            node.path().to_str().unwrap(),
            "run",
            "--listen",
            "127.0.0.1:0",
            "--no-mdns",
        ];
        args.extend_from_slice(extra);
        Daemon::spawn(&args)
    }

    pub(crate) fn ticket(&self) -> String {
        str_of(&self.first_line, "ticket").to_owned()
    }

    /// Blocks until the daemon logs a line containing `needle` (an event, not a timer); returns
    /// the line.
    pub(crate) fn wait_for_log(&mut self, needle: &str) -> String {
        self.0.wait_for_log(needle).unwrap().1
    }

    /// Every line it logged so far, with how long before now each came: what a failed timing
    /// assertion shows.
    pub(crate) fn log_text(&mut self) -> String {
        let now = std::time::Instant::now();
        self.0
            .drain_log()
            .iter()
            .map(|(at, line)| format!("{:>8.3}s ago {line}", (now - *at).as_secs_f64()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The next JSON line on its stdout.
    pub(crate) fn next_json(&mut self) -> Value {
        self.0.next_json().unwrap()
    }

    /// Writes a line to its stdin.
    pub(crate) fn say(&mut self, line: &str) {
        self.0.say(line).unwrap();
    }
}

fn sync_args<'a>(ticket: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "sync",
        "--peer",
        ticket,
        "--listen",
        "127.0.0.1:0",
        "--no-mdns",
    ];
    args.extend_from_slice(extra);
    args
}

pub(crate) fn sync(node: &Node, ticket: &str, extra: &[&str]) -> Value {
    node.ok(&sync_args(ticket, extra))
}

/// A sync that must fail; returns its stderr.
pub(crate) fn sync_fails(node: &Node, ticket: &str) -> String {
    node.fails(&sync_args(ticket, &[]))
}

fn journal_len(node: &Node, patient: &str) -> usize {
    node.ok(&["show", "--patient", patient])["journal"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn two_nodes_sync_directly_and_cli_commands_work_while_the_daemon_serves() {
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Turid Nilsen", "S1");
    let daemon = Daemon::run(&base, &[]);
    // The daemon holds the store; these commands are answered by it.
    let second = base.add_patient("Egil Haugen", "S1");
    assert_eq!(
        base.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let nurse = Node::new("nurse", "Kari", "S1");
    // Enrolled while the daemon serves: approving is answered by the daemon too.
    base.enroll(&nurse);
    let summary = sync(&nurse, &daemon.ticket(), &[]);
    assert_eq!(summary["caught_up"], true);
    assert_eq!(summary["stats"]["docs_received"], 2);
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    nurse.ok(&[
        "note",
        "add",
        "--patient",
        &patient,
        "--text",
        "Dokumentert uten nett",
    ]);
    nurse.ok(&["note", "add", "--patient", &second, "--text", "Alt vel"]);
    let summary = sync(&nurse, &daemon.ticket(), &[]);
    // The two journals, and the nurse's access log of writing them.
    assert_eq!(summary["stats"]["docs_sent"], 3);
    assert_eq!(journal_len(&base, &patient), 1, "the note reached the base");
    let status = base.ok(&["status"]);
    assert_eq!(status["peers"].as_array().unwrap().len(), 1);
}

#[test]
fn notes_reach_the_base_through_a_home_unit_the_nurse_met() {
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Tor Lund", "S2");
    let home = Node::home_unit("Hjemme hos Tor", &patient);
    let nurse = Node::new("nurse", "Ola", "S2");
    base.enroll(&home);
    base.enroll(&nurse);
    let base_daemon = Daemon::run(&base, &[]);
    let home_daemon = Daemon::run(&home, &[]);
    // Both got the day's records from the base in the morning.
    sync(&home, &base_daemon.ticket(), &[]);
    sync(&nurse, &base_daemon.ticket(), &[]);
    nurse.ok(&[
        "note",
        "add",
        "--patient",
        &patient,
        "--text",
        "Ingen dekning her",
    ]);
    // The nurse never meets the base: her note travels nurse → home unit → base.
    sync(&nurse, &home_daemon.ticket(), &[]);
    sync(&home, &base_daemon.ticket(), &[]);
    let view = base.ok(&["show", "--patient", &patient]);
    let journal = view["journal"].as_array().unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        journal[0]["author"]["staff"], "S2",
        "the entry keeps its original author"
    );
}

/// A base and a nurse whose only path is the relay at `url` (no IP transports at all) converge,
/// in both directions. `extra` is passed to every node command (e.g. a private CA).
fn converge_through_relay(url: &str, extra: &[&str]) {
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Liv Dahl", "S1");
    let mut args = vec![
        "--json",
        "--data",
        base.path().to_str().unwrap(),
        "run",
        "--no-mdns",
        "--relay",
        url,
        "--relay-only",
    ];
    args.extend_from_slice(extra);
    let daemon = Daemon::spawn(&args);
    let ticket = daemon.ticket();
    assert!(
        !ticket.contains('@'),
        "a relay-only ticket carries no direct address: {ticket}"
    );
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let mut sync_args = vec![
        "sync",
        "--peer",
        &ticket,
        "--no-mdns",
        "--relay",
        url,
        "--relay-only",
    ];
    sync_args.extend_from_slice(extra);
    assert_eq!(nurse.ok(&sync_args)["caught_up"], true);
    nurse.ok(&["note", "add", "--patient", &patient, "--text", "via relé"]);
    nurse.ok(&sync_args);
    assert_eq!(journal_len(&base, &patient), 1);
    // The ticket alone is enough: a phone given no relay of its own dials the one it names.
    if extra.is_empty() {
        let text = ["--text", "bare billett"];
        nurse.ok(&[&["note", "add", "--patient", &patient][..], &text].concat());
        assert_eq!(
            nurse.ok(&["sync", "--peer", &ticket, "--no-mdns"])["caught_up"],
            true
        );
        assert_eq!(journal_len(&base, &patient), 2);
    }
}

#[test]
fn nodes_that_reach_each_other_only_through_a_relay_converge() {
    let relay = Daemon::spawn(&["--json", "relay", "--listen", "127.0.0.1:0"]);
    converge_through_relay(str_of(&relay.first_line, "relay"), &[]);
}

#[test]
fn a_nurse_killed_mid_sync_resumes_without_loss() {
    let base = Node::admin_base("Base", "K1");
    super::cli::populate(&base, 400);
    let mut daemon = Daemon::run(&base, &[]);
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let ticket = daemon.ticket();
    let mut child = nurse.command(&sync_args(&ticket, &[])).spawn().unwrap();
    // Kill the nurse as soon as the base sees the session start: mid-sync.
    daemon.wait_for_log("peer connected");
    child.kill().unwrap();
    child.wait().unwrap();
    // Her store opens (nothing half-written) and a new sync completes from where it was.
    let summary = sync(&nurse, &daemon.ticket(), &[]);
    assert_eq!(summary["caught_up"], true);
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        400
    );
    assert_eq!(nurse.ok(&["check"])["ok"], true);
}

#[test]
fn a_first_sync_tells_its_progress_while_documents_arrive() {
    let base = Node::admin_base("Base", "K1");
    super::cli::populate(&base, 300);
    let daemon = Daemon::run(&base, &[]);
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let out = nurse.run(&sync_args(&daemon.ticket(), &["--progress"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("received "))
        .collect();
    assert!(!progress.is_empty(), "no progress shown: {stderr}");
    assert!(
        progress.iter().all(|l| l.contains(" documents, ")),
        "{progress:?}"
    );
}

/// A base with one patient (Aud Moen, S1's), served by `omsyn run`; its ticket; and a runtime
/// for a raw client.
fn base_serving_one_patient() -> (Node, Daemon, String, tokio::runtime::Runtime) {
    let base = Node::admin_base("Base", "K1");
    base.add_patient("Aud Moen", "S1");
    let daemon = Daemon::run(&base, &[]);
    let ticket = daemon.ticket();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    (base, daemon, ticket, runtime)
}

#[test]
fn a_peer_sending_garbage_is_disconnected_and_the_node_keeps_serving() {
    let (base, _daemon, ticket, runtime) = base_serving_one_patient();
    let replies = runtime.block_on(async {
        let mut replies = Vec::new();
        for junk in [vec![0xffu8; 100], {
            let mut f = (64u32 * 1024 * 1024).to_le_bytes().to_vec();
            f.extend_from_slice(&[1, 2, 3]);
            f
        }] {
            replies.push(super::raw_client::send_raw(&ticket, &junk).await);
        }
        replies
    });
    assert!(
        replies[0].contains("malformed") || replies[0].contains("unknown message tag"),
        "{replies:?}"
    );
    assert!(replies[1].contains("exceeds the limit"), "{replies:?}");
    // An honest peer is still served.
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    assert_eq!(sync(&nurse, &ticket, &[])["caught_up"], true);
}

#[test]
fn a_sync_with_a_peer_that_answers_nothing_gives_up_after_its_idle_timeout() {
    let base = Node::admin_base("Base", "K1");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The peer's connection stays up (QUIC keeps it alive) but its session never says a word.
    let (_endpoint, ticket) = runtime.block_on(super::raw_client::silent_peer());
    let out = super::lab::output_within(
        nurse.command(&sync_args(&ticket, &["--idle-timeout", "2"])),
        std::time::Duration::from_secs(60),
    )
    .expect("omsyn sync gave up by itself");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    // Within the minute: the 1 s recheck of the peer's certificate must not push it back.
    assert!(stderr.contains("the peer sent nothing for 2 s"), "{stderr}");
}

#[test]
fn a_nurse_gets_only_her_patients_and_a_patient_joining_her_list_arrives_at_the_next_sync() {
    let base = Node::admin_base("Base", "K1");
    let mine = base.add_patient("Turid", "S1");
    let theirs = base.add_patient("Egil", "S9");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let daemon = Daemon::run(&base, &[]);
    sync(&nurse, &daemon.ticket(), &[]);
    let held = &nurse.ok(&["patient", "list"])["patients"];
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");
    assert_eq!(held[0]["id"], mine.as_str());
    // Egil joins her care team at the base (the daemon answers): unchanged documents follow.
    base.ok(&["team", "--patient", &theirs, "--add", "S1"]);
    sync(&nurse, &daemon.ticket(), &[]);
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_demo_converges_and_reports_both_conflicts() {
    let out = Command::new(env!("CARGO_BIN_EXE_omsyn"))
        .args(["--json", "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["converged"], true);
    let kinds: Vec<&str> = summary["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"dose-given-twice"), "{kinds:?}");
    assert!(
        kinds.contains(&"visit-performed-against-changed-plan"),
        "{kinds:?}"
    );
    let relayed = summary["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["via"] == "relay")
        .count();
    assert!(relayed > 0);
    let totals = &summary["day_report"]["totals"];
    assert_eq!(
        (
            totals["planned"].as_u64(),
            totals["done"].as_u64(),
            totals["missed"].as_u64()
        ),
        (Some(8), Some(7), Some(1))
    );
    let tasks: Vec<(&str, bool, bool)> = summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap(),
                t["escalated"] == true,
                t["done"].is_object(),
            )
        })
        .collect();
    assert!(
        tasks.contains(&("respond-to-alert", true, true)),
        "the alarm reached the base, which completed it: {tasks:?}"
    );
    assert!(
        tasks.contains(&("physical-visit", false, false)),
        "Liv's unanswered calls: {tasks:?}"
    );
}

/// A host of its own (a network namespace) with multicast on its loopback, nothing else.
fn mdns_host() -> Host {
    let host = Host::new("omsyn-mdns");
    host.ip(&["link", "set", "lo", "multicast", "on"]);
    host.ip(&["route", "add", "224.0.0.0/4", "dev", "lo"]);
    host
}

#[test]
fn two_nodes_find_each_other_by_mdns_with_no_peer_configured() {
    let ns = mdns_host();
    let base = Node::admin_base("Base", "K1");
    base.add_patient("Sigrid Berg", "S1");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let data = |n: &Node| n.path().to_str().unwrap().to_owned();
    let (bd, nd) = (data(&base), data(&nurse));
    let _base_daemon =
        Daemon::start(ns.command(&["--json", "--data", &bd, "run", "--listen", "127.0.0.1:0"]));
    let mut nurse_daemon =
        Daemon::start(ns.command(&["--json", "--data", &nd, "run", "--listen", "127.0.0.1:0"]));
    // Neither was given a peer: they meet through mDNS, then sync.
    nurse_daemon.wait_for_log("caught up");
    let held = &nurse.ok(&["patient", "list"])["patients"];
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");
}

#[test]
fn nodes_converge_through_an_https_relay_with_a_private_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("relay.pem"), dir.path().join("relay.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let relay = Daemon::spawn(&[
        "--json",
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    // The certificate names "localhost": reach the relay by that name.
    let url = str_of(&relay.first_line, "relay").replace("127.0.0.1", "localhost");
    assert!(url.starts_with("https://"), "{url}");
    converge_through_relay(&url, &["--relay-ca", cert.to_str().unwrap()]);
}

#[test]
fn a_daemon_keeps_a_configured_peer_in_sync_and_reconnects_after_it_restarts() {
    let base = Node::admin_base("Base", "K1");
    base.add_patient("Reidun Nilsen", "S1");
    let base_daemon = Daemon::run(&base, &[]);
    let ticket = base_daemon.ticket();
    let port = ticket.rsplit(':').next().unwrap().to_owned();
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let mut nurse_daemon = Daemon::spawn(&[
        "--json",
        "--data",
        nurse.path().to_str().unwrap(),
        "run",
        "--listen",
        "127.0.0.1:0",
        "--no-mdns",
        "--peer",
        &ticket,
    ]);
    nurse_daemon.wait_for_log("caught up");
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The base goes away (SIGKILL) and comes back on the same address: the nurse's daemon
    // reconnects on its own, with backoff, and catches up with what changed meanwhile.
    drop(base_daemon);
    nurse_daemon.wait_for_log("peer unreachable");
    base.add_patient("Harald Iversen", "S1");
    let listen = format!("127.0.0.1:{port}");
    let _base_again = Daemon::spawn(&[
        "--json",
        "--data",
        base.path().to_str().unwrap(),
        "run",
        "--listen",
        &listen,
        "--no-mdns",
    ]);
    nurse_daemon.wait_for_log("caught up");
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn forwarded_commands_use_the_users_directory_and_standard_streams() {
    use std::io::Write;
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Turid Nilsen", "S1");
    let _daemon = Daemon::run(&base, &[]);
    let elsewhere = tempfile::tempdir().unwrap();

    // A relative path is the user's, not the daemon's working directory.
    let out = base
        .command(&["--json", "export", "--patient", &patient, "turid.omsyn"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read(elsewhere.path().join("turid.omsyn")).unwrap();
    assert!(!file.is_empty());

    // A path that is no UTF-8 (legal on Linux) cannot travel to the daemon as text: refused with
    // a reason, not a panic, and nothing is written.
    let not_utf8 =
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"tur\xffid.omsyn");
    let out = base
        .command(&["export", "--patient", &patient])
        .arg(not_utf8)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not UTF-8"), "{err}");
    assert!(!elsewhere.path().join(not_utf8).exists());

    // An export to stdout reaches the user's stdout, byte for byte a valid export.
    let out = base
        .command(&["export", "--patient", &patient])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // And `-` reads the user's stdin: the piped export imports through the daemon.
    let mut import = base
        .command(&["--json", "import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let done = import.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let summary: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(summary["documents"], 1, "the patient record: {summary}");
    assert_eq!(summary["new_changes"], 0, "the base already held all of it");
}

#[test]
fn connections_that_never_say_hello_cannot_take_every_slot_from_an_enrolled_nurse() {
    let (base, _daemon, ticket, runtime) = base_serving_one_patient();
    // As many connections as the node serves peers, each by a fresh key, none saying a word.
    let silent = runtime.block_on(super::raw_client::silent_connections(&ticket, 64));
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    assert_eq!(sync(&nurse, &ticket, &[])["caught_up"], true);
    // The node closed all but the newest few of them, saying why.
    let closed = silent
        .iter()
        .filter(|(_, conn)| conn.close_reason().is_some())
        .count();
    assert!(closed >= 64 - 16, "{closed} of 64 closed");
    drop(silent);
}

#[test]
fn a_connection_without_a_verified_hello_is_closed_when_its_time_is_up() {
    let base = Node::admin_base("Base", "K1");
    let mut command = Command::new(env!("CARGO_BIN_EXE_omsyn"));
    let data = base.path().to_str().unwrap().to_owned();
    command.args([
        "--json",
        "--data",
        &data,
        "run",
        "--listen",
        "127.0.0.1:0",
        "--no-mdns",
    ]);
    command.env("OMSYN_HELLO_LIMIT_MS", "1500");
    let mut daemon = Daemon::start(command);
    let ticket = daemon.ticket();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // One connection opens no stream; another sends the first byte of a frame, and no more.
    let (no_stream, stalled) = runtime.block_on(async {
        let held = super::raw_client::silent_connections(&ticket, 1).await;
        let stalled = super::raw_client::stalled_stream(&ticket).await;
        let minute = std::time::Duration::from_secs(60);
        let closed = |conn: iroh::endpoint::Connection| async move {
            let reason = tokio::time::timeout(minute, conn.closed()).await;
            format!(
                "{:?}",
                reason.expect("the node closed the connection within a minute")
            )
        };
        (
            closed(held[0].1.clone()).await,
            closed(stalled.1.clone()).await,
        )
    });
    let log = daemon.log_text();
    assert!(
        no_stream.contains("no stream in time"),
        "{no_stream}\n{log}"
    );
    assert!(
        stalled.contains("no verified Hello in time"),
        "{stalled}\n{log}"
    );
}

#[test]
fn thirty_nurses_syncing_with_a_base_at_once_are_each_served_and_none_is_closed_as_a_stranger() {
    const NURSES: usize = 30;
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Aud Moen", "S1");
    let mut daemon = Daemon::run(&base, &[]);
    let ticket = daemon.ticket();
    let nurses: Vec<Node> = (0..NURSES)
        .map(|i| {
            let nurse = Node::new("nurse", &format!("Sykepleier {i}"), "S1");
            base.enroll(&nurse);
            assert_eq!(sync(&nurse, &ticket, &[])["caught_up"], true);
            let text = format!("Stormnotat {i}");
            nurse.ok(&["note", "add", "--patient", &patient, "--text", &text]);
            nurse
        })
        .collect();
    // Every nurse's phone at once, as after a base's restart: more than the node holds
    // connections without a verified Hello, each with a shift to hand over.
    let running: Vec<std::process::Child> = nurses
        .iter()
        .map(|nurse| {
            let mut args = vec!["--json"];
            args.extend(sync_args(&ticket, &[]));
            nurse
                .command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in running.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "nurse {i}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            daemon.log_text()
        );
    }
    let shown = base.ok(&["show", "--patient", &patient]).to_string();
    for i in 0..NURSES {
        assert!(
            shown.contains(&format!("Stormnotat {i}\"")),
            "nurse {i}'s note"
        );
    }
    let log = daemon.log_text();
    assert!(!log.contains("showed no verified Hello"), "{log}");
}

#[test]
fn with_every_slot_taken_a_nurse_is_served_in_place_of_the_oldest_connection_without_a_hello() {
    let (base, _daemon, ticket, runtime) = base_serving_one_patient();
    let kari = Node::new("nurse", "Kari", "S1");
    base.enroll(&kari);
    let (secret, hello) = super::raw_client::enrolled_hello(kari.path());
    // Every session slot taken: 48 sessions whose Hello the node verified, then as many
    // connections by fresh keys, saying nothing, as it holds unverified.
    const VERIFIED: usize = 64 - 16;
    let (verified, silent) = runtime.block_on(async {
        let verified =
            super::raw_client::verified_sessions(&ticket, secret, &hello, VERIFIED).await;
        let silent = super::raw_client::silent_connections(&ticket, 16).await;
        (verified, silent)
    });
    let per = Node::new("nurse", "Per", "S1");
    base.enroll(&per);
    assert_eq!(sync(&per, &ticket, &[])["caught_up"], true);
    // The connection that had waited longest without a Hello made room, and only it.
    let closed: Vec<usize> = (silent.iter().enumerate())
        .filter(|(_, (_, conn))| conn.close_reason().is_some())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(closed, [0]);
    let reason = format!("{:?}", silent[0].1.close_reason());
    assert!(
        reason.contains("too many connections without a Hello"),
        "{reason}"
    );
    assert!(
        verified
            .iter()
            .all(|(conn, ..)| conn.close_reason().is_none())
    );
    drop((verified, silent));
}
