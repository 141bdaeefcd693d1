//! `swarmseal ls`: the environment's secrets, their files, when their values last changed,
//! and whether they are encrypted to the current recipients.

use serde::Serialize;

use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::cli::report::{self, Report};
use crate::domain::state::Kind;
use crate::error::Result;
use crate::repo::configs;
use crate::repo::index::Index;
use crate::repo::secrets::{self, RecipientState};
use crate::repo::{LockMode, Repo, Scan};

pub fn run(cx: &Context) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let _lock = repo.lock(LockMode::Shared)?;
    let scan = repo.scan(&env)?;
    let index = repo.load_index()?;
    let current = repo.manifest.env_recipients(&env)?;
    let mut list = Vec::new();
    for (name, file) in &scan.secrets {
        let record = index.record(&env, name);
        let recipients = match repo.read(&file.path) {
            Ok(bytes) => match secrets::recipient_state(record, &bytes, &current) {
                RecipientState::Current => Recipients::Current,
                RecipientState::Stale { .. } => Recipients::Stale,
                RecipientState::Unknown => Recipients::Unknown,
            },
            Err(_) => Recipients::Unreadable,
        };
        list.push(Entry {
            secret: name.clone(),
            name: name.clone(),
            kind: Kind::Secret,
            file: file.rel.display().to_string(),
            changed: record.and_then(|r| r.changed.clone()),
            recipients,
        });
    }
    let config_scan = repo.scan_configs(&env)?;
    list.extend(config_entries(repo, &env, &config_scan, &index, &current));
    if list.is_empty() && cx.format() == Format::Human {
        cx.say(format!(
            "no secrets in {env} yet; add one with `swarmseal -e {env} set NAME`"
        ));
    } else {
        let listing = Listing {
            project: repo.manifest.project.clone(),
            environment: env,
            secrets: list,
        };
        report::emit(cx, &listing)?;
    }
    for problem in scan.problems.iter().chain(&config_scan.problems) {
        output::warn(&problem.to_error().to_string());
    }
    Ok(0)
}

#[derive(Serialize)]
struct Listing {
    project: String,
    environment: String,
    secrets: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    /// The secret's name, under the key every report uses.
    secret: String,
    /// The same as `secret`, for format_version 1 consumers.
    name: String,
    /// `secret` or `config`.
    kind: Kind,
    file: String,
    /// When the value last changed (RFC 3339), if the index knows.
    changed: Option<String>,
    recipients: Recipients,
}

#[derive(Serialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Recipients {
    Current,
    Stale,
    Unknown,
    Unreadable,
    /// A plain config: encrypted to nobody.
    Plain,
}

/// The environment's configs: an encrypted one stands against the recipients as a secret
/// file does; a plain one is `plain`.
fn config_entries(
    repo: &Repo,
    env: &str,
    scan: &Scan,
    index: &Index,
    current: &[(String, String)],
) -> Vec<Entry> {
    scan.secrets
        .iter()
        .map(|(name, file)| {
            let record = index.env(env).and_then(|e| e.configs.get(name));
            let recipients = match repo.read_config(&file.path) {
                Ok(_) if !configs::is_encrypted(file) => Recipients::Plain,
                Ok(bytes) => match secrets::recipient_state(record, &bytes, current) {
                    RecipientState::Current => Recipients::Current,
                    RecipientState::Stale { .. } => Recipients::Stale,
                    RecipientState::Unknown => Recipients::Unknown,
                },
                Err(_) => Recipients::Unreadable,
            };
            Entry {
                secret: name.clone(),
                name: name.clone(),
                kind: Kind::Config,
                file: file.rel.display().to_string(),
                changed: record.and_then(|r| r.changed.clone()),
                recipients,
            }
        })
        .collect()
}

impl Report for Listing {
    fn header(&self) -> &'static [&'static str] {
        &["SECRET", "FILE", "CHANGED", "RECIPIENTS"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.secrets
            .iter()
            .map(|e| {
                let recipients = match e.recipients {
                    Recipients::Current => "current",
                    Recipients::Stale => "stale (run rekey)",
                    Recipients::Unknown => "unknown",
                    Recipients::Unreadable => "unreadable",
                    Recipients::Plain => "- (plain config)",
                };
                let name = match e.kind {
                    Kind::Secret => e.secret.clone(),
                    kind => format!("{} ({kind})", e.secret),
                };
                vec![
                    name,
                    e.file.clone(),
                    e.changed.clone().unwrap_or_else(|| "-".into()),
                    recipients.to_string(),
                ]
            })
            .collect()
    }
}
