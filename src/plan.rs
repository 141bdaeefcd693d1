//! The planner (SPEC §3): a pure function from the desired state (repository) and the
//! observed state (Swarm) to an ordered plan. No I/O.
//!
//! A plan has two faces: `changes`, one entry per thing a person cares about (this
//! secret is created, rotated, adopted...), and `steps`, the ordered operations the
//! executor carries out: creates and label updates first, then one update per service
//! (whatever number of its secrets rotate), then removals.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{labels, managed_labels, Desired, DesiredSecret, Observed, SwarmSecret};
use crate::names;

/// What happens to a secret (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Rotate,
    Adopt,
    Relabel,
    Remove,
    Blocked,
    Unchanged,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Create,
        Action::Rotate,
        Action::Adopt,
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
            Action::Relabel => "relabel",
            Action::Remove => "remove",
            Action::Blocked => "blocked",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One entry of the plan as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub action: Action,
    /// Logical name.
    pub secret: String,
    /// The Swarm name the change is about: the new version for create/rotate/adopt
    /// (`None` when unverified: the fingerprint is unknown without an identity), the
    /// version itself for relabel/remove/blocked/unchanged.
    pub swarm_name: Option<String>,
    /// Services re-pointed (rotate, adopt) or in the way (blocked).
    pub services: Vec<String>,
    /// Older versions (or the adopted unmanaged secret) the change moves services away from.
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
    /// Remove a version no service uses.
    Remove {
        secret: String,
        secret_id: String,
        swarm_name: String,
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
}

/// Orders versions oldest first (by creation time, then name, then ID).
fn by_age(a: &&SwarmSecret, b: &&SwarmSecret) -> std::cmp::Ordering {
    (&a.created_at, &a.name, &a.id).cmp(&(&b.created_at, &b.name, &b.id))
}

