//! `swarmseal status` and `swarmseal ls --remote`: the Swarm's versions of the
//! environment's secrets and the services using them (see [`crate::plan::status`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::context::Context;
use crate::cli::remote::Remote;
use crate::cli::report::{self, cell, Report};
use crate::crypto;
use crate::error::Result;
use crate::plan::render::{self, Heading};
use crate::plan::status::{self, Deployed, Version};
use crate::swarm::holder::Liveness;
use crate::swarm::LockInfo;

/// `repo_view`: list by repository secret (`ls --remote`); else by Swarm version (`status`).
pub fn run(cx: &Context, repo_view: bool) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let scan = repo.scan(&env)?;
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for (name, file) in &scan.secrets {
        sources.insert(name.clone(), crypto::file_digest(&repo.read(&file.path)?));
    }
    let remote = Remote::connect(&cx.global, repo, &env)?;
    let names = sources.keys().cloned().collect();
    let observed = remote.observe(repo, &env, &names)?;
    let project = repo.manifest.project.as_str();
    if repo_view {
        let secrets = status::deployed(&observed, project, &env, &sources);
        return report::emit(cx, &RemoteListing { secrets }).map(|()| 0);
    }
    let lock = remote.rt.block_on(remote.swarm.lock_info(project, &env))?;
    let secrets = status::versions(&observed, project, &env, &sources);
    let repairs = secrets.iter().filter(|v| v.state.needs_repair()).count();
    let report = Status {
        project: project.to_string(),
        environment: env,
        cluster_id: observed.cluster_id.clone(),
        endpoint: remote.describe(),
        lock: lock.as_ref().map(Lock::from),
        secrets,
        repairs,
    };
    report::emit(cx, &report).map(|()| 0)
}

#[derive(Serialize)]
struct Status {
    project: String,
    environment: String,
    cluster_id: String,
    #[serde(skip)]
    endpoint: String,
    lock: Option<Lock>,
    secrets: Vec<Version>,
    repairs: usize,
}

#[derive(Serialize)]
struct Lock {
    holder: String,
    created: String,
    /// True or false when this machine can tell whether the holder still runs.
    running_here: Option<bool>,
    #[serde(skip)]
    described: String,
}

impl From<&LockInfo> for Lock {
    fn from(l: &LockInfo) -> Lock {
        Lock {
            holder: l.holder.clone(),
            created: l.created.clone(),
            running_here: match l.liveness() {
                Liveness::Alive => Some(true),
                Liveness::Dead => Some(false),
                Liveness::Unknown => None,
            },
            described: l.describe(),
        }
    }
}

impl Report for Status {
    fn header(&self) -> &'static [&'static str] {
        &[
            "SECRET",
            "SWARM NAME",
            "CREATED",
            "STATE",
            "SERVICES",
            "ROLLBACK",
        ]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.secrets
            .iter()
            .map(|v| {
                vec![
                    v.secret.clone(),
                    v.swarm_name.clone(),
                    v.created.clone().unwrap_or_else(|| "-".into()),
                    v.state.describe().to_string(),
                    cell(&v.services),
                    cell(&v.rollback),
                ]
            })
            .collect()
    }
    fn heading(&self) -> Option<Heading<'_>> {
        Some(Heading {
            command: "status",
            project: &self.project,
            environment: &self.environment,
            swarm: Some(render::Context {
                endpoint: &self.endpoint,
                cluster_id: &self.cluster_id,
            }),
        })
    }
    fn preamble(&self) -> Vec<String> {
        self.lock
            .iter()
            .map(|lock| format!("the apply lock is held by {}", lock.described))
            .collect()
    }
    fn empty(&self) -> Option<String> {
        Some("no secrets".into())
    }
    fn epilogue(&self) -> Vec<String> {
        if self.repairs == 0 {
            return Vec::new();
        }
        let (versions, need) = match self.repairs {
            1 => ("1 version".to_string(), "needs"),
            n => (format!("{n} versions"), "need"),
        };
        vec![format!(
            "{versions} {need} a repair: services run an older version than the current one, or point at one that no longer exists; `swarmseal -e {} plan` shows the repair",
            self.environment
        )]
    }
}

#[derive(Serialize)]
struct RemoteListing {
    secrets: Vec<Deployed>,
}

impl Report for RemoteListing {
    fn header(&self) -> &'static [&'static str] {
        &["SECRET", "SWARM VERSIONS", "SERVICES"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.secrets
            .iter()
            .map(|d| {
                let versions = if d.swarm_versions.is_empty() {
                    "-".to_string()
                } else {
                    cell(&d.swarm_versions)
                };
                vec![d.secret.clone(), versions, cell(&d.services)]
            })
            .collect()
    }
}
