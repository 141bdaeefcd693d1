//! Saved plans (`plan --out FILE`, `apply FILE`): the plan as plain JSON data, with
//! digests of what it was made from so that a stale plan is refused. A plan file holds
//! names, IDs, labels and keyed fingerprints, never a value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::state::Observed;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::Plan;

const KIND: &str = "swarmseal-plan";
const FORMAT_VERSION: u32 = 1;
/// Largest plan file read (a plan of tens of thousands of secrets is a few MB).
const MAX_PLAN_FILE: u64 = 256 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    pub kind: String,
    pub format_version: u32,
    pub swarmseal_version: String,
    pub created: String,
    /// The Swarm's cluster ID.
    pub cluster_id: String,
    /// The endpoint the plan was made against, for messages.
    pub endpoint: String,
    /// Digest of the repository files the plan was made from.
    pub repo_digest: String,
    /// Digest of the observed Swarm state.
    pub swarm_digest: String,
    /// The files behind `repo_digest` (repository-relative path -> sha256 of the file), to
    /// say which changed (empty in plans of older versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub repo_files: BTreeMap<String, String>,
    /// The Swarm objects behind `swarm_digest`, one digest each, to say which changed
    /// (empty in plans of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub swarm_objects: Vec<Stamp>,
    pub plan: Plan,
}

/// One Swarm object a plan depends on, as it was: its kind, ID, name and a digest of
/// what was observed of it (names, versions, labels, references; never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// `secret` or `service`.
    pub kind: String,
    pub id: String,
    pub name: String,
    pub digest: String,
}

/// What a plan depends on of the Swarm: the observed secrets (the environment's versions
/// and the unmanaged secrets it could adopt) and the services that reference one of them.
/// The names held outside the environment ([`Observed::taken`]) are left out: a saved plan
/// in which one of them matters differs from the plan made again under the lock.
fn relevant(observed: &Observed) -> Observed {
    let ids: BTreeSet<&str> = observed
        .secrets
        .iter()
        .chain(&observed.configs.items)
        .map(|s| s.id.as_str())
        .collect();
    Observed {
        cluster_id: observed.cluster_id.clone(),
        secrets: observed.secrets.clone(),
        services: observed
            .services
            .iter()
            .filter(|svc| {
                svc.secrets
                    .iter()
                    .chain(&svc.configs)
                    .any(|r| ids.contains(r.secret_id.as_str()))
            })
            .cloned()
            .collect(),
        taken: Vec::new(),
        configs: crate::domain::state::ObservedConfigs {
            items: observed.configs.items.clone(),
            ..Default::default()
        },
    }
}

fn digest_of(value: &impl Serialize) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

/// Digest of what a plan depends on ([`relevant`]): IDs, versions, labels, references. A
/// change anywhere else on the Swarm (another stack's service updated meanwhile) does not
/// make a saved plan stale; a service starting to use one of these secrets does.
pub fn swarm_digest(observed: &Observed) -> String {
    digest_of(&relevant(observed))
}

/// The objects behind [`swarm_digest`], one [`Stamp`] each.
pub fn swarm_objects(observed: &Observed) -> Vec<Stamp> {
    let relevant = relevant(observed);
    let configs = relevant.configs.items.iter().map(|s| Stamp {
        kind: "config".into(),
        id: s.id.clone(),
        name: s.name.clone(),
        digest: digest_of(s),
    });
    let secrets = relevant.secrets.iter().map(|s| Stamp {
        kind: "secret".into(),
        id: s.id.clone(),
        name: s.name.clone(),
        digest: digest_of(s),
    });
    let services = relevant.services.iter().map(|s| Stamp {
        kind: "service".into(),
        id: s.id.clone(),
        name: s.name.clone(),
        digest: digest_of(s),
    });
    secrets.chain(configs).chain(services).collect()
}

/// What a stale plan was made from, against what is there now.
pub struct Now<'a> {
    pub cluster_id: &'a str,
    pub repo_digest: &'a str,
    /// As [`PlanFile::repo_files`].
    pub repo_files: &'a BTreeMap<String, String>,
    pub observed: &'a Observed,
}

