//! The repository store: finding the repository, discovering secret files, and writing
//! files atomically.
//!
//! Layout (`docs/design.md#repository-files`):
//!
//! ```text
//! swarmseal.yaml                       manifest
//! secrets/<env>/<name>.age             one age file per secret; sub-folders allowed
//! .swarmseal/fingerprint/<env>.age     the environment's fingerprint (HMAC) key, age-encrypted
//! .swarmseal/index.yaml                recipients and change dates of each file (no values)
//! .gitattributes                       *.age diff=swarmseal
//! ```

pub mod configs;
pub mod confined;
pub mod create;
pub mod desired;
pub mod example;
pub mod gitattributes;
pub mod import;
pub mod index;
pub mod manifest;
pub mod rekey;
pub mod rotate;
pub mod sealed;
pub mod secrets;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::domain::names;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::index::Index;
use crate::repo::manifest::{Manifest, MANIFEST_FILE};

/// Folder of the secret files, below the repository root.
pub const SECRETS_DIR: &str = "secrets";
/// Folder of swarmseal's own metadata, below the repository root.
pub const META_DIR: &str = ".swarmseal";

/// An opened repository: its root and its validated manifest.
pub struct Repo {
    pub root: PathBuf,
    pub manifest: Manifest,
    /// True while this process holds the repository lock ([`Repo::lock`]).
    locked: AtomicBool,
    /// Digests of every age file, for the copy check of [`crate::repo::sealed`].
    pub(crate) digests: std::sync::OnceLock<sealed::Digests>,
    /// Told once when [`Repo::lock`] has to wait for another command (the library prints
    /// nothing; the command line passes its warning printer). Sync (like the rest), so
    /// that files can be decrypted on several threads.
    on_lock_wait: Mutex<fn(&str)>,
}

/// One secret file found in an environment folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The logical name (`tls.api.crt`).
    pub name: String,
    /// The absolute path of the file.
    pub path: PathBuf,
    /// The path relative to the repository root, for messages (`secrets/prod/tls/api.crt.age`).
    pub rel: PathBuf,
}

/// Something wrong with the files of an environment folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A file that is not an age file: a plaintext leak.
    Plaintext { rel: PathBuf },
    /// A `.age` file whose path does not make a valid name.
    BadName { rel: PathBuf, why: String },
    /// Two files mapping to one logical name.
    Collision { name: String, rels: Vec<PathBuf> },
    /// A symbolic link (swarmseal follows none).
    Symlink { rel: PathBuf },
    /// A FIFO, socket or device.
    NotRegular { rel: PathBuf, kind: String },
    /// A file or folder that cannot be read.
    Unreadable { rel: PathBuf, why: String },
    /// An age file under `secrets/` outside every environment's folder: never applied.
    Stray { rel: PathBuf },
}

impl Problem {
    /// The problem as a user-facing error.
    pub fn to_error(&self) -> Error {
        self.describe().with_kind(ErrorKind::Repository)
    }

    fn describe(&self) -> Error {
        match self {
            Problem::Plaintext { rel } => Error::new(format!(
                "{} is not an age file: a plaintext file under secrets/ is a leak",
                rel.display()
            ))
            .hint(format!(
                "remove it (`git rm --cached {0}` and delete it; purge it from git history if it was ever pushed) and store the value with `swarmseal set` instead",
                rel.display()
            )),
            Problem::BadName { rel, why } => Error::new(format!(
                "{} cannot be a secret: {why}",
                rel.display()
            ))
            .hint("rename the file so that its path below secrets/<env>/ uses letters, digits, '_', '.', '-' and '/' only"),
            Problem::Collision { name, rels } => Error::new(format!(
                "{} all map to the secret name {name:?}",
                rels.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(" and ")
            ))
            .hint("rename or remove all but one of them (a sub-folder separator becomes '.')"),
            Problem::Symlink { rel } => confined::symlink_error(rel),
            Problem::NotRegular { rel, kind } => Error::new(format!("{} is {kind}, not a regular file", rel.display()))
                .hint("remove it: a swarmseal repository holds regular files only"),
            Problem::Unreadable { rel, why } => Error::new(format!("cannot read {}: {why}", rel.display()))
                .hint("check the file's permissions"),
            Problem::Stray { rel } => Error::new(format!(
                "{} is in no environment's folder, so it is never applied",
                rel.display()
            ))
            .hint("move it to secrets/<environment>/ (environments are listed in swarmseal.yaml), or remove it"),
        }
    }

