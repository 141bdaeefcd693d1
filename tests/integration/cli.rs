//! End-to-end tests of the `swarmseal` binary on local repositories (no Swarm needed):
//! interoperability with the `age` CLI, recipients and rekey, refusal of bad input, and the
//! repository commands (the README's "Commands", `docs/design.md#error-model`).
//!
//! Every test works in its own temporary folder with its own `HOME`/`XDG_CONFIG_HOME` (see
//! `tests/integration/common/cli.rs`). Needs the `age`, `age-keygen` and `ssh-keygen` programs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::common::cli::{
    age_cli, assert_exit, assert_no_panic, assert_ok, assert_refused, assert_refused_kind,
    assert_same_snapshot, contains_bytes, describe, json_error, on_terminal, snapshot, stderr,
    stdout, TestRepo, ENVS,
};

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A binary value that certainly holds NUL, CR, LF, 0xff and invalid UTF-8.
fn binary_value(n: usize) -> Vec<u8> {
    let mut v = random_bytes(n);
    let specials = [0u8, b'\r', b'\n', 0xff, 0xfe, 0xc3, 0x28, 0];
    v[..specials.len()].copy_from_slice(&specials);
    let last = v.len() - 1;
    v[last] = b'\n';
    v
}

/// stdout and stderr together, for reports whose lines may go to either.
fn combined(out: &Output) -> String {
    format!("{}\n{}", stdout(out), stderr(out))
}

/// `age -d -i IDENTITY FILE`.
fn age_decrypt(identity: &Path, file: &Path) -> Output {
    age_cli(
        [
            Path::new("-d").as_os_str(),
            Path::new("-i").as_os_str(),
            identity.as_os_str(),
            file.as_os_str(),
        ],
        None,
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. Interoperability with the age CLI, identities
// ---------------------------------------------------------------------------------------

/// `age -d -i KEY secrets/<env>/x.age` reads what `set` wrote, in every environment, and
/// `set` writes armored files.
#[test]
fn age_cli_decrypts_what_set_wrote() {
    let repo = TestRepo::new();
    for env in ENVS {
        repo.set(env, "db_password", format!("pw-for-{env}").as_bytes());
    }
    for env in ENVS {
        let file = repo.secret_file(env, "db_password");
        let text = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.starts_with(ARMOR_BEGIN.as_bytes()),
            "{} is not armored",
            file.display()
        );
        let out = age_decrypt(&repo.identity, &file);
        assert!(
            out.status.success(),
            "age -d failed on {}\n{}",
            file.display(),
            describe(&out)
        );
        assert_eq!(
            out.stdout,
            format!("pw-for-{env}").as_bytes(),
            "{}",
            file.display()
        );
    }
}

/// `get` reads files the age CLI wrote, binary (`age -r`) and armored (`age -a -r`), also
/// in a sub-folder.
#[test]
fn get_reads_files_written_by_the_age_cli() {
    let repo = TestRepo::new();
    let value = binary_value(1500);
    let cases = [
        (
            "staging",
            "secrets/staging/from_age_binary.age",
            "from_age_binary",
            false,
        ),
        (
            "staging",
            "secrets/staging/from_age_armored.age",
            "from_age_armored",
            true,
        ),
        (
            "production",
            "secrets/production/tls/cli.key.age",
            "tls.cli.key",
            false,
        ),
        (
            "production",
            "secrets/production/tls/cli.crt.age",
            "tls/cli.crt",
            true,
        ),
    ];
    for (_, rel, _, armored) in &cases {
        let path = repo.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut args: Vec<&str> = Vec::new();
        if *armored {
            args.push("-a");
        }
        args.extend(["-r", repo.public.as_str(), "-o", path_str(&path)]);
        let out = age_cli(&args, Some(&value));
        assert!(
            out.status.success(),
            "age {args:?} failed\n{}",
            describe(&out)
        );
        let head = fs::read(&path).unwrap();
        assert_eq!(
            head.starts_with(ARMOR_BEGIN.as_bytes()),
            *armored,
            "{rel}: unexpected format"
        );
    }
    for (env, rel, name, _) in &cases {
        let got = repo.get(env, name);
        assert!(
            got == value,
            "{rel} (get {name}) did not round-trip: {} bytes back",
            got.len()
        );
    }
}

/// A 4 KiB random binary value round-trips byte-exact through `set --file` and `set` from
/// standard input, and the age CLI reads the same bytes.
#[test]
fn binary_value_round_trips_byte_exact() {
    let repo = TestRepo::new();
    let value = binary_value(4096);
    let file = repo.work.join("keystore.bin");
    fs::write(&file, &value).unwrap();

    let out = repo.run(
        &[
            "-e",
            "staging",
            "set",
            "from_file",
            "--file",
            path_str(&file),
        ],
        None,
    );
    assert_ok(&out);
    repo.set("staging", "from_stdin", &value);

    for name in ["from_file", "from_stdin"] {
        let got = repo.get("staging", name);
        assert_eq!(got.len(), value.len(), "{name}: length differs");
        assert!(got == value, "{name}: bytes differ");
        let out = age_decrypt(&repo.identity, &repo.secret_file("staging", name));
        assert!(out.status.success(), "{}", describe(&out));
        assert!(out.stdout == value, "{name}: the age CLI reads other bytes");
    }
}

/// A new ssh-ed25519 recipient (`recipients add bob "$(cat k.pub)"`) + `rekey`: bob's ssh key
/// decrypts every secret of both environments with the age CLI, and with `swarmseal -i k`.
#[test]
fn ssh_ed25519_recipient_reads_everything_after_rekey() {
    let repo = TestRepo::new();
    let values = [
        (
            "staging",
            "db_password",
            "tls/api.crt".to_string(),
            b"staging-db".to_vec(),
        ),
        (
            "production",
            "db_password",
            "tls/api.crt".to_string(),
            b"production-db".to_vec(),
        ),
    ];
    for (env, name, sub, value) in &values {
        repo.set(env, name, value);
        repo.set(env, sub, &[value.as_slice(), b"-cert"].concat());
    }
    let bob = repo.work.join("bob_ed25519");
    let bob_pub = crate::common::cli::ssh_keygen(&bob, "bob@laptop");
    assert!(bob_pub.starts_with("ssh-ed25519 "), "{bob_pub}");

    let secret_files: Vec<PathBuf> = ENVS
        .iter()
        .flat_map(|env| {
            [
                repo.secret_file(env, "db_password"),
                repo.path(&format!("secrets/{env}/tls/api.crt.age")),
            ]
        })
        .collect();
    // Before: bob cannot read anything (so the check below means something).
    for f in &secret_files {
        assert!(
            !age_decrypt(&bob, f).status.success(),
            "bob could read {} before being added",
            f.display()
        );
    }

    let out = repo.run(&["recipients", "add", "bob", &bob_pub], None);
    assert_ok(&out);
    let out = repo.run(&["recipients", "ls"], None);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("bob"),
        "recipients ls does not list bob\n{}",
        describe(&out)
    );
    let out = repo.run(&["rekey"], None);
    assert_ok(&out);

    for f in &secret_files {
        let out = age_decrypt(&bob, f);
        assert!(
            out.status.success(),
            "age -d -i bob's ssh key cannot read {}\n{}",
            f.display(),
            describe(&out)
        );
    }
    // Every .age file, the fingerprint keys included (bob must be able to plan).
    for rel in repo.age_files() {
        let out = age_decrypt(&bob, &repo.path(&rel));
        assert!(
            out.status.success(),
            "age -d -i bob's ssh key cannot read {rel}\n{}",
            describe(&out)
        );
    }
    for (env, name, sub, value) in &values {
        let out = repo.run(&["-i", path_str(&bob), "-e", env, "get", name], None);
        assert_ok(&out);
        assert_eq!(&out.stdout, value, "swarmseal -i bob get {name} in {env}");
        let out = repo.run(&["-i", path_str(&bob), "-e", env, "get", sub], None);
        assert_ok(&out);
        assert_eq!(out.stdout, [value.as_slice(), b"-cert"].concat());
        // And the values are the same for the original recipient.
        assert_eq!(&repo.get(env, name), value);
    }
    let out = repo.check(&[]);
    assert_ok(&out);
}

