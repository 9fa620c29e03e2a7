//! Nodes on machines of their own (network namespaces with real, non-loopback addresses), as in
//! the field: tickets dialled from another machine, and a rural link — delay, loss, duplication,
//! reordering, a path that dies — between a nurse's phone and the node she syncs with. Every
//! wait ends in an event (a process's output or exit) or fails after [`super::lab::Process::PATIENCE`].

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{Node, str_of};
use super::netlab::{Datagram, Host, link, link_logging_datagrams, wire};

/// A base with one patient in nurse S1's care team, and that nurse's phone, enrolled.
fn base_and_nurse() -> (Node, String, Node) {
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Turid Nilsen", "S1");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    (base, patient, nurse)
}

fn assert_names_no_wildcard(ticket: &str) {
    assert!(
        !ticket.contains("0.0.0.0") && !ticket.contains("[::]"),
        "a ticket names no address another machine cannot dial: {ticket}"
    );
}

/// The base serves on `listen` in one host; the nurse, in another, syncs with the printed ticket.
/// Returns the ticket.
fn reached_by_printed_ticket(listen: &str) -> String {
    let (home, phone) = (Host::new("omsyn-home"), Host::new("omsyn-phone"));
    wire(
        &home,
        &["10.7.0.1/24", "fd00:7::1/64"],
        &phone,
        &["10.7.0.2/24", "fd00:7::2/64"],
    );
    let (base, _, nurse) = base_and_nurse();
    let daemon = home.serve(&base, listen, &[]);
    let ticket = daemon.ticket();
    assert_names_no_wildcard(&ticket);
    // Asked for later (forwarded to the daemon), the ticket is the same.
    assert_eq!(str_of(&base.ok(&["ticket"]), "ticket"), ticket);
    let summary = phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    assert_eq!(summary["caught_up"], true, "{summary}");
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ticket
}

#[test]
fn a_node_listening_on_every_ipv4_interface_is_reached_by_its_printed_ticket_from_another_host() {
    let ticket = reached_by_printed_ticket("0.0.0.0:0");
    assert!(ticket.contains("@10.7.0.1:"), "{ticket}");
    assert!(
        !ticket.contains("fd00"),
        "an IPv4 socket is named by IPv4 addresses: {ticket}"
    );
}

#[test]
fn a_node_listening_on_every_ipv6_interface_is_reached_by_its_printed_ticket_from_another_host() {
    let ticket = reached_by_printed_ticket("[::]:0");
    assert!(ticket.contains("[fd00:7::1]:"), "{ticket}");
    assert!(
        !ticket.contains("10.7.0.1"),
        "an IPv6-only socket: {ticket}"
    );
}

#[test]
fn a_ticket_follows_the_interfaces_that_come_up_after_the_node_started() {
    let (home, phone) = (Host::new("omsyn-home"), Host::new("omsyn-phone"));
    let (base, _, nurse) = base_and_nurse();
    let daemon = home.serve(&base, "0.0.0.0:0", &[]);
    // Only loopback so far: the node says so rather than naming nothing or 0.0.0.0.
    let before = daemon.ticket();
    assert!(before.contains("@127.0.0.1:"), "{before}");
    // The home's Wi-Fi comes up.
    wire(&home, &["10.8.0.1/24"], &phone, &["10.8.0.2/24"]);
    let after = str_of(&base.ok(&["ticket"]), "ticket").to_owned();
    assert!(after.contains("@10.8.0.1:"), "{after}");
    assert!(
        !after.contains("127.0.0.1"),
        "loopback only when nothing else: {after}"
    );
    let summary = phone.ok(&nurse, &["sync", "--peer", &after, "--no-mdns"]);
    assert_eq!(summary["caught_up"], true, "{summary}");
}

#[test]
fn a_ticket_asked_for_without_a_running_node_names_the_ports_it_will_listen_on() {
    let (base, _, _) = base_and_nurse();
    let planned = base.ok(&[
        "ticket",
        "--listen",
        "0.0.0.0:4433",
        "--relay",
        "http://relay.example:3340",
    ]);
    let ticket = str_of(&planned, "ticket");
    assert_eq!(planned["served"], false);
    assert_names_no_wildcard(ticket);
    assert!(
        ticket.ends_with("?relay=http://relay.example:3340"),
        "{ticket}"
    );
    assert!(
        ticket.len() < 300,
        "short enough for a QR code: {} characters",
        ticket.len()
    );
    // With no port known, the ticket is the id (and relay) alone.
    let bare = base.ok(&["ticket"]);
    assert!(!str_of(&bare, "ticket").contains('@'), "{bare}");
}

