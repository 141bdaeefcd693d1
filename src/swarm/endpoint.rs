//! Which Docker engine to talk to, and how (`docs/design.md#transports`).
//!
//! First found wins: `--host`, the environment's `docker_host`, `DOCKER_HOST` (with
//! `DOCKER_CERT_PATH`), the current docker context (`DOCKER_CONTEXT`, else `currentContext`
//! in the docker CLI's `config.json`), else `unix:///var/run/docker.sock`.
//!
//! Schemes: `unix://PATH`; `tcp://HOST[:PORT]` (also `https://`), always TLS with the server
//! verified against the CA given (only it); `http://HOST[:PORT]`, plain HTTP because the user
//! wrote it; `ssh://[USER@]HOST[:PORT]` through the system `ssh` client (the remote user runs
//! `docker system dial-stdio`). [`Address::parse`] is the one parser of all of them.
//! Unlike the docker CLI, `tcp://` never silently falls back to unencrypted HTTP.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use super::ssh::SshTarget;
use crate::error::{Error, Result};

/// The local engine's socket, used when nothing else names an endpoint.
pub const DEFAULT_SOCKET_URL: &str = "unix:///var/run/docker.sock";

/// Source label of `--host`.
pub const SOURCE_CLI: &str = "--host";
/// Source label of the environment's `docker_host` in the manifest.
pub const SOURCE_MANIFEST: &str = "docker_host in swarmseal.yaml";
/// Source label of the `DOCKER_HOST` variable.
pub const SOURCE_DOCKER_HOST: &str = "DOCKER_HOST";
/// Source label of the fallback.
pub const SOURCE_DEFAULT: &str = "the default local socket";

/// A resolved Docker endpoint: where (`url`), why (`source`), and the TLS material for
/// `tcp://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Normalised URL, e.g. `unix:///var/run/docker.sock`, `tcp://manager:2376`,
    /// `http://127.0.0.1:2375`, `ssh://deploy@manager:2222`.
    pub url: String,
    /// Where the URL came from: `--host`, `DOCKER_HOST`, `docker context prod`, ...
    pub source: String,
    tls: Option<TlsFiles>,
    address: Address,
}

/// Where the certificates of a `tcp://` endpoint live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The folder they were found in (for messages).
    pub dir: PathBuf,
    /// CA that signed the engine's certificate (`ca.pem`), required.
    pub ca: PathBuf,
    /// Client certificate and key (`cert.pem`, `key.pem`), needed by engines started with
    /// `--tlsverify`; both or neither.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The transport an endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Unix,
    Tls,
    Http,
    Ssh,
}

impl Endpoint {
    /// `URL (from SOURCE)`, the way errors name an endpoint.
    pub fn describe(&self) -> String {
        format!("{} (from {})", self.url, self.source)
    }

