//! `swarmseal ls`: the environment's secrets.

use serde_json::json;

use crate::cli::{Global, LsArgs};
use crate::error::Result;
use crate::output::{self, Format};
use crate::store::LockMode;

pub fn run(g: &Global, args: LsArgs) -> Result<i32> {
    if args.remote {
        return super::status::run(g, true);
    }
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let _lock = repo.lock(LockMode::Shared)?;
    let scan = repo.scan(&env)?;
    let index = repo.load_index()?;
    let current = repo.manifest.env_recipients(&env)?;
    let mut rows = Vec::new();
    for (name, file) in &scan.secrets {
        let record = index.record(&env, name);
        let state = match repo.read(&file.path) {
            Ok(bytes) => match super::recipient_state(record, &bytes, &current) {
                super::RecipientState::Current => "current",
                super::RecipientState::Stale { .. } => "stale (run rekey)",
                super::RecipientState::Unknown => "unknown",
            },
            Err(_) => "unreadable",
        };
        let changed = record
            .and_then(|r| r.changed.clone())
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            name.clone(),
            file.rel.display().to_string(),
            changed,
            state.to_string(),
        ]);
    }
    let header = ["NAME", "FILE", "CHANGED", "RECIPIENTS"];
    match g.format {
        Format::Human => {
            if rows.is_empty() {
                super::say(
                    g,
                    format!("no secrets in {env} yet; add one with `swarmseal -e {env} set NAME`"),
                );
            } else {
                crate::out!("{}", output::table(&header, &rows))?;
            }
        }
        Format::Markdown => crate::out!("{}", output::markdown_table(&header, &rows))?,
        Format::Json => {
            let secrets: Vec<_> = rows
                .iter()
                .map(|r| json!({"name": r[0], "file": r[1], "changed": r[2], "recipients": r[3]}))
                .collect();
            crate::outln!(
                "{}",
                json!({"project": repo.manifest.project, "environment": env, "secrets": secrets})
            )?;
        }
    }
    for problem in &scan.problems {
        output::warn(&problem.to_error().to_string());
    }
    Ok(0)
}
