//! `swarmseal status` and `swarmseal ls --remote`: the Swarm's versions of the
//! environment's secrets and the services using them. Nothing is decrypted: a version is
//! marked current when it was applied from the file as it is now (its `source` label).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::cli::Global;
use crate::crypto;
use crate::error::Result;
use crate::model::{labels, SwarmSecret};
use crate::names;
use crate::output::{self, Format};
use crate::plan::names_of;

use super::remote::Remote;

/// `repo_view`: list by repository secret (`ls --remote`); else by Swarm secret (`status`).
pub fn run(g: &Global, repo_view: bool) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let scan = repo.scan(&env)?;
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for (name, file) in &scan.secrets {
        sources.insert(name.clone(), crypto::file_digest(&repo.read(&file.path)?));
    }
    let remote = Remote::connect(g, &repo, &env)?;
    let names: BTreeSet<String> = sources.keys().cloned().collect();
    let observed = remote.observe(&repo, &env, &names)?;
    let lock = remote
        .rt
        .block_on(remote.swarm.lock_info(&repo.manifest.project, &env))?;

    let project = repo.manifest.project.as_str();
    let users = |s: &SwarmSecret| names_of(observed.users_of(&s.id));
    let rollback = |s: &SwarmSecret| {
        names_of(
            observed
                .services
                .iter()
                .filter(|svc| svc.previous.iter().any(|r| r.secret_id == s.id)),
        )
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut by_name: BTreeMap<String, Vec<&SwarmSecret>> = BTreeMap::new();
    for s in &observed.secrets {
        let name = if s.is_managed_by(project, &env) {
            s.label(labels::NAME).unwrap_or(&s.name).to_string()
        } else {
            s.name.clone()
        };
        by_name.entry(name).or_default().push(s);
    }
    // Services of this environment that point at a version that no longer exists (their
    // tasks cannot start; `plan` proposes `repair`), by the missing Swarm name.
    let mut missing: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for svc in observed
        .services
        .iter()
        .filter(|svc| observed.uses_environment(svc, project, &env))
    {
        for r in svc.secrets.iter().filter(|r| r.missing) {
            if let Some(name) = sources
                .keys()
                .find(|n| names::is_version_name(&r.secret_name, n))
            {
                missing
                    .entry((name.clone(), r.secret_name.clone()))
                    .or_default()
                    .push(svc.name.clone());
            }
        }
    }
    let mut repairs = 0usize;
    if repo_view {
        for name in sources.keys() {
            let versions = by_name.get(name).cloned().unwrap_or_default();
            let list: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
            let svcs: BTreeSet<String> = versions.iter().flat_map(|v| users(v)).collect();
            rows.push(vec![
                name.clone(),
                if list.is_empty() {
                    "-".into()
                } else {
                    list.join(",")
                },
                svcs.into_iter().collect::<Vec<_>>().join(","),
            ]);
        }
    } else {
        for (name, versions) in &by_name {
            let has_current = versions
                .iter()
                .any(|v| v.label(labels::SOURCE) == sources.get(name).map(String::as_str));
            for v in versions {
                let used = users(v);
                let state = if !v.is_managed_by(project, &env) {
                    "unmanaged".to_string()
                } else if !sources.contains_key(name) {
                    "not in repository".to_string()
                } else if v.label(labels::SOURCE) == sources.get(name).map(String::as_str) {
                    "current".to_string()
                } else if !has_current {
                    "older (the file changed: see plan)".to_string()
                } else if !used.is_empty() {
                    repairs += 1;
                    "older, in use: repair".to_string()
                } else {
                    "older".to_string()
                };
                rows.push(vec![
                    name.clone(),
                    v.name.clone(),
                    v.created_at.clone(),
                    state,
                    used.join(","),
                    rollback(v).join(","),
                ]);
            }
        }
        for ((name, swarm_name), services) in &missing {
            repairs += 1;
            rows.push(vec![
                name.clone(),
                swarm_name.clone(),
                "-".into(),
                "missing: services broken, repair".into(),
                services.join(","),
                String::new(),
            ]);
        }
        rows.sort_by(|a, b| (&a[0], &a[2], &a[1]).cmp(&(&b[0], &b[2], &b[1])));
    }
    let header: &[&str] = if repo_view {
        &["NAME", "SWARM VERSIONS", "SERVICES"]
    } else {
        &[
            "SECRET",
            "SWARM NAME",
            "CREATED",
            "STATE",
            "SERVICES",
            "ROLLBACK",
        ]
    };
    match g.format {
        Format::Human => {
            crate::outln!(
                "project {}, environment {}, Swarm {} via {}",
                repo.manifest.project,
                env,
                observed.cluster_id,
                remote.describe()
            )?;
            if let Some(l) = &lock {
                crate::outln!("apply lock held by {}", l.describe())?;
            }
            if rows.is_empty() {
                crate::outln!("no secrets")?;
            } else {
                crate::out!("{}", output::table(header, &rows))?;
            }
            if repairs > 0 {
                crate::outln!(
                    "{repairs} version(s) need a repair: services run an older version than the current one, or point at one that no longer exists; `swarmseal -e {env} plan` shows the repair"
                )?;
            }
        }
        Format::Markdown => crate::out!("{}", output::markdown_table(header, &rows))?,
        Format::Json => {
            let keys: Vec<String> = header
                .iter()
                .map(|h| h.to_lowercase().replace(' ', "_"))
                .collect();
            // Lists are lists in JSON: services, and Swarm versions.
            let cell = |key: &str, c: &String| {
                if key == "services" || key == "swarm_versions" || key == "rollback" {
                    json!(c
                        .split(',')
                        .filter(|x| !x.is_empty() && *x != "-")
                        .collect::<Vec<_>>())
                } else {
                    json!(c)
                }
            };
            let list: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::Value::Object(
                        keys.iter()
                            .zip(r.iter())
                            .map(|(k, c)| (k.clone(), cell(k, c)))
                            .collect(),
                    )
                })
                .collect();
            crate::outln!(
                "{}",
                json!({
                    "project": repo.manifest.project,
                    "environment": env,
                    "cluster_id": observed.cluster_id,
                    "lock": lock.map(|l| json!({"holder": l.holder, "created": l.created, "running_here": match l.liveness() {
                        crate::swarm::holder::Liveness::Alive => json!(true),
                        crate::swarm::holder::Liveness::Dead => json!(false),
                        crate::swarm::holder::Liveness::Unknown => json!(null),
                    }})),
                    "secrets": list,
                    "repairs": repairs,
                })
            )?;
        }
    }
    Ok(0)
}
