//! The executor: carries out a plan's steps on the Swarm, in order: creates and label
//! updates, then one update per service, then removals. Every step is idempotent, so an
//! interrupted apply converges when run again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::crypto::Plaintext;
use crate::error::{Error, Result};
use crate::model::Observed;
use crate::plan::{Plan, Step};
use crate::swarm::{Health, RemoveOutcome, Swap, Swarm};

/// How to carry out a plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait for service updates to converge before removing superseded versions.
    pub wait: bool,
    pub wait_timeout: Duration,
    /// API calls in flight at once.
    pub parallel: usize,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Outcome {
    pub created: Vec<String>,
    pub relabelled: Vec<String>,
    pub updated_services: Vec<String>,
    pub removed: Vec<String>,
    /// Removals refused by Docker because a service still uses the secret.
    pub blocked: Vec<String>,
    /// Versions kept because the services moving away from them did not converge.
    pub kept: Vec<String>,
    /// Things worth saying that are not failures of this apply (an unhealthy service it
    /// did not touch).
    pub warnings: Vec<String>,
    pub errors: Vec<Error>,
}

/// Carries out `plan` (made from `observed`) with the repository's `values`.
pub async fn execute(
    swarm: &Swarm,
    plan: &Plan,
    observed: &Observed,
    values: &BTreeMap<String, Plaintext>,
    opts: &Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Outcome> {
    let mut out = Outcome::default();
    let parallel = opts.parallel.max(1);

    // Secret IDs by Swarm name: what exists, plus what this apply creates.
    let mut ids: BTreeMap<String, String> = observed
        .secrets
        .iter()
        .map(|s| (s.name.clone(), s.id.clone()))
        .collect();

    // 1. Creates and label updates.
    let creates: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Create {
                secret,
                swarm_name,
                labels,
                ..
            } => Some((secret, swarm_name, labels)),
            _ => None,
        })
        .collect();
    let results: Vec<(String, Result<String>)> = stream::iter(creates)
        .map(|(secret, swarm_name, labels)| async move {
            let result = match values.get(secret) {
                Some(value) => swarm.create_secret(swarm_name, labels, value).await,
                None => Err(
                    Error::new(format!("no value for {secret} to create {swarm_name}"))
                        .hint("make a new plan: the repository no longer matches this one"),
                ),
            };
            (swarm_name.clone(), result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for (name, result) in results {
        match result {
            Ok(id) => {
                progress(&format!("created {name}"));
                ids.insert(name.clone(), id);
                out.created.push(name);
            }
            // Without the new version nothing else can safely happen.
            Err(e) => return Err(e.context(format!("creating {name}"))),
        }
    }
    for step in &plan.steps {
        if let Step::Relabel {
            secret_id,
            swarm_name,
            labels,
            ..
        } = step
        {
            let Some(secret) = observed.secrets.iter().find(|s| &s.id == secret_id) else {
                continue;
            };
            swarm.update_secret_labels(secret, labels).await?;
            progress(&format!("updated the labels of {swarm_name}"));
            out.relabelled.push(swarm_name.clone());
        }
    }

    // 2. One update per service.
    let mut repoints = Vec::new();
    for step in &plan.steps {
        if let Step::Repoint {
            service_id,
            service_name,
            swaps,
        } = step
        {
            let swaps: Vec<Swap> = swaps
                .iter()
                .map(|s| {
                    let new_id = ids.get(&s.new_name).cloned().ok_or_else(|| {
                        Error::new(format!(
                            "the version {} to re-point {service_name} to does not exist",
                            s.new_name
                        ))
                        .hint("make a new plan: the Swarm changed since this one was made")
                    })?;
                    Ok(Swap {
                        old_id: s.old_id.clone(),
                        new_id,
                        new_name: s.new_name.clone(),
                        target: s.target.clone(),
                        uid: s.uid.clone(),
                        gid: s.gid.clone(),
                        mode: s.mode,
                    })
                })
                .collect::<Result<_>>()?;
            let old_names: Vec<String> = step_old_names(step);
            repoints.push((service_id.clone(), service_name.clone(), swaps, old_names));
        }
    }
    let results: Vec<_> = stream::iter(repoints.iter())
        .map(|(id, name, swaps, olds)| async move {
            let mut result = swarm.repoint_service(id, swaps).await.map(|_| ());
            if result.is_ok() && opts.wait {
                result = swarm.wait_converged(id, opts.wait_timeout).await;
            }
            (name.clone(), olds.clone(), result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    // With --wait, the other services that use this environment's secrets are looked at
    // once. One whose update is in progress (an interrupted apply may have left it
    // mid-update) is waited for: its old version must not go before it has converged. One
    // that is unhealthy for its own reasons (a crash loop) is named in a warning; it is no
    // failure of this apply, which did not touch it.
    let repointed: BTreeSet<&str> = repoints.iter().map(|(id, ..)| id.as_str()).collect();
    let others: Vec<(&str, &str)> = if opts.wait {
        observed
            .services
            .iter()
            .filter(|svc| !repointed.contains(svc.id.as_str()))
            .filter(|svc| {
                svc.secrets.iter().any(|r| {
                    observed.secrets.iter().any(|s| {
                        s.id == r.secret_id && s.is_managed_by(&plan.project, &plan.environment)
                    })
                })
            })
            .map(|svc| (svc.id.as_str(), svc.name.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let others: Vec<(String, Result<Option<String>>)> = stream::iter(others)
        .map(|(id, name)| async move {
            let result = match swarm.health(id).await {
                Ok(Health::Healthy) => Ok(None),
                Ok(Health::Updating) => swarm
                    .wait_converged(id, opts.wait_timeout)
                    .await
                    .map(|()| None),
                Ok(Health::Unhealthy(why)) => Ok(Some(why)),
                Err(e) => Err(e),
            };
            (name.to_string(), result)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut keep_all = false;
    for (name, result) in others {
        match result {
            Ok(None) => {}
            Ok(Some(why)) => out.warnings.push(format!(
                "service {name} uses secrets of {} but is not healthy ({why}); swarmseal did not change it",
                plan.environment
            )),
            Err(e) => {
                keep_all = true;
                out.errors.push(e.context(format!("service {name}")));
            }
        }
    }

    // Versions that a service failed to move away from are kept, for rollback.
    let mut keep: BTreeSet<String> = BTreeSet::new();
    for (name, olds, result) in results {
        match result {
            Ok(()) => {
                progress(&format!("updated service {name}"));
                out.updated_services.push(name);
            }
            Err(e) => {
                keep.extend(olds);
                out.errors.push(e.context(format!("service {name}")));
            }
        }
    }

    // 3. Removals.
    let removals: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Remove {
                secret_id,
                swarm_name,
                ..
            } => Some((secret_id, swarm_name)),
            _ => None,
        })
        .filter(|(_, name)| {
            if keep_all || keep.contains(*name) {
                out.kept.push((*name).clone());
                false
            } else {
                true
            }
        })
        .collect();
    // Only this project's and environment's managed secrets are ever removed, whatever a
    // (saved, possibly edited) plan says.
    let (removals, foreign): (Vec<_>, Vec<_>) = removals.into_iter().partition(|(id, _)| {
        observed
            .secrets
            .iter()
            .any(|s| &s.id == *id && s.is_managed_by(&plan.project, &plan.environment))
    });
    for (_, name) in foreign {
        out.errors.push(
            Error::new(format!(
                "refused to remove {name}: it is not a managed secret of {}/{}",
                plan.project, plan.environment
            ))
            .hint("swarmseal only removes secrets that carry its project's labels"),
        );
    }
    let results: Vec<_> = stream::iter(removals)
        .map(|(id, name)| async move { (name.clone(), swarm.remove_secret(id, name).await) })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for (name, result) in results {
        match result {
            Ok(RemoveOutcome::Removed) | Ok(RemoveOutcome::Gone) => {
                progress(&format!("removed {name}"));
                out.removed.push(name);
            }
            Ok(RemoveOutcome::InUse(why)) => out.blocked.push(format!("{name}: {why}")),
            Err(e) => out.errors.push(e),
        }
    }
    out.created.sort();
    out.removed.sort();
    out.updated_services.sort();
    Ok(out)
}

fn step_old_names(step: &Step) -> Vec<String> {
    match step {
        Step::Repoint { swaps, .. } => swaps.iter().map(|s| s.old_name.clone()).collect(),
        _ => Vec::new(),
    }
}
