//! The Swarm client (`swarmseal::swarm`) against a real engine: observation filters, secret
//! writes, re-pointing running services, the apply lock; and, without an engine, how fast and
//! how clearly unreachable or unsuitable endpoints fail.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored swarm_client::` (engine tests
//! are `#[ignore]`d for a plain `cargo test`, and fail without the harness when
//! `SWARMSEAL_REQUIRE_ENGINE=1`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, ServiceSpec, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    TaskSpecContainerSpecSecrets, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
    TaskState,
};
use bollard::Docker;
use serde_json::Value;

use crate::common::engine::{engine, secret_ref, tasks, Cleanup, Engine};
use crate::common::remote::Certs;
use swarmseal::domain::state::labels;
use swarmseal::swarm::holder::Holder;
use swarmseal::swarm::{
    lock_name, resolve_endpoint, resolve_endpoint_with, RemoveOutcome, Swap, Swarm,
};

const ENV: &str = "test";

// ------------------------------------------------------------------------------------------
// helpers

async fn connect(engine: &Engine) -> Swarm {
    let endpoint = resolve_endpoint(Some(&engine.host), None).expect("resolve the test engine");
    Swarm::connect(endpoint)
        .await
        .expect("connect to the test engine")
}

fn managed_labels(project: &str, env: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::PROJECT.to_owned(), project.to_owned()),
        (labels::ENVIRONMENT.to_owned(), env.to_owned()),
        (labels::NAME.to_owned(), name.to_owned()),
        (
            labels::FINGERPRINT.to_owned(),
            "0123456789abcdef".to_owned(),
        ),
    ])
}

/// Removes secrets by name on drop (for those without the project label: unmanaged ones and
/// lock markers). Declare it before the project's [`crate::common::engine::Cleanup`], so that it
/// runs after the services are gone.
struct RemoveByName {
    engine: Engine,
    names: Vec<String>,
}

