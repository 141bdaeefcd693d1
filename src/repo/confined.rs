//! Files inside a repository, under one rule (`docs/design.md#repository-files`): every path swarmseal reads or
//! writes stays inside the repository, follows no symbolic link (neither the file nor any
//! folder on the way), is a regular file, and is read with a size bound.
//!
//! A pull request controls every file of the repository, links and FIFOs included, and
//! `check` and `plan` run on pull requests with a CI identity in their environment. So a
//! link `secrets/staging/x.age -> ../prod/db.age` must not make staging read production's
//! secret, a link `.swarmseal/index.yaml -> /proc/self/environ` must not put the CI key into
//! an error message, and a FIFO or `/dev/zero` must not hang or exhaust the command.
//!
//! Paths are given relative to the repository root and made only of plain components
//! (swarmseal builds them from validated names). Reads open the file with `O_NOFOLLOW` and
//! `O_NONBLOCK` and check what was opened (`fstat`), so a link or a FIFO is refused without
//! being followed or waited on; every folder on the way is checked with `lstat`.
//!
//! Writes go to a temporary file in the target's folder (named [`TEMP_PREFIX`]`*`, so that
//! leftovers of a killed command are recognised as swarmseal's own), are synced and renamed
//! into place: readers see the old file or the new one, never a part.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Name prefix of swarmseal's temporary files. Leftovers (a killed command) are removed by
/// the next command that holds the repository lock, and are never taken for secrets.
pub const TEMP_PREFIX: &str = ".swarmseal-tmp-";

/// Size bound of an age file: the largest value Docker accepts (511,999 bytes) encrypted
/// and armored is about 700 KiB, plus a header of a few hundred recipients.
pub const MAX_AGE_FILE: u64 = 1 << 20;
/// Size bound of `swarmseal.yaml`.
pub const MAX_MANIFEST: u64 = 1 << 20;

/// Size bound of the index for a repository with `entries` files: one line per file, of at
/// most a few KiB (a name, two digests, a date, and a short id per recipient).
pub fn index_limit(entries: usize) -> u64 {
    (256 << 10) + (entries as u64) * (8 << 10)
}

/// True when `name` is one of swarmseal's temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

fn display(rel: &Path) -> String {
    rel.display().to_string()
}

fn check_relative(rel: &Path) -> Result<()> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::new(format!(
            "{} is not a plain path inside the repository",
            display(rel)
        ))
        .with_kind(ErrorKind::Repository)
        .hint("report this as a bug in swarmseal"));
    }
    Ok(())
}

/// The error for a symbolic link met on the way to, or at, `rel`.
pub fn symlink_error(rel: &Path) -> Error {
    Error::new(format!(
        "{} is a symbolic link; swarmseal follows no links in a repository (a link could lead \
         to another environment's secrets or out of the repository)",
        display(rel)
    ))
    .with_kind(ErrorKind::Repository)
    .hint("replace the link with the file or folder itself, or remove it")
}

