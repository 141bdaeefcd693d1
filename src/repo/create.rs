//! A new repository (`swarmseal init`): the manifest, a folder and a fingerprint key per
//! environment, the index and `.gitattributes`, written together, the manifest last, so
//! that a failed init leaves no half repository.

use std::path::Path;

use crate::error::{Error, Result};
use crate::repo::{gitattributes, manifest, secrets, LockMode, Repo};

/// Creates the repository in `root` (which must not hold a manifest yet).
pub fn create(
    root: &Path,
    project: &str,
    envs: &[String],
    recipients: &[(String, String)],
) -> Result<Repo> {
    let text = manifest::render_new(project, envs, recipients);
    let parsed = manifest::Manifest::parse(&text, &root.join(manifest::MANIFEST_FILE))?;
    let root = std::fs::canonicalize(root).map_err(|e| Error::io("open", root, e))?;
    let repo = Repo::with_manifest(root, parsed);
    write_new(&repo, &text, envs)?;
    Ok(repo)
}

/// Writes the files of a new repository in one transaction, under the repository lock.
fn write_new(repo: &Repo, text: &str, envs: &[String]) -> Result<()> {
    let _lock = repo.lock(LockMode::Exclusive)?;
    let mut index = repo.load_index()?;
    let mut tx = repo.transaction();
    for env in envs {
        tx.write(&repo.env_dir(env).join(".gitkeep"), b"")?;
        secrets::create_fingerprint_key(repo, &mut tx, &mut index, env)?;
    }
    secrets::stage_index(repo, &mut tx, &index)?;
    gitattributes::stage(repo, &mut tx)?;
    tx.write(&repo.manifest_path(), text.as_bytes())?;
    tx.commit()
}
