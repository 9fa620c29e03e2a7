//! The peer's bytes taken apart before a session takes them in: frames split, compressed
//! batches inflated, messages decoded, and — once the session has verified the peer's Hello —
//! every received change vouched for and parsed ([`pipeline::check`]). None of it needs the store, so a driver may run an [`Inbox`] on
//! another thread, ahead of the session that applies what the last bytes brought: a base's
//! month then has its signatures checked on one core while the changes before them are judged
//! and stored on the other. Every check that needs the document (authors, the rules) stays in
//! the session's write.

use super::wire::{DecodeError, FrameDecoder, Message, decode};
use crate::docs::DocumentId;
use crate::identity::Verifiers;
use crate::pipeline::{self, Checked};

/// Splits the peer's byte stream into messages and checks their changes. One per session.
///
/// Changes are checked only once the session has verified the peer's Hello
/// ([`Inbox::peer_verified`]). Before, they are handed over as they came, and the session,
/// which refuses changes before a verified Hello, checks them itself after it: a peer that is
/// not enrolled, or revoked, costs no signature checks.
#[derive(Debug, Default)]
pub struct Inbox {
    decoder: FrameDecoder,
    peer_verified: bool,
}

/// What bytes of the peer held, taken apart: every message complete in them, in order. Hand it
/// to [`super::Session::handle_unpacked`].
#[derive(Debug, Default)]
pub struct Unpacked {
    pub(super) bytes: u64,
    pub(super) messages: Vec<Received>,
    /// The bytes broke the protocol: the session ends, and nothing of these bytes is taken in.
    pub(super) error: Option<DecodeError>,
}

/// A message as the session takes it in.
#[derive(Debug)]
pub(super) enum Received {
    /// A document's changes, each checked as far as its bytes allow; or why one was not.
    Changes {
        doc: DocumentId,
        changes: Result<Vec<Checked>, String>,
    },
    /// Any other message.
    Other(Message),
}

impl Inbox {
    /// The session verified the peer's Hello: changes are checked here from now on.
    pub fn peer_verified(&mut self) {
        self.peer_verified = true;
    }

    /// Takes `bytes` received from the peer apart. Frames not complete yet wait for the bytes
    /// that complete them.
    pub fn unpack(&mut self, bytes: &[u8]) -> Unpacked {
        let mut unpacked = Unpacked {
            bytes: bytes.len() as u64,
            ..Unpacked::default()
        };
        if let Err(e) = self.decoder.push(bytes) {
            unpacked.error = Some(e);
            return unpacked;
        }
        // Authors' keys are decompressed once per read: a read holds many changes of few authors.
        let mut keys = Verifiers::default();
        while let Some(frame) = self.decoder.next_frame() {
            match decode(&frame) {
                Ok(Message::Changes { doc, changes }) if self.peer_verified => {
                    let changes = pipeline::check_all(&mut keys, changes);
                    unpacked.messages.push(Received::Changes { doc, changes });
                }
                Ok(message) => unpacked.messages.push(Received::Other(message)),
                Err(e) => {
                    unpacked.error = Some(e);
                    break;
                }
            }
        }
        unpacked
    }
}

impl Unpacked {
    /// `bytes` bytes that could not be taken apart at all (the thread unpacking them failed):
    /// they break the protocol like malformed ones, and end the session with an error.
    pub fn unreadable(bytes: u64) -> Unpacked {
        Unpacked {
            bytes,
            messages: Vec::new(),
            error: Some(DecodeError::Invalid("bytes that could not be taken apart")),
        }
    }

    /// Whether these bytes broke the protocol (see [`Unpacked::append`]).
    pub fn is_malformed(&self) -> bool {
        self.error.is_some()
    }

    /// Whether these bytes completed no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.error.is_none()
    }

    /// Bytes of changes these messages carry.
    pub fn change_bytes(&self) -> usize {
        self.messages
            .iter()
            .map(|m| match m {
                Received::Changes {
                    changes: Ok(changes),
                    ..
                } => changes.iter().map(|c| c.vouched().bytes.len()).sum(),
                Received::Other(Message::Changes { changes, .. }) => {
                    changes.iter().map(|c| c.bytes.len()).sum()
                }
                _ => 0,
            })
            .sum()
    }

    /// What holding these messages costs, for bounding how much is merged into one write:
    /// their changes' bytes, and [`crate::sync::wire::FRAME_WEIGHT`] each (a message without
    /// changes is not free to hold).
    pub fn weight(&self) -> usize {
        self.change_bytes() + self.messages.len() * crate::sync::wire::FRAME_WEIGHT
    }

    /// Adds what later bytes held, so the session takes both in one write. If either is
    /// malformed the whole is, and nothing of it is taken in: messages that must be taken in
    /// before malformed bytes end the session go over on their own.
    pub fn append(&mut self, later: Unpacked) {
        self.bytes += later.bytes;
        self.messages.extend(later.messages);
        self.error = self.error.take().or(later.error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::wire::{SignedChange, encode};

    fn forged_changes() -> Vec<u8> {
        encode(&Message::Changes {
            doc: DocumentId::PatientRecord(crate::ids::PatientId::from_bytes([1; 8])),
            changes: vec![SignedChange {
                bytes: vec![1, 2, 3],
                signature: [7; 64],
            }],
        })
    }

    #[test]
    fn changes_from_a_peer_not_yet_verified_are_left_unchecked_for_the_session() {
        let unpacked = Inbox::default().unpack(&forged_changes());
        assert!(matches!(
            unpacked.messages.as_slice(),
            [Received::Other(Message::Changes { .. })]
        ));
        assert_eq!(unpacked.change_bytes(), 3);
    }

    #[test]
    fn changes_from_a_verified_peer_are_checked_in_the_inbox() {
        let mut inbox = Inbox::default();
        inbox.peer_verified();
        let unpacked = inbox.unpack(&forged_changes());
        assert!(matches!(
            unpacked.messages.as_slice(),
            [Received::Changes {
                changes: Err(_),
                ..
            }]
        ));
    }
}
