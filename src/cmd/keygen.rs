//! `swarmseal keygen`: a new age identity.

use std::path::Path;

use crate::cli::{Global, KeygenArgs};
use crate::crypto;
use crate::error::{Error, Result};
use crate::store;

pub fn run(g: &Global, args: KeygenArgs) -> Result<i32> {
    match args.output {
        Some(path) => {
            let public = write_identity(&path)?;
            super::say(g, format!("Public key: {public}"));
        }
        None => {
            let (text, public) = crypto::generate_identity();
            crate::output::write_stdout(text.as_bytes())?;
            super::say(g, format!("Public key: {public}"));
        }
    }
    Ok(0)
}

/// Writes a new identity to `path` (mode 0600, in a 0700 folder when it creates one);
/// never overwrites. Returns the public key.
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
    store::write_atomic(path, text.as_bytes(), 0o600)?;
    Ok(public)
}
