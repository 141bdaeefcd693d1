//! `swarmseal rekey`: re-encrypt secrets to the manifest's current recipients. Values,
//! fingerprints and change dates stay as they are.
//!
//! Every file that needs it is decrypted first, and only then are files written, so that
//! a wrong identity or a damaged file stops the command before anything changes.

use crate::cli::args::RekeyArgs;
use crate::cli::context::Context;
use crate::crypto::{Plaintext, ScopeKind};
use crate::error::{Error, Result};
use crate::repo::index;
use crate::repo::secrets;
use crate::repo::LockMode;

pub fn run(cx: &Context, args: RekeyArgs) -> Result<i32> {
    let g = &cx.global;
    let repo = cx.repo()?;
    let envs = cx.envs()?;
    let also = args.moved_from.as_deref();
    if let Some(old) = also {
        if envs.len() != 1 {
            return Err(Error::new(format!(
                "--moved-from {old} needs the one environment it was renamed to"
            ))
            .hint(format!(
                "pass it with -e, e.g. `swarmseal -e NEW rekey --moved-from {old}`"
            )));
        }
    }
    // Files of a renamed environment say the old name: read and rewrite them all.
    let force = args.force || also.is_some();
    let ids = cx.require_identities("re-encrypt the secrets")?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let mut index = repo.load_index()?;

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
        if let Some(bytes) = repo.read_optional(&key_path)? {
            let record = index.env(env).and_then(|e| e.fingerprint_key.as_ref());
            if force
                || secrets::recipient_state(record, &bytes, &current)
                    != secrets::RecipientState::Current
            {
                let value = repo
                    .open_sealed(env, ScopeKind::FingerprintKey, &key_path, &bytes, ids, also)?
                    .value;
                if value.len() != crate::crypto::FINGERPRINT_KEY_LEN {
                    return Err(Error::new(format!(
                        "{} does not hold a fingerprint key",
                        repo.rel(&key_path).display()
                    ))
                    .hint("restore it from git"));
                }
                jobs.push(Job {
                    env: env.clone(),
                    name: None,
                    changed: record.and_then(|r| r.changed.clone()),
                    value,
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
            if !force
                && secrets::recipient_state(record, &bytes, &current)
                    == secrets::RecipientState::Current
            {
                current_count += 1;
                continue;
            }
            jobs.push(Job {
                env: env.clone(),
                name: Some(name.clone()),
                changed: record.and_then(|r| r.changed.clone()),
                value: repo
                    .open_sealed(env, ScopeKind::Secret, &file.path, &bytes, ids, also)?
                    .value,
                path: file.path.clone(),
            });
        }
    }

    // Phase 2: write, all or nothing.
    let mut tx = repo.transaction();
    for job in &jobs {
        let target = match &job.name {
            Some(name) => secrets::Target::Secret {
                name,
                path: &job.path,
            },
            None => secrets::Target::FingerprintKey,
        };
        let changed = job.changed.clone().or_else(|| Some(index::now_stamp()));
        secrets::write_encrypted(
            repo, &mut tx, &mut index, &job.env, target, &job.value, changed,
        )?;
        if g.verbose {
            cx.say(format!("re-encrypted {}", repo.rel(&job.path).display()));
        }
    }
    for env in &missing_keys {
        secrets::create_fingerprint_key(repo, &mut tx, &mut index, env)?;
    }
    if !jobs.is_empty() || !missing_keys.is_empty() {
        secrets::stage_index(repo, &mut tx, &index)?;
        tx.commit()?;
    }
    for env in &missing_keys {
        cx.say(format!("created the missing fingerprint key of {env}"));
    }
    cx.say(format!(
        "re-encrypted {} file(s) in {}; {} already encrypted to the current recipients",
        jobs.len(),
        envs.join(", "),
        current_count
    ));
    Ok(0)
}
