//! Helpers for the `sync` suite: swarmseal repositories bound to the test Swarm, services
//! that mount secrets, and a [`Guard`] that removes everything a test made on the Swarm.
//!
//! ```ignore
//! let Some(engine) = engine() else { return };
//! let guard = Guard::new(&engine);                 // declared first: dropped last
//! let repo = SyncRepo::new(&engine, &guard, "rotate");
//! repo.set("db_password", b"v1");
//! repo.apply();                                    // apply --yes --wait, asserts success
//! let svc = guard.service("rotate", &[(&repo.current("db_password").name, "db_password")]);
//! let container = guard.wait_running(&svc);
//! ```
//!
//! Everything goes through the docker CLI against the harness's engine (never `DOCKER_HOST`),
//! and every wait is bounded and fails naming what it waited for.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cli::{assert_no_panic, assert_ok, describe, run_command, stderr, TestRepo};
use super::engine::{service_names_args, Engine, LABEL_NAME, LABEL_PROJECT};

/// The one environment of every [`SyncRepo`].
pub const ENV: &str = "staging";
/// Label key of the apply lock's marker secret (see src/swarm/lock.rs).
pub const LABEL_LOCK: &str = "io.swarmseal.lock";
/// The label of the `.age` file's digest a version was applied from.
pub const LABEL_SOURCE: &str = "io.swarmseal.source";
/// How long a service's task may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long cleanup waits for containers to go away.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(45);

/// A short, unique-per-project hex string, for the names of unmanaged secrets, which are
/// global on the Swarm (two tests must never make the same one).
pub fn suffix(project: &str) -> String {
    hex::encode(Sha256::digest(project.as_bytes()))[..8].to_owned()
}