/// Writes `n` notes of about 110 characters on `node` (not running), one transaction each, as a
/// nurse documents a shift offline.
fn write_shift(node: &Node, patient: &str, n: usize, tag: &str) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let repo = omsyn_core::Repo::open(node.path(), None, &mut rng).unwrap();
    let patient = omsyn_core::ids::PatientId::parse(patient).unwrap();
    let t = omsyn_core::Timestamp::parse("2026-11-23T09:00:00+01:00").unwrap();
    for i in 0..n {
        let text = format!(
            "{tag} {i:02}: Pasienten i god form, tatt medisiner, spist frokost. Sår på venstre legg stelt, ingen tegn til infeksjon."
        );
        repo.add_note(t, &mut rng, &patient, None, t, &text)
            .unwrap();
    }
}

fn journal(node: &Node, patient: &str) -> Vec<Value> {
    node.ok(&["show", "--patient", patient])["journal"]
        .as_array()
        .unwrap()
        .clone()
}

/// Asserts that `node` holds exactly `n` entries of `tag`, each once.
fn assert_holds_each_once(node: &Node, patient: &str, tag: &str, n: usize) {
    let entries = journal(node, patient);
    let texts: Vec<String> = entries
        .iter()
        .filter_map(|e| e["text"].as_str().or(e["body"]["text"].as_str()))
        .filter(|t| t.starts_with(tag))
        .map(str::to_owned)
        .collect();
    let distinct: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(texts.len(), n, "{tag}: {} entries", texts.len());
    assert_eq!(distinct.len(), n, "{tag}: an entry is in the journal twice");
    let ids: BTreeSet<&str> = entries.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), entries.len(), "an entry id appears twice");
}

/// A phone, a home (serving the base's data on 10.9.1.1:4433) and between them the link host,
/// whose proxy is the phone's only way to the home: (home, link host, phone).
pub(crate) fn rural_lab() -> (Host, Host, Host) {
    let (home, middle, phone) = (
        Host::new("omsyn-home"),
        Host::new("omsyn-link"),
        Host::new("omsyn-phone"),
    );
    wire(&home, &["10.9.1.1/24"], &middle, &["10.9.1.2/24"]);
    wire(&middle, &["10.9.2.1/24"], &phone, &["10.9.2.2/24"]);
    (home, middle, phone)
}

/// The ticket that reaches `node` through the proxy on the link host.
pub(crate) fn via_proxy(node: &Node) -> String {
    format!("omsyn1:{}@10.9.2.1:7000", node.id())
}

/// 150 ms each way (300 ms round trip), 10 % loss each way, some duplication and reordering, at
/// 1 Mbit/s: a rural mobile link.
const RURAL: [&str; 12] = [
    "--delay-ms",
    "150",
    "--loss",
    "0.1",
    "--duplicate",
    "0.02",
    "--reorder",
    "0.05",
    "--rate-kbit",
    "1000",
    "--seed",
    "14",
];

#[test]
fn a_shift_crosses_a_lossy_duplicating_reordering_link_whole_and_once() {
    let (home, middle, phone) = rural_lab();
    let (base, patient, nurse) = base_and_nurse();
    let _daemon = home.serve(&base, "10.9.1.1:4433", &[]);
    let _link = link(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &RURAL);
    let ticket = via_proxy(&base);
    // Morning: the phone takes her patients over the bad link.
    let morning = phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    assert_eq!(morning["caught_up"], true, "{morning}");
    // The shift, offline; meanwhile the base plans a second patient for her.
    write_shift(&nurse, &patient, 60, "Vakt");
    let second = base.add_patient("Egil Haugen", "S1");
    let evening = phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    assert_eq!(evening["caught_up"], true, "{evening}");
    // Nothing is sent twice: a second sync has nothing to send either way (before anyone reads,
    // which the access log records and syncs).
    let again = phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    assert_eq!(again["stats"]["change_bytes_sent"], 0, "{again}");
    assert_eq!(again["stats"]["change_bytes_received"], 0, "{again}");
    assert_holds_each_once(&base, &patient, "Vakt", 60);
    assert_holds_each_once(&nurse, &patient, "Vakt", 60);
    assert_eq!(
        nurse.ok(&["show", "--patient", &second])["record"]["id"],
        second.as_str()
    );
}