impl Drop for RemoveByName {
    fn drop(&mut self) {
        for name in &self.names {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = self.engine.docker_cli(&["secret", "rm", name]);
                let err = String::from_utf8_lossy(&out.stderr);
                if out.status.success() || err.contains("not found") || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Swaps every reference to `old_id` for `new_id` (`new_name`), keeping target, owner and mode.
fn swap(old_id: &str, new_id: &str, new_name: &str) -> Swap {
    Swap {
        old_id: old_id.to_owned(),
        old_target: None,
        new_id: new_id.to_owned(),
        new_name: new_name.to_owned(),
        target: None,
        uid: None,
        gid: None,
        mode: None,
        kind: swarmseal::domain::state::Kind::Secret,
    }
}

/// A `sleep 3600` service labelled with the project (so the cleanup guard removes it).
async fn create_service(
    docker: &Docker,
    engine: &Engine,
    project: &str,
    name: &str,
    replicas: i64,
    secrets: Vec<TaskSpecContainerSpecSecrets>,
    customise: impl FnOnce(&mut ServiceSpec),
) -> String {
    let mut spec = engine.sleep_service_spec(project, name, replicas, secrets);
    customise(&mut spec);
    docker
        .create_service(spec, None)
        .await
        .expect("create service")
        .id
        .expect("service ID")
}

/// What most engine tests start with: the engine, a unique project for `test` (its
/// cleanup guard removes what it labels when the test ends), swarmseal's client and a bollard
/// client; `None` without an engine.
async fn project_scope(test: &str) -> Option<(Engine, String, Cleanup, Swarm, Docker)> {
    let engine = engine()?;
    let project = engine.unique_project(test);
    let cleanup = engine.cleanup(&project);
    let swarm = connect(&engine).await;
    let docker = engine.connect().await;
    Some((engine, project, cleanup, swarm, docker))
}

/// [`create_service`] with no tasks (0 replicas) and nothing customised.
async fn idle_service(
    docker: &Docker,
    engine: &Engine,
    project: &str,
    name: &str,
    secrets: Vec<TaskSpecContainerSpecSecrets>,
) -> String {
    create_service(docker, engine, project, name, 0, secrets, |_| {}).await
}

/// Waits (bounded) until `replicas` tasks of the service run.
async fn wait_running(docker: &Docker, service: &str, replicas: usize) {
    let filters = HashMap::from([
        ("service", vec![service]),
        ("desired-state", vec!["running"]),
    ]);
    let start = Instant::now();
    loop {
        let tasks = tasks(docker, &filters).await;
        let running = tasks
            .iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .count();
        if running == replicas && tasks.len() == replicas {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "service {service}: {running} of {replicas} tasks running after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `docker service inspect` as JSON (what the engine stores, independent of bollard's models).
fn inspect_json(engine: &Engine, service: &str) -> Value {
    let out = engine.docker_cli_ok(&["service", "inspect", service]);
    let mut all: Vec<Value> = serde_json::from_slice(&out).expect("service inspect JSON");
    all.remove(0)
}

fn secrets_of(spec: &Value) -> Value {
    spec.pointer("/TaskTemplate/ContainerSpec/Secrets")
        .cloned()
        .unwrap_or(Value::Null)
}

/// IDs of the running containers of a service.
fn running_containers(engine: &Engine, service: &str) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    engine.docker_cli_lines(&["ps", "-q", "--filter", &filter])
}

// ------------------------------------------------------------------------------------------
// engine tests

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn connect_reports_the_cluster_id() {
    let Some(engine) = engine() else { return };
    let swarm = connect(&engine).await;
    let expected = engine.docker_cli_lines(&["info", "--format", "{{.Swarm.Cluster.ID}}"]);
    assert_eq!(vec![swarm.cluster_id.clone()], expected);
    assert_eq!(swarm.endpoint().url, engine.host);
    assert_eq!(swarm.endpoint().source, "--host");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn observe_keeps_this_scope_and_reads_service_references() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("observe");
    let other_project = format!("{project}-o");
    let plain = format!("{project}-plain");
    let foreign = format!("{project}-foreign");
    let _by_name = RemoveByName {
        engine: engine.clone(),
        names: vec![plain.clone(), foreign.clone(), lock_name(&project, ENV)],
    };
    let _cleanup = engine.cleanup(&project);
    let _cleanup_other = engine.cleanup(&other_project);
    let swarm = connect(&engine).await;
    let docker = engine.connect().await;

    let mine_b = format!("{project}-b-0123456789");
    let mine_a = format!("{project}-a-0123456789");
    let other_env = format!("{project}-a-prod");
    let other_proj = format!("{other_project}-a");
    let labelled_plain = format!("{project}-labelled");
    let id_b = swarm
        .create_secret(&mine_b, &managed_labels(&project, ENV, "b"), b"b")
        .await
        .unwrap();
    let id_a = swarm
        .create_secret(&mine_a, &managed_labels(&project, ENV, "a"), b"a")
        .await
        .unwrap();
    swarm
        .create_secret(&other_env, &managed_labels(&project, "prod", "a"), b"x")
        .await
        .unwrap();
    swarm
        .create_secret(&other_proj, &managed_labels(&other_project, ENV, "a"), b"x")
        .await
        .unwrap();
    // Carries a swarmseal label (of another project) but has a wanted name: not ours to adopt.
    let mut foreign_labels = managed_labels(&other_project, ENV, "labelled");
    foreign_labels.remove(labels::MANAGED);
    swarm
        .create_secret(&labelled_plain, &foreign_labels, b"x")
        .await
        .unwrap();
    let plain_labels = BTreeMap::from([("team".to_owned(), "db".to_owned())]);
    let id_plain = swarm
        .create_secret(&plain, &plain_labels, b"p")
        .await
        .unwrap();
    swarm
        .create_secret(&foreign, &BTreeMap::new(), b"f")
        .await
        .unwrap();
    let lock = swarm
        .lock(&project, ENV, &Holder::named("observer"), Duration::ZERO)
        .await
        .unwrap();

    let service = format!("{project}-svc");
    let secrets = vec![
        secret_ref(&id_a, &mine_a, "db_password", "1000", "1001", 0o440),
        secret_ref(&id_plain, &plain, "legacy", "0", "0", 0o444),
    ];
    let service_id = idle_service(&docker, &engine, &project, &service, secrets).await;
    // A service without secrets is of no interest.
    let nosec = format!("{project}-nosec");
    idle_service(&docker, &engine, &project, &nosec, vec![]).await;

    let names: BTreeSet<String> = [&plain, &labelled_plain, &lock.name, &"nothing".to_owned()]
        .into_iter()
        .cloned()
        .collect();
    let observed = swarm.observe(&project, ENV, &names).await.unwrap();
    assert_eq!(observed.cluster_id, swarm.cluster_id);
    let got: Vec<&str> = observed.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        got,
        vec![mine_a.as_str(), mine_b.as_str(), plain.as_str()],
        "{observed:#?}"
    );
    let a = &observed.secrets[0];
    assert_eq!(a.id, id_a);
    assert_eq!(a.labels, managed_labels(&project, ENV, "a"));
    assert!(a.version > 0);
    assert!(
        humantime::parse_rfc3339_weak(&a.created_at).is_ok(),
        "{}",
        a.created_at
    );
    assert_eq!(observed.secrets[1].id, id_b);
    assert_eq!(observed.secrets[2].labels, plain_labels);

    let ours: Vec<_> = observed
        .services
        .iter()
        .filter(|s| s.name.starts_with(&project))
        .collect();
    assert_eq!(ours.len(), 1, "only the service with secrets: {ours:#?}");
    let svc = ours[0];
    assert_eq!(
        (svc.id.as_str(), svc.name.as_str()),
        (service_id.as_str(), service.as_str())
    );
    assert!(svc.version > 0);
    assert_eq!(svc.secrets.len(), 2);
    let r = &svc.secrets[0];
    assert_eq!(
        (
            r.secret_id.as_str(),
            r.secret_name.as_str(),
            r.target.as_str()
        ),
        (id_a.as_str(), mine_a.as_str(), "db_password")
    );
    assert_eq!(
        (r.uid.as_str(), r.gid.as_str(), r.mode),
        ("1000", "1001", 0o440)
    );
    assert_eq!(svc.secrets[1].target, "legacy");
    assert_eq!(observed.users_of(&id_a).len(), 1);
    assert!(observed.users_of(&id_b).is_empty());

    // Sorted: services by name.
    let all: Vec<&str> = observed.services.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    swarm.release(lock).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn create_secret_is_idempotent_and_refuses_a_foreign_namesake() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("create");
    let _cleanup = engine.cleanup(&project);
    let swarm = connect(&engine).await;

    let name = format!("{project}-token-0123456789");
    let wanted = managed_labels(&project, ENV, "token");
    let value: Vec<u8> = (0u8..=255).collect();
    let id = swarm.create_secret(&name, &wanted, &value).await.unwrap();
    // An interrupted apply re-runs the create: same secret.
    let again = swarm.create_secret(&name, &wanted, &value).await.unwrap();
    assert_eq!(id, again);

    let mut different = wanted.clone();
    different.insert(
        labels::FINGERPRINT.to_owned(),
        "ffffffffffffffff".to_owned(),
    );
    let err = swarm
        .create_secret(&name, &different, &value)
        .await
        .unwrap_err();
    assert!(err.message().contains(&name), "{err}");
    assert!(err.message().contains("already exists"), "{err}");
    assert!(err.hint_text().is_some(), "{err}");

    // Docker's own refusal (an invalid name) names the secret and the endpoint.
    let err = swarm
        .create_secret(&format!("{project}-bad name!"), &wanted, b"x")
        .await
        .unwrap_err();
    assert!(err.message().contains("bad name!"), "{err}");
    assert!(err.message().contains(&engine.host), "{err}");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn labels_are_updated_in_place() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("relabel");
    let plain = format!("{project}-plain");
    let _by_name = RemoveByName {
        engine: engine.clone(),
        names: vec![plain.clone()],
    };
    let _cleanup = engine.cleanup(&project);
    let swarm = connect(&engine).await;

    let name = format!("{project}-cert-0123456789");
    let id = swarm
        .create_secret(&name, &managed_labels(&project, ENV, "cert"), b"v")
        .await
        .unwrap();
    let observed = swarm
        .observe(&project, ENV, &BTreeSet::new())
        .await
        .unwrap();
    let secret = observed
        .secrets
        .iter()
        .find(|s| s.id == id)
        .unwrap()
        .clone();

    let mut new_labels = managed_labels(&project, ENV, "cert");
    new_labels.insert(labels::SOURCE.to_owned(), "abc123".to_owned());
    new_labels.insert("team".to_owned(), "web".to_owned());
    swarm
        .update_secret_labels(&secret, &new_labels)
        .await
        .unwrap();
    // A stale version (from the observation above) is re-read, not an error.
    new_labels.insert("team".to_owned(), "ops".to_owned());
    swarm
        .update_secret_labels(&secret, &new_labels)
        .await
        .unwrap();

    let observed = swarm
        .observe(&project, ENV, &BTreeSet::new())
        .await
        .unwrap();
    assert_eq!(observed.secrets.len(), 1);
    let updated = &observed.secrets[0];
    assert_eq!(updated.id, id, "same secret, not a new one");
    assert_eq!(updated.name, name);
    assert_eq!(updated.labels, new_labels);
    assert!(updated.version > secret.version);

    // Never on a secret that is not this project's.
    swarm
        .create_secret(&plain, &BTreeMap::new(), b"p")
        .await
        .unwrap();
    let unmanaged = swarm
        .observe(&project, ENV, &BTreeSet::from([plain.clone()]))
        .await
        .unwrap()
        .secrets
        .into_iter()
        .find(|s| s.name == plain)
        .unwrap();
    let err = swarm
        .update_secret_labels(&unmanaged, &new_labels)
        .await
        .unwrap_err();
    assert!(err.message().contains("refusing"), "{err}");
    assert!(err.message().contains(&plain), "{err}");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn remove_reports_in_use_removed_and_gone() {
    let Some((engine, project, _cleanup, swarm, docker)) = project_scope("remove").await else {
        return;
    };

    let name = format!("{project}-key-0123456789");
    let id = swarm
        .create_secret(&name, &managed_labels(&project, ENV, "key"), b"k")
        .await
        .unwrap();
    let service = format!("{project}-user");
    let secrets = vec![secret_ref(&id, &name, "key", "0", "0", 0o400)];
    idle_service(&docker, &engine, &project, &service, secrets).await;

    match swarm.remove_secret(&id, &name).await.unwrap() {
        RemoveOutcome::InUse(message) => {
            assert!(
                message.contains(&service),
                "docker names the service: {message}"
            )
        }
        other => panic!("removed a secret in use: {other:?}"),
    }
    engine.docker_cli_ok(&["service", "rm", &service]);
    let start = Instant::now();
    loop {
        match swarm.remove_secret(&id, &name).await.unwrap() {
            RemoveOutcome::Removed => break,
            RemoveOutcome::InUse(m) if start.elapsed() < Duration::from_secs(10) => {
                let _ = m;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("after removing its service: {other:?}"),
        }
    }
    assert_eq!(
        swarm.remove_secret(&id, &name).await.unwrap(),
        RemoveOutcome::Gone
    );
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn repoint_a_running_service_keeps_the_rest_of_its_spec() {
    let Some((engine, project, _cleanup, swarm, docker)) = project_scope("repoint").await else {
        return;
    };

    let old_name = format!("{project}-db-aaaaaaaaaa");
    let new_name = format!("{project}-db-bbbbbbbbbb");
    let old_id = swarm
        .create_secret(
            &old_name,
            &managed_labels(&project, ENV, "db"),
            b"old value",
        )
        .await
        .unwrap();
    let new_value = b"new\0value\xff".to_vec();
    let new_id = swarm
        .create_secret(&new_name, &managed_labels(&project, ENV, "db"), &new_value)
        .await
        .unwrap();

    let service = format!("{project}-app");
    let service_id = create_service(
        &docker,
        &engine,
        &project,
        &service,
        2,
        vec![secret_ref(
            &old_id,
            &old_name,
            "db_password",
            "0",
            "0",
            0o400,
        )],
        |spec| {
            spec.labels
                .get_or_insert_with(HashMap::new)
                .insert("com.example.tier".into(), "backend".into());
            let container = spec
                .task_template
                .as_mut()
                .unwrap()
                .container_spec
                .as_mut()
                .unwrap();
            container.env = Some(vec!["GREETING=hello world".into(), "EMPTY=".into()]);
            container.labels = Some(HashMap::from([("c.label".into(), "x".into())]));
            container.dir = Some("/tmp".into());
            spec.update_config = Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
                monitor: Some(Duration::from_millis(500).as_nanos() as i64),
                ..Default::default()
            });
            spec.endpoint_spec = Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ..Default::default()
            });
        },
    )
    .await;
    wait_running(&docker, &service_id, 2).await;
    let before = inspect_json(&engine, &service);

    // Nothing to swap: no update.
    let unrelated = swap("nonexistent0000000000000", &new_id, &new_name);
    assert!(!swarm
        .repoint_service(&service_id, &[unrelated])
        .await
        .unwrap());

    let swap = swap(&old_id, &new_id, &new_name);
    assert!(swarm
        .repoint_service(&service_id, std::slice::from_ref(&swap))
        .await
        .unwrap());
    let start = Instant::now();
    swarm
        .wait_converged(&service_id, Duration::from_secs(120), &|_| {})
        .await
        .unwrap();
    eprintln!("converged in {:?}", start.elapsed());
    // Done already: nothing to swap.
    assert!(!swarm.repoint_service(&service_id, &[swap]).await.unwrap());

    // "completed" means the new tasks run; with start-first the old ones may still be
    // stopping for a moment.
    let start = Instant::now();
    let containers = loop {
        let containers = running_containers(&engine, &service);
        if containers.len() == 2 {
            break containers;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not two running replicas 30 s after the update: {containers:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for container in &containers {
        let read = engine.docker_cli_ok(&["exec", container, "cat", "/run/secrets/db_password"]);
        assert_eq!(read, new_value, "the new value inside {container}");
        let stat = engine.docker_cli_ok(&[
            "exec",
            container,
            "stat",
            "-c",
            "%a %u %g",
            "/run/secrets/db_password",
        ]);
        assert_eq!(String::from_utf8_lossy(&stat).trim(), "400 0 0");
    }

    // The spec is what it was, but for the reference.
    let after = inspect_json(&engine, &service);
    let mut spec_before = before["Spec"].clone();
    let mut spec_after = after["Spec"].clone();
    assert_eq!(
        secrets_of(&spec_after),
        serde_json::json!([{
            "File": {"Name": "db_password", "UID": "0", "GID": "0", "Mode": 0o400},
            "SecretID": new_id,
            "SecretName": new_name,
        }])
    );
    for spec in [&mut spec_before, &mut spec_after] {
        spec["TaskTemplate"]["ContainerSpec"]
            .as_object_mut()
            .unwrap()
            .remove("Secrets");
    }
    assert_eq!(spec_before, spec_after, "nothing else in the spec changed");
    assert_eq!(spec_after["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(spec_after["Labels"]["com.example.tier"], "backend");
    assert_eq!(spec_after["EndpointSpec"]["Mode"], "dnsrr");
    assert_eq!(spec_after["UpdateConfig"]["Order"], "start-first");
    assert_eq!(
        spec_after["TaskTemplate"]["ContainerSpec"]["Env"],
        serde_json::json!(["GREETING=hello world", "EMPTY="])
    );

    // The old version is unused now.
    let start = Instant::now();
    loop {
        match swarm.remove_secret(&old_id, &old_name).await.unwrap() {
            RemoveOutcome::Removed => break,
            RemoveOutcome::InUse(m) => {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "old version still in use after the update: {m}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            RemoveOutcome::Gone => panic!("the old version vanished"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn repoint_with_two_swaps_is_one_service_update() {
    let Some((engine, project, _cleanup, swarm, docker)) = project_scope("two-swaps").await else {
        return;
    };

    let mut ids = HashMap::new();
    for name in [
        "a-1111111111",
        "a-2222222222",
        "b-1111111111",
        "b-2222222222",
    ] {
        let full = format!("{project}-{name}");
        let logical = &name[..1];
        let id = swarm
            .create_secret(
                &full,
                &managed_labels(&project, ENV, logical),
                name.as_bytes(),
            )
            .await
            .unwrap();
        ids.insert(name, (id, full));
    }
    let (a1, a1n) = ids["a-1111111111"].clone();
    let (a2, a2n) = ids["a-2222222222"].clone();
    let (b1, b1n) = ids["b-1111111111"].clone();
    let (b2, b2n) = ids["b-2222222222"].clone();

    let service = format!("{project}-svc");
    let secrets = vec![
        secret_ref(&a1, &a1n, "a", "0", "0", 0o444),
        secret_ref(&b1, &b1n, "b.txt", "33", "44", 0o440),
    ];
    let service_id = idle_service(&docker, &engine, &project, &service, secrets).await;
    let before = inspect_json(&engine, &service);
    let version_before = before["Version"]["Index"].as_u64().unwrap();

    let swaps = [
        Swap {
            target: Some("a_renamed".into()),
            mode: Some(0o400),
            ..swap(&a1, &a2, &a2n)
        },
        Swap {
            gid: Some("55".into()),
            ..swap(&b1, &b2, &b2n)
        },
    ];
    assert!(swarm.repoint_service(&service_id, &swaps).await.unwrap());
    // With no replicas Docker publishes no update status; swarmseal watches the (absent)
    // tasks for a moment before calling it converged, so a tiny timeout runs out first.
    let err = swarm
        .wait_converged(&service_id, Duration::from_millis(1), &|_| {})
        .await
        .unwrap_err();
    assert!(err.message().contains(&service), "{err}");
    assert!(err.message().contains("did not finish"), "{err}");
    assert!(
        err.hint_text().unwrap().contains("docker service ps"),
        "{err}"
    );
    swarm
        .wait_converged(&service_id, Duration::from_secs(60), &|_| {})
        .await
        .unwrap();

    let after = inspect_json(&engine, &service);
    assert!(after["Version"]["Index"].as_u64().unwrap() > version_before);
    // One update: the previous spec is the original one, with both old references.
    assert_eq!(
        secrets_of(&after["PreviousSpec"]),
        secrets_of(&before["Spec"]),
        "PreviousSpec must be the spec before the repoint (a single update)"
    );
    assert_eq!(
        secrets_of(&after["Spec"]),
        serde_json::json!([
            {"File": {"Name": "a_renamed", "UID": "0", "GID": "0", "Mode": 0o400},
             "SecretID": a2, "SecretName": a2n},
            {"File": {"Name": "b.txt", "UID": "33", "GID": "55", "Mode": 0o440},
             "SecretID": b2, "SecretName": b2n},
        ])
    );
}

/// A service whose task only runs while its secret `v` reads `good`, updated to a secret
/// that reads `bad`: the update fails, and Docker pauses it or rolls it back.
async fn failing_update(
    engine: &Engine,
    swarm: &Swarm,
    docker: &Docker,
    project: &str,
    suffix: &str,
    on_failure: ServiceSpecUpdateConfigFailureActionEnum,
) -> (String, swarmseal::Result<()>) {
    let good = format!("{project}-{suffix}-good");
    let bad = format!("{project}-{suffix}-bad");
    let good_id = swarm
        .create_secret(&good, &managed_labels(project, ENV, suffix), b"good")
        .await
        .unwrap();
    let bad_id = swarm
        .create_secret(&bad, &managed_labels(project, ENV, suffix), b"bad")
        .await
        .unwrap();
    let service = format!("{project}-{suffix}");
    let id = create_service(
        docker,
        engine,
        project,
        &service,
        1,
        vec![secret_ref(&good_id, &good, "v", "0", "0", 0o444)],
        |spec| {
            let task = spec.task_template.as_mut().unwrap();
            task.container_spec.as_mut().unwrap().command = Some(vec![
                "sh".into(),
                "-c".into(),
                r#"test "$(cat /run/secrets/v)" = good && exec sleep 3600"#.into(),
            ]);
            task.restart_policy = Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            });
            let fail_fast = ServiceSpecUpdateConfig {
                parallelism: Some(1),
                failure_action: Some(on_failure),
                monitor: Some(Duration::from_secs(3).as_nanos() as i64),
                ..Default::default()
            };
            spec.update_config = Some(fail_fast);
        },
    )
    .await;
    wait_running(docker, &id, 1).await;
    let swap = swap(&good_id, &bad_id, &bad);
    assert!(swarm.repoint_service(&id, &[swap]).await.unwrap());
    let start = Instant::now();
    let result = swarm
        .wait_converged(&id, Duration::from_secs(90), &|_| {})
        .await;
    eprintln!("{service}: {:?} after {:?}", result, start.elapsed());
    (service, result)
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn failed_updates_are_reported_with_dockers_reason() {
    let Some((engine, project, _cleanup, swarm, docker)) = project_scope("failing").await else {
        return;
    };

    let ((paused, paused_result), (rolled, rolled_result)) = tokio::join!(
        failing_update(
            &engine,
            &swarm,
            &docker,
            &project,
            "pause",
            ServiceSpecUpdateConfigFailureActionEnum::PAUSE
        ),
        failing_update(
            &engine,
            &swarm,
            &docker,
            &project,
            "rollback",
            ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK
        ),
    );
    let err = paused_result.expect_err("a paused update is an error");
    assert!(err.message().contains(&paused), "{err}");
    assert!(err.message().contains("paused"), "{err}");
    assert!(
        err.hint_text()
            .unwrap()
            .contains(&format!("docker service ps {paused}")),
        "{err}"
    );
    let err = rolled_result.expect_err("a rolled back update is an error");
    assert!(err.message().contains(&rolled), "{err}");
    assert!(err.message().contains("rolled back"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn stale_service_version_is_the_conflict_repoint_retries_on() {
    // The text `repoint_service` recognises as a version conflict, checked against the engine.
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("conflict");
    let _cleanup = engine.cleanup(&project);
    let docker = engine.connect().await;
    let service = format!("{project}-svc");
    let id = idle_service(&docker, &engine, &project, &service, vec![]).await;
    let inspected = docker.inspect_service(&id, None).await.unwrap();
    let version = inspected.version.unwrap().index.unwrap() as i32;
    let spec = inspected.spec.unwrap();
    let options = bollard::query_parameters::UpdateServiceOptionsBuilder::new();
    docker
        .update_service(
            &id,
            spec.clone(),
            options.clone().version(version).build(),
            None,
        )
        .await
        .unwrap();
    let err = docker
        .update_service(&id, spec, options.version(version).build(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("update out of sequence"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn lock_waits_names_the_holder_and_can_be_broken() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("lock");
    let _by_name = RemoveByName {
        engine: engine.clone(),
        names: vec![lock_name(&project, ENV), lock_name(&project, "other")],
    };
    let swarm = connect(&engine).await;

    assert_eq!(swarm.lock_info(&project, ENV).await.unwrap(), None);
    let lock = swarm
        .lock(
            &project,
            ENV,
            &Holder::named("alice@ci-42"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(lock.name, lock_name(&project, ENV));
    // Another environment has its own lock.
    let other = swarm
        .lock(&project, "other", &Holder::named("carol"), Duration::ZERO)
        .await
        .unwrap();

    let start = Instant::now();
    let err = swarm
        .lock(&project, ENV, &Holder::named("bob"), Duration::from_secs(2))
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(6),
        "waited {waited:?}"
    );
    assert!(err.message().contains("alice@ci-42"), "{err}");
    assert!(err.message().contains(&format!("{project}/{ENV}")), "{err}");
    assert!(
        err.hint_text().unwrap().contains("swarmseal unlock"),
        "{err}"
    );

    let info = swarm.lock_info(&project, ENV).await.unwrap().unwrap();
    assert_eq!(info.holder, "alice@ci-42");
    assert_eq!(info.name, lock.name);
    assert!(
        humantime::parse_rfc3339(&info.created).is_ok(),
        "{}",
        info.created
    );

    // The marker is not a managed secret, and never observed.
    let names = BTreeSet::from([lock.name.clone()]);
    let observed = swarm.observe(&project, ENV, &names).await.unwrap();
    assert!(observed.secrets.is_empty(), "{observed:?}");

    swarm.release(lock).await.unwrap();
    let lock = swarm
        .lock(&project, ENV, &Holder::named("bob"), Duration::from_secs(2))
        .await
        .unwrap();
    let broken = swarm.unlock(&project, ENV, false).await.unwrap().unwrap();
    assert_eq!(broken.holder, "bob");
    assert_eq!(swarm.lock_info(&project, ENV).await.unwrap(), None);
    assert_eq!(swarm.unlock(&project, ENV, false).await.unwrap(), None);
    // Releasing a broken lock is fine.
    swarm.release(lock).await.unwrap();
    swarm.release(other).await.unwrap();
}

// ------------------------------------------------------------------------------------------
// endpoints that cannot work (no engine needed; loopback and unix sockets only)

/// A CA certificate (its key was thrown away), enough to set up a TLS client.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBqjCCAVGgAwIBAgIUDC/CxmOTXWL4tIR/j8PPXOilZ80wCgYIKoZIzj0EAwIw
KjEoMCYGA1UEAwwfc3dhcm1zZWFsIHRlc3QgQ0EgKG5vIGtleSBrZXB0KTAgFw0y
NjExMjgyMTA0NTZaGA8yMTI2MTEwNDIxMDQ1NlowKjEoMCYGA1UEAwwfc3dhcm1z
ZWFsIHRlc3QgQ0EgKG5vIGtleSBrZXB0KTBZMBMGByqGSM49AgEGCCqGSM49AwEH
A0IABNDpNoEzxOiCRjZ9OqgfFuizmjpN7qRwcWGBUgmS+cF1JJkZstpmL82HLlHX
Q1bXorCsqVGklpT7DJlg1JT84P6jUzBRMB0GA1UdDgQWBBRyUaqvQwlgasCDS7FJ
5Sq78CXa3DAfBgNVHSMEGDAWgBRyUaqvQwlgasCDS7FJ5Sq78CXa3DAPBgNVHRMB
Af8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIEdY9tOlz+RCKloPINrUnK24lcjW
vS6OyPzPqEBl1JtkAiAsuADSEW+d1gIlqtfJUIrEtFscSkC9po3R+BmB0kyoKA==
-----END CERTIFICATE-----
";

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Connects and expects a fast failure naming the URL.
async fn expect_unreachable(endpoint: swarmseal::swarm::Endpoint, limit: Duration) -> String {
    let url = endpoint.url.clone();
    let start = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), Swarm::connect(endpoint))
        .await
        .expect("connect must give up by itself");
    let elapsed = start.elapsed();
    let err = result.expect_err("connected to an endpoint that cannot work");
    eprintln!("{url}: failed in {elapsed:?}: {err}");
    assert!(elapsed < limit, "{url}: took {elapsed:?}");
    assert!(err.message().contains(&url), "{err}");
    assert!(
        err.message().contains("cannot reach the Docker engine"),
        "{err}"
    );
    assert!(err.hint_text().is_some(), "{err}");
    err.to_string()
}

#[tokio::test(flavor = "current_thread")]
async fn missing_unix_socket_fails_fast() {
    let endpoint = resolve_endpoint(Some("unix:///nonexistent.sock"), None).unwrap();
    let err = expect_unreachable(endpoint, Duration::from_secs(10)).await;
    assert!(err.contains("--host"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn closed_http_port_fails_fast() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let endpoint = resolve_endpoint(Some(&url), None).unwrap();
    let err = expect_unreachable(endpoint, Duration::from_secs(10)).await;
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn closed_tls_port_fails_fast() {
    let certs = tempfile::tempdir().unwrap();
    std::fs::write(certs.path().join("ca.pem"), TEST_CA).unwrap();
    let cert_path = certs.path().to_str().unwrap().to_owned();
    let var = move |name: &str| (name == "DOCKER_CERT_PATH").then(|| cert_path.clone());
    let endpoint = resolve_endpoint_with(Some("tcp://127.0.0.1:1"), None, &var).unwrap();
    assert!(endpoint.is_tls());
    assert_eq!(endpoint.url, "tcp://127.0.0.1:1");
    expect_unreachable(endpoint, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn tls_to_a_server_that_hangs_up_fails_fast() {
    let certs = tempfile::tempdir().unwrap();
    std::fs::write(certs.path().join("ca.pem"), TEST_CA).unwrap();
    let cert_path = certs.path().to_str().unwrap().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream); // hang up before the handshake
        }
    });
    let var = move |name: &str| (name == "DOCKER_CERT_PATH").then(|| cert_path.clone());
    let url = format!("tcp://127.0.0.1:{port}");
    let endpoint = resolve_endpoint_with(Some(&url), None, &var).unwrap();
    expect_unreachable(endpoint, Duration::from_secs(10)).await;
}

/// Kills the child (an `openssl s_server` this test started) on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tls_endpoint_verifies_the_engine_and_sends_the_client_certificate() {
    // A TLS "engine" on loopback: `openssl s_server -WWW` serving /_ping, /version and /info
    // from files, requiring a client certificate.
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("note: skipping the TLS round trip: the openssl CLI is not installed");
        return;
    }
    let ca = Certs::new();
    let dir = ca.tmp.path();
    let www = dir.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("_ping"), "OK").unwrap();
    std::fs::write(
        www.join("version"),
        r#"{"Version":"20.10.24","ApiVersion":"1.41"}"#,
    )
    .unwrap();
    std::fs::write(
        www.join("info"),
        r#"{"Swarm":{"LocalNodeState":"active","ControlAvailable":true,"Cluster":{"ID":"tls-cluster"}}}"#,
    )
    .unwrap();
    // The client's folder: what DOCKER_CERT_PATH points at.
    let certs = ca.client_dir("certs", "ca.pem", true);

    let port = closed_port();
    let accept = format!("127.0.0.1:{port}");
    let server = std::process::Command::new("openssl")
        .args([
            "s_server", "-accept", &accept, "-WWW", "-quiet", "-Verify", "1",
        ])
        .args([
            "-cert",
            "../server.pem",
            "-key",
            "../server-key.pem",
            "-CAfile",
            "../ca.pem",
        ])
        .current_dir(&www)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let _server = KillOnDrop(server);
    let start = Instant::now();
    while TcpStream::connect(&accept).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let url = format!("tcp://{accept}");
    let with_certs = |path: std::path::PathBuf| {
        let path = path.to_str().unwrap().to_owned();
        move |name: &str| (name == "DOCKER_CERT_PATH").then(|| path.clone())
    };
    let endpoint = resolve_endpoint_with(Some(&url), None, &with_certs(certs.clone())).unwrap();
    let swarm = Swarm::connect(endpoint)
        .await
        .expect("TLS with the right CA and client cert");
    assert_eq!(swarm.cluster_id, "tls-cluster");

    // Without a client certificate the engine refuses us; the hint says what to add.
    let no_client = ca.client_dir("no-client", "ca.pem", false);
    let endpoint = resolve_endpoint_with(Some(&url), None, &with_certs(no_client)).unwrap();
    let err = Swarm::connect(endpoint).await.unwrap_err();
    assert!(err.message().contains(&url), "{err}");
    assert!(err.hint_text().unwrap().contains("cert.pem"), "{err}");

    // Another CA: the engine's certificate is not trusted.
    let other_ca = ca.client_dir("other-ca", "ca.pem", true);
    std::fs::write(other_ca.join("ca.pem"), TEST_CA).unwrap();
    let endpoint = resolve_endpoint_with(Some(&url), None, &with_certs(other_ca)).unwrap();
    let err = Swarm::connect(endpoint).await.unwrap_err();
    assert!(err.message().contains("certificate"), "{err}");
    assert!(err.hint_text().unwrap().contains("ca.pem"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn silent_socket_times_out_after_about_five_seconds() {
    // A unix socket that accepts connections but never answers.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let held = std::thread::spawn(move || {
        let mut streams = Vec::new();
        for stream in listener.incoming().flatten().take(4) {
            streams.push(stream);
        }
        std::thread::sleep(Duration::from_secs(15));
    });
    let url = format!("unix://{}", path.display());
    let endpoint = resolve_endpoint(Some(&url), None).unwrap();
    let start = Instant::now();
    let err = expect_unreachable(endpoint, Duration::from_secs(10)).await;
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("no answer within 5s"), "{err}");
    drop(held);
}

#[tokio::test(flavor = "current_thread")]
async fn unreachable_ssh_endpoint_fails_in_bounded_time() {
    let endpoint = resolve_endpoint(Some("ssh://swarmseal-test@127.0.0.1"), None).unwrap();
    expect_unreachable(endpoint, Duration::from_secs(20)).await;
}

/// A fake engine on loopback answering `/_ping`, `/version` and `/info` (with `info` as the
/// body of the latter).
fn fake_engine(info: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let info = info.clone();
            std::thread::spawn(move || serve(stream, &info));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn serve(mut stream: TcpStream, info: &Value) {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let (content_type, body) = if path.ends_with("/_ping") {
        ("text/plain", "OK".to_owned())
    } else if path.ends_with("/version") {
        (
            "application/json",
            serde_json::json!({"Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12"})
                .to_string(),
        )
    } else if path.ends_with("/info") {
        ("application/json", info.to_string())
    } else {
        (
            "application/json",
            r#"{"message":"page not found"}"#.to_owned(),
        )
    };
    let status = if body.contains("page not found") {
        "404 Not Found"
    } else {
        "200 OK"
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

#[tokio::test(flavor = "current_thread")]
async fn engine_not_in_swarm_mode_is_refused_with_swarm_init_hint() {
    let url = fake_engine(serde_json::json!({"Swarm": {"LocalNodeState": "inactive"}}));
    let endpoint = resolve_endpoint(Some(&url), None).unwrap();
    let err = Swarm::connect(endpoint).await.unwrap_err();
    assert!(err.message().contains(&url), "{err}");
    assert!(err.message().contains("not in swarm mode"), "{err}");
    assert!(
        err.hint_text().unwrap().contains("docker swarm init"),
        "{err}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn swarm_worker_is_refused_naming_managers() {
    let url = fake_engine(serde_json::json!({"Swarm": {
        "LocalNodeState": "active", "ControlAvailable": false, "NodeID": "n1"
    }}));
    let endpoint = resolve_endpoint(Some(&url), None).unwrap();
    let err = Swarm::connect(endpoint).await.unwrap_err();
    assert!(err.message().contains(&url), "{err}");
    assert!(err.message().contains("not a manager"), "{err}");
    assert!(err.hint_text().unwrap().contains("manager"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn fake_manager_connects() {
    let url = fake_engine(serde_json::json!({"Swarm": {
        "LocalNodeState": "active", "ControlAvailable": true,
        "Cluster": {"ID": "cluster-xyz"}
    }}));
    let endpoint = resolve_endpoint(Some(&url), None).unwrap();
    let swarm = Swarm::connect(endpoint).await.unwrap();
    assert_eq!(swarm.cluster_id, "cluster-xyz");
}
