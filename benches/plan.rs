//! How long `plan` takes against a real Swarm, next to the floor of the raw Docker API
//! calls it cannot avoid (one list of secrets, one list of services), measured in the same
//! run because these machines are noisy.
//!
//! Run: `tests/engine.sh cargo bench --bench plan` (optionally `-- 10 100 300` secret counts).
//! Without an engine (SWARMSEAL_TEST_DOCKER_HOST unset) it says so and exits 0; under
//! `cargo test` (no `--bench` argument) it only checks that it builds.
//!
//! Each size creates a repository of N secrets and applies it, with a few services using
//! some of them; then it times, `RUNS` times each (median): the floor (bollard alone:
//! connect, negotiate the version, info, list secrets, list services: the calls any tool
//! needs), swarmseal's `observe` on an open connection, the repository read (one decryption
//! per secret, for reference), the pure planner, and the whole plan pipeline as `swarmseal
//! plan` runs it (read the files + connect + observe + decrypt only what the Swarm's labels
//! do not vouch for + plan). `plan - floor` is what swarmseal adds on top of the
//! unavoidable API calls.

use std::time::{Duration, Instant};

use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions};
use swarmseal::crypto::Identities;
use swarmseal::repo::desired::{self, Decrypt, Known};
use swarmseal::repo::Repo;
use swarmseal::swarm::{resolve_endpoint, Swarm};

mod common;

use common::{bench_args_and_host, median, BenchRepo};

const RUNS: usize = 15;

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        std::hint::black_box(f());
        samples.push(start.elapsed());
    }
    median(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let Some((args, host)) = bench_args_and_host("plan") else {
        return;
    };
    let image =
        std::env::var("SWARMSEAL_TEST_IMAGE").unwrap_or_else(|_| "swarmseal-test/busybox:1".into());
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 300]
    } else {
        sizes
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    println!("plan against {host}, median of {RUNS} runs");
    println!(
        "{:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>12}",
        "secrets", "API floor", "observe", "repo read", "planner", "plan", "plan - floor"
    );
    for n in sizes {
        let project = format!("bench{}-{n}", std::process::id());
        let bench = BenchRepo::new(&project, (0..n).map(|i| format!("secret{i:04}")));
        bench.run(&["-H", &host, "apply", "--yes"]);
        let (root, text) = (&bench.root, &bench.text);

        let endpoint = resolve_endpoint(Some(&host), None).unwrap();
        let swarm = rt.block_on(Swarm::connect(endpoint.clone())).unwrap();
        // A few services using some of the secrets, so that observe reads references.
        let names: Vec<String> = rt
            .block_on(swarm.observe(&project, "prod", &Default::default()))
            .unwrap()
            .secrets
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let mut services = Vec::new();
        for (k, chunk) in names.chunks(10).take(3).enumerate() {
            let svc = format!("{project}-svc{k}");
            let mut cmd = std::process::Command::new("docker");
            cmd.args([
                "-H",
                &host,
                "service",
                "create",
                "-q",
                "--detach",
                "--no-resolve-image",
                "--name",
                &svc,
            ]);
            for s in chunk {
                cmd.args(["--secret", s]);
            }
            cmd.args([&image, "sleep", "3600"]);
            assert!(cmd.output().unwrap().status.success());
            services.push(svc);
        }

        // The floor: what any tool must do to plan: open a connection, negotiate the API
        // version, ask whether this is a swarm manager (info), list secrets and services.
        let socket = host.trim_start_matches("unix://").to_string();
        let floor = time(RUNS, || {
            rt.block_on(async {
                let docker =
                    bollard::Docker::connect_with_unix(&socket, 30, bollard::API_DEFAULT_VERSION)
                        .unwrap()
                        .negotiate_version()
                        .await
                        .unwrap();
                let info = docker.info().await.unwrap();
                let s = docker
                    .list_secrets(None::<ListSecretsOptions>)
                    .await
                    .unwrap();
                let v = docker
                    .list_services(None::<ListServicesOptions>)
                    .await
                    .unwrap();
                (info.id, s.len(), v.len())
            })
        });
        let wanted = names
            .iter()
            .map(|s| s[..s.len() - 11].to_string())
            .collect();
        let observe = time(RUNS, || {
            rt.block_on(swarm.observe(&project, "prod", &wanted))
                .unwrap()
        });
        let repo = Repo::open(root).unwrap();
        let ids = Identities::from_text(text.as_bytes(), "bench").unwrap();
        let read = time(RUNS, || {
            desired::read(&repo, "prod", Some(&ids), Decrypt::IfPossible)
                .unwrap()
                .digest
        });
        let state = desired::read(&repo, "prod", Some(&ids), Decrypt::IfPossible).unwrap();
        let observed = rt
            .block_on(swarm.observe(&project, "prod", &wanted))
            .unwrap();
        let planner = time(RUNS, || swarmseal::plan::plan(&state.desired, &observed));
        // As `swarmseal plan` does it: the files read and checked, the Swarm observed, and
        // only the files its labels do not vouch for decrypted (`desired::Known`).
        let total = time(RUNS, || {
            let prepared = desired::prepare(&repo, "prod").unwrap();
            let swarm = rt.block_on(Swarm::connect(endpoint.clone())).unwrap();
            let observed = rt
                .block_on(swarm.observe(&project, "prod", &prepared.names()))
                .unwrap();
            let known = Known::from_observed(&observed, &project, "prod");
            let state = prepared
                .decrypt(&repo, Some(&ids), Decrypt::IfPossible, &known)
                .unwrap();
            swarmseal::plan::plan(&state.desired, &observed)
        });
        println!(
            "{n:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>12}",
            ms(floor),
            ms(observe),
            ms(read),
            ms(planner),
            ms(total),
            ms(total.saturating_sub(floor))
        );

        for svc in &services {
            let _ = std::process::Command::new("docker")
                .args(["-H", &host, "service", "rm", svc])
                .output();
        }
        std::thread::sleep(Duration::from_secs(2));
        for name in &names {
            let _ = std::process::Command::new("docker")
                .args(["-H", &host, "secret", "rm", name])
                .output();
        }
    }
}