/// The number a log line gives `field`.
fn logged(line: &str, field: &str) -> u64 {
    super::lab::logged(line, field).unwrap_or_else(|| panic!("no {field}=N in {line}"))
}

/// The link dies while the phone's live session pushes notes, and comes back: `wait` is what
/// the phone's daemon logs before the path returns. Returns how long after the path came back the
/// phone was caught up, and the bytes of changes its session had sent by then.
fn outage(
    link: &mut super::network::Daemon,
    phone: &mut super::network::Daemon,
    nurse: &Node,
    patient: &str,
    tag: &str,
    wait: Option<&str>,
) -> (Duration, u64) {
    link.say("down");
    assert_eq!(link.next_json()["path"], "down");
    for i in 0..5 {
        let text = format!("{tag} {i}");
        nurse.ok(&["note", "add", "--patient", patient, "--text", &text]);
    }
    if let Some(event) = wait {
        phone.wait_for_log(event);
    }
    link.say("up");
    assert_eq!(link.next_json()["path"], "up");
    let back = Instant::now();
    let line = phone.wait_for_log("caught up");
    (back.elapsed(), logged(&line, "change_bytes_sent"))
}

/// A long path without loss: what a dead path costs is the node's doing, not the luck of a lossy
/// link's draw (the lossy link has its own test above).
const LONG: [&str; 6] = ["--delay-ms", "150", "--rate-kbit", "1000", "--seed", "14"];

#[test]
fn a_path_that_dies_mid_sync_costs_seconds_once_it_is_back_and_resends_nothing_acknowledged() {
    let (home, middle, phone) = rural_lab();
    let (base, patient, nurse) = base_and_nurse();
    let _daemon = home.serve(&base, "10.9.1.1:4433", &[]);
    let mut link = link(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &LONG);
    let ticket = via_proxy(&base);
    phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    write_shift(&nurse, &patient, 60, "Før");
    let data = nurse.path().to_str().unwrap().to_owned();
    let mut phone_daemon = phone.daemon(&[
        "--json",
        "--data",
        &data,
        "run",
        "--no-mdns",
        "--listen",
        "10.9.2.2:0",
        "--peer",
        &ticket,
    ]);
    let first = phone_daemon.wait_for_log("caught up");
    let shift_bytes = logged(&first, "change_bytes_sent");
    assert_holds_each_once(&base, &patient, "Før", 60);
    // A short outage (the nurse walks to the car and back): the connection lives through it.
    let (short, sent) = outage(&mut link, &mut phone_daemon, &nurse, &patient, "Kort", None);
    eprintln!("short outage: caught up {short:?} after the path came back");
    assert!(
        short < Duration::from_secs(5),
        "caught up {short:?} after the path came back; the phone logged:\n{}",
        phone_daemon.log_text()
    );
    assert!(
        sent - shift_bytes < shift_bytes / 4,
        "only the new notes went: {sent} B"
    );
    // A long one: the connection died, and the phone reconnects.
    let (long, resent) = outage(
        &mut link,
        &mut phone_daemon,
        &nurse,
        &patient,
        "Lang",
        Some("peer unreachable"),
    );
    eprintln!("long outage: caught up {long:?} after the path came back");
    assert!(
        long < Duration::from_secs(5),
        "caught up {long:?} after the path came back; the phone logged:\n{}",
        phone_daemon.log_text()
    );
    assert!(
        resent < shift_bytes / 4,
        "a new session resends nothing acknowledged: {resent} B"
    );
    for (tag, n) in [("Før", 60), ("Kort", 5), ("Lang", 5)] {
        assert_holds_each_once(&base, &patient, tag, n);
    }
}

/// 150 ms each way and 384 kbit/s, without loss: the rural link's shape, with nothing left to
/// chance.
const SLOW_LONG: [&str; 6] = ["--delay-ms", "150", "--rate-kbit", "384", "--seed", "14"];

