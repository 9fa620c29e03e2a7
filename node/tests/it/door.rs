//! What people see and type at the CLI: names before ids, values checked where they are typed
//! (the rules the home API and the apps apply, through the same front door), and errors that
//! name the command that fixes them.

use crate::cli::{Node, each_refused_and_nothing_written, planned_day, str_of, transfer};

/// Text output (no `--json`) of a command that succeeds.
fn text(node: &Node, args: &[&str]) -> String {
    let out = node.run(args);
    assert!(
        out.status.success(),
        "omsyn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_visit_list_names_patient_and_staff_and_says_how_each_visit_stands() {
    let (base, patient, _, visit) = planned_day();
    let nurse = Node::new("nurse", "Kari Nordmann", "S1");
    base.enroll(&nurse);
    let later = str_of(
        &base.ok(&[
            "visit",
            "plan",
            "--patient",
            "Turid Nilsen",
            "--start",
            "2026-11-23T12:00:00+01:00",
            "--end",
            "2026-11-23T12:30:00+01:00",
            "--kind",
            "physical",
            "--staff",
            "S1",
        ]),
        "id",
    )
    .to_owned();
    transfer(&base, &nurse);
    nurse.ok(&[
        "visit",
        "done",
        "--visit",
        &visit,
        "--arrival",
        "2026-11-23T08:02:00+01:00",
    ]);
    transfer(&nurse, &base);
    base.ok(&["visit", "cancel", "--visit", &later, "--reason", "innlagt"]);

    let list = text(&base, &["visit", "list", "--date", "2026-11-23"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(
        lines[0].contains("Turid Nilsen") && lines[0].contains("Kari Nordmann"),
        "{list}"
    );
    assert!(lines[0].contains("done by Kari Nordmann"), "{list}");
    assert!(lines[1].contains("cancelled"), "{list}");
    assert!(
        !list.contains("p-") && !list.contains("v-"),
        "no ids unless asked: {list}"
    );
    let with_ids = text(&base, &["visit", "list", "--date", "2026-11-23", "--ids"]);
    assert!(
        with_ids.contains(&visit) && with_ids.contains(&patient),
        "{with_ids}"
    );
}

#[test]
fn a_patient_is_named_by_her_name_where_an_id_is_asked_for() {
    let (base, patient, _, _) = planned_day();
    let shown = base.ok(&["show", "--patient", "turid nilsen"]);
    assert_eq!(shown["record"]["id"], patient.as_str());
    base.ok(&["patient", "add", "--name", "Turid Nilsen"]);
    let err = base.fails(&["show", "--patient", "Turid Nilsen"]);
    assert!(
        err.contains("2 patients are named") && err.contains(&patient),
        "{err}"
    );
    let err = base.fails(&["show", "--patient", "Per Hansen"]);
    assert!(err.contains("no patient on this node is named"), "{err}");
    // Or by her national id, which tells the two Turids apart.
    base.ok(&[
        "patient",
        "set",
        "--patient",
        &patient,
        "--field",
        "national-id",
        "--value",
        "54122069157",
    ]);
    let shown = base.ok(&["show", "--patient", "54122069157"]);
    assert_eq!(shown["record"]["id"], patient.as_str());
    let err = base.fails(&["show", "--patient", "01010112345"]);
    assert!(err.contains("national id"), "{err}");
}

#[test]
fn values_no_one_could_have_measured_or_done_are_refused_from_the_cli_and_nothing_is_written() {
    let (base, patient, _, _) = planned_day();
    let before = base.ok(&["show", "--patient", &patient]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "observe",
                "--patient",
                &patient,
                "--kind",
                "spo2",
                "--value",
                "960",
            ],
            "--value",
        ),
        (
            &[
                "observe",
                "--patient",
                &patient,
                "--kind",
                "blood-pressure",
                "--value",
                "88/142",
            ],
            "systolic the higher",
        ),
        (
            &["daylog", "visit-start", "--visit", "v-0000000000000000"],
            "`omsyn visit list`",
        ),
        (
            &["team", "--patient", &patient, "--remove", "S9"],
            "not on the care team",
        ),
        (
            &["team", "--patient", &patient, "--add", "S1"],
            "already on the care team",
        ),
    ];
    each_refused_and_nothing_written(&base, &patient, &before, cases);
}

#[test]
fn a_dose_documented_days_ahead_of_the_clock_is_refused() {
    let (base, patient, slot, _) = planned_day();
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    transfer(&base, &nurse);
    // Two days after now, whenever the test runs.
    let ahead = (chrono::Local::now() + chrono::Duration::days(2)).to_rfc3339();
    let err = nurse.fails(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        &slot,
        "--at",
        &ahead,
    ]);
    assert!(
        err.contains("--at") && err.contains("more than a day after now"),
        "{err}"
    );
}

