//! What every command resolves once: the repository, the environment(s), identities
//! (loaded lazily, at most once, so that a passphrase is asked for once), and the output
//! settings. Commands receive a [`Context`] instead of the raw options.

use std::cell::OnceCell;
use std::path::Path;

use crate::cli::args::Global;
use crate::cli::output::{self, Format};
use crate::crypto::{self, Identities};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::Repo;

pub struct Context {
    pub global: Global,
    repo: OnceCell<Repo>,
    identities: OnceCell<Option<Identities>>,
}

impl Context {
    pub fn new(global: Global) -> Context {
        Context {
            global,
            repo: OnceCell::new(),
            identities: OnceCell::new(),
        }
    }

    /// The repository named by `-C`, or the nearest one (opened once).
    pub fn repo(&self) -> Result<&Repo> {
        if let Some(repo) = self.repo.get() {
            return Ok(repo);
        }
        let repo = Repo::discover(self.global.repo.as_deref())?;
        repo.on_lock_wait(output::warn);
        Ok(self.repo.get_or_init(|| repo))
    }

    /// The environment to work on: `-e`, else the only one.
    pub fn env(&self) -> Result<String> {
        select_env(&self.global, self.repo()?)
    }

    /// The environments a repository-wide command covers: those given with `-e`, else all.
    pub fn envs(&self) -> Result<Vec<String>> {
        selected_envs(&self.global, self.repo()?)
    }

    /// The identities, if any source provides them (loaded once; warnings printed once).
    pub fn identities(&self) -> Result<Option<&Identities>> {
        if let Some(ids) = self.identities.get() {
            return Ok(ids.as_ref());
        }
        let mut ids = Identities::load(&self.global.identity)?;
        for warning in ids.iter_mut().flat_map(Identities::take_warnings) {
            output::warn(&warning);
        }
        Ok(self.identities.get_or_init(|| ids).as_ref())
    }

    /// The identities, or an error explaining how to provide one.
    pub fn require_identities(&self, why: &str) -> Result<&Identities> {
        self.identities()?
            .ok_or_else(|| Identities::missing_error(why))
    }

    /// Output format of reports (`--format`).
    pub fn format(&self) -> Format {
        self.global.format
    }

    /// Prints a line of progress on standard error unless `-q`.
    pub fn say(&self, message: impl AsRef<str>) {
        if !self.global.quiet {
            output::errln!("{}", message.as_ref());
        }
    }

    /// Prints warnings the library returned.
    pub fn warn_all(&self, warnings: &[String]) {
        for warning in warnings {
            output::warn(warning);
        }
    }
}

/// The environment to work on: `-e`, else the only one.
fn select_env(g: &Global, repo: &Repo) -> Result<String> {
    match g.env.as_slice() {
        [env] => {
            repo.manifest.environment(env)?;
            Ok(env.clone())
        }
        [] => {
            let envs: Vec<&String> = repo.manifest.environments.keys().collect();
            match envs.as_slice() {
                [only] => Ok((*only).clone()),
                _ => Err(Error::new(format!(
                    "{} has {} environments ({}); this command works on one",
                    repo.manifest_path().display(),
                    envs.len(),
                    envs.iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_kind(ErrorKind::Usage)
                .hint("choose one with -e NAME")),
            }
        }
        several => Err(Error::new(format!(
            "this command works on one environment, but -e was given {} times ({})",
            several.len(),
            several.join(", ")
        ))
        .with_kind(ErrorKind::Usage)
        .hint("pass -e once")),
    }
}

/// The environments a repository-wide command covers: those given with `-e`, else all.
fn selected_envs(g: &Global, repo: &Repo) -> Result<Vec<String>> {
    if g.env.is_empty() {
        return Ok(repo.manifest.environments.keys().cloned().collect());
    }
    for env in &g.env {
        repo.manifest.environment(env)?;
    }
    Ok(g.env.clone())
}

/// Writes a new identity to `path` (mode 0600, in a 0700 folder when it creates one);
/// never overwrites. Returns the public key. Used by `keygen` and `init`.
pub fn write_identity(path: &Path) -> Result<String> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::new(format!("{} already exists; swarmseal never overwrites an identity", path.display()))
            .hint("choose another file with -o FILE, or remove the old one if you are sure it is no longer needed"));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io("create folder", parent, e))?;
    }
    let (text, public) = crypto::generate_identity();
    crate::repo::write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(public)
}
