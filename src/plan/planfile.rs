//! Saved plans (`plan --out FILE`, `apply FILE`): the plan as plain JSON data, with
//! digests of what it was made from so that a stale plan is refused. A plan file holds
//! names, IDs, labels and keyed fingerprints, never a value.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::state::Observed;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::Plan;

const KIND: &str = "swarmseal-plan";
const FORMAT_VERSION: u32 = 1;
/// Largest plan file read (a plan of tens of thousands of secrets is a few MB).
const MAX_PLAN_FILE: u64 = 256 << 20;

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

/// Digest of what a plan depends on: the observed secrets (the environment's versions and
/// the unmanaged secrets it could adopt) and the services that reference one of them (IDs,
/// versions, labels, references). A change anywhere else on the Swarm (another stack's
/// service updated meanwhile) does not make a saved plan stale; a service starting to use
/// one of these secrets does.
pub fn swarm_digest(observed: &Observed) -> String {
    let ids: std::collections::BTreeSet<&str> =
        observed.secrets.iter().map(|s| s.id.as_str()).collect();
    let relevant = Observed {
        cluster_id: observed.cluster_id.clone(),
        secrets: observed.secrets.clone(),
        services: observed
            .services
            .iter()
            .filter(|svc| {
                svc.secrets
                    .iter()
                    .any(|r| ids.contains(r.secret_id.as_str()))
            })
            .cloned()
            .collect(),
    };
    let bytes = serde_json::to_vec(&relevant).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

impl PlanFile {
    pub fn new(plan: Plan, observed: &Observed, endpoint: &str, repo_digest: &str) -> PlanFile {
        PlanFile {
            kind: KIND.into(),
            format_version: FORMAT_VERSION,
            swarmseal_version: env!("CARGO_PKG_VERSION").into(),
            created: crate::repo::index::now_stamp(),
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
        crate::repo::write_atomic(path, text.as_bytes(), 0o644)
    }

    pub fn load(path: &Path) -> Result<PlanFile> {
        let hint = "pass the file written by `swarmseal plan --out FILE`";
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io("read plan file", path, e).hint(hint))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_PLAN_FILE + 1), &mut text)
            .map_err(|e| Error::io("read plan file", path, e).hint(hint))?;
        if text.len() as u64 > MAX_PLAN_FILE {
            return Err(Error::new(format!(
                "{} is larger than {MAX_PLAN_FILE} bytes; it is not a swarmseal plan file",
                path.display()
            ))
            .hint(hint));
        }
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
            .with_kind(ErrorKind::WrongSwarm)
            .hint("apply it against the Swarm it was made for, or make a new plan"));
        }
        if self.repo_digest != repo_digest {
            return Err(Error::new(format!(
                "the plan {} is stale: the repository changed since it was made ({})",
                path.display(),
                self.created
            ))
            .with_kind(ErrorKind::StalePlan)
            .hint(again));
        }
        if self.swarm_digest != swarm_digest(observed) {
            return Err(Error::new(format!(
                "the plan {} is stale: the Swarm's secrets or services changed since it was made ({})",
                path.display(),
                self.created
            ))
            .with_kind(ErrorKind::StalePlan)
            .hint(again));
        }
        Ok(())
    }
}
