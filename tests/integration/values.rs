//! Values and the repository's bookkeeping (issue 11): trailing newlines on `set`, binary
//! values on a terminal and in `textconv`, pruning the index, `rm` of several names.

use std::fs;
use std::path::Path;
use std::process::Output;

use swarmseal::repo::index::Index;

use crate::common::cli::{
    assert_exit, assert_no_panic, assert_ok, assert_refused, assert_same_snapshot, describe,
    on_terminal, stderr, TestRepo,
};

/// The names the index records for `env`.
fn index_names(repo: &TestRepo, env: &str) -> Vec<String> {
    let bytes = fs::read(repo.path(".swarmseal/index.yaml")).unwrap();
    let index = Index::parse(&bytes, Path::new(".swarmseal/index.yaml")).unwrap();
    index
        .env(env)
        .map(|e| e.secrets.keys().cloned().collect())
        .unwrap_or_default()
}

/// The environments the index records.
fn index_envs(repo: &TestRepo) -> Vec<String> {
    let bytes = fs::read(repo.path(".swarmseal/index.yaml")).unwrap();
    let index = Index::parse(&bytes, Path::new(".swarmseal/index.yaml")).unwrap();
    index.environments.keys().cloned().collect()
}

/// The findings of `check --format json`: (level, file, message, hint).
fn findings(out: &Output) -> Vec<(String, String, String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --format json is not JSON: {e}\n{}", describe(out)));
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings list\n{}", describe(out)))
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("level"), s("file"), s("message"), s("hint"))
        })
        .collect()
}

/// The findings about the index's records of files that are gone.
fn stale_findings(repo: &TestRepo) -> Vec<(String, String, String, String)> {
    let out = repo.run(&["--format", "json", "check"], None);
    assert_no_panic(&out);
    findings(&out)
        .into_iter()
        .filter(|(_, file, message, _)| {
            file == ".swarmseal/index.yaml" && message.contains("still records")
        })
        .collect()
}

// ---- 6. The index ----

#[test]
fn records_of_files_deleted_by_hand_are_reported_then_pruned_by_the_next_write() {
    let repo = TestRepo::new();
    for i in 0..12 {
        repo.set("staging", &format!("bulk/s{i}"), b"v");
    }
    repo.set("staging", "keep", b"k");
    repo.set("production", "bulk/s0", b"p");
    fs::remove_dir_all(repo.path("secrets/staging/bulk")).unwrap();
    assert_eq!(index_names(&repo, "staging").len(), 13);

    // check: one warning for the environment, naming the index, what to do; exit 0.
    let out = repo.check(&[]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("warning: .swarmseal/index.yaml: the index still records 12 secrets of staging whose files are gone: bulk.s0"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("and 2 more"), "{}", describe(&out));
    assert!(
        err.contains("swarmseal -e staging rekey"),
        "{}",
        describe(&out)
    );
    let stale = stale_findings(&repo);
    assert_eq!(stale.len(), 1, "{stale:?}");
    let (level, _, message, hint) = &stale[0];
    assert_eq!(level, "warning");
    assert!(message.contains("12 secrets of staging"), "{message}");
    assert!(hint.contains("rekey"), "{hint}");

    // Any write prunes them: a set of another secret of the environment.
    repo.set("staging", "other", b"o");
    assert_eq!(index_names(&repo, "staging"), ["keep", "other"]);
    // Another environment's records are not touched.
    assert_eq!(index_names(&repo, "production"), ["bulk.s0"]);
    assert!(stale_findings(&repo).is_empty());
    assert_ok(&repo.check(&[]));
}

#[test]
fn rm_and_rekey_prune_records_of_deleted_files() {
    let repo = TestRepo::new();
    for name in ["a", "b", "c", "d"] {
        repo.set("staging", name, b"v");
    }
    fs::remove_file(repo.secret_file("staging", "a")).unwrap();
    assert_ok(&repo.run(&["-e", "staging", "rm", "b"], None));
    assert_eq!(index_names(&repo, "staging"), ["c", "d"]);

    fs::remove_file(repo.secret_file("staging", "c")).unwrap();
    assert_eq!(stale_findings(&repo).len(), 1);
    // Nothing needs re-encrypting: rekey writes the index for the pruning alone.
    let out = repo.run(&["-e", "staging", "rekey"], None);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("dropped 1 record of"),
        "{}",
        describe(&out)
    );
    assert_eq!(index_names(&repo, "staging"), ["d"]);
    assert!(stale_findings(&repo).is_empty());
}

