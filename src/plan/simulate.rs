//! The in-memory executor: carries out a plan on an [`Observed`] state the way the Swarm
//! would, refusing what Docker refuses. The planner's property tests run every generated
//! plan through it, and `examples/offline_plan.rs` shows it; it is the executable form of
//! the plan/apply contract (`docs/design.md#plan-and-apply`).
//!
//! Faithful to `swarm::client::repoint_service` and Docker: a reference takes the first
//! swap for its secret and target; each setting a swap leaves unset keeps the reference's
//! own value; an update must change some reference; an updated spec may not mount two
//! references at one target, nor (for a verified plan, the only kind applied) name a secret
//! that does not exist. Removals follow Docker's in-use rule and the executor's last look
//! (no current or previous spec references the secret), and only the plan's project and
//! environment may be relabelled or removed.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::state::{Kind, Observed, SecretRef, SwarmSecret, UpdateState};
use crate::plan::{Plan, PlannedSwap, Step};

/// Runs `plan` on a copy of `observed`; the error says which step Docker (or the
/// executor's own checks) would refuse, and why.
pub fn simulate(observed: &Observed, plan: &Plan) -> Result<Observed, String> {
    let mut sim = Sim {
        o: observed.clone(),
        plan,
        created: 0,
    };
    for step in &plan.steps {
        // Configs are handled as secrets, in the config view of the state.
        let config = step.kind() == Kind::Config;
        if config {
            sim.o.swap_kinds();
        }
        match step {
            Step::Create {
                swarm_name, labels, ..
            } => sim.create(swarm_name, labels)?,
            Step::Relabel {
                secret_id, labels, ..
            } => sim.relabel(secret_id, labels)?,
            Step::Repoint {
                service_id,
                service_name,
                swaps,
            } => sim.repoint(service_id, service_name, swaps)?,
            Step::Remove {
                secret_id,
                swarm_name,
                ..
            } => sim.remove(secret_id, swarm_name)?,
        }
        if config {
            sim.o.swap_kinds();
        }
    }
    Ok(sim.o)
}

/// The state as the plan's steps change it.
struct Sim<'p> {
    o: Observed,
    plan: &'p Plan,
    /// Secrets created so far (for their IDs and creation times).
    created: usize,
}

impl Sim<'_> {
    fn ours(&self, s: &SwarmSecret) -> bool {
        s.is_managed_by(&self.plan.project, &self.plan.environment)
    }

    fn create(&mut self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
        if self.o.secrets.iter().any(|s| s.name == name) {
            return Err(format!("create of existing name {name}"));
        }
        self.created += 1;
        let n = self.created;
        self.o.secrets.push(SwarmSecret {
            id: format!("new{n}"),
            name: name.to_string(),
            version: 1,
            created_at: format!("9999-{n:04}"),
            labels: labels.clone(),
        });
        Ok(())
    }

    fn relabel(&mut self, id: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
        let s = self
            .o
            .secrets
            .iter()
            .find(|s| s.id == id)
            .ok_or("relabel of an unknown secret")?;
        if !self.ours(s) {
            return Err(format!("relabel of foreign secret {}", s.name));
        }
        let s = self.o.secrets.iter_mut().find(|s| s.id == id);
        if let Some(s) = s {
            s.labels = labels.clone();
        }
        Ok(())
    }

    /// One service update: its secret and config references swapped at once, its current
    /// spec (both kinds) becoming its previous one.
    fn repoint(&mut self, id: &str, name: &str, swaps: &[PlannedSwap]) -> Result<(), String> {
        let verified = !self.plan.is_unverified();
        let ids_of = |list: &[SwarmSecret]| -> BTreeMap<String, String> {
            list.iter()
                .map(|s| (s.name.clone(), s.id.clone()))
                .collect()
        };
        let secret_ids = ids_of(&self.o.secrets);
        let config_ids = ids_of(&self.o.configs.items);
        let svc = self
            .o
            .services
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(format!("update of unknown service {name}"))?;
        let before = (svc.secrets.clone(), svc.configs.clone());
        let of = |kind: Kind| swaps.iter().filter(move |s| s.kind == kind);
        let changed = swap_refs(name, &mut svc.secrets, of(Kind::Secret), &secret_ids)?
            | swap_refs(name, &mut svc.configs, of(Kind::Config), &config_ids)?;
        if !changed {
            return Err(format!("the update of {name} swaps nothing"));
        }
        check_spec(name, &svc.secrets, &secret_ids, verified)?;
        check_spec(name, &svc.configs, &config_ids, verified)?;
        svc.version += 1;
        (svc.previous, svc.previous_configs) = before;
        svc.update = Some(UpdateState::Completed);
        Ok(())
    }

    fn remove(&mut self, id: &str, name: &str) -> Result<(), String> {
        if !self.o.users_of(id).is_empty() {
            return Err(format!("removal of {name}, which a service uses"));
        }
        if self.o.services.iter().any(|s| s.holds(id)) {
            return Err(format!(
                "removal of {name}, which a previous spec references"
            ));
        }
        let s = self
            .o
            .secrets
            .iter()
            .find(|s| s.id == id)
            .ok_or(format!("removal of unknown secret {name}"))?;
        if !self.ours(s) {
            return Err(format!("removal of foreign secret {}", s.name));
        }
        self.o.secrets.retain(|s| s.id != id);
        Ok(())
    }
}

/// Swaps the references of one kind as `swaps` say; true when one changed.
fn swap_refs<'s>(
    name: &str,
    refs: &mut [SecretRef],
    swaps: impl Iterator<Item = &'s PlannedSwap> + Clone,
    ids: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let mut changed = false;
    for r in refs.iter_mut() {
        let Some(swap) = swaps.clone().find(|s| {
            s.old_id == r.secret_id && (s.old_target.is_empty() || s.old_target == r.target)
        }) else {
            continue;
        };
        let new_id = ids
            .get(&swap.new_name)
            .ok_or(format!("update of {name} to missing {}", swap.new_name))?;
        *r = swapped(r, swap, new_id);
        changed = true;
    }
    Ok(changed)
}

/// A reference moved by `swap` to the secret `new_id`.
fn swapped(r: &SecretRef, swap: &PlannedSwap, new_id: &str) -> SecretRef {
    SecretRef {
        secret_id: new_id.to_string(),
        secret_name: swap.new_name.clone(),
        target: swap.target.clone().unwrap_or_else(|| r.target.clone()),
        uid: swap.uid.clone().unwrap_or_else(|| r.uid.clone()),
        gid: swap.gid.clone().unwrap_or_else(|| r.gid.clone()),
        mode: swap.mode.unwrap_or(r.mode),
        missing: false,
    }
}

/// What Docker checks of an updated spec: one mount per target, and (its
/// `checkSecretExistence`) every reference names an existing secret by ID and name.
fn check_spec(
    name: &str,
    refs: &[SecretRef],
    ids: &BTreeMap<String, String>,
    verified: bool,
) -> Result<(), String> {
    let mut targets = BTreeSet::new();
    for r in refs {
        let exists = ids.get(&r.secret_name).is_some_and(|id| *id == r.secret_id);
        if !exists && verified {
            return Err(format!(
                "the update of {name} keeps a reference to {}, which does not exist",
                r.secret_name
            ));
        }
        if !targets.insert(r.target.as_str()) {
            return Err(format!(
                "the update of {name} mounts two references at {}",
                r.target
            ));
        }
    }
    Ok(())
}
