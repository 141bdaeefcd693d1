//! swarmseal at scale (1,000 and 10,000 secrets) against a real Swarm, each figure next to
//! the floor of the Docker API calls it stands for, measured in the same run (these
//! machines are noisy).
//!
//! Run: `tests/engine.sh cargo bench --bench scale` (optionally `-- 1000 10000`, the sizes;
//! the default is both). Without an engine (SWARMSEAL_TEST_DOCKER_HOST unset) it says so and
//! exits 0; under `cargo test` (no `--bench` argument) it only checks that it builds.
//!
//! swarmseal is measured end to end, as a process: the release binary
//! (`CARGO_BIN_EXE_swarmseal`, `-C ROOT -H HOST -i IDFILE -q`), wall time from spawn to
//! exit. The floor is the same API calls made directly with bollard over the same unix
//! socket, through a client that keeps its connections open as swarmseal's transport does
//! (`common::keep_alive_docker`; bollard's own `connect_with_unix` opens a connection per
//! request), on a current-thread runtime as swarmseal's, with swarmseal's concurrency:
//! `--parallel` (default 4) calls in flight (`buffer_unordered`, as `src/apply.rs`), the
//! two lists of an observation side by side.
//! "observe" below is: connect, negotiate the API version (`/version`), `/info`, then the
//! list of secrets and the list of services. Secret names, labels (the six
//! `io.swarmseal.*` labels, 64-hex fingerprint and source) and 32-byte values are
//! swarmseal's; the floor's secrets carry another project's labels, so swarmseal ignores
//! them.
//!
//! Rows, for each size N (a repository of N generated 32-character values, written in bulk
//! through the library, see `BenchRepo::store_many`, in /dev/shm when it has room):
//!
//! - `apply: N creates`: `apply --yes` onto a Swarm without the project's secrets; floor:
//!   observe + N creates. Median of [`rounds`] rounds.
//! - `apply: remove all N`: `apply --yes` from a copy of the repository without its secret
//!   files (the planner removes the managed versions of secrets gone from the repository;
//!   no flag needed); floor: observe + N removes. Median of [`rounds`] rounds.
//!
//!   Each round measures both sides, the floor's creates and removes and then swarmseal's
//!   in one round, swarmseal's first in the next: the engine slows down as its store grows
//!   during a run, and whichever side always went second was charged that drift.
//! - `plan: no change` and `plan: 1 changed file` (after the rounds, on one more apply of
//!   the N secrets, not timed, with the rotation's services running): `plan`; floor: observe. Median of `PLAN_RUNS` runs, alternated.
//! - `rotation ..., waits`: 100 secrets used by 20 services (5 each; created with `docker
//!   service create --detach --no-resolve-image --stop-grace-period 1s --secret ...
//!   IMAGE sleep 3600`) get new values in the repository; `apply --yes`, which by default
//!   waits for the updated services to converge, then removes what is superseded. In
//!   steady state (a first rotation, not timed, gives each service a previous spec) that
//!   is the 100 versions before last: the last ones stay while a rollback would bring them
//!   back (README, "The removal rule"). Floor, on a twin set of 20 services and 100
//!   secrets: observe, 100 creates, 20 × (inspect + update), then waiting as swarmseal
//!   does (per service, 4 at a time: inspect + list of its running tasks every 500 ms until
//!   Docker says the update completed), then 100 removes. Exactly 20 service updates are
//!   checked: each service's PreviousSpec holds the references it had before, its Spec
//!   only new versions (Version.Index is the Swarm's store index, which moves hundreds of
//!   times during an update, so it cannot count updates).
//! - `rotation ..., --detach`: the same with `apply --yes --detach` (sends the updates,
//!   waits for nothing, keeps the superseded versions for a later apply); floor: observe,
//!   100 creates, 20 × (inspect + update).
//!
//! Peak RSS is the swarmseal process's maximum resident set size: from GNU time (`/usr/bin/time
//! -f %M`, the `ru_maxrss` of `wait4`) when installed, else the last VmHWM read from
//! `/proc/PID/status`, polled every millisecond (a lower bound). The crate forbids unsafe
//! code, and rustix has no `wait4`/`getrusage`. For plans, the largest of the runs.
//!
//! CPU time, per row but the rotations (medians): swarmseal's process (user + system, from
//! GNU time), the floor's (this thread's, from /proc/thread-self/schedstat: the floor runs
//! on this thread's runtime), and the engine's during each (the dockerd serving the socket,
//! from /proc/PID/stat, in 10 ms ticks). On a machine where swarmseal and the engine share
//! the cores, what swarmseal spends beyond the floor's CPU (decryption, mostly) is time the
//! engine waits for a core.
//!
//! Under the table, for reference, figures taken inside the bench process (median of 3):
//! the repository read as plan reads it before decrypting (`desired::prepare`), as apply
//! reads it (`desired::read`, every file decrypted), and swarmseal's connect + observe.
//!
//! Everything the bench creates (secrets, services) is removed between sizes and at the
//! end; the project name is unique per run and size.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::models::{Secret, SecretSpec, Service, ServiceUpdateStatusStateEnum};
use bollard::query_parameters::{
    ListSecretsOptions, ListServicesOptions, ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use bollard::Docker;
use futures_util::stream::{self, StreamExt};
use swarmseal::crypto::value::{self, Charset};
use swarmseal::crypto::Plaintext;
use tokio::runtime::Runtime;

mod common;

use common::{bench_args_and_host, keep_alive_docker, median, BenchRepo};

/// swarmseal's default `apply --parallel` (src/cli/args.rs): API calls in flight at once.
const PARALLEL: usize = 4;
/// Rounds of apply (create all, remove all) per size: 6 up to 2,000 secrets, 4 above
/// (a round of 10,000 takes about half a minute). Even, so that each side goes first in
/// as many rounds as the other.
fn rounds(n: usize) -> usize {
    if n <= 2_000 {
        6
    } else {
        4
    }
}
/// Runs of each plan (and of its floor).
const PLAN_RUNS: usize = 5;
/// The rotation: this many secrets, used by `SERVICES` services, `PER_SERVICE` each.
const ROTATED: usize = 100;
const SERVICES: usize = 20;
const PER_SERVICE: usize = ROTATED / SERVICES;
/// `set --generate`'s default length.
const VALUE_LEN: usize = 32;
/// swarmseal's poll interval while waiting for a service to converge (src/swarm/converge.rs).
const POLL: Duration = Duration::from_millis(500);
const ENV: &str = "prod";
const LABEL_PROJECT: &str = "io.swarmseal.project";
const LABEL_NAME: &str = "io.swarmseal.name";

/// One line of the table.
struct Row {
    n: usize,
    what: String,
    ours: Duration,
    floor: Duration,
    rss_kb: Option<u64>,
    /// CPU time (medians): swarmseal's process and the floor's (this thread), and the
    /// engine's during each. `None` for the rotations.
    cpu: Option<Cpu>,
}

/// CPU time spent by each side of a row, and by the engine meanwhile.
#[derive(Default)]
struct Cpu {
    ours: Vec<Duration>,
    floor: Vec<Duration>,
    engine_ours: Vec<Duration>,
    engine_floor: Vec<Duration>,
}

impl Cpu {
    /// Adds swarmseal's run and the engine's CPU during it.
    fn ours(&mut self, ran: &Ran) {
        self.ours.extend(ran.cpu);
        self.engine_ours.extend(ran.engine_cpu);
    }

    /// Runs `floor` on this thread, adding its CPU time and the engine's.
    fn floor<T>(&mut self, b: &Bench, floor: impl FnOnce() -> T) -> T {
        let (cpu, engine) = (thread_cpu(), b.engine_cpu());
        let out = floor();
        self.floor.push(thread_cpu().saturating_sub(cpu));
        if let (Some(before), Some(after)) = (engine, b.engine_cpu()) {
            self.engine_floor.push(after.saturating_sub(before));
        }
        out
    }

    fn cell(ours: &[Duration], floor: &[Duration]) -> String {
        if ours.is_empty() || floor.is_empty() {
            return "?".into();
        }
        format!(
            "{:.2} / {:.2}",
            median(ours.to_vec()).as_secs_f64(),
            median(floor.to_vec()).as_secs_f64()
        )
    }
}

/// This thread's CPU time so far (the first field of /proc/thread-self/schedstat, in ns).
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// The process serving `socket` (a dockerd started with `-H unix://SOCKET`), if found.
fn engine_pid(socket: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let dockerd = args.first()?.ends_with(b"dockerd");
        let serves = args.iter().any(|a| a.ends_with(socket.as_bytes()));
        (dockerd && serves).then_some(pid)
    })
}