/// What a file type is, in words (`a FIFO`).
pub fn kind_of(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The error for something that is not a regular file at `rel`.
pub fn not_regular_error(rel: &Path, ft: &fs::FileType) -> Error {
    Error::new(format!(
        "{} is {}, not a regular file",
        display(rel),
        kind_of(ft)
    ))
    .with_kind(ErrorKind::Repository)
    .hint("remove it: a swarmseal repository holds regular files only")
}

fn too_large_error(rel: &Path, limit: u64) -> Error {
    Error::new(format!(
        "{} is larger than {limit} bytes, more than such a file can hold",
        display(rel)
    ))
    .with_kind(ErrorKind::Repository)
    .hint("restore it from git (`git checkout -- FILE`)")
}

/// Checks that every folder from `root` down to `rel_dir` (included) is a real folder, not
/// a link. Returns false when one of them does not exist (and `create` is false); with
/// `create`, missing folders are made.
pub fn ensure_dirs(root: &Path, rel_dir: &Path, create: bool) -> Result<bool> {
    let mut at = PathBuf::new();
    for component in rel_dir.components() {
        let Component::Normal(part) = component else {
            check_relative(rel_dir)?;
            continue;
        };
        at.push(part);
        let full = root.join(&at);
        match fs::symlink_metadata(&full) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(&at)),
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::new(format!(
                    "{} is {}, where swarmseal expects a folder",
                    display(&at),
                    kind_of(&meta.file_type())
                ))
                .with_kind(ErrorKind::Repository)
                .hint("move it out of the way"))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !create {
                    return Ok(false);
                }
                match fs::create_dir(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Made meanwhile by a concurrent command: check it again.
                        let meta = fs::symlink_metadata(&full)
                            .map_err(|e| Error::io("inspect", &at, e))?;
                        if !meta.is_dir() || meta.file_type().is_symlink() {
                            return Err(symlink_error(&at));
                        }
                    }
                    Err(e) => return Err(Error::io("create folder", &at, e)),
                }
            }
            Err(e) => return Err(Error::io("inspect", &at, e)),
        }
    }
    Ok(true)
}

/// Opens `rel` for reading without following a link or blocking on a FIFO, and checks it
/// is a regular file of at most `limit` bytes. `Ok(None)` when it (or a folder on the way)
/// does not exist.
fn open(root: &Path, rel: &Path, limit: u64) -> Result<Option<(fs::File, u64)>> {
    check_relative(rel)?;
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !ensure_dirs(root, parent, false)? {
            return Ok(None);
        }
    }
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(FILE_FLAGS.bits() as i32)
        .open(root.join(rel))
    {
        Ok(f) => f,
        Err(e) => return open_error(rel, e),
    };
    checked(file, rel, limit).map(Some)
}

/// How files are opened: never through a link, never waiting (a FIFO).
const FILE_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::NOFOLLOW
    .union(rustix::fs::OFlags::NONBLOCK)
    .union(rustix::fs::OFlags::NOCTTY)
    .union(rustix::fs::OFlags::CLOEXEC);

/// A failed open of `rel`: `Ok(None)` when it does not exist.
fn open_error<T>(rel: &Path, e: std::io::Error) -> Result<Option<T>> {
    match e.raw_os_error() {
        _ if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // O_NOFOLLOW on a link: ELOOP.
        Some(code) if code == rustix::io::Errno::LOOP.raw_os_error() => Err(symlink_error(rel)),
        // A socket cannot be opened at all.
        Some(code) if code == rustix::io::Errno::NXIO.raw_os_error() => Err(Error::new(format!(
            "{} is not a regular file",
            display(rel)
        ))
        .with_kind(ErrorKind::Repository)
        .hint("remove it: a swarmseal repository holds regular files only")),
        _ => Err(Error::io("read", rel, e)),
    }
}

/// What was opened at `rel` is a regular file of at most `limit` bytes: its length.
fn checked(file: fs::File, rel: &Path, limit: u64) -> Result<(fs::File, u64)> {
    let meta = file.metadata().map_err(|e| Error::io("inspect", rel, e))?;
    if !meta.is_file() {
        return Err(not_regular_error(rel, &meta.file_type()));
    }
    if meta.len() > limit {
        return Err(too_large_error(rel, limit));
    }
    Ok((file, meta.len()))
}

/// Reads `rel` (see the module's rule); `Ok(None)` when it does not exist.
pub fn read_optional(root: &Path, rel: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    let Some((file, len)) = open(root, rel, limit)? else {
        return Ok(None);
    };
    read_bounded(file, len, rel, limit).map(Some)
}

fn read_bounded(file: fs::File, len: u64, rel: &Path, limit: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", rel, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large_error(rel, limit));
    }
    Ok(bytes)
}

/// Reads many files, as [`read`] does, opening each folder on the way once: a folder is
/// reached from the root by `openat` with `O_NOFOLLOW | O_DIRECTORY`, one component at a
/// time, and each file is one `openat` below its folder's descriptor, so no folder can be
/// a link, and none can be swapped for one between the check and the read.
pub struct Reader<'r> {
    root: &'r Path,
    folders: BTreeMap<PathBuf, OwnedFd>,
}

