//! The command line: parsing ([`args`]), the context every command resolves once
//! ([`context`]), output and reports, and one thin file per subcommand ([`commands`]).
//! The library never imports this module: data flows from here into the library.

mod args;
mod commands;
mod context;
mod hygiene;

mod output;
mod progress;
mod remote;
mod report;

use clap::Parser;

use crate::error::Result;
use args::{Cli, Command};

/// The binary's entry point: process hygiene, then the command line.
pub fn main() -> i32 {
    hygiene::disable_core_dumps();
    // Before any thread exists: no child process inherits the identity text.
    crate::crypto::capture_env_key();
    run(std::env::args_os())
}

/// Runs the command line given as `args` (the first item is the program name), in this
/// process. Returns the exit code: usage errors are errors like any other (exit 1), since
/// exit 2 means "changes present" under `--detailed-exitcode`.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    0
                }
                _ => {
                    output::write_stderr(&usage_error_without_values(&e));
                    1
                }
            };
        }
    };
    output::set_colour_choice(cli.global.color);
    commands::edit::sweep_stale();
    output::set_json_errors(cli.global.format == output::Format::Json);
    match dispatch(cli) {
        Ok(code) => code,
        // The reader of standard output is gone (`swarmseal status | head -1`): what it
        // wanted it has; end quietly, as the ripgrep family does.
        Err(err) if err.kind() == crate::error::ErrorKind::BrokenPipe => 0,
        Err(err) => {
            output::print_error(&err);
            1
        }
    }
}

/// clap's usage error, with every argument it would quote that is not an option name
/// replaced: `swarmseal set db_password hunter2` must not print `hunter2` back (into a CI
/// log, say).
fn usage_error_without_values(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut text = e.render().to_string();
    let mut redacted = false;
    for (kind, value) in e.context() {
        if !matches!(kind, ContextKind::InvalidArg | ContextKind::InvalidValue) {
            continue;
        }
        let ContextValue::String(v) = value else {
            continue;
        };
        if v.is_empty() || (v.starts_with('-') && !v.contains('=')) {
            continue;
        }
        for (from, to) in [
            (format!("'{v}'"), "'<not shown>'".to_string()),
            (format!("'-- {v}'"), "'-- <not shown>'".to_string()),
        ] {
            if text.contains(&from) {
                text = text.replace(&from, &to);
                redacted = true;
            }
        }
    }
    if redacted {
        text.push_str(
            "\nnote: the argument is not shown, in case it is a secret value; swarmseal never takes values on the command line (they would stay in shell history and `ps`): `swarmseal set NAME` reads standard input, --file FILE or --generate\n",
        );
    }
    text
}

fn dispatch(cli: Cli) -> Result<i32> {
    let cx = &context::Context::new(cli.global);
    match cli.command {
        Command::Init(args) => commands::init::run(cx, args),
        Command::Keygen(args) => commands::keygen::run(cx, args),
        Command::Set(args) => commands::set::run(cx, args),
        Command::Get(args) => commands::get::run(cx, args),
        Command::Edit(args) => commands::edit::run(cx, args),
        Command::Rm(args) => commands::rm::run(cx, args),
        Command::Ls(args) if args.remote => commands::status::run(cx, true),
        Command::Ls(_) => commands::ls::run(cx),
        Command::Recipients(c) => commands::recipients::run(cx, c),
        Command::Rekey(args) => commands::rekey::run(cx, args),
        Command::Check(args) => commands::check::run(cx, args),
        Command::Plan(args) => commands::plan::run(cx, args),
        Command::Apply(args) => commands::apply::run(cx, args),
        Command::Status => commands::status::run(cx, false),
        Command::Exec(args) => commands::exec::run(cx, args),
        Command::Unlock(args) => commands::unlock::run(cx, args),
        Command::Textconv(args) => commands::textconv::run(cx, args),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man => commands::completions::man(),
    }
}
