//! Waiting for a service update to converge: Docker's update status, and the tasks that
//! run with the new spec's secrets, polled until the update completes, fails, is paused or
//! rolled back, or the time is up.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bollard::models::{
    Service, ServiceUpdateStatus as UpdateStatus, ServiceUpdateStatusStateEnum, TaskState,
};

use super::client::{secret_keys, service_name, status_of, Swarm};
use super::{Health, WaitProgress};
use crate::error::{Error, ErrorKind, Result};

/// Poll interval of [`Swarm::wait_converged`].
const CONVERGE_POLL: Duration = Duration::from_millis(500);
/// Consecutive polls without an update status but with up-to-date tasks that count as
/// converged (Docker may not have published the update's status yet at the first one).
const QUIET_POLLS: u32 = 3;

impl Swarm {
    /// Polls until the service's update completed (Ok) or failed/paused/rolled back (Err),
    /// telling `progress` what it sees at every poll.
    pub async fn wait_converged(
        &self,
        service_id: &str,
        timeout: Duration,
        progress: &(dyn Fn(&WaitProgress) + Sync),
    ) -> Result<()> {
        let start = Instant::now();
        let mut name = service_id.to_owned();
        let mut quiet = 0u32;
        loop {
            let look = self.converge_step(service_id, &mut name).await?;
            let state = match &look.step {
                Step::Done => "converged",
                Step::Quiet => "tasks up to date",
                Step::Updating => "updating",
                Step::Waiting(_) => "starting tasks",
            };
            progress(&WaitProgress {
                state,
                done: look.done,
                total: look.total,
                elapsed: start.elapsed(),
            });
            let last_state = match look.step {
                Step::Done => return Ok(()),
                Step::Quiet => {
                    quiet += 1;
                    if quiet >= QUIET_POLLS {
                        return Ok(());
                    }
                    "no update in progress, tasks up to date".to_owned()
                }
                Step::Updating => {
                    quiet = 0;
                    format!("updating, {} of {} tasks updated", look.done, look.total)
                }
                Step::Waiting(state) => {
                    quiet = 0;
                    state
                }
            };
            if start.elapsed() >= timeout {
                return Err(Error::new(format!(
                    "service {name} on {} did not finish its update within {} (last state: \
                     {last_state})",
                    self.endpoint.describe(),
                    crate::domain::text::duration(timeout)
                ))
                .with_kind(ErrorKind::UpdateFailed)
                .hint(format!(
                    "the update goes on in the background; watch it with `docker service ps \
                     {name}`. The old secret versions are kept until services stop using them \
                     (a later apply removes them)"
                )));
            }
            let left = timeout.saturating_sub(start.elapsed());
            tokio::time::sleep(CONVERGE_POLL.min(left.max(Duration::from_millis(10)))).await;
        }
    }

    /// One look at a service that apply does not update: is an update of it in progress
    /// (to be waited for), or is it unhealthy (to be named in a warning)?
    pub async fn health(&self, service_id: &str) -> Result<Health> {
        let mut name = service_id.to_owned();
        match self.converge_step(service_id, &mut name).await {
            Ok(Look {
                step: Step::Done | Step::Quiet,
                ..
            }) => Ok(Health::Healthy),
            Ok(Look {
                step: Step::Updating,
                ..
            }) => Ok(Health::Updating),
            Ok(Look {
                step: Step::Waiting(state),
                ..
            }) => Ok(Health::Unhealthy(state)),
            Err(e) if self.inspect_service(service_id).await.is_ok() => {
                Ok(Health::Unhealthy(e.message().to_owned()))
            }
            Err(e) => Err(e),
        }
    }

