//! `omsyn plan suggest` as a coordinator runs it: a work list with the homes' positions, a
//! shift list, the suggestion as a diff, `--accept`, and every kind of bad input refused with
//! a clear error and nothing written.

use std::io::Write as _;

use serde_json::Value;

use crate::cli::{Node, str_of};

/// A Monday comfortably in the future: nothing of it is "before now", so every visit may move.
const DAY: &str = "2030-01-07";

const HEADER: &str = "date;zone;route;staff_id;staff_name;staff_role;patient_id;patient_name;national_id;address;access_note;tiltak_code;tiltak;start;end;kind;needs_authorised;double_staffed;lat;lon";

/// Three visits planned the naive way: two at once for the health worker H1, one of them an
/// injection that needs a nurse.
fn worklist() -> String {
    let row = |staff: &str,
               role: &str,
               patient: &str,
               nid: &str,
               code: &str,
               start: &str,
               end: &str,
               auth: &str,
               lat: &str| {
        format!(
            "{DAY};Sone 1;Rute 1;{staff};Navn {staff};{role};{patient};Pasient {patient};{nid};Storgata 1;;{code};{code};{start};{end};physical;{auth};nei;{lat};10.40"
        )
    };
    [
        HEADER.to_owned(),
        row(
            "H1",
            "helsefagarbeider",
            "P1",
            "41010112345",
            "INJ",
            "08:00",
            "08:15",
            "ja",
            "59.270",
        ),
        row(
            "H1",
            "helsefagarbeider",
            "P2",
            "42010112345",
            "TILSYN",
            "08:05",
            "08:20",
            "nei",
            "59.280",
        ),
        row(
            "N1",
            "sykepleier",
            "P3",
            "43010112345",
            "MED",
            "12:00",
            "12:15",
            "ja",
            "59.275",
        ),
    ]
    .join("\n")
}

const SHIFTS: &str =
    "staff_id;start;end;competence\nH1;07:00;15:00;helsefagarbeider\nN1;07:00;15:00;sykepleier\n";

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.to_str().unwrap().to_owned()
}

/// A base with the day imported; the shift list's path.
fn day() -> (Node, tempfile::TempDir, String) {
    let base = Node::new("base", "Base Øst", "K001");
    let files = tempfile::tempdir().unwrap();
    base.ok(&["import-worklist", &file(&files, "list.csv", &worklist())]);
    let shifts = file(&files, "shifts.csv", SHIFTS);
    (base, files, shifts)
}

/// `plan suggest` for the day in Sone 1 (a small search), and `extra`.
fn day_suggest_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "plan",
        "suggest",
        "--date",
        DAY,
        "--zone",
        "Sone 1",
        "--generations",
        "20",
    ];
    args.extend_from_slice(extra);
    args
}

/// `plan suggest` for the day in Sone 1 with the shift list, and `extra`.
fn suggest_args<'a>(shifts: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    day_suggest_args(&[&["--shifts", shifts][..], extra].concat())
}

fn suggest(base: &Node, shifts: &str, extra: &[&str]) -> Value {
    base.ok(&suggest_args(shifts, extra))
}

