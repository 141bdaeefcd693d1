//! The manifest `swarmseal.yaml` (the README's "The manifest"): parsing, validation and careful edits.
//!
//! Parsing deserializes the YAML with `serde-saphyr` into private "raw" structs whose
//! values carry their source location ([`Spanned`]), validates them, and builds the public
//! [`Manifest`]. Every error names the file and, where it points at a node, its line and
//! column, says what was expected, and carries a hint.
//!
//! Edits made by `swarmseal recipients add|rm` are textual: the YAML event stream (with
//! byte offsets) locates the nodes to change, and only those bytes are rewritten, so the
//! user's comments and layout survive. The edited text is parsed and validated again
//! before it is returned.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, StructureStyle};
use serde_saphyr::{Location, Spanned};

use crate::crypto;
use crate::crypto::value::{self, Charset};
use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};

/// The manifest's file name at the root of a secrets repository.
pub const MANIFEST_FILE: &str = "swarmseal.yaml";

/// The only manifest format version this build understands.
const VERSION: u32 = 1;

/// Prefix of the labels swarmseal sets itself; secrets' own labels may not use it.
const RESERVED_LABEL_PREFIX: &str = "io.swarmseal.";

const TOP_KEYS: &[&str] = &[
    "version",
    "project",
    "recipients",
    "groups",
    "environments",
    "secrets",
    "keep_versions",
];
const ENV_KEYS: &[&str] = &["recipients", "docker_host", "swarm_id"];
const SECRET_KEYS: &[&str] = &[
    "target",
    "uid",
    "gid",
    "mode",
    "labels",
    "rotate_after",
    "generate",
];
const GENERATE_KEYS: &[&str] = &["length", "charset"];

/// A parsed and validated `swarmseal.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Manifest format version; always 1.
    pub version: u32,
    /// Scope of everything this repository manages on a Swarm.
    pub project: String,
    /// Recipient name -> public key text (trimmed).
    pub recipients: BTreeMap<String, String>,
    /// Group name -> members (recipient or group names), in the order written.
    pub groups: BTreeMap<String, Vec<String>>,
    pub environments: BTreeMap<String, Environment>,
    /// Logical secret name -> settings.
    pub secrets: BTreeMap<String, SecretSettings>,
    /// Superseded, unused Swarm versions kept for rollback (default 0).
    pub keep_versions: u32,
}

/// One environment (one target Swarm).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Recipient and group names, in the order written.
    pub recipients: Vec<String>,
    /// `unix://`, `tcp://`, `ssh://` or `npipe://` endpoint, if pinned in the manifest.
    pub docker_host: Option<String>,
    /// The Swarm's cluster ID; plan and apply refuse any other Swarm.
    pub swarm_id: Option<String>,
}

/// Optional per-secret settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretSettings {
    /// File name inside containers when services are re-pointed.
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// File mode, parsed from octal digits (`"0400"`, `400` and `0400` all mean 0o400).
    pub mode: Option<u32>,
    pub labels: BTreeMap<String, String>,
    /// `check` fails when the value is older than this.
    pub rotate_after: Option<Duration>,
    /// How `swarmseal rotate` regenerates the value; `None`: it never does.
    pub generate: Option<Generate>,
}

/// A secret's `generate: { length, charset }`: `rotate` (and `rotate --due`) draw a new
/// value of `length` characters of `charset`, with the generator of `set --generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generate {
    /// Characters, 1 to 511,999 (default 32).
    pub length: usize,
    /// Default alnum.
    pub charset: Charset,
}

impl Default for Generate {
    fn default() -> Self {
        Generate {
            length: value::DEFAULT_LENGTH,
            charset: Charset::Alnum,
        }
    }
}

impl fmt::Display for Generate {
    /// `40 alnum characters`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} characters",
            crate::domain::text::number(self.length),
            self.charset.name()
        )
    }
}

impl Manifest {
    /// Reads, parses and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let not_found = e.kind() == std::io::ErrorKind::NotFound;
            let err = Error::io("read", path, e);
            if not_found {
                err.hint("run `swarmseal init` to create a repository, or pass -C DIR to use another one")
            } else {
                err
            }
        })?;
        Manifest::parse(&text, path)
    }

    /// Parses and validates manifest text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let raw = parse_raw(text, path).map_err(|e| e.or_kind(ErrorKind::Manifest))?;
        validate(raw, path).map_err(|e| e.or_kind(ErrorKind::Manifest))
    }

    /// The named environment; the error lists the known ones.
    pub fn environment(&self, name: &str) -> Result<&Environment> {
        self.environments.get(name).ok_or_else(|| {
            let known = self.environments.keys().cloned().collect::<Vec<_>>();
            Error::new(format!(
                "unknown environment {name:?} (not in {MANIFEST_FILE})"
            ))
            .with_kind(ErrorKind::NotFound)
            .hint(if known.is_empty() {
                format!("add it under environments: in {MANIFEST_FILE}")
            } else {
                format!(
                    "known environments: {}; choose one with -e NAME",
                    known.join(", ")
                )
            })
        })
    }

    /// Resolved recipients of an environment: (recipient name, key), groups expanded
    /// recursively, de-duplicated, in a stable order (first appearance).
    pub fn env_recipients(&self, env: &str) -> Result<Vec<(String, String)>> {
        let environment = self.environment(env)?;
        Ok(self
            .expand(&environment.recipients)
            .into_iter()
            .filter_map(|name| {
                let key = self.recipients.get(&name)?.clone();
                Some((name, key))
            })
            .collect())
    }

    /// The settings of a logical secret, if the manifest has any.
    pub fn settings(&self, secret: &str) -> Option<&SecretSettings> {
        self.secrets.get(secret)
    }

    /// Recipient names reached from `refs` (recipients and groups), groups expanded,
    /// de-duplicated in order of first appearance. Unknown names are skipped.
    fn expand(&self, refs: &[String]) -> Vec<String> {
        fn walk(
            m: &Manifest,
            name: &str,
            seen_groups: &mut HashSet<String>,
            out: &mut Vec<String>,
        ) {
            if m.recipients.contains_key(name) {
                if !out.iter().any(|n| n == name) {
                    out.push(name.to_string());
                }
            } else if let Some(members) = m.groups.get(name) {
                if seen_groups.insert(name.to_string()) {
                    for member in members {
                        walk(m, member, seen_groups, out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut seen_groups = HashSet::new();
        for name in refs {
            walk(self, name, &mut seen_groups, &mut out);
        }
        out
    }
}

mod edit;
mod errors;
mod raw;
mod template;
#[cfg(test)]
mod tests;
mod validate;
mod yaml;

#[allow(unused_imports)]
use self::{errors::*, raw::*, template::*, validate::*, yaml::*};
pub use edit::{add_recipient, remove_recipient};
pub use template::render_new;
/// The YAML tree with byte offsets and the layout-keeping editor, for other files edited in
/// place (`swarmseal import compose`).
pub(crate) use yaml::{build_tree, Editor, Node};
