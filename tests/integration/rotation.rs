//! Rotation that never strands a service, on real Swarms: the removal rule under Docker's
//! rollback (`docker service rollback`, `--update-failure-action rollback`), `repair` of a
//! service left on an older or a removed version, waiting by default with live progress,
//! and faults: a service updated by someone else meanwhile, `kill -9` at many points of a
//! rotation, the engine stopped mid-apply, and the leader of a three-manager swarm killed
//! mid-apply. After every fault the invariant holds: no service references, in its current
//! or its previous spec, a secret that does not exist.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored rotation:: --nocapture` (the
//! fault tests print their figures). The fault tests that need engines of their own
//! (restart, leader) need root, dockerd and iproute2; `SWARMSEAL_TEST_KILL_POINTS=N` runs the kill loop at N
//! points instead of the 8 of a CI run.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::cli::{assert_exit, assert_no_panic, assert_ok, describe, stderr};
use crate::common::engine::{engine, wait_until, Engine};
use crate::common::private::{Cluster, Node};
use crate::common::sync::{change, engine_repo, strs, EngineExt, Guard, SecretInfo, SyncRepo, ENV};

/// `docker service create` of a one-replica service mounting `secret` as `db_password`, that
/// runs `command` (through `sh -c`), with extra `options`; tracked by `guard`.
fn service_with(
    engine: &Engine,
    guard: &Guard,
    name: &str,
    secret: &str,
    options: &[&str],
    command: &str,
) {
    let mount = format!("source={secret},target=db_password");
    let mut args = vec!["--stop-grace-period", "1s", "--secret", &mount];
    args.extend_from_slice(options);
    args.extend([engine.image.as_str(), "sh", "-c", command]);
    guard.create_service(name, &args);
}

/// The value the service's running container sees, once it has one running container
/// whose value satisfies `want` (bounded wait).
fn wait_for_value(engine: &Engine, svc: &str, want: &[u8]) {
    wait_until(
        &format!("{svc} to run with {}", String::from_utf8_lossy(want)),
        Duration::from_secs(120),
        || {
            let c = engine.running_containers(svc);
            c.len() == 1 && {
                let out = engine.docker_cli(&["exec", &c[0], "cat", "/run/secrets/db_password"]);
                out.status.success() && out.stdout == want
            }
        },
    );
}

/// Waits until Docker reports no update of the service in progress.
fn wait_settled(engine: &Engine, svc: &str) {
    wait_until(
        &format!("{svc} to settle"),
        Duration::from_secs(120),
        || {
            let state =
                engine.service_field(svc, "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}");
            matches!(
                state.as_str(),
                "" | "completed" | "rollback_completed" | "paused" | "rollback_paused"
            )
        },
    );
}

/// A repository (for test `test`) with db_password "good" applied, and `<project>-app`, a
/// service mounting it that rolls a failed update back and whose task runs only while the
/// value is "good", running. Returns (repository, the applied version, service).
fn good_value_service(
    engine: &Engine,
    guard: &Guard,
    test: &str,
) -> (SyncRepo, SecretInfo, String) {
    let repo = SyncRepo::new(engine, guard, test);
    repo.set("db_password", b"good");
    repo.apply();
    let good = repo.current("db_password");
    let svc = format!("{}-app", repo.project);
    service_with(
        engine,
        guard,
        &svc,
        &good.name,
        &[
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "4s",
            "--restart-delay",
            "1s",
        ],
        "test \"$(cat /run/secrets/db_password)\" = good && exec sleep 3600",
    );
    wait_for_value(engine, &svc, b"good");
    (repo, good, svc)
}

/// Every secret the services of `project` reference, in their current and previous specs,
/// exists: a rollback would not strand any of them.
#[track_caller]
fn assert_no_dangling_reference(engine: &Engine, services: &[String], when: &str) {
    for svc in services {
        let refs = engine
            .service_refs(svc)
            .into_iter()
            .chain(engine.previous_refs(svc).unwrap_or_default());
        for r in refs {
            assert!(
                engine
                    .docker_cli(&["secret", "inspect", &r.secret_id])
                    .status
                    .success(),
                "{when}: {svc} references {} ({}), which does not exist",
                r.secret_name,
                r.secret_id
            );
        }
    }
}