fn staff_on(base: &Node) -> Vec<(String, Vec<String>)> {
    let visits = &base.ok(&["visit", "list", "--date", DAY])["visits"];
    let mut out: Vec<(String, Vec<String>)> = visits
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let staff = v["staff"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            (v["start"].as_str().unwrap()[11..16].to_owned(), staff)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_suggestion_is_a_diff_that_changes_nothing_until_it_is_accepted() {
    let (base, _files, shifts) = day();
    let before = staff_on(&base);
    let s = &suggest(&base, &shifts, &[])["suggestion"];
    let rules: Vec<&str> = s["current_violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"competence") && rules.contains(&"overlap"),
        "{rules:?}"
    );
    assert_eq!(s["after"]["violations"], serde_json::json!({}));
    let injection = s["moves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["start_before"].as_str().unwrap().contains("T08:00"))
        .unwrap();
    assert_eq!(injection["to"], serde_json::json!(["N1"]));
    assert!(
        injection["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "competence")
    );
    assert_eq!(staff_on(&base), before, "a suggestion writes nothing");

    // The terminal shows the same diff, in words.
    let out = base.run(&suggest_args(&shifts, &["--routes"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "as it stands",
        "Navn H1 is not an authorised nurse",
        "Pasient P1",
        // The move names the staff as the work list named them.
        "Navn H1 → Navn N1",
        "routes:",
        "nothing is changed until you accept",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }

    let accepted = suggest(&base, &shifts, &["--accept"]);
    assert!(accepted["accepted"]["reassigned"].as_u64().unwrap() >= 1);
    let after = staff_on(&base);
    assert_eq!(
        after[0],
        ("08:00".into(), vec!["N1".to_owned()]),
        "{after:?}"
    );
    let log = &base.ok(&["audit"])["entries"];
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "write" && e["what"].as_str().unwrap().contains("accepted"))
    );
    // Asked again with the plan sent out first, nothing moves.
    let again = &suggest(&base, &shifts, &["--priorities", "changes"])["suggestion"];
    assert_eq!(again["moves"], serde_json::json!([]));
}

#[test]
fn a_sick_call_moves_that_staff_members_visits_with_the_reason() {
    let (base, _files, shifts) = day();
    suggest(&base, &shifts, &["--accept"]);
    let s = &suggest(&base, &shifts, &["--sick", "N1", "--from", "07:30"])["suggestion"];
    assert_eq!(s["planner"], "replan");
    for m in s["moves"].as_array().unwrap() {
        assert_eq!(m["from"], serde_json::json!(["N1"]), "{m}");
        assert_eq!(
            m["reasons"][0],
            serde_json::json!({"kind": "sick", "staff": "N1"})
        );
    }
    assert!(!s["moves"].as_array().unwrap().is_empty());
}

#[test]
fn bad_planning_input_is_refused_with_a_clear_error_and_nothing_written() {
    let (base, files, shifts) = day();
    let before = staff_on(&base);
    let bad_shifts = file(
        &files,
        "bad.csv",
        "staff_id;start;end\nH1;07:00;15:00\nN1;7 o'clock;15:00\n",
    );
    let bad_matrix = file(&files, "road.csv", "from;to\n");
    // Each case replaces one setting of a good request.
    let cases: Vec<(&str, &str, &str)> = vec![
        ("--date", "2030-13-01", "date"),
        ("--zone", "Sone 9", "zones held: Sone 1"),
        ("--shifts", &bad_shifts, "line 3"),
        (
            "--priorities",
            "speed,travel",
            "unknown objective \"speed\"",
        ),
        ("--shift", "7-15", "shift"),
        ("--speed", "0", "speed must be"),
        ("--tolerance", "1000", "tolerance must be"),
        ("--road-matrix", &bad_matrix, "from;to;minutes"),
        ("--sick", "Z9", "Z9 is not on shift"),
        ("--overrun", "v-nope", "overrun"),
    ];
    for (flag, value, expected) in cases {
        let mut args = vec!["plan", "suggest", "--accept"];
        for (good_flag, good) in [("--date", DAY), ("--zone", "Sone 1"), ("--shifts", &shifts)] {
            if good_flag != flag {
                args.extend([good_flag, good]);
            }
        }
        if !value.is_empty() {
            args.extend([flag, value]);
        }
        if flag == "--overrun" {
            args.extend(["--minutes", "10"]);
        }
        let err = base.fails(&args);
        assert!(
            err.contains(expected),
            "{flag} {value}: {err:?} should say {expected:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert_eq!(staff_on(&base), before, "nothing was written");
}

#[test]
fn a_patients_location_is_set_checked_and_shown() {
    let (base, _files, _) = day();
    let patients = &base.ok(&["patient", "list"])["patients"];
    let p = str_of(&patients[0], "id").to_owned();
    let set = |value: &'static str| -> Vec<&str> {
        vec![
            "patient",
            "set",
            "--patient",
            &p,
            "--field",
            "location",
            "--value",
            value,
        ]
    };
    let err = base.fails(&set("95,10"));
    assert!(err.contains("LAT,LON"), "{err}");
    base.ok(&set("59.9139,10.7522"));
    let shown = base.ok(&["show", "--patient", &p]);
    let fields = &shown["record"]["fields"];
    assert_eq!(fields["location"], "59.91390,10.75220", "{fields}");
}

#[test]
fn only_a_base_plans() {
    let nurse = Node::new("nurse", "Kari Nordmann", "N1");
    let err = nurse.fails(&["plan", "suggest", "--date", DAY]);
    assert!(err.contains("runs at a base"), "{err}");
}

#[test]
fn without_a_shift_list_the_staff_the_days_visits_name_are_on_shift_and_the_suggestion_says_who() {
    // The work list's staff have no enrolled phones: before, nobody was on shift and every
    // visit of theirs would have been taken from them.
    let (base, _files, _) = day();
    let s = &base.ok(&day_suggest_args(&[]))["suggestion"];
    let note = s["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("no shift list given")
            && note.contains("Navn H1 07:00–15:00")
            && note.contains("Navn N1 07:00–15:00")
            && note.contains("--shifts"),
        "{note}"
    );
    // The work list's competences count: the injection goes to the nurse, and nobody is
    // taken off shift.
    let injection = (s["moves"].as_array().unwrap().iter())
        .find(|m| m["start_before"].as_str().unwrap().contains("T08:00"))
        .unwrap();
    assert_eq!(injection["to"], serde_json::json!(["N1"]), "{s:#}");
    assert!(
        !s["current_violations"].to_string().contains("off-shift"),
        "{s:#}"
    );

    // Nobody enrolled and no visit naming anyone: nobody is on shift, and the assistant says
    // so rather than take the visit from whoever has it.
    let empty = Node::new("base", "Base Vest", "K002");
    let add = ["patient", "add", "--name", "Ola Berg", "--zone", "Sone 1"];
    let patient = str_of(&empty.ok(&add), "id").to_owned();
    let (start, end) = (
        format!("{DAY}T09:00:00+01:00"),
        format!("{DAY}T09:30:00+01:00"),
    );
    empty.ok(&[
        "visit",
        "plan",
        "--patient",
        &patient,
        "--start",
        &start,
        "--end",
        &end,
        "--kind",
        "physical",
    ]);
    let refused = empty.fails(&["plan", "suggest", "--date", DAY]);
    assert!(refused.contains("nobody is on shift on"), "{refused}");
}

#[test]
fn a_sick_call_is_the_reason_only_for_visits_of_the_one_who_called_in_sick() {
    let (base, files, _) = day();
    // N2 is on shift and has no visits; the plan as it stands breaks rules of its own.
    let shifts = file(
        &files,
        "three.csv",
        &format!("{SHIFTS}N2;07:00;15:00;sykepleier\n"),
    );
    let s = &suggest(&base, &shifts, &["--sick", "N2", "--from", "07:30"])["suggestion"];
    let moves = s["moves"].as_array().unwrap();
    assert!(!moves.is_empty(), "{s:#}");
    for m in moves {
        assert!(
            !m["reasons"].to_string().contains("sick"),
            "N2 had no visit to lose: {m}"
        );
    }
    let injection = (moves.iter())
        .find(|m| m["start_before"].as_str().unwrap().contains("T08:00"))
        .unwrap();
    assert!(
        injection["reasons"].to_string().contains("competence"),
        "{injection}"
    );
}
