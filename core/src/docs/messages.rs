//! Messages between the home unit, nurses and the base about one patient, one month per document.
//! Append-only like the journal: a message is never edited.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Author, ChangeContext, DocError, Document, decode_entries};
use crate::ids::EntryId;
use crate::time::Timestamp;

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "to", content = "who")]
pub enum Recipient {
    /// The patient's home (the home unit).
    Home,
    /// The care team (every nurse on the patient).
    CareTeam,
    /// The base office.
    Base,
}

impl Recipient {
    /// Parses `home`, `care-team` or `base`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "home" => Some(Recipient::Home),
            "care-team" => Some(Recipient::CareTeam),
            "base" => Some(Recipient::Base),
            _ => None,
        }
    }
}

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Id.
    pub id: EntryId,
    /// Sender.
    pub author: Author,
    /// Recipient.
    pub to: Recipient,
    /// When it was sent.
    pub sent_at: Timestamp,
    /// The message this answers.
    pub in_reply_to: Option<EntryId>,
    /// Text.
    pub text: String,
}

/// Sends (appends) a message.
pub fn send(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    to: Recipient,
    text: &str,
    in_reply_to: Option<EntryId>,
) -> Result<Message, DocError> {
    if text.trim().is_empty() || text.len() > super::journal::MAX_TEXT_BYTES {
        return Err(DocError::Rejected(format!(
            "a message needs 1 to {} bytes of text",
            super::journal::MAX_TEXT_BYTES
        )));
    }
    let message = Message {
        id: EntryId::random(rng),
        author: ctx.author.clone(),
        to,
        sent_at: ctx.entered_at,
        in_reply_to,
        text: text.to_owned(),
    };
    doc.change(ctx, |ed| {
        ed.put_json(&format!("m/{}", message.id), &message)
    })?;
    Ok(message)
}

/// Reads all messages, oldest first, plus keys that could not be decoded.
pub fn read(doc: &Document) -> (Vec<Message>, Vec<String>) {
    let (mut messages, bad) = decode_entries::<Message>(doc.reader(), "m/");
    messages.sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then_with(|| a.id.cmp(&b.id)));
    (messages, bad)
}
