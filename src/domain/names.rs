//! Names: logical secret names, their files, Swarm names, and scope names (project and
//! environment).
//!
//! A logical name is the path below `secrets/<env>/` without `.age`, with `/` turned into
//! `.` (`docs/design.md#names-and-labels`). A managed Swarm secret is named `<name>-<first 10 hex of fingerprint>`,
//! which must fit Docker's rule: at most 64 of `[a-zA-Z0-9_.-]`, alphanumeric at both ends.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Docker's limit on secret names.
pub const DOCKER_NAME_MAX: usize = 64;
/// `-` plus 10 hex digits of the fingerprint.
pub const VERSION_SUFFIX_LEN: usize = 11;
/// The longest logical name whose versioned Swarm name still fits Docker's limit.
pub const LOGICAL_NAME_MAX: usize = DOCKER_NAME_MAX - VERSION_SUFFIX_LEN;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Why a logical name is not valid, or `None` when it is.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "it contains {c:?}; names may use only letters, digits, '_', '.' and '-' (and '/' for sub-folders)"
        ));
    }
    let first = name.chars().next().unwrap_or('.');
    let last = name.chars().last().unwrap_or('.');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some("it must start and end with a letter or digit (Docker's rule)".into());
    }
    if name.contains("..") {
        return Some("it contains '..'".into());
    }
    if name.len() > LOGICAL_NAME_MAX {
        return Some(format!(
            "it is {} characters long; Swarm names are at most {DOCKER_NAME_MAX} characters and swarmseal adds an {VERSION_SUFFIX_LEN}-character version suffix, so logical names may have at most {LOGICAL_NAME_MAX}",
            name.len()
        ));
    }
    None
}

/// Validates a logical name as typed by a user (`set db_password`, `get tls/api.crt`).
/// Both `tls/api.crt` and `tls.api.crt` are accepted; the result is the logical name
/// (`tls.api.crt`) and the relative file path (`tls/api.crt.age`) it will be stored at.
///
/// One trailing `.age` is taken for the file's extension (`get tls/api.crt.age`); a secret
/// whose logical name itself ends in `.age` is found by [`exact_logical_name`] first.
pub fn parse_user_name(input: &str) -> Result<(String, PathBuf)> {
    let input = input.strip_suffix(".age").unwrap_or(input);
    let logical = input.replace('/', ".");
    if input.starts_with('/')
        || input
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(Error::new(format!(
            "invalid secret name {input:?}: it must be a relative name inside the environment folder, without empty, '.' or '..' parts"
        ))
        .with_kind(ErrorKind::Usage)
        .hint("use a name such as db_password or tls/api.crt"));
    }
    if let Some(problem) = name_problem(&logical) {
        return Err(
            Error::new(format!("invalid secret name {input:?}: {problem}"))
                .with_kind(ErrorKind::Usage)
                .hint("use a name such as db_password or tls/api.crt"),
        );
    }
    Ok((logical, PathBuf::from(format!("{input}.age"))))
}

/// The name as typed, read as a logical name as `ls` lists it (`backup.age` for the file
/// `backup.age.age`), when it is one.
pub fn exact_logical_name(input: &str) -> Option<String> {
    let logical = input.replace('/', ".");
    (!input.starts_with('/') && name_problem(&logical).is_none()).then_some(logical)
}

/// The logical name of a file, given its path relative to `secrets/<env>/`.
/// Returns an error for paths that are not `.age` files or have invalid parts.
pub fn logical_name(relative: &Path) -> std::result::Result<String, String> {
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => match part.to_str() {
                Some(s) => parts.push(s.to_string()),
                None => return Err("its path is not valid UTF-8".into()),
            },
            _ => return Err("its path is not a plain relative path".into()),
        }
    }
    let Some(last) = parts.pop() else {
        return Err("its path is empty".into());
    };
    let Some(stem) = last.strip_suffix(".age") else {
        return Err("it does not end in .age".into());
    };
    parts.push(stem.to_string());
    let name = parts.join(".");
    match name_problem(&name) {
        Some(problem) => Err(problem),
        None => Ok(name),
    }
}