/// `SWARMSEAL_AGE_KEY` (identity text in the variable) works with no identity file
/// anywhere; without it the command is refused with advice.
#[test]
fn swarmseal_age_key_variable_needs_no_identity_file() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"from-the-variable");
    let text = fs::read_to_string(&repo.identity).unwrap();
    fs::remove_file(&repo.identity).unwrap();
    // The home folder now holds no identity at all.
    for (path, entry) in snapshot(&repo.home) {
        assert!(
            !matches!(entry, crate::common::cli::Entry::File { .. }),
            "unexpected file in HOME: {}",
            path.display()
        );
    }

    let out = repo.run_json(&["-e", "staging", "get", "x"], None);
    // The hint names the variable: the point of this test.
    assert_refused_kind(&out, "identity", &["SWARMSEAL_AGE_KEY"]);
    assert!(out.stdout.is_empty());

    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_AGE_KEY", &text)
        .args(["-e", "staging", "get", "x"]);
    let out = repo.run_cmd(cmd, None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"from-the-variable");

    // A bare key line (as CI variables often hold) works too, and so does set.
    let key_line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_AGE_KEY", &key_line)
        .args(["-e", "staging", "set", "y"]);
    assert_ok(&repo.run_cmd(cmd, Some(b"second")));
    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_AGE_KEY", &key_line)
        .args(["-e", "staging", "get", "y"]);
    let out = repo.run_cmd(cmd, None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"second");
    // No identity file was created on the way.
    assert!(
        !repo.identity.exists(),
        "an identity file was created at {}",
        repo.identity.display()
    );
}

/// `SWARMSEAL_IDENTITY` (a path) works, and `-i` wins over it.
#[test]
fn swarmseal_identity_variable_and_i_flag() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v1");
    let moved = repo.work.join("my-key.txt");
    fs::rename(&repo.identity, &moved).unwrap();
    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_IDENTITY", &moved)
        .args(["-e", "staging", "get", "x"]);
    let out = repo.run_cmd(cmd, None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"v1");

    let (other, _) = repo.new_age_key("other.txt");
    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_IDENTITY", &moved).args([
        "--format",
        "json",
        "-i",
        path_str(&other),
        "-e",
        "staging",
        "get",
        "x",
    ]);
    let out = repo.run_cmd(cmd, None);
    assert_refused_kind(&out, "identity", &["secrets/staging/x.age", "other.txt"]);
}

// ---------------------------------------------------------------------------------------
// 2. Removing a recipient
// ---------------------------------------------------------------------------------------

/// After `recipients rm x` + `rekey`, x's identity decrypts nothing; between the two,
/// `check` fails naming every stale file; after the rekey it passes.
#[test]
fn removed_recipient_loses_access_after_rekey() {
    let repo = TestRepo::new();
    let (xkey, xpub) = repo.new_age_key("x-key.txt");
    assert_ok(&repo.run(&["recipients", "add", "x", &xpub], None));
    assert_ok(&repo.run(&["rekey"], None));
    repo.set("staging", "db_password", b"s-db");
    repo.set("staging", "tls/api.crt", b"s-cert");
    repo.set("production", "db_password", b"p-db");
    repo.set("production", "api_key", b"p-key");
    let files = repo.age_files();
    assert!(
        files.len() >= 6,
        "expected 4 secrets and 2 fingerprint keys, got {files:?}"
    );
    for rel in &files {
        let out = age_decrypt(&xkey, &repo.path(rel));
        assert!(
            out.status.success(),
            "x cannot read {rel} before its removal\n{}",
            describe(&out)
        );
    }
    let out = repo.check(&[]);
    assert_ok(&out);

    assert_ok(&repo.run(&["recipients", "rm", "x"], None));
    let manifest = fs::read_to_string(repo.path("swarmseal.yaml")).unwrap();
    assert!(
        !manifest.contains(&xpub),
        "the manifest still holds x's key:\n{manifest}"
    );

    let (out, text) = check_fails(&repo);
    for rel in &files {
        assert!(
            text.contains(rel.as_str()),
            "check does not name the stale file {rel}\n{}",
            describe(&out)
        );
    }
    assert!(
        text.contains("rekey"),
        "check does not say to rekey\n{}",
        describe(&out)
    );

    let out = repo.run(&["rekey"], None);
    assert_ok(&out);
    for rel in &files {
        let out = age_decrypt(&xkey, &repo.path(rel));
        assert!(!out.status.success(), "x can still read {rel} after rekey");
        let out = age_decrypt(&repo.identity, &repo.path(rel));
        assert!(
            out.status.success(),
            "me cannot read {rel} after rekey\n{}",
            describe(&out)
        );
    }
    assert_eq!(repo.get("staging", "db_password"), b"s-db");
    assert_eq!(repo.get("staging", "tls.api.crt"), b"s-cert");
    assert_eq!(repo.get("production", "db_password"), b"p-db");
    assert_eq!(repo.get("production", "api_key"), b"p-key");
    let out = repo.check(&[]);
    assert_ok(&out);
}

// ---------------------------------------------------------------------------------------
// 3. Bad input: exit 1, names the thing, hint, no panic, repository unchanged
// ---------------------------------------------------------------------------------------

/// Runs `args` (with `stdin`) and asserts a clean refusal naming `names` that leaves the
/// repository byte-identical.
#[track_caller]
fn assert_refused_unchanged(
    repo: &TestRepo,
    args: &[&str],
    stdin: Option<&[u8]>,
    names: &[&str],
) -> Output {
    let before = repo.snapshot();
    let out = repo.run(args, stdin);
    assert_refused(&out, names);
    assert_same_snapshot(
        &before,
        &repo.snapshot(),
        &format!("swarmseal {}", args.join(" ")),
    );
    out
}

/// Runs `swarmseal --format json ARGS` (with `stdin`) and asserts a refusal with an error
/// of this `kind` naming `names`, that leaves the repository byte-identical.
#[track_caller]
fn assert_kind_unchanged(
    repo: &TestRepo,
    kind: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    names: &[&str],
) -> Output {
    let before = repo.snapshot();
    let out = repo.run_json(args, stdin);
    assert_refused_kind(&out, kind, names);
    assert_same_snapshot(
        &before,
        &repo.snapshot(),
        &format!("swarmseal --format json {}", args.join(" ")),
    );
    out
}

/// `check`, which must fail (exit 1, no panic); its report (stdout and stderr together).
#[track_caller]
fn check_fails(repo: &TestRepo) -> (Output, String) {
    let out = repo.check(&[]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    let text = combined(&out);
    (out, text)
}

/// `get NAME` (staging) is refused as a `repository` error naming its file, leaving the
/// repository unchanged.
#[track_caller]
fn get_refused_as_repository(repo: &TestRepo, name: &str) -> Output {
    assert_kind_unchanged(
        repo,
        "repository",
        &["-e", "staging", "get", name],
        None,
        &[&format!("secrets/staging/{name}.age")],
    )
}

/// The refusal names Docker's size limit (511,999 bytes).
#[track_caller]
fn assert_names_the_limit(out: &Output) {
    let err = stderr(out);
    assert!(
        err.contains("511999") || err.contains("511,999"),
        "the limit is not named\n{}",
        describe(out)
    );
}

/// `plan` (staging) with `--format json` against an engine that cannot be there.
fn plan_without_engine(repo: &TestRepo) -> Output {
    repo.run_json(
        &[
            "-e",
            "staging",
            "-H",
            "unix:///nonexistent/docker.sock",
            "plan",
        ],
        None,
    )
}

/// Both `set NAME` and `get NAME` (staging) are refused naming `name`, changing nothing.
#[track_caller]
fn assert_set_and_get_refused(repo: &TestRepo, name: &str) {
    assert_refused_unchanged(
        repo,
        &["-e", "staging", "set", "--", name],
        Some(b"value"),
        &[name],
    );
    assert_refused_unchanged(repo, &["-e", "staging", "get", "--", name], None, &[name]);
}

#[test]
fn set_refuses_an_empty_value() {
    let repo = TestRepo::new();
    assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "x"],
        Some(b""),
        &["x", "empty"],
    );
    let empty = repo.work.join("empty");
    fs::write(&empty, b"").unwrap();
    assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "x", "--file", path_str(&empty)],
        None,
        &["x"],
    );
    assert!(!repo.secret_file("staging", "x").exists());
}

