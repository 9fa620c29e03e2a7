//! Which documents may be shared with which peer.
//!
//! One interface, [`SharePolicy`], consulted by the sync session in both directions: what we send
//! or offer, and what we accept. Nodes use the need-based [`crate::trust::NeedPolicy`];
//! [`ShareAll`] serves benchmarks and tests of the protocol mechanics.

use crate::docs::DocumentId;
use crate::store::Store;
use crate::trust::Grant;

/// The context of a sharing question: the local store, the time, and the peer as certified.
#[derive(Debug, Clone, Copy)]
pub struct ShareQuery<'a> {
    /// The local store (its relations index says who needs which patient).
    pub store: &'a Store,
    /// Now (ms since the epoch).
    pub now_ms: i64,
    /// The peer's verified certificate grant.
    pub peer: &'a Grant,
}

/// Decides, per peer and document, whether the two may exchange it.
pub trait SharePolicy: Send + Sync + std::fmt::Debug {
    /// Whether `doc` may be sent to the peer.
    fn may_send(&self, q: &ShareQuery<'_>, doc: &DocumentId) -> bool;

    /// Whether `doc` received from the peer may be kept here.
    fn may_accept(&self, q: &ShareQuery<'_>, doc: &DocumentId) -> bool {
        self.may_send(q, doc)
    }
}

/// Shares every document with every enrolled peer (protocol tests and benchmarks only).
#[derive(Debug, Clone, Copy, Default)]
pub struct ShareAll;

impl SharePolicy for ShareAll {
    fn may_send(&self, _q: &ShareQuery<'_>, _doc: &DocumentId) -> bool {
        true
    }
}
