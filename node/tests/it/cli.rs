//! The CLI, run as a user would run it: a real process on a real data directory.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

pub(crate) struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A data directory with no node in it yet.
    pub(crate) fn blank() -> Node {
        Node {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A node of zone "Sone 1", not enrolled in any organisation yet.
    pub(crate) fn new(role: &str, name: &str, staff: &str) -> Node {
        Node::new_in(&std::env::temp_dir(), role, name, staff)
    }

    /// [`Node::new`] with its data directory in `parent` (a file system of the test's own).
    pub(crate) fn new_in(parent: &Path, role: &str, name: &str, staff: &str) -> Node {
        let node = Node {
            dir: tempfile::tempdir_in(parent).unwrap(),
        };
        node.ok(&[
            "init",
            "--role",
            role,
            "--name",
            name,
            "--staff-id",
            staff,
            "--zone",
            "Sone 1",
        ]);
        node
    }

    /// A base that creates the organisation (and so can enrol others).
    pub(crate) fn admin_base(name: &str, staff: &str) -> Node {
        let base = Node::new("base", name, staff);
        base.ok(&["org", "create", "--name", "Testkommune hjemmesykepleie"]);
        base
    }

    /// Enrols `device` in this base's organisation the offline way: the request and the
    /// certificate travel as text, as through a QR code or a file.
    pub(crate) fn enroll(&self, device: &Node) {
        let request = device.ok(&["enroll", "request"]);
        let cert = self.ok(&["enroll", "approve", str_of(&request, "request")]);
        device.ok(&["enroll", "install", str_of(&cert, "certificate")]);
    }

    /// A home unit of zone "Sone 1" serving `patient`, not enrolled yet.
    pub(crate) fn home_unit(name: &str, patient: &str) -> Node {
        let node = Node {
            dir: tempfile::tempdir().unwrap(),
        };
        node.ok(&[
            "init",
            "--role",
            "home-unit",
            "--name",
            name,
            "--patient",
            patient,
            "--zone",
            "Sone 1",
        ]);
        node
    }

    /// Registers a patient of zone "Sone 1" with `nurse` (a staff id) in the care team, so the
    /// nurse's phone holds the patient whatever the date. Returns the patient id.
    pub(crate) fn add_patient(&self, name: &str, nurse: &str) -> String {
        let patient = str_of(
            &self.ok(&["patient", "add", "--name", name, "--zone", "Sone 1"]),
            "id",
        )
        .to_owned();
        // A care team takes only staff the base knows: one whose phone is not enrolled yet is
        // registered first, as a coordinator would.
        let staff = self.ok(&["staff", "list"]);
        let known = (staff["staff"].as_array().unwrap().iter()).any(|m| m["id"] == nurse);
        if !known {
            self.ok(&["staff", "add", "--id", nurse, "--name", nurse]);
        }
        self.ok(&["team", "--patient", &patient, "--add", nurse]);
        patient
    }

    /// This node's id.
    pub(crate) fn id(&self) -> String {
        str_of(&self.ok(&["id"]), "id").to_owned()
    }

    pub(crate) fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"));
        command.arg("--data").arg(self.dir.path()).args(args);
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with `--json`, asserts success, returns the JSON document.
    pub(crate) fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "omsyn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "omsyn {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Runs, asserts failure, returns stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "omsyn {args:?} should have failed");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// Registers `n` patients in one transaction, straight through omsyn-core (fast), each with
/// staff member S1 in the care team.
pub(crate) fn populate(node: &Node, n: usize) {
    use omsyn_core::docs::record::PatientField;
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(n as u64);
    let repo = omsyn_core::Repo::open(node.path(), None, &mut rng).unwrap();
    let t = omsyn_core::Timestamp::parse("2026-11-23T07:00:00+01:00").unwrap();
    repo.transaction(|tx| {
        for i in 0..n {
            let p = tx.add_patient(
                t,
                &mut rng,
                &[
                    (PatientField::Name, format!("Pasient {i}")),
                    (PatientField::Zone, "Sone 1".into()),
                ],
            )?;
            tx.set_team_member(t, &p, &omsyn_core::ids::StaffId::parse("S1").unwrap(), true)?;
        }
        Ok::<_, omsyn_core::RepoError>(())
    })
    .unwrap();
}

pub(crate) const START: &str = "2026-11-23T08:00:00+01:00";
pub(crate) const END: &str = "2026-11-23T08:30:00+01:00";

/// A base with one patient, a medication slot and a visit: (base, patient, slot, visit).
pub(crate) fn planned_day() -> (Node, String, String, String) {
    let base = Node::admin_base("Base Øst", "K001");
    // The nurse the visit is planned for; her phone is enrolled later, if at all.
    base.ok(&["staff", "add", "--id", "S1", "--name", "Kari Nordmann"]);
    let patient = str_of(
        &base.ok(&[
            "patient",
            "add",
            "--name",
            "Turid Nilsen",
            "--address",
            "Parkveien 98",
        ]),
        "id",
    )
    .to_owned();
    let med = base.ok(&[
        "med",
        "add",
        "--patient",
        &patient,
        "--name",
        "Metformin",
        "--dose",
        "1",
        "--slot",
        "08:00",
    ]);
    let slot = format!("{}@08:00", str_of(&med, "id"));
    let visit = str_of(
        &base.ok(&[
            "visit",
            "plan",
            "--patient",
            &patient,
            "--start",
            START,
            "--end",
            END,
            "--kind",
            "digital",
            "--staff",
            "S1",
        ]),
        "id",
    )
    .to_owned();
    // S1 is on Turid's care team: a need that holds whatever day the test runs on (the visit's
    // day, 2026-11-23, is on S1's work list only around that day).
    base.ok(&["team", "--patient", &patient, "--add", "S1"]);
    (base, patient, slot, visit)
}

#[test]
fn init_creates_an_owner_only_key_and_id_reports_it() {
    let node = Node::new("nurse", "Kari Nordmann", "HPR123");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.path().join("node.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let id = node.ok(&["id"]);
    assert_eq!(id["role"], "nurse");
    assert_eq!(id["staff"], "HPR123");
    assert_eq!(str_of(&id, "id").len(), 64);
}

#[test]
fn init_twice_refuses_to_overwrite_the_identity() {
    let node = Node::new("base", "Base", "K1");
    let before = node.ok(&["id"]);
    let err = node.fails(&["init", "--role", "base", "--name", "Other"]);
    assert!(err.contains("already holds a node identity"), "{err}");
    assert_eq!(node.ok(&["id"])["id"], before["id"]);
}

#[test]
fn commands_on_an_uninitialised_directory_say_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
        .args(["--data"])
        .arg(dir.path())
        .args(["patient", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("omsyn init"));
}

#[test]
fn a_documented_day_shows_in_show_conflicts_and_day_report() {
    let (base, patient, slot, visit) = planned_day();
    // The nurse's phone gets the plan and documents the visit; the base reviews.
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    transfer(&base, &nurse);
    nurse.ok(&[
        "visit",
        "done",
        "--visit",
        &visit,
        "--arrival",
        "2026-11-23T08:02:00+01:00",
    ]);
    nurse.ok(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        &slot,
        "--at",
        "2026-11-23T08:05:00+01:00",
    ]);
    nurse.ok(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        &slot,
        "--at",
        "2026-11-23T08:06:00+01:00",
    ]);
    nurse.ok(&[
        "observe",
        "--patient",
        &patient,
        "--kind",
        "spo2",
        "--value",
        "96",
        "--unit",
        "%",
    ]);
    let note = nurse.ok(&[
        "note",
        "add",
        "--patient",
        &patient,
        "--visit",
        &visit,
        "--text",
        "Pasienten i fin form",
    ]);
    nurse.ok(&[
        "note",
        "correct",
        "--patient",
        &patient,
        "--entry",
        str_of(&note, "id"),
        "--text",
        "Pasienten i god form",
    ]);
    transfer(&nurse, &base);

    let view = base.ok(&["show", "--patient", &patient]);
    assert_eq!(view["record"]["id"], patient.as_str());
    assert_eq!(view["journal"].as_array().unwrap().len(), 6, "{view:#}");
    // As people read it: the dose by its medication, the visit by its time, not by their ids.
    let out = base.run(&["show", "--patient", &patient]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("GIVEN Metformin 08:00 on 2026-11-23"),
        "{text}"
    );
    assert!(text.contains("visit of 08:00-08:30 performed"), "{text}");
    assert!(
        text.contains("correction of the note of ") && text.contains(": Pasienten i god form"),
        "{text}"
    );
    // The original stays, marked as superseded.
    assert!(
        text.contains("note: Pasienten i fin form [corrected]"),
        "{text}"
    );
    let journal = text.split("journal:").nth(1).unwrap_or_default();
    let journal = journal.split("CONFLICT").next().unwrap_or_default();
    assert!(!journal.contains("m-") && !journal.contains("v-"), "{text}");
    let conflicts = &base.ok(&["conflicts"])["conflicts"];
    assert_eq!(conflicts.as_array().unwrap().len(), 1);
    assert_eq!(conflicts[0]["kind"], "dose-given-twice");

    let report = base.ok(&["day-report", "--date", "2026-11-23"]);
    assert_eq!(report["totals"]["planned"], 1);
    assert_eq!(report["totals"]["done"], 1);
    assert_eq!(report["digital"]["done"], 1);
    assert_eq!(report["conflicts"].as_array().unwrap().len(), 1);

    let resolved = base.ok(&[
        "conflicts",
        "resolve",
        "--conflict",
        str_of(&conflicts[0], "id"),
        "--note",
        "checked with GP",
    ]);
    assert_eq!(resolved["id"], conflicts[0]["id"]);
    assert_eq!(
        base.ok(&["conflicts"])["conflicts"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Carries everything `from` holds to `to` in an export file.
pub(crate) fn transfer(from: &Node, to: &Node) {
    let file = from.path().join("transfer.omsyn");
    from.ok(&["export", file.to_str().unwrap()]);
    to.ok(&["import", file.to_str().unwrap()]);
}

#[test]
fn cancelled_and_missed_visits_are_counted_in_the_day_report() {
    let (base, patient, _, visit) = planned_day();
    let second = str_of(
        &base.ok(&[
            "visit",
            "plan",
            "--patient",
            &patient,
            "--start",
            "2026-11-23T12:00:00+01:00",
            "--end",
            "2026-11-23T12:20:00+01:00",
            "--kind",
            "physical",
        ]),
        "id",
    )
    .to_owned();
    base.ok(&[
        "visit",
        "missed",
        "--visit",
        &visit,
        "--reason",
        "no-answer",
    ]);
    base.ok(&[
        "visit",
        "cancel",
        "--visit",
        &second,
        "--reason",
        "innlagt på sykehus",
    ]);
    let report = base.ok(&["day-report", "--date", "2026-11-23"]);
    assert_eq!(report["totals"]["planned"], 2);
    assert_eq!(report["totals"]["missed"], 1);
    assert_eq!(report["totals"]["cancelled"], 1);
    assert_eq!(report["per_staff"]["(unassigned)"]["cancelled"], 1);
}

#[test]
fn day_report_filters_by_zone_and_prints_csv() {
    let (base, _, _, visit) = planned_day();
    let in_zone = base.ok(&["day-report", "--date", "2026-11-23", "--zone", "Sone 1"]);
    assert_eq!(in_zone["zone"], "Sone 1");
    // The planned patient has no zone in its record: it belongs to no named zone.
    assert_eq!(in_zone["totals"]["planned"], 0);
    let everyone = base.ok(&["day-report", "--date", "2026-11-23"]);
    assert_eq!(everyone["totals"]["planned"], 1);

    let out = base.run(&["day-report", "--date", "2026-11-23", "--csv"]);
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date;zone;visit;patient;patient_name;start;end;kind;staff;outcome;performed_by"
    );
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains(&visit) && lines[1].contains(";digital;S1;open;"));

    let both = base.fails(&["day-report", "--json", "--csv"]);
    assert!(both.contains("either --json or --csv"), "{both}");
}

#[test]
fn export_and_import_merge_two_nodes_documentation() {
    let (base, patient, slot, _) = planned_day();
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let file = base.path().join("base.omsyn");
    base.ok(&["export", file.to_str().unwrap()]);
    let imported = nurse.ok(&["import", file.to_str().unwrap()]);
    assert!(imported["new_documents"].as_u64().unwrap() >= 2);

    nurse.ok(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        &slot,
        "--at",
        "2026-11-23T08:05:00+01:00",
    ]);
    let back = nurse.path().join("nurse.omsyn");
    nurse.ok(&["export", back.to_str().unwrap(), "--patient", &patient]);
    base.ok(&["import", back.to_str().unwrap()]);
    let view = base.ok(&["show", "--patient", &patient]);
    let journal = view["journal"].as_array().unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(
        journal[0]["author"]["staff"], "S1",
        "the nurse's entry keeps its author"
    );
    assert_eq!(journal[0]["author"]["role"], "nurse");

    // Importing the same file again changes nothing.
    let again = base.ok(&["import", back.to_str().unwrap()]);
    assert_eq!(again["new_changes"], 0);
}

#[test]
fn a_damaged_export_file_is_refused_and_imports_nothing() {
    let (base, _, _, _) = planned_day();
    let other = Node::new("base", "Other", "K2");
    let file = base.path().join("base.omsyn");
    base.ok(&["export", file.to_str().unwrap()]);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let err = other.fails(&["import", file.to_str().unwrap()]);
    assert!(err.contains("checksum"), "{err}");
    bytes.truncate(mid);
    std::fs::write(&file, &bytes).unwrap();
    let err = other.fails(&["import", file.to_str().unwrap()]);
    assert!(
        err.contains("damaged") || err.contains("truncated"),
        "{err}"
    );
    assert_eq!(
        other.ok(&["patient", "list"])["patients"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn bad_arguments_are_named_and_nothing_is_written() {
    let (base, patient, slot, visit) = planned_day();
    for staff in ["A", "B", "C"] {
        base.ok(&["staff", "add", "--id", staff, "--name", staff]);
    }
    let before = base.ok(&["show", "--patient", &patient]);
    let (own_id, long_reason) = (base.id(), "x".repeat(501));
    let cases: &[(&[&str], &str)] = &[
        (&["visit", "done", "--visit", "v-123"], "--visit"),
        (&["show", "--patient", "nobody"], "--patient"),
        (
            &[
                "visit",
                "plan",
                "--patient",
                &patient,
                "--start",
                "tomorrow",
                "--end",
                END,
                "--kind",
                "physical",
            ],
            "--start",
        ),
        (
            &[
                "visit",
                "plan",
                "--patient",
                &patient,
                "--start",
                END,
                "--end",
                START,
                "--kind",
                "physical",
            ],
            "must be after its start",
        ),
        (
            &[
                "visit",
                "plan",
                "--patient",
                &patient,
                "--start",
                START,
                "--end",
                END,
                "--kind",
                "teleport",
            ],
            "--kind",
        ),
        (
            &[
                "visit",
                "plan",
                "--patient",
                &patient,
                "--start",
                START,
                "--end",
                END,
                "--kind",
                "physical",
                "--staff",
                "A",
                "--staff",
                "B",
                "--staff",
                "C",
            ],
            "at most 2 staff",
        ),
        (
            &["med", "give", "--patient", &patient, "--slot", "nonsense"],
            "--slot",
        ),
        (
            &[
                "med",
                "give",
                "--patient",
                &patient,
                "--slot",
                &slot.replace("08:00", "09:00"),
            ],
            "no dose slot 09:00",
        ),
        (
            &["note", "add", "--patient", &patient, "--text", "   "],
            "must not be empty",
        ),
        (
            &[
                "note",
                "correct",
                "--patient",
                &patient,
                "--entry",
                "e-0000000000000000",
                "--text",
                "x",
            ],
            "not found",
        ),
        (&["day-report", "--date", "23.11.2026"], "--date"),
        (
            &[
                "patient",
                "set",
                "--patient",
                &patient,
                "--field",
                "shoe-size",
                "--value",
                "42",
            ],
            "--field",
        ),
        (
            &["conflicts", "resolve", "--conflict", "x-zz", "--note", "n"],
            "--conflict",
        ),
        (&["import", "/nonexistent/file"], "/nonexistent/file"),
        (&["visit", "cancel", "--visit", &visit], "--reason"),
        (
            &["import-worklist", "/nonexistent.csv", "--offset", "1h"],
            "--offset",
        ),
        (
            &["patient", "flag", "--patient", &patient, "--kind", " "],
            "--kind: a flag's kind must not be empty",
        ),
        (
            &[
                "patient",
                "unflag",
                "--patient",
                &patient,
                "--flag",
                "f-0000000000000000",
                "--reason",
                "",
            ],
            "--reason: why the flag is lifted must not be empty",
        ),
        (
            &[
                "patient",
                "contact",
                "--patient",
                &patient,
                "--name",
                "",
                "--relation",
                "datter",
            ],
            "--name: the contact's name must not be empty",
        ),
        (
            &[
                "med",
                "add",
                "--patient",
                &patient,
                "--name",
                "Paracet",
                "--dose",
                " ",
                "--slot",
                "08:00",
            ],
            "--dose: the dose must not be empty",
        ),
        (
            &["patient", "add", "--name", "  "],
            "the patient's name must not be empty",
        ),
        (
            &["revoke", "abcdef", "--reason", "mistet"],
            "abcdef is neither a device's id",
        ),
        (
            &["revoke", &own_id, "--reason", &long_reason],
            "--reason: at most 500 characters",
        ),
    ];
    each_refused_and_nothing_written(&base, &patient, &before, cases);
    assert_eq!(base.ok(&["org", "show"])["revoked"], serde_json::json!([]));
}

/// Runs every case, each of which must fail with an error containing its text; then the
/// patient's view must be `before`: nothing was (half-)written.
pub(crate) fn each_refused_and_nothing_written(
    node: &Node,
    patient: &str,
    before: &Value,
    cases: &[(&[&str], &str)],
) {
    for (args, named) in cases {
        let err = node.fails(args);
        assert!(
            err.contains(named),
            "omsyn {args:?}: error does not name {named:?}: {err}"
        );
    }
    assert_eq!(
        &node.ok(&["show", "--patient", patient]),
        before,
        "nothing was half-written"
    );
}

#[test]
fn a_nurse_node_may_not_plan_visits() {
    let (base, patient, _, _) = planned_day();
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    let file = base.path().join("x.omsyn");
    base.ok(&["export", file.to_str().unwrap()]);
    nurse.ok(&["import", file.to_str().unwrap()]);
    let err = nurse.fails(&[
        "visit",
        "plan",
        "--patient",
        &patient,
        "--start",
        START,
        "--end",
        END,
        "--kind",
        "physical",
    ]);
    assert!(err.contains("a nurse node may not plan visits"), "{err}");
}

#[test]
fn json_errors_are_one_json_document_on_stdout() {
    let node = Node::new("base", "Base", "K1");
    let out = node.run(&["--json", "show", "--patient", "p-0000000000000000"]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(str_of(&v, "error").contains("not found"));
}

#[test]
fn the_data_directory_and_exports_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (base, _, _, _) = planned_day();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A directory `init` creates itself (the umask would make it 0755).
    let fresh = base.path().join("fresh-node");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
        .arg("--data")
        .arg(&fresh)
        .args(["init", "--role", "base", "--name", "B"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(mode(&fresh), 0o700, "the data directory");
    let file = base.path().join("all.omsyn");
    base.ok(&["export", file.to_str().unwrap()]);
    assert_eq!(mode(&file), 0o600, "the export file");
}

/// The shared one-day work list's first row on `date` at 08:00–08:30, under its header.
pub(crate) fn worklist_on(dates: &[&str]) -> String {
    let fixture = include_str!("../../../tests/fixtures/worklist-S-1day.csv");
    let mut lines = vec![fixture.lines().next().unwrap().to_owned()];
    let row = fixture.lines().nth(1).unwrap();
    for date in dates {
        lines.push(
            row.replace("2026-11-23", date)
                .replace(";13:38;13:48;", ";08:00;08:30;"),
        );
    }
    lines.join("\n")
}

#[test]
fn import_worklist_reads_local_times_in_oslo_summer_and_winter_unless_an_offset_is_given() {
    let base = Node::new("base", "Base", "K1");
    let list = base.path().join("list.csv");
    std::fs::write(&list, worklist_on(&["2026-07-15", "2027-01-15"])).unwrap();
    base.ok(&["import-worklist", list.to_str().unwrap()]);
    let shown = |date: &str| {
        let out = base.run(&["--json", "visit", "list", "--date", date]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(shown("2026-07-15").contains("2026-07-15T08:00:00+02:00"));
    assert!(shown("2027-01-15").contains("2027-01-15T08:00:00+01:00"));

    // An explicit offset still wins, for a list made elsewhere.
    let other = Node::new("base", "Base", "K1");
    let list = other.path().join("list.csv");
    std::fs::write(&list, worklist_on(&["2026-07-15"])).unwrap();
    other.ok(&[
        "import-worklist",
        list.to_str().unwrap(),
        "--offset",
        "+01:00",
    ]);
    let out = other.run(&["--json", "visit", "list", "--date", "2026-07-15"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2026-07-15T08:00:00+01:00"));

    // A zone nobody has is refused before anything runs, naming the variable.
    let err = String::from_utf8_lossy(
        &base
            .command(&["id"])
            .env("OMSYN_TZ", "Europe/Olso")
            .output()
            .unwrap()
            .stderr,
    )
    .into_owned();
    assert!(err.contains("OMSYN_TZ"), "{err}");
}

#[test]
fn completions_and_the_man_page_name_the_commands() {
    let node = Node {
        dir: tempfile::tempdir().unwrap(),
    };
    let out = node.run(&["completions", "bash"]);
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_omsyn()"),
        "a bash function: {script:.200}"
    );
    for command in ["import-worklist", "day-report", "enroll", "completions"] {
        assert!(script.contains(command), "{command} completes");
    }
    let out = node.run(&["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH omsyn"),
        "roff: {page:.200}"
    );
    for command in ["import\\-worklist", "day\\-report", "enroll", "visit"] {
        assert!(page.contains(command), "{command} in the man page");
    }
}

#[test]
fn import_worklist_again_prints_each_changed_row() {
    let base = Node::new("base", "Base", "K1");
    let list = base.path().join("list.csv");
    let first = worklist_on(&["2026-11-23"]);
    std::fs::write(&list, &first).unwrap();
    base.ok(&["import-worklist", list.to_str().unwrap()]);
    std::fs::write(&list, first.replace(";08:00;08:30;", ";09:00;09:30;")).unwrap();
    let out = base.run(&["import-worklist", list.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("line 2: Turid Nilsen") && text.contains("08:00-08:30 → 09:00-09:30"),
        "{text}"
    );
    assert!(text.contains("— changed"), "{text}");
    // The list's staff names are kept, and name staff in the day report.
    let report = base.ok(&["day-report", "--date", "2026-11-23"]);
    assert_eq!(report["staff_names"]["S00010"], "Ola Hansen", "{report}");
}

/// About `words` × 5 bytes of text that compresses little, different for each `seed`: notes
/// that fill a link or a disk at their size, not at DEFLATE's.
pub(crate) fn incompressible_text(seed: usize, words: usize) -> String {
    (0..words)
        .map(|i| {
            format!(
                "{:04x} ",
                (i + seed * words).wrapping_mul(2_654_435_761) >> 16 & 0xffff
            )
        })
        .collect()
}
