//! Tests of the built `omsyn` binary: success paths and bad input.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

mod cli;
