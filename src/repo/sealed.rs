//! The repository's encrypted files: each is decrypted only where it belongs, and
//! encrypted for the environment it is written to.
//!
//! A pull request controls every file, and the people who merge it and later run
//! `rekey`, `get` or `apply` often hold identities that can read several environments.
//! A file copied from `secrets/production/` into `secrets/staging/` decrypts fine with an
//! admin's identity; re-encrypting it to staging's recipients (`rekey`), or creating it on
//! the staging Swarm (`apply`), would hand production's value to staging. So every
//! decryption checks where the file came from:
//!
//! - A file swarmseal wrote carries its [`Scope`] (environment, and whether it is a secret
//!   or a fingerprint key) in its header, authenticated by the header MAC. A file scoped to
//!   another environment, or of another kind, is refused.
//! - A file without a scope (written by the age CLI, or by swarmseal before scopes) is
//!   refused when it is a byte-for-byte copy of a file of another environment, or of a
//!   fingerprint key. (The age CLI cannot write a scope; write such values with
//!   `swarmseal set` or `rekey` them to give them one.)

use std::path::{Path, PathBuf};

use crate::crypto::{self, Identities, Plaintext, Scope, ScopeKind};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repo;

/// sha256 of every repository age file, with its kind, environment and path: what an
/// unscoped file must not be a copy of. Built on first need. One entry (and one path) per
/// file, sorted by digest: at 10,000 files, a map of strings cost more than all the rest
/// of reading the repository.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    environments: Vec<String>,
    /// (sha256, kind, index in `environments`, path), sorted.
    files: Vec<([u8; 32], ScopeKind, usize, PathBuf)>,
}

impl Digests {
    /// The files whose sha256 is `digest` (in hex): (kind, environment, path).
    fn with(&self, digest: &str) -> impl Iterator<Item = (ScopeKind, &str, &Path)> {
        let mut bytes = [0; 32];
        let found: &[_] = match hex::decode_to_slice(digest, &mut bytes) {
            Ok(()) => {
                let start = self.files.partition_point(|f| f.0 < bytes);
                let len = self.files[start..].partition_point(|f| f.0 == bytes);
                &self.files[start..start + len]
            }
            Err(_) => &[],
        };
        found
            .iter()
            .map(|(_, kind, env, path)| (*kind, self.environments[*env].as_str(), path.as_path()))
    }
}

/// A decrypted file that passed the scope check, with the scope it carried.
pub struct Opened {
    pub value: Plaintext,
    /// `None` for a file without a scope (age CLI, older swarmseal).
    pub scope: Option<Scope>,
}

impl Repo {
    /// Decrypts `bytes`, read from `path`, as a file of `env` holding `kind`; refuses a
    /// file that belongs elsewhere (see the module). `also` is one more environment whose
    /// files are accepted (`rekey --moved-from OLD` after renaming OLD).
    pub fn open_sealed(
        &self,
        env: &str,
        kind: ScopeKind,
        path: &Path,
        bytes: &[u8],
        ids: &Identities,
        also: Option<&str>,
    ) -> Result<Opened> {
        let rel = self.rel(path);
        let d = crypto::decrypt(bytes, ids).map_err(|f| crypto::decrypt_error(&rel, f, ids))?;
        self.check_scope(env, kind, path, bytes, d.scope.as_ref(), also)?;
        Ok(Opened {
            value: d.value,
            scope: d.scope,
        })
    }

    /// The scope check of [`Repo::open_sealed`], for a file already decrypted: `scope` is
    /// what its (authenticated) header said.
    pub fn check_scope(
        &self,
        env: &str,
        kind: ScopeKind,
        path: &Path,
        bytes: &[u8],
        scope: Option<&Scope>,
        also: Option<&str>,
    ) -> Result<()> {
        let rel = self.rel(path);
        match scope {
            Some(scope) => {
                let env_ok = scope.environment == env || also == Some(scope.environment.as_str());
                if scope.kind != kind {
                    return Err(Error::new(format!(
                        "{} holds {} of environment {}, not {}",
                        rel.display(),
                        scope.kind.describe(),
                        scope.environment,
                        kind.describe()
                    ))
                    .with_kind(ErrorKind::Repository)
                    .hint(format!(
                        "it was copied here from elsewhere in the repository: remove it (`git rm {}`) and find out how it got there",
                        rel.display()
                    )));
                }
                if !env_ok {
                    return Err(Error::new(format!(
                        "{} was encrypted by swarmseal for environment {}, not {env}: a copy of another environment's file would hand its value to {env}'s recipients",
                        rel.display(),
                        scope.environment
                    ))
                    .with_kind(ErrorKind::Repository)
                    .hint(format!(
                        "remove it (`git rm {}`) and find out how it got there; if environment {} was renamed to {env}, re-encrypt its files with `swarmseal -e {env} rekey --moved-from {}`",
                        rel.display(),
                        scope.environment,
                        scope.environment
                    )));
                }
            }
            None => self.check_not_a_copy(env, kind, path, bytes)?,
        }
        Ok(())
    }