    /// True when the connection is TLS (`tcp://`/`https://`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub(crate) fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    pub(crate) fn scheme(&self) -> Scheme {
        match &self.address {
            Address::Unix(_) => Scheme::Unix,
            Address::Tls(_) => Scheme::Tls,
            Address::Http(_) => Scheme::Http,
            Address::Ssh(_) => Scheme::Ssh,
        }
    }

    /// What the URL says (host, port, user, path).
    pub fn address(&self) -> &Address {
        &self.address
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Resolves the endpoint from the command line, the manifest and the process environment
/// (`DOCKER_HOST`, `DOCKER_CERT_PATH`, `DOCKER_TLS_VERIFY`, `DOCKER_CONTEXT`, `DOCKER_CONFIG`,
/// `HOME`).
pub fn resolve_endpoint(cli_host: Option<&str>, env_docker_host: Option<&str>) -> Result<Endpoint> {
    resolve_endpoint_with(cli_host, env_docker_host, &|name| std::env::var(name).ok())
}

/// [`resolve_endpoint`] reading variables through `var` instead of the process environment
/// (for tests; empty values count as unset).
pub fn resolve_endpoint_with(
    cli_host: Option<&str>,
    env_docker_host: Option<&str>,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Endpoint> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let home = var("HOME").map(PathBuf::from);
    let config_dir = var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".docker")));
    let cert_dir = var("DOCKER_CERT_PATH")
        .map(PathBuf::from)
        .or_else(|| config_dir.clone());
    let env_certs = CertSource::Env {
        dir: cert_dir,
        from_cert_path: var("DOCKER_CERT_PATH").is_some(),
    };

    if let Some(host) = cli_host.filter(|h| !h.trim().is_empty()) {
        return parse_url(host.trim(), SOURCE_CLI, &env_certs);
    }
    if let Some(host) = env_docker_host.filter(|h| !h.trim().is_empty()) {
        return parse_url(host.trim(), SOURCE_MANIFEST, &env_certs);
    }
    if let Some(host) = var("DOCKER_HOST") {
        let host = host.trim();
        if host.starts_with("http://") && var("DOCKER_TLS_VERIFY").is_some() {
            return Err(Error::new(format!(
                "DOCKER_HOST={host} asks for plain HTTP, but DOCKER_TLS_VERIFY is set"
            ))
            .hint(
                "use DOCKER_HOST=tcp://HOST:PORT for a TLS connection, or unset DOCKER_TLS_VERIFY \
                 to connect without encryption",
            ));
        }
        return parse_url(host, SOURCE_DOCKER_HOST, &env_certs);
    }
    if let Some(endpoint) = current_context(&var, config_dir.as_deref())? {
        return Ok(endpoint);
    }
    parse_url(DEFAULT_SOCKET_URL, SOURCE_DEFAULT, &env_certs)
}

/// Where a `tcp://` endpoint's certificates come from.
enum CertSource {
    /// `DOCKER_CERT_PATH`, else the docker config folder.
    Env {
        dir: Option<PathBuf>,
        from_cert_path: bool,
    },
    /// A docker context's TLS folder.
    Context { name: String, dir: PathBuf },
}

/// The selected docker context and what selected it: `DOCKER_CONTEXT`, else
/// `currentContext` in the docker CLI's `config.json`.
fn selected_context(
    var: &dyn Fn(&str) -> Option<String>,
    config_dir: Option<&Path>,
) -> Result<Option<(String, String)>> {
    Ok(Some(match var("DOCKER_CONTEXT") {
        Some(name) => (name.trim().to_owned(), "DOCKER_CONTEXT".to_owned()),
        None => {
            let Some(dir) = config_dir else {
                return Ok(None);
            };
            let config = dir.join("config.json");
            let text = match std::fs::read_to_string(&config) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(Error::io("read the docker CLI configuration", &config, e)
                        .hint("fix or remove it, or choose the engine with --host or DOCKER_HOST"))
                }
            };
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::new(format!(
                    "cannot read the docker CLI configuration {}: it is not valid JSON ({e})",
                    config.display()
                ))
                .hint("fix or remove it, or choose the engine with --host or DOCKER_HOST")
            })?;
            match json.get("currentContext").and_then(|c| c.as_str()) {
                Some(name) if !name.trim().is_empty() => (
                    name.trim().to_owned(),
                    format!("currentContext in {}", config.display()),
                ),
                _ => return Ok(None),
            }
        }
    }))
}

/// A context's `meta.json`, parsed.
fn read_context_meta(name: &str, chosen_by: &str, meta_path: &Path) -> Result<serde_json::Value> {
    let text =
        match std::fs::read_to_string(meta_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::new(format!(
                "docker context {name} (from {chosen_by}) does not exist: there is no {}",
                meta_path.display()
            ))
            .hint(
                "list the contexts with `docker context ls`, select one with `docker context use \
                 NAME`, or choose the engine with --host",
            )),
            Err(e) => return Err(Error::io("read docker context", meta_path, e)),
        };
    serde_json::from_str(&text).map_err(|e| {
        Error::new(format!(
            "docker context {name}: {} is not valid JSON ({e})",
            meta_path.display()
        ))
        .hint("recreate the context with `docker context create`, or use --host")
    })
}

