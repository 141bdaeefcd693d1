//! The planner: a pure function from the desired state (the repository) and the observed
//! state (the Swarm) to an ordered plan, in phases: per secret, what to create, relabel or
//! keep ([`moves`]); which services to re-point ([`AfterUpdates`]); what the updates
//! supersede and when it may be removed (the removal rule, [`superseded`]); and what is
//! gone from the repository ([`gone`]).

use super::*;
use crate::domain::state::{has_managed_labels, Kind, ObservedIndex, SecretRef, TakenName};

/// Orders versions oldest first (by creation time, then name, then ID).
pub(super) fn by_age(a: &&SwarmSecret, b: &&SwarmSecret) -> std::cmp::Ordering {
    (&a.created_at, &a.name, &a.id).cmp(&(&b.created_at, &b.name, &b.id))
}

/// What the phases share: the observation, indexed.
pub(super) struct Scope<'a> {
    /// What is planned: secrets, or configs (through the config views of the states).
    kind: Kind,
    desired: &'a Desired,
    observed: &'a Observed,
    index: ObservedIndex<'a>,
    /// Managed versions of this project and environment by logical name, oldest first.
    versions: BTreeMap<&'a str, Vec<&'a SwarmSecret>>,
    /// Unmanaged secrets by name.
    unmanaged: BTreeMap<&'a str, &'a SwarmSecret>,
    /// Names held outside this project and environment ([`Observed::taken`]).
    taken: BTreeMap<&'a str, &'a TakenName>,
    /// Services that use an unmanaged secret of a repository name: this plan adopts it, so
    /// it updates them.
    adopters: BTreeSet<&'a str>,
    /// References of this environment's services to versions that no longer exist, by
    /// the logical name their Swarm name is a version of.
    missing: BTreeMap<&'a str, Vec<(&'a ServiceRefs, &'a SecretRef)>>,
}

impl<'a> Scope<'a> {
    fn new(kind: Kind, desired: &'a Desired, observed: &'a Observed) -> Scope<'a> {
        let (project, env) = (desired.project.as_str(), desired.environment.as_str());
        let mut versions: BTreeMap<&str, Vec<&SwarmSecret>> = BTreeMap::new();
        let mut unmanaged: BTreeMap<&str, &SwarmSecret> = BTreeMap::new();
        for s in &observed.secrets {
            if s.is_managed_by(project, env) {
                versions
                    .entry(s.label(labels::NAME).unwrap_or(""))
                    .or_default()
                    .push(s);
            } else if !s.has_swarmseal_labels() {
                unmanaged.entry(s.name.as_str()).or_insert(s);
            }
        }
        for list in versions.values_mut() {
            list.sort_by(by_age);
        }
        let index = observed.index();
        let adopters = unmanaged
            .iter()
            .filter(|(name, _)| desired.secrets.contains_key(**name))
            .flat_map(|(_, s)| index.users_of(&s.id))
            .map(|svc| svc.id.as_str())
            .collect();
        let mut scope = Scope {
            kind,
            desired,
            observed,
            index,
            versions,
            unmanaged,
            taken: observed
                .taken
                .iter()
                .map(|t| (t.name.as_str(), t))
                .collect(),
            adopters,
            missing: BTreeMap::new(),
        };
        scope.missing = scope.missing_references();
        scope
    }

    /// See [`Scope::missing`].
    fn missing_references(&self) -> BTreeMap<&'a str, Vec<(&'a ServiceRefs, &'a SecretRef)>> {
        let mut missing: BTreeMap<&str, Vec<_>> = BTreeMap::new();
        for svc in self.observed.services.iter() {
            let refs = svc.secrets.iter().filter(|r| r.missing);
            for r in refs {
                let Some(logical) = names::logical_of_version(&r.secret_name) else {
                    continue;
                };
                if self.is_our_service(svc) {
                    missing.entry(logical).or_default().push((svc, r));
                }
            }
        }
        missing
    }

    /// Who holds the name of a version to create, if something outside the environment
    /// does: then nothing is created and no service moves (the plan is refused).
    fn conflict(&self, created: bool, name: Option<&str>) -> Option<TakenName> {
        let name = name.filter(|_| created)?;
        self.taken.get(name).map(|t| (*t).clone())
    }

    /// True when a service uses this environment's secrets (see
    /// [`Observed::uses_environment`]) or is adopted into it by this plan: only such a
    /// service is repaired when it points at a version that no longer exists (nothing else
    /// tells whose it is). An adopted service must be: the adoption updates it, and Docker
    /// refuses an update whose spec names a secret that does not exist.
    fn is_our_service(&self, svc: &ServiceRefs) -> bool {
        self.adopters.contains(svc.id.as_str())
            || self
                .index
                .uses_environment(svc, &self.desired.project, &self.desired.environment)
    }
}

