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

use crate::cli::args::NameArg;
use crate::cli::context::Context;
use crate::crypto::value;
use crate::crypto::{self, MAX_VALUE_LEN};
use crate::error::{Error, ErrorKind, Result};
use crate::repo::secrets;

pub fn run(cx: &Context, args: NameArg) -> Result<i32> {
    let repo = cx.repo()?;
    let env = cx.env()?;
    let file = secrets::find_secret(repo, &env, &args.name)?;
    let ids = cx.require_identities(&format!("decrypt {}", file.rel.display()))?;
    let old = repo.decrypt_secret(&env, &file.path, ids)?;

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
        cx.say(format!("{} in {env}: no changes", file.name));
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
    cx.say(format!(
        "{} in {env}: {}",
        file.name,
        value::masked_summary(&old, &new)
    ));
    let stored = secrets::store_value(repo, Some(ids), &env, &file.name, &new)?;
    cx.say(stored.describe(repo, &env));
    Ok(0)
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
        .with_kind(ErrorKind::Interrupted)
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

/// A private folder holding the one plaintext file; wiped and removed on drop. While it
/// lives, this process holds a lock on the folder: a folder nobody holds a lock on is the
/// leftover of an edit that was killed (`kill -9`), and [`sweep_stale`] wipes it.
struct Scratch {
    dir: PathBuf,
    file: PathBuf,
    _lock: fs::File,
}

/// Prefix of the scratch folders of `edit`.
const SCRATCH_PREFIX: &str = "swarmseal-edit-";

/// Prefix of a scratch folder while it is made, before it is locked (empty, never swept).
const FRESH_PREFIX: &str = "swarmseal-new-";

/// The folders where scratch folders are made: tmpfs first.
fn scratch_bases() -> Vec<PathBuf> {
    vec![PathBuf::from("/dev/shm"), std::env::temp_dir()]
}

/// Wipes the scratch folders of this user that no running `edit` holds: an edit killed
/// with `kill -9` (or a power cut, for a disk-backed temp folder) leaves its plaintext
/// behind, and the next swarmseal command removes it. Called at every start; quick when
/// there is nothing to do.
pub fn sweep_stale() {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    for base in scratch_bases() {
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with(SCRATCH_PREFIX)
            {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_dir() || meta.uid() != me {
                continue;
            }
            let Ok(dir) = fs::File::open(&path) else {
                continue;
            };
            if dir.try_lock().is_ok() {
                wipe_dir(&path);
            }
        }
    }
}

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let private_dir = |base: &Path| {
            tempfile::Builder::new()
                .prefix(FRESH_PREFIX)
                .tempdir_in(base)
        };
        let bases = scratch_bases();
        // Made under a name the sweep of other swarmseal processes ignores, locked, then
        // renamed (the lock stays with the open folder): a sweep running meanwhile never
        // takes the new folder, not yet locked, for a leftover.
        let fresh = private_dir(&bases[0])
            .or_else(|_| private_dir(&bases[1]))
            .map_err(|e| Error::io("create a private folder in", &bases[1], e))?
            .keep();
        let lock = fs::File::open(&fresh)
            .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::from))
            .map_err(|e| {
                let _ = fs::remove_dir(&fresh);
                Error::io("lock", &fresh, e)
            })?;
        let unique = fresh.file_name().unwrap_or_default().to_string_lossy();
        let dir = fresh.with_file_name(format!(
            "{SCRATCH_PREFIX}{}",
            unique.trim_start_matches(FRESH_PREFIX)
        ));
        fs::rename(&fresh, &dir).map_err(|e| {
            let _ = fs::remove_dir(&fresh);
            Error::io("rename", &fresh, e)
        })?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("protect", &dir, e))?;
        let file = dir.join(name);
        Ok(Scratch {
            dir,
            file,
            _lock: lock,
        })
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
        wipe_dir(&self.dir);
    }
}

/// Overwrites every file of a scratch folder (editors may leave swap or backup files
/// beside the value), then removes it.
fn wipe_dir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            wipe(&entry.path());
        }
    }
    let _ = fs::remove_dir_all(dir);
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
