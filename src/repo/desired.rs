//! Reads the repository into the planner's desired state, in two steps: [`prepare`]
//! reads and checks the files (no decryption), then [`Prepared::decrypt`] computes each
//! secret's keyed fingerprint, by one decryption, or from the Swarm's labels when they
//! vouch for the file as it is ([`Known`]), and keeps the values apply will create.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::crypto::value;
use crate::crypto::{self, DecryptFailure, Identities, Plaintext, ScopeKind};
use crate::domain::state::{labels, Desired, DesiredSecret, Observed};
use crate::error::{Error, Result};
use crate::repo::{LockMode, Repo, SecretFile};

/// What plan and apply know of the repository.
pub struct RepoState {
    pub desired: Desired,
    /// Decrypted values by logical name (only when asked for).
    pub values: BTreeMap<String, Plaintext>,
    /// sha256 over the manifest, the fingerprint key file and every secret file: any
    /// change to the repository changes it (saved plans compare it).
    pub digest: String,
    /// True when values were decrypted and fingerprints are exact.
    pub verified: bool,
    /// What the caller should tell the user (reading prints nothing).
    pub warnings: Vec<String>,
}

/// How to treat identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decrypt {
    /// Fingerprints are required (apply): no identity, or one that cannot read the
    /// environment, is an error.
    Required { keep_values: bool },
    /// Use the identity if it can read the environment, else plan from `source` alone.
    IfPossible,
}

/// Reads the environment into the desired state: refuses a repository with problems,
/// decrypts each secret once (when an identity can read the environment) to compute its
/// keyed fingerprint, and digests everything read for saved plans.
pub fn read(repo: &Repo, env: &str, ids: Option<&Identities>, mode: Decrypt) -> Result<RepoState> {
    prepare(repo, env)?.decrypt(repo, ids, mode, &Known::default())
}

/// Fingerprints the Swarm already vouches for: a managed version of this environment whose
/// `source` label is the digest of a file as it is now was created from exactly these
/// bytes, and its `fingerprint` label is the keyed fingerprint of their value. Such a file
/// needs no decryption to be known unchanged.
///
/// Why this is safe: the same ciphertext always decrypts to the same value, and the
/// version was created by an apply that decrypted and checked the file (its scope, its
/// size). Labels can only be written by someone who can manage the Swarm, who could
/// replace the secrets themselves; the repository, which a pull request controls, cannot
/// forge them. The digest-only check against copies of other environments' files still
/// runs for every file.
#[derive(Debug, Default)]
pub struct Known(BTreeMap<String, BTreeMap<String, String>>);

impl Known {
    /// The fingerprints that this environment's managed versions vouch for.
    pub fn from_observed(observed: &Observed, project: &str, env: &str) -> Known {
        let mut known: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for s in observed
            .secrets
            .iter()
            .filter(|s| s.is_managed_by(project, env))
        {
            let (Some(name), Some(source), Some(fp)) = (
                s.label(labels::NAME),
                s.label(labels::SOURCE),
                s.label(labels::FINGERPRINT),
            ) else {
                continue;
            };
            if fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                known
                    .entry(name.to_string())
                    .or_default()
                    .insert(source.to_string(), fp.to_string());
            }
        }
        Known(known)
    }

    /// The fingerprint the Swarm vouches for, for this file of `name`.
    fn get(&self, name: &str, source: &str) -> Option<&str> {
        self.0.get(name)?.get(source).map(String::as_str)
    }
}

/// The repository's files of one environment, read and checked, before any decryption:
/// enough to know which secrets to observe on the Swarm.
pub struct Prepared {
    env: String,
    key_bytes: Vec<u8>,
    hasher: Sha256,
    /// name -> (file, its bytes, their digest).
    files: BTreeMap<String, (SecretFile, Vec<u8>, String)>,
}

/// Reads the environment's files and refuses a repository with problems (under the shared
/// repository lock), without decrypting anything.
pub fn prepare(repo: &Repo, env: &str) -> Result<Prepared> {
    let _lock = repo.lock(LockMode::Shared)?;
    let refusing = || format!("refusing to plan {env} while the repository has problems");
    if let Some(leak) = repo
        .scan_outside_envs()?
        .into_iter()
        .find(|p| !matches!(p, crate::repo::Problem::Stray { .. }))
    {
        return Err(leak.to_error().context(refusing()));
    }
    let scan = repo.scan(env)?;
    scan.ensure_clean().map_err(|e| e.context(refusing()))?;
    let manifest_bytes = repo.read(&repo.manifest_path())?;
    let key_bytes = repo.read(&repo.fingerprint_key_path(env)).map_err(|e| {
        e.hint("restore the environment's fingerprint key from git, or create one with `swarmseal rekey`")
    })?;
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(&manifest_bytes));
    hasher.update(Sha256::digest(&key_bytes));
    let mut files = BTreeMap::new();
    for (name, file) in scan.secrets {
        let bytes = repo.read(&file.path)?;
        if !crypto::looks_like_age(&bytes) {
            // A plaintext value in a file named like a secret: refuse, identity or not.
            return Err(crate::repo::Problem::Plaintext { rel: file.rel }.to_error());
        }
        let source = crypto::file_digest(&bytes);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
        files.insert(name, (file, bytes, source));
    }
    // A copy of another environment's file is refused before anything is decrypted or any
    // Swarm is reached (decryption checks the scope again).
    let digests: Vec<(&Path, &str)> = files
        .values()
        .map(|(file, _, source)| (file.path.as_path(), source.as_str()))
        .collect();
    repo.check_no_copies(env, &digests)?;
    Ok(Prepared {
        env: env.to_string(),
        key_bytes,
        hasher,
        files,
    })
}

