//! Generated values (SPEC §5): `swarmseal rotate NAME...` draws new values for secrets whose
//! manifest settings have `generate: { length, charset }`, and `rotate --due` for those of
//! them older than their `rotate_after`. Also how old a value is against its limit
//! ([`age`]), which `check` reports and `rotate --due` acts on.
//!
//! A rotation only writes the repository, through the store `set` uses
//! ([`secrets::write_encrypted`], the index last, one [`crate::repo::Transaction`]): every
//! value of one command is written, or none. Encrypting needs only the recipients' public
//! keys, so rotating needs no identity. What was rotated reaches the Swarm when it is
//! committed, planned and applied.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::crypto::value;
use crate::error::{Error, ErrorKind, Result};
use crate::repo::index::{self, Index, Record};
use crate::repo::manifest::{Generate, MANIFEST_FILE};
use crate::repo::secrets::{self, Target};
use crate::repo::{LockMode, Repo};

/// How far ahead of this machine's clock a change date may be before it is not believed.
const CLOCK_SKEW: Duration = Duration::from_secs(86400);

/// How a value's last change stands against its rotation limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Changed within the limit.
    Fresh,
    /// Changed longer ago than the limit: this long ago.
    Overdue(Duration),
    /// The index records no change date (no record, or a file written by other tools).
    Unknown,
    /// The index records something that is not a date, or a date more than a day ahead
    /// (`future`): either would switch the limit off, so it cannot be checked.
    Untrusted { future: bool },
}

impl Age {
    /// Whether the value is due for rotation: older than its limit, or of an age that
    /// cannot be shown to be within it.
    pub fn is_due(self) -> bool {
        self != Age::Fresh
    }
}

/// How the value recorded by `record` stands against `limit` at `now`.
pub fn age(record: Option<&Record>, limit: Duration, now: SystemTime) -> Age {
    let Some(stamp) = record.and_then(|r| r.changed.as_deref()) else {
        return Age::Unknown;
    };
    let Ok(changed) = humantime::parse_rfc3339(stamp) else {
        return Age::Untrusted { future: false };
    };
    match now.duration_since(changed) {
        Ok(age) if age > limit => Age::Overdue(age),
        Ok(_) => Age::Fresh,
        // A little clock skew between machines is no reason to distrust a date.
        Err(ahead) if ahead.duration() > CLOCK_SKEW => Age::Untrusted { future: true },
        Err(_) => Age::Fresh,
    }
}

/// A value `rotate` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub env: String,
    pub name: String,
    /// The secret's file, relative to the repository root.
    pub rel: PathBuf,
    /// The environment had no file for the secret yet (`rotate NAME` only).
    pub created: bool,
    pub generate: Generate,
    /// How the value it replaced stood against `rotate_after` (`--due` only).
    pub age: Option<Age>,
}

/// A secret due for rotation that `rotate --due` cannot regenerate: its settings have no
/// `generate:`. A person sets its next value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotGenerated {
    pub env: String,
    pub name: String,
    pub rel: PathBuf,
    pub age: Age,
}

/// What `rotate --due` did, and what it left to a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueRotation {
    pub rotated: Vec<Rotated>,
    pub not_generated: Vec<NotGenerated>,
}

/// `rotate NAME...`: a new value for each named secret of `env`, as its `generate:` says;
/// every name must have one (the error names those that do not). All or nothing.
pub fn rotate_named(repo: &Repo, env: &str, inputs: &[String]) -> Result<Vec<Rotated>> {
    let _lock = repo.lock(LockMode::Exclusive)?;
    let jobs = named_jobs(repo, env, inputs)?;
    let mut index = repo.load_index()?;
    index::prune(repo, &mut index, &[env])?;
    write_all(repo, &mut index, &jobs)?;
    Ok(jobs)
}

