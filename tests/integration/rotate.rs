//! Generated values (issue 12, SPEC §5): `generate:` in the manifest, `rotate NAME...`,
//! `rotate --due`, and `set --generate` drawing what the manifest says.
//!
//! Run: `cargo test --test integration -- rotate::` (the age CLI decrypts); the last test,
//! a rotation reaching a running service, needs an engine (`tests/engine.sh ... --include-ignored`).

use std::fs;
use std::process::Output;
use std::time::{Duration, SystemTime};

use crate::common::cli::{
    age_cli, assert_exit, assert_kind, assert_no_panic, assert_ok, assert_refused,
    assert_same_snapshot, describe, stderr, stdout, TestRepo,
};

const DAY: Duration = Duration::from_secs(86400);

/// A repository (staging and production, recipient `me`) whose manifest has `settings`
/// under `secrets:`.
fn repo_with(settings: &str) -> TestRepo {
    let repo = TestRepo::new();
    let path = repo.path("swarmseal.yaml");
    let manifest = fs::read_to_string(&path).unwrap();
    assert!(!manifest.contains("\nsecrets:"), "{manifest}");
    fs::write(&path, format!("{manifest}secrets:\n{settings}")).unwrap();
    repo
}

/// Settings of the tests: two generated secrets (one with a limit), one with a limit only,
/// one generated without a limit.
const SETTINGS: &str = concat!(
    "  session_key:\n",
    "    generate: { length: 40, charset: hex }\n",
    "    rotate_after: 30d\n",
    "  api_token:\n",
    "    generate: {}\n",
    "    rotate_after: 30d\n",
    "  db_password:\n",
    "    rotate_after: 30d\n",
    "  cookie_secret:\n",
    "    generate: { length: 64, charset: base64 }\n",
);

/// A change date `days` ago, as the index writes it.
fn days_ago(days: u32) -> String {
    let then = SystemTime::now() - DAY * days;
    humantime::format_rfc3339_seconds(then).to_string()
}

/// The JSON report on standard output.
fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e})\n{}", describe(out)))
}

/// (environment, secret) of each entry of a report's list.
fn entries(report: &serde_json::Value, list: &str) -> Vec<(String, String)> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} list in {report:#}"))
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("environment"), s("secret"))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(e, s)| (e.to_string(), s.to_string()))
        .collect()
}

/// Asserts that `value` has `len` characters, all in `alphabet`.
#[track_caller]
fn assert_drawn(value: &[u8], len: usize, alphabet: fn(&u8) -> bool) {
    let text = String::from_utf8_lossy(value);
    assert_eq!(value.len(), len, "{text:?}");
    assert!(value.iter().all(alphabet), "{text:?}");
}

fn lower_hex(c: &u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(c)
}

fn base64_char(c: &u8) -> bool {
    c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/'
}

#[test]
fn rotate_regenerates_named_values_as_the_manifest_says() {
    let repo = repo_with(SETTINGS);
    repo.set("staging", "session_key", b"old-value");
    repo.set_change_stamp("staging", "session_key", &days_ago(3));
    let out = repo.run(&["-e", "staging", "rotate", "session_key"], None);
    assert_ok(&out);
    let first = repo.get("staging", "session_key");
    assert_drawn(&first, 40, lower_hex);
    // The index says the value changed now, which is what `rotate_after` counts from.
    let stamp = humantime::parse_rfc3339(&repo.change_stamp("staging", "session_key")).unwrap();
    let age = SystemTime::now().duration_since(stamp).unwrap_or_default();
    assert!(age < Duration::from_secs(600), "stamp not renewed: {age:?}");
    // The file is a plain age file, encrypted to the environment's recipient.
    let file = repo.secret_file("staging", "session_key");
    let by_age = age_cli(
        [
            "-d".as_ref(),
            "-i".as_ref(),
            repo.identity.as_os_str(),
            file.as_os_str(),
        ],
        None,
    );
    assert_ok(&by_age);
    assert_eq!(by_age.stdout, first);
    // What to do next: commit the file and the index, then plan and apply; no value shown.
    let text = stdout(&out) + &stderr(&out);
    for wanted in [
        "session_key",
        "secrets/staging/session_key.age",
        ".swarmseal/index.yaml",
        "swarmseal -e staging plan",
        "swarmseal -e staging apply",
    ] {
        assert!(
            text.contains(wanted),
            "{wanted:?} not in\n{}",
            describe(&out)
        );
    }
    assert!(!text.contains(std::str::from_utf8(&first).unwrap()));

    // Again, and two names at once, one of them created: a new value each time.
    let out = repo.run(
        &["-e", "staging", "rotate", "session_key", "cookie_secret"],
        None,
    );
    assert_ok(&out);
    let second = repo.get("staging", "session_key");
    assert_drawn(&second, 40, lower_hex);
    assert_ne!(first, second);
    assert_drawn(&repo.get("staging", "cookie_secret"), 64, base64_char);
    assert!(stdout(&out).contains("created"), "{}", describe(&out));
    // The other environment is untouched.
    assert!(!repo.secret_file("production", "cookie_secret").exists());
}