/// The managed Swarm name of a version: `<name>-<first 10 hex of the fingerprint>`.
pub fn swarm_name(logical: &str, fingerprint_hex: &str) -> String {
    let short = &fingerprint_hex[..fingerprint_hex.len().min(VERSION_SUFFIX_LEN - 1)];
    format!("{logical}-{short}")
}

/// True when `name` looks like a version of `logical` (`<logical>-<10 hex>`).
pub fn is_version_name(name: &str, logical: &str) -> bool {
    name.strip_prefix(logical)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            hex.len() == VERSION_SUFFIX_LEN - 1 && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
}

/// The logical name a Swarm name is a version of (`db_password-0123456789` ->
/// `db_password`), if it has a version's form (see [`is_version_name`]).
pub fn logical_of_version(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(VERSION_SUFFIX_LEN)?;
    let logical = name.get(..cut)?;
    (!logical.is_empty() && is_version_name(name, logical)).then_some(logical)
}

/// Validates a project or environment name: it appears in folders, labels and lock
/// names, so it keeps to Docker's name alphabet and has no path separators.
pub fn check_scope_name(kind: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err(format!("the {kind} name is empty"));
    }
    if name.len() > 48 {
        return Err(format!(
            "the {kind} name {name:?} is longer than 48 characters"
        ));
    }
    let ok = name.chars().all(allowed)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok {
        return Err(format!(
            "the {kind} name {name:?} must use only letters, digits, '_', '.' and '-', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// The environment variable `exec` sets for a secret: `db_password` → `SWARMSEAL_DB_PASSWORD`, `tls.api.crt` → `SWARMSEAL_TLS_API_CRT`.
pub fn env_variable(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("SWARMSEAL_{upper}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_variable_names() {
        assert_eq!(env_variable("db_password"), "SWARMSEAL_DB_PASSWORD");
        assert_eq!(env_variable("tls.api-crt"), "SWARMSEAL_TLS_API_CRT");
    }

    use super::*;

    #[test]
    fn sub_folders_map_to_dots() {
        assert_eq!(
            logical_name(Path::new("tls/api.crt.age")).unwrap(),
            "tls.api.crt"
        );
        assert_eq!(
            logical_name(Path::new("db_password.age")).unwrap(),
            "db_password"
        );
        assert!(logical_name(Path::new("notes.txt")).is_err());
        assert!(logical_name(Path::new(".hidden.age")).is_err());
    }

    #[test]
    fn user_names() {
        let (name, path) = parse_user_name("tls/api.crt").unwrap();
        assert_eq!(name, "tls.api.crt");
        assert_eq!(path, PathBuf::from("tls/api.crt.age"));
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            "",
            "-x",
            "x-",
            "a b",
            "a/../b",
            "ä",
        ] {
            assert!(parse_user_name(bad).is_err(), "{bad:?} should be refused");
        }
        // One `.age` is the extension; the rest is the name.
        assert_eq!(
            parse_user_name("backup.age.age").unwrap(),
            ("backup.age".to_string(), PathBuf::from("backup.age.age"))
        );
        assert_eq!(parse_user_name("backup.age").unwrap().0, "backup");
        assert_eq!(
            exact_logical_name("backup.age").as_deref(),
            Some("backup.age")
        );
        let long = "a".repeat(LOGICAL_NAME_MAX + 1);
        assert!(parse_user_name(&long).is_err());
        assert!(parse_user_name(&"a".repeat(LOGICAL_NAME_MAX)).is_ok());
    }

    #[test]
    fn version_names_give_their_logical_name() {
        let n = swarm_name("db_password", &"0a".repeat(32));
        assert_eq!(logical_of_version(&n), Some("db_password"));
        assert_eq!(logical_of_version("a.b-0123456789"), Some("a.b"));
        for not in [
            "db-012345678g",
            "-0123456789",
            "0123456789",
            "db_0123456789",
            "db",
        ] {
            assert_eq!(logical_of_version(not), None, "{not}");
        }
    }

    #[test]
    fn swarm_names_fit_docker() {
        let n = swarm_name(&"a".repeat(LOGICAL_NAME_MAX), &"f".repeat(64));
        assert_eq!(n.len(), DOCKER_NAME_MAX);
        assert!(n.ends_with("-ffffffffff"));
    }
}
