//! Saved plans (`plan --out FILE`, `apply FILE`): the plan as plain JSON data, with
//! digests of what it was made from so that a stale plan is refused. A plan file holds
//! names, IDs, labels and keyed fingerprints, never a value.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::model::Observed;
use crate::plan::Plan;

const KIND: &str = "swarmseal-plan";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    pub kind: String,
    pub format_version: u32,
    pub swarmseal_version: String,
    pub created: String,
    /// The Swarm's cluster ID.
    pub cluster_id: String,
    /// The endpoint the plan was made against, for messages.
    pub endpoint: String,
    /// Digest of the repository files the plan was made from.
    pub repo_digest: String,
    /// Digest of the observed Swarm state.
    pub swarm_digest: String,
    pub plan: Plan,
}

/// Digest of an observation: any change to the secrets or services that matter (IDs,
/// versions, labels, references) changes it.
pub fn swarm_digest(observed: &Observed) -> String {
    let bytes = serde_json::to_vec(observed).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

impl PlanFile {
    pub fn new(plan: Plan, observed: &Observed, endpoint: &str, repo_digest: &str) -> PlanFile {
        PlanFile {
            kind: KIND.into(),
            format_version: FORMAT_VERSION,
            swarmseal_version: env!("CARGO_PKG_VERSION").into(),
            created: crate::index::now_stamp(),
            cluster_id: observed.cluster_id.clone(),
            endpoint: endpoint.into(),
            repo_digest: repo_digest.into(),
            swarm_digest: swarm_digest(observed),
            plan,
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::new(format!("cannot write the plan: {e}")))?;
        text.push('\n');
        crate::store::write_atomic(path, text.as_bytes(), 0o644)
    }

    pub fn load(path: &Path) -> Result<PlanFile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::io("read plan file", path, e)
                .hint("pass the file written by `swarmseal plan --out FILE`")
        })?;
        let file: PlanFile = serde_json::from_str(&text).map_err(|e| {
            Error::new(format!(
                "{} is not a swarmseal plan file: {e}",
                path.display()
            ))
            .hint("pass the file written by `swarmseal plan --out FILE`")
        })?;
        if file.kind != KIND || file.format_version != FORMAT_VERSION {
            return Err(Error::new(format!(
                "{} is a plan of another kind or format version ({} v{})",
                path.display(),
                file.kind,
                file.format_version
            ))
            .hint("make the plan again with this swarmseal: `swarmseal plan --out FILE`"));
        }
        Ok(file)
    }

    /// Fails with a "stale" error unless the repository and the Swarm are as they were
    /// when the plan was made.
    pub fn ensure_fresh(
        &self,
        path: &Path,
        cluster_id: &str,
        repo_digest: &str,
        observed: &Observed,
    ) -> Result<()> {
        let again = "make a new plan with `swarmseal plan --out FILE` and review it";
        if self.cluster_id != cluster_id {
            return Err(Error::new(format!(
                "the plan {} was made for Swarm {}, but this is Swarm {cluster_id}",
                path.display(),
                self.cluster_id
            ))
            .hint("apply it against the Swarm it was made for, or make a new plan"));
        }
        if self.repo_digest != repo_digest {
            return Err(Error::new(format!(
                "the plan {} is stale: the repository changed since it was made ({})",
                path.display(),
                self.created
            ))
            .hint(again));
        }
        if self.swarm_digest != swarm_digest(observed) {
            return Err(Error::new(format!(
                "the plan {} is stale: the Swarm's secrets or services changed since it was made ({})",
                path.display(),
                self.created
            ))
            .hint(again));
        }
        Ok(())
    }
}
