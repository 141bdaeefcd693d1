//! Plans (issue 11): name clashes across projects, example fingerprint keys, the environment
//! of a saved plan and what made it stale.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored plans::` (engine
//! tests are `#[ignore]`d for a plain `cargo test`; the `check`/`init` warnings need none).
//! Every engine test has its own projects and a [`Guard`] that removes what it made.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::cli::{
    assert_exit, assert_kind, assert_no_panic, assert_ok, assert_refused, describe, json_error,
    run_command, stderr, stdout, TestRepo,
};
use crate::common::engine::{engine, Engine, LABEL_ENVIRONMENT, LABEL_PROJECT};
use crate::common::sync::{count, EngineExt, Guard, SyncRepo, ENV};

/// The public example repository of this source tree.
fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("secrets.example")
}

/// Copies a folder tree (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of `secrets.example` in `t`'s scratch folder under `folder`, with its project
/// renamed to `project` (as someone trying it out would); returns its root.
fn example_copy(t: &TestRepo, folder: &str, project: &str) -> PathBuf {
    let root = t.work.join(folder);
    copy_tree(&example(), &root);
    let manifest = root.join("swarmseal.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let renamed = text.replace("project: example-shop", &format!("project: {project}"));
    assert_ne!(
        text, renamed,
        "the example's manifest has no `project: example-shop`"
    );
    std::fs::write(&manifest, renamed).unwrap();
    root
}

/// `swarmseal -C ROOT -i <demo identity> -e staging [-H host] ARGS`.
fn in_copy(t: &TestRepo, root: &Path, host: Option<&str>, args: &[&str]) -> Output {
    let mut c = t.command_in(&t.work);
    let identity = root.join("demo-identity.txt");
    c.arg("-C")
        .arg(root)
        .arg("-i")
        .arg(identity)
        .args(["-e", ENV]);
    if let Some(host) = host {
        c.args(["-H", host]);
    }
    c.args(args);
    run_command(c, None)
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON on stdout ({e})\n{}", describe(out)))
}

/// Two repositories copied from `secrets.example` share its fingerprint keys, so the same
/// values get the same Swarm names: once one is applied, the other's `plan` shows each
/// clash (human and JSON, naming the holder) and exits 1, `apply` refuses before changing
/// anything, and a new fingerprint key (`rekey` after removing the old one), as the hint
/// says, makes the plan apply.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn copies_of_the_example_clash_and_plan_shows_the_conflict() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let (first, second) = (
        engine.unique_project("clash-first"),
        engine.unique_project("clash-second"),
    );
    guard.project(&first);
    guard.project(&second);
    let t = TestRepo::bare();
    let a = example_copy(&t, "first", &first);
    let b = example_copy(&t, "second", &second);
    let host = Some(engine.host.as_str());

    assert_ok(&in_copy(&t, &a, host, &["apply", "--yes"]));
    let theirs = engine.secrets_labelled(&format!("{LABEL_PROJECT}={first}"));
    assert!(!theirs.is_empty(), "the first copy created nothing");

    // The second copy: every secret clashes with the first copy's.
    let human = in_copy(&t, &b, host, &["plan"]);
    assert_refused(&human, &["db_password", &first, "rekey"]);
    let db = theirs
        .iter()
        .find(|s| s.name.starts_with("db_password-"))
        .expect("the first copy's db_password");
    assert!(stderr(&human).contains(&db.name), "{}", describe(&human));
    let text = stdout(&human);
    assert!(
        text.lines()
            .any(|l| l.contains("name conflict") && l.contains(&db.name)),
        "the human plan does not show the conflict\n{text}"
    );

    let json = in_copy(&t, &b, host, &["--format", "json", "plan"]);
    assert_kind(&json, "blocked");
    let plan = json_of(&json);
    assert_eq!(plan["format_version"], 1);
    // Its configs (configs/staging/nginx.conf) clash as well.
    let their_configs = engine.docker_cli_lines(&[
        "config",
        "ls",
        "-q",
        "--filter",
        &format!("label={LABEL_PROJECT}={first}"),
    ]);
    assert!(
        !their_configs.is_empty(),
        "the first copy created no config"
    );
    assert_eq!(
        count(&plan, "conflict"),
        (theirs.len() + their_configs.len()) as u64,
        "{plan:#}"
    );
    let change = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["secret"] == "db_password")
        .unwrap_or_else(|| panic!("no change of db_password\n{plan:#}"));
    assert_eq!(change["conflict"]["swarm_name"], db.name.as_str());
    assert_eq!(change["conflict"]["project"], first.as_str());
    assert_eq!(change["conflict"]["environment"], ENV);
    let error = json_error(&json).unwrap();
    assert!(error["message"].as_str().unwrap().contains(&db.name));

    // apply refuses before changing anything, and the first copy's secrets are untouched.
    let apply = in_copy(&t, &b, host, &["apply", "--yes"]);
    assert_refused(&apply, &["db_password", &first]);
    assert!(engine
        .secrets_labelled(&format!("{LABEL_PROJECT}={second}"))
        .is_empty());
    assert_eq!(
        engine.secrets_labelled(&format!("{LABEL_PROJECT}={first}")),
        theirs
    );

    // The hint's fix: a new fingerprint key for the environment.
    std::fs::remove_file(b.join(".swarmseal/fingerprint/staging.age")).unwrap();
    assert_ok(&in_copy(&t, &b, None, &["rekey"]));
    let plan = in_copy(&t, &b, host, &["--format", "json", "plan"]);
    assert_ok(&plan);
    assert_eq!(count(&json_of(&plan), "conflict"), 0);
    assert_ok(&in_copy(&t, &b, host, &["apply", "--yes"]));
    let ours = engine.secrets_labelled(&format!("{LABEL_PROJECT}={second}"));
    assert_eq!(ours.len(), theirs.len());
    assert!(ours
        .iter()
        .all(|s| !theirs.iter().any(|t| t.name == s.name)));
}

