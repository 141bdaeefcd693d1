//! The adversarial suite: a pull request controls every file of the repository (links,
//! FIFOs and sizes included), the Swarm's labels come from whoever can use its API, and CI
//! runs `check`, `plan` and `apply` with identities in their environment. Each test is one
//! case that once got through, numbered as in the issue that collected them:
//!
//! | # | case | test |
//! |---|---|---|
//! | 1 | index linked to /proc/self/environ prints the CI key | `index_link_to_proc_environ_prints_no_key` |
//! | 1 | index linked to the identity file prints the key | `index_link_to_identity_file_prints_no_key` |
//! | 1 | a parse error of the index shows its content | `index_parse_errors_show_no_content` |
//! | 2 | staging secret linked to a prod secret is read as staging's | `cross_environment_link_is_refused_everywhere` |
//! | 2 | fingerprint key linked to another environment's | `fingerprint_key_link_is_refused` |
//! | 2 | linked folders (environment folder, sub-folder, `.swarmseal`) | `linked_folders_are_refused` |
//! | 2 | a byte copy of a prod file in staging, re-encrypted by an admin's `rekey` | `copy_of_another_environments_file_is_refused` |
//! | 2 | the same with a file written by the age CLI (no scope) | `unscoped_copy_of_another_environments_file_is_refused` |
//! | 3 | index linked to /dev/zero, key linked to /dev/urandom | `devices_are_refused_without_reading_them` |
//! | 3 | a FIFO named like a secret hangs `check` | `fifo_is_refused_without_waiting` |
//! | 3 | huge files are read whole | `oversized_files_are_refused_unread` |
//! | 4 | EPIPE / ENOSPC on standard output panic | `closed_or_full_stdout_never_panics` |
//! | 4 | the same in apply, while holding the lock | `apply_to_a_full_stdout_releases_its_lock` (engine) |
//! | 4 | `status \| head -1` panics | `status_into_a_closed_pipe_exits_quietly` (engine) |
//! | 5 | `set`/`rm`/`rekey` change the repository, then fail on the index | `failed_index_write_leaves_the_repository_unchanged` |
//! | 5 | 20 parallel `set`s lose index entries | `parallel_sets_lose_nothing` |
//! | 5 | a killed `rekey` leaves temp files that `plan` calls leaks | `leftover_temp_files_are_recognised_and_removed` |
//! | 5 | (a real `kill -9` during `rekey`) | `rekey_killed_half_way_leaves_a_usable_repository` |
//! | 6 | SIGHUP / SIGQUIT during apply leave the lock | `hangup_and_quit_release_the_apply_lock` (engine) |
//! | 6 | `unlock` breaks a live lock without a word | `unlock_refuses_a_live_holder_without_force` (engine) |
//! | 7 | ANSI escapes in a lock holder reach the terminal | `swarm_text_is_escaped_on_the_terminal` (engine) |
//! | 7 | a pre-created next version is taken as current (a property of Docker, documented) | `precreated_version_is_trusted_as_documented` (engine) |
//! | 7 | one crash-looping service fails every `apply --wait` | `unrelated_unhealthy_service_is_a_warning` (engine) |
//! | 8 | `target` with `..` or an absolute path | `targets_cannot_escape_run_secrets` |
//! | 8 | `plan` does not show target changes | `plan_shows_mount_setting_changes` |
//! | 8 | `git diff` prints the raw fingerprint key | `git_diff_never_shows_a_fingerprint_key` |
//! | 8 | a manifest linked out of the repository | `linked_manifest_is_refused_and_kept` |
//! | 8 | `kill -9` of `edit` leaves plaintext in /dev/shm | `killed_edit_scratch_is_swept_at_next_start` |
//! | 8 | a world-readable identity file is accepted silently | `world_readable_identity_is_warned_about` |
//! | 8 | future or garbage `changed:` dates bypass `rotate_after` | `bad_change_dates_do_not_bypass_rotation` |
//! | 8 | a value on the command line is echoed by the usage error | `usage_errors_do_not_echo_values` |
//! | 8 | `backup.age.age` is listed but cannot be addressed | `names_ending_in_age_can_be_addressed` |
//! | 8 | `ssh://-oProxyCommand=...` reaches ssh as an option | `ssh_host_cannot_be_an_option` |
//! | 8 | saved plans go stale when an unrelated service changes | `saved_plan_survives_unrelated_service_changes` (engine) |
//!
//! The hostile-repository cases need no engine. Run: `cargo test --test integration adversarial::`
//! (engine cases too: `tests/engine.sh cargo test --test integration -- --include-ignored adversarial::`).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::cli::{
    assert_exit, assert_no_panic, assert_ok, assert_refused, assert_refused_kind,
    assert_same_snapshot, contains_bytes, describe, run_command, stderr, stdout, TestRepo,
};
use crate::common::sync::{engine_repo, EngineExt, ENV};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The secret part of an age identity file (`AGE-SECRET-KEY-1...`).
fn secret_key_line(identity: &Path) -> String {
    fs::read_to_string(identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("an age identity")
        .to_string()
}

/// Fails when any 10 consecutive characters of the key's body appear in the output.
#[track_caller]
fn assert_no_key_fragment(out: &Output, key: &str) {
    let body = key.trim_start_matches("AGE-SECRET-KEY-1");
    let text = format!("{}{}", stdout(out), stderr(out));
    for i in 0..body.len().saturating_sub(10) {
        let fragment = &body[i..i + 10];
        assert!(
            !text.contains(fragment),
            "a fragment of the identity key ({fragment}) was printed\n{}",
            describe(out)
        );
    }
}

/// Runs with standard output connected to `stdout` (stderr captured).
fn run_with_stdout(mut cmd: Command, stdout: Stdio) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("the binary runs");
    child.wait_with_output().expect("the binary finishes")
}

/// A pipe whose reader is already closed: every write gets EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

fn full_device() -> Stdio {
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
        .into()
}

