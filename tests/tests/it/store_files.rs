//! Hostile store files: corrupted, truncated, foreign, and from another format version all give a
//! clear error, never a panic. Also reads the committed golden stores of earlier formats.

use std::path::Path;

use omsyn_core::docs::record::PatientField;
use omsyn_core::report::{day_report, day_report_from_documents};
use omsyn_core::store::{FORMAT_VERSION, OpenError, Store, StoreKey, StoreKeys};
use omsyn_core::trust::audit::AuditAction;
use omsyn_core::{NodeKey, Repo, Role};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn data_key() -> StoreKey {
    StoreKey::from_bytes([42; 32])
}

fn keys() -> StoreKeys {
    StoreKeys {
        signer: NodeKey::generate(&mut StdRng::seed_from_u64(1)),
        data: data_key(),
    }
}

/// The keys of the node in data directory `dir` (its store key [`data_key`]).
fn keys_of(dir: &Path) -> StoreKeys {
    StoreKeys {
        signer: omsyn_core::Identity::load(dir).unwrap().key,
        data: data_key(),
    }
}

/// A store file with 50 patients, closed.
fn populated_store(path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, Some(data_key()), &mut rng).unwrap();
    for i in 0..50 {
        repo.add_patient(
            omsyn_tests::at("07:00"),
            &mut rng,
            &[(PatientField::Name, format!("Patient {i}"))],
        )
        .unwrap();
    }
    drop(repo);
    std::fs::copy(Repo::store_path(dir.path()), path).unwrap();
}

/// Opens and reads everything; returns the number of patients read, or the first error as text.
fn open_and_read_all(path: &Path) -> Result<usize, String> {
    let store = Store::open(path, &keys(), [7; 16]).map_err(|e| e.to_string())?;
    let ids = store.doc_ids("").map_err(|e| e.to_string())?;
    for id in &ids {
        store.with_doc(id, |_| ()).map_err(|e| e.to_string())?;
    }
    Ok(store.patients().map_err(|e| e.to_string())?.len())
}

#[test]
fn a_file_of_random_bytes_is_refused_as_not_an_omsyn_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    std::fs::write(
        &path,
        (0..100_000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let err = Store::open(&path, &keys(), [7; 16]).unwrap_err();
    assert!(
        matches!(err, OpenError::Foreign { .. } | OpenError::Corrupt { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("store.redb"),
        "names the file: {err}"
    );
}

#[test]
fn a_redb_file_of_another_program_is_refused_as_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("settings");
            tx.open_table(def).unwrap().insert("a", "b").unwrap();
        }
        tx.commit().unwrap();
    }
    let err = Store::open(&path, &keys(), [7; 16]).unwrap_err();
    assert!(matches!(err, OpenError::Foreign { .. }), "{err}");
}

#[test]
fn a_store_of_a_newer_format_version_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    drop(Store::open(&path, &keys(), [7; 16]).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            tx.open_table(meta)
                .unwrap()
                .insert(
                    "format_version",
                    (FORMAT_VERSION + 1).to_le_bytes().as_slice(),
                )
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let err = Store::open(&path, &keys(), [7; 16]).unwrap_err();
    let OpenError::UnsupportedVersion {
        found, supported, ..
    } = err
    else {
        panic!("expected UnsupportedVersion, got {err}");
    };
    assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
}

#[test]
fn truncated_store_files_give_a_clear_error_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    populated_store(&good);
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(open_and_read_all(&good), Ok(50), "the intact store reads");
    for keep in [
        0,
        100,
        4096,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let path = dir.path().join(format!("truncated-{keep}.redb"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let result = std::panic::catch_unwind(|| open_and_read_all(&path));
        let outcome =
            result.unwrap_or_else(|_| panic!("panicked on a file truncated to {keep} bytes"));
        // A clear error, or every patient: never some of them, never a new empty store (a file
        // cut to nothing included).
        match &outcome {
            Err(msg) => assert!(!msg.is_empty()),
            Ok(n) => assert_eq!(
                *n, 50,
                "a file truncated to {keep} bytes lost patients silently"
            ),
        }
        if keep == 0 {
            assert!(
                outcome.as_ref().is_err_and(|m| m.contains("empty")),
                "a 0-byte store is refused: {outcome:?}"
            );
        }
    }
}

#[test]
fn corrupted_store_pages_give_a_clear_error_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    populated_store(&good);
    let bytes = std::fs::read(&good).unwrap();
    let mut detected = 0;
    for (i, stride) in [(0usize, 4096usize), (1, 997), (2, 61), (3, 4096 * 3)].into_iter() {
        let mut damaged = bytes.clone();
        let mut pos = 512 + i * 131;
        while pos < damaged.len() {
            damaged[pos] ^= 0x5a;
            pos += stride;
        }
        let path = dir.path().join(format!("corrupt-{i}.redb"));
        std::fs::write(&path, &damaged).unwrap();
        let outcome = std::panic::catch_unwind(|| open_and_read_all(&path))
            .unwrap_or_else(|_| panic!("panicked on corruption pattern {i}"));
        match outcome {
            Err(msg) => {
                detected += 1;
                assert!(
                    msg.contains("corrupt")
                        || msg.contains("not an Omsyn store")
                        || msg.contains("invalid"),
                    "unclear error: {msg}"
                );
            }
            Ok(n) => assert_eq!(n, 50, "corruption pattern {i} passed with data missing"),
        }
        let verified =
            std::panic::catch_unwind(|| Store::verify(&path, &keys(), [7; 16]).map(|_| ()))
                .unwrap_or_else(|_| panic!("verify panicked on corruption pattern {i}"));
        assert!(
            verified.is_err(),
            "omsyn check missed corruption pattern {i}"
        );
    }
    assert!(detected > 0, "no corruption pattern was detected at all");
}

