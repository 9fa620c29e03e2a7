//! omsyn-mobile: an Omsyn node inside an Android (Kotlin) or iOS (Swift) app, through uniffi.
//!
//! **Boundary:** this crate is the only one that knows uniffi. It converts between the records
//! apps see ([`types`]) and omsyn-core's types, owns the node's tokio runtime, and runs the
//! network through `omsyn_node::net`, the same code as the `omsyn` daemon.
//!
//! **Threading:** every exported call may come from any thread. Calls that touch the store or the
//! network are `async` and run on the node's runtime (store work on its blocking pool), so the
//! caller's thread only polls a join handle; a handful of getters answer from memory. Events go
//! to the app's [`NodeListener`] on a thread of their own ([`events`]).

uniffi::setup_scaffolding!();

mod error;
mod events;
mod node;
mod sync;
mod types;

pub use error::OmsynError;
pub use events::{NodeEvent, NodeListener};
pub use node::OmsynNode;
pub use types::*;
