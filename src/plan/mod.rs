//! The plan (see `docs/design.md#plan-and-apply`): a pure function from the desired state (repository) and the
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

pub mod conflicts;
pub mod diff;
pub mod planfile;
mod planner;
#[cfg(test)]
mod proptests;
pub mod render;
pub mod simulate;
pub mod status;

pub(crate) use planner::names_of;
pub use planner::{current_names, plan};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::names;
use crate::domain::state::{
    labels, managed_labels, Desired, DesiredSecret, Kind, Observed, ServiceRefs, SwarmSecret,
};
use crate::error::{Error, ErrorKind};

/// What happens to a secret (`docs/design.md#actions`).
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

/// Why a change is planned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    /// Not on the Swarm yet.
    NotOnSwarm { unverified: bool },
    /// The value changed (or, unverified, the file did).
    ValueChanged { unverified: bool },
    /// An unmanaged secret of this name is used by services: swarmseal takes it over.
    AdoptUnmanaged,
    /// Services still use the unmanaged secret that was adopted.
    StillOnUnmanaged,
    /// Services point at a version that no longer exists.
    VersionMissing,
    /// Services use an older version than the current one (rolled back?).
    RolledBack,
    /// A superseded version that nothing uses.
    SupersededUnused,
    /// The current version's labels differ from what the manifest wants.
    LabelsDiffer { labels: Vec<String> },
    /// Nothing to do.
    UpToDate,
    /// Nothing to do; older versions kept (keep_versions).
    OlderKept { count: usize },
    /// Gone from the repository.
    Gone,
    /// Gone from the repository, but kept while a service can still run with it.
    GoneKept,
    /// Gone from the repository, but services still use it.
    GoneInUse,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Whether it is unverified is the change's `unverified`, shown once by renderers.
            Reason::NotOnSwarm { .. } => f.write_str("not on the Swarm"),
            Reason::ValueChanged { unverified: false } => f.write_str("the value changed"),
            Reason::ValueChanged { unverified: true } => f.write_str("the file changed"),
            Reason::AdoptUnmanaged => {
                f.write_str("an unmanaged secret of this name is used by services")
            }
            Reason::StillOnUnmanaged => f.write_str("services still use the unmanaged secret"),
            Reason::VersionMissing => {
                f.write_str("services point at a version that no longer exists")
            }
            Reason::RolledBack => f.write_str(
                "services use an older version than the current one, as after a rollback",
            ),
            Reason::SupersededUnused => f.write_str("superseded and unused"),
            Reason::LabelsDiffer { labels } => write!(f, "labels differ: {}", labels.join(", ")),
            Reason::UpToDate => f.write_str("up to date"),
            Reason::OlderKept { count: 1 } => f.write_str("1 older version kept"),
            Reason::OlderKept { count } => write!(f, "{count} older versions kept"),
            Reason::Gone => f.write_str("gone from the repository"),
            Reason::GoneKept => {
                f.write_str("gone from the repository; kept while a service can still run with it")
            }
            Reason::GoneInUse => f.write_str("gone from the repository, but services still use it"),
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
    /// Why, in a few words (the text of [`Change::cause`]).
    pub reason: String,
    /// Why, as data.
    pub cause: Reason,
    /// Mount settings (target, uid, gid, mode) that the re-pointed services change,
    /// because the manifest sets them otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<MountChange>,
    /// Superseded versions kept for now, and what they wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Keep>,
    /// The secret outside this project and environment that holds the Swarm name this
    /// change would create: nothing can be created, and the plan is refused
    /// (see [`conflicts`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<crate::domain::state::TakenName>,
    /// Secret or config (left out for a secret, as in plans made before configs).
    #[serde(default, skip_serializing_if = "Kind::is_secret")]
    pub kind: Kind,
    /// For a plain config that is created or changes: the unified diff of its content
    /// (from the version services use now, or from nothing for a new config). Never for a
    /// secret or an encrypted config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl Change {
    fn new(action: Action, secret: &str, swarm_name: Option<String>, cause: Reason) -> Change {
        Change {
            action,
            secret: secret.to_string(),
            swarm_name,
            services: Vec::new(),
            replaces: Vec::new(),
            removes: Vec::new(),
            unverified: false,
            reason: cause.to_string(),
            cause,
            mounts: Vec::new(),
            kept: Vec::new(),
            conflict: None,
            kind: Kind::Secret,
            diff: None,
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
    /// The target of the reference this swap is for: a service may mount one secret
    /// several times, with different settings (empty in plans of older versions: any).
    #[serde(default)]
    pub old_target: String,
    /// The new version, by name (its ID is known once created).
    pub new_name: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
    /// A secret reference or a config reference.
    #[serde(default, skip_serializing_if = "Kind::is_secret")]
    pub kind: Kind,
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
        #[serde(default, skip_serializing_if = "Kind::is_secret")]
        kind: Kind,
    },
    /// Update a version's labels in place.
    Relabel {
        secret: String,
        secret_id: String,
        swarm_name: String,
        labels: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Kind::is_secret")]
        kind: Kind,
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
        #[serde(default, skip_serializing_if = "Kind::is_secret")]
        kind: Kind,
    },
}