/// A process's user + system CPU time (/proc/PID/stat, in clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// How the peak RSS of a child is read.
#[derive(Clone, Copy, PartialEq)]
enum Rss {
    /// GNU time's `%M` (wait4's ru_maxrss): exact.
    GnuTime,
    /// VmHWM from /proc/PID/status, polled: a lower bound.
    Poll,
}

impl Rss {
    fn detect() -> Rss {
        let gnu = Command::new("/usr/bin/time")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).contains("GNU")
                    || String::from_utf8_lossy(&o.stderr).contains("GNU")
            })
            .unwrap_or(false);
        if gnu {
            Rss::GnuTime
        } else {
            Rss::Poll
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Rss::GnuTime => "GNU time -f %M (ru_maxrss of wait4)",
            Rss::Poll => "VmHWM of /proc/PID/status polled every 1 ms (a lower bound)",
        }
    }
}

/// A finished swarmseal process.
struct Ran {
    took: Duration,
    rss_kb: Option<u64>,
    /// User + system CPU time (from GNU time).
    cpu: Option<Duration>,
    /// The engine's CPU time while it ran.
    engine_cpu: Option<Duration>,
    /// Bytes written to standard output.
    out_bytes: u64,
}

/// What a size's measurements share.
struct Bench {
    host: String,
    socket: String,
    image: String,
    rss: Rss,
    rt: Runtime,
    scratch: tempfile::TempDir,
    /// Where the repositories go: /dev/shm when it has room (a tmpfs: writing them does not
    /// wait for the disk), else the temporary folder.
    repo_parent: std::path::PathBuf,
    /// Lines printed under the table.
    notes: std::cell::RefCell<Vec<String>>,
    /// The engine's process, for its CPU time.
    engine: Option<u32>,
}

