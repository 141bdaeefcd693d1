//! The apply lock: a marker secret whose creation is atomic on the Swarm (`docs/design.md#apply-lock`).
//!
//! `swarmseal-lock-<first 16 hex of sha256("<project>/<env>")>`, labelled
//! `io.swarmseal.lock=<project>/<env>`, `io.swarmseal.lock.holder=<user@host pid N>`,
//! `io.swarmseal.lock.created=<RFC 3339>`, `io.swarmseal.lock.process=<token>` (see
//! [`super::holder`]); its data is a fixed, non-secret text.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::client::Swarm;
use super::holder::{Holder, Liveness};
use super::{Lock, LockInfo, RemoveOutcome};
use crate::domain::state::{labels, SwarmSecret};
use crate::error::{Error, ErrorKind, Result};

/// The marker secret's content (not secret).
pub const LOCK_DATA: &[u8] = b"swarmseal apply lock";
/// How often a waiting `lock` tries again.
const RETRY: Duration = Duration::from_secs(1);

/// The marker secret's name for a project and environment.
pub fn lock_name(project: &str, env: &str) -> String {
    let digest = Sha256::digest(format!("{project}/{env}").as_bytes());
    format!("swarmseal-lock-{}", &hex::encode(digest)[..16])
}

impl Swarm {
    /// Takes the apply lock of project/env, waiting up to `timeout` for a holder to release
    /// it.
    pub async fn lock(
        &self,
        project: &str,
        env: &str,
        holder: &Holder,
        timeout: Duration,
    ) -> Result<Lock> {
        let name = lock_name(project, env);
        let scope = format!("{project}/{env}");
        let start = Instant::now();
        loop {
            let created = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
            let mut lock_labels = BTreeMap::from([
                (labels::LOCK.to_owned(), scope.clone()),
                (labels::LOCK_HOLDER.to_owned(), holder.label.clone()),
                (labels::LOCK_CREATED.to_owned(), created),
            ]);
            if let Some(process) = &holder.process {
                lock_labels.insert(labels::LOCK_PROCESS.to_owned(), process.clone());
            }
            let spec = bollard::models::SecretSpec {
                name: Some(name.clone()),
                labels: Some(lock_labels.into_iter().collect()),
                data: Some(base64_encode(LOCK_DATA)),
                ..Default::default()
            };
            let err = match self.docker.create_secret(spec).await {
                Ok(resp) => return Ok(Lock { id: resp.id, name }),
                Err(e) => e,
            };
            if !matches!(
                err,
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 409,
                    ..
                }
            ) {
                return Err(self.api_error(&format!("taking the apply lock for {scope}"), &err));
            }
            // Held: by whom? (It may also have been released a moment ago.)
            let info = self.lock_info(project, env).await?;
            let waited = start.elapsed();
            let Some(info) = info else {
                // Released between our create and the look-up: try again at once, but never
                // spin past the deadline.
                if waited >= timeout + RETRY {
                    return Err(Error::new(format!(
                        "cannot take the apply lock for {scope} on {}: Docker reports the marker \
                         secret {name} both existing and missing",
                        self.endpoint().describe()
                    ))
                    .hint(format!("check `docker secret inspect {name}`, then retry")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if waited >= timeout {
                let hint = match info.liveness() {
                    Liveness::Dead => format!(
                        "break the lock with `{}` (it removes the marker secret {}), then apply again",
                        self.unlock_command, info.name
                    ),
                    _ => format!(
                        "another apply is running: wait for it to finish (or give --lock-timeout a \
                         longer duration); if that apply is dead, break the lock with `{}` (it \
                         removes the marker secret {})",
                        self.unlock_command, info.name
                    ),
                };
                return Err(Error::new(format!(
                    "the apply lock for {scope} on {} is held by {}",
                    self.endpoint().describe(),
                    info.describe()
                ))
                .with_kind(ErrorKind::LockHeld)
                .hint(hint));
            }
            tokio::time::sleep(RETRY.min(timeout - waited)).await;
        }
    }

    /// Releases a lock taken by [`Swarm::lock`]; a lock broken meanwhile is not an error.
    pub async fn release(&self, lock: Lock) -> Result<()> {
        match self.remove_secret(&lock.id, &lock.name).await? {
            RemoveOutcome::Removed | RemoveOutcome::Gone => Ok(()),
            RemoveOutcome::InUse(msg) => Err(Error::new(format!(
                "cannot release the apply lock {} on {}: {msg}",
                lock.name,
                self.endpoint().describe()
            ))
            .hint(format!(
                "a service mounts the lock marker; remove it from the service, then `docker \
                 secret rm {}`",
                lock.name
            ))),
        }
    }

    /// Who holds the apply lock of project/env, if anyone.
    pub async fn lock_info(&self, project: &str, env: &str) -> Result<Option<LockInfo>> {
        let name = lock_name(project, env);
        Ok(self.inspect_secret_named(&name).await?.map(|s| info_of(&s)))
    }

    /// Breaks the apply lock of project/env; returns who held it (None: it was not held).
    /// A holder that is visibly running on this host is refused unless `force`.
    pub async fn unlock(&self, project: &str, env: &str, force: bool) -> Result<Option<LockInfo>> {
        let name = lock_name(project, env);
        let Some(secret) = self.inspect_secret_named(&name).await? else {
            return Ok(None);
        };
        let info = info_of(&secret);
        if !force && info.liveness() == Liveness::Alive {
            return Err(Error::new(format!(
                "the apply lock of {project}/{env} on {} is held by {}: that apply is still running",
                self.endpoint().describe(),
                info.describe()
            ))
            .with_kind(ErrorKind::LockHeld)
            .hint("wait for it to finish, or stop it (it releases the lock on Ctrl-C or SIGTERM); `swarmseal unlock --force` breaks the lock anyway, and then two applies may run at once"));
        }
        match self.remove_secret(&secret.id, &name).await? {
            RemoveOutcome::Removed => Ok(Some(info_of(&secret))),
            RemoveOutcome::Gone => Ok(None),
            RemoveOutcome::InUse(msg) => Err(Error::new(format!(
                "cannot remove the apply lock {name} on {}: {msg}",
                self.endpoint().describe()
            ))
            .hint(format!(
                "a service mounts the lock marker; remove it from the service, then `docker \
                 secret rm {name}`"
            ))),
        }
    }
}

fn info_of(secret: &SwarmSecret) -> LockInfo {
    let label = |key: &str| secret.labels.get(key).cloned();
    LockInfo {
        name: secret.name.clone(),
        holder: label(labels::LOCK_HOLDER).unwrap_or_else(|| "(unknown holder)".to_owned()),
        created: label(labels::LOCK_CREATED).unwrap_or_else(|| secret.created_at.clone()),
        process: label(labels::LOCK_PROCESS),
    }
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl super::Listing {
    /// Who holds the apply lock of project/env, as the listing saw it (see
    /// [`Swarm::lock_info`]).
    pub fn lock_info(&self, project: &str, env: &str) -> Option<LockInfo> {
        let name = lock_name(project, env);
        self.locks.iter().find(|s| s.name == name).map(info_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_name_is_stable_and_short() {
        let name = lock_name("shop", "production");
        assert!(name.starts_with("swarmseal-lock-"));
        assert_eq!(name.len(), "swarmseal-lock-".len() + 16);
        assert_eq!(name, lock_name("shop", "production"));
        assert_ne!(name, lock_name("shop", "staging"));
    }
}