#[test]
fn set_refuses_values_over_docker_limit_and_takes_511999_bytes() {
    let repo = TestRepo::new();
    let too_big = vec![b'a'; 512_000];
    let out = assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "big"],
        Some(&too_big),
        &["big"],
    );
    assert_names_the_limit(&out);
    let big_file = repo.work.join("big.bin");
    fs::write(&big_file, &too_big).unwrap();
    let out = assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "big", "--file", path_str(&big_file)],
        None,
        &["big"],
    );
    assert_names_the_limit(&out);
    assert!(!repo.secret_file("staging", "big").exists());

    let max = binary_value(511_999);
    repo.set("staging", "big", &max);
    let got = repo.get("staging", "big");
    assert_eq!(got.len(), 511_999);
    assert!(got == max, "the 511,999-byte value did not round-trip");
}

#[test]
fn invalid_names_are_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "ok", b"v");
    for name in ["a b", "-x", "ä", "x-", ".hidden", ""] {
        assert_set_and_get_refused(&repo, name);
    }
}

#[test]
fn path_escaping_names_are_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "ok", b"v");
    for name in [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "../../../../../../tmp/escaped",
        "a//b",
        "./x",
    ] {
        assert_set_and_get_refused(&repo, name);
        assert_refused_unchanged(&repo, &["-e", "staging", "rm", "--", name], None, &[name]);
    }
    for escaped in ["/etc/passwd.age", "/tmp/escaped.age"] {
        assert!(!Path::new(escaped).exists(), "{escaped} was written");
    }
    assert!(!repo.tmp.path().join("x.age").exists());
    assert!(!repo.tmp.path().join("b.age").exists());
}

#[test]
fn unknown_secret_is_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"v");
    let out = assert_kind_unchanged(
        &repo,
        "not_found",
        &["-e", "staging", "get", "nope"],
        None,
        &["nope"],
    );
    assert!(out.stdout.is_empty());
    for command in ["rm", "edit"] {
        assert_kind_unchanged(
            &repo,
            "not_found",
            &["-e", "staging", command, "nope"],
            None,
            &["nope"],
        );
    }
    // Present in staging, not in production.
    assert_kind_unchanged(
        &repo,
        "not_found",
        &["-e", "production", "get", "db_password"],
        None,
        &["db_password", "production"],
    );
}

#[test]
fn missing_repository_is_refused() {
    let repo = TestRepo::bare();
    let empty = repo.work.join("empty");
    fs::create_dir(&empty).unwrap();
    let empty_s = path_str(&empty);
    for args in [
        vec!["-C", empty_s, "-e", "staging", "get", "x"],
        vec!["-C", empty_s, "ls"],
        vec!["-C", empty_s, "check"],
        vec!["-C", empty_s, "set", "x"],
        vec!["-C", empty_s, "rekey"],
    ] {
        let before = snapshot(repo.tmp.path());
        let out = repo.run(&args, Some(b"value"));
        assert_refused(&out, &[empty_s]);
        assert_same_snapshot(&before, &snapshot(repo.tmp.path()), &format!("{args:?}"));
    }
    // Without -C, in a folder with no swarmseal.yaml above it.
    let before = snapshot(repo.tmp.path());
    let out = repo.run_in(&empty, ["-e", "staging", "get", "x"], None, None);
    assert_refused(&out, &["swarmseal.yaml"]);
    assert_same_snapshot(
        &before,
        &snapshot(repo.tmp.path()),
        "get outside a repository",
    );
}

#[test]
fn unknown_environment_is_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    for args in [
        vec!["-e", "nope", "get", "x"],
        vec!["-e", "nope", "set", "x"],
        vec!["-e", "nope", "ls"],
        vec!["-e", "nope", "check"],
        vec!["-e", "nope", "rekey"],
    ] {
        let out = assert_kind_unchanged(&repo, "not_found", &args, Some(b"value"), &["nope"]);
        // The error tells which environments there are.
        assert!(
            json_error(&out).unwrap()["hint"]
                .as_str()
                .is_some_and(|h| h.contains("staging") && h.contains("production")),
            "known environments not listed\n{}",
            describe(&out)
        );
    }
    // With two environments, no -e is an error too.
    assert_kind_unchanged(&repo, "usage", &["get", "x"], None, &["-e"]);
}

#[test]
fn wrong_identity_is_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"secret-value");
    let (other, _) = repo.new_age_key("other.txt");
    let other_s = path_str(&other);
    let out = assert_kind_unchanged(
        &repo,
        "identity",
        &["-i", other_s, "-e", "staging", "get", "x"],
        None,
        &["secrets/staging/x.age"],
    );
    assert!(out.stdout.is_empty());
    assert_kind_unchanged(
        &repo,
        "identity",
        &["-i", other_s, "-e", "staging", "edit", "x"],
        None,
        &["secrets/staging/x.age"],
    );
    assert_kind_unchanged(
        &repo,
        "identity",
        &["-i", other_s, "rekey", "--force"],
        None,
        &[".age", other_s],
    );
    // A missing identity file is named, too.
    let missing = repo.work.join("missing.txt");
    assert_kind_unchanged(
        &repo,
        "not_found",
        &["-i", path_str(&missing), "-e", "staging", "get", "x"],
        None,
        &["missing.txt"],
    );
    // A file that is not an identity.
    let junk = repo.work.join("junk.txt");
    fs::write(&junk, "this is not a key\n").unwrap();
    assert_refused_unchanged(
        &repo,
        &["-i", path_str(&junk), "-e", "staging", "get", "x"],
        None,
        &["junk.txt"],
    );
}

