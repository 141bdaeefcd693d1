//! End-to-end tests of plan/apply against a real single-node Swarm (`docs/design.md#plan-and-apply`): rotation
//! reaching running containers, adoption, pruning, rekey, saved plans, locking, `exec` with
//! `docker stack deploy`, and the failure modes around them. Every outcome is checked on the
//! Swarm with the docker CLI, not only in swarmseal's own output.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored sync::` (engine tests are
//! `#[ignore]`d for a plain `cargo test`, and fail without the harness when
//! `SWARMSEAL_REQUIRE_ENGINE=1`; `unreachable_docker_host_fails_fast_naming_it` needs no
//! engine).
//!
//! Each test has its own project (so tests run in parallel on one Swarm), its own services,
//! and a [`Guard`] that removes its services, stacks and secrets even when it fails. Secrets
//! that are not managed (hand-made ones) are global on a Swarm and are matched by name, so
//! their names carry a per-test suffix.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::common::cli::{
    assert_exit, assert_kind, assert_no_panic, assert_ok, contains_bytes, describe, run_command,
    stderr, stdout, TestRepo,
};
use crate::common::engine::{engine, LABEL_NAME};
use crate::common::sync::{
    change, count, engine_repo, strs, suffix, EngineExt, Guard, SecretInfo, SyncRepo, ENV,
    LABEL_LOCK,
};

const LABEL_FINGERPRINT: &str = "io.swarmseal.fingerprint";
const LABEL_SOURCE: &str = "io.swarmseal.source";

/// Asserts that every summary count not named in `nonzero` is zero, and those named have
/// the given values.
#[track_caller]
fn assert_summary(plan: &serde_json::Value, nonzero: &[(&str, u64)]) {
    for action in ["create", "rotate", "adopt", "relabel", "remove", "blocked"] {
        let want = nonzero
            .iter()
            .find(|(a, _)| *a == action)
            .map_or(0, |(_, n)| *n);
        assert_eq!(count(plan, action), want, "summary.{action}\n{plan:#}");
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Sets each of `names` to `"NAME v1"` and applies; then runs the service `PROJECT-app`
/// mounting the current version of each (at its name) until it runs. Returns the service and
/// the versions it mounts.
fn running_app(guard: &Guard, repo: &SyncRepo, names: &[&str]) -> (String, Vec<SecretInfo>) {
    for n in names {
        repo.set(n, format!("{n} v1").as_bytes());
    }
    repo.apply();
    let current: Vec<_> = names.iter().map(|n| repo.current(n)).collect();
    let svc = format!("{}-app", repo.project);
    let mounts: Vec<(&str, &str)> = current
        .iter()
        .zip(names)
        .map(|(s, n)| (s.name.as_str(), *n))
        .collect();
    guard.service(&svc, &repo.project, &mounts);
    guard.wait_running(&svc);
    (svc, current)
}

// --- 1. rotation ------------------------------------------------------------------------------

/// A changed value is planned as `rotate` naming the service that uses it (exit 2 with
/// `--detailed-exitcode`, in the human and the JSON plan); `apply --yes --wait` puts the new
/// value at the same path in the running container, removes the old version, and leaves
/// nothing to do.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn rotation_reaches_the_running_service_and_keeps_the_rollback_target() {
    let Some((engine, guard, repo)) = engine_repo("rotate") else {
        return;
    };
    let path = "/run/secrets/db_password";

    repo.set("db_password", b"first value\n");
    repo.apply();
    let v1 = repo.current("db_password");
    let svc = format!("{}-app", repo.project);
    // Not the default owner and mode: rotation must keep them.
    guard.service(
        &svc,
        &repo.project,
        &[(&v1.name, "db_password,uid=1000,gid=1001,mode=0400")],
    );
    let c1 = guard.wait_running(&svc);
    assert_eq!(engine.read_in(&c1, path), b"first value\n");
    let refs_before = engine.service_refs(&svc);
    assert_eq!(
        (
            refs_before[0].uid.as_str(),
            refs_before[0].gid.as_str(),
            refs_before[0].mode
        ),
        ("1000", "1001", 0o400)
    );
    repo.assert_converged();

    repo.set("db_password", b"second value\n");

    let human = repo.run(&["plan", "--detailed-exitcode"]);
    assert_exit(&human, 2);
    let text = stdout(&human);
    assert!(
        text.lines()
            .any(|l| l.contains("rotate") && l.contains("db_password")),
        "the human plan has no rotate line for db_password\n{}",
        describe(&human)
    );
    assert!(
        text.contains(&svc),
        "the human plan does not name the service {svc}\n{}",
        describe(&human)
    );

    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_summary(&plan, &[("rotate", 1)]);
    let c = change(&plan, "rotate", "db_password");
    assert_eq!(
        strs(&c["services"]),
        vec![svc.clone()],
        "rotate re-points the service\n{plan:#}"
    );
    assert_eq!(
        strs(&c["replaces"]),
        vec![v1.name.clone()],
        "rotate replaces the old version\n{plan:#}"
    );
    assert_eq!(c["unverified"], false);
    let new_name = c["swarm_name"]
        .as_str()
        .expect("rotate names the new version")
        .to_owned();
    assert_ne!(new_name, v1.name);

    repo.apply();

    // --wait returned: the service runs the new version now.
    let running = engine.running_containers(&svc);
    assert_eq!(
        running.len(),
        1,
        "one running container of {svc} after apply --wait: {running:?}"
    );
    assert_ne!(running[0], c1, "the container was not replaced");
    assert_eq!(
        engine.read_in(&running[0], path),
        b"second value\n",
        "the value at {path} after rotation"
    );
    let owner = engine.docker_cli_ok(&["exec", &running[0], "stat", "-c", "%a %u %g", path]);
    assert_eq!(
        String::from_utf8_lossy(&owner).trim(),
        "400 1000 1001",
        "mode and owner of {path} after rotation"
    );

    let v2 = repo.current("db_password");
    assert_eq!(v2.name, new_name);
    let refs = engine.service_refs(&svc);
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].secret_id, v2.id);
    assert_eq!(refs[0].secret_name, new_name);
    assert_eq!(
        (&refs[0].target, &refs[0].uid, &refs[0].gid, refs[0].mode),
        (
            &refs_before[0].target,
            &refs_before[0].uid,
            &refs_before[0].gid,
            refs_before[0].mode
        ),
        "target, uid, gid and mode are kept"
    );
    // The old version is what `docker service rollback` brings back: kept, and the plan
    // says which service can roll back to it.
    assert!(
        engine.secret_named(&v1.name).is_some(),
        "the old version {} was removed although {svc} can roll back to it",
        v1.name
    );
    repo.assert_converged();
    let (_, plan) = repo.plan_json(&[]);
    let kept = plan["kept"].as_array().cloned().unwrap_or_default();
    assert!(
        kept.iter().any(|k| k["swarm_name"] == v1.name.as_str()
            && k["why"] == "rollback"
            && strs(&k["services"]) == vec![svc.clone()]),
        "the plan does not say why {} is kept\n{plan:#}",
        v1.name
    );

    // The next rotation moves the service on: the first version leaves its previous spec
    // and goes once the update has converged; the second stays as the rollback target.
    repo.set("db_password", b"third value\n");
    repo.apply();
    assert!(
        engine.secret_named(&v1.name).is_none(),
        "{} outlived two rotations",
        v1.name
    );
    assert!(engine.secret_named(&v2.name).is_some());
    assert_eq!(
        repo.versions("db_password").len(),
        2,
        "{:#?}",
        repo.managed()
    );
    repo.assert_converged();
}

