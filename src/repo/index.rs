//! The index `.swarmseal/index.yaml`: a committed, non-secret record of what each secret
//! file was encrypted to and when its value last changed.
//!
//! age files do not say who can decrypt them, and a file's modification time says nothing
//! about its value, so `check` reads both facts from here:
//!
//! - `file`: sha256 of the age file as written (a digest of ciphertext, never of a value).
//!   When the file on disk no longer matches, it was written by something else (the age
//!   CLI, a merge), and the other facts are unknown until swarmseal writes it again.
//! - `recipients`: short ids ([`crate::crypto::recipient_id`]) of the public keys the file
//!   was encrypted to; compared with the manifest's current recipients.
//! - `changed`: when the value last changed (not when the file was re-encrypted), for
//!   `rotate_after` and `check --max-age`.
//!
//! One line per secret keeps merges of unrelated changes conflict-free.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_saphyr::FlowMap;

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub file: String,
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
}

impl Record {
    /// When the value last changed, if known.
    pub fn changed_at(&self) -> Option<SystemTime> {
        self.changed
            .as_deref()
            .and_then(|c| humantime::parse_rfc3339(c).ok())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvIndex {
    #[serde(default)]
    pub fingerprint_key: Option<Record>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub version: u32,
    #[serde(default)]
    pub environments: BTreeMap<String, EnvIndex>,
}

/// Now, as written in `changed`.
pub fn now_stamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl Index {
    /// An empty index (what a missing file means).
    pub fn new() -> Index {
        Index {
            version: 1,
            ..Index::default()
        }
    }

    /// Parses the index read from `rel` (a path for messages). Errors give the line and
    /// column only, never content: the file is controlled by whoever wrote the last commit,
    /// and swarmseal prints nothing of it (see [`crate::repo::confined`]).
    pub fn parse(bytes: &[u8], rel: &Path) -> Result<Index> {
        let restore = "this file is written by swarmseal; restore it from git (`git checkout -- .swarmseal/index.yaml`), or delete it and run `swarmseal rekey --force` to write it anew";
        let text = std::str::from_utf8(bytes).map_err(|_| {
            Error::new(format!(
                "{} is not a swarmseal index (not UTF-8 text)",
                rel.display()
            ))
            .with_kind(ErrorKind::Repository)
            .hint(restore)
        })?;
        let index: Index = serde_saphyr::from_str(text).map_err(|e| {
            let at = match e.location() {
                Some(l) if l.line() > 0 => format!(":{}:{}", l.line(), l.column()),
                _ => String::new(),
            };
            Error::new(format!(
                "{}{at}: not a valid swarmseal index (its content is not shown)",
                rel.display()
            ))
            .with_kind(ErrorKind::Repository)
            .hint(restore)
        })?;
        if index.version != 1 {
            return Err(Error::new(format!(
                "{}: index version {} is not supported by this swarmseal",
                rel.display(),
                index.version
            ))
            .with_kind(ErrorKind::Repository)
            .hint("upgrade swarmseal"));
        }
        Ok(index)
    }

    pub fn env(&self, env: &str) -> Option<&EnvIndex> {
        self.environments.get(env)
    }

    pub fn record(&self, env: &str, name: &str) -> Option<&Record> {
        self.environments.get(env).and_then(|e| e.secrets.get(name))
    }

    pub fn env_mut(&mut self, env: &str) -> &mut EnvIndex {
        self.environments.entry(env.to_string()).or_default()
    }

    /// The index as text: sorted, one record per line (each record a YAML flow mapping),
    /// written by serde-saphyr's serializer, which quotes every string that would read back
    /// as something else (`null`, `true`, `1e3`, hex that looks like a number).
    pub fn render(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            version: u32,
            environments: BTreeMap<&'a str, EnvOut<'a>>,
        }
        #[derive(Serialize)]
        struct EnvOut<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            fingerprint_key: Option<FlowMap<&'a Record>>,
            secrets: BTreeMap<&'a str, FlowMap<&'a Record>>,
        }
        let out = Out {
            version: self.version,
            environments: self
                .environments
                .iter()
                .map(|(env, idx)| {
                    let secrets = idx
                        .secrets
                        .iter()
                        .map(|(name, r)| (name.as_str(), FlowMap(r)))
                        .collect();
                    let fingerprint_key = idx.fingerprint_key.as_ref().map(FlowMap);
                    (
                        env.as_str(),
                        EnvOut {
                            fingerprint_key,
                            secrets,
                        },
                    )
                })
                .collect(),
        };
        let body = serde_saphyr::to_string(&out).expect("an index always serializes");
        format!(
            "# Written by swarmseal; commit it, do not edit it by hand.\n\
             # For each secret file: sha256 of the file as written, ids of the public keys it is\n\
             # encrypted to, and when its value last changed. It holds no secret values.\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parses_back() {
        let mut index = Index {
            version: 1,
            ..Index::default()
        };
        let env = index.env_mut("prod");
        env.fingerprint_key = Some(Record {
            file: "ab".repeat(32),
            recipients: vec!["0011223344556677".into(), "1e10000000000000".into()],
            changed: None,
        });
        env.secrets.insert(
            "tls.api.crt".into(),
            Record {
                file: "cd".repeat(32),
                recipients: vec!["0011223344556677".into(), "8899aabbccddeeff".into()],
                changed: Some(now_stamp()),
            },
        );
        index.env_mut("staging");
        for awkward in ["null", "true", "1e3", "~", "0x10"] {
            index.env_mut(awkward).secrets.insert(
                awkward.into(),
                Record {
                    file: "ef".repeat(32),
                    recipients: vec!["0011223344556677".into()],
                    changed: None,
                },
            );
        }
        let text = index.render();
        let back: Index = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, index);
        assert!(back
            .record("prod", "tls.api.crt")
            .unwrap()
            .changed_at()
            .is_some());
    }
}
