//! Output: report formats, errors, colour, plain-text tables, and the only writers to
//! standard output and standard error.
//!
//! Nothing in swarmseal uses `print!`/`eprintln!` (clippy denies them): those panic when
//! the output is gone (`swarmseal status | head -1`, `> /dev/full`). [`outln!`] returns
//! the write error instead (EPIPE becomes [`Error::broken_pipe`], which ends the command
//! quietly), and [`errln!`] ignores errors: there is nowhere left to report them.
//!
//! Text that comes from outside swarmseal (Swarm labels, lock holders, Docker's messages)
//! goes through [`clean`] before it reaches a terminal.

use std::io::Write;

pub use crate::domain::text::paint;
use crate::domain::text::{clean, clean_keeping_lines};
use crate::error::{Error, Result};

/// Writes bytes to standard output, flushed. EPIPE is [`Error::broken_pipe`]; any other
/// failure (a full disk) is an error naming it.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// A failed write to standard output: EPIPE is [`Error::broken_pipe`].
fn stdout_error(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Error::broken_pipe()
    } else {
        Error::new(format!("cannot write to standard output: {e}"))
            .hint("check where the output goes (a full disk, a closed file?)")
    }
}

/// Writes secret bytes (a value, an identity) to standard output without std's line
/// buffer: after a flush, straight to the file descriptor, so that no tail of the value
/// stays behind in a buffer that is never wiped. Errors as [`write_stdout`].
pub fn write_secret_stdout(bytes: &[u8]) -> Result<()> {
    use std::os::fd::AsFd;
    let mut out = std::io::stdout().lock();

    out.flush().map_err(stdout_error)?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(out.as_fd(), rest) {
            Ok(0) => return Err(stdout_error(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(stdout_error(e.into())),
        }
    }
    Ok(())
}

/// Writes text to standard error, ignoring failures (there is nowhere left to report them).
pub fn write_stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `println!` that returns the write error instead of panicking: `outln!("{x}")?;`.
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}
pub(crate) use outln;

/// `print!` that returns the write error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format!($($arg)*).as_bytes())
    };
}
pub(crate) use out;

/// `eprintln!` that never panics.
macro_rules! errln {
    () => {
        $crate::cli::output::write_stderr("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use errln;

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stderr(&format!($($arg)*))
    };
}
pub(crate) use err;

/// Format of reports (`--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Markdown,
}

/// True when colour goes to standard error (or standard output, for `stdout = true`):
/// `--color always|never`, else [`auto_colour`] for that stream.
pub fn colour(stdout: bool) -> bool {
    use std::io::IsTerminal;
    match colour_choice() {
        ColourChoice::Always => true,
        ColourChoice::Never => false,
        ColourChoice::Auto if stdout => auto_colour(std::io::stdout().is_terminal(), &env_var),
        ColourChoice::Auto => auto_colour(std::io::stderr().is_terminal(), &env_var),
    }
}

/// `--color auto`: `CLICOLOR_FORCE` (set, not empty, not `0`) forces colour; else
/// `NO_COLOR` (not empty) or `CLICOLOR=0` turns it off; else colour only on a terminal whose
/// `TERM` is set and not `dumb`. `var` reads the environment (empty values count as unset).
fn auto_colour(terminal: bool, var: &dyn Fn(&str) -> Option<String>) -> bool {
    if var("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    if var("NO_COLOR").is_some() || var("CLICOLOR").is_some_and(|v| v == "0") {
        return false;
    }
    terminal && var("TERM").is_some_and(|t| t != "dumb")
}

/// A variable of the process environment; empty counts as unset.
fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string_lossy().into_owned())
}

static COLOUR_CHOICE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Applies `--color` to every later [`colour`] decision.
pub fn set_colour_choice(choice: ColourChoice) {
    COLOUR_CHOICE.store(choice as u8, std::sync::atomic::Ordering::Relaxed);
}

fn colour_choice() -> ColourChoice {
    match COLOUR_CHOICE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => ColourChoice::Always,
        2 => ColourChoice::Never,
        _ => ColourChoice::Auto,
    }
}

/// Text clap rendered (help, version, usage errors) with its styles when [`colour`] says so
/// for that stream, plain otherwise.
pub fn styled(text: &clap::builder::StyledStr, stdout: bool) -> String {
    if colour(stdout) {
        text.ansi().to_string()
    } else {
        text.to_string()
    }
}

