//! `swarmseal import compose|dotenv` (issue 12): compose files rewritten with their
//! comments and layout kept, refusals that change nothing, `--force`, dotenv parsing and
//! name mapping; and, on a real Swarm, an imported compose project applied and deployed
//! with `swarmseal exec -- docker stack deploy`, its containers reading the values.
//!
//! Run: `cargo test --test integration -- --include-ignored import::`; the engine test
//! needs `tests/engine.sh` (and fails without it when `SWARMSEAL_REQUIRE_ENGINE=1`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::cli::{
    assert_ok, assert_refused, assert_same_snapshot, contains_bytes, describe, stderr, stdout,
    TestRepo,
};
use crate::common::sync::{engine_repo, EngineExt};

/// A compose file full of comments, an anchor and a merge key, every quoting style and a
/// flow mapping: three `file:` secrets and two entries to leave alone.
const COMPOSE: &str = r#"# Shop stack, deployed with `docker stack deploy`.
version: "3.8"

x-common: &common
  image: busybox          # the test image
  stop_grace_period: 1s

services:
  app:
    <<: *common
    command: ["sleep", "3600"]
    secrets:
      - db_password
      - source: api_key
        target: api.key
      - tls.crt
      - legacy_token

secrets:
  # The database password, from a local file.
  db_password:
    file: ./secrets/db_password.txt   # never commit this file
  "api_key": {file: "./secrets/api key.txt"}   # flow style
  tls.crt:
    name: 'old-tls-name'
    'file': secrets/tls.crt
    x-note: kept
  legacy_token:
    external: true
  smtp_password:
    environment: SMTP_PASSWORD

configs:
  nginx_conf:
    external: true   # managed elsewhere
"#;

/// [`COMPOSE`] after the import: only the lines of the three imported entries differ.
const IMPORTED: &str = r#"# Shop stack, deployed with `docker stack deploy`.
version: "3.8"

x-common: &common
  image: busybox          # the test image
  stop_grace_period: 1s

services:
  app:
    <<: *common
    command: ["sleep", "3600"]
    secrets:
      - db_password
      - source: api_key
        target: api.key
      - tls.crt
      - legacy_token

secrets:
  # The database password, from a local file.
  db_password:
    external: true   # never commit this file
    name: ${SWARMSEAL_DB_PASSWORD}
  "api_key": {external: true, name: "${SWARMSEAL_API_KEY}"}   # flow style
  tls.crt:
    name: '${SWARMSEAL_TLS_CRT}'
    external: true
    x-note: kept
  legacy_token:
    external: true
  smtp_password:
    environment: SMTP_PASSWORD

configs:
  nginx_conf:
    external: true   # managed elsewhere
"#;

/// The values of [`COMPOSE`]'s files, by secret name and file (below the compose folder).
const VALUES: &[(&str, &str, &[u8])] = &[
    ("db_password", "secrets/db_password.txt", b"hunter2\n"),
    ("api_key", "secrets/api key.txt", b"k-123"),
    ("tls.crt", "secrets/tls.crt", b"\x00\x01binary\xff"),
];

/// A folder for a compose project in the test's work folder, with [`VALUES`]' files.
fn project(repo: &TestRepo, name: &str) -> PathBuf {
    let dir = repo.work.join(name);
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    for (_, file, value) in VALUES {
        std::fs::write(dir.join(file), value).unwrap();
    }
    dir
}

