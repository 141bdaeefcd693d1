//! Helpers shared by the integration tests (the `common` module of the test binary).
//!
//! Not every helper is used by every build, so dead code is expected here.
#![allow(dead_code)]

pub mod cli;
pub mod engine;
pub mod private;
pub mod remote;
pub mod sync;
