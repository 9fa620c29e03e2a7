//! Messages between the home unit, nurses and the base about one patient, one month per document.
//! Append-only like the journal: a message is never edited. A message may carry pictures (a photo
//! of a wound, a rash, the dispenser's display), bounded so one message cannot bloat every replica.

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Appended, Author, ChangeContext, DocError, Document, decode_appended};
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
    /// Text (may be empty when the message carries pictures).
    pub text: String,
    /// Pictures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// Largest picture accepted (the app scales photos down before sending).
pub const MAX_PICTURE_BYTES: usize = 512 * 1024;
/// Most pictures on one message.
pub const MAX_PICTURES: usize = 4;
/// Most picture bytes on one message.
pub const MAX_PICTURE_BYTES_PER_MESSAGE: usize = 1024 * 1024;

/// The picture formats accepted.
pub const PICTURE_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// The picture format of `bytes`, by their signature.
pub fn picture_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A picture attached to a message. Its bytes live inside the message (base64, since messages are
/// JSON), so they sync, sign and encrypt at rest like everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image/jpeg`, `image/png` or `image/webp`, checked against the bytes.
    pub content_type: String,
    /// The file name, if the sender gave one.
    pub name: Option<String>,
    /// Size in bytes.
    pub size: usize,
    /// The picture, base64 (standard alphabet, padded).
    pub data: String,
}

impl Attachment {
    /// A picture from its bytes: the type must be a JPEG, PNG or WebP image and match the bytes.
    pub fn picture(content_type: &str, name: Option<&str>, bytes: &[u8]) -> Result<Self, DocError> {
        use base64::Engine;
        let picture = Attachment {
            content_type: content_type.to_owned(),
            name: name.map(str::to_owned),
            size: bytes.len(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        };
        picture.check_with(bytes).map_err(DocError::Rejected)?;
        Ok(picture)
    }

    /// Checks a picture as it arrived (from a peer, or read back): its data decodes, its size and
    /// type are what the bytes are, and it is within bounds. Every receiver checks this, so a
    /// sender that skipped [`Attachment::picture`] cannot pass off a script as a picture.
    pub fn check(&self) -> Result<(), String> {
        let bytes = self.bytes().ok_or("a picture's data is not base64")?;
        self.check_with(&bytes)
    }

    fn check_with(&self, bytes: &[u8]) -> Result<(), String> {
        let content_type = self.content_type.as_str();
        if !PICTURE_TYPES.contains(&content_type) {
            return Err(format!(
                "a picture must be image/jpeg, image/png or image/webp, not {:?}",
                content_type.chars().take(64).collect::<String>()
            ));
        }
        if picture_type(bytes) != Some(content_type) {
            return Err(format!(
                "the picture's bytes are not a {content_type} image"
            ));
        }
        if bytes.len() > MAX_PICTURE_BYTES {
            return Err(format!(
                "a picture is {} bytes; at most {MAX_PICTURE_BYTES} are allowed (scale it down)",
                bytes.len()
            ));
        }
        if self.size != bytes.len() {
            return Err(format!(
                "a picture says it is {} bytes but is {}",
                self.size,
                bytes.len()
            ));
        }
        if let Some(name) = &self.name
            && (name.is_empty() || name.len() > 200 || name.chars().any(char::is_control))
        {
            return Err("a picture's name must be 1-200 bytes of printable characters".into());
        }
        Ok(())
    }

    /// The picture's bytes (`None` if a peer sent undecodable data).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data)
            .ok()
    }
}

/// Sends (appends) a message.
pub fn send(
    doc: &mut Document,
    ctx: &ChangeContext,
    rng: &mut impl RngCore,
    to: Recipient,
    text: &str,
    in_reply_to: Option<EntryId>,
    attachments: Vec<Attachment>,
) -> Result<Message, DocError> {
    let no_text = text.trim().is_empty();
    if (no_text && attachments.is_empty()) || text.len() > super::journal::MAX_TEXT_BYTES {
        return Err(DocError::Rejected(format!(
            "a message needs 1 to {} bytes of text, or a picture",
            super::journal::MAX_TEXT_BYTES
        )));
    }
    check_attachments(&attachments).map_err(DocError::Rejected)?;
    let message = Message {
        id: EntryId::random(rng),
        author: ctx.author.clone(),
        to,
        sent_at: ctx.entered_at,
        in_reply_to,
        text: text.to_owned(),
        attachments,
    };
    doc.change(ctx, |ed| {
        ed.put_json(&format!("m/{}", message.id), &message)
    })?;
    Ok(message)
}

/// Checks a message's pictures: each one ([`Attachment::check`]), how many, and how large together.
/// The sender checks before writing; every receiver checks again (see [`crate::trust::rules`]).
pub fn check_attachments(attachments: &[Attachment]) -> Result<(), String> {
    if attachments.len() > MAX_PICTURES {
        return Err(format!("a message carries at most {MAX_PICTURES} pictures"));
    }
    let mut total = 0;
    for picture in attachments {
        picture.check()?;
        total += picture.size;
    }
    if total > MAX_PICTURE_BYTES_PER_MESSAGE {
        return Err(format!(
            "the pictures are {total} bytes together; at most {MAX_PICTURE_BYTES_PER_MESSAGE} per message"
        ));
    }
    Ok(())
}

/// Reads all messages, oldest first, plus keys that could not be decoded.
pub fn read(doc: &Document) -> Appended<Message> {
    let mut read = decode_appended::<Message>(doc.reader(), "m/");
    read.items
        .sort_by(|a, b| a.sent_at.cmp(&b.sent_at).then_with(|| a.id.cmp(&b.id)));
    read
}
