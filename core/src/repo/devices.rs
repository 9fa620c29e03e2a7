//! Welfare technology in the home: what a home unit's devices report — a medication dispenser
//! (dose dispensed, taken, missed; device error; power failure), an alarm button, measurement
//! devices (blood pressure, SpO2, weight, glucose, pulse, temperature) — becomes journal entries
//! with the device as performer, signed by the home unit. Each report is validated whole before
//! anything is written, and a report delivered twice (devices retry) is stored once.

use rand::RngCore;

use super::{RepoError, Transaction};
use crate::Role;
use crate::docs::DocumentId;
use crate::docs::journal::{self, DeviceEvent, Entry, EntryBody};
use crate::ids::{MedicationId, PatientId};
use crate::time::Timestamp;

/// Longest device name or event id accepted.
const MAX_ID_CHARS: usize = 200;
/// How far ahead of the home unit's clock a device's report may be dated.
const MAX_CLOCK_AHEAD_MINUTES: i64 = 5;

/// What happened to a dispenser's dose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoseEventKind {
    /// Released.
    Dispensed,
    /// Registered as taken (counts as given).
    Taken,
    /// Not taken in time.
    Missed,
}

/// A report from a device, as the home unit receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceReport {
    /// A dispenser's dose event.
    Dose {
        /// What happened.
        kind: DoseEventKind,
        /// The medication (from the patient's list).
        medication: MedicationId,
        /// Its dose slot, `HH:MM`.
        slot: String,
    },
    /// A device error.
    Error {
        /// The device's code or text.
        code: String,
    },
    /// Mains power lost.
    PowerFailure,
    /// The alarm button was pressed.
    Alarm,
    /// A measurement.
    Measurement {
        /// `blood-pressure`, `spo2`, `weight`, `glucose`, `pulse` or `temperature`.
        kind: String,
        /// The value (`128/82` for blood pressure, a number otherwise).
        value: String,
        /// The unit, if the device gives one.
        unit: Option<String>,
    },
}

impl Transaction<'_> {
    /// Records what a device in this home unit's patient's home reported, with the device as
    /// performer. `event_id` is the device's own id of the report: a report already recorded
    /// is not recorded again (`Ok(None)`).
    pub fn device_report(
        &mut self,
        now: Timestamp,
        rng: &mut impl RngCore,
        device: &str,
        event_id: &str,
        event_time: Timestamp,
        report: &DeviceReport,
    ) -> Result<Option<Entry>, RepoError> {
        let patient = self.served_patient()?;
        check_report(now, device, event_id, event_time)?;
        // The home holds its patient's record before it documents anything about the patient.
        self.require_patient(&patient)?;
        let reading = format!("{device}#{event_id}");
        let body = self.report_body(&patient, device, event_id, event_time, report, &reading)?;
        let doc_id = DocumentId::Journal(patient, event_time.day().month());
        if let Some(doc) = self.batch.existing(&doc_id)?
            && journal::read(doc)
                .entries
                .iter()
                .any(|e| same_report(&e.body, device, event_id, &reading))
        {
            return Ok(None);
        }
        self.append_entry(now, rng, doc_id, event_time, body)
            .map(Some)
    }

    /// The patient whose home this unit is: only a home unit records what devices report.
    fn served_patient(&self) -> Result<PatientId, RepoError> {
        let profile = self.repo.profile();
        if profile.role != Role::HomeUnit {
            return Err(RepoError::NotPermitted {
                role: profile.role,
                action: "record what a home's devices report",
            });
        }
        profile
            .patient
            .clone()
            .ok_or_else(|| RepoError::Invalid("this home unit serves no patient".into()))
    }

    /// The journal entry a report makes: a device event, or an observation for a measurement.
    fn report_body(
        &mut self,
        patient: &PatientId,
        device: &str,
        event_id: &str,
        event_time: Timestamp,
        report: &DeviceReport,
        reading: &str,
    ) -> Result<EntryBody, RepoError> {
        let event = match report {
            DeviceReport::Dose {
                kind,
                medication,
                slot,
            } => {
                let dose = self.dose(patient, medication, slot, event_time)?;
                match kind {
                    DoseEventKind::Dispensed => DeviceEvent::DoseDispensed { dose },
                    DoseEventKind::Taken => DeviceEvent::DoseTaken { dose },
                    DoseEventKind::Missed => DeviceEvent::DoseMissed { dose },
                }
            }
            DeviceReport::Error { code } => DeviceEvent::DeviceError { code: code.clone() },
            DeviceReport::PowerFailure => DeviceEvent::PowerFailure,
            DeviceReport::Alarm => DeviceEvent::AlarmPressed,
            DeviceReport::Measurement { kind, value, unit } => {
                check_device_measurement(kind, value)?;
                return Ok(EntryBody::Observation {
                    visit: None,
                    kind: kind.clone(),
                    value: value.trim().to_owned(),
                    unit: unit.clone(),
                    device_reading: Some(reading.to_owned()),
                });
            }
        };
        Ok(device_event(device, event_id, event))
    }
}

