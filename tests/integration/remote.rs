//! Remote managers, for real on loopback: ssh through a private sshd (Debian's
//! openssh-server, a throwaway host key) to the test engine, and TLS to a private dockerd
//! started with `--tlsverify`, each also through a docker context. Every secret value travels
//! over these: they must be at least as safe as the docker CLI's.
//!
//! Run: `tests/engine.sh cargo test --test integration -- --include-ignored remote::` (root, dockerd,
//! openssh-server, openssl).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::cli::{
    assert_exit, assert_ok, assert_refused, describe, stderr, stdout, TestRepo,
};
use crate::common::engine::engine;
use crate::common::remote::{docker_context, tls_node, Certs, Sshd};
use crate::common::sync::{Guard, SyncRepo};

/// A repository with one secret of environment `staging`.
fn repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.set("staging", "db_password", b"over the wire");
    repo
}

/// `swarmseal -e staging ARGS`, as a command to run.
fn command(repo: &TestRepo, args: &[&str]) -> Command {
    let mut c = repo.command();
    c.args(["-e", "staging"]).args(args);
    c
}

fn run(c: Command) -> std::process::Output {
    crate::common::cli::run_command(c, None)
}

// --- ssh -------------------------------------------------------------------------------------

/// An unknown host key is refused within seconds, with ssh's words and the hint, and
/// nothing is written to known_hosts: swarmseal never trusts on first use, whatever the
/// user's `StrictHostKeyChecking` (here: the default, `ask`, which fails without a terminal).
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn ssh_refuses_an_unknown_host_key() {
    let Some(engine) = engine() else { return };
    let Some(sshd) = Sshd::start("ssh unknown host", &engine.host) else {
        return;
    };
    let repo = repo();
    let url = sshd.url();
    for config in ["", "Host *\n  StrictHostKeyChecking yes\n"] {
        std::fs::write(sshd.ssh_dir().join("config"), config).unwrap();
        let start = Instant::now();
        let out = run(sshd.wrap(&command(&repo, &["-H", &url, "plan"])));
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?}",
            start.elapsed()
        );
        assert_refused(&out, &[&url, "Host key verification failed"]);
        let hint = format!(
            "ssh-keyscan -p {} 127.0.0.1 >> ~/.ssh/known_hosts",
            sshd.port
        );
        assert!(stderr(&out).contains(&hint), "{}", describe(&out));
        assert!(
            !sshd.ssh_dir().join("known_hosts").exists(),
            "the host key was written to known_hosts"
        );
    }
}

/// A known host works: with the port in the URL, and through a `~/.ssh/config` alias.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn ssh_known_host_works_with_a_port_or_a_config_alias() {
    let Some(engine) = engine() else { return };
    let Some(sshd) = Sshd::start("ssh known host", &engine.host) else {
        return;
    };
    let repo = repo();
    sshd.trust_host_key();
    let out = run(sshd.wrap(&command(&repo, &["-H", &sshd.url(), "plan"])));
    assert_ok(&out);
    assert!(
        stdout(&out).contains("create   db_password"),
        "{}",
        describe(&out)
    );
    std::fs::write(
        sshd.ssh_dir().join("config"),
        format!(
            "Host swarm-mgr\n  HostName 127.0.0.1\n  Port {}\n  User root\n  StrictHostKeyChecking yes\n",
            sshd.port
        ),
    )
    .unwrap();
    let out = run(sshd.wrap(&command(&repo, &["-H", "ssh://swarm-mgr", "plan"])));
    assert_ok(&out);
    assert!(
        stdout(&out).contains("via ssh://swarm-mgr"),
        "{}",
        describe(&out)
    );
}

/// A command logs in once: an apply of 100 creates runs over one ssh login (the first ssh
/// process is the master of a shared connection, the few others are sessions over it), not
/// one process per API call. Counted on both sides: sshd's log of logins, and an `ssh` on
/// PATH that logs each start and runs the real one. A user whose own configuration shares
/// connections (`ControlPath`, `ControlPersist`) keeps theirs: a second command then does
/// not log in at all.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn ssh_logs_in_once_per_command() {
    let Some(engine) = engine() else { return };
    let Some(sshd) = Sshd::start("ssh reuse", &engine.host) else {
        return;
    };
    let guard = Guard::new(&engine);
    let sync = SyncRepo::new(&engine, &guard, "ssh-once");
    let repo = &sync.t;
    for i in 0..100 {
        repo.set("staging", &format!("s{i}"), format!("value {i}").as_bytes());
    }
    sshd.trust_host_key();
    let bin = repo.work.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = repo.work.join("ssh.log");
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec /usr/bin/ssh \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let swarmseal = |args: &[&str]| {
        let mut c = command(repo, args);
        c.env("PATH", &path);
        run(sshd.wrap(&c))
    };
    let before = sshd.logins();
    let out = swarmseal(&["-H", &sshd.url(), "apply", "--yes"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("Applied: 100 created"),
        "{}",
        describe(&out)
    );
    let logins = sshd.logins() - before;
    let started = std::fs::read_to_string(&log).unwrap();
    let connections = started.lines().filter(|l| l.contains("dial-stdio")).count();
    assert_eq!(logins, 1, "one apply logged in {logins} times:\n{started}");
    assert!(
        (1..=8).contains(&connections),
        "{connections} ssh processes for one apply of 100 creates:\n{started}"
    );
    assert!(
        !started.contains("StrictHostKeyChecking") && !started.contains("UserKnownHostsFile"),
        "host key checking was overridden:\n{started}"
    );
    eprintln!(
        "figures: one apply of 100 creates over ssh: {logins} login, {connections} ssh connection(s)"
    );

    // The user's own connection sharing is used as it is.
    let control = sshd.dir.join("cm-%C");
    std::fs::write(
        sshd.ssh_dir().join("config"),
        format!(
            "Host *\n  ControlMaster auto\n  ControlPath {}\n  ControlPersist 60\n",
            control.display()
        ),
    )
    .unwrap();
    std::fs::write(&log, "").unwrap();
    let before = sshd.logins();
    for _ in 0..2 {
        assert_ok(&swarmseal(&["-H", &sshd.url(), "plan"]));
    }
    let started = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        sshd.logins() - before,
        1,
        "two plans with the user's ControlPersist:\n{started}"
    );
    assert!(
        !started.contains("ControlPath="),
        "the user's ControlPath was overridden:\n{started}"
    );
    // Stop the user's persistent master.
    let mut exit = Command::new("ssh");
    exit.args(["-O", "exit", "-p", &sshd.port.to_string(), "root@127.0.0.1"]);
    let _ = run(sshd.wrap(&exit));

    // Clean up what was created on the shared engine.
    for i in 0..100 {
        std::fs::remove_file(repo.secret_file("staging", &format!("s{i}"))).unwrap();
    }
    assert_ok(&swarmseal(&["-H", &sshd.url(), "apply", "--yes"]));
}

