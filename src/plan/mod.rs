//! The planner (SPEC §3): a pure function from the desired state (repository) and the
//! observed state (Swarm) to an ordered plan. No I/O.
//!
//! A plan has two faces: `changes`, one entry per thing a person cares about (this
//! secret is created, rotated, adopted, repaired...), and `steps`, the ordered operations
//! the executor carries out: creates and label updates first, then one update per service
//! (whatever number of its secrets change), then removals.
//!
//! It is made in phases: first, for every secret of the repository, where its services
//! must point ([`plan`] → `moves`); then, knowing every service this plan updates, which
//! superseded versions can go (`removals`), by the removal rule: a version is removed only
//! when no service references it in its current spec or in its previous spec (what a
//! rollback brings back) once this plan's updates are done, and no service that references
//! a version of the secret is updating or rolling back. A version only a previous spec
//! references that this plan's update of the service replaces is removed once that update
//! has converged (the step says `after`).

pub mod planfile;
pub mod render;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::names;
use crate::domain::state::{
    labels, managed_labels, Desired, DesiredSecret, Observed, ServiceRefs, SwarmSecret,
};
use crate::error::{Error, ErrorKind};

/// What happens to a secret (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Rotate,
    Adopt,
    Repair,
    Relabel,
    Remove,
    Blocked,
    Unchanged,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Create,
        Action::Rotate,
        Action::Adopt,
        Action::Repair,
        Action::Relabel,
        Action::Remove,
        Action::Blocked,
        Action::Unchanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Rotate => "rotate",
            Action::Adopt => "adopt",
            Action::Repair => "repair",
            Action::Relabel => "relabel",
            Action::Remove => "remove",
            Action::Blocked => "blocked",
            Action::Unchanged => "unchanged",
        }
    }
}

/// Why a superseded version stays on the Swarm for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepWhy {
    /// A service's previous spec references it (or will, once this plan moves the service
    /// off it): `docker service rollback` would bring it back. Removed by a later apply
    /// once the service has been updated again.
    Rollback,
    /// `keep_versions` in the manifest.
    KeepVersions,
    /// Removed by this apply once the named services' updates have converged: this plan
    /// updates them (their previous specs reference it until then), or an update of theirs
    /// is in progress (they may still run tasks with it). Kept if they do not converge.
    AfterUpdate,
}

/// A superseded version that this plan does not remove (yet), and which services it
/// waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    pub swarm_name: String,
    pub why: KeepWhy,
    pub services: Vec<String>,
}

/// One entry of the plan as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    /// Logical name.
    pub secret: String,
    /// The Swarm name the change is about: the new version for create/rotate/adopt
    /// (`None` when unverified: the fingerprint is unknown without an identity), the
    /// version services end up on for repair, the version itself for
    /// relabel/remove/blocked/unchanged.
    pub swarm_name: Option<String>,
    /// Services re-pointed (rotate, adopt, repair) or in the way (blocked).
    pub services: Vec<String>,
    /// Older versions (or the adopted unmanaged secret, or a version that no longer
    /// exists) the change moves services away from.
    pub replaces: Vec<String>,
    /// Superseded versions removed as part of this change.
    pub removes: Vec<String>,
    /// True when the change was inferred from the file's `source` alone (no identity).
    pub unverified: bool,
    /// Why, in a few words.
    pub reason: String,
    /// Mount settings (target, uid, gid, mode) that the re-pointed services change,
    /// because the manifest sets them otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountChange>,
    /// Superseded versions kept for now, and what they wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Keep>,
}

impl Change {
    fn new(action: Action, secret: &str, swarm_name: Option<String>, reason: &str) -> Change {
        Change {
            action,
            secret: secret.to_string(),
            swarm_name,
            services: Vec::new(),
            replaces: Vec::new(),
            removes: Vec::new(),
            unverified: false,
            reason: reason.to_string(),
            mounts: Vec::new(),
            kept: Vec::new(),
        }
    }
}

/// A mount setting a re-pointed service changes (the manifest's `target`, `uid`, `gid` or
/// `mode` differs from what the service had).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountChange {
    pub service: String,
    /// `target`, `uid`, `gid` or `mode`.
    pub setting: String,
    pub from: String,
    pub to: String,
}

/// How a service reference is re-pointed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSwap {
    pub old_id: String,
    pub old_name: String,
    /// The new version, by name (its ID is known once created).
    pub new_name: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
}

/// One operation of the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Create a version from the repository's value of `secret`.
    Create {
        secret: String,
        swarm_name: String,
        fingerprint: String,
        labels: BTreeMap<String, String>,
    },
    /// Update a version's labels in place.
    Relabel {
        secret: String,
        secret_id: String,
        swarm_name: String,
        labels: BTreeMap<String, String>,
    },
    /// One update of a service, swapping every reference that needs it.
    Repoint {
        service_id: String,
        service_name: String,
        swaps: Vec<PlannedSwap>,
    },
    /// Remove a version no service uses. With `after`, only once the updates of those
    /// services (by ID) have converged, and only if no service references it then.
    Remove {
        secret: String,
        secret_id: String,
        swarm_name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        after: Vec<String>,
    },
}

impl Step {
    fn order(&self) -> u8 {
        match self {
            Step::Create { .. } | Step::Relabel { .. } => 0,
            Step::Repoint { .. } => 1,
            Step::Remove { .. } => 2,
        }
    }
}

