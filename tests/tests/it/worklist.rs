//! Importing a record system's CSV work list: good lists land whole, bad rows are named and
//! nothing is imported, importing twice plans nothing twice.

use omsyn_core::Day;
use omsyn_core::Zone;
use omsyn_core::docs::record::PatientField;
use omsyn_core::worklist::{ListTimes, WorklistError};
use omsyn_tests::{TestNode, at, snapshot};

const FIXTURE: &str = include_str!("../../fixtures/worklist-S-1day.csv");
/// The fixture's November day at a fixed +01:00, as `--offset +01:00` reads it.
const CET: ListTimes = ListTimes::Offset(3600);
/// Read as `omsyn import-worklist` reads a list by default: local time in Oslo.
const OSLO: ListTimes = ListTimes::Zone(Zone::OSLO);

#[test]
fn the_shared_one_day_fixture_imports_into_plans_and_the_day_report() {
    let mut base = TestNode::base(51);
    let summary = base
        .repo
        .import_worklist(at("06:00"), &mut base.rng, FIXTURE, CET)
        .unwrap();
    let rows = FIXTURE.lines().count() - 1;
    let distinct_patients: std::collections::BTreeSet<&str> = FIXTURE
        .lines()
        .skip(1)
        .map(|l| l.split(';').nth(8).unwrap())
        .collect();
    let unassigned = FIXTURE
        .lines()
        .skip(1)
        .filter(|l| l.split(';').nth(3) == Some(""))
        .count();
    assert_eq!(summary.rows, rows);
    assert_eq!(summary.visits_planned, rows);
    assert_eq!(summary.new_patients, distinct_patients.len());
    assert_eq!(summary.unassigned, unassigned);
    let report = omsyn_core::report::day_report(
        &base.repo,
        Day::parse("2026-11-23").unwrap(),
        None,
        &mut omsyn_tests::gate(&base.repo),
    )
    .unwrap();
    assert_eq!(report.totals.planned, rows);
    assert_eq!(report.per_staff["(unassigned)"].planned, unassigned);
}

#[test]
fn importing_the_same_list_twice_plans_nothing_twice() {
    let mut base = TestNode::base(52);
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, FIXTURE, CET)
        .unwrap();
    let before = snapshot(&base.repo);
    let again = base
        .repo
        .import_worklist(at("06:30"), &mut base.rng, FIXTURE, CET)
        .unwrap();
    assert_eq!((again.visits_planned, again.new_patients), (0, 0));
    assert_eq!(again.already_planned, again.rows);
    assert_eq!(snapshot(&base.repo), before, "nothing was written");
}

#[test]
fn a_list_with_bad_rows_names_every_one_and_imports_nothing() {
    let mut base = TestNode::base(53);
    let mut lines: Vec<String> = FIXTURE.lines().take(4).map(str::to_owned).collect();
    lines.push(lines[1].replace(";13:38;13:48;", ";13:48;13:38;")); // ends before it starts
    lines.push(lines[1].replace(";physical;", ";teleport;"));
    lines.push(lines[1].replace("2026-11-23", "23.11.2026"));
    lines.push("too;few;fields".into());
    let text = lines.join("\n");
    let err = base
        .repo
        .import_worklist(at("06:00"), &mut base.rng, &text, CET)
        .unwrap_err();
    let WorklistError::Rows(rows) = err else {
        panic!("expected row errors, got {err}")
    };
    assert_eq!(
        rows.iter().map(|r| r.line).collect::<Vec<_>>(),
        vec![5, 6, 7, 8]
    );
    assert!(rows[0].message.contains("not after start"), "{rows:?}");
    assert!(rows[1].message.contains("teleport"), "{rows:?}");
    assert!(
        base.repo.patients().unwrap().is_empty(),
        "the good rows were not imported either"
    );
}

#[test]
fn a_file_that_is_not_a_work_list_is_refused() {
    let mut base = TestNode::base(54);
    let err = base
        .repo
        .import_worklist(at("06:00"), &mut base.rng, "name;age\nKari;40", CET)
        .unwrap_err();
    assert!(matches!(err, WorklistError::Header(_)), "{err}");
}

#[test]
fn quoted_fields_may_hold_semicolons() {
    let mut base = TestNode::base(55);
    let header = FIXTURE.lines().next().unwrap();
    let row = FIXTURE.lines().nth(1).unwrap().replace(
        "nøkkelboks ved døra, kode 4411",
        "\"nøkkelboks; kode 4411, si \"\"hei\"\"\"",
    );
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &format!("{header}\n{row}"), CET)
        .unwrap();
    let (patient, _) = base.repo.patients().unwrap().remove(0);
    let record = base.repo.record(&patient).unwrap();
    assert_eq!(
        record.field(PatientField::AccessNote),
        Some("nøkkelboks; kode 4411, si \"hei\"")
    );
}

