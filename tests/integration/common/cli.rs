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
//! // With --format json, the error is one JSON object whose kind a test can match.
//! let out = repo.run_json(&["-e", "staging", "get", "nope"], None);
//! assert_kind(&out, "not_found");
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

/// Fails unless the command was refused the way `docs/design.md#error-model` asks: exit code 1, `error:` and
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

/// The error object a failing `--format json` command printed on stderr: the last line
/// of stderr that parses as `{"error": {"kind": ..., "message": ..., "hint": ...}}`.
pub fn json_error(out: &Output) -> Option<serde_json::Value> {
    stderr(out).lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
        v.get("error").filter(|e| e.is_object()).cloned()
    })
}

/// The `kind` of the error a `--format json` command printed (see [`json_error`]).
pub fn error_kind(out: &Output) -> Option<String> {
    json_error(out)?.get("kind")?.as_str().map(str::to_owned)
}

/// Fails unless the command (run with `--format json`) failed with exit 1, without a panic,
/// printing an error of this `kind` (`not_found`, `repository`, `identity`, ...).
#[track_caller]
pub fn assert_kind(out: &Output, kind: &str) {
    assert_no_panic(out);
    assert_exit(out, 1);
    assert_eq!(
        error_kind(out).as_deref(),
        Some(kind),
        "expected an error of kind {kind:?}\n{}",
        describe(out)
    );
}

