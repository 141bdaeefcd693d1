//! Reports (issue 11): durations, wording, JSON and markdown consistency, hints.
//!
//! The tests without an engine run the binary on local repositories (like `cli`); those with
//! one (`#[ignore]`d for a plain `cargo test`, failing without the harness when
//! `SWARMSEAL_REQUIRE_ENGINE=1`) run it against the real test Swarm, each with its own
//! project and a [`Guard`] that cleans up: `tests/engine.sh cargo test --test integration --
//! --include-ignored reports::`.

use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::cli::{assert_exit, assert_ok, describe, stderr, stdout, TestRepo};
use crate::common::sync::{change, engine_repo, SyncRepo};

fn combined(out: &Output) -> String {
    format!("{}\n{}", stdout(out), stderr(out))
}

/// Moves the value of `staging/x` back by `age` in the index (as if set `age` ago) and
/// runs `check --max-age LIMIT`: the overdue error.
fn overdue_after(repo: &TestRepo, age: Duration, limit: &str) -> String {
    let then = SystemTime::now() - age;
    let stamp = humantime::format_rfc3339_seconds(then).to_string();
    repo.set_change_stamp("staging", "x", &stamp);
    let out = repo.check(&["-e", "staging", "--max-age", limit]);
    assert_exit(&out, 1);
    let text = combined(&out);
    text.lines()
        .find(|l| l.contains("overdue"))
        .unwrap_or_else(|| panic!("no overdue error\n{}", describe(&out)))
        .to_owned()
}

/// Durations are printed in the units they are given in (`90d`, not "2months 29days ..."),
/// largest first, at most two; an age of 2 min 39 s reads "2m 39s ago" (it used to be
/// truncated to a whole unit: "0s ago"), and one of seconds is not "0s".
#[test]
fn check_prints_durations_like_the_input() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");

    let line = overdue_after(&repo, Duration::from_secs(100 * 86_400), "90d");
    assert!(
        line.contains("last changed 100d ago, the limit is 90d"),
        "{line}"
    );

    let line = overdue_after(
        &repo,
        Duration::from_secs(3 * 86_400 + 4 * 3_600 + 5 * 60),
        "1d",
    );
    assert!(
        line.contains("last changed 3d 4h ago, the limit is 1d"),
        "{line}"
    );

    // The stamp has whole seconds: the age is 159 s, or a second or two more on a slow run.
    let line = overdue_after(&repo, Duration::from_secs(159), "1m");
    assert!(
        ["2m 39s ago", "2m 40s ago", "2m 41s ago"]
            .iter()
            .any(|a| line.contains(&format!("last changed {a}, the limit is 1m"))),
        "{line}"
    );

    let line = overdue_after(&repo, Duration::from_secs(7), "2s");
    assert!(!line.contains("0s ago"), "{line}");
    assert!(
        ["7s ago", "8s ago", "9s ago"]
            .iter()
            .any(|a| line.contains(&format!("last changed {a}, the limit is 2s"))),
        "{line}"
    );
}

/// `ls --format json` names each secret `secret`, like plan and status; `name` stays beside
/// it (the same value) for format_version 1 consumers. The table's column says SECRET.
#[test]
fn ls_json_names_the_secret_secret() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"1");
    let out = repo.run_json(&["-e", "staging", "ls"], None);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("ls --format json is JSON");
    let entries = v["secrets"].as_array().expect("a secrets list");
    assert_eq!(entries.len(), 1, "{v:#}");
    assert_eq!(entries[0]["secret"], "db_password", "{v:#}");
    assert_eq!(entries[0]["name"], "db_password", "{v:#}");

    let out = repo.run(&["-e", "staging", "ls"], None);
    assert_ok(&out);
    let header = stdout(&out).lines().next().unwrap_or_default().to_owned();
    assert!(header.starts_with("SECRET "), "{}", describe(&out));
}