/// The fixture with the generator's `--coords` columns: every home at `lat;lon`.
fn with_positions(lat: &str, lon: &str) -> String {
    FIXTURE
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l};lat;lon"),
            _ => format!("{l};{lat};{lon}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_list_with_positions_puts_each_home_in_the_patients_record() {
    let mut base = TestNode::base(56);
    base.repo
        .import_worklist(
            at("06:00"),
            &mut base.rng,
            &with_positions("59.27", "10.4"),
            CET,
        )
        .unwrap();
    for (patient, _) in base.repo.patients().unwrap() {
        let record = base.repo.record(&patient).unwrap();
        assert_eq!(
            record.field(PatientField::Location),
            Some("59.27000,10.40000")
        );
    }
    // Importing the list again with the homes moved updates the records, and plans nothing.
    let again = base
        .repo
        .import_worklist(
            at("06:30"),
            &mut base.rng,
            &with_positions("59.3", "10.5"),
            CET,
        )
        .unwrap();
    assert_eq!(again.visits_planned, 0);
    let (patient, _) = base.repo.patients().unwrap().remove(0);
    assert_eq!(
        base.repo
            .record(&patient)
            .unwrap()
            .field(PatientField::Location),
        Some("59.30000,10.50000")
    );
}

#[test]
fn a_position_off_the_globe_or_not_a_number_names_its_row() {
    let mut base = TestNode::base(57);
    let mut lines: Vec<String> = with_positions("59.27", "10.4")
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    lines[1] = lines[1].replace(";59.27;10.4", ";95;10.4");
    lines[2] = lines[2].replace(";59.27;10.4", ";nord;10.4");
    let err = base
        .repo
        .import_worklist(at("06:00"), &mut base.rng, &lines.join("\n"), CET)
        .unwrap_err();
    let WorklistError::Rows(rows) = err else {
        panic!("expected row errors, got {err}")
    };
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
    assert!(rows[0].message.contains("latitude"), "{rows:?}");
    assert!(
        rows[1].message.contains("lat must be decimal degrees"),
        "{rows:?}"
    );
    assert!(base.repo.patients().unwrap().is_empty());
}

#[test]
fn a_double_staffed_row_keeps_its_tiltak_apart_as_one_that_needs_two() {
    let mut base = TestNode::base(58);
    let header = FIXTURE.lines().next().unwrap();
    let row = FIXTURE.lines().nth(1).unwrap();
    let double = row
        .replace(";13:38;13:48;", ";15:00;15:30;")
        .replace(";nei;nei", ";nei;ja");
    base.repo
        .import_worklist(
            at("06:00"),
            &mut base.rng,
            &format!("{header}\n{row}\n{double}"),
            CET,
        )
        .unwrap();
    let (patient, _) = base.repo.patients().unwrap().remove(0);
    let tiltak = base.repo.record(&patient).unwrap().tiltak;
    let doubles: Vec<bool> = tiltak.iter().map(|t| t.double_staffed).collect();
    assert_eq!(
        tiltak.len(),
        2,
        "the same code, one and two staff: {tiltak:?}"
    );
    assert!(doubles.contains(&true) && doubles.contains(&false));
}

#[test]
fn a_location_that_is_not_a_position_is_refused_and_one_that_is_is_kept_normalised() {
    let mut base = TestNode::base(59);
    let p = base.add_patient("Aud Moen");
    for bad in ["nord for kirka", "59.27", "91,10", "59.27,190"] {
        let err = base
            .repo
            .set_patient_field(at("07:00"), &p, PatientField::Location, bad)
            .unwrap_err();
        assert!(err.to_string().contains("LAT,LON"), "{bad}: {err}");
    }
    base.repo
        .set_patient_field(at("07:00"), &p, PatientField::Location, "59.2701234, 10.4")
        .unwrap();
    assert_eq!(
        base.repo.record(&p).unwrap().field(PatientField::Location),
        Some("59.27012,10.40000")
    );
}

/// The fixture's first row on `date` from `start` to `end`.
fn row_on(date: &str, start: &str, end: &str) -> String {
    FIXTURE
        .lines()
        .nth(1)
        .unwrap()
        .replace("2026-11-23", date)
        .replace(";13:38;13:48;", &format!(";{start};{end};"))
}

/// The start of every visit planned on `date`, as stored.
fn starts_on(base: &TestNode, date: &str) -> Vec<String> {
    let mut starts: Vec<String> = base
        .repo
        .visits_on(Day::parse(date).unwrap())
        .unwrap()
        .iter()
        .map(|v| v.start.to_string())
        .collect();
    starts.sort();
    starts
}

