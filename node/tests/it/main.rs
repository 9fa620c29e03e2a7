//! Tests of the built `omsyn` binary: success paths and bad input.

mod cli;
