//! Changes by revoked nodes that a session left out, kept to the end of the peer's round.
//!
//! A document larger than a message is sent in parts ([`super::push`]), in causal order and
//! one after another within a round: a revoked device's changes can come in one part and the
//! change a colleague built on them before the revocation — the one that vouches for them — in
//! the next. Judged part by part, the first part's are left out (nothing in it vouches), and the
//! colleague's change then lacks them and waits for good; a node that meets the record after
//! the revocation would never hold it. Kept here and put in front of the document's next
//! message, they are judged with it as if the document had come whole; the sender is told what
//! stays left out when its round (or the round's part) ends, not of what a later part carried
//! in. What is kept is let go at that end: every part of the document has come by then.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::docs::DocumentId;
use crate::pipeline::{Checked, LeftOut};

/// What a session keeps of left-out changes at most, over the documents of one round or part
/// (counted by their bytes; parsed, a change holds about as much again): four messages of the
/// largest document. Beyond it, a document's left-out changes are let go (it then stays partly
/// taken).
pub(super) const SET_ASIDE_MAX_BYTES: usize = 4 * super::push::CHANGES_MESSAGE_TARGET_BYTES;

/// And at most as many changes as one message may hold: joined to the next message, they
/// double at most what the pipeline's costs are bounded by (crafted changes can be tiny).
pub(super) const SET_ASIDE_MAX_CHANGES: usize = crate::sync::wire::MAX_CHANGES_PER_MESSAGE;

/// Documents with changes left out in this session, and those changes while their round lasts.
#[derive(Debug, Default)]
pub(super) struct SetAside {
    /// Every document with changes left out in the session: what waits for them is not asked
    /// for again, since asking would bring them once more, to be left out once more.
    marked: BTreeSet<DocumentId>,
    /// The changes left out in this round, while they fit.
    kept: BTreeMap<DocumentId, Vec<Checked>>,
    /// Their bytes and number.
    bytes: usize,
    count: usize,
    /// Why, for documents whose sender has not been told yet: what is kept (a later part may
    /// still take it) and what was let go (it will not).
    untold: BTreeMap<DocumentId, String>,
    let_go: BTreeMap<DocumentId, String>,
}

impl SetAside {
    /// Whether changes of `doc` were left out in this session.
    pub(super) fn contains(&self, doc: &DocumentId) -> bool {
        self.marked.contains(doc)
    }

    /// `changes` of `doc` just received, behind what this round left out of the document before
    /// (its earlier parts come first, as sent). A change received again is taken once.
    pub(super) fn joined(&mut self, doc: &DocumentId, changes: Vec<Checked>) -> Vec<Checked> {
        let Some(kept) = self.kept.remove(doc) else {
            return changes;
        };
        self.untold.remove(doc);
        self.bytes -= kept.iter().map(size).sum::<usize>();
        self.count -= kept.len();
        let new: HashSet<[u8; 32]> = changes.iter().map(|c| c.vouched().hash).collect();
        (kept.into_iter())
            .filter(|c| !new.contains(&c.vouched().hash))
            .chain(changes)
            .collect()
    }

    /// Keeps what the pipeline left out of `doc`: its changes as far as the bound allows.
    pub(super) fn keep(&mut self, doc: &DocumentId, left_out: LeftOut) {
        self.marked.insert(doc.clone());
        let bytes: usize = left_out.changes.iter().map(size).sum();
        let count = left_out.changes.len();
        if self.bytes + bytes <= SET_ASIDE_MAX_BYTES && self.count + count <= SET_ASIDE_MAX_CHANGES
        {
            self.bytes += bytes;
            self.count += count;
            self.kept.insert(doc.clone(), left_out.changes);
            self.untold.insert(doc.clone(), left_out.why);
        } else {
            self.let_go.insert(doc.clone(), left_out.why);
        }
    }

    /// The peer's round (or part) ended: what stays left out, each document once, to tell it.
    /// What was kept is let go.
    pub(super) fn round_ended(&mut self) -> BTreeMap<DocumentId, String> {
        self.kept.clear();
        (self.bytes, self.count) = (0, 0);
        let mut untold = std::mem::take(&mut self.let_go);
        for (doc, why) in std::mem::take(&mut self.untold) {
            untold.entry(doc).or_insert(why);
        }
        untold
    }
}

fn size(change: &Checked) -> usize {
    change.vouched().bytes.len()
}
