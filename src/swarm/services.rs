//! Services as swarmseal must see them: with their previous spec; and the list of secrets,
//! parsed into the few fields swarmseal reads.
//!
//! `docker service rollback`, and an update that fails under
//! `--update-failure-action rollback`, bring back a service's *previous* spec. A secret
//! version that only the previous spec references is still needed: removing it strands
//! the service on its next rollback (its tasks loop on "secret not found"). Docker's own
//! in-use check looks at the current spec only, so swarmseal must read `PreviousSpec`.
//!
//! Docker sends `PreviousSpec` in `GET /services`, but the API's published schema, and so
//! bollard's `Service` model, leave it out. So the list is read as raw JSON through the same
//! transport as every other request (see [`super::transport`]), and parsed here with the
//! fields swarmseal needs.

use std::collections::BTreeMap;

use bollard::errors::Error as DockerError;
use bollard::models::{
    ServiceUpdateStatusStateEnum, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecSecrets,
};
use bollard::Docker;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::transport::Transport;

use crate::domain::state::{labels, SecretRef, ServiceRefs, SwarmSecret, UpdateState};

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
    configs: Option<Vec<TaskSpecContainerSpecConfigs>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawUpdateStatus {
    state: Option<ServiceUpdateStatusStateEnum>,
}

/// Every service with its current and previous secret references and its update state.
pub(crate) async fn list(
    transport: &Transport,
    docker: &Docker,
) -> Result<Vec<ServiceRefs>, DockerError> {
    let services: Vec<RawService> = get_json(transport, docker, "services").await?;
    Ok(services.into_iter().filter_map(refs_of).collect())
}

/// Every secret, as swarmseal sees it: read as raw JSON too, into the few fields it needs
/// (bollard's full model of 10,000 secrets takes twice the memory and time to parse).
pub(crate) async fn list_secrets(
    transport: &Transport,
    docker: &Docker,
) -> Result<Vec<SwarmSecret>, DockerError> {
    let secrets = get_objects(transport, docker, "secrets").await?;
    Ok(secrets
        .into_iter()
        .filter_map(|s| {
            let spec = s.spec?;
            Some(SwarmSecret {
                id: s.id?,
                name: spec.name?,
                version: s.version.and_then(|v| v.index).unwrap_or(0),
                created_at: s.created_at.unwrap_or_default(),
                labels: spec.labels.unwrap_or_default(),
            })
        })
        .collect())
}

