//! Storing imported values: every secret file and the index in one transaction, then each
//! config through [`configs::store_config`] (plain files, `configs/<env>/<name>`).

use std::path::{Path, PathBuf};

use super::{variable, Action, Item, Kind, Stored};
use crate::crypto::{Identities, ScopeKind};
use crate::domain::names;
use crate::error::{Error, Result};
use crate::repo::configs;
use crate::repo::index;
use crate::repo::secrets::{self, RecipientState, Target};
use crate::repo::{Repo, Scan};

/// Where each item goes: its file, and whether one exists already.
struct Destination {
    path: PathBuf,
    exists: bool,
}

/// Finds each item's file, refusing names that clash with the environment's secrets and
/// configs: an existing one without `force`, or another with the same `exec` variable.
/// `source` names the imported file in messages.
fn destinations(
    repo: &Repo,
    env: &str,
    items: &[Item],
    force: bool,
    source: &Path,
) -> Result<Vec<Destination>> {
    let secrets = repo.scan(env)?;
    let configs = repo.scan_configs(env)?;
    let scan_of = |kind| match kind {
        Kind::Secret => &secrets,
        Kind::Config => &configs,
    };
    let mut out = Vec::new();
    let mut existing = Vec::new();
    for item in items {
        check_variable(
            env,
            item,
            [(Kind::Secret, &secrets), (Kind::Config, &configs)],
            source,
        )?;
        match scan_of(item.kind).secrets.get(&item.name) {
            Some(file) => {
                existing.push(format!(
                    "{} {} ({})",
                    item.kind.as_str(),
                    item.name,
                    file.rel.display()
                ));
                out.push(Destination {
                    path: file.path.clone(),
                    exists: true,
                });
            }
            None => {
                let (_, rel) = names::parse_user_name(&item.name)?;
                let path = match item.kind {
                    Kind::Secret => repo.secret_path(env, &rel),
                    Kind::Config => repo.config_dir(env).join(rel.with_extension("")),
                };
                out.push(Destination {
                    path,
                    exists: false,
                });
            }
        }
    }
    if !existing.is_empty() && !force {
        return Err(Error::new(format!(
            "environment {env} already has {}; import never overwrites without --force",
            existing.join(", ")
        ))
        .hint(format!(
            "pass --force to replace them with the values from {}, or rename the entries there; nothing was stored",
            source.display()
        )));
    }
    Ok(out)
}

/// Refuses an item whose `exec` variable is already another secret's or config's.
fn check_variable(env: &str, item: &Item, scans: [(Kind, &Scan); 2], source: &Path) -> Result<()> {
    let wanted = variable(item.kind, &item.name);
    for (kind, scan) in scans {
        let clash = scan.secrets.keys().find(|n| {
            (kind, n.as_str()) != (item.kind, item.name.as_str()) && variable(kind, n) == wanted
        });
        if let Some(other) = clash {
            return Err(Error::new(format!(
                "{}: {} would be stored as {} {}, but {} {other} of environment {env} is already passed by `swarmseal exec` as {wanted}",
                source.display(), item.key, item.kind.as_str(), item.name, kind.as_str()
            ))
            .hint(format!("rename {} in {}, or remove {other}, then run the import again; nothing was stored", item.key, source.display())));
        }
    }
    Ok(())
}

/// Stores every item, after checking them all: the secrets in one transaction (files and
/// the index together), then each config. `ids`, when given, tell an unchanged secret from
/// a changed one (`--force`), so that its change date (for `rotate_after`) is kept. The
/// caller holds the repository lock.
pub(super) fn store(
    repo: &Repo,
    ids: Option<&Identities>,
    env: &str,
    items: &[Item],
    force: bool,
    source: &Path,
) -> Result<Vec<Stored>> {
    let dests = destinations(repo, env, items, force, source)?;
    let mut index = repo.load_index()?;
    index::prune(repo, &mut index, &[env])?;
    let mut tx = repo.transaction();
    let mut actions = Vec::new();
    for (item, dest) in items.iter().zip(&dests) {
        if item.kind == Kind::Config {
            actions.push(Action::Created);
            continue;
        }
        let old = index.record(env, &item.name).cloned();
        let (action, changed) = match (dest.exists, ids) {
            (false, _) => (Action::Created, Some(index::now_stamp())),
            (true, Some(ids)) => compare_existing(repo, ids, env, &dest.path, item, old.as_ref())?,
            (true, None) => (Action::Updated, Some(index::now_stamp())),
        };
        if action != Action::Unchanged {
            let target = Target::Secret {
                name: &item.name,
                path: &dest.path,
            };
            secrets::write_encrypted(repo, &mut tx, &mut index, env, target, &item.value, changed)?;
        }
        actions.push(action);
    }
    if !tx.is_empty() {
        secrets::stage_index(repo, &mut tx, &index)?;
    }
    tx.commit()?;
    let mut stored = Vec::new();
    for ((item, dest), mut action) in items.iter().zip(&dests).zip(actions) {
        let mut path = dest.path.clone();
        if item.kind == Kind::Config {
            (action, path) = store_config(repo, env, item, dest)?;
        }
        stored.push(Stored {
            kind: item.kind,
            name: item.name.clone(),
            key: item.key.clone(),
            file: item.file.clone(),
            path: repo.rel(&path),
            action,
            bytes: item.value.len(),
            variable: variable(item.kind, &item.name),
        });
    }
    Ok(stored)
}

/// Stores a config as a plain file (see [`configs::store_config`]).
fn store_config(
    repo: &Repo,
    env: &str,
    item: &Item,
    dest: &Destination,
) -> Result<(Action, PathBuf)> {
    let done = configs::store_config(repo, env, &item.name, &item.value, false)
        .map_err(|e| e.context(format!("config {}", item.name)))?;
    Ok(match done {
        secrets::Stored::Unchanged { .. } => (Action::Unchanged, dest.path.clone()),
        secrets::Stored::Written { path, .. } if dest.exists => (Action::Updated, path),
        secrets::Stored::Written { path, .. } => (Action::Created, path),
    })
}

/// What overwriting an existing secret does: nothing when it already holds the value for
/// the current recipients; keeping its change date when only the recipients differ.
fn compare_existing(
    repo: &Repo,
    ids: &Identities,
    env: &str,
    path: &Path,
    item: &Item,
    record: Option<&index::Record>,
) -> Result<(Action, Option<String>)> {
    let bytes = repo.read(path)?;
    let Ok(old) = repo.open_sealed(env, ScopeKind::Secret, path, &bytes, ids, None) else {
        return Ok((Action::Updated, Some(index::now_stamp())));
    };
    if old.value.as_slice() != item.value.as_slice() {
        return Ok((Action::Updated, Some(index::now_stamp())));
    }
    let current = repo.manifest.env_recipients(env)?;
    if secrets::recipient_state(record, &bytes, &current) == RecipientState::Current {
        return Ok((Action::Unchanged, None));
    }
    let changed = record
        .and_then(|r| r.changed.clone())
        .or_else(|| Some(index::now_stamp()));
    Ok((Action::Updated, changed))
}
