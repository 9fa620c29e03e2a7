//! Signing the local node's changes as they are stored: each chunk carries its changes'
//! signatures, so a change can be forwarded and verified again on any number of hops.

use super::handle::Store;
use crate::docs::{Document, HashedChange};

impl Store {
    /// Signs the local node's changes among `unsaved` (`doc`'s changes not yet stored; called by
    /// commit before they are stored, so the signatures go into the same chunk).
    pub(super) fn sign_own_changes(&self, doc: &mut Document, unsaved: &[HashedChange]) {
        for change in unsaved {
            if change.actor.as_slice() == self.actor.as_bytes()
                && doc.signature(&change.hash).is_none()
            {
                doc.add_signature(change.hash, self.sign_change(&change.hash));
            }
        }
    }

    pub(super) fn sign_change(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.signer.sign(&crate::trust::change_signing_bytes(hash))
    }
}