#[test]
fn verify_accepts_an_intact_store() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    populated_store(&good);
    let store = Store::verify(&good, &keys(), [7; 16]).unwrap();
    assert_eq!(store.patients().unwrap().len(), 50);
}

#[test]
fn a_store_file_left_loose_by_many_writes_is_compacted_and_keeps_every_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, Some(data_key()), &mut rng).unwrap();
    let patient = repo
        .add_patient(
            omsyn_tests::at("07:00"),
            &mut rng,
            &[(PatientField::Name, "P".into())],
        )
        .unwrap();
    // Notes that do not compress, one write each: the month's chunks are folded into ever
    // larger snapshots, and the pages of the ones before are freed.
    for i in 0..150 {
        let text: String = (0..2000)
            .map(|_| rand::Rng::random_range(&mut rng, 'a'..='z'))
            .collect();
        let at = omsyn_tests::at("08:00");
        repo.add_note(at, &mut rng, &patient, None, at, &format!("{i} {text}"))
            .unwrap();
    }
    let before = omsyn_tests::snapshot(&repo);
    drop(repo);
    let path = Repo::store_path(dir.path());
    let loose = std::fs::metadata(&path).unwrap().len();
    let mut store = Store::verify_pages(&path, &keys_of(dir.path()), [7; 16]).unwrap();
    let used = store.file_use().unwrap().used_bytes;
    assert!(
        used < loose * 3 / 4,
        "the writes left a quarter free: {used} of {loose}"
    );
    assert!(
        !store.compact_if_worthwhile(loose, loose).unwrap(),
        "not below the minimum"
    );
    assert!(store.compact_if_worthwhile(loose, 0).unwrap());
    drop(store);
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted < loose * 3 / 4, "{compacted} of {loose}");
    let repo = Repo::open(dir.path(), Some(data_key()), &mut rng).unwrap();
    assert_eq!(
        omsyn_tests::snapshot(&repo),
        before,
        "every document as it was"
    );
    assert_eq!(repo.journal(&patient).unwrap().0.len(), 150);
}

/// A copy of a golden data directory written by an earlier format version.
fn golden(name: &str) -> tempfile::TempDir {
    omsyn_tests::fixture_copy(name, &["node.key", "node.json", "store.redb"])
}

#[test]
fn the_golden_v1_store_still_opens_and_reads() {
    let dir = golden("store-v1");
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(1)).unwrap();
    let patients = repo.patients().unwrap();
    assert_eq!(patients.len(), 1);
    let view = repo.patient_view(&patients[0].0).unwrap();
    assert_eq!(view.record.name(), "Golden Patient");
    assert_eq!(view.visits.len(), 1);
    assert_eq!(view.journal.len(), 3, "visit performed and two doses");
    assert_eq!(view.conflicts.len(), 1, "the fixture's dose given twice");
}

#[test]
fn a_version_2_store_is_encrypted_signed_and_indexed_on_its_first_open() {
    let dir = golden("store-v2");
    assert!(!dir.path().join("store.key").exists());
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(1)).unwrap();
    assert!(
        dir.path().join("store.key").exists(),
        "a key was made for the migration"
    );
    let patients = repo.patients().unwrap();
    assert_eq!(patients.len(), 1);
    let (patient, name) = &patients[0];
    assert_eq!(name, "Golden Patient");
    let view = repo.patient_view(patient).unwrap();
    assert_eq!(view.visits.len(), 1);
    assert_eq!(view.journal.len(), 3, "visit performed, a dose and a note");
    // The node's own changes were signed, and the relations index was built.
    let store = repo.store();
    for id in store.doc_ids("").unwrap() {
        let unsigned = store
            .with_doc(&id, |d| {
                d.clone()
                    .hashed_changes_since(&[])
                    .iter()
                    .filter(|c| c.signature.is_none())
                    .count()
            })
            .unwrap()
            .unwrap();
        assert_eq!(unsigned, 0, "{id} has unsigned changes");
    }
    assert!(store.relation(patient, "zone:Sone 1").unwrap().is_some());
    drop(repo);
    // Opens again with the key it made; the data stays.
    let again = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(2)).unwrap();
    assert_eq!(again.patients().unwrap().len(), 1);
}

