//! The durable document store on redb.
//!
//! Documents are kept as an append-only chunk log per document (an Automerge snapshot followed by
//! incremental changes), compacted into one snapshot once the increments outgrow it. Documents are
//! loaded on demand into a bounded cache, so memory does not grow with the number of documents held.
//!
//! **Invariant:** when [`WriteBatch::commit`] returns `Ok`, every change made through the batch is on
//! disk (redb `Durability::Immediate`, i.e. fsynced): it survives kill -9 and power loss. Derived
//! indexes (patients, visits, open conflicts) are updated in the same transaction, so they never
//! disagree with the documents they are derived from.
//!
//! **Invariant:** a cached document equals its stored state. A batch takes documents *out* of the
//! cache and puts them back only after its commit succeeded; a failed or dropped batch leaves the
//! cache without them, and they are reloaded from disk.
//!
//! The store keeps bytes: what the rows it holds mean is the change pipeline's ([`crate::pipeline`]
//! derives them), and what a certificate or revocation says is [`crate::trust`]'s. One file per
//! concept, each adding its methods to [`Store`] or [`WriteBatch`]; this file only declares them
//! and names the store's API. Lower files never import higher ones (`scripts/check-cycles.py`):
//!
//! - `error`, `schema` (every table, and creating them), `crypt` (sealing values, where each sits),
//!   `cache` (committed documents in memory);
//! - `chunks` (a document's chunk log and its compaction), `handle` (the [`Store`] value);
//! - `log` (the change log), `migrate` (older formats), `open` (opening a file);
//! - `read` (reading documents), `batch` ([`WriteBatch`], the unit of durable commit),
//!   `signing` (the local node's changes signed as they are stored);
//! - `rows` (the derived indexes: [`Row`]s written, read), `triggers` (the escalation index and
//!   policy), `relations` (what need-based sharing reads), `certs`, `revocations`, `withheld`,
//!   `peers` (what each peer holds), `removal` (a patient's documents removed), `damage`
//!   (documents that do not load, and rewriting one), `space` (the file's pages).

mod batch;
mod cache;
mod certs;
mod chunks;
mod crypt;
mod damage;
mod db;
mod error;
mod handle;
mod log;
mod migrate;
mod open;
mod peers;
mod read;
mod refused;
mod relations;
mod removal;
mod revocations;
mod rows;
mod schema;
mod signing;
mod space;
mod triggers;
mod withheld;

pub use batch::WriteBatch;
pub use cache::CACHE_DOCUMENTS;
pub(crate) use chunks::StoredParts;
pub use crypt::{KeyError, STORE_KEY_FILE, StoreKey};
pub use damage::Damage;
pub use error::{OpenError, StoreError};
pub use handle::{CommitHook, Committed, Disposer, Store, StoreKeys};
pub use log::LogSince;
pub use peers::{PeerDocState, PeerRecord};
pub use read::kind_prefix;
pub use relations::{Relation, RelationsView, WITHDRAWN, WITHDRAWN_BLOCKED};
pub use rows::{RelationScope, Row};
pub use schema::FORMAT_VERSION;
pub use space::{FileUse, StoreStats, TableSpace};
