//! Name conflicts: a version this plan would create has a Swarm name that a secret outside
//! this project and environment already holds (two repositories copied from
//! `secrets.example` share fingerprint keys, so the same value gets the same name in both).
//! Such a plan is shown with the conflict and refused by `plan` and `apply`.

use crate::domain::state::TakenName;
use crate::domain::text::clean;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Change, Plan};

/// Who holds a taken name, in words: `project shop (environment staging)`.
pub fn holder(t: &TakenName) -> String {
    // Labels of another project's secret: shown cleaned of control characters.
    let (project, environment) = (
        t.project.as_deref().map(clean),
        t.environment.as_deref().map(clean),
    );
    match (project, environment) {
        (Some(p), Some(e)) => format!("project {p} (environment {e})"),
        (Some(p), None) => format!("project {p}"),
        (None, _) => "an unmanaged secret (not made by swarmseal)".into(),
    }
}

/// The note on a change whose version cannot be created, if it has a conflict.
pub fn note(c: &Change) -> Option<String> {
    let t = c.conflict.as_ref()?;
    Some(format!(
        "name conflict: {} is already held by {}; nothing can be created",
        t.name,
        holder(t)
    ))
}

impl Plan {
    /// The changes whose version cannot be created because its name is taken.
    pub fn conflicts(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.conflict.is_some())
    }

    /// A plan with a name conflict cannot be applied (the create would fail half-way):
    /// `plan` and `apply` refuse it, naming each secret, its Swarm name and who holds it.
    pub fn refuse_conflicts(&self) -> Result<()> {
        let env = &self.environment;
        let mut list = Vec::new();
        let mut shared_key = false;
        for c in self.conflicts() {
            let Some(t) = &c.conflict else { continue };
            shared_key |= t.project.is_some();
            list.push(format!(
                "{} (Swarm name {}, held by {})",
                c.secret,
                t.name,
                holder(t)
            ));
        }
        if list.is_empty() {
            return Ok(());
        }
        let fix = format!(
            "give {env} a new fingerprint key: remove .swarmseal/fingerprint/{env}.age and run `swarmseal -e {env} rekey`, which creates a new one (every secret of {env} then gets a new Swarm name, so the next apply rotates them all), commit, and plan again"
        );
        let hint = if shared_key {
            format!("the same value under the same fingerprint key gives the same name: {env} shares its fingerprint key with the holder (a repository copied from secrets.example, or a copied .swarmseal/fingerprint file?); {fix}")
        } else {
            format!("remove or rename that unmanaged secret if nothing uses it (`docker secret rm NAME`), or {fix}")
        };
        Err(Error::new(format!(
            "the Swarm name of {} of {}/{env} is already taken by a secret swarmseal does not manage here, so {} cannot be created: {}",
            crate::domain::text::plural(list.len(), "secret"),
            self.project,
            if list.len() == 1 { "it" } else { "they" },
            list.join("; ")
        ))
        .with_kind(ErrorKind::Blocked)
        .hint(hint))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::names::swarm_name;
    use crate::domain::state::{
        managed_labels, Desired, DesiredSecret, Observed, SecretRef, ServiceRefs, SwarmSecret,
    };
    use crate::plan::render::{self, Context};
    use crate::plan::{plan, simulate::simulate, Action, Step};

    fn fp(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn desired(project: &str, env: &str, secrets: &[(&str, char)]) -> Desired {
        let secret = |name: &str, f: char| DesiredSecret {
            name: name.into(),
            source: format!("src-{name}-{f}"),
            fingerprint: Some(fp(f)),
            ..Default::default()
        };
        Desired {
            project: project.into(),
            environment: env.into(),
            secrets: secrets
                .iter()
                .map(|(n, f)| (n.to_string(), secret(n, *f)))
                .collect(),
            keep_versions: 0,
            configs: Default::default(),
        }
    }

    /// A version of `name` with value `f`, managed by `project`/`env`.
    fn version(id: &str, project: &str, env: &str, name: &str, f: char) -> SwarmSecret {
        let d = desired(project, env, &[(name, f)]);
        SwarmSecret {
            id: id.into(),
            name: swarm_name(name, &fp(f)),
            version: 1,
            created_at: format!("2024-{id}"),
            labels: managed_labels(&d, &d.secrets[name], &fp(f)),
        }
    }

    fn using(id: &str, s: &SwarmSecret) -> ServiceRefs {
        ServiceRefs {
            id: id.into(),
            name: id.into(),
            version: 3,
            secrets: vec![SecretRef {
                secret_id: s.id.clone(),
                secret_name: s.name.clone(),
                target: "db".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o444,
                missing: false,
            }],
            ..ServiceRefs::default()
        }
    }

    /// What observe keeps of the Swarm for `shop`/`prod`: its own versions, and the names
    /// of versions of its secrets that anything else holds.
    fn observed(all: &[&SwarmSecret], services: Vec<ServiceRefs>) -> Observed {
        let (ours, theirs): (Vec<SwarmSecret>, Vec<SwarmSecret>) = all
            .iter()
            .map(|s| (*s).clone())
            .partition(|s| s.is_managed_by("shop", "prod"));
        Observed {
            cluster_id: "c".into(),
            secrets: ours,
            services,
            taken: theirs.iter().map(TakenName::of).collect(),
            configs: Default::default(),
        }
    }

    #[test]
    fn a_create_whose_name_another_project_holds_is_a_conflict() {
        // Another copy of the example holds db_password's name (same key, same value).
        let theirs = version("t1", "other-shop", "staging", "db_password", 'a');
        // api's name is free; a name of the other project's that this plan does not
        // create is no conflict either.
        let unrelated = version("t2", "other-shop", "staging", "api", 'c');
        let o = observed(&[&theirs, &unrelated], Vec::new());
        let d = desired("shop", "prod", &[("db_password", 'a'), ("api", 'b')]);
        let p = plan(&d, &o);
        let conflicts: Vec<&Change> = p.conflicts().collect();
        assert_eq!(conflicts.len(), 1, "{p:#?}");
        let c = conflicts[0];
        assert_eq!(
            (c.secret.as_str(), c.action),
            ("db_password", Action::Create)
        );
        let t = c.conflict.as_ref().unwrap();
        assert_eq!(
            (t.name.as_str(), t.id.as_str()),
            (theirs.name.as_str(), "t1")
        );
        assert_eq!(t.project.as_deref(), Some("other-shop"));
        // Nothing is created under the taken name; api is created as usual.
        let creates: Vec<&str> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Create { secret, .. } => Some(secret.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(creates, vec!["api"]);
        // plan and apply refuse it, naming the secret, the name, the holder and the fix.
        let err = p.refuse_conflicts().unwrap_err();
        let text = format!("{} {}", err.message(), err.hint_text().unwrap_or_default());
        for want in [
            "db_password",
            theirs.name.as_str(),
            "project other-shop (environment staging)",
            "swarmseal -e prod rekey",
            ".swarmseal/fingerprint/prod.age",
        ] {
            assert!(text.contains(want), "{want:?} not in: {text}");
        }
        assert_eq!(err.kind(), ErrorKind::Blocked);
        // Every rendering shows it.
        let ctx = Context {
            endpoint: "e",
            cluster_id: "c",
        };
        let human = render::human(&p, &ctx, false, false);
        assert!(
            human.contains("name conflict") && human.contains("other-shop"),
            "{human}"
        );
        let markdown = render::markdown(&p, &ctx, false);
        assert!(markdown.contains("name conflict"), "{markdown}");
        let json = render::json(&p, &ctx);
        assert_eq!(json["format_version"], 1);
        assert_eq!(json["summary"]["conflict"], 1);
        let change = json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["secret"] == "db_password")
            .unwrap();
        assert_eq!(change["conflict"]["swarm_name"], theirs.name.as_str());
        assert_eq!(change["conflict"]["project"], "other-shop");
        assert_eq!(change["conflict"]["environment"], "staging");
        // The other project's secret is never touched.
        let after = simulate(&o, &p).unwrap();
        assert!(after.taken.contains(&TakenName::of(&theirs)));
        assert!(plan(&d, &o).conflicts().count() == 1);
    }

    #[test]
    fn a_rotation_into_a_taken_name_moves_no_service_and_removes_nothing() {
        let old = version("v1", "shop", "prod", "db_password", 'a');
        // Another environment of the same project shares the key (a copied key file).
        let theirs = version("t1", "shop", "staging", "db_password", 'b');
        let o = observed(&[&old, &theirs], vec![using("web", &old)]);
        let d = desired("shop", "prod", &[("db_password", 'b')]);
        let p = plan(&d, &o);
        let c = p.conflicts().next().expect("a conflict");
        assert_eq!(c.action, Action::Rotate);
        assert!(p.steps.is_empty(), "{:#?}", p.steps);
        let err = p.refuse_conflicts().unwrap_err();
        assert!(
            err.message().contains("project shop (environment staging)"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn an_unmanaged_secret_holding_the_name_is_a_conflict_too() {
        let d = desired("shop", "prod", &[("db_password", 'a')]);
        let hand_made = SwarmSecret {
            id: "u1".into(),
            name: swarm_name("db_password", &fp('a')),
            version: 1,
            created_at: "2020".into(),
            labels: BTreeMap::new(),
        };
        let o = observed(&[&hand_made], Vec::new());
        let p = plan(&d, &o);
        let err = p.refuse_conflicts().unwrap_err();
        assert!(
            err.message().contains("an unmanaged secret"),
            "{}",
            err.message()
        );
        assert!(err.hint_text().unwrap().contains("docker secret rm"));
        // Once it is gone, the plan is a plain create.
        let p = plan(&d, &observed(&[], Vec::new()));
        assert!(p.refuse_conflicts().is_ok() && p.conflicts().next().is_none());
        // And once this environment's version exists, a stranger of another name is not
        // in the way.
        let ours = version("v1", "shop", "prod", "db_password", 'a');
        let other = version("t1", "other", "prod", "db_password", 'c');
        let p = plan(&d, &observed(&[&ours, &other], Vec::new()));
        assert!(p.conflicts().next().is_none() && !p.has_changes(), "{p:#?}");
    }
}
