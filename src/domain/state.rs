//! Plain data shared by the planner, the Swarm client, the renderers and saved plans:
//! what the repository wants ([`Desired`]), what the Swarm has ([`Observed`]), and the
//! labels that tie the two together (`docs/design.md#names-and-labels`). No I/O here.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use serde::{Deserialize, Serialize};

/// Label keys on every managed secret.
pub mod labels {
    pub const PREFIX: &str = "io.swarmseal.";
    pub const MANAGED: &str = "io.swarmseal.managed";
    pub const PROJECT: &str = "io.swarmseal.project";
    pub const ENVIRONMENT: &str = "io.swarmseal.environment";
    pub const NAME: &str = "io.swarmseal.name";
    pub const FINGERPRINT: &str = "io.swarmseal.fingerprint";
    pub const SOURCE: &str = "io.swarmseal.source";
    /// `secret` or `config`: which kind of Swarm object a managed version is.
    pub const KIND: &str = "io.swarmseal.kind";
    /// On the apply lock's marker secret (which is not a managed secret).
    pub const LOCK: &str = "io.swarmseal.lock";
    pub const LOCK_HOLDER: &str = "io.swarmseal.lock.holder";
    pub const LOCK_CREATED: &str = "io.swarmseal.lock.created";
    /// Tells whether the holder still runs: `<boot id>/<pid namespace>/<pid>/<start time>`.
    pub const LOCK_PROCESS: &str = "io.swarmseal.lock.process";
}

/// Which kind of Swarm object a repository file becomes: a secret (`secrets/<env>/`) or a
/// config (`configs/<env>/`). Both go through the same planning; see [`Observed::config_view`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    Secret,
    Config,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Secret, Kind::Config];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    /// The variable `swarmseal exec` sets to the current Swarm name of `name`:
    /// `SWARMSEAL_<NAME>` for a secret, `SWARMSEAL_CONFIG_<NAME>` for a config.
    pub fn exec_variable(self, name: &str) -> String {
        let var = crate::domain::names::env_variable(name);
        match self {
            Kind::Secret => var,
            Kind::Config => var.replacen("SWARMSEAL_", "SWARMSEAL_CONFIG_", 1),
        }
    }

    /// True for [`Kind::Secret`] (serde: a secret's `kind` is left out, as before configs).
    pub fn is_secret(&self) -> bool {
        *self == Kind::Secret
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret (or config) as the repository wants it on the Swarm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredSecret {
    /// Logical name (`tls.api.crt`).
    pub name: String,
    /// sha256 of the `.age` file (the `source` label).
    pub source: String,
    /// Keyed fingerprint of the value; `None` when no identity could decrypt it.
    pub fingerprint: Option<String>,
    /// The secret's own labels from the manifest.
    pub labels: BTreeMap<String, String>,
    /// Reference settings from the manifest, used when services are re-pointed;
    /// `None` keeps what the service had.
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
    /// Secret or config.
    #[serde(default, skip_serializing_if = "Kind::is_secret")]
    pub kind: Kind,
    /// The content of a plain (unencrypted) config, for the plan's diff; `None` for secrets
    /// and encrypted configs. Not secret: the file is plain text in git.
    #[serde(skip)]
    pub plain: Option<Vec<u8>>,
}

/// The repository's side of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub project: String,
    pub environment: String,
    pub secrets: BTreeMap<String, DesiredSecret>,
    pub keep_versions: u32,
    /// The environment's configs (`configs/<env>/`), by logical name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, DesiredSecret>,
}

impl Desired {
    /// The items of one kind.
    pub fn items(&self, kind: Kind) -> &BTreeMap<String, DesiredSecret> {
        match kind {
            Kind::Secret => &self.secrets,
            Kind::Config => &self.configs,
        }
    }

    /// This state with its configs in the place of its secrets (and no configs): what the
    /// planner plans configs from, with the very logic it plans secrets with.
    pub fn config_view(&self) -> Desired {
        Desired {
            project: self.project.clone(),
            environment: self.environment.clone(),
            secrets: self.configs.clone(),
            keep_versions: self.keep_versions,
            configs: BTreeMap::new(),
        }
    }
}

/// A secret on the Swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmSecret {
    pub id: String,
    pub name: String,
    /// Swarm object version, for label updates.
    pub version: u64,
    /// Creation time as Docker reports it (RFC 3339), used to order versions.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
}

impl SwarmSecret {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// True when the secret carries this project's and environment's managed labels.
    pub fn is_managed_by(&self, project: &str, environment: &str) -> bool {
        self.label(labels::MANAGED) == Some("true")
            && self.label(labels::PROJECT) == Some(project)
            && self.label(labels::ENVIRONMENT) == Some(environment)
    }