// --- 2. adoption ------------------------------------------------------------------------------

/// A hand-made secret used by a service is adopted: a managed version is created, the
/// service is re-pointed to it (same target), and the hand-made secret is left alone.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn adopt_repoints_a_service_from_a_hand_made_secret() {
    let Some((engine, guard, repo)) = engine_repo("adopt") else {
        return;
    };
    // Unmanaged secrets are global: a per-test name (the acceptance text says `db_password`),
    // so that parallel tests' repositories do not adopt it too.
    let name = format!("db_password_{}", suffix(&repo.project));
    let original_id = guard.unmanaged_secret(&name, b"hand-made value", &repo.t.work);
    let svc = format!("{}-app", repo.project);
    guard.service(&svc, &repo.project, &[(&name, "db_password")]);
    let c1 = guard.wait_running(&svc);
    assert_eq!(
        engine.read_in(&c1, "/run/secrets/db_password"),
        b"hand-made value"
    );
    let refs_before = engine.service_refs(&svc);
    assert_eq!(refs_before[0].secret_id, original_id);

    repo.set(&name, b"managed value");
    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_summary(&plan, &[("adopt", 1)]);
    let c = change(&plan, "adopt", &name);
    assert_eq!(strs(&c["services"]), vec![svc.clone()], "{plan:#}");
    assert_eq!(strs(&c["replaces"]), vec![name.clone()], "{plan:#}");
    let managed_name = c["swarm_name"]
        .as_str()
        .expect("adopt names the new version")
        .to_owned();

    repo.apply();

    let managed = repo.current(&name);
    assert_eq!(managed.name, managed_name);
    assert_ne!(managed.id, original_id);
    let refs = engine.service_refs(&svc);
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(
        refs[0].secret_id, managed.id,
        "the service now uses the managed version: {refs:?}"
    );
    assert_eq!(refs[0].secret_name, managed.name);
    assert_eq!(refs[0].target, "db_password", "same target");
    assert_eq!(
        (&refs[0].uid, &refs[0].gid, refs[0].mode),
        (
            &refs_before[0].uid,
            &refs_before[0].gid,
            refs_before[0].mode
        )
    );
    let running = engine.running_containers(&svc);
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(
        engine.read_in(&running[0], "/run/secrets/db_password"),
        b"managed value"
    );

    let original = engine
        .secret_named(&name)
        .expect("the hand-made secret was removed");
    assert_eq!(original.id, original_id);
    assert!(
        original.labels.is_empty(),
        "the hand-made secret got labels: {:?}",
        original.labels
    );

    repo.assert_converged();
}

// --- 3. pruning -------------------------------------------------------------------------------

