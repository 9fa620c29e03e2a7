//! Collection sync: reconciling every document two nodes may share, as a sans-IO state machine.
//!
//! See [`session`] for the protocol and [`wire`] for the bytes. [`policy`] decides which documents
//! a peer may hold. The node crate drives a [`Session`] over an iroh stream; the simulator in
//! `omsyn-tests` drives many over in-memory links.

pub mod baseline;
pub mod inbox;
pub mod policy;
pub mod session;
pub mod wire;

pub use inbox::{Inbox, Unpacked};
pub use policy::{ShareAll, SharePolicy, ShareQuery};
pub use session::{Session, SyncError, SyncEvent, SyncStats};