    /// True when the secret carries any swarmseal label (of any project).
    pub fn has_swarmseal_labels(&self) -> bool {
        self.labels.keys().any(|k| k.starts_with(labels::PREFIX))
    }
}

/// How a service mounts a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub secret_id: String,
    pub secret_name: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u32,
    /// True when no secret with this ID exists on the Swarm any more (removed while the
    /// spec still named it: the service's tasks cannot start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub missing: bool,
}

/// Where a service's latest update stands (Docker's `UpdateStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    /// True while the service may still be running tasks of another spec than its current
    /// one: an update or rollback in progress, or paused half-way.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            UpdateState::Updating
                | UpdateState::Paused
                | UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rolling back",
            UpdateState::RollbackPaused => "rollback paused",
            UpdateState::RollbackCompleted => "rolled back",
        }
    }
}

/// A service and the secrets (and configs) it references.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRefs {
    pub id: String,
    pub name: String,
    /// Swarm object version, for optimistic concurrency.
    pub version: u64,
    /// The references of its current spec.
    pub secrets: Vec<SecretRef>,
    /// The references of its previous spec: what `docker service rollback` (or an update
    /// that fails with `--update-failure-action rollback`) brings back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<SecretRef>,
    /// Its latest update's state, if Docker reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateState>,
    /// Secret IDs its recent tasks (Docker's task history) ran with: read only for a
    /// service that points at a version that no longer exists and has nothing else to tell
    /// whose it is (after an automatic rollback, Docker clears the previous spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<String>,
    /// The config references of its current spec (`ContainerSpec.Configs` with a file
    /// target; `secret_id`/`secret_name` are the config's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<SecretRef>,
    /// The config references of its previous spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_configs: Vec<SecretRef>,
}

impl ServiceRefs {
    /// True when its current or previous spec references the secret.
    pub fn holds(&self, secret_id: &str) -> bool {
        self.secrets
            .iter()
            .chain(&self.previous)
            .any(|r| r.secret_id == secret_id)
    }

    /// True when its current or previous spec references the config.
    pub fn holds_config(&self, config_id: &str) -> bool {
        self.configs
            .iter()
            .chain(&self.previous_configs)
            .any(|r| r.secret_id == config_id)
    }

    /// True when an update or rollback of it is in progress or paused.
    pub fn in_flight(&self) -> bool {
        self.update.is_some_and(UpdateState::in_flight)
    }
}

/// The Swarm's side of a plan: the secrets that matter to this project and environment
/// (its managed versions, and unmanaged secrets named like one of its secrets) and every
/// service's secret references (current and previous spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The Swarm's cluster ID.
    pub cluster_id: String,
    pub secrets: Vec<SwarmSecret>,
    pub services: Vec<ServiceRefs>,
    /// Secrets outside this project and environment (another project's, another
    /// environment's, or unmanaged) whose names are version names of the repository's
    /// secrets (`<name>-<10 hex>`): a version of that name cannot be created. Sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<TakenName>,
    /// The same for Swarm configs: this environment's managed config versions, unmanaged
    /// configs named like one of its configs, the names taken, and the data of plain ones.
    #[serde(default, skip_serializing_if = "ObservedConfigs::is_empty")]
    pub configs: ObservedConfigs,
}

/// The Swarm configs of an [`Observed`] state (see [`Observed::config_view`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedConfigs {
    pub items: Vec<SwarmSecret>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<TakenName>,
    /// The data of managed versions applied from a plain file (their `source` label is
    /// the sha256 of their data), by config ID, for the plan's diff. Configs applied from
    /// an encrypted file never have their data kept here.
    #[serde(skip)]
    pub plain: BTreeMap<String, Vec<u8>>,
}

impl ObservedConfigs {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.taken.is_empty()
    }
}

/// A Swarm secret name held by a secret outside this project and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakenName {
    pub name: String,
    pub id: String,
    /// Its `io.swarmseal.project` label; `None` for an unmanaged secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Its `io.swarmseal.environment` label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl TakenName {
    /// The name as `secret` holds it.
    pub fn of(secret: &SwarmSecret) -> TakenName {
        let managed = secret.label(labels::MANAGED) == Some("true");
        let label = |key| {
            managed
                .then(|| secret.label(key).map(String::from))
                .flatten()
        };
        TakenName {
            name: secret.name.clone(),
            id: secret.id.clone(),
            project: label(labels::PROJECT),
            environment: label(labels::ENVIRONMENT),
        }
    }
}