/// Secrets removed from the repository are removed from the Swarm unless a service uses them
/// (then `blocked`: apply says so, exits non-zero, and never touches the service); unmanaged
/// secrets, even one named like a secret of the repository, and another project's secrets
/// survive every apply.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn prune_removes_unused_blocks_used_and_spares_others() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let a = SyncRepo::new(&engine, &guard, "prune");
    let b = SyncRepo::new(&engine, &guard, "prune-other");
    let sfx = suffix(&a.project);
    let shadow = format!("shadow_{sfx}"); // a logical name of A and an unmanaged secret
    let stray = format!("stray_{sfx}"); // an unmanaged secret of another name

    for r in [&a, &b] {
        r.set("keep", b"kept value");
        r.set("gone_unused", b"unused value");
        r.set("gone_used", b"used value");
    }
    a.set(&shadow, b"managed shadow");
    let shadow_id = guard.unmanaged_secret(&shadow, b"unmanaged shadow", &a.t.work);
    let stray_id = guard.unmanaged_secret(&stray, b"stray", &a.t.work);
    a.apply();
    b.apply();
    let b_before = b.managed();
    assert_eq!(b_before.len(), 3, "{b_before:#?}");

    let used = a.current("gone_used");
    let unused = a.current("gone_unused");
    let managed_shadow = a.current(&shadow);
    let keep = a.current("keep");
    let svc = format!("{}-app", a.project);
    guard.service(&svc, &a.project, &[(&used.name, "gone_used")]);
    guard.wait_running(&svc);
    let svc_version = engine.service_field(&svc, "{{.Version.Index}}");
    let svc_refs = engine.service_refs(&svc);

    a.rm("gone_unused");
    a.rm("gone_used");
    a.rm(&shadow);

    // A removal a service prevents fails the plan (what plan accepts, apply completes),
    // naming the secret and the service; the JSON plan still lists everything.
    let (out, plan) = a.plan_json(&["--detailed-exitcode"]);
    assert_kind(&out, "blocked");
    assert!(
        stderr(&out).contains("gone_used") && stderr(&out).contains(&svc),
        "{}",
        describe(&out)
    );
    assert_summary(&plan, &[("remove", 2), ("blocked", 1)]);
    assert_eq!(
        change(&plan, "remove", "gone_unused")["swarm_name"],
        unused.name.as_str()
    );
    assert_eq!(
        change(&plan, "remove", &shadow)["swarm_name"],
        managed_shadow.name.as_str()
    );
    let blocked = change(&plan, "blocked", "gone_used");
    assert_eq!(blocked["swarm_name"], used.name.as_str());
    assert_eq!(strs(&blocked["services"]), vec![svc.clone()]);

    let check_survivors = |when: &str, unchanged_service: bool| {
        let s = engine
            .secret_named(&shadow)
            .unwrap_or_else(|| panic!("{when}: the unmanaged {shadow} is gone"));
        assert_eq!(s.id, shadow_id, "{when}");
        let s = engine
            .secret_named(&stray)
            .unwrap_or_else(|| panic!("{when}: the unmanaged {stray} is gone"));
        assert_eq!(s.id, stray_id, "{when}");
        assert_eq!(
            b.managed(),
            b_before,
            "{when}: project {}'s secrets changed",
            b.project
        );
        assert_eq!(
            a.versions("gone_used"),
            vec![used.clone()],
            "{when}: the version a service can run with changed"
        );
        assert_eq!(
            a.current("keep"),
            keep,
            "{when}: an unchanged secret changed"
        );
        if unchanged_service {
            assert_eq!(
                engine.service_field(&svc, "{{.Version.Index}}"),
                svc_version,
                "{when}: the service was updated"
            );
            assert_eq!(
                engine.service_refs(&svc),
                svc_refs,
                "{when}: the service's secrets changed"
            );
        }
    };

    // apply refuses the same plan before changing anything.
    let out = a.run_json(&["apply", "--yes", "--wait"]);
    assert_kind(&out, "blocked");
    let err = stderr(&out);
    assert!(
        err.contains("blocked"),
        "stderr does not say blocked\n{}",
        describe(&out)
    );
    assert!(
        err.contains(&svc),
        "stderr does not name the service {svc}\n{}",
        describe(&out)
    );
    assert_eq!(
        a.versions("gone_unused").len(),
        1,
        "apply changed something"
    );
    check_survivors("after A's refused apply", true);

    // The service stops using the secret: the plan passes. The version stays while the
    // service can roll back to it; the unused ones go. Nobody else's secret is touched.
    engine.docker_cli_ok(&[
        "service",
        "update",
        "--quiet",
        "--secret-rm",
        &used.name,
        &svc,
    ]);
    let (out, plan) = a.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_summary(&plan, &[("remove", 2)]);
    let kept = plan["kept"].as_array().cloned().unwrap_or_default();
    assert!(
        kept.iter()
            .any(|k| k["swarm_name"] == used.name.as_str() && k["why"] == "rollback"),
        "{plan:#}"
    );
    let out = a.run(&["apply", "--yes", "--wait"]);
    assert_ok(&out);
    assert!(
        a.versions("gone_unused").is_empty(),
        "gone_unused was not removed"
    );
    assert!(
        a.versions(&shadow).is_empty(),
        "the managed {shadow} was not removed"
    );
    check_survivors("after A's apply", false);

    // The other project applies (nothing to do) and A applies again (nothing to do):
    // still nobody else's secret is touched.
    b.assert_converged();
    assert_ok(&b.run(&["apply", "--yes"]));
    check_survivors("after B's apply", false);
    assert_ok(&a.run(&["apply", "--yes"]));
    check_survivors("after A's second apply", false);
}

// --- 4. rekey ---------------------------------------------------------------------------------

/// After a new recipient and `rekey`, the files changed but the values did not: the plan only
/// relabels (the `source` label), and apply updates the labels in place — same secret IDs,
/// same fingerprints, no rotation.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn rekey_relabels_in_place_without_rotation() {
    let Some((_engine, _guard, repo)) = engine_repo("rekey") else {
        return;
    };
    repo.set("db_password", b"value one");
    repo.set("tls/api.crt", b"value two");
    repo.apply();
    let before = repo.managed();
    assert_eq!(before.len(), 2, "{before:#?}");
    let files = [
        repo.t.secret_file(ENV, "db_password"),
        repo.t.path(&format!("secrets/{ENV}/tls/api.crt.age")),
    ];
    let sources_before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let (bob_identity, bob_public) = repo.t.new_age_key("bob.txt");
    assert_ok(&repo.run(&["recipients", "add", "bob", &bob_public]));
    assert_ok(&repo.run(&["rekey"]));
    for (file, old) in files.iter().zip(&sources_before) {
        assert_ne!(
            &std::fs::read(file).unwrap(),
            old,
            "rekey did not re-encrypt {}",
            file.display()
        );
    }

    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert!(count(&plan, "relabel") >= 1, "{plan:#}");
    assert_summary(&plan, &[("relabel", 2)]);
    for c in plan["changes"].as_array().unwrap() {
        assert_eq!(c["action"], "relabel", "{plan:#}");
    }

    repo.apply();
    let after = repo.managed();
    assert_eq!(after.len(), 2, "{after:#?}");
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (&new.id, &new.name),
            (&old.id, &old.name),
            "the secret was replaced, not relabelled"
        );
        assert_eq!(new.label(LABEL_FINGERPRINT), old.label(LABEL_FINGERPRINT));
        assert!(
            new.version > old.version,
            "the labels were not updated in place: {old:?} -> {new:?}"
        );
        let logical = new.label(LABEL_NAME).unwrap();
        let file = if logical == "db_password" {
            &files[0]
        } else {
            &files[1]
        };
        assert_eq!(
            new.label(LABEL_SOURCE),
            Some(sha256_hex(&std::fs::read(file).unwrap()).as_str()),
            "the source label of {logical} is the sha256 of the re-encrypted file"
        );
    }
    repo.assert_converged();

    // The new recipient can read the values.
    let mut c = repo.command(&["get", "db_password"]);
    c.arg("-i").arg(&bob_identity);
    let out = run_command(c, None);
    assert_ok(&out);
    assert_eq!(out.stdout, b"value one");
}

// --- 5. one update per service ----------------------------------------------------------------

