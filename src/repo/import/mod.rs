//! `swarmseal import`: plaintext secrets brought under management, from the top-level
//! `file:` secrets and configs of a compose file ([`compose`], which also rewrites the file
//! to use them) or the variables of a dotenv file ([`dotenv`]).
//!
//! Everything is read and checked before anything is written: every file exists, is
//! readable and holds 1 to 511,999 bytes (configs: 1,023,999), every name is valid and
//! distinct (also as the variable `exec` passes), and nothing is overwritten without
//! `--force`. Then the secret files and the index are written in one
//! [`crate::repo::Transaction`], then each config ([`crate::repo::configs::store_config`]),
//! and only then is the compose file replaced (a temporary file renamed into place).

pub mod compose;
pub mod dotenv;

mod store;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crypto::{self, Identities, Plaintext, MAX_VALUE_LEN};
use crate::domain::names;
use crate::error::{Error, Result};
use crate::repo::{configs, LockMode, Repo};

/// Whether an imported value becomes a secret or a config.
pub use crate::domain::state::Kind;

/// One value to store.
pub struct Item {
    pub kind: Kind,
    /// The logical name it is stored under.
    pub name: String,
    /// What the source calls it: the compose key or the dotenv variable.
    pub key: String,
    /// The plaintext file it was read from (compose entries), to be deleted afterwards.
    pub file: Option<PathBuf>,
    pub value: Plaintext,
}

/// What storing an item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new file.
    Created,
    /// An existing file overwritten (`--force`).
    Updated,
    /// `--force`, but the file already held this value for the current recipients.
    Unchanged,
}

/// One item as stored, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub kind: Kind,
    pub name: String,
    /// The compose key or dotenv variable it came from.
    pub key: String,
    /// The plaintext file it was read from (compose entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The file written in the repository, relative to its root.
    pub path: PathBuf,
    pub action: Action,
    pub bytes: usize,
    /// The variable `swarmseal exec` sets to its current Swarm name.
    pub variable: String,
}

/// The variable `swarmseal exec` sets to the current Swarm name of a secret
/// (`SWARMSEAL_<NAME>`) or a config (`SWARMSEAL_CONFIG_<NAME>`), as exec names them.
pub fn variable(kind: Kind, name: &str) -> String {
    kind.exec_variable(name)
}

/// The logical name of a compose key or dotenv variable: characters a name cannot hold
/// become `_`, leading and trailing characters that are not letters or digits are dropped,
/// and with `lowercase` letters are lowercased (dotenv's `DB_PASSWORD` → `db_password`).
/// `Err` says why no valid name results.
pub fn map_name(key: &str, lowercase: bool) -> std::result::Result<String, String> {
    let mapped: String = key
        .chars()
        .map(|c| match c {
            c if c.is_ascii_alphanumeric() && lowercase => c.to_ascii_lowercase(),
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') => c,
            '.' => '.',
            _ => '_',
        })
        .collect();
    let mapped = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let mut name = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        // `..` is refused in names (it reads as a parent folder): keep one dot.
        if !(c == '.' && name.ends_with('.')) {
            name.push(c);
        }
    }
    match names::name_problem(&name) {
        None => Ok(name),
        Some(_) if name.is_empty() => Err("it has no letter or digit".into()),
        Some(problem) => Err(problem),
    }
}

/// Refuses two keys that map to one name of one kind, or to one variable of `exec`.
/// `keys` are (kind, key, name); `what` names the source in messages.
pub fn check_distinct(keys: &[(Kind, &str, &str)], what: &str) -> Result<()> {
    let mut by_name: BTreeMap<(Kind, &str), &str> = BTreeMap::new();
    let mut by_variable: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for (kind, key, name) in keys {
        if let Some(other) = by_name.insert((*kind, name), key) {
            return Err(Error::new(format!(
                "{what}: {other} and {key} would both be stored as {} {name}",
                kind.as_str()
            ))
            .hint(format!(
                "rename one of them in {what}, then run the import again; nothing was stored"
            )));
        }
        let variable = variable(*kind, name);
        if let Some((other_key, other)) = by_variable.insert(variable.clone(), (key, name)) {
            return Err(Error::new(format!(
                "{what}: {other_key} and {key} would be stored as {other} and {name}, which `swarmseal exec` would both pass as {variable}"
            ))
            .hint(format!(
                "rename one of them in {what}, then run the import again; nothing was stored"
            )));
        }
    }
    Ok(())
}