/// Counts of changes by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub rotate: usize,
    pub adopt: usize,
    #[serde(default)]
    pub repair: usize,
    pub relabel: usize,
    pub remove: usize,
    pub blocked: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn count(&self, action: Action) -> usize {
        match action {
            Action::Create => self.create,
            Action::Rotate => self.rotate,
            Action::Adopt => self.adopt,
            Action::Repair => self.repair,
            Action::Relabel => self.relabel,
            Action::Remove => self.remove,
            Action::Blocked => self.blocked,
            Action::Unchanged => self.unchanged,
        }
    }

    fn add(&mut self, action: Action) {
        let slot = match action {
            Action::Create => &mut self.create,
            Action::Rotate => &mut self.rotate,
            Action::Adopt => &mut self.adopt,
            Action::Repair => &mut self.repair,
            Action::Relabel => &mut self.relabel,
            Action::Remove => &mut self.remove,
            Action::Blocked => &mut self.blocked,
            Action::Unchanged => &mut self.unchanged,
        };
        *slot += 1;
    }
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub project: String,
    pub environment: String,
    /// Every secret's change, unchanged ones included, sorted by secret then action.
    pub changes: Vec<Change>,
    pub steps: Vec<Step>,
    pub summary: Summary,
}

impl Plan {
    /// "What plan accepts, apply completes": a removal that a service prevents is refused
    /// before anything changes, as `plan` refuses it.
    pub fn refuse_blocked(&self, env: &str) -> Result<(), Error> {
        let blocked: Vec<String> = self
            .blocked()
            .map(|c| {
                format!(
                    "{} ({}, used by {})",
                    c.secret,
                    c.swarm_name.clone().unwrap_or_default(),
                    c.services.join(", ")
                )
            })
            .collect();
        if blocked.is_empty() {
            return Ok(());
        }
        Err(Error::new(format!(
            "secrets gone from the repository are still used by services, so their removal is blocked: {}",
            blocked.join("; ")
        ))
.with_kind(ErrorKind::Blocked)
        .hint(format!(
            "remove them from those services first (`docker service update --secret-rm NAME SERVICE`), or put them back in the repository (`swarmseal -e {env} set NAME`); swarmseal never forces a removal"
        )))
    }

    /// True when there is anything to show: any change other than `unchanged`.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Unchanged)
    }

    /// True when some change was inferred without an identity (such a plan can be shown
    /// but not applied).
    pub fn is_unverified(&self) -> bool {
        self.changes.iter().any(|c| c.unverified)
    }

    /// The blocked removals.
    pub fn blocked(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action == Action::Blocked)
    }

    /// Every superseded version kept, with its secret.
    pub fn kept(&self) -> impl Iterator<Item = (&str, &Keep)> {
        self.changes
            .iter()
            .flat_map(|c| c.kept.iter().map(move |k| (c.secret.as_str(), k)))
    }
}

/// Orders versions oldest first (by creation time, then name, then ID).
fn by_age(a: &&SwarmSecret, b: &&SwarmSecret) -> std::cmp::Ordering {
    (&a.created_at, &a.name, &a.id).cmp(&(&b.created_at, &b.name, &b.id))
}

/// What the phases share: the observation, indexed.
struct Scope<'a> {
    desired: &'a Desired,
    observed: &'a Observed,
    /// Managed versions of this project and environment by logical name, oldest first.
    versions: BTreeMap<&'a str, Vec<&'a SwarmSecret>>,
    /// Unmanaged secrets by name.
    unmanaged: BTreeMap<&'a str, &'a SwarmSecret>,
}

impl<'a> Scope<'a> {
    fn new(desired: &'a Desired, observed: &'a Observed) -> Scope<'a> {
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
        Scope {
            desired,
            observed,
            versions,
            unmanaged,
        }
    }

    /// True when a service uses this environment's secrets (see
    /// [`Observed::uses_environment`]): only such a service is repaired when it points at a
    /// version that no longer exists (nothing else tells whose it is).
    fn is_our_service(&self, svc: &ServiceRefs) -> bool {
        self.observed
            .uses_environment(svc, &self.desired.project, &self.desired.environment)
    }
}

