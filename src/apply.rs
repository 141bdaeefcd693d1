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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use crate::domain::state::{Kind, Observed, ServiceRefs, SwarmSecret};
use crate::error::{Error, Result};
use crate::plan::{Plan, Step};
use crate::repo::desired::Values;
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

/// A phase of an apply that works through many secrets, one event per secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Creating new versions: a [`Event::Created`] each.
    Create,
    /// Updating labels: a [`Event::Relabelled`] each.
    Relabel,
    /// Removing versions: a [`Event::Removed`] each that is removed (one refused or failed
    /// has none: it is in the outcome).
    Remove,
}

/// What the executor tells while it works, for live progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A phase starts, with `total` secrets to work through (never zero).
    Phase {
        phase: Phase,
        total: usize,
    },
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
    values: &Values,
    opts: &Options,
    progress: &(dyn Fn(Event) + Sync),
    out: &Mutex<Outcome>,
) -> Result<()> {
    let by_id: HashMap<&str, &SwarmSecret> = observed
        .secrets
        .iter()
        .chain(&observed.configs.items)
        .map(|s| (s.id.as_str(), s))
        .collect();
    let mut run = Run::new(Ctx {
        swarm,
        plan,
        observed,
        secrets: &by_id,
        opts,
        progress,
        out,
        parallel: opts.parallel.max(1),
    });
    // 1. Creates and label updates.
    run.create_and_relabel(values).await?;
    // 2. One update per service, all sent first.
    let repoints = run.repoints()?;
    run.repoint_services(&repoints).await;
    // 3. Waiting for the updates to converge (unless --detach).
    if opts.wait {
        run.wait_for_updates(&repoints).await;
        run.look_at_others(&repoints).await;
    }
    // 4. Removals, checked against the services as they are now.
    run.remove_superseded().await
}

/// One service update: the service's ID and name, and the references it swaps.
type Repoint = (String, String, Vec<Swap>);

/// What every phase of an apply reads: the Swarm, the plan, the options, and where to
/// report. Copied into the futures a phase runs, so that they borrow nothing of [`Run`].
#[derive(Clone, Copy)]
struct Ctx<'a> {
    swarm: &'a Swarm,
    plan: &'a Plan,
    observed: &'a Observed,
    /// The observed secrets and configs by ID.
    secrets: &'a HashMap<&'a str, &'a SwarmSecret>,
    opts: &'a Options,
    progress: &'a (dyn Fn(Event) + Sync),
    out: &'a Mutex<Outcome>,
    /// API calls in flight at once (at least one).
    parallel: usize,
}

impl<'a> Ctx<'a> {
    /// Records into the outcome as it happens (nothing, if the lock is poisoned).
    fn record(self, f: impl FnOnce(&mut Outcome)) {
        if let Ok(mut o) = self.out.lock() {
            f(&mut o);
        }
    }

    /// Tells the live progress.
    fn tell(self, event: Event) {
        (self.progress)(event)
    }

    /// Waits for service `id` to converge, telling each poll.
    async fn wait_converged(self, id: &str, name: &str) -> Result<()> {
        let on_poll = |p: &WaitProgress| {
            self.tell(Event::Waiting {
                service: name.to_string(),
                progress: p.clone(),
            })
        };
        self.swarm
            .wait_converged(id, self.opts.wait_timeout, &on_poll)
            .await
    }

    /// A service's health (waited for if updating): `None` when healthy, else why not.
    async fn health_or_wait(self, id: &str, name: &str) -> Result<Option<String>> {
        match self.swarm.health(id).await {
            Ok(Health::Healthy) => Ok(None),
            Ok(Health::Updating) => {
                let start = std::time::Instant::now();
                let r = self.wait_converged(id, name).await;
                if r.is_ok() {
                    self.tell(Event::Converged {
                        service: name.to_string(),
                        elapsed: start.elapsed(),
                    });
                }
                r.map(|()| None)
            }
            Ok(Health::Unhealthy(why)) => Ok(Some(why)),
            Err(e) => Err(e),
        }
    }

    /// Services to look at after the updates: the environment's others, and removals' `after`.
    fn others(self, repoints: &[Repoint]) -> Vec<(&'a str, &'a str)> {
        let (plan, observed) = (self.plan, self.observed);
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
        observed
            .services
            .iter()
            .filter(|svc| !repointed.contains(svc.id.as_str()))
            .filter(|svc| {
                awaited.contains(svc.id.as_str())
                    || observed.uses_environment(svc, &plan.project, &plan.environment)
            })
            .map(|svc| (svc.id.as_str(), svc.name.as_str()))
            .collect()
    }

