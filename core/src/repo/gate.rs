//! The need gate: every read of patient data ([`Repo::open_patient`] for one patient,
//! [`Repo::disclose`]/[`Repo::open_patients`] for many) is checked against this user's
//! work-related need and logged naming each patient.

use std::collections::{BTreeMap, BTreeSet};

use super::{Repo, RepoError};
use crate::docs::DocumentId;
use crate::ids::PatientId;
use crate::remedy::Remedy;
use crate::time::Timestamp;
use crate::trust::audit::{AccessEvent, AuditAction};
use crate::trust::need;

/// What the need gate let through ([`Repo::open_patients`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    /// The patients this node may show.
    pub shown: BTreeSet<PatientId>,
    /// The patients held back, and why.
    pub refused: BTreeMap<PatientId, AccessDenied>,
}

impl Gate {
    /// Whether `patient` may be shown.
    pub fn shows(&self, patient: &PatientId) -> bool {
        self.shown.contains(patient)
    }
}

/// A read of patient data through the need gate, as it goes: [`Disclosure::admits`] answers
/// per patient whether it may be shown (the same check as [`Repo::open_patient`]), and
/// [`Disclosure::finish`] logs one entry naming every patient shown and one naming those held
/// back. A report or a board asks as it meets each patient, so the log names exactly those it
/// showed.
#[derive(Debug)]
pub struct Disclosure<'a> {
    repo: &'a Repo,
    now: Timestamp,
    action: AuditAction,
    what: String,
    gate: Gate,
    purposes: BTreeSet<String>,
}

impl Disclosure<'_> {
    /// Whether `patient` may be shown.
    pub fn admits(&mut self, patient: &PatientId) -> Result<bool, RepoError> {
        if self.gate.shows(patient) {
            return Ok(true);
        }
        if self.gate.refused.contains_key(patient) {
            return Ok(false);
        }
        match self.repo.verdict(self.now, patient)? {
            Ok(purpose) => {
                self.purposes.insert(purpose);
                self.gate.shown.insert(patient.clone());
                Ok(true)
            }
            Err(denied) => {
                self.gate.refused.insert(patient.clone(), denied);
                Ok(false)
            }
        }
    }

    /// What the gate has let through and held back so far.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// Logs what was shown and held back; returns the verdicts.
    pub fn finish(self) -> Result<Gate, RepoError> {
        self.finish_logging(true)
    }

    /// [`Disclosure::finish`], logging only if `log` (a view refreshed within a minute of the
    /// same view's last logged read: the dashboard logs a view once a minute, not per refresh).
    pub fn finish_logging(self, log: bool) -> Result<Gate, RepoError> {
        if !log {
            return Ok(self.gate);
        }
        let purpose = self.purposes.into_iter().collect::<Vec<_>>().join("; ");
        let mut event = AccessEvent::new(None, self.action, self.what.clone(), purpose);
        event.patients = self.gate.shown.iter().cloned().collect();
        let gate = self.gate;
        let (now, what) = (self.now, self.what);
        self.repo.transaction(|tx| {
            tx.log_access(now, event)?;
            if !gate.refused.is_empty() {
                let mut refusal = AccessEvent::new(
                    None,
                    AuditAction::Refused,
                    what,
                    "no work-related need, or the patient blocks this user".into(),
                );
                refusal.patients = gate.refused.keys().cloned().collect();
                tx.log_access(now, refusal)?;
            }
            Ok::<_, RepoError>(())
        })?;
        Ok(gate)
    }
}

/// A read refused: no work-related need, or the patient blocks this user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct AccessDenied {
    /// The patient.
    pub patient: PatientId,
    /// Why, for people.
    pub reason: String,
    /// What the user can do about it (nothing, for a block).
    pub remedy: Option<Remedy>,
}

impl Repo {
    /// Opens a patient's data for reading: checks this node's need (refusing, and logging the
    /// refusal, when there is none or a block names its user) and logs the read with its purpose.
    pub fn open_patient(
        &self,
        now: Timestamp,
        patient: &PatientId,
        what: &str,
    ) -> Result<String, RepoError> {
        let verdict = self.verdict(now, patient)?;
        let (action, text) = match &verdict {
            Ok(purpose) => (AuditAction::Read, purpose),
            Err(denied) => (AuditAction::Refused, &denied.reason),
        };
        self.log_access(
            now,
            AccessEvent::new(Some(patient.clone()), action, what.to_owned(), text.clone()),
        )?;
        verdict.map_err(RepoError::from)
    }

    /// The need gate for patient data leaving in bulk (a list, a board, a report, an export):
    /// which of `patients` this node may show now — the same check as [`Repo::open_patient`] —
    /// logged as one entry of `action` naming every patient shown, and one refusal naming those
    /// held back. Every way patient data leaves a node passes here, through [`Disclosure`], or
    /// through `open_patient`.
    pub fn open_patients(
        &self,
        now: Timestamp,
        action: AuditAction,
        what: &str,
        patients: impl IntoIterator<Item = PatientId>,
    ) -> Result<Gate, RepoError> {
        let mut disclosure = self.disclose(now, action, what);
        for patient in patients {
            disclosure.admits(&patient)?;
        }
        disclosure.finish()
    }

    /// Starts a read of many patients through the need gate (see [`Disclosure`]).
    pub fn disclose(&self, now: Timestamp, action: AuditAction, what: &str) -> Disclosure<'_> {
        Disclosure {
            repo: self,
            now,
            action,
            what: what.to_owned(),
            gate: Gate::default(),
            purposes: BTreeSet::new(),
        }
    }

    /// Whether this node may read `patient` now: `Ok(purpose)` (the need: "care team", "work
    /// list 2026-11-23", "zone Sone 1"...) or `Err(why not, and what to do)`.
    fn verdict(
        &self,
        now: Timestamp,
        patient: &PatientId,
    ) -> Result<Result<String, AccessDenied>, RepoError> {
        // As its peers serve it now: a certificate dated ahead is not yet this node's grant.
        let grant = self.grant_at(now.change_millis())?;
        let doc = DocumentId::PatientRecord(patient.clone());
        let relations = self.store.relations_view()?;
        let reason = need::need_reason_in_view(&relations, now.unix_millis(), &grant, &doc)?;
        let withdrawal = relations.withdrawal(patient)?;
        let denied = |reason: String, remedy| AccessDenied {
            patient: patient.clone(),
            reason,
            remedy,
        };
        let ask = Some(Remedy::AskExplicitAccess {
            patient: patient.clone(),
        });
        Ok(
            if need::blocked_in_view(&relations, &grant, &doc)? || withdrawal == Some(true) {
                let user = grant
                    .staff_id
                    .as_ref()
                    .map_or("this device", |s| s.as_str());
                Err(denied(
                    format!("patient {patient} has blocked access for {user} (sperring)"),
                    None,
                ))
            } else if withdrawal == Some(false) {
                Err(denied(
                    format!(
                        "patient {patient} is no longer on this device's work list (the base withdrew it); \
                         ask for explicit access, with a reason, if you must"
                    ),
                    ask,
                ))
            } else if let Some(reason) = reason {
                Ok(reason)
            } else {
                Err(denied(
                    format!(
                        "no work-related need for patient {patient}: not on this user's work list, care team or zone. \
                         To proceed, ask for explicit access with a reason; it is logged and reviewed"
                    ),
                    ask,
                ))
            },
        )
    }
}