/// The endpoint of the current docker context, if one other than `default` is selected.
fn current_context(
    var: &dyn Fn(&str) -> Option<String>,
    config_dir: Option<&Path>,
) -> Result<Option<Endpoint>> {
    let Some((name, chosen_by)) = selected_context(var, config_dir)? else {
        return Ok(None);
    };
    let source = format!("docker context {name}");
    if name == "default" {
        return parse_url(
            DEFAULT_SOCKET_URL,
            &source,
            &CertSource::Env {
                dir: None,
                from_cert_path: false,
            },
        )
        .map(Some);
    }
    let Some(dir) = config_dir else {
        return Err(Error::new(format!(
            "docker context {name} (from {chosen_by}) cannot be looked up: neither DOCKER_CONFIG \
             nor HOME is set"
        ))
        .hint("set DOCKER_CONFIG to the docker CLI's configuration folder, or use --host"));
    };
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta_path = dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let meta = read_context_meta(&name, &chosen_by, &meta_path)?;
    let docker = meta.pointer("/Endpoints/docker");
    let host = docker
        .and_then(|d| d.get("Host"))
        .and_then(|h| h.as_str())
        .filter(|h| !h.trim().is_empty());
    let Some(host) = host else {
        return Err(Error::new(format!(
            "docker context {name} has no Docker endpoint (Endpoints.docker.Host in {})",
            meta_path.display()
        ))
        .hint("recreate the context with `docker context create NAME --docker host=URL`, or use --host"));
    };
    if docker
        .and_then(|d| d.get("SkipTLSVerify"))
        .and_then(|s| s.as_bool())
        == Some(true)
        && is_tls_url(host)
    {
        return Err(Error::new(format!(
            "docker context {name} ({host}) is set to skip TLS verification; swarmseal always \
             verifies the engine's certificate"
        ))
        .hint(
            "give the context the engine's CA (`docker context update NAME --docker \
             host=...,ca=CA.pem,cert=CERT.pem,key=KEY.pem`), or use --host http://HOST:PORT to \
             connect without encryption",
        ));
    }
    let tls_dir = dir.join("contexts").join("tls").join(&id).join("docker");
    parse_url(
        host.trim(),
        &source,
        &CertSource::Context {
            name: name.clone(),
            dir: tls_dir,
        },
    )
    .map(Some)
}

fn is_tls_url(url: &str) -> bool {
    url.starts_with("tcp://") || url.starts_with("https://")
}

const URL_FORMS: &str = "use unix:///PATH/docker.sock, tcp://HOST:2376 (TLS), http://HOST:2375 \
                         (unencrypted) or ssh://USER@HOST[:PORT]";

/// What an endpoint URL says, before any file is looked at: the one parser behind
/// `--host`, `DOCKER_HOST`, docker contexts and the manifest's `docker_host`, so that they
/// all accept and refuse the same URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix://PATH`.
    Unix(String),
    /// `tcp://HOST[:PORT]` or `https://...`: TLS, `HOST:PORT` (default port 2376).
    Tls(String),
    /// `http://HOST[:PORT]`: plain HTTP because the user wrote it (default port 2375).
    Http(String),
    /// `ssh://[USER@]HOST[:PORT]`.
    Ssh(SshTarget),
}