#[test]
fn records_of_files_still_there_but_unusable_are_kept() {
    let repo = TestRepo::new();
    repo.set("staging", "tls.api.crt", b"cert");
    repo.set("staging", "link", b"l");
    // A second file for the same name: the record's file is still there.
    fs::create_dir_all(repo.path("secrets/staging/tls")).unwrap();
    fs::copy(
        repo.secret_file("staging", "tls.api.crt"),
        repo.path("secrets/staging/tls/api.crt.age"),
    )
    .unwrap();
    // A link where a file was: refused, but not gone.
    let target = repo.work.join("link.age");
    fs::rename(repo.secret_file("staging", "link"), &target).unwrap();
    std::os::unix::fs::symlink(&target, repo.secret_file("staging", "link")).unwrap();
    assert!(stale_findings(&repo).is_empty());
    repo.set("staging", "other", b"o");
    assert_eq!(
        index_names(&repo, "staging"),
        ["link", "other", "tls.api.crt"]
    );
}

#[test]
fn records_of_an_environment_removed_from_the_manifest_are_pruned() {
    let repo = TestRepo::new();
    repo.set("production", "x", b"p");
    repo.set("staging", "y", b"s");
    // Remove production from the manifest, its folder and its fingerprint key.
    let manifest = fs::read_to_string(repo.path("swarmseal.yaml")).unwrap();
    let mut kept = Vec::new();
    let mut skipping = false;
    for line in manifest.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("production:") && indent == 2 {
            skipping = true;
            continue;
        }
        if skipping && (indent > 2 || line.trim().is_empty() || line.trim_start().starts_with('#'))
        {
            continue;
        }
        skipping = false;
        kept.push(line);
    }
    fs::write(repo.path("swarmseal.yaml"), kept.join("\n") + "\n").unwrap();
    fs::remove_dir_all(repo.path("secrets/production")).unwrap();
    fs::remove_file(repo.path(".swarmseal/fingerprint/production.age")).unwrap();
    assert!(index_envs(&repo).contains(&"production".to_string()));

    let stale = stale_findings(&repo);
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].2.contains("1 environment "), "{stale:?}");
    repo.set("staging", "z", b"s");
    assert_eq!(index_envs(&repo), ["staging"]);
    assert!(stale_findings(&repo).is_empty());
}

// ---- 8. Values ----

#[test]
fn set_from_a_pipe_warns_about_a_trailing_newline() {
    let repo = TestRepo::new();
    let out = repo.run(&["-e", "staging", "set", "pw"], Some(b"hunter2\n"));
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("warning:") && err.contains("pw") && err.contains("(\\n)"),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("stored as part of the value")
            && err.contains("--trim")
            && err.contains("printf '%s'"),
        "{}",
        describe(&out)
    );
    // Warned, and stored as given.
    assert_eq!(repo.get("staging", "pw"), b"hunter2\n");

    let out = repo.run(&["-e", "staging", "set", "crlf"], Some(b"hunter2\r\n"));
    assert_ok(&out);
    assert!(stderr(&out).contains("(\\r\\n)"), "{}", describe(&out));
    assert_eq!(repo.get("staging", "crlf"), b"hunter2\r\n");

    // No newline, or -q: no warning.
    for args in [
        &["-e", "staging", "set", "plain"][..],
        &["-q", "-e", "staging", "set", "quiet"],
    ] {
        let value: &[u8] = if args[0] == "-q" { b"x\n" } else { b"x" };
        let out = repo.run(args, Some(value));
        assert_ok(&out);
        assert!(!stderr(&out).contains("warning"), "{}", describe(&out));
    }

    // A file is byte-exact by design: no warning.
    let file = repo.work.join("value.txt");
    fs::write(&file, b"from file\n").unwrap();
    let out = repo.run(
        &[
            "-e",
            "staging",
            "set",
            "f",
            "--file",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&out);
    assert!(!stderr(&out).contains("warning"), "{}", describe(&out));
    assert_eq!(repo.get("staging", "f"), b"from file\n");
}

#[test]
fn set_trim_drops_one_trailing_line_ending() {
    let repo = TestRepo::new();
    for (input, stored) in [
        (&b"hunter2\n"[..], &b"hunter2"[..]),
        (b"hunter2\r\n", b"hunter2"),
        (b"two\n\n", b"two\n"),
        (b"none", b"none"),
    ] {
        let out = repo.run(&["-e", "staging", "set", "pw", "--trim"], Some(input));
        assert_ok(&out);
        assert!(!stderr(&out).contains("warning"), "{}", describe(&out));
        assert_eq!(repo.get("staging", "pw"), stored, "{input:?}");
    }
    let file = repo.work.join("value.txt");
    fs::write(&file, b"from file\r\n").unwrap();
    let path = file.to_str().unwrap();
    assert_ok(&repo.run(
        &["-e", "staging", "set", "f", "--trim", "--file", path],
        None,
    ));
    assert_eq!(repo.get("staging", "f"), b"from file");
    // Nothing left: the empty value is refused as ever.
    let before = repo.snapshot();
    assert_refused(
        &repo.run(&["-e", "staging", "set", "empty", "--trim"], Some(b"\n")),
        &["empty"],
    );
    // --trim means nothing for a generated value.
    let out = repo.run(&["-e", "staging", "set", "g", "--generate", "--trim"], None);
    assert_exit(&out, 1);
    assert_no_panic(&out);
    assert!(stderr(&out).contains("--trim"), "{}", describe(&out));
    assert_same_snapshot(&before, &repo.snapshot(), "refused sets");
}