impl<'r> Reader<'r> {
    pub fn new(root: &'r Path) -> Reader<'r> {
        Reader {
            root,
            folders: BTreeMap::new(),
        }
    }

    /// Reads `rel` (relative to the root); a missing file is an error naming it.
    pub fn read(&mut self, rel: &Path, limit: u64) -> Result<Vec<u8>> {
        check_relative(rel)?;
        let name = rel.file_name().unwrap_or_default();
        let folder = self.folder(rel.parent().unwrap_or(Path::new("")))?;
        let opened = rustix::fs::openat(folder, name, FILE_FLAGS, rustix::fs::Mode::empty());
        let file = match opened {
            Ok(fd) => fs::File::from(fd),
            Err(e) => {
                open_error::<()>(rel, e.into())?;
                return Err(not_found(rel));
            }
        };
        let (file, len) = checked(file, rel, limit)?;
        read_bounded(file, len, rel, limit)
    }

    /// The folder `rel_dir`, opened without following links.
    fn folder(&mut self, rel_dir: &Path) -> Result<&OwnedFd> {
        if !self.folders.contains_key(rel_dir) {
            let dir_flags = rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC;
            let none = rustix::fs::Mode::empty();
            let mut fd = rustix::fs::open(self.root, dir_flags, none)
                .map_err(|e| Error::io("open", Path::new("."), e.into()))?;
            let mut at = PathBuf::new();
            for part in rel_dir.components() {
                at.push(part);
                let flags = dir_flags | rustix::fs::OFlags::NOFOLLOW;
                fd = match rustix::fs::openat(&fd, part.as_os_str(), flags, none) {
                    Ok(next) => next,
                    Err(rustix::io::Errno::LOOP) => return Err(symlink_error(&at)),
                    Err(rustix::io::Errno::NOTDIR) => {
                        return Err(Error::new(format!(
                            "{} is not a folder, where swarmseal expects one",
                            display(&at)
                        ))
                        .with_kind(ErrorKind::Repository)
                        .hint("move it out of the way"))
                    }
                    Err(rustix::io::Errno::NOENT) => return Err(not_found(&at)),
                    Err(e) => return Err(Error::io("open", &at, e.into())),
                };
            }
            self.folders.insert(rel_dir.to_path_buf(), fd);
        }
        Ok(&self.folders[rel_dir])
    }
}

fn not_found(rel: &Path) -> Error {
    Error::io(
        "read",
        rel,
        std::io::Error::from(std::io::ErrorKind::NotFound),
    )
}

/// Reads `rel` (see the module's rule); a missing file is an error naming it.
pub fn read(root: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>> {
    read_optional(root, rel, limit)?.ok_or_else(|| not_found(rel))
}

/// The first `n` bytes of `rel` (fewer if it is shorter), under the same rule.
pub fn read_prefix(root: &Path, rel: &Path, n: usize) -> Result<Vec<u8>> {
    let Some((file, _)) = open(root, rel, u64::MAX)? else {
        return Ok(Vec::new());
    };
    let mut bytes = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", rel, e))?;
    Ok(bytes)
}

/// What is at `rel` now, for a write: nothing, or a regular file (anything else refused).
fn check_target(root: &Path, rel: &Path) -> Result<()> {
    match fs::symlink_metadata(root.join(rel)) {
        Ok(meta) if meta.file_type().is_symlink() => Err(symlink_error(rel)),
        Ok(meta) if !meta.is_file() => Err(not_regular_error(rel, &meta.file_type())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("inspect", rel, e)),
    }
}

/// A file written next to its destination and synced, not yet in place.
pub struct Staged {
    rel: PathBuf,
    dest: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl Staged {
    /// The destination, relative to the repository root.
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// Renames the file into place (atomic), then syncs the folder.
    pub fn persist(self) -> Result<()> {
        let Staged { rel, dest, temp } = self;
        temp.persist(&dest)
            .map_err(|e| Error::io("write", &rel, e.error))?;
        sync_parent(&dest);
        Ok(())
    }
}

/// Syncs the folder holding `path`, so that a rename survives a crash. Best effort.
pub fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent() {
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
}

/// Writes `bytes` to a temporary file beside `rel` (creating missing folders, never
/// through a link) and syncs it; [`Staged::persist`] puts it in place.
pub fn stage(root: &Path, rel: &Path, bytes: &[u8], mode: u32) -> Result<Staged> {
    check_relative(rel)?;
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    if !parent_rel.as_os_str().is_empty() {
        ensure_dirs(root, parent_rel, true)?;
    }
    check_target(root, rel)?;
    let dest = root.join(rel);
    let parent = dest.parent().unwrap_or(root);
    let fail = |e: std::io::Error| Error::io("write", rel, e);
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(parent)
        .map_err(fail)?;
    temp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    temp.write_all(bytes).map_err(fail)?;
    temp.as_file().sync_all().map_err(fail)?;
    Ok(Staged {
        rel: rel.to_path_buf(),
        dest,
        temp,
    })
}

/// Writes `rel` atomically: [`stage`], then [`Staged::persist`].
pub fn write(root: &Path, rel: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    stage(root, rel, bytes, mode)?.persist()
}

/// Removes the regular file `rel` (never through a link).
pub fn remove(root: &Path, rel: &Path) -> Result<()> {
    check_relative(rel)?;
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dirs(root, parent, false)?;
    }
    check_target(root, rel)?;
    fs::remove_file(root.join(rel)).map_err(|e| Error::io("remove", rel, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_regular_files_only_and_never_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), b"hello").unwrap();
        fs::write(root.join("outside"), b"OUTSIDE-CONTENT").unwrap();
        assert_eq!(read(root, Path::new("a/b/f"), 10).unwrap(), b"hello");
        assert_eq!(
            read_optional(root, Path::new("a/b/nope"), 10).unwrap(),
            None
        );
        assert_eq!(
            read_optional(root, Path::new("x/y/nope"), 10).unwrap(),
            None
        );

        symlink(root.join("outside"), root.join("a/b/link")).unwrap();
        let err = read(root, Path::new("a/b/link"), 10).unwrap_err();
        assert!(err.message().contains("symbolic link"), "{err}");
        assert!(!err.to_string().contains("OUTSIDE-CONTENT"));

        symlink(root.join("a"), root.join("dirlink")).unwrap();
        let err = read(root, Path::new("dirlink/b/f"), 10).unwrap_err();
        assert!(
            err.message().starts_with("dirlink is a symbolic link"),
            "{err}"
        );

        let err = read(root, Path::new("a/b/f"), 3).unwrap_err();
        assert!(err.message().contains("larger than 3 bytes"), "{err}");

        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("a/fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let err = read(root, Path::new("a/fifo"), 10).unwrap_err();
        assert!(err.message().contains("a FIFO"), "{err}");
        assert!(read(root, Path::new("a/b"), 10)
            .unwrap_err()
            .message()
            .contains("a folder"));
        assert!(read(root, Path::new("../outside"), 10).is_err());
    }

    #[test]
    fn writes_never_go_through_links_and_leave_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, Path::new("x/y/z.age"), b"one", 0o644).unwrap();
        write(root, Path::new("x/y/z.age"), b"two", 0o644).unwrap();
        assert_eq!(fs::read(root.join("x/y/z.age")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(root.join("x/y"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("z.age")]);

        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), root.join("linked")).unwrap();
        assert!(write(root, Path::new("linked/f"), b"x", 0o644).is_err());
        symlink(outside.path().join("f"), root.join("x/flink")).unwrap();
        assert!(write(root, Path::new("x/flink"), b"x", 0o644).is_err());
        assert!(fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(remove(root, Path::new("x/flink")).is_err());
        assert!(fs::symlink_metadata(root.join("x/flink")).is_ok());
    }
}
