//! The Swarm client (bollard): endpoint resolution, connection checks, observation of
//! secrets and services, and the few writes apply needs. See the contract below.
//!
//! CONTRACT (owned by the Swarm-client engineer; commands and the executor rely on it):
//!
//! ```ignore
//! pub struct Endpoint { pub url: String, pub source: String, /* private: TLS material */ }
//! /// --host, then the environment's docker_host, then DOCKER_HOST (+ DOCKER_TLS_VERIFY,
//! /// DOCKER_CERT_PATH), then the current docker context, then unix:///var/run/docker.sock.
//! pub fn resolve_endpoint(cli_host: Option<&str>, env_docker_host: Option<&str>) -> Result<Endpoint>;
//!
//! pub struct Swarm { /* bollard::Docker, endpoint */ pub cluster_id: String }
//! impl Swarm {
//!     /// Connects, negotiates the API version, checks the engine is a swarm manager.
//!     /// Unreachable endpoints fail within ~5 s with an error naming the endpoint.
//!     pub async fn connect(endpoint: Endpoint) -> Result<Swarm>;
//!     pub fn endpoint(&self) -> &Endpoint;
//!     /// One list of secrets + one list of services: managed secrets of project/env,
//!     /// unmanaged secrets (no io.swarmseal.* label) whose name is in `names`, and every
//!     /// service's secret references.
//!     pub async fn observe(&self, project: &str, env: &str, names: &BTreeSet<String>) -> Result<Observed>;
//!     /// Creates a secret; if one with this name exists with the same labels (an
//!     /// interrupted apply), returns its ID instead.
//!     pub async fn create_secret(&self, name: &str, labels: &BTreeMap<String, String>, data: &[u8]) -> Result<String>;
//!     pub async fn update_secret_labels(&self, secret: &SwarmSecret, labels: &BTreeMap<String, String>) -> Result<()>;
//!     pub async fn remove_secret(&self, id: &str, name: &str) -> Result<RemoveOutcome>;
//!     /// One service update swapping references; re-reads and retries on version conflicts.
//!     /// Returns false when no reference needed swapping any more (already done).
//!     pub async fn repoint_service(&self, service_id: &str, swaps: &[Swap]) -> Result<bool>;
//!     /// Polls until the service's update completed (Ok) or failed/paused/rolled back (Err).
//!     pub async fn wait_converged(&self, service_id: &str, timeout: Duration) -> Result<()>;
//!     pub async fn lock(&self, project: &str, env: &str, holder: &str, timeout: Duration) -> Result<Lock>;
//!     pub async fn release(&self, lock: Lock) -> Result<()>;
//!     pub async fn lock_info(&self, project: &str, env: &str) -> Result<Option<LockInfo>>;
//!     pub async fn unlock(&self, project: &str, env: &str) -> Result<Option<LockInfo>>;
//! }
//! pub enum RemoveOutcome { Removed, Gone, InUse(String /* docker's message naming services */) }
//! pub struct Swap { pub old_id: String, pub new_id: String, pub new_name: String,
//!                   pub target: Option<String>, pub uid: Option<String>, pub gid: Option<String>, pub mode: Option<u32> }
//! pub struct Lock { pub id: String, pub name: String }
//! pub struct LockInfo { pub name: String, pub holder: String, pub created: String }
//! ```
