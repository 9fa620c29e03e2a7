//! The host side of an Omsyn node as a library: the network (iroh endpoint, per-peer session
//! driver, daemon) and the host clock. The `omsyn` binary and the mobile bindings (`omsyn-mobile`)
//! both run a node through it, so a phone and a base speak through the same code.

pub mod clock;
pub mod net;
