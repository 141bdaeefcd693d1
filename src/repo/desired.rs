//! Reads the repository into the planner's desired state, in two steps: [`prepare`]
//! reads and checks the files (no decryption), then [`Prepared::decrypt`] computes each
//! secret's keyed fingerprint, by one decryption, or from the Swarm's labels when they
//! vouch for the file as it is ([`Known`]), and keeps the values apply will create.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::crypto::value;
use crate::crypto::{self, DecryptFailure, Identities, Plaintext, ScopeKind};
use crate::domain::state::{labels, Desired, DesiredSecret, Kind, Observed};
use crate::error::{Error, Result};
use crate::repo::configs;
use crate::repo::{LockMode, Repo, SecretFile};

/// What plan and apply know of the repository.
pub struct RepoState {
    pub desired: Desired,
    /// Decrypted values by kind and logical name (only when asked for).
    pub values: Values,
    /// sha256 over the manifest, the fingerprint key file and every secret file: any
    /// change to the repository changes it (saved plans compare it).
    pub digest: String,
    /// True when values were decrypted and fingerprints are exact.
    pub verified: bool,
    /// What the caller should tell the user (reading prints nothing).
    pub warnings: Vec<String>,
}

/// The values of secrets and configs apply creates, by kind and logical name.
#[derive(Default)]
pub struct Values(BTreeMap<(Kind, String), Plaintext>);

impl Values {
    pub fn get(&self, kind: Kind, name: &str) -> Option<&Plaintext> {
        self.0.get(&(kind, name.to_string()))
    }

    pub fn insert(&mut self, kind: Kind, name: &str, value: Plaintext) {
        self.0.insert((kind, name.to_string()), value);
    }

    /// Keeps the values for which `keep(kind, name)` holds; the others are wiped.
    pub fn retain(&mut self, keep: impl Fn(Kind, &str) -> bool) {
        self.0.retain(|(kind, name), _| keep(*kind, name));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
    prepare(repo, env)?.decrypt(repo, ids, mode, Known::default())
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
pub struct Known(Vec<Vouch>);

/// One managed version's word: the file of `name` whose sha256 is `source` has the keyed
/// fingerprint `fingerprint` (both as bytes: no string per entry but the name).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Vouch {
    kind: Kind,
    name: String,
    source: [u8; 32],
    fingerprint: [u8; 32],
}

impl Known {
    /// The fingerprints that this environment's managed versions vouch for.
    pub fn from_observed(observed: &Observed, project: &str, env: &str) -> Known {
        let all = Kind::ALL
            .into_iter()
            .flat_map(|kind| observed.items(kind).iter().map(move |s| (kind, s)));
        let mut known: Vec<Vouch> = all
            .filter(|(_, s)| s.is_managed_by(project, env))
            .filter_map(|(kind, s)| {
                Some(Vouch {
                    kind,
                    name: s.label(labels::NAME)?.to_string(),
                    source: digest_bytes(s.label(labels::SOURCE)?)?,
                    fingerprint: digest_bytes(s.label(labels::FINGERPRINT)?)?,
                })
            })
            .collect();
        known.sort_unstable();
        known.dedup();
        Known(known)
    }

    /// The fingerprint the Swarm vouches for, for this file of `name` (`source`: its
    /// sha256 in hex), in hex: what [`Known::vouch_all`] finds, one file at a time (the
    /// tests' reference).
    #[cfg(test)]
    fn get(&self, kind: Kind, name: &str, source: &str) -> Option<String> {
        let source = digest_bytes(source)?;
        let first = self
            .0
            .partition_point(|v| (v.kind, v.name.as_str(), &v.source) < (kind, name, &source));
        let v = self.0.get(first)?;
        (v.kind == kind && v.name == name && v.source == source).then(|| hex::encode(v.fingerprint))
    }

    /// [`Known::get`] for every file of `files`, given in (kind, name) order as
    /// [`Prepared`] holds them: one pass beside this sorted list, no search per file.
    fn vouch_all<'f>(
        &self,
        files: impl IntoIterator<Item = (Kind, &'f str, &'f str)>,
    ) -> Vec<Option<[u8; 32]>> {
        let mut at = 0;
        files
            .into_iter()
            .map(|(kind, name, source)| {
                while self
                    .0
                    .get(at)
                    .is_some_and(|v| (v.kind, v.name.as_str()) < (kind, name))
                {
                    at += 1;
                }
                let source = digest_bytes(source)?;
                self.0[at..]
                    .iter()
                    .take_while(|v| v.kind == kind && v.name == name)
                    .find(|v| v.source == source)
                    .map(|v| v.fingerprint)
            })
            .collect()
    }
}