/// A report whose standard output is a closed pipe ends quietly with exit 0 (as the
/// ripgrep family does); one whose output is a full disk says so and exits 1. Never a panic.
#[track_caller]
fn assert_output_errors_end_cleanly(command: impl Fn() -> Command) {
    let out = run_with_stdout(command(), closed_pipe());
    assert_no_panic(&out);
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("error"), "{}", describe(&out));
    let out = run_with_stdout(command(), full_device());
    assert_no_panic(&out);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("standard output"),
        "{}",
        describe(&out)
    );
}

/// `check` finds errors (exit 1; `check` reports, so no hint is required) naming `names`.
#[track_caller]
fn assert_check_fails(repo: &TestRepo, names: &[&str]) {
    let out = repo.check(&[]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    for name in names {
        assert!(
            stderr(&out).contains(name),
            "check does not name {name:?}\n{}",
            describe(&out)
        );
    }
}

/// `rekey --force` (an admin's routine) is refused naming `names`, and changes nothing.
#[track_caller]
fn assert_rekey_refused(repo: &TestRepo, names: &[&str]) {
    let before = repo.snapshot();
    assert_refused(&repo.run(&["rekey", "--force"], None), names);
    assert_same_snapshot(&before, &repo.snapshot(), "a refused rekey");
}

/// `swarmseal -e ENV -H <nowhere> ARGS`: commands that must fail on the repository before
/// they would reach a Swarm.
fn offline(repo: &TestRepo, env: &str, args: &[&str]) -> Output {
    let mut all = vec!["-e", env, "-H", "unix:///nonexistent/swarmseal.sock"];
    all.extend_from_slice(args);
    repo.run(&all, None)
}

/// [`offline`] with `--format json`: a refusal is one JSON error with a kind.
fn offline_json(repo: &TestRepo, env: &str, args: &[&str]) -> Output {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    offline(repo, env, &all)
}

/// A command that takes longer than `limit` is a hang.
#[track_caller]
fn assert_quick(start: Instant, limit: Duration, what: &str) {
    assert!(
        start.elapsed() < limit,
        "{what} took {:?}, longer than {limit:?}",
        start.elapsed()
    );
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `chattr +i` (or `-i`) on a path; the suite runs as root on ext4 (see `.ci/run`).
fn chattr(flag: &str, path: &Path) {
    let out = Command::new("chattr").arg(flag).arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "chattr {flag} {} failed (this test needs root on a file system with immutable files): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Repository with a production secret the staging side must never read.
fn repo_with_prod_secret() -> TestRepo {
    let repo = TestRepo::new();
    repo.set("production", "db_password", b"PRODUCTION-ONLY-VALUE");
    repo
}

/// An identity only staging can read, added as recipient `dev` of staging, after `rekey`.
fn add_staging_developer(repo: &TestRepo) -> PathBuf {
    let (dev_id, dev_key) = repo.new_age_key("dev.txt");
    assert_ok(&repo.run(
        &["recipients", "add", "dev", &dev_key, "--to", "staging"],
        None,
    ));
    assert_ok(&repo.run(&["rekey"], None));
    dev_id
}

// ---------------------------------------------------------------------------------------
// 1. The CI identity key is never printed
// ---------------------------------------------------------------------------------------

#[test]
fn index_link_to_proc_environ_prints_no_key() {
    let repo = TestRepo::new();
    let key = secret_key_line(&repo.identity);
    let index = repo.path(".swarmseal/index.yaml");
    fs::remove_file(&index).unwrap();
    symlink("/proc/self/environ", &index).unwrap();
    for args in [&["check"][..], &["-e", "staging", "ls"], &["rekey"]] {
        let mut cmd = repo.command();
        cmd.args(args).env("SWARMSEAL_AGE_KEY", &key);
        let out = run_command(cmd, None);
        assert_refused(&out, &[".swarmseal/index.yaml", "symbolic link"]);
        assert_no_key_fragment(&out, &key);
        assert!(
            !stderr(&out).contains("SWARMSEAL_AGE_KEY="),
            "{}",
            describe(&out)
        );
    }
}

#[test]
fn index_link_to_identity_file_prints_no_key() {
    let repo = TestRepo::new();
    let key = secret_key_line(&repo.identity);
    let index = repo.path(".swarmseal/index.yaml");
    fs::remove_file(&index).unwrap();
    symlink(&repo.identity, &index).unwrap();
    let out = repo.check(&[]);
    assert_refused(&out, &[".swarmseal/index.yaml"]);
    assert_no_key_fragment(&out, &key);
    // A link inside the repository is no better: nothing is followed.
    fs::copy(&repo.identity, repo.path("notes.txt")).unwrap();
    fs::remove_file(&index).unwrap();
    symlink("../notes.txt", &index).unwrap();
    let out = repo.check(&[]);
    assert_refused(&out, &[".swarmseal/index.yaml", "symbolic link"]);
    assert_no_key_fragment(&out, &key);
}

#[test]
fn index_parse_errors_show_no_content() {
    let repo = TestRepo::new();
    let key = secret_key_line(&repo.identity);
    // A regular index file holding what a hostile commit put there.
    fs::write(
        repo.path(".swarmseal/index.yaml"),
        format!("version: 1\nenvironments:\n  staging: {key}\n"),
    )
    .unwrap();
    let out = repo.check(&[]);
    assert_refused(&out, &[".swarmseal/index.yaml:3:"]);
    assert_no_key_fragment(&out, &key);
    fs::write(repo.path(".swarmseal/index.yaml"), format!("{key}: x\n")).unwrap();
    let out = repo.run(&["-e", "staging", "set", "x"], Some(b"v"));
    assert_refused(&out, &[".swarmseal/index.yaml:1:"]);
    assert_no_key_fragment(&out, &key);
}

// ---------------------------------------------------------------------------------------
// 2. One environment never reads another's secrets
// ---------------------------------------------------------------------------------------

#[test]
fn cross_environment_link_is_refused_everywhere() {
    let repo = repo_with_prod_secret();
    let dev_id = add_staging_developer(&repo);
    symlink(
        "../production/db_password.age",
        repo.secret_file("staging", "innocent"),
    )
    .unwrap();
    let link = "secrets/staging/innocent.age";

    assert_check_fails(&repo, &[link, "symbolic link"]);
    // An admin's routine rekey stops and changes nothing.
    assert_rekey_refused(&repo, &[link]);

    // Neither the admin nor the staging developer gets the value through staging.
    for identity in [&repo.identity, &dev_id] {
        let out = repo.run_json(
            &[
                "-e",
                "staging",
                "-i",
                identity.to_str().unwrap(),
                "get",
                "innocent",
            ],
            None,
        );
        assert_refused_kind(&out, "repository", &[link]);
        assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));
    }
    // plan (and apply) refuse before they reach any Swarm.
    for cmd in [&["plan"][..], &["apply", "--yes"]] {
        let out = offline_json(&repo, "staging", cmd);
        assert_refused_kind(&out, "repository", &[link]);
        assert!(!stderr(&out).contains("nonexistent"), "{}", describe(&out));
    }
}

#[test]
fn fingerprint_key_link_is_refused() {
    let repo = repo_with_prod_secret();
    let key = repo.path(".swarmseal/fingerprint/staging.age");
    fs::remove_file(&key).unwrap();
    symlink("production.age", &key).unwrap();
    let rel = ".swarmseal/fingerprint/staging.age";
    assert_refused(&repo.check(&[]), &[rel]);
    let before = repo.snapshot();
    assert_refused(&repo.run(&["rekey", "--force"], None), &[rel]);
    assert_same_snapshot(&before, &repo.snapshot(), "rekey over a linked key");
    let out = offline(&repo, "staging", &["plan"]);
    assert_refused(&out, &[rel]);
}

#[test]
fn linked_folders_are_refused() {
    let repo = repo_with_prod_secret();
    // A sub-folder of staging that is production's folder.
    symlink("../production", repo.path("secrets/staging/sub")).unwrap();
    assert_check_fails(&repo, &["secrets/staging/sub"]);
    let out = repo.run(&["-e", "staging", "get", "sub.db_password"], None);
    assert_exit(&out, 1);
    assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));
    fs::remove_file(repo.path("secrets/staging/sub")).unwrap();

    // The environment folder itself.
    fs::remove_dir_all(repo.path("secrets/staging")).unwrap();
    symlink("production", repo.path("secrets/staging")).unwrap();
    let out = repo.run(&["-e", "staging", "get", "db_password"], None);
    assert_refused(&out, &["secrets/staging", "symbolic link"]);
    assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));
    let out = repo.run(&["-e", "staging", "set", "x"], Some(b"value"));
    assert_refused(&out, &["secrets/staging"]);
    assert!(fs::symlink_metadata(repo.path("secrets/production/x.age")).is_err());
}

