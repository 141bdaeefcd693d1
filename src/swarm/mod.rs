//! The Swarm client (bollard): endpoint resolution, connection checks, observation of
//! secrets and services, and the few writes apply needs.
//!
//! ```ignore
//! let endpoint = resolve_endpoint(cli.host.as_deref(), env.docker_host.as_deref())?;
//! let swarm = Swarm::connect(endpoint).await?;        // ping, version, info: ~5 s max
//! let observed = swarm.observe(project, env, &names).await?;  // 2 API calls
//! let lock = swarm.lock(project, env, &holder, lock_timeout).await?;
//! let id = swarm.create_secret(&swarm_name, &labels, &value).await?;
//! swarm.repoint_service(&service_id, &[swap]).await?;
//! swarm.wait_converged(&service_id, Duration::from_secs(300)).await?;
//! swarm.remove_secret(&old_id, &old_name).await?;
//! swarm.release(lock).await?;
//! ```
//!
//! Every error names the endpoint as `URL (from SOURCE)` and the secret or service, and
//! says what to do next.

mod client;
mod converge;
mod endpoint;
pub mod holder;
mod lock;
mod objects;
mod observe;
mod services;
mod ssh;
mod transport;

pub use client::Swarm;
pub use endpoint::{
    check_url, resolve_endpoint, resolve_endpoint_with, Address, Endpoint, SshTarget,
    DEFAULT_SOCKET_URL,
};
pub use lock::{lock_name, LOCK_DATA};

/// What [`Swarm::remove_secret`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    Removed,
    /// It did not exist (any more).
    Gone,
    /// Docker refused: a service uses it. Docker's message, naming the services.
    InUse(String),
}

/// One reference swap in [`Swarm::repoint_service`]: every reference to `old_id` becomes a
/// reference to `new_id`/`new_name`; `None` settings keep what the reference had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    pub old_id: String,
    /// The target of the reference to swap (`None`: every reference to `old_id`).
    pub old_target: Option<String>,
    pub new_id: String,
    pub new_name: String,
    pub target: Option<String>,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: Option<u32>,
    /// A secret reference or a config reference.
    pub kind: crate::domain::state::Kind,
}

/// How a service apply does not update looks, at one glance ([`Swarm::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// An update (or rollback) is in progress.
    Updating,
    /// Not all of its tasks run, or its last update failed: in words.
    Unhealthy(String),
}

/// What [`Swarm::wait_converged`] sees at each poll of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitProgress {
    /// `updating`, `starting tasks`, `tasks up to date`, `converged`.
    pub state: &'static str,
    /// Tasks running with the current spec's secrets, of `total` meant to run.
    pub done: usize,
    pub total: usize,
    pub elapsed: std::time::Duration,
}

/// The Swarm's secrets (apply locks left out) and services as listed, before they are
/// narrowed to one environment ([`Swarm::list`], [`Swarm::observe_listing`]).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub(crate) secrets: Vec<crate::domain::state::SwarmSecret>,
    pub(crate) services: Vec<crate::domain::state::ServiceRefs>,
    /// The apply locks' marker secrets.
    pub(crate) locks: Vec<crate::domain::state::SwarmSecret>,
    /// The Swarm's configs, and the data of those applied from a plain file, by ID.
    pub(crate) configs: Vec<crate::domain::state::SwarmSecret>,
    pub(crate) plain: std::collections::BTreeMap<String, Vec<u8>>,
}

/// A held apply lock (the marker secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub id: String,
    pub name: String,
}

/// Who holds an apply lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The marker secret's name.
    pub name: String,
    /// `user@host pid N`, as the holder wrote it (print it through `output::clean`).
    pub holder: String,
    /// RFC 3339.
    pub created: String,
    /// The holder's process token (see [`holder::Holder`]), if it wrote one.
    pub process: Option<String>,
}

impl LockInfo {
    /// Whether the holder still runs, as far as this host can tell.
    pub fn liveness(&self) -> holder::Liveness {
        holder::liveness(self.process.as_deref())
    }

    /// `user@host pid N since T`, cleaned for a terminal, with what is known of the holder.
    pub fn describe(&self) -> String {
        let who = format!(
            "{} since {}",
            crate::domain::text::clean(&self.holder),
            crate::domain::text::clean(&self.created)
        );
        match self.liveness() {
            holder::Liveness::Alive => format!("{who} (a process that is running on this host)"),
            holder::Liveness::Dead => format!(
                "{who} (that process is no longer running on this host: the apply died without releasing the lock)"
            ),
            holder::Liveness::Unknown => who,
        }
    }
}
