//! Secrets and configs alike: the Docker API calls that differ only by kind (create,
//! inspect, label update, removal), so that the rest of the client handles a managed
//! object whatever its kind.

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as DockerError;
use bollard::models::{ConfigSpec, SecretSpec};
use bollard::query_parameters::{UpdateConfigOptionsBuilder, UpdateSecretOptionsBuilder};

use super::client::Swarm;
use crate::domain::state::{Kind, SwarmSecret};

/// A secret or config as inspected, with its spec kept to send back on a label update.
pub(crate) struct Inspected {
    pub(crate) object: SwarmSecret,
    spec: Spec,
}

enum Spec {
    Secret(SecretSpec),
    Config(ConfigSpec),
}

fn to_btree(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

impl Swarm {
    /// Creates a secret or config from base64 data; its ID.
    pub(crate) async fn api_create(
        &self,
        kind: Kind,
        name: &str,
        labels: &BTreeMap<String, String>,
        data: &str,
    ) -> Result<String, DockerError> {
        let (name, labels, data) = (Some(name.to_owned()), Some(to_hash(labels)), data);
        let created = match kind {
            Kind::Secret => {
                let spec = SecretSpec {
                    name,
                    labels,
                    data: Some(data.to_owned()),
                    ..Default::default()
                };
                self.docker.create_secret(spec).await
            }
            Kind::Config => {
                let spec = ConfigSpec {
                    name,
                    labels,
                    data: Some(data.to_owned()),
                    ..Default::default()
                };
                self.docker.create_config(spec).await
            }
        };
        created.map(|r| r.id)
    }

    /// A secret or config by ID or name (Docker also resolves ID prefixes).
    pub(crate) async fn api_inspect(&self, kind: Kind, id: &str) -> Result<Inspected, DockerError> {
        let (object, spec) = match kind {
            Kind::Secret => {
                let s = self.docker.inspect_secret(id).await?;
                let spec = s.spec.unwrap_or_default();
                let object = SwarmSecret {
                    id: s.id.unwrap_or_default(),
                    name: spec.name.clone().unwrap_or_default(),
                    version: s.version.and_then(|v| v.index).unwrap_or(0),
                    created_at: s.created_at.unwrap_or_default(),
                    labels: to_btree(spec.labels.clone()),
                };
                (object, Spec::Secret(spec))
            }
            Kind::Config => {
                let c = self.docker.inspect_config(id).await?;
                let spec = c.spec.unwrap_or_default();
                let object = SwarmSecret {
                    id: c.id.unwrap_or_default(),
                    name: spec.name.clone().unwrap_or_default(),
                    version: c.version.and_then(|v| v.index).unwrap_or(0),
                    created_at: c.created_at.unwrap_or_default(),
                    labels: to_btree(spec.labels.clone()),
                };
                (object, Spec::Config(spec))
            }
        };
        Ok(Inspected { object, spec })
    }

    /// Replaces the labels of an inspected secret or config at the version inspected. The
    /// name stays and the data is left out: Swarm refuses any other change.
    pub(crate) async fn api_update_labels(
        &self,
        current: Inspected,
        labels: &BTreeMap<String, String>,
        version: i64,
    ) -> Result<(), DockerError> {
        let id = current.object.id.as_str();
        match current.spec {
            Spec::Secret(spec) => {
                let update = SecretSpec {
                    labels: Some(to_hash(labels)),
                    data: None,
                    ..spec
                };
                let options = UpdateSecretOptionsBuilder::new().version(version).build();
                self.docker.update_secret(id, update, options).await
            }
            Spec::Config(spec) => {
                let update = ConfigSpec {
                    labels: Some(to_hash(labels)),
                    data: None,
                    ..spec
                };
                let options = UpdateConfigOptionsBuilder::new().version(version).build();
                self.docker.update_config(id, update, options).await
            }
        }
    }

    /// Removes a secret or config.
    pub(crate) async fn api_delete(&self, kind: Kind, id: &str) -> Result<(), DockerError> {
        match kind {
            Kind::Secret => self.docker.delete_secret(id).await,
            Kind::Config => self.docker.delete_config(id).await,
        }
    }
}