/// `check` warns (human and JSON) about an environment whose fingerprint key is the public
/// example's, naming the key file and never showing a key; `init` in a copy of the example
/// warns too; a repository of its own gets no such warning.
#[test]
fn check_and_init_warn_about_the_example_fingerprint_keys() {
    let t = TestRepo::bare();
    let copy = example_copy(&t, "copy", "my-shop");
    let human = in_copy(&t, &copy, None, &["check"]);
    assert_no_panic(&human);
    let err = stderr(&human) + &stdout(&human);
    assert!(
        err.contains(".swarmseal/fingerprint/staging.age") && err.contains("secrets.example"),
        "check does not warn about the example key\n{}",
        describe(&human)
    );
    let json = in_copy(&t, &copy, None, &["--format", "json", "check"]);
    let report = json_of(&json);
    let findings = report["findings"].to_string();
    assert!(
        findings.contains("staging.age") && findings.contains("secrets.example"),
        "{report:#}"
    );
    assert!(report["warnings"].as_u64().unwrap() >= 1, "{report:#}");
    // No key material: neither the example's key files nor anything decrypted from them.
    let key_file = std::fs::read(copy.join(".swarmseal/fingerprint/staging.age")).unwrap();
    let armor = String::from_utf8_lossy(&key_file);
    assert!(!findings.contains(armor.trim()));

    // init in the copy: refused (it is a repository already), with the warning.
    let mut c = t.command_in(&copy);
    c.args(["init", "--project", "x", "--recipient"])
        .arg(format!(
            "me={}",
            "age14qpu299tduldnmqnwcm0dwrtd36xlp5htvwa7ea8rlchg0ycgg3qekwpta"
        ));
    let init = run_command(c, None);
    assert_refused(&init, &["already exists"]);
    assert!(
        stderr(&init).contains("fingerprint key of staging")
            && stderr(&init).contains("fingerprint key of production"),
        "{}",
        describe(&init)
    );

    // A repository of its own: no such warning.
    let own = TestRepo::new();
    let out = own.run(&["check"], None);
    assert_ok(&out);
    assert!(
        !stderr(&out).contains("secrets.example"),
        "{}",
        describe(&out)
    );
}