#[test]
fn a_version_3_store_gets_its_escalation_index_on_its_first_open() {
    use omsyn_core::docs::journal::MissedReason;
    use omsyn_core::docs::plan::{NewVisit, VisitKind};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, None, &mut rng).unwrap();
    let at = omsyn_tests::at;
    let patient = repo
        .add_patient(at("07:00"), &mut rng, &[(PatientField::Name, "Liv".into())])
        .unwrap();
    let visit = repo
        .plan_visit(
            at("07:00"),
            &mut rng,
            &NewVisit {
                patient: patient.clone(),
                start: at("13:00"),
                end: at("13:15"),
                kind: VisitKind::Digital,
                tiltak: vec![],
                staff: vec![],
            },
        )
        .unwrap();
    repo.visit_missed(
        at("13:05"),
        &mut rng,
        &visit,
        MissedReason::NoAnswer,
        None,
        at("13:05"),
    )
    .unwrap();
    assert_eq!(repo.tasks(at("13:06"), None).unwrap().len(), 1);
    drop(repo);
    // Make it the version-3 store of the build before: no escalation index, each document's
    // bookkeeping in its `docs` row (format 10 moved it beside its chunks) and each chunk one
    // value (format 9 cut them into pieces).
    write_bookkeeping_as_format_9(&Repo::store_path(dir.path()));
    write_chunks_as_format_8(&Repo::store_path(dir.path()));
    {
        let db = redb::Database::open(Repo::store_path(dir.path())).unwrap();
        let tx = db.begin_write().unwrap();
        let tasks: redb::TableDefinition<(&str, &str), &[u8]> = redb::TableDefinition::new("tasks");
        let open: redb::TableDefinition<(&str, &str), ()> =
            redb::TableDefinition::new("open_tasks");
        assert!(tx.delete_table(tasks).unwrap());
        assert!(tx.delete_table(open).unwrap());
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        tx.open_table(meta)
            .unwrap()
            .insert("format_version", 3u32.to_le_bytes().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let repo = Repo::open(dir.path(), None, &mut rng).unwrap();
    let tasks = repo.open_tasks(at("13:06"), None).unwrap();
    assert_eq!(
        tasks.len(),
        1,
        "the unanswered call's task, derived on open"
    );
    assert_eq!(tasks[0].patient, patient);
}

/// A store written before the day index (format 5) derives the index when it first opens and
/// reports each day as the build that wrote it did, and as the documents themselves give.
#[test]
fn a_version_5_store_derives_its_day_index_on_open_and_reports_its_days_as_before() {
    let dir = omsyn_tests::fixture_copy("store-v5", GOLDEN_FILES);
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    assert!(!repo.store().needs_rederive().unwrap());
    for (day, report, old) in golden_day_reports(&repo, "store-v5") {
        assert_eq!(report.totals.planned, 10, "{day}");
        // The old build's report had no zone on a visit line, nor the staff's names.
        let mut now = serde_json::to_value(&report).unwrap();
        for visit in now["visits"].as_array_mut().unwrap() {
            assert_eq!(visit["zone"], "Sone 2");
            visit.as_object_mut().unwrap().remove("zone");
        }
        let names = now.as_object_mut().unwrap().remove("staff_names").unwrap();
        assert!(names.is_object(), "{names}");
        assert_eq!(now, old, "{day}");
    }
}

/// The files of a golden data directory made with `omsyn org create`.
const GOLDEN_FILES: &[&str] = &[
    "node.json",
    "node.key",
    "org.key",
    "store.key",
    "store.redb",
];

/// Each day of a golden store's reports, from the day index, checked against the report
/// derived from every document held, beside what the build that made it printed for the day.
fn golden_day_reports(
    repo: &Repo,
    name: &str,
) -> Vec<(String, omsyn_core::report::DayReport, serde_json::Value)> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let mut out = Vec::new();
    for day in ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"] {
        let noon = omsyn_core::Timestamp::parse(&format!("{day}T12:00:00+01:00")).unwrap();
        let gate = || repo.disclose(noon, AuditAction::Read, "test report");
        let date = omsyn_core::Day::parse(day).unwrap();
        let report = day_report(repo, date, None, &mut gate()).unwrap();
        assert_eq!(
            report,
            day_report_from_documents(repo, date, None, &mut gate()).unwrap()
        );
        let old: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture.join(format!("day-report-{day}.json"))).unwrap(),
        )
        .unwrap();
        out.push((day.to_owned(), report, old));
    }
    out
}

/// The raw `(key parts…)` of every row of a store table whose key names `id`, read with redb
/// after the node closed: what the store really holds, not what its API shows.
fn raw_keys_naming(path: &Path, id: &str) -> Vec<String> {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path).unwrap();
    let read = db.begin_read().unwrap();
    let chunks: redb::TableDefinition<(&str, u64, u32), &[u8]> =
        redb::TableDefinition::new("chunks");
    let day_index: redb::TableDefinition<(&str, &str), &[u8]> =
        redb::TableDefinition::new("day_index");
    let owners: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("day_index_owners");
    let mut out = Vec::new();
    for item in read.open_table(chunks).unwrap().iter().unwrap() {
        let key = item.unwrap().0;
        let (doc, seq, piece) = key.value();
        out.push(format!("chunks {doc} {seq} {piece}"));
    }
    for item in read.open_table(day_index).unwrap().iter().unwrap() {
        let key = item.unwrap().0;
        let (day, key) = key.value();
        out.push(format!("day_index {day} {key}"));
    }
    for item in read.open_table(owners).unwrap().iter().unwrap() {
        out.push(format!("day_index_owners {}", item.unwrap().0.value()));
    }
    out.retain(|row| row.contains(id));
    out
}

/// A patient with a month large enough that its journal's chunk is several pieces, and a
/// visit, performed, with its day rows.
fn patient_with_pieces(repo: &Repo, rng: &mut StdRng, name: &str) -> omsyn_core::ids::PatientId {
    use omsyn_core::docs::plan::{NewVisit, VisitKind};
    let at = omsyn_tests::at;
    let patient = repo
        .add_patient(at("07:00"), rng, &[(PatientField::Name, name.into())])
        .unwrap();
    let visit = repo
        .plan_visit(
            at("07:00"),
            rng,
            &NewVisit {
                patient: patient.clone(),
                start: at("09:00"),
                end: at("09:20"),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![],
            },
        )
        .unwrap();
    repo.visit_performed(at("09:05"), rng, &visit, at("09:05"), None, None)
        .unwrap();
    // Text that compresses little: the note's change alone spans pages.
    let text: String = (0..16_000)
        .map(|_| rand::Rng::random_range(rng, 'a'..='z'))
        .collect();
    repo.add_note(at("09:10"), rng, &patient, Some(&visit), at("09:10"), &text)
        .unwrap();
    patient
}

