//! Patient data leaving the node as a file: the portable export and FHIR bundles. Both pass the
//! need gate patient by patient, and every export is logged naming each patient — never
//! throttled like a refreshed view.

use crate::fhir::PatientBundle;
use crate::ids::PatientId;

use super::{Service, ServiceError};

/// FHIR R4 bundles, one per patient exported.
pub type FhirExport = Vec<(PatientId, PatientBundle)>;

impl Service {
    /// The export file's bytes: the patients this user has a need for (or the one named).
    pub fn export(&self, patient: Option<&str>) -> Result<Vec<u8>, ServiceError> {
        let patient = patient.map(|p| self.patient(p)).transpose()?;
        Ok(self.repo.export(self.now(), patient.as_ref())?)
    }

    /// FHIR R4 bundles for the record system (a base's act).
    pub fn export_fhir(&self, patient: Option<&str>) -> Result<FhirExport, ServiceError> {
        let patient = patient.map(|p| self.patient(p)).transpose()?;
        Ok(crate::fhir::export(
            &self.repo,
            self.now(),
            patient.as_ref(),
        )?)
    }
}
