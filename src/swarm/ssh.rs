//! `ssh://` endpoints: the system `ssh` client, like the docker CLI's connection helper.
//!
//! Each connection is `ssh [-l USER] [-p PORT] -- HOST docker system dial-stdio`: ssh's
//! standard input and output carry the HTTP of the Docker API. The user's own
//! `~/.ssh/config`, keys and `known_hosts` apply; host key checking is never overridden;
//! `BatchMode=yes` is added when there is no terminal to ask on, so nothing hangs on a
//! prompt; what ssh says on standard error goes into the error of a request that failed.
//!
//! A command logs in once. Unless the user's own configuration shares connections (a
//! `ControlPath`, which is then used as it is), the first ssh process is the master of a
//! shared connection (`ControlMaster`, its socket in a private folder that goes when the
//! command ends) and the few more connections a command uses (`--parallel`) are sessions
//! over it, at most [`MAX_CONNECTIONS`] at once. A session the server refuses (sshd's
//! `MaxSessions`) becomes a login of its own (ssh does that by itself), so sharing never
//! makes a command fail.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// The ssh command line (without the program): `[-l USER] [-p PORT] [-o BatchMode=yes]
    /// -- HOST docker system dial-stdio`. Nothing else: the user's configuration decides
    /// the rest, host key checking included.
    pub fn args(&self, batch: bool) -> Vec<String> {
        self.args_with(batch, &[])
    }

    /// [`SshTarget::args`] with more `-o` options (connection sharing).
    fn args_with(&self, batch: bool, options: &[String]) -> Vec<String> {
        let mut args = self.login_args();
        if batch {
            // No terminal to ask on: fail at once instead of waiting for an answer.
            args.extend(["-o".to_string(), "BatchMode=yes".to_string()]);
        }
        for option in options {
            args.extend(["-o".to_string(), option.clone()]);
        }
        args.extend(["--", &self.host, "docker", "system", "dial-stdio"].map(String::from));
        args
    }

    fn login_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(user) = &self.user {
            args.extend(["-l".to_string(), user.clone()]);
        }
        if let Some(port) = self.port {
            args.extend(["-p".to_string(), port.to_string()]);
        }
        args
    }
}

/// What a transport's ssh processes said on standard error: one buffer per process that
/// serves (or tried to log in), for the error of a request that failed.
#[derive(Clone, Default)]
pub(crate) struct SshSaid(Arc<Mutex<Vec<Arc<Mutex<String>>>>>);

impl SshSaid {
    fn keep(&self, buffer: Arc<Mutex<String>>) {
        if let Ok(mut all) = self.0.lock() {
            all.push(buffer);
        }
    }

    /// Everything said, each distinct line once.
    pub(crate) fn text(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        if let Ok(all) = self.0.lock() {
            for buffer in all.iter() {
                if let Ok(text) = buffer.lock() {
                    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                        if !lines.iter().any(|l| l == line) {
                            lines.push(line.to_string());
                        }
                    }
                }
            }
        }
        lines.join("; ")
    }
}

/// How a command's ssh connections are made: one login, shared.
#[derive(Debug)]
pub(crate) struct SshDial {
    target: SshTarget,
    /// No terminal to ask on (`BatchMode=yes`).
    batch: bool,
    /// The shared connection swarmseal sets up, unless the user's configuration shares
    /// connections already (or no private folder could be made: then every connection
    /// logs in).
    share: Option<Share>,
    /// One permit per open connection: at most [`MAX_CONNECTIONS`], whatever `--parallel`.
    open: Arc<tokio::sync::Semaphore>,
}

/// Most connections at once: below sshd's default `MaxSessions` (10), so that all of them
/// fit in one shared connection, and enough for `--parallel`'s default (4) with room to
/// spare (more requests than this wait for a connection instead).
const MAX_CONNECTIONS: usize = 8;