/// A report's names and time, checked before anything is read: the device and its event id
/// printable and bounded, the time not far ahead of this unit's clock.
fn check_report(
    now: Timestamp,
    device: &str,
    event_id: &str,
    event_time: Timestamp,
) -> Result<(), RepoError> {
    for (what, value) in [("device", device), ("event id", event_id)] {
        if value.trim().is_empty()
            || value.chars().count() > MAX_ID_CHARS
            || value.chars().any(char::is_control)
        {
            return Err(RepoError::Invalid(format!(
                "the {what} must be 1-{MAX_ID_CHARS} printable characters"
            )));
        }
    }
    // A device clock far ahead would put off every deadline the report starts (escalation).
    if event_time > now.plus_minutes(MAX_CLOCK_AHEAD_MINUTES) {
        return Err(RepoError::Invalid(format!(
            "the report's time {event_time} is more than {MAX_CLOCK_AHEAD_MINUTES} minutes \
             after this unit's clock ({now}): check the device's clock"
        )));
    }
    Ok(())
}

fn device_event(device: &str, event_id: &str, event: DeviceEvent) -> EntryBody {
    EntryBody::DeviceEvent {
        device: device.to_owned(),
        event_id: event_id.to_owned(),
        event,
    }
}

/// Whether `body` is the record of this very report.
fn same_report(body: &EntryBody, device: &str, event_id: &str, reading: &str) -> bool {
    match body {
        EntryBody::DeviceEvent {
            device: d,
            event_id: e,
            ..
        } => d == device && e == event_id,
        EntryBody::Observation {
            device_reading: Some(r),
            ..
        } => r == reading,
        _ => false,
    }
}

/// The measurements a home's devices report, and the values each could really read.
const MEASUREMENTS: &str = "blood-pressure, spo2, weight, glucose, pulse or temperature";

/// Refuses a device's measurement of a kind no rule covers, or a value no device could have
/// made (a unit mix-up, a garbled packet).
fn check_device_measurement(kind: &str, value: &str) -> Result<(), RepoError> {
    if !is_known_measurement(kind) {
        return Err(RepoError::Invalid(format!(
            "unknown measurement {kind:?}: {MEASUREMENTS}"
        )));
    }
    check_measurement(kind, value).map_err(RepoError::Invalid)
}

fn is_known_measurement(kind: &str) -> bool {
    matches!(
        kind,
        "blood-pressure" | "spo2" | "weight" | "glucose" | "pulse" | "temperature"
    )
}

/// Refuses a value of a known measurement that no device could have made, saying what would
/// be accepted. One rule set for the home's devices and for what a nurse types (through the
/// service); a kind no rule covers (a nurse's own) is accepted as written.
pub(crate) fn check_measurement(kind: &str, value: &str) -> Result<(), String> {
    let invalid = |why: &str| format!("{kind} {value:?}: {why}");
    let number = |v: &str| v.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let within = |lo: f64, hi: f64| match number(value) {
        Some(n) if (lo..=hi).contains(&n) => Ok(()),
        Some(_) => Err(invalid(&format!("expected between {lo} and {hi}"))),
        None => Err(invalid("expected a number")),
    };
    match kind {
        "blood-pressure" => {
            let (sys, dia) = value
                .split_once('/')
                .ok_or_else(|| invalid("expected systolic/diastolic, e.g. 128/82"))?;
            match (number(sys), number(dia)) {
                (Some(s), Some(d))
                    if (40.0..=300.0).contains(&s) && (20.0..=200.0).contains(&d) && d < s =>
                {
                    Ok(())
                }
                _ => Err(invalid(
                    "expected systolic/diastolic in mmHg, systolic the higher, e.g. 128/82",
                )),
            }
        }
        "spo2" => within(50.0, 100.0),
        "weight" => within(1.0, 400.0),
        "glucose" => within(0.5, 50.0),
        "pulse" => within(20.0, 250.0),
        "temperature" => within(30.0, 45.0),
        _ => Ok(()),
    }
}