/// Three secrets of one service rotate in one service update.
///
/// How "exactly one update" is measured: `Version.Index` is a cluster-wide raft index and may
/// jump by more than one, and service events also fire for update-status changes, so neither
/// counts updates reliably. Instead, two independent facts:
/// - `PreviousSpec` (the spec before the last update) references all three *old* versions:
///   had the secrets been swapped one update at a time, the previous spec would already hold
///   the first new versions;
/// - the task history (`docker service ps`, one replica) holds exactly two tasks: the
///   original, shut down, and one new task. Each update that changes the task template
///   replaces the task, so two or three updates would leave three or four.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn three_rotations_update_their_service_once() {
    let Some((engine, guard, repo)) = engine_repo("three") else {
        return;
    };
    let names = ["alpha", "beta", "gamma"];
    let (svc, old) = running_app(&guard, &repo, &names);
    assert_eq!(
        engine.previous_refs(&svc),
        None,
        "a new service has no previous spec"
    );
    assert_eq!(engine.service_tasks(&svc).len(), 1);

    for n in names {
        repo.set(n, format!("{n} v2").as_bytes());
    }
    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_summary(&plan, &[("rotate", 3)]);
    for n in names {
        assert_eq!(
            strs(&change(&plan, "rotate", n)["services"]),
            vec![svc.clone()]
        );
    }

    repo.apply();

    let new: Vec<_> = names.iter().map(|n| repo.current(n)).collect();
    let refs = engine.service_refs(&svc);
    assert_eq!(
        refs.iter()
            .map(|r| (r.target.as_str(), r.secret_id.as_str()))
            .collect::<Vec<_>>(),
        names
            .iter()
            .zip(&new)
            .map(|(n, s)| (*n, s.id.as_str()))
            .collect::<Vec<_>>(),
        "the service uses the three new versions"
    );
    let previous = engine
        .previous_refs(&svc)
        .expect("the service was never updated");
    assert_eq!(
        previous.iter().map(|r| (r.target.as_str(), r.secret_id.as_str())).collect::<Vec<_>>(),
        names.iter().zip(&old).map(|(n, s)| (*n, s.id.as_str())).collect::<Vec<_>>(),
        "the spec before the last update still had all three old versions: the secrets were not swapped in one update"
    );
    let tasks = engine.service_tasks(&svc);
    assert_eq!(
        tasks.len(),
        2,
        "one update means one replacement task (original + new), found {}:\n{}",
        tasks.len(),
        String::from_utf8_lossy(&engine.docker_cli_ok(&["service", "ps", "--no-trunc", &svc]))
    );
    let running = engine.running_containers(&svc);
    assert_eq!(running.len(), 1, "{running:?}");
    for n in names {
        assert_eq!(
            engine.read_in(&running[0], &format!("/run/secrets/{n}")),
            format!("{n} v2").as_bytes()
        );
    }
    // The previous spec references the old versions: kept for a rollback.
    for s in &old {
        assert!(
            engine.secret_named(&s.name).is_some(),
            "old version {} was removed although the service can roll back to it",
            s.name
        );
    }
    repo.assert_converged();
}

// --- 6. saved plans ---------------------------------------------------------------------------

/// Fails when the plan file holds `value` in any form: raw, base64 (at each of the three
/// alignments, as inside a longer base64 text), hex, or its unkeyed sha256.
#[track_caller]
fn assert_no_value_in(file: &std::path::Path, value: &[u8]) {
    let text = std::fs::read(file).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forms: Vec<(String, Vec<u8>)> = vec![
        ("raw".into(), value.to_vec()),
        ("hex".into(), hex::encode(value).into_bytes()),
        ("sha256".into(), sha256_hex(value).into_bytes()),
    ];
    for shift in 0..3 {
        let enc = b64.encode([&vec![0u8; shift][..], value].concat());
        // Skip the characters that depend on the padding bytes and the tail.
        let start = (shift * 4).div_ceil(3) + 1;
        let end = enc.trim_end_matches('=').len().saturating_sub(2);
        forms.push((
            format!("base64 (shift {shift})"),
            enc.as_bytes()[start..end].to_vec(),
        ));
    }
    for (what, needle) in forms {
        assert!(
            !contains_bytes(&text, &needle),
            "the plan file {} holds a secret value ({what})",
            file.display()
        );
    }
}

/// `plan --out F` then `apply F` applies without a prompt (stdin is /dev/null); a plan is
/// refused as stale when the repository changed, when a service started using a managed
/// secret, and when a managed secret was removed by hand; plan files hold no values.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn saved_plans_apply_when_fresh_and_are_refused_when_stale() {
    let Some((engine, guard, repo)) = engine_repo("saved-plan") else {
        return;
    };
    let values: [&[u8]; 5] = [
        b"alpha-value-Q7x9!kW2#mZ4",
        b"charlie-value-P3s8@vL1$nB6",
        b"alpha-second-R5t2%hJ8^cX0",
        b"bravo-value-Y4u7&gF3*dS9",
        b"alpha-third-K2w6(eN5)qA1",
    ];
    let plan_file = |n: &str| repo.t.work.join(format!("{n}.plan"));
    let refused_stale = |file: &std::path::Path, what: &str| {
        let before = repo.managed();
        let mut c = repo.command(&["--format", "json", "apply"]);
        c.arg(file);
        let out = run_command(c, None);
        assert_kind(&out, "stale_plan");
        assert!(
            stderr(&out).contains("stale"),
            "{what}: no \"stale\" on stderr\n{}",
            describe(&out)
        );
        assert_eq!(
            repo.managed(),
            before,
            "{what}: the refused plan changed the Swarm"
        );
    };

    // Fresh: applied without --yes and without a terminal.
    repo.set("alpha", values[0]);
    repo.set("charlie", values[1]);
    let f1 = plan_file("fresh");
    let mut c = repo.command(&["plan", "--out"]);
    c.arg(&f1);
    assert_ok(&run_command(c, None));
    assert!(repo.managed().is_empty(), "plan --out changed the Swarm");
    let mut c = repo.command(&["apply"]);
    c.arg(&f1);
    let out = run_command(c, None);
    assert_ok(&out);
    assert_eq!(
        repo.managed().len(),
        2,
        "the saved plan was not applied: {:#?}",
        repo.managed()
    );
    repo.assert_converged();
    let alpha_v1 = repo.current("alpha");

    // Stale: the repository changed after the plan was made.
    repo.set("alpha", values[2]);
    let f2 = plan_file("stale-repo");
    let mut c = repo.command(&["plan", "--out"]);
    c.arg(&f2);
    assert_ok(&run_command(c, None));
    repo.set("bravo", values[3]);
    refused_stale(&f2, "repository changed");

    // Stale: a service started using a managed secret.
    let f3 = plan_file("stale-service");
    let mut c = repo.command(&["plan", "--out"]);
    c.arg(&f3);
    assert_ok(&run_command(c, None));
    let svc = format!("{}-app", repo.project);
    guard.service(&svc, &repo.project, &[(&alpha_v1.name, "alpha")]);
    guard.wait_running(&svc);
    refused_stale(&f3, "a new service uses a managed secret");

    // Stale: a managed secret was removed by hand.
    let f4 = plan_file("stale-secret");
    let mut c = repo.command(&["plan", "--out"]);
    c.arg(&f4);
    assert_ok(&run_command(c, None));
    let charlie = repo.current("charlie");
    engine.docker_cli_ok(&["secret", "rm", &charlie.id]);
    refused_stale(&f4, "a managed secret was removed by hand");

    // A fresh plan of all that applies and converges.
    repo.set("alpha", values[4]);
    let f5 = plan_file("final");
    let mut c = repo.command(&["plan", "--out"]);
    c.arg(&f5);
    assert_ok(&run_command(c, None));
    let mut c = repo.command(&["apply"]);
    c.arg(&f5);
    assert_ok(&run_command(c, None));
    repo.assert_converged();
    assert_eq!(
        engine.service_refs(&svc)[0].secret_id,
        repo.current("alpha").id
    );

    for f in [&f1, &f2, &f3, &f4, &f5] {
        for v in values {
            assert_no_value_in(f, v);
        }
    }
}

