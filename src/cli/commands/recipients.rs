//! `swarmseal recipients ls | add | rm`: the manifest's named public keys.

use serde::Serialize;

use crate::cli::args::RecipientsCommand;
use crate::cli::context::Context;
use crate::error::{Error, Result};
use std::path::Path;

use crate::cli::report::{self, cell, Report};
use crate::repo::confined;
use crate::repo::manifest::{self, Manifest, MANIFEST_FILE};
use crate::repo::{LockMode, Repo};

pub fn run(cx: &Context, command: RecipientsCommand) -> Result<i32> {
    let repo = cx.repo()?;
    let path = repo.manifest_path();
    match command {
        RecipientsCommand::Ls => {
            let m = &repo.manifest;
            let recipients = m
                .recipients
                .iter()
                .map(|(name, key)| Recipient {
                    name: name.clone(),
                    key: key.clone(),
                    environments: envs_of(m, name),
                })
                .collect();
            report::emit(cx, &Recipients { recipients })?;
            Ok(0)
        }
        RecipientsCommand::Add { name, key, to } => {
            let _lock = repo.lock(LockMode::Exclusive)?;
            let text = read_manifest(repo)?;
            let new_text = manifest::add_recipient(&text, &path, &name, &key, &to)?;
            write_manifest(repo, &new_text)?;
            let m = Manifest::parse(&new_text, &path)?;
            let envs = envs_of(&m, &name);
            cx.say(format!(
                "added recipient {name}; it can read: {}",
                envs.join(", ")
            ));
            cx.say("Run `swarmseal rekey` to re-encrypt the secrets to it (this needs an identity that can decrypt them).");
            Ok(0)
        }
        RecipientsCommand::Rm { name } => {
            let _lock = repo.lock(LockMode::Exclusive)?;
            let text = read_manifest(repo)?;
            let before = envs_of(&Manifest::parse(&text, &path)?, &name);
            let new_text = manifest::remove_recipient(&text, &path, &name)?;
            write_manifest(repo, &new_text)?;
            cx.say(format!(
                "removed recipient {name} (it could read: {})",
                before.join(", ")
            ));
            cx.say(
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

#[derive(Serialize)]
struct Recipients {
    recipients: Vec<Recipient>,
}

#[derive(Serialize)]
struct Recipient {
    name: String,
    key: String,
    environments: Vec<String>,
}

impl Report for Recipients {
    fn header(&self) -> &'static [&'static str] {
        &["NAME", "KEY", "ENVIRONMENTS"]
    }
    fn rows(&self) -> Vec<Vec<String>> {
        self.recipients
            .iter()
            .map(|r| vec![r.name.clone(), r.key.clone(), cell(&r.environments)])
            .collect()
    }
}
