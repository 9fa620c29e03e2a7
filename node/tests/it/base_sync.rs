//! A new base's first sync with a peer base of the same organisation, across a link between
//! machines of their own: progress while it runs, and a first sync killed part-way — the new
//! base, or the peer sending — that resumes without taking again what was acknowledged (and,
//! for a killed sender, what it had kept of that), and loses nothing.

use std::collections::BTreeMap;

use omsyn_core::docs::DocumentId;
use omsyn_core::docs::record::PatientField;
use omsyn_core::{Repo, Timestamp};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::cli::Node;
use super::field::{rural_lab, via_proxy};
use super::lab::{Process, output_within};
use super::netlab::link;

/// Patients of the peer base: each a record and a journal of two long notes (a record, a
/// journal: two documents each).
const PATIENTS: usize = 200;
/// A base office's link, slowed so that the first sync takes seconds and can be cut part-way.
const OFFICE: [&str; 6] = ["--delay-ms", "20", "--rate-kbit", "2000", "--seed", "3"];

/// About 4.5 KB of text that compresses little, different for each `seed`.
fn long_text(seed: usize) -> String {
    (0..900usize)
        .map(|i| {
            format!(
                "{:04x} ",
                (i + seed * 900).wrapping_mul(2_654_435_761) >> 16 & 0xffff
            )
        })
        .collect()
}

/// Fills `base` (not running) through omsyn-core: `PATIENTS` patients of zone "Sone 1", each
/// with two long notes.
fn fill(base: &Node) {
    let mut rng = StdRng::seed_from_u64(14);
    let repo = Repo::open(base.path(), None, &mut rng).unwrap();
    let t = Timestamp::parse("2026-11-23T08:00:00+01:00").unwrap();
    for p in 0..PATIENTS {
        repo.transaction(|tx| {
            let patient = tx.add_patient(
                t,
                &mut rng,
                &[
                    (PatientField::Name, format!("Pasient {p}")),
                    (PatientField::Zone, "Sone 1".into()),
                ],
            )?;
            for n in 0..2 {
                tx.add_note(t, &mut rng, &patient, None, t, &long_text(p * 2 + n))?;
            }
            Ok::<_, omsyn_core::RepoError>(())
        })
        .unwrap();
    }
}

/// Every document `node` holds (not running), with its heads.
fn documents(node: &Node) -> BTreeMap<DocumentId, Vec<[u8; 32]>> {
    let repo = Repo::open(node.path(), None, &mut StdRng::seed_from_u64(0)).unwrap();
    let store = repo.store();
    store
        .doc_ids("")
        .unwrap()
        .into_iter()
        .map(|id| {
            let heads = store.with_doc(&id, |d| d.head_hashes()).unwrap().unwrap();
            (id, heads)
        })
        .collect()
}