/// A reconnect's push of 100 notes (about 15 KB, more than QUIC's default initial window of
/// 12,000 B) goes out at once after the handshake, instead of waiting a round trip for the
/// peer's acknowledgements; and no datagram exceeds QUIC's minimum size of 1,200 B: no path MTU
/// probes crowd the slow link.
#[test]
fn a_reconnects_push_leaves_in_one_flight_without_path_mtu_probes() {
    let (home, middle, phone) = rural_lab();
    let (base, patient, nurse) = base_and_nurse();
    let _daemon = home.serve(&base, "10.9.1.1:4433", &[]);
    let mut link = link_logging_datagrams(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &SLOW_LONG);
    let ticket = via_proxy(&base);
    phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    write_shift(&nurse, &patient, 100, "Flukt");
    let morning = link.drain_log().len();
    let evening = phone.ok(&nurse, &["sync", "--peer", &ticket, "--no-mdns"]);
    assert_eq!(evening["caught_up"], true, "{evening}");
    let pushed = evening["stats"]["bytes_sent"].as_u64().unwrap();
    assert!(
        pushed > 12_000,
        "the push is larger than QUIC's default window: {pushed} B"
    );
    let datagrams: Vec<Datagram> = link.drain_log()[morning..]
        .iter()
        .filter_map(|(_, line)| Datagram::parse(line))
        .collect();
    let largest = datagrams.iter().map(|d| d.bytes).max().unwrap();
    assert!(
        largest <= 1200,
        "a datagram of {largest} B crossed the link"
    );
    // The phone's Initial (padded to 1,200 B; the morning's last datagrams may come before it),
    // then its second flight: the handshake's end and the push. The first answer to that flight
    // reaches the phone one way later: anything it sends from then on may have waited for an
    // acknowledgement.
    let from_phone: Vec<&Datagram> = datagrams.iter().filter(|d| d.to_server).collect();
    let initial = from_phone.iter().position(|d| d.bytes == 1200).unwrap();
    let flight = &from_phone[initial + 1..];
    let answered = datagrams
        .iter()
        .find(|d| !d.to_server && d.at > flight[0].at)
        .expect("the home answered")
        .at
        + 0.150;
    let (before, after): (Vec<&Datagram>, Vec<&Datagram>) =
        flight.iter().copied().partition(|d| d.at < answered);
    let sent_at_once: u64 = before.iter().map(|d| d.bytes).sum();
    assert!(
        sent_at_once >= pushed,
        "{sent_at_once} B left before an answer could arrive, of a {pushed} B push"
    );
    assert!(
        after.iter().all(|d| d.bytes < 1000),
        "datagrams of the push waited for the peer: {after:?}"
    );
    assert_holds_each_once(&base, &patient, "Flukt", 100);
}

/// The nurse's phone app, running all day in the phone's host (`omsyn run`, dialling no one by
/// itself): the CLI's commands for `nurse` are forwarded to it, syncs included.
fn phone_app(phone: &Host, nurse: &Node) -> super::network::Daemon {
    phone.serve(nurse, "10.9.2.2:0", &[])
}

/// Writes `n` short notes through the CLI (forwarded to a running node).
fn add_notes(nurse: &Node, patient: &str, n: usize, tag: &str) {
    for i in 0..n {
        let text = format!("{tag} {i}: sår stelt, tatt medisiner");
        nurse.ok(&["note", "add", "--patient", patient, "--text", &text]);
    }
}