/// [`assert_refused`] for a command run with `--format json`: exit 1, an error of this
/// `kind` with a hint, and every one of `names` in its message or hint.
#[track_caller]
pub fn assert_refused_kind(out: &Output, kind: &str, names: &[&str]) {
    assert_kind(out, kind);
    let error = json_error(out).unwrap();
    let message = error["message"].as_str().unwrap_or_default();
    let hint = error["hint"].as_str().unwrap_or_default();
    assert!(
        !hint.is_empty(),
        "the error has no hint saying what to do\n{}",
        describe(out)
    );
    for name in names {
        assert!(
            message.contains(name) || hint.contains(name),
            "the error does not name {name:?}\n{}",
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

/// How long [`on_terminal`] waits for each prompt to appear.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `arg` quoted for `sh`.
fn shell_quote(arg: &OsStr) -> String {
    format!("'{}'", arg.to_string_lossy().replace('\'', r"'\''"))
}

/// Where `needle` starts in `haystack`.
fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs `cmd` (its program, arguments, folder and environment) on a pseudo-terminal, given by
/// `script` (util-linux), and holds a dialogue with it: for each `(prompt, answer)` in turn,
/// waits until the terminal shows `prompt` (after the previous prompt), then types `answer`
/// and Enter. Returns the exit status and everything the terminal showed.
///
/// No fixed delays: it fails naming the prompt when the command ends without showing it, or
/// when it does not appear within [`PROMPT_TIMEOUT`].
pub fn on_terminal(cmd: &Command, dialogue: &[(&str, &str)]) -> (ExitStatus, String) {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    // -e: script exits with the command's status.
    script.args(["-qec", &line, "/dev/null"]);
    if let Some(dir) = cmd.get_current_dir() {
        script.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = script.spawn().expect("script (util-linux) runs");
    // Kept open until the command ends: what is written here is typed on the terminal.
    let mut keyboard = child.stdin.take().unwrap();
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut screen = child.stdout.take().unwrap();
    let reader = {
        let shown = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = screen.read(&mut buf) {
                if n == 0 {
                    break;
                }
                shown.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let text = |shown: &std::sync::Mutex<Vec<u8>>| {
        String::from_utf8_lossy(&shown.lock().unwrap()).into_owned()
    };
    let mut reader = Some(reader);
    let mut from = 0;
    for (prompt, answer) in dialogue {
        let deadline = Instant::now() + PROMPT_TIMEOUT;
        loop {
            if let Some(at) = find_bytes(&shown.lock().unwrap()[from..], prompt.as_bytes()) {
                from += at + prompt.len();
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                // Everything it printed is read once the pipe is closed: look once more.
                if let Some(r) = reader.take() {
                    let _ = r.join();
                    continue;
                }
                panic!(
                    "the command ended ({status}) without asking {prompt:?}; the terminal showed:\n{}",
                    text(&shown)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no {prompt:?} on the terminal within {PROMPT_TIMEOUT:?}; it showed:\n{}",
                    text(&shown)
                );
            }
            // Polling the output, not a delay before typing.
            std::thread::sleep(Duration::from_millis(10));
        }
        keyboard
            .write_all(format!("{answer}\n").as_bytes())
            .and_then(|()| keyboard.flush())
            .unwrap_or_else(|e| panic!("cannot type {answer:?} after {prompt:?}: {e}"));
    }
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the command did not finish within {COMMAND_TIMEOUT:?}; the terminal showed:\n{}",
                text(&shown)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(keyboard);
    if let Some(r) = reader {
        let _ = r.join();
    }
    let err = err_reader.join().unwrap();
    assert!(
        !err.starts_with(b"script:"),
        "script could not run {line}: {}",
        String::from_utf8_lossy(&err)
    );
    (status, text(&shown))
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
        let repo = TestRepo::with_identity();
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

    /// The folders and the default identity (`swarmseal keygen -o <identity>`, its public
    /// key in `public`); no repository yet.
    pub fn with_identity() -> TestRepo {
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
        TestRepo { public, ..repo }
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

    /// Runs `swarmseal --format json ARGS` in the repository root: errors come as one JSON
    /// object on stderr (see [`assert_kind`]).
    pub fn run_json(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = self.command();
        c.args(["--format", "json"]).args(args);
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

    /// `swarmseal -e ENV --format json ls`; asserts success and returns the listed names.
    #[track_caller]
    pub fn ls_names(&self, env: &str) -> Vec<String> {
        let out = self.run(&["-e", env, "--format", "json", "ls"], None);
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ls --format json is not JSON: {e}\n{}", describe(&out)));
        v["secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("no \"secrets\" list\n{}", describe(&out)))
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
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

    /// Where the index records when the value of secret `name` of `env` last changed:
    /// (the index's lines, the number of the secret's line, the byte range of the stamp in
    /// that line, inside its quotes if it has any). Keys and values may be quoted either way
    /// or not at all.
    fn change_stamp_at(
        &self,
        env: &str,
        name: &str,
    ) -> (Vec<String>, usize, std::ops::Range<usize>) {
        let text = std::fs::read_to_string(self.path(".swarmseal/index.yaml")).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let is_key = |line: &str, key: &str| {
            ["", "'", "\""]
                .iter()
                .any(|q| line.starts_with(&format!("{q}{key}{q}:")))
        };
        let mut in_env = false;
        for (i, line) in lines.iter().enumerate() {
            let content = line.trim_start();
            let indent = line.len() - content.len();
            if indent == 2 {
                in_env = is_key(content, env);
            } else if in_env && indent > 4 && is_key(content, name) {
                let after = line
                    .find("changed:")
                    .map(|at| at + "changed:".len())
                    .unwrap_or_else(|| panic!("no changed: stamp for {name} in {env}:\n{text}"));
                let value = &line[after..];
                let start = after + value.len() - value.trim_start().len();
                let (start, end) = match line[start..].chars().next() {
                    Some(q @ ('\'' | '"')) => {
                        let end = start + 1 + line[start + 1..].find(q).unwrap();
                        (start + 1, end)
                    }
                    _ => {
                        let len = line[start..].find([',', '}']).unwrap_or(line.len() - start);
                        (start, start + line[start..start + len].trim_end().len())
                    }
                };
                return (lines, i, start..end);
            }
        }
        panic!("the index has no line for {name} in {env}:\n{text}");
    }

    /// The index's `changed:` stamp of a secret: when its value last changed (what `check`
    /// ages values by, for `rotate_after` and `--max-age`).
    pub fn change_stamp(&self, env: &str, name: &str) -> String {
        let (lines, i, range) = self.change_stamp_at(env, name);
        lines[i][range].to_owned()
    }

    /// Writes `stamp` as the index's `changed:` stamp of a secret: a value that changed at
    /// another time, without waiting for the clock.
    pub fn set_change_stamp(&self, env: &str, name: &str, stamp: &str) {
        let (mut lines, i, range) = self.change_stamp_at(env, name);
        lines[i].replace_range(range, stamp);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.path(".swarmseal/index.yaml"), text).unwrap();
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