/// Largest dotenv file read.
pub const MAX_DOTENV_FILE: usize = 4 << 20;

/// What `import compose` did (`--format json` prints it as it is).
#[derive(Debug, Serialize)]
pub struct ComposeImport {
    pub format_version: u32,
    pub environment: String,
    /// The compose file, as named on the command line; rewritten in place.
    pub compose_file: PathBuf,
    pub imported: Vec<Stored>,
    /// Entries without `file:`, left as they are.
    pub skipped: Vec<compose::Skipped>,
    /// The plaintext files of the secrets now stored in the repository: to delete.
    pub delete: Vec<PathBuf>,
}

/// Stores the top-level `file:` secrets of the compose file at `path` in `env`, then
/// rewrites their entries to `external: true` and `name: ${SWARMSEAL_<NAME>}`. Everything
/// is checked first; nothing is written when anything is wrong. `ids` (given with
/// `force`) tell unchanged values from changed ones.
pub fn import_compose(
    repo: &Repo,
    ids: Option<&Identities>,
    env: &str,
    path: &Path,
    force: bool,
) -> Result<ComposeImport> {
    let bytes = read_file(path, compose::MAX_COMPOSE_FILE, "the compose file")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        Error::new(format!("{} is not UTF-8 text", path.display()))
            .hint("pass the compose file that `docker stack deploy -c FILE` reads")
    })?;
    let found = compose::entries(text, path)?;
    if found.files.is_empty() {
        return Err(nothing_in_compose(path, &found.skipped));
    }
    let mut names = Vec::new();
    for entry in &found.files {
        names.push(map_name(&entry.key, false).map_err(|why| {
            Error::new(format!(
                "{}:{}: {} entry {} cannot be a secret name: {why}",
                path.display(),
                entry.line,
                entry.kind.as_str(),
                entry.key
            ))
            .hint("rename the entry (and the services' references to it), then run the import again; nothing was stored")
        })?);
    }
    let keys: Vec<(Kind, &str, &str)> = found
        .files
        .iter()
        .zip(&names)
        .map(|(e, n)| (e.kind, e.key.as_str(), n.as_str()))
        .collect();
    check_distinct(&keys, &path.display().to_string())?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut items = Vec::new();
    for (entry, name) in found.files.iter().zip(names) {
        items.push(read_entry(dir, path, entry, name)?);
    }
    let targets: Vec<(&compose::FileEntry, String)> = found
        .files
        .iter()
        .zip(&items)
        .map(|(e, i)| (e, variable(i.kind, &i.name)))
        .collect();
    let new_text = compose::rewrite(text, path, &targets)?;
    let staged = StagedFile::new(path, new_text.as_bytes())?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let imported = store::store(repo, ids, env, &items, force, path)?;
    staged.persist().map_err(|e| {
        e.context("the secrets were stored, but the compose file could not be replaced")
            .hint(format!(
                "fix the cause, then run the import again with --force (the values are unchanged, so nothing new is written), or edit {} by hand",
                path.display()
            ))
    })?;
    let mut delete: Vec<PathBuf> = Vec::new();
    for file in items
        .iter()
        .filter(|i| i.kind == Kind::Secret)
        .filter_map(|i| i.file.as_ref())
    {
        if !delete.contains(file) {
            delete.push(file.clone());
        }
    }
    Ok(ComposeImport {
        format_version: 1,
        environment: env.to_string(),
        compose_file: path.to_path_buf(),
        imported,
        skipped: found.skipped,
        delete,
    })
}