/// Swaps one base64 character in the middle of an armored age file for another valid one.
fn corrupt_armored(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let body: Vec<usize> = (0..lines.len())
        .filter(|&i| !lines[i].starts_with("-----"))
        .collect();
    let mid = body[body.len() / 2];
    let mut chars: Vec<char> = lines[mid].chars().collect();
    let at = chars.len() / 2;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    lines[mid] = chars.into_iter().collect();
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

#[test]
fn corrupted_age_files_are_refused() {
    let repo = TestRepo::new();
    let value = binary_value(3000);
    repo.set("staging", "armored", &value);
    let armored = repo.secret_file("staging", "armored");
    let original = fs::read(&armored).unwrap();
    let damaged = corrupt_armored(&original);
    assert_ne!(damaged, original);
    fs::write(&armored, &damaged).unwrap();

    // A binary file written by the age CLI, one byte flipped in the middle of the payload.
    let binary = repo.secret_file("staging", "binary");
    let out = age_cli(
        ["-r", repo.public.as_str(), "-o", path_str(&binary)],
        Some(&value),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let mut bytes = fs::read(&binary).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    fs::write(&binary, &bytes).unwrap();

    for name in ["armored", "binary"] {
        let rel = format!("secrets/staging/{name}.age");
        let out = assert_kind_unchanged(
            &repo,
            "repository",
            &["-e", "staging", "get", name],
            None,
            &[&rel],
        );
        assert!(
            out.stdout.is_empty(),
            "get {name} wrote {} bytes of a damaged file",
            out.stdout.len()
        );
        assert_kind_unchanged(
            &repo,
            "repository",
            &["-e", "staging", "edit", name],
            None,
            &[&rel],
        );
        let out = repo.run(&["-e", "staging", "check"], None);
        assert_no_panic(&out);
        assert_exit(&out, 1);
        assert!(
            combined(&out).contains(&rel),
            "check does not name {rel}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn truncated_age_file_is_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "x", &binary_value(2000));
    let file = repo.secret_file("staging", "x");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let out = get_refused_as_repository(&repo, "x");
    assert!(
        out.stdout.is_empty(),
        "get wrote {} bytes of a truncated file",
        out.stdout.len()
    );
    let out = repo.check(&[]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    assert!(
        combined(&out).contains("secrets/staging/x.age"),
        "{}",
        describe(&out)
    );

    // Only the header left, and an empty file.
    for bytes in [&b"age-encryption.org/v1\n"[..], b""] {
        fs::write(&file, bytes).unwrap();
        assert_kind_unchanged(
            &repo,
            "repository",
            &["-e", "staging", "get", "x"],
            None,
            &["secrets/staging/x.age"],
        );
    }
}

#[test]
fn plaintext_files_under_secrets_fail_check() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"fine");
    let leaks = [
        ("secrets/staging/notes.txt", "password=hunter2-leaked\n"),
        ("secrets/staging/x.age", "hunter2-leaked\n"),
        (
            "secrets/production/tls/key.pem",
            "-----BEGIN PRIVATE KEY-----\nhunter2-leaked\n",
        ),
    ];
    for (rel, text) in &leaks {
        let path = repo.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
    }
    let before = repo.snapshot();
    let (out, text) = check_fails(&repo);
    assert!(text.contains("hint:"), "{}", describe(&out));
    for (rel, _) in &leaks {
        assert!(
            text.contains(rel),
            "check does not name the leak {rel}\n{}",
            describe(&out)
        );
    }
    assert!(
        !text.contains("hunter2-leaked"),
        "check printed the leaked plaintext\n{}",
        describe(&out)
    );
    assert_same_snapshot(&before, &repo.snapshot(), "check");

    // The plaintext x.age is not served as a value.
    let out = get_refused_as_repository(&repo, "x");
    assert!(
        !contains_bytes(&out.stdout, b"hunter2-leaked"),
        "get printed a plaintext file"
    );
    // Each leak alone also fails check.
    for (rel, _) in &leaks {
        let r2 = TestRepo::new();
        let path = r2.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "plain\n").unwrap();
        let out = r2.check(&[]);
        assert_no_panic(&out);
        assert_exit(&out, 1);
        assert!(
            combined(&out).contains(rel),
            "check does not name the only leak {rel}\n{}",
            describe(&out)
        );
    }
}

#[test]
fn manifest_syntax_error_names_file_and_line() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    let broken = format!(
        "version: 1\nproject: testproj\nrecipients: me: {}\nenvironments:\n  staging:\n    recipients: [me]\n  production:\n    recipients: [me]\n",
        repo.public
    );
    fs::write(repo.path("swarmseal.yaml"), &broken).unwrap();
    for args in [
        vec!["-e", "staging", "get", "x"],
        vec!["-e", "staging", "set", "y"],
        vec!["-e", "staging", "ls"],
        vec!["check"],
        vec!["rekey"],
        vec!["recipients", "ls"],
    ] {
        let out = assert_kind_unchanged(&repo, "manifest", &args, Some(b"v"), &["swarmseal.yaml"]);
        let error = json_error(&out).unwrap();
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(":3:") || message.contains("line 3"),
            "{args:?}: the error does not give line 3\n{}",
            describe(&out)
        );
    }
}

#[test]
fn symlinks_out_of_the_repository_are_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "inside", b"v");
    // An age file outside the repository that `me` can decrypt, linked in.
    let outside = repo.work.join("outside.age");
    let out = age_cli(
        ["-a", "-r", repo.public.as_str(), "-o", path_str(&outside)],
        Some(b"outside-value"),
    );
    assert!(out.status.success(), "{}", describe(&out));
    let outside_before = fs::read(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, repo.secret_file("staging", "ext")).unwrap();
    // A linked folder leading out of the repository.
    let outdir = repo.work.join("outdir");
    fs::create_dir(&outdir).unwrap();
    std::os::unix::fs::symlink(&outdir, repo.path("secrets/staging/linked")).unwrap();

    let before = repo.snapshot();
    let (out, text) = check_fails(&repo);
    assert!(
        text.contains("secrets/staging/ext.age"),
        "check does not name the link\n{}",
        describe(&out)
    );
    assert!(text.contains("hint:"), "{}", describe(&out));
    assert_same_snapshot(&before, &repo.snapshot(), "check");

    let out = get_refused_as_repository(&repo, "ext");
    assert!(
        !contains_bytes(&out.stdout, b"outside-value"),
        "get followed the link out of the repository"
    );
    assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "ext"],
        Some(b"new"),
        &["ext"],
    );
    assert_refused_unchanged(
        &repo,
        &["-e", "staging", "set", "linked/x"],
        Some(b"new"),
        &["linked"],
    );
    assert_kind_unchanged(
        &repo,
        "repository",
        &["-e", "staging", "rm", "ext"],
        None,
        &["ext"],
    );
    assert_eq!(
        fs::read(&outside).unwrap(),
        outside_before,
        "the file outside the repository was changed"
    );
    assert!(
        fs::read_dir(&outdir).unwrap().next().is_none(),
        "something was written through the linked folder"
    );
}

// ---------------------------------------------------------------------------------------
// 4. The commands
// ---------------------------------------------------------------------------------------

#[test]
fn set_never_takes_a_value_from_argv() {
    let repo = TestRepo::new();
    let before = repo.snapshot();
    let out = repo.run(
        &["-e", "staging", "set", "x", "hunter2-argv"],
        Some(b"from-stdin"),
    );
    assert_no_panic(&out);
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "set with a value in argv must be a usage error\n{}",
        describe(&out)
    );
    assert_same_snapshot(&before, &repo.snapshot(), "set x VALUE");
    for flag in ["--value", "--value=hunter2"] {
        let out = repo.run(&["-e", "staging", "set", "x", flag], Some(b"from-stdin"));
        assert_no_panic(&out);
        assert!(
            !out.status.success(),
            "set accepted {flag}\n{}",
            describe(&out)
        );
    }
    assert_same_snapshot(&before, &repo.snapshot(), "set x --value");
}

#[test]
fn set_generate_hex() {
    let repo = TestRepo::new();
    let out = repo.run(
        &[
            "-e",
            "staging",
            "set",
            "token",
            "--generate",
            "--length",
            "40",
            "--charset",
            "hex",
        ],
        None,
    );
    assert_ok(&out);
    let value = repo.get("staging", "token");
    assert_eq!(value.len(), 40, "{:?}", String::from_utf8_lossy(&value));
    assert!(
        value.iter().all(u8::is_ascii_hexdigit),
        "{:?}",
        String::from_utf8_lossy(&value)
    );
    assert!(
        !combined(&out).contains(std::str::from_utf8(&value).unwrap()),
        "set --generate printed the value"
    );

    let out = repo.run(&["-e", "staging", "set", "default_gen", "--generate"], None);
    assert_ok(&out);
    let value = repo.get("staging", "default_gen");
    assert_eq!(value.len(), 32);
    assert!(value.iter().all(u8::is_ascii_alphanumeric));
    // Regenerating changes the value.
    assert_ok(&repo.run(&["-e", "staging", "set", "default_gen", "--generate"], None));
    assert_ne!(repo.get("staging", "default_gen"), value);
}