/// Someone without the identity that decrypts the files is told to use it (or to be added
/// as a recipient), never to generate a new one with `keygen`, which could not decrypt
/// anything: no identity at all, an `-i` file that does not exist, and one that is not an
/// identity.
#[test]
fn decrypting_without_the_identity_never_suggests_keygen() {
    let repo = TestRepo::new();
    repo.set("staging", "x", b"v");
    let saved = repo.work.join("identity.txt");
    std::fs::rename(&repo.identity, &saved).unwrap();

    let out = repo.run(&["-e", "staging", "get", "x"], None);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("no identity to decrypt"), "{err}");
    assert!(!err.contains("keygen"), "{err}");
    for wanted in ["-i FILE", "SWARMSEAL_IDENTITY", "recipients add", "rekey"] {
        assert!(err.contains(wanted), "the hint lacks {wanted:?}\n{err}");
    }

    let missing = repo.work.join("missing.txt");
    let out = repo.run(
        &["-e", "staging", "-i", missing.to_str().unwrap(), "get", "x"],
        None,
    );
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("missing.txt"), "{err}");
    assert!(!err.contains("keygen"), "{err}");

    let garbage = repo.work.join("garbage.txt");
    std::fs::write(&garbage, "not an identity\n").unwrap();
    let out = repo.run(
        &["-e", "staging", "-i", garbage.to_str().unwrap(), "get", "x"],
        None,
    );
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("garbage.txt"), "{err}");
    assert!(!err.contains("keygen"), "{err}");
}

// --- with an engine --------------------------------------------------------------------------

/// `plan` in human form (stdout), asserting it ran (exit 0, or 2 with changes).
fn plan_text(repo: &SyncRepo, args: &[&str]) -> String {
    let out = repo.run(args);
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        describe(&out)
    );
    stdout(&out)
}

/// How many times `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// A rotation names the old version once and the new one once: "removes OLD" (no service
/// used it) or "replaces OLD, then keeps it: SVC can roll back to it" (not `replaces: OLD`
/// and then `keeps OLD: ...`); the same in markdown. (Every combination of replaced,
/// removed and kept versions: `plan::render::tests`.)
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn rotation_names_each_version_once() {
    let Some((_engine, guard, repo)) = engine_repo("rwords") else {
        return;
    };
    repo.set("lone", b"1");
    repo.set("used", b"1");
    repo.apply();
    let lone = repo.current("lone").name;
    let used = repo.current("used").name;
    let svc = repo.app_service(&guard, "used");
    repo.set("lone", b"2");
    repo.set("used", b"2");

    let (_, plan) = repo.plan_json(&[]);
    let new_lone = change(&plan, "rotate", "lone")["swarm_name"]
        .as_str()
        .expect("a new version name")
        .to_owned();
    let text = plan_text(&repo, &["plan"]);
    assert!(
        text.lines().any(|l| l.trim() == format!("removes {lone}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "replaces {used}, then keeps it: {svc} can roll back to it"
        )),
        "{text}"
    );
    for name in [&lone, &used, &new_lone] {
        assert_eq!(occurrences(&text, name), 1, "{name} in\n{text}");
    }
    assert!(
        !text.contains("replaces:") && !text.contains("removes:"),
        "{text}"
    );

    let md = plan_text(&repo, &["--format", "markdown", "plan"]);
    assert!(md.contains(&format!("removes `{lone}`")), "{md}");
    assert!(
        md.contains(&format!(
            "replaces `{used}`, then keeps it: {svc} can roll back to it"
        )),
        "{md}"
    );
    for name in [&lone, &used, &new_lone] {
        assert_eq!(occurrences(&md, name), 1, "{name} in\n{md}");
    }
}

/// Without an identity, a change says "unverified" once, in one pair of parentheses:
/// "(not on the Swarm, unverified)", "(the file changed, unverified)".
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn unverified_changes_say_so_once() {
    let Some((_engine, _guard, repo)) = engine_repo("runver") else {
        return;
    };
    repo.set("old", b"1");
    repo.apply();
    repo.set("old", b"2");
    repo.set("new", b"1");
    let saved = repo.t.work.join("identity.txt");
    std::fs::rename(&repo.t.identity, &saved).unwrap();
    let text = plan_text(&repo, &["plan"]);
    std::fs::rename(&saved, &repo.t.identity).unwrap();

    let line = |secret: &str| {
        text.lines()
            .find(|l| l.contains(&format!(" {secret} ")))
            .unwrap_or_else(|| panic!("no line for {secret}\n{text}"))
            .to_owned()
    };
    assert!(
        line("new").ends_with("(not on the Swarm, unverified)"),
        "{text}"
    );
    assert!(
        line("old").ends_with("(the file changed, unverified)"),
        "{text}"
    );
    assert_eq!(occurrences(&text, "unverified)"), 2, "{text}");
    assert!(!text.contains("no identity)"), "{text}");
}

