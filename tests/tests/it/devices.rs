//! Welfare technology: every kind of device report becomes a journal entry with the device as
//! performer; malformed reports are refused whole; a report delivered twice is stored once; a
//! dose the dispenser registered as taken and a nurse's "given" are a double dose.

use omsyn_core::RepoError;
use omsyn_core::conflict::ConflictKind;
use omsyn_core::docs::journal::{DeviceEvent, EntryBody};
use omsyn_core::ids::{MedicationId, PatientId};
use omsyn_core::repo::{DeviceReport, DoseEventKind};
use omsyn_tests::{TestNode, at, push};

const DISPENSER: &str = "Evondos E300 #4711";

struct Home {
    base: TestNode,
    home: TestNode,
    patient: PatientId,
    med: MedicationId,
}

fn home() -> Home {
    let mut base = TestNode::base(1);
    let patient = base.add_patient("Turid Nilsen");
    let med = base.add_medication(&patient, "Metformin 500 mg", "08:00");
    let home = TestNode::home_unit(5, &patient);
    push(&base.repo, &home.repo);
    Home {
        base,
        home,
        patient,
        med,
    }
}

fn report(h: &mut Home, event_id: &str, r: DeviceReport) -> Result<Option<EntryBody>, RepoError> {
    let entry = h.home.repo.device_report(
        at("08:05"),
        &mut h.home.rng,
        DISPENSER,
        event_id,
        at("08:04"),
        &r,
    )?;
    Ok(entry.map(|e| e.body))
}

fn dose(h: &Home, kind: DoseEventKind) -> DeviceReport {
    DeviceReport::Dose {
        kind,
        medication: h.med.clone(),
        slot: "08:00".into(),
    }
}

fn journal_len(h: &Home) -> usize {
    h.home.repo.journal(&h.patient).unwrap().0.len()
}

#[test]
fn a_report_dated_well_ahead_of_the_units_clock_is_refused() {
    let mut h = home();
    let ahead = h.home.repo.device_report(
        at("08:05"),
        &mut h.home.rng,
        DISPENSER,
        "ahead-1",
        at("09:05"),
        &DeviceReport::Alarm,
    );
    assert!(
        matches!(&ahead, Err(RepoError::Invalid(m)) if m.contains("clock")),
        "{ahead:?}"
    );
    assert_eq!(journal_len(&h), 0);
}

