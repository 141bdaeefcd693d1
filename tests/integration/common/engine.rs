//! Access to the throw-away Docker Swarm that `tests/engine.sh` provides.
//!
//! Tests that need an engine start with
//!
//! ```ignore
//! let Some(engine) = common::engine::engine() else { return };
//! ```
//!
//! and reach it only through [`Engine`] (never `DOCKER_HOST` or the local socket, which may be
//! the developer's own engine). Everything a test creates carries its own
//! [`Engine::unique_project`] label so that tests can run in parallel on one swarm, and a
//! [`Cleanup`] guard removes it even when the test fails.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::ListTasksOptionsBuilder;
use bollard::{Docker, API_DEFAULT_VERSION};

/// The variable `tests/engine.sh` sets to the engine's endpoint (`unix://...` or `tcp://...`).
pub const HOST_VAR: &str = "SWARMSEAL_TEST_DOCKER_HOST";
/// The variable naming an image present on the engine (busybox: sh, cat, sleep, ls, stat, ...).
pub const IMAGE_VAR: &str = "SWARMSEAL_TEST_IMAGE";
/// With `=1`, a missing engine fails the test instead of skipping it (CI sets this).
pub const REQUIRE_VAR: &str = "SWARMSEAL_REQUIRE_ENGINE";
/// The image `tests/engine.sh` imports.
pub const DEFAULT_IMAGE: &str = "swarmseal-test/busybox:1";

/// Label keys swarmseal puts on managed secrets (`docs/design.md#names-and-labels`).
pub const LABEL_MANAGED: &str = "io.swarmseal.managed";
pub const LABEL_PROJECT: &str = "io.swarmseal.project";
pub const LABEL_ENVIRONMENT: &str = "io.swarmseal.environment";
pub const LABEL_NAME: &str = "io.swarmseal.name";

/// Per-request timeout of the bollard client, in seconds.
const API_TIMEOUT_SECS: u64 = 30;

/// The engine the harness provides.
#[derive(Debug, Clone)]
pub struct Engine {
    /// Endpoint, e.g. `unix:///tmp/sse.AbC123/sock`; pass it as `--host`/`-H` to the binary.
    pub host: String,
    /// An image services can run, e.g. with `sleep 3600` as the command.
    pub image: String,
}

/// The engine from `tests/engine.sh`, or `None` (after a note on stderr) when the tests run
/// without it. Panics when `SWARMSEAL_REQUIRE_ENGINE=1` and there is no engine.
pub fn engine() -> Option<Engine> {
    match std::env::var(HOST_VAR) {
        Ok(host) if !host.trim().is_empty() => {
            let image = std::env::var(IMAGE_VAR)
                .ok()
                .filter(|image| !image.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
            Some(Engine { host, image })
        }
        _ => {
            if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
                panic!(
                    "{REQUIRE_VAR}=1 but no engine: {HOST_VAR} is not set. Run the tests through \
                     tests/engine.sh (e.g. `tests/engine.sh cargo test --all-targets -- --include-ignored`; it starts a \
                     private single-node swarm when run as root with docker.io installed, or uses \
                     an existing swarm manager with SWARMSEAL_TEST_USE_DOCKER_HOST=1 \
                     DOCKER_HOST=...), or unset {REQUIRE_VAR} to skip the engine tests."
                );
            }
            eprintln!(
                "note: skipping this engine test: {HOST_VAR} is not set (run the tests through \
                 tests/engine.sh to include them)"
            );
            None
        }
    }
}

impl Engine {
    /// A bollard client for the engine. Call `.negotiate_version().await` before use (or use
    /// [`Engine::connect`]): bollard speaks API 1.53 by default and older engines (Debian's
    /// 20.10 speaks 1.41) reject newer versions.
    pub fn docker(&self) -> Docker {
        let connected = if self.host.starts_with("unix://") {
            Docker::connect_with_unix(&self.host, API_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else if self.host.starts_with("tcp://") || self.host.starts_with("http://") {
            Docker::connect_with_http(&self.host, API_TIMEOUT_SECS, API_DEFAULT_VERSION)
        } else {
            panic!(
                "{HOST_VAR}={} is neither unix:// nor tcp://; the tests support only those",
                self.host
            )
        };
        connected.unwrap_or_else(|e| panic!("cannot connect to the engine at {}: {e}", self.host))
    }

    /// [`Engine::docker`] with the API version negotiated down to the engine's.
    pub async fn connect(&self) -> Docker {
        self.docker()
            .negotiate_version()
            .await
            .unwrap_or_else(|e| panic!("version negotiation with {} failed: {e}", self.host))
    }

    /// A scope unique to this test run, for `io.swarmseal.project` and as a prefix of Docker
    /// object names: lowercase `[a-z0-9-]`, starts with a letter, at most 40 characters (so
    /// `<project>-<name>-<10 hex>` style names still fit Docker's 64).
    pub fn unique_project(&self, test: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        let mut stem: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        stem.truncate(18);
        let stem = stem.trim_matches('-');
        let suffix = format!("{:x}-{:x}-{n}", std::process::id(), nanos & 0xff_ffff);
        format!("t{stem}-{suffix}")
    }

    /// Runs the docker CLI against the engine (`docker -H <host> ARGS...`), with the
    /// developer's docker settings (`DOCKER_HOST`, `DOCKER_CONTEXT`, TLS variables) removed.
    pub fn docker_cli(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_API_VERSION")
            .output()
            .unwrap_or_else(|e| panic!("cannot run the docker CLI (docker {args:?}): {e}"))
    }

    /// [`Engine::docker_cli`] that panics (with stderr) unless the command succeeds; returns
    /// stdout.
    pub fn docker_cli_ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.docker_cli(args);
        assert!(
            out.status.success(),
            "docker {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out.stdout
    }

    /// Non-empty lines of a docker CLI command's stdout (e.g. IDs from `ls -q`).
    pub fn docker_cli_lines(&self, args: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.docker_cli_ok(args))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// IDs of the containers (running or not) of a swarm service.
    pub fn service_containers(&self, service: &str) -> Vec<String> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        self.docker_cli_lines(&["ps", "-aq", "--filter", &filter])
    }

    /// A guard that removes the project's services, then its secrets, when dropped.
    pub fn cleanup(&self, project: &str) -> Cleanup {
        Cleanup {
            engine: self.clone(),
            project: project.to_owned(),
        }
    }

    /// The standard swarmseal labels for a test secret of `project`.
    pub fn labels(&self, project: &str, env: &str, name: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_PROJECT.to_owned(), project.to_owned()),
            (LABEL_ENVIRONMENT.to_owned(), env.to_owned()),
            (LABEL_NAME.to_owned(), name.to_owned()),
        ])
    }
}

