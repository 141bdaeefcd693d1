//! `swarmseal edit`: decrypt to a private temporary file, run the editor, re-encrypt only
//! when the value changed, and wipe the file.
//!
//! The file is 0600 in a fresh 0700 folder, on tmpfs (`/dev/shm`) where there is one so
//! that the plaintext never reaches a disk. It is overwritten with zeros and removed on
//! every path out of this command, errors included.

use std::fs;
use std::io::{BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{Global, NameArg};
use crate::crypto::{self, MAX_VALUE_LEN};
use crate::error::{Error, Result};
use crate::value;

pub fn run(g: &Global, args: NameArg) -> Result<i32> {
    let repo = super::open_repo(g)?;
    let env = super::select_env(g, &repo)?;
    let file = super::find_secret(&repo, &env, &args.name)?;
    let ids = super::require_identities(g, &format!("decrypt {}", file.rel.display()))?;
    let old = super::decrypt_file(&repo, &file.path, &ids)?;

    let scratch = Scratch::new(&file.name)?;
    scratch.write(&old)?;
    run_editor(&scratch.file)?;
    let new = scratch.read()?;
    drop(scratch);

    let Some(new) = new else {
        return Err(Error::new(format!(
            "the edited value of {} is larger than {MAX_VALUE_LEN} bytes, Docker's limit; nothing was changed",
            file.name
        ))
        .hint("edit again and keep the value smaller"));
    };
    if new.as_slice() == old.as_slice() {
        super::say(g, format!("{} in {env}: no changes", file.name));
        return Ok(0);
    }
    if new.is_empty() {
        return Err(Error::new(format!(
            "the edited value of {} is empty; nothing was changed",
            file.name
        ))
        .hint(format!(
            "to delete the secret, run `swarmseal -e {env} rm {}`",
            file.name
        )));
    }
    value::check_size(&file.name, &new)?;
    super::say(
        g,
        format!(
            "{} in {env}: {}",
            file.name,
            value::masked_summary(&old, &new)
        ),
    );
    super::set::store_value(g, &repo, &env, &file.name, &file.path, true, &new)
}

fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string())
}

fn run_editor(path: &Path) -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let editor = editor();
    // While the editor runs, signals must not kill swarmseal before it wipes the file:
    // Ctrl-C and Ctrl-\ belong to the editor and are ignored here (as git does); SIGTERM
    // and SIGHUP (a closed terminal) cancel the edit once the editor is gone. Caught
    // signals are reset to their defaults in the editor's process.
    let cancelled = Arc::new(AtomicBool::new(false));
    let ignored = Arc::new(AtomicBool::new(false));
    let mut handlers = Vec::new();
    for (signal, flag) in [
        (signal_hook::consts::SIGINT, &ignored),
        (signal_hook::consts::SIGQUIT, &ignored),
        (signal_hook::consts::SIGTERM, &cancelled),
        (signal_hook::consts::SIGHUP, &cancelled),
    ] {
        if let Ok(id) = signal_hook::flag::register(signal, Arc::clone(flag)) {
            handlers.push(id);
        }
    }
    // Through the shell, like git does, so that EDITOR="code --wait" works. The path is
    // passed as an argument, never spliced into the command text.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("swarmseal-edit")
        .arg(path)
        .status();
    for id in handlers {
        signal_hook::low_level::unregister(id);
    }
    let status = status.map_err(|e| {
        Error::new(format!("cannot run the editor {editor:?}: {e}"))
            .hint("set $VISUAL or $EDITOR to an editor on your PATH")
    })?;
    if cancelled.load(Ordering::SeqCst) {
        return Err(Error::new(
            "the edit was interrupted (SIGTERM or SIGHUP); nothing was changed",
        )
        .hint("edit again"));
    }
    if !status.success() {
        return Err(Error::new(format!(
            "the editor {editor:?} failed ({status}); nothing was changed"
        ))
        .hint("fix the editor command in $VISUAL or $EDITOR, or edit again"));
    }
    Ok(())
}

/// A private folder holding the one plaintext file; wiped and removed on drop.
struct Scratch {
    dir: PathBuf,
    file: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let private_dir = |base: &Path| {
            tempfile::Builder::new()
                .prefix("swarmseal-edit-")
                .tempdir_in(base)
        };
        let tmp = std::env::temp_dir();
        let dir = private_dir(Path::new("/dev/shm"))
            .or_else(|_| private_dir(&tmp))
            .map_err(|e| Error::io("create a private folder in", &tmp, e))?
            .keep();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("protect", &dir, e))?;
        let file = dir.join(name);
        Ok(Scratch { dir, file })
    }

    fn write(&self, value: &[u8]) -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.file)
            .map_err(|e| Error::io("create", &self.file, e))?;
        f.write_all(value)
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io("write", &self.file, e))
    }

    fn read(&self) -> Result<Option<crypto::Plaintext>> {
        let f = fs::File::open(&self.file).map_err(|e| {
            Error::io("read back", &self.file, e)
                .hint("the editor may have removed the file; edit again")
        })?;
        crypto::read_limited(BufReader::new(f), MAX_VALUE_LEN)
            .map_err(|e| Error::io("read back", &self.file, e))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Editors may leave swap or backup files beside the value: wipe every file.
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                wipe(&entry.path());
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wipe(path: &Path) {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if meta.is_file() {
            if let Ok(mut f) = fs::OpenOptions::new().write(true).open(path) {
                let zeros = vec![0u8; meta.len() as usize];
                let _ = f.write_all(&zeros).and_then(|_| f.sync_all());
            }
        }
    }
    let _ = fs::remove_file(path);
}
