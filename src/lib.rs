//! swarmseal: secrets-as-code for Docker Swarm.
//!
//! Data flows one way: the repository ([`store`], [`manifest`], [`crypto`]) is read into a
//! desired state, the Swarm is observed, a pure planner compares the two, and the result
//! is rendered or executed. Each subcommand in [`cmd`] wires these pieces together.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod cli;
pub mod cmd;
pub mod confined;
pub mod crypto;
pub mod desired;
pub mod error;
pub mod hygiene;
pub mod index;
pub mod manifest;
pub mod model;
pub mod names;
pub mod output;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod render;
pub mod secrets;
pub mod store;
pub mod swarm;
pub mod value;

pub use error::{Error, Result};