// --- 7. concurrent applies --------------------------------------------------------------------

/// Two `apply --yes` at once: with no lock timeout one wins and the other fails naming the
/// lock (or, had it come second, finds nothing to do); with a lock timeout both succeed, the
/// second after waiting. Either way the end state has exactly one version per secret.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn concurrent_applies_are_serialised_by_the_lock() {
    let Some((engine, guard, repo)) = engine_repo("concurrent") else {
        return;
    };
    let names = ["one", "two", "three"];
    let (svc, _) = running_app(&guard, &repo, &names);

    let both = |extra: &[&str]| {
        let mut args = vec!["apply", "--yes", "--wait", "--wait-timeout", "2m"];
        args.extend_from_slice(extra);
        std::thread::scope(|s| {
            let a = s.spawn(|| run_command(repo.command(&args), None));
            let b = s.spawn(|| run_command(repo.command(&args), None));
            [a.join().unwrap(), b.join().unwrap()]
        })
    };
    let check_end_state = |round: &str, version: &str, outs: &[std::process::Output; 2]| {
        let round = format!(
            "{round}\n--- first apply ---\n{}\n--- second apply ---\n{}",
            describe(&outs[0]),
            describe(&outs[1])
        );
        let by_name = repo.managed_names();
        assert_eq!(by_name.len(), names.len(), "{round}: {by_name:?}");
        for n in names {
            // One current version, and at most the one the service can roll back to.
            repo.current(n);
            let versions = &by_name[n];
            assert!(
                versions.len() <= 2,
                "{round}: {n} has {} versions: {versions:?}",
                versions.len()
            );
        }
        let running = engine.running_containers(&svc);
        assert_eq!(running.len(), 1, "{round}: {running:?}");
        for n in names {
            assert_eq!(
                String::from_utf8_lossy(&engine.read_in(&running[0], &format!("/run/secrets/{n}"))),
                format!("{n} {version}"),
                "{round}\n--- docker service ps ---\n{}",
                String::from_utf8_lossy(&engine.docker_cli_ok(&[
                    "service",
                    "ps",
                    "--no-trunc",
                    &svc
                ]))
            );
        }
        let lock = format!("{LABEL_LOCK}={}/{ENV}", repo.project);
        assert!(
            engine.secrets_labelled(&lock).is_empty(),
            "{round}: the lock marker was left behind"
        );
        repo.assert_converged();
    };

    // Round 1: no lock timeout.
    for n in names {
        repo.set(n, format!("{n} v2").as_bytes());
    }
    let outs = both(&[]);
    for out in &outs {
        assert_no_panic(out);
        if !out.status.success() {
            assert_exit(out, 1);
            assert!(
                stderr(out).contains("lock"),
                "the losing apply does not name the lock\n{}",
                describe(out)
            );
        }
    }
    assert!(
        outs.iter().any(|o| o.status.success()),
        "neither apply succeeded\n{}\n{}",
        describe(&outs[0]),
        describe(&outs[1])
    );
    if outs.iter().all(|o| o.status.success()) {
        eprintln!("note: round 1 applies did not overlap (the second found nothing to do)");
    }
    check_end_state("round 1", "v2", &outs);

    // Round 2: the second apply waits for the lock.
    for n in names {
        repo.set(n, format!("{n} v3").as_bytes());
    }
    let outs = both(&["--lock-timeout", "3m"]);
    for out in &outs {
        assert_ok(out);
    }
    check_end_state("round 2", "v3", &outs);
}

// --- 8. plan without an identity --------------------------------------------------------------

/// With no identity anywhere, `plan` still runs (exit 0) and marks the changed file's change
/// as unverified; unchanged files stay unchanged.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn plan_without_identity_flags_changed_files_as_unverified() {
    let Some((_engine, _guard, repo)) = engine_repo("no-identity") else {
        return;
    };
    repo.set("changed", b"v1");
    repo.set("same", b"same value");
    repo.apply();
    repo.set("changed", b"v2");

    let nohome = repo.t.work.join("nohome");
    std::fs::create_dir_all(nohome.join(".config")).unwrap();
    let no_identity = |args: &[&str]| {
        let mut c = repo.command(args);
        c.env("HOME", &nohome)
            .env("XDG_CONFIG_HOME", nohome.join(".config"));
        run_command(c, None)
    };

    let out = no_identity(&["--format", "json", "plan"]);
    assert_exit(&out, 0);
    assert_no_panic(&out);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON plan ({e})\n{}", describe(&out)));
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(
        changes.len(),
        1,
        "only the changed file is a change\n{plan:#}"
    );
    let c = &changes[0];
    assert_eq!(c["secret"], "changed", "{plan:#}");
    assert_eq!(c["unverified"], true, "{plan:#}");
    // A version with the old value exists: without an identity it is a rotation too.
    assert_eq!(c["action"], "rotate", "{plan:#}");

    let out = no_identity(&["plan", "--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert!(
        stdout(&out).contains("unverified"),
        "the human plan does not say unverified\n{}",
        describe(&out)
    );

    // It cannot be applied, and nothing changes.
    let before = repo.managed();
    let out = no_identity(&["apply", "--yes"]);
    assert_exit(&out, 1);
    assert_eq!(repo.managed(), before);
}

// --- 9. exec + docker stack deploy ------------------------------------------------------------

