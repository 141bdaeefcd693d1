//! The connected Swarm: connection checks, observation and the writes apply needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bollard::errors::Error as DockerError;
use bollard::models::{
    LocalNodeState, Service, ServiceSpec, SwarmInfo, Task, TaskSpecContainerSpecConfigs,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::{ListTasksOptionsBuilder, UpdateServiceOptionsBuilder};
use bollard::Docker;
use zeroize::Zeroizing;

use super::endpoint::{Address, Endpoint, Scheme};
use super::ssh::SshDial;
use super::transport::{Dial, Transport};
use super::{RemoveOutcome, Swap};
use crate::domain::state::{labels, Kind, ServiceRefs, SwarmSecret};
use crate::error::{Error, ErrorKind, Result};

/// Per-request timeout once connected: long enough for a service update on a busy manager.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the first contact (ping, version, info) may take before the endpoint counts as
/// unreachable.
pub(crate) const FIRST_CONTACT_TIMEOUT: Duration = Duration::from_secs(5);
/// ... over ssh, which first has to log in and start `docker system dial-stdio` remotely.
pub(crate) const FIRST_CONTACT_TIMEOUT_SSH: Duration = Duration::from_secs(15);
/// Attempts of a service update that meets a version conflict.
const UPDATE_ATTEMPTS: u32 = 5;

/// A connection to a Swarm manager.
#[derive(Clone)]
pub struct Swarm {
    pub(crate) docker: Docker,
    /// The connections under `docker`, for raw requests (see [`super::services`]).
    pub(crate) transport: Transport,
    pub(crate) endpoint: Endpoint,
    /// The Swarm's cluster ID (`docker info` → Swarm.Cluster.ID).
    pub cluster_id: String,
    /// The exact command that breaks this environment's apply lock, for messages (set by
    /// the command line, which knows its own flags; see [`Swarm::with_unlock_command`]).
    pub(crate) unlock_command: String,
}

impl fmt::Debug for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swarm")
            .field("endpoint", &self.endpoint)
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

/// What went wrong talking to Docker, worded for a person: the status and Docker's message
/// for an API error, else the innermost causes of a transport error.
pub(crate) fn reason(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => {
            // Docker's text may carry what others wrote (a label, a task's error).
            let message = crate::domain::text::clean(message.trim());
            if message.is_empty() {
                format!("the engine answered HTTP {status_code}")
            } else {
                format!("{message} (HTTP {status_code})")
            }
        }
        DockerError::RequestTimeoutError => {
            format!(
                "no answer within {}",
                crate::domain::text::duration(REQUEST_TIMEOUT)
            )
        }
        DockerError::SocketNotFoundError(path) => format!("the socket {path} does not exist"),
        _ => {
            // hyper wraps the interesting part ("Connection refused") a few levels down.
            let mut parts: Vec<String> = Vec::new();
            let mut cur: Option<&dyn std::error::Error> = Some(err);
            while let Some(e) = cur {
                let text = e.to_string();
                if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
                    parts.push(text);
                }
                cur = e.source();
            }
            parts.retain(|p| !p.starts_with("Error in the hyper legacy client"));
            if parts.is_empty() {
                err.to_string()
            } else {
                parts.join(": ")
            }
        }
    }
}

pub(super) fn status_of(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn message_of(err: &DockerError) -> &str {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message,
        _ => "",
    }
}

/// Docker's answer to an update with a stale object version.
fn is_version_conflict(err: &DockerError) -> bool {
    message_of(err).contains("update out of sequence")
}

impl Swarm {
    /// Connects, negotiates the API version, checks the engine is a swarm manager.
    /// Unreachable endpoints fail within ~5 s (15 s over ssh) with an error naming the
    /// endpoint.
    pub async fn connect(endpoint: Endpoint) -> Result<Swarm> {
        let unreachable = |why: String| {
            Error::new(format!(
                "cannot reach the Docker engine at {}: {why}",
                endpoint.describe()
            ))
            .with_kind(ErrorKind::Unreachable)
            .hint(unreachable_hint(&endpoint, &why))
        };
        let (docker, transport) = client(&endpoint)?;
        let limit = if endpoint.scheme() == Scheme::Ssh {
            FIRST_CONTACT_TIMEOUT_SSH
        } else {
            FIRST_CONTACT_TIMEOUT
        };
        let first_contact = async {
            docker.ping().await?;
            let docker = docker.negotiate_version().await?;
            let info = docker.info().await?;
            Ok::<_, DockerError>((docker, info))
        };
        let (docker, info) = match tokio::time::timeout(limit, first_contact).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(unreachable(reason(&e))),
            Err(_) => {
                return Err(unreachable(format!(
                    "no answer within {}",
                    crate::domain::text::duration(limit)
                )))
            }
        };