/// A phone whose app met the home unit earlier today (it holds a TLS session ticket of it)
/// sends its Hello and push with QUIC's first flight: all of it goes in 0-RTT packets, which a
/// client sends only before the server's answer has given it the connection's own keys, instead
/// of a round trip later.
#[test]
fn a_sync_with_a_peer_met_earlier_sends_its_push_with_the_handshake() {
    let (home, middle, phone) = rural_lab();
    let (base, patient, nurse) = base_and_nurse();
    let _daemon = home.serve(&base, "10.9.1.1:4433", &[]);
    let mut link = link_logging_datagrams(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &SLOW_LONG);
    let ticket = via_proxy(&base);
    let mut app = phone_app(&phone, &nurse);
    phone.ok(&nurse, &["sync", "--peer", &ticket]);
    add_notes(&nurse, &patient, 10, "Tidlig");
    let morning = link.drain_log().len();
    let evening = phone.ok(&nurse, &["sync", "--peer", &ticket]);
    assert_eq!(evening["caught_up"], true, "{evening}");
    let pushed = evening["stats"]["bytes_sent"].as_u64().unwrap();
    // What the phone sent in 0-RTT packets, as their clear-text headers say: data sent before
    // the home unit could answer, whenever this loaded machine let the link see it. The packets'
    // headers and tags (about 170 B here, for three packets) exceed the session's bytes after the
    // handshake (its `Ack` of the home unit's round), so a push that went after the handshake
    // in more than that part falls short. (1-RTT bytes cannot tell: the handshake's end and the
    // path's validation go in datagrams padded to 1,200 B.)
    let early: u64 = link.drain_log()[morning..]
        .iter()
        .filter_map(|(_, line)| Datagram::parse(line))
        .filter(|d| d.to_server)
        .map(|d| d.zero_rtt)
        .sum();
    assert!(
        early >= pushed,
        "{early} B went in 0-RTT packets, of a {pushed} B session; the phone logged:\n{}",
        app.log_text()
    );
    // And the home unit took it as it came: not sent again after the handshake.
    app.wait_for_log("the peer took our Hello and push sent with the handshake");
    assert_holds_each_once(&base, &patient, "Tidlig", 10);
}

/// A home unit restarted since the phone met it has lost the ticket's state and refuses the
/// early data: the phone sends its Hello and push again on the connection, and every note
/// arrives once.
#[test]
fn a_peer_restarted_since_refuses_the_early_push_and_the_sync_still_delivers_each_note_once() {
    let (home, middle, phone) = rural_lab();
    let (base, patient, nurse) = base_and_nurse();
    let before = home.serve(&base, "10.9.1.1:4433", &[]);
    let _link = link(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &LONG);
    let ticket = via_proxy(&base);
    let mut app = phone_app(&phone, &nurse);
    phone.ok(&nurse, &["sync", "--peer", &ticket]);
    drop(before);
    let _after = home.serve(&base, "10.9.1.1:4433", &[]);
    add_notes(&nurse, &patient, 5, "Omstart");
    let evening = phone.ok(&nurse, &["sync", "--peer", &ticket]);
    assert_eq!(evening["caught_up"], true, "{evening}");
    app.wait_for_log("did not take what we sent with the handshake");
    assert_holds_each_once(&base, &patient, "Omstart", 5);
}

/// A datagram the link carried to the server's address while nothing listened there (the home
/// unit between being killed and starting again) comes back refused (ICMP); once the server
/// listens again the link carries its replies, as a real path does. The proxy's reader of the
/// server's replies used to stop at that refusal, so a restarted home unit's answers were
/// dropped for good and the phone's next dial timed out: the restarted-peer test above failed
/// whenever the phone's last datagrams of the morning arrived in that gap.
#[test]
fn the_link_carries_a_restarted_servers_replies_after_a_datagram_to_it_was_refused() {
    use std::net::UdpSocket;
    let patience = Some(super::lab::Process::PATIENCE);
    // A port nothing listens on, until the server starts again on it.
    let server_addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"));
    let to = server_addr.to_string();
    command.args([
        "--json",
        "bench",
        "link",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &to,
    ]);
    let mut link = super::network::Daemon::start_logging(command, "info,omsyn::link=debug");
    let listen = str_of(&link.first_line, "listen").to_owned();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(patience).unwrap();
    client
        .send_to(b"to a server not yet back", &listen)
        .unwrap();
    link.wait_for_log("came back undelivered");
    let server = UdpSocket::bind(server_addr).unwrap();
    server.set_read_timeout(patience).unwrap();
    client.send_to(b"hello again", &listen).unwrap();
    let mut buf = [0u8; 64];
    let (n, proxy) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello again");
    server.send_to(b"welcome back", proxy).unwrap();
    let (n, _) = client
        .recv_from(&mut buf)
        .expect("the server's reply crossed the link");
    assert_eq!(&buf[..n], b"welcome back");
}