/// `exec` gives a command each secret's current Swarm name (never its value), so that a
/// compose file deployed with `docker stack deploy` mounts the managed version.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn exec_feeds_current_names_to_docker_stack_deploy() {
    let Some((engine, guard, repo)) = engine_repo("exec-stack") else {
        return;
    };
    let value = b"stack secret value 42";
    repo.set("db_password", value);
    repo.apply();
    let current = repo.current("db_password");

    // The child's environment: the name, not the value.
    let out = repo.run(&["exec", "--", "env"]);
    assert_ok(&out);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l == format!("SWARMSEAL_DB_PASSWORD={}", current.name)),
        "exec does not set SWARMSEAL_DB_PASSWORD={}\n{}",
        current.name,
        describe(&out)
    );
    assert!(
        !contains_bytes(&out.stdout, value),
        "the value is in the child's environment"
    );

    let compose = format!(
        r#"version: "3.8"
services:
  app:
    image: {image}
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets:
      - db_password
secrets:
  db_password:
    external: true
    name: "${{SWARMSEAL_DB_PASSWORD}}"
"#,
        image = engine.image
    );
    let file = repo.t.work.join("stack.yml");
    std::fs::write(&file, compose).unwrap();
    let stack = repo.project.clone();
    guard.stack(&stack);
    let out = repo.run(&[
        "exec",
        "--",
        "docker",
        "-H",
        &engine.host,
        "stack",
        "deploy",
        "-c",
        file.to_str().unwrap(),
        &stack,
    ]);
    assert_ok(&out);

    let svc = format!("{stack}_app");
    let container = guard.wait_running(&svc);
    assert_eq!(
        engine.read_in(&container, "/run/secrets/db_password"),
        value
    );
    let refs = engine.service_refs(&svc);
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(
        (refs[0].secret_id.as_str(), refs[0].secret_name.as_str()),
        (current.id.as_str(), current.name.as_str())
    );
}

// --- 10. unreachable engines ------------------------------------------------------------------

/// An unreachable DOCKER_HOST (missing socket, closed port, a port that accepts but never
/// answers; loopback only) fails with exit 1 and a message naming it, within 10 s.
#[test]
fn unreachable_docker_host_fails_fast_naming_it() {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"value");

    // A server that accepts connections and never says anything.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let silent = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => break,
                }
            }
        })
    };

    let silent_url = format!("http://127.0.0.1:{port}");
    let hosts = [
        "unix:///nonexistent/docker.sock",
        "tcp://127.0.0.1:1",
        "http://127.0.0.1:1",
        silent_url.as_str(),
    ];
    for host in hosts {
        for args in [
            &["-e", "staging", "plan"][..],
            &["-e", "staging", "apply", "--yes"][..],
        ] {
            let mut c = repo.command();
            c.args(args).env("DOCKER_HOST", host);
            let start = Instant::now();
            let out = run_command(c, None);
            let took = start.elapsed();
            assert_no_panic(&out);
            assert_exit(&out, 1);
            assert!(
                stderr(&out).contains(host),
                "the error does not name {host}\n{}",
                describe(&out)
            );
            assert!(
                took < Duration::from_secs(10),
                "{args:?} with DOCKER_HOST={host} took {took:?}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    silent.join().unwrap();
}

// --- confirmation and the cluster pin ---------------------------------------------------------

/// Without `--yes` and without a terminal, apply refuses and changes nothing (and, with no
/// pin, says how to add one); with a `swarm_id` pin that does not match, plan and apply
/// refuse naming both IDs; with the right pin, apply works.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_refuses_without_confirmation_or_on_another_swarm() {
    let Some((engine, _guard, repo)) = engine_repo("confirm-pin") else {
        return;
    };
    let cluster = engine.cluster_id();
    repo.set("db_password", b"value");

    let out = repo.run(&["apply"]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("--yes"),
        "the refusal does not mention --yes\n{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains(&format!("swarm_id: {cluster}")),
        "apply on an unpinned environment does not say how to pin it\n{}",
        describe(&out)
    );
    assert!(
        repo.managed().is_empty(),
        "apply without confirmation changed the Swarm"
    );

    let manifest = std::fs::read_to_string(repo.manifest()).unwrap();
    let anchor = format!("  {ENV}:\n    recipients: [me]\n");
    assert_eq!(
        manifest.matches(&anchor).count(),
        1,
        "unexpected manifest layout:\n{manifest}"
    );
    let pin = |id: &str| {
        std::fs::write(
            repo.manifest(),
            manifest.replace(&anchor, &format!("{anchor}    swarm_id: {id}\n")),
        )
        .unwrap();
    };

    pin("wrong");
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let out = repo.run_json(args);
        assert_kind(&out, "wrong_swarm");
        let err = stderr(&out);
        assert!(
            err.contains("wrong") && err.contains(&cluster),
            "{args:?} does not name both IDs\n{}",
            describe(&out)
        );
    }
    assert!(
        repo.managed().is_empty(),
        "apply on the wrong Swarm changed it"
    );

    pin(&cluster);
    let out = repo.apply();
    assert!(
        !stderr(&out).contains("not pinned"),
        "pinned, but apply says it is not\n{}",
        describe(&out)
    );
    assert_eq!(repo.managed().len(), 1);
    repo.assert_converged();
}

// --- the lock and unlock ----------------------------------------------------------------------

/// Leaves `repo`'s apply lock held by `holder`, as a killed apply leaves its marker (the
/// guard removes it by its lock label); returns the marker's name.
fn hold_lock(engine: &crate::common::engine::Engine, repo: &SyncRepo, holder: &str) -> String {
    let marker = swarmseal::swarm::lock_name(&repo.project, ENV);
    let file = repo.t.work.join("lock-data");
    std::fs::write(&file, swarmseal::swarm::LOCK_DATA).unwrap();
    engine.docker_cli_ok(&[
        "secret",
        "create",
        "--label",
        &format!("{LABEL_LOCK}={}/{ENV}", repo.project),
        "--label",
        &format!("{LABEL_LOCK}.holder={holder}"),
        "--label",
        &format!("{LABEL_LOCK}.created=2020-01-01T00:00:00Z"),
        &marker,
        file.to_str().unwrap(),
    ]);
    marker
}

