//! Running the `swarmseal` binary against throw-away repositories.
//!
//! Every [`TestRepo`] lives in its own temporary folder with its own `HOME`,
//! `XDG_CONFIG_HOME` and `TMPDIR`, so that the developer's real identity is never read or
//! created, and no identity variable (`SWARMSEAL_IDENTITY`, `SWARMSEAL_AGE_KEY`), editor
//! (`VISUAL`, `EDITOR`) or Docker endpoint leaks in from the environment running the tests.
//!
//! ```ignore
//! let repo = TestRepo::new();                       // staging + production, recipient "me"
//! repo.set("staging", "db_password", b"hunter2");   // asserts success
//! assert_eq!(repo.get("staging", "db_password"), b"hunter2");
//! let before = repo.snapshot();
//! let out = repo.run(&["-e", "staging", "get", "nope"], None);
//! assert_refused(&out, &["nope"]);
//! assert_eq!(repo.snapshot(), before);
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_swarmseal");

/// How long one command may run before the test kills it and fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// Variables removed from every child's environment: identities, editors, Docker endpoints.
const SCRUBBED_VARS: &[&str] = &[
    "SWARMSEAL_IDENTITY",
    "SWARMSEAL_AGE_KEY",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_CONFIG",
    "VISUAL",
    "EDITOR",
    "NO_COLOR",
    "RUST_BACKTRACE",
];

/// The environments every [`TestRepo`] has.
pub const ENVS: [&str; 2] = ["staging", "production"];

/// One entry of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, bytes: Vec<u8> },
    Symlink { target: PathBuf },
}

/// Every file, folder and link below a folder (links not followed), by relative path.
pub type Snapshot = BTreeMap<PathBuf, Entry>;

/// A snapshot of `root` (see [`Snapshot`]).
pub fn snapshot(root: &Path) -> Snapshot {
    let mut map = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let entry = entry.unwrap_or_else(|e| panic!("cannot walk {}: {e}", root.display()));
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = std::fs::symlink_metadata(path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let e = if meta.file_type().is_symlink() {
            Entry::Symlink {
                target: std::fs::read_link(path).unwrap(),
            }
        } else if meta.is_dir() {
            Entry::Dir { mode }
        } else {
            Entry::File {
                mode,
                bytes: std::fs::read(path).unwrap(),
            }
        };
        map.insert(rel, e);
    }
    map
}

/// Fails with the paths that differ between two snapshots.
#[track_caller]
pub fn assert_same_snapshot(before: &Snapshot, after: &Snapshot, what: &str) {
    if before == after {
        return;
    }
    let mut diffs = Vec::new();
    for (path, entry) in before {
        match after.get(path) {
            None => diffs.push(format!("removed: {}", path.display())),
            Some(other) if other != entry => diffs.push(format!("changed: {}", path.display())),
            Some(_) => {}
        }
    }
    for path in after.keys() {
        if !before.contains_key(path) {
            diffs.push(format!("added: {}", path.display()));
        }
    }
    panic!(
        "{what}: the repository is not byte-identical afterwards:\n  {}",
        diffs.join("\n  ")
    );
}

/// Text of a command's output, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails unless the command succeeded.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "expected success\n{}", describe(out));
    assert_no_panic(out);
}

/// Fails when the process panicked (message on stderr, or killed by a signal).
#[track_caller]
pub fn assert_no_panic(out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "the binary panicked\n{}",
        describe(out)
    );
    assert!(
        out.status.code().is_some(),
        "the binary was killed by a signal\n{}",
        describe(out)
    );
}

/// Fails unless the command exited with `code`.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit code {code}\n{}",
        describe(out)
    );
}

