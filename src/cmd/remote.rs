//! What the Swarm commands share: connecting (with the cluster pin) and observing.

use std::collections::BTreeSet;

use crate::cli::Global;
use crate::error::{Error, Result};
use crate::model::Observed;
use crate::store::Repo;
use crate::swarm::{self, Swarm};

/// A connection to the environment's Swarm, with the runtime that drives it.
pub struct Remote {
    pub rt: tokio::runtime::Runtime,
    pub swarm: Swarm,
}

impl Remote {
    /// Connects to the environment's endpoint and enforces its `swarm_id` pin.
    pub fn connect(g: &Global, repo: &Repo, env: &str) -> Result<Remote> {
        let environment = repo.manifest.environment(env)?;
        let endpoint =
            swarm::resolve_endpoint(g.host.as_deref(), environment.docker_host.as_deref())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(format!("cannot start the async runtime: {e}")))?;
        let swarm = rt
            .block_on(Swarm::connect(endpoint))?
            .with_unlock_command(unlock_command(g, env));
        if let Some(pin) = &environment.swarm_id {
            if *pin != swarm.cluster_id {
                return Err(Error::new(format!(
                    "environment {env} is pinned to Swarm {pin}, but {} is Swarm {}",
                    swarm.endpoint().describe(),
                    swarm.cluster_id
                ))
                .hint(format!(
                    "point swarmseal at {env}'s Swarm (--host, docker_host, DOCKER_HOST or the docker context); change swarm_id in swarmseal.yaml only if {env} really moved"
                )));
            }
        }
        Ok(Remote { rt, swarm })
    }

    /// The secrets and services that matter to the environment.
    pub fn observe(&self, repo: &Repo, env: &str, names: &BTreeSet<String>) -> Result<Observed> {
        self.rt
            .block_on(self.swarm.observe(&repo.manifest.project, env, names))
    }

    pub fn describe(&self) -> String {
        self.swarm.endpoint().describe()
    }
}

/// `swarmseal [-C DIR] -e ENV [-H URL] unlock`: the exact command that breaks this
/// environment's apply lock, with the flags this command was given.
fn unlock_command(g: &Global, env: &str) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@=".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let mut cmd = String::from("swarmseal");
    if let Some(dir) = &g.repo {
        cmd.push_str(&format!(" -C {}", quote(&dir.to_string_lossy())));
    }
    cmd.push_str(&format!(" -e {}", quote(env)));
    if let Some(host) = &g.host {
        cmd.push_str(&format!(" -H {}", quote(host)));
    }
    cmd.push_str(" unlock");
    cmd
}