/// The error for a compose file with nothing to import.
fn nothing_in_compose(path: &Path, skipped: &[compose::Skipped]) -> Error {
    let hint = if skipped.is_empty() {
        "import a compose file whose top-level secrets: entries have file: PATH".to_string()
    } else {
        let list: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} ({})", s.key, s.reason))
            .collect();
        format!(
            "entries left as they are: {}; only file: entries are imported",
            list.join(", ")
        )
    };
    Error::new(format!(
        "{}: no top-level secrets: entry has file:, so there is nothing to import",
        path.display()
    ))
    .hint(hint)
}

/// Reads the plaintext file of a compose entry.
fn read_entry(
    dir: &Path,
    compose: &Path,
    entry: &compose::FileEntry,
    name: String,
) -> Result<Item> {
    let file = compose::resolve(dir, &entry.file);
    let what = format!(
        "{} entry {} ({}:{})",
        entry.kind.as_str(),
        entry.key,
        compose.display(),
        entry.line
    );
    let fix = format!(
        "fix file: of entry {} in {}, then run the import again; nothing was stored",
        entry.key,
        compose.display()
    );
    let (limit, file_kind) = match entry.kind {
        Kind::Secret => (MAX_VALUE_LEN, "a secret file"),
        Kind::Config => (configs::MAX_CONFIG_BYTES, "a config file"),
    };
    let value =
        read_file(&file, limit, file_kind).map_err(|e| e.context(&what).hint(fix.clone()))?;
    if value.is_empty() {
        return Err(Error::new(format!(
            "{what}: {} is empty, and a Docker {} holds 1 to {} bytes",
            file.display(),
            entry.kind.as_str(),
            crate::domain::text::number(limit)
        ))
        .hint(fix));
    }
    Ok(Item {
        kind: entry.kind,
        name,
        key: entry.key.clone(),
        file: Some(file),
        value,
    })
}

/// What `import dotenv` did (`--format json` prints it as it is).
#[derive(Debug, Serialize)]
pub struct DotenvImport {
    pub format_version: u32,
    pub environment: String,
    /// The dotenv file, as named on the command line: to delete.
    pub dotenv_file: PathBuf,
    pub imported: Vec<Stored>,
    /// Values stored literally that a shell or `docker compose` would have expanded.
    pub warnings: Vec<String>,
}

/// Stores one secret per variable of the dotenv file at `path` in `env` (names lowercased,
/// see [`map_name`]). Everything is checked first; nothing is written when anything is
/// wrong.
pub fn import_dotenv(
    repo: &Repo,
    ids: Option<&Identities>,
    env: &str,
    path: &Path,
    force: bool,
) -> Result<DotenvImport> {
    let bytes = read_file(path, MAX_DOTENV_FILE, "the dotenv file")?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
        Error::new(format!("{}:{line}: not UTF-8 text", path.display()))
            .hint("write the dotenv file as UTF-8 text, or store binary values with `swarmseal set NAME --file FILE`; nothing was stored")
    })?;
    let vars = dotenv::parse(text, path)?;
    if vars.is_empty() {
        return Err(Error::new(format!(
            "{} has no KEY=VALUE line, so there is nothing to import",
            path.display()
        ))
        .hint("pass a dotenv file (KEY=VALUE lines)"));
    }
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    for var in vars {
        let name = map_name(&var.key, true).map_err(|why| {
            Error::new(format!(
                "{}:{}: variable {} cannot be a secret name: {why}",
                path.display(),
                var.line,
                var.key
            ))
            .hint("rename the variable, then run the import again; nothing was stored")
        })?;
        if var.has_dollar {
            warnings.push(format!(
                "the value of {} has a $, stored as it is (swarmseal expands no variables); if it relied on expansion, store the expanded value with `swarmseal -e {env} set {name}`",
                var.key
            ));
        }
        items.push(Item {
            kind: Kind::Secret,
            name,
            key: var.key,
            file: None,
            value: var.value,
        });
    }
    let keys: Vec<(Kind, &str, &str)> = items
        .iter()
        .map(|i| (i.kind, i.key.as_str(), i.name.as_str()))
        .collect();
    check_distinct(&keys, &path.display().to_string())?;
    let _lock = repo.lock(LockMode::Exclusive)?;
    let imported = store::store(repo, ids, env, &items, force, path)?;
    Ok(DotenvImport {
        format_version: 1,
        environment: env.to_string(),
        dotenv_file: path.to_path_buf(),
        imported,
        warnings,
    })
}

