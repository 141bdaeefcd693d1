//! `swarmseal recipients ls | add | rm`: the manifest's named public keys.

use serde_json::json;

use crate::cli::{Global, RecipientsCommand};
use crate::error::{Error, Result};
use std::path::Path;

use crate::confined;
use crate::manifest::{self, Manifest, MANIFEST_FILE};
use crate::output::{self, Format};
use crate::store::{LockMode, Repo};

pub fn run(g: &Global, command: RecipientsCommand) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let path = repo.manifest_path();
    match command {
        RecipientsCommand::Ls => {
            let m = &repo.manifest;
            let mut rows = Vec::new();
            for (name, key) in &m.recipients {
                let envs = envs_of(m, name);
                rows.push(vec![name.clone(), key.clone(), envs.join(",")]);
            }
            let header = ["NAME", "KEY", "ENVIRONMENTS"];
            match g.format {
                Format::Human => crate::out!("{}", output::table(&header, &rows))?,
                Format::Markdown => crate::out!("{}", output::markdown_table(&header, &rows))?,
                Format::Json => {
                    let list: Vec<_> =
                        rows.iter().map(|r| json!({"name": r[0], "key": r[1], "environments": r[2].split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()})).collect();
                    crate::outln!("{}", json!({"recipients": list}))?;
                }
            }
            Ok(0)
        }
        RecipientsCommand::Add { name, key, to } => {
            let _lock = repo.lock(LockMode::Exclusive)?;
            let text = read_manifest(&repo)?;
            let new_text = manifest::add_recipient(&text, &path, &name, &key, &to)?;
            write_manifest(&repo, &new_text)?;
            let m = Manifest::parse(&new_text, &path)?;
            let envs = envs_of(&m, &name);
            super::say(
                g,
                format!("added recipient {name}; it can read: {}", envs.join(", ")),
            );
            super::say(g, "Run `swarmseal rekey` to re-encrypt the secrets to it (this needs an identity that can decrypt them).");
            Ok(0)
        }
        RecipientsCommand::Rm { name } => {
            let _lock = repo.lock(LockMode::Exclusive)?;
            let text = read_manifest(&repo)?;
            let before = envs_of(&Manifest::parse(&text, &path)?, &name);
            let new_text = manifest::remove_recipient(&text, &path, &name)?;
            write_manifest(&repo, &new_text)?;
            super::say(
                g,
                format!(
                    "removed recipient {name} (it could read: {})",
                    before.join(", ")
                ),
            );
            super::say(
                g,
                "Run `swarmseal rekey` now: until then the files stay readable with its identity. Rotate the values it could read, too: it may have kept copies.",
            );
            Ok(0)
        }
    }
}

/// Replaces the manifest (atomically, never through a link).
fn write_manifest(repo: &Repo, text: &str) -> Result<()> {
    confined::write(&repo.root, Path::new(MANIFEST_FILE), text.as_bytes(), 0o644)
}

/// The manifest as it is now, under the lock (not as it was when the command started).
fn read_manifest(repo: &Repo) -> Result<String> {
    let bytes = confined::read(&repo.root, Path::new(MANIFEST_FILE), confined::MAX_MANIFEST)?;
    String::from_utf8(bytes).map_err(|_| {
        Error::new(format!("{MANIFEST_FILE} is not UTF-8 text"))
            .hint("write the manifest as UTF-8 YAML")
    })
}

fn envs_of(m: &Manifest, name: &str) -> Vec<String> {
    m.environments
        .keys()
        .filter(|env| {
            m.env_recipients(env)
                .map(|r| r.iter().any(|(n, _)| n == name))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}
