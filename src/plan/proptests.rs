//! Planner properties beyond `plan::tests` (design §4): plans made without an identity
//! ([§4.5](../../docs/design.md#unverified-plans)) and the reference settings (target, uid,
//! gid, mode) of re-pointed services ([§4.1](../../docs/design.md#actions)).
//!
//! Plans run on an in-memory Swarm whose service update behaves like
//! `swarm::client::repoint_service` and Docker: a reference takes the first swap for its
//! secret and target, each setting a swap leaves unset keeps the reference's own value, an update must
//! change some reference, and Docker refuses an updated spec that mounts two references at
//! one target or names a secret that does not exist (its `checkSecretExistence`; not
//! checked for unverified plans, which are never applied). Removals follow Docker's in-use
//! rule and the executor's last look (no current or previous spec references the secret),
//! and only this project's and environment's secrets may be relabelled or removed.
//!
//! `regressions` holds the cases of bugs found this way (now fixed).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{plan, Action, Plan, PlannedSwap, Reason, Step};
use crate::domain::names;
use crate::domain::state::{
    labels, managed_labels, Desired, DesiredSecret, Observed, SecretRef, ServiceRefs, SwarmSecret,
    UpdateState,
};

const P: &str = "shop";
const E: &str = "prod";
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn fp(n: u8) -> String {
    format!("{:x}", n % 16).repeat(64)
}

fn source(name: &str, s: u8) -> String {
    format!("src-{name}-{s}")
}

/// The manifest's settings for a secret, from small selectors (0: unset).
#[derive(Debug, Clone, Copy, Default)]
struct Settings {
    target: u8,
    uid: u8,
    gid: u8,
    mode: u8,
}

fn desired_secret(name: &str, f: u8, s: u8, verified: bool, set: Settings) -> DesiredSecret {
    let id = |sel: u8| match sel {
        0 => None,
        1 => Some("0".to_string()),
        _ => Some("1000".to_string()),
    };
    DesiredSecret {
        name: name.to_string(),
        source: source(name, s),
        fingerprint: verified.then(|| fp(f)),
        labels: BTreeMap::new(),
        // 1: the target references already use (`<name>`); 2: one none uses.
        target: match set.target {
            0 => None,
            1 => Some(name.to_string()),
            _ => Some(format!("{name}-m")),
        },
        uid: id(set.uid),
        gid: id(set.gid),
        mode: match set.mode {
            0 => None,
            1 => Some(0o444),
            _ => Some(0o400),
        },
        kind: Default::default(),
        plain: None,
    }
}

fn empty_desired() -> Desired {
    Desired {
        project: P.into(),
        environment: E.into(),
        secrets: BTreeMap::new(),
        keep_versions: 0,
        configs: Default::default(),
    }
}

/// A managed version of `name` holding value `f`, applied from file `s`.
fn managed(id: &str, name: &str, f: u8, s: u8, created: &str) -> SwarmSecret {
    let d = empty_desired();
    let ds = desired_secret(name, f, s, true, Settings::default());
    SwarmSecret {
        id: id.into(),
        name: names::swarm_name(name, &fp(f)),
        version: 1,
        created_at: created.into(),
        labels: managed_labels(&d, &ds, &fp(f)),
    }
}

use super::tests::unmanaged;

/// What a reference is named after: the logical name of this environment's versions, the
/// Swarm name of anything else (unmanaged secrets are named by their logical name).
fn base_of(s: &SwarmSecret) -> String {
    if s.is_managed_by(P, E) {
        s.label(labels::NAME).unwrap_or_default().to_string()
    } else {
        s.name.clone()
    }
}

/// A reference with settings from small selectors.
fn reference(s: &SwarmSecret, target: u8, uid: u8, gid: u8, mode: u8) -> SecretRef {
    let base = base_of(s);
    SecretRef {
        secret_id: s.id.clone(),
        secret_name: s.name.clone(),
        target: match target {
            0 => base,
            1 => format!("{base}-x"),
            _ => format!("{base}-y"),
        },
        uid: if uid == 0 { "0" } else { "1000" }.into(),
        gid: if gid == 0 { "0" } else { "1000" }.into(),
        mode: match mode {
            0 => 0o444,
            1 => 0o400,
            _ => 0o440,
        },
        missing: false,
    }
}