#[test]
fn copy_of_another_environments_file_is_refused() {
    let repo = repo_with_prod_secret();
    let dev_id = add_staging_developer(&repo);
    // A pull request can copy bytes it cannot read.
    fs::copy(
        repo.secret_file("production", "db_password"),
        repo.secret_file("staging", "innocent"),
    )
    .unwrap();
    let rel = "secrets/staging/innocent.age";
    assert_check_fails(&repo, &[rel, "production"]);
    assert_rekey_refused(&repo, &[rel, "production"]);
    for args in [&["get", "innocent"][..], &["edit", "innocent"]] {
        let mut all = vec!["-e", "staging"];
        all.extend_from_slice(args);
        let out = repo.run(&all, None);
        assert_refused(&out, &[rel]);
        assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));
    }
    let out = offline(&repo, "staging", &["apply", "--yes"]);
    assert_refused(&out, &[rel]);
    // The staging developer still cannot read it.
    let out = repo.run(
        &[
            "-e",
            "staging",
            "-i",
            dev_id.to_str().unwrap(),
            "get",
            "innocent",
        ],
        None,
    );
    assert_exit(&out, 1);
    assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));

    // Copying the production fingerprint key over staging's is refused the same way.
    fs::remove_file(repo.secret_file("staging", "innocent")).unwrap();
    fs::copy(
        repo.path(".swarmseal/fingerprint/production.age"),
        repo.path(".swarmseal/fingerprint/staging.age"),
    )
    .unwrap();
    let out = repo.run(&["rekey", "--force"], None);
    assert_refused(&out, &[".swarmseal/fingerprint/staging.age", "production"]);
    // And a fingerprint key posing as a secret.
    fs::copy(
        repo.path(".swarmseal/fingerprint/production.age"),
        repo.secret_file("production", "key"),
    )
    .unwrap();
    let out = repo.run(&["-e", "production", "get", "key"], None);
    assert_refused(&out, &["secrets/production/key.age", "fingerprint key"]);
}

#[test]
fn unscoped_copy_of_another_environments_file_is_refused() {
    let repo = TestRepo::new();
    // Production's value written with the age CLI (no swarmseal scope in the header).
    let out = crate::common::cli::age_cli(
        [
            "-e",
            "-a",
            "-r",
            repo.public.as_str(),
            "-o",
            repo.secret_file("production", "db_password")
                .to_str()
                .unwrap(),
        ],
        Some(b"PRODUCTION-ONLY-VALUE"),
    );
    assert_ok(&out);
    assert_eq!(
        repo.get("production", "db_password"),
        b"PRODUCTION-ONLY-VALUE"
    );
    fs::copy(
        repo.secret_file("production", "db_password"),
        repo.secret_file("staging", "innocent"),
    )
    .unwrap();
    let before = repo.snapshot();
    let out = repo.run(&["rekey", "--force"], None);
    assert_refused(&out, &["secrets/staging/innocent.age", "copy"]);
    assert_same_snapshot(&before, &repo.snapshot(), "rekey of an unscoped copy");
    let out = repo.run(&["-e", "staging", "get", "innocent"], None);
    assert_refused(&out, &["secrets/staging/innocent.age"]);
    assert!(!contains_bytes(&out.stdout, b"PRODUCTION-ONLY-VALUE"));
}