/// A sha256 in 64 lowercase hex digits, as bytes (anything else is no digest of ours).
fn digest_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    let lowercase = hex.bytes().all(|b| !b.is_ascii_uppercase());
    (lowercase && hex::decode_to_slice(hex, &mut bytes).is_ok()).then_some(bytes)
}

/// The repository's files of one environment, read and checked, before any decryption:
/// enough to know which secrets to observe on the Swarm.
pub struct Prepared {
    env: String,
    key_bytes: Vec<u8>,
    hasher: Sha256,
    /// The manifest's and the fingerprint key's paths and digests (see
    /// [`Prepared::file_digests`]).
    base: [(String, String); 2],
    files: BTreeMap<FileKey, ReadFile>,
}

/// A file's kind and logical name.
type FileKey = (Kind, String);

/// A file as read: where it is, its bytes, and their sha256 in hex.
type ReadFile = (SecretFile, Vec<u8>, String);

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
    let rel = |p: &Path| repo.rel(p).display().to_string();
    let base = [
        (
            rel(&repo.manifest_path()),
            crypto::file_digest(&manifest_bytes),
        ),
        (
            rel(&repo.fingerprint_key_path(env)),
            crypto::file_digest(&key_bytes),
        ),
    ];
    let contents = repo.read_all(scan.secrets.values().map(|f| f.path.as_path()))?;
    let mut files = Vec::with_capacity(contents.len());
    for ((name, file), bytes) in scan.secrets.into_iter().zip(contents) {
        if !crypto::looks_like_age(&bytes) {
            // A plaintext value in a file named like a secret: refuse, identity or not.
            return Err(crate::repo::Problem::Plaintext { rel: file.rel }.to_error());
        }
        let source = crypto::file_digest(&bytes);
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
        files.push(((Kind::Secret, name), (file, bytes, source)));
    }
    read_configs(repo, env, &mut hasher, &mut files)?;
    // In (kind, name) order already: one pass, no search per file.
    let files: BTreeMap<_, _> = files.into_iter().collect();
    // A copy of another environment's file is refused before anything is decrypted or any
    // Swarm is reached (decryption checks the scope again). Plain configs are no age files.
    let digests: Vec<(&Path, &str)> = files
        .iter()
        .filter(|((kind, _), (file, ..))| kind.is_secret() || configs::is_encrypted(file))
        .map(|(_, (file, _, source))| (file.path.as_path(), source.as_str()))
        .collect();
    repo.check_no_copies(env, &digests)?;
    Ok(Prepared {
        env: env.to_string(),
        key_bytes,
        hasher,
        base,
        files,
    })
}

/// Reads the environment's configs into `files` (see [`prepare`]): an encrypted one must be
/// an age file, a plain one within Docker's size limit. Their names and digests go into the
/// repository digest after the secrets', marked as configs.
fn read_configs(
    repo: &Repo,
    env: &str,
    hasher: &mut Sha256,
    files: &mut Vec<(FileKey, ReadFile)>,
) -> Result<()> {
    let scan = repo.scan_configs(env)?;
    scan.ensure_clean().map_err(|e| {
        e.context(format!(
            "refusing to plan {env} while the repository has problems"
        ))
    })?;
    for (name, file) in scan.secrets {
        let bytes = repo.read_config(&file.path)?;
        if configs::is_encrypted(&file) && !crypto::looks_like_age(&bytes) {
            return Err(Error::new(format!(
                "{} is not an age file, but its name ends in .age (an encrypted config)",
                file.rel.display()
            ))
            .with_kind(crate::error::ErrorKind::Repository)
            .hint("encrypt it (age -R, or swarmseal import), or rename it without .age to keep it a plain config"));
        }
        if !configs::is_encrypted(&file) {
            configs::check_size(&file.rel, bytes.len())?;
        }
        let source = crypto::file_digest(&bytes);
        hasher.update(b"config\0");
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(source.as_bytes());
        files.push(((Kind::Config, name), (file, bytes, source)));
    }
    Ok(())
}

