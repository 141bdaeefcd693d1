//! The one error type: what went wrong, and what to do about it.
//!
//! Every error a user can cause is built with [`Error::new`] (a sentence naming the
//! file, secret or endpoint) and, where there is something to do, [`Error::hint`].
//! The binary prints it and exits 1; nothing in the library panics on bad input.

use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is: what a program (or a test) can match on,
/// where people read the message. Shown as `kind` in `--format json` errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Anything not more specific below.
    #[default]
    Failed,
    /// The command line asks for something impossible (`-e` missing or repeated, ...).
    Usage,
    /// A secret, environment, recipient or file that is not there.
    NotFound,
    /// `swarmseal.yaml` is not valid.
    Manifest,
    /// The repository is unsafe or inconsistent (links, plaintext, collisions, a file of
    /// another environment, a damaged index): nothing is done until it is fixed.
    Repository,
    /// No identity, or none that can decrypt what is needed.
    Identity,
    /// Another command holds the repository lock or the Swarm's apply lock.
    LockHeld,
    /// A saved plan no longer matches the repository or the Swarm.
    StalePlan,
    /// The Docker endpoint cannot be reached, or refused the connection (ssh, TLS).
    Unreachable,
    /// The endpoint is not the Swarm the environment is pinned to, or not a manager.
    WrongSwarm,
    /// The plan cannot be carried out safely (a removal a service prevents).
    Blocked,
    /// The Docker engine refused or failed a request.
    Docker,
    /// A service update failed or was rolled back.
    UpdateFailed,
    /// Interrupted by a signal; the summary says what was done.
    Interrupted,
    /// Standard output was closed by its reader (`swarmseal status | head -1`): the
    /// command ends quietly, like the ripgrep family.
    BrokenPipe,
}

/// An error with a message that names the thing at fault, an optional hint that says
/// what to do next, a [kind](ErrorKind), and the underlying error where there is one.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl PartialEq for Error {
    fn eq(&self, other: &Error) -> bool {
        (self.kind, &self.message, &self.hint) == (other.kind, &other.message, &other.hint)
    }
}

impl Eq for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Failed,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Standard output is gone (EPIPE); see [`ErrorKind::BrokenPipe`].
    pub fn broken_pipe() -> Self {
        Error {
            kind: ErrorKind::BrokenPipe,
            message: "standard output was closed".into(),
            hint: None,
            source: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Sets the kind (errors are [`ErrorKind::Failed`] until told otherwise).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the kind unless one more specific than [`ErrorKind::Failed`] is set already.
    pub fn or_kind(self, kind: ErrorKind) -> Self {
        if self.kind == ErrorKind::Failed {
            self.with_kind(kind)
        } else {
            self
        }
    }

    /// Keeps the underlying error (for [`std::error::Error::source`]); the message
    /// already says what it means for the user.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Adds (or replaces) the "what to do" part of the error.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the hint only if the error has none yet.
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        if self.hint.is_some() {
            self
        } else {
            self.hint(hint)
        }
    }

    /// Prefixes the message with context, e.g. the file being processed.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// An I/O error on a path, worded for a person.
    pub fn io(action: &str, path: &std::path::Path, err: std::io::Error) -> Self {
        let what = match err.kind() {
            std::io::ErrorKind::NotFound => "it does not exist".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => err.to_string(),
        };
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Failed
        };
        Error::new(format!("cannot {action} {}: {what}", path.display()))
            .with_kind(kind)
            .with_source(err)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand for `Err(Error::new(...))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::new(format!($($arg)*)))
    };
}
