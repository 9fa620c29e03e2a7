//! Trust with real processes: enrolment by files, refusal of an unenrolled node, a device revoked
//! while its daemon runs wiping itself, store keys, explicit access and the access log.

use super::cli::{Node, str_of};
use super::network::{Daemon, sync, sync_fails};

#[test]
fn enrolment_works_by_files_and_an_unenrolled_node_is_refused_with_a_reason_on_both_sides() {
    let base = Node::admin_base("Base", "K1");
    base.add_patient("Turid Nilsen", "S1");
    let nurse = Node::new("nurse", "Kari", "S1");
    // Request and certificate travel as files (a USB stick, a QR code, a chat message).
    let request = nurse.path().join("request.txt");
    let cert = base.path().join("cert.txt");
    nurse.ok(&["enroll", "request", "--out", request.to_str().unwrap()]);
    let approved = base.ok(&[
        "enroll",
        "approve",
        request.to_str().unwrap(),
        "--out",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(approved["device"], nurse.id().as_str());
    nurse.ok(&["enroll", "install", cert.to_str().unwrap()]);
    let org = nurse.ok(&["org", "show"]);
    assert_eq!(org["name"], "Testkommune hjemmesykepleie");

    let mut daemon = Daemon::run(&base, &[]);
    assert_eq!(sync(&nurse, &daemon.ticket(), &[])["caught_up"], true);
    assert_eq!(
        nurse.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let stranger = Node::new("nurse", "Ukjent", "S1");
    let err = sync_fails(&stranger, &daemon.ticket());
    assert!(err.contains("not enrolled"), "{err}");
    // Said once, naming the commands that fix it.
    assert_eq!(err.matches("not enrolled").count(), 1, "{err}");
    assert!(err.contains("omsyn enroll request"), "{err}");
    daemon.wait_for_log("not enrolled");
    assert_eq!(
        stranger.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn a_device_revoked_while_its_daemon_runs_destroys_its_store_key_and_stops() {
    let base = Node::admin_base("Base", "K1");
    base.add_patient("Turid Nilsen", "S1");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let mut base_daemon = Daemon::run(&base, &[]);
    let mut nurse_daemon = Daemon::run(&nurse, &["--peer", &base_daemon.ticket()]);
    nurse_daemon.wait_for_log("caught up");

    // Revoked at the base (the base's daemon answers the command and spreads it at once).
    let revoked = base.ok(&["revoke", &nurse.id(), "--reason", "mobil mistet"]);
    assert_eq!(revoked["new"], true);
    base_daemon.wait_for_log("revoked");
    nurse_daemon.wait_for_log("destroying its store key");
    let status = nurse_daemon.child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the revoked node stops");
    for file in ["store.key", "store.redb", "node.key"] {
        assert!(
            !nurse.path().join(file).exists(),
            "{file} survived the wipe"
        );
    }
    // What is left is a directory `init` starts from (a new identity, to be enrolled anew), and
    // says so.
    let err = nurse.fails(&["id"]);
    assert!(err.contains("run `omsyn init`"), "{err}");
    nurse.ok(&[
        "init",
        "--role",
        "nurse",
        "--name",
        "Kari",
        "--staff-id",
        "S1",
        "--zone",
        "Sone 1",
    ]);
    // The revocation is on record at the base, and a re-enrolment is refused.
    let org = base.ok(&["org", "show"]);
    assert_eq!(org["revoked"].as_array().unwrap().len(), 1);
}

#[test]
fn a_revoked_base_destroys_the_organisation_key_and_its_host_key_file_and_leaves_nothing_usable() {
    // Base A holds the organisation key, and its store key in a file the host keeps elsewhere.
    let host = tempfile::tempdir().unwrap();
    let key_file = host.path().join("store.key");
    let a = tempfile::tempdir().unwrap();
    let omsyn = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
            .arg("--json")
            .arg("--data")
            .arg(dir)
            .arg("--store-key-file")
            .arg(&key_file)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    omsyn(
        a.path(),
        &[
            "init",
            "--role",
            "base",
            "--name",
            "Base A",
            "--staff-id",
            "K1",
            "--zone",
            "Sone 1",
        ],
    );
    omsyn(a.path(), &["org", "create", "--name", "Testkommune"]);
    assert!(a.path().join("org.key").exists() && key_file.exists());
    // Base B is delegated the organisation key and revokes A.
    let b = Node::new("base", "Base B", "K2");
    let request = b.ok(&["enroll", "request"]);
    let approve = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
        .args(["--json", "--data"])
        .arg(a.path())
        .arg("--store-key-file")
        .arg(&key_file)
        .args(["enroll", "approve", str_of(&request, "request")])
        .output()
        .unwrap();
    let cert: serde_json::Value = serde_json::from_slice(&approve.stdout).unwrap();
    b.ok(&["enroll", "install", str_of(&cert, "certificate")]);
    std::fs::copy(a.path().join("org.key"), b.path().join("org.key")).unwrap();
    let a_id = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
            .args(["--json", "--data"])
            .arg(a.path())
            .arg("--store-key-file")
            .arg(&key_file)
            .arg("id")
            .output()
            .unwrap();
        let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        str_of(&id, "id").to_owned()
    };
    b.ok(&["revoke", &a_id, "--reason", "kontoret nedlagt"]);
    let b_daemon = Daemon::run(&b, &[]);
    let mut a_daemon = Daemon::spawn(&[
        "--json",
        "--data",
        a.path().to_str().unwrap(),
        "--store-key-file",
        key_file.to_str().unwrap(),
        "run",
        "--listen",
        "127.0.0.1:0",
        "--no-mdns",
        "--peer",
        &b_daemon.ticket(),
    ]);
    a_daemon.wait_for_log("this node is wiped");
    assert_eq!(a_daemon.child.wait().unwrap().code(), Some(3));
    let left: Vec<String> = std::fs::read_dir(a.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "omsyn.sock")
        .collect();
    assert!(left.is_empty(), "left after the wipe: {left:?}");
    assert!(
        !key_file.exists(),
        "the host's store key file survived the wipe"
    );
    // The directory is one `omsyn init` can start from again.
    omsyn(
        a.path(),
        &[
            "init",
            "--role",
            "base",
            "--name",
            "Base A",
            "--staff-id",
            "K1",
            "--zone",
            "Sone 1",
        ],
    );
}

#[test]
fn a_wrong_or_missing_store_key_is_a_clear_error() {
    let keys = tempfile::tempdir().unwrap();
    let right = keys.path().join("right.key");
    let wrong = keys.path().join("wrong.key");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let omsyn = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap()
    };
    let init = omsyn(&[
        "--store-key-file",
        right.to_str().unwrap(),
        "init",
        "--role",
        "base",
        "--name",
        "Base",
        "--zone",
        "Sone 1",
    ]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(right.exists() && !data.join("store.key").exists());
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = omsyn(&[
        "--store-key-file",
        wrong.to_str().unwrap(),
        "patient",
        "list",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match"), "{err}");
    let out = omsyn(&["patient", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no store key"), "{err}");
    let out = omsyn(&[
        "--store-key-file",
        right.to_str().unwrap(),
        "patient",
        "list",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reads_writes_and_refusals_are_in_the_access_log_and_the_chain_verifies() {
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Turid Nilsen", "S1");
    base.ok(&["show", "--patient", &patient]);
    let log = &base.ok(&["audit", "--patient", &patient])["entries"];
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "action"))
        .collect();
    // The record's two writes; the reads of its care team (`team` answers with her name), of
    // the record by `show`, and of this very log.
    assert_eq!(
        actions,
        ["write", "write", "read", "read", "read"],
        "{log:#}"
    );
    let whats: Vec<&str> = (log.as_array().unwrap().iter().skip(2))
        .map(|e| str_of(e, "what"))
        .collect();
    assert_eq!(
        whats,
        ["care team", "patient view", "access log"],
        "{log:#}"
    );
    assert_eq!(log[3]["purpose"], "zone Sone 1");
    assert_eq!(log[3]["author"]["staff"], "K1");
    let verified = &base.ok(&["audit", "verify"])["logs"];
    assert!(verified[0]["problems"].as_array().unwrap().is_empty());

    // A nurse with no need is refused, says how to proceed, and the refusal is logged.
    let nurse = Node::new("nurse", "Kari", "S1");
    let err = nurse.fails(&["show", "--patient", &patient]);
    assert!(err.contains("no work-related need"), "{err}");
    let ask = format!("`omsyn access ask --patient {patient} --reason …`");
    assert!(err.contains(&ask), "the CLI names its command: {err}");
    // A script gets the step as data beside the message, as HTTP callers do.
    let out = nurse.run(&["--json", "show", "--patient", &patient]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["remedy"],
        serde_json::json!({"kind": "ask-explicit-access", "patient": patient}),
        "{answer}"
    );
    nurse.ok(&[
        "access",
        "ask",
        "--patient",
        &patient,
        "--reason",
        "vikar for Ola, akutt tilsyn",
    ]);
    let log = &nurse.ok(&["audit", "--patient", &patient])["entries"];
    let flagged: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["flagged"] == true)
        .map(|e| str_of(e, "action"))
        .collect();
    // Both refused reads (as text, then as JSON) are logged.
    assert_eq!(
        flagged,
        ["refused", "refused", "explicit-access"],
        "{log:#}"
    );
}

/// Moves every document `from` may take out to `to`, through an export file.
fn carry(from: &Node, to: &Node) {
    let file = from.path().join("carry.omsyn");
    from.ok(&["export", file.to_str().unwrap()]);
    to.ok(&["import", file.to_str().unwrap()]);
}

#[test]
fn every_way_out_passes_the_need_gate_and_is_logged_naming_the_patient() {
    let base = Node::admin_base("Base", "K1");
    let turid = base.add_patient("Turid Nilsen", "S1");
    let egil = base.add_patient("Egil Haugen", "S2");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    carry(&base, &nurse);
    nurse.ok(&[
        "note",
        "add",
        "--patient",
        &turid,
        "--text",
        "Turid i god form",
    ]);
    // Kari's export holds Turid (care team), and is logged naming her.
    let out = nurse.path().join("kari.omsyn");
    nurse.ok(&["export", out.to_str().unwrap(), "--patient", &turid]);
    let log = &nurse.ok(&["audit", "--patient", &turid])["entries"];
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "export"),
        "{log}"
    );
    // While Turid is hers, her log shows the base's writes too.
    assert!(
        (log.as_array().unwrap().iter())
            .any(|e| e["action"] == "write" && e["author"]["name"] == "Base"),
        "{log}"
    );
    // Egil is not hers: named, it is refused; in a whole export, he is left out.
    let err = nurse.fails(&["export", out.to_str().unwrap(), "--patient", &egil]);
    assert!(err.contains("no work-related need"), "{err}");
    // FHIR for the record system is a base's act.
    let fhir = nurse.path().join("fhir");
    let err = nurse.fails(&["export", "--fhir", fhir.to_str().unwrap()]);
    assert!(err.contains("a base does that"), "{err}");
    // Turid blocks Kari: nothing of Turid leaves Kari's phone any more, by any way.
    base.ok(&["block", "--patient", &turid, "--staff", "S1"]);
    carry(&base, &nurse);
    let err = nurse.fails(&["export", out.to_str().unwrap(), "--patient", &turid]);
    assert!(err.contains("blocked"), "{err}");
    let err = nurse.fails(&["show", "--patient", &turid]);
    assert!(err.contains("blocked"), "{err}");
    let listed = &nurse.ok(&["patient", "list"])["patients"];
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != turid.as_str()),
        "{listed}"
    );
    let whole = nurse.path().join("all.omsyn");
    nurse.ok(&["export", whole.to_str().unwrap()]);
    let fresh = Node::admin_base("Other base", "K9");
    let imported = fresh.run(&["--json", "import", whole.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&imported.stdout);
    assert!(
        !text.contains("new_documents\": 1") || !text.contains(&turid),
        "{text}"
    );
    // The refusals are logged, naming Turid; and of Turid's log Kari now sees only her own
    // entries: who else wrote in Turid's record is no longer hers to read.
    let log = &nurse.ok(&["audit", "--patient", &turid])["entries"];
    let entries = log.as_array().unwrap();
    assert!(entries.iter().any(|e| e["action"] == "refused"), "{log}");
    assert!(
        entries.iter().all(|e| e["author"]["name"] == "Kari"),
        "{log}"
    );
    // Nor does the whole log show another device's entries about her.
    let all = &nurse.ok(&["audit"])["entries"];
    let others: Vec<&serde_json::Value> = (all.as_array().unwrap().iter())
        .filter(|e| e["author"]["name"] != "Kari")
        .filter(|e| e.to_string().contains(turid.as_str()))
        .collect();
    assert!(others.is_empty(), "{others:?}");
}

/// A modified nurse app's first bytes to a base: its Hello (with its real certificate), the
/// month before's journal, then this month's with the middle change's signature broken.
fn hello_and_a_forged_batch(nurse: &Node) -> ([u8; 32], Vec<u8>) {
    use omsyn_core::sync::wire::{self, Message, SignedChange};
    use rand::SeedableRng;
    let (secret, mut bytes) = super::raw_client::enrolled_hello(nurse.path());
    let repo = omsyn_core::Repo::open(
        nurse.path(),
        None,
        &mut rand::rngs::StdRng::seed_from_u64(1),
    )
    .unwrap();
    let store = repo.store();
    let journals = store.doc_ids("journal/").unwrap();
    assert_eq!(journals.len(), 2, "{journals:?}");
    let changes = |doc: &omsyn_core::DocumentId| {
        let doc = doc.clone();
        let changes: Vec<SignedChange> = store
            .with_doc(&doc, |d| d.hashed_changes_since(&[]))
            .unwrap()
            .unwrap()
            .into_iter()
            .map(|c| SignedChange {
                bytes: c.bytes,
                signature: c.signature.unwrap(),
            })
            .collect();
        (doc, changes)
    };
    // Ids sort by month: the month before first.
    let (earlier, entries) = changes(&journals[0]);
    let (journal, mut notes) = changes(&journals[1]);
    assert!(notes.len() >= 3, "{}", notes.len());
    let middle = notes.len() / 2;
    notes[middle].signature[0] ^= 1;
    for (doc, changes) in [(earlier, entries), (journal, notes)] {
        bytes.extend(wire::encode(&Message::Changes { doc, changes }));
    }
    (secret, bytes)
}

#[test]
fn a_forged_signature_amid_a_batch_the_daemon_checks_on_another_thread_is_refused_and_nothing_of_it_is_stored()
 {
    use omsyn_core::sync::wire::Message;
    let base = Node::admin_base("Base", "K1");
    let patient = base.add_patient("Aud Moen", "S1");
    let daemon = Daemon::run(&base, &[]);
    let ticket = daemon.ticket();
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    assert_eq!(sync(&nurse, &ticket, &[])["caught_up"], true);
    for i in 0..3 {
        let text = format!("Forfalsket notat {i}");
        nurse.ok(&["note", "add", "--patient", &patient, "--text", &text]);
    }
    let month_before = (chrono::Utc::now() - chrono::Duration::days(35)).to_rfc3339();
    let text = "Notat fra forrige måned";
    nurse.ok(&[
        "note",
        "add",
        "--patient",
        &patient,
        "--text",
        text,
        "--at",
        &month_before,
    ]);
    let (secret, bytes) = hello_and_a_forged_batch(&nurse);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let answered = runtime.block_on(super::raw_client::converse(&ticket, secret, &bytes, |m| {
        matches!(m, Message::Reject { .. })
    }));
    let reasons: Vec<&str> = answered
        .iter()
        .filter_map(|m| match m {
            Message::Reject { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 1, "{answered:?}");
    assert!(reasons[0].contains("no valid signature"), "{}", reasons[0]);
    let shown = base.ok(&["show", "--patient", &patient]).to_string();
    assert!(!shown.contains("Forfalsket notat"), "{shown}");
    assert!(
        shown.contains(text),
        "what came before the forged batch is stored: {shown}"
    );
    // The honest app's sync of the same notes is taken.
    assert_eq!(sync(&nurse, &ticket, &[])["caught_up"], true);
    let shown = base.ok(&["show", "--patient", &patient]).to_string();
    assert!(shown.contains("Forfalsket notat 2"), "{shown}");
}
