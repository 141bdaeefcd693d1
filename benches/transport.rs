//! `apply` over ssh next to the same `apply` over the unix socket, in the same run: the
//! cost of the ssh transport (one ssh login per command, the connections sessions over it,
//! `docker system dial-stdio` on the far side) on this machine, through a private sshd on
//! loopback, whose sessions do not read the machine's shell start-up files (a clean manager).
//!
//! Run: `tests/engine.sh cargo bench --bench transport` (optionally `-- 1000`, the number
//! of secrets; as root, with openssh-server). Without an engine it says so and exits 0; under
//! `cargo test` (no `--bench` argument) it only checks that it builds.
//!
//! Each round applies N creates over the unix socket, removes them, applies them over ssh,
//! removes them; the table gives the median of the rounds and the ratio.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{bench_args_and_host, median, BenchRepo};

const ROUNDS: usize = 5;

fn sshd_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sshd.sh")
}

fn main() {
    let Some((args, host)) = bench_args_and_host("transport") else {
        return;
    };
    if !Path::new("/usr/sbin/sshd").exists() || !rustix::process::geteuid().is_root() {
        eprintln!("the ssh transport bench needs root and openssh-server");
        return;
    }
    let n: usize = args
        .iter()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(1000);
    let bin = env!("CARGO_BIN_EXE_swarmseal");

    let project = format!("benchssh{}", std::process::id());
    let bench = BenchRepo::new(&project, (0..n).map(|i| format!("s{i:05}")));
    let (dir, root_s) = (&bench.dir, &bench.root_s);

    let sshd = dir.path().join("sshd");
    let out = Command::new(sshd_sh())
        .arg("start")
        .arg(&sshd)
        .arg(&host)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(Command::new(sshd_sh())
        .arg("known")
        .arg(&sshd)
        .status()
        .unwrap()
        .success());
    let ssh_url = format!("ssh://root@127.0.0.1:{port}");

    let apply = |endpoint: &str, through_ssh: bool| -> Duration {
        let mut cmd = if through_ssh {
            let mut c = Command::new(sshd_sh());
            c.arg("run").arg(&sshd).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.args([
            "-C",
            root_s,
            "-q",
            "-i",
            bench.idfile_s(),
            "-H",
            endpoint,
            "apply",
            "--yes",
        ]);
        let start = Instant::now();
        let out = cmd.output().unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "apply over {endpoint}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let remove_all = || {
        let ids = Command::new("docker")
            .args([
                "-H",
                &host,
                "secret",
                "ls",
                "-q",
                "--filter",
                &format!("label=io.swarmseal.project={project}"),
            ])
            .output()
            .unwrap();
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        for chunk in ids.chunks(200) {
            let mut c = Command::new("docker");
            c.args(["-H", &host, "secret", "rm"]).args(chunk);
            let _ = c.output();
        }
    };

    let mut unix = Vec::new();
    let mut ssh = Vec::new();
    for _ in 0..ROUNDS {
        unix.push(apply(&host, false));
        remove_all();
        ssh.push(apply(&ssh_url, true));
        remove_all();
    }
    let _ = Command::new(sshd_sh()).arg("stop").arg(&sshd).status();
    let secs = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "rounds (s): unix socket {}; ssh {}",
        secs(&unix),
        secs(&ssh)
    );
    let (u, s) = (median(unix), median(ssh));
    println!("apply of {n} creates, median of {ROUNDS} rounds (the same run)");
    println!(
        "{:>10}  {:>12}  {:>12}  {:>8}",
        "secrets", "unix socket", "ssh", "ssh/unix"
    );
    println!(
        "{n:>10}  {:>10.2} s  {:>10.2} s  {:>7.2}x",
        u.as_secs_f64(),
        s.as_secs_f64(),
        s.as_secs_f64() / u.as_secs_f64()
    );
}
