//! The patient record as a base edits it: registering a patient, flags, contacts and the
//! medication list. Each text a person must give (a flag's kind, why it is lifted, a
//! contact's name and relation, a medication's name and dose) is checked here, once, for every
//! front end; the record's own rules (who may edit it, which slots) stay with the record.

use crate::docs::record::PatientField;
use crate::ids::{ContactId, FlagId, MedicationId, PatientId};

use super::{Service, ServiceError, required};

impl Service {
    /// Registers a patient with `fields` (a name among them).
    pub fn add_patient(
        &self,
        fields: &[(PatientField, String)],
    ) -> Result<PatientId, ServiceError> {
        let name = fields.iter().find(|(f, _)| *f == PatientField::Name);
        required(
            "name",
            name.map_or("", |(_, v)| v.as_str()),
            "the patient's name",
        )?;
        self.write(|repo, now, rng| repo.add_patient(now, rng, fields))
    }

    /// Flags `patient`'s record (risk, allergy...) with a kind and an optional note.
    pub fn add_flag(
        &self,
        patient: &str,
        kind: &str,
        note: Option<&str>,
    ) -> Result<FlagId, ServiceError> {
        let patient = self.patient(patient)?;
        required("kind", kind, "a flag's kind")?;
        self.write(|repo, now, rng| repo.add_flag(now, rng, &patient, kind.trim(), note))
    }

    /// Lifts a flag, saying why (it stays in the record, inactive). Returns whose.
    pub fn lift_flag(
        &self,
        patient: &str,
        flag: &str,
        reason: &str,
    ) -> Result<(PatientId, FlagId), ServiceError> {
        let flag = self.flag(flag)?;
        let patient = self.patient(patient)?;
        required("reason", reason, "why the flag is lifted")?;
        self.write(|repo, now, _| repo.deactivate_flag(now, &patient, &flag, reason.trim()))?;
        Ok((patient, flag))
    }

    /// Adds a contact (next of kin...) to `patient`'s record.
    pub fn add_contact(
        &self,
        patient: &str,
        name: &str,
        relation: &str,
        phone: Option<&str>,
    ) -> Result<ContactId, ServiceError> {
        let patient = self.patient(patient)?;
        required("name", name, "the contact's name")?;
        required("relation", relation, "how the contact is related")?;
        self.write(|repo, now, rng| {
            repo.add_contact(now, rng, &patient, name.trim(), relation.trim(), phone)
        })
    }

    /// Adds a medication with its dose and slots to `patient`'s list. Returns it and whose.
    pub fn add_medication(
        &self,
        patient: &str,
        name: &str,
        dose: &str,
        slots: &[String],
    ) -> Result<(PatientId, MedicationId), ServiceError> {
        let patient = self.patient(patient)?;
        required("name", name, "the medication's name")?;
        required("dose", dose, "the dose")?;
        let id = self.write(|repo, now, rng| {
            repo.add_medication(now, rng, &patient, name.trim(), dose.trim(), slots)
        })?;
        Ok((patient, id))
    }
}