impl Bench {
    /// Runs `swarmseal ARGS` (which must succeed), timed, with its peak RSS.
    fn swarmseal(&self, args: &[&str]) -> Ran {
        let bin = env!("CARGO_BIN_EXE_swarmseal");
        let out_path = self.scratch.path().join("out");
        let err_path = self.scratch.path().join("err");
        let rss_path = self.scratch.path().join("rss");
        let mut cmd = match self.rss {
            Rss::GnuTime => {
                let mut c = Command::new("/usr/bin/time");
                c.arg("-o").arg(&rss_path).args(["-f", "%M %U %S", bin]);
                c
            }
            Rss::Poll => Command::new(bin),
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).unwrap())
            .stderr(File::create(&err_path).unwrap());
        let engine_before = self.engine_cpu();
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut polled = None;
        let status = match self.rss {
            Rss::GnuTime => child.wait().unwrap(),
            Rss::Poll => loop {
                if let Some(kb) = vm_hwm(child.id()) {
                    polled = Some(kb);
                }
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                std::thread::sleep(Duration::from_millis(1));
            },
        };
        let took = start.elapsed();
        let engine_cpu = engine_before
            .zip(self.engine_cpu())
            .map(|(before, after)| after.saturating_sub(before));
        assert!(
            status.success(),
            "swarmseal {} failed ({status}): {}",
            args.join(" "),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
        // GNU time's last line: "%M %U %S".
        let timed = std::fs::read_to_string(&rss_path).unwrap_or_default();
        let timed: Vec<&str> = timed
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let rss_kb = match self.rss {
            Rss::GnuTime => timed.first().and_then(|m| m.parse().ok()),
            Rss::Poll => polled,
        };
        let cpu = match (timed.get(1), timed.get(2)) {
            (Some(user), Some(sys)) => match (user.parse::<f64>(), sys.parse::<f64>()) {
                (Ok(user), Ok(sys)) => Some(Duration::from_secs_f64(user + sys)),
                _ => None,
            },
            _ => None,
        };
        let out_bytes = std::fs::metadata(&out_path).map_or(0, |m| m.len());
        Ran {
            took,
            rss_kb,
            cpu,
            engine_cpu,
            out_bytes,
        }
    }

    /// The engine's CPU time so far, when its process is known.
    fn engine_cpu(&self) -> Option<Duration> {
        self.engine.and_then(process_cpu)
    }

    /// `docker -H HOST ARGS`, which must succeed; its standard output.
    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `docker service create` of a service using these secrets (by Swarm name).
    fn create_service(&self, name: &str, secrets: &[String]) {
        let mut args = vec![
            "service",
            "create",
            "-q",
            "--detach",
            "--no-resolve-image",
            // busybox `sleep` as PID 1 ignores SIGTERM: without this each task replacement
            // would take Docker's default 10 s grace period.
            "--stop-grace-period",
            "1s",
            "--name",
            name,
        ];
        for s in secrets {
            args.extend(["--secret", s.as_str()]);
        }
        args.extend([self.image.as_str(), "sleep", "3600"]);
        self.docker(&args);
    }