/// Sorted, deduplicated service names.
pub(crate) fn names_of<'s>(services: impl IntoIterator<Item = &'s ServiceRefs>) -> Vec<String> {
    services
        .into_iter()
        .map(|s| s.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// What the first phase decided for one secret of the repository.
struct SecretPlan<'a> {
    d: &'a DesiredSecret,
    current: Option<&'a SwarmSecret>,
    olds: Vec<&'a SwarmSecret>,
    target_name: Option<String>,
    fingerprint: Option<String>,
    change: Option<Change>,
}

/// Services re-pointed by this plan: service id -> (name, swaps).
type Repoints<'a> = BTreeMap<&'a str, (&'a str, Vec<PlannedSwap>)>;

/// Computes the plan. Pure: same inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let scope = Scope::new(desired, observed);
    let mut steps = Vec::new();
    let mut repoints: Repoints = BTreeMap::new();

    // Phase 1: for each secret, its current version and where its services must point.
    let mut secrets: Vec<SecretPlan> = desired
        .secrets
        .values()
        .map(|d| moves(&scope, d, &mut repoints, &mut steps))
        .collect();

    // Phase 2: removals, knowing every service this plan updates.
    let after = AfterUpdates::new(observed, &repoints);
    let mut changes = Vec::new();
    for sp in &mut secrets {
        superseded(&scope, sp, &after, &mut steps);
        relabel(&scope, sp, &mut steps, &mut changes);
        changes.push(sp.change.take().unwrap_or_else(|| unchanged(&scope, sp)));
    }
    gone(&scope, &after, &mut steps, &mut changes);

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
        (&a.secret, a.action, &a.swarm_name).cmp(&(&b.secret, b.action, &b.swarm_name))
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

/// Phase 1 for one secret: its current version (or the one to create), the services to
/// re-point (users of older versions, of the unmanaged original, and services of this
/// environment pointing at a version that no longer exists), and its main change.
fn moves<'a>(
    scope: &Scope<'a>,
    d: &'a DesiredSecret,
    repoints: &mut Repoints<'a>,
    steps: &mut Vec<Step>,
) -> SecretPlan<'a> {
    let observed = scope.observed;
    let list = scope
        .versions
        .get(d.name.as_str())
        .cloned()
        .unwrap_or_default();
    let current = pick_current(d, &list, observed);
    let olds: Vec<&SwarmSecret> = list
        .iter()
        .copied()
        .filter(|v| current.is_none_or(|c| c.id != v.id))
        .collect();
    let adoptable = scope
        .unmanaged
        .get(d.name.as_str())
        .copied()
        .filter(|u| !observed.users_of(&u.id).is_empty());
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

    // (service, old id, old name) for every reference to move.
    let mut from: Vec<(&ServiceRefs, String, String)> = Vec::new();
    for old in olds.iter().copied().chain(adoptable) {
        for svc in observed.users_of(&old.id) {
            from.push((svc, old.id.clone(), old.name.clone()));
        }
    }
    let mut missing: Vec<String> = Vec::new();
    for svc in observed.services.iter().filter(|s| scope.is_our_service(s)) {
        for r in svc
            .secrets
            .iter()
            .filter(|r| r.missing && names::is_version_name(&r.secret_name, &d.name))
        {
            from.push((svc, r.secret_id.clone(), r.secret_name.clone()));
            missing.push(r.secret_name.clone());
        }
    }
    let moved_services = names_of(from.iter().map(|(s, ..)| *s));
    let mut replaces: Vec<String> = from.iter().map(|(_, _, n)| n.clone()).collect();
    replaces.sort();
    replaces.dedup();
    let mut mounts: Vec<MountChange> = Vec::new();
    if let Some(new_name) = &target_name {
        for (svc, old_id, old_name) in &from {
            let entry = repoints
                .entry(svc.id.as_str())
                .or_insert_with(|| (svc.name.as_str(), Vec::new()));
            for r in svc.secrets.iter().filter(|r| &r.secret_id == old_id) {
                let swap = PlannedSwap {
                    old_id: old_id.clone(),
                    old_name: old_name.clone(),
                    new_name: new_name.clone(),
                    target: d.target.clone().filter(|t| *t != r.target),
                    uid: d.uid.clone().filter(|u| *u != r.uid),
                    gid: d.gid.clone().filter(|g| *g != r.gid),
                    mode: d.mode.filter(|m| *m != r.mode),
                };
                note_mounts(&svc.name, r, &swap, &mut mounts);
                if !entry.1.contains(&swap) {
                    entry.1.push(swap);
                }
            }
        }
    }

    let created = current.is_none();
    if created {
        if let (Some(fp), Some(name)) = (&d.fingerprint, &target_name) {
            steps.push(Step::Create {
                secret: d.name.clone(),
                swarm_name: name.clone(),
                fingerprint: fp.clone(),
                labels: managed_labels(scope.desired, d, fp),
            });
        }
    }
    let action = if created {
        if !olds.is_empty() {
            Some((
                Action::Rotate,
                if unverified {
                    "the file changed (unverified: no identity)"
                } else {
                    "the value changed"
                },
            ))
        } else if adoptable.is_some() {
            Some((
                Action::Adopt,
                "an unmanaged secret of this name is used by services",
            ))
        } else {
            Some((
                Action::Create,
                if unverified {
                    "not on the Swarm (unverified: no identity)"
                } else {
                    "not on the Swarm"
                },
            ))
        }
    } else if !from.is_empty() {
        if !missing.is_empty() {
            Some((
                Action::Repair,
                "services point at a version that no longer exists",
            ))
        } else if adoptable.is_some() && olds.iter().all(|o| observed.users_of(&o.id).is_empty()) {
            Some((Action::Adopt, "services still use the unmanaged secret"))
        } else {
            Some((
                Action::Repair,
                "services use an older version than the current one (rolled back?)",
            ))
        }
    } else {
        None
    };
    let change = action.map(|(action, reason)| Change {
        services: moved_services,
        replaces,
        unverified,
        mounts,
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

/// Records the mount settings a swap changes.
fn note_mounts(
    service: &str,
    r: &crate::domain::state::SecretRef,
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
struct AfterUpdates<'a> {
    observed: &'a Observed,
    /// Re-pointed service id -> the secret IDs it is moved off.
    moved: BTreeMap<String, BTreeSet<String>>,
}

/// Where a version stands once this plan's updates are done.
enum Standing {
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
    fn new(observed: &'a Observed, repoints: &Repoints<'_>) -> AfterUpdates<'a> {
        let moved = repoints
            .iter()
            .map(|(id, (_, swaps))| {
                let off = swaps.iter().map(|s| s.old_id.clone()).collect();
                (id.to_string(), off)
            })
            .collect();
        AfterUpdates { observed, moved }
    }

    /// Where version `id` (one of `siblings`, the versions of one secret) stands.
    fn standing(&self, id: &str, siblings: &[&SwarmSecret]) -> Standing {
        let mut in_use = Vec::new();
        let mut rollback = Vec::new();
        // Services in flight that hold a version of the secret may still run tasks with
        // any of them.
        let mut after_update: Vec<&ServiceRefs> = self
            .observed
            .services
            .iter()
            .filter(|s| s.in_flight() && siblings.iter().any(|v| s.holds(&v.id)))
            .collect();
        for svc in &self.observed.services {
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
fn superseded(
    scope: &Scope<'_>,
    sp: &mut SecretPlan<'_>,
    after: &AfterUpdates<'_>,
    steps: &mut Vec<Step>,
) {
    if sp.target_name.is_none() {
        // Unverified: where services end up is unknown, so nothing goes.
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
        });
    }
    kept.sort_by(|a, b| (&a.swarm_name, a.why).cmp(&(&b.swarm_name, b.why)));
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
                "superseded version, unused",
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
fn relabel(
    scope: &Scope<'_>,
    sp: &SecretPlan<'_>,
    steps: &mut Vec<Step>,
    changes: &mut Vec<Change>,
) {
    let (Some(c), Some(fp)) = (sp.current, &sp.fingerprint) else {
        return;
    };
    let want = managed_labels(scope.desired, sp.d, fp);
    if want == c.labels {
        return;
    }
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
    });
    changes.push(Change::new(
        Action::Relabel,
        &sp.d.name,
        Some(c.name.clone()),
        &format!("labels differ: {}", differing.join(", ")),
    ));
}

/// The entry of a secret with nothing to do.
fn unchanged(scope: &Scope<'_>, sp: &SecretPlan<'_>) -> Change {
    let keep = scope.desired.keep_versions as usize;
    let reason = if keep > 0 && !sp.olds.is_empty() {
        format!("{} older version(s) kept", sp.olds.len())
    } else {
        "up to date".into()
    };
    Change {
        services: sp
            .current
            .map(|c| names_of(scope.observed.users_of(&c.id)))
            .unwrap_or_default(),
        unverified: false,
        ..Change::new(
            Action::Unchanged,
            &sp.d.name,
            sp.target_name.clone(),
            &reason,
        )
    }
}

/// The entry of a version of a secret gone from the repository that stays for now.
fn kept_while(v: &SwarmSecret, why: KeepWhy, services: Vec<String>, logical: &str) -> Change {
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
            "gone from the repository; kept while a service can still run with it",
        )
    }
}