/// Fails unless the command was refused the way SPEC §5 asks: exit code 1, `error:` and
/// `hint:` on stderr, no panic, and every one of `names` (the secret, file, environment...)
/// on stderr.
#[track_caller]
pub fn assert_refused(out: &Output, names: &[&str]) {
    assert_no_panic(out);
    assert_exit(out, 1);
    let err = stderr(out);
    assert!(
        err.contains("error:"),
        "stderr has no \"error:\"\n{}",
        describe(out)
    );
    assert!(
        err.contains("hint:"),
        "stderr has no \"hint:\" saying what to do\n{}",
        describe(out)
    );
    for name in names {
        assert!(
            err.contains(name),
            "stderr does not name {name:?}\n{}",
            describe(out)
        );
    }
}

/// Fails unless `haystack` contains `needle` as bytes.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs a command with stdin from `stdin` (or /dev/null), collecting its output, killing it
/// after [`COMMAND_TIMEOUT`]. A child that exits before reading all of stdin is fine.
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let description = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {description}: {e}"));
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        // Errors (EPIPE when the child stops reading early) are the child's business.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A new age identity written by `age-keygen`: (file, public key).
pub fn age_keygen(path: &Path) -> String {
    let out = run_command(
        {
            let mut c = Command::new("age-keygen");
            c.arg("-o").arg(path);
            c
        },
        None,
    );
    assert!(
        out.status.success(),
        "age-keygen failed\n{}",
        describe(&out)
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap_or_else(|| panic!("no public key in {}", path.display()))
        .trim()
        .to_string()
}

/// An unencrypted ssh-ed25519 key written by `ssh-keygen`: (private key file, public key line).
pub fn ssh_keygen(path: &Path, comment: &str) -> String {
    let out = run_command(
        {
            let mut c = Command::new("ssh-keygen");
            c.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(path);
            c
        },
        None,
    );
    assert!(
        out.status.success(),
        "ssh-keygen failed\n{}",
        describe(&out)
    );
    std::fs::read_to_string(format!("{}.pub", path.display()))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs the `age` CLI.
pub fn age_cli<I, S>(args: I, stdin: Option<&[u8]>) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new("age");
    c.args(args);
    run_command(c, stdin)
}

/// A repository in a temporary folder, with its own home folder and identity.
pub struct TestRepo {
    /// Holds everything; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The repository root (`<tmp>/repo`).
    pub root: PathBuf,
    /// `HOME` of the commands (`<tmp>/home`).
    pub home: PathBuf,
    /// `XDG_CONFIG_HOME` of the commands (`<tmp>/home/.config`).
    pub config: PathBuf,
    /// `TMPDIR` of the commands (`<tmp>/tmpdir`).
    pub tmpdir: PathBuf,
    /// Scratch folder for keys and files the test makes (`<tmp>/work`), outside the repo.
    pub work: PathBuf,
    /// The identity of recipient `me`: the default identity file of the commands.
    pub identity: PathBuf,
    /// Public key of `me`.
    pub public: String,
}

impl TestRepo {
    /// `swarmseal keygen -o <default identity path>`, then
    /// `swarmseal init --project testproj --env staging --env production --recipient me=<public>`.
    pub fn new() -> TestRepo {
        let repo = TestRepo::bare();
        let out = repo.run_in(
            repo.tmp.path(),
            ["keygen", "-o"],
            Some(&repo.identity),
            None,
        );
        assert_ok(&out);
        let text = std::fs::read_to_string(&repo.identity).expect("keygen -o wrote no file");
        let public = text
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .map(|s| s.trim().to_string())
            .or_else(|| {
                // Fall back to the "Public key: ..." line on stderr.
                stderr(&out).lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("Public key: ")
                        .map(|s| s.trim().to_string())
                })
            })
            .expect("keygen printed no public key");
        assert!(
            public.starts_with("age1"),
            "unexpected public key {public:?}"
        );
        let repo = TestRepo { public, ..repo };
        let recipient = format!("me={}", repo.public);
        let out = repo.run(
            &[
                "init",
                "--project",
                "testproj",
                "--env",
                "staging",
                "--env",
                "production",
                "--recipient",
                &recipient,
            ],
            None,
        );
        assert_ok(&out);
        repo
    }

    /// The folders only: no identity, no repository (the `root` folder exists and is empty).
    pub fn bare() -> TestRepo {
        let tmp = tempfile::Builder::new()
            .prefix("swarmseal-cli-")
            .tempdir()
            .unwrap();
        let base = tmp.path().to_path_buf();
        let root = base.join("repo");
        let home = base.join("home");
        let config = home.join(".config");
        let tmpdir = base.join("tmpdir");
        let work = base.join("work");
        for d in [&root, &home, &config, &tmpdir, &work] {
            std::fs::create_dir_all(d).unwrap();
        }
        let identity = config.join("swarmseal").join("identity.txt");
        TestRepo {
            tmp,
            root,
            home,
            config,
            tmpdir,
            work,
            identity,
            public: String::new(),
        }
    }

    /// The command for the binary, with the controlled environment, in folder `cwd`.
    pub fn command_in(&self, cwd: &Path) -> Command {
        let mut c = Command::new(BIN);
        for var in SCRUBBED_VARS {
            c.env_remove(var);
        }
        c.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("TMPDIR", &self.tmpdir)
            .env("LC_ALL", "C")
            .current_dir(cwd);
        c
    }

    /// The command for the binary, run in the repository root.
    pub fn command(&self) -> Command {
        self.command_in(&self.root)
    }

    /// Runs `swarmseal ARGS` in the repository root with `stdin` (or /dev/null).
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = self.command();
        c.args(args);
        run_command(c, stdin)
    }

    /// Runs `swarmseal ARGS... EXTRA` in `cwd`; `extra` is a trailing path argument.
    pub fn run_in<'a>(
        &self,
        cwd: &Path,
        args: impl IntoIterator<Item = &'a str>,
        extra: Option<&Path>,
        stdin: Option<&[u8]>,
    ) -> Output {
        let mut c = self.command_in(cwd);
        c.args(args);
        if let Some(p) = extra {
            c.arg(p);
        }
        run_command(c, stdin)
    }

    /// Runs a prepared command (see [`TestRepo::command`]).
    pub fn run_cmd(&self, c: Command, stdin: Option<&[u8]>) -> Output {
        run_command(c, stdin)
    }

    /// `swarmseal -e ENV set NAME` with the value on stdin; asserts success.
    #[track_caller]
    pub fn set(&self, env: &str, name: &str, value: &[u8]) {
        let out = self.run(&["-e", env, "set", name], Some(value));
        assert_ok(&out);
    }

    /// `swarmseal -e ENV get NAME`; asserts success and returns the value.
    #[track_caller]
    pub fn get(&self, env: &str, name: &str) -> Vec<u8> {
        let out = self.run(&["-e", env, "get", name], None);
        assert_ok(&out);
        out.stdout
    }

    /// `swarmseal check`; returns the output (no assertion).
    pub fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec!["check"];
        args.extend_from_slice(extra);
        self.run(&args, None)
    }

    /// A path below the repository root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The file of a top-level secret: `secrets/<env>/<name>.age`.
    pub fn secret_file(&self, env: &str, name: &str) -> PathBuf {
        self.root
            .join("secrets")
            .join(env)
            .join(format!("{name}.age"))
    }

    /// Every `.age` file of the repository (secrets and fingerprint keys), relative paths.
    pub fn age_files(&self) -> Vec<String> {
        snapshot(&self.root)
            .into_iter()
            .filter(|(p, e)| {
                matches!(e, Entry::File { .. }) && p.extension().is_some_and(|x| x == "age")
            })
            .map(|(p, _)| p.display().to_string())
            .collect()
    }

    /// A snapshot of the repository.
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.root)
    }

    /// Writes an executable shell script into the work folder and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.work.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A new age identity (via `age-keygen`) in the work folder: (file, public key).
    pub fn new_age_key(&self, name: &str) -> (PathBuf, String) {
        let path = self.work.join(name);
        let public = age_keygen(&path);
        (path, public)
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        TestRepo::new()
    }
}
