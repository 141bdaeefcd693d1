//! swarmseal: secrets-as-code for Docker Swarm.
//!
//! Data flows one way (see `docs/design.md`):
//!
//! 1. [`repo`] reads the repository (manifest, secret files, index) and, with [`crypto`],
//!    turns it into the desired state;
//! 2. [`swarm`] observes the Swarm;
//! 3. [`plan`] compares the two with a pure function and renders the result;
//! 4. [`apply`] executes a plan against the Swarm.
//!
//! [`domain`] holds the plain data they share, and [`error`] the one error type. The
//! command line is private to the binary: its only entry points are [`cli_main`] and
//! [`run_cli`].

#![forbid(unsafe_code)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
mod cli;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod plan;
pub mod repo;
pub mod swarm;

pub use error::{Error, ErrorKind, Result};

/// The `swarmseal` binary: process hygiene (no core dumps, the identity taken out of the
/// environment), then the command line of this process. Returns the exit code.
pub fn cli_main() -> i32 {
    cli::main()
}

/// Runs a swarmseal command line in this process (the first item is the program name),
/// without the process-wide set-up of [`cli_main`]. Returns the exit code.
pub fn run_cli(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    cli::run(args)
}