/// Writes compose `text` as `dir/compose.yml` and returns its path.
fn compose_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("compose.yml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `swarmseal -e staging import KIND FILE EXTRA...` in the repository.
fn import(repo: &TestRepo, kind: &str, file: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["-e", "staging", "import", kind, file.to_str().unwrap()];
    args.extend_from_slice(extra);
    repo.run(&args, None)
}

#[test]
fn compose_import_stores_files_and_rewrites_only_their_entries() {
    let repo = TestRepo::new();
    let dir = project(&repo, "shop");
    let path = compose_file(&dir, COMPOSE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();

    let out = import(&repo, "compose", &path, &[]);
    assert_ok(&out);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), IMPORTED);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640, "the compose file's mode is kept");
    for (name, _, value) in VALUES {
        assert_eq!(repo.get("staging", name), *value, "{name}");
    }
    assert_eq!(
        repo.ls_names("staging"),
        ["api_key", "db_password", "tls.crt"]
    );
    assert!(repo.ls_names("production").is_empty());

    // What was stored, what was left, which files to delete and how to purge them.
    let err = stderr(&out);
    for want in [
        "created secret db_password",
        "secret legacy_token (external)",
        "secret smtp_password (environment)",
        "git filter-repo --invert-paths",
        "swarmseal -e staging apply",
    ] {
        assert!(err.contains(want), "no {want:?}\n{}", describe(&out));
    }
    let rm = err
        .lines()
        .find(|l| l.contains(": rm "))
        .unwrap_or_else(|| panic!("no rm line\n{}", describe(&out)));
    for (_, file, _) in VALUES {
        let shown = dir.join(file).display().to_string();
        assert!(rm.contains(&shown), "{shown} not in {rm:?}");
    }
    // The plaintext files are the user's to delete; no value is ever printed.
    for (_, file, value) in VALUES {
        assert!(dir.join(file).exists());
        assert!(!contains_bytes(&out.stderr, &value[..value.len().min(7)]));
        assert!(!contains_bytes(&out.stdout, &value[..value.len().min(7)]));
    }

    // Run again on the rewritten file: nothing has file: any more.
    let before = repo.snapshot();
    let out = import(&repo, "compose", &path, &[]);
    assert_refused(&out, &["compose.yml", "nothing to import"]);
    assert_same_snapshot(&before, &repo.snapshot(), "a second import");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), IMPORTED);
}

/// Block entries at the end of a file without a final line break, CRLF line endings, an
/// empty `name:`, a double-quoted `name:` and a flow mapping over several lines.
#[test]
fn compose_rewrite_handles_line_endings_and_name_forms() {
    let repo = TestRepo::new();
    let dir = project(&repo, "forms");
    let cases: &[(&str, &str)] = &[
        (
            "secrets:\n  db_password:\n    file: secrets/db_password.txt",
            "secrets:\n  db_password:\n    external: true\n    name: ${SWARMSEAL_DB_PASSWORD}\n",
        ),
        (
            "secrets:\r\n  db_password:\r\n    file: secrets/db_password.txt\r\n# end\r\n",
            "secrets:\r\n  db_password:\r\n    external: true\r\n    name: ${SWARMSEAL_DB_PASSWORD}\r\n# end\r\n",
        ),
        (
            "secrets:\n  db_password:\n    name:\n    file: secrets/db_password.txt\n",
            "secrets:\n  db_password:\n    name: ${SWARMSEAL_DB_PASSWORD}\n    external: true\n",
        ),
        (
            "secrets:\n    db_password:\n        file: secrets/db_password.txt\n        name: \"db\"\n",
            "secrets:\n    db_password:\n        external: true\n        name: \"${SWARMSEAL_DB_PASSWORD}\"\n",
        ),
        (
            "secrets: {\n  db_password: {\n    file: secrets/db_password.txt,\n  },\n}\n",
            "secrets: {\n  db_password: {\n    external: true, name: \"${SWARMSEAL_DB_PASSWORD}\",\n  },\n}\n",
        ),
    ];
    for (input, want) in cases {
        let path = compose_file(&dir, input);
        let out = import(&repo, "compose", &path, &["--force"]);
        assert_ok(&out);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            *want,
            "from {input:?}"
        );
        assert_eq!(repo.get("staging", "db_password"), b"hunter2\n");
    }
}