fn kept<'a>(plan: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    plan["kept"]
        .as_array()
        .and_then(|l| l.iter().find(|k| k["swarm_name"] == name))
}

// --- the removal rule under rollback ----------------------------------------------------------

/// The case: a rotation applied without waiting, then `docker service rollback`. The
/// old version is still there (the service's previous spec references it), so the rollback
/// works; `plan` shows the service as `repair`, `status` marks it, and `apply` repairs it.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn rollback_after_rotation_never_strands_the_service() {
    let Some((engine, guard, repo)) = engine_repo("rollback") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    let v1 = repo.current("db_password");
    let svc = format!("{}-app", repo.project);
    service_with(
        &engine,
        &guard,
        &svc,
        &v1.name,
        &["--update-failure-action", "rollback"],
        "exec sleep 3600",
    );
    wait_for_value(&engine, &svc, b"one");

    repo.set("db_password", b"two");
    let out = repo.run(&["apply", "--yes", "--detach"]);
    assert_ok(&out);
    assert!(
        engine.secret_named(&v1.name).is_some(),
        "apply --detach removed {} although {svc} can roll back to it\n{}",
        v1.name,
        describe(&out)
    );
    let v2 = repo.current("db_password");
    wait_settled(&engine, &svc);
    wait_for_value(&engine, &svc, b"two");
    let (_, plan) = repo.plan_json(&[]);
    assert_eq!(
        kept(&plan, &v1.name).map(|k| (k["why"].clone(), strs(&k["services"]))),
        Some((serde_json::json!("rollback"), vec![svc.clone()])),
        "the plan does not say that {svc} can roll back to {}\n{plan:#}",
        v1.name
    );

    // Docker's rollback brings the old version back: it exists, the task runs.
    engine.docker_cli_ok(&["service", "rollback", "--quiet", &svc]);
    wait_for_value(&engine, &svc, b"one");
    assert_no_dangling_reference(&engine, std::slice::from_ref(&svc), "after the rollback");

    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    let c = change(&plan, "repair", "db_password");
    assert_eq!(strs(&c["services"]), vec![svc.clone()]);
    assert_eq!(c["swarm_name"], v2.name.as_str());
    let human = repo.run(&["plan"]);
    assert!(
        !crate::common::cli::stdout(&human).contains("No changes"),
        "{}",
        describe(&human)
    );
    let status = repo.run(&["status"]);
    assert_ok(&status);
    assert!(
        crate::common::cli::stdout(&status).contains("repair"),
        "status does not mark the service\n{}",
        describe(&status)
    );

    repo.apply();
    wait_for_value(&engine, &svc, b"two");
    repo.assert_converged();
}

/// An update that fails under `--update-failure-action rollback` (the new value makes the
/// task exit): apply says so and exits 1, the old version is kept, the service runs on it,
/// and the next plan shows `repair`. Putting the good value back converges.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn failed_update_is_rolled_back_and_the_old_version_kept() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let (repo, good, svc) = good_value_service(&engine, &guard, "failrollback");

    repo.set("db_password", b"bad");
    let t0 = Instant::now();
    let out = repo.run(&["apply", "--yes", "--wait-timeout", "2m"]);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains("rolled back") && err.contains(&svc),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("repair"),
        "the hint does not point at repair\n{}",
        describe(&out)
    );
    eprintln!(
        "figures: failed update detected and reported after {:?}",
        t0.elapsed()
    );
    assert!(
        engine.secret_named(&good.name).is_some(),
        "the old version was removed"
    );
    wait_settled(&engine, &svc);
    wait_for_value(&engine, &svc, b"good");
    assert_no_dangling_reference(&engine, std::slice::from_ref(&svc), "after the rollback");

    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_eq!(
        strs(&change(&plan, "repair", "db_password")["services"]),
        vec![svc.clone()]
    );

    // The value is fixed in the repository: the good version is current again (relabelled:
    // the file was written anew), and the bad one goes (the rollback cleared the service's
    // previous spec: nothing can bring it back).
    let bad = repo.current("db_password");
    repo.set("db_password", b"good");
    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    change(&plan, "relabel", "db_password");
    assert_eq!(
        change(&plan, "remove", "db_password")["swarm_name"],
        bad.name.as_str()
    );
    repo.apply();
    assert!(engine.secret_named(&bad.name).is_none());
    assert_eq!(repo.current("db_password").id, good.id);
    wait_for_value(&engine, &svc, b"good");
    repo.assert_converged();
}