/// Phase 2, managed versions of secrets gone from the repository: removed, blocked (a
/// service uses one: never forced) or kept.
fn gone(
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
                });
                let mut c = Change::new(
                    Action::Remove,
                    &logical,
                    Some(v.name.clone()),
                    "gone from the repository",
                );
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
                        "gone from the repository, but services still use it",
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
pub fn current_names(desired: &Desired, observed: &Observed) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for d in desired.secrets.values() {
        let list: Vec<&SwarmSecret> = observed
            .secrets
            .iter()
            .filter(|s| {
                s.is_managed_by(&desired.project, &desired.environment)
                    && s.label(labels::NAME) == Some(d.name.as_str())
            })
            .collect();
        out.insert(
            d.name.clone(),
            pick_current(d, &list, observed).map(|s| s.name.clone()),
        );
    }
    out
}

/// The version that already holds the desired value: by fingerprint when it is known,
/// else by `source` (the file is unchanged since that version was applied). When several
/// match (a race), the one services use, else the oldest.
fn pick_current<'a>(
    d: &DesiredSecret,
    list: &[&'a SwarmSecret],
    observed: &Observed,
) -> Option<&'a SwarmSecret> {
    let matching: Vec<&SwarmSecret> = list
        .iter()
        .copied()
        .filter(|v| match &d.fingerprint {
            Some(fp) => v.label(labels::FINGERPRINT) == Some(fp.as_str()),
            None => v.label(labels::SOURCE) == Some(d.source.as_str()),
        })
        .collect();
    matching
        .iter()
        .copied()
        .find(|v| !observed.users_of(&v.id).is_empty())
        .or_else(|| matching.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::state::{SecretRef, ServiceRefs, UpdateState};
    use proptest::prelude::*;

    const P: &str = "shop";
    const E: &str = "prod";

    fn fp(n: u8) -> String {
        format!("{:x}", n % 16).repeat(64)
    }

    fn desired(secrets: &[(&str, u8)], keep: u32) -> Desired {
        Desired {
            project: P.into(),
            environment: E.into(),
            secrets: secrets
                .iter()
                .map(|(n, f)| {
                    (
                        n.to_string(),
                        DesiredSecret {
                            name: n.to_string(),
                            source: format!("src-{n}-{f}"),
                            fingerprint: Some(fp(*f)),
                            labels: BTreeMap::new(),
                            target: None,
                            uid: None,
                            gid: None,
                            mode: None,
                        },
                    )
                })
                .collect(),
            keep_versions: keep,
        }
    }

    fn managed(id: &str, name: &str, f: u8, created: &str) -> SwarmSecret {
        let d = desired(&[(name, f)], 0);
        SwarmSecret {
            id: id.into(),
            name: names::swarm_name(name, &fp(f)),
            version: 1,
            created_at: created.into(),
            labels: managed_labels(&d, &d.secrets[name], &fp(f)),
        }
    }

    fn unmanaged(id: &str, name: &str) -> SwarmSecret {
        SwarmSecret {
            id: id.into(),
            name: name.into(),
            version: 1,
            created_at: "2020".into(),
            labels: BTreeMap::new(),
        }
    }

    fn refs(secrets: &[&SwarmSecret]) -> Vec<SecretRef> {
        secrets
            .iter()
            .enumerate()
            .map(|(i, s)| SecretRef {
                secret_id: s.id.clone(),
                secret_name: s.name.clone(),
                target: format!("t{i}"),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o444,
                missing: false,
            })
            .collect()
    }

    fn service(id: &str, current: &[&SwarmSecret]) -> ServiceRefs {
        ServiceRefs {
            id: id.into(),
            name: format!("svc-{id}"),
            version: 10,
            secrets: refs(current),
            ..ServiceRefs::default()
        }
    }

    fn observed(secrets: &[&SwarmSecret], services: Vec<ServiceRefs>) -> Observed {
        Observed {
            cluster_id: "c".into(),
            secrets: secrets.iter().map(|s| (*s).clone()).collect(),
            services,
        }
    }

    /// True when some service references the secret in its current or previous spec.
    fn referenced(o: &Observed, id: &str) -> bool {
        o.services.iter().any(|s| s.holds(id))
    }

    /// Carries out a plan on an in-memory Swarm the way Docker and the executor do: an
    /// update makes the service's current references its previous ones (and converges at
    /// once), a secret a current spec uses cannot be removed (Docker's rule), and a removal
    /// is carried out only if no current or previous spec references the secret (the
    /// executor's last look) — a planned removal that fails that look is a planner bug and
    /// an error here. Only swarmseal's own secrets may be touched.
    fn execute(observed: &Observed, plan: &Plan) -> Result<Observed, String> {
        let mut o = observed.clone();
        let mut n = 0;
        for step in &plan.steps {
            match step {
                Step::Create {
                    swarm_name, labels, ..
                } => {
                    if o.secrets.iter().any(|s| &s.name == swarm_name) {
                        return Err(format!("create of existing name {swarm_name}"));
                    }
                    n += 1;
                    o.secrets.push(SwarmSecret {
                        id: format!("new{n}"),
                        name: swarm_name.clone(),
                        version: 1,
                        created_at: format!("9999-{n:04}"),
                        labels: labels.clone(),
                    });
                }
                Step::Relabel {
                    secret_id, labels, ..
                } => {
                    let s = o
                        .secrets
                        .iter_mut()
                        .find(|s| &s.id == secret_id)
                        .ok_or("relabel of unknown")?;
                    if !s.is_managed_by(P, E) {
                        return Err(format!("relabel of foreign secret {}", s.name));
                    }
                    s.labels = labels.clone();
                }
                Step::Repoint {
                    service_id, swaps, ..
                } => {
                    let ids: BTreeMap<String, String> = o
                        .secrets
                        .iter()
                        .map(|s| (s.name.clone(), s.id.clone()))
                        .collect();
                    let svc = o
                        .services
                        .iter_mut()
                        .find(|s| &s.id == service_id)
                        .ok_or("unknown service")?;
                    svc.version += 1;
                    svc.previous = svc.secrets.clone();
                    svc.update = Some(UpdateState::Completed);
                    for swap in swaps {
                        let new_id = ids
                            .get(&swap.new_name)
                            .ok_or(format!("repoint to missing {}", swap.new_name))?;
                        for r in svc
                            .secrets
                            .iter_mut()
                            .filter(|r| r.secret_id == swap.old_id)
                        {
                            r.secret_id = new_id.clone();
                            r.secret_name = swap.new_name.clone();
                            r.missing = false;
                        }
                    }
                }
                Step::Remove {
                    secret_id,
                    swarm_name,
                    after,
                    ..
                } => {
                    if !o.users_of(secret_id).is_empty() {
                        return Err(format!("removal of {swarm_name}, which a service uses"));
                    }
                    if referenced(&o, secret_id) {
                        return Err(format!(
                            "removal of {swarm_name}, which a previous spec references (after {after:?})"
                        ));
                    }
                    let s = o
                        .secrets
                        .iter()
                        .find(|s| &s.id == secret_id)
                        .ok_or("remove of unknown")?;
                    if !s.is_managed_by(P, E) {
                        return Err(format!("removal of foreign secret {}", s.name));
                    }
                    o.secrets.retain(|s| &s.id != secret_id);
                }
            }
        }
        Ok(o)
    }

    /// True when, at planning time, a service in flight referenced a version of `name`:
    /// the plan keeps that secret's versions until it settles.
    fn held_in_flight(o: &Observed, name: &str) -> bool {
        o.services.iter().any(|svc| {
            svc.in_flight()
                && o.secrets.iter().any(|v| {
                    v.is_managed_by(P, E) && v.label(labels::NAME) == Some(name) && svc.holds(&v.id)
                })
        })
    }

    fn kept_why(p: &Plan, name: &str) -> Option<KeepWhy> {
        p.kept()
            .find(|(_, k)| k.swarm_name == name)
            .map(|(_, k)| k.why)
    }

    #[test]
    fn rotation_repoints_every_user_once_and_keeps_the_rollback_target() {
        let old = managed("o1", "db", 1, "2024");
        let other = managed("o2", "api", 2, "2024");
        let o = observed(
            &[&old, &other],
            vec![service("s1", &[&old, &other]), service("s2", &[&old])],
        );
        let d = desired(&[("db", 3), ("api", 4)], 0);
        let p = plan(&d, &o);
        assert_eq!(p.summary.rotate, 2);
        let repoints = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Repoint { .. }))
            .count();
        assert_eq!(repoints, 2, "one update per service");
        // The old versions are what a rollback brings back: kept, and said so.
        assert_eq!(kept_why(&p, &old.name), Some(KeepWhy::Rollback));
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Remove { .. })));
        let after = execute(&o, &p).unwrap();
        assert_eq!(after.services[0].version, 11);
        assert!(after.secrets.iter().any(|s| s.id == "o1"));
        let again = plan(&d, &after);
        assert!(!again.has_changes() && again.steps.is_empty(), "{again:?}");

        // The next rotation re-points the services again: the first version leaves their
        // previous specs, and goes once their updates have converged.
        let d3 = desired(&[("db", 5), ("api", 6)], 0);
        let p3 = plan(&d3, &after);
        let conditional: Vec<&Step> = p3
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Remove { after, .. } if !after.is_empty()))
            .collect();
        assert_eq!(conditional.len(), 2, "{p3:?}");
        let after3 = execute(&after, &p3).unwrap();
        assert!(!after3.secrets.iter().any(|s| s.id == "o1" || s.id == "o2"));
        assert!(plan(&d3, &after3).steps.is_empty());
    }

    #[test]
    fn a_version_only_a_previous_spec_uses_is_kept() {
        // web was rolled back by hand earlier, or updated to drop the secret: its previous
        // spec still names v1, and Docker's own in-use check would let v1 go.
        let v1 = managed("v1", "db", 1, "2021");
        let v2 = managed("v2", "db", 2, "2022");
        let mut web = service("web", &[&v2]);
        web.previous = refs(&[&v1]);
        let o = observed(&[&v1, &v2], vec![web]);
        let d = desired(&[("db", 2)], 0);
        let p = plan(&d, &o);
        assert!(!p.has_changes(), "{p:?}");
        assert!(p.steps.is_empty());
        assert_eq!(kept_why(&p, &v1.name), Some(KeepWhy::Rollback));
        // Gone from the repository: still kept, not blocked, not removed.
        let p = plan(&desired(&[], 0), &o);
        assert_eq!(p.summary.blocked, 1, "v2 is in use");
        assert_eq!(kept_why(&p, &v1.name), Some(KeepWhy::Rollback));
        assert!(!p
            .steps
            .iter()
            .any(|s| matches!(s, Step::Remove { secret_id, .. } if secret_id == "v1")));
    }

    #[test]
    fn services_in_flight_hold_every_version_until_they_converge() {
        let v1 = managed("v1", "db", 1, "2021");
        let v2 = managed("v2", "db", 2, "2022");
        let v3 = managed("v3", "db", 3, "2023");
        let mut web = service("web", &[&v2]);
        web.update = Some(UpdateState::Updating);
        let o = observed(&[&v1, &v2, &v3], vec![web]);
        // v3 is current; web, still updating onto v2, is re-pointed; v1 goes only once web's
        // update has converged, and v2 stays as its rollback target.
        let p = plan(&desired(&[("db", 3)], 0), &o);
        assert_eq!(p.summary.repair, 1);
        assert!(p
            .steps
            .iter()
            .all(|s| !matches!(s, Step::Remove { after, .. } if after.is_empty())));
        assert_eq!(kept_why(&p, &v1.name), Some(KeepWhy::AfterUpdate));
        assert_eq!(kept_why(&p, &v2.name), Some(KeepWhy::Rollback));
        let c = p
            .changes
            .iter()
            .find(|c| c.action == Action::Repair)
            .unwrap();
        assert!(c
            .kept
            .iter()
            .all(|k| k.services == vec!["svc-web".to_string()]));
        // A service in flight that this plan does not touch: v1 waits for it too.
        let mut api = service("api", &[&v3]);
        api.previous = refs(&[&v2]);
        api.update = Some(UpdateState::Updating);
        let o = observed(&[&v1, &v2, &v3], vec![api]);
        let p = plan(&desired(&[("db", 3)], 0), &o);
        assert!(p.steps.iter().any(|s| matches!(
            s,
            Step::Remove { secret_id, after, .. } if secret_id == "v1" && after == &vec!["api".to_string()]
        )));
    }

    #[test]
    fn rolled_back_service_is_repaired() {
        // After a rollback, web is back on v1 while v2 holds the repository's value.
        let v1 = managed("v1", "db", 1, "2021");
        let v2 = managed("v2", "db", 2, "2022");
        let mut web = service("web", &[&v1]);
        web.previous = refs(&[&v2]);
        web.update = Some(UpdateState::RollbackCompleted);
        let o = observed(&[&v1, &v2], vec![web]);
        let d = desired(&[("db", 2)], 0);
        let p = plan(&d, &o);
        assert_eq!(p.summary.repair, 1, "{p:?}");
        let c = &p.changes[0];
        assert_eq!(c.swarm_name.as_deref(), Some(v2.name.as_str()));
        assert_eq!(c.services, vec!["svc-web".to_string()]);
        assert_eq!(kept_why(&p, &v1.name), Some(KeepWhy::Rollback));
        let after = execute(&o, &p).unwrap();
        assert_eq!(after.services[0].secrets[0].secret_id, "v2");
    }

    #[test]
    fn a_reference_to_a_removed_version_is_repaired() {
        // An older swarmseal removed v1, then web rolled back onto it: its tasks cannot
        // start. Its previous spec names v2, one of this environment's versions.
        let v1 = managed("v1", "db", 1, "2021");
        let v2 = managed("v2", "db", 2, "2022");
        let api = managed("a1", "api", 3, "2022");
        let mut web = service("web", &[&v1]);
        web.secrets[0].missing = true;
        web.previous = refs(&[&v2]);
        // A stranger's service with a dangling reference of the same shape is not ours.
        let mut other = service("other", &[&v1]);
        other.secrets[0].missing = true;
        let o = observed(&[&v2, &api], vec![web, other]);
        let p = plan(&desired(&[("db", 2), ("api", 3)], 0), &o);
        assert_eq!(p.summary.repair, 1, "{p:?}");
        let c = p
            .changes
            .iter()
            .find(|c| c.action == Action::Repair)
            .unwrap();
        assert_eq!(c.services, vec!["svc-web".to_string()]);
        assert_eq!(c.replaces, vec![v1.name.clone()]);
        let after = execute(&o, &p).unwrap();
        let web = after.services.iter().find(|s| s.id == "web").unwrap();
        assert_eq!(web.secrets[0].secret_id, "v2");
        assert!(!web.secrets[0].missing);
        let other = after.services.iter().find(|s| s.id == "other").unwrap();
        assert!(
            other.secrets[0].missing,
            "a service not of this environment was touched"
        );
    }

    #[test]
    fn adoption_leaves_the_original_alone() {
        let original = unmanaged("u1", "db");
        let o = observed(&[&original], vec![service("s1", &[&original])]);
        let d = desired(&[("db", 1)], 0);
        let p = plan(&d, &o);
        assert_eq!(p.summary.adopt, 1);
        assert_eq!(p.changes[0].services, vec!["svc-s1".to_string()]);
        let after = execute(&o, &p).unwrap();
        assert!(after.secrets.iter().any(|s| s.id == "u1"));
        assert!(!plan(&d, &after).has_changes());
    }

    #[test]
    fn removal_in_use_is_blocked() {
        let gone = managed("g1", "old", 1, "2024");
        let unused = managed("g2", "older", 1, "2024");
        let o = observed(&[&gone, &unused], vec![service("s1", &[&gone])]);
        let p = plan(&desired(&[], 0), &o);
        assert_eq!(p.summary.blocked, 1);
        assert_eq!(p.summary.remove, 1);
        assert_eq!(p.steps.len(), 1);
        execute(&o, &p).unwrap();
    }

    #[test]
    fn rekey_is_a_relabel() {
        let v = managed("v1", "db", 1, "2024");
        let o = observed(&[&v], vec![]);
        let mut d = desired(&[("db", 1)], 0);
        d.secrets.get_mut("db").unwrap().source = "another-file-digest".into();
        let p = plan(&d, &o);
        assert_eq!(p.summary.relabel, 1);
        assert_eq!(p.summary.rotate + p.summary.create, 0);
        assert!(p.changes[0].reason.contains(labels::SOURCE));
    }

    #[test]
    fn without_identity_changes_are_unverified() {
        let v = managed("v1", "db", 1, "2024");
        let o = observed(&[&v], vec![]);
        let mut d = desired(&[("db", 1), ("new", 2)], 0);
        for s in d.secrets.values_mut() {
            s.fingerprint = None;
        }
        // db's file is unchanged (same source): unchanged; new: unverified create.
        d.secrets.get_mut("db").unwrap().source = "src-db-1".into();
        let p = plan(&d, &o);
        assert_eq!(p.summary.unchanged, 1);
        assert!(p
            .changes
            .iter()
            .any(|c| c.secret == "new" && c.unverified && c.action == Action::Create));
        d.secrets.get_mut("db").unwrap().source = "changed".into();
        let p = plan(&d, &o);
        assert!(p
            .changes
            .iter()
            .any(|c| c.secret == "db" && c.unverified && c.action == Action::Rotate));
        assert!(p.steps.is_empty());
    }

    #[test]
    fn keep_versions_keeps_the_newest_superseded() {
        let v1 = managed("v1", "db", 1, "2021");
        let v2 = managed("v2", "db", 2, "2022");
        let o = observed(&[&v1, &v2], vec![]);
        let d = desired(&[("db", 3)], 1);
        let p = plan(&d, &o);
        assert_eq!(kept_why(&p, &v2.name), Some(KeepWhy::KeepVersions));
        let after = execute(&o, &p).unwrap();
        let ids: BTreeSet<&str> = after.secrets.iter().map(|s| s.id.as_str()).collect();
        assert!(ids.contains("v2") && !ids.contains("v1"));
        assert!(plan(&d, &after).steps.is_empty());
    }

    fn arb_case() -> impl Strategy<Value = (Desired, Observed)> {
        let names = ["a", "b", "c", "d"];
        let desired_s = (
            proptest::collection::btree_map(0usize..4, 0u8..4, 0..4),
            0u32..3,
            any::<bool>(),
        );
        // (name idx, fingerprint, kind: 0 managed / 1 unmanaged / 2 other project / 3 other env, stale labels)
        let secrets_s =
            proptest::collection::vec((0usize..4, 0u8..4, 0u8..4, any::<bool>()), 0..10);
        // Per service: current references, previous references, update state.
        let services_s = proptest::collection::vec(
            (
                proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
                0u8..8,
            ),
            0..4,
        );
        (desired_s, secrets_s, services_s).prop_map(
            move |((want, keep, labelled), secrets, services)| {
                let pairs: Vec<(&str, u8)> = want.iter().map(|(i, f)| (names[*i], *f)).collect();
                let mut d = desired(&pairs, keep);
                if labelled {
                    for s in d.secrets.values_mut() {
                        s.labels.insert("team".into(), "db".into());
                    }
                }
                let mut list: Vec<SwarmSecret> = Vec::new();
                for (i, (ni, f, kind, stale)) in secrets.iter().enumerate() {
                    let name = names[*ni];
                    let id = format!("x{i}");
                    let created = format!("2020-{i:04}");
                    let mut s = match kind {
                        1 => unmanaged(&id, name),
                        _ => managed(&id, name, *f, &created),
                    };
                    s.name = format!("{}-{i}", s.name);
                    if *kind == 1 {
                        s.name = name.to_string();
                    }
                    if *kind == 2 {
                        s.labels.insert(labels::PROJECT.into(), "other".into());
                    }
                    if *kind == 3 {
                        s.labels
                            .insert(labels::ENVIRONMENT.into(), "staging".into());
                    }
                    if *stale {
                        s.labels.insert(labels::SOURCE.into(), "stale".into());
                    }
                    if list.iter().any(|o| o.name == s.name) {
                        continue;
                    }
                    list.push(s);
                }
                let mut svcs = Vec::new();
                for (i, (current, previous, state)) in services.iter().enumerate() {
                    if list.is_empty() {
                        break;
                    }
                    let pick = |picks: &Vec<prop::sample::Index>| {
                        let mut r: Vec<&SwarmSecret> = picks.iter().map(|p| p.get(&list)).collect();
                        r.sort_by(|a, b| a.id.cmp(&b.id));
                        r.dedup_by(|a, b| a.id == b.id);
                        r
                    };
                    let mut svc = service(&format!("s{i}"), &pick(current));
                    svc.previous = refs(&pick(previous));
                    svc.update = match state {
                        0 => Some(UpdateState::Updating),
                        1 => Some(UpdateState::RollbackCompleted),
                        2 => Some(UpdateState::Completed),
                        _ => None,
                    };
                    svcs.push(svc);
                }
                (
                    d,
                    Observed {
                        cluster_id: "c".into(),
                        secrets: list,
                        services: svcs,
                    },
                )
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn executing_a_plan_reaches_the_desired_state((d, observed) in arb_case()) {
            let p = plan(&d, &observed);
            // The executor's checks (Docker's in-use rule, previous specs, scope) all hold.
            let after = execute(&observed, &p).map_err(TestCaseError::fail)?;

            // No service, in its current or previous spec, references a secret that the
            // plan removed: a rollback never strands it.
            for svc in &after.services {
                for r in svc.secrets.iter().chain(&svc.previous) {
                    let existed = observed.secrets.iter().any(|s| s.id == r.secret_id);
                    let exists = after.secrets.iter().any(|s| s.id == r.secret_id);
                    prop_assert!(!existed || exists, "{} references removed {}", svc.name, r.secret_name);
                }
            }
            // Every desired secret has a version with its value and labels, and every
            // service that used any version of it (or the unmanaged original) now uses that.
            for s in d.secrets.values() {
                let fp = s.fingerprint.clone().unwrap();
                let want = managed_labels(&d, s, &fp);
                let current: Vec<&SwarmSecret> = after.secrets.iter().filter(|v| v.is_managed_by(P, E) && v.label(labels::FINGERPRINT) == Some(fp.as_str()) && v.label(labels::NAME) == Some(s.name.as_str())).collect();
                prop_assert!(current.iter().any(|v| v.labels == want), "no current version of {}", s.name);
                for svc in &after.services {
                    for r in &svc.secrets {
                        let Some(sec) = after.secrets.iter().find(|x| x.id == r.secret_id) else { continue };
                        let of_this = (sec.is_managed_by(P, E) && sec.label(labels::NAME) == Some(s.name.as_str()))
                            || (!sec.has_swarmseal_labels() && sec.name == s.name);
                        prop_assert!(!of_this || sec.label(labels::FINGERPRINT) == Some(fp.as_str()),
                            "{} still uses an old version of {}", svc.name, s.name);
                    }
                }
                // What stays of the superseded versions: those a service can still run
                // with, those kept while one is in flight, and at most keep_versions more.
                let in_flight = held_in_flight(&observed, &s.name);
                let idle_superseded = after.secrets.iter().filter(|v| v.is_managed_by(P, E) && v.label(labels::NAME) == Some(s.name.as_str()) && v.label(labels::FINGERPRINT) != Some(fp.as_str()) && !referenced(&after, &v.id)).count();
                prop_assert!(in_flight || idle_superseded <= d.keep_versions as usize,
                    "{idle_superseded} unreferenced superseded versions of {} kept (keep_versions {})", s.name, d.keep_versions);
            }
            // Managed secrets of removed names survive only while a service references
            // them or one in flight holds their secret.
            for v in after.secrets.iter().filter(|v| v.is_managed_by(P, E)) {
                let name = v.label(labels::NAME).unwrap_or("");
                if !d.secrets.contains_key(name) {
                    let held = referenced(&after, &v.id) || held_in_flight(&observed, name);
                    prop_assert!(held, "unused {} kept", v.name);
                }
            }
            // Applying twice is a no-op: the second plan has nothing to carry out (unless a
            // service was in flight: what it held goes once it has settled).
            if !observed.services.iter().any(|svc| svc.in_flight()) {
                let again = plan(&d, &after);
                prop_assert!(again.steps.is_empty(), "second plan still has steps: {:?}", again.steps);
                prop_assert_eq!(again.summary.create + again.summary.rotate + again.summary.adopt + again.summary.repair + again.summary.relabel + again.summary.remove, 0);
            }
            // Unmanaged and foreign secrets are untouched.
            for s in observed.secrets.iter().filter(|s| !s.is_managed_by(P, E)) {
                prop_assert!(after.secrets.contains(s), "{} was touched", s.name);
            }
        }
    }
}