/// Entries that cannot be imported or rewritten safely are refused naming the file, the
/// entry and what to do, with nothing stored and the compose file untouched.
#[test]
fn compose_refusals_change_nothing() {
    let repo = TestRepo::new();
    let dir = project(&repo, "refused");
    std::fs::write(dir.join("secrets/empty.txt"), b"").unwrap();
    std::fs::write(dir.join("secrets/big.txt"), vec![b'x'; 512_000]).unwrap();
    let ok = "  db_password:\n    file: secrets/db_password.txt\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "  a: &shared\n    file: secrets/tls.crt\n",
            &["entry a", "anchor"],
        ),
        (
            "  a:\n    file: &f secrets/tls.crt\n",
            &["entry a", "anchor"],
        ),
        ("  a: *shared\n", &["entry a", "alias"]),
        ("  a:\n    <<: *shared\n", &["entry a", "<<"]),
        (
            "  a:\n    file: secrets/tls.crt\n    labels: {team: db}\n",
            &["entry a", "labels", "swarmseal.yaml"],
        ),
        (
            "  a:\n    file: secrets/tls.crt\n    external: true\n",
            &["entry a", "external"],
        ),
        ("  a:\n    file: ${DIR}/tls.crt\n", &["entry a", "${DIR}"]),
        (
            "  a:\n    file: secrets/missing.txt\n",
            &["entry a", "secrets/missing.txt", "does not exist"],
        ),
        (
            "  a:\n    file: secrets\n",
            &["entry a", "not a regular file"],
        ),
        (
            "  a:\n    file: secrets/empty.txt\n",
            &["entry a", "empty.txt", "is empty"],
        ),
        (
            "  a:\n    file: secrets/big.txt\n",
            &["entry a", "big.txt", "511,999"],
        ),
        (
            "  db-password:\n    file: secrets/tls.crt\n",
            &["db-password", "db_password", "SWARMSEAL_DB_PASSWORD"],
        ),
        (
            "  a b:\n    file: secrets/tls.crt\n  a_b:\n    file: secrets/tls.crt\n",
            &["a b and a_b", "a_b"],
        ),
        (
            "  __:\n    file: secrets/tls.crt\n",
            &["entry __", "cannot be a secret name"],
        ),
    ];
    for (entries, names) in cases {
        let text =
            format!("x-anchors:\n  shared: &shared\n    external: true\nsecrets:\n{ok}{entries}");
        let path = compose_file(&dir, &text);
        let before = repo.snapshot();
        let out = import(&repo, "compose", &path, &[]);
        let mut all = vec!["compose.yml"];
        all.extend_from_slice(names);
        assert_refused(&out, &all);
        assert!(
            stderr(&out).contains("nothing was stored"),
            "{}",
            describe(&out)
        );
        assert_same_snapshot(&before, &repo.snapshot(), entries);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "{entries}");
    }

    // A config and a secret that `exec` would pass under one variable.
    let text = format!("secrets:\n{ok}  config_app:\n    file: secrets/tls.crt\nconfigs:\n  app:\n    file: secrets/tls.crt\n");
    let path = compose_file(&dir, &text);
    let before = repo.snapshot();
    let out = import(&repo, "compose", &path, &[]);
    assert_refused(&out, &["config_app", "app", "SWARMSEAL_CONFIG_APP"]);
    assert_same_snapshot(&before, &repo.snapshot(), "configs");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    // Not a compose file, not YAML, nothing to import.
    for (text, names) in [
        ("- a\n- b\n", &["compose.yml", "not a compose file"][..]),
        ("secrets: [\n", &["compose.yml", "YAML"]),
        ("services: {}\n", &["compose.yml", "nothing to import"]),
    ] {
        let path = compose_file(&dir, text);
        let out = import(&repo, "compose", &path, &[]);
        assert_refused(&out, names);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
    let out = import(&repo, "compose", &dir.join("nope.yml"), &[]);
    assert_refused(&out, &["nope.yml", "does not exist"]);
}

