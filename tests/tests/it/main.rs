//! Integration tests of omsyn-core through its public API.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod clocks;
mod concurrency;
mod conflicts;
mod day_report;
mod devices;
mod durability;
mod escalation;
mod insider;
mod merge_properties;
mod messages;
mod planning;
mod planning_base;
mod planning_properties;
mod repair;
mod rules_table;
mod service;
mod simulation;
mod store_files;
mod sync_sessions;
mod transactions;
mod trust;
mod wire_fuzz;
mod worklist;