/// A shared ssh connection: the first connection's ssh is its master.
#[derive(Debug)]
struct Share {
    /// Private folder (0700) of the control socket; removed when the command ends.
    dir: tempfile::TempDir,
    /// The master ssh once started. It outlives its own connection (the others go through
    /// it) and ends by itself once no session is left; killed when the command ends.
    master: Mutex<Option<Child>>,
}

/// Longest wait for the master's login before a connection logs in by itself.
const SHARE_WAIT: Duration = Duration::from_secs(20);

impl SshDial {
    /// Asks `ssh -G` (the effective configuration; no connection is made) whether the
    /// user's configuration shares connections for this host; if not, swarmseal shares
    /// its own.
    pub(crate) fn new(target: SshTarget) -> SshDial {
        use std::io::IsTerminal;
        let batch = !io::stdin().is_terminal();
        let share = if user_shares_connections(&target) {
            None
        } else {
            private_socket_dir().map(|dir| Share {
                dir,
                master: Mutex::new(None),
            })
        };
        SshDial {
            target,
            batch,
            share,
            open: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Opens one connection: the master of the shared connection if it is the first, a
    /// session over it otherwise (once the master has logged in), or a login of its own.
    pub(crate) async fn connect(&self, said: &SshSaid) -> io::Result<SshStream> {
        let permit = Arc::clone(&self.open)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let mut stream = self.open_one(said).await?;
        stream.permit = Some(permit);
        Ok(stream)
    }

    async fn open_one(&self, said: &SshSaid) -> io::Result<SshStream> {
        let Some(share) = self.share.as_ref() else {
            return self.login(&self.target.args(self.batch), said);
        };
        let socket = share.dir.path().join("s");
        let path = socket.display().to_string();
        if share.master.lock().is_ok_and(|m| m.is_none()) {
            let options = [
                "ControlMaster=yes".to_string(),
                format!("ControlPath={path}"),
                "ControlPersist=no".to_string(),
            ];
            let (child, stream, buffer) = spawn(&self.target.args_with(self.batch, &options))?;
            said.keep(buffer);
            if let Ok(mut master) = share.master.lock() {
                if master.is_none() {
                    *master = Some(child);
                    return Ok(stream);
                }
            }
            // Another connection became the master meanwhile: this one is a login of
            // its own.
            return Ok(stream.owning(child));
        }
        if !master_logged_in(share, &socket).await {
            return self.login(&self.target.args(self.batch), said);
        }
        // A session over the master. ssh logs in by itself if the master is gone or the
        // server refuses the session (sshd's `MaxSessions`).
        let options = [
            "ControlMaster=no".to_string(),
            format!("ControlPath={path}"),
        ];
        self.login(&self.target.args_with(self.batch, &options), said)
    }

    fn login(&self, args: &[String], said: &SshSaid) -> io::Result<SshStream> {
        let (child, stream, buffer) = spawn(args)?;
        said.keep(buffer);
        Ok(stream.owning(child))
    }
}

/// Waits until the master has logged in (its socket appears); false if it gave up first.
async fn master_logged_in(share: &Share, socket: &std::path::Path) -> bool {
    let deadline = tokio::time::Instant::now() + SHARE_WAIT;
    loop {
        if socket.exists() {
            return true;
        }
        let running = share.master.lock().is_ok_and(|mut m| {
            m.as_mut()
                .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
        });
        if !running || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `ssh -G` names a `ControlPath` for the target: then the user's own connection
/// sharing is used as it is.
fn user_shares_connections(target: &SshTarget) -> bool {
    let out = std::process::Command::new("ssh")
        .args(target.login_args())
        .args(["-G", "--", &target.host])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else { return false };
    String::from_utf8_lossy(&out.stdout).lines().any(|line| {
        line.strip_prefix("controlpath ")
            .is_some_and(|path| path.trim() != "none")
    })
}

/// A fresh private folder (0700) for the control socket, on a short path (a unix
/// socket's path is limited to about 100 bytes).
fn private_socket_dir() -> Option<tempfile::TempDir> {
    let tmp = std::env::temp_dir();
    let base = if tmp.as_os_str().len() <= 60 {
        tmp
    } else {
        PathBuf::from("/tmp")
    };
    tempfile::Builder::new()
        .prefix("swarmseal-ssh-")
        .tempdir_in(base)
        .ok()
}

/// Longest ssh error text kept per process.
const SAID_MAX: usize = 4096;

/// Starts `ssh ARGS`: the process, its connection (not owning the process yet, see
/// [`SshStream::owning`]) and the buffer that collects its standard error.
fn spawn(args: &[String]) -> io::Result<(Child, SshStream, Arc<Mutex<String>>)> {
    let mut child = tokio::process::Command::new("ssh")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                if e.kind() == io::ErrorKind::NotFound {
                    "the ssh client is not installed (ssh:// endpoints use the system `ssh`)"
                        .to_string()
                } else {
                    format!("cannot run ssh: {e}")
                },
            )
        })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("ssh started without its pipes"));
    };
    let buffer = Arc::new(Mutex::new(String::new()));
    let collect = Arc::clone(&buffer);
    tokio::spawn(async move {
        let mut chunk = [0u8; 1024];
        while let Ok(n @ 1..) = stderr.read(&mut chunk).await {
            if let Ok(mut text) = collect.lock() {
                if text.len() < SAID_MAX {
                    text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
        }
    });
    let stream = SshStream {
        process: None,
        permit: None,
        stdin,
        stdout,
    };
    Ok((child, stream, buffer))
}

/// One connection: ssh's standard input and output. When dropped, its pipes close and
/// ssh ends by itself (a master first serves its other sessions); one still running a few
/// seconds later, or when the command ends, is killed.
pub(crate) struct SshStream {
    process: Option<Child>,
    /// Its place among the command's connections.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

/// How long a closed connection's ssh may take to end by itself.
const END_GRACE: Duration = Duration::from_secs(5);

impl SshStream {
    /// The stream with its own ssh process.
    fn owning(mut self, child: Child) -> SshStream {
        self.process = Some(child);
        self
    }
}

impl Drop for SshStream {
    fn drop(&mut self) {
        let Some(mut child) = self.process.take() else {
            return;
        };
        // The pipes close right after this; ssh then ends by itself.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(END_GRACE, child.wait()).await;
                // Dropped here: killed if still running.
            });
        }
    }
}