/// A server that allows no second session on a connection (sshd's `MaxSessions 1`, as
/// some hardening guides set) still works: a refused session is never handed a request, it
/// becomes a login of its own.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn ssh_without_shared_sessions_still_works() {
    let Some(engine) = engine() else { return };
    let Some(sshd) = Sshd::start_with("ssh max sessions", &engine.host, "MaxSessions 1") else {
        return;
    };
    sshd.trust_host_key();
    let guard = Guard::new(&engine);
    let sync = SyncRepo::new(&engine, &guard, "ssh-sessions");
    let repo = &sync.t;
    for i in 0..60 {
        repo.set("staging", &format!("m{i}"), format!("value {i}").as_bytes());
    }
    let out = run(sshd.wrap(&command(
        repo,
        &["-H", &sshd.url(), "apply", "--yes", "--parallel", "8"],
    )));
    assert_ok(&out);
    assert!(
        stderr(&out).contains("Applied: 60 created"),
        "{}",
        describe(&out)
    );
    for i in 0..20 {
        std::fs::remove_file(repo.secret_file("staging", &format!("m{i}"))).unwrap();
    }
    assert_ok(&run(
        sshd.wrap(&command(repo, &["-H", &sshd.url(), "apply", "--yes"]))
    ));
}

/// A docker context naming the ssh endpoint is used like `--host`.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn ssh_endpoint_from_a_docker_context() {
    let Some(engine) = engine() else { return };
    let Some(sshd) = Sshd::start("ssh context", &engine.host) else {
        return;
    };
    let repo = repo();
    sshd.trust_host_key();
    let config = repo.work.join("docker-config");
    docker_context(&config, "mgr", &sshd.url(), None);
    let mut c = command(&repo, &["plan"]);
    c.env("DOCKER_CONFIG", &config);
    let out = run(sshd.wrap(&c));
    assert_ok(&out);
    assert!(
        stdout(&out).contains("docker context mgr"),
        "{}",
        describe(&out)
    );
}

// --- TLS -------------------------------------------------------------------------------------

/// A private dockerd with `--tlsverify`: mutual TLS works; a wrong CA, a missing client
/// certificate and plain HTTP are each refused, saying so; a CA trusted by the system but
/// not given in `ca.pem` is not trusted; a docker context with the certificates works.
#[test]
#[ignore = "needs a Docker engine: tests/engine.sh cargo test --all-targets -- --include-ignored"]
fn tls_engine_trusts_only_its_ca() {
    if engine().is_none() {
        return;
    }
    let certs = Certs::new();
    let Some((_node, port)) = tls_node("tls", &certs) else {
        return;
    };
    let repo = repo();
    let url = format!("tcp://127.0.0.1:{port}");
    let with_certs = |dir: &std::path::Path| {
        let mut c = command(&repo, &["-H", &url, "plan"]);
        c.env("DOCKER_CERT_PATH", dir);
        c
    };

    let good = certs.client_dir("good", "ca.pem", true);
    let out = run(with_certs(&good));
    assert_ok(&out);
    assert!(
        stdout(&out).contains("create   db_password"),
        "{}",
        describe(&out)
    );

    let wrong_ca = certs.client_dir("wrong-ca", "other-ca.pem", true);
    let out = run(with_certs(&wrong_ca));
    assert_refused(&out, &[&url, "certificate", "ca.pem"]);

    // The system's roots are not trusted: here, "the system" trusts the engine's CA
    // (SSL_CERT_FILE, which rustls-native-certs and openssl read), but ca.pem does not.
    let mut c = with_certs(&wrong_ca);
    c.env("SSL_CERT_FILE", certs.path("ca.pem"));
    c.env("SSL_CERT_DIR", certs.tmp.path());
    assert_refused(&run(c), &[&url, "certificate"]);

    let no_client = certs.client_dir("no-client", "ca.pem", false);
    let out = run(with_certs(&no_client));
    assert_refused(&out, &[&url, "cert.pem"]);

    let plain = format!("http://127.0.0.1:{port}");
    let out = run(command(&repo, &["-H", &plain, "plan"]));
    assert_exit(&out, 1);
    assert!(stderr(&out).contains(&plain), "{}", describe(&out));
    assert!(stderr(&out).contains("HTTPS"), "{}", describe(&out));

    let config = repo.work.join("docker-config");
    docker_context(&config, "tls-mgr", &url, Some(&good));
    let mut c = command(&repo, &["plan"]);
    c.env("DOCKER_CONFIG", &config);
    let out = run(c);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("docker context tls-mgr"),
        "{}",
        describe(&out)
    );
}
