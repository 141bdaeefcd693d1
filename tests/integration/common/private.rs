//! Engines of a test's own, for faults the shared engine must not suffer: a single-node
//! swarm that is stopped and started again mid-apply, and a three-manager swarm whose leader
//! is killed. Both are made by `tests/node.sh` (the harness's own start and teardown), need
//! root, dockerd and iproute2, and are removed on drop, whatever the test did.
//!
//! ```ignore
//! let Some(node) = Node::single("restart") else { return };   // skips (or fails) without root
//! node.stop(); node.start_again();
//! let Some(cluster) = Cluster::start("leader", 3) else { return };
//! cluster.kill(cluster.leader());
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::engine::{Engine, REQUIRE_VAR};

/// `tests/node.sh`.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node.sh")
}

fn node_sh(args: &[&str]) -> Output {
    Command::new(script())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/node.sh: {e}"))
}

#[track_caller]
fn node_sh_ok(args: &[&str]) -> String {
    let out = node_sh(args);
    assert!(
        out.status.success(),
        "tests/node.sh {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// True when this process can make engines of its own (root, dockerd, ip, nsenter); else
/// `None` after a note, or a panic when `SWARMSEAL_REQUIRE_ENGINE=1`.
pub fn possible(what: &str) -> bool {
    let have = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let root = rustix::process::geteuid().is_root();
    let missing: Vec<&str> = ["dockerd", "docker", "ip", "nsenter", "unshare", "busybox"]
        .into_iter()
        .filter(|c| !have(c))
        .collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!("missing {}", missing.join(", "))
    } else {
        "not running as root".to_string()
    };
    if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!("{REQUIRE_VAR}=1 but {what} needs engines of its own, and {why}");
    }
    eprintln!("note: skipping {what}: it needs engines of its own, and {why}");
    false
}

/// A private dockerd in a folder of its own.
pub struct Node {
    pub dir: PathBuf,
    /// `unix://DIR/sock`.
    pub host: String,
    netns: Option<String>,
    /// In the host's network (for a TCP listener the tests reach).
    shared_net: bool,
    /// More dockerd arguments.
    extra_args: String,
}

impl Node {
    fn new(dir: PathBuf, netns: Option<String>) -> Node {
        let host = format!("unix://{}/sock", dir.display());
        Node {
            dir,
            host,
            netns,
            shared_net: false,
            extra_args: String::new(),
        }
    }

    fn start(&self) {
        let dir = self.dir.to_string_lossy().to_string();
        let mut args = vec!["start", dir.as_str()];
        if let Some(ns) = &self.netns {
            args.push(ns);
        }
        let mut cmd = Command::new(script());
        cmd.args(&args);
        if self.shared_net {
            cmd.env("NODE_SHARED_NET", "1");
        }
        cmd.env("NODE_DOCKERD_ARGS", &self.extra_args);
        let out = cmd.output().expect("tests/node.sh runs");
        assert!(
            out.status.success(),
            "tests/node.sh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A single-node swarm in its own network namespace, with the test image; `None` (after
    /// a note) when engines of one's own cannot be made here.
    pub fn single(test: &str) -> Option<Node> {
        Node::single_with(test, false, "")
    }

    /// [`Node::single`] in the host's network (`shared_net`: for a TCP listener the tests
    /// reach) and with more dockerd arguments.
    pub fn single_with(test: &str, shared_net: bool, extra_args: &str) -> Option<Node> {
        if !possible(test) {
            return None;
        }
        let dir = unique_dir(test);
        let mut node = Node::new(dir, None);
        node.shared_net = shared_net;
        node.extra_args = extra_args.to_string();
        node.start();
        // In its own namespace any port is free; in the host's, another swarm may hold 2377.
        let port = if shared_net {
            super::remote::free_port()
        } else {
            2377
        };
        let addr = format!("127.0.0.1:{port}");
        node.docker_ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            &addr,
            "--listen-addr",
            &addr,
        ]);
        node_sh_ok(&["image", &node.dir.to_string_lossy()]);
        Some(node)
    }