/// `get` on a terminal (a pseudo-terminal from `script`): text is printed, binary values
/// are refused unless `--force`; redirected, every value is written byte-exact.
#[test]
fn get_refuses_binary_values_on_a_terminal_unless_forced() {
    let repo = TestRepo::new();
    repo.set("staging", "text", b"plain text\twith tab\n");
    repo.set("staging", "bin", b"\x00\xffBINARY-MARKER\xfe\n");
    repo.set("staging", "esc", b"ESC-MARKER\x1b[2J");
    let on_tty = |args: &[&str]| {
        let mut cmd = repo.command();
        cmd.args(args);
        on_terminal(&cmd, &[])
    };
    let (status, screen) = on_tty(&["-e", "staging", "get", "text"]);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("plain text"), "{screen}");
    for name in ["bin", "esc"] {
        let (status, screen) = on_tty(&["-e", "staging", "get", name]);
        assert_eq!(status.code(), Some(1), "{screen}");
        assert!(
            screen.contains("error:") && screen.contains(name) && screen.contains("binary"),
            "{screen}"
        );
        assert!(
            screen.contains("--force") && screen.contains("> FILE"),
            "{screen}"
        );
        assert!(!screen.contains("MARKER"), "the value was shown: {screen}");
    }
    let (status, screen) = on_tty(&["-e", "staging", "get", "--force", "bin"]);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("BINARY-MARKER"), "{screen}");
    // Not a terminal: byte-exact, no --force needed.
    assert_eq!(repo.get("staging", "bin"), b"\x00\xffBINARY-MARKER\xfe\n");
    assert_eq!(repo.get("staging", "esc"), b"ESC-MARKER\x1b[2J");
}

#[test]
fn textconv_shows_binary_values_by_size() {
    let repo = TestRepo::new();
    let binary = b"\x00\x01\xff binary \xfe\n".repeat(10);
    repo.set("staging", "bin", &binary);
    repo.set("staging", "text", b"line one\nline two\n");
    let out = repo.run(&["textconv", "secrets/staging/bin.age"], None);
    assert_ok(&out);
    assert_eq!(
        out.stdout,
        format!("(binary, {} bytes)\n", binary.len()).as_bytes()
    );
    let out = repo.run(&["textconv", "secrets/staging/text.age"], None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"line one\nline two\n");
}

// ---- 11.4 rm ----

#[test]
fn rm_takes_several_names_and_removes_all_or_none() {
    let repo = TestRepo::new();
    for name in ["a", "b", "c", "tls/api.crt"] {
        repo.set("staging", name, b"v");
    }
    // One unknown name: nothing removed, the unknown one named.
    let before = repo.snapshot();
    let out = repo.run(&["-e", "staging", "rm", "a", "nope", "b"], None);
    assert_refused(&out, &["nope", "nothing was removed"]);
    assert_same_snapshot(&before, &repo.snapshot(), "rm with an unknown name");

    // Several names, one of them twice under two spellings.
    let out = repo.run(
        &[
            "-e",
            "staging",
            "rm",
            "a",
            "tls/api.crt",
            "b",
            "tls.api.crt",
        ],
        None,
    );
    assert_ok(&out);
    let err = stderr(&out);
    for rel in [
        "secrets/staging/a.age",
        "secrets/staging/b.age",
        "secrets/staging/tls/api.crt.age",
    ] {
        assert!(err.contains(rel), "{}", describe(&out));
        assert!(!repo.path(rel).exists(), "{rel} is still there");
    }
    assert_eq!(repo.ls_names("staging"), ["c"]);
    assert_eq!(index_names(&repo, "staging"), ["c"]);
    assert!(err.contains("if they were applied"), "{}", describe(&out));
    assert_ok(&repo.check(&[]));
}

/// rm does not contact the Swarm and nothing in the repository says whether a secret was
/// ever applied: it never claims a removal from the Swarm, only what the next apply does
/// if the secret is there.
#[test]
fn rm_claims_no_swarm_removal_for_a_secret_never_applied() {
    let repo = TestRepo::new();
    repo.set("staging", "fresh", b"v");
    let out = repo.run(&["-e", "staging", "rm", "fresh"], None);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("removed fresh from staging"),
        "{}",
        describe(&out)
    );
    for line in err.lines().filter(|l| l.contains("Swarm")) {
        assert!(
            line.starts_with("if it was applied"),
            "an unconditional claim about the Swarm: {line:?}\n{}",
            describe(&out)
        );
    }
    let out = repo.run(&["-q", "-e", "staging", "set", "again"], Some(b"v"));
    assert_ok(&out);
    let out = repo.run(&["-q", "-e", "staging", "rm", "again"], None);
    assert_ok(&out);
    assert_eq!(stderr(&out), "", "{}", describe(&out));
}
