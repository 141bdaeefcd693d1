//! The command line: parsing ([`args`]), the context every command resolves once
//! ([`context`]), output and reports, and one thin file per subcommand ([`commands`]).
//! The library never imports this module: data flows from here into the library.

mod args;
mod commands;
mod context;
mod help;
mod hygiene;

mod output;
mod progress;
mod remote;
mod report;

use std::ffi::OsString;

use clap::FromArgMatches;

use crate::error::Result;
use args::{Cli, Command};
use output::ColourChoice;

/// The binary's entry point: process hygiene, then the command line.
pub fn main() -> i32 {
    hygiene::disable_core_dumps();
    // A completion request (from the script `swarmseal completions` prints) is answered
    // before anything else reads the environment or prints.
    if let Some(code) = commands::completions::complete_from_env() {
        return code;
    }
    // Before any thread exists: no child process inherits the identity text.
    crate::crypto::capture_env_key();
    run(std::env::args_os())
}

/// Runs the command line given as `args` (the first item is the program name), in this
/// process. Returns the exit code: usage errors are errors like any other (exit 1), since
/// exit 2 means "changes present" under `--detailed-exitcode`.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    output::set_colour_choice(colour_flag(&args).unwrap_or_default());
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(code) => return code,
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

/// Parses the command line. Help, the version and usage errors are printed here, coloured
/// as the rest of the output is: `Err(exit code)`.
fn parse(args: &[OsString]) -> std::result::Result<Cli, i32> {
    use clap::error::ErrorKind as Kind;
    let parsed = help::command()
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m));
    let e = match parsed {
        Ok(cli) => return Ok(cli),
        Err(e) => e,
    };
    match e.kind() {
        // Asked for: standard output, and a closed pipe (`--help | head -1`) ends quietly.
        Kind::DisplayHelp | Kind::DisplayVersion => {
            match output::write_stdout(output::styled(&e.render(), true).as_bytes()) {
                Err(err) if err.kind() != crate::error::ErrorKind::BrokenPipe => {
                    output::print_error(&err);
                    Err(1)
                }
                _ => Err(0),
            }
        }
        // `swarmseal` or `swarmseal recipients` alone: a usage error that shows the help.
        Kind::DisplayHelpOnMissingArgumentOrSubcommand => {
            output::write_stderr(&output::styled(&e.render(), false));
            Err(1)
        }
        _ => {
            output::write_stderr(&usage_error_without_values(&e));
            Err(1)
        }
    }
}

/// The last `--color WHEN` of the command line, for what is printed before it is parsed
/// (help, usage errors). Values clap would refuse are left for clap to refuse.
fn colour_flag(args: &[OsString]) -> Option<ColourChoice> {
    use clap::ValueEnum;
    let mut words = args.iter().skip(1).take_while(|a| *a != "--");
    let mut choice = None;
    while let Some(word) = words.next() {
        let value = match word.to_str() {
            Some("--color") => words.next().and_then(|v| v.to_str()),
            Some(w) => w.strip_prefix("--color="),
            None => None,
        };
        if let Some(c) = value.and_then(|v| ColourChoice::from_str(v, false).ok()) {
            choice = Some(c);
        }
    }
    choice
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
    if let Some(rest) = text.strip_prefix("error:") {
        text = format!(
            "{}{rest}",
            output::paint(output::colour(false), "1;31", "error:")
        );
    }
    if redacted {
        text.push_str(
            "\nnote: the argument is not shown, in case it is a secret value; swarmseal never takes values on the command line (they would stay in shell history and `ps`): `swarmseal set NAME` reads standard input, --file FILE or --generate\n",
        );
    }
    text
}

/// Leaves `value` to the end of the process, whose memory the system takes back at once,
/// instead of freeing it piece by piece: the last step of a command that ends right after.
/// A plan at 10,000 secrets holds some 300,000 small allocations (the Swarm's objects,
/// the files, the desired state, the plan), and freeing them took 10 ms of a 0.4 s
/// process. Only for the types that hold no plaintext ([`NoPlaintext`]): the crate denies
/// `mem::forget` elsewhere, since a forgotten value is never zeroized.
#[allow(clippy::mem_forget)]
pub(crate) fn leave_to_exit<T: NoPlaintext>(value: T) {
    std::mem::forget(value);
}

/// What [`leave_to_exit`] may be given: types that never hold a secret's value.
pub(crate) trait NoPlaintext {}
/// The Swarm's objects, as listed: Docker never sends a secret's data.
impl NoPlaintext for crate::domain::state::Observed {}
/// Digests and settings; a plain config's content is no secret (it is in git as it is).
impl NoPlaintext for crate::domain::state::Desired {}
/// The files as read: ciphertext and digests.
impl NoPlaintext for crate::repo::desired::Prepared {}
impl NoPlaintext for crate::plan::Plan {}

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
        Command::Rotate(args) => commands::rotate::run(cx, args),
        Command::Check(args) => commands::check::run(cx, args),
        Command::Plan(args) => commands::plan::run(cx, args),
        Command::Apply(args) => commands::apply::run(cx, args),
        Command::Status => commands::status::run(cx, false),
        Command::Exec(args) => commands::exec::run(cx, args),
        Command::Unlock(args) => commands::unlock::run(cx, args),
        Command::Textconv(args) => commands::textconv::run(cx, args),
        Command::Import(c) => commands::import::run(cx, c),
        Command::Completions(args) => commands::completions::run(args),
        Command::Man(args) => commands::man::run(cx, args),
    }
}