// ---------------------------------------------------------------------------------------
// 3. Bounded reads, no hangs
// ---------------------------------------------------------------------------------------

#[test]
fn devices_are_refused_without_reading_them() {
    let repo = repo_with_prod_secret();
    let index = repo.path(".swarmseal/index.yaml");
    fs::remove_file(&index).unwrap();
    symlink("/dev/zero", &index).unwrap();
    let start = Instant::now();
    assert_refused(&repo.check(&[]), &[".swarmseal/index.yaml"]);
    assert_quick(
        start,
        Duration::from_secs(20),
        "check with the index linked to /dev/zero",
    );
    fs::remove_file(&index).unwrap();

    let key = repo.path(".swarmseal/fingerprint/staging.age");
    fs::remove_file(&key).unwrap();
    symlink("/dev/urandom", &key).unwrap();
    let start = Instant::now();
    let out = repo.check(&[]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains(".swarmseal/fingerprint/staging.age"));
    let out = offline(&repo, "staging", &["plan"]);
    assert_refused(&out, &[".swarmseal/fingerprint/staging.age"]);
    assert_quick(
        start,
        Duration::from_secs(20),
        "commands with a key linked to /dev/urandom",
    );
}

#[test]
fn fifo_is_refused_without_waiting() {
    let repo = repo_with_prod_secret();
    mkfifo(&repo.secret_file("staging", "x"));
    let start = Instant::now();
    assert_check_fails(&repo, &["secrets/staging/x.age", "FIFO"]);
    assert_refused_kind(
        &repo.run_json(&["-e", "staging", "get", "x"], None),
        "repository",
        &["secrets/staging/x.age", "FIFO"],
    );
    assert_refused_kind(
        &offline_json(&repo, "staging", &["plan"]),
        "repository",
        &["secrets/staging/x.age"],
    );
    // The index and the manifest as FIFOs.
    fs::remove_file(repo.secret_file("staging", "x")).unwrap();
    let index = repo.path(".swarmseal/index.yaml");
    fs::remove_file(&index).unwrap();
    mkfifo(&index);
    assert_refused(&repo.check(&[]), &[".swarmseal/index.yaml", "FIFO"]);
    assert_quick(start, Duration::from_secs(30), "commands on FIFOs");
}

#[test]
fn oversized_files_are_refused_unread() {
    let repo = repo_with_prod_secret();
    // Sparse files: 4 GiB on paper, nothing on disk.
    let big = |path: &Path| {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        f.set_len(4 << 30).unwrap();
    };
    let start = Instant::now();
    big(&repo.path(".swarmseal/index.yaml"));
    assert_refused(&repo.check(&[]), &[".swarmseal/index.yaml", "larger than"]);
    fs::remove_file(repo.path(".swarmseal/index.yaml")).unwrap();
    big(&repo.secret_file("staging", "huge"));
    assert_check_fails(&repo, &["secrets/staging/huge.age", "larger than"]);
    fs::remove_file(repo.secret_file("staging", "huge")).unwrap();
    big(&repo.path("swarmseal.yaml"));
    assert_refused(&repo.check(&[]), &["swarmseal.yaml", "larger than"]);
    assert_quick(start, Duration::from_secs(30), "commands on huge files");
}

// ---------------------------------------------------------------------------------------
// 4. Output errors end the command cleanly
// ---------------------------------------------------------------------------------------

#[test]
fn closed_or_full_stdout_never_panics() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    let commands: &[&[&str]] = &[
        &["recipients", "ls"],
        &["--format", "json", "recipients", "ls"],
        &["-e", "staging", "ls"],
        &["-e", "staging", "--format", "markdown", "ls"],
        &["-e", "staging", "get", "db_password"],
        &["--format", "json", "check"],
        &["completions", "bash"],
        &["man"],
        &["keygen"],
        &["textconv", "secrets/staging/db_password.age"],
    ];
    for args in commands {
        assert_output_errors_end_cleanly(|| {
            let mut cmd = repo.command();
            cmd.args(*args);
            cmd
        });
    }
}

// ---------------------------------------------------------------------------------------
// 5. A failing command leaves the repository as it was; concurrent ones lose nothing
// ---------------------------------------------------------------------------------------

#[test]
fn failed_index_write_leaves_the_repository_unchanged() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"one");
    repo.set("staging", "other", b"two");
    let (_, carol) = repo.new_age_key("carol.txt");
    assert_ok(&repo.run(&["recipients", "add", "carol", &carol], None));
    let meta = repo.path(".swarmseal");
    let before = repo.snapshot();
    chattr("+i", &meta);
    let attempts: Vec<(Vec<&str>, Option<&[u8]>)> = vec![
        (
            vec!["-e", "staging", "set", "db_password"],
            Some(b"changed"),
        ),
        (vec!["-e", "staging", "set", "new_one"], Some(b"new")),
        (vec!["-e", "staging", "rm", "other"], None),
        (vec!["rekey"], None),
    ];
    let mut outs = Vec::new();
    for (args, stdin) in &attempts {
        outs.push((args.clone(), repo.run(args, *stdin)));
    }
    chattr("-i", &meta);
    for (args, out) in outs {
        assert_refused(&out, &[".swarmseal"]);
        assert!(
            stderr(&out).contains("nothing in the repository was changed"),
            "{args:?}\n{}",
            describe(&out)
        );
    }
    assert_same_snapshot(&before, &repo.snapshot(), "commands failing on the index");
    // And once the folder is writable again, they work.
    assert_ok(&repo.run(&["rekey"], None));
    assert_eq!(repo.get("staging", "db_password"), b"one");
}