#[test]
fn removing_a_patient_leaves_no_piece_of_its_chunks_and_no_day_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, Some(data_key()), &mut rng).unwrap();
    let gone = patient_with_pieces(&repo, &mut rng, "Gone");
    let kept = patient_with_pieces(&repo, &mut rng, "Kept");
    let before = omsyn_tests::snapshot(&repo);
    let mut batch = repo.store().write().unwrap();
    let removed = batch.remove_patient(&gone).unwrap();
    batch.commit().unwrap();
    assert_eq!(removed.len(), 3, "record, plan and journal: {removed:?}");
    drop(repo);
    let path = Repo::store_path(dir.path());
    assert_eq!(raw_keys_naming(&path, gone.as_str()), Vec::<String>::new());
    let held = raw_keys_naming(&path, kept.as_str());
    assert!(
        held.iter()
            .any(|k| k.starts_with("chunks journal/") && k.ends_with(" 1")),
        "the other patient's journal keeps its pieces: {held:?}"
    );
    assert!(held.iter().any(|k| k.starts_with("day_index ")), "{held:?}");
    let repo = Repo::open(dir.path(), Some(data_key()), &mut rng).unwrap();
    let after = omsyn_tests::snapshot(&repo);
    let kept_before: Vec<_> = before
        .iter()
        .filter(|(id, _)| !id.contains(gone.as_str()))
        .collect();
    assert_eq!(after.iter().collect::<Vec<_>>(), kept_before);
}

/// Every sealed chunk of a store file by (document, sequence), read with redb: as format 8 kept
/// them (one value each), or as format 9 does (its pieces joined in order; format 10's tail
/// records are no chunks).
fn raw_chunks(path: &Path, format: u32) -> std::collections::BTreeMap<(String, u64), Vec<u8>> {
    use redb::{ReadableDatabase, ReadableTable};
    let db = redb::Database::open(path).unwrap();
    let read = db.begin_read().unwrap();
    let mut out = std::collections::BTreeMap::<(String, u64), Vec<u8>>::new();
    if format == 8 {
        let chunks: redb::TableDefinition<(&str, u64), &[u8]> =
            redb::TableDefinition::new("chunks");
        for item in read.open_table(chunks).unwrap().iter().unwrap() {
            let (k, v) = item.unwrap();
            let (doc, seq) = k.value();
            out.insert((doc.to_owned(), seq), v.value().to_vec());
        }
        return out;
    }
    let chunks: redb::TableDefinition<(&str, u64, u32), &[u8]> =
        redb::TableDefinition::new("chunks");
    for item in read.open_table(chunks).unwrap().iter().unwrap() {
        let (k, v) = item.unwrap();
        let (doc, seq, piece) = k.value();
        if seq == TAIL_SEQ {
            continue;
        }
        let chunk = out.entry((doc.to_owned(), seq)).or_default();
        assert_eq!(piece == 0, chunk.is_empty(), "{doc} {seq}: pieces in order");
        chunk.extend_from_slice(v.value());
    }
    out
}

/// Rewrites the chunks of a store file the way formats 1-8 kept them: one value each.
fn write_chunks_as_format_8(path: &Path) {
    let chunks = raw_chunks(path, FORMAT_VERSION);
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    let pieces: redb::TableDefinition<(&str, u64, u32), &[u8]> =
        redb::TableDefinition::new("chunks");
    assert!(tx.delete_table(pieces).unwrap());
    let whole: redb::TableDefinition<(&str, u64), &[u8]> = redb::TableDefinition::new("chunks");
    let mut table = tx.open_table(whole).unwrap();
    for ((doc, seq), chunk) in &chunks {
        table
            .insert((doc.as_str(), *seq), chunk.as_slice())
            .unwrap();
    }
    drop(table);
    tx.commit().unwrap();
}

/// A format-8 store (each chunk one value, day rows in JSON) migrates to chunks in pieces with
/// not one byte of any chunk changed, derives its day index again in the binary form, and
/// reports its days exactly as the format-8 build did.
#[test]
fn a_version_8_store_keeps_every_chunk_byte_for_byte_and_reports_its_days_as_before() {
    let dir = omsyn_tests::fixture_copy("store-v8", GOLDEN_FILES);
    let path = Repo::store_path(dir.path());
    let before = raw_chunks(&path, 8);
    assert!(
        before.values().any(|chunk| chunk.len() > 3 * 4096),
        "the fixture holds a chunk of several pages"
    );
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    assert!(!repo.store().needs_rederive().unwrap());
    for (day, report, old) in golden_day_reports(&repo, "store-v8") {
        assert_eq!(serde_json::to_value(&report).unwrap(), old, "{day}");
    }
    drop(repo);
    assert_eq!(raw_chunks(&path, FORMAT_VERSION), before);
}

/// Where format 10 keeps a document's bookkeeping in `chunks`: the sequence number of its tail
/// record.
const TAIL_SEQ: u64 = u64::MAX;

type Pieces = redb::TableDefinition<'static, (&'static str, u64, u32), &'static [u8]>;
type PiecesTable<'a> = redb::Table<'a, (&'static str, u64, u32), &'static [u8]>;
const CHUNKS: Pieces = redb::TableDefinition::new("chunks");
const DOCS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("docs");
const LOG: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("log");
const DOC_SEQ: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("doc_seq");

/// The five words of a document's bookkeeping (next chunk number, chunk count, incremental
/// bytes, snapshot bytes, log position or 0); a row of four words has no position.
fn words(bytes: &[u8]) -> Vec<u64> {
    let mut out: Vec<u64> = bytes
        .chunks(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect();
    out.resize(5, 0);
    out
}

/// Each document's bookkeeping as a format-9 store keeps it: its `docs` row, with the log
/// position from `doc_seq` where the row has none.
fn bookkeeping_v9(path: &Path) -> std::collections::BTreeMap<String, Vec<u64>> {
    reading(path, |read| {
        let doc_seq = read.open_table(DOC_SEQ).unwrap();
        docs_rows(read)
            .into_iter()
            .map(|(doc, row)| {
                let mut meta = words(&row);
                if meta[4] == 0 {
                    meta[4] = doc_seq.get(doc.as_str()).unwrap().unwrap().value();
                }
                (doc, meta)
            })
            .collect()
    })
}

/// Runs `f` on a read transaction of the store file at `path`, opened with redb after the node
/// closed: what the store really holds, not what its API shows.
fn reading<T>(path: &Path, f: impl FnOnce(&redb::ReadTransaction) -> T) -> T {
    use redb::ReadableDatabase;
    let db = redb::Database::open(path).unwrap();
    f(&db.begin_read().unwrap())
}

/// Every `docs` row: document id and value.
fn docs_rows(read: &redb::ReadTransaction) -> Vec<(String, Vec<u8>)> {
    use redb::ReadableTable;
    let docs = read.open_table(DOCS).unwrap();
    docs.iter()
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.value().to_owned(), v.value().to_vec())
        })
        .collect()
}