/// True when some service references the secret in its current or previous spec.
fn referenced(o: &Observed, id: &str) -> bool {
    o.services.iter().any(|s| s.holds(id))
}

/// True when, at planning time, a service in flight referenced a version of `name`.
fn held_in_flight(o: &Observed, name: &str) -> bool {
    o.services.iter().any(|svc| {
        svc.in_flight()
            && o.secrets.iter().any(|v| {
                v.is_managed_by(P, E) && v.label(labels::NAME) == Some(name) && svc.holds(&v.id)
            })
    })
}

/// This environment's versions of `name`.
fn versions<'o>(o: &'o Observed, name: &str) -> Vec<&'o SwarmSecret> {
    o.secrets
        .iter()
        .filter(|v| v.is_managed_by(P, E) && v.label(labels::NAME) == Some(name))
        .collect()
}

/// True when version `v` holds what the repository wants for `d`: its value when the
/// fingerprint is known, else the file it was applied from.
fn holds_desired(d: &DesiredSecret, v: &SwarmSecret) -> bool {
    match &d.fingerprint {
        Some(f) => v.label(labels::FINGERPRINT) == Some(f.as_str()),
        None => v.label(labels::SOURCE) == Some(d.source.as_str()),
    }
}

/// Carries out a plan on an in-memory Swarm ([`crate::plan::simulate`]).
fn execute(observed: &Observed, plan: &Plan) -> Result<Observed, String> {
    crate::plan::simulate::simulate(observed, plan)
}

/// One reference of a generated service: (secret, pick among this environment's versions
/// only, target, uid, gid, mode selectors).
type RefSel = (prop::sample::Index, bool, u8, u8, u8, u8);

/// What [`arb_case`] generates.
#[derive(Debug, Clone, Copy)]
struct Gen {
    /// How often, in 4, a desired secret has a fingerprint (0: never, 4: always).
    verified: u8,
    /// Whether a service may mount one secret more than once (at other targets), or
    /// versions of one secret side by side.
    multi: bool,
    /// Whether references to versions (of secrets of the repository) that no longer exist
    /// may be in any service, or only in services that use this environment's secrets
    /// (the ones the planner repairs).
    dangling_anywhere: bool,
}