#[test]
fn parallel_sets_lose_nothing() {
    let repo = TestRepo::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut cmd = repo.command();
            cmd.args(["-e", "staging", "set", &format!("parallel_{i}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("value {i}").as_bytes())
                .unwrap();
            child
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_ok(&out);
    }
    let index = fs::read_to_string(repo.path(".swarmseal/index.yaml")).unwrap();
    let recorded = |name: &str| {
        index.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with(&format!("{name}:")) || l.starts_with(&format!("'{name}':"))
        })
    };
    for i in 0..20 {
        assert!(
            recorded(&format!("parallel_{i}")),
            "parallel_{i} lost:\n{index}"
        );
        assert_eq!(
            repo.get("staging", &format!("parallel_{i}")),
            format!("value {i}").as_bytes()
        );
    }
    let out = repo.check(&[]);
    assert_ok(&out);
    assert!(stderr(&out).contains("0 warnings"), "{}", describe(&out));
}

#[test]
fn leftover_temp_files_are_recognised_and_removed() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    let dir = repo.path("secrets/staging");
    // What a killed writer leaves: a partly written ciphertext, an empty file.
    let partial = fs::read(repo.secret_file("staging", "db_password")).unwrap();
    fs::write(
        dir.join(".swarmseal-tmp-AbC123"),
        &partial[..partial.len() / 2],
    )
    .unwrap();
    fs::write(dir.join(".swarmseal-tmp-empty1"), b"").unwrap();
    fs::write(
        repo.path(".swarmseal/.swarmseal-tmp-idx123"),
        b"version: 1\n",
    )
    .unwrap();
    let out = repo.check(&[]);
    assert_ok(&out);
    for leftover in [
        dir.join(".swarmseal-tmp-AbC123"),
        dir.join(".swarmseal-tmp-empty1"),
        repo.path(".swarmseal/.swarmseal-tmp-idx123"),
    ] {
        assert!(
            !leftover.exists(),
            "{} was not cleaned up",
            leftover.display()
        );
    }
    // A file that only borrows the name is still a leak.
    fs::write(dir.join(".swarmseal-tmp-plain1"), b"hunter2").unwrap();
    let out = repo.check(&[]);
    assert_refused(&out, &["secrets/staging/.swarmseal-tmp-plain1", "leak"]);
    assert!(dir.join(".swarmseal-tmp-plain1").exists());
}

#[test]
fn rekey_killed_half_way_leaves_a_usable_repository() {
    let repo = TestRepo::new();
    for i in 0..150 {
        repo.set("staging", &format!("s{i}"), format!("value {i}").as_bytes());
    }
    for delay_ms in [30u64, 120, 400] {
        let mut cmd = repo.command();
        cmd.args(["rekey", "--force"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the kill interrupted: no leak reported, no leftovers, every value intact.
        let out = repo.check(&[]);
        assert_no_panic(&out);
        assert!(!stderr(&out).contains("leak"), "{}", describe(&out));
        let leftovers: Vec<_> = walk(&repo.root)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".swarmseal-tmp-")
            })
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        for i in [0, 75, 149] {
            assert_eq!(
                repo.get("staging", &format!("s{i}")),
                format!("value {i}").as_bytes()
            );
        }
    }
    assert_ok(&repo.run(&["rekey"], None));
    assert_ok(&repo.check(&[]));
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// 8. Smaller cases without an engine
// ---------------------------------------------------------------------------------------

#[test]
fn targets_cannot_escape_run_secrets() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    for target in ["/etc/evil", "../../etc/evil", "a/../../b"] {
        let manifest = fs::read_to_string(repo.path("swarmseal.yaml")).unwrap();
        let edited = format!("{manifest}secrets:\n  db_password:\n    target: \"{target}\"\n");
        fs::write(repo.path("swarmseal.yaml"), &edited).unwrap();
        assert_refused_kind(
            &repo.run_json(&["check"], None),
            "manifest",
            &["swarmseal.yaml", "invalid target"],
        );
        assert_refused_kind(
            &offline_json(&repo, "staging", &["plan"]),
            "manifest",
            &["invalid target"],
        );
        fs::write(repo.path("swarmseal.yaml"), manifest).unwrap();
    }
}