/// Each document's bookkeeping as format 10 keeps it (its tail record), checking that its
/// `docs` row says nothing else.
fn bookkeeping_v10(path: &Path) -> std::collections::BTreeMap<String, Vec<u64>> {
    reading(path, |read| {
        let chunks = read.open_table(CHUNKS).unwrap();
        docs_rows(read)
            .into_iter()
            .map(|(doc, row)| {
                assert!(row.is_empty(), "{doc}: the row only lists");
                let tail = chunks.get((doc.as_str(), TAIL_SEQ, 0)).unwrap().unwrap();
                assert_eq!(tail.value().len(), 40);
                (doc, words(tail.value()))
            })
            .collect()
    })
}

/// The change log: position → document, as stored.
fn raw_log(path: &Path) -> Vec<(u64, String)> {
    use redb::ReadableTable;
    reading(path, |read| {
        let log = read.open_table(LOG).unwrap();
        log.iter()
            .unwrap()
            .map(|item| {
                let (k, v) = item.unwrap();
                (k.value(), v.value().to_owned())
            })
            .collect()
    })
}

/// Moves each document's bookkeeping back into its `docs` row, as formats 1-9 kept it.
fn write_bookkeeping_as_format_9(path: &Path) {
    let tails = bookkeeping_v10(path);
    let db = redb::Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut docs = tx.open_table(DOCS).unwrap();
        let mut chunks = tx.open_table(CHUNKS).unwrap();
        tx.open_table(DOC_SEQ).unwrap();
        for (doc, meta) in &tails {
            let row: Vec<u8> = meta.iter().flat_map(|w| w.to_le_bytes()).collect();
            docs.insert(doc.as_str(), row.as_slice()).unwrap();
            chunks.remove((doc.as_str(), TAIL_SEQ, 0)).unwrap().unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A format-9 store (bookkeeping in `docs` rows, some positions still in `doc_seq`) migrates to
/// tail records with every chunk byte for byte, the same bookkeeping and log, the same day
/// reports, and takes a write afterwards at the log's next position.
#[test]
fn a_version_9_store_keeps_every_chunk_and_its_log_order_and_takes_a_write_after_migrating() {
    let dir = omsyn_tests::fixture_copy("store-v9", GOLDEN_FILES);
    let path = Repo::store_path(dir.path());
    let chunks_before = raw_chunks(&path, 9);
    let meta_before = bookkeeping_v9(&path);
    let log_before = raw_log(&path);
    assert!(
        log_before.len() >= meta_before.len() && meta_before.values().any(|m| m[1] > 1),
        "the fixture holds documents of several chunks"
    );
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    assert!(!repo.store().needs_rederive().unwrap(), "no index changed");
    for (day, report, old) in golden_day_reports(&repo, "store-v9") {
        assert_eq!(serde_json::to_value(&report).unwrap(), old, "{day}");
    }
    let docs_before = omsyn_tests::snapshot(&repo);
    drop(repo);
    assert_eq!(raw_chunks(&path, FORMAT_VERSION), chunks_before);
    assert_eq!(bookkeeping_v10(&path), meta_before);
    assert_eq!(raw_log(&path), log_before);
    assert!(
        reading(&path, |read| read.open_table(DOC_SEQ).is_err()),
        "doc_seq is dropped"
    );

    let mut rng = StdRng::seed_from_u64(4);
    let repo = Repo::open(dir.path(), None, &mut rng).unwrap();
    assert_eq!(omsyn_tests::snapshot(&repo), docs_before);
    let (patient, _) = repo.patients().unwrap().into_iter().next().unwrap();
    let at = omsyn_tests::at;
    let before = repo.journal(&patient).unwrap().0.len();
    repo.add_note(at("12:00"), &mut rng, &patient, None, at("12:00"), "after")
        .unwrap();
    assert_eq!(repo.journal(&patient).unwrap().0.len(), before + 1);
    drop(repo);
    let log = raw_log(&path);
    let (last, doc) = log.last().unwrap();
    assert_eq!(*last, log_before.last().unwrap().0 + 1);
    let meta = &bookkeeping_v10(&path)[doc];
    let old = meta_before.get(doc).cloned().unwrap_or_default();
    assert_eq!(meta[4], *last, "the tail holds the new position");
    assert!(
        old.is_empty() || meta[0] == old[0] + 1,
        "{doc}: {old:?} → {meta:?}"
    );
    assert_eq!(
        log.iter().filter(|(_, d)| d == doc).count(),
        1,
        "the old position is left"
    );
    let repo = Repo::open(dir.path(), None, &mut rng).unwrap();
    assert_eq!(repo.journal(&patient).unwrap().0.len(), before + 1);
}

/// Every day-index key as stored: (day, key).
fn day_index_keys(path: &Path) -> Vec<(String, String)> {
    use redb::ReadableTable;
    let day_index: redb::TableDefinition<(&str, &str), &[u8]> =
        redb::TableDefinition::new("day_index");
    reading(path, |read| {
        read.open_table(day_index)
            .unwrap()
            .iter()
            .unwrap()
            .map(|item| {
                let (k, _) = item.unwrap();
                let (day, key) = k.value();
                (day.to_owned(), key.to_owned())
            })
            .collect()
    })
}

/// A format-10 store (day-index keys shared by whichever documents named a visit or entry)
/// migrates to keys that end with the month or day log that derived them: every chunk and log
/// entry as before, the same rows under their owners' keys, the same day reports.
#[test]
fn a_version_10_store_keys_each_day_row_by_what_derived_it_and_reports_as_before() {
    let dir = omsyn_tests::fixture_copy("store-v10", GOLDEN_FILES);
    let path = Repo::store_path(dir.path());
    let chunks_before = raw_chunks(&path, 10);
    let log_before = raw_log(&path);
    let keys_before = day_index_keys(&path);
    for kind in ["v/", "p/", "d/"] {
        assert!(
            keys_before.iter().any(|(_, k)| k.starts_with(kind)),
            "the fixture holds {kind} rows"
        );
    }
    assert!(keys_before.iter().all(|(_, k)| k.split('/').count() == 3));
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    assert!(!repo.store().needs_rederive().unwrap(), "derived on open");
    for (day, report, old) in golden_day_reports(&repo, "store-v10") {
        assert_eq!(serde_json::to_value(&report).unwrap(), old, "{day}");
    }
    drop(repo);
    assert_eq!(raw_chunks(&path, FORMAT_VERSION), chunks_before);
    assert_eq!(raw_log(&path), log_before);
    let keys_after = day_index_keys(&path);
    let mut unscoped = Vec::new();
    for (day, key) in &keys_after {
        let (rest, owner) = key.rsplit_once('/').unwrap();
        let staff_deviation = rest.starts_with("d/") && !rest.starts_with("d/p-");
        if staff_deviation {
            assert_eq!(owner, day, "a day log's row ends with its day: {key}");
        } else {
            let month = omsyn_core::Month::parse(owner).unwrap();
            assert!(
                key.starts_with("v/") || day.starts_with(&month.to_string()),
                "{key} on {day}"
            );
        }
        unscoped.push((day.clone(), rest.to_owned()));
    }
    unscoped.sort();
    assert_eq!(
        unscoped, keys_before,
        "the same rows, each under its owner's key"
    );
}

/// Format 11 kept one certificate per node: each it held opens as the first of its node's
/// history (the table every change's author is looked up in), and nothing else changes.
#[test]
fn a_version_11_store_keeps_each_certificate_it_held_as_its_nodes_history_and_reports_as_before() {
    use redb::ReadableTableMetadata;
    let dir = omsyn_tests::fixture_copy("store-v11", GOLDEN_FILES);
    let path = Repo::store_path(dir.path());
    let chunks_before = raw_chunks(&path, 11);
    let log_before = raw_log(&path);
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    for (day, report, mut old) in golden_day_reports(&repo, "store-v11") {
        // The command line prints devices under names of its own (`id`, `last_seen`).
        let mut new = serde_json::to_value(&report).unwrap();
        let (devices, printed) = (new["devices"].take(), old["devices"].take());
        assert_eq!(devices[0]["node"], printed[0]["id"], "{day}");
        assert_eq!(devices[0]["name"], "Kari Nordmann", "{day}");
        assert_eq!(new, old, "{day}");
    }
    let certs = repo.known_certificates().unwrap();
    let roles: Vec<Role> = certs.iter().map(|c| c.grant().role).collect();
    assert_eq!(roles.len(), 2, "the base's own and its nurse's");
    assert!(roles.contains(&Role::Base) && roles.contains(&Role::Nurse));
    for cert in &certs {
        let history = repo.store().certificate_history(&cert.node()).unwrap();
        assert_eq!(history, vec![cert.clone()]);
    }
    drop(repo);
    let history: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("cert_history");
    let rows = reading(&path, |read| {
        read.open_table(history).unwrap().len().unwrap()
    });
    assert_eq!(rows, 2, "both are rows of the history");
    assert_eq!(raw_chunks(&path, FORMAT_VERSION), chunks_before);
    assert_eq!(raw_log(&path), log_before);
}

/// Format 12's name index held a patient's name alone: migrated, each row gains what tells her
/// apart from another of the name, so two Kari Dahl are two lines in a list; nothing else
/// changes.
#[test]
fn a_version_12_store_tells_two_patients_of_one_name_apart_and_reports_as_before() {
    let dir = omsyn_tests::fixture_copy("store-v12", GOLDEN_FILES);
    let path = Repo::store_path(dir.path());
    let chunks_before = raw_chunks(&path, 12);
    let log_before = raw_log(&path);
    let repo = Repo::open(dir.path(), None, &mut StdRng::seed_from_u64(3)).unwrap();
    for (day, report, mut old) in golden_day_reports(&repo, "store-v12") {
        let mut new = serde_json::to_value(&report).unwrap();
        let (devices, printed) = (new["devices"].take(), old["devices"].take());
        assert_eq!(devices[0]["node"], printed[0]["id"], "{day}");
        assert_eq!(new, old, "{day}");
    }
    let names = repo.names_and_hints().unwrap();
    let karis: Vec<_> = (names.iter())
        .filter(|(_, (name, _))| name == "Kari Dahl")
        .map(|(id, (_, hint))| (id.clone(), hint.clone()))
        .collect();
    let mut hints: Vec<_> = karis.iter().map(|(_, hint)| hint.clone()).collect();
    hints.sort();
    assert_eq!(
        hints,
        [
            Some("f. 03.05.1952".to_owned()),
            Some("f. 12.03.1941".to_owned())
        ]
    );
    let labels = omsyn_core::repo::tell_apart(&names, karis.iter().map(|(id, _)| id));
    let mut shown: Vec<&String> = labels.values().collect();
    shown.sort();
    assert_eq!(
        shown,
        ["Kari Dahl (f. 03.05.1952)", "Kari Dahl (f. 12.03.1941)"]
    );
    drop(repo);
    assert_eq!(raw_chunks(&path, FORMAT_VERSION), chunks_before);
    assert_eq!(raw_log(&path), log_before);
}

/// A store asked to derive its indexes again (as a migration asks), holding more documents than
/// one write derives: stopped after the first write, the request stands; opened again, every
/// document's rows come back, the request cleared, the day reported as before.
#[test]
fn a_store_derives_its_indexes_again_over_several_writes_and_whole_after_a_stop_half_way() {
    use omsyn_core::docs::plan::{NewVisit, VisitKind};
    let at = omsyn_tests::at;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(12);
    let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, Some(data_key()), &mut rng).unwrap();
    let r = &mut rng;
    // 120 patients, each with a record, a visit plan and a journal: 360 documents.
    repo.transaction(|tx| {
        for i in 0..120 {
            let name = format!("Pasient {i}");
            let patient = tx.add_patient(at("07:00"), r, &[(PatientField::Name, name)])?;
            let visit = NewVisit {
                patient,
                start: at("09:00"),
                end: at("09:20"),
                kind: VisitKind::Physical,
                tiltak: vec![],
                staff: vec![],
            };
            let visit = tx.plan_visit(at("07:00"), r, &visit)?;
            tx.visit_performed(at("09:05"), r, &visit, at("09:05"), None, None)?;
        }
        Ok::<_, omsyn_core::RepoError>(())
    })
    .unwrap();
    let day = at("09:00").day();
    let gate = omsyn_tests::gate;
    let before = day_report(&repo, day, None, &mut gate(&repo)).unwrap();
    assert_eq!(before.totals.done, 120);
    drop(repo);
    let path = Repo::store_path(dir.path());
    let rows_before = day_index_keys(&path);
    {
        // What a migration leaves: the index and its owner lists emptied, the request set.
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        let day_index: redb::TableDefinition<(&str, &str), &[u8]> =
            redb::TableDefinition::new("day_index");
        let owners: redb::TableDefinition<&str, &[u8]> =
            redb::TableDefinition::new("day_index_owners");
        tx.delete_table(day_index).unwrap();
        tx.delete_table(owners).unwrap();
        tx.open_table(day_index).unwrap();
        tx.open_table(owners).unwrap();
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        tx.open_table(meta)
            .unwrap()
            .insert("rederive", [1u8].as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    assert!(day_index_keys(&path).is_empty());
    // A node stopped after the first write (of two): the request stands.
    let store = Store::open(&path, &keys_of(dir.path()), [7; 16]).unwrap();
    let ctx = omsyn_core::pipeline::DeriveContext::of(&store, None);
    omsyn_core::pipeline::rederive_writes(&store, &ctx, 1).unwrap();
    assert!(store.needs_rederive().unwrap(), "not cleared half-way");
    drop(store);
    let half = day_index_keys(&path).len();
    assert!(
        half > 0 && half < rows_before.len(),
        "{half} of {}",
        rows_before.len()
    );
    let repo = Repo::open(dir.path(), Some(data_key()), &mut rng).unwrap();
    assert!(
        !repo.store().needs_rederive().unwrap(),
        "the request is cleared"
    );
    let after = day_report(&repo, day, None, &mut gate(&repo)).unwrap();
    assert_eq!(after, before);
    assert_eq!(
        after,
        day_report_from_documents(&repo, day, None, &mut gate(&repo)).unwrap()
    );
    drop(repo);
    assert_eq!(
        day_index_keys(&path),
        rows_before,
        "every row derived again"
    );
}

/// A closed base store holding two patients' pieces ([`patient_with_pieces`]): `hit`, whose
/// journal a test damages on disk, and `spared`.
struct HitJournal {
    dir: tempfile::TempDir,
    rng: StdRng,
    path: std::path::PathBuf,
    hit: omsyn_core::ids::PatientId,
    spared: omsyn_core::ids::PatientId,
    /// The id of `hit`'s journal, and its entries before any damage.
    journal: String,
    entries: usize,
}

impl HitJournal {
    fn new(seed: u64) -> HitJournal {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let profile = omsyn_tests::TestNode::base(6).repo.profile().clone();
        let repo = Repo::init(dir.path(), profile, Some(data_key()), &mut rng).unwrap();
        let hit = patient_with_pieces(&repo, &mut rng, "Hit");
        let spared = patient_with_pieces(&repo, &mut rng, "Spared");
        let entries = repo.journal(&hit).unwrap().0.len();
        drop(repo);
        let path = Repo::store_path(dir.path());
        let journal = bookkeeping_v10(&path)
            .into_keys()
            .find(|d| d.starts_with(&format!("journal/{hit}")))
            .unwrap();
        HitJournal {
            dir,
            rng,
            path,
            hit,
            spared,
            journal,
            entries,
        }
    }

    fn open(&mut self) -> Repo {
        Repo::open(self.dir.path(), Some(data_key()), &mut self.rng).unwrap()
    }

    /// Cuts the journal's tail record short, as damage on disk would.
    fn damage_tail(&self) {
        self.edit_chunks(|t| {
            t.insert((self.journal.as_str(), TAIL_SEQ, 0), [7u8; 12].as_slice())
                .unwrap();
        });
    }

    /// Removes the journal's tail record.
    fn remove_tail(&self) {
        self.edit_chunks(|t| {
            t.remove((self.journal.as_str(), TAIL_SEQ, 0)).unwrap();
        });
    }

    fn edit_chunks(&self, f: impl FnOnce(&mut PiecesTable<'_>)) {
        let db = redb::Database::open(&self.path).unwrap();
        let tx = db.begin_write().unwrap();
        f(&mut tx.open_table(CHUNKS).unwrap());
        tx.commit().unwrap();
    }
}

/// A document's tail record damaged on disk (cut short) makes reading or writing that document
/// fail with an error naming it, never a panic or a document taken for new, and `verify` lists
/// it; a missing one too.
#[test]
fn a_damaged_bookkeeping_record_gives_a_clear_error_naming_its_document() {
    let mut h = HitJournal::new(12);
    let (hit, spared, journal) = (h.hit.clone(), h.spared.clone(), h.journal.clone());
    h.damage_tail();
    let repo = h.open();
    let at = omsyn_tests::at;
    let err = repo.journal(&hit).unwrap_err().to_string();
    assert!(
        err.contains(&format!("bookkeeping record of {journal} is damaged")),
        "{err}"
    );
    let rng = &mut h.rng;
    let err = repo
        .add_note(at("12:00"), rng, &hit, None, at("12:00"), "x")
        .unwrap_err()
        .to_string();
    assert!(err.contains(&journal), "{err}");
    assert!(!repo.journal(&spared).unwrap().0.is_empty(), "others read");
    repo.add_note(at("12:00"), rng, &spared, None, at("12:00"), "y")
        .unwrap();
    let found = repo.damaged_documents().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].doc.to_string(), journal);
    drop(repo);
    h.remove_tail();
    let err = Store::verify(&h.path, &keys_of(h.dir.path()), [7; 16])
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("{journal} has no bookkeeping record")),
        "{err}"
    );
}