/// `configs:` entries with `file:` become plain files in `configs/<env>/`, referred to as
/// `${SWARMSEAL_CONFIG_<NAME>}`; only the secrets' files are to be deleted.
#[test]
fn compose_import_stores_configs_as_plain_files() {
    let repo = TestRepo::new();
    let dir = project(&repo, "configs");
    let conf = b"server { listen 80; }\n";
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let text = "secrets:\n  db_password:\n    file: secrets/db_password.txt\nconfigs:\n  nginx.conf:   # the site\n    file: ./nginx.conf\n";
    let path = compose_file(&dir, text);
    let out = repo.run(
        &[
            "--format",
            "json",
            "-e",
            "staging",
            "import",
            "compose",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "secrets:\n  db_password:\n    external: true\n    name: ${SWARMSEAL_DB_PASSWORD}\nconfigs:\n  nginx.conf:   # the site\n    external: true\n    name: ${SWARMSEAL_CONFIG_NGINX_CONF}\n"
    );
    assert_eq!(
        std::fs::read(repo.path("configs/staging/nginx.conf")).unwrap(),
        conf
    );
    assert_eq!(repo.get("staging", "db_password"), b"hunter2\n");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", describe(&out)));
    let config = &report["imported"][1];
    assert_eq!(
        (
            config["kind"].as_str(),
            config["path"].as_str(),
            config["variable"].as_str()
        ),
        (
            Some("config"),
            Some("configs/staging/nginx.conf"),
            Some("SWARMSEAL_CONFIG_NGINX_CONF")
        )
    );
    let delete: Vec<&str> = report["delete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        delete,
        [dir.join("secrets/db_password.txt").to_str().unwrap()]
    );

    // Again, without --force: the config exists now.
    let path = compose_file(&dir, text);
    let before = repo.snapshot();
    let out = import(&repo, "compose", &path, &[]);
    assert_refused(
        &out,
        &["config nginx.conf", "secret db_password", "--force"],
    );
    assert_same_snapshot(&before, &repo.snapshot(), "configs without --force");
}

/// An existing secret is never overwritten without `--force`; with it, the value is
/// replaced (or left alone when it is the same), and a linked compose file stays a link.
#[test]
fn compose_import_overwrites_only_with_force() {
    let repo = TestRepo::new();
    let dir = project(&repo, "force");
    repo.set("staging", "db_password", b"old value");
    let text = "secrets:\n  db_password:\n    file: secrets/db_password.txt\n  api_key:\n    file: secrets/api key.txt\n";
    let real = dir.join("real-compose.yml");
    std::fs::write(&real, text).unwrap();
    let path = dir.join("compose.yml");
    std::os::unix::fs::symlink("real-compose.yml", &path).unwrap();

    let before = repo.snapshot();
    let out = import(&repo, "compose", &path, &[]);
    assert_refused(&out, &["db_password", "--force", "staging"]);
    assert_same_snapshot(&before, &repo.snapshot(), "import without --force");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), text);

    let out = import(&repo, "compose", &path, &["--force"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("updated secret db_password"),
        "{}",
        describe(&out)
    );
    assert!(
        stderr(&out).contains("created secret api_key"),
        "{}",
        describe(&out)
    );
    assert_eq!(repo.get("staging", "db_password"), b"hunter2\n");
    assert_eq!(repo.get("staging", "api_key"), b"k-123");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("${SWARMSEAL_API_KEY}"));

    // The same values again, with --force: nothing to write.
    let path = compose_file(&dir, text);
    let before = repo.snapshot();
    let out = repo.run(
        &[
            "--format",
            "json",
            "-e",
            "staging",
            "import",
            "compose",
            path.to_str().unwrap(),
            "--force",
        ],
        None,
    );
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", describe(&out)));
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["environment"], "staging");
    let actions: Vec<(&str, &str)> = report["imported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [("db_password", "unchanged"), ("api_key", "unchanged")]
    );
    assert_eq!(report["imported"][0]["variable"], "SWARMSEAL_DB_PASSWORD");
    assert_eq!(report["delete"].as_array().unwrap().len(), 2);
    assert_same_snapshot(&before, &repo.snapshot(), "an import of unchanged values");
}

#[test]
fn dotenv_import_makes_one_secret_per_variable() {
    let repo = TestRepo::new();
    let path = repo.work.join(".env");
    std::fs::write(
        &path,
        "# App settings\nDB_PASSWORD=hunter2\nexport API_KEY = 'k $1 #x'  # quoted\nGREETING=\"line1\\nline2\"\n\n  Multi.Line=\"a\nb\"\n",
    )
    .unwrap();
    let out = import(&repo, "dotenv", &path, &[]);
    assert_ok(&out);
    for (name, value) in [
        ("db_password", &b"hunter2"[..]),
        ("api_key", b"k $1 #x"),
        ("greeting", b"line1\nline2"),
        ("multi.line", b"a\nb"),
    ] {
        assert_eq!(repo.get("staging", name), value, "{name}");
    }
    let err = stderr(&out);
    assert!(
        err.contains("created secret db_password from DB_PASSWORD"),
        "{err}"
    );
    assert!(err.contains(&format!("rm {}", path.display())), "{err}");
    assert!(!err.contains("hunter2") && !stdout(&out).contains("hunter2"));

    // Again: every secret exists now.
    let before = repo.snapshot();
    let out = import(&repo, "dotenv", &path, &[]);
    assert_refused(&out, &["db_password", "api_key", "--force"]);
    assert_same_snapshot(&before, &repo.snapshot(), "dotenv without --force");
    std::fs::write(&path, "DB_PASSWORD=new\n").unwrap();
    assert_ok(&import(&repo, "dotenv", &path, &["--force"]));
    assert_eq!(repo.get("staging", "db_password"), b"new");
}