/// Text of `docker` stdout lines.
fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A secret on the Swarm, from `docker secret inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub id: String,
    pub name: String,
    /// Swarm object version (changes when labels are updated).
    pub version: u64,
    pub labels: BTreeMap<String, String>,
}

impl SecretInfo {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// A secret reference of a service spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub secret_id: String,
    pub secret_name: String,
    pub target: String,
    pub uid: String,
    pub gid: String,
    pub mode: u64,
}

fn parse_refs(v: &Value) -> Vec<SecretRef> {
    let Some(list) = v.as_array() else {
        return Vec::new();
    };
    let mut refs: Vec<SecretRef> = list
        .iter()
        .map(|r| SecretRef {
            secret_id: r["SecretID"].as_str().unwrap_or_default().to_owned(),
            secret_name: r["SecretName"].as_str().unwrap_or_default().to_owned(),
            target: r["File"]["Name"].as_str().unwrap_or_default().to_owned(),
            uid: r["File"]["UID"].as_str().unwrap_or_default().to_owned(),
            gid: r["File"]["GID"].as_str().unwrap_or_default().to_owned(),
            mode: r["File"]["Mode"].as_u64().unwrap_or_default(),
        })
        .collect();
    refs.sort_by(|a, b| a.target.cmp(&b.target));
    refs
}

/// Docker-side queries shared by the tests.
pub trait EngineExt {
    /// `docker secret inspect` of several secrets (by name or ID); panics on failure.
    fn inspect_secrets(&self, ids: &[String]) -> Vec<SecretInfo>;
    /// The secret with exactly this name, if any.
    fn secret_named(&self, name: &str) -> Option<SecretInfo>;
    /// Every secret carrying `label` (`key=value`), sorted by name.
    fn secrets_labelled(&self, label: &str) -> Vec<SecretInfo>;
    /// The secret references of a service's current spec, sorted by target.
    fn service_refs(&self, service: &str) -> Vec<SecretRef>;
    /// The secret references of a service's previous spec (`None` when never updated).
    fn previous_refs(&self, service: &str) -> Option<Vec<SecretRef>>;
    /// `docker service inspect -f FORMAT SERVICE`, trimmed.
    fn service_field(&self, service: &str, format: &str) -> String;
    /// IDs of every task of a service, history included.
    fn service_tasks(&self, service: &str) -> Vec<String>;
    /// Running containers of a service.
    fn running_containers(&self, service: &str) -> Vec<String>;
    /// Bytes of a file inside a container.
    fn read_in(&self, container: &str, path: &str) -> Vec<u8>;
    /// The Swarm's cluster ID.
    fn cluster_id(&self) -> String;
}

impl EngineExt for Engine {
    fn inspect_secrets(&self, ids: &[String]) -> Vec<SecretInfo> {
        if ids.is_empty() {
            return Vec::new();
        }
        let mut args = vec!["secret", "inspect"];
        args.extend(ids.iter().map(String::as_str));
        let json: Value = serde_json::from_slice(&self.docker_cli_ok(&args))
            .expect("docker secret inspect prints JSON");
        let mut out: Vec<SecretInfo> = json
            .as_array()
            .expect("docker secret inspect prints an array")
            .iter()
            .map(|s| SecretInfo {
                id: s["ID"].as_str().unwrap_or_default().to_owned(),
                name: s["Spec"]["Name"].as_str().unwrap_or_default().to_owned(),
                version: s["Version"]["Index"].as_u64().unwrap_or_default(),
                labels: s["Spec"]["Labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn secret_named(&self, name: &str) -> Option<SecretInfo> {
        let filter = format!("name={name}");
        let ids =
            self.docker_cli_lines(&["secret", "ls", "--filter", &filter, "--format", "{{.ID}}"]);
        // The name filter matches prefixes: keep the exact name only.
        self.inspect_secrets(&ids)
            .into_iter()
            .find(|s| s.name == name)
    }

    fn secrets_labelled(&self, label: &str) -> Vec<SecretInfo> {
        let filter = format!("label={label}");
        let ids =
            self.docker_cli_lines(&["secret", "ls", "--filter", &filter, "--format", "{{.ID}}"]);
        self.inspect_secrets(&ids)
    }

    fn service_refs(&self, service: &str) -> Vec<SecretRef> {
        let out = self.docker_cli_ok(&[
            "service",
            "inspect",
            "-f",
            "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
            service,
        ]);
        parse_refs(&serde_json::from_slice(&out).expect("service secrets as JSON"))
    }

    fn previous_refs(&self, service: &str) -> Option<Vec<SecretRef>> {
        let out = self.docker_cli_ok(&[
            "service",
            "inspect",
            "-f",
            "{{json .PreviousSpec}}",
            service,
        ]);
        let v: Value = serde_json::from_slice(&out).expect("PreviousSpec as JSON");
        if v.is_null() {
            return None;
        }
        Some(parse_refs(&v["TaskTemplate"]["ContainerSpec"]["Secrets"]))
    }

    fn service_field(&self, service: &str, format: &str) -> String {
        String::from_utf8_lossy(&self.docker_cli_ok(&["service", "inspect", "-f", format, service]))
            .trim()
            .to_owned()
    }

    fn service_tasks(&self, service: &str) -> Vec<String> {
        self.docker_cli_lines(&["service", "ps", "-q", "--no-trunc", service])
    }

    fn running_containers(&self, service: &str) -> Vec<String> {
        let filter = format!("label=com.docker.swarm.service.name={service}");
        self.docker_cli_lines(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &filter,
            "--filter",
            "status=running",
        ])
    }

    fn read_in(&self, container: &str, path: &str) -> Vec<u8> {
        self.docker_cli_ok(&["exec", container, "cat", path])
    }

    fn cluster_id(&self) -> String {
        String::from_utf8_lossy(&self.docker_cli_ok(&["info", "--format", "{{.Swarm.Cluster.ID}}"]))
            .trim()
            .to_owned()
    }
}

/// Removes, on drop, what a test made on the Swarm: its stacks, its services (waiting until
/// their containers are gone), its unmanaged secrets, every secret labelled with one of its
/// projects, and their apply-lock markers. Declare it before anything it cleans up after, so
/// that it is dropped last; it also runs while a failed test unwinds.
pub struct Guard {
    engine: Engine,
    projects: Mutex<Vec<String>>,
    services: Mutex<Vec<String>>,
    stacks: Mutex<Vec<String>>,
    secrets: Mutex<Vec<String>>,
}

impl Guard {
    pub fn new(engine: &Engine) -> Guard {
        Guard {
            engine: engine.clone(),
            projects: Mutex::default(),
            services: Mutex::default(),
            stacks: Mutex::default(),
            secrets: Mutex::default(),
        }
    }

    /// Cleans up after `project`'s secrets and lock too.
    pub fn project(&self, project: &str) {
        self.projects.lock().unwrap().push(project.to_owned());
    }

    /// Cleans up after stack `name` too (`docker stack rm`).
    pub fn stack(&self, name: &str) {
        self.stacks.lock().unwrap().push(name.to_owned());
    }

    /// Cleans up service `name` too (one the test creates itself).
    pub fn track_service(&self, name: &str) {
        self.services.lock().unwrap().push(name.to_owned());
    }

    /// Cleans up the (unmanaged) secret `name` too.
    pub fn secret(&self, name: &str) {
        self.secrets.lock().unwrap().push(name.to_owned());
    }

    /// `docker secret create NAME FILE` of an unmanaged secret (no labels) holding `value`.
    pub fn unmanaged_secret(&self, name: &str, value: &[u8], scratch: &Path) -> String {
        self.secret(name);
        let file = scratch.join(format!("unmanaged-{name}"));
        std::fs::write(&file, value).unwrap();
        let out = self
            .engine
            .docker_cli_ok(&["secret", "create", name, file.to_str().unwrap()]);
        std::fs::remove_file(&file).unwrap();
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    /// Creates a one-replica service `name` running `sleep 3600`, mounting each
    /// `(secret, target)` (`target` may go on with `,uid=U,gid=G,mode=M`), labelled with
    /// `project`; does not wait for it.
    pub fn service(&self, name: &str, project: &str, secrets: &[(&str, &str)]) {
        let label = format!("{LABEL_PROJECT}={project}");
        let mounts: Vec<String> = secrets
            .iter()
            .map(|(source, target)| format!("source={source},target={target}"))
            .collect();
        // `sleep` as PID 1 ignores SIGTERM: don't wait 10 s at every task replacement.
        let mut args = vec!["--label", &label, "--stop-grace-period", "1s"];
        for mount in &mounts {
            args.extend(["--secret", mount]);
        }
        args.extend([self.engine.image.as_str(), "sleep", "3600"]);
        self.create_service(name, &args);
    }

    /// `docker service create --detach --quiet --name NAME ARGS...` (the options, then image
    /// and command); cleans the service up too; does not wait for it.
    pub fn create_service(&self, name: &str, args: &[&str]) {
        self.track_service(name);
        let mut all = vec!["service", "create", "--detach", "--quiet", "--name", name];
        all.extend_from_slice(args);
        self.engine.docker_cli_ok(&all);
    }

    /// Waits (bounded) until the service has exactly one running container; returns it.
    #[track_caller]
    pub fn wait_running(&self, service: &str) -> String {
        let start = Instant::now();
        loop {
            let running = self.engine.running_containers(service);
            if running.len() == 1 {
                return running[0].clone();
            }
            if start.elapsed() > START_TIMEOUT {
                let ps = self
                    .engine
                    .docker_cli(&["service", "ps", "--no-trunc", service]);
                panic!(
                    "service {service} has no single running container after {START_TIMEOUT:?} \
                     (running: {running:?}); docker service ps:\n{}{}",
                    String::from_utf8_lossy(&ps.stdout),
                    String::from_utf8_lossy(&ps.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn cleanup(&self) -> Vec<String> {
        let e = &self.engine;
        let mut problems = Vec::new();
        let stacks = self.stacks.lock().unwrap().clone();
        let projects = self.projects.lock().unwrap().clone();
        let mut services = self.services.lock().unwrap().clone();
        for project in &projects {
            let filter = format!("label={LABEL_PROJECT}={project}");
            let out = e.docker_cli(&service_names_args(&filter));
            services.extend(lines(&out.stdout));
        }
        services.sort();
        services.dedup();

        for stack in &stacks {
            let _ = e.docker_cli(&["stack", "rm", stack]);
        }
        for service in &services {
            let out = e.docker_cli(&["service", "rm", service]);
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() && !err.contains("not found") {
                problems.push(format!("docker service rm {service}: {}", err.trim()));
            }
        }
        // Containers: force-removed rather than waiting for their stop grace period.
        let mut filters: Vec<String> = services
            .iter()
            .map(|s| format!("label=com.docker.swarm.service.name={s}"))
            .collect();
        filters.extend(
            stacks
                .iter()
                .map(|s| format!("label=com.docker.stack.namespace={s}")),
        );
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        for filter in &filters {
            loop {
                let left = lines(&e.docker_cli(&["ps", "-aq", "--filter", filter]).stdout);
                if left.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    problems.push(format!("containers {left:?} ({filter}) still exist"));
                    break;
                }
                let mut rm = vec!["rm", "-f"];
                rm.extend(left.iter().map(String::as_str));
                let _ = e.docker_cli(&rm);
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        // A stack's default network goes once its tasks are gone.
        for stack in &stacks {
            let filter = format!("label=com.docker.stack.namespace={stack}");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let left = lines(
                    &e.docker_cli(&["network", "ls", "-q", "--filter", &filter])
                        .stdout,
                );
                if left.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    problems.push(format!("networks {left:?} of stack {stack} still exist"));
                    break;
                }
                let mut rm = vec!["network", "rm"];
                rm.extend(left.iter().map(String::as_str));
                let _ = e.docker_cli(&rm);
                std::thread::sleep(Duration::from_millis(250));
            }
        }

        // Secrets: the Swarm may count a just-removed service as a user for a moment.
        let mut ids: Vec<String> = Vec::new();
        for project in &projects {
            for label in [
                format!("{LABEL_PROJECT}={project}"),
                format!("{LABEL_LOCK}={project}/{ENV}"),
            ] {
                let filter = format!("label={label}");
                ids.extend(lines(
                    &e.docker_cli(&["secret", "ls", "-q", "--filter", &filter])
                        .stdout,
                ));
            }
        }
        for name in self.secrets.lock().unwrap().iter() {
            let out = e.docker_cli(&["secret", "inspect", "-f", "{{.ID}}", name]);
            if out.status.success() {
                ids.extend(lines(&out.stdout));
            }
        }
        // Configs (issue 12) carry the project's labels too.
        let mut objects: Vec<(&str, String)> = ids.into_iter().map(|id| ("secret", id)).collect();
        for project in &projects {
            let filter = format!("label={LABEL_PROJECT}={project}");
            let out = e.docker_cli(&["config", "ls", "-q", "--filter", &filter]);
            objects.extend(lines(&out.stdout).into_iter().map(|id| ("config", id)));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (kind, id) in &objects {
            let (kind, id) = (*kind, id);
            loop {
                let out = e.docker_cli(&[kind, "rm", id]);
                let err = String::from_utf8_lossy(&out.stderr);
                if out.status.success() || err.contains("not found") {
                    break;
                }
                if Instant::now() > deadline {
                    problems.push(format!("docker {kind} rm {id}: {}", err.trim()));
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        problems
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if !problems.is_empty() {
            eprintln!(
                "warning: cleanup on {} was incomplete:\n  {}",
                self.engine.host,
                problems.join("\n  ")
            );
        }
    }
}

/// A swarmseal repository (own project, one environment [`ENV`], own identity) whose
/// commands run against the test Swarm with `-H`.
pub struct SyncRepo {
    pub t: TestRepo,
    pub engine: Engine,
    pub project: String,
}

/// What most sync tests start with: the test engine, a cleanup guard, and a repository
/// ([`SyncRepo::new`]) for `test`; `None` without an engine.
pub fn engine_repo(test: &str) -> Option<(Engine, Guard, SyncRepo)> {
    let engine = super::engine::engine()?;
    let guard = Guard::new(&engine);
    let repo = SyncRepo::new(&engine, &guard, test);
    Some((engine, guard, repo))
}

impl SyncRepo {
    /// `keygen`, then `init --project <unique> -e staging --recipient me=<key>`; the project is
    /// registered with `guard` for cleanup.
    pub fn new(engine: &Engine, guard: &Guard, test: &str) -> SyncRepo {
        let project = engine.unique_project(test);
        guard.project(&project);
        let t = TestRepo::with_identity();
        let recipient = format!("me={}", t.public);
        assert_ok(&t.run(
            &[
                "init",
                "--project",
                &project,
                "-e",
                ENV,
                "--recipient",
                &recipient,
            ],
            None,
        ));
        SyncRepo {
            t,
            engine: engine.clone(),
            project,
        }
    }

    /// The binary with `-e staging -H <engine>` and `args`, in the repository, with the test
    /// environment (own HOME with the identity, no DOCKER_* variables).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.t.command();
        c.args(["-e", ENV, "-H", &self.engine.host]).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_command(self.command(args), None)
    }

    /// [`SyncRepo::run`] with `--format json`: a failure prints one JSON error with a kind
    /// (see [`super::cli::assert_kind`]).
    pub fn run_json(&self, args: &[&str]) -> Output {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `unlock` of a lock whose holder died: succeeds, noting that it no longer runs.
    #[track_caller]
    pub fn unlock_dead_holder(&self) {
        let out = self.run(&["unlock"]);
        assert_ok(&out);
        assert!(
            stderr(&out).contains("no longer running"),
            "{}",
            describe(&out)
        );
    }

    /// `set NAME` with the value on stdin; asserts success.
    #[track_caller]
    pub fn set(&self, name: &str, value: &[u8]) {
        assert_ok(&run_command(self.command(&["set", name]), Some(value)));
    }

    /// `rm NAME`; asserts success.
    #[track_caller]
    pub fn rm(&self, name: &str) {
        assert_ok(&self.run(&["rm", name]));
    }

    /// `apply --yes --wait`; asserts success and returns the output.
    #[track_caller]
    pub fn apply(&self) -> Output {
        let out = self.run(&["apply", "--yes", "--wait", "--wait-timeout", "2m"]);
        assert_ok(&out);
        out
    }

    /// `--format json plan ARGS`: the output and the parsed plan (panics unless stdout is
    /// one JSON object with format_version 1).
    #[track_caller]
    pub fn plan_json(&self, extra: &[&str]) -> (Output, Value) {
        let mut args = vec!["--format", "json", "plan"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert_no_panic(&out);
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "plan --format json printed no JSON ({e})\n{}",
                describe(&out)
            )
        });
        assert_eq!(plan["format_version"], 1, "format_version\n{plan:#}");
        assert_eq!(plan["project"], self.project.as_str(), "project\n{plan:#}");
        assert_eq!(plan["environment"], ENV, "environment\n{plan:#}");
        (out, plan)
    }

    /// The project's services as Docker reports them (name, spec update time, version,
    /// update status), for a failure message: a plan that is not empty after an apply is
    /// often a service whose update Docker has not finished (or not started) yet.
    fn services_state(&self) -> String {
        let filter = format!("name={}", self.project);
        let ids = self
            .engine
            .docker_cli(&["service", "ls", "-q", "--filter", &filter]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let mut state = String::new();
        for id in ids.split_whitespace() {
            let out = self.engine.docker_cli(&[
                "service",
                "inspect",
                "--format",
                "{{.Spec.Name}} updated {{.UpdatedAt}} version {{.Version.Index}} status {{json .UpdateStatus}}",
                id,
            ]);
            state.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        state
    }

    /// Asserts that `plan --detailed-exitcode` finds nothing to do (exit 0, no changes).
    #[track_caller]
    pub fn assert_converged(&self) {
        let (out, plan) = self.plan_json(&["--detailed-exitcode"]);
        if out.status.code() != Some(0) {
            panic!(
                "plan after apply is not empty\n{}\n--- the project's services (update status) ---\n{}",
                describe(&out),
                self.services_state()
            );
        }
        assert_eq!(
            plan["changes"].as_array().map(Vec::len),
            Some(0),
            "changes left\n{plan:#}"
        );
    }

    /// Creates `<project>-app`, a service (tracked by `guard`) mounting the current version
    /// of `secret` as `/run/secrets/<secret>`, and waits until it runs; returns its name.
    #[track_caller]
    pub fn app_service(&self, guard: &Guard, secret: &str) -> String {
        let svc = format!("{}-app", self.project);
        guard.service(&svc, &self.project, &[(&self.current(secret).name, secret)]);
        guard.wait_running(&svc);
        svc
    }

    /// Every secret labelled with this repository's project (managed versions).
    pub fn managed(&self) -> Vec<SecretInfo> {
        self.engine
            .secrets_labelled(&format!("{LABEL_PROJECT}={}", self.project))
    }

    /// Managed versions of one logical secret.
    pub fn versions(&self, logical: &str) -> Vec<SecretInfo> {
        self.managed()
            .into_iter()
            .filter(|s| s.label(LABEL_NAME) == Some(logical))
            .collect()
    }

    /// sha256 of a top-level secret's file: the `source` label of the version applied
    /// from the file as it is now.
    pub fn source_of(&self, logical: &str) -> String {
        let bytes = std::fs::read(self.t.secret_file(ENV, logical)).unwrap();
        hex::encode(Sha256::digest(bytes))
    }

    /// The managed version applied from the repository's file as it is now (panics unless
    /// exactly one). Older versions may stay beside it: see [`SyncRepo::superseded`].
    #[track_caller]
    pub fn current(&self, logical: &str) -> SecretInfo {
        let source = self.source_of(logical);
        let mut v: Vec<SecretInfo> = self
            .versions(logical)
            .into_iter()
            .filter(|s| s.label(LABEL_SOURCE) == Some(source.as_str()))
            .collect();
        assert_eq!(
            v.len(),
            1,
            "expected exactly one current Swarm version of {logical} in project {}: {v:#?}\nall: {:#?}",
            self.project,
            self.versions(logical)
        );
        v.remove(0)
    }

    /// The managed versions of a logical secret other than the current one (kept for a
    /// rollback, say).
    pub fn superseded(&self, logical: &str) -> Vec<SecretInfo> {
        let source = self.source_of(logical);
        self.versions(logical)
            .into_iter()
            .filter(|s| s.label(LABEL_SOURCE) != Some(source.as_str()))
            .collect()
    }

    /// Logical name → managed Swarm name, for every managed secret of the project.
    pub fn managed_names(&self) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.managed() {
            map.entry(s.label(LABEL_NAME).unwrap_or_default().to_owned())
                .or_default()
                .push(s.name);
        }
        map
    }

    /// The path of swarmseal.yaml.
    pub fn manifest(&self) -> std::path::PathBuf {
        self.t.path("swarmseal.yaml")
    }
}

/// The change with this action for this secret in a JSON plan (panics listing the plan).
#[track_caller]
pub fn change<'a>(plan: &'a Value, action: &str, secret: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .and_then(|c| {
            c.iter()
                .find(|c| c["action"] == action && c["secret"] == secret)
        })
        .unwrap_or_else(|| panic!("the plan has no {action} of {secret}:\n{plan:#}"))
}

/// A JSON plan's summary count.
#[track_caller]
pub fn count(plan: &Value, action: &str) -> u64 {
    plan["summary"][action]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{action} missing\n{plan:#}"))
}

/// `strings` of a JSON array.
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// swarmseal's Swarm client on an engine, with a runtime to drive it: for what a test must
/// do on the Swarm as another party would (take a lock as another holder).
pub fn library_swarm(engine: &Engine) -> (tokio::runtime::Runtime, swarmseal::swarm::Swarm) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let endpoint = swarmseal::swarm::resolve_endpoint(Some(&engine.host), None).unwrap();
    let swarm = rt
        .block_on(swarmseal::swarm::Swarm::connect(endpoint))
        .unwrap();
    (rt, swarm)
}