impl Prepared {
    /// The environment's secret names.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.files.keys().cloned().collect()
    }

    /// The desired state: each secret's fingerprint from `known` when the Swarm vouches
    /// for its file, else by decrypting it (when an identity can read the environment),
    /// on all cores. Values are kept only with `keep_values`, and only those decrypted.
    pub fn decrypt(
        &self,
        repo: &Repo,
        ids: Option<&Identities>,
        mode: Decrypt,
        known: &Known,
    ) -> Result<RepoState> {
        let env = self.env.as_str();
        let mut warnings = Vec::new();
        let key = fingerprint_key(repo, env, ids, mode, &self.key_bytes, &mut warnings)?;
        let keep_values = matches!(mode, Decrypt::Required { keep_values: true });
        let mut fingerprints: BTreeMap<&str, String> = BTreeMap::new();
        let mut values = BTreeMap::new();
        if let (Some(key), Some(ids)) = (&key, ids) {
            let mut to_open = Vec::new();
            for (name, (file, bytes, source)) in &self.files {
                match known.get(name, source) {
                    Some(fp) => {
                        fingerprints.insert(name, fp.to_string());
                    }
                    None => to_open.push((name.as_str(), file, bytes.as_slice())),
                }
            }
            let opened = on_all_cores(&to_open, ids.parallel(), |&(name, file, bytes)| {
                let v = repo
                    .open_sealed(env, ScopeKind::Secret, &file.path, bytes, ids, None)?
                    .value;
                value::check_size(name, &v).map_err(|e| e.context(file.rel.display()))?;
                Ok((crypto::fingerprint(key, &v), keep_values.then_some(v)))
            });
            for (&(name, ..), result) in to_open.iter().zip(opened) {
                let (fp, value) = result?;
                fingerprints.insert(name, fp);
                if let Some(v) = value {
                    values.insert(name.to_string(), v);
                }
            }
        }
        let secrets = self
            .files
            .iter()
            .map(|(name, (_, _, source))| {
                let fp = fingerprints.remove(name.as_str());
                (name.clone(), desired_secret(repo, name, source.clone(), fp))
            })
            .collect();
        Ok(RepoState {
            desired: Desired {
                project: repo.manifest.project.clone(),
                environment: env.to_string(),
                secrets,
                keep_versions: repo.manifest.keep_versions,
            },
            values,
            digest: hex::encode(self.hasher.clone().finalize()),
            verified: key.is_some(),
            warnings,
        })
    }
}

/// `f` over `items` on all cores (in order; one at a time unless `parallel`): the
/// decryption of thousands of files is CPU work, one X25519 and one ChaCha20 per file.
fn on_all_cores<T: Sync, R: Send>(
    items: &[T],
    parallel: bool,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if parallel { cores.min(items.len()) } else { 1 };
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let chunks: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().map(f).collect::<Vec<_>>()))
            .collect();
        chunks
            .into_iter()
            .flat_map(|chunk| {
                chunk
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    })
}

/// The environment's fingerprint key, when an identity can read it (else, for
/// [`Decrypt::IfPossible`], `None` and a warning).
fn fingerprint_key(
    repo: &Repo,
    env: &str,
    ids: Option<&Identities>,
    mode: Decrypt,
    key_bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Result<Option<Plaintext>> {
    let key_path = repo.fingerprint_key_path(env);
    Ok(match (ids, mode) {
        (None, Decrypt::IfPossible) => None,
        (None, Decrypt::Required { .. }) => {
            return Err(Error::new(format!("no identity to decrypt the secrets of {env}")).hint(
                "pass -i FILE, or set SWARMSEAL_IDENTITY or SWARMSEAL_AGE_KEY (in CI: the deploy key's identity text)",
            ))
        }
        (Some(ids), _) => match crypto::decrypt(key_bytes, ids) {
            Ok(k) if k.value.len() == crypto::FINGERPRINT_KEY_LEN => {
                repo.check_scope(
                    env,
                    ScopeKind::FingerprintKey,
                    &key_path,
                    key_bytes,
                    k.scope.as_ref(),
                    None,
                )?;
                Some(k.value)
            }
            Ok(_) => {
                return Err(Error::new(format!("{} does not hold a fingerprint key", repo.rel(&key_path).display()))
                    .hint("restore it from git"))
            }
            Err(DecryptFailure::NoMatchingIdentity) if mode == Decrypt::IfPossible => {
                warnings.push(format!(
                    "your identity ({}) cannot read environment {env}: changes are inferred from the files alone (unverified)",
                    ids.describe()
                ));
                None
            }
            Err(f) => return Err(crypto::decrypt_error(&repo.rel(&key_path), f, ids)),
        },
    })
}

/// A secret as the planner wants it: its digests and the manifest's settings.
fn desired_secret(
    repo: &Repo,
    name: &str,
    source: String,
    fingerprint: Option<String>,
) -> DesiredSecret {
    let settings = repo.manifest.settings(name);
    DesiredSecret {
        name: name.to_string(),
        source,
        fingerprint,
        labels: settings.map(|s| s.labels.clone()).unwrap_or_default(),
        target: settings.and_then(|s| s.target.clone()),
        uid: settings.and_then(|s| s.uid.clone()),
        gid: settings.and_then(|s| s.gid.clone()),
        mode: settings.and_then(|s| s.mode),
    }
}