/// `apply --yes` takes the lock while it reads the files (nobody reviews a plan first). A
/// repository with problems still fails with its own error, naming the file, even when the
/// lock is held by someone else; the lock it took is given back, and nothing is created.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_yes_on_a_repository_with_problems_gives_the_lock_back() {
    let Some((engine, _guard, repo)) = engine_repo("lockback") else {
        return;
    };
    repo.set("db_password", b"value");
    let leak = repo.t.path(&format!("secrets/{ENV}/leak.age"));
    std::fs::write(&leak, b"a plaintext value\n").unwrap();
    let lock = format!("{LABEL_LOCK}={}/{ENV}", repo.project);
    // apply fails with the repository's error, naming the file.
    let refused = || {
        let out = repo.run(&["apply", "--yes"]);
        assert_exit(&out, 1);
        assert!(stderr(&out).contains("leak.age"), "{}", describe(&out));
    };
    refused();
    assert!(
        engine.secrets_labelled(&lock).is_empty(),
        "the lock was left behind"
    );
    assert!(repo.managed().is_empty(), "a refused apply created secrets");
    // With the lock held by another apply, the repository's error still comes first.
    let marker = hold_lock(&engine, &repo, "ci@other-runner pid 4242");
    refused();
    assert_eq!(
        engine.secrets_labelled(&lock).len(),
        1,
        "the other lock is gone"
    );
    engine.docker_cli_ok(&["secret", "rm", &marker]);
    std::fs::remove_file(&leak).unwrap();
    assert_ok(&repo.run(&["apply", "--yes"]));
    assert_eq!(repo.managed().len(), 1);
}

/// A lock left behind by a dead apply stops apply (naming the lock and its holder), also after
/// `--lock-timeout`; `plan` still runs and mentions it; `unlock` breaks it and apply proceeds.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn stale_lock_blocks_apply_until_unlock() {
    let Some((engine, _guard, repo)) = engine_repo("unlock") else {
        return;
    };
    repo.set("db_password", b"value");

    let holder = "ci@dead-runner pid 4242";
    let marker = hold_lock(&engine, &repo, holder);

    let out = repo.run(&["plan"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains(holder),
        "plan does not mention the held lock\n{}",
        describe(&out)
    );

    let out = repo.run_json(&["apply", "--yes"]);
    assert_kind(&out, "lock_held");
    assert!(
        stderr(&out).contains("lock") && stderr(&out).contains(holder),
        "{}",
        describe(&out)
    );
    assert!(repo.managed().is_empty());

    let start = Instant::now();
    let out = repo.run_json(&["apply", "--yes", "--lock-timeout", "3s"]);
    let took = start.elapsed();
    assert_kind(&out, "lock_held");
    assert!(stderr(&out).contains("lock"), "{}", describe(&out));
    assert!(
        took >= Duration::from_millis(2500),
        "--lock-timeout 3s gave up after {took:?}"
    );
    assert!(repo.managed().is_empty());

    let out = repo.run(&["unlock"]);
    assert_ok(&out);
    assert!(
        engine.secret_named(&marker).is_none(),
        "unlock left the marker {marker}"
    );
    repo.apply();
    assert_eq!(repo.managed().len(), 1);
    assert!(
        engine.secret_named(&marker).is_none(),
        "apply left its lock behind"
    );
    assert_ok(&repo.run(&["unlock"]));
}

/// SIGTERM (a cancelled CI job) during `apply --wait` stops it with exit 1, releases the lock
/// on the way out, and the next apply finishes the rotation.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn interrupted_apply_releases_its_lock_and_resumes() {
    let Some((engine, guard, repo)) = engine_repo("interrupt") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    let v1 = repo.current("db_password");
    let svc = format!("{}-app", repo.project);
    guard.service(&svc, &repo.project, &[(&v1.name, "db_password")]);
    guard.wait_running(&svc);
    repo.set("db_password", b"two");

    let child = repo
        .command(&["apply", "--yes", "--wait", "--wait-timeout", "2m"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the new version exists, i.e. while the service update is under way.
    crate::common::engine::wait_until(
        "the new version to be created",
        Duration::from_secs(60),
        || repo.versions("db_password").len() == 2,
    );
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("interrupted"), "{}", describe(&out));
    let marker = swarmseal::swarm::lock_name(&repo.project, ENV);
    assert!(
        engine.secret_named(&marker).is_none(),
        "the interrupted apply left its lock {marker}"
    );
    // No unlock needed: the next apply finishes the job (or finds the update sent and
    // under way: then the service gets there on its own).
    repo.apply();
    crate::common::engine::wait_until(
        "the service to run the new value",
        Duration::from_secs(90),
        || {
            let c = engine.running_containers(&svc);
            // A container may stop between the listing and the read: read, not assert.
            c.len() == 1 && {
                let out = engine.docker_cli(&["exec", &c[0], "cat", "/run/secrets/db_password"]);
                out.status.success() && out.stdout == b"two"
            }
        },
    );
    // The first version stays as the service's rollback target; nothing else is left.
    repo.current("db_password");
    assert_eq!(repo.superseded("db_password"), vec![v1.clone()]);
    repo.assert_converged();
}

/// On a terminal, apply shows the plan and asks; only "yes" applies. `script` (util-linux)
/// gives the command a pseudo-terminal and the answer is typed into it once it is asked.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_asks_for_confirmation_on_a_terminal() {
    let Some((_engine, _guard, repo)) = engine_repo("confirm") else {
        return;
    };
    repo.set("db_password", b"value");
    let on_terminal = |answer: &str| {
        let (_, text) = crate::common::cli::on_terminal(
            &repo.command(&["apply"]),
            &[("Only 'yes' is accepted", answer)],
        );
        text
    };
    let text = on_terminal("no");
    assert!(
        text.contains("create") && text.contains("Only 'yes'"),
        "{text}"
    );
    assert!(text.contains("cancelled"), "{text}");
    assert!(
        repo.managed().is_empty(),
        "a refused confirmation created secrets"
    );
    let text = on_terminal("yes");
    assert!(text.contains("Applied: 1 created"), "{text}");
    assert_eq!(repo.managed().len(), 1);
    repo.assert_converged();
}