/// Beyond 20 values the report counts them (a CI log of 10,000 imports stays short); `-v`
/// lists every one.
#[test]
fn dotenv_import_of_many_values_is_summed_up_unless_verbose() {
    let repo = TestRepo::new();
    let path = repo.work.join(".env");
    let text: String = (0..25).map(|i| format!("V{i:02}=value-{i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let err = stderr(&import(&repo, "dotenv", &path, &[]));
    assert!(err.contains("Imported 25 secrets from"), "{err}");
    assert!(err.contains("created 25 values"), "{err}");
    assert!(err.contains("-v lists them"), "{err}");
    assert!(!err.contains("created secret v00"), "{err}");
    assert_eq!(repo.get("staging", "v24"), b"value-24");

    let text: String = (0..25).map(|i| format!("W{i:02}=value-{i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let args = [
        "-v",
        "-e",
        "staging",
        "import",
        "dotenv",
        path.to_str().unwrap(),
    ];
    let err = stderr(&repo.run(&args, None));
    assert!(err.contains("created secret w00 from W00"), "{err}");
    assert!(err.contains("created secret w24 from W24"), "{err}");
}

/// Empty values, names that collide once mapped, repeated variables and lines that are not
/// assignments are refused naming the variable (never a value), with nothing stored.
#[test]
fn dotenv_refusals_name_the_variable_and_store_nothing() {
    let repo = TestRepo::new();
    let path = repo.work.join("app.env");
    let cases: &[(&str, &[&str])] = &[
        ("A=1\nEMPTY=\n", &["app.env:2", "EMPTY", "empty"]),
        (
            "DB_PASSWORD=s3cret1\ndb_password=s3cret2\n",
            &["DB_PASSWORD and db_password", "db_password"],
        ),
        (
            "DB-PASSWORD=s3cret1\nDB_PASSWORD=s3cret2\n",
            &["DB-PASSWORD", "DB_PASSWORD", "SWARMSEAL_DB_PASSWORD"],
        ),
        ("A=s3cret1\nA=s3cret2\n", &["app.env:2", "A is set twice"]),
        ("s3cret1\n", &["app.env:1", "KEY=VALUE"]),
        ("A=\"s3cret1\n", &["app.env:1", "A", "not closed"]),
        ("# nothing\n", &["app.env", "nothing to import"]),
    ];
    for (text, names) in cases {
        std::fs::write(&path, text).unwrap();
        let before = repo.snapshot();
        let out = import(&repo, "dotenv", &path, &[]);
        assert_refused(&out, names);
        assert!(
            !stderr(&out).contains("s3cret"),
            "a value in the error\n{}",
            describe(&out)
        );
        assert_same_snapshot(&before, &repo.snapshot(), text);
    }
}

/// The end-to-end story of the issue: a compose project with `file:` secrets (and a
/// config) is imported, applied, and deployed with `swarmseal exec -- docker stack deploy -c
/// FILE`; the containers read the original bytes.
#[test]
#[ignore = "needs a Docker engine: run through tests/engine.sh"]
fn imported_compose_project_deploys_with_exec() {
    let Some((engine, guard, repo)) = engine_repo("import-stack") else {
        return;
    };
    let dir = repo.t.work.join("stack");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    let password = b"stack password\n".to_vec();
    let key: Vec<u8> = (0..=255u8).collect();
    std::fs::write(dir.join("secrets/db_password.txt"), &password).unwrap();
    std::fs::write(dir.join("secrets/tls.key"), &key).unwrap();
    let conf = b"listen 8080\n".to_vec();
    std::fs::write(dir.join("app.conf"), &conf).unwrap();
    let compose = format!(
        r#"version: "3.8"
services:
  app:
    image: {image}   # no registry: the local test image
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets:
      - db_password
      - source: tls.key
        target: tls.key
    configs:
      - source: app.conf
        target: /etc/app.conf
secrets:
  # Imported by swarmseal.
  db_password:
    file: ./secrets/db_password.txt
  tls.key: {{file: secrets/tls.key}}
configs:
  app.conf:
    file: ./app.conf
"#,
        image = engine.image
    );
    let file = dir.join("stack.yml");
    std::fs::write(&file, &compose).unwrap();

    assert_ok(&repo.run(&["import", "compose", file.to_str().unwrap()]));
    let rewritten = std::fs::read_to_string(&file).unwrap();
    assert!(
        rewritten.contains("name: ${SWARMSEAL_DB_PASSWORD}"),
        "{rewritten}"
    );
    assert!(
        rewritten.contains("# Imported by swarmseal."),
        "{rewritten}"
    );
    repo.apply();

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
    let container = guard.wait_running(&format!("{stack}_app"));
    assert_eq!(
        engine.read_in(&container, "/run/secrets/db_password"),
        password
    );
    assert_eq!(engine.read_in(&container, "/run/secrets/tls.key"), key);
    assert_eq!(engine.read_in(&container, "/etc/app.conf"), conf);
}
