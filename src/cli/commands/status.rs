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
    let mut config_sources: BTreeMap<String, String> = BTreeMap::new();
    for (name, file) in &repo.scan_configs(&env)?.secrets {
        let digest = crypto::file_digest(&repo.read_config(&file.path)?);
        config_sources.insert(name.clone(), digest);
    }
    let remote = Remote::connect(&cx.global, repo, &env)?;
    let names = sources
        .keys()
        .chain(config_sources.keys())
        .cloned()
        .collect();
    let observed = remote.observe(repo, &env, &names)?;
    let configs_view = observed.config_view();
    let project = repo.manifest.project.as_str();
    if repo_view {
        let secrets = status::deployed(&observed, project, &env, &sources);
        let configs = status::deployed(&configs_view, project, &env, &config_sources);
        return report::emit(cx, &RemoteListing { secrets, configs }).map(|()| 0);
    }
    let lock = remote.rt.block_on(remote.swarm.lock_info(project, &env))?;
    let secrets = status::versions(&observed, project, &env, &sources);
    let configs = status::versions(&configs_view, project, &env, &config_sources);
    let repairs = secrets
        .iter()
        .chain(&configs)
        .filter(|v| v.state.needs_repair())
        .count();
    let report = Status {
        project: project.to_string(),
        environment: env,
        cluster_id: observed.cluster_id.clone(),
        endpoint: remote.describe(),
        lock: lock.as_ref().map(Lock::from),
        secrets,
        configs,
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
    /// The configs' versions, as the secrets' (left out when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    configs: Vec<Version>,
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
        let configs = self.configs.iter().map(|v| (v, " (config)"));
        self.secrets
            .iter()
            .map(|v| (v, ""))
            .chain(configs)
            .map(|(v, kind)| {
                vec![
                    format!("{}{kind}", v.secret),
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    configs: Vec<Deployed>,
}

impl Report for RemoteListing {
    fn header(&self) -> &'static [&'static str] {
        &["SECRET", "SWARM VERSIONS", "SERVICES"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        let configs = self.configs.iter().map(|d| (d, " (config)"));
        self.secrets
            .iter()
            .map(|d| (d, ""))
            .chain(configs)
            .map(|(d, kind)| {
                let versions = if d.swarm_versions.is_empty() {
                    "-".to_string()
                } else {
                    cell(&d.swarm_versions)
                };
                vec![format!("{}{kind}", d.secret), versions, cell(&d.services)]
            })
            .collect()
    }
}