/// A desired and an observed state: four names, managed versions (some duplicated, some
/// of other projects or environments), unmanaged secrets, and services whose references
/// carry assorted targets, uids, gids and modes.
fn arb_case(g: Gen) -> impl Strategy<Value = (Desired, Observed)> {
    let settings = (0u8..3, 0u8..3, 0u8..3, 0u8..3).prop_map(|(target, uid, gid, mode)| Settings {
        target,
        uid,
        gid,
        mode,
    });
    // Desired: name -> (value, file, verified?, settings).
    let desired_s = (
        proptest::collection::btree_map(0usize..4, (0u8..3, 0u8..2, 0u8..4, settings), 0..4),
        0u32..3,
        any::<bool>(),
    );
    // Swarm secrets: (name, value, file, kind: 0-1 managed / 2 unmanaged / 3 other project /
    // 4 other environment).
    let secrets_s = proptest::collection::vec((0usize..4, 0u8..3, 0u8..2, 0u8..5), 0..10);
    let ref_s: BoxedStrategy<RefSel> = (
        any::<prop::sample::Index>(),
        any::<bool>(),
        0u8..3,
        0u8..2,
        0u8..2,
        0u8..3,
    )
        .boxed();
    // Services: current references, previous references, update state, references to
    // versions that no longer exist (name, value, target).
    let services_s = proptest::collection::vec(
        (
            proptest::collection::vec(ref_s, 0..5),
            proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            0u8..8,
            proptest::collection::vec((0usize..4, 0u8..4, 0u8..3), 0..2),
        ),
        0..4,
    );
    (desired_s, secrets_s, services_s).prop_map(
        move |((want, keep, labelled), secrets, services)| {
            let mut d = empty_desired();
            d.keep_versions = keep;
            for (i, (f, s, v, set)) in want {
                let name = NAMES[i];
                let mut ds = desired_secret(name, f, s, v < g.verified, set);
                if labelled {
                    ds.labels.insert("team".into(), "db".into());
                }
                d.secrets.insert(name.to_string(), ds);
            }
            let mut list: Vec<SwarmSecret> = Vec::new();
            for (i, (ni, f, s, kind)) in secrets.into_iter().enumerate() {
                let name = NAMES[ni];
                let id = format!("x{i}");
                let mut secret = match kind {
                    2 => unmanaged(&id, name),
                    _ => managed(&id, name, f, s, &format!("2020-{i:04}")),
                };
                // Unique Swarm names that never clash with a version this plan creates.
                if kind != 2 {
                    secret.name = format!("{}-{i}", secret.name);
                }
                match kind {
                    3 => {
                        secret.labels.insert(labels::PROJECT.into(), "other".into());
                    }
                    4 => {
                        secret
                            .labels
                            .insert(labels::ENVIRONMENT.into(), "staging".into());
                    }
                    _ => {}
                }
                if list.iter().any(|o| o.name == secret.name) {
                    continue;
                }
                list.push(secret);
            }
            let family = |id: &str| list.iter().find(|x| x.id == id).map(base_of);
            let mut svcs = Vec::new();
            for (i, (current, previous, state, dangling)) in services.into_iter().enumerate() {
                if list.is_empty() {
                    break;
                }
                let mut secrets: Vec<SecretRef> = Vec::new();
                let own: Vec<&SwarmSecret> =
                    list.iter().filter(|x| x.is_managed_by(P, E)).collect();
                for (pick, prefer_own, t, u, gi, m) in current {
                    let s = if prefer_own && !own.is_empty() {
                        *pick.get(&own)
                    } else {
                        pick.get(&list)
                    };
                    let r = reference(s, t, u, gi, m);
                    let clash = secrets.iter().any(|o| {
                        o.target == r.target
                            || (!g.multi
                                && (o.secret_id == r.secret_id
                                    || family(&o.secret_id) == Some(base_of(s))))
                    });
                    if !clash {
                        secrets.push(r);
                    }
                }
                let mut prev: Vec<&SwarmSecret> = previous.iter().map(|p| p.get(&list)).collect();
                prev.sort_by(|a, b| a.id.cmp(&b.id));
                prev.dedup_by(|a, b| a.id == b.id);
                let previous: Vec<SecretRef> = prev
                    .iter()
                    .enumerate()
                    .map(|(k, s)| reference(s, (k % 3) as u8, 0, 0, 0))
                    .collect();
                let ours = secrets.iter().chain(&previous).any(|r| {
                    list.iter()
                        .any(|x| x.id == r.secret_id && x.is_managed_by(P, E))
                });
                for (k, (ni, f, t)) in dangling.into_iter().enumerate() {
                    let name = NAMES[ni];
                    if !d.secrets.contains_key(name) || !g.dangling_anywhere && !ours {
                        continue;
                    }
                    let gone = SecretRef {
                        secret_id: format!("gone{i}-{k}"),
                        secret_name: names::swarm_name(name, &fp(f)),
                        target: match t {
                            0 => name.to_string(),
                            1 => format!("{name}-x"),
                            _ => format!("{name}-y"),
                        },
                        uid: "0".into(),
                        gid: "0".into(),
                        mode: 0o444,
                        missing: true,
                    };
                    let clash = secrets.iter().any(|o| {
                        o.target == gone.target
                            || (!g.multi
                                && (family(&o.secret_id).as_deref() == Some(name)
                                    || (o.missing && names::is_version_name(&o.secret_name, name))))
                    });
                    if !clash {
                        secrets.push(gone);
                    }
                }
                svcs.push(ServiceRefs {
                    id: format!("s{i}"),
                    name: format!("svc-s{i}"),
                    version: 10,
                    secrets,
                    previous,
                    update: match state {
                        0 => Some(UpdateState::Updating),
                        1 => Some(UpdateState::RollbackCompleted),
                        2 => Some(UpdateState::Completed),
                        _ => None,
                    },
                    history: Vec::new(),
                    configs: Default::default(),
                    previous_configs: Vec::new(),
                });
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

/// Whether a service's current references are all where the repository wants them, worked
/// out from the states alone: `Some(true)` when some reference must move (to a version of
/// a desired secret whose target is known), `Some(false)` when none must, `None` when it
/// cannot be told without the planner's tie-break (several versions hold the value).
fn must_move(d: &Desired, o: &Observed, svc: &ServiceRefs) -> Option<bool> {
    let ours = o.uses_environment(svc, P, E);
    let mut moves = false;
    for r in &svc.secrets {
        if r.missing {
            moves |= ours
                && d.secrets.values().any(|ds| {
                    names::is_version_name(&r.secret_name, &ds.name)
                        && (ds.fingerprint.is_some()
                            || versions(o, &ds.name).iter().any(|v| holds_desired(ds, v)))
                });
            continue;
        }
        let Some(s) = o.secrets.iter().find(|s| s.id == r.secret_id) else {
            continue;
        };
        let name = if s.is_managed_by(P, E) {
            s.label(labels::NAME).unwrap_or_default()
        } else if !s.has_swarmseal_labels() {
            s.name.as_str()
        } else {
            continue;
        };
        let Some(ds) = d.secrets.get(name) else {
            continue;
        };
        let holding: Vec<&SwarmSecret> = versions(o, name)
            .into_iter()
            .filter(|v| holds_desired(ds, v))
            .collect();
        match holding.len() {
            // Nothing holds the value: a version is created (when the fingerprint is known)
            // and every reference moves to it; unverified, nothing moves.
            0 => moves |= ds.fingerprint.is_some(),
            1 => moves |= holding[0].id != s.id,
            _ => return None,
        }
    }
    Some(moves)
}

/// The service updates of a plan: service id -> swaps.
fn repoints(p: &Plan) -> BTreeMap<&str, &Vec<PlannedSwap>> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Repoint {
                service_id, swaps, ..
            } => Some((service_id.as_str(), swaps)),
            _ => None,
        })
        .collect()
}

/// What holds for every plan, verified or not: it executes; no service, current or
/// previous spec, is left referencing a secret the plan removed; unmanaged and foreign
/// secrets are untouched; managed versions of names gone from the repository survive only
/// while something can still run with them; planning again finds nothing to do.
fn common_invariants(d: &Desired, o: &Observed, p: &Plan) -> Result<Observed, TestCaseError> {
    let after = execute(o, p).map_err(TestCaseError::fail)?;
    for svc in &after.services {
        for r in svc.secrets.iter().chain(&svc.previous) {
            let existed = o.secrets.iter().any(|s| s.id == r.secret_id);
            let exists = after.secrets.iter().any(|s| s.id == r.secret_id);
            prop_assert!(
                !existed || exists,
                "{} references removed {}",
                svc.name,
                r.secret_name
            );
        }
    }
    for s in o.secrets.iter().filter(|s| !s.is_managed_by(P, E)) {
        prop_assert!(after.secrets.contains(s), "{} was touched", s.name);
    }
    for v in after.secrets.iter().filter(|v| v.is_managed_by(P, E)) {
        let name = v.label(labels::NAME).unwrap_or("");
        if !d.secrets.contains_key(name) {
            let held = referenced(&after, &v.id) || held_in_flight(o, name);
            prop_assert!(held, "unused {} kept", v.name);
        }
    }
    // Every create is of a value the repository has, under its labels.
    for step in &p.steps {
        if let Step::Create {
            secret,
            swarm_name,
            fingerprint,
            labels: l,
            ..
        } = step
        {
            let ds = &d.secrets[secret];
            prop_assert_eq!(ds.fingerprint.as_ref(), Some(fingerprint));
            prop_assert_eq!(swarm_name, &names::swarm_name(secret, fingerprint));
            prop_assert_eq!(l, &managed_labels(d, ds, fingerprint));
        }
    }
    if !o.services.iter().any(ServiceRefs::in_flight) {
        let again = plan(d, &after);
        prop_assert!(
            again.steps.is_empty(),
            "second plan still has steps: {:?}",
            again.steps
        );
        let unverified = |p: &Plan| -> BTreeSet<String> {
            p.changes
                .iter()
                .filter(|c| c.unverified)
                .map(|c| c.secret.clone())
                .collect()
        };
        prop_assert_eq!(unverified(&again), unverified(p));
    }
    Ok(after)
}

/// Plans with secrets whose value is unknown (no identity): design §4.5.
fn unverified_invariants(d: &Desired, o: &Observed) -> Result<(), TestCaseError> {
    let p = plan(d, o);
    let after = common_invariants(d, o, &p)?;
    let mut any_unverified = false;
    for ds in d.secrets.values() {
        let list = versions(o, &ds.name);
        let holding: Vec<&&SwarmSecret> = list.iter().filter(|v| holds_desired(ds, v)).collect();
        let changes: Vec<_> = p.changes.iter().filter(|c| c.secret == ds.name).collect();
        let value_changed = changes.iter().any(|c| {
            matches!(
                c.cause,
                Reason::ValueChanged { .. } | Reason::NotOnSwarm { .. }
            ) || matches!(c.action, Action::Create | Action::Rotate)
        });
        if !holding.is_empty() {
            // A version was applied from this very file: its value is the repository's,
            // identity or not. Never "changed", never unverified; services that use
            // another version end up on one applied from the file.
            prop_assert!(
                !value_changed,
                "{}: a version holds the file, yet the plan says {:?}",
                ds.name,
                changes
            );
            prop_assert!(changes.iter().all(|c| !c.unverified), "{:?}", changes);
            for svc in &after.services {
                for r in &svc.secrets {
                    let Some(v) = after.secrets.iter().find(|v| v.id == r.secret_id) else {
                        continue;
                    };
                    let of_this = (v.is_managed_by(P, E)
                        && v.label(labels::NAME) == Some(ds.name.as_str()))
                        || (!v.has_swarmseal_labels() && v.name == ds.name);
                    prop_assert!(
                        !of_this || holds_desired(ds, v),
                        "{} still uses {}, not the version applied from the file",
                        svc.name,
                        v.name
                    );
                }
            }
            continue;
        }
        if ds.fingerprint.is_some() {
            // Verified: `plan::tests` covers it; here only that it is not unverified.
            prop_assert!(changes.iter().all(|c| !c.unverified), "{:?}", changes);
            continue;
        }
        // The file differs from every version (or there is none): the change is inferred
        // from the file alone, names no new version, and nothing of it is carried out.
        any_unverified = true;
        let adoptable = o.secrets.iter().any(|s| {
            !s.has_swarmseal_labels() && s.name == ds.name && !o.users_of(&s.id).is_empty()
        });
        let (action, cause) = if !list.is_empty() {
            (Action::Rotate, Reason::ValueChanged { unverified: true })
        } else if adoptable {
            (Action::Adopt, Reason::AdoptUnmanaged)
        } else {
            (Action::Create, Reason::NotOnSwarm { unverified: true })
        };
        let main: Vec<_> = changes.iter().filter(|c| c.unverified).collect();
        prop_assert_eq!(main.len(), 1, "{:?}", changes);
        prop_assert_eq!(main[0].action, action);
        prop_assert_eq!(&main[0].cause, &cause);
        prop_assert_eq!(main[0].swarm_name.as_ref(), None);
        let own: BTreeSet<&str> = list.iter().map(|v| v.id.as_str()).collect();
        for step in &p.steps {
            match step {
                Step::Create { secret, .. } | Step::Relabel { secret, .. } => {
                    prop_assert_ne!(secret, &ds.name)
                }
                Step::Remove {
                    secret, secret_id, ..
                } => {
                    prop_assert_ne!(secret, &ds.name);
                    prop_assert!(!own.contains(secret_id.as_str()));
                }
                Step::Repoint { swaps, .. } => {
                    for swap in swaps.iter() {
                        prop_assert!(!own.contains(swap.old_id.as_str()), "{:?}", swap);
                        prop_assert!(!names::is_version_name(&swap.new_name, &ds.name));
                    }
                }
            }
        }
    }
    prop_assert_eq!(p.is_unverified(), any_unverified);
    Ok(())
}

/// Reference settings of re-pointed services: design §4.1.
fn settings_invariants(d: &Desired, o: &Observed) -> Result<(), TestCaseError> {
    let p = plan(d, o);
    let after = common_invariants(d, o, &p)?;
    let updated = repoints(&p);
    for svc in &o.services {
        // Only services with a reference to move are updated.
        if let Some(expected) = must_move(d, o, svc) {
            prop_assert_eq!(
                updated.contains_key(svc.id.as_str()),
                expected,
                "{} updated: {}, expected {}",
                svc.name,
                updated.contains_key(svc.id.as_str()),
                expected
            );
        }
        let now = after.services.iter().find(|s| s.id == svc.id).unwrap();
        prop_assert_eq!(now.secrets.len(), svc.secrets.len());
        for (was, is) in svc.secrets.iter().zip(&now.secrets) {
            if was == is {
                continue;
            }
            prop_assert!(updated.contains_key(svc.id.as_str()));
            // A re-pointed reference: the manifest's settings where it sets them, else
            // exactly the reference's own.
            let v = after
                .secrets
                .iter()
                .find(|v| v.id == is.secret_id)
                .ok_or_else(|| TestCaseError::fail(format!("{} points nowhere", svc.name)))?;
            prop_assert!(v.is_managed_by(P, E));
            let name = v.label(labels::NAME).unwrap_or_default();
            let ds = &d.secrets[name];
            prop_assert_ne!(&was.secret_id, &is.secret_id);
            prop_assert!(!is.missing);
            // The manifest's target, unless another mount of the service is there (Docker
            // refuses two mounts at one target): then the reference keeps its own.
            match &ds.target {
                Some(t) if is.target != *t => {
                    prop_assert_eq!(&is.target, &was.target);
                    prop_assert!(
                        now.secrets.iter().any(|other| other.target == *t),
                        "{} keeps {} though nothing else is at {t}",
                        svc.name,
                        was.target
                    );
                }
                _ => prop_assert_eq!(&is.target, ds.target.as_ref().unwrap_or(&was.target)),
            }
            prop_assert_eq!(&is.uid, ds.uid.as_ref().unwrap_or(&was.uid));
            prop_assert_eq!(&is.gid, ds.gid.as_ref().unwrap_or(&was.gid));
            prop_assert_eq!(is.mode, ds.mode.unwrap_or(was.mode));
            // The plan lists every setting it changes.
            let change = p
                .changes
                .iter()
                .find(|c| c.secret == name && c.services.contains(&svc.name))
                .ok_or_else(|| {
                    TestCaseError::fail(format!("no change of {name} names {}", svc.name))
                })?;
            for (setting, from, to) in [
                ("target", was.target.clone(), is.target.clone()),
                ("uid", was.uid.clone(), is.uid.clone()),
                ("gid", was.gid.clone(), is.gid.clone()),
                (
                    "mode",
                    format!("{:04o}", was.mode),
                    format!("{:04o}", is.mode),
                ),
            ] {
                if from != to {
                    prop_assert!(
                        change.mounts.iter().any(|m| m.service == svc.name
                            && m.setting == setting
                            && m.from == from
                            && m.to == to),
                        "{} {} {} -> {} not in {:?}",
                        svc.name,
                        setting,
                        from,
                        to,
                        change.mounts
                    );
                }
            }
        }
    }
    // And lists no setting it does not change.
    for c in &p.changes {
        for m in &c.mounts {
            let svc = o.services.iter().find(|s| s.name == m.service).unwrap();
            let now = after.services.iter().find(|s| s.id == svc.id).unwrap();
            let done = svc.secrets.iter().zip(&now.secrets).any(|(was, is)| {
                let (from, to) = match m.setting.as_str() {
                    "target" => (was.target.clone(), is.target.clone()),
                    "uid" => (was.uid.clone(), is.uid.clone()),
                    "gid" => (was.gid.clone(), is.gid.clone()),
                    _ => (format!("{:04o}", was.mode), format!("{:04o}", is.mode)),
                };
                was.secret_id != is.secret_id && from == m.from && to == m.to
            });
            prop_assert!(done, "{:?} listed but not carried out", m);
        }
    }
    Ok(())
}

const SAFE: Gen = Gen {
    verified: 0,
    multi: false,
    dangling_anywhere: false,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Without an identity for any secret.
    #[test]
    fn unverified_plans_execute_and_never_invent_changes((d, o) in arb_case(SAFE)) {
        unverified_invariants(&d, &o)?;
    }

    /// Some secrets verified, some not.
    #[test]
    fn partly_verified_plans_execute((d, o) in arb_case(Gen { verified: 2, ..SAFE })) {
        unverified_invariants(&d, &o)?;
    }

    /// Reference settings, with the value known (verified).
    #[test]
    fn repointed_references_keep_or_take_their_settings((d, o) in arb_case(Gen { verified: 4, ..SAFE })) {
        settings_invariants(&d, &o)?;
    }

    /// Reference settings in plans made partly without an identity.
    #[test]
    fn repointed_references_keep_their_settings_unverified((d, o) in arb_case(Gen { verified: 1, ..SAFE })) {
        settings_invariants(&d, &o)?;
    }
}

/// Regressions: bugs these properties found, fixed (a secret mounted twice; an adopting
/// update that left a dangling reference).
mod regressions {
    use super::*;

    /// A service mounts one version twice, at `d` with mode 0400 and at `d-x` with mode
    /// 0440; the manifest sets mode 0400. The rotation's plan lists `mode 0440 -> 0400`
    /// for the second mount, but its two swaps share `old_id`, and the client applies the
    /// first swap that matches a reference's secret to every such reference: the second
    /// mount keeps 0440. (With a manifest `target`, carrying the plan out as listed would
    /// mount both at one target, which Docker refuses.)
    #[test]
    fn a_secret_mounted_twice_gets_the_settings_the_plan_lists() {
        let v1 = managed("x0", "d", 1, 0, "2020");
        let mut web = ServiceRefs {
            id: "s0".into(),
            name: "svc-s0".into(),
            version: 10,
            secrets: vec![reference(&v1, 0, 0, 0, 1), reference(&v1, 1, 0, 0, 2)],
            ..ServiceRefs::default()
        };
        web.secrets[1].mode = 0o440;
        let o = Observed {
            cluster_id: "c".into(),
            secrets: vec![v1],
            services: vec![web],
            taken: Vec::new(),
            configs: Default::default(),
        };
        let mut d = empty_desired();
        let set = Settings {
            mode: 2,
            ..Settings::default()
        };
        d.secrets
            .insert("d".into(), desired_secret("d", 0, 0, true, set));
        settings_invariants(&d, &o).unwrap();
    }

    /// A service uses the unmanaged secret `d` (adopted by this plan) and has a reference
    /// to `c-0000000000`, a version of the repository's secret `c` that no longer exists.
    /// It uses no other version of this environment, so the planner does not repair that
    /// reference, yet the adoption updates the service: Docker refuses the update ("secret
    /// not found: c-0000000000"), and every later apply does the same.
    #[test]
    fn an_adopting_update_repairs_dangling_references_of_the_repository() {
        let d_unmanaged = unmanaged("x0", "d");
        let mut web = ServiceRefs {
            id: "s0".into(),
            name: "svc-s0".into(),
            version: 10,
            secrets: vec![reference(&d_unmanaged, 0, 0, 0, 0)],
            ..ServiceRefs::default()
        };
        web.secrets.push(SecretRef {
            secret_id: "gone".into(),
            secret_name: names::swarm_name("c", &fp(0)),
            target: "c".into(),
            uid: "0".into(),
            gid: "0".into(),
            mode: 0o444,
            missing: true,
        });
        let o = Observed {
            cluster_id: "c".into(),
            secrets: vec![d_unmanaged],
            services: vec![web],
            taken: Vec::new(),
            configs: Default::default(),
        };
        let mut d = empty_desired();
        for name in ["c", "d"] {
            d.secrets.insert(
                name.into(),
                desired_secret(name, 0, 0, true, Settings::default()),
            );
        }
        settings_invariants(&d, &o).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Services that mount one secret more than once.
        #[test]
        fn secrets_mounted_twice((d, o) in arb_case(Gen { verified: 4, multi: true, ..SAFE })) {
            settings_invariants(&d, &o)?;
        }

        /// Dangling references in services that use nothing else of this environment.
        #[test]
        fn dangling_references_anywhere((d, o) in arb_case(Gen { verified: 4, dangling_anywhere: true, ..SAFE })) {
            settings_invariants(&d, &o)?;
        }
    }
}