/// A service that points at a version that no longer exists (what an older swarmseal left:
/// it removed the old version, then Docker rolled the update back onto it) is repaired:
/// `status` marks it broken, `plan` re-points it to the current version.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn a_service_on_a_removed_version_is_repaired() {
    let Some(engine) = engine() else { return };
    let guard = Guard::new(&engine);
    let (repo, good, svc) = good_value_service(&engine, &guard, "dangling");

    // The old behaviour, by hand: the update is sent, the old version removed at once (the
    // current spec no longer uses it, so Docker allows it), and the failing update is rolled
    // back onto a version that is gone.
    repo.set("db_password", b"bad");
    assert_ok(&repo.run(&["apply", "--yes", "--detach"]));
    engine.docker_cli_ok(&["secret", "rm", &good.name]);
    wait_until("the rollback", Duration::from_secs(120), || {
        engine
            .service_refs(&svc)
            .first()
            .map(|r| r.secret_name.clone())
            == Some(good.name.clone())
    });

    let status = repo.run(&["status"]);
    assert_ok(&status);
    let text = crate::common::cli::stdout(&status);
    assert!(
        text.contains("missing") && text.contains(&svc),
        "{}",
        describe(&status)
    );
    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    let c = change(&plan, "repair", "db_password");
    assert_eq!(strs(&c["services"]), vec![svc.clone()]);
    assert_eq!(strs(&c["replaces"]), vec![good.name.clone()]);

    // Fixing the value recreates the good version under the same name and re-points the
    // service to it.
    repo.set("db_password", b"good");
    repo.apply();
    wait_for_value(&engine, &svc, b"good");
    assert_no_dangling_reference(&engine, std::slice::from_ref(&svc), "after the repair");
    repo.assert_converged();
}

// --- waiting and progress ------------------------------------------------------------------

/// `apply` waits by default, telling what it does as it does it (one line per state change
/// when not on a terminal); `--detach` returns once the update is sent.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn apply_waits_by_default_and_shows_progress() {
    let Some((engine, guard, repo)) = engine_repo("progress") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    let svc = repo.app_service(&guard, "db_password");

    repo.set("db_password", b"two");
    let out = repo.run(&["apply", "--yes"]);
    assert_ok(&out);
    // No waiting here: apply did.
    let c = engine.running_containers(&svc);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(engine.read_in(&c[0], "/run/secrets/db_password"), b"two");
    let err = stderr(&out);
    let sent = err.find(&format!("{svc}: update sent"));
    let converged = err.find(&format!("{svc}: converged"));
    assert!(
        sent.is_some() && converged.is_some() && sent < converged,
        "update sent, then converged\n{}",
        describe(&out)
    );
    assert!(
        err.contains("tasks updated"),
        "no task progress\n{}",
        describe(&out)
    );
    assert!(err.contains("1 service update sent"), "{}", describe(&out));

    repo.set("db_password", b"three");
    let out = repo.run(&["apply", "--yes", "--detach"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{svc}: update sent")),
        "{}",
        describe(&out)
    );
    assert!(
        !err.contains(": converged ("),
        "--detach waited\n{}",
        describe(&out)
    );
    wait_for_value(&engine, &svc, b"three");
}

