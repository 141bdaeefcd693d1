//! `swarmseal rekey`: re-encrypt secrets to the manifest's current recipients. Values,
//! fingerprints and change dates stay as they are.
//!
//! Every file that needs it is decrypted first, and only then are files written, so that
//! a wrong identity or a damaged file stops the command before anything changes.

use crate::cli::{Global, RekeyArgs};
use crate::crypto::Plaintext;
use crate::error::Result;
use crate::index::{self, Index};

pub fn run(g: &Global, args: RekeyArgs) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let envs = super::selected_envs(g, &repo)?;
    let ids = super::require_identities(g, "re-encrypt the secrets")?;
    let mut index = Index::load(&repo.index_path())?;

    // Phase 1: find and decrypt everything that needs a new encryption.
    struct Job {
        env: String,
        name: Option<String>,
        path: std::path::PathBuf,
        value: Plaintext,
        changed: Option<String>,
    }
    let mut jobs = Vec::new();
    let mut current_count = 0usize;
    let mut missing_keys = Vec::new();
    for env in &envs {
        let scan = repo.scan(env)?;
        scan.ensure_clean()?;
        let current = repo.manifest.env_recipients(env)?;
        let key_path = repo.fingerprint_key_path(env);
        if key_path.exists() {
            let bytes = repo.read(&key_path)?;
            let record = index.env(env).and_then(|e| e.fingerprint_key.as_ref());
            if args.force
                || super::recipient_state(record, &bytes, &current)
                    != super::RecipientState::Current
            {
                jobs.push(Job {
                    env: env.clone(),
                    name: None,
                    changed: record.and_then(|r| r.changed.clone()),
                    value: super::fingerprint_key(&repo, env, &ids)?,
                    path: key_path,
                });
            } else {
                current_count += 1;
            }
        } else {
            missing_keys.push(env.clone());
        }
        for (name, file) in &scan.secrets {
            let bytes = repo.read(&file.path)?;
            let record = index.record(env, name);
            if !args.force
                && super::recipient_state(record, &bytes, &current)
                    == super::RecipientState::Current
            {
                current_count += 1;
                continue;
            }
            jobs.push(Job {
                env: env.clone(),
                name: Some(name.clone()),
                changed: record.and_then(|r| r.changed.clone()),
                value: super::decrypt_file(&repo, &file.path, &ids)?,
                path: file.path.clone(),
            });
        }
    }

    // Phase 2: write.
    for job in &jobs {
        let target = match &job.name {
            Some(name) => super::Target::Secret {
                name,
                path: &job.path,
            },
            None => super::Target::FingerprintKey,
        };
        let changed = job.changed.clone().or_else(|| Some(index::now_stamp()));
        if let Err(e) =
            super::write_encrypted(&repo, &mut index, &job.env, target, &job.value, changed)
        {
            // Keep the record of what was written before the failure true.
            let _ = super::save_index(&repo, &index);
            return Err(e);
        }
        if g.verbose {
            super::say(g, format!("re-encrypted {}", repo.rel(&job.path).display()));
        }
    }
    for env in &missing_keys {
        super::create_fingerprint_key(&repo, &mut index, env)?;
        super::say(g, format!("created the missing fingerprint key of {env}"));
    }
    if !jobs.is_empty() || !missing_keys.is_empty() {
        super::save_index(&repo, &index)?;
    }
    super::say(
        g,
        format!(
            "re-encrypted {} file(s) in {}; {} already encrypted to the current recipients",
            jobs.len(),
            envs.join(", "),
            current_count
        ),
    );
    Ok(0)
}
