//! Signing the local node's changes as they are stored: each chunk carries its changes'
//! signatures, so a change can be forwarded and verified again on any number of hops.

use super::handle::Store;
use crate::docs::Document;

impl Store {
    /// Signs the local node's new changes in `doc` (called by commit before they are stored, so
    /// the signatures go into the same chunk). Returns the hashes of every unsaved change.
    pub(super) fn sign_own_changes(&self, doc: &mut Document) -> Vec<[u8; 32]> {
        let mut new = Vec::new();
        for (hash, actor) in doc.unsaved_change_authors() {
            if actor.as_slice() == self.actor.as_bytes() && doc.signature(&hash).is_none() {
                doc.add_signature(hash, self.sign_change(&hash));
            }
            new.push(hash);
        }
        new
    }

    pub(super) fn sign_change(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.signer.sign(&crate::trust::change_signing_bytes(hash))
    }
}