    /// Stops dockerd with SIGTERM, as an operator or a host shutdown would: its swarm and
    /// services come back with [`Node::start_again`].
    pub fn halt(&self) {
        node_sh_ok(&["halt", &self.dir.to_string_lossy()]);
    }

    /// Starts dockerd again on the same data: the swarm comes back.
    pub fn start_again(&self) {
        self.start();
    }

    /// SIGKILL: a crash.
    pub fn kill(&self) {
        node_sh_ok(&["kill", &self.dir.to_string_lossy()]);
    }

    /// `docker -H <this node> ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["-H", &self.host])
            .args(args)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .output()
            .expect("the docker CLI runs")
    }

    #[track_caller]
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker -H {} {args:?} failed: {}",
            self.host,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// This node as the tests' [`Engine`].
    pub fn engine(&self) -> Engine {
        Engine {
            host: self.host.clone(),
            image: super::engine::DEFAULT_IMAGE.to_string(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let out = node_sh(&["destroy", &self.dir.to_string_lossy()]);
        if !out.status.success() {
            eprintln!(
                "warning: tearing down {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn unique_dir(test: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    // Short: unix socket paths are limited to 108 bytes.
    let tag: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    PathBuf::from(format!("/tmp/ssp.{tag}.{}.{stamp:x}", std::process::id()))
}

/// A swarm of managers, each in its own network namespace with its own address, joined
/// through a bridge in another namespace (nothing outside this machine).
pub struct Cluster {
    // Dropped before `net` (field order): engines first, then their namespaces.
    pub nodes: Vec<Node>,
    net: Net,
}

struct Net {
    name: String,
    n: usize,
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = node_sh(&["net-down", &self.name, &self.n.to_string()]);
    }
}

impl Cluster {
    /// `n` managers; `None` (after a note) when engines of one's own cannot be made here.
    pub fn start(test: &str, n: usize) -> Option<Cluster> {
        if !possible(test) {
            return None;
        }
        let name = format!("ssm{}", std::process::id() % 100_000);
        node_sh_ok(&["net-up", &name, &n.to_string()]);
        let net = Net {
            name: name.clone(),
            n,
        };
        let base = unique_dir(test);
        let nodes: Vec<Node> = (1..=n)
            .map(|i| {
                Node::new(
                    PathBuf::from(format!("{}.n{i}", base.display())),
                    Some(format!("{name}-{i}")),
                )
            })
            .collect();
        let cluster = Cluster { nodes, net };
        std::thread::scope(|s| {
            for node in &cluster.nodes {
                s.spawn(|| {
                    node.start();
                    // Tasks may run on any node: each needs the image.
                    node_sh_ok(&["image", &node.dir.to_string_lossy()]);
                });
            }
        });
        let addr = |i: usize| node_sh_ok(&["addr", &i.to_string()]);
        let first = addr(1);
        cluster.nodes[0].docker_ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            &first,
            "--listen-addr",
            &format!("{first}:2377"),
        ]);
        let token = cluster.nodes[0].docker_ok(&["swarm", "join-token", "-q", "manager"]);
        for (i, node) in cluster.nodes.iter().enumerate().skip(1) {
            let a = addr(i + 1);
            node.docker_ok(&[
                "swarm",
                "join",
                "--token",
                &token,
                "--advertise-addr",
                &a,
                "--listen-addr",
                &format!("{a}:2377"),
                &format!("{first}:2377"),
            ]);
        }
        Some(cluster)
    }

    /// The index of the current leader, asking node `via`; waits (bounded) for one.
    pub fn leader(&self, via: usize, timeout: Duration) -> Option<usize> {
        let start = Instant::now();
        loop {
            let out =
                self.nodes[via].docker(&["node", "ls", "--format", "{{.ID}} {{.ManagerStatus}}"]);
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(id) = text
                .lines()
                .find(|l| l.ends_with(" Leader"))
                .and_then(|l| l.split_whitespace().next())
            {
                let index = self.nodes.iter().position(|n| {
                    n.docker(&["info", "--format", "{{.Swarm.NodeID}}"])
                        .stdout
                        .starts_with(id.as_bytes())
                });
                if index.is_some() {
                    return index;
                }
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
