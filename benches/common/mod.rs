//! Helpers shared by the benches (`mod common;` in a bench file).
//!
//! Each bench uses only part of this, so dead code is expected here.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run_cli(args: &[&str]) {
    let mut full = vec!["swarmseal"];
    full.extend_from_slice(args);
    let code = swarmseal::run_cli(full.iter().map(|s| std::ffi::OsString::from(*s)));
    assert_eq!(code, 0, "swarmseal {args:?} failed");
}

/// The bench's arguments and the test engine's endpoint; `None` (nothing to measure) when
/// built and run by `cargo test --all-targets` (no `--bench` argument) or without an engine
/// (then it says how to run `bench`).
pub fn bench_args_and_host(bench: &str) -> Option<(Vec<String>, String)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return None; // built and run by `cargo test --all-targets`: nothing to measure
    }
    let Ok(host) = std::env::var("SWARMSEAL_TEST_DOCKER_HOST") else {
        eprintln!("no engine: run `tests/engine.sh cargo bench --bench {bench}`");
        return None;
    };
    Some((args, host))
}

/// A repository (environment `prod`, one recipient `bench`) in a temporary folder, with
/// generated secrets, and the identity that decrypts it.
pub struct BenchRepo {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub root_s: String,
    pub idfile: PathBuf,
    pub text: Zeroizing<String>,
}

impl BenchRepo {
    /// `swarmseal init` for `project`, then `set NAME --generate` for each of `names`.
    pub fn new(project: &str, names: impl IntoIterator<Item = String>) -> BenchRepo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let root_s = root.to_str().unwrap().to_string();
        let idfile = dir.path().join("id.txt");
        let (text, public) = swarmseal::crypto::generate_identity();
        std::fs::write(&idfile, text.as_bytes()).unwrap();
        // As `keygen` writes it: an identity others can read is warned about at every run.
        std::fs::set_permissions(&idfile, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        run_cli(&[
            "-C",
            &root_s,
            "-q",
            "init",
            "--project",
            project,
            "-e",
            "prod",
            "--recipient",
            &format!("bench={public}"),
        ]);
        let repo = BenchRepo {
            dir,
            root,
            root_s,
            idfile,
            text,
        };
        for name in names {
            repo.run(&["set", &name, "--generate"]);
        }
        repo
    }

    pub fn idfile_s(&self) -> &str {
        self.idfile.to_str().unwrap()
    }

    /// `swarmseal -C ROOT -q -i IDFILE ARGS...`, which must succeed.
    pub fn run(&self, args: &[&str]) {
        let mut full = vec!["-C", &self.root_s, "-q", "-i", self.idfile_s()];
        full.extend_from_slice(args);
        run_cli(&full);
    }
}