/// Sorted, deduplicated service names.
pub(crate) fn names_of<'s>(services: impl IntoIterator<Item = &'s ServiceRefs>) -> Vec<String> {
    let mut names: Vec<String> = services.into_iter().map(|s| s.name.clone()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// What the first phase decided for one secret of the repository.
pub(super) struct SecretPlan<'a> {
    d: &'a DesiredSecret,
    current: Option<&'a SwarmSecret>,
    olds: Vec<&'a SwarmSecret>,
    target_name: Option<String>,
    fingerprint: Option<String>,
    change: Option<Change>,
}

/// Services re-pointed by this plan: service id -> (name, swaps).
pub(super) type Repoints<'a> = BTreeMap<&'a str, (&'a str, Vec<PlannedSwap>)>;

/// Computes the plan. Pure: same inputs, same plan.
///
/// Secrets and configs are planned by the same phases: configs through the config views
/// of both states ([`Desired::config_view`], [`Observed::config_view`]), in which they
/// stand where secrets stand. The kinds share the service updates, so that a service
/// whose secrets and configs both move is updated once, and the removal rule of each kind
/// knows every service the plan updates.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let views = (!desired.configs.is_empty() || !observed.has_no_configs())
        .then(|| (desired.config_view(), observed.config_view()));
    let mut scopes = vec![Scope::new(Kind::Secret, desired, observed)];
    if let Some((d, o)) = &views {
        scopes.push(Scope::new(Kind::Config, d, o));
    }
    let mut repoints: Repoints<'_> = BTreeMap::new();

    // Phase 1: for each secret (and config), its current version and where its services
    // must point.
    let planned: Vec<(Vec<SecretPlan<'_>>, Vec<Step>)> = scopes
        .iter()
        .map(|scope| {
            let mut steps = Vec::new();
            let plans = scope
                .desired
                .secrets
                .values()
                .map(|d| moves(scope, d, &mut repoints, &mut steps))
                .collect();
            (plans, steps)
        })
        .collect();

    // Phase 2: removals, knowing every service this plan updates.
    let mut steps = Vec::new();
    let mut changes = Vec::new();
    for (scope, (plans, own)) in scopes.iter().zip(planned) {
        removals(scope, plans, own, &repoints, &mut steps, &mut changes);
    }

    for (service_id, (service_name, swaps)) in repoints {
        steps.push(Step::Repoint {
            service_id: service_id.to_string(),
            service_name: service_name.to_string(),
            swaps,
        });
    }
    // Stable order: creates and relabels, then service updates, then removals.
    steps.sort_by_key(Step::order);
    changes.sort_by(|a, b| {
        (a.kind, &a.secret, a.action, &a.swarm_name).cmp(&(
            b.kind,
            &b.secret,
            b.action,
            &b.swarm_name,
        ))
    });
    let mut summary = Summary::default();
    for c in &changes {
        summary.add(c.action);
    }
    Plan {
        project: desired.project.clone(),
        environment: desired.environment.clone(),
        changes,
        steps,
        summary,
    }
}

/// Phase 2 for the secrets (or configs) of one scope: superseded versions, labels, and
/// what is gone from the repository; their steps into `steps`, changes into `changes`.
fn removals<'a>(
    scope: &Scope<'a>,
    plans: Vec<SecretPlan<'a>>,
    mut own: Vec<Step>,
    repoints: &Repoints<'_>,
    steps: &mut Vec<Step>,
    changes: &mut Vec<Change>,
) {
    let after = AfterUpdates::new(&scope.index, repoints, scope.kind);
    let mut own_changes = Vec::with_capacity(plans.len());
    for mut sp in plans {
        superseded(scope, &mut sp, &after, &mut own);
        relabel(scope, &sp, &mut own, &mut own_changes);
        own_changes.push(sp.change.take().unwrap_or_else(|| unchanged(scope, &sp)));
    }
    gone(scope, &after, &mut own, &mut own_changes);
    for c in &mut own_changes {
        c.kind = scope.kind;
    }
    steps.extend(own);
    changes.extend(own_changes);
}

/// Phase 1 for one secret: its current version (or the one to create), the services to
/// re-point (users of older versions, of the unmanaged original, and services of this
/// environment pointing at a version that no longer exists), and its main change.
pub(super) fn moves<'a>(
    scope: &Scope<'a>,
    d: &'a DesiredSecret,
    repoints: &mut Repoints<'a>,
    steps: &mut Vec<Step>,
) -> SecretPlan<'a> {
    let list = scope
        .versions
        .get(d.name.as_str())
        .map_or(&[][..], Vec::as_slice);
    let current = pick_current(d, list, &scope.index);
    let olds: Vec<&SwarmSecret> = list
        .iter()
        .copied()
        .filter(|v| current.is_none_or(|c| c.id != v.id))
        .collect();
    let adoptable = scope
        .unmanaged
        .get(d.name.as_str())
        .copied()
        .filter(|u| !scope.index.users_of(&u.id).is_empty());
    // Where services end up: the current version, or the one this plan creates.
    let fingerprint = d
        .fingerprint
        .clone()
        .or_else(|| current.and_then(|c| c.label(labels::FINGERPRINT).map(String::from)));
    let target_name = match (current, &d.fingerprint) {
        (Some(c), _) => Some(c.name.clone()),
        (None, Some(fp)) => Some(names::swarm_name(&d.name, fp)),
        (None, None) => None,
    };
    let unverified = current.is_none() && d.fingerprint.is_none();

    let (from, missing) = references_to_move(scope, d, &olds, adoptable);
    let moved_services = names_of(from.iter().map(|(s, ..)| *s));
    let mut replaces: Vec<String> = from.iter().map(|(_, _, n)| n.clone()).collect();
    replaces.sort();
    replaces.dedup();
    let created = current.is_none();
    let conflict = scope.conflict(created, target_name.as_deref());
    let mounts = match (&target_name, &conflict) {
        (Some(new_name), None) => plan_swaps(scope.kind, d, &from, new_name, repoints),
        _ => Vec::new(),
    };
    if created && conflict.is_none() {
        if let (Some(fp), Some(name)) = (&d.fingerprint, &target_name) {
            steps.push(Step::Create {
                secret: d.name.clone(),
                swarm_name: name.clone(),
                fingerprint: fp.clone(),
                labels: managed_labels(scope.desired, d, fp),
                kind: scope.kind,
            });
        }
    }
    let action = main_action(Moving {
        index: &scope.index,
        created,
        olds: &olds,
        adoptable,
        moving: !from.is_empty(),
        missing: !missing.is_empty(),
        unverified,
    });
    let change = action.map(|(action, reason)| Change {
        services: moved_services,
        replaces,
        unverified,
        mounts,
        conflict: conflict.clone(),
        diff: content_diff(scope, d, &olds, action),
        ..Change::new(action, &d.name, target_name.clone(), reason)
    });
    SecretPlan {
        d,
        current,
        olds,
        target_name,
        fingerprint,
        change,
    }
}