impl PlanFile {
    pub fn new(
        plan: Plan,
        observed: &Observed,
        endpoint: &str,
        repo_digest: &str,
        repo_files: &BTreeMap<String, String>,
    ) -> PlanFile {
        PlanFile {
            kind: KIND.into(),
            format_version: FORMAT_VERSION,
            swarmseal_version: env!("CARGO_PKG_VERSION").into(),
            created: crate::repo::index::now_stamp(),
            cluster_id: observed.cluster_id.clone(),
            endpoint: endpoint.into(),
            repo_digest: repo_digest.into(),
            swarm_digest: swarm_digest(observed),
            repo_files: repo_files.clone(),
            swarm_objects: swarm_objects(observed),
            plan,
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::new(format!("cannot write the plan: {e}")))?;
        text.push('\n');
        crate::repo::write_atomic(path, text.as_bytes(), 0o644)
    }

    pub fn load(path: &Path) -> Result<PlanFile> {
        let hint = "pass the file written by `swarmseal plan --out FILE`";
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io("read plan file", path, e).hint(hint))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_PLAN_FILE + 1), &mut text)
            .map_err(|e| Error::io("read plan file", path, e).hint(hint))?;
        if text.len() as u64 > MAX_PLAN_FILE {
            return Err(Error::new(format!(
                "{} is larger than {MAX_PLAN_FILE} bytes; it is not a swarmseal plan file",
                path.display()
            ))
            .hint(hint));
        }
        let file: PlanFile = serde_json::from_str(&text).map_err(|e| {
            Error::new(format!(
                "{} is not a swarmseal plan file: {e}",
                path.display()
            ))
            .hint("pass the file written by `swarmseal plan --out FILE`")
        })?;
        if file.kind != KIND || file.format_version != FORMAT_VERSION {
            return Err(Error::new(format!(
                "{} is a plan of another kind or format version ({} v{})",
                path.display(),
                file.kind,
                file.format_version
            ))
            .hint("make the plan again with this swarmseal: `swarmseal plan --out FILE`"));
        }
        Ok(file)
    }

    /// The command that makes this plan again: `swarmseal plan -e ENV --out FILE`.
    pub fn again_hint(&self, path: &Path) -> String {
        format!(
            "make a new plan with `swarmseal plan -e {} --out {}`, review it, and apply that",
            self.plan.environment,
            path.display()
        )
    }

    /// Fails with a "stale" error, saying what changed, unless the repository and the
    /// Swarm are as they were when the plan was made.
    pub fn ensure_fresh(&self, path: &Path, now: &Now<'_>) -> Result<()> {
        if self.cluster_id != now.cluster_id {
            return Err(Error::new(format!(
                "the plan {} was made for Swarm {}, but this is Swarm {}",
                path.display(),
                self.cluster_id,
                now.cluster_id
            ))
            .with_kind(ErrorKind::WrongSwarm)
            .hint(format!(
                "apply it against the Swarm it was made for, or {}",
                self.again_hint(path)
            )));
        }
        let mut changed = Vec::new();
        if self.repo_digest != now.repo_digest {
            changed.push(format!(
                "the repository changed ({})",
                describe_repo_changes(&self.repo_files, now.repo_files)
            ));
        }
        if self.swarm_digest != swarm_digest(now.observed) {
            let objects = swarm_objects(now.observed);
            changed.push(format!(
                "on the Swarm, {}",
                describe_swarm_changes(&self.swarm_objects, &objects)
            ));
        }
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::new(format!(
            "the plan {} ({}) is stale: since it was made, {}",
            path.display(),
            self.created,
            changed.join("; and ")
        ))
        .with_kind(ErrorKind::StalePlan)
        .hint(self.again_hint(path)))
    }
}

