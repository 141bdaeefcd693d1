//! What the Swarm commands share: connecting (with the cluster pin) and observing.

use std::collections::BTreeSet;

use crate::cli::args::Global;
use crate::domain::state::Observed;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::manifest::Manifest;
use crate::repo::Repo;
use crate::swarm::{self, Listing, Swarm};

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

    /// Runs `read` (reading the repository, which asks nothing: no prompt can clash with
    /// an ssh login's) while connecting, and returns both; the repository's errors come
    /// first, as if one had been done after the other. A remote login (an ssh session, a
    /// TLS handshake) then costs no time of its own.
    pub fn connect_while<T>(
        g: &Global,
        repo: &Repo,
        env: &str,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Remote)> {
        let (value, (remote, ())) = Remote::beside(g, repo, env, read, |_| Ok(()))?;
        Ok((value, remote))
    }

    /// [`Remote::connect_while`], and the Swarm's secrets and services listed too (a fifth
    /// of a second at 10,000 secrets, now spent while the files are read). Narrow the
    /// listing with [`Remote::observe_listing`].
    pub fn connect_and_list_while<T>(
        g: &Global,
        repo: &Repo,
        env: &str,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Remote, Listing)> {
        let list = |remote: &Remote| remote.rt.block_on(remote.swarm.list());
        let (value, (remote, listing)) = Remote::beside(g, repo, env, read, list)?;
        Ok((value, remote, listing))
    }

    /// `read` on this thread; connecting, then `then`, on another.
    fn beside<T, U: Send>(
        g: &Global,
        repo: &Repo,
        env: &str,
        read: impl FnOnce() -> Result<T>,
        then: impl FnOnce(&Remote) -> Result<U> + Send,
    ) -> Result<(T, (Remote, U))> {
        let (value, remote) = Remote::connect_beside(g, repo, env, read, then);
        Ok((value?, remote?))
    }

    /// `read` on this thread; connecting, then `then`, on another; both results, whatever
    /// they are (so that what `then` took, such as a lock, can be given back when `read`
    /// failed). The repository's errors are meant to come first.
    pub fn connect_beside<T, U: Send>(
        g: &Global,
        repo: &Repo,
        env: &str,
        read: impl FnOnce() -> Result<T>,
        then: impl FnOnce(&Remote) -> Result<U> + Send,
    ) -> (Result<T>, Result<(Remote, U)>) {
        std::thread::scope(|scope| {
            let manifest = &repo.manifest;
            let connecting = scope.spawn(move || {
                let remote = Remote::connect_for(g, manifest, env)?;
                let more = then(&remote)?;
                Ok::<_, Error>((remote, more))
            });
            let value = read();
            let remote = connecting
                .join()
                .unwrap_or_else(|_| Err(Error::new("connecting to the Swarm failed unexpectedly")));
            (value, remote)
        })
    }

    /// [`Remote::observe`] from a listing made by [`Remote::connect_and_list_while`].
    pub fn observe_listing(
        &self,
        listing: Listing,
        repo: &Repo,
        env: &str,
        names: &BTreeSet<String>,
    ) -> Result<Observed> {
        self.rt.block_on(
            self.swarm
                .observe_listing(listing, &repo.manifest.project, env, names),
        )
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
