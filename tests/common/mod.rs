//! Helpers shared by the integration tests (`mod common;` in a test file).
//!
//! Each test binary uses only part of this, so dead code is expected here.
#![allow(dead_code)]

pub mod cli;
pub mod engine;
pub mod private;
pub mod remote;
pub mod sync;