#[test]
fn sub_folders_map_to_dotted_names() {
    let repo = TestRepo::new();
    repo.set("staging", "tls/api.crt", b"CERT");
    assert!(
        repo.path("secrets/staging/tls/api.crt.age").is_file(),
        "{:?}",
        repo.snapshot().keys().collect::<Vec<_>>()
    );
    assert_eq!(repo.get("staging", "tls.api.crt"), b"CERT");
    assert_eq!(repo.get("staging", "tls/api.crt"), b"CERT");
    // Setting by the dotted name updates the same file.
    repo.set("staging", "tls.api.crt", b"CERT2");
    assert!(
        !repo.path("secrets/staging/tls.api.crt.age").exists(),
        "set tls.api.crt made a second file"
    );
    assert_eq!(repo.get("staging", "tls/api.crt"), b"CERT2");
    assert_eq!(repo.ls_names("staging"), ["tls.api.crt"]);
    assert_ok(&repo.check(&[]));
}

/// Two files mapping to one name (`tls/api.crt.age` and `tls.api.crt.age`): `check` fails
/// naming both.
#[test]
fn two_files_for_one_name_fail_check() {
    let repo = collision_repo();
    let before = repo.snapshot();
    let (out, text) = check_fails(&repo);
    assert!(text.contains("hint:"), "{}", describe(&out));
    for rel in COLLIDING {
        assert!(
            text.contains(rel),
            "check does not name {rel}\n{}",
            describe(&out)
        );
    }
    assert_same_snapshot(&before, &repo.snapshot(), "check");
}

/// Commands on a name two files map to refuse, naming both files, and change nothing
/// (instead of "not found", or silently writing one of the two files).
#[test]
fn commands_refuse_a_name_two_files_map_to() {
    let repo = collision_repo();
    for args in [
        &["-e", "staging", "get", "tls.api.crt"][..],
        &["-e", "staging", "set", "tls.api.crt"][..],
        &["-e", "staging", "set", "tls/api.crt"][..],
        &["-e", "staging", "rm", "tls.api.crt"][..],
    ] {
        assert_kind_unchanged(&repo, "repository", args, Some(b"NEW"), &COLLIDING);
    }
}

const COLLIDING: [&str; 2] = [
    "secrets/staging/tls/api.crt.age",
    "secrets/staging/tls.api.crt.age",
];

/// A repository where `tls/api.crt.age` and `tls.api.crt.age` both exist in staging.
fn collision_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.set("staging", "tls/api.crt", b"CERT");
    fs::copy(repo.path(COLLIDING[0]), repo.path(COLLIDING[1])).unwrap();
    repo
}

/// Creates an editor script that records the file it was given (and the modes of the file
/// and its folder) in `<work>/edited-path`, then runs `action` on "$1".
fn editor_script(repo: &TestRepo, name: &str, action: &str) -> PathBuf {
    let record = repo.work.join("edited-path");
    repo.script(
        name,
        &format!(
            "printf '%s\\n' \"$1\" > '{rec}'\nstat -c '%a' \"$1\" >> '{rec}'\nstat -c '%a' \"$(dirname \"$1\")\" >> '{rec}'\n{action}",
            rec = record.display()
        ),
    )
}

/// (scratch file, its mode, its folder's mode) as recorded by [`editor_script`].
fn edited(repo: &TestRepo) -> (PathBuf, String, String) {
    let text = fs::read_to_string(repo.work.join("edited-path")).expect("the editor was not run");
    let mut lines = text.lines();
    let path = PathBuf::from(lines.next().unwrap());
    (
        path,
        lines.next().unwrap_or("").into(),
        lines.next().unwrap_or("").into(),
    )
}

fn no_edit_folders_left(repo: &TestRepo, scratch: &Path) {
    let dir = scratch.parent().unwrap();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("swarmseal-edit-"),
        "unexpected scratch folder {}",
        dir.display()
    );
    assert!(
        dir.starts_with("/dev/shm") || dir.starts_with(&repo.tmpdir),
        "the scratch folder {} is neither on /dev/shm nor in $TMPDIR",
        dir.display()
    );
    assert!(
        !scratch.exists(),
        "the plaintext file {} was left behind",
        scratch.display()
    );
    assert!(
        !dir.exists(),
        "the scratch folder {} was left behind",
        dir.display()
    );
    let left: Vec<_> = fs::read_dir(&repo.tmpdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("swarmseal-edit-"))
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
}

#[test]
fn edit_changes_the_value_without_showing_it() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"user=admin\npassword=hunter2-old\n");
    let script = editor_script(
        &repo,
        "append-editor",
        "printf 'swordfish-added\\n' >> \"$1\"",
    );
    let mut cmd = repo.command();
    cmd.env("EDITOR", &script)
        .args(["-e", "staging", "edit", "x"]);
    let out = repo.run_cmd(cmd, None);
    assert_ok(&out);
    assert_eq!(
        repo.get("staging", "x"),
        b"user=admin\npassword=hunter2-old\nswordfish-added\n"
    );
    let text = combined(&out);
    for secret in ["hunter2-old", "swordfish-added", "user=admin"] {
        assert!(
            !text.contains(secret),
            "edit printed {secret:?}\n{}",
            describe(&out)
        );
    }
    let (scratch, file_mode, dir_mode) = edited(&repo);
    assert_eq!(file_mode, "600", "mode of the scratch file");
    assert_eq!(dir_mode, "700", "mode of the scratch folder");
    no_edit_folders_left(&repo, &scratch);
}

#[test]
fn edit_without_changes_leaves_the_repository_byte_identical() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"unchanged\n");
    let before = repo.snapshot();
    let script = editor_script(&repo, "noop-editor", "true");
    let mut cmd = repo.command();
    // VISUAL wins over EDITOR: with EDITOR=false the command would fail.
    cmd.env("VISUAL", &script)
        .env("EDITOR", "false")
        .args(["-e", "staging", "edit", "x"]);
    let out = repo.run_cmd(cmd, None);
    assert_ok(&out);
    assert_same_snapshot(&before, &repo.snapshot(), "edit with no change");
    let (scratch, _, _) = edited(&repo);
    no_edit_folders_left(&repo, &scratch);
}

#[test]
fn edit_with_a_failing_editor_changes_nothing() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"keep\n");
    let script = editor_script(
        &repo,
        "failing-editor",
        "printf 'junk\\n' >> \"$1\"; exit 3",
    );
    let before = repo.snapshot();
    let mut cmd = repo.command();
    cmd.env("EDITOR", &script)
        .args(["-e", "staging", "edit", "x"]);
    let out = repo.run_cmd(cmd, None);
    assert_refused(&out, &[]);
    assert_same_snapshot(&before, &repo.snapshot(), "edit with a failing editor");
    let (scratch, _, _) = edited(&repo);
    no_edit_folders_left(&repo, &scratch);
    assert_eq!(repo.get("staging", "x"), b"keep\n");
}

#[test]
fn rm_removes_the_file() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"1");
    repo.set("staging", "y", b"2");
    repo.set("staging", "tls/api.crt", b"3");
    repo.set("production", "x", b"4");
    assert_ok(&repo.run(&["-e", "staging", "rm", "x"], None));
    assert!(!repo.secret_file("staging", "x").exists());
    assert_ok(&repo.run(&["-e", "staging", "rm", "tls.api.crt"], None));
    assert!(!repo.path("secrets/staging/tls/api.crt.age").exists());
    assert_eq!(repo.get("staging", "y"), b"2");
    assert_eq!(repo.get("production", "x"), b"4");
    assert_refused_kind(
        &repo.run_json(&["-e", "staging", "get", "x"], None),
        "not_found",
        &["x"],
    );
    assert_eq!(repo.ls_names("staging"), ["y"]);
    assert_ok(&repo.check(&[]));
}

