//! What a person can do about a refusal. Core names it once; each front end says it in its own
//! terms — the CLI as the command to run, HTTP as a field of its JSON error, an app as its own
//! screen — so that no front end's words (an `omsyn …` command line) reach another's users.
//! Core's messages describe the step in words only.

use serde::Serialize;

use crate::ids::{PatientId, StaffId};

/// A next step that can lift a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Remedy {
    /// Ask for explicit ("break-glass") access to the patient, with a reason: logged and
    /// reviewed at the base.
    AskExplicitAccess {
        /// The patient.
        patient: PatientId,
    },
    /// Look at the visits this node holds, to name one it has.
    ListVisits,
    /// Look at the patient's record, where the care team is.
    ShowPatient {
        /// The patient.
        patient: PatientId,
    },
    /// Add the staff member to the base's staff directory (or pick one it knows).
    AddStaff {
        /// The staff id that is not known.
        staff: StaffId,
    },
}