/// The diff of a plain config's content for its change ([`Change::diff`]): from nothing
/// for a new config; from the version services use (else the newest superseded one) when
/// it was applied from a plain file too. Never for secrets or encrypted configs.
fn content_diff(
    scope: &Scope<'_>,
    d: &DesiredSecret,
    olds: &[&SwarmSecret],
    action: Action,
) -> Option<String> {
    let new = d.plain.as_deref().filter(|_| scope.kind == Kind::Config)?;
    let old: &[u8] = match action {
        Action::Create => &[],
        Action::Rotate => {
            let used = olds
                .iter()
                .rev()
                .find(|v| !scope.index.users_of(&v.id).is_empty());
            let old = used.or(olds.last())?;
            scope.observed.configs.plain.get(&old.id)?
        }
        _ => return None,
    };
    Some(diff::unified(&d.name, old, new))
}

/// A reference to move: (service, old secret id, old Swarm name).
type From<'a> = (&'a ServiceRefs, String, String);

/// Every reference of a secret to move: users of older versions and of the unmanaged
/// original, and services of this environment pointing at a version that no longer
/// exists (returned apart too, by name).
fn references_to_move<'a>(
    scope: &Scope<'a>,
    d: &DesiredSecret,
    olds: &[&'a SwarmSecret],
    adoptable: Option<&'a SwarmSecret>,
) -> (Vec<From<'a>>, Vec<String>) {
    let mut from: Vec<From<'a>> = Vec::new();
    for old in olds.iter().copied().chain(adoptable) {
        for svc in scope.index.users_of(&old.id) {
            from.push((svc, old.id.clone(), old.name.clone()));
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for (svc, r) in scope.missing.get(d.name.as_str()).into_iter().flatten() {
        from.push((svc, r.secret_id.clone(), r.secret_name.clone()));
        missing.push(r.secret_name.clone());
    }
    (from, missing)
}

/// Adds the swaps that move `from` to `new_name` to each service's update, with the
/// mount settings (target, uid, gid, mode) the manifest changes; returns those changes.
fn plan_swaps<'a>(
    kind: Kind,
    d: &DesiredSecret,
    from: &[From<'a>],
    new_name: &str,
    repoints: &mut Repoints<'a>,
) -> Vec<MountChange> {
    let mut mounts: Vec<MountChange> = Vec::new();
    for (svc, old_id, old_name) in from {
        let entry = repoints
            .entry(svc.id.as_str())
            .or_insert_with(|| (svc.name.as_str(), Vec::new()));
        // Docker refuses two mounts at one target: the manifest's target goes to a
        // reference only where no other mount of the service is there (a service that
        // mounts the secret twice keeps its second mount where it is).
        let mut taken: BTreeSet<String> = svc.secrets.iter().map(|r| r.target.clone()).collect();
        taken.extend(entry.1.iter().filter_map(|s| s.target.clone()));
        for r in svc.secrets.iter().filter(|r| &r.secret_id == old_id) {
            let target = d
                .target
                .clone()
                .filter(|t| *t != r.target && !taken.contains(t));
            if let Some(t) = &target {
                taken.insert(t.clone());
            }
            let swap = PlannedSwap {
                old_id: old_id.clone(),
                old_name: old_name.clone(),
                old_target: r.target.clone(),
                new_name: new_name.to_string(),
                target,
                uid: d.uid.clone().filter(|u| *u != r.uid),
                gid: d.gid.clone().filter(|g| *g != r.gid),
                mode: d.mode.filter(|m| *m != r.mode),
                kind,
            };
            note_mounts(&svc.name, r, &swap, &mut mounts);
            if !entry.1.contains(&swap) {
                entry.1.push(swap);
            }
        }
    }
    mounts
}

/// What [`main_action`] decides from.
struct Moving<'o> {
    index: &'o ObservedIndex<'o>,
    /// No version holds the value yet: this plan creates one.
    created: bool,
    olds: &'o [&'o SwarmSecret],
    adoptable: Option<&'o SwarmSecret>,
    /// Some references move.
    moving: bool,
    /// Some references point at versions that no longer exist.
    missing: bool,
    unverified: bool,
}