#[test]
fn ls_json_lists_names() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"1");
    repo.set("staging", "tls/api.crt", b"2");
    repo.set("production", "only_prod", b"3");
    let out = repo.run(&["-e", "staging", "--format", "json", "ls"], None);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ls --format json is not JSON: {e}\n{}", describe(&out)));
    let mut names: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"secrets\" list\n{}", describe(&out)))
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["db_password", "tls.api.crt"]);
    assert!(!contains_bytes(&out.stdout, b"only_prod"));
    // Human output lists them too.
    let out = repo.run(&["-e", "production", "ls"], None);
    assert_ok(&out);
    assert!(stdout(&out).contains("only_prod"), "{}", describe(&out));
}

#[test]
fn textconv_prints_the_value() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"line one\nline two\n");
    let out = repo.run(&["textconv", "secrets/staging/x.age"], None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"line one\nline two\n");
    // git passes a temporary copy outside the repository.
    let copy = repo.work.join("git-tmp-x.age");
    fs::copy(repo.secret_file("staging", "x"), &copy).unwrap();
    let out = repo.run_in(&repo.work, ["textconv"], Some(&copy), None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"line one\nline two\n");
}

#[test]
fn completions_and_man_produce_output() {
    let repo = TestRepo::bare();
    let out = repo.run(&["completions", "bash"], None);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("swarmseal") && text.contains("complete"),
        "{}",
        describe(&out)
    );
    for shell in ["zsh", "fish"] {
        let out = repo.run(&["completions", shell], None);
        assert_ok(&out);
        assert!(!out.stdout.is_empty());
    }
    let out = repo.run(&["man"], None);
    assert_ok(&out);
    assert!(stdout(&out).contains(".TH"), "{}", describe(&out));
}

/// `--max-age` ages a value by the index's record of when it last changed (written by
/// `set`). The record is moved two hours back instead of waiting for the clock.
#[test]
fn check_max_age_reports_overdue_values() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"old");
    let stamp = repo.change_stamp("staging", "x");
    let changed = humantime::parse_rfc3339(&stamp)
        .unwrap_or_else(|e| panic!("set recorded {stamp:?}, not a time: {e}"));
    let age = SystemTime::now()
        .duration_since(changed)
        .unwrap_or_default();
    assert!(
        age < Duration::from_secs(600),
        "set recorded {stamp}, not now"
    );
    assert_ok(&repo.check(&["--max-age", "1h"]));

    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    repo.set_change_stamp(
        "staging",
        "x",
        &humantime::format_rfc3339_seconds(two_hours_ago).to_string(),
    );
    let out = repo.check(&["--max-age", "1h"]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    let text = combined(&out);
    assert!(text.contains("overdue"), "{}", describe(&out));
    // Hours old, said in hours (not rounded down to "0s").
    assert!(text.contains("last changed 2h ago"), "{}", describe(&out));
    assert!(text.contains("secrets/staging/x.age"), "{}", describe(&out));
    assert_ok(&repo.check(&["--max-age", "3h"]));
}

/// The repository's identity, encrypted with the passphrase "correct horse" (as `age -p`
/// would), armored, in the work folder.
fn protected_identity(repo: &TestRepo) -> PathBuf {
    use std::io::Write;
    let identity_text = fs::read(&repo.identity).unwrap();
    let protected = repo.work.join("protected.age");
    let encryptor = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(
        "correct horse".to_string(),
    ));
    let armored =
        age::armor::ArmoredWriter::wrap_output(Vec::new(), age::armor::Format::AsciiArmor).unwrap();
    let mut w = encryptor.wrap_output(armored).unwrap();
    w.write_all(&identity_text).unwrap();
    fs::write(&protected, w.finish().and_then(|a| a.finish()).unwrap()).unwrap();
    protected
}

#[test]
fn passphrase_protected_identity_without_terminal_is_refused() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    let protected = protected_identity(&repo);
    let out = assert_refused_unchanged(
        &repo,
        &["-i", path_str(&protected), "-e", "staging", "get", "x"],
        None,
        &["passphrase"],
    );
    assert!(stderr(&out).contains("protected.age"), "{}", describe(&out));
    assert!(out.stdout.is_empty());
    let mut cmd = repo.command();
    cmd.env("SWARMSEAL_IDENTITY", &protected)
        .args(["-e", "staging", "get", "x"]);
    let before = repo.snapshot();
    let out = repo.run_cmd(cmd, None);
    assert_refused(&out, &["passphrase"]);
    assert_same_snapshot(
        &before,
        &repo.snapshot(),
        "get with SWARMSEAL_IDENTITY=protected",
    );
}

#[test]
fn init_writes_the_layout_and_prints_the_textconv_line() {
    let repo = TestRepo::bare();
    let (_, public) = repo.new_age_key("me.txt");
    let recipient = format!("alice={public}");
    let out = repo.run(
        &[
            "init",
            "--project",
            "shop",
            "--env",
            "staging",
            "--env",
            "prod",
            "--recipient",
            &recipient,
        ],
        None,
    );
    assert_ok(&out);
    assert!(
        combined(&out).contains("git config diff.swarmseal.textconv"),
        "init does not print the git config line\n{}",
        describe(&out)
    );
    let attrs = fs::read_to_string(repo.path(".gitattributes")).unwrap();
    assert!(
        attrs.lines().any(|l| l.trim() == "*.age diff=swarmseal"),
        "{attrs:?}"
    );
    let manifest = fs::read_to_string(repo.path("swarmseal.yaml")).unwrap();
    assert!(
        manifest.contains("shop") && manifest.contains(&public),
        "{manifest}"
    );
    for rel in [
        "secrets/staging/.gitkeep",
        "secrets/prod/.gitkeep",
        ".swarmseal/fingerprint/staging.age",
        ".swarmseal/fingerprint/prod.age",
        ".swarmseal/index.yaml",
    ] {
        assert!(repo.path(rel).is_file(), "init did not write {rel}");
    }
    for env in ["staging", "prod"] {
        let key = fs::read(repo.path(&format!(".swarmseal/fingerprint/{env}.age"))).unwrap();
        assert!(key.starts_with(ARMOR_BEGIN.as_bytes()));
    }
    // No identity was created: the recipient was given.
    assert!(!repo.identity.exists());
    // A second init is refused and changes nothing.
    let before = repo.snapshot();
    let out = repo.run(&["init", "--env", "other", "--recipient", &recipient], None);
    assert_refused(&out, &["swarmseal.yaml"]);
    assert_same_snapshot(&before, &repo.snapshot(), "second init");
    assert!(!repo.path("secrets/other").exists());
}

#[test]
fn init_without_recipient_creates_an_identity_in_the_config_folder() {
    let repo = TestRepo::bare();
    let out = repo.run(&["init", "--project", "solo"], None);
    assert_ok(&out);
    assert!(
        repo.identity.is_file(),
        "no identity at {}\n{}",
        repo.identity.display(),
        describe(&out)
    );
    let mode = fs::metadata(&repo.identity).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "identity file mode");
    let text = fs::read_to_string(&repo.identity).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_string();
    let report = combined(&out);
    assert!(
        report.contains(&public),
        "init does not print the public key\n{}",
        describe(&out)
    );
    assert!(
        report.contains(path_str(&repo.identity)),
        "init does not print the identity path\n{}",
        describe(&out)
    );
    // One environment: no -e needed.
    assert_ok(&repo.run(&["set", "x"], Some(b"solo-value")));
    let out = repo.run(&["get", "x"], None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"solo-value");
}

