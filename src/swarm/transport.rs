//! How swarmseal reaches an engine: one HTTP/1.1 client (hyper, with keep-alive pooling)
//! over connections made here, handed to bollard as its custom transport. Making the
//! connections ourselves is what keeps them as safe as the docker CLI's:
//!
//! - **TLS** trusts exactly the CA it is given (`ca.pem`), never the system's roots,
//!   presents the client certificate, and checks the engine's name or IP address.
//! - **ssh** runs the system `ssh` client like the docker CLI does, one login per command
//!   (see [`super::ssh`]).
//! - **unix** and plain **http** are what they say.
//!
//! The same client serves the raw requests bollard's models cannot express (see
//! [`super::services`]).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::BollardRequest;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::ssh::{SshDial, SshSaid, SshStream};
use crate::error::{Error, Result};

/// The body type of bollard's requests (bollard does not name it publicly).
pub(crate) trait HasBody {
    type Body;
}
impl<B> HasBody for http::Request<B> {
    type Body = B;
}
pub(crate) type Body = <BollardRequest as HasBody>::Body;

/// Where and how to connect.
#[derive(Debug)]
pub(crate) enum Dial {
    Unix(PathBuf),
    /// Plain HTTP to `host:port`.
    Tcp(String),
    Tls {
        /// `host:port`.
        addr: String,
        server_name: rustls_pki_types::ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    },
    Ssh(Box<SshDial>),
}

/// The HTTP client every request of a connected [`super::Swarm`] goes through.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<Connector, Body>,
    /// What ssh said on standard error, for the errors of requests that failed.
    ssh_said: SshSaid,
}

impl Transport {
    pub(crate) fn new(dial: Dial, pool: usize) -> Transport {
        let ssh_said = SshSaid::default();
        let connector = Connector {
            dial: Arc::new(dial),
            ssh_said: ssh_said.clone(),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(pool.max(1))
            .build(connector);
        Transport { client, ssh_said }
    }

    /// Sends one request. A failure carries ssh's own words when ssh is the transport.
    pub(crate) async fn request(
        &self,
        req: BollardRequest,
    ) -> std::result::Result<http::Response<hyper::body::Incoming>, bollard::errors::Error> {
        match self.client.request(req).await {
            Ok(response) => Ok(response),
            Err(e) => {
                // ssh may still be writing why it gave up.
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
                let said = self.ssh_said.text();
                if said.is_empty() {
                    Err(bollard::errors::Error::from(e))
                } else {
                    Err(bollard::errors::Error::from(io::Error::other(format!(
                        "ssh: {said}"
                    ))))
                }
            }
        }
    }

    /// A bollard client whose every request goes through this transport.
    pub(crate) fn docker(
        &self,
        timeout_secs: u64,
    ) -> std::result::Result<bollard::Docker, bollard::errors::Error> {
        let transport = self.clone();
        bollard::Docker::connect_with_custom_transport(
            move |req: BollardRequest| {
                let transport = transport.clone();
                async move { transport.request(req).await }
            },
            Some("http://docker"),
            timeout_secs,
            bollard::API_DEFAULT_VERSION,
        )
    }
}

/// Makes one connection per call (the client pools and reuses them).
#[derive(Clone)]
pub(crate) struct Connector {
    dial: Arc<Dial>,
    ssh_said: SshSaid,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<TokioIo<Stream>>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let dial = Arc::clone(&self.dial);
        let said = self.ssh_said.clone();
        Box::pin(async move {
            let stream = match &*dial {
                Dial::Unix(path) => Stream::Unix(UnixStream::connect(path).await.map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        io::Error::new(
                            e.kind(),
                            format!("the socket {} does not exist", path.display()),
                        )
                    } else {
                        e
                    }
                })?),
                Dial::Tcp(addr) => {
                    let tcp = TcpStream::connect(addr.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    Stream::Tcp(tcp)
                }
                Dial::Tls {
                    addr,
                    server_name,
                    config,
                } => {
                    let tcp = TcpStream::connect(addr.as_str()).await?;
                    tcp.set_nodelay(true)?;
                    let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                        .connect(server_name.clone(), tcp)
                        .await?;
                    Stream::Tls(Box::new(tls))
                }
                Dial::Ssh(ssh) => Stream::Ssh(Box::new(ssh.connect(&said).await?)),
            };
            Ok(TokioIo::new(stream))
        })
    }
}

/// One connection to the engine.
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Ssh(Box<SshStream>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Ssh(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS configuration of an engine: trust exactly the CA in `ca` (never the system's
/// roots), and present the client certificate and key when there are. Errors name the file.
pub(crate) fn tls_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |path: &Path, why: String| {
        Error::new(format!("{}: {why}", path.display()))
            .hint("use the PEM files of the engine's CA and of a client certificate it signed (ca.pem, cert.pem, key.pem)")
    };
    let read_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(path, format!("cannot read certificates: {e}")))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(path, format!("not a PEM certificate file: {e}")))?;
        if certs.is_empty() {
            return Err(bad(path, "holds no certificate".into()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca_cert in read_certs(ca)? {
        roots
            .add(ca_cert)
            .map_err(|e| bad(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(key, format!("not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| bad(key, format!("does not go with {}: {e}", cert.display())))?
        }
    };
    Ok(Arc::new(config))
}

/// The name the engine's certificate must carry: its IP address, or its host name.
pub(crate) fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(rustls_pki_types::ServerName::IpAddress(ip.into()));
    }
    rustls_pki_types::ServerName::try_from(bare.to_string()).map_err(|_| {
        Error::new(format!("{host:?} is not a valid host name for TLS"))
            .hint("use the host name or IP address the engine's certificate was issued for")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_ips_or_host_names() {
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            rustls_pki_types::ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            rustls_pki_types::ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("manager.example").unwrap(),
            rustls_pki_types::ServerName::DnsName(_)
        ));
    }
}