impl Address {
    /// Parses an endpoint URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> std::result::Result<Address, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err("is not a Docker endpoint URL".into());
        };
        match scheme.to_ascii_lowercase().as_str() {
            "unix" => {
                if rest.is_empty() {
                    return Err("names no socket path".into());
                }
                Ok(Address::Unix(rest.to_string()))
            }
            "tcp" | "https" => Ok(Address::Tls(host_port(rest, 2376)?)),
            "http" => Ok(Address::Http(host_port(rest, 2375)?)),
            "ssh" => ssh_target(rest).map(Address::Ssh),
            "npipe" => {
                Err("is a Windows named pipe (npipe://), which this platform does not have".into())
            }
            other => Err(format!("has an unsupported scheme {other}://")),
        }
    }

    /// The normalised URL.
    pub fn url(&self) -> String {
        match self {
            Address::Unix(path) => format!("unix://{path}"),
            Address::Tls(hostport) => format!("tcp://{hostport}"),
            Address::Http(hostport) => format!("http://{hostport}"),
            Address::Ssh(t) => {
                let mut url = String::from("ssh://");
                if let Some(user) = &t.user {
                    url.push_str(user);
                    url.push('@');
                }
                url.push_str(&t.host);
                if let Some(port) = t.port {
                    url.push_str(&format!(":{port}"));
                }
                url
            }
        }
    }
}

/// Checks an endpoint URL (for the manifest's `docker_host`): `Err` says what is wrong.
pub fn check_url(url: &str) -> std::result::Result<(), String> {
    Address::parse(url).map(|_| ())
}

/// `[USER@]HOST[:PORT]` of an `ssh://` URL. The user and host reach ssh's command line: one
/// starting with '-' would be read as an option (`ssh://-oProxyCommand=...` runs a
/// command), so they are refused.
fn ssh_target(rest: &str) -> std::result::Result<SshTarget, String> {
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err("must be ssh://[USER@]HOST[:PORT], without a path".into());
    }
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if hostport.is_empty() {
        return Err("names no host".into());
    }
    let (host, port) = if let Some(after) = hostport.strip_prefix('[') {
        match after.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err("has a malformed IPv6 address".into()),
            },
            None => return Err("has a malformed IPv6 address".into()),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    for (what, part) in [("user", user.unwrap_or("x")), ("host", host)] {
        if part.is_empty()
            || part.starts_with('-')
            || part.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "has an invalid ssh {what}: it must not be empty, start with '-' or contain spaces"
            ));
        }
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("has an invalid port {p:?}"))?,
        ),
    };
    Ok(SshTarget {
        user: user.map(str::to_string),
        host: host.to_string(),
        port,
    })
}

/// Checks and normalises an endpoint URL, and finds a TLS endpoint's certificates.
fn parse_url(url: &str, source: &str, certs: &CertSource) -> Result<Endpoint> {
    let address = Address::parse(url)
        .map_err(|what| Error::new(format!("{url} (from {source}) {what}")).hint(URL_FORMS))?;
    let tls = match &address {
        Address::Tls(hostport) => Some(tls_files(hostport, url, source, certs)?),
        _ => None,
    };
    Ok(Endpoint {
        url: address.url(),
        source: source.to_owned(),
        tls,
        address,
    })
}