impl Step {
    /// Whether it creates, relabels or removes a secret or a config (a service update
    /// says it per swap).
    pub fn kind(&self) -> Kind {
        match self {
            Step::Create { kind, .. } | Step::Relabel { kind, .. } | Step::Remove { kind, .. } => {
                *kind
            }
            Step::Repoint { .. } => Kind::Secret,
        }
    }

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
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            keep_versions: keep,
            configs: Default::default(),
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

    pub(super) fn unmanaged(id: &str, name: &str) -> SwarmSecret {
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
            taken: Vec::new(),
            configs: Default::default(),
        }
    }

    /// True when some service references the secret in its current or previous spec.
    fn referenced(o: &Observed, id: &str) -> bool {
        o.services.iter().any(|s| s.holds(id))
    }

    /// Carries out a plan on an in-memory Swarm ([`crate::plan::simulate`]).
    fn execute(observed: &Observed, plan: &Plan) -> Result<Observed, String> {
        simulate::simulate(observed, plan)
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

    /// `desired` with `configs` (name, fingerprint) as plain configs holding `content-<f>`.
    fn with_configs(mut d: Desired, configs: &[(&str, u8)]) -> Desired {
        for (name, f) in configs {
            let mut c = desired(&[(name, *f)], 0).secrets.remove(*name).unwrap();
            c.kind = Kind::Config;
            c.plain = Some(format!("content-{f}\n").into_bytes());
            d.configs.insert(name.to_string(), c);
        }
        d
    }

    /// A managed config version (the labels of a config of `desired`).
    fn managed_config(id: &str, name: &str, f: u8, created: &str) -> SwarmSecret {
        let d = with_configs(desired(&[], 0), &[(name, f)]);
        SwarmSecret {
            id: id.into(),
            name: names::swarm_name(name, &fp(f)),
            version: 1,
            created_at: created.into(),
            labels: managed_labels(&d, &d.configs[name], &fp(f)),
        }
    }

    #[test]
    fn configs_are_planned_like_secrets_and_share_service_updates() {
        // A service mounts a secret and a config; both change: one update of the service.
        let s1 = managed("s1", "db", 1, "2021");
        let c1 = managed_config("c1", "nginx.conf", 1, "2021");
        let mut web = service("web", &[&s1]);
        web.configs = refs(&[&c1]);
        web.configs[0].target = "/etc/nginx/nginx.conf".into();
        let mut o = observed(&[&s1], vec![web]);
        o.configs.items.push(c1.clone());
        o.configs.plain.insert("c1".into(), b"content-1\n".to_vec());
        let d = with_configs(desired(&[("db", 2)], 0), &[("nginx.conf", 2)]);
        let p = plan(&d, &o);
        assert_eq!(p.summary.rotate, 2, "{p:?}");
        let repoints: Vec<&Step> = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Repoint { .. }))
            .collect();
        assert_eq!(repoints.len(), 1, "one update per service: {p:?}");
        let Step::Repoint { swaps, .. } = repoints[0] else {
            unreachable!()
        };
        let kinds: BTreeSet<Kind> = swaps.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, BTreeSet::from([Kind::Secret, Kind::Config]));
        assert!(p.steps.iter().any(|s| matches!(
            s,
            Step::Create { kind: Kind::Config, labels, .. } if labels[labels::KIND] == "config"
        )));
        // The config's change: kind, and the diff from the version the service uses.
        let c = p.changes.iter().find(|c| c.kind == Kind::Config).unwrap();
        assert_eq!(c.secret, "nginx.conf");
        assert_eq!(c.services, vec!["svc-web".to_string()]);
        let diff = c.diff.as_deref().unwrap();
        assert!(diff.contains("-content-1\n+content-2\n"), "{diff}");
        let secret = p.changes.iter().find(|c| c.kind == Kind::Secret).unwrap();
        assert!(secret.diff.is_none());
        // Both old versions are what a rollback brings back: kept.
        assert_eq!(kept_why(&p, &s1.name), Some(KeepWhy::Rollback));
        assert_eq!(kept_why(&p, &c1.name), Some(KeepWhy::Rollback));

        let after = execute(&o, &p).unwrap();
        let web = &after.services[0];
        assert_eq!(
            web.configs[0].target, "/etc/nginx/nginx.conf",
            "same target"
        );
        assert_eq!(web.previous_configs[0].secret_id, "c1");
        assert_ne!(web.configs[0].secret_id, "c1");
        let again = plan(&d, &after);
        assert!(!again.has_changes() && again.steps.is_empty(), "{again:?}");
    }

    #[test]
    fn config_removals_follow_the_removal_rule_and_names_do_not_clash() {
        // A config and a secret of the same name and value: separate namespaces.
        let s = managed("s1", "app", 1, "2021");
        let c = managed_config("c1", "app", 1, "2021");
        assert_eq!(s.name, c.name);
        let mut api = service("api", &[]);
        api.configs = refs(&[&c]);
        let mut o = observed(&[&s], vec![api]);
        o.configs.items.push(c.clone());
        let d = with_configs(desired(&[("app", 1)], 0), &[("app", 1)]);
        let p = plan(&d, &o);
        assert!(!p.has_changes(), "{p:?}");
        // Gone from the repository while a service mounts it: blocked, never forced.
        let p = plan(&desired(&[("app", 1)], 0), &o);
        assert_eq!(p.summary.blocked, 1, "{p:?}");
        assert_eq!(p.blocked().next().unwrap().kind, Kind::Config);
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Remove { .. })));
        // Unused: removed, as a config.
        o.services.clear();
        let p = plan(&desired(&[("app", 1)], 0), &o);
        assert!(p.steps.iter().any(|s| matches!(
            s,
            Step::Remove { kind: Kind::Config, secret_id, .. } if secret_id == "c1"
        )));
        let after = execute(&o, &p).unwrap();
        assert!(after.configs.items.is_empty());
        assert_eq!(after.secrets.len(), 1, "the secret of that name stays");
    }

    #[test]
    fn a_secret_without_a_kind_label_is_relabelled() {
        let mut v = managed("v1", "db", 1, "2024");
        v.labels.remove(labels::KIND);
        let o = observed(&[&v], vec![service("web", &[&v])]);
        let p = plan(&desired(&[("db", 1)], 0), &o);
        assert_eq!(p.summary.relabel, 1, "{p:?}");
        assert!(p.changes[0].reason.contains(labels::KIND));
        assert!(!p.steps.iter().any(|s| matches!(s, Step::Repoint { .. })));
        let after = execute(&o, &p).unwrap();
        assert_eq!(after.secrets[0].label(labels::KIND), Some("secret"));
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
                        taken: Vec::new(),
                        configs: Default::default(),
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