/// The main change of a secret, if any.
fn main_action(m: Moving<'_>) -> Option<(Action, Reason)> {
    let unverified = m.unverified;
    if m.created {
        return Some(if !m.olds.is_empty() {
            (Action::Rotate, Reason::ValueChanged { unverified })
        } else if m.adoptable.is_some() {
            (Action::Adopt, Reason::AdoptUnmanaged)
        } else {
            (Action::Create, Reason::NotOnSwarm { unverified })
        });
    }
    if !m.moving {
        return None;
    }
    Some(if m.missing {
        (Action::Repair, Reason::VersionMissing)
    } else if m.adoptable.is_some() && m.olds.iter().all(|o| m.index.users_of(&o.id).is_empty()) {
        (Action::Adopt, Reason::StillOnUnmanaged)
    } else {
        (Action::Repair, Reason::RolledBack)
    })
}

/// Records the mount settings a swap changes.
pub(super) fn note_mounts(
    service: &str,
    r: &SecretRef,
    swap: &PlannedSwap,
    mounts: &mut Vec<MountChange>,
) {
    let mut note = |setting: &str, from: String, to: Option<String>| {
        if let Some(to) = to {
            let m = MountChange {
                service: service.to_string(),
                setting: setting.into(),
                from,
                to,
            };
            if !mounts.contains(&m) {
                mounts.push(m);
            }
        }
    };
    note("target", r.target.clone(), swap.target.clone());
    note("uid", r.uid.clone(), swap.uid.clone());
    note("gid", r.gid.clone(), swap.gid.clone());
    note(
        "mode",
        format!("{:04o}", r.mode),
        swap.mode.map(|m| format!("{m:04o}")),
    );
}