#[test]
fn setup_errors_name_the_command_that_fixes_them() {
    // Approving before the organisation exists points at `org create`.
    let base = Node::new("base", "Base", "K1");
    let nurse = Node::new("nurse", "Kari", "S1");
    let request = nurse.ok(&["enroll", "request"]);
    let err = base.fails(&["enroll", "approve", str_of(&request, "request")]);
    assert!(err.contains("omsyn org create"), "{err}");
    // A base without a zone is told how to make one, and no half-made organisation is left.
    let zoneless = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
            .arg("--data")
            .arg(zoneless.path())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(
        run(&["init", "--role", "base", "--name", "B"])
            .status
            .success()
    );
    let out = run(&["org", "create", "--name", "Kommune"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--zone"), "{err}");
    assert!(
        !zoneless.path().join("org.key").exists(),
        "no organisation key without its base"
    );
    // A home unit for nobody is refused at init, not first at approval.
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omsyn"))
        .arg("--data")
        .arg(home.path())
        .args(["init", "--role", "home-unit", "--name", "Hjemme"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("needs the patient it serves"),
        "{err}"
    );
}

#[test]
fn a_device_is_revoked_by_the_short_id_that_org_show_prints() {
    let base = Node::admin_base("Base", "K1");
    let nurse = Node::new("nurse", "Kari", "S1");
    base.enroll(&nurse);
    // The base learns the device's certificate with its first changes (here a file; a sync
    // does the same), and `org show` then lists it by its short id.
    nurse.ok(&["daylog", "shift-start"]);
    transfer(&nurse, &base);
    let short = &nurse.id()[..10];
    assert!(text(&base, &["org", "show"]).contains(short));
    let revoked = base.ok(&["revoke", short, "--reason", "mistet telefonen"]);
    assert_eq!(revoked["device"], nurse.id().as_str());
    // Said again in words: the device by the name its certificate gives.
    let again = text(&base, &["revoke", short, "--reason", "mistet telefonen"]);
    assert!(
        again.starts_with(&format!("already revoked Kari ({short}")),
        "{again}"
    );
    let err = base.fails(&["revoke", "0123456789ab", "--reason", "x"]);
    assert!(err.contains("no device enrolled here"), "{err}");
}

#[test]
fn a_refused_argument_with_json_is_one_json_error_on_stdout() {
    let base = Node::new("base", "Base", "K1");
    let out = base.run(&["--json", "visit", "plan", "--patient", "x"]);
    assert!(!out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {out:?}"));
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("--start"), "names what is missing: {error}");
}

#[test]
fn visits_are_planned_and_assigned_only_to_staff_the_base_knows() {
    let (base, patient, _, visit) = planned_day();
    let plan = |staff: &str| {
        vec![
            "visit".to_owned(),
            "plan".into(),
            "--patient".into(),
            patient.clone(),
            "--start".into(),
            "2026-11-23T12:00:00+01:00".into(),
            "--end".into(),
            "2026-11-23T12:30:00+01:00".into(),
            "--kind".into(),
            "physical".into(),
            "--staff".into(),
            staff.into(),
        ]
    };
    let args = plan("kari");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = base.fails(&args);
    assert!(
        err.contains("kari is no staff member") && err.contains("omsyn staff add"),
        "{err}"
    );
    // The refusal names who would be accepted.
    assert!(err.contains("S1 (Kari Nordmann)"), "{err}");
    let err = base.fails(&["visit", "assign", "--visit", &visit, "--staff", "S0010"]);
    assert!(err.contains("S0010 is no staff member"), "{err}");
    let listed = &base.ok(&["visit", "list", "--date", "2026-11-23"])["visits"];
    assert_eq!(listed.as_array().unwrap().len(), 1, "nothing was planned");
    assert_eq!(listed[0]["staff"][0], "S1", "nothing was reassigned");

    // Registered (her phone not enrolled yet), she may be planned for, and is named.
    base.ok(&[
        "staff",
        "add",
        "--id",
        "S0010",
        "--name",
        "Ola Hansen",
        "--role",
        "sykepleier",
    ]);
    base.ok(&["visit", "assign", "--visit", &visit, "--staff", "S0010"]);
    let staff = text(&base, &["staff", "list"]);
    assert!(
        staff.contains("Ola Hansen") && staff.contains("sykepleier"),
        "{staff}"
    );
    let list = text(&base, &["visit", "list", "--date", "2026-11-23"]);
    assert!(list.contains("Ola Hansen"), "{list}");
}

#[test]
fn a_journal_written_on_a_utc_clock_is_shown_in_norways_zone() {
    let (base, patient, _, _) = planned_day();
    let written = base
        .command(&[
            "note",
            "add",
            "--patient",
            &patient,
            "--text",
            "Skrevet på en server i UTC",
        ])
        .env("OMSYN_TZ", "UTC")
        .output()
        .unwrap();
    assert!(written.status.success());
    let shown = text(&base, &["show", "--patient", &patient]);
    let line = shown
        .lines()
        .find(|l| l.contains("Skrevet på en server"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("+01:00") || line.contains("+02:00"),
        "shown in Norway's offset: {line}"
    );
    assert!(!shown.contains("+00:00"), "{shown}");
}

#[test]
fn visit_times_are_shown_in_the_nodes_zone_like_every_other_time() {
    let (base, patient, _, _) = planned_day();
    let in_utc = |args: &[&str]| {
        let out = base.command(args).env("OMSYN_TZ", "UTC").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Planned for 08:00 Norwegian time: 07:00 on a clock in UTC, in the list and in the record.
    let list = in_utc(&["visit", "list", "--date", "2026-11-23"]);
    assert!(list.contains("07:00-07:30"), "{list}");
    let shown = in_utc(&["show", "--patient", &patient]);
    assert!(shown.contains("2026-11-23 07:00-07:30"), "{shown}");
    let list = text(&base, &["visit", "list", "--date", "2026-11-23"]);
    assert!(list.contains("08:00-08:30"), "{list}");
}

#[test]
fn a_list_imported_again_changes_what_the_list_changed_and_keeps_the_coordinators_moves() {
    let base = Node::new("base", "Base", "K1");
    let list = base.path().join("list.csv");
    let first = crate::cli::worklist_on(&["2026-11-23"]);
    std::fs::write(&list, &first).unwrap();
    base.ok(&["import-worklist", list.to_str().unwrap()]);
    let visits = &base.ok(&["visit", "list", "--date", "2026-11-23"])["visits"];
    let visit = visits[0]["id"].as_str().unwrap().to_owned();
    // The coordinator moves the visit in Omsyn; the record system's list still says 08:00.
    base.ok(&[
        "visit",
        "move",
        "--visit",
        &visit,
        "--start",
        "2026-11-23T10:00:00+01:00",
        "--end",
        "2026-11-23T10:30:00+01:00",
    ]);
    let again = base.ok(&["import-worklist", list.to_str().unwrap()]);
    assert_eq!(again["changed"].as_array().unwrap().len(), 0, "{again}");
    let start = |base: &Node| {
        base.ok(&["visit", "list", "--date", "2026-11-23"])["visits"][0]["start"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(start(&base), "2026-11-23T10:00:00+01:00", "the move stays");
    // The list itself moves it: that change is applied, and reported.
    std::fs::write(&list, first.replace(";08:00;08:30;", ";12:00;12:30;")).unwrap();
    let moved = base.ok(&["import-worklist", list.to_str().unwrap()]);
    assert_eq!(moved["changed"][0]["applied"], true, "{moved}");
    assert_eq!(start(&base), "2026-11-23T12:00:00+01:00");
}

#[test]
fn a_coordinators_move_past_another_visit_of_the_day_survives_the_list_imported_again() {
    let base = Node::new("base", "Base", "K1");
    let list = base.path().join("list.csv");
    // Two visits to the same patient for the same tiltak: 08:00 and 12:00.
    let one = crate::cli::worklist_on(&["2026-11-23"]);
    let second_row = one
        .lines()
        .nth(1)
        .unwrap()
        .replace(";08:00;08:30;", ";12:00;12:30;");
    let two = format!("{one}\n{second_row}");
    std::fs::write(&list, &two).unwrap();
    base.ok(&["import-worklist", list.to_str().unwrap()]);
    let starts = |base: &Node| -> Vec<(String, String)> {
        let visits = &base.ok(&["visit", "list", "--date", "2026-11-23"])["visits"];
        let mut all: Vec<(String, String)> = (visits.as_array().unwrap().iter())
            .map(|v| {
                (
                    v["id"].as_str().unwrap().into(),
                    v["start"].as_str().unwrap().into(),
                )
            })
            .collect();
        all.sort();
        all
    };
    let before = starts(&base);
    let morning = before
        .iter()
        .find(|(_, start)| start.contains("T08:00"))
        .unwrap()
        .0
        .clone();
    // The coordinator moves the morning visit past the noon one.
    base.ok(&[
        "visit",
        "move",
        "--visit",
        &morning,
        "--start",
        "2026-11-23T14:00:00+01:00",
        "--end",
        "2026-11-23T14:30:00+01:00",
    ]);
    let moved = starts(&base);
    let again = base.ok(&["import-worklist", list.to_str().unwrap()]);
    assert_eq!(again["changed"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(
        starts(&base),
        moved,
        "each visit kept its identity and the move stays"
    );
}

#[test]
fn a_block_names_the_staff_member_and_the_patient() {
    let (base, patient, _, _) = planned_day();
    let said = text(&base, &["block", "--patient", &patient, "--staff", "S1"]);
    assert!(
        said.contains("Kari Nordmann (S1) may no longer see Turid Nilsen;"),
        "{said}"
    );
}

/// Text output of a write that succeeds: (stdout, stderr).
fn said(node: &Node, args: &[&str]) -> (String, String) {
    let out = node.run(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "omsyn {args:?}: {err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

#[test]
fn a_write_prints_its_id_for_a_script_and_says_what_it_wrote_for_people() {
    let (base, patient, _, visit) = planned_day();
    let (id, words) = said(
        &base,
        &["note", "add", "--patient", &patient, "--text", "Sov godt"],
    );
    assert!(id.starts_with("e-") && id.lines().count() == 1, "{id}");
    assert!(words.contains("written: note: Sov godt"), "{words}");
    // A dose by its medication's name (any case), said back by the medication's name.
    let nurse = Node::new("nurse", "Kari Nordmann", "S1");
    base.enroll(&nurse);
    transfer(&base, &nurse);
    let (id, words) = said(
        &nurse,
        &[
            "med",
            "give",
            "--patient",
            &patient,
            "--slot",
            "metformin@08:00",
        ],
    );
    assert!(id.starts_with("e-"), "{id}");
    assert!(words.contains("written: GIVEN Metformin 08:00"), "{words}");
    let unknown = nurse.fails(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        "Paracet@08:00",
    ]);
    assert!(
        unknown.contains("no medication on this patient's list is named \"Paracet\""),
        "{unknown}"
    );
    // A change to a visit says what the visit is now.
    let window = [
        "--start",
        "2026-11-23T09:00:00+01:00",
        "--end",
        "2026-11-23T09:30:00+01:00",
    ];
    let moved = text(
        &base,
        &[&["visit", "move", "--visit", &visit][..], &window].concat(),
    );
    assert!(
        moved.contains("moved: Turid Nilsen: digital visit 2026-11-23 09:00-09:30, Kari Nordmann"),
        "{moved}"
    );
    let cancelled = text(
        &base,
        &["visit", "cancel", "--visit", &visit, "--reason", "innlagt"],
    );
    assert!(
        cancelled.contains(
            "cancelled: Turid Nilsen: digital visit 2026-11-23 09:00-09:30, CANCELLED (innlagt)"
        ),
        "{cancelled}"
    );

    // Without a need (the patient blocks the base's own user, K001), the answer names nothing
    // of the plan, and a medication is not looked up by name.
    let plan = [
        "visit",
        "plan",
        "--patient",
        &patient,
        "--kind",
        "physical",
        "--staff",
        "S1",
    ];
    let (other, _) = said(&base, &[&plan[..], &window].concat());
    let other = other.trim().to_owned();
    base.ok(&["block", "--patient", &patient, "--staff", "K001"]);
    let later = [
        "--start",
        "2026-11-23T11:00:00+01:00",
        "--end",
        "2026-11-23T11:30:00+01:00",
    ];
    let hidden = text(
        &base,
        &[&["visit", "move", "--visit", &other][..], &later].concat(),
    );
    assert_eq!(hidden.trim(), format!("moved: visit {other}"));
    let unseen = base.fails(&[
        "med",
        "give",
        "--patient",
        &patient,
        "--slot",
        "metformin@08:00",
    ]);
    assert!(
        unseen.contains("names are looked up only for patients you may see"),
        "{unseen}"
    );
}

#[test]
fn staff_added_again_is_said_to_be_there_a_change_is_said_and_a_devices_role_is_refused() {
    let (base, patient, _, _) = planned_day();
    let again = text(
        &base,
        &["staff", "add", "--id", "S1", "--name", "Kari Nordmann"],
    );
    assert!(
        again.contains("Kari Nordmann (S1) is in the staff directory already, as given")
            && again.contains("no competence given: not an authorised nurse"),
        "{again}"
    );
    let changed = text(
        &base,
        &[
            "staff",
            "add",
            "--id",
            "S1",
            "--name",
            "Kari Nordmann",
            "--role",
            "sykepleier",
        ],
    );
    assert!(
        changed.contains(
            "updated: Kari Nordmann (no competence, no zone) → Kari Nordmann (sykepleier, no zone)"
        ) && changed.contains("sykepleier: an authorised nurse"),
        "{changed}"
    );
    let role = base.fails(&[
        "staff",
        "add",
        "--id",
        "S2",
        "--name",
        "Per Olsen",
        "--role",
        "Base",
    ]);
    assert!(
        role.contains("--role: base is a device's role, not a competence"),
        "{role}"
    );
    let nurse = Node::new("nurse", "Ola Hansen", "S3");
    base.enroll(&nurse);
    let enrolled = base.fails(&["staff", "add", "--id", "S3", "--name", "Ola H"]);
    assert!(
        enrolled.contains("S3 is enrolled as Ola Hansen"),
        "{enrolled}"
    );
    // Nothing of the refused was written (the staff file is where `staff add` writes).
    let file = std::fs::read_to_string(base.path().join("staff.json")).unwrap();
    assert!(file.contains("Kari Nordmann"), "{file}");
    assert!(
        !file.contains("Per Olsen") && !file.contains("Ola H"),
        "{file}"
    );
    // A care team takes only staff the base knows.
    let team = base.fails(&["team", "--patient", &patient, "--add", "S9"]);
    assert!(
        team.contains("S9 is no staff member this node knows"),
        "{team}"
    );
}

#[test]
fn a_second_block_of_one_staff_member_is_refused_and_a_lifted_block_is_not_lifted_again() {
    let (base, patient, _, _) = planned_day();
    let block = base.ok(&["block", "--patient", &patient, "--staff", "S1"]);
    let id = str_of(&block, "id");
    let again = base.fails(&["block", "--patient", &patient, "--staff", "S1"]);
    assert!(
        again.contains(&format!(
            "the patient has blocked Kari Nordmann already (block {id}"
        )),
        "{again}"
    );
    let lifted = text(&base, &["unblock", "--patient", &patient, "--block", id]);
    assert!(
        lifted.contains(&format!(
            "lifted block {id} of Kari Nordmann (S1): the patient no longer blocks them"
        )),
        "{lifted}"
    );
    let twice = base.fails(&["unblock", "--patient", &patient, "--block", id]);
    assert!(
        twice.contains(&format!("block {id} was lifted already")),
        "{twice}"
    );
}

#[test]
fn a_correction_names_the_note_it_corrects_by_its_words_when_two_notes_share_the_minute() {
    let (base, patient, _, _) = planned_day();
    let at = "2026-11-23T10:00:00+01:00";
    let note = |words: &str| {
        let args = [
            "note",
            "add",
            "--patient",
            &patient,
            "--text",
            words,
            "--at",
            at,
        ];
        str_of(&base.ok(&args), "id").to_owned()
    };
    note("Spiste frokost");
    let second = note("Klaget over smerter i venstre kne etter fallet i går");
    let correct = ["note", "correct", "--patient", &patient, "--entry", &second];
    base.ok(&[&correct[..], &["--text", "Smerter i høyre kne"]].concat());
    let shown = text(&base, &["show", "--patient", &patient]);
    assert!(
        shown.contains(
            "correction of the note of 10:00 (\"Klaget over smerter i venstre kn…\"): Smerter i høyre kne"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("note: Spiste frokost\n") || shown.contains("note: Spiste frokost "),
        "{shown}"
    );
    assert!(shown.contains("etter fallet i går [corrected]"), "{shown}");
}

#[test]
fn two_patients_of_one_name_are_told_apart_in_every_list_by_birth_date_or_address() {
    let base = crate::cli::Node::admin_base("Base Øst", "K001");
    base.ok(&["staff", "add", "--id", "S1", "--name", "Ola Hansen"]);
    let add = |fields: &[&str]| {
        let args = [&["patient", "add", "--zone", "Sone 1"][..], fields].concat();
        str_of(&base.ok(&args), "id").to_owned()
    };
    let born_41 = add(&["--name", "Kari Dahl", "--national-id", "12034112450"]);
    let born_52 = add(&["--name", "kari dahl", "--national-id", "03055223466"]);
    let by_address = add(&["--name", "Kari Dahl", "--address", "Storgata 1"]);
    add(&["--name", "Turid Nilsen"]);
    for (patient, hour) in [(&born_41, "08"), (&born_52, "09"), (&by_address, "10")] {
        let (start, end) = (
            format!("2026-11-23T{hour}:00:00+01:00"),
            format!("2026-11-23T{hour}:30:00+01:00"),
        );
        base.ok(&[
            "visit",
            "plan",
            "--patient",
            patient,
            "--start",
            &start,
            "--end",
            &end,
            "--kind",
            "physical",
            "--staff",
            "S1",
        ]);
    }
    let visits = text(&base, &["visit", "list", "--date", "2026-11-23"]);
    for expected in [
        "Kari Dahl (f. 12.03.1941)",
        "kari dahl (f. 03.05.1952)",
        "Kari Dahl (Storgata 1)",
    ] {
        assert!(visits.contains(expected), "{expected} in:\n{visits}");
    }
    let patients = text(&base, &["patient", "list"]);
    assert!(
        patients.contains("Kari Dahl (f. 12.03.1941)") && patients.contains("Turid Nilsen\n"),
        "{patients}"
    );
    let report = text(&base, &["day-report", "--date", "2026-11-23"]);
    assert!(report.contains("kari dahl (f. 03.05.1952)"), "{report}");
    // A lookup by the name alone stays refused as ambiguous.
    let ambiguous = base.fails(&["show", "--patient", "Kari Dahl"]);
    assert!(
        ambiguous.contains("3 patients are named \"Kari Dahl\"")
            && ambiguous.contains(&format!("Kari Dahl (Storgata 1) {by_address}")),
        "{ambiguous}"
    );
    // A name as a list shows it, copied back, finds her.
    let copied = base.ok(&["show", "--patient", "kari dahl (f. 12.03.1941)"]);
    assert_eq!(copied["record"]["id"], born_41.as_str());
    let by_id = format!("Kari Dahl ({by_address})");
    assert_eq!(
        base.ok(&["show", "--patient", &by_id])["record"]["id"],
        by_address.as_str()
    );
    // What told them apart was shown: a read, logged.
    let log = base.ok(&["audit"])["entries"].to_string();
    assert!(log.contains("patient lookup"), "{log}");
    // A user who may see one Kari Dahl sees her name alone: whom else the node holds is not
    // hers to learn (here the other two block the base's own user).
    for other in [&born_52, &by_address] {
        base.ok(&["block", "--patient", other, "--staff", "K001"]);
    }
    let patients = text(&base, &["patient", "list"]);
    assert!(
        patients.contains("Kari Dahl\n") && !patients.contains("(f. "),
        "{patients}"
    );
    let visits = text(&base, &["visit", "list", "--date", "2026-11-23"]);
    assert!(
        !visits.contains("(f. ") && visits.contains("Kari Dahl"),
        "{visits}"
    );
}