/// A saved plan is carried out only if it is exactly what swarmseal plans now: a plan
/// file edited to remove someone else's secret is refused as stale, and that secret
/// survives.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn an_edited_plan_file_is_refused() {
    let Some((engine, guard, repo)) = engine_repo("forged") else {
        return;
    };
    repo.set("db_password", b"value");
    let victim = format!("unrelated_{}", suffix(&repo.project));
    let victim_id = guard.unmanaged_secret(&victim, b"not ours", &repo.t.work);
    let file = repo.t.work.join("plan.json");
    assert_ok(&repo.run(&["plan", "--out", file.to_str().unwrap()]));
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    saved["plan"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "op": "remove", "secret": "db_password", "secret_id": victim_id, "swarm_name": victim,
        }));
    std::fs::write(&file, serde_json::to_vec(&saved).unwrap()).unwrap();
    let out = repo.run_json(&["apply", file.to_str().unwrap()]);
    assert_kind(&out, "stale_plan");
    assert!(stderr(&out).contains("stale"), "{}", describe(&out));
    assert!(
        engine.secret_named(&victim).is_some(),
        "the edited plan removed {victim}"
    );
    assert!(
        repo.managed().is_empty(),
        "the refused plan created secrets"
    );
}

/// `apply --yes ARGS` (`-v`, `--detach`...), not on a terminal; asserts success and returns
/// what it printed on standard error.
#[track_caller]
fn apply_log(repo: &SyncRepo, args: &[&str]) -> String {
    let mut all = vec!["apply", "--yes", "--wait-timeout", "2m"];
    all.extend_from_slice(args);
    let out = repo.run(&all);
    assert_ok(&out);
    stderr(&out)
}

/// How many lines of `log` start with `start`.
fn lines_starting(log: &str, start: &str) -> usize {
    log.lines().filter(|l| l.starts_with(start)).count()
}

/// In a log (standard error not a terminal), a phase over many secrets is one line when it
/// ends, `created 30 secrets (0.4s)`, not a line per secret; `-v` names each as well. So for
/// creating 30 secrets, relabelling them after `rekey --force`, rotating them (creating 30
/// and removing the 30 versions they supersede) with `-v`, and removing them all.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_logs_one_line_per_phase_over_many_secrets() {
    let Some((_engine, _guard, repo)) = engine_repo("phases") else {
        return;
    };
    let names: Vec<String> = (1..=30).map(|i| format!("bulk_{i:02}")).collect();
    for name in &names {
        repo.set(name, format!("{name} v1").as_bytes());
    }
    let log = apply_log(&repo, &[]);
    assert_eq!(lines_starting(&log, "  created 30 secrets ("), 1, "{log}");
    assert!(!log.contains("created bulk_"), "a line per secret\n{log}");
    assert!(log.contains("Applied: 30 created, 0 relabelled"), "{log}");
    let v1: Vec<String> = names.iter().map(|n| repo.current(n).name).collect();

    assert_ok(&repo.run(&["rekey", "--force"]));
    let log = apply_log(&repo, &[]);
    assert_eq!(
        lines_starting(&log, "  updated the labels of 30 secrets ("),
        1,
        "{log}"
    );
    assert!(!log.contains("labels of bulk_"), "a line per secret\n{log}");
    assert!(log.contains("Applied: 0 created, 30 relabelled"), "{log}");

    for name in &names {
        repo.set(name, format!("{name} v2").as_bytes());
    }
    let log = apply_log(&repo, &["-v"]);
    assert_eq!(lines_starting(&log, "  created 30 secrets ("), 1, "{log}");
    assert_eq!(lines_starting(&log, "  removed 30 secrets ("), 1, "{log}");
    for (name, old) in names.iter().zip(&v1) {
        let new = repo.current(name).name;
        assert_eq!(
            lines_starting(&log, &format!("  created {new}")),
            1,
            "{log}"
        );
        assert_eq!(
            lines_starting(&log, &format!("  removed {old}")),
            1,
            "{log}"
        );
    }
    assert!(
        log.contains("Applied: 30 created, 0 relabelled, 0 service updates sent, 30 removed."),
        "{log}"
    );

    for name in &names {
        repo.rm(name);
    }
    let log = apply_log(&repo, &[]);
    assert_eq!(lines_starting(&log, "  removed 30 secrets ("), 1, "{log}");
    assert!(!log.contains("removed bulk_"), "a line per secret\n{log}");
    assert!(repo.managed().is_empty(), "{:#?}", repo.managed());
    repo.assert_converged();

    // On a terminal too (where a phase that takes more than a moment shows a bar).
    for name in &names {
        repo.set(name, format!("{name} v3").as_bytes());
    }
    let (status, screen) = crate::common::cli::on_terminal(&repo.command(&["apply", "--yes"]), &[]);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("  created 30 secrets ("), "{screen}");
    assert!(
        !screen.contains("created bulk_"),
        "a line per secret\n{screen}"
    );
    assert!(screen.contains("Applied: 30 created"), "{screen}");
}

/// Many versions kept for the same reason are one line, in the log and in the summary, not
/// one per version: 12 secrets of a service rotated twice, the second time with `--detach`,
/// keep the versions that wait for the service (it was not waited for); `-v` names each.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_tells_many_kept_versions_once_per_reason() {
    let Some((_engine, guard, repo)) = engine_repo("keptmany") else {
        return;
    };
    let names: Vec<String> = (1..=12).map(|i| format!("kept_{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (svc, _) = running_app(&guard, &repo, &refs);
    let why = format!("waits for {svc} to converge (--detach)");
    let rotate = |round: &str| {
        for name in &names {
            repo.set(name, format!("{name} {round}").as_bytes());
        }
    };
    // The first rotation keeps v1 for a rollback (the plan says so, apply keeps nothing);
    // the second, detached, would remove v1 once the service converged: kept.
    rotate("v2");
    repo.apply();
    rotate("v3");
    let log = apply_log(&repo, &["--detach"]);
    assert_eq!(
        lines_starting(&log, &format!("  kept 12 secrets: {why} (-v lists them)")),
        1,
        "{log}"
    );
    assert_eq!(
        lines_starting(
            &log,
            &format!("kept 12 secrets: {why}; a later apply removes them (-v lists them)")
        ),
        1,
        "{log}"
    );
    assert!(!log.contains("kept kept_"), "a line per version\n{log}");
    assert!(log.contains(", 0 removed."), "{log}");

    // With -v, every kept version on a line of its own, in the log and in the summary.
    repo.apply();
    rotate("v4");
    let log = apply_log(&repo, &["-v", "--detach"]);
    let grouped = |l: &&str| l.trim_start().starts_with("kept ") && l.contains(" secrets: ");
    assert_eq!(log.lines().filter(grouped).count(), 0, "{log}");
    assert_eq!(lines_starting(&log, "  kept kept_"), 12, "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.starts_with("kept kept_") && l.ends_with("; a later apply removes it"))
            .count(),
        12,
        "{log}"
    );
}