/// Which secrets the services reference once this plan's updates are done: for a
/// re-pointed service, its current references minus those swapped away (its previous
/// spec becomes its current one); for the others, as they are.
pub(super) struct AfterUpdates<'a> {
    index: &'a ObservedIndex<'a>,
    /// Services whose update or rollback is in progress or paused.
    in_flight: Vec<&'a ServiceRefs>,
    /// Re-pointed service id -> the secret IDs it is moved off.
    moved: BTreeMap<String, BTreeSet<String>>,
}

/// Where a version stands once this plan's updates are done.
pub(super) enum Standing {
    /// A service's current spec will still reference it.
    InUse(Vec<String>),
    /// Only previous specs will reference it.
    Rollback(Vec<String>),
    /// Free once these services (id, name) have converged: this plan updates them and
    /// only their previous specs reference it now, or an update of theirs that involves
    /// the secret is in progress.
    AfterUpdate(Vec<(String, String)>),
    Free,
}

impl<'a> AfterUpdates<'a> {
    /// For the versions of `kind`: every service this plan updates is here (its current
    /// spec becomes its previous one, whatever kind of reference the update swaps), with
    /// the references of `kind` it is moved off.
    fn new(index: &'a ObservedIndex<'a>, repoints: &Repoints<'_>, kind: Kind) -> AfterUpdates<'a> {
        let moved = repoints
            .iter()
            .map(|(id, (_, swaps))| {
                let off = swaps
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| s.old_id.clone())
                    .collect();
                (id.to_string(), off)
            })
            .collect();
        let in_flight = index
            .observed
            .services
            .iter()
            .filter(|s| s.in_flight())
            .collect();
        AfterUpdates {
            index,
            in_flight,
            moved,
        }
    }

