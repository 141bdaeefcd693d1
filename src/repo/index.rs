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
//!
//! Records outlive their files when files are deleted by hand (`rm -r secrets/staging/bulk`):
//! [`stale`] finds those, every command that writes the index drops them first
//! ([`prune`]), and `check` reports them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_saphyr::FlowMap;

use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::{Problem, Repo, Scan, SECRETS_DIR};

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
    /// The environment's config files (`configs/<env>/`); a plain one has no recipients.
    #[serde(default)]
    pub configs: BTreeMap<String, Record>,
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
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            configs: BTreeMap<&'a str, FlowMap<&'a Record>>,
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
                    let configs = idx
                        .configs
                        .iter()
                        .map(|(name, r)| (name.as_str(), FlowMap(r)))
                        .collect();
                    let fingerprint_key = idx.fingerprint_key.as_ref().map(FlowMap);
                    (
                        env.as_str(),
                        EnvOut {
                            fingerprint_key,
                            secrets,
                            configs,
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

/// Records of an index that no longer stand for a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stale {
    /// Secrets of an environment of the manifest whose file is gone.
    pub secrets: Vec<String>,
    /// Environments the manifest no longer has, with neither a folder nor a fingerprint key.
    pub environments: Vec<String>,
}

impl Stale {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.environments.is_empty()
    }
}

/// The secrets `index` records for `env` whose file `scan` (a walk of `secrets/<env>/`) did
/// not find. A record is kept while any file could still stand for it: a file that two
/// paths claim, a link, a FIFO. When part of the folder could not be read, nothing is
/// stale: the file may be there, unseen.
pub fn stale(index: &Index, env: &str, scan: &Scan) -> Vec<String> {
    let Some(records) = index.env(env) else {
        return Vec::new();
    };
    if scan
        .problems
        .iter()
        .any(|p| matches!(p, Problem::Unreadable { .. }))
    {
        return Vec::new();
    }
    let dir = Path::new(SECRETS_DIR).join(env);
    let seen = |name: &str| {
        scan.secrets.contains_key(name)
            || scan.problems.iter().any(|p| match p {
                Problem::Collision { name: n, .. } => n == name,
                other => other
                    .rel()
                    .strip_prefix(&dir)
                    .ok()
                    .and_then(|below| names::logical_name(below).ok())
                    .is_some_and(|n| n == name),
            })
    };
    records
        .secrets
        .keys()
        .filter(|name| !seen(name))
        .cloned()
        .collect()
}

/// Environments `index` records that the manifest no longer has and that left nothing
/// behind: no `secrets/<env>/` and no fingerprint key (anything there is left alone).
pub fn stale_environments(repo: &Repo, index: &Index) -> Vec<String> {
    let gone = |path: &Path| matches!(std::fs::symlink_metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    index
        .environments
        .keys()
        .filter(|env| !repo.manifest.environments.contains_key(env.as_str()))
        .filter(|env| {
            // A name that is not a plain folder name cannot be one of swarmseal's folders.
            Path::new(env.as_str()).components().count() != 1
                || env.starts_with('.')
                || (gone(&repo.env_dir(env)) && gone(&repo.fingerprint_key_path(env)))
        })
        .cloned()
        .collect()
}

/// Drops the records of files that are gone from the environments `envs` (which the caller
/// walks anyway, under the exclusive repository lock), and the environments the manifest
/// no longer has (see [`stale_environments`]). Returns what was dropped.
pub fn prune(repo: &Repo, index: &mut Index, envs: &[&str]) -> Result<Stale> {
    let mut dropped = Stale {
        environments: stale_environments(repo, index),
        ..Stale::default()
    };
    for env in &dropped.environments {
        index.environments.remove(env);
    }
    for env in envs {
        if index.env(env).is_none_or(|e| e.secrets.is_empty()) {
            continue;
        }
        let names = stale(index, env, &repo.scan(env)?);
        let records = index.env_mut(env);
        for name in &names {
            records.secrets.remove(name);
        }
        dropped.secrets.extend(names);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            file: "ab".repeat(32),
            recipients: vec!["0011223344556677".into()],
            changed: None,
        }
    }

    #[test]
    fn stale_records_are_those_no_file_could_stand_for() {
        use crate::repo::SecretFile;
        use std::path::PathBuf;
        let mut index = Index::new();
        for name in ["here", "gone", "twice", "linked", "tls.api.crt"] {
            index.env_mut("prod").secrets.insert(name.into(), record());
        }
        let mut scan = Scan::default();
        scan.secrets.insert(
            "here".into(),
            SecretFile {
                name: "here".into(),
                path: PathBuf::from("/r/secrets/prod/here.age"),
                rel: PathBuf::from("secrets/prod/here.age"),
            },
        );
        scan.problems.push(Problem::Collision {
            name: "twice".into(),
            rels: vec![
                "secrets/prod/twice.age".into(),
                "secrets/prod/twice/x.age".into(),
            ],
        });
        scan.problems.push(Problem::Symlink {
            rel: "secrets/prod/linked.age".into(),
        });
        scan.problems.push(Problem::NotRegular {
            rel: "secrets/prod/tls/api.crt.age".into(),
            kind: "a FIFO".into(),
        });
        assert_eq!(stale(&index, "prod", &scan), ["gone"]);
        assert!(stale(&index, "staging", &scan).is_empty());
        // Part of the folder unseen: nothing is stale.
        scan.problems.push(Problem::Unreadable {
            rel: "secrets/prod/sub".into(),
            why: "permission denied".into(),
        });
        assert!(stale(&index, "prod", &scan).is_empty());
    }

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