#[test]
fn rotate_json_names_what_to_commit() {
    let repo = repo_with(SETTINGS);
    repo.set("production", "api_token", b"x");
    let out = repo.run_json(&["-e", "production", "rotate", "api_token"], None);
    assert_ok(&out);
    let report = json(&out);
    assert_eq!(
        entries(&report, "rotated"),
        pairs(&[("production", "api_token")])
    );
    let entry = &report["rotated"][0];
    assert_eq!(entry["length"], 32);
    assert_eq!(entry["charset"], "alnum");
    assert_eq!(entry["created"], false);
    assert_eq!(
        report["commit"],
        serde_json::json!(["secrets/production/api_token.age", ".swarmseal/index.yaml"])
    );
    assert_drawn(
        &repo.get("production", "api_token"),
        32,
        u8::is_ascii_alphanumeric,
    );
}

#[test]
fn rotate_refuses_names_without_generate_and_unknown_names() {
    let repo = repo_with(SETTINGS);
    repo.set("staging", "db_password", b"hunter2");
    repo.set("staging", "session_key", b"kept");
    repo.set("staging", "legacy", b"also kept");
    let before = repo.snapshot();

    // No `generate:`: named, with the setting to add and `set` as the other way.
    let out = repo.run(&["-e", "staging", "rotate", "db_password"], None);
    assert_refused(
        &out,
        &["db_password", "generate:", "swarmseal -e staging set"],
    );
    // Several names: all are named, and nothing is rotated, not even the generated one.
    let out = repo.run(
        &[
            "-e",
            "staging",
            "rotate",
            "session_key",
            "db_password",
            "legacy",
        ],
        None,
    );
    assert_refused(&out, &["db_password and legacy", "nothing was rotated"]);
    assert_same_snapshot(&before, &repo.snapshot(), "rotate of a plain secret");
    assert_eq!(repo.get("staging", "session_key"), b"kept");

    // A name neither the folder nor the manifest knows.
    let out = repo.run_json(&["-e", "staging", "rotate", "nope"], None);
    assert_kind(&out, "not_found");
    let out = repo.run(&["-e", "staging", "rotate", "nope"], None);
    assert_refused(&out, &["nope", "session_key"]);
    // A bad name.
    let out = repo.run(&["-e", "staging", "rotate", "../x"], None);
    assert_exit(&out, 1);
    assert_no_panic(&out);
    // Names and --due together, neither, or several environments for names.
    for args in [
        &["-e", "staging", "rotate", "--due", "session_key"][..],
        &["-e", "staging", "rotate"],
        &["-e", "staging", "-e", "production", "rotate", "session_key"],
        &["rotate", "session_key"],
    ] {
        let out = repo.run(args, None);
        assert_exit(&out, 1);
        assert_no_panic(&out);
    }
    assert_same_snapshot(&before, &repo.snapshot(), "refused rotations");
}

