//! Remote endpoints on loopback for the tests: throwaway certificates (openssl), a private
//! sshd (`tests/sshd.sh`), and a private dockerd listening with `--tlsverify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::private::Node;

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and an
/// unrelated second CA, in a temporary folder.
pub struct Certs {
    pub tmp: tempfile::TempDir,
}

impl Certs {
    pub fn new() -> Certs {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for (ca, cn) in [("ca", "swarmseal test CA"), ("other-ca", "some other CA")] {
            let subject = format!("/CN={cn}");
            let key = format!("{ca}-key.pem");
            let cert = format!("{ca}.pem");
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &cert]);
            openssl(dir, &args);
        }
        for (who, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
            ),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            let (key, csr, cert, extfile) = (
                format!("{who}-key.pem"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
            );
            let subject = format!("/CN={who}");
            let mut args = vec!["req", "-subj", &subject, "-keyout", &key, "-out", &csr];
            args.extend(ec);
            openssl(dir, &args);
            std::fs::write(dir.join(&extfile), format!("{ext}\n")).unwrap();
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca-key.pem",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &extfile,
                    "-out",
                    &cert,
                ],
            );
        }
        Certs { tmp }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A client folder (what DOCKER_CERT_PATH names): `ca.pem` from `ca` (`ca.pem` or
    /// `other-ca.pem`), and the client certificate and key when `client`.
    pub fn client_dir(&self, name: &str, ca: &str, client: bool) -> PathBuf {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(self.path(ca), dir.join("ca.pem")).unwrap();
        if client {
            std::fs::copy(self.path("client.pem"), dir.join("cert.pem")).unwrap();
            std::fs::copy(self.path("client-key.pem"), dir.join("key.pem")).unwrap();
        }
        dir
    }
}

/// A free TCP port on 127.0.0.1 (nothing listens on it right now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private single-node swarm whose API also listens on `tcp://127.0.0.1:PORT` with
/// `--tlsverify` (server certificate and client CA from `certs`); `None` (after a note)
/// without root and dockerd.
pub fn tls_node(test: &str, certs: &Certs) -> Option<(Node, u16)> {
    let port = free_port();
    let args = format!(
        "--tlsverify --tlscacert {} --tlscert {} --tlskey {} -H tcp://127.0.0.1:{port}",
        certs.path("ca.pem").display(),
        certs.path("server.pem").display(),
        certs.path("server-key.pem").display()
    );
    Node::single_with(test, true, &args).map(|node| (node, port))
}

/// `tests/sshd.sh`.
fn sshd_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sshd.sh")
}

/// A private sshd on loopback whose sessions reach `docker_host`, and a private home for
/// the ssh client of the commands run through [`Sshd::wrap`].
pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
}

impl Sshd {
    /// `None` (after a note) without root and openssh-server.
    pub fn start(test: &str, docker_host: &str) -> Option<Sshd> {
        Sshd::start_with(test, docker_host, "")
    }

    /// [`Sshd::start`] with more lines for sshd_config.
    pub fn start_with(test: &str, docker_host: &str, config: &str) -> Option<Sshd> {
        if !super::private::possible(test) || !Path::new("/usr/sbin/sshd").exists() {
            if std::env::var(super::engine::REQUIRE_VAR).is_ok_and(|v| v == "1") {
                panic!("{test} needs openssh-server (/usr/sbin/sshd)");
            }
            eprintln!("note: skipping {test}: it needs root and openssh-server");
            return None;
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = PathBuf::from(format!("/tmp/ssh.{}.{stamp:x}", std::process::id()));
        let out = run_ok(
            Command::new(sshd_sh())
                .arg("start")
                .arg(&dir)
                .arg(docker_host)
                .env("SSHD_CONFIG_EXTRA", config),
        );
        let port = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("sshd.sh prints the port");
        Some(Sshd { dir, port })
    }

    /// The client's `~/.ssh`.
    pub fn ssh_dir(&self) -> PathBuf {
        self.dir.join("home/.ssh")
    }

    /// Adds the server's host key to the client's known_hosts.
    pub fn trust_host_key(&self) {
        run_ok(Command::new(sshd_sh()).arg("known").arg(&self.dir));
    }

    /// How many times a client has logged in so far (sshd's log).
    pub fn logins(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .matches("Accepted publickey")
            .count()
    }

    /// `ssh://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }

    /// The same command, run with the private home over root's: its ssh reads the test's
    /// `~/.ssh` (config, known_hosts, key) and nothing of the machine's.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut c = Command::new(sshd_sh());
        c.arg("run").arg(&self.dir).arg(cmd.get_program());
        c.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            c.current_dir(dir);
        }
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = Command::new(sshd_sh()).arg("stop").arg(&self.dir).output();
    }
}

/// Writes a docker context `name` with `host` (and TLS files from `tls`, if any) into the
/// docker CLI configuration folder `config`, and makes it the current one.
pub fn docker_context(config: &Path, name: &str, host: &str, tls: Option<&Path>) {
    use sha2::{Digest, Sha256};
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta = config.join("contexts/meta").join(&id);
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("meta.json"),
        serde_json::json!({
            "Name": name,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}},
        })
        .to_string(),
    )
    .unwrap();
    if let Some(tls) = tls {
        let dir = config.join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            if tls.join(f).exists() {
                std::fs::copy(tls.join(f), dir.join(f)).unwrap();
            }
        }
    }
    std::fs::write(
        config.join("config.json"),
        serde_json::json!({"currentContext": name}).to_string(),
    )
    .unwrap();
}