impl Prepared {
    /// The files [`RepoState::digest`] covers: repository-relative path -> sha256 of the
    /// file, so that a stale saved plan says which changed. Built only for saved plans (at
    /// 10,000 secrets it is a few megabytes that `plan` and `apply` otherwise never need).
    pub fn file_digests(&self) -> BTreeMap<String, String> {
        let files = self
            .files
            .values()
            .map(|(file, _, source)| (file.rel.display().to_string(), source.clone()));
        self.base.iter().cloned().chain(files).collect()
    }

    /// The environment's secret and config names (what to observe on the Swarm).
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.files.keys().map(|(_, name)| name.clone()).collect()
    }

    /// The desired state: each secret's fingerprint from `known` when the Swarm vouches
    /// for its file, else by decrypting it (when an identity can read the environment),
    /// on all cores. Values are kept only with `keep_values`, and only those decrypted.
    ///
    /// Nothing is decrypted before `known` is there: decrypting ahead while the Swarm is
    /// listed would mostly decrypt files it then vouches for (every unchanged one), and
    /// on a machine that also runs the engine those cores are the engine's.
    pub fn decrypt(
        &self,
        repo: &Repo,
        ids: Option<&Identities>,
        mode: Decrypt,
        known: Known,
    ) -> Result<RepoState> {
        let env = self.env.as_str();
        let mut warnings = Vec::new();
        let key = fingerprint_key(repo, env, ids, mode, &self.key_bytes, &mut warnings)?;
        let keep_values = matches!(mode, Decrypt::Required { keep_values: true });
        let (Some(key), Some(ids)) = (&key, ids) else {
            return Ok(self.state(repo, None, Values::default(), warnings));
        };
        let files: Vec<(Kind, &str, &SecretFile, &[u8], &str)> = self
            .files
            .iter()
            .map(|((kind, name), (file, bytes, source))| {
                (*kind, name.as_str(), file, &bytes[..], &source[..])
            })
            .collect();
        let open = |i: usize| {
            let (kind, name, file, bytes, _) = files[i];
            let v = match kind {
                Kind::Secret => {
                    let v = repo
                        .open_sealed(env, ScopeKind::Secret, &file.path, bytes, ids, None)?
                        .value;
                    value::check_size(name, &v).map_err(|e| e.context(file.rel.display()))?;
                    v
                }
                Kind::Config if configs::is_encrypted(file) => {
                    repo.open_config(env, file, bytes, ids)?
                }
                Kind::Config => Plaintext::new(bytes.to_vec()),
            };
            Ok((crypto::fingerprint(key, &v), keep_values.then_some(v)))
        };
        // Looked up once, in one pass beside the sorted files.
        let vouched = known.vouch_all(
            files
                .iter()
                .map(|&(kind, name, _, _, source)| (kind, name, source)),
        );
        let pending = vouched.iter().filter(|fp| fp.is_none()).count();
        let workers = if ids.parallel() && pending > 1 {
            cores().min(pending)
        } else {
            0
        };
        let mut opened = on_cores(files.len(), workers, |i| vouched[i].is_some(), open);
        let mut fingerprints = Vec::with_capacity(files.len());
        let mut values = Values::default();
        for (i, &(kind, name, ..)) in files.iter().enumerate() {
            let fp = match vouched[i] {
                Some(fp) => hex::encode(fp),
                None => {
                    let (fp, value) = opened[i].take().unwrap_or_else(|| open(i))?;
                    if let Some(v) = value {
                        values.insert(kind, name, v);
                    }
                    fp
                }
            };
            fingerprints.push(fp);
        }
        Ok(self.state(repo, Some(fingerprints), values, warnings))
    }

    /// The read state, with `fingerprints` (one per file, in the order of
    /// [`Prepared::files`]) when an identity could read the environment.
    fn state(
        &self,
        repo: &Repo,
        fingerprints: Option<Vec<String>>,
        values: Values,
        warnings: Vec<String>,
    ) -> RepoState {
        let verified = fingerprints.is_some();
        let mut fingerprints = fingerprints.map(Vec::into_iter);
        // Files come in (kind, name) order: secrets, then configs, each sorted, so the maps
        // are built in one pass (`collect` of sorted items), not by 10,000 searches.
        let mut secrets = Vec::new();
        let mut configs = Vec::new();
        for ((kind, name), (file, bytes, source)) in &self.files {
            let fp = fingerprints.as_mut().and_then(Iterator::next);
            let source = source.clone();
            match kind {
                Kind::Secret => {
                    let d = desired_secret(repo, name, source, fp);
                    secrets.push((name.clone(), d));
                }
                Kind::Config => {
                    let plain = (!configs::is_encrypted(file)).then(|| bytes.clone());
                    let d = desired_config(name, source, fp, plain);
                    configs.push((name.clone(), d));
                }
            }
        }
        let (secrets, configs) = (secrets.into_iter().collect(), configs.into_iter().collect());
        RepoState {
            desired: Desired {
                project: repo.manifest.project.clone(),
                environment: self.env.clone(),
                secrets,
                keep_versions: repo.manifest.keep_versions,
                configs,
            },
            values,
            digest: hex::encode(self.hasher.clone().finalize()),
            verified,
            warnings,
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What one file's decryption gives: its fingerprint, and its value if kept.
type Opened = Result<(String, Option<Plaintext>)>;

/// `open(i)` for every `i < n` except those `skip`ped, on `workers` threads (none: the
/// caller opens what it needs). The decryption of thousands of files is CPU work (one
/// X25519 and one ChaCha20 each), so it goes on all cores. Results by index (`None`:
/// skipped).
fn on_cores(
    n: usize,
    workers: usize,
    skip: impl Fn(usize) -> bool + Sync,
    open: impl Fn(usize) -> Opened + Sync,
) -> Vec<Option<Opened>> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            if !skip(i) {
                done.push((i, open(i)));
            }
        }
        done
    };
    let mut opened: Vec<Option<Opened>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers.min(n)).map(|_| scope.spawn(work)).collect();
        for thread in threads {
            let done = thread
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, result) in done {
                opened[i] = Some(result);
            }
        }
    });
    opened
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
        kind: Default::default(),
        plain: None,
    }
}