/// `rotate --due`: a new value for every generated secret of `envs` whose value is due
/// ([`Age::is_due`] against its `rotate_after`); the due secrets without `generate:` are
/// listed, not changed. All or nothing.
pub fn rotate_due(repo: &Repo, envs: &[String]) -> Result<DueRotation> {
    let _lock = repo.lock(LockMode::Exclusive)?;
    let mut index = repo.load_index()?;
    let now = SystemTime::now();
    let mut due = DueRotation::default();
    for env in envs {
        due_in(repo, env, &index, now, &mut due)?;
    }
    if !due.rotated.is_empty() {
        let names: Vec<&str> = envs.iter().map(String::as_str).collect();
        index::prune(repo, &mut index, &names)?;
        write_all(repo, &mut index, &due.rotated)?;
    }
    Ok(due)
}

/// The secrets of `env` with a `rotate_after` whose value is due, into `due`.
fn due_in(
    repo: &Repo,
    env: &str,
    index: &Index,
    now: SystemTime,
    due: &mut DueRotation,
) -> Result<()> {
    let scan = repo.scan(env)?;
    for (name, file) in &scan.secrets {
        let Some(settings) = repo.manifest.settings(name) else {
            continue;
        };
        let Some(limit) = settings.rotate_after else {
            continue;
        };
        let age = age(index.record(env, name), limit, now);
        if !age.is_due() {
            continue;
        }
        let (env, name, rel) = (env.to_string(), name.clone(), file.rel.clone());
        match settings.generate {
            Some(generate) => due.rotated.push(Rotated {
                env,
                name,
                rel,
                created: false,
                generate,
                age: Some(age),
            }),
            None => due.not_generated.push(NotGenerated {
                env,
                name,
                rel,
                age,
            }),
        }
    }
    Ok(())
}

/// What `rotate NAME...` is to write: each name once. Unknown names and names without
/// `generate:` fail before anything is written.
fn named_jobs(repo: &Repo, env: &str, inputs: &[String]) -> Result<Vec<Rotated>> {
    let several = inputs.len() > 1;
    let mut jobs: Vec<Rotated> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for input in inputs {
        let (name, path, exists) =
            secrets::secret_target(repo, env, input).map_err(|e| nothing_rotated(e, several))?;
        if jobs.iter().any(|j| j.name == name) || plain.contains(&name) {
            continue;
        }
        let settings = repo.manifest.settings(&name);
        match settings.and_then(|s| s.generate) {
            Some(generate) => jobs.push(Rotated {
                env: env.to_string(),
                rel: repo.rel(&path),
                name,
                created: !exists,
                generate,
                age: None,
            }),
            None if exists || settings.is_some() => plain.push(name),
            None => {
                let err = unknown_name(repo, env, &name, &path);
                return Err(nothing_rotated(err, several));
            }
        }
    }
    if !plain.is_empty() {
        return Err(not_generated_error(env, &plain));
    }
    Ok(jobs)
}

/// Encrypts a new value for every job and writes them with the index, all or none.
fn write_all(repo: &Repo, index: &mut Index, jobs: &[Rotated]) -> Result<()> {
    let changed = index::now_stamp();
    let mut tx = repo.transaction();
    for job in jobs {
        // Wiped when dropped, once encrypted.
        let value = value::generate(job.generate.length, job.generate.charset)?;
        let path = repo.root.join(&job.rel);
        let target = Target::Secret {
            name: &job.name,
            path: &path,
        };
        let stamp = Some(changed.clone());
        secrets::write_encrypted(repo, &mut tx, index, &job.env, target, &value, stamp)?;
    }
    secrets::stage_index(repo, &mut tx, index)?;
    tx.commit()
}

/// `err`, saying that nothing was rotated when several names were given.
fn nothing_rotated(err: Error, several: bool) -> Error {
    if !several {
        return err;
    }
    let hint = err.hint_text().unwrap_or_default().to_string();
    err.hint(format!("nothing was rotated; {hint}"))
}

