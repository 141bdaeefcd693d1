//! `.gitattributes`: `git diff` decrypts secrets through `swarmseal textconv`, but never a
//! fingerprint key.

use std::path::Path;

use crate::error::Result;
use crate::repo::{confined, Repo, Transaction};

/// `git diff` shows secrets decrypted (`swarmseal textconv`), but never a fingerprint key:
/// the second line overrides the first for those files.
pub const LINES: [&str; 2] = ["*.age diff=swarmseal", ".swarmseal/**/*.age -diff"];

/// Stages the lines `init` adds to `.gitattributes` (keeping what is there).
pub fn stage(repo: &Repo, tx: &mut Transaction<'_>) -> Result<()> {
    let rel = Path::new(".gitattributes");
    let existing = confined::read_optional(&repo.root, rel, confined::MAX_MANIFEST)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut text = existing.clone();
    for line in LINES {
        if !existing.lines().any(|l| l.trim() == line) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(line);
            text.push('\n');
        }
    }
    if text != existing {
        tx.write(&repo.root.join(rel), text.as_bytes())?;
    }
    Ok(())
}

/// True when `.gitattributes` keeps `git diff` from decrypting fingerprint keys (for
/// `check`'s warning on repositories made before that line).
pub fn protects_keys(repo: &Repo) -> bool {
    confined::read_optional(
        &repo.root,
        Path::new(".gitattributes"),
        confined::MAX_MANIFEST,
    )
    .ok()
    .flatten()
    .is_some_and(|b| {
        String::from_utf8_lossy(&b)
            .lines()
            .any(|l| l.trim() == LINES[1])
    })
}