    /// The path the problem is about.
    pub fn rel(&self) -> &Path {
        match self {
            Problem::Plaintext { rel }
            | Problem::BadName { rel, .. }
            | Problem::Symlink { rel }
            | Problem::NotRegular { rel, .. }
            | Problem::Unreadable { rel, .. }
            | Problem::Stray { rel } => rel,
            Problem::Collision { rels, .. } => &rels[0],
        }
    }
}

/// What a walk of one environment folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Secrets by logical name.
    pub secrets: BTreeMap<String, SecretFile>,
    pub problems: Vec<Problem>,
}

impl Scan {
    /// Fails with the first problem (and a count of the others), for commands that must
    /// not run on a repository with problems.
    pub fn ensure_clean(&self) -> Result<()> {
        match self.problems.first() {
            None => Ok(()),
            Some(first) => {
                let err = first.to_error();
                if self.problems.len() > 1 {
                    Err(Error::new(format!(
                        "{} (and {} more; `swarmseal check` lists them all)",
                        err.message(),
                        crate::domain::text::plural(self.problems.len() - 1, "problem")
                    ))
                    .hint(err.hint_text().unwrap_or_default().to_string()))
                } else {
                    Err(err)
                }
            }
        }
    }
}

impl Repo {
    /// Opens the repository at `dir` (from `-C`), or the nearest parent of the current
    /// folder holding `swarmseal.yaml`.
    pub fn discover(dir: Option<&Path>) -> Result<Repo> {
        // `symlink_metadata`: a linked manifest is found here and refused by `open`, with
        // a message saying why, rather than skipped.
        let has_manifest = |d: &Path| fs::symlink_metadata(d.join(MANIFEST_FILE)).is_ok();
        let root = match dir {
            Some(dir) => {
                if !has_manifest(dir) {
                    return Err(Error::new(format!(
                        "{} is not a swarmseal repository: it has no {MANIFEST_FILE}",
                        dir.display()
                    ))
                    .hint(format!(
                        "check the path given to -C, or create a repository there with `swarmseal -C {} init`",
                        dir.display()
                    )));
                }
                dir.to_path_buf()
            }
            None => {
                let cwd = std::env::current_dir()
                    .map_err(|e| Error::new(format!("cannot read the current folder: {e}")))?;
                cwd.ancestors()
                    .find(|d| has_manifest(d))
                    .map(Path::to_path_buf)
                    .ok_or_else(|| {
                        Error::new(format!(
                            "no {MANIFEST_FILE} in {} or any parent folder: this is not a swarmseal repository",
                            cwd.display()
                        ))
                        .with_kind(ErrorKind::NotFound)
                        .hint("run the command inside a repository, pass -C DIR, or create one with `swarmseal init`")
                    })?
            }
        };
        Repo::open(&root)
    }

