//! Swarm configs (issue 12): `configs/<env>/` files become Swarm configs under the same
//! plan and apply as secrets; services mounting them are re-pointed at the same path; a
//! plain config's plan shows its diff, an encrypted one's never; secrets made before
//! configs gain `io.swarmseal.kind=secret` by a relabel that restarts nothing.

use serde_json::Value;

use crate::common::cli::*;
use crate::common::sync::*;

const KIND: &str = "io.swarmseal.kind";

/// Writes `configs/staging/<rel>` in the repository.
fn write_config(repo: &SyncRepo, rel: &str, content: &[u8]) {
    let path = repo.t.path(&format!("configs/{ENV}/{rel}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The project's managed configs: (name, labels) of each.
fn configs(repo: &SyncRepo) -> Vec<(String, serde_json::Map<String, Value>)> {
    let filter = format!("label=io.swarmseal.project={}", repo.project);
    let ids = repo
        .engine
        .docker_cli_lines(&["config", "ls", "-q", "--filter", &filter]);
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["config", "inspect"];
    args.extend(ids.iter().map(String::as_str));
    let all: Value = serde_json::from_slice(&repo.engine.docker_cli_ok(&args)).unwrap();
    let mut list: Vec<(String, serde_json::Map<String, Value>)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let spec = &c["Spec"];
            let labels = spec["Labels"].as_object().cloned().unwrap_or_default();
            (spec["Name"].as_str().unwrap().to_owned(), labels)
        })
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    list
}

/// The change of the plan about config `name`.
fn config_change<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["secret"] == name && c["kind"] == "config")
        .unwrap_or_else(|| panic!("no change of config {name}\n{plan:#}"))
}

#[test]
#[ignore = "needs a Docker engine (tests/engine.sh)"]
fn a_mounted_config_changes_at_the_same_path() {
    let Some((engine, guard, repo)) = engine_repo("config-mount") else {
        return;
    };
    write_config(&repo, "nginx.conf", b"worker_processes 1;\nlisten 80;\n");
    let (out, plan) = repo.plan_json(&[]);
    assert_ok(&out);
    let c = config_change(&plan, "nginx.conf");
    assert_eq!(c["action"], "create", "{plan:#}");
    let diff = c["diff"]
        .as_str()
        .expect("a plain config's create has a diff");
    assert!(diff.contains("+listen 80;"), "{diff}");
    repo.apply();
    let list = configs(&repo);
    assert_eq!(list.len(), 1, "{list:?}");
    let (v1, labels) = &list[0];
    assert!(v1.starts_with("nginx.conf-"), "{v1}");
    assert_eq!(labels[KIND], "config");
    assert_eq!(labels["io.swarmseal.name"], "nginx.conf");

    // A service mounts it at a path of its own, with its own owner and mode.
    let svc = format!("{}-web", repo.project);
    let label = format!("io.swarmseal.project={}", repo.project);
    let mount = format!("source={v1},target=/etc/app/nginx.conf,uid=1000,gid=1001,mode=0440");
    guard.create_service(
        &svc,
        &[
            "--label",
            &label,
            "--stop-grace-period",
            "1s",
            "--config",
            &mount,
            &engine.image,
            "sleep",
            "3600",
        ],
    );
    let c1 = guard.wait_running(&svc);
    let path = "/etc/app/nginx.conf";
    assert_eq!(
        engine.read_in(&c1, path),
        b"worker_processes 1;\nlisten 80;\n"
    );

    // The content changes: plan shows the diff, apply re-points the service.
    write_config(&repo, "nginx.conf", b"worker_processes 1;\nlisten 8080;\n");
    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    let c = config_change(&plan, "nginx.conf");
    assert_eq!(c["action"], "rotate", "{plan:#}");
    assert_eq!(strs(&c["services"]), vec![svc.clone()], "{plan:#}");
    let diff = c["diff"]
        .as_str()
        .expect("a plain config's rotate has a diff");
    assert!(
        diff.contains("-listen 80;") && diff.contains("+listen 8080;"),
        "{diff}"
    );
    let human = repo.run(&["plan"]);
    assert!(
        stdout(&human).contains("+listen 8080;"),
        "{}",
        describe(&human)
    );
    let md = repo.run(&["--format", "markdown", "plan"]);
    assert!(stdout(&md).contains("```diff"), "{}", describe(&md));
    repo.apply();

    let running = engine.running_containers(&svc);
    assert_eq!(running.len(), 1, "{running:?}");
    assert_ne!(running[0], c1, "the container was not replaced");
    assert_eq!(
        engine.read_in(&running[0], path),
        b"worker_processes 1;\nlisten 8080;\n",
        "the new content at the same path"
    );
    let owner = engine.docker_cli_ok(&["exec", &running[0], "stat", "-c", "%a %u %g", path]);
    assert_eq!(String::from_utf8_lossy(&owner).trim(), "440 1000 1001");
    // The first version is what a rollback brings back: kept; the plan is empty.
    assert_eq!(configs(&repo).len(), 2);
    repo.assert_converged();

    // exec names the current version.
    let out = repo.run(&[
        "exec",
        "--",
        "sh",
        "-c",
        "echo $SWARMSEAL_CONFIG_NGINX_CONF",
    ]);
    assert_ok(&out);
    let current = configs(&repo)
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n != v1)
        .unwrap();
    assert_eq!(stdout(&out).trim(), current);

    // Gone from the repository while the service uses it: blocked, never forced.
    std::fs::remove_file(repo.t.path(&format!("configs/{ENV}/nginx.conf"))).unwrap();
    let (out, plan) = repo.plan_json(&[]);
    assert_exit(&out, 1);
    assert_eq!(plan["summary"]["blocked"], 1, "{plan:#}");
}

