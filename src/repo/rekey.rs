//! Re-encryption to the manifest's current recipients (`swarmseal rekey`). Values,
//! fingerprints and change dates stay as they are.
//!
//! Every file that needs it is decrypted first, and only then are files written (all in
//! one transaction), so that a wrong identity or a damaged file stops before anything
//! changes.

use std::path::PathBuf;

use crate::crypto::{Identities, Plaintext, ScopeKind, FINGERPRINT_KEY_LEN};
use crate::error::{Error, Result};
use crate::repo::index::{self, Index};
use crate::repo::secrets::{self, RecipientState};
use crate::repo::{configs, LockMode, Repo};

/// What to re-encrypt.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Every file, not only those encrypted to other recipients.
    pub force: bool,
    /// The environment's old name, when it was renamed: its files say that name.
    pub moved_from: Option<&'a str>,
}

/// What [`rekey`] did.
#[derive(Debug, Clone, Default)]
pub struct Rekeyed {
    /// Files re-encrypted.
    pub files: Vec<PathBuf>,
    /// Files already encrypted to the current recipients.
    pub current: usize,
    /// Environments whose missing fingerprint key was created.
    pub created_keys: Vec<String>,
    /// Records dropped from the index: files deleted by hand, environments gone.
    pub pruned: usize,
}

/// One file to re-encrypt, decrypted.
struct Job {
    env: String,
    /// `None` for the fingerprint key.
    name: Option<String>,
    /// An encrypted config (`configs/<env>/<name>.age`), not a secret.
    config: bool,
    path: PathBuf,
    value: Plaintext,
    changed: Option<String>,
}

/// Re-encrypts the files of `envs` that need it to their environments' recipients.
pub fn rekey(
    repo: &Repo,
    envs: &[String],
    ids: &Identities,
    opts: &Options<'_>,
) -> Result<Rekeyed> {
    if let Some(old) = opts.moved_from {
        if envs.len() != 1 {
            return Err(Error::new(format!(
                "--moved-from {old} needs the one environment it was renamed to"
            ))
            .with_kind(crate::error::ErrorKind::Usage)
            .hint(format!(
                "pass it with -e, e.g. `swarmseal -e NEW rekey --moved-from {old}`"
            )));
        }
    }
    // Files of a renamed environment say the old name: read and rewrite them all.
    let opts = Options {
        force: opts.force || opts.moved_from.is_some(),
        moved_from: opts.moved_from,
    };
    let _lock = repo.lock(LockMode::Exclusive)?;
    let mut index = repo.load_index()?;
    let env_names: Vec<&str> = envs.iter().map(String::as_str).collect();
    let pruned = index::prune(repo, &mut index, &env_names)?;
    let mut done = Rekeyed {
        pruned: pruned.secrets.len() + pruned.environments.len(),
        ..Rekeyed::default()
    };
    let mut jobs = Vec::new();
    for env in envs {
        decrypt_env(repo, env, ids, &opts, &index, &mut jobs, &mut done)?;
    }
    write_all(repo, &mut index, &jobs, &done.created_keys, done.pruned > 0)?;
    done.files = jobs.into_iter().map(|j| j.path).collect();
    Ok(done)
}

/// Phase 1 for one environment: decrypts every file that needs a new encryption.
fn decrypt_env(
    repo: &Repo,
    env: &str,
    ids: &Identities,
    opts: &Options<'_>,
    index: &Index,
    jobs: &mut Vec<Job>,
    done: &mut Rekeyed,
) -> Result<()> {
    let scan = repo.scan(env)?;
    scan.ensure_clean()?;
    let current = repo.manifest.env_recipients(env)?;
    let needs = |record, bytes: &[u8]| {
        opts.force || secrets::recipient_state(record, bytes, &current) != RecipientState::Current
    };
    let key_path = repo.fingerprint_key_path(env);
    match repo.read_optional(&key_path)? {
        None => done.created_keys.push(env.to_string()),
        Some(bytes) => {
            let record = index.env(env).and_then(|e| e.fingerprint_key.as_ref());
            if needs(record, &bytes) {
                let kind = ScopeKind::FingerprintKey;
                let value = repo
                    .open_sealed(env, kind, &key_path, &bytes, ids, opts.moved_from)?
                    .value;
                if value.len() != FINGERPRINT_KEY_LEN {
                    return Err(Error::new(format!(
                        "{} does not hold a fingerprint key",
                        repo.rel(&key_path).display()
                    ))
                    .hint("restore it from git"));
                }
                jobs.push(Job {
                    env: env.to_string(),
                    name: None,
                    config: false,
                    changed: record.and_then(|r| r.changed.clone()),
                    value,
                    path: key_path,
                });
            } else {
                done.current += 1;
            }
        }
    }
    // Secrets, then encrypted configs (plain configs have no recipients): the same rule.
    let configs = repo.scan_configs(env)?;
    configs.ensure_clean()?;
    let secret_files = scan.secrets.iter().map(|(n, f)| (ScopeKind::Secret, n, f));
    let config_files = configs
        .secrets
        .iter()
        .filter(|(_, f)| configs::is_encrypted(f))
        .map(|(n, f)| (ScopeKind::Config, n, f));
    for (kind, name, file) in secret_files.chain(config_files) {
        let (bytes, record) = match kind {
            ScopeKind::Config => (
                repo.read_config(&file.path)?,
                index.env(env).and_then(|e| e.configs.get(name)),
            ),
            _ => (repo.read(&file.path)?, index.record(env, name)),
        };
        if !needs(record, &bytes) {
            done.current += 1;
            continue;
        }
        jobs.push(Job {
            env: env.to_string(),
            name: Some(name.clone()),
            config: kind == ScopeKind::Config,
            changed: record.and_then(|r| r.changed.clone()),
            value: repo
                .open_sealed(env, kind, &file.path, &bytes, ids, opts.moved_from)?
                .value,
            path: file.path.clone(),
        });
    }
    Ok(())
}

/// Phase 2: writes the re-encrypted files, the missing fingerprint keys and the index
/// (also when only stale records were `pruned` from it), all or nothing.
fn write_all(
    repo: &Repo,
    index: &mut Index,
    jobs: &[Job],
    missing_keys: &[String],
    pruned: bool,
) -> Result<()> {
    if jobs.is_empty() && missing_keys.is_empty() && !pruned {
        return Ok(());
    }
    let mut tx = repo.transaction();
    for job in jobs {
        let target = match &job.name {
            Some(name) if job.config => secrets::Target::Config {
                name,
                path: &job.path,
            },
            Some(name) => secrets::Target::Secret {
                name,
                path: &job.path,
            },
            None => secrets::Target::FingerprintKey,
        };
        let changed = job.changed.clone().or_else(|| Some(index::now_stamp()));
        secrets::write_encrypted(repo, &mut tx, index, &job.env, target, &job.value, changed)?;
    }
    for env in missing_keys {
        secrets::create_fingerprint_key(repo, &mut tx, index, env)?;
    }
    secrets::stage_index(repo, &mut tx, index)?;
    tx.commit()
}