/// `swarmseal -e ENV ARGS` against the engine in a two-environment repository.
fn run_env(t: &TestRepo, engine: &Engine, env: &str, args: &[&str]) -> Output {
    let mut all = vec!["-e", env, "-H", engine.host.as_str()];
    all.extend_from_slice(args);
    t.run(&all, None)
}

fn run_host(t: &TestRepo, engine: &Engine, args: &[&str]) -> Output {
    let mut all = vec!["-H", engine.host.as_str()];
    all.extend_from_slice(args);
    t.run(&all, None)
}

/// `apply FILE` takes the environment from the plan file (no `-e` needed in a repository
/// with two environments); `-e` naming another environment is refused naming both.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_of_a_saved_plan_takes_its_environment() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let project = engine.unique_project("saved-env");
    guard.project(&project);
    let t = TestRepo::with_identity();
    let recipient = format!("me={}", t.public);
    assert_ok(&t.run(
        &[
            "init",
            "--project",
            &project,
            "-e",
            "staging",
            "-e",
            "production",
            "--recipient",
            &recipient,
        ],
        None,
    ));
    t.set("production", "db_password", b"prod value");
    t.set("staging", "db_password", b"staging value");
    let file = t.work.join("production.plan.json");
    let file_arg = file.to_str().unwrap();
    assert_ok(&run_env(
        &t,
        &engine,
        "production",
        &["plan", "--out", file_arg],
    ));

    let wrong = run_env(&t, &engine, "staging", &["apply", file_arg]);
    assert_refused(&wrong, &["production", "-e staging", file_arg]);

    let out = run_host(&t, &engine, &["apply", file_arg]);
    assert_ok(&out);
    let created = engine.secrets_labelled(&format!("{LABEL_PROJECT}={project}"));
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0].label(LABEL_ENVIRONMENT), Some("production"));
    // -e naming the plan's own environment is accepted (and there is nothing left to do).
    assert_ok(&run_env(
        &t,
        &engine,
        "production",
        &["plan", "--out", file_arg],
    ));
    assert_ok(&run_env(&t, &engine, "production", &["apply", file_arg]));
}

/// A stale saved plan says what changed: the repository (which file), or which secret or
/// service on the Swarm; the hint is the `plan -e ENV --out FILE` that makes it again.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn a_stale_plan_says_what_changed() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let repo = SyncRepo::new(&engine, &guard, "stale-what");
    repo.set("db_password", b"v1");
    repo.set("api_key", b"k1");
    repo.apply();
    let db_v1 = repo.current("db_password");
    let file = repo.t.work.join("reviewed.json");
    let file_arg = file.to_str().unwrap();
    let hint = format!("swarmseal plan -e {ENV} --out {file_arg}");
    let plan_out = || assert_ok(&repo.run(&["plan", "--out", file_arg]));

    // The repository: a secret's file changed.
    plan_out();
    repo.set("db_password", b"v2");
    let out = repo.run(&["apply", file_arg]);
    assert_refused(&out, &["stale", "secrets/staging/db_password.age", &hint]);
    assert!(!stderr(&out).contains("api_key"), "{}", describe(&out));
    let json = repo.run_json(&["apply", file_arg]);
    assert_kind(&json, "stale_plan");

    // The Swarm: a service started using one of the environment's secrets.
    plan_out();
    let api = repo.current("api_key");
    let svc = format!("{}-user", repo.project);
    guard.service(&svc, &repo.project, &[(&api.name, "api_key")]);
    let out = repo.run(&["apply", file_arg]);
    assert_refused(&out, &["stale", &format!("service {svc}"), &hint]);

    // The Swarm: a service went, and a secret version was removed by hand.
    plan_out();
    engine.docker_cli_ok(&["service", "rm", &svc]);
    engine.docker_cli_ok(&["secret", "rm", &db_v1.name]);
    let out = repo.run(&["apply", file_arg]);
    assert_refused(
        &out,
        &[
            "stale",
            &format!("service {svc}"),
            &format!("secret {}", db_v1.name),
            &hint,
        ],
    );
    assert_exit(&out, 1);
}
