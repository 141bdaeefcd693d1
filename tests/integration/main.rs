//! The integration tests, one test binary (one link of bollard, age and rustls instead of one
//! per file). Each module is a suite:
//!
//! | module | what | needs |
//! |---|---|---|
//! | `adversarial` | hostile repositories, Swarm labels and outputs | age CLI; some an engine |
//! | `cli` | the binary on local repositories | age, age-keygen, ssh-keygen |
//! | `cli_surface` | man pages, `--help`, completions, usage errors, colours | man, bash |
//! | `configs` | Swarm configs: mounted configs re-pointed, diffs, kind labels | engine; age |
//! | `engine` | the test engine is a usable swarm | engine |
//! | `import` | `import compose` and `import dotenv`; deploying an imported stack | engine for one |
//! | `plans` | name clashes across projects, saved plans | engine |
//! | `remote` | ssh and TLS endpoints on loopback | engine, root, sshd, openssl |
//! | `reports` | durations, wording, JSON/markdown consistency, hints | engine for some |
//! | `rotate` | generated values: `generate:`, `rotate NAME...`, `rotate --due`; a rotation reaching a service | age; engine for one |
//! | `rotation` | rotation under rollback, repair, faults | engine; root for own engines |
//! | `roundtrip` | YAML files render and parse back (proptest) | nothing |
//! | `swarm_client` | the Swarm client | mostly an engine |
//! | `sync` | plan/apply end to end | engine |
//! | `values` | trailing newlines, binary values, index pruning, `rm` | age |
//!
//! Run all: `tests/engine.sh cargo test --all-targets -- --include-ignored`; one suite:
//! `tests/engine.sh cargo test --test integration -- --include-ignored sync::`.

mod common;

mod adversarial;
mod cli;
mod cli_surface;
mod configs;
mod engine;
mod import;
mod plans;
mod remote;
mod reports;
mod rotate;
mod rotation;
mod roundtrip;
mod swarm_client;
mod sync;
mod values;
