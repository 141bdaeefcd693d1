//! `swarmseal status` and `swarmseal ls --remote`: the Swarm's versions of the
//! environment's secrets and the services using them. Nothing is decrypted: a version is
//! marked current when it was applied from the file as it is now (its `source` label).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::cli::Global;
use crate::crypto;
use crate::error::Result;
use crate::model::{labels, SwarmSecret};
use crate::output::{self, Format};

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

    let users = |s: &SwarmSecret| {
        let mut u: Vec<String> = observed
            .users_of(&s.id)
            .iter()
            .map(|svc| svc.name.clone())
            .collect();
        u.sort();
        u.dedup();
        u.join(",")
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut by_name: BTreeMap<String, Vec<&SwarmSecret>> = BTreeMap::new();
    for s in &observed.secrets {
        let name = if s.is_managed_by(&repo.manifest.project, &env) {
            s.label(labels::NAME).unwrap_or(&s.name).to_string()
        } else {
            s.name.clone()
        };
        by_name.entry(name).or_default().push(s);
    }
    if repo_view {
        for name in sources.keys() {
            let versions = by_name.get(name).cloned().unwrap_or_default();
            let list: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
            let svcs: BTreeSet<String> = versions
                .iter()
                .flat_map(|v| {
                    users(v)
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
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
            for v in versions {
                let state = if !v.is_managed_by(&repo.manifest.project, &env) {
                    "unmanaged".to_string()
                } else if !sources.contains_key(name) {
                    "not in repository".to_string()
                } else if v.label(labels::SOURCE) == sources.get(name).map(String::as_str) {
                    "current".to_string()
                } else {
                    "older or pending".to_string()
                };
                rows.push(vec![
                    name.clone(),
                    v.name.clone(),
                    v.created_at.clone(),
                    state,
                    users(v),
                ]);
            }
        }
    }
    let header: &[&str] = if repo_view {
        &["NAME", "SWARM VERSIONS", "SERVICES"]
    } else {
        &["SECRET", "SWARM NAME", "CREATED", "STATE", "SERVICES"]
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
        }
        Format::Markdown => crate::out!("{}", output::markdown_table(header, &rows))?,
        Format::Json => {
            let keys: Vec<String> = header
                .iter()
                .map(|h| h.to_lowercase().replace(' ', "_"))
                .collect();
            // Lists are lists in JSON: services, and Swarm versions.
            let cell = |key: &str, c: &String| {
                if key == "services" || key == "swarm_versions" {
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
                })
            )?;
        }
    }
    Ok(0)
}