#[test]
#[ignore = "needs a Docker engine (tests/engine.sh)"]
fn an_encrypted_config_never_shows_its_content() {
    let Some((_engine, _guard, repo)) = engine_repo("config-sealed") else {
        return;
    };
    let secret_text = b"api_key = do-not-show-me\n";
    let file = repo.t.path("plain-input");
    std::fs::write(&file, secret_text).unwrap();
    let dir = repo.t.path(&format!("configs/{ENV}"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = age_cli(
        [
            "-e",
            "-a",
            "-r",
            repo.t.public.as_str(),
            "-o",
            dir.join("app.ini.age").to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&out);
    std::fs::remove_file(&file).unwrap();
    let (out, plan) = repo.plan_json(&[]);
    assert_ok(&out);
    let c = config_change(&plan, "app.ini");
    assert_eq!(c["action"], "create");
    assert!(c.get("diff").is_none(), "{plan:#}");
    for format in ["human", "markdown", "json"] {
        let out = repo.run(&["--format", format, "plan"]);
        assert!(
            !contains_bytes(&out.stdout, b"do-not-show-me")
                && !contains_bytes(&out.stderr, b"do-not-show-me"),
            "{format}: {}",
            describe(&out)
        );
    }
    repo.apply();
    let list = configs(&repo);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].1[KIND], "config");
    // Its source label is the digest of the ciphertext, not of the value.
    let source = list[0].1["io.swarmseal.source"].as_str().unwrap();
    let bytes = std::fs::read(dir.join("app.ini.age")).unwrap();
    assert_eq!(source, sha256_hex(&bytes));
    repo.assert_converged();
    // A plain config that replaces it: no diff against the encrypted version's content.
    std::fs::remove_file(dir.join("app.ini.age")).unwrap();
    write_config(&repo, "app.ini", b"api_key = public\n");
    let (_, plan) = repo.plan_json(&[]);
    let c = config_change(&plan, "app.ini");
    let diff = c["diff"].as_str().unwrap_or("");
    assert!(!diff.contains("do-not-show-me"), "{plan:#}");
}

#[test]
#[ignore = "needs a Docker engine (tests/engine.sh)"]
fn secrets_without_a_kind_are_relabelled_without_a_restart() {
    let Some((engine, guard, repo)) = engine_repo("config-kind") else {
        return;
    };
    repo.set("db_password", b"v1\n");
    repo.apply();
    let svc = repo.app_service(&guard, "db_password");
    let v1 = repo.current("db_password");
    assert_eq!(v1.label(KIND), Some("secret"));
    // A version made before configs existed: no kind label.
    let info =
        engine.docker_cli_ok(&["secret", "inspect", "-f", "{{json .Spec.Labels}}", &v1.name]);
    let map: serde_json::Map<String, Value> = serde_json::from_slice(&info).unwrap();
    relabel_secret(&repo, &v1.id, &map);
    assert_eq!(repo.current("db_password").label(KIND), None);
    let updated_at = engine.service_field(&svc, "{{.UpdatedAt}}");
    let version = engine.service_field(&svc, "{{.Version.Index}}");

    let (out, plan) = repo.plan_json(&["--detailed-exitcode"]);
    assert_exit(&out, 2);
    assert_eq!(plan["summary"]["relabel"], 1, "{plan:#}");
    let c = change(&plan, "relabel", "db_password");
    assert!(
        c.get("kind").is_none(),
        "a secret's change has no kind field\n{plan:#}"
    );
    assert!(c["reason"].as_str().unwrap().contains(KIND), "{plan:#}");
    repo.apply();
    assert_eq!(repo.current("db_password").label(KIND), Some("secret"));
    assert_eq!(repo.current("db_password").id, v1.id, "no rotation");
    assert_eq!(engine.service_field(&svc, "{{.UpdatedAt}}"), updated_at);
    assert_eq!(engine.service_field(&svc, "{{.Version.Index}}"), version);
    repo.assert_converged();
}

/// Replaces a secret's labels with `labels` minus the kind (as a version made before
/// configs carries them), through the Docker API.
fn relabel_secret(repo: &SyncRepo, id: &str, labels: &serde_json::Map<String, Value>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let docker = repo.engine.docker();
    rt.block_on(async {
        let s = docker.inspect_secret(id).await.unwrap();
        let mut spec = s.spec.unwrap();
        spec.labels = Some(
            labels
                .iter()
                .filter(|(k, _)| k.as_str() != KIND)
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect(),
        );
        spec.data = None;
        let version = s.version.unwrap().index.unwrap() as i64;
        let options = bollard::query_parameters::UpdateSecretOptionsBuilder::new()
            .version(version)
            .build();
        docker.update_secret(id, spec, options).await.unwrap();
    });
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// `check` looks at `configs/<env>/` too: a plain config Docker would refuse (empty, over
/// 1,023,999 bytes), a `.age` config that is no age file, and a link are errors naming the
/// file; a good plain config passes. No engine needed.
#[test]
fn check_looks_at_configs() {
    let repo = TestRepo::new();
    let dir = repo.path("configs/staging");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ok.conf"), b"worker_processes 1;\n").unwrap();
    let out = repo.check(&[]);
    assert_exit(&out, 0);

    std::fs::write(dir.join("empty.conf"), b"").unwrap();
    std::fs::write(dir.join("big.conf"), vec![b'x'; 1_024_000]).unwrap();
    std::fs::write(dir.join("plain.conf.age"), b"password=hunter2\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link.conf")).unwrap();
    let out = repo.check(&[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    for file in ["empty.conf", "big.conf", "plain.conf.age", "link.conf"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("error:") && l.contains(&format!("configs/staging/{file}"))),
            "no error names configs/staging/{file}\n{}",
            describe(&out)
        );
    }
    assert!(!err.contains("hunter2"), "{}", describe(&out));
    assert!(
        !err.lines().any(|l| l.contains("ok.conf")),
        "{}",
        describe(&out)
    );
}

/// An encrypted config written by the age CLI (no record, no scope) is warned about by
/// `check`; `rekey` takes it over like a secret's file: re-encrypted to the environment's
/// recipients with the config scope and recorded, its content unchanged and still readable
/// by the age CLI; `check` is then quiet about it. No engine needed.
#[test]
fn rekey_takes_over_an_encrypted_config() {
    let repo = TestRepo::new();
    let dir = repo.path("configs/staging");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.ini.age");
    let content = b"user=app\npassword=not-in-any-output\n";
    let made = age_cli(
        [
            "-r".as_ref(),
            std::ffi::OsStr::new(&repo.public),
            "-o".as_ref(),
            file.as_os_str(),
        ],
        Some(content),
    );
    assert_ok(&made);
    let before = std::fs::read(&file).unwrap();
    let out = repo.check(&[]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("warning: configs/staging/app.ini.age")),
        "{}",
        describe(&out)
    );

    let out = repo.run(&["-e", "staging", "rekey"], None);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("re-encrypted 1 file in staging"),
        "{}",
        describe(&out)
    );
    assert_ne!(std::fs::read(&file).unwrap(), before, "not re-encrypted");
    let index = std::fs::read_to_string(repo.path(".swarmseal/index.yaml")).unwrap();
    assert!(index.contains("app.ini"), "not recorded:\n{index}");
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
    assert_eq!(by_age.stdout, content);
    let out = repo.check(&[]);
    assert_exit(&out, 0);
    assert!(
        !stderr(&out).contains("app.ini"),
        "check still warns about the config\n{}",
        describe(&out)
    );
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("not-in-any-output"));
    // Nothing left to do: a second rekey writes nothing.
    let out = repo.run(&["-e", "staging", "rekey"], None);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("re-encrypted 0 files"),
        "{}",
        describe(&out)
    );
}
