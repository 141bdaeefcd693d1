//! The secrets of an environment as files: finding them by the name a user typed,
//! encrypting and storing values with their index records, the fingerprint key, and how a
//! file stands against the manifest's recipients.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::crypto::{self, Identities, Plaintext, Scope, ScopeKind};
use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::index::{self, Index, Record};
use crate::repo::{LockMode, Problem, Repo, Scan, SecretFile, Transaction};

/// What [`store_value`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The value was already there, encrypted to the current recipients: nothing written.
    Unchanged { name: String },
    /// The file (and its index record) was written.
    Written {
        name: String,
        path: PathBuf,
        created: bool,
        len: usize,
    },
}

impl Stored {
    /// One line for the user: what was done to which file.
    pub fn describe(&self, repo: &Repo, env: &str) -> String {
        match self {
            Stored::Unchanged { name } => {
                format!("{name} in {env}: value unchanged; nothing to do")
            }
            Stored::Written {
                name,
                path,
                created,
                len,
            } => format!(
                "{} {name} in {env} ({}, {})",
                if *created { "created" } else { "updated" },
                repo.rel(path).display(),
                crate::domain::text::plural(*len, "byte")
            ),
        }
    }
}

/// Encrypts `value` into the file of the secret named `input` (as the user typed it),
/// keeping the file as it is when the value is unchanged and the file is already
/// encrypted to the current recipients. Used by `set` and `edit`. Holds the repository
/// lock from reading the index until the file and the index are written together.
pub fn store_value(
    repo: &Repo,
    ids: Option<&Identities>,
    env: &str,
    input: &str,
    value: &[u8],
) -> Result<Stored> {
    let _lock = repo.lock(LockMode::Exclusive)?;
    let (name, path, exists) = secret_target(repo, env, input)?;
    let (name, path) = (name.as_str(), path.as_path());
    let mut index = repo.load_index()?;
    // Records of files deleted by hand go with this write (see `index::prune`).
    index::prune(repo, &mut index, &[env])?;
    let old_record = index.record(env, name).cloned();
    // Whether the value changed decides `changed` (for rotate_after). Without an identity
    // that can read the old file, a write counts as a change.
    let mut unchanged = false;
    if exists {
        if let Some(ids) = ids {
            if let Ok(bytes) = repo.read(path) {
                // A file that belongs elsewhere (another environment's copy) is simply
                // overwritten: its value is never read.
                if let Ok(old) = repo.open_sealed(env, ScopeKind::Secret, path, &bytes, ids, None) {
                    unchanged = old.value.as_slice() == value;
                    if unchanged {
                        let current = repo.manifest.env_recipients(env)?;
                        if recipient_state(old_record.as_ref(), &bytes, &current)
                            == RecipientState::Current
                        {
                            return Ok(Stored::Unchanged {
                                name: name.to_string(),
                            });
                        }
                    }
                }
            }
        }
    }
    let changed = if unchanged {
        old_record
            .and_then(|r| r.changed)
            .or_else(|| Some(index::now_stamp()))
    } else {
        Some(index::now_stamp())
    };
    let mut tx = repo.transaction();
    write_encrypted(
        repo,
        &mut tx,
        &mut index,
        env,
        Target::Secret { name, path },
        value,
        changed,
    )?;
    stage_index(repo, &mut tx, &index)?;
    tx.commit()?;
    Ok(Stored::Written {
        name: name.to_string(),
        path: path.to_path_buf(),
        created: !exists,
        len: value.len(),
    })
}

/// The public keys an environment's files are encrypted to.
pub fn env_keys(repo: &Repo, env: &str) -> Result<Vec<String>> {
    Ok(repo
        .manifest
        .env_recipients(env)?
        .into_iter()
        .map(|(_, key)| key)
        .collect())
}