impl Engine {
    /// The spec of service `name`: `replicas` tasks running `sleep 3600` in the test image,
    /// mounting `secrets`, labelled with `project` (so the cleanup guard removes it).
    pub fn sleep_service_spec(
        &self,
        project: &str,
        name: &str,
        replicas: i64,
        secrets: Vec<TaskSpecContainerSpecSecrets>,
    ) -> ServiceSpec {
        ServiceSpec {
            name: Some(name.to_owned()),
            labels: Some(HashMap::from([(LABEL_PROJECT.into(), project.to_owned())])),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(replicas),
                }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.image.clone()),
                    command: Some(vec!["sleep".into(), "3600".into()]),
                    // `sleep` as PID 1 ignores SIGTERM: don't wait the default 10 s.
                    stop_grace_period: Some(Duration::from_secs(1).as_nanos() as i64),
                    secrets: Some(secrets),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// A service's reference to secret `id` (named `name`), mounted as `target` with this owner
/// and mode.
pub fn secret_ref(
    id: &str,
    name: &str,
    target: &str,
    uid: &str,
    gid: &str,
    mode: u32,
) -> TaskSpecContainerSpecSecrets {
    TaskSpecContainerSpecSecrets {
        secret_id: Some(id.to_owned()),
        secret_name: Some(name.to_owned()),
        file: Some(TaskSpecContainerSpecFile {
            name: Some(target.to_owned()),
            uid: Some(uid.to_owned()),
            gid: Some(gid.to_owned()),
            mode: Some(mode),
        }),
    }
}

/// The tasks matching `filters` (`service`, `desired-state`, ...).
pub async fn tasks(docker: &Docker, filters: &HashMap<&str, Vec<&str>>) -> Vec<Task> {
    docker
        .list_tasks(Some(
            ListTasksOptionsBuilder::new().filters(filters).build(),
        ))
        .await
        .expect("list tasks")
}

/// `docker service ls` arguments listing the names of the services matching `filter`.
/// (Names, not `-q`: the CLI truncates IDs, container labels hold full ones.)
pub fn service_names_args(filter: &str) -> [&str; 6] {
    ["service", "ls", "--filter", filter, "--format", "{{.Name}}"]
}

/// Polls `done` every 200 ms until it returns true; panics naming `what` after `timeout`.
/// (Blocking: in async tests, poll with `tokio::time::sleep` instead when the check is async.)
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes, on drop, every service and secret labelled `io.swarmseal.project=<project>`:
/// services first (a secret a service uses cannot be removed), force-removing their containers
/// and waiting up to 30 s until they are gone, then the secrets. Uses the docker CLI, so it works from `Drop` without an async runtime, and also
/// while a failed test unwinds. Label the services a test creates with the project too.
#[derive(Debug)]
pub struct Cleanup {
    engine: Engine,
    project: String,
}

impl Cleanup {
    fn run(&self) -> Result<(), String> {
        let filter = format!("label={LABEL_PROJECT}={}", self.project);
        let lines = |args: &[&str]| -> Result<Vec<String>, String> {
            let out = self.engine.docker_cli(args);
            if !out.status.success() {
                return Err(format!(
                    "docker {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect())
        };

        let services = lines(&service_names_args(&filter))?;
        for name in &services {
            lines(&["service", "rm", name])?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for name in &services {
            let by_service = format!("label=com.docker.swarm.service.name={name}");
            loop {
                let left = lines(&["ps", "-aq", "--filter", &by_service])?;
                if left.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!("containers {left:?} of service {name} still exist"));
                }
                // Don't wait out the stop grace period (10 s unless the test set one).
                let mut rm = vec!["rm", "-f"];
                rm.extend(left.iter().map(String::as_str));
                let _ = self.engine.docker_cli(&rm);
                std::thread::sleep(Duration::from_millis(200));
            }
        }

        // The swarm may still count a just-removed service's task as a user for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let secrets = lines(&["secret", "ls", "-q", "--filter", &filter])?;
            if secrets.is_empty() {
                return Ok(());
            }
            let mut args = vec!["secret", "rm"];
            args.extend(secrets.iter().map(String::as_str));
            match lines(&args) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = self.run() {
            eprintln!(
                "warning: cleanup of test project {} on {} failed: {e}",
                self.project, self.engine.host
            );
        }
    }
}