/// After `set` (stdin and --file), `edit` and `rekey`, no file of the repository (nor
/// $TMPDIR) holds the value, or its unkeyed sha256.
#[test]
fn plaintext_never_reaches_the_repository() {
    let repo = TestRepo::new();
    let canary = format!("CANARY-{}", hex::encode(random_bytes(12)));
    let edited_canary = format!("EDITED-{}", hex::encode(random_bytes(12)));
    repo.set("staging", "from_stdin", canary.as_bytes());
    let file = repo.work.join("value.txt");
    fs::write(&file, canary.as_bytes()).unwrap();
    assert_ok(&repo.run(
        &[
            "-e",
            "production",
            "set",
            "tls/from_file",
            "--file",
            path_str(&file),
        ],
        None,
    ));
    let script = editor_script(
        &repo,
        "canary-editor",
        &format!("printf '{edited_canary}' > \"$1\""),
    );
    let mut cmd = repo.command();
    cmd.env("EDITOR", &script)
        .args(["-e", "staging", "edit", "from_stdin"]);
    assert_ok(&repo.run_cmd(cmd, None));
    assert_eq!(repo.get("staging", "from_stdin"), edited_canary.as_bytes());
    repo.set("staging", "again", canary.as_bytes());
    assert_ok(&repo.run(&["rekey", "--force"], None));

    let needles: Vec<Vec<u8>> = [&canary, &edited_canary]
        .iter()
        .flat_map(|v| {
            let digest = Sha256::digest(v.as_bytes());
            [
                v.as_bytes().to_vec(),
                hex::encode(digest).into_bytes(),
                hex::encode(&digest[..5]).into_bytes(),
            ]
        })
        .collect();
    for root in [&repo.root, &repo.tmpdir] {
        for (path, entry) in snapshot(root) {
            if let crate::common::cli::Entry::File { bytes, .. } = entry {
                for needle in &needles {
                    assert!(
                        !contains_bytes(&bytes, needle),
                        "{} holds {:?}",
                        root.join(&path).display(),
                        String::from_utf8_lossy(needle)
                    );
                }
            }
        }
    }
}

/// On a terminal, a passphrase-protected identity is unlocked by a prompt. `script`
/// (util-linux) gives the command a pseudo-terminal; the passphrase is typed into it once
/// the prompt is shown.
#[test]
fn passphrase_protected_identity_is_unlocked_on_a_terminal() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"terminal-value");
    let protected = protected_identity(&repo);
    for (typed, want_ok) in [("correct horse", true), ("wrong horse", false)] {
        let mut cmd = repo.command();
        cmd.arg("-C")
            .arg(&repo.root)
            .arg("-i")
            .arg(&protected)
            .args(["-e", "staging", "get", "x"]);
        let (status, text) = on_terminal(&cmd, &[("Passphrase", typed)]);
        assert_eq!(status.success(), want_ok, "typed {typed:?}: {text}");
        assert_eq!(
            text.contains("terminal-value"),
            want_ok,
            "typed {typed:?}: {text}"
        );
        if !want_ok {
            assert!(text.contains("wrong passphrase"), "{text}");
        }
    }
}

/// Signals while the editor runs: Ctrl-C (SIGINT) belongs to the editor and is ignored;
/// SIGTERM cancels the edit once the editor is gone. Either way the plaintext file is
/// wiped and the value is unchanged.
#[test]
fn edit_interrupted_by_signals_wipes_and_changes_nothing() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"keep\n");
    let ready = repo.work.join("editor-started");
    let script = editor_script(
        &repo,
        "slow-editor",
        &format!(
            "printf 'changed\\n' > \"$1\"; touch '{}'; sleep 3",
            ready.display()
        ),
    );
    let before = repo.snapshot();
    let mut cmd = repo.command();
    cmd.env("EDITOR", &script)
        .args(["-e", "staging", "edit", "x"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the editor never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    for signal in ["-INT", "-TERM"] {
        let ok = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
        assert!(ok.success());
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    assert_refused(&out, &["interrupted"]);
    assert_same_snapshot(&before, &repo.snapshot(), "interrupted edit");
    let (scratch, _, _) = edited(&repo);
    no_edit_folders_left(&repo, &scratch);
    assert_eq!(repo.get("staging", "x"), b"keep\n");
}

/// Usage errors exit 1 like every other error: exit 2 means "changes present".
#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let repo = TestRepo::new();
    for args in [&["bogus"][..], &["plan", "--detailed-exitcodee"], &["set"]] {
        let out = repo.run(args, None);
        assert_exit(&out, 1);
        assert_no_panic(&out);
    }
    assert_exit(&repo.run(&["--help"], None), 0);
    assert_exit(&repo.run(&["--version"], None), 0);
    assert_exit(&repo.run(&["plan", "--help"], None), 0);
}

/// Anything under secrets/ that is not in an environment's folder is still checked:
/// plaintext there is a leak (check and plan fail), age files there are never applied
/// (a warning).
#[test]
fn files_outside_environment_folders_are_checked() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    fs::write(repo.path("secrets/passwords.txt"), b"db=hunter2\n").unwrap();
    fs::create_dir_all(repo.path("secrets/prod")).unwrap();
    fs::write(repo.path("secrets/prod/db_password"), b"hunter3\n").unwrap();
    let out = repo.check(&[]);
    assert_refused(&out, &["secrets/passwords.txt", "secrets/prod/db_password"]);
    assert!(!stderr(&out).contains("hunter"), "{}", describe(&out));
    // Plan refuses before it contacts any engine.
    let out = plan_without_engine(&repo);
    assert_refused_kind(&out, "repository", &["secrets/passwords.txt"]);
    fs::remove_file(repo.path("secrets/passwords.txt")).unwrap();
    fs::remove_file(repo.path("secrets/prod/db_password")).unwrap();
    fs::copy(
        repo.secret_file("staging", "x"),
        repo.path("secrets/prod/x.age"),
    )
    .unwrap();
    let out = repo.check(&[]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("secrets/prod/x.age") && stderr(&out).contains("never applied"),
        "{}",
        describe(&out)
    );
}

/// Without an identity, plan cannot decrypt anything, but a plaintext file named like a
/// secret is still refused.
#[test]
fn plan_without_identity_refuses_a_plaintext_age_file() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    fs::write(repo.path("secrets/staging/leak.age"), b"supersecret\n").unwrap();
    fs::remove_file(&repo.identity).unwrap();
    let out = plan_without_engine(&repo);
    assert_refused_kind(&out, "repository", &["secrets/staging/leak.age"]);
    assert!(!stderr(&out).contains("supersecret"));
}

/// `exec` refuses secrets whose variables would collide, before contacting the Swarm;
/// `check` warns about them.
#[test]
fn exec_refuses_colliding_variable_names() {
    let repo = TestRepo::new();
    repo.set("staging", "db-password", b"1");
    repo.set("staging", "db_password", b"2");
    let out = repo.run(
        &[
            "-e",
            "staging",
            "-H",
            "unix:///nonexistent/docker.sock",
            "exec",
            "--",
            "true",
        ],
        None,
    );
    assert_refused(
        &out,
        &["db-password", "db_password", "SWARMSEAL_DB_PASSWORD"],
    );
    let out = repo.check(&["-e", "staging"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("SWARMSEAL_DB_PASSWORD"),
        "{}",
        describe(&out)
    );
}

/// `edit` with a passphrase-protected identity asks for the passphrase once: the identity
/// that decrypted the value also re-encrypts it (a second prompt, where a typo lost the
/// edit, would leave the command waiting here until the terminal helper gives up).
#[test]
fn edit_asks_for_the_passphrase_once() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"before\n");
    let protected = protected_identity(&repo);
    let script = editor_script(&repo, "edit-once", "printf 'after\\n' > \"$1\"");
    let mut cmd = repo.command();
    cmd.env("EDITOR", &script)
        .arg("-C")
        .arg(&repo.root)
        .arg("-i")
        .arg(&protected)
        .args(["-e", "staging", "edit", "x"]);
    let (status, text) = on_terminal(&cmd, &[("Passphrase", "correct horse")]);
    assert!(status.success(), "{text}");
    assert_eq!(text.matches("Passphrase").count(), 1, "{text}");
    assert_eq!(repo.get("staging", "x"), b"after\n");
}