    async fn converge_step(&self, service_id: &str, name: &mut String) -> Result<Look> {
        let service = match self.inspect_service(service_id).await {
            Ok(s) => s,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(Error::new(format!(
                    "service {name} on {} was removed while swarmseal waited for its update",
                    self.endpoint.describe()
                ))
                .hint("run plan again to see what is left to do"))
            }
            Err(e) => return Err(self.api_error(&format!("inspecting service {name}"), &e)),
        };
        *name = service_name(&service, service_id);
        let name = name.as_str();
        let (updating, completed) = match &service.update_status {
            Some(status) => self.update_state(service_id, name, status).await?,
            None => (false, false),
        };
        // Without an update status: Docker sets none when no task needed updating (no
        // replicas, say), but also shows none for a moment before its updater starts, while
        // tasks are being replaced. So: quiet when the tasks meant to run all run with the
        // spec's secrets (as many as the replica count says), and done only once that holds
        // over a few polls. The same count is the progress of an update under way.
        let Tasks {
            pending,
            short,
            running,
        } = self.tasks_behind(service_id, name, &service).await?;
        let total = running + short;
        let done = running - pending;
        let step = if completed {
            Step::Done
        } else if updating {
            Step::Updating
        } else if pending == 0 && short == 0 {
            Step::Quiet
        } else if pending == 0 {
            Step::Waiting(format!("{running} of {total} replicas running"))
        } else {
            Step::Waiting(format!(
                "{pending} of {running} tasks not yet running with the new secrets"
            ))
        };
        Ok(Look { step, done, total })
    }

    /// Where Docker's update status stands: `(updating, completed)`, or the error of a
    /// paused or rolled-back update (with the last task error as its reason).
    async fn update_state(
        &self,
        service_id: &str,
        name: &str,
        status: &UpdateStatus,
    ) -> Result<(bool, bool)> {
        let mut message =
            crate::domain::text::clean(status.message.as_deref().unwrap_or_default()).into_owned();
        let failing_state = matches!(
            status.state,
            Some(
                ServiceUpdateStatusStateEnum::PAUSED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
                    | ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED
            )
        );
        if failing_state {
            if let Some(task_error) = self.last_task_error(service_id).await {
                if message.is_empty() {
                    message = task_error;
                } else {
                    message = format!("{message}; last task error: {task_error}");
                }
            }
        }
        let failed = |what: &str| {
            Err(Error::new(format!(
                "the update of service {name} on {} {what}: {}",
                self.endpoint.describe(),
                if message.is_empty() {
                    "(Docker gave no reason)"
                } else {
                    &message
                }
            ))
            .with_kind(ErrorKind::UpdateFailed)
            .hint(format!(
                "swarmseal kept the old secret versions; inspect the tasks with `docker \
                 service ps {name}` and `docker service inspect {name}`, fix the cause and \
                 run apply again (plan shows the service as `repair`)"
            )))
        };
        match status.state {
            // Docker resets the status when a service is updated, so a "completed" here
            // is the latest update's.
            Some(ServiceUpdateStatusStateEnum::COMPLETED) => Ok((false, true)),
            Some(ServiceUpdateStatusStateEnum::PAUSED) => failed("paused"),
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) => {
                failed("failed and is being rolled back")
            }
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
                failed("failed and its rollback paused")
            }
            Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) => {
                failed("failed and was rolled back")
            }
            Some(ServiceUpdateStatusStateEnum::UPDATING) => Ok((true, false)),
            _ => Ok((false, false)),
        }
    }

    /// How far the service's tasks are behind its spec: tasks meant to run that do not yet
    /// run with the spec's secrets, and replicas not even started.
    async fn tasks_behind(&self, service_id: &str, name: &str, service: &Service) -> Result<Tasks> {
        let replicas = service
            .spec
            .as_ref()
            .and_then(|s| s.mode.as_ref())
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas);
        let wanted = reference_keys(
            service
                .spec
                .as_ref()
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref()),
        );
        let tasks = self
            .tasks_of(service_id, true)
            .await
            .map_err(|e| self.api_error(&format!("listing the tasks of service {name}"), &e))?;
        let mut pending = 0usize;
        for task in &tasks {
            let running = task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
            let has = reference_keys(task.spec.as_ref().and_then(|t| t.container_spec.as_ref()));
            if !running || has != wanted {
                pending += 1;
            }
        }
        let short = replicas
            .and_then(|r| usize::try_from(r).ok())
            .map_or(0, |r| r.saturating_sub(tasks.len()));
        Ok(Tasks {
            pending,
            short,
            running: tasks.len(),
        })
    }
}

impl Swarm {
    /// The most recent task error of a service (`docker service ps --no-trunc` ERROR), to
    /// explain a failed update; None when there is none or it cannot be read.
    async fn last_task_error(&self, service_id: &str) -> Option<String> {
        let tasks = self.tasks_of(service_id, false).await.ok()?;
        tasks
            .into_iter()
            .filter_map(|t| {
                let status = t.status?;
                let err = status.err.filter(|e| !e.trim().is_empty())?;
                let when = status
                    .timestamp
                    .as_deref()
                    .and_then(|ts| humantime::parse_rfc3339_weak(ts).ok());
                Some((when, err))
            })
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, err)| crate::domain::text::clean(err.trim()).into_owned())
    }
}

/// One look at a service's update: where it stands, and how many of the tasks meant to run
/// run with its current spec's secrets.
struct Look {
    step: Step,
    done: usize,
    total: usize,
}

/// What [`Swarm::tasks_behind`] counts.
struct Tasks {
    /// Tasks meant to run that do not (yet) run with the spec's secrets.
    pending: usize,
    /// Replicas the spec asks for that have no task yet.
    short: usize,
    /// Tasks meant to run.
    running: usize,
}

enum Step {
    /// Docker reports the update completed.
    Done,
    /// Docker reports an update in progress.
    Updating,
    /// No update status, and the tasks are up to date.
    Quiet,
    Waiting(String),
}

/// What a container spec mounts, to compare a task's with its service's: each secret
/// reference and each config reference (ID and target), marked by kind.
fn reference_keys(
    spec: Option<&bollard::models::TaskSpecContainerSpec>,
) -> BTreeSet<(bool, String, String)> {
    let secrets = secret_keys(spec.and_then(|c| c.secrets.as_ref()));
    let configs = spec.and_then(|c| c.configs.as_ref()).into_iter().flatten();
    let configs = configs.map(|r| {
        let target = r.file.as_ref().and_then(|f| f.name.clone());
        (
            true,
            r.config_id.clone().unwrap_or_default(),
            target.unwrap_or_default(),
        )
    });
    secrets
        .into_iter()
        .map(|(id, target)| (false, id, target))
        .chain(configs)
        .collect()
}