/// Sorted recipient ids of a set of keys, as recorded in the index.
pub fn key_ids(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| crypto::recipient_id(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Finds a secret by the name a user typed, in the files of the environment.
pub fn find_secret(repo: &Repo, env: &str, input: &str) -> Result<SecretFile> {
    let scan = repo.scan(env)?;
    // The name as `ls` shows it first (`backup.age` is the file `backup.age.age`).
    if let Some(file) = names::exact_logical_name(input).and_then(|n| scan.secrets.get(&n)) {
        return Ok(file.clone());
    }
    let (name, _) = names::parse_user_name(input)?;
    refuse_collision(&scan, &name)?;
    if let Some(file) = scan.secrets.get(&name) {
        return Ok(file.clone());
    }
    // A file at the very path the name points to, but unusable (a plaintext file named
    // like the secret, a link out of the repository): say what is wrong with it.
    let rel_file = names::parse_user_name(input)?.1;
    let wanted = [
        repo.rel(&repo.secret_path(env, &rel_file)),
        repo.rel(&repo.secret_path(env, Path::new(input))),
    ];
    if let Some(problem) = scan
        .problems
        .iter()
        .find(|p| wanted.iter().any(|w| w == p.rel()))
    {
        return Err(problem.to_error());
    }
    let known: Vec<&str> = scan.secrets.keys().map(String::as_str).take(20).collect();
    let hint = if known.is_empty() {
        format!(
            "the environment has no secrets yet; create one with `swarmseal -e {env} set {name}`"
        )
    } else {
        format!(
            "known secrets: {}{}; create it with `swarmseal -e {env} set {name}`",
            known.join(", "),
            if scan.secrets.len() > known.len() {
                ", ..."
            } else {
                ""
            }
        )
    };
    Err(Error::new(format!(
        "secret {name:?} not found in environment {env:?} (no {})",
        repo.rel(&repo.secret_path(env, &names::parse_user_name(input)?.1))
            .display()
    ))
    .with_kind(ErrorKind::NotFound)
    .hint(hint))
}

/// Fails when two files map to `name`: which one is meant is anyone's guess.
fn refuse_collision(scan: &Scan, name: &str) -> Result<()> {
    match scan
        .problems
        .iter()
        .find(|p| matches!(p, Problem::Collision { name: n, .. } if n == name))
    {
        Some(problem) => Err(problem.to_error()),
        None => Ok(()),
    }
}

/// The environment's fingerprint key, decrypted (and checked to be this environment's).
pub fn fingerprint_key(repo: &Repo, env: &str, ids: &Identities) -> Result<Plaintext> {
    let path = repo.fingerprint_key_path(env);
    let Some(bytes) = repo.read_optional(&path)? else {
        return Err(Error::new(format!(
            "the fingerprint key of environment {env:?} is missing ({})",
            repo.rel(&path).display()
        ))
        .hint("restore it from git; if it was never created, run `swarmseal rekey` to create it"));
    };
    let key = repo
        .open_sealed(env, ScopeKind::FingerprintKey, &path, &bytes, ids, None)?
        .value;
    if key.len() != crypto::FINGERPRINT_KEY_LEN {
        return Err(Error::new(format!(
            "{} does not hold a fingerprint key",
            repo.rel(&path).display()
        ))
        .hint("restore it from git"));
    }
    Ok(key)
}

/// Encrypts a value to the environment's recipients (with its scope), stages it in `tx`
/// and records it in the index (not yet staged). `changed` is when the value last changed.
pub fn write_encrypted(
    repo: &Repo,
    tx: &mut Transaction<'_>,
    index: &mut Index,
    env: &str,
    target: Target<'_>,
    value: &[u8],
    changed: Option<String>,
) -> Result<()> {
    let keys = env_keys(repo, env)?;
    let (path, scope) = match &target {
        Target::Secret { path, .. } => (path.to_path_buf(), Scope::secret(env)),
        Target::Config { path, .. } => (path.to_path_buf(), Scope::config(env)),
        Target::FingerprintKey => (repo.fingerprint_key_path(env), Scope::fingerprint_key(env)),
    };
    let ciphertext = crypto::encrypt(value, &keys, &scope)?;
    tx.write(&path, &ciphertext)?;
    let record = Record {
        file: crypto::file_digest(&ciphertext),
        recipients: key_ids(&keys),
        changed,
    };
    let env_index = index.env_mut(env);
    match target {
        Target::Secret { name, .. } => {
            env_index.secrets.insert(name.to_string(), record);
        }
        Target::Config { name, .. } => {
            env_index.configs.insert(name.to_string(), record);
        }
        Target::FingerprintKey => env_index.fingerprint_key = Some(record),
    }
    Ok(())
}

/// What [`write_encrypted`] writes.
pub enum Target<'a> {
    Secret {
        name: &'a str,
        path: &'a Path,
    },
    /// An encrypted config (`configs/<env>/<name>.age`).
    Config {
        name: &'a str,
        path: &'a Path,
    },
    FingerprintKey,
}

/// Stages the index (add it last: it records what the other staged files are).
pub fn stage_index(repo: &Repo, tx: &mut Transaction<'_>, index: &Index) -> Result<()> {
    tx.write(&repo.index_path(), index.render().as_bytes())
}

/// Creates and records a new fingerprint key for an environment.
pub fn create_fingerprint_key(
    repo: &Repo,
    tx: &mut Transaction<'_>,
    index: &mut Index,
    env: &str,
) -> Result<()> {
    let key = crypto::new_fingerprint_key();
    write_encrypted(
        repo,
        tx,
        index,
        env,
        Target::FingerprintKey,
        &key,
        Some(index::now_stamp()),
    )
}

/// How a file stands against the index and the manifest's recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientState {
    /// Encrypted to exactly the current recipients.
    Current,
    /// Encrypted to another set of recipients.
    Stale { missing: Vec<String>, extra: usize },
    /// No record, or the file changed since swarmseal wrote it.
    Unknown,
}

/// Compares a file's record with the environment's current recipients.
pub fn recipient_state(
    record: Option<&Record>,
    file_bytes: &[u8],
    current: &[(String, String)],
) -> RecipientState {
    let Some(record) = record else {
        return RecipientState::Unknown;
    };
    if record.file != crypto::file_digest(file_bytes) {
        return RecipientState::Unknown;
    }
    let had: BTreeSet<&str> = record.recipients.iter().map(String::as_str).collect();
    let missing: Vec<String> = current
        .iter()
        .filter(|(_, key)| !had.contains(crypto::recipient_id(key).as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let now: BTreeSet<String> = current
        .iter()
        .map(|(_, k)| crypto::recipient_id(k))
        .collect();
    let extra = had.iter().filter(|id| !now.contains(**id)).count();
    if missing.is_empty() && extra == 0 {
        RecipientState::Current
    } else {
        RecipientState::Stale { missing, extra }
    }
}

/// The path of a new secret file for a logical name typed by the user, reusing the file
/// that already holds that name (so `set tls.api.crt` updates `tls/api.crt.age`).
pub fn secret_target(repo: &Repo, env: &str, input: &str) -> Result<(String, PathBuf, bool)> {
    let scan = repo.scan(env)?;
    if let Some(file) = names::exact_logical_name(input).and_then(|n| scan.secrets.get(&n)) {
        return Ok((file.name.clone(), file.path.clone(), true));
    }
    let (name, rel_file) = names::parse_user_name(input)?;
    refuse_collision(&scan, &name)?;
    if let Some(existing) = scan.secrets.get(&name) {
        return Ok((name, existing.path.clone(), true));
    }
    Ok((name, repo.secret_path(env, &rel_file), false))
}