    /// Where version `id` (one of `siblings`, the versions of one secret) stands.
    fn standing(&self, id: &str, siblings: &[&SwarmSecret]) -> Standing {
        let mut in_use = Vec::new();
        let mut rollback = Vec::new();
        // Services in flight that hold a version of the secret may still run tasks with
        // any of them.
        let mut after_update: Vec<&ServiceRefs> = self
            .in_flight
            .iter()
            .copied()
            .filter(|s| siblings.iter().any(|v| s.holds(&v.id)))
            .collect();
        for &svc in self.index.holders_of(id) {
            let current = svc.secrets.iter().any(|r| r.secret_id == id);
            let previous = svc.previous.iter().any(|r| r.secret_id == id);
            match self.moved.get(svc.id.as_str()) {
                Some(off) => {
                    // Updated by this plan: its current spec becomes its previous one.
                    if current && !off.contains(id) {
                        in_use.push(svc);
                    } else if current {
                        rollback.push(svc);
                    } else if previous {
                        after_update.push(svc);
                    }
                }
                None => {
                    if current {
                        in_use.push(svc);
                    } else if previous {
                        rollback.push(svc);
                    }
                }
            }
        }
        if !in_use.is_empty() {
            Standing::InUse(names_of(in_use))
        } else if !rollback.is_empty() {
            Standing::Rollback(names_of(rollback))
        } else if !after_update.is_empty() {
            let mut list: Vec<(String, String)> = after_update
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect();
            list.sort();
            list.dedup();
            Standing::AfterUpdate(list)
        } else {
            Standing::Free
        }
    }
}

/// Phase 2 for one secret: its superseded versions are removed, kept (rollback, in
/// flight, `keep_versions`) or removed once this plan's updates have converged.
pub(super) fn superseded(
    scope: &Scope<'_>,
    sp: &mut SecretPlan<'_>,
    after: &AfterUpdates<'_>,
    steps: &mut Vec<Step>,
) {
    if sp.target_name.is_none()
        || sp.olds.is_empty()
        || sp.change.as_ref().is_some_and(|c| c.conflict.is_some())
    {
        // Unverified: where services end up is unknown; or nothing is superseded; or the
        // new version cannot be created: nothing goes.
        return;
    }
    let siblings: Vec<&SwarmSecret> = sp.olds.iter().copied().chain(sp.current).collect();
    // Duplicates of the current value (left by a race) are never worth keeping.
    let is_duplicate = |v: &SwarmSecret| {
        sp.fingerprint.is_some() && v.label(labels::FINGERPRINT) == sp.fingerprint.as_deref()
    };
    let mut removable: Vec<(&SwarmSecret, Vec<(String, String)>)> = Vec::new();
    let mut kept: Vec<Keep> = Vec::new();
    for v in sp.olds.iter().copied() {
        match after.standing(&v.id, &siblings) {
            Standing::InUse(_) => {} // a reference this plan does not move (cannot happen)
            Standing::Rollback(services) => kept.push(Keep {
                swarm_name: v.name.clone(),
                why: KeepWhy::Rollback,
                services,
            }),
            Standing::AfterUpdate(services) => removable.push((v, services)),
            Standing::Free => removable.push((v, Vec::new())),
        }
    }
    // keep_versions: the newest superseded versions that would otherwise go.
    let keep = scope.desired.keep_versions as usize;
    let candidates: Vec<&SwarmSecret> = removable
        .iter()
        .map(|(v, _)| *v)
        .filter(|v| !is_duplicate(v))
        .collect();
    let keep_from = candidates.len().saturating_sub(keep);
    let kept_by_count: BTreeSet<&str> = candidates[keep_from..]
        .iter()
        .map(|v| v.id.as_str())
        .collect();
    let mut removes = Vec::new();
    for (v, waits) in removable {
        if kept_by_count.contains(v.id.as_str()) {
            kept.push(Keep {
                swarm_name: v.name.clone(),
                why: KeepWhy::KeepVersions,
                services: Vec::new(),
            });
            continue;
        }
        if !waits.is_empty() {
            kept.push(Keep {
                swarm_name: v.name.clone(),
                why: KeepWhy::AfterUpdate,
                services: waits.iter().map(|(_, n)| n.clone()).collect(),
            });
        } else {
            removes.push(v.name.clone());
        }
        steps.push(Step::Remove {
            secret: sp.d.name.clone(),
            secret_id: v.id.clone(),
            swarm_name: v.name.clone(),
            after: waits.into_iter().map(|(id, _)| id).collect(),
            kind: scope.kind,
        });
    }
    kept.sort_by(|a, b| (&a.swarm_name, a.why).cmp(&(&b.swarm_name, b.why)));
    attach_removals(scope, sp, removes, kept);
}