/// Ctrl-C while apply waits for a service: the summary counts the update that was sent.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn interrupted_apply_reports_the_updates_it_sent() {
    let Some((engine, guard, repo)) = engine_repo("ctrlc") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    let svc = repo.app_service(&guard, "db_password");
    // `sleep` as PID 1 ignores SIGTERM: every task replacement now takes 20 s.
    engine.docker_cli_ok(&[
        "service",
        "update",
        "--quiet",
        "--stop-grace-period",
        "20s",
        &svc,
    ]);

    repo.set("db_password", b"two");
    let child = apply_until_sent(&engine, &repo, &svc, "the update to be sent");
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("interrupted by Ctrl-C"), "{}", describe(&out));
    assert!(
        err.contains(&format!("{svc}: update sent")),
        "the log does not show the update that was sent\n{}",
        describe(&out)
    );
    assert!(
        err.contains("Done before it stopped: 1 created, 0 relabelled, 1 service update sent (0 converged), 0 removed."),
        "{}",
        describe(&out)
    );
    engine.docker_cli_ok(&[
        "service",
        "update",
        "--quiet",
        "--detach",
        "--stop-grace-period",
        "1s",
        &svc,
    ]);
}

// --- faults -----------------------------------------------------------------------------------

/// Someone else updates the service (labels) over and over while apply re-points it: the
/// update is retried on the version conflict, and neither side's change is lost.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn concurrent_updates_of_a_service_lose_nothing() {
    let Some((engine, guard, repo)) = engine_repo("conflict") else {
        return;
    };
    repo.set("db_password", b"one");
    repo.apply();
    let svc = repo.app_service(&guard, "db_password");
    repo.set("db_password", b"two");

    let stop = std::sync::atomic::AtomicBool::new(false);
    let last = std::thread::scope(|s| {
        let other = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 400 {
                n += 1;
                let label = format!("touched={n}");
                let out = engine.docker_cli(&[
                    "service",
                    "update",
                    "--detach",
                    "--quiet",
                    "--label-add",
                    &label,
                    &svc,
                ]);
                if !out.status.success() {
                    n -= 1; // a conflict of theirs: the docker CLI does not retry
                }
            }
            n
        });
        std::thread::sleep(Duration::from_millis(300));
        let out = repo.run(&["apply", "--yes", "--wait-timeout", "2m"]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let n = other.join().unwrap();
        assert_ok(&out);
        n
    });
    let refs = engine.service_refs(&svc);
    assert_eq!(
        refs[0].secret_id,
        repo.current("db_password").id,
        "our change was lost"
    );
    assert_eq!(
        engine.service_field(&svc, "{{index .Spec.Labels \"touched\"}}"),
        last.to_string(),
        "their change was lost"
    );
    eprintln!("figures: {last} concurrent service updates by another client during one apply");
    wait_for_value(&engine, &svc, b"two");
}