/// The documents received so far, from a progress line of `omsyn sync --progress`.
fn received(line: &str) -> Option<usize> {
    line.strip_prefix("received ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Patients whose documents `peer` (running) knows `new` holds as it does: what `new`
/// acknowledged, as `omsyn status` at the peer tells it.
fn acknowledged(peer: &Node, new: &Node) -> usize {
    let status = peer.ok(&["status"]);
    let id = new.id();
    let towards = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the peer has not met the new base: {status}"));
    towards["patients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p["last_synced"].is_null())
        .count()
}

#[test]
fn a_new_bases_first_sync_killed_part_way_resumes_without_taking_again_what_it_acknowledged() {
    let (home, middle, office) = rural_lab();
    let peer = Node::admin_base("Base Øst", "K1");
    fill(&peer);
    let month: BTreeMap<DocumentId, Vec<[u8; 32]>> = documents(&peer)
        .into_iter()
        .filter(|(d, _)| d.patient().is_some())
        .collect();
    assert_eq!(month.len(), 2 * PATIENTS);
    let new = Node::new("base", "Base Vest", "K2");
    peer.enroll(&new);
    let daemon = home.serve(&peer, "10.9.1.1:4433", &[]);
    let _link = link(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &OFFICE);
    let data = new.path().to_str().unwrap().to_owned();
    let ticket = via_proxy(&peer);
    let args = [
        "--json",
        "--data",
        &data,
        "sync",
        "--peer",
        &ticket,
        "--no-mdns",
    ];

    // The first attempt shows its progress, and is killed once half the documents came.
    let mut attempt = office.command(&args);
    attempt.arg("--progress").env("OMSYN_LOG", "warn");
    let mut attempt = Process::spawn(attempt).unwrap();
    let (_, line) = attempt
        .wait_for(|l| received(l).is_some_and(|n| n >= month.len() / 2))
        .unwrap();
    assert!(
        attempt.child.try_wait().unwrap().is_none(),
        "still syncing when killed: {line}"
    );
    drop(attempt);
    let acked = acknowledged(&peer, &new);
    assert!(
        (PATIENTS / 8..PATIENTS).contains(&acked),
        "part of the month was acknowledged before the kill: {acked} of {PATIENTS} patients"
    );

    // Resumed: it completes, and nothing the peer saw acknowledged comes again (each patient
    // is two documents; besides them only the peer's own, such as its access log, may come).
    let out = output_within(office.command(&args), Process::PATIENCE).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["caught_up"], true, "{summary}");
    let again = summary["stats"]["docs_received"].as_u64().unwrap() as usize;
    drop(daemon);
    let after = documents(&new);
    let others = after.keys().filter(|d| d.patient().is_none()).count();
    eprintln!(
        "killed with {acked} of {PATIENTS} patients acknowledged; the resumed sync took {again} documents"
    );
    assert!(
        again <= 2 * (PATIENTS - acked) + others,
        "{again} documents came again though {acked} of {PATIENTS} patients were acknowledged"
    );

    assert_holds_the_month(&new, &month);
}

/// Nothing lost: `new` (not running) holds every document of the month, at least as the peer
/// held it.
fn assert_holds_the_month(new: &Node, month: &BTreeMap<DocumentId, Vec<[u8; 32]>>) {
    let repo = Repo::open(new.path(), None, &mut StdRng::seed_from_u64(0)).unwrap();
    for (id, heads) in month {
        let has_all = repo
            .store()
            .with_doc(id, |d| heads.iter().all(|h| d.has_change(h)))
            .unwrap();
        assert_eq!(
            has_all,
            Some(true),
            "{id} is missing or lacks changes the peer held"
        );
    }
}

/// A slower office link than [`OFFICE`]: the first sync lasts longer than the sender's 5 s
/// between keeping what was acknowledged durably, so part of it is kept before the kill.
const SLOW_OFFICE: [&str; 6] = ["--delay-ms", "20", "--rate-kbit", "1000", "--seed", "3"];

#[test]
fn a_peer_base_killed_while_sending_a_first_sync_resends_only_what_it_had_not_kept_acknowledged() {
    let (home, middle, office) = rural_lab();
    let peer = Node::admin_base("Base Øst", "K1");
    fill(&peer);
    let month: BTreeMap<DocumentId, Vec<[u8; 32]>> = documents(&peer)
        .into_iter()
        .filter(|(d, _)| d.patient().is_some())
        .collect();
    let new = Node::new("base", "Base Vest", "K2");
    peer.enroll(&new);
    let sending = home.serve(&peer, "10.9.1.1:4433", &[]);
    let _link = link(&middle, "10.9.2.1:7000", "10.9.1.1:4433", &SLOW_OFFICE);
    let data = new.path().to_str().unwrap().to_owned();
    let ticket = via_proxy(&peer);
    let args = [
        "--json",
        "--data",
        &data,
        "sync",
        "--peer",
        &ticket,
        "--no-mdns",
        "--idle-timeout",
        "5",
    ];

    // The peer is killed (SIGKILL) once three quarters of the documents came.
    let mut attempt = office.command(&args);
    attempt.arg("--progress").env("OMSYN_LOG", "warn");
    let mut attempt = Process::spawn(attempt).unwrap();
    attempt
        .wait_for(|l| received(l).is_some_and(|n| n >= month.len() * 3 / 4))
        .unwrap();
    drop(sending);
    // The new base's sync notices: it ends with an error, keeping what it stored. (Its output
    // closing is the event awaited, within the patience of every wait.)
    let ended = attempt.wait_for(|_| false).unwrap_err();
    assert!(ended.contains("exited"), "{ended}");
    let failed = attempt.child.wait().unwrap();
    assert!(!failed.success(), "the sync ended without its peer");

    // Back up, the peer knows what it had kept of the acknowledgements.
    let back = home.serve(&peer, "10.9.1.1:4433", &[]);
    let kept = acknowledged(&peer, &new);
    assert!(
        (PATIENTS / 8..PATIENTS).contains(&kept),
        "the killed peer kept part of what was acknowledged: {kept} of {PATIENTS} patients"
    );
    let out = output_within(office.command(&args), Process::PATIENCE).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["caught_up"], true, "{summary}");
    let again = summary["stats"]["docs_received"].as_u64().unwrap() as usize;
    drop(back);
    let others = documents(&new)
        .keys()
        .filter(|d| d.patient().is_none())
        .count();
    eprintln!(
        "the killed peer had kept {kept} of {PATIENTS} patients; the resumed sync took {again} documents"
    );
    assert!(
        again <= 2 * (PATIENTS - kept) + others,
        "{again} documents came again though the peer had kept {kept} of {PATIENTS} patients acknowledged"
    );
    assert_holds_the_month(&new, &month);
}