#[test]
fn plan_shows_mount_setting_changes() {
    use std::collections::BTreeMap;
    use swarmseal::domain::state::{
        labels, Desired, DesiredSecret, Observed, SecretRef, ServiceRefs, SwarmSecret,
    };
    let old = SwarmSecret {
        id: "old-id".into(),
        name: "db_password-0000000000".into(),
        version: 1,
        created_at: "2026-01-01T00:00:00Z".into(),
        labels: BTreeMap::from([
            (labels::MANAGED.to_string(), "true".to_string()),
            (labels::PROJECT.to_string(), "p".to_string()),
            (labels::ENVIRONMENT.to_string(), "e".to_string()),
            (labels::NAME.to_string(), "db_password".to_string()),
            (labels::FINGERPRINT.to_string(), "0".repeat(64)),
            (labels::SOURCE.to_string(), "a".repeat(64)),
        ]),
    };
    let observed = Observed {
        cluster_id: "c".into(),
        secrets: vec![old],
        services: vec![ServiceRefs {
            id: "svc".into(),
            name: "web".into(),
            version: 1,
            secrets: vec![SecretRef {
                secret_id: "old-id".into(),
                secret_name: "db_password-0000000000".into(),
                target: "db_pw".into(),
                uid: "0".into(),
                gid: "0".into(),
                mode: 0o444,
                missing: false,
            }],
            ..ServiceRefs::default()
        }],
        taken: Vec::new(),
        configs: Default::default(),
    };
    let desired = Desired {
        project: "p".into(),
        environment: "e".into(),
        secrets: BTreeMap::from([(
            "db_password".to_string(),
            DesiredSecret {
                name: "db_password".into(),
                source: "b".repeat(64),
                fingerprint: Some("1".repeat(64)),
                labels: BTreeMap::new(),
                target: Some("db_password".into()),
                uid: None,
                gid: None,
                mode: Some(0o400),
                kind: Default::default(),
                plain: None,
            },
        )]),
        keep_versions: 0,
        configs: Default::default(),
    };
    let plan = swarmseal::plan::plan(&desired, &observed);
    let ctx = swarmseal::plan::render::Context {
        endpoint: "unix:///x",
        cluster_id: "c",
    };
    let human = swarmseal::plan::render::human(&plan, &ctx, false, false);
    assert!(
        human.contains("web: target db_pw -> db_password"),
        "{human}"
    );
    assert!(human.contains("web: mode 0444 -> 0400"), "{human}");
    let json = swarmseal::plan::render::json(&plan, &ctx).to_string();
    assert!(json.contains(r#""setting":"target""#), "{json}");
    let md = swarmseal::plan::render::markdown(&plan, &ctx, false);
    assert!(md.contains("web: target db_pw -> db_password"), "{md}");
}

#[test]
fn git_diff_never_shows_a_fingerprint_key() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"VISIBLE-IN-DIFF-one");
    let attributes = fs::read_to_string(repo.path(".gitattributes")).unwrap();
    assert!(
        attributes.contains(".swarmseal/**/*.age -diff"),
        "{attributes}"
    );
    let git = |args: &[&str]| {
        let mut g = Command::new("git");
        g.args(args)
            .current_dir(&repo.root)
            .env("HOME", &repo.home)
            .env("XDG_CONFIG_HOME", &repo.config)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .env_remove("GIT_DIR")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    Path::new(crate::common::cli::BIN)
                        .parent()
                        .unwrap()
                        .display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        let out = g.output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    git(&["init", "-q"]);
    git(&["config", "diff.swarmseal.textconv", "swarmseal textconv"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "one"]);
    repo.set("staging", "db_password", b"VISIBLE-IN-DIFF-two");
    let diff = git(&["diff"]);
    assert!(
        contains_bytes(&diff, b"VISIBLE-IN-DIFF-two"),
        "textconv is in use"
    );
    // A new fingerprint key: its diff shows no decrypted bytes, only that it changed.
    fs::remove_file(repo.path(".swarmseal/fingerprint/staging.age")).unwrap();
    assert_ok(&repo.run(&["rekey"], None));
    let diff = git(&["diff", "--", ".swarmseal/fingerprint/staging.age"]);
    let text = String::from_utf8_lossy(&diff);
    assert!(text.contains("Binary files"), "{text}");
    // textconv itself refuses a fingerprint key, whatever .gitattributes says.
    let out = repo.run(&["textconv", ".swarmseal/fingerprint/staging.age"], None);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("fingerprint key"),
        "{}",
        describe(&out)
    );
    assert!(out.stdout.len() < 200);
}

#[test]
fn linked_manifest_is_refused_and_kept() {
    let repo = TestRepo::new();
    let outside = repo.work.join("swarmseal.yaml");
    fs::rename(repo.path("swarmseal.yaml"), &outside).unwrap();
    symlink(&outside, repo.path("swarmseal.yaml")).unwrap();
    let (_, carol) = repo.new_age_key("carol.txt");
    for args in [
        &["check"][..],
        &["-e", "staging", "-H", "unix:///nonexistent/s.sock", "plan"],
        &["recipients", "add", "carol", &carol],
        &["-e", "staging", "ls"],
    ] {
        assert_refused(&repo.run(args, None), &["swarmseal.yaml", "symbolic link"]);
    }
    assert!(fs::symlink_metadata(repo.path("swarmseal.yaml"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!fs::read_to_string(&outside).unwrap().contains("carol"));
}

#[test]
fn killed_edit_scratch_is_swept_at_next_start() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"PLAINTEXT-IN-SCRATCH");
    let record = repo.work.join("scratch-path");
    // The editor records where the plaintext is, then waits to be killed.
    let editor = repo.script(
        "editor.sh",
        &format!("printf '%s' \"$1\" > '{}'; sleep 60", record.display()),
    );
    let mut cmd = repo.command();
    cmd.args(["-e", "staging", "edit", "db_password"])
        .env("EDITOR", &editor)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    crate::common::engine::wait_until("the editor to start", Duration::from_secs(30), || {
        fs::read_to_string(&record).is_ok_and(|s| !s.is_empty())
    });
    let scratch = PathBuf::from(fs::read_to_string(&record).unwrap());
    child.kill().unwrap(); // SIGKILL: no chance to wipe
    child.wait().unwrap();
    let _ = Command::new("pkill")
        .args(["-f", editor.to_str().unwrap()])
        .status();
    // (Another test's swarmseal, running in parallel, may already have swept it.)
    if let Ok(left) = fs::read(&scratch) {
        assert_eq!(left, b"PLAINTEXT-IN-SCRATCH");
    }
    // Any next command sweeps it.
    assert_ok(&repo.run(&["-e", "staging", "ls"], None));
    assert!(!scratch.exists(), "{} survived", scratch.display());
    assert!(!scratch.parent().unwrap().exists());
}

#[test]
fn world_readable_identity_is_warned_about() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    let loose = repo.work.join("loose.txt");
    fs::copy(&repo.identity, &loose).unwrap();
    let get_with = |mode: u32| {
        fs::set_permissions(&loose, fs::Permissions::from_mode(mode)).unwrap();
        let identity = loose.to_str().unwrap();
        let out = repo.run(
            &["-e", "staging", "-i", identity, "get", "db_password"],
            None,
        );
        assert_ok(&out);
        out
    };
    let out = get_with(0o644);
    assert!(stderr(&out).contains("chmod 600"), "{}", describe(&out));
    assert!(stderr(&out).contains("loose.txt"), "{}", describe(&out));
    let out = get_with(0o600);
    assert!(!stderr(&out).contains("chmod"), "{}", describe(&out));
}

#[test]
fn bad_change_dates_do_not_bypass_rotation() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    let manifest = fs::read_to_string(repo.path("swarmseal.yaml")).unwrap();
    fs::write(
        repo.path("swarmseal.yaml"),
        format!("{manifest}secrets:\n  db_password:\n    rotate_after: 30d\n"),
    )
    .unwrap();
    assert_ok(&repo.check(&[]));
    for (bad, why) in [
        ("2999-01-01T00:00:00Z", "in the future"),
        ("soon", "not a date"),
    ] {
        repo.set_change_stamp("staging", "db_password", bad);
        let out = repo.check(&[]);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains(why), "{bad}: {}", describe(&out));
        assert!(stderr(&out).contains("db_password"), "{}", describe(&out));
    }
}