/// A document whose tail record is gone is never taken for new (its next chunk would overwrite
/// chunk 0); a repair rebuilds it with its place in the log, found by reading the log; and a
/// damaged record does not stop the patient's removal.
#[test]
fn a_missing_or_damaged_bookkeeping_record_is_never_written_over_and_blocks_neither_repair_nor_removal()
 {
    let mut h = HitJournal::new(13);
    let (hit, journal, path) = (h.hit.clone(), h.journal.clone(), h.path.clone());
    let chunks_of = |path: &Path| -> Vec<Vec<u8>> {
        raw_chunks(path, 10)
            .into_iter()
            .filter(|((doc, seq), _)| *doc == journal && *seq != TAIL_SEQ)
            .map(|(_, chunk)| chunk)
            .collect()
    };
    let stored = chunks_of(&path);
    h.remove_tail();
    let at = omsyn_tests::at;
    let repo = h.open();
    let err = repo
        .add_note(at("12:00"), &mut h.rng, &hit, None, at("12:00"), "x")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{journal} has no bookkeeping record")),
        "{err}"
    );
    drop(repo);
    assert_eq!(chunks_of(&path), stored, "nothing written over");
    let repo = h.open();
    let report = repo.repair(at("12:30")).unwrap();
    assert!(report.left.is_empty(), "{report:?}");
    repo.add_note(at("13:00"), &mut h.rng, &hit, None, at("13:00"), "y")
        .unwrap();
    assert_eq!(repo.journal(&hit).unwrap().0.len(), h.entries + 1);
    drop(repo);
    let logged: Vec<_> = raw_log(&path)
        .into_iter()
        .filter(|(_, doc)| *doc == journal)
        .collect();
    assert_eq!(logged.len(), 1, "one place in the log: {logged:?}");
    h.damage_tail();
    let repo = h.open();
    let mut batch = repo.store().write().unwrap();
    assert_eq!(batch.remove_patient(&hit).unwrap().len(), 3);
    batch.commit().unwrap();
    drop(repo);
    assert_eq!(raw_keys_naming(&path, hit.as_str()), Vec::<String>::new());
    assert!(raw_log(&path).iter().all(|(_, doc)| *doc != journal));
}