/// The error for a name with neither a file in `env` nor settings in the manifest.
fn unknown_name(repo: &Repo, env: &str, name: &str, path: &Path) -> Error {
    let generated: Vec<&str> = repo
        .manifest
        .secrets
        .iter()
        .filter(|(_, s)| s.generate.is_some())
        .map(|(n, _)| n.as_str())
        .collect();
    let known = if generated.is_empty() {
        format!("{MANIFEST_FILE} has none yet")
    } else {
        format!("generated secrets: {}", generated.join(", "))
    };
    Error::new(format!(
        "secret {name:?} not found in environment {env:?} (no {}), and {MANIFEST_FILE} has no settings for it",
        repo.rel(path).display()
    ))
    .with_kind(ErrorKind::NotFound)
    .hint(format!(
        "rotate regenerates secrets whose settings in {MANIFEST_FILE} have `generate:` ({known}); check the name, or add `{name}: {{ generate: {{ length: 32, charset: alnum }} }}` under `secrets:` to have rotate create it"
    ))
}

/// The error for names whose settings have no `generate:`.
fn not_generated_error(env: &str, names: &[String]) -> Error {
    let (subject, has, it) = match names {
        [one] => (one.clone(), "has", "it"),
        [rest @ .., last] => (format!("{} and {last}", rest.join(", ")), "have", "them"),
        [] => (String::new(), "have", "them"),
    };
    let set = names
        .iter()
        .map(|n| format!("`swarmseal -e {env} set {n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Error::new(format!(
        "{subject} {has} no `generate:` in {MANIFEST_FILE}, so rotate cannot regenerate {it}; nothing was rotated"
    ))
    .with_kind(ErrorKind::Usage)
    .hint(format!(
        "to have rotate generate {it}, add e.g. `generate: {{ length: 32, charset: alnum }}` to {} settings under `secrets:` in {MANIFEST_FILE}; or set a new value yourself: {set}",
        if names.len() == 1 { "its" } else { "their" }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(changed: Option<&str>) -> Record {
        Record {
            file: "0".repeat(64),
            recipients: Vec::new(),
            changed: changed.map(str::to_string),
        }
    }

    #[test]
    fn age_compares_the_change_date_with_the_limit() {
        let now = humantime::parse_rfc3339("2026-06-01T00:00:00Z").unwrap();
        let day = Duration::from_secs(86400);
        let at = |stamp: &str, limit: Duration| age(Some(&record(Some(stamp))), limit, now);
        assert_eq!(at("2026-05-25T00:00:00Z", 30 * day), Age::Fresh);
        assert_eq!(at("2026-05-01T00:00:00Z", 30 * day), Age::Overdue(31 * day));
        // Exactly at the limit is not over it.
        assert_eq!(at("2026-05-02T00:00:00Z", 30 * day), Age::Fresh);
        // Skew of less than a day is tolerated; more is not believed.
        assert_eq!(at("2026-06-01T12:00:00Z", day), Age::Fresh);
        assert_eq!(
            at("2026-06-03T00:00:00Z", day),
            Age::Untrusted { future: true }
        );
        assert_eq!(at("last week", day), Age::Untrusted { future: false });
        assert_eq!(age(Some(&record(None)), day, now), Age::Unknown);
        assert_eq!(age(None, day, now), Age::Unknown);
        assert!(!Age::Fresh.is_due());
        for due in [
            Age::Overdue(day),
            Age::Unknown,
            Age::Untrusted { future: true },
        ] {
            assert!(due.is_due(), "{due:?}");
        }
    }

    #[test]
    fn errors_name_the_secrets_and_how_to_generate_them() {
        let one = not_generated_error("prod", &["db".into()]);
        assert!(one.message().starts_with("db has no `generate:`"));
        let hint = one.hint_text().unwrap();
        assert!(hint.contains("generate: { length: 32, charset: alnum }"));
        assert!(hint.contains("`swarmseal -e prod set db`"));
        let two = not_generated_error("prod", &["a".into(), "b".into()]);
        assert!(two.message().starts_with("a and b have no"), "{two}");
        let three = not_generated_error("prod", &["a".into(), "b".into(), "c".into()]);
        assert!(three.message().starts_with("a, b and c have no"), "{three}");
        assert!(two.hint_text().unwrap().contains("their settings"));
    }
}