/// Puts a secret's removals and kept versions on its change; when nothing else changes,
/// the removals are the change (or, with kept versions only, the unchanged entry).
fn attach_removals(
    scope: &Scope<'_>,
    sp: &mut SecretPlan<'_>,
    removes: Vec<String>,
    kept: Vec<Keep>,
) {
    match &mut sp.change {
        Some(change) => {
            change.removes = removes;
            change.kept = kept;
        }
        None if !removes.is_empty() || kept.iter().any(|k| k.why == KeepWhy::AfterUpdate) => {
            // Nothing else changes for this secret: the removals are the change.
            let mut c = Change::new(
                Action::Remove,
                &sp.d.name,
                removes
                    .first()
                    .cloned()
                    .or_else(|| kept.first().map(|k| k.swarm_name.clone())),
                Reason::SupersededUnused,
            );
            c.removes = removes;
            c.kept = kept;
            sp.change = Some(c);
        }
        None => {
            // Kept versions alone are no change; the unchanged entry carries them.
            sp.change = None;
            if !kept.is_empty() {
                let mut c = unchanged(scope, sp);
                c.kept = kept;
                sp.change = Some(c);
            }
        }
    }
}

/// Phase 2, labels: the current version's labels as the manifest wants them.
pub(super) fn relabel(
    scope: &Scope<'_>,
    sp: &SecretPlan<'_>,
    steps: &mut Vec<Step>,
    changes: &mut Vec<Change>,
) {
    let (Some(c), Some(fp)) = (sp.current, &sp.fingerprint) else {
        return;
    };
    if has_managed_labels(scope.desired, sp.d, fp, &c.labels) {
        return;
    }
    let want = managed_labels(scope.desired, sp.d, fp);
    let mut differing: Vec<String> = want
        .keys()
        .chain(c.labels.keys())
        .filter(|k| want.get(*k) != c.labels.get(*k))
        .cloned()
        .collect();
    differing.sort();
    differing.dedup();
    steps.push(Step::Relabel {
        secret: sp.d.name.clone(),
        secret_id: c.id.clone(),
        swarm_name: c.name.clone(),
        labels: want,
        kind: scope.kind,
    });
    changes.push(Change::new(
        Action::Relabel,
        &sp.d.name,
        Some(c.name.clone()),
        Reason::LabelsDiffer { labels: differing },
    ));
}

/// The entry of a secret with nothing to do.
pub(super) fn unchanged(scope: &Scope<'_>, sp: &SecretPlan<'_>) -> Change {
    let keep = scope.desired.keep_versions as usize;
    let reason = if keep > 0 && !sp.olds.is_empty() {
        Reason::OlderKept {
            count: sp.olds.len(),
        }
    } else {
        Reason::UpToDate
    };
    Change {
        services: sp
            .current
            .map(|c| names_of(scope.index.users_of(&c.id).iter().copied()))
            .unwrap_or_default(),
        unverified: false,
        ..Change::new(
            Action::Unchanged,
            &sp.d.name,
            sp.target_name.clone(),
            reason,
        )
    }
}