/// `kill -9` of apply at many points of a rotation that re-points services: after each, no
/// service references a missing secret (current or previous spec), and the next apply
/// (after `unlock`, when the kill left the lock) converges.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn kill_9_at_any_point_never_strands_a_service() {
    let Some((engine, guard, repo)) = engine_repo("kill9") else {
        return;
    };
    let names = ["alpha", "beta", "gamma"];
    for n in names {
        repo.set(n, format!("{n} 0").as_bytes());
    }
    repo.apply();
    let services: Vec<String> = (1..=2)
        .map(|i| format!("{}-svc{i}", repo.project))
        .collect();
    for svc in &services {
        let mounts: Vec<(String, &str)> =
            names.iter().map(|n| (repo.current(n).name, *n)).collect();
        let mounts: Vec<(&str, &str)> = mounts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        guard.service(svc, &repo.project, &mounts);
    }
    for svc in &services {
        guard.wait_running(svc);
    }
    let points: u32 = std::env::var("SWARMSEAL_TEST_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut left_lock = 0;
    for round in 1..=points {
        for n in names {
            repo.set(n, format!("{n} {round}").as_bytes());
        }
        // Kill points spread over the rotation: creates, service updates, waiting, removals.
        let delay = Duration::from_millis(40 + u64::from(round - 1) * 2500 / u64::from(points));
        let mut child = repo
            .command(&["apply", "--yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        assert_no_dangling_reference(&engine, &services, &format!("kill at {delay:?}"));

        let t0 = Instant::now();
        let plan = repo.run(&["plan"]);
        let locked = stderr(&plan).contains("an apply is in progress");
        if locked {
            left_lock += 1;
            repo.unlock_dead_holder();
        }
        let out = repo.apply();
        for svc in &services {
            for n in names {
                let c = engine.running_containers(svc);
                assert_eq!(c.len(), 1);
                assert_eq!(
                    String::from_utf8_lossy(&engine.read_in(&c[0], &format!("/run/secrets/{n}"))),
                    format!("{n} {round}"),
                    "{svc} after recovery from a kill at {delay:?}\n{}",
                    describe(&out)
                );
            }
        }
        assert_no_dangling_reference(&engine, &services, "after recovery");
        repo.assert_converged();
        eprintln!(
            "figures: kill -9 after {delay:?}: converged {:?} later{}",
            t0.elapsed(),
            if locked {
                " (lock broken with unlock)"
            } else {
                ""
            }
        );
    }
    eprintln!("figures: {points} kill points survived, {left_lock} left the lock behind");
}

/// A rotation whose apply waits for a service that takes its time to replace its task
/// (`sleep` as PID 1 ignores SIGTERM, so the stop grace period runs out): the window in which
/// the fault tests strike. Returns the service's name.
fn slow_service(
    engine: &Engine,
    guard: &Guard,
    repo: &SyncRepo,
    secret: &str,
    grace: &str,
) -> String {
    let svc = format!("{}-slow", repo.project);
    let mount = format!("source={},target=db_password", repo.current(secret).name);
    guard.create_service(
        &svc,
        &[
            "--stop-grace-period",
            grace,
            "--secret",
            &mount,
            &engine.image,
            "sleep",
            "3600",
        ],
    );
    // `service ls`, not `ps`: in a cluster the task may run on another node.
    wait_until(&format!("{svc} to run"), Duration::from_secs(120), || {
        engine.docker_cli_lines(&[
            "service",
            "ls",
            "--filter",
            &format!("name={svc}"),
            "--format",
            "{{.Replicas}}",
        ]) == vec!["1/1".to_string()]
    });
    svc
}

/// The engine is stopped in the middle of an apply (while it waits for a service) and
/// started again: the apply fails naming the engine, and a re-run converges.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn engine_restarted_mid_apply_converges() {
    let Some(node) = Node::single("restart") else {
        return;
    };
    let engine = node.engine();
    let guard = Guard::new(&engine);
    let repo = SyncRepo::new(&engine, &guard, "restart");
    repo.set("db_password", b"one");
    repo.apply();
    let svc = slow_service(&engine, &guard, &repo, "db_password", "8s");
    repo.set("db_password", b"two");
    for i in 0..20 {
        repo.set(&format!("s{i}"), format!("value {i}").as_bytes());
    }
    let mut child = apply_until_sent(&engine, &repo, &svc, "the service update to be sent");
    let t0 = Instant::now();
    node.halt();
    let out = wait_output(&mut child);
    assert_no_panic(&out);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains(&node.host),
        "the error names the engine\n{}",
        describe(&out)
    );
    node.start_again();
    wait_until("the swarm to come back", Duration::from_secs(60), || {
        node.docker(&["node", "ls"]).status.success()
    });
    assert_no_dangling_reference(&engine, std::slice::from_ref(&svc), "after the restart");
    unlock_if_left(&repo);
    repo.apply();
    wait_for_value(&engine, &svc, b"two");
    repo.assert_converged();
    eprintln!(
        "figures: engine stopped while apply waited for a service; converged {:?} after the stop",
        t0.elapsed()
    );
}