/// `status` starts like `plan`, in human and in markdown form: the same heading with the
/// command's name, then the same Swarm; its states read as sentences.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn status_heading_matches_plan() {
    let Some((_engine, _guard, repo)) = engine_repo("rhead") else {
        return;
    };
    repo.set("x", b"1");
    repo.apply();
    repo.set("x", b"2");

    // Human: one line; markdown: the heading, a blank line, the Swarm.
    for (format, lines) in [("human", 1), ("markdown", 3)] {
        let plan = plan_text(&repo, &["--format", format, "plan"]);
        let out = repo.run(&["--format", format, "status"]);
        assert_ok(&out);
        let status = stdout(&out);
        let plan_head: Vec<&str> = plan.lines().take(lines).collect();
        let status_head: Vec<String> = status
            .lines()
            .take(lines)
            .map(|l| l.replace("swarmseal status:", "swarmseal plan:"))
            .collect();
        assert_eq!(status_head, plan_head, "{format}:\n{plan}\n---\n{status}");
        assert!(status.contains("swarmseal status: "), "{status}");
        assert!(status.contains(&repo.project), "{status}");
    }
    let md = stdout(&repo.run(&["--format", "markdown", "status"]));
    assert!(md.starts_with("### swarmseal status: `"), "{md}");

    let out = repo.run(&["status"]);
    let text = stdout(&out);
    assert!(
        text.contains("older: the file changed since the last apply"),
        "{text}"
    );
    assert!(!text.contains("pending"), "{text}");
}

/// Every JSON report names a secret `secret`: `ls`, `ls --remote`, `status` and `plan`.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn json_reports_name_secrets_secret() {
    let Some((_engine, _guard, repo)) = engine_repo("rjson") else {
        return;
    };
    repo.set("x", b"1");
    repo.apply();
    repo.set("x", b"2");
    let (_, plan) = repo.plan_json(&[]);
    assert_eq!(change(&plan, "rotate", "x")["secret"], "x", "{plan:#}");
    for args in [&["ls"][..], &["ls", "--remote"], &["status"]] {
        let out = repo.run_json(args);
        assert_ok(&out);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON ({e})\n{}", describe(&out)));
        let list = v["secrets"].as_array().expect("a secrets list");
        assert!(!list.is_empty(), "{args:?}: {v:#}");
        for entry in list {
            assert_eq!(entry["secret"], "x", "{args:?}: {v:#}");
        }
    }
}

/// `plan -v` lists the unchanged secrets, beside changes and when there are none (human);
/// in markdown in a collapsed block. Without -v they are only counted.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn verbose_plan_lists_unchanged_secrets() {
    let Some((_engine, _guard, repo)) = engine_repo("rverb") else {
        return;
    };
    repo.set("steady", b"1");
    repo.set("moving", b"1");
    repo.apply();
    let steady = repo.current("steady").name;
    let unchanged_line = |text: &str| {
        text.lines()
            .any(|l| l.contains("unchanged") && l.contains(" steady ") && l.contains(&steady))
    };

    // No changes at all.
    let quiet = plan_text(&repo, &["plan"]);
    assert!(quiet.contains("No changes"), "{quiet}");
    assert!(!quiet.contains(&steady), "{quiet}");
    let verbose = plan_text(&repo, &["-v", "plan"]);
    assert!(unchanged_line(&verbose), "{verbose}");
    assert!(verbose.contains(" moving "), "{verbose}");

    // Beside a change.
    repo.set("moving", b"2");
    let quiet = plan_text(&repo, &["plan"]);
    assert!(!quiet.contains(&steady), "{quiet}");
    assert!(quiet.contains("1 unchanged"), "{quiet}");
    let verbose = plan_text(&repo, &["-v", "plan"]);
    assert!(unchanged_line(&verbose), "{verbose}");

    let md = plan_text(&repo, &["--format", "markdown", "plan"]);
    assert!(!md.contains(&steady), "{md}");
    let md = plan_text(&repo, &["-v", "--format", "markdown", "plan"]);
    let details = md
        .split("<details>")
        .nth(1)
        .unwrap_or_else(|| panic!("no <details> block\n{md}"));
    assert!(details.contains("1 secret unchanged"), "{md}");
    assert!(details.contains(&format!("`{steady}`")), "{md}");
}
