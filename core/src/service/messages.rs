//! Messages about a patient between the home, the care team and the base.

use crate::docs::messages::{Attachment, Message, Recipient};

use super::{Service, ServiceError};

/// A message to send.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The patient it is about: an id, or a name naming one patient.
    pub patient: String,
    /// Who it is for.
    pub to: Recipient,
    /// The text (may be empty when there is a picture).
    pub text: String,
    /// The message it answers, if any (`e-…`).
    pub in_reply_to: Option<String>,
    /// Pictures: (content type, file name, bytes).
    pub pictures: Vec<(String, Option<String>, Vec<u8>)>,
}

impl Service {
    /// Sends a message. Each picture must be a JPEG, PNG or WebP within the size limit.
    pub fn send_message(&self, req: NewMessage) -> Result<Message, ServiceError> {
        let patient = self.patient(&req.patient)?;
        let reply = req
            .in_reply_to
            .as_deref()
            .map(|r| self.entry("in_reply_to", r))
            .transpose()?;
        if req.text.trim().is_empty() && req.pictures.is_empty() {
            return Err(ServiceError::invalid(
                "text",
                "the message is empty: give a text or a picture",
            ));
        }
        let attachments = req
            .pictures
            .iter()
            .enumerate()
            .map(|(n, (kind, name, bytes))| {
                Attachment::picture(kind, name.as_deref(), bytes)
                    .map_err(|e| ServiceError::invalid(format!("pictures[{n}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|repo, now, rng| {
            repo.send_message(now, rng, &patient, req.to, &req.text, reply, attachments)
        })
    }

    /// The messages about `patient`, oldest first: a read through the need gate, logged.
    pub fn messages(&self, patient: &str, what: &str) -> Result<Vec<Message>, ServiceError> {
        let patient = self.patient(patient)?;
        self.open(&patient, what)?;
        Ok(self.repo.patient_view(&patient)?.messages)
    }
}