    /// The plan's removals: kind, ID, Swarm name, and the services each waits for.
    fn removals(self) -> Vec<(Kind, &'a String, &'a String, &'a Vec<String>)> {
        self.plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove {
                    secret_id,
                    swarm_name,
                    after,
                    kind,
                    ..
                } => Some((*kind, secret_id, swarm_name, after)),
                _ => None,
            })
            .collect()
    }

    /// True when secret `id` is ours (managed, this project and environment), else records why not.
    fn ours_to_remove(self, kind: Kind, id: &str, name: &str) -> bool {
        let plan = self.plan;
        // Only this project's and environment's managed secrets are ever removed, whatever
        // a (saved, possibly edited) plan says.
        let ours = self
            .secrets
            .get(id)
            .is_some_and(|s| s.is_managed_by(&plan.project, &plan.environment));
        if !ours {
            self.record(|o| {
                o.errors.push(
                    Error::new(format!(
                        "refused to remove {name}: it is not a managed {kind} of {}/{}",
                        plan.project, plan.environment
                    ))
                    .hint(format!(
                        "swarmseal only removes {kind}s that carry its project's labels"
                    )),
                )
            });
        }
        ours
    }

    /// Removes the versions nothing keeps, `parallel` at a time, recording each result.
    async fn remove_all(self, go: Vec<(Kind, &String, &String)>) {
        if !go.is_empty() {
            self.tell(Event::Phase {
                phase: Phase::Remove,
                total: go.len(),
            });
        }
        let mut removed = stream::iter(go)
            .map(|(kind, id, name)| async move {
                (name.clone(), self.swarm.remove(kind, id, name).await)
            })
            .buffer_unordered(self.parallel);
        while let Some((name, result)) = removed.next().await {
            match result {
                Ok(RemoveOutcome::Removed) | Ok(RemoveOutcome::Gone) => {
                    self.record(|o| o.removed.push(name.clone()));
                    self.tell(Event::Removed(name));
                }
                Ok(RemoveOutcome::InUse(why)) => {
                    self.record(|o| o.blocked.push(format!("{name}: {why}")))
                }
                Err(e) => self.record(|o| o.errors.push(e)),
            }
        }
    }
}

/// An apply under way: what it reads, and the state its phases share.
struct Run<'a> {
    cx: Ctx<'a>,
    /// IDs by kind and Swarm name: what exists, plus what this apply creates.
    ids: BTreeMap<(Kind, String), String>,
    /// Services confirmed to have converged (or to need no waiting): a removal that waits
    /// for a service goes only if the service is here.
    settled: BTreeSet<String>,
    /// Services whose update was sent (ID, name).
    sent: Vec<(String, String)>,
}