/// `--due` rotates exactly the generated secrets older than their `rotate_after` (in every
/// environment), lists the due ones without `generate:`, and leaves everything else alone.
#[test]
fn rotate_due_rotates_only_due_generated_values() {
    let repo = repo_with(SETTINGS);
    for env in ["staging", "production"] {
        for name in ["session_key", "api_token", "db_password", "cookie_secret"] {
            repo.set(env, name, format!("{env}-{name}").as_bytes());
        }
    }
    // Overdue: session_key in both environments, db_password (not generated) in staging,
    // cookie_secret (no limit). Fresh: api_token.
    for env in ["staging", "production"] {
        repo.set_change_stamp(env, "session_key", &days_ago(31));
        repo.set_change_stamp(env, "cookie_secret", &days_ago(400));
        repo.set_change_stamp(env, "api_token", &days_ago(29));
    }
    repo.set_change_stamp("staging", "db_password", &days_ago(45));
    let check = repo.check(&[]);
    assert_exit(&check, 1);
    assert!(
        stderr(&check).contains("swarmseal -e staging rotate session_key"),
        "check does not point at rotate\n{}",
        describe(&check)
    );

    let out = repo.run_json(&["rotate", "--due"], None);
    assert_ok(&out);
    let report = json(&out);
    assert_eq!(
        entries(&report, "rotated"),
        pairs(&[("production", "session_key"), ("staging", "session_key")])
    );
    assert_eq!(report["rotated"][0]["due"]["code"], "overdue");
    let age = report["rotated"][0]["due"]["age_seconds"].as_u64().unwrap();
    assert!((31 * 86400..32 * 86400).contains(&age), "{age}");
    assert_eq!(
        entries(&report, "not_generated"),
        pairs(&[("staging", "db_password")])
    );
    for env in ["staging", "production"] {
        assert_drawn(&repo.get(env, "session_key"), 40, lower_hex);
        for name in ["api_token", "db_password", "cookie_secret"] {
            assert_eq!(repo.get(env, name), format!("{env}-{name}").as_bytes());
        }
    }
    // Only db_password is overdue now, and `check` says so.
    let check = repo.check(&[]);
    assert_exit(&check, 1);
    assert!(stderr(&check).contains("db_password is overdue"));
    assert!(!stderr(&check).contains("session_key is overdue"));

    // Human: the table, what to commit, and what a person has to do.
    let before = repo.snapshot();
    let out = repo.run(&["rotate", "--due"], None);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("db_password") && text.contains("swarmseal -e staging set db_password"),
        "{}",
        describe(&out)
    );
    assert_same_snapshot(&before, &repo.snapshot(), "a second rotate --due");
}

#[test]
fn rotate_due_covers_the_environments_given_and_distrusts_bad_dates() {
    let repo = repo_with(SETTINGS);
    for env in ["staging", "production"] {
        repo.set(env, "session_key", b"old");
        repo.set(env, "api_token", b"old");
    }
    // A date that is not one, or one far ahead, would switch the limit off: due.
    repo.set_change_stamp("staging", "session_key", "not-a-date");
    repo.set_change_stamp("staging", "api_token", "2999-01-01T00:00:00Z");
    repo.set_change_stamp("production", "session_key", &days_ago(90));
    let out = repo.run_json(&["-e", "staging", "rotate", "--due"], None);
    assert_ok(&out);
    let report = json(&out);
    assert_eq!(
        entries(&report, "rotated"),
        pairs(&[("staging", "api_token"), ("staging", "session_key")])
    );
    for entry in report["rotated"].as_array().unwrap() {
        assert_eq!(entry["due"]["code"], "untrusted_change_date", "{entry}");
    }
    assert_eq!(repo.get("production", "session_key"), b"old");
    assert_ne!(repo.get("staging", "api_token"), b"old");

    // Nothing due: said, and nothing written.
    let out = repo.run(&["-e", "staging", "rotate", "--due"], None);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("nothing is due for rotation in staging"),
        "{}",
        describe(&out)
    );
    let out = repo.run(
        &[
            "-e",
            "production",
            "--format",
            "markdown",
            "rotate",
            "--due",
        ],
        None,
    );
    assert_ok(&out);
    assert!(
        stdout(&out).contains("| session_key | production |"),
        "{}",
        describe(&out)
    );
}