/// Computes the plan. Pure: same inputs, same plan.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let project = desired.project.as_str();
    let env = desired.environment.as_str();

    // Managed versions of this scope, by logical name; unmanaged secrets by name.
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
    let users = |id: &str| -> Vec<String> {
        let mut names: Vec<String> = observed
            .users_of(id)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    };

    let mut changes = Vec::new();
    let mut steps = Vec::new();
    // service id -> (name, swaps)
    let mut repoints: BTreeMap<&str, (&str, Vec<PlannedSwap>)> = BTreeMap::new();

    for d in desired.secrets.values() {
        let list = versions.get(d.name.as_str()).cloned().unwrap_or_default();
        let current = pick_current(d, &list, observed);
        let olds: Vec<&SwarmSecret> = list
            .iter()
            .copied()
            .filter(|v| current.is_none_or(|c| c.id != v.id))
            .collect();
        let adoptable = unmanaged
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

        // Services to move: users of older versions, and of the unmanaged original.
        let mut moved_from: Vec<&SwarmSecret> = olds
            .iter()
            .copied()
            .filter(|v| !observed.users_of(&v.id).is_empty())
            .collect();
        if let Some(u) = adoptable {
            moved_from.push(u);
        }
        let mut moved_services: BTreeSet<String> = BTreeSet::new();
        let mut mounts: Vec<MountChange> = Vec::new();
        if let Some(new_name) = &target_name {
            for old in &moved_from {
                for service in observed.users_of(&old.id) {
                    moved_services.insert(service.name.clone());
                    let entry = repoints
                        .entry(service.id.as_str())
                        .or_insert_with(|| (service.name.as_str(), Vec::new()));
                    for r in service.secrets.iter().filter(|r| r.secret_id == old.id) {
                        let swap = PlannedSwap {
                            old_id: old.id.clone(),
                            old_name: old.name.clone(),
                            new_name: new_name.clone(),
                            target: d.target.clone().filter(|t| *t != r.target),
                            uid: d.uid.clone().filter(|u| *u != r.uid),
                            gid: d.gid.clone().filter(|g| *g != r.gid),
                            mode: d.mode.filter(|m| *m != r.mode),
                        };
                        let mut note = |setting: &str, from: String, to: Option<String>| {
                            if let Some(to) = to {
                                let m = MountChange {
                                    service: service.name.clone(),
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
                        if !entry.1.contains(&swap) {
                            entry.1.push(swap);
                        }
                    }
                }
            }
        } else {
            for old in &moved_from {
                moved_services.extend(users(&old.id));
            }
        }

        // Superseded versions: all olds end up unused; keep the newest `keep_versions`.
        let keep = desired.keep_versions as usize;
        // Duplicates of the current value (left by a race) are never worth keeping.
        let removable: Vec<&SwarmSecret> = if target_name.is_some() {
            let is_duplicate = |v: &SwarmSecret| {
                fingerprint.is_some() && v.label(labels::FINGERPRINT) == fingerprint.as_deref()
            };
            let superseded: Vec<&SwarmSecret> =
                olds.iter().copied().filter(|v| !is_duplicate(v)).collect();
            let n = superseded.len().saturating_sub(keep);
            let mut r: Vec<&SwarmSecret> =
                olds.iter().copied().filter(|v| is_duplicate(v)).collect();
            r.extend_from_slice(&superseded[..n]);
            r.sort_by(by_age);
            r
        } else {
            Vec::new()
        };

        let created = current.is_none();
        if created {
            if let (Some(fp), Some(name)) = (&d.fingerprint, &target_name) {
                steps.push(Step::Create {
                    secret: d.name.clone(),
                    swarm_name: name.clone(),
                    fingerprint: fp.clone(),
                    labels: managed_labels(desired, d, fp),
                });
            }
        }
        let replaces: Vec<String> = moved_from.iter().map(|s| s.name.clone()).collect();
        let removes: Vec<String> = removable.iter().map(|s| s.name.clone()).collect();
        for r in &removable {
            steps.push(Step::Remove {
                secret: d.name.clone(),
                secret_id: r.id.clone(),
                swarm_name: r.name.clone(),
            });
        }

        let main_action = if created {
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
        } else if !moved_from.is_empty() {
            if adoptable.is_some() && olds.iter().all(|o| observed.users_of(&o.id).is_empty()) {
                Some((Action::Adopt, "services still use the unmanaged secret"))
            } else {
                Some((Action::Rotate, "services still use an older version"))
            }
        } else {
            None
        };
        if let Some((action, reason)) = main_action {
            changes.push(Change {
                action,
                secret: d.name.clone(),
                swarm_name: target_name.clone(),
                services: moved_services.iter().cloned().collect(),
                replaces,
                removes: removes.clone(),
                unverified,
                reason: reason.into(),
                mounts,
            });
        } else if !removes.is_empty() {
            for r in &removable {
                changes.push(Change {
                    action: Action::Remove,
                    secret: d.name.clone(),
                    swarm_name: Some(r.name.clone()),
                    services: Vec::new(),
                    replaces: Vec::new(),
                    removes: vec![r.name.clone()],
                    unverified: false,
                    reason: "superseded version, unused".into(),
                    mounts: Vec::new(),
                });
            }
        }

        // Labels of the current version.
        if let (Some(c), Some(fp)) = (current, &fingerprint) {
            let want = managed_labels(desired, d, fp);
            if want != c.labels {
                let mut differing: Vec<String> = want
                    .keys()
                    .chain(c.labels.keys())
                    .filter(|k| want.get(*k) != c.labels.get(*k))
                    .cloned()
                    .collect();
                differing.sort();
                differing.dedup();
                steps.push(Step::Relabel {
                    secret: d.name.clone(),
                    secret_id: c.id.clone(),
                    swarm_name: c.name.clone(),
                    labels: want,
                });
                changes.push(Change {
                    action: Action::Relabel,
                    secret: d.name.clone(),
                    swarm_name: Some(c.name.clone()),
                    services: Vec::new(),
                    replaces: Vec::new(),
                    removes: Vec::new(),
                    unverified: false,
                    reason: format!("labels differ: {}", differing.join(", ")),
                    mounts: Vec::new(),
                });
            }
        }

        if !changes.iter().any(|c| c.secret == d.name) {
            changes.push(Change {
                action: Action::Unchanged,
                secret: d.name.clone(),
                swarm_name: target_name.clone(),
                services: current.map(|c| users(&c.id)).unwrap_or_default(),
                replaces: Vec::new(),
                removes: Vec::new(),
                unverified: false,
                reason: if keep > 0 && !olds.is_empty() {
                    format!("{} older version(s) kept (keep_versions)", olds.len())
                } else {
                    "up to date".into()
                },
                mounts: Vec::new(),
            });
        }
    }

    // Managed versions of secrets that are gone from the repository.
    for (name, list) in &versions {
        if desired.secrets.contains_key(*name) {
            continue;
        }
        for v in list {
            let in_use = users(&v.id);
            let logical = if name.is_empty() {
                v.name.clone()
            } else {
                name.to_string()
            };
            if in_use.is_empty() {
                steps.push(Step::Remove {
                    secret: logical.clone(),
                    secret_id: v.id.clone(),
                    swarm_name: v.name.clone(),
                });
                changes.push(Change {
                    action: Action::Remove,
                    secret: logical,
                    swarm_name: Some(v.name.clone()),
                    services: Vec::new(),
                    replaces: Vec::new(),
                    removes: vec![v.name.clone()],
                    unverified: false,
                    reason: "gone from the repository".into(),
                    mounts: Vec::new(),
                });
            } else {
                changes.push(Change {
                    action: Action::Blocked,
                    secret: logical,
                    swarm_name: Some(v.name.clone()),
                    services: in_use,
                    replaces: Vec::new(),
                    removes: Vec::new(),
                    unverified: false,
                    reason: "gone from the repository, but services still use it".into(),
                    mounts: Vec::new(),
                });
            }
        }
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
    use crate::model::{SecretRef, ServiceRefs};
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

    fn service(id: &str, refs: &[&SwarmSecret]) -> ServiceRefs {
        ServiceRefs {
            id: id.into(),
            name: format!("svc-{id}"),
            version: 10,
            secrets: refs
                .iter()
                .enumerate()
                .map(|(i, s)| SecretRef {
                    secret_id: s.id.clone(),
                    secret_name: s.name.clone(),
                    target: format!("t{i}"),
                    uid: "0".into(),
                    gid: "0".into(),
                    mode: 0o444,
                })
                .collect(),
        }
    }

    /// Carries out a plan on an in-memory Swarm, enforcing Docker's rule that a secret
    /// in use cannot be removed, and swarmseal's rule that only its own secrets are
    /// touched.
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
                        }
                    }
                }
                Step::Remove {
                    secret_id,
                    swarm_name,
                    ..
                } => {
                    if !o.users_of(secret_id).is_empty() {
                        return Err(format!("removal of {swarm_name}, which a service uses"));
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

    #[test]
    fn rotation_repoints_every_user_once_and_removes_the_old_version() {
        let old = managed("o1", "db", 1, "2024");
        let other = managed("o2", "api", 2, "2024");
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![old.clone(), other.clone()],
            services: vec![service("s1", &[&old, &other]), service("s2", &[&old])],
        };
        let d = desired(&[("db", 3), ("api", 4)], 0);
        let p = plan(&d, &observed);
        assert_eq!(p.summary.rotate, 2);
        let repoints: Vec<_> = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Repoint { .. }))
            .collect();
        assert_eq!(repoints.len(), 2, "one update per service");
        let after = execute(&observed, &p).unwrap();
        assert_eq!(after.services[0].version, 11);
        assert!(!after.secrets.iter().any(|s| s.id == "o1" || s.id == "o2"));
        assert!(!plan(&d, &after).has_changes());
    }

    #[test]
    fn adoption_leaves_the_original_alone() {
        let original = unmanaged("u1", "db");
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![original.clone()],
            services: vec![service("s1", &[&original])],
        };
        let d = desired(&[("db", 1)], 0);
        let p = plan(&d, &observed);
        assert_eq!(p.summary.adopt, 1);
        assert_eq!(p.changes[0].services, vec!["svc-s1".to_string()]);
        let after = execute(&observed, &p).unwrap();
        assert!(after.secrets.iter().any(|s| s.id == "u1"));
        assert!(!plan(&d, &after).has_changes());
    }

    #[test]
    fn removal_in_use_is_blocked() {
        let gone = managed("g1", "old", 1, "2024");
        let unused = managed("g2", "older", 1, "2024");
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![gone.clone(), unused],
            services: vec![service("s1", &[&gone])],
        };
        let p = plan(&desired(&[], 0), &observed);
        assert_eq!(p.summary.blocked, 1);
        assert_eq!(p.summary.remove, 1);
        assert_eq!(p.steps.len(), 1);
        execute(&observed, &p).unwrap();
    }

    #[test]
    fn rekey_is_a_relabel() {
        let v = managed("v1", "db", 1, "2024");
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![v],
            services: vec![],
        };
        let mut d = desired(&[("db", 1)], 0);
        d.secrets.get_mut("db").unwrap().source = "another-file-digest".into();
        let p = plan(&d, &observed);
        assert_eq!(p.summary.relabel, 1);
        assert_eq!(p.summary.rotate + p.summary.create, 0);
        assert!(p.changes[0].reason.contains(labels::SOURCE));
    }

    #[test]
    fn without_identity_changes_are_unverified() {
        let v = managed("v1", "db", 1, "2024");
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![v],
            services: vec![],
        };
        let mut d = desired(&[("db", 1), ("new", 2)], 0);
        for s in d.secrets.values_mut() {
            s.fingerprint = None;
        }
        // db's file is unchanged (same source): unchanged; new: unverified create.
        d.secrets.get_mut("db").unwrap().source = "src-db-1".into();
        let p = plan(&d, &observed);
        assert_eq!(p.summary.unchanged, 1);
        assert!(p
            .changes
            .iter()
            .any(|c| c.secret == "new" && c.unverified && c.action == Action::Create));
        d.secrets.get_mut("db").unwrap().source = "changed".into();
        let p = plan(&d, &observed);
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
        let observed = Observed {
            cluster_id: "c".into(),
            secrets: vec![v1, v2],
            services: vec![],
        };
        let d = desired(&[("db", 3)], 1);
        let after = execute(&observed, &plan(&d, &observed)).unwrap();
        let ids: BTreeSet<&str> = after.secrets.iter().map(|s| s.id.as_str()).collect();
        assert!(ids.contains("v2") && !ids.contains("v1"));
        assert!(!plan(&d, &after).has_changes() || plan(&d, &after).steps.is_empty());
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
        let services_s = proptest::collection::vec(
            proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
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
                for (i, picks) in services.iter().enumerate() {
                    if list.is_empty() {
                        break;
                    }
                    let mut refs: Vec<&SwarmSecret> = picks.iter().map(|p| p.get(&list)).collect();
                    refs.sort_by(|a, b| a.id.cmp(&b.id));
                    refs.dedup_by(|a, b| a.id == b.id);
                    svcs.push(service(&format!("s{i}"), &refs));
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
            let after = execute(&observed, &p).map_err(TestCaseError::fail)?;

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
                let superseded = after.secrets.iter().filter(|v| v.is_managed_by(P, E) && v.label(labels::NAME) == Some(s.name.as_str()) && v.label(labels::FINGERPRINT) != Some(fp.as_str())).count();
                let before = observed.secrets.iter().filter(|v| v.is_managed_by(P, E) && v.label(labels::NAME) == Some(s.name.as_str()) && v.label(labels::FINGERPRINT) != Some(fp.as_str())).count();
                prop_assert_eq!(superseded, before.min(d.keep_versions as usize), "keep_versions not honoured for {}", s.name);
            }
            // Managed secrets of removed names survive only while in use.
            for v in after.secrets.iter().filter(|v| v.is_managed_by(P, E)) {
                let name = v.label(labels::NAME).unwrap_or("");
                if !d.secrets.contains_key(name) {
                    prop_assert!(!after.users_of(&v.id).is_empty(), "unused {} kept", v.name);
                }
            }
            // Unmanaged and foreign secrets are untouched.
            for s in observed.secrets.iter().filter(|s| !s.is_managed_by(P, E)) {
                prop_assert!(after.secrets.contains(s), "{} was touched", s.name);
            }
            // Planning again changes nothing.
            let again = plan(&d, &after);
            prop_assert!(again.steps.is_empty(), "second plan has steps: {:?}", again.steps);
            prop_assert_eq!(again.summary.create + again.summary.rotate + again.summary.adopt + again.summary.relabel + again.summary.remove, 0);
        }
    }
}