/// Lists at most a few items, then how many more.
fn few(items: Vec<String>) -> String {
    const SHOWN: usize = 8;
    let more = items.len().saturating_sub(SHOWN);
    let mut text = items.into_iter().take(SHOWN).collect::<Vec<_>>().join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Which files changed, appeared or went, from their digests then and now.
pub fn describe_repo_changes(
    then: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> String {
    if then.is_empty() {
        return "the plan file does not say which files; it was made by an older swarmseal".into();
    }
    let mut items = Vec::new();
    for (path, digest) in then {
        match now.get(path) {
            None => items.push(format!("{path} was removed")),
            Some(d) if d != digest => items.push(format!("{path} changed")),
            Some(_) => {}
        }
    }
    for path in now.keys().filter(|p| !then.contains_key(*p)) {
        items.push(format!("{path} is new"));
    }
    if items.is_empty() {
        return "a file was renamed or moved".into();
    }
    few(items)
}

/// Which secrets and services changed, appeared or went, from their stamps then and now.
pub fn describe_swarm_changes(then: &[Stamp], now: &[Stamp]) -> String {
    if then.is_empty() && !now.is_empty() {
        return "the environment's secrets or the services using them changed (the plan file does not say which: it was made by an older swarmseal)".into();
    }
    let key = |s: &Stamp| (s.kind.clone(), s.id.clone());
    let before: BTreeMap<_, &Stamp> = then.iter().map(|s| (key(s), s)).collect();
    let after: BTreeMap<_, &Stamp> = now.iter().map(|s| (key(s), s)).collect();
    let mut items = Vec::new();
    for (k, s) in &before {
        let what = match (s.kind.as_str(), after.get(k)) {
            ("secret" | "config", None) => "was removed",
            ("secret" | "config", Some(n)) if n.digest != s.digest => "changed (its labels)",
            (_, None) => "no longer uses the environment's secrets (or was removed)",
            (_, Some(n)) if n.digest != s.digest => "was updated",
            _ => continue,
        };
        items.push(format!("{} {} {what}", s.kind, s.name));
    }
    for (k, s) in &after {
        if !before.contains_key(k) {
            let what = if s.kind == "secret" || s.kind == "config" {
                "was created"
            } else {
                "started using the environment's secrets"
            };
            items.push(format!("{} {} {what}", s.kind, s.name));
        }
    }
    if items.is_empty() {
        return "the environment's secrets or the services using them changed".into();
    }
    few(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(kind: &str, id: &str, digest: &str) -> Stamp {
        Stamp {
            kind: kind.into(),
            id: id.into(),
            name: format!("{kind}-{id}"),
            digest: digest.into(),
        }
    }

    #[test]
    fn stale_plans_say_which_files_and_objects_changed() {
        let then = BTreeMap::from([
            ("swarmseal.yaml".to_string(), "m1".to_string()),
            ("secrets/prod/a.age".to_string(), "a1".to_string()),
            ("secrets/prod/b.age".to_string(), "b1".to_string()),
        ]);
        let mut now = then.clone();
        now.insert("secrets/prod/a.age".into(), "a2".into());
        now.remove("secrets/prod/b.age");
        now.insert("secrets/prod/c.age".into(), "c1".into());
        assert_eq!(
            describe_repo_changes(&then, &now),
            "secrets/prod/a.age changed, secrets/prod/b.age was removed, secrets/prod/c.age is new"
        );
        assert!(describe_repo_changes(&BTreeMap::new(), &now).contains("older swarmseal"));

        let then = vec![
            stamp("secret", "s1", "x"),
            stamp("secret", "s2", "x"),
            stamp("service", "w", "x"),
            stamp("service", "gone", "x"),
        ];
        let now = vec![
            stamp("secret", "s1", "y"),
            stamp("secret", "s3", "x"),
            stamp("service", "w", "y"),
            stamp("service", "new", "x"),
        ];
        let text = describe_swarm_changes(&then, &now);
        for want in [
            "secret secret-s1 changed",
            "secret secret-s2 was removed",
            "secret secret-s3 was created",
            "service service-w was updated",
            "service service-gone no longer uses",
            "service service-new started using",
        ] {
            assert!(text.contains(want), "{want:?} not in {text}");
        }
        let many: Vec<Stamp> = (0..12)
            .map(|i| stamp("secret", &i.to_string(), "x"))
            .collect();
        assert!(describe_swarm_changes(&many, &[]).ends_with("and 4 more"));
    }
}