/// Rotation encrypts to public keys only: a scheduled job needs no identity.
#[test]
fn rotate_needs_no_identity() {
    let repo = repo_with(SETTINGS);
    repo.set("staging", "session_key", b"old");
    repo.set_change_stamp("staging", "session_key", &days_ago(60));
    let moved = repo.work.join("identity.txt");
    fs::rename(&repo.identity, &moved).unwrap();
    let out = repo.run(&["rotate", "--due"], None);
    assert_ok(&out);
    let by_age = age_cli(
        [
            "-d".as_ref(),
            "-i".as_ref(),
            moved.as_os_str(),
            repo.secret_file("staging", "session_key").as_os_str(),
        ],
        None,
    );
    assert_ok(&by_age);
    assert_drawn(&by_age.stdout, 40, lower_hex);
}

#[test]
fn set_generate_draws_what_the_manifest_says() {
    let repo = repo_with(SETTINGS);
    let out = repo.run(&["-e", "staging", "set", "session_key", "--generate"], None);
    assert_ok(&out);
    assert_drawn(&repo.get("staging", "session_key"), 40, lower_hex);
    // Flags win over the manifest, one at a time.
    let out = repo.run(
        &[
            "-e",
            "staging",
            "set",
            "session_key",
            "--generate",
            "--length",
            "12",
        ],
        None,
    );
    assert_ok(&out);
    assert_drawn(&repo.get("staging", "session_key"), 12, lower_hex);
    let args = [
        "-e",
        "staging",
        "set",
        "session_key",
        "--generate",
        "--charset",
        "ascii",
    ];
    assert_ok(&repo.run(&args, None));
    assert_drawn(
        &repo.get("staging", "session_key"),
        40,
        u8::is_ascii_graphic,
    );
    // Without `generate:`, the defaults: 32 alnum characters.
    assert_ok(&repo.run(&["-e", "staging", "set", "other", "--generate"], None));
    assert_drawn(&repo.get("staging", "other"), 32, u8::is_ascii_alphanumeric);
}

#[test]
fn bad_generate_settings_are_refused_with_their_line() {
    let repo = repo_with("  session_key:\n    generate: { length: 0, charset: hex }\n");
    let before = repo.snapshot();
    for args in [
        &["-e", "staging", "rotate", "session_key"][..],
        &["check"],
        &["-e", "staging", "set", "x", "--generate"],
    ] {
        let out = repo.run(args, None);
        assert_refused(&out, &["swarmseal.yaml:", "generate length", "1 to 511999"]);
    }
    assert_same_snapshot(&before, &repo.snapshot(), "a bad manifest");
}

/// End to end on a real Swarm: `rotate` creates a generated value, `apply` puts it on the
/// Swarm for a service, and the next `rotate` + `apply` reaches the running container,
/// which reads a new value of the manifest's length and charset at the same path.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn a_rotated_value_reaches_the_running_service() {
    use crate::common::sync::{engine_repo, EngineExt, ENV};
    let Some((engine, guard, repo)) = engine_repo("rotgen") else {
        return;
    };
    let manifest = repo.t.path("swarmseal.yaml");
    let text = fs::read_to_string(&manifest).unwrap();
    let settings = "secrets:\n  api_token:\n    generate: { length: 24, charset: hex }\n";
    fs::write(&manifest, format!("{text}{settings}")).unwrap();
    let is_token = |v: &[u8]| v.len() == 24 && v.iter().all(|b| b"0123456789abcdef".contains(b));

    assert_ok(&repo.run(&["rotate", "api_token"]));
    let first = repo.t.get(ENV, "api_token");
    assert!(is_token(&first), "{first:?}");
    repo.apply();
    let v1 = repo.current("api_token");
    let svc = format!("{}-app", repo.project);
    guard.service(&svc, &repo.project, &[(&v1.name, "api_token")]);
    let c1 = guard.wait_running(&svc);
    let path = "/run/secrets/api_token";
    assert_eq!(engine.read_in(&c1, path), first);

    let out = repo.run(&["rotate", "api_token"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("commit") || stderr(&out).contains("commit"),
        "{}",
        describe(&out)
    );
    let second = repo.t.get(ENV, "api_token");
    assert!(is_token(&second) && second != first, "{second:?}");
    repo.apply();
    let running = engine.running_containers(&svc);
    assert_eq!(running.len(), 1, "{running:?}");
    assert_ne!(running[0], c1, "the container was not replaced");
    assert_eq!(engine.read_in(&running[0], path), second);
    assert_ne!(repo.current("api_token").name, v1.name);
}
