//! `swarmseal recipients ls | add | rm`: the manifest's named public keys.

use serde_json::json;

use crate::cli::{Global, RecipientsCommand};
use crate::error::{Error, Result};
use crate::manifest::{self, Manifest};
use crate::output::{self, Format};
use crate::store;

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
                Format::Human => print!("{}", output::table(&header, &rows)),
                Format::Markdown => print!("{}", output::markdown_table(&header, &rows)),
                Format::Json => {
                    let list: Vec<_> =
                        rows.iter().map(|r| json!({"name": r[0], "key": r[1], "environments": r[2].split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>()})).collect();
                    println!("{}", json!({"recipients": list}));
                }
            }
            Ok(0)
        }
        RecipientsCommand::Add { name, key, to } => {
            let text = read_manifest(&path)?;
            let new_text = manifest::add_recipient(&text, &path, &name, &key, &to)?;
            store::write_atomic(&path, new_text.as_bytes(), 0o644)?;
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
            let text = read_manifest(&path)?;
            let before = envs_of(&repo.manifest, &name);
            let new_text = manifest::remove_recipient(&text, &path, &name)?;
            store::write_atomic(&path, new_text.as_bytes(), 0o644)?;
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

fn read_manifest(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
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
