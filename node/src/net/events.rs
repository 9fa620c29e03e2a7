//! What the network side tells the host while it runs: peers coming and going, documents arriving,
//! progress. The daemon only logs; an embedding app (the mobile bindings) or a dashboard subscribes.

use omsyn_core::DocumentId;
use omsyn_core::sync::SyncStats;
use omsyn_core::{NodeId, Role};

/// One thing that happened in a session. Sent on [`super::daemon::Shared::events`]; with no
/// subscriber it is dropped, and a slow subscriber loses the oldest (it can re-read the store).
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// A peer proved its key and certificate.
    PeerConnected {
        /// The peer.
        peer: NodeId,
        /// Its role.
        role: Role,
        /// Its staff member's, base's or home's name.
        name: String,
    },
    /// A session with a peer ended (`error` says why when it failed).
    PeerLost {
        /// The peer.
        peer: NodeId,
        /// Why, when the session failed rather than ended.
        error: Option<String>,
    },
    /// Changes to a document arrived from a peer and were stored.
    DocumentReceived {
        /// The peer.
        peer: NodeId,
        /// The document.
        doc: DocumentId,
    },
    /// Both sides hold everything the other may have: the initial reconciliation is done, or a
    /// later round of pushes settled.
    CaughtUp {
        /// The peer.
        peer: NodeId,
        /// Traffic so far in this session.
        stats: SyncStats,
    },
    /// Traffic so far in a session still catching up (a long first sync), a few times a second
    /// at most while data arrives.
    Progress {
        /// The peer.
        peer: NodeId,
        /// Traffic so far in this session.
        stats: SyncStats,
    },
    /// Changes were refused, by us (`by_peer == false`) or by the peer.
    Refused {
        /// The peer.
        peer: NodeId,
        /// The document.
        doc: DocumentId,
        /// Why.
        reason: String,
        /// Whether the peer refused ours.
        by_peer: bool,
    },
    /// A base withdrew a patient's document from this device (need ended, or a block).
    Withdrawn {
        /// The document.
        doc: DocumentId,
    },
    /// This node was revoked; its data was destroyed and the network side stops.
    Revoked {
        /// The revocation's reason.
        reason: String,
    },
}