impl AsyncRead for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stdin).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_never_overrides_host_key_checking() {
        let t = SshTarget {
            user: Some("deploy".into()),
            host: "manager".into(),
            port: Some(2222),
        };
        let args = t.args(true);
        assert_eq!(
            args,
            [
                "-l",
                "deploy",
                "-p",
                "2222",
                "-o",
                "BatchMode=yes",
                "--",
                "manager",
                "docker",
                "system",
                "dial-stdio"
            ]
        );
        assert!(!args.iter().any(|a| a.contains("StrictHostKeyChecking")));
        let t = SshTarget {
            user: None,
            host: "manager".into(),
            port: None,
        };
        assert_eq!(
            t.args(false),
            ["--", "manager", "docker", "system", "dial-stdio"]
        );
        let shared = t.args_with(false, &["ControlMaster=no".into()]);
        assert_eq!(
            shared,
            [
                "-o",
                "ControlMaster=no",
                "--",
                "manager",
                "docker",
                "system",
                "dial-stdio"
            ]
        );
    }

    #[test]
    fn said_lines_are_kept_once() {
        let said = SshSaid::default();
        for text in [
            "Permission denied (publickey).\n",
            "Permission denied (publickey).\r\n",
        ] {
            said.keep(Arc::new(Mutex::new(text.to_string())));
        }
        said.keep(Arc::new(Mutex::new("kex failed\n".to_string())));
        assert_eq!(said.text(), "Permission denied (publickey).; kex failed");
    }
}
