//! The executor: carries out a plan's steps on the Swarm, in order: creates and label
//! updates, then one update per service (all sent first, then waited for), then
//! removals. Every step is idempotent, so an interrupted apply converges when run again.
//!
//! What happened is recorded in an [`Outcome`] as it happens (behind a mutex the caller
//! owns), so that an apply stopped half-way (Ctrl-C) still reports exactly what it did:
//! which updates were sent, which converged.
//!
//! Removals follow the removal rule of [`crate::plan`], and are checked once more against
//! the services as they are just before: a version that a service's current or previous
//! spec references then (someone updated or rolled back a service meanwhile), or that a
//! removal waits for and whose service did not converge (or was not waited for:
//! `--detach`), is kept, and a later apply removes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::crypto::Plaintext;
use crate::domain::state::{Observed, ServiceRefs};
use crate::error::{Error, Result};
use crate::plan::{Plan, Step};
use crate::swarm::{Health, RemoveOutcome, Swap, Swarm, WaitProgress};

/// How to carry out a plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wait for service updates to converge (the default; `--detach` turns it off).
    pub wait: bool,
    pub wait_timeout: Duration,
    /// API calls in flight at once.
    pub parallel: usize,
}

/// What happened, as it happened.
#[derive(Debug, Default)]
pub struct Outcome {
    pub created: Vec<String>,
    pub relabelled: Vec<String>,
    /// Services whose update was sent (accepted by Docker).
    pub updated_services: Vec<String>,
    /// Services whose update was waited for and converged.
    pub converged: Vec<String>,
    pub removed: Vec<String>,
    /// Removals refused by Docker because a service still uses the secret.
    pub blocked: Vec<String>,
    /// Versions kept for now, and why (a service did not converge, was not waited for, or
    /// references them).
    pub kept: Vec<(String, String)>,
    /// Things worth saying that are not failures of this apply (an unhealthy service it
    /// did not touch).
    pub warnings: Vec<String>,
    pub errors: Vec<Error>,
}

/// What the executor tells while it works, for live progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Created(String),
    Relabelled(String),
    /// Docker accepted the service update; its tasks are being replaced.
    UpdateSent(String),
    /// A service being waited for, at one poll.
    Waiting {
        service: String,
        progress: WaitProgress,
    },
    Converged {
        service: String,
        elapsed: Duration,
    },
    /// The service did not converge (the error is in the outcome).
    NotConverged(String),
    Removed(String),
    Kept {
        swarm_name: String,
        why: String,
    },
}

