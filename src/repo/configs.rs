//! Configs (`configs/<env>/`): Swarm configs kept in the repository, plain files or, named
//! `<name>.age`, age files encrypted like secrets (scope `config`). A plain config's name is
//! its whole path below the environment folder (`nginx.conf`, `conf.d/site.conf` →
//! `conf.d.site.conf`); an encrypted one's drops `.age`, as a secret's does.

use std::path::{Path, PathBuf};

use crate::crypto::{self, Identities, Plaintext, Scope, ScopeKind};
use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::index::{self, Record};
use crate::repo::secrets::{env_keys, key_ids, stage_index, Stored};
use crate::repo::{LockMode, Repo, Scan, SecretFile};

/// Folder of the config files, below the repository root.
pub const CONFIGS_DIR: &str = "configs";

/// Docker's limit on a config's data: 1 to 1,023,999 bytes (`MaxConfigSize`, 1000 KiB).
pub const MAX_CONFIG_BYTES: usize = 1_023_999;

/// The largest config file read: an armored age file of the largest config.
pub const MAX_CONFIG_FILE: u64 = 2 << 20;

impl Repo {
    /// `configs/<env>` below the root.
    pub fn config_dir(&self, env: &str) -> PathBuf {
        self.root.join(CONFIGS_DIR).join(env)
    }

    /// Walks `configs/<env>/` and maps every file to a logical name (see the module).
    pub fn scan_configs(&self, env: &str) -> Result<Scan> {
        self.scan_folder(&self.config_dir(env), true)
    }
}

/// True for an encrypted config (`<name>.age`).
pub fn is_encrypted(file: &SecretFile) -> bool {
    file.path.extension().is_some_and(|e| e == "age")
}

/// Refuses a config Docker would refuse, naming the file and the limit.
pub fn check_size(rel: &Path, len: usize) -> Result<()> {
    if (1..=MAX_CONFIG_BYTES).contains(&len) {
        return Ok(());
    }
    let what = if len == 0 {
        "is empty".to_string()
    } else {
        format!("holds {len} bytes")
    };
    Err(Error::new(format!(
        "config {} {what}: Docker accepts 1 to {MAX_CONFIG_BYTES} bytes",
        rel.display()
    ))
    .with_kind(ErrorKind::Repository)
    .hint(if len == 0 {
        "write the config's content, or remove the file"
    } else {
        "shorten it, or split it into several configs"
    }))
}

/// Stores `content` as config `name` of `env` (`configs/<env>/<name>`, or encrypted to the
/// environment's recipients as `configs/<env>/<name>.age`), with its index record, in one
/// transaction (temporary file, then rename), replacing the file that holds the name now
/// (plain or encrypted). Unchanged content in the same form writes nothing.
pub fn store_config(
    repo: &Repo,
    env: &str,
    name: &str,
    content: &[u8],
    encrypt: bool,
) -> Result<Stored> {
    let (name, rel_file) = names::parse_user_name(name)?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let plain_rel = rel_file.with_extension("");
    let target = if encrypt {
        repo.config_dir(env).join(&rel_file)
    } else {
        repo.config_dir(env).join(&plain_rel)
    };
    check_size(&repo.rel(&target), content.len())?;
    let scan = repo.scan_configs(env)?;
    let existing = scan.secrets.get(&name);
    if !encrypt
        && existing.is_some_and(|f| f.path == target)
        && repo.read_config(&target)? == content
    {
        return Ok(Stored::Unchanged { name });
    }
    let mut index = repo.load_index()?;
    let mut tx = repo.transaction();
    let bytes = if encrypt {
        crypto::encrypt(content, &env_keys(repo, env)?, &Scope::config(env))?
    } else {
        content.to_vec()
    };
    tx.write(&target, &bytes)?;
    if let Some(old) = existing.filter(|f| f.path != target) {
        tx.remove_config(env, &old.path)?;
    }
    let record = Record {
        file: crypto::file_digest(&bytes),
        recipients: if encrypt {
            key_ids(&env_keys(repo, env)?)
        } else {
            Vec::new()
        },
        changed: Some(index::now_stamp()),
    };
    let records = &mut index.env_mut(env).configs;
    records.retain(|n, _| scan.secrets.contains_key(n));
    records.insert(name.clone(), record);
    stage_index(repo, &mut tx, &index)?;
    tx.commit()?;
    Ok(Stored::Written {
        name,
        path: target,
        created: existing.is_none(),
        len: content.len(),
    })
}

impl Repo {
    /// Reads a config file under the rule of [`crate::repo::confined`], bounded by
    /// [`MAX_CONFIG_FILE`].
    pub fn read_config(&self, path: &Path) -> Result<Vec<u8>> {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        crate::repo::confined::read(&self.root, rel, MAX_CONFIG_FILE)
    }

    /// Decrypts an encrypted config of `env` (scope `config`).
    pub fn open_config(
        &self,
        env: &str,
        file: &SecretFile,
        bytes: &[u8],
        ids: &Identities,
    ) -> Result<Plaintext> {
        let v = self
            .open_sealed(env, ScopeKind::Config, &file.path, bytes, ids, None)?
            .value;
        check_size(&file.rel, v.len())?;
        Ok(v)
    }
}

impl super::Transaction<'_> {
    /// Stages the removal of a config file of `env`.
    pub fn remove_config(&mut self, env: &str, path: &Path) -> Result<()> {
        let _ = env;
        let rel = self.repo.inside(path)?;
        let old = crate::repo::confined::read(&self.repo.root, &rel, MAX_CONFIG_FILE)?;
        self.steps.push(super::TxStep::Remove {
            rel,
            env: None,
            old,
        });
        Ok(())
    }
}
