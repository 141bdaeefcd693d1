//! Observing the Swarm: one list of secrets and one list of services ([`Swarm::list`]),
//! narrowed to what matters to one project and environment ([`Swarm::observe_listing`]).
//! The lists need no repository, so `plan` asks for them while it reads the files.

use std::collections::BTreeSet;

use super::client::Swarm;
use super::Listing;
use crate::domain::state::{
    labels, Observed, ObservedConfigs, ServiceRefs, SwarmSecret, TakenName,
};
use crate::error::Result;

impl Swarm {
    /// One list of secrets + one list of services: managed secrets of project/env,
    /// unmanaged secrets (no io.swarmseal.* label) whose name is in `names`, the names of
    /// versions of `names` held by any other secret ([`Observed::taken`]), and every
    /// service that references a secret in its current or previous spec (references to
    /// secrets that no longer exist marked `missing`). Sorted by name.
    pub async fn observe(
        &self,
        project: &str,
        env: &str,
        names: &BTreeSet<String>,
    ) -> Result<Observed> {
        let listing = self.list().await?;
        self.observe_listing(listing, project, env, names).await
    }

    /// The two lists of [`Swarm::observe`], before they are narrowed to an environment:
    /// they need no repository, so they can be asked for while it is being read.
    pub async fn list(&self) -> Result<Listing> {
        let (secrets, services, configs) = tokio::join!(
            super::services::list_secrets(&self.transport, &self.docker),
            super::services::list(&self.transport, &self.docker),
            super::services::list_configs(&self.transport, &self.docker)
        );
        let secrets = secrets.map_err(|e| self.api_error("listing the Swarm's secrets", &e))?;
        let services = services.map_err(|e| self.api_error("listing the Swarm's services", &e))?;
        let (configs, plain) =
            configs.map_err(|e| self.api_error("listing the Swarm's configs", &e))?;
        let (locks, secrets) = secrets
            .into_iter()
            .partition(|s| s.labels.contains_key(labels::LOCK));
        Ok(Listing {
            secrets,
            services,
            locks,
            configs,
            plain,
        })
    }

    /// [`Swarm::observe`] from a [`Swarm::list`] made earlier.
    pub async fn observe_listing(
        &self,
        listing: Listing,
        project: &str,
        env: &str,
        names: &BTreeSet<String>,
    ) -> Result<Observed> {
        let Listing {
            secrets,
            services,
            locks,
            configs,
            mut plain,
        } = listing;
        let all_ids: BTreeSet<&str> = secrets
            .iter()
            .chain(&locks)
            .map(|s| s.id.as_str())
            .collect();
        let config_ids: BTreeSet<&str> = configs.iter().map(|s| s.id.as_str()).collect();
        let mut out_services: Vec<ServiceRefs> = services
            .into_iter()
            .filter(|s| {
                !(s.secrets.is_empty()
                    && s.previous.is_empty()
                    && s.configs.is_empty()
                    && s.previous_configs.is_empty())
            })
            .map(|mut s| {
                for r in s.secrets.iter_mut().chain(s.previous.iter_mut()) {
                    r.missing = !all_ids.contains(r.secret_id.as_str());
                }
                for r in s.configs.iter_mut().chain(s.previous_configs.iter_mut()) {
                    r.missing = !config_ids.contains(r.secret_id.as_str());
                }
                s
            })
            .collect();
        out_services.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        let (out_secrets, taken) = narrow(secrets, project, env, names);
        let (out_configs, taken_configs) = narrow(configs, project, env, names);
        plain.retain(|id, _| out_configs.iter().any(|c| &c.id == id));

        let mut observed = Observed {
            cluster_id: self.cluster_id.clone(),
            secrets: out_secrets,
            services: out_services,
            taken,
            configs: ObservedConfigs {
                items: out_configs,
                taken: taken_configs,
                plain,
            },
        };
        // A service pointing at a missing version of one of these secrets, with nothing in
        // its specs to tell whose it is (an automatic rollback clears the previous spec):
        // its recent tasks tell. Rare, so one task list per such service.
        let unattributed: Vec<usize> = observed
            .services
            .iter()
            .enumerate()
            .filter(|(_, svc)| {
                svc.secrets.iter().any(|r| {
                    r.missing
                        && crate::domain::names::logical_of_version(&r.secret_name)
                            .is_some_and(|n| names.contains(n))
                }) && !observed.uses_environment(svc, project, env)
            })
            .map(|(i, _)| i)
            .collect();
        for i in unattributed {
            let id = observed.services[i].id.clone();
            observed.services[i].history = self.task_secret_ids(&id).await?;
        }
        Ok(observed)
    }
}

/// What of one list (secrets, or configs) matters to an environment: its managed versions
/// and the unmanaged objects named like one of `names`, sorted by name; and the version
/// names of `names` held by anything else ([`Observed::taken`]).
fn narrow(
    items: Vec<SwarmSecret>,
    project: &str,
    env: &str,
    names: &BTreeSet<String>,
) -> (Vec<SwarmSecret>, Vec<TakenName>) {
    let is_version_name = |s: &SwarmSecret| {
        crate::domain::names::logical_of_version(&s.name).is_some_and(|n| names.contains(n))
    };
    let mut taken: Vec<TakenName> = items
        .iter()
        .filter(|s| !s.is_managed_by(project, env) && is_version_name(s))
        .map(TakenName::of)
        .collect();
    taken.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    let mut out: Vec<SwarmSecret> = items
        .into_iter()
        .filter(|s| {
            s.is_managed_by(project, env) || (!s.has_swarmseal_labels() && names.contains(&s.name))
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
    (out, taken)
}