    /// Opens the repository rooted at `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        let root = fs::canonicalize(root).map_err(|e| Error::io("open repository", root, e))?;
        let rel = Path::new(MANIFEST_FILE);
        let bytes =
            confined::read_optional(&root, rel, confined::MAX_MANIFEST)?.ok_or_else(|| {
                Error::io(
                "read",
                &root.join(rel),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
            .hint("run `swarmseal init` to create a repository, or pass -C DIR to use another one")
            })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::new(format!("{} is not UTF-8 text", root.join(rel).display()))
                .hint("write the manifest as UTF-8 YAML")
        })?;
        let manifest = Manifest::parse(&text, &root.join(rel))?;
        Ok(Repo::with_manifest(root, manifest))
    }

    /// A repository from a root (canonical) and a manifest already parsed (by `init`,
    /// before the manifest is written).
    pub fn with_manifest(root: PathBuf, manifest: Manifest) -> Repo {
        Repo {
            root,
            manifest,
            locked: AtomicBool::new(false),
            digests: std::sync::OnceLock::new(),
            on_lock_wait: Mutex::new(|_| {}),
        }
    }

    /// What to call, once, when [`Repo::lock`] has to wait for another command.
    pub fn on_lock_wait(&self, tell: fn(&str)) {
        *self.on_lock_wait.lock().unwrap_or_else(|p| p.into_inner()) = tell;
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// `secrets/<env>` below the root.
    pub fn env_dir(&self, env: &str) -> PathBuf {
        self.root.join(SECRETS_DIR).join(env)
    }

    /// The file of a secret, from its path relative to the environment folder.
    pub fn secret_path(&self, env: &str, rel_file: &Path) -> PathBuf {
        self.env_dir(env).join(rel_file)
    }

    /// The encrypted fingerprint key of an environment.
    pub fn fingerprint_key_path(&self, env: &str) -> PathBuf {
        self.root
            .join(META_DIR)
            .join("fingerprint")
            .join(format!("{env}.age"))
    }

    /// The index of recipients and change dates.
    pub fn index_path(&self) -> PathBuf {
        self.root.join(META_DIR).join("index.yaml")
    }

    /// A path relative to the root, for messages.
    pub fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| path.to_path_buf())
    }

    /// `path` relative to the root; an error for a path elsewhere.
    fn inside(&self, path: &Path) -> Result<PathBuf> {
        let rel = path.strip_prefix(&self.root).map_err(|_| {
            Error::new(format!("{} is not inside the repository", path.display()))
                .hint("report this as a bug in swarmseal")
        })?;
        Ok(rel.to_path_buf())
    }

    /// Takes the repository lock (see [`RepoLock`]). Commands that write take it
    /// exclusively, from before they read what they change until they have written it;
    /// commands that read take it shared while they read. Waits for other commands.
    ///
    /// Taking it again while this process holds it returns a guard that does nothing (the
    /// outer one keeps the lock); commands take one mode only.
    pub fn lock(&self, mode: LockMode) -> Result<RepoLock<'_>> {
        if self.locked.load(Ordering::SeqCst) {
            return Ok(RepoLock {
                repo: self,
                _dir: None,
                outer: false,
            });
        }
        let meta = Path::new(META_DIR);
        let exists = confined::ensure_dirs(&self.root, meta, mode == LockMode::Exclusive)?;
        if !exists {
            // Nothing written yet: there is nothing to protect from a writer.
            return Ok(RepoLock {
                repo: self,
                _dir: None,
                outer: false,
            });
        }
        let path = self.root.join(meta);
        let dir = fs::File::open(&path).map_err(|e| Error::io("open", meta, e))?;
        let try_lock = |dir: &fs::File| match mode {
            LockMode::Shared => dir.try_lock_shared(),
            LockMode::Exclusive => dir.try_lock(),
        };
        let start = std::time::Instant::now();
        let mut told = false;
        loop {
            match try_lock(&dir) {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", meta, e)
                        .hint("the repository must be on a file system that supports flock"))
                }
            }
            let waited = start.elapsed();
            if waited >= REPO_LOCK_TIMEOUT {
                return Err(Error::new(format!(
                    "another swarmseal command has held the lock on {} for more than {}",
                    self.root.display(),
                    crate::domain::text::duration(REPO_LOCK_TIMEOUT)
                ))
                .with_kind(ErrorKind::LockHeld)
                .hint(
                    "wait for it to finish (a `swarmseal edit` waits for its editor), then retry",
                ));
            }
            if !told && waited >= std::time::Duration::from_secs(2) {
                let tell = *self.on_lock_wait.lock().unwrap_or_else(|p| p.into_inner());
                tell(&format!(
                    "waiting for another swarmseal command to finish with {}",
                    self.root.display()
                ));
                told = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        self.locked.store(true, Ordering::SeqCst);
        // No writer is half-way now: temporary files left in .swarmseal/ are leftovers.
        for sub in [META_DIR.to_string(), format!("{META_DIR}/fingerprint")] {
            if let Ok(entries) = fs::read_dir(self.root.join(&sub)) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if confined::is_temp_name(&name.to_string_lossy())
                        && entry.file_type().is_ok_and(|t| t.is_file())
                    {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(RepoLock {
            repo: self,
            _dir: Some(dir),
            outer: true,
        })
    }

    /// Walks `secrets/<env>/` and maps every file to a logical name.
    pub fn scan(&self, env: &str) -> Result<Scan> {
        self.scan_folder(&self.env_dir(env), false)
    }

    /// Walks an environment's folder of secrets (every file an age file) or, with
    /// `plain_ok`, of configs (a file not ending in `.age` is a plain config, named by its
    /// whole path), and maps every file to a logical name.
    pub(crate) fn scan_folder(&self, dir: &Path, plain_ok: bool) -> Result<Scan> {
        let dir = dir.to_path_buf();
        let mut scan = Scan::default();
        if !confined::ensure_dirs(&self.root, &self.inside(&dir)?, false)? {
            return Ok(scan);
        }
        let mut by_name: BTreeMap<String, Vec<SecretFile>> = BTreeMap::new();
        for entry in self.files_below(&dir, |_| true) {
            let entry = match entry {
                Ok(e) => e,
                Err(problem) => {
                    scan.problems.push(problem);
                    continue;
                }
            };
            let path = entry.path();
            let rel = self.rel(path);
            let below = path.strip_prefix(&dir).unwrap_or(path).to_path_buf();
            let file_name = entry.file_name().to_string_lossy();
            if is_placeholder(&file_name, &entry) {
                continue;
            }
            let below = if file_name.ends_with(".age") {
                below
            } else if plain_ok {
                // A plain config: its name is its whole path (`nginx.conf`).
                let mut age = below.into_os_string();
                age.push(".age");
                PathBuf::from(age)
            } else {
                scan.problems.push(Problem::Plaintext { rel });
                continue;
            };
            match names::logical_name(&below) {
                Ok(name) => by_name.entry(name.clone()).or_default().push(SecretFile {
                    name,
                    path: path.to_path_buf(),
                    rel,
                }),
                Err(why) => scan.problems.push(Problem::BadName { rel, why }),
            }
        }
        for (name, mut files) in by_name {
            if files.len() > 1 {
                scan.problems.push(Problem::Collision {
                    name,
                    rels: files.iter().map(|f| f.rel.clone()).collect(),
                });
            } else if let Some(file) = files.pop() {
                scan.secrets.insert(name, file);
            }
        }
        Ok(scan)
    }

    /// The regular files below `dir` (folders for which `keep` is false are skipped),
    /// following no link: a link (to a file or a folder, inside the repository or not), a
    /// FIFO, a socket or a device comes back as a [`Problem`], like an entry that cannot
    /// be read. swarmseal's own temporary files are skipped (and removed while the
    /// repository lock is held: no writer is half-way then).
    fn files_below<'a>(
        &'a self,
        dir: &'a Path,
        keep: impl FnMut(&walkdir::DirEntry) -> bool + 'a,
    ) -> impl Iterator<Item = std::result::Result<walkdir::DirEntry, Problem>> + 'a {
        walkdir::WalkDir::new(dir)
            .follow_links(false)
            .follow_root_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(keep)
            .filter_map(move |entry| {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        let rel = e
                            .path()
                            .map(|p| self.rel(p))
                            .unwrap_or_else(|| self.rel(dir));
                        let why = e
                            .io_error()
                            .map(|io| io.kind().to_string())
                            .unwrap_or_else(|| "it cannot be read".into());
                        return Some(Err(Problem::Unreadable { rel, why }));
                    }
                };
                let ft = entry.file_type();
                if ft.is_dir() {
                    return None;
                }
                let rel = self.rel(entry.path());
                if ft.is_symlink() {
                    return Some(Err(Problem::Symlink { rel }));
                }
                if !ft.is_file() {
                    return Some(Err(Problem::NotRegular {
                        rel,
                        kind: confined::kind_of(&ft).to_string(),
                    }));
                }
                if confined::is_temp_name(&entry.file_name().to_string_lossy())
                    && self.is_own_temp(&rel)
                {
                    if self.locked.load(Ordering::SeqCst) {
                        let _ = fs::remove_file(entry.path());
                    }
                    return None;
                }
                Some(Ok(entry))
            })
    }

    /// True for a temporary file that swarmseal could have left: empty (killed before it
    /// wrote) or starting like an age file (all swarmseal writes there are ciphertext). A
    /// file of that name with other content is not skipped: it may be a plaintext leak.
    fn is_own_temp(&self, rel: &Path) -> bool {
        if rel.starts_with(configs::CONFIGS_DIR) {
            // Configs may be plain: any temporary file there is swarmseal's.
            return true;
        }
        match confined::read_prefix(&self.root, rel, 64) {
            Ok(head) => head.is_empty() || crate::crypto::looks_like_age(&head),
            Err(_) => false,
        }
    }

    /// Files under `secrets/` outside the environments' folders: plaintext files there are
    /// leaks like anywhere else, and age files there belong to no environment.
    pub fn scan_outside_envs(&self) -> Result<Vec<Problem>> {
        let dir = self.root.join(SECRETS_DIR);
        let mut problems = Vec::new();
        if !confined::ensure_dirs(&self.root, Path::new(SECRETS_DIR), false)? {
            return Ok(problems);
        }
        let envs: Vec<&String> = self.manifest.environments.keys().collect();
        let not_an_env = |e: &walkdir::DirEntry| {
            !(e.depth() == 1
                && e.file_type().is_dir()
                && envs.iter().any(|env| e.file_name() == env.as_str()))
        };
        for entry in self.files_below(&dir, not_an_env) {
            let entry = match entry {
                Ok(e) => e,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let rel = self.rel(entry.path());
            let name = entry.file_name().to_string_lossy();
            if is_placeholder(&name, &entry) {
                continue;
            }
            let is_age = name.ends_with(".age")
                && confined::read_prefix(&self.root, &rel, 64)
                    .map(|b| crate::crypto::looks_like_age(&b))
                    .unwrap_or(false);
            problems.push(if is_age {
                Problem::Stray { rel }
            } else {
                Problem::Plaintext { rel }
            });
        }
        Ok(problems)
    }

    /// Reads an age file of the repository (a secret or a fingerprint key) under the rule
    /// of [`confined`]: no link, a regular file, at most [`confined::MAX_AGE_FILE`] bytes.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        confined::read(&self.root, &self.inside(path)?, confined::MAX_AGE_FILE)
    }

    /// [`Repo::read`] for many files, opening each folder once (see [`confined::Reader`]).
    pub fn read_all<'p>(&self, paths: impl IntoIterator<Item = &'p Path>) -> Result<Vec<Vec<u8>>> {
        let mut reader = confined::Reader::new(&self.root);
        paths
            .into_iter()
            .map(|path| reader.read(&self.inside(path)?, confined::MAX_AGE_FILE))
            .collect()
    }

    /// Like [`Repo::read`]; `Ok(None)` when the file does not exist.
    pub fn read_optional(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        confined::read_optional(&self.root, &self.inside(path)?, confined::MAX_AGE_FILE)
    }

    /// Reads the index, bounded by the size of the tree (see [`confined::index_limit`]).
    pub fn load_index(&self) -> Result<Index> {
        let rel = self.inside(&self.index_path())?;
        let small = confined::index_limit(0);
        let limit = match fs::symlink_metadata(self.root.join(&rel)) {
            Ok(meta) if meta.is_file() && meta.len() > small => {
                confined::index_limit(self.count_files())
            }
            _ => small,
        };
        match confined::read_optional(&self.root, &rel, limit)? {
            None => Ok(Index::new()),
            Some(bytes) => Index::parse(&bytes, &rel),
        }
    }

    /// How many entries `secrets/` holds (for the index's size bound).
    fn count_files(&self) -> usize {
        walkdir::WalkDir::new(self.root.join(SECRETS_DIR))
            .follow_links(false)
            .follow_root_links(false)
            .into_iter()
            .filter(|e| e.as_ref().is_ok_and(|e| !e.file_type().is_dir()))
            .count()
            + self.manifest.environments.len()
    }

    /// A new transaction on this repository (see [`Transaction`]).
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction {
            repo: self,
            steps: Vec::new(),
        }
    }

    /// Removes the folders below `secrets/<env>/` that `path`'s removal left empty.
    fn prune_empty_dirs(&self, env: &str, path: &Path) {
        let stop = self.env_dir(env);
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == stop || !d.starts_with(&stop) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// How long [`Repo::lock`] waits for another command.
const REPO_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Shared (readers) or exclusive (writers); see [`Repo::lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// The repository lock: `flock` on the `.swarmseal` folder, released on drop (and by the
/// kernel when the process dies, so a killed command never leaves it behind). It makes
/// concurrent commands lose nothing (20 parallel `set`s all land in the index), and tells
/// a command that temporary files it meets are leftovers of a killed one.
pub struct RepoLock<'r> {
    repo: &'r Repo,
    _dir: Option<fs::File>,
    /// False for a guard taken while the lock was already held.
    outer: bool,
}

impl Drop for RepoLock<'_> {
    fn drop(&mut self) {
        if self.outer {
            self.repo.locked.store(false, Ordering::SeqCst);
        }
    }
}

/// Largest old file a [`Transaction`] keeps in memory to put it back.
const ROLLBACK_LIMIT: u64 = 64 << 20;

/// Repository writes that happen together or not at all. Every new file is written to a
/// temporary file beside its destination first, so that a failure (a full disk, a
/// read-only folder) stops the command before anything changed; then the files are renamed
/// into place in the order they were added (add the index last), and if a rename fails the
/// ones already done are undone. A command that fails leaves the repository as it was.
pub struct Transaction<'r> {
    repo: &'r Repo,
    steps: Vec<TxStep>,
}

enum TxStep {
    Write {
        staged: confined::Staged,
        old: Option<Vec<u8>>,
    },
    Remove {
        rel: PathBuf,
        env: Option<String>,
        old: Vec<u8>,
    },
}

impl Transaction<'_> {
    /// Stages `bytes` for `path` (a file of the repository).
    pub fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        let rel = self.repo.inside(path)?;
        let unchanged = |e: Error| {
            e.or_hint(
                "nothing in the repository was changed; fix the cause and run the command again",
            )
        };
        let old =
            confined::read_optional(&self.repo.root, &rel, ROLLBACK_LIMIT).map_err(unchanged)?;
        let staged = confined::stage(&self.repo.root, &rel, bytes, 0o644).map_err(unchanged)?;
        self.steps.push(TxStep::Write { staged, old });
        Ok(())
    }

    /// Stages the removal of a secret file of `env` (empty sub-folders go with it).
    pub fn remove_secret(&mut self, env: &str, path: &Path) -> Result<()> {
        let rel = self.repo.inside(path)?;
        let old = confined::read(&self.repo.root, &rel, ROLLBACK_LIMIT)?;
        self.steps.push(TxStep::Remove {
            rel,
            env: Some(env.to_string()),
            old,
        });
        Ok(())
    }

    /// True when nothing was staged.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Puts every staged change in place, or none of them.
    pub fn commit(self) -> Result<()> {
        let root = self.repo.root.clone();
        let mut done: Vec<(PathBuf, Option<Vec<u8>>)> = Vec::new();
        let mut removed: Vec<(PathBuf, Option<String>)> = Vec::new();
        let mut steps = self.steps.into_iter();
        let mut failure = None;
        for step in steps.by_ref() {
            let result = match step {
                TxStep::Write { staged, old } => {
                    let rel = staged.rel().to_path_buf();
                    staged.persist().map(|()| done.push((rel, old)))
                }
                TxStep::Remove { rel, env, old } => confined::remove(&root, &rel).map(|()| {
                    done.push((rel.clone(), Some(old)));
                    removed.push((rel, env));
                }),
            };
            if let Err(e) = result {
                failure = Some(e);
                break;
            }
        }
        // Staged files not reached are dropped here, which deletes them.
        drop(steps);
        if let Some(err) = failure {
            let mut lost = Vec::new();
            for (rel, old) in done.into_iter().rev() {
                let undone = match old {
                    Some(bytes) => confined::write(&root, &rel, &bytes, 0o644),
                    None => confined::remove(&root, &rel),
                };
                if undone.is_err() {
                    lost.push(rel.display().to_string());
                }
            }
            if lost.is_empty() {
                return Err(err.or_hint("nothing in the repository was changed; fix the cause and run the command again"));
            }
            return Err(Error::new(format!(
                "{}; and putting back what was already written failed for {}",
                err.message(),
                lost.join(", ")
            ))
            .hint("restore those files from git (`git checkout -- FILE`), fix the cause and run the command again"));
        }
        for (rel, env) in removed {
            if let Some(env) = env {
                self.repo.prune_empty_dirs(&env, &root.join(&rel));
            }
        }
        Ok(())
    }
}

/// Empty `.gitkeep`/`.keep` files keep empty folders in git; they are not leaks.
fn is_placeholder(file_name: &str, entry: &walkdir::DirEntry) -> bool {
    matches!(file_name, ".gitkeep" | ".keep")
        && entry.file_type().is_file()
        && entry.metadata().map(|m| m.len() == 0).unwrap_or(false)
}

/// Writes `bytes` to a file outside any repository (a plan file, an identity) so that
/// readers see the old file or the new one, never a part: a temporary file in the same
/// folder, fsync, rename, fsync of the folder. Missing parent folders are created.
/// Files of a repository go through [`confined`] and [`Transaction`] instead.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    let fail = |e: std::io::Error| Error::io("write", path, e);
    let mut tmp = tempfile::Builder::new()
        .prefix(".swarmseal-tmp-")
        .tempfile_in(parent)
        .map_err(fail)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    tmp.write_all(bytes).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/x.age");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.age")]);
    }
}