/// Three managers; an apply runs through a follower while the leader is killed (the apply
/// waits for a service then). Either the apply completes, or it fails with a clear error
/// and a re-run against a surviving manager converges. The lock, in the replicated store,
/// holds across the leader change.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn leader_killed_mid_apply_converges() {
    let Some(cluster) = Cluster::start("leader", 3) else {
        return;
    };
    let leader = cluster
        .leader(0, Duration::from_secs(30))
        .expect("a leader is elected");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let via = &cluster.nodes[followers[0]];
    let other = &cluster.nodes[followers[1]];
    let engine = via.engine();
    let guard = Guard::new(&other.engine());
    let repo = SyncRepo::new(&engine, &guard, "leader");
    repo.set("db_password", b"one");
    repo.apply();
    // The task replacement outlasts the election (about 15 s here): the apply still waits
    // when the new leader is there.
    let svc = slow_service(&engine, &guard, &repo, "db_password", "30s");
    repo.set("db_password", b"two");
    let n = 40;
    for i in 0..n {
        repo.set(&format!("s{i}"), format!("value {i}").as_bytes());
    }
    let mut child = apply_until_sent(&engine, &repo, &svc, "the service update to be sent");
    // A second lock of the project, held by this test through the same manager: the apply
    // lock lives in the replicated store, and so must survive the leader.
    let (rt, swarm) = crate::common::sync::library_swarm(&engine);
    let held = swarmseal::swarm::holder::Holder::named("leader-test");
    rt.block_on(swarm.lock(&repo.project, "held", &held, Duration::ZERO))
        .expect("the test takes a lock");
    let marker = swarmseal::swarm::lock_name(&repo.project, ENV);
    let t0 = Instant::now();
    cluster.nodes[leader].kill();
    let new_leader = cluster.leader(followers[1], Duration::from_secs(90));
    let elected = t0.elapsed();
    assert!(new_leader.is_some(), "no new leader within 90 s");
    let (rt2, swarm2) = crate::common::sync::library_swarm(&other.engine());
    let info = rt2
        .block_on(swarm2.lock_info(&repo.project, "held"))
        .expect("the surviving managers answer");
    assert_eq!(
        info.map(|i| i.holder),
        Some("leader-test".to_string()),
        "the lock was lost across the leader change"
    );
    // The apply's own lock, if the apply has not finished: seen from the other manager too.
    // The lock first, then whether the apply still runs: an apply that ends in between
    // released its lock and is rightly not asked to hold it.
    let lock_seen = other
        .docker(&["secret", "inspect", &marker])
        .status
        .success();
    let still_running = child.try_wait().unwrap().is_none();
    let out = wait_output(&mut child);
    assert_no_panic(&out);
    if still_running {
        assert!(
            lock_seen,
            "the apply's lock was lost across the leader change"
        );
    }
    let first = out.status.code();
    if first != Some(0) {
        assert!(
            stderr(&out).contains(&via.host),
            "the error does not name the endpoint\n{}",
            describe(&out)
        );
    }
    // Re-run against the other surviving manager.
    let mut repo = repo;
    repo.engine = other.engine();
    unlock_if_left(&repo);
    repo.apply();
    repo.assert_converged();
    assert_eq!(
        repo.versions("db_password").len(),
        2,
        "current and rollback target"
    );
    assert_eq!(repo.managed().len(), n + 2);
    eprintln!(
        "figures: leader killed while apply waited for a service: new leader after {elected:?}; first apply exit {first:?} (lock still seen: {lock_seen}); converged {:?} after the kill",
        t0.elapsed()
    );
}

/// Starts `apply --yes` (output piped) and waits (bounded, naming `what`) until it has sent
/// an update of the service `svc`.
fn apply_until_sent(
    engine: &Engine,
    repo: &SyncRepo,
    svc: &str,
    what: &str,
) -> std::process::Child {
    let before = engine.service_refs(svc);
    let child = repo
        .command(&["apply", "--yes"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(what, Duration::from_secs(60), || {
        engine.service_refs(svc) != before
    });
    child
}

/// Releases the apply lock an interrupted apply left behind, if `plan` says there is one.
fn unlock_if_left(repo: &SyncRepo) {
    let plan = repo.run(&["plan"]);
    if stderr(&plan).contains("an apply is in progress") {
        assert_ok(&repo.run(&["unlock"]));
    }
}

/// Waits for a child (bounded), collecting its output.
fn wait_output(child: &mut std::process::Child) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_end(&mut out.stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_end(&mut out.stderr);
    }
    out
}