impl Observed {
    /// The objects of one kind.
    pub fn items(&self, kind: Kind) -> &[SwarmSecret] {
        match kind {
            Kind::Secret => &self.secrets,
            Kind::Config => &self.configs.items,
        }
    }

    /// True when nothing of configs was observed: no config, and no service references one.
    pub fn has_no_configs(&self) -> bool {
        self.configs.is_empty()
            && self
                .services
                .iter()
                .all(|s| s.configs.is_empty() && s.previous_configs.is_empty())
    }

    /// This state with configs and secrets trading places (the services' references too),
    /// so that what works on secrets works on configs. Its own inverse.
    pub fn config_view(&self) -> Observed {
        let mut view = self.clone();
        view.swap_kinds();
        view
    }

    /// Swaps secrets and configs in place (see [`Observed::config_view`]).
    pub fn swap_kinds(&mut self) {
        std::mem::swap(&mut self.secrets, &mut self.configs.items);
        std::mem::swap(&mut self.taken, &mut self.configs.taken);
        for svc in &mut self.services {
            std::mem::swap(&mut svc.secrets, &mut svc.configs);
            std::mem::swap(&mut svc.previous, &mut svc.previous_configs);
        }
    }

    /// Lookups by secret ID, built once: the planner asks them for every secret, and a
    /// scan of every service for each would be quadratic (10,000 secrets x 1,000
    /// services).
    pub fn index(&self) -> ObservedIndex<'_> {
        ObservedIndex::new(self)
    }

    /// The services referencing a secret in their current spec, by secret ID.
    pub fn users_of(&self, secret_id: &str) -> Vec<&ServiceRefs> {
        self.services
            .iter()
            .filter(|s| s.secrets.iter().any(|r| r.secret_id == secret_id))
            .collect()
    }

    /// True when a service uses the environment's secrets: a reference, current or
    /// previous, to one of its managed versions that exists, or a recent task that ran with
    /// one (see [`ServiceRefs::history`]).
    pub fn uses_environment(&self, svc: &ServiceRefs, project: &str, env: &str) -> bool {
        uses_environment(svc, project, env, |id| {
            self.secrets.iter().find(|s| s.id == id)
        })
    }

    /// The services referencing a secret in their current or previous spec: the services
    /// that could run with it again (after a rollback).
    pub fn holders_of(&self, secret_id: &str) -> Vec<&ServiceRefs> {
        self.services
            .iter()
            .filter(|s| s.holds(secret_id))
            .collect()
    }
}

fn uses_environment<'a>(
    svc: &ServiceRefs,
    project: &str,
    env: &str,
    secret: impl Fn(&str) -> Option<&'a SwarmSecret>,
) -> bool {
    let ours = |id: &str| secret(id).is_some_and(|s| s.is_managed_by(project, env));
    svc.secrets
        .iter()
        .chain(&svc.previous)
        .any(|r| !r.missing && ours(&r.secret_id))
        || svc.history.iter().any(|id| ours(id))
}

/// [`Observed`] with its lookups by secret ID in hash maps (see [`Observed::index`]).
/// Each list keeps the services' order and names a service once.
pub struct ObservedIndex<'a> {
    pub observed: &'a Observed,
    by_id: HashMap<&'a str, &'a SwarmSecret>,
    refs: HashMap<&'a str, Refs<'a>>,
}

/// The services referencing one secret ID.
#[derive(Default)]
struct Refs<'a> {
    /// In their current spec.
    users: Vec<&'a ServiceRefs>,
    /// In their current or previous spec.
    holders: Vec<&'a ServiceRefs>,
}

impl<'a> ObservedIndex<'a> {
    fn new(observed: &'a Observed) -> ObservedIndex<'a> {
        let mut by_id = HashMap::with_capacity(observed.secrets.len());
        by_id.extend(observed.secrets.iter().map(|s| (s.id.as_str(), s)));
        let mut refs: HashMap<&str, Refs<'_>> = HashMap::new();
        let add = |list: &mut Vec<&'a ServiceRefs>, svc: &'a ServiceRefs| {
            if !list.last().is_some_and(|last| std::ptr::eq(*last, svc)) {
                list.push(svc);
            }
        };
        for svc in &observed.services {
            for (n, r) in svc.secrets.iter().chain(&svc.previous).enumerate() {
                let entry = refs.entry(r.secret_id.as_str()).or_default();
                if n < svc.secrets.len() {
                    add(&mut entry.users, svc);
                }
                add(&mut entry.holders, svc);
            }
        }
        ObservedIndex {
            observed,
            by_id,
            refs,
        }
    }

    /// The secret with this ID, if the Swarm has it.
    pub fn secret(&self, id: &str) -> Option<&'a SwarmSecret> {
        self.by_id.get(id).copied()
    }

