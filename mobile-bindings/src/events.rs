//! Events for the app: the listener interface it implements, and the thread that calls it.
//!
//! Events are delivered in order on one thread of their own ("omsyn-events"), never on the app's
//! calling thread or on the runtime's workers: a slow listener delays only later events. A
//! listener should hand the event to its UI thread and return.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::types::{CareTask, NodeRole, OpenConflict};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
// uniffi carries records by value (it serialises every event across the FFI anyway), so boxing
// the task would change nothing but the generated API.
#[allow(clippy::large_enum_variant)]
pub enum NodeEvent {
    /// Changes to a document arrived from a peer: refresh what shows it.
    DocumentChanged {
        /// The document.
        document: String,
        /// Its patient, if it is a patient's.
        patient: Option<String>,
    },
    /// A peer proved who it is; a session runs.
    PeerConnected {
        /// The peer.
        peer: String,
        /// Its name.
        name: String,
        /// Its role.
        role: NodeRole,
    },
    /// A session with a peer ended.
    PeerLost {
        /// The peer.
        peer: String,
        /// Why, when it failed.
        error: Option<String>,
    },
    /// A conflict the people must review appeared (e.g. a dose documented twice).
    ConflictAppeared {
        /// The conflict.
        conflict: OpenConflict,
    },
    /// A task this device's user must see arrived, or someone else claimed one (see
    /// `CareTask.also_claimed_by`: both nurses who claimed it are told).
    TaskChanged {
        /// The task as it stands now.
        task: CareTask,
    },
    /// Progress: a few times a second while a sync receives data, and when both sides hold everything.
    SyncProgress {
        /// The peer.
        peer: String,
        /// Documents received changes of, in this session.
        docs_received: u64,
        /// Documents sent changes of, in this session.
        docs_sent: u64,
        /// Bytes received in this session.
        bytes_received: u64,
        /// Bytes sent in this session.
        bytes_sent: u64,
    },
    /// Changes were refused (by us, or by the peer when `by_peer`).
    ChangesRefused {
        /// The peer.
        peer: String,
        /// The document.
        document: String,
        /// Why.
        reason: String,
        /// The peer refused ours.
        by_peer: bool,
    },
    /// A base withdrew a patient from this device (the need ended, or a block); the documents
    /// go once a base holds everything this device wrote.
    PatientWithdrawn {
        /// The patient.
        patient: String,
    },
    /// The app fell so far behind that events were dropped: refresh everything it shows (work
    /// list, records, `sync_status`).
    EventsLost {
        /// How many were dropped.
        count: u64,
    },
    /// Sync stopped by itself (not by `stop_sync`).
    SyncStopped {
        /// Why.
        error: Option<String>,
    },
    /// This device was revoked: its data is destroyed. Delete the store key from the keystore
    /// and tell the user; every further call fails.
    Revoked {
        /// The revocation's reason.
        reason: String,
    },
}

/// What the app implements to receive events.
#[uniffi::export(with_foreign)]
pub trait NodeListener: Send + Sync {
    /// One event. Called on the node's event thread; return quickly.
    fn on_event(&self, event: NodeEvent);
}

/// Where events go: a queue drained by the event thread into the current listener.
#[derive(Clone)]
pub(crate) struct EventSink {
    queue: mpsc::Sender<NodeEvent>,
    listener: Arc<Mutex<Option<Arc<dyn NodeListener>>>>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

impl EventSink {
    /// Starts the event thread; it ends when the last sink is dropped.
    pub(crate) fn start() -> std::io::Result<EventSink> {
        let (queue, events) = mpsc::channel::<NodeEvent>();
        let listener: Arc<Mutex<Option<Arc<dyn NodeListener>>>> = Arc::default();
        let current = listener.clone();
        std::thread::Builder::new()
            .name("omsyn-events".into())
            .spawn(move || {
                for event in events {
                    let target = current.lock().ok().and_then(|l| l.clone());
                    if let Some(listener) = target {
                        // A listener that fails (an exception in the app's code) must not end
                        // the delivery of every later event.
                        let delivered =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                listener.on_event(event)
                            }));
                        if delivered.is_err() {
                            tracing::warn!(
                                "the app's event listener failed; later events still go to it"
                            );
                        }
                    }
                }
            })?;
        Ok(EventSink { queue, listener })
    }

    /// Replaces the listener (`None`: events are dropped).
    pub(crate) fn set_listener(&self, listener: Option<Arc<dyn NodeListener>>) {
        if let Ok(mut l) = self.listener.lock() {
            *l = listener;
        }
    }

    pub(crate) fn send(&self, event: NodeEvent) {
        let _ = self.queue.send(event);
    }
}