#[test]
fn every_device_report_kind_becomes_an_entry_with_the_device_as_performer() {
    let mut h = home();
    let reports = [
        (dose(&h, DoseEventKind::Dispensed), false),
        (dose(&h, DoseEventKind::Taken), false),
        (dose(&h, DoseEventKind::Missed), true),
        (
            DeviceReport::Error {
                code: "E42 jammed".into(),
            },
            true,
        ),
        (DeviceReport::PowerFailure, true),
        (DeviceReport::Alarm, true),
    ];
    for (i, (r, alert)) in reports.into_iter().enumerate() {
        let body = report(&mut h, &format!("ev-{i}"), r).unwrap().unwrap();
        let EntryBody::DeviceEvent {
            device,
            event_id,
            event,
        } = &body
        else {
            panic!("expected a device event, got {body:?}");
        };
        assert_eq!(device, DISPENSER);
        assert_eq!(event_id, &format!("ev-{i}"));
        assert_eq!(event.is_alert(), alert, "{event:?}");
        assert!(body.describe().starts_with(DISPENSER));
    }
    for (i, (kind, value, unit)) in [
        ("blood-pressure", "128/82", "mmHg"),
        ("spo2", "96", "%"),
        ("weight", "71.5", "kg"),
        ("glucose", "6.2", "mmol/L"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = report(
            &mut h,
            &format!("m-{i}"),
            DeviceReport::Measurement {
                kind: kind.into(),
                value: value.into(),
                unit: Some(unit.into()),
            },
        )
        .unwrap()
        .unwrap();
        let EntryBody::Observation { device_reading, .. } = body else {
            panic!("expected an observation");
        };
        assert_eq!(device_reading, Some(format!("{DISPENSER}#m-{i}")));
    }
    assert_eq!(journal_len(&h), 10);
    // The author is the home unit that signed it; the base accepts the changes.
    let (entries, _) = h.home.repo.journal(&h.patient).unwrap();
    assert!(entries.iter().all(|e| e.author.device == h.home.repo.id()));
    push(&h.home.repo, &h.base.repo);
    assert_eq!(h.base.repo.journal(&h.patient).unwrap().0.len(), 10);
}

#[test]
fn a_report_delivered_twice_is_stored_once() {
    let mut h = home();
    assert!(
        report(&mut h, "same", DeviceReport::Alarm)
            .unwrap()
            .is_some()
    );
    assert!(
        report(&mut h, "same", DeviceReport::Alarm)
            .unwrap()
            .is_none()
    );
    let m = DeviceReport::Measurement {
        kind: "spo2".into(),
        value: "95".into(),
        unit: None,
    };
    assert!(report(&mut h, "reading-1", m.clone()).unwrap().is_some());
    assert!(report(&mut h, "reading-1", m).unwrap().is_none());
    assert_eq!(journal_len(&h), 2);
}

#[test]
fn malformed_reports_are_refused_whole_and_nothing_is_stored() {
    let mut h = home();
    let unknown_med = DeviceReport::Dose {
        kind: DoseEventKind::Taken,
        medication: MedicationId::parse("m-0123456789abcdef").unwrap(),
        slot: "08:00".into(),
    };
    assert!(matches!(
        report(&mut h, "a", unknown_med),
        Err(RepoError::NotFound(_))
    ));
    let wrong_slot = DeviceReport::Dose {
        kind: DoseEventKind::Taken,
        medication: h.med.clone(),
        slot: "09:00".into(),
    };
    assert!(matches!(
        report(&mut h, "b", wrong_slot),
        Err(RepoError::Invalid(_))
    ));
    for (kind, value) in [
        ("blood-pressure", "82/128"),
        ("blood-pressure", "high"),
        ("spo2", "960"),
        ("weight", "NaN"),
        ("glucose", "-1"),
        ("mood", "fine"),
    ] {
        let r = DeviceReport::Measurement {
            kind: kind.into(),
            value: value.into(),
            unit: None,
        };
        assert!(
            matches!(report(&mut h, "c", r), Err(RepoError::Invalid(_))),
            "{kind} {value}"
        );
    }
    let err = h
        .home
        .repo
        .device_report(
            at("08:05"),
            &mut h.home.rng,
            "",
            "d",
            at("08:04"),
            &DeviceReport::Alarm,
        )
        .unwrap_err();
    assert!(err.to_string().contains("device"), "{err}");
    assert_eq!(journal_len(&h), 0);

    // A home unit that does not hold its patient's record yet documents nothing about them.
    let mut fresh = TestNode::home_unit(9, &h.patient);
    let err = fresh
        .repo
        .device_report(
            at("08:05"),
            &mut fresh.rng,
            DISPENSER,
            "f",
            at("08:04"),
            &DeviceReport::Alarm,
        )
        .unwrap_err();
    assert!(matches!(err, RepoError::NotFound(_)), "{err}");
    assert!(fresh.repo.journal(&h.patient).unwrap().0.is_empty());

    // Only a home unit records device reports.
    let err = h
        .base
        .repo
        .device_report(
            at("08:05"),
            &mut h.base.rng,
            DISPENSER,
            "e",
            at("08:04"),
            &DeviceReport::Alarm,
        )
        .unwrap_err();
    assert!(matches!(err, RepoError::NotPermitted { .. }), "{err}");
}

#[test]
fn a_dose_taken_from_the_dispenser_and_given_by_a_nurse_is_a_double_dose() {
    let mut h = home();
    let mut nurse = TestNode::nurse(7, "S1");
    push(&h.base.repo, &nurse.repo);
    let taken = dose(&h, DoseEventKind::Taken);
    report(&mut h, "t1", taken).unwrap();
    nurse
        .repo
        .record_dose(
            at("08:10"),
            &mut nurse.rng,
            &h.patient,
            &h.med,
            "08:00",
            at("08:10"),
            None,
            None,
        )
        .unwrap();
    push(&h.home.repo, &h.base.repo);
    push(&nurse.repo, &h.base.repo);
    let conflicts = h.base.repo.conflicts(Some(&h.patient)).unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(matches!(
        conflicts[0].kind,
        ConflictKind::DoseGivenTwice { .. }
    ));
    let (entries, _) = h.base.repo.journal(&h.patient).unwrap();
    assert!(
        entries
            .iter()
            .any(|e| matches!(e.body.device_event(), Some(DeviceEvent::DoseTaken { .. })))
    );
}