#[test]
fn a_list_read_in_oslo_gets_summer_time_in_july_and_winter_time_in_january() {
    let mut base = TestNode::base(60);
    let header = FIXTURE.lines().next().unwrap();
    let text = [
        header.to_owned(),
        row_on("2026-07-15", "08:00", "08:30"),
        row_on("2027-01-15", "08:00", "08:30"),
    ]
    .join("\n");
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &text, OSLO)
        .unwrap();
    assert_eq!(
        starts_on(&base, "2026-07-15"),
        vec!["2026-07-15T08:00:00+02:00"]
    );
    assert_eq!(
        starts_on(&base, "2027-01-15"),
        vec!["2027-01-15T08:00:00+01:00"]
    );
}

/// On 29 March 2026 Oslo's clocks go from 02:00 to 03:00: 02:30 never happens, and a row
/// planned then is refused, naming its line and why. On 25 October 2026 they go back from
/// 03:00 to 02:00: 02:30 happens twice, and is read as the first (still summer time).
#[test]
fn a_time_the_clocks_skip_is_a_bad_row_and_one_they_pass_twice_is_the_first() {
    let mut base = TestNode::base(61);
    let header = FIXTURE.lines().next().unwrap();
    let skipped = [
        header.to_owned(),
        row_on("2026-03-29", "01:30", "01:45"),
        row_on("2026-03-29", "02:30", "03:15"),
    ]
    .join("\n");
    let err = base
        .repo
        .import_worklist(at("06:00"), &mut base.rng, &skipped, OSLO)
        .unwrap_err();
    let WorklistError::Rows(rows) = err else {
        panic!("expected row errors, got {err}")
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].line, 3);
    assert_eq!(
        rows[0].message,
        "start: 02:30 does not happen in Europe/Oslo on 2026-03-29: the clocks skip it as \
         summer time begins"
    );
    assert!(base.repo.patients().unwrap().is_empty(), "nothing imported");

    let switch_days = [
        header.to_owned(),
        row_on("2026-03-29", "01:30", "01:45"),
        row_on("2026-03-29", "03:30", "03:45"),
        row_on("2026-10-25", "01:30", "01:45"),
        row_on("2026-10-25", "02:30", "02:45"),
        row_on("2026-10-25", "03:30", "03:45"),
    ]
    .join("\n");
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &switch_days, OSLO)
        .unwrap();
    assert_eq!(
        starts_on(&base, "2026-03-29"),
        vec!["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00"]
    );
    assert_eq!(
        starts_on(&base, "2026-10-25"),
        vec![
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T03:30:00+01:00"
        ]
    );
}

/// What a node's clock gives (`omsyn_node::clock::at_millis` is `Zone::at_millis` in the
/// node's zone): an instant in Oslo with the offset in force then.
#[test]
fn an_instant_in_oslo_has_the_offset_in_force_then() {
    let winter = omsyn_core::Timestamp::parse("2026-01-15T07:00:00Z").unwrap();
    let summer = omsyn_core::Timestamp::parse("2026-07-15T06:00:00Z").unwrap();
    assert_eq!(
        Zone::OSLO
            .at_millis(winter.unix_millis())
            .unwrap()
            .to_string(),
        "2026-01-15T08:00:00+01:00"
    );
    assert_eq!(
        Zone::OSLO.show(&summer).to_string(),
        "2026-07-15T08:00:00+02:00"
    );
    assert!(Zone::parse("Europe/Olso").is_err());
}

/// The fixture's header and first two rows (Turid Nilsen's two MAAL visits: 13:38 with
/// S00010, 21:04 with S00009).
fn two_rows() -> Vec<String> {
    FIXTURE.lines().take(3).map(str::to_owned).collect()
}

