//! What the Swarm commands share: connecting (with the cluster pin) and observing.

use std::collections::BTreeSet;

use crate::cli::args::Global;
use crate::domain::state::Observed;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::manifest::Manifest;
use crate::repo::Repo;
use crate::swarm::{self, Swarm};

/// A connection to the environment's Swarm, with the runtime that drives it.
pub struct Remote {
    pub rt: tokio::runtime::Runtime,
    pub swarm: Swarm,
}

impl Remote {
    /// Connects to the environment's endpoint and enforces its `swarm_id` pin.
    pub fn connect(g: &Global, repo: &Repo, env: &str) -> Result<Remote> {
        Remote::connect_for(g, &repo.manifest, env)
    }

    fn connect_for(g: &Global, manifest: &Manifest, env: &str) -> Result<Remote> {
        let environment = manifest.environment(env)?;
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
                .with_kind(ErrorKind::WrongSwarm)
                .hint(format!(
                    "point swarmseal at {env}'s Swarm (--host, docker_host, DOCKER_HOST or the docker context); change swarm_id in swarmseal.yaml only if {env} really moved"
                )));
            }
        }
        Ok(Remote { rt, swarm })
    }

    /// Runs `read` (reading the repository) while connecting, and returns both; the
    /// repository's errors come first, as if one had been done after the other. A remote
    /// login (an ssh session, a TLS handshake) then costs no time of its own. Side by side
    /// only without a terminal: on one, ssh and age may each need to ask something, and
    /// two prompts at once would be a mess.
    pub fn connect_while<T>(
        g: &Global,
        repo: &Repo,
        env: &str,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Remote)> {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            let value = read()?;
            return Ok((value, Remote::connect(g, repo, env)?));
        }
        let (value, remote) = std::thread::scope(|scope| {
            let manifest = &repo.manifest;
            let connecting = scope.spawn(move || Remote::connect_for(g, manifest, env));
            let value = read();
            (value, connecting.join())
        });
        let value = value?;
        let remote =
            remote.map_err(|_| Error::new("connecting to the Swarm failed unexpectedly"))??;
        Ok((value, remote))
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