/// Reads a regular file the user named (following links: it is theirs), at most `limit`
/// bytes, into wiped memory. `what` names it in messages.
fn read_file(path: &Path, limit: usize, what: &str) -> Result<Plaintext> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::io("read", path, e).hint(format!("check the path of {what}")))?;
    if !meta.is_file() {
        return Err(
            Error::new(format!("{} is not a regular file", path.display()))
                .hint(format!("pass {what}")),
        );
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io("read", path, e))?;
    crypto::read_limited(BufReader::new(file), limit)
        .map_err(|e| Error::io("read", path, e))?
        .ok_or_else(|| {
            Error::new(format!(
                "{} is larger than {} bytes, the limit for {what}",
                path.display(),
                crate::domain::text::number(limit)
            ))
            .hint(format!(
                "pass {what} of at most {} bytes",
                crate::domain::text::number(limit)
            ))
        })
}

/// A new content for a file outside the repository, written to a temporary file beside
/// it (with the file's mode) and renamed into place by [`StagedFile::persist`]. A link is
/// followed: the file it points to is replaced, and the link stays.
struct StagedFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl StagedFile {
    fn new(path: &Path, bytes: &[u8]) -> Result<StagedFile> {
        use std::os::unix::fs::PermissionsExt;
        let fail = |e: std::io::Error| {
            Error::io("write", path, e)
                .hint("check that the folder is writable; nothing was stored or changed")
        };
        let dest = std::fs::canonicalize(path).map_err(fail)?;
        let mode = std::fs::metadata(&dest).map_err(fail)?.permissions().mode() & 0o7777;
        let parent = dest.parent().unwrap_or(Path::new("/"));
        let mut tmp = tempfile::Builder::new()
            .prefix(".swarmseal-tmp-")
            .tempfile_in(parent)
            .map_err(fail)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(fail)?;
        tmp.write_all(bytes).map_err(fail)?;
        tmp.as_file().sync_all().map_err(fail)?;
        Ok(StagedFile { tmp, dest })
    }

    fn persist(self) -> Result<()> {
        let dest = self.dest;
        self.tmp
            .persist(&dest)
            .map_err(|e| Error::io("replace", &dest, e.error))?;
        if let Some(dir) = dest.parent().and_then(|d| std::fs::File::open(d).ok()) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_valid_logical_names() {
        assert_eq!(map_name("DB_PASSWORD", true).unwrap(), "db_password");
        assert_eq!(map_name("db_password", false).unwrap(), "db_password");
        assert_eq!(map_name("Api.Key", false).unwrap(), "Api.Key");
        assert_eq!(map_name("my secret!", false).unwrap(), "my_secret");
        assert_eq!(map_name("_private_", true).unwrap(), "private");
        assert_eq!(map_name("a..b", false).unwrap(), "a.b");
        assert_eq!(map_name("tls/api.crt", false).unwrap(), "tls_api.crt");
        assert!(map_name("__", true).is_err());
        assert!(map_name(&"a".repeat(60), true).is_err());
    }

    #[test]
    fn collisions_name_both_keys() {
        let err = check_distinct(
            &[
                (Kind::Secret, "DB_PASSWORD", "db_password"),
                (Kind::Secret, "db_password", "db_password"),
            ],
            ".env",
        )
        .unwrap_err();
        assert!(err.message().contains("DB_PASSWORD and db_password"));
        let err = check_distinct(
            &[
                (Kind::Secret, "db-password", "db-password"),
                (Kind::Secret, "db_password", "db_password"),
            ],
            "compose.yml",
        )
        .unwrap_err();
        assert!(err.message().contains("SWARMSEAL_DB_PASSWORD"));
        check_distinct(
            &[(Kind::Secret, "app", "app"), (Kind::Config, "app", "app")],
            "compose.yml",
        )
        .unwrap();
    }
}