/// A config as the planner wants it: its digests, and a plain one's content for the diff.
/// Configs take no settings from the manifest: services keep their mount settings.
fn desired_config(
    name: &str,
    source: String,
    fingerprint: Option<String>,
    plain: Option<Vec<u8>>,
) -> DesiredSecret {
    DesiredSecret {
        name: name.to_string(),
        source,
        fingerprint,
        kind: Kind::Config,
        plain,
        ..DesiredSecret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vouch(kind: Kind, name: &str, source: u8, fingerprint: u8) -> Vouch {
        Vouch {
            kind,
            name: name.into(),
            source: [source; 32],
            fingerprint: [fingerprint; 32],
        }
    }

    #[test]
    fn vouch_all_is_get_for_every_file() {
        let mut list = vec![
            vouch(Kind::Secret, "a", 1, 10),
            vouch(Kind::Secret, "a", 2, 11),
            vouch(Kind::Secret, "c", 3, 12),
            vouch(Kind::Config, "a", 4, 13),
            vouch(Kind::Config, "b", 5, 14),
        ];
        list.sort();
        let known = Known(list);
        let hex = |b: u8| hex::encode([b; 32]);
        // In (kind, name) order, as `Prepared` holds them: vouched, wrong digest, absent
        // name, the other kind's name, a digest that is no digest.
        let files = [
            (Kind::Secret, "a", hex(2)),
            (Kind::Secret, "b", hex(1)),
            (Kind::Secret, "c", hex(4)),
            (Kind::Secret, "d", "not hex".to_string()),
            (Kind::Config, "a", hex(4)),
            (Kind::Config, "b", hex(3)),
            (Kind::Config, "c", hex(5)),
        ];
        let keys = files.iter().map(|(k, n, s)| (*k, *n, s.as_str()));
        let all = known.vouch_all(keys.clone());
        let each: Vec<Option<String>> = keys.map(|(k, n, s)| known.get(k, n, s)).collect();
        let all: Vec<Option<String>> = all.into_iter().map(|fp| fp.map(hex::encode)).collect();
        assert_eq!(all, each);
        assert_eq!(
            all,
            [Some(hex(11)), None, None, None, Some(hex(13)), None, None]
        );
    }
}