    /// Waits until every service whose name starts with `prefix` runs all its replicas.
    fn wait_running(&self, prefix: &str, count: usize) {
        let start = Instant::now();
        loop {
            let out = self.docker(&[
                "service",
                "ls",
                "--filter",
                &format!("name={prefix}"),
                "--format",
                "{{.Replicas}}",
            ]);
            let ready = out
                .lines()
                .filter(|l| {
                    let l = l.split_whitespace().next().unwrap_or("");
                    l.split_once('/').is_some_and(|(a, b)| a == b && a != "0")
                })
                .count();
            if ready >= count {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "services {prefix}* did not start: {out}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A bollard client for the set-up and checks (not timed).
    fn client(&self) -> Docker {
        self.rt.block_on(connect(&self.socket))
    }

    /// The secrets carrying `io.swarmseal.project=project`.
    fn secrets_of(&self, project: &str) -> Vec<Secret> {
        let docker = self.client();
        self.rt
            .block_on(docker.list_secrets(None::<ListSecretsOptions>))
            .unwrap()
            .into_iter()
            .filter(|s| label(s, LABEL_PROJECT) == Some(project))
            .collect()
    }

    /// Logical name -> Swarm name of the project's versions (one each).
    fn versions(&self, project: &str) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        for s in self.secrets_of(project) {
            let name = label(&s, LABEL_NAME).unwrap_or_default().to_string();
            let swarm = s.spec.and_then(|sp| sp.name).unwrap_or_default();
            assert!(
                map.insert(name.clone(), swarm).is_none(),
                "{project}: more than one version of {name}"
            );
        }
        map
    }

    /// Removes the services named `prefix*` and the secrets of these projects.
    fn clean_up(&self, prefix: &str, projects: &[&str]) {
        let services = self.docker(&["service", "ls", "-q", "--filter", &format!("name={prefix}")]);
        let services: Vec<&str> = services.split_whitespace().collect();
        if !services.is_empty() {
            let mut args = vec!["service", "rm"];
            args.extend(&services);
            self.docker(&args);
            // Let the tasks stop before anything else is measured.
            std::thread::sleep(Duration::from_secs(3));
        }
        let docker = self.client();
        for project in projects {
            let ids: Vec<String> = self
                .secrets_of(project)
                .into_iter()
                .filter_map(|s| s.id)
                .collect();
            self.rt.block_on(
                stream::iter(ids)
                    .map(|id| {
                        let docker = &docker;
                        async move { docker.delete_secret(&id).await }
                    })
                    .buffer_unordered(PARALLEL)
                    .for_each(|r| {
                        r.unwrap();
                        std::future::ready(())
                    }),
            );
        }
    }

    /// Secret references (IDs) of services, current and previous, and their versions,
    /// from `docker service inspect` (bollard's model has no PreviousSpec).
    fn refs(&self, services: &[String]) -> Vec<ServiceRefs> {
        let mut args = vec!["service", "inspect"];
        args.extend(services.iter().map(String::as_str));
        let all: serde_json::Value = serde_json::from_str(&self.docker(&args)).unwrap();
        let ids = |spec: &serde_json::Value| -> BTreeSet<String> {
            spec["TaskTemplate"]["ContainerSpec"]["Secrets"]
                .as_array()
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| r["SecretID"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        all.as_array()
            .unwrap()
            .iter()
            .map(|s| ServiceRefs {
                version: s["Version"]["Index"].as_u64().unwrap_or(0),
                current: ids(&s["Spec"]),
                previous: ids(&s["PreviousSpec"]),
            })
            .collect()
    }
}

struct ServiceRefs {
    version: u64,
    current: BTreeSet<String>,
    previous: BTreeSet<String>,
}

/// Checks that each service was updated exactly once between `before` and `after`: its
/// previous spec is the spec it had, and its spec names only versions it did not have.
/// Returns how far each Version.Index moved (min, max).
fn check_one_update_each(before: &[ServiceRefs], after: &[ServiceRefs]) -> (u64, u64) {
    assert_eq!(before.len(), after.len());
    let mut updated = 0;
    let (mut lo, mut hi) = (u64::MAX, 0);
    for (b, a) in before.iter().zip(after) {
        if a.previous == b.current && a.current.is_disjoint(&b.current) && !a.current.is_empty() {
            updated += 1;
        }
        let moved = a.version - b.version;
        lo = lo.min(moved);
        hi = hi.max(moved);
    }
    assert_eq!(
        updated,
        before.len(),
        "not every service was updated exactly once"
    );
    (lo, hi)
}

fn label<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    s.spec
        .as_ref()?
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// /dev/shm when it is there with room to spare for 10,000 files, else the temporary folder.
fn repo_parent() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    let room = rustix::fs::statvfs(shm).map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize));
    let writable = tempfile::tempdir_in(shm).is_ok();
    if writable && room >= 512 << 20 {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn random_hex(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(raw)
}

fn new_value() -> Plaintext {
    value::generate(VALUE_LEN, Charset::Alnum).unwrap()
}

// --- the floor: bollard alone --------------------------------------------------------------

/// Connects as swarmseal does: a client, the API version negotiated, `/info`.
async fn connect(socket: &str) -> Docker {
    let docker = keep_alive_docker(socket).negotiate_version().await.unwrap();
    docker.info().await.unwrap();
    docker
}

/// The observation: connect, then the secrets and the services, side by side.
async fn observe(socket: &str) -> (Docker, Vec<Secret>, Vec<Service>) {
    let docker = connect(socket).await;
    let (secrets, services) = tokio::join!(
        docker.list_secrets(None::<ListSecretsOptions>),
        docker.list_services(None::<ListServicesOptions>)
    );
    (docker, secrets.unwrap(), services.unwrap())
}

/// A version as swarmseal creates it (its name, labels and value size), for `project`.
fn version_spec(project: &str, logical: &str, value: &[u8]) -> SecretSpec {
    let fingerprint = random_hex(32);
    let labels = HashMap::from([
        ("io.swarmseal.managed".to_string(), "true".to_string()),
        (LABEL_PROJECT.to_string(), project.to_string()),
        ("io.swarmseal.environment".to_string(), ENV.to_string()),
        (LABEL_NAME.to_string(), logical.to_string()),
        ("io.swarmseal.source".to_string(), random_hex(32)),
        ("io.swarmseal.fingerprint".to_string(), fingerprint.clone()),
    ]);
    SecretSpec {
        name: Some(format!("{logical}-{}", &fingerprint[..10])),
        labels: Some(labels),
        data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
        ..Default::default()
    }
}

/// Creates the secrets, `PARALLEL` at a time; logical name -> (Swarm name, ID).
async fn create_all(docker: &Docker, specs: Vec<SecretSpec>) -> BTreeMap<String, (String, String)> {
    stream::iter(specs)
        .map(|spec| async move {
            let logical = spec.labels.as_ref().unwrap()[LABEL_NAME].clone();
            let name = spec.name.clone().unwrap();
            let id = docker.create_secret(spec).await.unwrap().id;
            (logical, (name, id))
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await
}

/// Removes the secrets, `PARALLEL` at a time.
async fn remove_all(docker: &Docker, ids: Vec<String>) {
    stream::iter(ids)
        .map(|id| async move { docker.delete_secret(&id).await })
        .buffer_unordered(PARALLEL)
        .for_each(|r| {
            r.unwrap();
            std::future::ready(())
        })
        .await
}

/// The project's secret IDs in a list of secrets.
fn ids_of(secrets: &[Secret], project: &str) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| label(s, LABEL_PROJECT) == Some(project))
        .filter_map(|s| s.id.clone())
        .collect()
}

/// Re-points each service's references to the new version of the same logical secret:
/// inspect + update, `PARALLEL` services at a time.
async fn repoint_all(
    docker: &Docker,
    services: &[String],
    new: &BTreeMap<String, (String, String)>,
    logical_of: &BTreeMap<String, String>,
) {
    stream::iter(services)
        .map(|svc| async move {
            let service = docker.inspect_service(svc, None).await.unwrap();
            let version = service.version.and_then(|v| v.index).unwrap();
            let mut spec = service.spec.unwrap();
            let refs = spec
                .task_template
                .as_mut()
                .and_then(|t| t.container_spec.as_mut())
                .and_then(|c| c.secrets.as_mut())
                .unwrap();
            for r in refs.iter_mut() {
                let logical = &logical_of[r.secret_name.as_ref().unwrap()];
                let (name, id) = &new[logical];
                r.secret_id = Some(id.clone());
                r.secret_name = Some(name.clone());
            }
            let options = UpdateServiceOptionsBuilder::new()
                .version(i32::try_from(version).unwrap())
                .build();
            docker
                .update_service(svc, spec, options, None)
                .await
                .unwrap();
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

/// Waits for each service's update to complete as swarmseal does: `PARALLEL` services at a
/// time, each polled (inspect + list of its running tasks) every `POLL`.
async fn wait_all(docker: &Docker, services: &[String]) {
    stream::iter(services)
        .map(|svc| async move {
            loop {
                let service = docker.inspect_service(svc, None).await.unwrap();
                let filters = HashMap::from([
                    ("service", vec![svc.as_str()]),
                    ("desired-state", vec!["running"]),
                ]);
                let tasks = docker
                    .list_tasks(Some(
                        ListTasksOptionsBuilder::new().filters(&filters).build(),
                    ))
                    .await
                    .unwrap();
                std::hint::black_box(tasks);
                let state = service.update_status.and_then(|u| u.state);
                if state == Some(ServiceUpdateStatusStateEnum::COMPLETED) {
                    return;
                }
                assert!(
                    matches!(state, None | Some(ServiceUpdateStatusStateEnum::UPDATING)),
                    "floor service {svc}: update {state:?}"
                );
                tokio::time::sleep(POLL).await;
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

// --- one size -------------------------------------------------------------------------------

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn run_size(bench: &Bench, n: usize, rows: &mut Vec<Row>) {
    assert!(
        n >= ROTATED,
        "sizes below {ROTATED} leave nothing to rotate"
    );
    let tag = format!("sc{}n{n}", std::process::id());
    let project = tag.clone();
    let floor_project = format!("{tag}f");
    let b = bench;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        measure_size(b, n, &tag, &project, &floor_project, rows)
    }));
    b.clean_up(&tag, &[&project, &floor_project]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// For reference, in this process: the repository read as `plan` reads it before it
/// decrypts anything, and as `apply` reads it (every file decrypted, the values kept).
fn repo_reads(b: &Bench, n: usize, repo: &BenchRepo) {
    use swarmseal::repo::desired::{self, Decrypt};
    let opened = swarmseal::repo::Repo::open(&repo.root).unwrap();
    let ids = swarmseal::crypto::Identities::from_text(repo.text.as_bytes(), "bench").unwrap();
    let time = |f: &dyn Fn()| {
        median(
            (0..3)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .collect(),
        )
    };
    let prepare = time(&|| {
        std::hint::black_box(desired::prepare(&opened, ENV).unwrap());
    });
    let read = time(&|| {
        let mode = Decrypt::Required { keep_values: true };
        std::hint::black_box(desired::read(&opened, ENV, Some(&ids), mode).unwrap());
    });
    b.notes.borrow_mut().push(format!(
        "{n:>7}  in-process, median of 3: files read and checked (desired::prepare) {}; every file decrypted (desired::read, as apply) {}",
        secs(prepare),
        secs(read)
    ));
}

fn measure_size(
    bench: &Bench,
    n: usize,
    tag: &str,
    project: &str,
    floor_project: &str,
    rows: &mut Vec<Row>,
) {
    let b = bench;
    // The repository: init, a copy without secrets (for removing all), then N values.
    let start = Instant::now();
    let repo = BenchRepo::new_in(&b.repo_parent, project);
    let empty = repo.dir.path().join("empty");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&repo.root)
        .arg(&empty)
        .status()
        .unwrap()
        .success());
    let names: Vec<String> = (0..n).map(|i| format!("s{i:05}")).collect();
    let values: Vec<(String, Plaintext)> = names.iter().map(|s| (s.clone(), new_value())).collect();
    repo.store_many(&values);
    eprintln!(
        "[{n}] repository of {n} secrets written in {}",
        secs(start.elapsed())
    );
    repo_reads(b, n, &repo);
    let base = |root: &Path| -> Vec<String> {
        vec![
            "-C".into(),
            root.to_str().unwrap().into(),
            "-H".into(),
            b.host.clone(),
            "-i".into(),
            repo.idfile_s().into(),
            "-q".into(),
        ]
    };
    let run = |root: &Path, more: &[&str]| -> Ran {
        let mut args = base(root);
        args.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        b.swarmseal(&args)
    };
    let count = || b.secrets_of(project).len();

    let (mut creates, mut floor_creates, mut removes, mut floor_removes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (rss_create, rss_remove) = (std::cell::Cell::new(None), std::cell::Cell::new(None));
    let (cpu_create, cpu_remove) = (
        std::cell::RefCell::new(Cpu::default()),
        std::cell::RefCell::new(Cpu::default()),
    );
    let rounds = rounds(n);
    for round in 0..rounds {
        // Which side goes first alternates from round to round: the engine slows down as
        // its store grows over a run (the floor of 10,000 creates took 6.3, 7.0 and 8.0 s
        // in the three rounds of one run), and measuring swarmseal second in every round
        // charged that drift to it.
        let ours_first = round % 2 == 1;
        let floor = || {
            // The floor of the creates, then of the removes.
            let specs: Vec<SecretSpec> = values
                .iter()
                .map(|(name, v)| version_spec(floor_project, name, v))
                .collect();
            let start = Instant::now();
            cpu_create.borrow_mut().floor(b, || {
                b.rt.block_on(async {
                    let (docker, _, _) = observe(&b.socket).await;
                    create_all(&docker, specs).await
                })
            });
            let created = start.elapsed();
            let start = Instant::now();
            cpu_remove.borrow_mut().floor(b, || {
                b.rt.block_on(async {
                    let (docker, secrets, _) = observe(&b.socket).await;
                    let ids = ids_of(&secrets, floor_project);
                    assert_eq!(ids.len(), n);
                    remove_all(&docker, ids).await
                })
            });
            (created, start.elapsed())
        };
        let ours = || {
            let ran = run(&repo.root, &["apply", "--yes"]);
            let created = ran.took;
            rss_create.set(rss_create.get().max(ran.rss_kb));
            cpu_create.borrow_mut().ours(&ran);
            assert_eq!(count(), n, "apply did not create every version");
            let ran = run(&empty, &["apply", "--yes"]);
            rss_remove.set(rss_remove.get().max(ran.rss_kb));
            cpu_remove.borrow_mut().ours(&ran);
            assert_eq!(count(), 0, "apply did not remove every version");
            (created, ran.took)
        };
        let ((fc, fr), (c, r)) = if ours_first {
            let mine = ours();
            (floor(), mine)
        } else {
            (floor(), ours())
        };
        floor_creates.push(fc);
        floor_removes.push(fr);
        creates.push(c);
        removes.push(r);
        eprintln!(
            "[{n}] round {} ({} first): creates: floor {}, apply {}; removes: floor {}, apply {}",
            round + 1,
            if ours_first { "swarmseal" } else { "floor" },
            secs(fc),
            secs(c),
            secs(fr),
            secs(r)
        );
    }
    let (rss_create, rss_remove) = (rss_create.get(), rss_remove.get());
    let (cpu_create, cpu_remove) = (cpu_create.into_inner(), cpu_remove.into_inner());
    // Services, plans and rotations, on one more apply of the N secrets (not timed).
    run(&repo.root, &["apply", "--yes"]);
    assert_eq!(count(), n, "apply did not create every version");
    extras(b, n, tag, project, floor_project, &repo, &run, rows);
    run(&empty, &["apply", "--yes"]);
    assert_eq!(count(), 0, "apply did not remove every version");
    // The creates and removes first in the table.
    let at = rows.iter().position(|r| r.n == n).unwrap_or(rows.len());
    rows.insert(
        at,
        Row {
            n,
            what: format!("apply: remove all {n}"),
            ours: median(removes),
            floor: median(floor_removes),
            rss_kb: rss_remove,
            cpu: Some(cpu_remove),
        },
    );
    rows.insert(
        at,
        Row {
            n,
            what: format!("apply: {n} creates"),
            ours: median(creates),
            floor: median(floor_creates),
            rss_kb: rss_create,
            cpu: Some(cpu_create),
        },
    );
}

/// After the rounds, on one more apply of the N secrets: services, plans, rotations; leaves the services
/// removed and the Swarm with exactly one version of each of the N secrets.
#[allow(clippy::too_many_arguments)]
fn extras(
    b: &Bench,
    n: usize,
    tag: &str,
    project: &str,
    floor_project: &str,
    repo: &BenchRepo,
    run: &dyn Fn(&Path, &[&str]) -> Ran,
    rows: &mut Vec<Row>,
) {
    let rotated: Vec<String> = (0..ROTATED).map(|i| format!("s{i:05}")).collect();

    // 20 services of swarmseal's versions, and 20 twins of the floor's own 100 secrets.
    let start = Instant::now();
    let ours = b.versions(project);
    let floor_values: Vec<(String, Plaintext)> = (0..ROTATED)
        .map(|i| (format!("r{i:03}"), new_value()))
        .collect();
    let floor_v0 = b.rt.block_on(async {
        let docker = connect(&b.socket).await;
        let specs = floor_values
            .iter()
            .map(|(name, v)| version_spec(floor_project, name, v))
            .collect();
        create_all(&docker, specs).await
    });
    let services: Vec<String> = (0..SERVICES).map(|k| format!("{tag}-svc{k:02}")).collect();
    let floor_services: Vec<String> = (0..SERVICES).map(|k| format!("{tag}-flr{k:02}")).collect();
    for k in 0..SERVICES {
        let range = k * PER_SERVICE..(k + 1) * PER_SERVICE;
        let mine: Vec<String> = rotated[range.clone()]
            .iter()
            .map(|s| ours[s].clone())
            .collect();
        b.create_service(&services[k], &mine);
        let theirs: Vec<String> = floor_values[range]
            .iter()
            .map(|(s, _)| floor_v0[s].0.clone())
            .collect();
        b.create_service(&floor_services[k], &theirs);
    }
    b.wait_running(tag, 2 * SERVICES);
    eprintln!(
        "[{n}] {} services running in {}",
        2 * SERVICES,
        secs(start.elapsed())
    );

    // For reference, in this process: swarmseal's connect + observe (what plan adds to the
    // repository read).
    let wanted: BTreeSet<String> = (0..n).map(|i| format!("s{i:05}")).collect();
    let endpoint = swarmseal::swarm::resolve_endpoint(Some(&b.host), None).unwrap();
    let observes: Vec<Duration> = (0..3)
        .map(|_| {
            let start = Instant::now();
            b.rt.block_on(async {
                let swarm = swarmseal::swarm::Swarm::connect(endpoint.clone())
                    .await
                    .unwrap();
                swarm.observe(project, ENV, &wanted).await.unwrap()
            });
            start.elapsed()
        })
        .collect();
    b.notes.borrow_mut().push(format!(
        "{n:>7}  in-process, median of 3: swarmseal's connect + observe (with the services running) {}",
        secs(median(observes))
    ));

    // Plans: nothing changed, then one file changed (one of the rotated secrets).
    let mut plan_rows = |what: &str| {
        let (mut ours, mut floor, mut rss, mut out) = (Vec::new(), Vec::new(), None, 0);
        let mut cpu = Cpu::default();
        for _ in 0..PLAN_RUNS {
            let start = Instant::now();
            cpu.floor(b, || b.rt.block_on(observe(&b.socket)));
            floor.push(start.elapsed());
            let ran = run(&repo.root, &["plan"]);
            cpu.ours(&ran);
            ours.push(ran.took);
            rss = rss.max(ran.rss_kb);
            out = ran.out_bytes;
        }
        eprintln!(
            "[{n}] {what}: plan {:?} ({out} bytes of output), floor {:?}",
            ours.iter().map(|d| secs(*d)).collect::<Vec<_>>(),
            floor.iter().map(|d| secs(*d)).collect::<Vec<_>>()
        );
        rows.push(Row {
            n,
            what: what.to_string(),
            ours: median(ours),
            floor: median(floor),
            rss_kb: rss,
            cpu: Some(cpu),
        });
    };
    plan_rows("plan: no change");
    repo.store_many(&[(rotated[0].clone(), new_value())]);
    plan_rows("plan: 1 changed file");

    // The rotations. A first one, not timed, gives every service a previous spec, as in
    // steady state: a rotation then removes the version before last (no longer in any
    // spec) and keeps the last (a rollback would bring it back; see the removal rule).
    let count = || b.secrets_of(project).len();
    let mut floor_gens = vec![floor_v0];
    for (what, detach, timed) in [
        ("warm-up", false, false),
        ("waits", false, true),
        ("--detach", true, true),
    ] {
        // The floor, on its twin services: create the new generation, re-point, and (as
        // apply by default) wait, then remove the generation before last.
        let current = floor_gens.last().unwrap();
        let logical_of: BTreeMap<String, String> = current
            .iter()
            .map(|(logical, (name, _))| (name.clone(), logical.clone()))
            .collect();
        let specs: Vec<SecretSpec> = floor_values
            .iter()
            .map(|(name, _)| version_spec(floor_project, name, &new_value()))
            .collect();
        let old: Vec<String> = if floor_gens.len() >= 2 {
            let before_last = &floor_gens[floor_gens.len() - 2];
            before_last.values().map(|(_, id)| id.clone()).collect()
        } else {
            Vec::new()
        };
        let start = Instant::now();
        let new = b.rt.block_on(async {
            let (docker, _, _) = observe(&b.socket).await;
            let new = create_all(&docker, specs).await;
            repoint_all(&docker, &floor_services, &new, &logical_of).await;
            if !detach {
                wait_all(&docker, &floor_services).await;
                remove_all(&docker, old.clone()).await;
            }
            new
        });
        let floor = start.elapsed();
        if detach {
            // Not timed: what a later apply does.
            b.rt.block_on(async {
                let docker = connect(&b.socket).await;
                wait_all(&docker, &floor_services).await;
                remove_all(&docker, old).await;
            });
        }
        floor_gens.push(new);

        // swarmseal.
        let changed: Vec<(String, Plaintext)> =
            rotated.iter().map(|s| (s.clone(), new_value())).collect();
        repo.store_many(&changed);
        let versions_before = count();
        let before = b.refs(&services);
        let ran = if detach {
            run(&repo.root, &["apply", "--yes", "--detach"])
        } else {
            run(&repo.root, &["apply", "--yes"])
        };
        let after = b.refs(&services);
        let (lo, hi) = check_one_update_each(&before, &after);
        let removed = (versions_before + ROTATED).saturating_sub(count());
        eprintln!(
            "[{n}] rotation ({what}): apply {}, floor {}; {SERVICES} services updated once each (Version.Index +{lo}..+{hi}); {ROTATED} created, {removed} removed",
            secs(ran.took),
            secs(floor)
        );
        if detach {
            // Not timed: the apply that waits for them and removes what they superseded.
            run(&repo.root, &["apply", "--yes"]);
        }
        // Each rotated secret: its current version and the one a rollback would bring back.
        assert_eq!(count(), n + ROTATED, "versions left after the rotation");
        if timed {
            rows.push(Row {
                n,
                what: format!("rotation: {ROTATED} secrets, {SERVICES} services, {what}"),
                ours: ran.took,
                floor,
                rss_kb: ran.rss_kb,
                cpu: None,
            });
        }
    }

    // The services go, the floor's secrets with them; then an apply (not timed) removes
    // the versions only their previous specs held: N versions stay for the removal apply.
    b.clean_up(tag, &[floor_project]);
    run(&repo.root, &["apply", "--yes"]);
    assert_eq!(count(), n, "rollback versions left after the services went");
}

fn main() {
    let Some((args, host)) = bench_args_and_host("scale") else {
        return;
    };
    let started = Instant::now();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    let Some(socket) = host.strip_prefix("unix://").map(String::from) else {
        eprintln!("the scale bench needs a unix:// engine (got {host})");
        return;
    };
    let bench = Bench {
        image: std::env::var("SWARMSEAL_TEST_IMAGE")
            .unwrap_or_else(|_| "swarmseal-test/busybox:1".into()),
        rss: Rss::detect(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        scratch: tempfile::tempdir().unwrap(),
        repo_parent: repo_parent(),
        notes: Default::default(),
        engine: engine_pid(&socket),
        socket,
        host,
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let engine = bench
        .docker(&[
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .trim()
        .to_string();

    let mut rows = Vec::new();
    for &n in &sizes {
        run_size(&bench, n, &mut rows);
    }

    println!();
    println!("swarmseal at scale against {}", bench.host);
    println!("machine: {cpus} CPUs ({model}); Docker engine {engine}");
    println!(
        "apply: median of {} rounds; plans: median of {PLAN_RUNS} runs; rotations: one run; floor concurrency {PARALLEL}",
        sizes.iter().map(|&n| format!("{} at {n}", rounds(n))).collect::<Vec<_>>().join(", ")
    );
    println!("peak RSS: {}", bench.rss.describe());
    println!(
        "CPU s/f: seconds of CPU (user + system, medians) of swarmseal's process / of the floor (this thread); engine CPU s/f: the engine's ({}) during each",
        match bench.engine {
            Some(pid) => format!("dockerd, PID {pid}"),
            None => "not found: ?".into(),
        }
    );
    println!("repositories in {}", bench.repo_parent.display());
    println!();
    println!(
        "{:>7}  {:<46}  {:>10}  {:>10}  {:>6}  {:>9}  {:>13}  {:>13}",
        "N", "what", "swarmseal", "floor", "ratio", "peak RSS", "CPU s/f", "engine CPU s/f"
    );
    for r in &rows {
        let (cpu, engine) = match &r.cpu {
            Some(c) => (
                Cpu::cell(&c.ours, &c.floor),
                Cpu::cell(&c.engine_ours, &c.engine_floor),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:>7}  {:<46}  {:>10}  {:>10}  {:>5.2}x  {:>9}  {cpu:>13}  {engine:>13}",
            r.n,
            r.what,
            secs(r.ours),
            secs(r.floor),
            r.ours.as_secs_f64() / r.floor.as_secs_f64(),
            r.rss_kb
                .map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
                .unwrap_or_else(|| "?".into())
        );
    }
    println!();
    for note in bench.notes.borrow().iter() {
        println!("{note}");
    }
    println!();
    println!("floors (bollard alone, same socket, {PARALLEL} calls in flight):");
    println!("  apply creates:  observe + N creates");
    println!("  apply removes:  observe + N removes");
    println!("  plans:          observe (connect, /version, /info, list secrets + list services)");
    println!("  rotation, waits:    observe + 100 creates + 20 x (inspect + update) + waiting (inspect + tasks every 500 ms) + 100 removes");
    println!("  rotation, --detach: observe + 100 creates + 20 x (inspect + update)");
    println!();
    println!("whole run: {}", secs(started.elapsed()));
}