    /// As [`Observed::users_of`].
    pub fn users_of(&self, secret_id: &str) -> &[&'a ServiceRefs] {
        self.refs.get(secret_id).map_or(&[], |r| r.users.as_slice())
    }

    /// As [`Observed::holders_of`].
    pub fn holders_of(&self, secret_id: &str) -> &[&'a ServiceRefs] {
        self.refs
            .get(secret_id)
            .map_or(&[], |r| r.holders.as_slice())
    }

    /// As [`Observed::uses_environment`].
    pub fn uses_environment(&self, svc: &ServiceRefs, project: &str, env: &str) -> bool {
        uses_environment(svc, project, env, |id| self.secret(id))
    }
}

/// True when `have` is exactly [`managed_labels`]`(desired, secret, fingerprint)`, without
/// building that map (the planner asks it of every current version): one walk of `have`,
/// in key order, beside the expected labels in key order (the manifest's own labels merged
/// with [`swarmseal_labels`], which are sorted).
pub fn has_managed_labels(
    desired: &Desired,
    secret: &DesiredSecret,
    fingerprint: &str,
    have: &BTreeMap<String, String>,
) -> bool {
    let managed = swarmseal_labels(desired, secret, fingerprint);
    let is_managed_key = |k: &str| managed.iter().any(|(m, _)| *m == k);
    let mut own = secret
        .labels
        .iter()
        .filter(|(k, _)| !is_managed_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .peekable();
    let mut managed = managed.into_iter().peekable();
    for (k, v) in have {
        let want = match (managed.peek(), own.peek()) {
            (Some(m), Some(o)) if o.0 < m.0 => own.next(),
            (Some(_), _) => managed.next(),
            (None, _) => own.next(),
        };
        if want != Some((k.as_str(), v.as_str())) {
            return false;
        }
    }
    managed.next().is_none() && own.next().is_none()
}

/// The labels a managed version of `secret` must carry.
pub fn managed_labels(
    desired: &Desired,
    secret: &DesiredSecret,
    fingerprint: &str,
) -> BTreeMap<String, String> {
    let mut l = secret.labels.clone();
    for (key, value) in swarmseal_labels(desired, secret, fingerprint) {
        l.insert(key.into(), value.into());
    }
    l
}

/// The `io.swarmseal.*` labels of a managed version of `secret` (over the manifest's own),
/// sorted by key.
fn swarmseal_labels<'a>(
    desired: &'a Desired,
    secret: &'a DesiredSecret,
    fingerprint: &'a str,
) -> [(&'static str, &'a str); 7] {
    [
        (labels::ENVIRONMENT, desired.environment.as_str()),
        (labels::FINGERPRINT, fingerprint),
        (labels::KIND, secret.kind.as_str()),
        (labels::MANAGED, "true"),
        (labels::NAME, secret.name.as_str()),
        (labels::PROJECT, desired.project.as_str()),
        (labels::SOURCE, secret.source.as_str()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_managed_labels_is_equality_with_managed_labels() {
        let desired = Desired {
            project: "p".into(),
            environment: "e".into(),
            secrets: BTreeMap::new(),
            keep_versions: 0,
            configs: BTreeMap::new(),
        };
        let mut secret = DesiredSecret {
            name: "db".into(),
            source: "s".repeat(64),
            // Own labels sort before and after the managed ones.
            labels: BTreeMap::from([
                ("app".to_string(), "b".to_string()),
                ("team".to_string(), "a".to_string()),
            ]),
            ..DesiredSecret::default()
        };
        let fp = "f".repeat(64);
        let managed = swarmseal_labels(&desired, &secret, &fp);
        assert!(managed.is_sorted_by_key(|(k, _)| *k), "{managed:?}");
        let exact = managed_labels(&desired, &secret, &fp);
        let mut cases = vec![(exact.clone(), true), (BTreeMap::new(), false)];
        for key in exact.keys() {
            let mut missing = exact.clone();
            missing.remove(key);
            cases.push((missing, false));
            let mut changed = exact.clone();
            changed.insert(key.clone(), "x".into());
            cases.push((changed, false));
        }
        let mut extra = exact.clone();
        extra.insert("other".into(), "1".into());
        cases.push((extra, false));
        for (have, want) in &cases {
            assert_eq!(
                has_managed_labels(&desired, &secret, &fp, have),
                *want,
                "{have:?}"
            );
        }
        // A reserved key among the manifest's labels (refused by validation) is overridden.
        secret.labels.insert(labels::NAME.into(), "other".into());
        let exact = managed_labels(&desired, &secret, &fp);
        assert!(has_managed_labels(&desired, &secret, &fp, &exact));
    }
}
