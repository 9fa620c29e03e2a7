//! The home unit's own requests: the tablet and the welfare technology in one patient's home
//! act for that patient only.

use crate::docs::journal::Entry;
use crate::docs::messages::Attachment;
use crate::ids::PatientId;
use crate::repo::DeviceReport;
use crate::{RepoError, Role};

use super::{Service, ServiceError, When};

impl Service {
    /// The patient this home unit serves; refused on any other node.
    pub fn home_patient(&self) -> Result<PatientId, ServiceError> {
        let profile = self.repo.profile();
        match (&profile.role, &profile.patient) {
            (Role::HomeUnit, Some(p)) => Ok(p.clone()),
            _ => Err(RepoError::NotPermitted {
                role: profile.role,
                action: "serve the home API (the tablet in the home does)",
            }
            .into()),
        }
    }

    /// Stores a home device's report: `None` when the device already delivered this event.
    pub fn device_report(
        &self,
        device: &str,
        event_id: &str,
        at: &When,
        report: &DeviceReport,
    ) -> Result<Option<Entry>, ServiceError> {
        self.home_patient()?;
        let at = self.time("at", at)?; // the device rule below refuses a device clock ahead
        self.write(|repo, now, rng| repo.device_report(now, rng, device, event_id, at, report))
    }

    /// Picture `n` of message `message` about `patient`, checked again before it is served (a
    /// store written before the check, or a bug, must not turn a "picture" into a page);
    /// `None` when there is no such picture. A logged read.
    pub fn message_picture(
        &self,
        patient: &PatientId,
        message: &str,
        n: usize,
        what: &str,
    ) -> Result<Option<(Attachment, Vec<u8>)>, ServiceError> {
        let id = self.entry("message", message)?;
        self.open(patient, what)?;
        let view = self.repo.patient_view(patient)?;
        let picture = view
            .messages
            .into_iter()
            .find(|m| m.id == id)
            .and_then(|m| m.attachments.into_iter().nth(n))
            .filter(|p| p.check().is_ok());
        Ok(picture.and_then(|p| p.bytes().map(|b| (p, b))))
    }
}
