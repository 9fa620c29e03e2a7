//! Integration tests of omsyn-core through its public API.

mod conflicts;
mod durability;
mod merge_properties;
mod store_files;
mod transactions;
