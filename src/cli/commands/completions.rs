//! `swarmseal completions SHELL`, and the completions themselves.
//!
//! The completions are clap_complete's dynamic ones: the script `completions` prints calls
//! `COMPLETE=SHELL swarmseal -- WORDS...` on every TAB ([`complete_from_env`]), so that
//! environment names (`-e <TAB>`) and secret names (`get <TAB>`) come from the repository
//! being worked on. Completing only reads swarmseal.yaml and lists file names: it never
//! decrypts, prompts or prints an error into the shell.

use std::ffi::OsString;
use std::path::PathBuf;

use clap_complete::env::Shells;
use clap_complete::CompletionCandidate;

use crate::cli::args::CompletionsArgs;
use crate::cli::help;
use crate::error::{Error, Result};
use crate::repo::Repo;

/// The variable that turns a run of swarmseal into a completion request (clap's default).
const COMPLETE_VAR: &str = "COMPLETE";

pub fn run(args: CompletionsArgs) -> Result<i32> {
    let shell = args.shell.to_string();
    let shells = Shells::builtins();
    let completer = shells.completer(&shell).ok_or_else(|| {
        Error::new(format!("no completions for {shell}"))
            .hint("use bash, elvish, fish, powershell or zsh")
    })?;
    let mut script = Vec::new();
    completer
        .write_registration(
            COMPLETE_VAR,
            "swarmseal",
            "swarmseal",
            &this_program(),
            &mut script,
        )
        .map_err(|e| Error::new(format!("cannot write the {shell} completions: {e}")))?;
    crate::cli::output::write_stdout(&script)?;
    Ok(0)
}

/// The program the completion script calls: as this one was called (found on `PATH` when
/// it was called by name), made absolute when it was called by a relative path.
fn this_program() -> String {
    let arg0 = PathBuf::from(
        std::env::args_os()
            .next()
            .unwrap_or_else(|| "swarmseal".into()),
    );
    let path = match std::env::current_dir() {
        Ok(cwd) if arg0.components().count() > 1 => cwd.join(arg0),
        _ => arg0,
    };
    path.to_string_lossy().into_owned()
}

/// Answers a completion request (`COMPLETE=SHELL swarmseal -- WORDS...`), if this run is
/// one: `Some(exit code)`. Failures end quietly with exit 1 (the scripts then offer
/// nothing): nothing is ever printed into the shell but candidates.
pub fn complete_from_env() -> Option<i32> {
    let completing = clap_complete::CompleteEnv::with_factory(help::command)
        .var(COMPLETE_VAR)
        .try_complete(std::env::args_os(), std::env::current_dir().ok().as_deref());
    match completing {
        Ok(true) => Some(0),
        Ok(false) => None,
        Err(_) => Some(1),
    }
}

/// The repository and the `-e` values of the command line being completed (the words after
/// `--`), parsed leniently: a half-typed command line is the rule here.
fn completing() -> Option<(Repo, Vec<String>)> {
    let words: Vec<OsString> = std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    let matches = help::command()
        .ignore_errors(true)
        .try_get_matches_from(words)
        .ok()?;
    let dir = matches.try_get_one::<PathBuf>("repo").ok().flatten();
    let envs = matches
        .try_get_many::<String>("env")
        .ok()
        .flatten()
        .map(|v| v.filter(|e| !e.is_empty()).cloned().collect())
        .unwrap_or_default();
    let repo = Repo::discover(dir.map(PathBuf::as_path)).ok()?;
    Some((repo, envs))
}

/// Environment names of the repository (`-e <TAB>`).
pub fn environment_names() -> Vec<CompletionCandidate> {
    let Some((repo, _)) = completing() else {
        return Vec::new();
    };
    candidates(repo.manifest.environments.keys().cloned())
}

/// Recipient names of the manifest (`recipients rm <TAB>`).
pub fn recipient_names() -> Vec<CompletionCandidate> {
    let Some((repo, _)) = completing() else {
        return Vec::new();
    };
    candidates(repo.manifest.recipients.keys().cloned())
}

/// Secret names of the environments given with `-e`, else of every environment
/// (`get <TAB>`): the file names below `secrets/<env>/`, nothing decrypted.
pub fn secret_names() -> Vec<CompletionCandidate> {
    let Some((repo, envs)) = completing() else {
        return Vec::new();
    };
    let known = |e: &String| repo.manifest.environments.contains_key(e);
    let envs: Vec<String> = if envs.iter().any(known) {
        envs.into_iter().filter(known).collect()
    } else {
        repo.manifest.environments.keys().cloned().collect()
    };
    let mut names = std::collections::BTreeSet::new();
    for env in &envs {
        if let Ok(scan) = repo.scan(env) {
            names.extend(scan.secrets.into_keys());
        }
    }
    candidates(names)
}

fn candidates(names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    names.into_iter().map(CompletionCandidate::new).collect()
}
