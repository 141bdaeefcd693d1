//! Services as swarmseal must see them: with their previous spec.
//!
//! `docker service rollback`, and an update that fails under
//! `--update-failure-action rollback`, bring back a service's *previous* spec. A secret
//! version that only the previous spec references is still needed: removing it strands
//! the service on its next rollback (its tasks loop on "secret not found"). Docker's own
//! in-use check looks at the current spec only, so swarmseal must read `PreviousSpec`.
//!
//! Docker sends `PreviousSpec` in `GET /services`, but the API's published schema, and so
//! bollard's `Service` model, leave it out, and bollard has no call that returns a raw
//! answer. So the list is read through a call of bollard that streams raw bytes
//! (`GET /containers/{id}/export`), on a clone of the client whose request modifier
//! rewrites that one path to `/services`: same transport (unix, TLS, ssh), same API
//! version, same timeouts, and the answer parsed here with the fields swarmseal needs.

use bollard::errors::Error as DockerError;
use bollard::models::{ServiceUpdateStatusStateEnum, TaskSpecContainerSpecSecrets};
use bollard::Docker;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::model::{SecretRef, ServiceRefs, UpdateState};

/// The container name that marks the rewritten request (never a real container's).
const MARKER: &str = "swarmseal-raw-service-list";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawService {
    #[serde(rename = "ID")]
    id: Option<String>,
    version: Option<RawVersion>,
    spec: Option<RawSpec>,
    previous_spec: Option<RawSpec>,
    update_status: Option<RawUpdateStatus>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawVersion {
    index: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawSpec {
    name: Option<String>,
    task_template: Option<RawTaskTemplate>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawTaskTemplate {
    container_spec: Option<RawContainerSpec>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawContainerSpec {
    secrets: Option<Vec<TaskSpecContainerSpecSecrets>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawUpdateStatus {
    state: Option<ServiceUpdateStatusStateEnum>,
}

/// Every service with its current and previous secret references and its update state.
pub(crate) async fn list(docker: &Docker) -> Result<Vec<ServiceRefs>, DockerError> {
    let raw = docker.clone().with_request_modifier(|mut req| {
        let uri = req.uri().clone();
        let suffix = format!("/containers/{MARKER}/export");
        let rewritten = uri
            .path_and_query()
            .and_then(|pq| pq.path().strip_suffix(suffix.as_str()))
            .and_then(|prefix| format!("{prefix}/services").parse().ok())
            .and_then(|pq| {
                let mut parts = uri.clone().into_parts();
                parts.path_and_query = Some(pq);
                http::Uri::from_parts(parts).ok()
            });
        if let Some(new) = rewritten {
            *req.uri_mut() = new;
        }
        req
    });
    let mut body = Vec::new();
    let mut stream = raw.export_container(MARKER);
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
    }
    let services: Vec<RawService> = serde_json::from_slice(&body)?;
    Ok(services.into_iter().filter_map(refs_of).collect())
}

fn refs_of(service: RawService) -> Option<ServiceRefs> {
    let id = service.id?;
    let spec = service.spec.unwrap_or_default();
    let name = spec.name.clone().unwrap_or_else(|| id.clone());
    Some(ServiceRefs {
        version: service.version.and_then(|v| v.index).unwrap_or(0),
        secrets: secret_refs(Some(spec)),
        previous: secret_refs(service.previous_spec),
        update: service
            .update_status
            .and_then(|u| u.state)
            .and_then(update_state),
        history: Vec::new(),
        id,
        name,
    })
}

/// Docker's update state as swarmseal's.
pub(crate) fn update_state(state: ServiceUpdateStatusStateEnum) -> Option<UpdateState> {
    match state {
        ServiceUpdateStatusStateEnum::UPDATING => Some(UpdateState::Updating),
        ServiceUpdateStatusStateEnum::PAUSED => Some(UpdateState::Paused),
        ServiceUpdateStatusStateEnum::COMPLETED => Some(UpdateState::Completed),
        ServiceUpdateStatusStateEnum::ROLLBACK_STARTED => Some(UpdateState::RollbackStarted),
        ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED => Some(UpdateState::RollbackPaused),
        ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED => Some(UpdateState::RollbackCompleted),
        ServiceUpdateStatusStateEnum::EMPTY => None,
    }
}

fn secret_refs(spec: Option<RawSpec>) -> Vec<SecretRef> {
    spec.and_then(|s| s.task_template)
        .and_then(|t| t.container_spec)
        .and_then(|c| c.secrets)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let file = r.file.unwrap_or_default();
            let secret_name = r.secret_name.unwrap_or_default();
            Some(SecretRef {
                secret_id: r.secret_id?,
                target: file.name.unwrap_or_else(|| secret_name.clone()),
                secret_name,
                uid: file.uid.unwrap_or_else(|| "0".into()),
                gid: file.gid.unwrap_or_else(|| "0".into()),
                mode: file.mode.unwrap_or(0o444),
                missing: false,
            })
        })
        .collect()
}
