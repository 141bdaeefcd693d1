//! Proves the test engine from `tests/engine.sh` is a usable swarm: secrets can be created,
//! found by label, removed, and reach a service's containers byte-exact.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored engine::` (engine tests are
//! `#[ignore]`d so that a plain `cargo test` reports them as ignored; they fail without the
//! harness when `SWARMSEAL_REQUIRE_ENGINE=1`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bollard::errors::Error as DockerError;
use bollard::models::{
    LocalNodeState, SecretSpec, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
    TaskState,
};
use bollard::query_parameters::ListSecretsOptionsBuilder;
use bollard::Docker;

use crate::common::engine::{engine, secret_ref, tasks, wait_until, LABEL_MANAGED, LABEL_PROJECT};

/// Secrets labelled with `project` (all of them, whatever else they carry).
async fn project_secrets(docker: &Docker, project: &str) -> Vec<bollard::models::Secret> {
    let filters = HashMap::from([(
        "label",
        vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_PROJECT}={project}"),
        ],
    )]);
    docker
        .list_secrets(Some(
            ListSecretsOptionsBuilder::new().filters(&filters).build(),
        ))
        .await
        .expect("list secrets")
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn swarm_manager_stores_labelled_secrets() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("secret_lifecycle");
    let _cleanup = engine.cleanup(&project);
    let docker = engine.connect().await;

    let version = docker.version().await.expect("docker version");
    eprintln!(
        "engine {} (API {}), client speaks {:?}",
        version.version.as_deref().unwrap_or("?"),
        version.api_version.as_deref().unwrap_or("?"),
        docker.client_version()
    );

    let info = docker.info().await.expect("docker info");
    let swarm = info.swarm.expect("docker info has no Swarm section");
    assert_eq!(swarm.local_node_state, Some(LocalNodeState::ACTIVE));
    assert_eq!(
        swarm.control_available,
        Some(true),
        "the test engine must be a swarm manager"
    );
    let cluster_id = swarm.cluster.and_then(|c| c.id).unwrap_or_default();
    assert!(!cluster_id.is_empty(), "a manager reports its cluster ID");

    // A name in the `<logical>-<10 hex>` shape swarmseal uses; Docker allows 64 characters.
    let name = format!("{project}-db_password-0123456789");
    assert!(name.len() <= 64, "{name} is too long for Docker");
    let mut labels = engine.labels(&project, "test", "db_password");
    labels.insert("io.swarmseal.fingerprint".into(), "0123456789abcdef".into());
    let value = b"hunter2\n".as_slice();
    let created = docker
        .create_secret(SecretSpec {
            name: Some(name.clone()),
            labels: Some(labels.clone()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        })
        .await
        .expect("create secret");
    assert!(!created.id.is_empty());

    // A secret of another project must not show up in this project's listing.
    let other_project = format!("{project}-other");
    let _cleanup_other = engine.cleanup(&other_project);
    let other = format!("{other_project}-x");
    docker
        .create_secret(SecretSpec {
            name: Some(other.clone()),
            labels: Some(engine.labels(&other_project, "test", "x")),
            data: Some(base64::engine::general_purpose::STANDARD.encode(b"x")),
            ..Default::default()
        })
        .await
        .expect("create unrelated secret");

    let found = project_secrets(&docker, &project).await;
    assert_eq!(found.len(), 1, "exactly the project's secret: {found:?}");
    let secret = &found[0];
    assert_eq!(secret.id.as_deref(), Some(created.id.as_str()));
    let spec = secret.spec.as_ref().expect("secret spec");
    assert_eq!(spec.name.as_deref(), Some(name.as_str()));
    assert_eq!(spec.labels.as_ref(), Some(&labels));
    assert_eq!(spec.data, None, "the API never returns secret data");

    let inspected = docker.inspect_secret(&name).await.expect("inspect by name");
    assert_eq!(inspected.id.as_deref(), Some(created.id.as_str()));

    // Same data under the same name is a conflict (names are unique).
    let dup = docker
        .create_secret(SecretSpec {
            name: Some(name.clone()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(
            dup,
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                ..
            })
        ),
        "duplicate name: {dup:?}"
    );

    docker
        .delete_secret(&created.id)
        .await
        .expect("remove secret");
    docker.delete_secret(&other).await.expect("remove other");
    assert!(project_secrets(&docker, &project).await.is_empty());
    let gone = docker.inspect_secret(&created.id).await;
    assert!(
        matches!(
            gone,
            Err(DockerError::DockerResponseServerError {
                status_code: 404,
                ..
            })
        ),
        "removed secret still inspectable: {gone:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
async fn secret_reaches_a_service_container() {
    let Some(engine) = engine() else { return };
    let project = engine.unique_project("secret_in_container");
    let _cleanup = engine.cleanup(&project);
    let docker = engine.connect().await;

    // Bytes, not text: NUL, high bytes, no trailing newline.
    let value: Vec<u8> = b"s3cr\0t\xff\xfe-value".to_vec();
    let secret_name = format!("{project}-api_key");
    let secret_id = docker
        .create_secret(SecretSpec {
            name: Some(secret_name.clone()),
            labels: Some(engine.labels(&project, "test", "api_key")),
            data: Some(base64::engine::general_purpose::STANDARD.encode(&value)),
            ..Default::default()
        })
        .await
        .expect("create secret")
        .id;

    let service = format!("{project}-svc");
    let target = "api_key";
    let mut spec = engine.sleep_service_spec(
        &project,
        &service,
        1,
        vec![secret_ref(
            &secret_id,
            &secret_name,
            target,
            "0",
            "0",
            0o400,
        )],
    );
    spec.task_template.as_mut().unwrap().restart_policy = Some(TaskSpecRestartPolicy {
        condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
        ..Default::default()
    });
    docker
        .create_service(spec, None)
        .await
        .expect("create service");

    // Wait (bounded) for the task to run.
    let filters = HashMap::from([("service", vec![service.as_str()])]);
    let start = Instant::now();
    loop {
        let tasks = tasks(&docker, &filters).await;
        let states: Vec<_> = tasks
            .iter()
            .map(|t| t.status.clone().unwrap_or_default())
            .collect();
        if states.iter().any(|s| s.state == Some(TaskState::RUNNING)) {
            break;
        }
        if let Some(failed) = states.iter().find(|s| {
            matches!(
                s.state,
                Some(TaskState::FAILED | TaskState::REJECTED | TaskState::COMPLETE)
            )
        }) {
            panic!("the service's task did not start: {failed:?}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the service's task is not running after 60 s: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let containers = engine.service_containers(&service);
    assert_eq!(containers.len(), 1, "one container: {containers:?}");
    let container = &containers[0];
    let path = format!("/run/secrets/{target}");
    let read = engine.docker_cli_ok(&["exec", container, "cat", &path]);
    assert_eq!(read, value, "the secret's bytes inside the container");
    let mode = engine.docker_cli_ok(&["exec", container, "stat", "-c", "%a %u %g", &path]);
    assert_eq!(String::from_utf8_lossy(&mode).trim(), "400 0 0");

    // A secret in use cannot be removed.
    let in_use = docker.delete_secret(&secret_id).await;
    assert!(in_use.is_err(), "removed a secret in use: {in_use:?}");

    docker
        .delete_service(&service)
        .await
        .expect("remove service");
    wait_until(
        &format!("the containers of {service} are gone"),
        Duration::from_secs(30),
        || engine.service_containers(&service).is_empty(),
    );
    docker
        .delete_secret(&secret_id)
        .await
        .expect("remove secret after its service");
    assert!(project_secrets(&docker, &project).await.is_empty());
}