#[test]
fn usage_errors_do_not_echo_values() {
    let repo = TestRepo::new();
    for args in [
        &["-e", "staging", "set", "db_password", "hunter2-SECRET"][..],
        &[
            "-e",
            "staging",
            "set",
            "db_password",
            "--",
            "hunter2-SECRET",
        ],
        &[
            "-e",
            "staging",
            "set",
            "db_password",
            "--length",
            "hunter2-SECRET",
            "--generate",
        ],
    ] {
        let out = repo.run(args, None);
        assert_exit(&out, 1);
        assert!(
            !stderr(&out).contains("hunter2"),
            "{args:?}\n{}",
            describe(&out)
        );
        assert!(stderr(&out).contains("not shown"), "{}", describe(&out));
    }
}

#[test]
fn names_ending_in_age_can_be_addressed() {
    let repo = TestRepo::new();
    repo.set("staging", "backup.age.age", b"one");
    assert!(repo.path("secrets/staging/backup.age.age").exists());
    let out = repo.run(&["-e", "staging", "ls"], None);
    assert!(stdout(&out).contains("backup.age "), "{}", describe(&out));
    assert_eq!(repo.get("staging", "backup.age"), b"one");
    repo.set("staging", "backup.age", b"two");
    assert_eq!(repo.get("staging", "backup.age"), b"two");
    assert!(!repo.path("secrets/staging/backup.age").exists());
    assert_ok(&repo.run(&["-e", "staging", "rm", "backup.age"], None));
    assert!(!repo.path("secrets/staging/backup.age.age").exists());
}

#[test]
fn ssh_host_cannot_be_an_option() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");
    let proof = repo.work.join("proxy-command-ran");
    let host = format!("ssh://-oProxyCommand=touch {}", proof.display());
    let out = repo.run(&["-e", "staging", "-H", &host, "plan"], None);
    assert_refused(&out, &["ssh://"]);
    for h in [
        "ssh://-oProxyCommand=sh",
        "ssh://-oProxyCommand=sh@host",
        "ssh://user@-oProxyCommand=sh",
    ] {
        let out = repo.run(&["-e", "staging", "-H", h, "plan"], None);
        assert_refused(&out, &["invalid ssh"]);
    }
    assert!(!proof.exists(), "ssh ran the injected ProxyCommand");
}