/// `--color`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColourChoice {
    #[default]
    Auto = 0,
    Always = 1,
    Never = 2,
}

/// An error as printed on standard error: `error: ...` then `hint: ...`.
/// Control characters in the message are escaped (see [`clean`]), as a last line of
/// defence for outside text that reached an error.
pub fn render_error(err: &Error) -> String {
    let on = colour(false);
    let mut out = format!(
        "{} {}",
        paint(on, "1;31", "error:"),
        clean_keeping_lines(err.message())
    );
    if let Some(hint) = err.hint_text() {
        out.push_str(&format!(
            "\n{} {}",
            paint(on, "1;36", "hint:"),
            clean_keeping_lines(hint)
        ));
    }
    out
}

/// Prints an error on standard error as one JSON object (`--format json`):
/// `{"error": {"kind": ..., "message": ..., "hint": ...}}`.
fn print_error_json(err: &Error) {
    let value = serde_json::json!({"error": {
        "kind": err.kind(),
        "message": err.message(),
        "hint": err.hint_text(),
    }});
    write_stderr(&format!("{value}\n"));
}

static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// With `--format json`, every error is printed as one JSON object ([`print_error_json`]).
pub fn set_json_errors(on: bool) {
    JSON_ERRORS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Prints an error on standard error (as JSON with `--format json`).
pub fn print_error(err: &Error) {
    if JSON_ERRORS.load(std::sync::atomic::Ordering::Relaxed) {
        return print_error_json(err);
    }
    write_stderr(&format!("{}\n", render_error(err)));
}

/// A warning as printed on standard error.
pub fn warn(message: &str) {
    let on = colour(false);
    write_stderr(&format!(
        "{} {}\n",
        paint(on, "1;33", "warning:"),
        clean_keeping_lines(message)
    ));
}

/// Left-aligned columns separated by two spaces; cells are [`clean`]ed.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c).into_owned()).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n") + "\n"
}

/// A markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let esc = |s: &str| clean(s).replace('|', "\\|");
    let mut out = format!(
        "| {} |\n|{}|\n",
        header.join(" | "),
        vec!["---"; header.len()].join("|")
    );
    for row in rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colour_follows_clicolor_force_no_color_clicolor_and_the_terminal() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, v)| *k == name && !v.is_empty())
                    .map(|(_, v)| v.to_string())
            }
        };
        let term = &[("TERM", "xterm")];
        assert!(auto_colour(true, &env(term)));
        assert!(!auto_colour(false, &env(term)));
        assert!(!auto_colour(true, &env(&[("TERM", "dumb")])));
        assert!(!auto_colour(true, &env(&[])), "no TERM");
        assert!(!auto_colour(
            true,
            &env(&[("TERM", "xterm"), ("NO_COLOR", "1")])
        ));
        assert!(auto_colour(
            true,
            &env(&[("TERM", "xterm"), ("NO_COLOR", "")])
        ));
        assert!(!auto_colour(
            true,
            &env(&[("TERM", "xterm"), ("CLICOLOR", "0")])
        ));
        assert!(auto_colour(
            true,
            &env(&[("TERM", "xterm"), ("CLICOLOR", "1")])
        ));
        assert!(auto_colour(false, &env(&[("CLICOLOR_FORCE", "1")])));
        assert!(auto_colour(
            false,
            &env(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")])
        ));
        assert!(!auto_colour(false, &env(&[("CLICOLOR_FORCE", "0")])));
        assert!(!auto_colour(false, &env(&[("CLICOLOR_FORCE", "")])));
    }

    #[test]
    fn clean_escapes_every_control_character() {
        assert_eq!(clean("plain text"), "plain text");
        assert_eq!(clean("a\x1b[31mred"), "a\\u{1b}[31mred");
        assert_eq!(clean("line\nforged"), "line\\nforged");
        assert_eq!(clean("cr\roverwrite"), "cr\\roverwrite");
        assert_eq!(clean("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(clean_keeping_lines("two\nlines\x1b"), "two\nlines\\u{1b}");
        let t = table(&["A"], &[vec!["x\x1b]0;title\x07".into()]]);
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
    }
}