/// Carries out `plan` (made from `observed`) with the repository's `values`, recording
/// into `out` as it goes.
pub async fn execute(
    swarm: &Swarm,
    plan: &Plan,
    observed: &Observed,
    values: &BTreeMap<String, Plaintext>,
    opts: &Options,
    progress: &(dyn Fn(Event) + Sync),
    out: &Mutex<Outcome>,
) -> Result<()> {
    let record = |f: &dyn Fn(&mut Outcome)| {
        if let Ok(mut o) = out.lock() {
            f(&mut o);
        }
    };
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
    let mut created = stream::iter(creates)
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
        .buffer_unordered(parallel);
    while let Some((name, result)) = created.next().await {
        match result {
            Ok(id) => {
                record(&|o| o.created.push(name.clone()));
                progress(Event::Created(name.clone()));
                ids.insert(name, id);
            }
            // Without the new version nothing else can safely happen.
            Err(e) => return Err(e.context(format!("creating {name}"))),
        }
    }
    drop(created);
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
            record(&|o| o.relabelled.push(swarm_name.clone()));
            progress(Event::Relabelled(swarm_name.clone()));
        }
    }

    // 2. One update per service, all sent first.
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
            repoints.push((service_id.clone(), service_name.clone(), swaps));
        }
    }
    // Services confirmed to have converged (or to need no waiting): a removal that waits
    // for a service goes only if the service is here.
    let mut settled: BTreeSet<String> = BTreeSet::new();
    let mut sent: Vec<(String, String)> = Vec::new();
    let mut updates = stream::iter(repoints.iter())
        .map(|(id, name, swaps)| async move {
            (
                id.clone(),
                name.clone(),
                swarm.repoint_service(id, swaps).await,
            )
        })
        .buffer_unordered(parallel);
    while let Some((id, name, result)) = updates.next().await {
        match result {
            Ok(_) => {
                record(&|o| o.updated_services.push(name.clone()));
                progress(Event::UpdateSent(name.clone()));
                sent.push((id, name));
            }
            Err(e) => record(&|o| o.errors.push(e.clone().context(format!("service {name}")))),
        }
    }
    drop(updates);

    // 3. Waiting for the updates to converge (unless --detach).
    if opts.wait {
        let mut waits = stream::iter(sent.iter())
            .map(|(id, name)| async move {
                let on_poll = |p: &WaitProgress| {
                    progress(Event::Waiting {
                        service: name.clone(),
                        progress: p.clone(),
                    })
                };
                let start = std::time::Instant::now();
                let result = swarm.wait_converged(id, opts.wait_timeout, &on_poll).await;
                (id.clone(), name.clone(), result, start.elapsed())
            })
            .buffer_unordered(parallel);
        while let Some((id, name, result, elapsed)) = waits.next().await {
            match result {
                Ok(()) => {
                    record(&|o| o.converged.push(name.clone()));
                    progress(Event::Converged {
                        service: name.clone(),
                        elapsed,
                    });
                    // A repaired reference to a missing secret is still in the previous
                    // spec: one more (no-op) update, so that a rollback cannot bring it back.
                    if repaired_dangling(observed, &repoints, &id) {
                        if let Err(e) = swarm.settle_previous(&id).await {
                            record(&|o| {
                                o.warnings.push(format!(
                                    "service {name} was repaired, but its previous spec still names a secret that no longer exists, so `docker service rollback` would break it again ({})",
                                    e.message()
                                ))
                            });
                        }
                    }
                    settled.insert(id);
                }
                Err(e) => {
                    record(&|o| o.errors.push(e.clone().context(format!("service {name}"))));
                    progress(Event::NotConverged(name));
                }
            }
        }
        drop(waits);
        // The other services of this environment, and those a removal waits for, at one
        // glance: one whose update is in progress (an interrupted apply may have left it
        // mid-update) is waited for; one that is unhealthy for its own reasons (a crash
        // loop) is named in a warning, and what waits for it stays.
        let repointed: BTreeSet<&str> = repoints.iter().map(|(id, ..)| id.as_str()).collect();
        let awaited: BTreeSet<&str> = plan
            .steps
            .iter()
            .flat_map(|s| match s {
                Step::Remove { after, .. } => after.as_slice(),
                _ => &[],
            })
            .map(String::as_str)
            .collect();
        let others: Vec<(&str, &str)> = observed
            .services
            .iter()
            .filter(|svc| !repointed.contains(svc.id.as_str()))
            .filter(|svc| {
                awaited.contains(svc.id.as_str())
                    || observed.uses_environment(svc, &plan.project, &plan.environment)
            })
            .map(|svc| (svc.id.as_str(), svc.name.as_str()))
            .collect();
        let mut looks = stream::iter(others)
            .map(|(id, name)| async move {
                let result = match swarm.health(id).await {
                    Ok(Health::Healthy) => Ok(None),
                    Ok(Health::Updating) => {
                        let on_poll = |p: &WaitProgress| {
                            progress(Event::Waiting {
                                service: name.to_string(),
                                progress: p.clone(),
                            })
                        };
                        let start = std::time::Instant::now();
                        let r = swarm.wait_converged(id, opts.wait_timeout, &on_poll).await;
                        if r.is_ok() {
                            progress(Event::Converged {
                                service: name.to_string(),
                                elapsed: start.elapsed(),
                            });
                        }
                        r.map(|()| None)
                    }
                    Ok(Health::Unhealthy(why)) => Ok(Some(why)),
                    Err(e) => Err(e),
                };
                (id.to_string(), name.to_string(), result)
            })
            .buffer_unordered(parallel);
        while let Some((id, name, result)) = looks.next().await {
            match result {
                Ok(None) => {
                    settled.insert(id);
                }
                Ok(Some(why)) => record(&|o| {
                    o.warnings.push(format!(
                        "service {name} uses secrets of {} but is not healthy ({why}); swarmseal did not change it",
                        plan.environment
                    ))
                }),
                Err(e) => record(&|o| o.errors.push(e.clone().context(format!("service {name}")))),
            }
        }
    }

    // 4. Removals, checked against the services as they are now.
    let removals: Vec<(&String, &String, &Vec<String>)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Remove {
                secret_id,
                swarm_name,
                after,
                ..
            } => Some((secret_id, swarm_name, after)),
            _ => None,
        })
        .collect();
    if removals.is_empty() {
        return Ok(());
    }
    let now: Vec<ServiceRefs> = swarm.services().await?;
    let mut go = Vec::new();
    for (id, name, after) in removals {
        // Only this project's and environment's managed secrets are ever removed, whatever
        // a (saved, possibly edited) plan says.
        let ours = observed
            .secrets
            .iter()
            .any(|s| &s.id == id && s.is_managed_by(&plan.project, &plan.environment));
        if !ours {
            record(&|o| {
                o.errors.push(
                    Error::new(format!(
                        "refused to remove {name}: it is not a managed secret of {}/{}",
                        plan.project, plan.environment
                    ))
                    .hint("swarmseal only removes secrets that carry its project's labels"),
                )
            });
            continue;
        }
        let waiting: Vec<&str> = now
            .iter()
            .filter(|svc| after.contains(&svc.id) && !settled.contains(&svc.id))
            .map(|svc| svc.name.as_str())
            .collect();
        let holders: Vec<&str> = now
            .iter()
            .filter(|svc| svc.holds(id))
            .map(|svc| svc.name.as_str())
            .collect();
        let why = if !waiting.is_empty() {
            Some(format!(
                "waits for {} to converge{}",
                waiting.join(", "),
                if opts.wait { "" } else { " (--detach)" }
            ))
        } else if !holders.is_empty() {
            Some(format!("{} can still run with it", holders.join(", ")))
        } else {
            None
        };
        match why {
            Some(why) => {
                record(&|o| o.kept.push((name.clone(), why.clone())));
                progress(Event::Kept {
                    swarm_name: name.clone(),
                    why,
                });
            }
            None => go.push((id, name)),
        }
    }
    let mut removed = stream::iter(go)
        .map(|(id, name)| async move { (name.clone(), swarm.remove_secret(id, name).await) })
        .buffer_unordered(parallel);
    while let Some((name, result)) = removed.next().await {
        match result {
            Ok(RemoveOutcome::Removed) | Ok(RemoveOutcome::Gone) => {
                record(&|o| o.removed.push(name.clone()));
                progress(Event::Removed(name));
            }
            Ok(RemoveOutcome::InUse(why)) => record(&|o| o.blocked.push(format!("{name}: {why}"))),
            Err(e) => record(&|o| o.errors.push(e.clone())),
        }
    }
    Ok(())
}

/// True when this apply re-points service `id` away from a reference to a secret that no
/// longer exists.
fn repaired_dangling(
    observed: &Observed,
    repoints: &[(String, String, Vec<Swap>)],
    id: &str,
) -> bool {
    let Some(svc) = observed.services.iter().find(|s| s.id == id) else {
        return false;
    };
    repoints
        .iter()
        .filter(|(sid, ..)| sid == id)
        .flat_map(|(_, _, swaps)| swaps)
        .any(|swap| {
            svc.secrets
                .iter()
                .any(|r| r.missing && r.secret_id == swap.old_id)
        })
}