/// The entry of a version of a secret gone from the repository that stays for now.
pub(super) fn kept_while(
    v: &SwarmSecret,
    why: KeepWhy,
    services: Vec<String>,
    logical: &str,
) -> Change {
    Change {
        kept: vec![Keep {
            swarm_name: v.name.clone(),
            why,
            services,
        }],
        ..Change::new(
            Action::Unchanged,
            logical,
            Some(v.name.clone()),
            Reason::GoneKept,
        )
    }
}

/// Phase 2, managed versions of secrets gone from the repository: removed, blocked (a
/// service uses one: never forced) or kept.
pub(super) fn gone(
    scope: &Scope<'_>,
    after: &AfterUpdates<'_>,
    steps: &mut Vec<Step>,
    changes: &mut Vec<Change>,
) {
    for (name, list) in &scope.versions {
        if scope.desired.secrets.contains_key(*name) {
            continue;
        }
        for v in list {
            let logical = if name.is_empty() {
                v.name.clone()
            } else {
                name.to_string()
            };
            let mut remove = |after: Vec<(String, String)>, kept: Vec<Keep>| {
                steps.push(Step::Remove {
                    secret: logical.clone(),
                    secret_id: v.id.clone(),
                    swarm_name: v.name.clone(),
                    after: after.into_iter().map(|(id, _)| id).collect(),
                    kind: scope.kind,
                });
                let mut c =
                    Change::new(Action::Remove, &logical, Some(v.name.clone()), Reason::Gone);
                if kept.is_empty() {
                    c.removes = vec![v.name.clone()];
                }
                c.kept = kept;
                c
            };
            let change = match after.standing(&v.id, list) {
                Standing::InUse(services) => Change {
                    services,
                    ..Change::new(
                        Action::Blocked,
                        &logical,
                        Some(v.name.clone()),
                        Reason::GoneInUse,
                    )
                },
                Standing::Free => remove(Vec::new(), Vec::new()),
                Standing::AfterUpdate(waits) => {
                    let keep = Keep {
                        swarm_name: v.name.clone(),
                        why: KeepWhy::AfterUpdate,
                        services: waits.iter().map(|(_, n)| n.clone()).collect(),
                    };
                    remove(waits, vec![keep])
                }
                Standing::Rollback(services) => {
                    kept_while(v, KeepWhy::Rollback, services, &logical)
                }
            };
            changes.push(change);
        }
    }
}

/// The Swarm name of the version that holds each desired secret's value, or `None` when
/// no version does yet (or, without an identity, when the file changed since).
pub fn current_names(
    kind: Kind,
    desired: &Desired,
    observed: &Observed,
) -> BTreeMap<String, Option<String>> {
    if kind == Kind::Config {
        return current_names(
            Kind::Secret,
            &desired.config_view(),
            &observed.config_view(),
        );
    }
    let scope = Scope::new(kind, desired, observed);
    desired
        .secrets
        .values()
        .map(|d| {
            let list = scope
                .versions
                .get(d.name.as_str())
                .map_or(&[][..], Vec::as_slice);
            let current = pick_current(d, list, &scope.index).map(|s| s.name.clone());
            (d.name.clone(), current)
        })
        .collect()
}

/// The version that already holds the desired value: by fingerprint when it is known,
/// else by `source` (the file is unchanged since that version was applied). When several
/// match (a race), the one services use, else the oldest.
pub(super) fn pick_current<'a>(
    d: &DesiredSecret,
    list: &[&'a SwarmSecret],
    index: &ObservedIndex<'_>,
) -> Option<&'a SwarmSecret> {
    let mut matching = list.iter().copied().filter(|v| match &d.fingerprint {
        Some(fp) => v.label(labels::FINGERPRINT) == Some(fp.as_str()),
        None => v.label(labels::SOURCE) == Some(d.source.as_str()),
    });
    let first = matching.next()?;
    if !index.users_of(&first.id).is_empty() {
        return Some(first);
    }
    Some(
        matching
            .find(|v| !index.users_of(&v.id).is_empty())
            .unwrap_or(first),
    )
}