        let cluster_id = manager_cluster_id(&endpoint, info.swarm.unwrap_or_default())?;
        Ok(Swarm {
            docker,
            transport,
            endpoint,
            cluster_id,
            unlock_command: "swarmseal unlock".into(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sets the command that messages about a held lock tell to run to break it.
    pub fn with_unlock_command(mut self, command: String) -> Swarm {
        self.unlock_command = command;
        self
    }

    /// The underlying bollard client (API version negotiated), for diagnostics and
    /// benchmarks; swarmseal's own writes go through the methods here.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// An error about an API call, naming the endpoint.
    pub(crate) fn api_error(&self, what: &str, err: &DockerError) -> Error {
        let e = Error::new(format!(
            "{what} on {} failed: {}",
            self.endpoint.describe(),
            reason(err)
        ))
        .with_kind(ErrorKind::Docker);
        match err {
            DockerError::DockerResponseServerError { .. } => e,
            _ => e.hint("check that the engine is still reachable (`docker info`), then retry"),
        }
    }

    /// The tasks of a service (only those meant to run, with `running_only`).
    pub(super) async fn tasks_of(
        &self,
        service_id: &str,
        running_only: bool,
    ) -> std::result::Result<Vec<Task>, DockerError> {
        let mut filters = HashMap::from([("service", vec![service_id])]);
        if running_only {
            filters.insert("desired-state", vec!["running"]);
        }
        self.docker
            .list_tasks(Some(
                ListTasksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
    }

    /// The secret IDs the service's tasks (its task history included) ran with.
    pub(super) async fn task_secret_ids(&self, service_id: &str) -> Result<Vec<String>> {
        let tasks = self.tasks_of(service_id, false).await.map_err(|e| {
            self.api_error(&format!("listing the tasks of service {service_id}"), &e)
        })?;
        let ids: BTreeSet<String> = tasks
            .into_iter()
            .filter_map(|t| t.spec?.container_spec?.secrets)
            .flatten()
            .filter_map(|r| r.secret_id)
            .collect();
        Ok(ids.into_iter().collect())
    }

    /// The services (current and previous references, update state) as they are now: for
    /// the last look before removals.
    pub async fn services(&self) -> Result<Vec<ServiceRefs>> {
        super::services::list(&self.transport, &self.docker)
            .await
            .map_err(|e| self.api_error("listing the Swarm's services", &e))
    }

    /// Creates a secret; if one with this name exists with the same labels (an interrupted
    /// apply), returns its ID instead.
    pub async fn create_secret(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &[u8],
    ) -> Result<String> {
        self.create(Kind::Secret, name, labels, data).await
    }

    /// Creates a secret or config; if one of this kind and name exists with the same labels
    /// (an interrupted apply), returns its ID instead.
    pub async fn create(
        &self,
        kind: Kind,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &[u8],
    ) -> Result<String> {
        // Our base64 copy of the value is wiped when `encoded` drops. bollard takes the spec
        // by value and serialises it into its request body; those copies are bollard's, freed
        // without wiping (its API offers no way to reach them).
        let mut encoded = Zeroizing::new(String::with_capacity(data.len().div_ceil(3) * 4 + 4));
        base64::engine::general_purpose::STANDARD.encode_string(data, &mut encoded);
        let created = self.api_create(kind, name, labels, encoded.as_str()).await;
        drop(encoded);
        match created {
            Ok(id) => Ok(id),
            Err(e) if status_of(&e) == Some(409) => {
                let existing = self.inspect_named(kind, name).await?;
                match existing {
                    Some(s) if &s.labels == labels => Ok(s.id),
                    Some(s) => Err(Error::new(format!(
                        "cannot create {kind} {name} on {}: a {kind} with that name already \
                         exists (ID {}) with other labels",
                        self.endpoint.describe(),
                        s.id
                    ))
                    .hint(format!(
                        "swarmseal does not touch {kind}s it did not create; inspect it with \
                         `docker {kind} inspect {name}` and remove or rename it if it is a leftover"
                    ))),
                    None => Err(self.api_error(&format!("creating {kind} {name}"), &e)),
                }
            }
            Err(e) => Err(self.api_error(&format!("creating {kind} {name}"), &e)),
        }
    }

    /// The secret with exactly this name, if any.
    pub(crate) async fn inspect_secret_named(&self, name: &str) -> Result<Option<SwarmSecret>> {
        self.inspect_named(Kind::Secret, name).await
    }

    /// The secret or config with exactly this name, if any.
    pub(crate) async fn inspect_named(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<SwarmSecret>> {
        match self.api_inspect(kind, name).await {
            // Docker also resolves ID prefixes; only an exact name counts.
            Ok(s) if s.object.name != name => Ok(None),
            Ok(s) => Ok(Some(s.object)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.api_error(&format!("inspecting {kind} {name}"), &e)),
        }
    }

    /// Replaces a managed secret's labels (the one thing Swarm lets change). Refuses a secret
    /// that does not carry the project and environment named in `labels`.
    pub async fn update_secret_labels(
        &self,
        secret: &SwarmSecret,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.update_labels(Kind::Secret, secret, labels).await
    }

    /// [`Swarm::update_secret_labels`] for a secret or config.
    pub async fn update_labels(
        &self,
        kind: Kind,
        secret: &SwarmSecret,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let what = format!("updating the labels of {kind} {}", secret.name);
        for _attempt in 0..UPDATE_ATTEMPTS {
            let current = match self.api_inspect(kind, &secret.id).await {
                Ok(s) => s,
                Err(e) if status_of(&e) == Some(404) => {
                    return Err(Error::new(format!(
                        "cannot update the labels of {kind} {} on {}: it no longer exists",
                        secret.name,
                        self.endpoint.describe()
                    ))
                    .hint("someone removed it meanwhile; run plan again"))
                }
                Err(e) => return Err(self.api_error(&what, &e)),
            };
            let current_labels = &current.object.labels;
            let same_scope = |key: &str| {
                current_labels
                    .get(key)
                    .is_some_and(|v| labels.get(key) == Some(v))
            };
            if current_labels.get(labels::MANAGED).map(String::as_str) != Some("true")
                || !same_scope(labels::PROJECT)
                || !same_scope(labels::ENVIRONMENT)
            {
                return Err(Error::new(format!(
                    "refusing to update the labels of {kind} {} on {}: it is not a managed {kind} \
                     of this project and environment",
                    secret.name,
                    self.endpoint.describe()
                ))
                .hint(format!(
                    "swarmseal only changes {kind}s carrying its project's labels; run plan again"
                )));
            }
            let version = current.object.version;
            let version = i64::try_from(version).map_err(|_| {
                Error::new(format!(
                    "{kind} {} has an out-of-range version {version}",
                    secret.name
                ))
            })?;
            match self.api_update_labels(current, labels, version).await {
                Ok(()) => return Ok(()),
                Err(e) if is_version_conflict(&e) => continue,
                Err(e) => return Err(self.api_error(&what, &e)),
            }
        }
        Err(Error::new(format!(
            "{what} on {}: it kept changing under us ({UPDATE_ATTEMPTS} attempts)",
            self.endpoint.describe()
        ))
        .hint("something else is modifying it; retry when it is quiet"))
    }

    /// Removes a secret; Docker's refusal for a secret in use is an outcome, not an error.
    pub async fn remove_secret(&self, id: &str, name: &str) -> Result<RemoveOutcome> {
        self.remove(Kind::Secret, id, name).await
    }

    /// [`Swarm::remove_secret`] for a secret or config.
    pub async fn remove(&self, kind: Kind, id: &str, name: &str) -> Result<RemoveOutcome> {
        match self.api_delete(kind, id).await {
            Ok(()) => Ok(RemoveOutcome::Removed),
            Err(e) if status_of(&e) == Some(404) => Ok(RemoveOutcome::Gone),
            Err(e) if message_of(&e).contains("in use by") => Ok(RemoveOutcome::InUse(
                crate::domain::text::clean(message_of(&e).trim()).into_owned(),
            )),
            Err(e) => Err(self.api_error(&format!("removing {kind} {name}"), &e)),
        }
    }

    pub(super) async fn inspect_service(
        &self,
        service_id: &str,
    ) -> std::result::Result<Service, DockerError> {
        self.docker.inspect_service(service_id, None).await
    }

    /// One service update swapping references; re-reads and retries on version conflicts.
    /// Returns false when no reference needed swapping any more (already done, or the
    /// service is gone).
    pub async fn repoint_service(&self, service_id: &str, swaps: &[Swap]) -> Result<bool> {
        self.update_spec(service_id, |spec| {
            let Some(c) = spec
                .task_template
                .as_mut()
                .and_then(|t| t.container_spec.as_mut())
            else {
                return false;
            };
            let of = |kind: Kind| swaps.iter().filter(move |s| s.kind == kind);
            let secrets = c
                .secrets
                .as_mut()
                .is_some_and(|refs| apply_swaps(refs, of(Kind::Secret)));
            let configs = c
                .configs
                .as_mut()
                .is_some_and(|refs| apply_swaps(refs, of(Kind::Config)));
            secrets || configs
        })
        .await
    }

    /// Submits a service's spec again, unchanged: its previous spec becomes the current
    /// one. After a reference to a secret that no longer exists was repaired, the previous
    /// spec still holds the broken reference, and a rollback would bring it back; this
    /// closes that door. No task is replaced (the task spec does not change).
    pub async fn settle_previous(&self, service_id: &str) -> Result<()> {
        self.update_spec(service_id, |_| true).await.map(|_| ())
    }

    /// Reads the service's spec, lets `edit` change it (false: nothing to change), and
    /// submits it at the version read, again on a version conflict (another writer came
    /// between). True when an update was sent; false when the service is gone or `edit`
    /// changed nothing.
    async fn update_spec(
        &self,
        service_id: &str,
        edit: impl Fn(&mut ServiceSpec) -> bool,
    ) -> Result<bool> {
        let mut last_conflict = None;
        for _attempt in 0..UPDATE_ATTEMPTS {
            let service = match self.inspect_service(service_id).await {
                Ok(s) => s,
                Err(e) if status_of(&e) == Some(404) => return Ok(false),
                Err(e) => {
                    return Err(self.api_error(&format!("inspecting service {service_id}"), &e))
                }
            };
            let name = service_name(&service, service_id);
            let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let Some(mut spec) = service.spec else {
                return Ok(false);
            };
            if !edit(&mut spec) {
                return Ok(false);
            }
            let version = i32::try_from(version).map_err(|_| {
                Error::new(format!(
                    "cannot update service {name} on {}: its version {version} is beyond what \
                     the Docker API client supports",
                    self.endpoint.describe()
                ))
                .hint("update the service's secrets with `docker service update --secret-rm/--secret-add`")
            })?;
            let options = UpdateServiceOptionsBuilder::new().version(version).build();
            match self
                .docker
                .update_service(service_id, spec, options, None)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) if is_version_conflict(&e) => {
                    last_conflict = Some(e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) if status_of(&e) == Some(404) => return Ok(false),
                Err(e) => {
                    return Err(self
                        .api_error(&format!("updating service {name}"), &e)
                        .or_hint(format!(
                            "inspect it with `docker service inspect {name}`; nothing was changed"
                        )))
                }
            }
        }
        let why = last_conflict.map(|e| reason(&e)).unwrap_or_default();
        Err(Error::new(format!(
            "cannot update service {service_id} on {}: it changed {UPDATE_ATTEMPTS} times while \
             swarmseal was updating it ({why})",
            self.endpoint.describe()
        ))
        .hint("something else (another deploy?) is updating it; retry apply when it is done"))
    }
}

pub(super) fn secret_keys(
    refs: Option<&Vec<TaskSpecContainerSpecSecrets>>,
) -> BTreeSet<(String, String)> {
    refs.map(|refs| {
        refs.iter()
            .map(|r| {
                (
                    r.secret_id.clone().unwrap_or_default(),
                    r.file
                        .as_ref()
                        .and_then(|f| f.name.clone())
                        .unwrap_or_default(),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

pub(super) fn service_name(service: &Service, fallback: &str) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| fallback.to_owned())
}

/// Connections kept open per command (keep-alive pool): enough for `--parallel`.
const POOL: usize = 8;

/// The cluster ID of the Swarm whose manager answered, or why it cannot serve (not in
/// swarm mode, locked, joining, a worker).
fn manager_cluster_id(endpoint: &Endpoint, swarm: SwarmInfo) -> Result<String> {
    let at = endpoint.describe();
    match swarm.local_node_state {
        Some(LocalNodeState::ACTIVE) => {}
        Some(LocalNodeState::LOCKED) => {
            return Err(Error::new(format!(
                "the Docker engine at {at} is part of a locked Swarm"
            ))
            .with_kind(ErrorKind::WrongSwarm)
            .hint("unlock it with `docker swarm unlock` on that node, then retry"))
        }
        Some(LocalNodeState::PENDING) => {
            return Err(Error::new(format!(
                "the Docker engine at {at} is still joining a Swarm"
            ))
            .with_kind(ErrorKind::WrongSwarm)
            .hint("wait until `docker info` there shows Swarm: active, then retry"))
        }
        Some(LocalNodeState::ERROR) => {
            return Err(Error::new(format!(
                "the Docker engine at {at} reports a Swarm error: {}",
                swarm.error.as_deref().unwrap_or("(no details)")
            ))
            .hint("check `docker info` on that node"))
        }
        _ => {
            return Err(Error::new(format!(
                "the Docker engine at {at} is not in swarm mode; Swarm secrets need a Swarm"
            ))
            .with_kind(ErrorKind::WrongSwarm)
            .hint(
                "run `docker swarm init` there to make it a single-node Swarm, or point \
                 --host/DOCKER_HOST at a manager of your Swarm",
            ))
        }
    }
    if swarm.control_available != Some(true) {
        return Err(Error::new(format!(
            "the Docker engine at {at} is a Swarm worker, not a manager; secrets and services \
             can only be managed through a manager"
        ))
        .with_kind(ErrorKind::WrongSwarm)
        .hint("run against a manager node (`docker node ls` on a manager lists them) with --host or DOCKER_HOST"));
    }
    swarm
        .cluster
        .and_then(|c| c.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Error::new(format!(
                "the Docker engine at {at} is a Swarm manager but reports no cluster ID"
            ))
            .hint("check `docker info` on that node")
        })
}

/// Swaps the references of a service's spec that point at an old version to the new one,
/// with the manifest's mount settings where it sets them (else the service's own, else
/// Docker's defaults). True when a reference changed.
fn apply_swaps<'s, R: Reference>(
    refs: &mut [R],
    swaps: impl Iterator<Item = &'s Swap> + Clone,
) -> bool {
    let mut changed = false;
    for r in refs.iter_mut() {
        let at = r.file().name;
        let Some(swap) = swaps.clone().find(|s| {
            r.id() == Some(s.old_id.as_str())
                && s.old_target
                    .as_deref()
                    .is_none_or(|t| Some(t) == at.as_deref())
        }) else {
            continue;
        };
        let old = r.file();
        let file = TaskSpecContainerSpecFile {
            name: swap.target.clone().or(old.name).or(r.name()),
            uid: swap.uid.clone().or(old.uid).or(Some("0".into())),
            gid: swap.gid.clone().or(old.gid).or(Some("0".into())),
            mode: swap.mode.or(old.mode).or(Some(0o444)),
        };
        *r = R::new(swap.new_id.clone(), swap.new_name.clone(), file);
        changed = true;
    }
    changed
}

/// A secret or config reference of a service's spec (see [`apply_swaps`]).
trait Reference {
    fn id(&self) -> Option<&str>;
    fn name(&self) -> Option<String>;
    /// Its file target (name, uid, gid, mode), as a secret reference's.
    fn file(&self) -> TaskSpecContainerSpecFile;
    fn new(id: String, name: String, file: TaskSpecContainerSpecFile) -> Self;
}

impl Reference for TaskSpecContainerSpecSecrets {
    fn id(&self) -> Option<&str> {
        self.secret_id.as_deref()
    }
    fn name(&self) -> Option<String> {
        self.secret_name.clone()
    }
    fn file(&self) -> TaskSpecContainerSpecFile {
        self.file.clone().unwrap_or_default()
    }
    fn new(id: String, name: String, file: TaskSpecContainerSpecFile) -> Self {
        TaskSpecContainerSpecSecrets {
            secret_id: Some(id),
            secret_name: Some(name),
            file: Some(file),
        }
    }
}

impl Reference for TaskSpecContainerSpecConfigs {
    fn id(&self) -> Option<&str> {
        // A `Runtime` reference (credential specs) mounts nothing: never swapped.
        self.file.as_ref().and(self.config_id.as_deref())
    }
    fn name(&self) -> Option<String> {
        self.config_name.clone()
    }
    fn file(&self) -> TaskSpecContainerSpecFile {
        let f = self.file.clone().unwrap_or_default();
        TaskSpecContainerSpecFile {
            name: f.name,
            uid: f.uid,
            gid: f.gid,
            mode: f.mode,
        }
    }
    fn new(id: String, name: String, f: TaskSpecContainerSpecFile) -> Self {
        TaskSpecContainerSpecConfigs {
            config_id: Some(id),
            config_name: Some(name),
            file: Some(TaskSpecContainerSpecFile1 {
                name: f.name,
                uid: f.uid,
                gid: f.gid,
                mode: f.mode,
            }),
            runtime: None,
        }
    }
}

/// A bollard client for the endpoint over swarmseal's own transport (no network traffic
/// yet); the TLS files are read here, and their errors name them.
fn client(endpoint: &Endpoint) -> Result<(Docker, Transport)> {
    let dial = match endpoint.address() {
        Address::Unix(path) => Dial::Unix(path.into()),
        Address::Http(hostport) => Dial::Tcp(hostport.clone()),
        Address::Ssh(target) => Dial::Ssh(Box::new(SshDial::new(target.clone()))),
        Address::Tls(hostport) => {
            let files = endpoint
                .tls_files()
                .ok_or_else(|| Error::new("a TLS endpoint without certificates"))?;
            let client_cert = (files.cert.is_file() && files.key.is_file())
                .then_some((files.cert.as_path(), files.key.as_path()));
            let config = super::transport::tls_config(&files.ca, client_cert)?;
            let host = hostport
                .rsplit_once(':')
                .map_or(hostport.as_str(), |(h, _)| h);
            Dial::Tls {
                addr: hostport.clone(),
                server_name: super::transport::server_name(host)?,
                config,
            }
        }
    };
    let transport = Transport::new(dial, POOL);
    let docker = transport.docker(REQUEST_TIMEOUT.as_secs()).map_err(|e| {
        Error::new(format!(
            "cannot set up a client for {}: {e}",
            endpoint.describe()
        ))
    })?;
    Ok((docker, transport))
}

fn unreachable_hint(endpoint: &Endpoint, why: &str) -> String {
    let lower = why.to_ascii_lowercase();
    if lower.contains("permission denied") && endpoint.scheme() == Scheme::Unix {
        return "your user may not use the Docker socket: add it to the docker group (and log in \
                again), or run with sufficient rights"
            .into();
    }
    if let Some(tls) = endpoint.tls_files() {
        let has_client_cert = tls.cert.is_file() && tls.key.is_file();
        // The engine refused the handshake: without a client certificate of ours, that is
        // what it wants (Go's TLS says "bad certificate", openssl "certificate required").
        let refused_us = lower.contains("certificaterequired")
            || lower.contains("certificate required")
            || (!has_client_cert
                && (lower.contains("badcertificate") || lower.contains("bad certificate")));
        if refused_us {
            return format!(
                "the engine wants a client certificate: put cert.pem and key.pem (signed by the \
                 engine's CA) into {}, next to ca.pem",
                tls.dir.display()
            );
        }
        if lower.contains("invalid peer certificate") {
            return format!(
                "the engine's certificate does not check out against {} (signed by another CA, \
                 expired, or not issued for the host name in the URL); use the engine's CA \
                 certificate, or the host name its certificate names",
                tls.ca.display()
            );
        }
    }
    if let Address::Ssh(target) = endpoint.address() {
        let host = &target.host;
        let port = target.port.map(|p| format!("-p {p} ")).unwrap_or_default();
        if why.contains("Host key verification failed") {
            return format!(
                "the host key of {host} is not in your known_hosts (or does not match it); swarmseal, \
                 like the docker CLI, never trusts a host key it has not seen. Check the key's \
                 fingerprint out-of-band, then add it: `ssh-keyscan {port}{host} >> ~/.ssh/known_hosts` \
                 (in CI, from a variable holding the known_hosts line)"
            );
        }
        if why.contains("Permission denied") {
            return format!(
                "ssh could not log in to {host}: give it a key the server accepts (ssh-agent, \
                 IdentityFile in ~/.ssh/config, or -i in a Host entry); swarmseal never asks for \
                 a password without a terminal"
            );
        }
        if why.contains("docker: command not found") || why.contains("docker: not found") {
            return format!(
                "{host} has no docker CLI for its ssh user: install it there (it runs `docker \
                 system dial-stdio`), or use another endpoint"
            );
        }
    }
    let mut hint = String::from("is the Docker daemon running there? ");
    match endpoint.scheme() {
        Scheme::Ssh => hint.push_str(
            "Can you `ssh` to that host without a password prompt, and run `docker version` \
             there? ",
        ),
        Scheme::Tls => hint.push_str(
            "Does the engine listen with TLS on that port, and did its CA sign the certificate? ",
        ),
        _ => {}
    }
    hint.push_str(&format!(
        "Is the endpoint right? It came from {}; choose another with --host, the environment's \
         docker_host, DOCKER_HOST or `docker context use`",
        endpoint.source
    ));
    hint
}