impl<'a> Run<'a> {
    /// Starts with the secrets that exist, nothing settled and nothing sent.
    fn new(cx: Ctx<'a>) -> Run<'a> {
        let of = |kind: Kind| {
            cx.observed
                .items(kind)
                .iter()
                .map(move |s| ((kind, s.name.clone()), s.id.clone()))
        };
        let ids = of(Kind::Secret).chain(of(Kind::Config)).collect();
        Run {
            cx,
            ids,
            settled: BTreeSet::new(),
            sent: Vec::new(),
        }
    }

    /// Phase 1: creates the new versions, then updates the labels of those relabelled.
    async fn create_and_relabel(&mut self, values: &Values) -> Result<()> {
        self.create_versions(values).await?;
        self.relabel().await
    }

    /// Creates the plan's new versions, `parallel` at a time; the first failure stops it.
    async fn create_versions(&mut self, values: &Values) -> Result<()> {
        let cx = self.cx;
        let creates: Vec<_> = cx
            .plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Create {
                    secret,
                    swarm_name,
                    labels,
                    kind,
                    ..
                } => Some((*kind, secret, swarm_name, labels)),
                _ => None,
            })
            .collect();
        if !creates.is_empty() {
            cx.tell(Event::Phase {
                phase: Phase::Create,
                total: creates.len(),
            });
        }
        let mut created = stream::iter(creates)
            .map(|(kind, secret, swarm_name, labels)| async move {
                let result = match values.get(kind, secret) {
                    Some(value) => cx.swarm.create(kind, swarm_name, labels, value).await,
                    None => Err(Error::new(format!(
                        "no value for {kind} {secret} to create {swarm_name}"
                    ))
                    .hint("make a new plan: the repository no longer matches this one")),
                };
                (kind, swarm_name.clone(), result)
            })
            .buffer_unordered(cx.parallel);
        while let Some((kind, name, result)) = created.next().await {
            match result {
                Ok(id) => {
                    cx.record(|o| o.created.push(name.clone()));
                    cx.tell(Event::Created(name.clone()));
                    self.ids.insert((kind, name), id);
                }
                // Without the new version nothing else can safely happen.
                Err(e) => return Err(e.context(format!("creating {name}"))),
            }
        }
        Ok(())
    }

    /// Updates the labels of the versions the plan relabels, one at a time.
    async fn relabel(&self) -> Result<()> {
        let cx = self.cx;
        let relabels: Vec<_> = cx
            .plan
            .steps
            .iter()
            .filter_map(|step| match step {
                Step::Relabel {
                    secret_id,
                    swarm_name,
                    labels,
                    kind,
                    ..
                } => {
                    let secret = *cx.secrets.get(secret_id.as_str())?;
                    Some((*kind, secret, swarm_name, labels))
                }
                _ => None,
            })
            .collect();
        if !relabels.is_empty() {
            cx.tell(Event::Phase {
                phase: Phase::Relabel,
                total: relabels.len(),
            });
        }
        for (kind, secret, swarm_name, labels) in relabels {
            cx.swarm.update_labels(kind, secret, labels).await?;
            cx.record(|o| o.relabelled.push(swarm_name.clone()));
            cx.tell(Event::Relabelled(swarm_name.clone()));
        }
        Ok(())
    }

    /// The plan's service updates, each swap resolved to its new version's ID.
    fn repoints(&self) -> Result<Vec<Repoint>> {
        let mut repoints = Vec::new();
        for step in &self.cx.plan.steps {
            if let Step::Repoint {
                service_id,
                service_name,
                swaps,
            } = step
            {
                let swaps: Vec<Swap> = swaps
                    .iter()
                    .map(|s| {
                        let key = (s.kind, s.new_name.clone());
                        let new_id = self.ids.get(&key).cloned().ok_or_else(|| {
                            Error::new(format!(
                                "the version {} to re-point {service_name} to does not exist",
                                s.new_name
                            ))
                            .hint("make a new plan: the Swarm changed since this one was made")
                        })?;
                        Ok(Swap {
                            old_id: s.old_id.clone(),
                            old_target: Some(s.old_target.clone()).filter(|t| !t.is_empty()),
                            new_id,
                            new_name: s.new_name.clone(),
                            target: s.target.clone(),
                            uid: s.uid.clone(),
                            gid: s.gid.clone(),
                            mode: s.mode,
                            kind: s.kind,
                        })
                    })
                    .collect::<Result<_>>()?;
                repoints.push((service_id.clone(), service_name.clone(), swaps));
            }
        }
        Ok(repoints)
    }

    /// Phase 2: sends every service update, `parallel` at a time; failures are recorded.
    async fn repoint_services(&mut self, repoints: &[Repoint]) {
        let cx = self.cx;
        let mut updates = stream::iter(repoints.iter())
            .map(|(id, name, swaps)| async move {
                (
                    id.clone(),
                    name.clone(),
                    cx.swarm.repoint_service(id, swaps).await,
                )
            })
            .buffer_unordered(cx.parallel);
        while let Some((id, name, result)) = updates.next().await {
            match result {
                Ok(_) => {
                    cx.record(|o| o.updated_services.push(name.clone()));
                    cx.tell(Event::UpdateSent(name.clone()));
                    self.sent.push((id, name));
                }
                Err(e) => cx.record(|o| o.errors.push(e.context(format!("service {name}")))),
            }
        }
    }

    /// Phase 3: waits for the sent updates to converge; those that do are settled.
    async fn wait_for_updates(&mut self, repoints: &[Repoint]) {
        let cx = self.cx;
        let mut waits = stream::iter(self.sent.iter())
            .map(|(id, name)| async move {
                let start = std::time::Instant::now();
                let result = cx.wait_converged(id, name).await;
                (id.clone(), name.clone(), result, start.elapsed())
            })
            .buffer_unordered(cx.parallel);
        while let Some((id, name, result, elapsed)) = waits.next().await {
            match result {
                Ok(()) => {
                    cx.record(|o| o.converged.push(name.clone()));
                    cx.tell(Event::Converged {
                        service: name.clone(),
                        elapsed,
                    });
                    // A repaired reference to a missing secret is still in the previous
                    // spec: one more (no-op) update, so that a rollback cannot bring it back.
                    if repaired_dangling(cx.observed, repoints, &id) {
                        if let Err(e) = cx.swarm.settle_previous(&id).await {
                            cx.record(|o| {
                                o.warnings.push(format!(
                                    "service {name} was repaired, but its previous spec still names a secret that no longer exists, so `docker service rollback` would break it again ({})",
                                    e.message()
                                ))
                            });
                        }
                    }
                    self.settled.insert(id);
                }
                Err(e) => {
                    cx.record(|o| o.errors.push(e.context(format!("service {name}"))));
                    cx.tell(Event::NotConverged(name));
                }
            }
        }
    }

    /// Phase 3, continued: waits for or warns about the services this apply did not update.
    async fn look_at_others(&mut self, repoints: &[Repoint]) {
        // One whose update is in progress (an interrupted apply may have left it
        // mid-update) is waited for; one that is unhealthy for its own reasons (a crash
        // loop) is named in a warning, and what waits for it stays.
        let cx = self.cx;
        let mut looks = stream::iter(cx.others(repoints))
            .map(|(id, name)| async move {
                let result = cx.health_or_wait(id, name).await;
                (id.to_string(), name.to_string(), result)
            })
            .buffer_unordered(cx.parallel);
        while let Some((id, name, result)) = looks.next().await {
            match result {
                Ok(None) => {
                    self.settled.insert(id);
                }
                Ok(Some(why)) => cx.record(|o| {
                    o.warnings.push(format!(
                        "service {name} uses secrets of {} but is not healthy ({why}); swarmseal did not change it",
                        cx.plan.environment
                    ))
                }),
                Err(e) => cx.record(|o| o.errors.push(e.context(format!("service {name}")))),
            }
        }
    }

    /// Phase 4: removals, each checked against the services as they are now (else kept).
    async fn remove_superseded(&self) -> Result<()> {
        let cx = self.cx;
        let removals = cx.removals();
        if removals.is_empty() {
            return Ok(());
        }
        let now: Vec<ServiceRefs> = cx.swarm.services().await?;
        let mut go = Vec::new();
        for (kind, id, name, after) in removals {
            if !cx.ours_to_remove(kind, id, name) {
                continue;
            }
            match self.keep_reason(&now, id, after) {
                Some(why) => {
                    cx.record(|o| o.kept.push((name.clone(), why.clone())));
                    cx.tell(Event::Kept {
                        swarm_name: name.clone(),
                        why,
                    });
                }
                None => go.push((kind, id, name)),
            }
        }
        cx.remove_all(go).await;
        Ok(())
    }

    /// Why version `id` stays for now, if it does (an unsettled `after`, or a holder).
    fn keep_reason(&self, now: &[ServiceRefs], id: &str, after: &[String]) -> Option<String> {
        let waiting: Vec<&str> = now
            .iter()
            .filter(|svc| after.contains(&svc.id) && !self.settled.contains(&svc.id))
            .map(|svc| svc.name.as_str())
            .collect();
        let holders: Vec<&str> = now
            .iter()
            .filter(|svc| svc.holds(id) || svc.holds_config(id))
            .map(|svc| svc.name.as_str())
            .collect();
        if !waiting.is_empty() {
            Some(format!(
                "waits for {} to converge{}",
                waiting.join(", "),
                if self.cx.opts.wait { "" } else { " (--detach)" }
            ))
        } else if !holders.is_empty() {
            Some(format!("{} can still run with it", holders.join(", ")))
        } else {
            None
        }
    }
}

/// True when this apply re-points service `id` away from a reference to a secret that no
/// longer exists.
fn repaired_dangling(observed: &Observed, repoints: &[Repoint], id: &str) -> bool {
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
                .chain(&svc.configs)
                .any(|r| r.missing && r.secret_id == swap.old_id)
        })
}
