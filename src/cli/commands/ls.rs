//! `swarmseal ls`: the environment's secrets, their files, when their values last changed,
//! and whether they are encrypted to the current recipients.

use serde::Serialize;

use crate::cli::context::Context;
use crate::cli::output::{self, Format};
use crate::cli::report::{self, Report};
use crate::error::Result;
use crate::repo::secrets::{self, RecipientState};
use crate::repo::LockMode;

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
            file: file.rel.display().to_string(),
            changed: record.and_then(|r| r.changed.clone()),
            recipients,
        });
    }
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
    for problem in &scan.problems {
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
                };
                vec![
                    e.secret.clone(),
                    e.file.clone(),
                    e.changed.clone().unwrap_or_else(|| "-".into()),
                    recipients.to_string(),
                ]
            })
            .collect()
    }
}