/// The shortcut of plan and apply (`desired::Known`): a file whose digest a managed
/// version's `source` label names is not decrypted, its fingerprint comes from the label
/// (apply keeps no value for such files). Only for
/// that exact file, name and environment: a file the labels do not name is decrypted
/// (and a damaged one refused), and a byte copy of another environment's file is refused
/// even when a label names it.
#[test]
fn plan_trusts_the_swarms_labels_only_for_the_files_they_name() {
    use swarmseal::crypto::{file_digest, Identities};
    use swarmseal::domain::state::{labels, Observed, SwarmSecret};
    use swarmseal::repo::desired::{self, Decrypt, Known};
    use swarmseal::repo::Repo;

    let repo = TestRepo::new();
    repo.set("staging", "x", b"value");
    repo.set("production", "y", b"other");
    // Damage x's body, keeping its header: only a decryption can tell.
    let x = repo.path("secrets/staging/x.age");
    let mut text = fs::read_to_string(&x).unwrap();
    let at = text.find('\n').unwrap() + 30;
    text.replace_range(at..at + 4, "AAAA");
    fs::write(&x, &text).unwrap();
    let r = Repo::discover(Some(&repo.root)).unwrap();
    let ids = Identities::from_text(&fs::read(&repo.identity).unwrap(), "test").unwrap();
    let project = r.manifest.project.clone();
    let version = |env: &str, name: &str, file: &[u8]| SwarmSecret {
        id: format!("id-{name}"),
        name: format!("{name}-0123456789"),
        version: 1,
        created_at: "2026".into(),
        labels: [
            (labels::MANAGED, "true".to_string()),
            (labels::PROJECT, project.clone()),
            (labels::ENVIRONMENT, env.to_string()),
            (labels::NAME, name.to_string()),
            (labels::SOURCE, file_digest(file)),
            (labels::FINGERPRINT, "ab".repeat(32)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    };
    let observed = |secrets| Observed {
        cluster_id: "c".into(),
        secrets,
        services: Vec::new(),
        taken: Vec::new(),
        configs: Default::default(),
    };
    let plan = |o: &Observed| -> swarmseal::Result<desired::RepoState> {
        let known = Known::from_observed(o, &project, "staging");
        let prepared = desired::prepare(&r, "staging")?;
        let state = prepared.decrypt(&r, Some(&ids), Decrypt::IfPossible, known)?;
        // As apply reads it (keeping values): the same answer, and only the values of files
        // not vouched for.
        let mode = Decrypt::Required { keep_values: true };
        let known = Known::from_observed(o, &project, "staging");
        let applied = prepared.decrypt(&r, Some(&ids), mode, known)?;
        assert_eq!(applied.desired, state.desired);
        let vouched = o
            .secrets
            .iter()
            .filter(|s| s.is_managed_by(&project, "staging"));
        for s in vouched {
            assert!(applied
                .values
                .get(
                    swarmseal::domain::state::Kind::Secret,
                    &s.labels[labels::NAME]
                )
                .is_none());
        }
        Ok(state)
    };

    // Vouched for: not decrypted, the label's fingerprint is taken.
    let vouched = observed(vec![version("staging", "x", text.as_bytes())]);
    let state = plan(&vouched).unwrap();
    assert_eq!(
        state.desired.secrets["x"].fingerprint.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    // Not vouched for (another environment's label, or none): decrypted, and refused.
    for o in [
        observed(vec![version("production", "x", text.as_bytes())]),
        observed(Vec::new()),
    ] {
        let err = plan(&o).err().expect("a damaged file is refused");
        assert_eq!(err.kind(), swarmseal::ErrorKind::Repository, "{err}");
    }
    // A byte copy of production's y as staging's x, even with a label naming it.
    let y = fs::read(repo.path("secrets/production/y.age")).unwrap();
    fs::write(&x, &y).unwrap();
    let copied = observed(vec![version("staging", "x", &y)]);
    let err = plan(&copied)
        .err()
        .expect("a copy of another environment's file");
    assert_eq!(err.kind(), swarmseal::ErrorKind::Repository, "{err}");
    assert!(err.to_string().contains("byte-for-byte"), "{err}");
}

/// Writes `value` to `path` with the age CLI, encrypted to the repository's `me`.
fn age_write(repo: &TestRepo, path: &Path, value: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let out = age_cli(
        ["-r", repo.public.as_str(), "-o", path_str(path)],
        Some(value),
    );
    assert!(out.status.success(), "age -r failed\n{}", describe(&out));
}

/// A finding shared by many files is told once: 25 files written by the age CLI are one
/// warning (and, with `--max-age`, one about their change dates) naming the first ten and
/// how many more, every file with `-v`; a finding of one file keeps its own line, and the
/// summary counts every finding. `--format json` lists every file's finding.
#[test]
fn check_groups_a_finding_shared_by_many_files() {
    let repo = TestRepo::new();
    let files: Vec<String> = (1..=25)
        .map(|i| format!("secrets/staging/bulk_{i:02}.age"))
        .collect();
    for file in &files {
        age_write(&repo, &repo.path(file), b"value");
    }
    // One file changed by the age CLI after swarmseal wrote it: another finding.
    repo.set("production", "lone", b"value");
    age_write(&repo, &repo.path("secrets/production/lone.age"), b"value");
    let grouped = "warning: swarmseal has no record of 25 files, so it cannot tell whom they are encrypted to:";
    let lone = "warning: secrets/production/lone.age: the file changed since swarmseal wrote it (age CLI? merge?), so swarmseal cannot tell whom it is encrypted to";
    let named = |text: &str| files.iter().filter(|f| text.contains(f.as_str())).count();

    let out = repo.check(&[]);
    assert_ok(&out);
    let err = stderr(&out);
    assert_eq!(err.matches(grouped).count(), 1, "{}", describe(&out));
    assert_eq!(
        err.matches("hint: run `swarmseal rekey` to re-encrypt them to the current recipients and record them").count(),
        1,
        "{err}"
    );
    assert!(err.contains("  and 15 more (-v lists them)"), "{err}");
    assert_eq!(named(&err), 10, "{err}");
    assert!(!err.contains("bulk_01.age: "), "a line of its own\n{err}");
    assert_eq!(err.matches(lone).count(), 1, "{err}");
    assert!(err.contains("0 errors, 26 warnings"), "{err}");

    let out = repo.check(&["-v"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert_eq!(err.matches(grouped).count(), 1, "{err}");
    assert_eq!(named(&err), 25, "{err}");
    assert!(!err.contains("more (-v lists them)"), "{err}");

    // Their change dates are not known either: one more grouped warning.
    let out = repo.check(&["--max-age", "30d"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert_eq!(
        err.matches("warning: 25 secrets have a rotation limit but swarmseal has no record of when their values changed:").count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(
            "hint: set their values with `swarmseal -e staging set NAME` to start the clock"
        ),
        "{err}"
    );
    assert!(err.contains("0 errors, 51 warnings"), "{err}");

    let out = repo.run_json(&["check"], None);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e})\n{}", describe(&out)));
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 26, "{report:#}");
    assert_eq!(report["warnings"], 26, "{report:#}");
    assert!(
        findings
            .iter()
            .any(|x| x["file"] == "secrets/production/lone.age"),
        "{report:#}"
    );
    for file in &files {
        let finding = findings
            .iter()
            .find(|x| x["file"] == file.as_str())
            .unwrap_or_else(|| panic!("no finding for {file}\n{report:#}"));
        assert_eq!(
            finding["message"],
            "swarmseal has no record of this file, so it cannot tell whom it is encrypted to"
        );
    }
}
