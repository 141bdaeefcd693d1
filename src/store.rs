//! The repository store: finding the repository, discovering secret files, and writing
//! files atomically.
//!
//! Layout (SPEC §1, plus swarmseal's own metadata):
//!
//! ```text
//! swarmseal.yaml                       manifest
//! secrets/<env>/<name>.age             one age file per secret; sub-folders allowed
//! .swarmseal/fingerprint/<env>.age     the environment's fingerprint (HMAC) key, age-encrypted
//! .swarmseal/index.yaml                recipients and change dates of each file (no values)
//! .gitattributes                       *.age diff=swarmseal
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::names;

/// Folder of the secret files, below the repository root.
pub const SECRETS_DIR: &str = "secrets";
/// Folder of swarmseal's own metadata, below the repository root.
pub const META_DIR: &str = ".swarmseal";

/// An opened repository: its root and its validated manifest.
pub struct Repo {
    pub root: PathBuf,
    pub manifest: Manifest,
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
    /// A symbolic link that leads out of the repository, or to a folder.
    Symlink { rel: PathBuf, why: String },
    /// A file or folder that cannot be read.
    Unreadable { rel: PathBuf, why: String },
    /// An age file under `secrets/` outside every environment's folder: never applied.
    Stray { rel: PathBuf },
}

impl Problem {
    /// The problem as a user-facing error.
    pub fn to_error(&self) -> Error {
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
            Problem::Symlink { rel, why } => Error::new(format!("{} is a symbolic link {why}", rel.display()))
                .hint("replace the link with the file itself; swarmseal never follows links out of the repository"),
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
            | Problem::Symlink { rel, .. }
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
                        "{} (and {} more problem(s); `swarmseal check` lists them all)",
                        err.message(),
                        self.problems.len() - 1
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
        let root = match dir {
            Some(dir) => {
                if !dir.join(MANIFEST_FILE).is_file() {
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
                    .find(|d| d.join(MANIFEST_FILE).is_file())
                    .map(Path::to_path_buf)
                    .ok_or_else(|| {
                        Error::new(format!(
                            "no {MANIFEST_FILE} in {} or any parent folder: this is not a swarmseal repository",
                            cwd.display()
                        ))
                        .hint("run the command inside a repository, pass -C DIR, or create one with `swarmseal init`")
                    })?
            }
        };
        Repo::open(&root)
    }

    /// Opens the repository rooted at `root`.
    pub fn open(root: &Path) -> Result<Repo> {
        let root = fs::canonicalize(root).map_err(|e| Error::io("open repository", root, e))?;
        let manifest = Manifest::load(&root.join(MANIFEST_FILE))?;
        Ok(Repo { root, manifest })
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

    /// Fails unless `path` (which may not exist yet) stays inside the repository once
    /// every existing symbolic link on the way is resolved.
    pub fn ensure_inside(&self, path: &Path) -> Result<()> {
        let mut existing = path;
        while !existing.exists() && fs::symlink_metadata(existing).is_err() {
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        let resolved = fs::canonicalize(existing).map_err(|e| Error::io("resolve", existing, e))?;
        if !resolved.starts_with(&self.root) {
            return Err(Error::new(format!(
                "{} leads out of the repository (to {})",
                self.rel(path).display(),
                resolved.display()
            ))
            .hint("replace the symbolic link with a real folder or file inside the repository"));
        }
        Ok(())
    }

    /// Walks `secrets/<env>/` and maps every file to a logical name.
    pub fn scan(&self, env: &str) -> Result<Scan> {
        let dir = self.env_dir(env);
        let mut scan = Scan::default();
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(scan);
        }
        self.ensure_inside(&dir)?;
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
            if !file_name.ends_with(".age") {
                if is_placeholder(&file_name, path) {
                    continue;
                }
                scan.problems.push(Problem::Plaintext { rel });
                continue;
            }
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

    /// The files below `dir` (folders for which `keep` is false are skipped), without
    /// following links: a link that leads out of the repository, to a folder, or nowhere
    /// comes back as a [`Problem`], like an entry that cannot be read.
    fn files_below<'a>(
        &'a self,
        dir: &'a Path,
        keep: impl FnMut(&walkdir::DirEntry) -> bool + 'a,
    ) -> impl Iterator<Item = std::result::Result<walkdir::DirEntry, Problem>> + 'a {
        walkdir::WalkDir::new(dir)
            .follow_links(false)
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
                        return Some(Err(Problem::Unreadable {
                            rel,
                            why: e.to_string(),
                        }));
                    }
                };
                if entry.file_type().is_dir() {
                    return None;
                }
                if entry.file_type().is_symlink() {
                    let rel = self.rel(entry.path());
                    let why = match fs::canonicalize(entry.path()) {
                        Ok(target) if !target.starts_with(&self.root) => {
                            format!("that leads out of the repository (to {})", target.display())
                        }
                        Ok(target) if target.is_dir() => {
                            "to a folder; swarmseal does not follow linked folders".into()
                        }
                        Ok(_) => return Some(Ok(entry)),
                        Err(_) => "whose target does not exist".into(),
                    };
                    return Some(Err(Problem::Symlink { rel, why }));
                }
                Some(Ok(entry))
            })
    }

    /// Files under `secrets/` outside the environments' folders: plaintext files there are
    /// leaks like anywhere else, and age files there belong to no environment.
    pub fn scan_outside_envs(&self) -> Result<Vec<Problem>> {
        let dir = self.root.join(SECRETS_DIR);
        let mut problems = Vec::new();
        if fs::symlink_metadata(&dir).is_err() {
            return Ok(problems);
        }
        self.ensure_inside(&dir)?;
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
            if is_placeholder(&name, entry.path()) {
                continue;
            }
            let is_age = name.ends_with(".age")
                && fs::read(entry.path())
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

    /// Reads a file of the repository, refusing links that lead out of it.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        self.ensure_inside(path)?;
        fs::read(path).map_err(|e| Error::io("read", &self.rel(path), e))
    }

    /// Writes a file of the repository atomically (see [`write_atomic`]), refusing paths
    /// that lead out of it.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.ensure_inside(path)?;
        write_atomic(path, bytes, 0o644).map_err(|e| e.context(self.rel(path).display()))
    }

    /// Removes a secret file and the sub-folders it leaves empty (up to the environment
    /// folder).
    pub fn remove(&self, env: &str, path: &Path) -> Result<()> {
        self.ensure_inside(path)?;
        fs::remove_file(path).map_err(|e| Error::io("remove", &self.rel(path), e))?;
        let stop = self.env_dir(env);
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == stop || !d.starts_with(&stop) || fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }
}

/// Empty `.gitkeep`/`.keep` files keep empty folders in git; they are not leaks.
fn is_placeholder(file_name: &str, path: &Path) -> bool {
    matches!(file_name, ".gitkeep" | ".keep")
        && fs::metadata(path).map(|m| m.len() == 0).unwrap_or(false)
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a
/// part: a temporary file in the same folder, fsync, rename, fsync of the folder.
/// Missing parent folders are created.
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