/// `HOST[:PORT][/]` → `HOST:PORT`.
fn host_port(rest: &str, default_port: u16) -> std::result::Result<String, String> {
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err("names no host".into());
    }
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err("must be HOST:PORT, without a user or path".into());
    }
    // IPv6 literals are bracketed: [::1]:2376.
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        match after.split_once(']') {
            Some((_, "")) => (rest, None),
            Some((_, p)) => match p.strip_prefix(':') {
                Some(p) => (&rest[..rest.len() - p.len() - 1], Some(p)),
                None => return Err("has a malformed IPv6 address".into()),
            },
            None => return Err("has a malformed IPv6 address".into()),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err("names no host".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("has an invalid port {p:?}"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// Finds the certificates for a TLS endpoint, or explains what is missing.
fn tls_files(hostport: &str, url: &str, source: &str, certs: &CertSource) -> Result<TlsFiles> {
    let plain = format!("http://{hostport}");
    let (dir, where_) = match certs {
        CertSource::Env {
            dir,
            from_cert_path,
        } => {
            let Some(dir) = dir else {
                return Err(Error::new(format!(
                    "{url} (from {source}) is a TLS endpoint, but there is no folder to find its \
                     certificates in (neither DOCKER_CERT_PATH nor HOME is set)"
                ))
                .hint(format!(
                    "set DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem, or \
                     write {plain} explicitly to use an unencrypted connection"
                )));
            };
            let where_ = if *from_cert_path {
                format!("DOCKER_CERT_PATH={}", dir.display())
            } else {
                format!("{} (DOCKER_CERT_PATH is not set)", dir.display())
            };
            (dir.clone(), where_)
        }
        CertSource::Context { name, dir } => (
            dir.clone(),
            format!("{} (docker context {name})", dir.display()),
        ),
    };
    let ca = dir.join("ca.pem");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let hint = match certs {
        CertSource::Env { .. } => format!(
            "swarmseal always uses TLS with tcp:// and verifies the engine against ca.pem; set \
             DOCKER_CERT_PATH to the folder with ca.pem, cert.pem and key.pem, or write {plain} \
             explicitly (e.g. --host {plain}) to use an unencrypted connection"
        ),
        CertSource::Context { name, .. } => format!(
            "swarmseal always uses TLS with tcp://; give the context its certificates with \
             `docker context update {name} --docker host={url},ca=CA.pem,cert=CERT.pem,key=KEY.pem`, \
             or use --host {plain} to connect without encryption"
        ),
    };
    if !ca.is_file() {
        return Err(Error::new(format!(
            "{url} (from {source}) is a TLS endpoint, but there is no CA certificate ca.pem in {where_}"
        ))
        .hint(hint));
    }
    match (cert.is_file(), key.is_file()) {
        (true, true) | (false, false) => {}
        (has_cert, _) => {
            let (present, missing) = if has_cert {
                ("cert.pem", "key.pem")
            } else {
                ("key.pem", "cert.pem")
            };
            return Err(Error::new(format!(
                "{url} (from {source}): {where_} has {present} but no {missing}; a client \
                 certificate needs both"
            ))
            .hint(hint));
        }
    }
    Ok(TlsFiles { dir, ca, cert, key })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resolve(cli: Option<&str>, env: Option<&str>, pairs: &[(&str, &str)]) -> Result<Endpoint> {
        resolve_endpoint_with(cli, env, &vars(pairs))
    }

    fn write_certs(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
    }

    fn context(config: &Path, name: &str, host: &str, skip_verify: bool) -> PathBuf {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = config.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        let json = serde_json::json!({
            "Name": name,
            "Metadata": {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_verify}},
        });
        std::fs::write(meta.join("meta.json"), json.to_string()).unwrap();
        config.join("contexts/tls").join(&id).join("docker")
    }

    #[test]
    fn precedence_cli_manifest_env_context_default() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cfg");
        context(&config, "prod", "unix:///ctx.sock", false);
        let config_s = config.to_str().unwrap();
        let all = [
            ("DOCKER_HOST", "unix:///env.sock"),
            ("DOCKER_CONTEXT", "prod"),
            ("DOCKER_CONFIG", config_s),
        ];
        let e = resolve(Some("unix:///cli.sock"), Some("unix:///m.sock"), &all).unwrap();
        assert_eq!(
            (e.url.as_str(), e.source.as_str()),
            ("unix:///cli.sock", "--host")
        );
        let e = resolve(None, Some("unix:///m.sock"), &all).unwrap();
        assert_eq!(e.url, "unix:///m.sock");
        assert_eq!(e.source, SOURCE_MANIFEST);
        let e = resolve(None, None, &all).unwrap();
        assert_eq!(
            (e.url.as_str(), e.source.as_str()),
            ("unix:///env.sock", "DOCKER_HOST")
        );
        let e = resolve(None, None, &all[1..]).unwrap();
        assert_eq!(
            (e.url.as_str(), e.source.as_str()),
            ("unix:///ctx.sock", "docker context prod")
        );
        assert_eq!(e.describe(), "unix:///ctx.sock (from docker context prod)");
        let e = resolve(None, None, &[("DOCKER_CONFIG", config_s)]).unwrap();
        assert_eq!(e.url, DEFAULT_SOCKET_URL);
        assert_eq!(e.source, SOURCE_DEFAULT);
        // Empty values count as unset.
        let e = resolve(Some(" "), Some(""), &[("DOCKER_HOST", "")]).unwrap();
        assert_eq!(e.url, DEFAULT_SOCKET_URL);
    }

    #[test]
    fn current_context_from_config_json_with_tls() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path();
        let config = home.join(".docker");
        let tls = context(&config, "staging", "tcp://manager.example:2376", false);
        write_certs(&tls);
        std::fs::write(
            config.join("config.json"),
            r#"{"currentContext": "staging"}"#,
        )
        .unwrap();
        let e = resolve(None, None, &[("HOME", home.to_str().unwrap())]).unwrap();
        assert_eq!(e.url, "tcp://manager.example:2376");
        assert_eq!(e.source, "docker context staging");
        assert!(e.is_tls());
        assert_eq!(e.tls_files().unwrap().ca, tls.join("ca.pem"));

        // "default" is the local socket.
        std::fs::write(
            config.join("config.json"),
            r#"{"currentContext": "default"}"#,
        )
        .unwrap();
        let e = resolve(None, None, &[("HOME", home.to_str().unwrap())]).unwrap();
        assert_eq!(e.url, DEFAULT_SOCKET_URL);
        assert_eq!(e.source, "docker context default");
    }

    #[test]
    fn context_errors_name_the_context() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path();
        let config_s = config.to_str().unwrap();
        let err = resolve(
            None,
            None,
            &[("DOCKER_CONFIG", config_s), ("DOCKER_CONTEXT", "nope")],
        )
        .unwrap_err();
        assert!(err.message().contains("docker context nope"), "{err}");
        assert!(
            err.hint_text().unwrap().contains("docker context ls"),
            "{err}"
        );

        context(config, "bare", "tcp://10.0.0.1:2376", false);
        let err = resolve(
            None,
            None,
            &[("DOCKER_CONFIG", config_s), ("DOCKER_CONTEXT", "bare")],
        )
        .unwrap_err();
        assert!(err.message().contains("docker context bare"), "{err}");
        assert!(err.message().contains("ca.pem"), "{err}");

        let tls = context(config, "skip", "tcp://10.0.0.1:2376", true);
        write_certs(&tls);
        let err = resolve(
            None,
            None,
            &[("DOCKER_CONFIG", config_s), ("DOCKER_CONTEXT", "skip")],
        )
        .unwrap_err();
        assert!(err.message().contains("skip TLS verification"), "{err}");

        std::fs::write(config.join("config.json"), "{not json").unwrap();
        let err = resolve(None, None, &[("DOCKER_CONFIG", config_s)]).unwrap_err();
        assert!(err.message().contains("config.json"), "{err}");
    }

    #[test]
    fn tcp_always_needs_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let certs = tmp.path().join("certs");
        let err = resolve(
            Some("tcp://127.0.0.1:2376"),
            None,
            &[("DOCKER_CERT_PATH", certs.to_str().unwrap())],
        )
        .unwrap_err();
        assert!(
            err.message().contains("tcp://127.0.0.1:2376 (from --host)"),
            "{err}"
        );
        assert!(err.message().contains("ca.pem"), "{err}");
        let hint = err.hint_text().unwrap();
        assert!(hint.contains("DOCKER_CERT_PATH"), "{hint}");
        assert!(hint.contains("http://127.0.0.1:2376"), "{hint}");

        write_certs(&certs);
        let e = resolve(
            None,
            None,
            &[
                ("DOCKER_HOST", "tcp://manager"),
                ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(e.url, "tcp://manager:2376");
        assert!(e.is_tls());
        assert_eq!(e.tls_files().unwrap().key, certs.join("key.pem"));

        // Without DOCKER_CERT_PATH: the docker config folder.
        let home = tmp.path().join("home");
        write_certs(&home.join(".docker"));
        let e = resolve(
            Some("https://[::1]:9999/"),
            None,
            &[("HOME", home.to_str().unwrap())],
        )
        .unwrap();
        assert_eq!(e.url, "tcp://[::1]:9999");

        // A key without a certificate is a mistake worth naming.
        std::fs::remove_file(certs.join("cert.pem")).unwrap();
        let err = resolve(
            Some("tcp://m:1"),
            None,
            &[("DOCKER_CERT_PATH", certs.to_str().unwrap())],
        )
        .unwrap_err();
        assert!(err.message().contains("no cert.pem"), "{err}");
    }

    #[test]
    fn schemes() {
        let e = resolve(Some("http://127.0.0.1"), None, &[]).unwrap();
        assert_eq!(e.url, "http://127.0.0.1:2375");
        assert!(!e.is_tls());
        assert_eq!(e.scheme(), Scheme::Http);
        let e = resolve(Some("ssh://deploy@manager"), None, &[]).unwrap();
        assert_eq!(e.url, "ssh://deploy@manager");
        assert_eq!(e.scheme(), Scheme::Ssh);
        let e = resolve(Some("unix:///run/docker.sock"), None, &[]).unwrap();
        assert_eq!(e.scheme(), Scheme::Unix);

        for evil in [
            "ssh://-oProxyCommand=touch%20x",
            "ssh://-oProxyCommand=touch x@host",
            "ssh://deploy@-oProxyCommand=x",
            "ssh://@host",
        ] {
            let err = resolve(Some(evil), None, &[]).unwrap_err();
            assert!(err.message().contains("invalid ssh"), "{evil}: {err}");
        }
        // Ports, as the docker CLI accepts them; IPv6 in brackets.
        let e = resolve(Some("ssh://deploy@manager:2222"), None, &[]).unwrap();
        assert_eq!(e.url, "ssh://deploy@manager:2222");
        assert_eq!(
            e.address(),
            &Address::Ssh(SshTarget {
                user: Some("deploy".into()),
                host: "manager".into(),
                port: Some(2222)
            })
        );
        let e = resolve(Some("ssh://[::1]:22"), None, &[]).unwrap();
        assert!(matches!(e.address(), Address::Ssh(t) if t.host == "::1" && t.port == Some(22)));
        assert!(resolve(Some("ssh://host:0"), None, &[]).is_err());
        assert!(resolve(Some("ssh://host:x"), None, &[]).is_err());
        let err = resolve(Some("npipe:////./pipe/docker_engine"), None, &[]).unwrap_err();
        assert!(err.message().contains("named pipe"), "{err}");
        let err = resolve(None, None, &[("DOCKER_HOST", "fd://")]).unwrap_err();
        assert!(err.message().contains("fd:// (from DOCKER_HOST)"), "{err}");
        assert!(err.message().contains("unsupported scheme"), "{err}");
        let err = resolve(Some("manager:2376"), None, &[]).unwrap_err();
        assert!(err.message().contains("not a Docker endpoint URL"), "{err}");
        let err = resolve(Some("http://h:99999"), None, &[]).unwrap_err();
        assert!(err.message().contains("invalid port"), "{err}");
        let err = resolve(
            None,
            None,
            &[("DOCKER_HOST", "http://h:1"), ("DOCKER_TLS_VERIFY", "1")],
        )
        .unwrap_err();
        assert!(err.message().contains("DOCKER_TLS_VERIFY"), "{err}");
    }
}
