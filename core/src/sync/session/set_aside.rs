//! Changes by revoked nodes that a session left out, kept for the rest of the session.
//!
//! A document larger than a message is sent in parts ([`super::push`]), in causal order: a
//! revoked device's changes can come in one part and the change a colleague built on them
//! before the revocation — the one that vouches for them — in the next. Judged part by part,
//! the first part's are left out (nothing in it vouches), and the colleague's change then lacks
//! them and waits for good; a node that meets the record after the revocation would never hold
//! it. Kept here and put in front of the document's next message, they are judged with it as
//! if the document had come whole; the sender is told what stays left out when its round (or
//! the round's part) ends, not of what a later part carried in.

use std::collections::{BTreeMap, HashSet};

use crate::docs::DocumentId;
use crate::pipeline::{Checked, LeftOut};

/// What a session keeps of left-out changes at most, over all documents: four parts of the
/// largest document. Beyond it, what is left out is forgotten (the document then stays partly
/// taken, and its waiting changes are not asked for again in this session).
pub(super) const SET_ASIDE_MAX_BYTES: usize = 4 * super::push::CHANGES_MESSAGE_TARGET_BYTES;

/// Documents with changes left out in this session, and those changes while they fit.
#[derive(Debug, Default)]
pub(super) struct SetAside {
    docs: BTreeMap<DocumentId, Vec<Checked>>,
    bytes: usize,
    /// Why, for documents whose sender has not been told yet.
    untold: BTreeMap<DocumentId, String>,
}

impl SetAside {
    /// Whether changes of `doc` were left out (kept or forgotten): what waits for them is not
    /// asked for again, since asking would bring them once more, to be left out once more.
    pub(super) fn contains(&self, doc: &DocumentId) -> bool {
        self.docs.contains_key(doc)
    }

    /// `changes` of `doc` just received, behind what was left out of the document before (its
    /// earlier parts come first, as sent). A change received again is taken once.
    pub(super) fn joined(&mut self, doc: &DocumentId, changes: Vec<Checked>) -> Vec<Checked> {
        self.untold.remove(doc);
        let Some(kept) = self.docs.remove(doc) else {
            return changes;
        };
        self.bytes -= kept.iter().map(size).sum::<usize>();
        let new: HashSet<[u8; 32]> = changes.iter().map(|c| c.vouched().hash).collect();
        (kept.into_iter())
            .filter(|c| !new.contains(&c.vouched().hash))
            .chain(changes)
            .collect()
    }

    /// Keeps what the pipeline left out of `doc`, its changes as far as the bound allows.
    pub(super) fn keep(&mut self, doc: &DocumentId, left_out: LeftOut) {
        let bytes: usize = left_out.changes.iter().map(size).sum();
        let kept = self.docs.entry(doc.clone()).or_default();
        if self.bytes + bytes <= SET_ASIDE_MAX_BYTES {
            self.bytes += bytes;
            kept.extend(left_out.changes);
        }
        self.untold.insert(doc.clone(), left_out.why);
    }

    /// What is left out that the sender has not been told of, each document once.
    pub(super) fn untold(&mut self) -> BTreeMap<DocumentId, String> {
        std::mem::take(&mut self.untold)
    }
}

fn size(change: &Checked) -> usize {
    change.vouched().bytes.len()
}
