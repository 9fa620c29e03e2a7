//! # omsyn-core
//!
//! The heart of Omsyn, a peer-to-peer, offline-first sync system for municipal home care: the
//! home-care documents on Automerge, the durable redb store, node identities, and the collection
//! sync protocol as a sans-IO state machine.
//!
//! **Boundary:** this crate does no network IO, spawns no tasks, and never reads a clock or the
//! OS random number generator. Every "now" and every RNG is an argument, so a seeded test or
//! simulation replays exactly. It does touch the file system, through the store and identity files.
//!
//! ## The model
//! - [`docs`]: the document kinds. A document holds data about at most one patient; its id
//!   ([`DocumentId`]) says which, so sharing, protection and purging work per patient.
//! - [`conflict`]: safety conflicts derived from the documents after every merge.
//! - [`escalation`]: the tasks alerts and unanswered video visits raise, and who must act now.
//! - [`pipeline`]: the one road by which a change enters a store: verified, judged against the
//!   document it lands in, signed, stored with what derives from it.
//! - [`store`]: the redb store: chunk logs, compaction, bounded cache, derived indexes.
//! - [`repo`]: [`Repo`], the typed API over identity and store: reads, and writes in transactions.
//! - [`service`]: [`service::Service`], the one front door every front end calls: parsing,
//!   validation, the injected clock and RNG, the need gate and the access log.
//! - [`report`]: the day report.
//! - [`exchange`]: the portable export file.
//! - [`planning`]: the coordinator's planning assistant: the input gathered from a base, the
//!   hard rules, the greedy baseline, replanning, and suggestions with reasons.
//! - [`worklist`]: importing a record system's CSV work list, all or nothing.
//! - [`sync`]: the sync protocol. A driver creates a [`sync::Session`] per connected peer, feeds it
//!   the peer's bytes (`handle_bytes`) and "the store committed" (`handle_local_change`), and sends
//!   what `poll_transmit` returns; `poll_event` reports progress (`CaughtUp`, changed documents).

#![deny(missing_docs)]

mod codec;
pub mod conflict;
pub mod docs;
pub mod escalation;
pub mod exchange;
pub mod fhir;
pub mod geo;
pub mod identity;
pub mod ids;
pub mod pipeline;
pub mod planning;
pub mod remedy;
pub mod repo;
pub mod report;
pub mod service;
pub mod store;
pub mod sync;
pub mod time;
pub mod trust;
pub mod worklist;

pub use docs::{Document, DocumentId};
pub use identity::{Identity, NodeId, NodeKey, NodeProfile, Role};
pub use repo::{Repo, RepoError};
pub use time::{Day, Month, Timestamp, Zone};
