//! Tests of the built `omsyn` binary: success paths, bad input, and nodes syncing over iroh.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod base_sync;
mod cli;
mod disk;
mod door;
mod field;
mod json_shape;
#[path = "../../src/lab.rs"]
mod lab;
mod netlab;
mod network;
mod plan;
mod raw_client;
mod trust;
