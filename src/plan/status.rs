//! What `status` and `ls --remote` show: the Swarm's versions of an environment's secrets,
//! how each stands against the repository, and the services using them. Pure: computed
//! from the observed state and the `source` digests of the repository's files (nothing is
//! decrypted: a version is current when it was applied from the file as it is now).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::domain::names;
use crate::domain::state::{labels, Observed, SwarmSecret};
use crate::plan::names_of;

/// How one Swarm version stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Applied from the file as it is now.
    Current,
    /// Not created by swarmseal for this project and environment.
    Unmanaged,
    /// Its secret is gone from the repository (`plan` proposes removing it).
    NotInRepository,
    /// Older, and no version is current: the file changed since the last apply.
    FileChanged,
    /// Older, but services still use it while a current version exists.
    Repair,
    /// Older and unused (kept for rollback, or about to be removed).
    Older,
    /// Services point at this version, which no longer exists: their tasks cannot start.
    Missing,
}

impl VersionState {
    pub fn describe(self) -> &'static str {
        match self {
            VersionState::Current => "current",
            VersionState::Unmanaged => "unmanaged",
            VersionState::NotInRepository => "not in the repository",
            VersionState::FileChanged => "older: the file changed since the last apply",
            VersionState::Repair => "older, still in use: plan repairs it",
            VersionState::Older => "older, not in use",
            VersionState::Missing => "missing: its services cannot start, plan repairs them",
        }
    }

    /// True when `plan` proposes a repair for it.
    pub fn needs_repair(self) -> bool {
        matches!(self, VersionState::Repair | VersionState::Missing)
    }
}

/// One Swarm version of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Version {
    /// The repository's name for it (or the Swarm name, for unmanaged secrets).
    pub secret: String,
    pub swarm_name: String,
    /// When the Swarm created it (RFC 3339); `None` for a missing version.
    pub created: Option<String>,
    pub state: VersionState,
    /// Services using it now.
    pub services: Vec<String>,
    /// Services whose previous spec (what a rollback returns to) uses it.
    pub rollback: Vec<String>,
}

/// A repository secret and its versions on the Swarm (`ls --remote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployed {
    /// The secret's name, under the key every report uses.
    pub secret: String,
    /// The same as `secret`, for format_version 1 consumers.
    pub name: String,
    pub swarm_versions: Vec<String>,
    pub services: Vec<String>,
}

/// Every version on the Swarm of the environment's secrets, sorted by secret and age.
/// `sources` maps each repository secret to the digest of its file.
pub fn versions(
    observed: &Observed,
    project: &str,
    env: &str,
    sources: &BTreeMap<String, String>,
) -> Vec<Version> {
    let by_name = by_name(observed, project, env);
    let index = observed.index();
    let mut out = Vec::new();
    for (name, list) in &by_name {
        let source = sources.get(name).map(String::as_str);
        let has_current = list.iter().any(|v| v.label(labels::SOURCE) == source);
        for v in list {
            let services = names_of(index.users_of(&v.id).iter().copied());
            let state = if !v.is_managed_by(project, env) {
                VersionState::Unmanaged
            } else if source.is_none() {
                VersionState::NotInRepository
            } else if v.label(labels::SOURCE) == source {
                VersionState::Current
            } else if !has_current {
                VersionState::FileChanged
            } else if !services.is_empty() {
                VersionState::Repair
            } else {
                VersionState::Older
            };
            let rollback = names_of(
                observed
                    .services
                    .iter()
                    .filter(|svc| svc.previous.iter().any(|r| r.secret_id == v.id)),
            );
            out.push(Version {
                secret: name.clone(),
                swarm_name: v.name.clone(),
                created: Some(v.created_at.clone()),
                state,
                services,
                rollback,
            });
        }
    }
    out.extend(missing(observed, project, env, sources));
    out.sort_by(|a, b| {
        (&a.secret, &a.created, &a.swarm_name).cmp(&(&b.secret, &b.created, &b.swarm_name))
    });
    out
}

/// Per repository secret, its versions on the Swarm and the services using them.
pub fn deployed(
    observed: &Observed,
    project: &str,
    env: &str,
    sources: &BTreeMap<String, String>,
) -> Vec<Deployed> {
    let by_name = by_name(observed, project, env);
    let index = observed.index();
    sources
        .keys()
        .map(|name| {
            let list = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
            let services: BTreeSet<String> = list
                .iter()
                .flat_map(|v| names_of(index.users_of(&v.id).iter().copied()))
                .collect();
            Deployed {
                secret: name.clone(),
                name: name.clone(),
                swarm_versions: list.iter().map(|v| v.name.clone()).collect(),
                services: services.into_iter().collect(),
            }
        })
        .collect()
}

/// The Swarm's secrets by the repository name they carry (managed ones) or their own.
fn by_name<'o>(
    observed: &'o Observed,
    project: &str,
    env: &str,
) -> BTreeMap<String, Vec<&'o SwarmSecret>> {
    let mut by_name: BTreeMap<String, Vec<&SwarmSecret>> = BTreeMap::new();
    for s in &observed.secrets {
        let name = if s.is_managed_by(project, env) {
            s.label(labels::NAME).unwrap_or(&s.name).to_string()
        } else {
            s.name.clone()
        };
        by_name.entry(name).or_default().push(s);
    }
    by_name
}

/// Versions that services of this environment point at but that no longer exist.
fn missing(
    observed: &Observed,
    project: &str,
    env: &str,
    sources: &BTreeMap<String, String>,
) -> Vec<Version> {
    let index = observed.index();
    let mut missing: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for svc in &observed.services {
        for r in svc.secrets.iter().filter(|r| r.missing) {
            let name = names::logical_of_version(&r.secret_name)
                .and_then(|n| sources.get_key_value(n))
                .map(|(n, _)| n);
            if let Some(name) = name.filter(|_| index.uses_environment(svc, project, env)) {
                missing
                    .entry((name.clone(), r.secret_name.clone()))
                    .or_default()
                    .push(svc.name.clone());
            }
        }
    }
    missing
        .into_iter()
        .map(|((secret, swarm_name), services)| Version {
            secret,
            swarm_name,
            created: None,
            state: VersionState::Missing,
            services,
            rollback: Vec::new(),
        })
        .collect()
}