    /// Refuses a file that is a byte-for-byte copy of a file of another environment, or
    /// of a fingerprint key (what an unscoped file must not be; see the module).
    pub fn check_not_a_copy(
        &self,
        env: &str,
        kind: ScopeKind,
        path: &Path,
        bytes: &[u8],
    ) -> Result<()> {
        let own_env = self
            .manifest
            .environments
            .keys()
            .find(|env| path.starts_with(self.env_dir(env)));
        let digest = crypto::file_digest(bytes);
        self.refuse_copy(env, kind, path, &digest, own_env.map(String::as_str))
    }

    /// [`Repo::check_not_a_copy`] for every secret file of `env`, given as (path, digest of
    /// its bytes) as already read: only the other environments' files are read for it.
    pub fn check_no_copies(&self, env: &str, files: &[(&Path, &str)]) -> Result<()> {
        if self.digests.get().is_none() {
            let built = self.all_digests(Some((env, files)))?;
            let _ = self.digests.set(built);
        }
        for (path, digest) in files {
            self.refuse_copy(env, ScopeKind::Secret, path, digest, Some(env))?;
        }
        Ok(())
    }

    /// Refuses the file at `path` (in environment `own_env`'s folder) when `digest` is
    /// another file's that it must not be a copy of.
    fn refuse_copy(
        &self,
        env: &str,
        kind: ScopeKind,
        path: &Path,
        digest: &str,
        own_env: Option<&str>,
    ) -> Result<()> {
        let Some(original) = self.copy_of(path, digest, kind, own_env)? else {
            return Ok(());
        };
        Err(Error::new(format!(
            "{} and {} are byte-for-byte the same file, one a copy of the other; using it as {} of {env} could hand the other's value to {env}'s recipients",
            self.rel(path).display(),
            original.display(),
            kind.describe()
        ))
        .with_kind(ErrorKind::Repository)
        .hint(
            "remove the copy (`git rm FILE`) and find out how it got there; to use one value in several places, store it in each with `swarmseal -e ENV set` (files written by swarmseal carry their environment, and copies of them are told apart)"
        ))
    }

    /// Reads and decrypts a secret file of `env` (see [`Repo::open_sealed`]).
    pub fn decrypt_secret(&self, env: &str, path: &Path, ids: &Identities) -> Result<Plaintext> {
        let bytes = self.read(path)?;
        Ok(self
            .open_sealed(env, ScopeKind::Secret, path, &bytes, ids, None)?
            .value)
    }

    /// Another file of the repository with exactly these bytes, where an unscoped file of
    /// this kind must not come from: a secret of another environment, or any fingerprint
    /// key (for a secret); any other file (for a fingerprint key).
    fn copy_of(
        &self,
        path: &Path,
        digest: &str,
        kind: ScopeKind,
        own_env: Option<&str>,
    ) -> Result<Option<PathBuf>> {
        Ok(self
            .digests()?
            .with(digest)
            .find(|(other_kind, other_env, other)| {
                *other != path
                    && (kind == ScopeKind::FingerprintKey
                        || *other_kind == ScopeKind::FingerprintKey
                        || Some(*other_env) != own_env)
            })
            .map(|(_, _, other)| self.rel(other)))
    }

    /// The digests of every age file, built on first need.
    fn digests(&self) -> Result<&Digests> {
        match self.digests.get() {
            Some(d) => Ok(d),
            None => {
                let built = self.all_digests(None)?;
                Ok(self.digests.get_or_init(|| built))
            }
        }
    }

    /// sha256 of every secret file and fingerprint key of every environment; `known`
    /// gives one environment's secret files as already read (path, digest).
    fn all_digests(&self, known: Option<(&str, &[(&Path, &str)])>) -> Result<Digests> {
        use sha2::{Digest, Sha256};
        let mut out = Digests::default();
        for (i, env) in self.manifest.environments.keys().enumerate() {
            out.environments.push(env.clone());
            let key = self.fingerprint_key_path(env);
            if let Ok(Some(bytes)) = self.read_optional(&key) {
                let digest = Sha256::digest(&bytes).into();
                out.files.push((digest, ScopeKind::FingerprintKey, i, key));
            }
            if let Some((_, files)) = known.filter(|(known_env, _)| known_env == env) {
                for (path, digest) in files {
                    let mut bytes = [0; 32];
                    if hex::decode_to_slice(digest, &mut bytes).is_ok() {
                        out.files
                            .push((bytes, ScopeKind::Secret, i, path.to_path_buf()));
                    }
                }
                continue;
            }
            for file in self.scan(env)?.secrets.into_values() {
                if let Ok(bytes) = self.read(&file.path) {
                    let digest = Sha256::digest(&bytes).into();
                    out.files.push((digest, ScopeKind::Secret, i, file.path));
                }
            }
        }
        // Stable: files with one digest stay in the order they were found.
        out.files.sort_by_key(|f| f.0);
        Ok(out)
    }
}