// ---------------------------------------------------------------------------------------
// Engine cases
// ---------------------------------------------------------------------------------------

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn status_into_a_closed_pipe_exits_quietly() {
    let Some((_engine, _guard, repo)) = engine_repo("advpipe") else {
        return;
    };
    repo.set("db_password", b"value");
    repo.apply();
    for args in [
        &["status"][..],
        &["ls", "--remote"],
        &["plan"],
        &["--format", "json", "plan"],
    ] {
        assert_output_errors_end_cleanly(|| repo.command(args));
    }
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_to_a_full_stdout_releases_its_lock() {
    let Some((engine, _guard, repo)) = engine_repo("advfull") else {
        return;
    };
    repo.set("db_password", b"value");
    let marker = swarmseal::swarm::lock_name(&repo.project, ENV);
    for (stdout, what) in [
        (full_device(), "a full disk"),
        (closed_pipe(), "a closed pipe"),
    ] {
        let out = run_with_stdout(repo.command(&["apply", "--yes"]), stdout);
        assert_no_panic(&out);
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains("nothing was applied"),
            "{what}: {}",
            describe(&out)
        );
        assert!(
            engine.secret_named(&marker).is_none(),
            "{what}: the lock was left behind"
        );
        assert!(repo.managed().is_empty(), "{what}: something was applied");
    }
    // A report that cannot be written after the apply says so; the lock is gone too.
    let out = run_with_stdout(
        repo.command(&["--format", "json", "apply", "--yes"]),
        full_device(),
    );
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("the apply finished"),
        "{}",
        describe(&out)
    );
    assert!(engine.secret_named(&marker).is_none());
    assert_eq!(repo.managed().len(), 1);
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn hangup_and_quit_release_the_apply_lock() {
    let Some((engine, guard, repo)) = engine_repo("advsig") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    // A service to wait for, so that the apply is still running when the signal comes.
    repo.app_service(&guard, "db_password");
    let marker = swarmseal::swarm::lock_name(&repo.project, ENV);
    for (i, signal) in ["HUP", "QUIT"].iter().enumerate() {
        repo.set("db_password", format!("value {i}").as_bytes());
        let child = repo
            .command(&["apply", "--yes", "--wait", "--wait-timeout", "2m"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        crate::common::engine::wait_until(
            "the apply to take its lock",
            Duration::from_secs(60),
            || engine.secret_named(&marker).is_some(),
        );
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert_exit(&out, 1);
        assert!(
            stderr(&out).contains(&format!("SIG{signal}")),
            "{}",
            describe(&out)
        );
        assert!(
            engine.secret_named(&marker).is_none(),
            "SIG{signal} left the lock"
        );
        repo.apply();
    }
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn unlock_refuses_a_live_holder_without_force() {
    let Some((engine, _guard, repo)) = engine_repo("advunlock") else {
        return;
    };
    repo.set("db_password", b"value");
    let (rt, swarm) = crate::common::sync::library_swarm(&engine);
    // This test process holds the lock: alive, on this host.
    let me = swarmseal::swarm::holder::this_process();
    let lock = rt
        .block_on(swarm.lock(&repo.project, ENV, &me, Duration::ZERO))
        .unwrap();
    let out = repo.run_json(&["unlock"]);
    assert_refused_kind(&out, "lock_held", &["still running", "--force"]);
    let out = repo.run_json(&["apply", "--yes"]);
    assert_refused_kind(&out, "lock_held", &["running on this host"]);
    let out = repo.run(&["unlock", "--force"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("released"), "{}", describe(&out));
    drop(lock);

    // A holder that died (same host, a process that no longer runs) is broken with a note.
    let token = me.process.clone().unwrap();
    let parts: Vec<&str> = token.split('/').collect();
    let dead = swarmseal::swarm::holder::Holder {
        label: "root@here pid 1".into(),
        process: Some(format!("{}/{}/{}/1", parts[0], parts[1], parts[2])),
    };
    rt.block_on(swarm.lock(&repo.project, ENV, &dead, Duration::ZERO))
        .unwrap();
    let out = repo.run_json(&["apply", "--yes"]);
    // The exact command, with the flags this apply was given (--format is not one of them).
    let exact = format!("`swarmseal -e {ENV} -H {} unlock`", engine.host);
    assert_refused_kind(&out, "lock_held", &["no longer running", &exact]);
    repo.unlock_dead_holder();
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn swarm_text_is_escaped_on_the_terminal() {
    let Some((engine, _guard, repo)) = engine_repo("advansi") else {
        return;
    };
    repo.set("db_password", b"value");
    repo.apply();
    let (rt, swarm) = crate::common::sync::library_swarm(&engine);
    let evil = swarmseal::swarm::holder::Holder::named(
        "\u{1b}[2J\u{1b}[31mFAKE\u{1b}]0;title\u{7}\r\nerror: forged line",
    );
    rt.block_on(swarm.lock(&repo.project, ENV, &evil, Duration::ZERO))
        .unwrap();
    for args in [&["status"][..], &["plan"], &["unlock"]] {
        let out = repo.run(args);
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        for (byte, what) in [
            (0x1b, "an escape"),
            (0x07, "a bell"),
            (b'\r', "a carriage return"),
        ] {
            assert!(
                !all.contains(&byte),
                "{args:?} printed {what}\n{}",
                describe(&out)
            );
        }
        assert!(
            !String::from_utf8_lossy(&all).contains("\nerror: forged line"),
            "{args:?} let a label forge a line\n{}",
            describe(&out)
        );
    }
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn precreated_version_is_trusted_as_documented() {
    // Docker never returns a secret's data, so a secret that carries the labels of the
    // next version (made by someone with API access, who could as well run any service)
    // is taken for it. The README's threat model says so; this pins the behaviour it
    // describes, and that swarmseal never changes or removes what it did not create.
    let Some((engine, guard, repo)) = engine_repo("advprecreate") else {
        return;
    };
    repo.set("db_password", b"real value");
    let (_, plan) = repo.plan_json(&[]);
    let change = crate::common::sync::change(&plan, "create", "db_password");
    let name = change["swarm_name"].as_str().unwrap().to_string();
    // Same name, other labels: a name conflict, refused before anything is created;
    // the planted secret is untouched.
    guard.unmanaged_secret(&name, b"planted", &repo.t.work);
    let out = repo.run(&["apply", "--yes"]);
    assert_refused(&out, &[&name, "unmanaged secret"]);
    assert!(engine.secret_named(&name).is_some());
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains("never returns a secret's data"),
        "the README's threat model documents the pre-created version"
    );
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn unrelated_unhealthy_service_is_a_warning() {
    let Some((engine, guard, repo)) = engine_repo("advcrash") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.set("api_key", b"key");
    repo.apply();
    // A service of the environment that crash-loops for its own reasons.
    let broken = format!("{}-broken", repo.project);
    guard.create_service(
        &broken,
        &[
            "--secret",
            &format!("source={},target=api_key", repo.current("api_key").name),
            &engine.image,
            "sh",
            "-c",
            "exit 1",
        ],
    );
    crate::common::engine::wait_until(
        "the broken service to fail once",
        Duration::from_secs(60),
        || {
            !engine
                .docker_cli_lines(&[
                    "service",
                    "ps",
                    "-q",
                    "--filter",
                    "desired-state=shutdown",
                    &broken,
                ])
                .is_empty()
        },
    );
    let app = format!("{}-app", repo.project);
    guard.service(
        &app,
        &repo.project,
        &[(&repo.current("db_password").name, "db_password")],
    );
    guard.wait_running(&app);
    repo.set("db_password", b"two");
    let out = repo.run(&["apply", "--yes", "--wait", "--wait-timeout", "90s"]);
    assert_ok(&out);
    assert!(stderr(&out).contains("warning:"), "{}", describe(&out));
    assert!(stderr(&out).contains(&broken), "{}", describe(&out));
    let c = guard.wait_running(&app);
    assert_eq!(engine.read_in(&c, "/run/secrets/db_password"), b"two");
}

#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn saved_plan_survives_unrelated_service_changes() {
    let Some((engine, guard, repo)) = engine_repo("advstale") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    // Another stack's service, with another secret of its own.
    let other = format!("{}-other", repo.project);
    guard.unmanaged_secret(&other, b"not ours", &repo.t.work);
    let unrelated = format!("{}-unrelated", repo.project);
    guard.service(&unrelated, &repo.project, &[(&other, "other")]);
    repo.set("db_password", b"two");
    let plan_file = repo.t.work.join("plan.json");
    assert_ok(&repo.run(&["plan", "--out", plan_file.to_str().unwrap()]));
    engine.docker_cli_ok(&[
        "service",
        "update",
        "--detach",
        "--quiet",
        "--label-add",
        "touched=yes",
        &unrelated,
    ]);
    let out = repo.run(&["apply", plan_file.to_str().unwrap()]);
    assert_ok(&out);
    // A service that starts using one of the plan's secrets does make it stale.
    let applied = repo.current("db_password");
    repo.set("db_password", b"three");
    assert_ok(&repo.run(&["plan", "--out", plan_file.to_str().unwrap()]));
    let user = format!("{}-user", repo.project);
    guard.service(&user, &repo.project, &[(&applied.name, "db_password")]);
    let out = repo.run_json(&["apply", plan_file.to_str().unwrap()]);
    assert_refused_kind(&out, "stale_plan", &["stale"]);
}