/// A certificate of this node's own planted in its store file (a byte of its name changed, its
/// signature no longer valid) makes what is judged by the node's grant — the need policy a
/// session shares by, an import, a write — fail with the store's error: none falls back to what
/// the profile claims.
#[test]
fn a_planted_own_certificate_fails_sharing_importing_and_writing_instead_of_trusting_the_profile() {
    use redb::ReadableTable;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let profile = omsyn_tests::TestNode::nurse(6, "N1").repo.profile().clone();
    let repo = Repo::init(dir.path(), profile, None, &mut rng).unwrap();
    omsyn_tests::enroll(
        &repo,
        &omsyn_tests::test_org(),
        omsyn_tests::CERT_VALIDITY_MS,
    );
    let node = repo.id();
    drop(repo);
    {
        let db = redb::Database::open(Repo::store_path(dir.path())).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("certs");
            let mut certs = tx.open_table(def).unwrap();
            let held = certs.get(node.as_bytes().as_slice()).unwrap().unwrap();
            let mut planted = held.value().to_vec();
            drop(held);
            let at = (planted.windows(8).position(|w| w == b"Nurse N1")).unwrap();
            planted[at + 7] = b'9';
            certs
                .insert(node.as_bytes().as_slice(), planted.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let repo = Repo::open(dir.path(), None, &mut rng).unwrap();
    let refused = |what: &str, e: String| {
        assert!(e.contains("stored"), "{what}: {e}");
    };
    refused("need policy", repo.need_policy().unwrap_err().to_string());
    refused("author", repo.author().unwrap_err().to_string());
    let mut base = omsyn_tests::TestNode::base(7);
    base.add_patient("Liv");
    let bytes = base.repo.export_unchecked(None).unwrap();
    refused(
        "import",
        repo.import(omsyn_tests::at("12:00"), &bytes)
            .unwrap_err()
            .to_string(),
    );
}
