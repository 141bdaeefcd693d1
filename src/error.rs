//! The one error type: what went wrong, and what to do about it.
//!
//! Every error a user can cause is built with [`Error::new`] (a sentence naming the
//! file, secret or endpoint) and, where there is something to do, [`Error::hint`].
//! The binary prints it and exits 1; nothing in the library panics on bad input.

use std::fmt;

/// What kind of failure an [`Error`] is, where the binary treats kinds differently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything a user can cause or fix: printed, exit 1.
    #[default]
    Failed,
    /// Standard output was closed by its reader (`swarmseal status | head -1`): the
    /// command ends quietly, like the ripgrep family.
    BrokenPipe,
}

/// An error with a message that names the thing at fault and an optional hint that says
/// what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            kind: ErrorKind::Failed,
            message: message.into(),
            hint: None,
        }
    }

    /// Standard output is gone (EPIPE); see [`ErrorKind::BrokenPipe`].
    pub fn broken_pipe() -> Self {
        Error {
            kind: ErrorKind::BrokenPipe,
            message: "standard output was closed".into(),
            hint: None,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
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
        Error::new(format!("cannot {action} {}: {what}", path.display()))
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

impl std::error::Error for Error {}

/// Shorthand for `Err(Error::new(...))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::new(format!($($arg)*)))
    };
}