/// Every config, with the data of those applied from a plain file: a managed config whose
/// `source` label is the sha256 of its data (the digest of an encrypted config's file is
/// that of its ciphertext, never of its data). No other config's data is kept.
pub(crate) async fn list_configs(
    transport: &Transport,
    docker: &Docker,
) -> Result<(Vec<SwarmSecret>, BTreeMap<String, Vec<u8>>), DockerError> {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    let configs = get_objects(transport, docker, "configs").await?;
    let mut plain = BTreeMap::new();
    let mut list = Vec::with_capacity(configs.len());
    for c in configs {
        let Some(spec) = c.spec else { continue };
        let (Some(id), Some(name)) = (c.id, spec.name) else {
            continue;
        };
        let labels = spec.labels.unwrap_or_default();
        let data = spec
            .data
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        if let (Some(data), Some(source)) = (data, labels.get(labels::SOURCE)) {
            if hex::encode(Sha256::digest(&data)) == *source {
                plain.insert(id.clone(), data);
            }
        }
        list.push(SwarmSecret {
            id,
            name,
            version: c.version.and_then(|v| v.index).unwrap_or(0),
            created_at: c.created_at.unwrap_or_default(),
            labels,
        });
    }
    Ok((list, plain))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSecret {
    #[serde(rename = "ID")]
    id: Option<String>,
    version: Option<RawVersion>,
    created_at: Option<String>,
    spec: Option<RawSecretSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawSecretSpec {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    /// A config's data (base64); Docker never sends a secret's.
    data: Option<String>,
}

/// `GET /v<api>/<path>` through the transport, parsed from JSON.
async fn get_json<T: DeserializeOwned>(
    transport: &Transport,
    docker: &Docker,
    path: &str,
) -> Result<T, DockerError> {
    let body = get_body(transport, docker, path).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// A list of secrets or configs (`path`), parsed one object at a time in name order
/// ([`in_name_order`]).
async fn get_objects(
    transport: &Transport,
    docker: &Docker,
    path: &str,
) -> Result<Vec<RawSecret>, DockerError> {
    let body = get_body(transport, docker, path).await?;
    Ok(in_name_order(&body)?)
}

/// The objects of a JSON list of secrets or configs, parsed in the order of their names.
///
/// Every later pass over them walks them by name (narrowing, the Swarm's word on each
/// file, the planner), and each object is a score of small allocations (its ID, name and
/// every label's key and value). Parsed in the API's order (by ID), those lie scattered
/// for a walk by name: at 10,000 secrets, the passes after the list took twice as long,
/// waiting on memory (README, Performance). So the list is first split into its objects,
/// without allocating, and each object is then parsed in the order of its name.
fn in_name_order(body: &[u8]) -> serde_json::Result<Vec<RawSecret>> {
    let mut objects: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body)?;
    objects.sort_by_cached_key(|o| name_of(o.get()));
    objects
        .into_iter()
        .map(|o| serde_json::from_str(o.get()))
        .collect()
}

/// An object's name, as far as [`in_name_order`] needs it: the text of its first
/// `"Name":"..."` (Docker writes a spec's name first, and compact), not unescaped. Only
/// where the parsed objects lie in memory depends on it, since the lists are sorted by
/// name again once parsed; this search is a tenth of the cost of parsing for it.
fn name_of(object: &str) -> &str {
    const KEY: &str = "\"Name\":\"";
    let Some(at) = object.find(KEY) else {
        return "";
    };
    let name = &object[at + KEY.len()..];
    &name[..name.find('"').unwrap_or(name.len())]
}

/// `GET /v<api>/<path>` through the transport: the body of a successful response.
async fn get_body(
    transport: &Transport,
    docker: &Docker,
    path: &str,
) -> Result<bytes::Bytes, DockerError> {
    use http_body_util::BodyExt;
    let version = docker.client_version();
    let request = http::Request::get(format!(
        "http://docker/v{}.{}/{path}",
        version.major_version, version.minor_version
    ))
    .header("Content-Type", "application/json")
    .body(bollard::body_full(bytes::Bytes::new()))?;
    let response = tokio::time::timeout(super::client::REQUEST_TIMEOUT, transport.request(request))
        .await
        .map_err(|_| DockerError::RequestTimeoutError)??;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(DockerError::from)?
        .to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(DockerError::DockerResponseServerError {
            status_code: status.as_u16(),
            message,
        });
    }
    Ok(body)
}

fn refs_of(service: RawService) -> Option<ServiceRefs> {
    let id = service.id?;
    let mut spec = service.spec.unwrap_or_default();
    let mut previous_spec = service.previous_spec;
    let name = spec.name.clone().unwrap_or_else(|| id.clone());
    Some(ServiceRefs {
        version: service.version.and_then(|v| v.index).unwrap_or(0),
        configs: config_refs(Some(&mut spec)),
        previous_configs: config_refs(previous_spec.as_mut()),
        secrets: secret_refs(Some(spec)),
        previous: secret_refs(previous_spec),
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

/// A spec's config references that mount a file (a `Runtime` reference, used for
/// credential specs, mounts nothing and is left alone), as [`SecretRef`]s.
fn config_refs(spec: Option<&mut RawSpec>) -> Vec<SecretRef> {
    spec.and_then(|s| s.task_template.as_mut())
        .and_then(|t| t.container_spec.as_mut())
        .and_then(|c| c.configs.take())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let file = r.file?;
            let config_name = r.config_name.unwrap_or_default();
            Some(SecretRef {
                secret_id: r.config_id?,
                target: file.name.unwrap_or_else(|| config_name.clone()),
                secret_name: config_name,
                uid: file.uid.unwrap_or_else(|| "0".into()),
                gid: file.gid.unwrap_or_else(|| "0".into()),
                mode: file.mode.unwrap_or(0o444),
                missing: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_parsed_in_name_order_and_none_is_lost() {
        // As the API sends them: by ID. An object without a spec or a name comes first and
        // is kept (the caller skips it).
        let body = br#"[
            {"ID":"a1","Spec":{"Name":"zeta","Labels":{"k":"v"}}},
            {"ID":"b2","Spec":{"Name":"alpha"}},
            {"ID":"c3","Version":{"Index":7}},
            {"ID":"d4","Spec":{"Name":"mid","Labels":null},"CreatedAt":"t"}
        ]"#;
        let objects = in_name_order(body).unwrap();
        let ids: Vec<_> = objects.iter().map(|o| o.id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["c3", "b2", "d4", "a1"]);
        let zeta = objects[3].spec.as_ref().unwrap();
        assert_eq!(zeta.labels.as_ref().unwrap()["k"], "v");
        assert_eq!(objects[0].version.as_ref().unwrap().index, Some(7));
        assert_eq!(objects[2].created_at.as_deref(), Some("t"));
    }

    #[test]
    fn a_list_that_is_not_json_is_an_error_not_a_panic() {
        assert!(in_name_order(b"[{\"ID\": ").is_err());
        assert!(in_name_order(b"{\"message\": \"no\"}").is_err());
        assert!(in_name_order(b"[{\"Spec\": {\"Name\": 3}}]").is_err());
    }

    #[test]
    fn the_name_is_found_in_what_docker_writes_and_nothing_breaks_without_it() {
        let docker =
            r#"{"ID":"x","Version":{"Index":1},"Spec":{"Name":"db-1a2b","Labels":{"Name":"y"}}}"#;
        assert_eq!(name_of(docker), "db-1a2b");
        assert_eq!(name_of(r#"{"ID":"x"}"#), "");
        assert_eq!(name_of(r#"{"Spec":{"Name":"cut"#), "cut");
    }
}
