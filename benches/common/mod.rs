//! Helpers shared by the benches (`mod common;` in a bench file).
//!
//! Each bench uses only part of this, so dead code is expected here.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// The median: the middle value, or the mean of the two middle ones for an even count.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2
    } else {
        v[mid]
    }
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
        let repo = BenchRepo::new_in(&std::env::temp_dir(), project);
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

/// Files per transaction in [`BenchRepo::store_many`]: a transaction keeps each staged file
/// open until it commits, so thousands at once could meet a low open-files limit.
const STORE_CHUNK: usize = 500;

impl BenchRepo {
    /// Stores many values in environment `prod` (name as `set` takes it, value) through
    /// the library, as `set` stores one (encrypted to the environment's recipients, with
    /// its index record), but with one index write per [`STORE_CHUNK`] files instead of one
    /// per secret: 10,000 `set` processes would each rewrite the whole index.
    pub fn store_many(&self, values: &[(String, swarmseal::crypto::Plaintext)]) {
        use swarmseal::domain::names;
        use swarmseal::repo::{index, secrets, LockMode, Repo};
        let repo = Repo::open(&self.root).unwrap();
        let _lock = repo.lock(LockMode::Exclusive).unwrap();
        let mut index = repo.load_index().unwrap();
        for chunk in values.chunks(STORE_CHUNK) {
            let mut tx = repo.transaction();
            for (input, value) in chunk {
                let (name, rel) = names::parse_user_name(input).unwrap();
                let path = repo.secret_path("prod", &rel);
                let target = secrets::Target::Secret {
                    name: &name,
                    path: &path,
                };
                let changed = Some(index::now_stamp());
                secrets::write_encrypted(
                    &repo, &mut tx, &mut index, "prod", target, value, changed,
                )
                .unwrap();
            }
            secrets::stage_index(&repo, &mut tx, &index).unwrap();
            tx.commit().unwrap();
        }
    }
}

/// The body type of bollard's requests (bollard does not name it publicly).
trait HasBody {
    type Body;
}
impl<B> HasBody for http::Request<B> {
    type Body = B;
}
type BollardBody = <bollard::BollardRequest as HasBody>::Body;

/// Connects to a unix socket, for [`keep_alive_docker`].
#[derive(Clone)]
struct UnixConnector(std::sync::Arc<PathBuf>);

type Connecting = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = std::io::Result<hyper_util::rt::TokioIo<tokio::net::UnixStream>>,
            > + Send,
    >,
>;

impl tower_service::Service<http::Uri> for UnixConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Connecting {
        let path = self.0.clone();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(&*path).await?;
            Ok(hyper_util::rt::TokioIo::new(stream))
        })
    }
}

/// A bollard client over the unix socket at `socket` that keeps its connections open
/// between requests (up to 8 idle), as swarmseal's own transport does. bollard's
/// `connect_with_unix` opens a new connection for every request (its pool is disabled),
/// which is not what a floor of swarmseal's calls should pay. The API version is not
/// negotiated yet.
pub fn keep_alive_docker(socket: &str) -> bollard::Docker {
    use hyper_util::client::legacy::Client;
    let connector = UnixConnector(std::sync::Arc::new(PathBuf::from(socket)));
    let client: Client<UnixConnector, BollardBody> =
        Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(8)
            .build(connector);
    bollard::Docker::connect_with_custom_transport(
        move |req: bollard::BollardRequest| {
            let client = client.clone();
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some("http://docker"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .unwrap()
}

impl BenchRepo {
    /// [`BenchRepo::new`] without secrets, in a temporary folder under `parent` (say, a
    /// tmpfs: storing thousands of files syncs each one, which takes a minute on a disk).
    pub fn new_in(parent: &std::path::Path, project: &str) -> BenchRepo {
        let dir = tempfile::tempdir_in(parent).unwrap();
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
        BenchRepo {
            dir,
            root,
            root_s,
            idfile,
            text,
        }
    }
}