#[test]
fn a_list_imported_again_with_changed_rows_changes_the_plan_and_says_so_row_by_row() {
    let mut base = TestNode::base(62);
    let mut lines = two_rows();
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &lines.join("\n"), CET)
        .unwrap();
    // The record system moved the first visit to 14:00 with S00011, and made the second a
    // video visit.
    lines[1] = lines[1]
        .replace(";13:38;13:48;", ";14:00;14:10;")
        .replace(";S00010;Ola Hansen;", ";S00011;Per Berg;");
    lines[2] = lines[2].replace(";physical;", ";digital;");
    let again = base
        .repo
        .import_worklist(at("07:00"), &mut base.rng, &lines.join("\n"), CET)
        .unwrap();
    assert_eq!((again.visits_planned, again.new_patients), (0, 0));
    let said: Vec<(usize, Vec<String>, bool)> = again
        .changed
        .iter()
        .map(|c| (c.line, c.changes.clone(), c.applied))
        .collect();
    assert_eq!(
        said,
        vec![
            (
                2,
                vec![
                    "13:38-13:48 → 14:00-14:10".to_owned(),
                    "staff Ola Hansen → Per Berg".to_owned()
                ],
                true
            ),
            (3, vec!["physical → digital".to_owned()], true),
        ]
    );
    let visits = base
        .repo
        .visits_on(Day::parse("2026-11-23").unwrap())
        .unwrap();
    assert_eq!(visits.len(), 2, "moved, not planned beside");
    let first = visits
        .iter()
        .find(|v| v.id == again.changed[0].visit)
        .unwrap();
    assert_eq!(first.start.to_string(), "2026-11-23T14:00:00+01:00");
    assert_eq!(first.staff[0].as_str(), "S00011");
    let second = visits
        .iter()
        .find(|v| v.id == again.changed[1].visit)
        .unwrap();
    assert_eq!(second.kind, omsyn_core::docs::plan::VisitKind::Digital);
}

#[test]
fn a_documented_visit_is_not_moved_by_a_list_imported_again_and_the_row_says_why() {
    let mut base = TestNode::base(63);
    let mut lines = two_rows();
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &lines.join("\n"), CET)
        .unwrap();
    let day = Day::parse("2026-11-23").unwrap();
    let first = base
        .repo
        .visits_on(day)
        .unwrap()
        .into_iter()
        .min_by_key(|v| v.start)
        .unwrap();
    let arrived = omsyn_core::Timestamp::parse("2026-11-23T13:40:00+01:00").unwrap();
    base.repo
        .visit_performed(arrived, &mut base.rng, &first.id, arrived, None, None)
        .unwrap();
    lines[1] = lines[1].replace(";13:38;13:48;", ";15:00;15:10;");
    let again = base
        .repo
        .import_worklist(at("14:00"), &mut base.rng, &lines.join("\n"), CET)
        .unwrap();
    assert_eq!(again.changed.len(), 1);
    assert!(!again.changed[0].applied);
    assert!(
        again.changed[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("documented"),
        "{:?}",
        again.changed[0]
    );
    let still = base.repo.visits_on(day).unwrap();
    assert!(
        still
            .iter()
            .any(|v| v.id == first.id && v.start == first.start)
    );
    assert_eq!(still.len(), 2);
}

#[test]
fn a_second_patient_with_a_known_name_and_another_national_id_is_reported() {
    let mut base = TestNode::base(64);
    let lines = two_rows();
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &lines[..2].join("\n"), CET)
        .unwrap();
    let twin = lines[1]
        .replace(";54122069157;", ";01017012345;")
        .replace(";13:38;13:48;", ";10:00;10:10;");
    let text = [lines[0].clone(), twin].join("\n");
    let summary = base
        .repo
        .import_worklist(at("07:00"), &mut base.rng, &text, CET)
        .unwrap();
    assert_eq!(summary.new_patients, 1);
    assert_eq!(summary.same_name.len(), 1);
    assert_eq!(summary.same_name[0].patient_name, "Turid Nilsen");
    assert_eq!(summary.same_name[0].line, 2);
    assert_eq!(summary.same_name[0].others.len(), 1);
    assert_ne!(summary.same_name[0].others[0], summary.same_name[0].patient);
}

#[test]
fn the_work_lists_staff_names_name_staff_until_a_certificate_does() {
    let mut base = TestNode::base(65);
    base.repo
        .import_worklist(at("06:00"), &mut base.rng, &two_rows().join("\n"), CET)
        .unwrap();
    let names = base.repo.staff_names().unwrap();
    assert_eq!(names["S00010"], "Ola Hansen");
    assert_eq!(names["S00009"], "Anne Strand");
    assert_eq!(base.repo.listed_staff()["S00010"].role, "sykepleier");
    let report = omsyn_core::report::day_report(
        &base.repo,
        Day::parse("2026-11-23").unwrap(),
        None,
        &mut omsyn_tests::gate(&base.repo),
    )
    .unwrap();
    assert_eq!(report.staff_names["S00010"], "Ola Hansen");

    // S00010's phone is enrolled and its writes reach the base: the certificate's name wins.
    let mut nurse = TestNode::nurse(66, "S00010");
    let rng = &mut nurse.rng;
    nurse
        .repo
        .day_log(
            at("07:00"),
            rng,
            at("07:00"),
            omsyn_core::docs::daylog::DayLogBody::ShiftStart,
        )
        .unwrap();
    omsyn_tests::push(&nurse.repo, &base.repo);
    assert_eq!(base.repo.staff_names().unwrap()["S00010"], "Nurse S00010");
}
