//! Issue #12: before it was fixed, two writers of one node could build change number N of the
//! node's actor on the same document state and both commit it; Automerge then refused the whole
//! document, and with it every entry it held. `tests/fixtures/store-v4-duplicate-seq` is a store
//! that the build with the bug damaged exactly so (see its README). A repair must keep every
//! acknowledged entry, sign what it makes again, and say so in the access log.

use std::path::Path;

use omsyn_core::docs::DocumentId;
use omsyn_core::ids::PatientId;
use omsyn_core::trust::OrgKey;
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{Repo, Timestamp};
use omsyn_tests::TestNode;
use rand::SeedableRng;
use rand::rngs::StdRng;

const PATIENT: &str = "p-dc162d15f968e305";

const FIXTURE: &str = "store-v4-duplicate-seq";

/// A writable copy of the damaged store.
fn damaged_copy() -> tempfile::TempDir {
    omsyn_tests::fixture_copy(
        FIXTURE,
        &[
            "node.json",
            "node.key",
            "org.key",
            "store.key",
            "store.redb",
        ],
    )
}

/// The entries the damaging run acknowledged: id and text.
fn acknowledged() -> Vec<(String, String)> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(FIXTURE);
    std::fs::read_to_string(fixture.join("acknowledged.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let (id, text) = line.split_once(' ').unwrap();
            (id.to_owned(), text.to_owned())
        })
        .collect()
}

fn open(dir: &Path) -> Repo {
    Repo::open(dir, None, &mut StdRng::seed_from_u64(5)).unwrap()
}

fn now() -> Timestamp {
    Timestamp::parse("2026-12-01T17:00:00+01:00").unwrap()
}

#[test]
fn check_names_the_document_that_concurrent_writes_damaged_and_that_a_repair_can_rebuild_it() {
    let dir = damaged_copy();
    let repo = open(dir.path());
    let patient = PatientId::parse(PATIENT).unwrap();
    assert!(repo.journal(&patient).is_err(), "the fixture is damaged");
    let damage = repo.damaged_documents().unwrap();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert_eq!(
        damage[0].doc,
        DocumentId::parse(&format!("journal/{PATIENT}/2026-12")).unwrap()
    );
    assert!(damage[0].reason.contains("duplicate seq"), "{}", damage[0]);
    assert!(damage[0].repairable(), "{}", damage[0]);
    assert!(damage[0].to_string().contains("omsyn check --repair"));
}

#[test]
fn a_repair_keeps_every_acknowledged_entry_once_and_logs_what_it_made_again() {
    let dir = damaged_copy();
    let patient = PatientId::parse(PATIENT).unwrap();
    let report = open(dir.path()).repair(now()).unwrap();
    assert_eq!(report.repaired.len(), 1);
    assert!(report.left.is_empty());
    let remade = report.repaired[0].remade.len();
    assert!(remade > 0);

    // Reopened, so the journal is decoded from disk, not from a cache.
    let repo = open(dir.path());
    assert!(repo.damaged_documents().unwrap().is_empty());
    let (journal, unreadable) = repo.journal(&patient).unwrap();
    assert!(unreadable.is_empty());
    let expected = acknowledged();
    assert_eq!(journal.len(), expected.len(), "no entry lost, none doubled");
    for (id, text) in &expected {
        let entry = journal
            .iter()
            .find(|e| e.id.as_str() == id)
            .unwrap_or_else(|| panic!("acknowledged entry {id} ({text}) lost"));
        assert!(format!("{:?}", entry.body).contains(text.as_str()), "{id}");
    }

    let log = repo.audit_entries(Some(&patient)).unwrap();
    let repairs: Vec<_> = log
        .iter()
        .filter(|e| e.action == AuditAction::Repair)
        .collect();
    assert_eq!(repairs.len(), 1);
    assert!(
        repairs[0].flagged,
        "a repair is flagged for review at the base"
    );
    assert!(
        repairs[0]
            .what
            .contains(&format!("journal/{PATIENT}/2026-12"))
    );
    assert!(
        repo.verify_audit()
            .unwrap()
            .iter()
            .all(|c| c.problems.is_empty())
    );
}

#[test]
fn a_repaired_document_is_signed_so_peers_accept_it() {
    let dir = damaged_copy();
    let repo = open(dir.path());
    repo.repair(now()).unwrap();
    let org = OrgKey::load(dir.path()).unwrap().unwrap();
    let peer = TestNode::unenrolled(
        9,
        omsyn_core::NodeProfile {
            version: omsyn_core::identity::PROFILE_VERSION,
            role: omsyn_core::Role::Base,
            name: "Peer base".into(),
            staff_id: Some(omsyn_core::ids::StaffId::parse("K0009").unwrap()),
            patient: None,
            zone: Some("Sone 1".into()),
        },
    );
    omsyn_tests::enroll(&peer.repo, &org, omsyn_tests::CERT_VALIDITY_MS);
    let summary = peer
        .repo
        .import(now(), &repo.export(now(), None).unwrap())
        .unwrap();
    assert!(summary.new_changes > 0);
    let patient = PatientId::parse(PATIENT).unwrap();
    assert_eq!(
        peer.repo.journal(&patient).unwrap().0.len(),
        acknowledged().len()
    );
}

#[test]
fn repairing_a_sound_store_changes_nothing() {
    let node = TestNode::base(3);
    let before = omsyn_tests::snapshot(&node.repo);
    let report = node.repo.repair(now()).unwrap();
    assert!(report.repaired.is_empty() && report.left.is_empty());
    assert_eq!(omsyn_tests::snapshot(&node.repo), before);
}
